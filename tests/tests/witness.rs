//! Witnessed checkpoints (C2SP tlog-witness and tlog-cosignature), end to
//! end: two `custody witness serve` witnesses, a `custodyd` that publishes
//! a checkpoint only once they cosign it, the CLI's witness policy
//! (`--witness-key`, `--witness-threshold`), and a staged split view: a
//! second server with the same key and origin but another history, which
//! the witnesses refuse, and which `custody monitor` then reports with
//! `ALERT:`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use custody_e2e::*;
use custody_proto::v1;

/// `Witness` is a running `custody witness serve`.
struct Witness {
    child: Child,
    url: String,
    vkey: PathBuf,
    key: PathBuf,
    state: PathBuf,
    log_key: PathBuf,
    port: u16,
}

impl Witness {
    fn new(dir: &Path, name: &str, log_key: &Path) -> Self {
        let prefix = dir.join(name);
        let out = custody(&[
            "witness",
            "keygen",
            "--name",
            name,
            "--out",
            prefix.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut w = Self {
            child: Command::new("true").spawn().unwrap(),
            url: format!("http://127.0.0.1:{port}"),
            vkey: prefix.with_extension("vkey"),
            key: prefix.with_extension("key"),
            state: dir.join(format!("{name}.state")),
            log_key: log_key.to_owned(),
            port,
        };
        w.start();
        w
    }

    fn start(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Command::new(bin("custody"))
            .args(["witness", "serve", "--key", self.key.to_str().unwrap()])
            .args(["--state", self.state.to_str().unwrap()])
            .args(["--log-key", self.log_key.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .stderr(Stdio::null())
            .spawn()
            .expect("custody witness serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "witness did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `flag` is this witness as `custodyd serve --witness` takes it.
    fn flag(&self) -> String {
        format!(
            "{} {}",
            self.url,
            std::fs::read_to_string(&self.vkey).unwrap().trim()
        )
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn monitor(
    log: &Log,
    state: &Path,
    witnesses: &[&Witness],
    threshold: Option<usize>,
) -> std::process::Output {
    let mut args = vec![
        "monitor".to_owned(),
        "--url".into(),
        log.http.clone(),
        "--log-key".into(),
        log.vkey.to_str().unwrap().into(),
        "--state".into(),
        state.to_str().unwrap().into(),
        "--once".into(),
    ];
    for w in witnesses {
        args.push("--witness-key".into());
        args.push(w.vkey.to_str().unwrap().into());
    }
    if let Some(t) = threshold {
        args.push("--witness-threshold".into());
        args.push(t.to_string());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    custody(&a)
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_are_published_cosigned_and_a_split_view_is_refused_and_alarmed() {
    let mut a = Log::init();
    // The second server shares the log's key and genesis entry: the same
    // log, as far as a client can tell, about to tell another story.
    let fork = tempfile::tempdir().unwrap();
    let b_data = fork.path().join("data");
    copy_dir(&a.data, &b_data);

    let wdir = a.path("witnesses");
    std::fs::create_dir_all(&wdir).unwrap();
    let mut w1 = Witness::new(&wdir, "w1.example", &a.vkey);
    let w2 = Witness::new(&wdir, "w2.example", &a.vkey);
    let witnessed = |w1: &Witness, w2: &Witness, k: &str| {
        vec![
            "--witness".to_owned(),
            w1.flag(),
            "--witness".to_owned(),
            w2.flag(),
            "--witness-threshold".to_owned(),
            k.to_owned(),
        ]
    };
    let flags = witnessed(&w1, &w2, "2");
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    a.start_with(&f);

    let mut c = a.client().await;
    let cam = register(&a, &mut c, "cam", 0, 0).await;
    stream_captures(&mut c, "cam", &cam, 50).await;
    // Genesis, three registry entries and the captures.
    wait_for_size(&a.http, 54).await;

    // Client 1 follows the log with both witnesses required.
    let state1 = a.path("monitor1.state");
    let out = monitor(&a, &state1, &[&w1, &w2], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("cosigned by 2 of 2 witnesses"),
        "{}",
        text(&out)
    );

    // The checkpoint, checked offline: with both witnesses, and against a
    // policy it cannot meet (a third witness that never saw it).
    let cp = a.path("checkpoint");
    let note = reqwest::get(format!("{}/checkpoint", a.http))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::write(&cp, &note).unwrap();
    let vkey = a.vkey.to_str().unwrap();
    let (v1, v2) = (w1.vkey.to_str().unwrap(), w2.vkey.to_str().unwrap());
    let out = custody(&[
        "verify",
        cp.to_str().unwrap(),
        "--log-key",
        vkey,
        "--witness-key",
        v1,
        "--witness-key",
        v2,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let w3 = Witness::new(&wdir, "w3.example", &a.vkey);
    let v3 = w3.vkey.to_str().unwrap();
    let out = custody(&[
        "verify",
        cp.to_str().unwrap(),
        "--log-key",
        vkey,
        "--witness-key",
        v1,
        "--witness-key",
        v2,
        "--witness-key",
        v3,
        "--witness-threshold",
        "3",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("need 3") && text(&out).contains("w3.example"),
        "{}",
        text(&out)
    );
    // The web view shows the cosignatures.
    let page = reqwest::get(format!("{}/ui/", a.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("w1.example") && page.contains("w2.example"),
        "{page}"
    );

    // A witness restarts (its state is on disk) and the log restarts
    // (it no longer knows what each witness holds): checkpoints are
    // still cosigned by both.
    w1.start();
    a.kill();
    a.start_with(&f);
    let mut c = a.client().await;
    stream_captures(&mut c, "cam", &cam, 20).await;
    wait_for_size(&a.http, 74).await;
    let out = monitor(&a, &state1, &[&w1, &w2], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("consistent: size 74 extends size 54"),
        "{}",
        text(&out)
    );

    // The fork: same key, same origin, another history of the same
    // length. It asks the same witnesses, who refuse it, so it never
    // publishes it.
    let mut b = Log {
        dir: fork,
        data: b_data,
        owner: a.owner.clone(),
        owner_key: a.owner_key.clone(),
        vkey: a.vkey.clone(),
        owner_id: a.owner_id.clone(),
        child: None,
        grpc: String::new(),
        http: String::new(),
        env: Vec::new(),
    };
    let flags1 = witnessed(&w1, &w2, "1");
    let f1: Vec<&str> = flags1.iter().map(String::as_str).collect();
    b.start_with(&f1);
    let mut cb = b.client().await;
    // Its appends are acknowledged once durable; waiting for a
    // checkpoint would wait for ever, since none is published.
    let other = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let registry = [
        event(&b.owner_id, party_registered("cam", &b.owner_id)),
        event(
            &b.owner_id,
            system_registered(&system_of("cam"), "cam", true, false),
        ),
        event(&b.owner_id, key_added("cam", &other, 0, 0)),
    ];
    let reqs = registry
        .iter()
        .map(|e| v1::AppendRequest {
            event: Some(signed(e, &[&b.owner])),
            wait_for_checkpoint: false,
        })
        .collect();
    for r in stream_requests(&mut cb, reqs).await {
        assert_eq!(r.error_code, 0, "{}", r.error_message);
    }
    stream_captures(&mut cb, "cam", &other, 70).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        checkpoint_size(&b.http).await,
        1,
        "the fork published a checkpoint its witnesses refused: {}",
        b.server_log()
    );
    let log = b.server_log();
    assert!(
        log.contains("cosigned by 0 of 2 witnesses, need 1"),
        "{log}"
    );

    // Its operator drops the witnesses and serves the fork anyway.
    b.kill();
    b.start();
    wait_for_size(&b.http, 74).await;
    let out = monitor(&b, &state1, &[&w1, &w2], Some(1));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("ALERT:") && t.contains("witnesses did not cosign"),
        "{t}"
    );
    // A new client, with no state of its own, is not fooled either.
    let fresh = b.path("fresh.state");
    let out = monitor(&b, &fresh, &[&w1, &w2], Some(1));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // And the honest log goes on, cosigned.
    let out = monitor(&a, &state1, &[&w1, &w2], None);
    assert!(out.status.success(), "{}", text(&out));
}
