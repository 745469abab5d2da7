//! Graceful shutdown and health: `/healthz` and `/readyz` answer without
//! credentials; on SIGTERM the server stops taking requests, finishes
//! those in flight, and publishes a last checkpoint of everything it
//! acknowledged before it exits with status 0.

use std::process::Command;
use std::time::{Duration, Instant};

use custody_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_publishes_a_last_checkpoint_of_everything_acknowledged() {
    let mut log = Log::init();
    // Checkpoints at most once a second, so the last appends are not
    // yet checkpointed when the signal comes.
    log.start_with(&["--checkpoint-interval-ms", "1000"]);
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    stream_captures(&mut c, "cam", &cam, 300).await;
    // 1 genesis + 3 registry + 300 captures, all acknowledged.
    let child = log.child.take().unwrap();
    let pid = child.id();
    let mut child = child;
    let sent = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(sent.elapsed() < Duration::from_secs(30), "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let server_log = log.server_log();
    assert!(status.success(), "{status}: {server_log}");
    assert!(
        server_log.contains("stopped size=304"),
        "the last checkpoint covers every acknowledged entry: {server_log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness_need_no_credentials() {
    let mut log = Log::init();
    let out = Command::new(bin("custodyd"))
        .args(["access", "add", "--data", log.data.to_str().unwrap()])
        .args(["--party", "auditor-1", "--role", "auditor"])
        .output()
        .unwrap();
    assert!(out.status.success());
    log.start();
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", log.http)).send();
    assert_eq!(get("/checkpoint").await.unwrap().status().as_u16(), 401);
    for path in ["/healthz", "/readyz"] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path} needs no token");
    }
}
