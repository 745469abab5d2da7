//! Harness for the end-to-end suites: builds nothing, starts the real
//! `custodyd` and `custody` binaries (built by `cargo build --workspace
//! --bins`, which `.ci/run` does first) on temp directories and ports
//! chosen by the OS.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use custody_domain::SignedEnvelope;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::{envelope_to_proto, v1};
use ed25519_dalek::SigningKey;
use prost::Message as _;
use tonic::transport::Channel;

/// `bin` is the path of a workspace binary next to the test executable.
///
/// # Panics
///
/// If the binary was not built: run `cargo build --workspace --bins`.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the end-to-end tests",
        p.display()
    );
    p
}

/// `custody` runs the CLI and returns its output.
pub fn custody(args: &[&str]) -> Output {
    Command::new(bin("custody"))
        .args(args)
        .output()
        .expect("run custody")
}

/// `listening` reads the addresses out of the line `custodyd serve` and
/// `custody-demo` print once they listen: `... listening grpc=A http=B`.
pub fn listening(out: &str) -> Option<(String, String)> {
    let line = out.lines().find(|l| l.contains(" listening grpc="))?;
    let grpc = line.split("grpc=").nth(1)?.split_whitespace().next()?;
    let http = line.split("http=").nth(1)?.split_whitespace().next()?;
    Some((grpc.to_owned(), http.to_owned()))
}

/// `free_port` is a loopback port that was free a moment ago (for the
/// processes that cannot be told port 0, such as a witness).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `Log` is an initialised data directory plus, while running, a server.
pub struct Log {
    /// Keeps the temp directory alive.
    pub dir: tempfile::TempDir,
    /// The data directory.
    pub data: PathBuf,
    /// The data owner's key.
    pub owner: SigningKey,
    /// The owner's secret key file.
    pub owner_key: PathBuf,
    /// The log's verifier key file.
    pub vkey: PathBuf,
    /// The owner's party id.
    pub owner_id: String,
    /// The running server, if any.
    pub child: Option<Child>,
    /// gRPC URL of the running server.
    pub grpc: String,
    /// HTTP URL of the running server.
    pub http: String,
    /// Environment variables the server is started with.
    pub env: Vec<(String, String)>,
}

impl Log {
    /// `init` runs `custody keygen` and `custodyd init` in a new temp dir.
    pub fn init() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = dir.path().join("owner");
        let out = custody(&["keygen", "--out", prefix.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let data = dir.path().join("data");
        let out = Command::new(bin("custodyd"))
            .args(["init", "--data", data.to_str().unwrap(), "--origin", ORIGIN])
            .args([
                "--owner-key",
                prefix.with_extension("pub").to_str().unwrap(),
            ])
            .output()
            .expect("custodyd init");
        assert!(
            out.status.success(),
            "init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vkey_printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let vkey = data.join("log.vkey");
        assert_eq!(std::fs::read_to_string(&vkey).unwrap().trim(), vkey_printed);
        let owner_key = prefix.with_extension("key");
        let text = std::fs::read_to_string(&owner_key).unwrap();
        let owner = custody_domain::keyfile::parse_secret(&text).unwrap();
        Self {
            dir,
            data,
            owner,
            owner_key,
            vkey,
            owner_id: "data-owner".into(),
            child: None,
            grpc: String::new(),
            http: String::new(),
            env: Vec::new(),
        }
    }

    /// `start` starts `custodyd serve` and waits until it answers.
    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// `start_with` starts the server with extra flags, on ports the
    /// system picks (it prints where it listens).
    pub fn start_with(&mut self, extra: &[&str]) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let out_path = self.dir.path().join("server.out");
        let out = std::fs::File::create(&out_path).unwrap();
        let child = Command::new(bin("custodyd"))
            .args(["serve", "--data", self.data.to_str().unwrap()])
            .args(["--grpc-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(if extra.contains(&"--checkpoint-interval-ms") {
                &[][..]
            } else {
                &["--checkpoint-interval-ms", "50"][..]
            })
            .args(extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("spawn custodyd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((g, h)) = listening(&std::fs::read_to_string(&out_path).unwrap_or_default())
            {
                self.grpc = format!("http://{g}");
                self.http = format!("http://{h}");
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("custodyd exited with {status}: {}", self.server_log());
            }
            assert!(
                Instant::now() < deadline,
                "custodyd did not start: {}",
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `server_log` is what the server wrote to stderr.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `kill` sends SIGKILL and reaps the server.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `client` connects a gRPC client.
    pub async fn client(&self) -> CustodyLogClient<Channel> {
        CustodyLogClient::connect(self.grpc.clone())
            .await
            .expect("connect gRPC")
    }

    /// `path` is a path inside the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `now` is the wall clock in Unix nanoseconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// `ORIGIN` is the origin of every log [`Log::init`] makes.
pub const ORIGIN: &str = "e2e.test/custody";

/// `event` builds an event for a log of [`ORIGIN`] with a fresh id.
pub fn event(reporter: &str, body: v1::event::Body) -> v1::Event {
    v1::Event {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_time_unix_nanos: now(),
        reporter: reporter.to_owned(),
        reporter_seq: 1,
        log_origin: ORIGIN.to_owned(),
        body: Some(body),
    }
}

/// `capture` is a CAPTURE event body for a random asset, into the system
/// [`register`] gave `actor`.
pub fn capture(actor: &str) -> v1::event::Body {
    v1::event::Body::Custody(v1::CustodyAction {
        action: v1::CustodyActionKind::Capture as i32,
        actor: actor.to_owned(),
        asset_digest: uuid::Uuid::new_v4().as_bytes().repeat(2),
        to_system: system_of(actor),
        modality: v1::Modality::FaceImage as i32,
        subject_class: v1::SubjectClass::Citizen as i32,
        ..Default::default()
    })
}

/// `system_of` is the system [`register`] registers for `party`.
pub fn system_of(party: &str) -> String {
    format!("{party}-sys")
}

/// `system_registered` is a SYSTEM_REGISTERED body.
pub fn system_registered(
    system: &str,
    owner: &str,
    inside: bool,
    removable: bool,
) -> v1::event::Body {
    v1::event::Body::SystemRegistered(v1::SystemRegistered {
        system_id: system.to_owned(),
        owner_party: owner.to_owned(),
        inside_boundary: inside,
        accredited: inside,
        encrypted_at_rest: inside,
        removable_media: removable,
    })
}

/// `signed` signs an event with `keys`.
pub fn signed(e: &v1::Event, keys: &[&SigningKey]) -> v1::SignedEvent {
    envelope_to_proto(&SignedEnvelope::sign(e.encode_to_vec(), keys))
}

/// `append` submits one event, waiting for a checkpoint.
pub async fn append(
    c: &mut CustodyLogClient<Channel>,
    e: &v1::Event,
    keys: &[&SigningKey],
) -> Result<v1::AppendResponse, tonic::Status> {
    c.append(v1::AppendRequest {
        event: Some(signed(e, keys)),
        wait_for_checkpoint: true,
    })
    .await
    .map(|r| r.into_inner())
}

/// `stream_requests` sends `reqs` over one AppendStream and returns the
/// answers, one per request, in order.
pub async fn stream_requests(
    c: &mut CustodyLogClient<Channel>,
    reqs: Vec<v1::AppendRequest>,
) -> Vec<v1::AppendResponse> {
    let n = reqs.len();
    let got = stream_answers(c, reqs).await;
    assert_eq!(got.len(), n, "one answer per request");
    got
}

/// `stream_answers` sends `reqs` over one AppendStream and returns the
/// answers it got before the stream ended (fewer than `reqs` when the
/// server ends it early, as it does for a client turned away).
pub async fn stream_answers(
    c: &mut CustodyLogClient<Channel>,
    reqs: Vec<v1::AppendRequest>,
) -> Vec<v1::AppendResponse> {
    let mut out = c
        .append_stream(tokio_stream::iter(reqs))
        .await
        .expect("open stream")
        .into_inner();
    let mut got = Vec::new();
    while let Some(r) = out.message().await.expect("stream") {
        got.push(r);
    }
    got
}

/// `register` registers `party` (acting for the owner) with a new key
/// valid over `[from, to)` (`to` 0: open-ended), and a system
/// [`system_of`] it owns, and returns the key.
pub async fn register(
    log: &Log,
    c: &mut CustodyLogClient<Channel>,
    party: &str,
    from: i64,
    to: i64,
) -> SigningKey {
    let reg = event(&log.owner_id, party_registered(party, &log.owner_id));
    append(c, &reg, &[&log.owner])
        .await
        .expect("register party");
    let sys = event(
        &log.owner_id,
        system_registered(&system_of(party), party, true, false),
    );
    append(c, &sys, &[&log.owner])
        .await
        .expect("register system");
    add_key(log, c, party, from, to).await
}

/// `policy_published` is a POLICY_PUBLISHED body with these windows, in
/// seconds: receipt window, reporting deadline, attestation period.
pub fn policy_published(receipt: i64, deadline: i64, attest: i64) -> v1::event::Body {
    const S: i64 = 1_000_000_000;
    v1::event::Body::PolicyPublished(v1::PolicyPublished {
        receipt_window_nanos: receipt * S,
        reporting_deadline_nanos: deadline * S,
        attestation_period_nanos: attest * S,
    })
}

/// `publish_policy` logs a POLICY_PUBLISHED with these windows (seconds),
/// signed by the data owner, and returns its index: the time-based
/// findings of the entries after it use them.
pub async fn publish_policy(
    log: &Log,
    c: &mut CustodyLogClient<Channel>,
    receipt: i64,
    deadline: i64,
    attest: i64,
) -> u64 {
    let e = event(&log.owner_id, policy_published(receipt, deadline, attest));
    append(c, &e, &[&log.owner])
        .await
        .expect("publish the policy")
        .index
}

/// `put_manifest` uploads `members` as one manifest, through the client
/// library, and returns its reference.
pub async fn put_manifest(c: &mut CustodyLogClient<Channel>, members: &[[u8; 32]]) -> v1::Manifest {
    custody_client::put_manifest(c, members.to_vec())
        .await
        .expect("PutManifest")
}

/// `add_key` adds a new key for `party`.
pub async fn add_key(
    log: &Log,
    c: &mut CustodyLogClient<Channel>,
    party: &str,
    from: i64,
    to: i64,
) -> SigningKey {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let add = event(&log.owner_id, key_added(party, &key, from, to));
    append(c, &add, &[&log.owner]).await.expect("add key");
    key
}

/// `stream_captures` streams `n` CAPTURE events from `party` through the
/// client library and waits for every answer, asserting none was refused.
pub async fn stream_captures(
    c: &mut CustodyLogClient<Channel>,
    party: &str,
    key: &SigningKey,
    n: usize,
) {
    let events = (0..n)
        .map(|_| signed(&event(party, capture(party)), &[key]))
        .collect();
    custody_client::append_indexes(c, events)
        .await
        .expect("every capture logged");
}

/// `party_registered` is a PARTY_REGISTERED body: a device acting for `owner`.
/// `token` runs `custodyd access add` for `party` in `role` and returns
/// the token it prints (once).
pub fn token(log: &Log, party: &str, role: &str) -> String {
    let out = Command::new(bin("custodyd"))
        .args(["access", "add", "--data", log.data.to_str().unwrap()])
        .args(["--party", party, "--role", role, "--label", "e2e"])
        .output()
        .expect("custodyd access add");
    assert!(
        out.status.success(),
        "access add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(t.starts_with("clt_") && t.len() > 60, "{t}");
    t
}

/// `authed` is `msg` carrying `Bearer token`, when there is one.
pub fn authed<T>(msg: T, token: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

/// `capture_line` is one JSON line for `custody agent` (the form
/// `custody append` takes): a CAPTURE by `party` onto its store of an
/// asset whose digest starts with `n`.
pub fn capture_line(party: &str, n: u64) -> String {
    let mut digest = random_digest();
    digest[..8].copy_from_slice(&n.to_be_bytes());
    serde_json::json!({
        "reporter": party,
        "custody": {
            "action": "CAPTURE",
            "actor": party,
            "asset_digest": hex::encode(digest),
            "to_system": format!("{party}-store"),
            "modality": "FACE_IMAGE",
            "subject_class": "UNKNOWN",
            "purpose": "BORDER_INSPECTION",
        }
    })
    .to_string()
}

/// `setup_reporter` registers a fresh reporter party with the data
/// owner's key through `custody report-captures --setup`, which keeps its
/// identity and key (`reporter.key`) in `dir`, and returns its id.
pub fn setup_reporter(log: &Log, server: &str, dir: &Path) -> String {
    let out = custody(&[
        "report-captures",
        "--setup",
        "--server",
        server,
        "--owner-key",
        log.owner_key.to_str().unwrap(),
        "--spool",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `random_digest` is a random asset digest.
pub fn random_digest() -> [u8; 32] {
    let mut d = [0u8; 32];
    d[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    d[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    d
}

/// `org` registers an organisation (or agent) `id` of `kind` acting for
/// `principal` (empty for none).
pub fn org(id: &str, kind: v1::PartyKind, principal: &str) -> v1::event::Body {
    v1::event::Body::PartyRegistered(v1::PartyRegistered {
        party_id: id.into(),
        kind: kind as i32,
        acts_on_behalf_of: principal.into(),
    })
}

pub fn party_registered(party: &str, owner: &str) -> v1::event::Body {
    v1::event::Body::PartyRegistered(v1::PartyRegistered {
        party_id: party.into(),
        kind: v1::PartyKind::Device as i32,
        acts_on_behalf_of: owner.into(),
    })
}

/// `key_added` is a KEY_ADDED body for `key`, valid over `[from, to)`.
pub fn key_added(party: &str, key: &SigningKey, from: i64, to: i64) -> v1::event::Body {
    v1::event::Body::KeyAdded(v1::KeyAdded {
        party_id: party.into(),
        public_key: key.verifying_key().to_bytes().to_vec(),
        valid_from_unix_nanos: from,
        valid_to_unix_nanos: to,
    })
}

/// `Demo` is a running `custody-demo` that has finished seeding.
pub struct Demo {
    /// Keeps the temp directory alive.
    pub dir: tempfile::TempDir,
    /// The data directory.
    pub data: PathBuf,
    /// The server.
    pub child: Child,
    /// gRPC URL.
    pub grpc: String,
    /// HTTP URL.
    pub http: String,
    /// The generator's ground truth, parsed.
    pub truth: serde_json::Value,
    /// What the demo printed on stdout.
    pub stdout: PathBuf,
    /// The demo's local CA, when it serves TLS.
    pub ca: Option<PathBuf>,
}

impl Demo {
    /// `start` runs `custodyd demo --plaintext --seed SEED --ground-truth
    /// FILE` on a new directory and waits until it has seeded (up to 5
    /// minutes).
    pub fn start(seed: u64) -> Self {
        Self::start_as(seed, false)
    }

    /// `start_tls` is [`Demo::start`] as `deploy/demo.sh` runs it: over
    /// TLS, with the demo's own local CA.
    pub fn start_tls(seed: u64) -> Self {
        Self::start_as(seed, true)
    }

    fn start_as(seed: u64, tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let truth_file = dir.path().join("truth.json");
        let stdout = dir.path().join("demo.out");
        let child = Command::new(bin("custody-demo"))
            .args(["--data", data.to_str().unwrap()])
            .args(["--grpc-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(["--seed", &seed.to_string()])
            .args(["--ground-truth", truth_file.to_str().unwrap()])
            .args(if tls { &[][..] } else { &["--plaintext"][..] })
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(dir.path().join("demo.err")).unwrap())
            .spawn()
            .expect("spawn custody-demo");
        let scheme = if tls { "https" } else { "http" };
        let mut demo = Self {
            dir,
            child,
            grpc: String::new(),
            http: String::new(),
            truth: serde_json::Value::Null,
            ca: tls.then(|| data.join("tls").join("ca.pem")),
            data,
            stdout,
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        // Where it listens comes first; the summary is printed last, after
        // the ground truth is written.
        loop {
            let out = std::fs::read_to_string(&demo.stdout).unwrap_or_default();
            if let (true, Some((g, h))) = (demo.grpc.is_empty(), listening(&out)) {
                demo.grpc = format!("{scheme}://{g}");
                demo.http = format!("{scheme}://{h}");
            }
            if out.contains("Inspect further") {
                break;
            }
            if let Ok(Some(status)) = demo.child.try_wait() {
                panic!("custody-demo exited with {status}: {}", demo.log());
            }
            assert!(
                Instant::now() < deadline,
                "demo did not finish seeding: {}",
                demo.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let text = std::fs::read_to_string(&truth_file).expect("ground truth written");
        demo.truth = serde_json::from_str(&text).expect("ground truth is JSON");
        demo
    }

    /// `log` is what the demo wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("demo.err")).unwrap_or_default()
    }

    /// `vkey` is the path of the log's verifier key.
    pub fn vkey(&self) -> PathBuf {
        self.data.join("log.vkey")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `inspect_json` runs `custody inspect ARGS --json` and parses its output.
///
/// # Panics
///
/// If the command fails or prints no JSON.
pub fn inspect_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = custody(&all);
    assert!(
        out.status.success(),
        "custody {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect printed JSON")
}

/// `audit_json` runs `custody audit ARGS --json` and returns its exit
/// code, the JSON it printed and its stderr.
///
/// # Panics
///
/// If the audit printed no JSON.
pub fn audit_json(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = custody(&all);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("audit printed no JSON ({e}): {err}"));
    (out.status.code(), json, err)
}

/// `audit_agrees` runs `custody audit --server --compare all` over the
/// whole of `log` (it replays every event, bulk events whole) and asserts
/// that it agrees with the server; it returns the audit's report.
///
/// # Panics
///
/// When the audit disagrees or fails.
pub fn audit_agrees(log: &Log) -> serde_json::Value {
    let vkey = log.vkey.to_str().unwrap().to_owned();
    let (code, j, err) = audit_json(&[
        "--url",
        &log.http,
        "--log-key",
        &vkey,
        "--server",
        &log.grpc,
        "--compare",
        "all",
    ]);
    assert_eq!(code, Some(0), "the audit disagrees: {err}\n{j:#}");
    j
}

/// `audit_text` runs `custody audit ARGS` and returns its output.
pub fn audit_text(args: &[&str]) -> Output {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    custody(&all)
}

/// `alert_lines` is the lines of stdout that start with `ALERT:`.
pub fn alert_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("ALERT:"))
        .map(str::to_owned)
        .collect()
}

/// `copy_dir` replaces `to` with a copy of `from`.
///
/// # Panics
///
/// If the copy fails.
pub fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(ok.success(), "cp -a {} {}", from.display(), to.display());
}

/// `wait_for_size` waits until the tile API at `http` serves a checkpoint
/// of at least `size` entries.
///
/// # Panics
///
/// After 30 s without one.
pub async fn wait_for_size(http: &str, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if checkpoint_size(http).await >= size {
            return;
        }
        assert!(Instant::now() < deadline, "no checkpoint of size {size}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `checkpoint_size` is the size of the log's latest checkpoint, read from
/// `GET /checkpoint` at `http`, or 0 when there is no answer.
pub async fn checkpoint_size(http: &str) -> u64 {
    let note = match reqwest::get(format!("{http}/checkpoint")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

/// `wal_bytes` is the size of the RocksDB write-ahead log files in `dir`:
/// it grows as an audit commits its replay there.
pub fn wal_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// `kill_audit_mid_replay` runs `custody audit ARGS` with its state in
/// `state`, and SIGKILLs it once its write-ahead log has grown by `grown`
/// bytes and then stopped growing: between two of its batch commits, each
/// one write, so the killed run leaves whole batches behind.
///
/// # Panics
///
/// If the audit ends first, or writes nothing for a minute.
pub fn kill_audit_mid_replay(args: &[String], state: &Path, grown: u64) {
    let before = wal_bytes(state);
    let mut child = Command::new(bin("custody"))
        .arg("audit")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run custody audit");
    let deadline = Instant::now() + Duration::from_secs(60);
    while wal_bytes(state) < before + grown {
        assert!(
            child.try_wait().expect("audit status").is_none(),
            "the audit ended before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "the audit wrote nothing");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut last = wal_bytes(state);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = wal_bytes(state);
        if now == last {
            break;
        }
        last = now;
    }
    child.kill().expect("kill the audit");
    let _ = child.wait();
}
