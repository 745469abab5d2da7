//! Backup and restore (issue 11, part 4): `custodyd backup` copies a
//! running server's log while appends stream in; `custodyd restore`
//! checks the copy against its signed checkpoint before it puts it in
//! place; the restored server continues the same log.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custody_e2e::*;
use custody_proto::v1;

fn custodyd(args: &[&str]) -> Output {
    Command::new(bin("custodyd"))
        .args(args)
        .output()
        .expect("run custodyd")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn monitor(log: &Log, state: &Path) -> Output {
    custody(&[
        "monitor",
        "--url",
        &log.http,
        "--log-key",
        log.vkey.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--once",
    ])
}

async fn entries(log: &Log, end: u64) -> Vec<Vec<u8>> {
    let mut c = log.client().await;
    let mut out = Vec::new();
    while (out.len() as u64) < end {
        let got = c
            .get_entries(v1::GetEntriesRequest {
                start: out.len() as u64,
                end,
            })
            .await
            .expect("entries")
            .into_inner();
        assert!(!got.entries.is_empty(), "no entries from {}", out.len());
        out.extend(got.entries);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_online_backup_restores_the_same_log_with_everything_acknowledged_before_it() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    wait_for_size(&log.http, 4).await;
    // The auditor's view before the backup.
    let mon = log.path("monitor.state");
    let out = monitor(&log, &mon);
    assert!(out.status.success(), "{}", text(&out));

    // Appends stream in, one at a time, each acknowledged index kept.
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (acked, stop, mut c, cam) = (acked.clone(), stop.clone(), c.clone(), cam.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let i = c
                    .append(v1::AppendRequest {
                        event: Some(signed(&event("cam", capture("cam")), &[&cam])),
                        wait_for_checkpoint: false,
                    })
                    .await
                    .expect("append under load")
                    .into_inner()
                    .index;
                acked.lock().unwrap().push(i);
            }
        })
    };
    let until = Instant::now() + Duration::from_secs(10);
    while acked.lock().unwrap().len() < 200 {
        assert!(Instant::now() < until, "the load did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The backup, while the load runs: everything acknowledged before it
    // starts must be in it.
    let before: Vec<u64> = acked.lock().unwrap().clone();
    let out_dir = log.path("backup-1");
    let (data, out_s) = (
        log.data.to_str().unwrap().to_owned(),
        out_dir.to_str().unwrap().to_owned(),
    );
    let taken = tokio::task::spawn_blocking(move || {
        custodyd(&["backup", "--data", &data, "--out", &out_s])
    })
    .await
    .unwrap();
    assert!(taken.status.success(), "backup: {}", text(&taken));
    let during = acked.lock().unwrap().len() - before.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    let after = acked.lock().unwrap().len();
    assert!(
        after > before.len(),
        "the load ran on after the backup began"
    );

    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("backup.json")).unwrap()).unwrap();
    let size = info["tree_size"].as_u64().unwrap();
    let last_before = *before.iter().max().unwrap();
    assert!(
        size > last_before,
        "the backup holds {size} entries, but index {last_before} was acknowledged before it began"
    );
    assert!(info["checkpoint_size"].as_u64().unwrap() <= size, "{info}");
    eprintln!(
        "backup: {size} entries; {} acknowledged before it, {during} while it ran, {after} in all",
        before.len()
    );
    let original = entries(&log, size).await;
    let total = checkpoint_size(&log.http).await;
    assert!(total >= size);

    // The server is lost; the backup is restored somewhere new. A restore
    // into a directory that holds anything is refused and changes nothing.
    log.kill();
    let occupied = custodyd(&[
        "restore",
        "--from",
        out_dir.to_str().unwrap(),
        "--data",
        log.data.to_str().unwrap(),
    ]);
    assert!(!occupied.status.success());
    assert!(text(&occupied).contains("not empty"), "{}", text(&occupied));
    // A backup of another log is refused when the log's key is given.
    let other = Log::init();
    let wrong = custodyd(&[
        "restore",
        "--from",
        out_dir.to_str().unwrap(),
        "--data",
        log.path("wrong").to_str().unwrap(),
        "--log-key",
        other.vkey.to_str().unwrap(),
    ]);
    assert!(!wrong.status.success(), "{}", text(&wrong));
    assert!(!log.path("wrong").exists(), "a refused restore left files");

    let restored = log.path("restored");
    let out = custodyd(&[
        "restore",
        "--from",
        out_dir.to_str().unwrap(),
        "--data",
        restored.to_str().unwrap(),
        "--log-key",
        log.vkey.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "restore: {}", text(&out));
    log.data = restored;
    log.start();

    // Every entry of the backup is there, byte for byte; nothing more.
    wait_for_size(&log.http, size).await;
    assert_eq!(checkpoint_size(&log.http).await, size);
    assert_eq!(entries(&log, size).await, original);

    // The restored server continues the same log: new appends, a new
    // checkpoint consistent with the one the auditor saw before the
    // backup, and a full audit agrees.
    let mut c = log.client().await;
    let next = append(&mut c, &event("cam", capture("cam")), &[&cam])
        .await
        .expect("append after restore");
    assert_eq!(next.index, size, "the restored log continues at its end");
    wait_for_size(&log.http, size + 1).await;
    let out = monitor(&log, &mon);
    assert!(out.status.success(), "monitor: {}", text(&out));
    audit_agrees(&log);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_backup_is_refused_and_leaves_nothing_behind() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    stream_captures(&mut c, "cam", &cam, 50).await;
    log.kill();
    // Offline: no server holds the directory.
    let out_dir = log.path("backup");
    let out = custodyd(&[
        "backup",
        "--data",
        log.data.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "offline backup: {}", text(&out));
    // A second backup to the same place is refused.
    let again = custodyd(&[
        "backup",
        "--data",
        log.data.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(text(&again).contains("exists"), "{}", text(&again));

    // The description altered: it claims more entries than the copy holds.
    let path = out_dir.join("backup.json");
    let mut info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let size = info["tree_size"].as_u64().unwrap();
    info["tree_size"] = (size + 10).into();
    std::fs::write(&path, serde_json::to_vec(&info).unwrap()).unwrap();
    let target = log.path("restored");
    let out = custodyd(&[
        "restore",
        "--from",
        out_dir.to_str().unwrap(),
        "--data",
        target.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "an altered backup was restored");
    assert!(
        text(&out).contains("do not match its description"),
        "{}",
        text(&out)
    );
    assert!(!target.exists(), "a refused restore left {target:?}");
    let leftovers: Vec<_> = std::fs::read_dir(log.dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("restoring"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}
