//! `custody monitor` alarms on a split view: two servers sharing one log
//! key, forked from the same data, sign different trees.

use std::process::Command;

use custody_e2e::{append, capture, custody, event, register, Log};

#[tokio::test(flavor = "multi_thread")]
async fn monitor_exits_loudly_on_a_split_view() {
    let mut a = Log::init();
    a.start();
    let mut c = a.client().await;
    let key = register(&a, &mut c, "cam", 0, 0).await;
    a.kill();
    // Fork the log: same key, same entries so far.
    let mut b = Log::init();
    b.kill();
    std::fs::remove_dir_all(&b.data).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&a.data)
        .arg(&b.data)
        .status()
        .unwrap();
    assert!(copied.success());
    a.start();
    b.start();
    let mut ca = a.client().await;
    let mut cb = b.client().await;
    append(&mut ca, &event("cam", capture("cam")), &[&key])
        .await
        .unwrap();
    append(&mut cb, &event("cam", capture("cam")), &[&key])
        .await
        .unwrap();

    let state = a.path("mon.state");
    let vk = a.vkey.to_str().unwrap().to_owned();
    let mon = |url: &str| {
        custody(&[
            "monitor",
            "--url",
            url,
            "--log-key",
            &vk,
            "--state",
            state.to_str().unwrap(),
            "--once",
        ])
    };
    let out = mon(&a.http);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = mon(&b.http);
    assert_eq!(out.status.code(), Some(2), "split view not alarmed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ALERT") && err.contains("split view"), "{err}");
    // And an honest extension of the same log is accepted.
    append(&mut ca, &event("cam", capture("cam")), &[&key])
        .await
        .unwrap();
    let out = mon(&a.http);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
