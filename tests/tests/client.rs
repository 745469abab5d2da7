//! The client library (`crates/custody-client`) under crashes: a reporter
//! going through its spool loses no event and logs none twice while it
//! and the server are killed with SIGKILL at random points, and events
//! spooled while the server is unreachable drain when it returns.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use custody_e2e::*;
use custody_proto::v1;
use prost::Message as _;
use rand::Rng as _;

/// `reporter` starts `custody report-captures` towards `events`.
fn reporter(server: &str, spool: &Path, events: u64) -> Child {
    Command::new(bin("custody"))
        .args(["report-captures", "--server", server])
        .args(["--spool", spool.to_str().unwrap()])
        .args(["--events", &events.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn custody report-captures")
}

/// `finish` waits for a reporter and returns its JSON report.
fn finish(child: Child, within: Duration) -> serde_json::Value {
    let start = Instant::now();
    let mut child = child;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > within {
            let _ = child.kill();
            panic!("the reporter did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reporter failed: {:?}", out.status);
    serde_json::from_slice(&out.stdout).expect("the reporter's JSON")
}

/// `events_of` reads the log, once a checkpoint covers the entry at
/// `last` (an acknowledged entry is durable before any checkpoint covers
/// it), and returns `party`'s events: sequence number to index, and the
/// sequence numbers in log order, failing on any number or id twice.
async fn events_of(log: &Log, party: &str, last: u64) -> (BTreeMap<u64, u64>, Vec<u64>) {
    wait_for_size(&log.http, last + 1).await;
    let mut c = log.client().await;
    let size = checkpoint_size(&log.http).await;
    let mut by_seq = BTreeMap::new();
    let mut in_order = Vec::new();
    let mut ids = std::collections::HashSet::new();
    let mut start = 0;
    while start < size {
        let end = (start + 1000).min(size);
        let entries = c
            .get_entries(v1::GetEntriesRequest { start, end })
            .await
            .unwrap()
            .into_inner()
            .entries;
        for (k, bytes) in entries.iter().enumerate() {
            let i = start + k as u64;
            let e = v1::LogEntry::decode(bytes.as_slice()).unwrap();
            let Some(v1::log_entry::Content::Event(signed)) = e.content else {
                continue;
            };
            let ev = v1::Event::decode(&signed.body[..]).unwrap();
            if ev.reporter != party {
                continue;
            }
            assert!(
                ids.insert(ev.event_id.clone()),
                "event id {} logged twice",
                ev.event_id
            );
            if let Some(first) = by_seq.insert(ev.reporter_seq, i) {
                panic!(
                    "sequence number {} logged twice, at {first} and {i}",
                    ev.reporter_seq
                );
            }
            in_order.push(ev.reporter_seq);
        }
        start = end;
    }
    (by_seq, in_order)
}

/// The issue's chaos test: 100,000 events, the reporter and the server
/// each killed with SIGKILL at random points, twelve times in all.
#[tokio::test(flavor = "multi_thread")]
async fn every_event_is_logged_once_in_order_through_kills() {
    const EVENTS: u64 = 100_000;
    const KILLS: usize = 12;
    let mut log = Log::init();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    log.start_with(&["--grpc-addr", &addr]);
    let server = log.grpc.clone();
    let spool = log.path("reporter");
    let party = setup_reporter(&log, &server, &spool);

    let mut rng = rand::thread_rng();
    let mut child = reporter(&server, &spool, EVENTS);
    let (mut client_kills, mut server_kills) = (0, 0);
    for k in 0..KILLS {
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..1500)));
        // Alternate, then at random: each is killed at least KILLS/4 times.
        let which = if k < 4 { k % 2 } else { rng.gen_range(0..3) };
        if which != 1 {
            let _ = child.kill();
            let _ = child.wait();
            client_kills += 1;
        }
        if which != 0 {
            log.kill();
            server_kills += 1;
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..500)));
            log.start_with(&["--grpc-addr", &addr]);
        }
        if which != 1 {
            child = reporter(&server, &spool, EVENTS);
        }
    }
    let report = finish(child, Duration::from_secs(600));
    assert_eq!(report["pending"], 0, "{report}");

    let acks = custody_client::Spool::read_acks(&spool.join("spool")).unwrap();
    let last = acks.iter().map(|a| a.index).max().expect("answers");
    let (by_seq, in_order) = events_of(&log, &party, last).await;
    // Exactly once, no gap: 1..=EVENTS, each once (events_of fails on a
    // number logged twice).
    assert_eq!(by_seq.len() as u64, EVENTS, "events logged");
    assert_eq!(by_seq.keys().next(), Some(&1));
    assert_eq!(by_seq.keys().last(), Some(&EVENTS));
    // In order: the log holds them by increasing sequence number.
    assert!(
        in_order.windows(2).all(|w| w[0] < w[1]),
        "the reporter's events are out of order in the log"
    );
    // The spool is empty, and its record of where each event was logged
    // agrees with the log.
    assert_eq!(
        std::fs::metadata(spool.join("spool/events")).unwrap().len(),
        0
    );
    let mut recorded = BTreeMap::new();
    for a in &acks {
        assert!(
            !matches!(a.outcome, custody_client::Outcome::Refused { .. }),
            "refused: {a:?}"
        );
        assert!(
            recorded.insert(a.seq, a.index).is_none(),
            "two answers for {}",
            a.seq
        );
    }
    assert_eq!(recorded, by_seq, "the spool's indexes are the log's");
    let duplicates = acks
        .iter()
        .filter(|a| a.outcome == custody_client::Outcome::Duplicate)
        .count();
    eprintln!(
        "chaos: {EVENTS} events, {client_kills} reporter kills, {server_kills} server kills, {duplicates} answered as duplicates"
    );
    assert!(client_kills >= 3 && server_kills >= 3);
}

/// Offline: with the server down, events spool; when it comes back they
/// drain, and the log's integration times (and late-reporting findings)
/// show the delay.
#[tokio::test(flavor = "multi_thread")]
async fn events_spooled_offline_drain_when_the_server_returns() {
    let mut log = Log::init();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    log.start_with(&["--grpc-addr", &addr]);
    let server = log.grpc.clone();
    let spool = log.path("reporter");
    let party = setup_reporter(&log, &server, &spool);
    // Events must be logged within 1 s of happening.
    let mut c = log.client().await;
    publish_policy(&log, &mut c, 3600, 1, 86_400).await;
    log.kill();

    // The port is closed: the reporter spools its 200 events and keeps
    // trying.
    let child = reporter(&server, &spool, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(spool.join("spool/events")).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < deadline, "nothing was spooled");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    log.start_with(&["--grpc-addr", &addr]);
    let report = finish(child, Duration::from_secs(120));
    assert_eq!(report["pending"], 0, "{report}");
    assert_eq!(report["appended"], 200, "{report}");
    let acks = custody_client::Spool::read_acks(&spool.join("spool")).unwrap();
    let last = acks.iter().map(|a| a.index).max().expect("answers");
    let (by_seq, _) = events_of(&log, &party, last).await;
    assert_eq!(by_seq.len(), 200);

    // The delay shows: each event's integration time is at least 3 s
    // after its event time.
    let mut c = log.client().await;
    let first = *by_seq.values().next().unwrap();
    let e = c
        .get_entries(v1::GetEntriesRequest {
            start: first,
            end: first + 1,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let entry = v1::LogEntry::decode(e[0].as_slice()).unwrap();
    let Some(v1::log_entry::Content::Event(signed)) = entry.content.clone() else {
        panic!("not an event")
    };
    let ev = v1::Event::decode(&signed.body[..]).unwrap();
    let delay = entry.integrated_time_unix_nanos - ev.event_time_unix_nanos;
    assert!(delay >= 3_000_000_000, "integration delay {delay} ns");

    // And the findings say so: each of the 200 was reported late.
    let mut q =
        custody_proto::v1::custody_query_client::CustodyQueryClient::connect(log.grpc.clone())
            .await
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let late = loop {
        let r = q
            .findings(v1::FindingsRequest {
                rule: "late_reporting".into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("findings")
            .into_inner();
        let ours: Vec<_> = r
            .findings
            .into_iter()
            .filter(|f| by_seq.values().any(|i| f.entries.first() == Some(i)))
            .collect();
        if ours.len() == 200 || Instant::now() > deadline {
            break ours;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        late.len(),
        200,
        "late_reporting findings for the spooled events"
    );
}

/// `agent` starts `custody agent run` on `spool`, with a socket, a
/// watched directory and receipts.
fn agent(log: &Log, server: &str, spool: &Path, key: &Path, party: Option<&str>) -> Child {
    let mut c = Command::new(bin("custody"));
    c.args(["agent", "run", "--server", server])
        .args(["--spool", spool.to_str().unwrap()])
        .args(["--key", key.to_str().unwrap()])
        .args(["--socket", spool.join("agent.sock").to_str().unwrap()])
        .args(["--watch", spool.join("inbox").to_str().unwrap()])
        .args(["--receipts-log-key", log.vkey.to_str().unwrap()]);
    if let Some(p) = party {
        c.args(["--party", p]);
    }
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn custody agent run")
}

/// `ask` writes `lines` to the agent's socket (waiting for it to listen)
/// and returns one answer per line.
fn ask(socket: &Path, lines: &[String]) -> Vec<serde_json::Value> {
    use std::io::{BufRead as _, Write as _};
    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        match std::os::unix::net::UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "the agent's socket: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let mut w = stream.try_clone().unwrap();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    w.write_all(text.as_bytes()).unwrap();
    let mut r = std::io::BufReader::new(stream);
    (0..lines.len())
        .map(|_| {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("answer {line:?}: {e}"))
        })
        .collect()
}

fn status(socket: &Path) -> serde_json::Value {
    ask(socket, &[r#"{"op":"status"}"#.to_owned()])
        .remove(0)
        .get("status")
        .cloned()
        .expect("a status answer")
}

/// `custody agent`: events taken on its socket and from its watched
/// directory are spooled before they are answered (or the file removed),
/// survive the server's absence and the agent's SIGKILL, are logged once
/// each, in order, and each gets a receipt that `custody verify` checks.
#[tokio::test(flavor = "multi_thread")]
async fn the_agent_reports_what_it_takes_once_with_receipts() {
    let mut log = Log::init();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    log.start_with(&["--grpc-addr", &addr]);
    let server = log.grpc.clone();
    // A party and its key (report-captures' set-up writes both).
    let id = log.path("identity");
    let party = setup_reporter(&log, &server, &id);
    let key = id.join("reporter.key");
    let spool = log.path("agent");
    let socket = spool.join("agent.sock");
    let inbox = spool.join("inbox");
    let mut child = agent(&log, &server, &spool, &key, Some(&party));

    // 300 on the socket, answered with their sequence numbers, and lines
    // the agent refuses, which take no number.
    let mut lines: Vec<String> = (1..=300).map(|n| capture_line(&party, n)).collect();
    lines.insert(10, capture_line("someone-else", 0));
    lines.insert(20, "{not json".to_owned());
    let answers = ask(&socket, &lines);
    let seqs: Vec<u64> = answers.iter().filter_map(|a| a["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>(), "{answers:?}");
    assert!(
        answers[10]["error"]
            .as_str()
            .unwrap()
            .contains("not this agent's party"),
        "{}",
        answers[10]
    );
    assert!(answers[20]["error"].is_string(), "{}", answers[20]);

    // The server goes away: what the agent takes now waits in its spool.
    log.kill();
    let lines: Vec<String> = (301..=400).map(|n| capture_line(&party, n)).collect();
    let answers = ask(&socket, &lines);
    assert_eq!(answers.last().unwrap()["seq"], 400, "{answers:?}");
    let s = status(&socket);
    assert!(s["depth"].as_u64().unwrap() >= 100, "{s}");
    assert!(s["oldest_unsent"]["seq"].as_u64().unwrap() <= 301, "{s}");
    // A watched file, written aside and renamed into place; and a file
    // with a bad line, of which nothing is taken.
    let file: String = (401..=600)
        .map(|n| capture_line(&party, n) + "\n")
        .collect();
    std::fs::write(inbox.join(".b.tmp"), &file).unwrap();
    std::fs::rename(inbox.join(".b.tmp"), inbox.join("b.jsonl")).unwrap();
    let bad = format!("{}\n{}\n", capture_line(&party, 0), r#"{"reporter":"x"}"#);
    std::fs::write(inbox.join("a.jsonl"), bad).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while inbox.join("b.jsonl").exists() || inbox.join("a.jsonl").exists() {
        assert!(
            Instant::now() < deadline,
            "the watched files were not taken"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(inbox.join("rejected/a.jsonl").exists());
    let why = std::fs::read_to_string(inbox.join("rejected/a.jsonl.error")).unwrap();
    assert!(why.starts_with("line 2:"), "{why}");
    assert_eq!(status(&socket)["next_seq"], 601);

    // The agent dies without warning; the server comes back; a new agent
    // (no --party: the spool knows it) sends what waits.
    let _ = child.kill();
    let _ = child.wait();
    log.start_with(&["--grpc-addr", &addr]);
    let mut child = agent(&log, &server, &spool, &key, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = status(&socket);
        if s["depth"] == 0 {
            break s;
        }
        assert!(Instant::now() < deadline, "the spool did not drain: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(s["last_ack"]["seq"], 600, "{s}");
    assert_eq!(s["refused"], 0, "{s}");

    let last = s["last_ack"]["index"].as_u64().expect("an index");
    let (by_seq, in_order) = events_of(&log, &party, last).await;
    assert_eq!(by_seq.len(), 600);
    assert_eq!(by_seq.keys().last(), Some(&600));
    assert!(in_order.windows(2).all(|w| w[0] < w[1]), "out of order");
    assert_eq!(s["last_ack"]["index"].as_u64(), by_seq.get(&600).copied());

    // Receipts: one per event, each one `custody verify` checks.
    let receipts = spool.join("receipts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&receipts).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count()
    }) < 600
    {
        assert!(Instant::now() < deadline, "receipts were not all kept");
        std::thread::sleep(Duration::from_millis(200));
    }
    let receipt = custody_client::receipt_path(&spool, 401);
    let out = custody(&[
        "verify",
        receipt.to_str().unwrap(),
        "--log-key",
        log.vkey.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!("inclusion verified: entry {}", by_seq[&401])),
        "{said}"
    );
    // A receipt moved to another entry does not verify.
    let mut j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    j["index"] = serde_json::json!(by_seq[&402]);
    let moved = log.path("moved.json");
    std::fs::write(&moved, j.to_string()).unwrap();
    let out = custody(&[
        "verify",
        moved.to_str().unwrap(),
        "--log-key",
        log.vkey.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "a moved receipt verified");

    // Stopped, the agent's spool still answers for status.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the agent did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = custody(&["agent", "status", "--spool", spool.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["depth"], 0, "{s}");
    assert_eq!(s["next_seq"], 601, "{s}");
    assert_eq!(s["party"], party.as_str());
}
