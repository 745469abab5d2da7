//! Faults of the machine under the real server (issue 10): a full disk,
//! a damaged database, and a clock that steps back. Nothing acknowledged
//! is lost, nothing is half-appended, and each fault gets an answer a
//! person can act on.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use custody_e2e::*;
use custody_proto::v1;
use custody_proto::{decode_entry, Entry};
use ed25519_dalek::SigningKey;
use tonic::Code;

const SEC: i64 = 1_000_000_000;
const MIB: u64 = 1 << 20;

/// `Tmpfs` is a small tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the full-disk test mounts a {mib} MiB tmpfs, which needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `free` is the bytes free on it.
    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .expect("run df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df's answer")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// `fill` writes a file of zeros into `dir` until `left` bytes are free.
fn fill(t: &Tmpfs, left: u64) -> PathBuf {
    use std::io::Write as _;
    let path = t.path().join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; MIB as usize];
    while t.free() > left + MIB {
        f.write_all(&chunk).expect("write filler");
        f.sync_all().expect("sync filler");
    }
    path
}

async fn capture(
    c: &mut custody_proto::v1::custody_log_client::CustodyLogClient<tonic::transport::Channel>,
    key: &SigningKey,
    t: i64,
) -> Result<u64, tonic::Status> {
    let mut e = event("cam", custody_e2e::capture("cam"));
    e.event_time_unix_nanos = t;
    e.reporter_seq = 0;
    append(c, &e, &[key]).await.map(|r| r.index)
}

/// `entries` is every entry of the log as (event id, integrated time).
async fn entries(log: &Log) -> Vec<(String, i64)> {
    let mut c = log.client().await;
    let size = checkpoint_size(&log.http).await;
    let got = c
        .get_entries(v1::GetEntriesRequest {
            start: 0,
            end: size,
        })
        .await
        .expect("get entries")
        .into_inner()
        .entries;
    got.iter()
        .map(|b| match decode_entry(b) {
            Ok(Entry::Genesis(_)) => (String::new(), 0),
            Ok(Entry::Event {
                envelope,
                integrated_time,
            }) => (
                custody_proto::decode_event(&envelope.body)
                    .map(|e| e.event_id)
                    .unwrap_or_default(),
                integrated_time,
            ),
            Err(e) => panic!("an entry does not decode: {e:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_appends_which_resume_once_space_is_freed() {
    let disk = Tmpfs::mount(256);
    let mut log = Log::init();
    copy_dir(&log.data, &disk.path().join("data"));
    log.data = disk.path().join("data");
    log.start_with(&["--min-free-mib", "64"]);
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let mut acked = Vec::new();
    for _ in 0..20 {
        acked.push(capture(&mut c, &cam, now()).await.expect("room to log"));
    }

    // Below the reserve: refused, with what to do, and nothing logged.
    let filler = fill(&disk, 40 * MIB);
    let size = checkpoint_size(&log.http).await;
    for _ in 0..5 {
        let e = capture(&mut c, &cam, now())
            .await
            .expect_err("an append with the disk below its reserve");
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        assert!(
            e.message().contains("reserve") && e.message().contains("free space"),
            "{}",
            e.message()
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(checkpoint_size(&log.http).await, size, "nothing logged");

    // Space freed: appends resume, with no restart.
    std::fs::remove_file(&filler).expect("remove the filler");
    for _ in 0..5 {
        acked.push(capture(&mut c, &cam, now()).await.expect("appends resume"));
    }

    // Everything acknowledged survives a SIGKILL, and the audit agrees.
    log.kill();
    log.start_with(&["--min-free-mib", "64"]);
    let all = entries(&log).await;
    for i in &acked {
        assert!(
            all.get(*i as usize).is_some_and(|(id, _)| !id.is_empty()),
            "acknowledged entry {i} is missing"
        );
    }
    audit_agrees(&log);
    log.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_database_is_refused_at_start_with_what_to_do() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    for _ in 0..50 {
        capture(&mut c, &cam, now()).await.expect("logged");
    }
    log.kill();
    // Into SST files, then damage the largest one in its middle.
    let out = Command::new(bin("custodyd"))
        .args(["compact", "--data", log.data.to_str().unwrap()])
        .output()
        .expect("custodyd compact");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = log.data.join("db");
    let largest = std::fs::read_dir(&db)
        .expect("the database directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("an SST file");
    // Its tail: the index and properties blocks, which opening reads
    // (damage inside a data block is found when the block is read).
    let mut bytes = std::fs::read(&largest).expect("read it");
    let at = bytes.len().saturating_sub(256);
    for b in &mut bytes[at..at + 64] {
        *b ^= 0xa5;
    }
    std::fs::write(&largest, bytes).expect("damage it");

    let out = Command::new(bin("custodyd"))
        .args(["serve", "--data", log.data.to_str().unwrap()])
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .output()
        .expect("custodyd serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "custodyd served a damaged database: {err}"
    );
    assert!(
        err.contains("is damaged or unreadable") && err.contains("restore the data directory"),
        "the refusal does not say what to do: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn integration_time_never_goes_back_when_the_clock_does() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    for _ in 0..5 {
        capture(&mut c, &cam, now()).await.expect("logged");
    }
    let before = entries(&log).await;
    let last = before.iter().map(|(_, t)| *t).max().unwrap_or(0);
    log.kill();

    // The server's clock is now two days behind. (libfaketime would be
    // the outside way, but it deadlocks in a jemalloc binary at start.)
    log.start_with(&["--fault-clock-offset-secs", "-172800"]);
    let mut c = log.client().await;
    let mut after = Vec::new();
    for _ in 0..5 {
        // Events that happened by the server's clock.
        after.push(
            capture(&mut c, &cam, now() - 3 * 86_400 * SEC)
                .await
                .expect("logged with the clock behind"),
        );
    }
    let all = entries(&log).await;
    let mut t = last;
    for i in &after {
        let (_, at) = all[*i as usize];
        assert!(
            at >= t,
            "entry {i} is integrated at {at}, before an earlier entry's {t}"
        );
        t = at;
    }
    // The faked clock was in force: the new entries carry no later time
    // than the last before the restart.
    assert_eq!(t, last, "the server's clock was not stepped back");
}
