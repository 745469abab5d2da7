//! `custody audit` end to end: a clean replay of the demo agrees with the
//! server and with the generator's ground truth; a resumed audit reads only
//! the entries logged since and alarms on another log's state, a rollback
//! and a fork; an audit killed mid-replay resumes where it stopped; and an
//! entry rewritten in the server's database is caught as a mismatch with
//! the signed tree, by index.

use std::collections::BTreeMap;
use std::path::Path;

use custody_e2e::*;
use custody_proto::v1;
use prost::Message as _;
use serde_json::Value;

#[test]
fn a_clean_audit_of_the_demo_agrees_with_the_server_and_the_ground_truth() {
    // As deploy/demo.sh runs it, over TLS with its own CA.
    let demo = Demo::start_tls(7);
    let as_of = demo.truth["as_of"].as_str().unwrap().to_owned();
    let vkey = demo.vkey();
    let vkey = vkey.to_str().unwrap();
    let ca = demo.ca.clone().expect("the demo serves TLS");
    let (code, j, err) = audit_json(&[
        "--ca",
        ca.to_str().unwrap(),
        "--url",
        &demo.http,
        "--log-key",
        vkey,
        "--server",
        &demo.grpc,
        "--as-of",
        &as_of,
        "--sample",
        "64",
    ]);
    assert_eq!(code, Some(0), "{err}\n{j:#}");
    assert_eq!(j["ok"], true);
    assert_eq!(j["processed"], j["checkpoint"]["size"]);
    assert_eq!(
        j["signatures"]["this_run"].as_u64().unwrap() + 1,
        j["size"].as_u64().unwrap()
    );
    assert!(j["bulk_events"].as_u64().unwrap() > 0, "{j:#}");

    // Its own findings are the generator's ground truth, rule by rule.
    let want: BTreeMap<String, u64> = demo.truth["findings"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    let got: BTreeMap<String, u64> = j["findings"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(got, want);

    // And the server's answers agree with it.
    let c = &j["compare"];
    assert_eq!(c["findings"]["agree"], true, "{c:#}");
    assert_eq!(c["findings"]["theirs"], j["findings"]);
    let systems = c["breach_scope"]["systems"].as_u64().unwrap();
    assert!(systems >= 3, "{c:#}");
    assert_eq!(c["breach_scope"]["agreed"].as_u64(), Some(systems), "{c:#}");
    let asked = c["holders_at"]["compared"].as_u64().unwrap();
    assert!(asked >= 64, "{c:#}");
    assert_eq!(c["holders_at"]["agreed"].as_u64(), Some(asked), "{c:#}");
    assert_eq!(j["differences"], Value::Array(vec![]));

    // The demo prints how to reach it: its commands name the CA, and
    // work as printed.
    let printed = std::fs::read_to_string(&demo.stdout).unwrap();
    assert!(
        printed.contains(&format!("--ca {}", ca.display())),
        "{printed}"
    );
    for prefix in ["custody inspect breach-scope ", "custody monitor "] {
        let line = printed
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in {printed}"));
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        let out = custody_e2e::custody(&words);
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Without --server the tile API alone cannot show a bulk event's
    // members: the custody replay stops at the first one, and says so.
    let out = audit_text(&[
        "--ca",
        ca.to_str().unwrap(),
        "--url",
        &demo.http,
        "--log-key",
        vkey,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tree: every leaf rehashed; the root of size")
            && text.contains("INCOMPLETE: the custody replay stopped at entry")
            && text.contains("cannot be checked without --server"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_audit_reads_only_new_entries_and_alarms_on_rollback_fork_and_another_log() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    stream_captures(&mut c, "cam", &cam, 300).await;
    // Genesis, three registry entries and the captures.
    let first = 304;
    wait_for_size(&log.http, first).await;
    let state = log.path("audit.state");
    let vkey = log.vkey.to_str().unwrap().to_owned();
    let args = |log: &Log, state: &Path| {
        vec![
            "--url".to_owned(),
            log.http.clone(),
            "--log-key".to_owned(),
            vkey.clone(),
            "--server".to_owned(),
            log.grpc.clone(),
            "--state".to_owned(),
            state.to_str().unwrap().to_owned(),
            "--compare".to_owned(),
            "all".to_owned(),
        ]
    };
    let run = |log: &Log, state: &Path| {
        let a = args(log, state);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        audit_json(&a)
    };

    let (code, j, err) = run(&log, &state);
    assert_eq!(code, Some(0), "{err}\n{j:#}");
    assert_eq!(j["resumed_from"], Value::Null);
    assert_eq!(j["processed"].as_u64(), Some(first));
    assert_eq!(
        j["compare"]["holders_at"]["assets"].as_u64(),
        Some(300),
        "{j:#}"
    );

    // More entries: the next audit proves the new checkpoint consistent
    // with the saved one and reads only what is new.
    stream_captures(&mut c, "cam", &cam, 200).await;
    let second = first + 200;
    wait_for_size(&log.http, second).await;
    let (code, j, err) = run(&log, &state);
    assert_eq!(code, Some(0), "{err}\n{j:#}");
    assert_eq!(j["resumed_from"].as_u64(), Some(first), "{j:#}");
    assert_eq!(j["processed"].as_u64(), Some(second - first), "{j:#}");
    assert_eq!(j["signatures"]["this_run"].as_u64(), Some(200));
    assert_eq!(j["signatures"]["total"].as_u64(), Some(second - 1));
    assert_eq!(
        j["compare"]["holders_at"]["assets"].as_u64(),
        Some(500),
        "{j:#}"
    );
    // Nothing new: nothing read, everything still agrees.
    let (code, j, err) = run(&log, &state);
    assert_eq!(code, Some(0), "{err}\n{j:#}");
    assert_eq!(j["processed"].as_u64(), Some(0));

    // Another log's state file is refused loudly.
    let mut other = Log::init();
    other.start();
    let out = audit_text(&[
        "--url",
        &other.http,
        "--log-key",
        other.vkey.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let alerts = alert_lines(&out);
    assert!(
        alerts.iter().any(|l| l.contains("another log")),
        "{alerts:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    other.kill();

    // Roll the log back: keep a copy of its data now, grow it and audit,
    // then serve the copy again.
    log.kill();
    let snapshot = log.path("snapshot");
    copy_dir(&log.data, &snapshot);
    log.start();
    let mut c = log.client().await;
    stream_captures(&mut c, "cam", &cam, 100).await;
    wait_for_size(&log.http, second + 100).await;
    let (code, j, err) = run(&log, &state);
    assert_eq!(code, Some(0), "{err}\n{j:#}");
    log.kill();
    copy_dir(&snapshot, &log.data);
    log.start();
    wait_for_size(&log.http, second).await;
    let a = args(&log, &state);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = audit_text(&a);
    assert_eq!(out.status.code(), Some(2), "rollback not alarmed");
    let alerts = alert_lines(&out);
    assert!(
        alerts.iter().any(|l| l.contains("rolled back from size")),
        "{alerts:?}"
    );

    // Fork it: other entries past the saved size, under the same key.
    let mut c = log.client().await;
    stream_captures(&mut c, "cam", &cam, 150).await;
    wait_for_size(&log.http, second + 150).await;
    let out = audit_text(&a);
    assert_eq!(out.status.code(), Some(2), "fork not alarmed");
    let alerts = alert_lines(&out);
    assert!(
        alerts
            .iter()
            .any(|l| l.contains("is not consistent with the saved one")),
        "{alerts:?}"
    );
    // A fresh audit of the forked log itself is clean: it is the state
    // that no longer fits.
    let (code, j, err) = audit_json(&["--url", &log.http, "--log-key", &vkey]);
    assert_eq!(code, Some(0), "{err}\n{j:#}");
}

/// `rewrite` opens a stopped server's RocksDB and applies `f` to the
/// stored bytes of entry `index`.
fn rewrite(data: &Path, index: u64, f: impl FnOnce(Vec<u8>) -> Vec<u8>) {
    let path = data.join("db");
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, &path).unwrap();
    let db = rocksdb::DB::open_cf(&opts, &path, cfs).unwrap();
    let cf = db.cf_handle("entries").unwrap();
    let key = index.to_be_bytes();
    let old = db.get_cf(cf, key).unwrap().expect("entry stored");
    db.put_cf(cf, key, f(old)).unwrap();
    db.flush_cf(cf).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_rewritten_in_the_database_is_caught_against_the_signed_tree() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    stream_captures(&mut c, "cam", &cam, 600).await;
    let size = 604;
    wait_for_size(&log.http, size).await;
    let vkey = log.vkey.to_str().unwrap().to_owned();
    let (code, j, err) = audit_json(&[
        "--url",
        &log.http,
        "--log-key",
        &vkey,
        "--server",
        &log.grpc,
    ]);
    assert_eq!(code, Some(0), "{err}\n{j:#}");

    // Flip one bit of entry 300's signature, and replace entry 550 (in the
    // partial right-edge tile) with entry 551, a valid-looking signed
    // entry of its own.
    log.kill();
    rewrite(&log.data, 300, |bytes| {
        let mut e = v1::LogEntry::decode(bytes.as_slice()).unwrap();
        let Some(v1::log_entry::Content::Event(ev)) = &mut e.content else {
            panic!("entry 300 is not an event");
        };
        ev.signatures[0].sig[10] ^= 0x01;
        e.encode_to_vec()
    });
    let path = log.data.join("db");
    let next = {
        let opts = rocksdb::Options::default();
        let cfs = rocksdb::DB::list_cf(&opts, &path).unwrap();
        let db = rocksdb::DB::open_cf(&opts, &path, cfs).unwrap();
        let cf = db.cf_handle("entries").unwrap();
        db.get_cf(cf, 551u64.to_be_bytes()).unwrap().unwrap()
    };
    rewrite(&log.data, 550, |_| next);
    log.start();
    wait_for_size(&log.http, size).await;

    let out = audit_text(&[
        "--url",
        &log.http,
        "--log-key",
        &vkey,
        "--server",
        &log.grpc,
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let alerts = alert_lines(&out);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].contains("entry 300 (in tile/entries/001)")
            && alerts[0].contains("does not hash to the signed tree of size 604"),
        "{alerts:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ALERT"), "{err}");

    // Undo the first change: the next bad entry is named, in the partial
    // tile at the tree's right edge.
    log.kill();
    rewrite(&log.data, 300, |bytes| {
        let mut e = v1::LogEntry::decode(bytes.as_slice()).unwrap();
        let Some(v1::log_entry::Content::Event(ev)) = &mut e.content else {
            panic!("entry 300 is not an event");
        };
        ev.signatures[0].sig[10] ^= 0x01;
        e.encode_to_vec()
    });
    log.start();
    wait_for_size(&log.http, size).await;
    let out = audit_text(&["--url", &log.http, "--log-key", &vkey]);
    assert_eq!(out.status.code(), Some(2));
    let alerts = alert_lines(&out);
    assert!(
        alerts.len() == 1 && alerts[0].contains("entry 550 (in tile/entries/002.p/92)"),
        "{alerts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_audit_killed_mid_replay_resumes_at_the_entry_where_it_stopped() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let n = 20_000u64;
    stream_captures(&mut c, "cam", &cam, n as usize).await;
    let size = n + 4;
    wait_for_size(&log.http, size).await;
    let state = log.path("audit-state");
    let vkey = log.vkey.to_str().unwrap().to_owned();
    let args = vec![
        "audit".to_owned(),
        "--url".to_owned(),
        log.http.clone(),
        "--log-key".to_owned(),
        vkey,
        "--server".to_owned(),
        log.grpc.clone(),
        "--state".to_owned(),
        state.to_str().unwrap().to_owned(),
        "--json".to_owned(),
    ];

    // SIGKILL the audit once it has committed part of its replay.
    kill_audit_mid_replay(&args[1..], &state, 256 << 10);

    // The next run goes on from the entries the killed one committed,
    // proves them part of the signed tree, and replays only the rest.
    let a: Vec<&str> = args[1..args.len() - 1].iter().map(String::as_str).collect();
    let (code, j, err) = audit_json(&a);
    assert_eq!(code, Some(0), "{err}\n{j:#}");
    let resumed = j["resumed_from"].as_u64().expect("resumed_from");
    assert!(
        resumed > 0 && resumed < size,
        "resumed from {resumed} of {size}"
    );
    assert_eq!(j["processed"].as_u64(), Some(size - resumed), "{j:#}");
    assert_eq!(j["size"].as_u64(), Some(size));
    // Every signature counted once over the two runs.
    assert_eq!(j["signatures"]["total"].as_u64(), Some(size - 1), "{j:#}");
    assert_eq!(j["compare"]["findings"]["agree"], true, "{j:#}");
    assert_eq!(j["differences"], Value::Array(vec![]), "{j:#}");
}

/// Reported digests need not spread over the digest space (a reporter
/// chooses them): the sample of assets whose holders are compared is
/// still as large as asked.
#[tokio::test(flavor = "multi_thread")]
async fn the_holders_sample_is_full_when_digests_cluster() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    for i in 0..12u8 {
        let mut digest = [0u8; 32];
        digest[31] = i;
        let body = v1::event::Body::Custody(v1::CustodyAction {
            action: v1::CustodyActionKind::Capture as i32,
            actor: "cam".into(),
            asset_digest: digest.to_vec(),
            to_system: system_of("cam"),
            modality: v1::Modality::FaceImage as i32,
            subject_class: v1::SubjectClass::Citizen as i32,
            ..Default::default()
        });
        append(&mut c, &event("cam", body), &[&cam]).await.unwrap();
    }
    wait_for_size(&log.http, 16).await;
    let vkey = log.vkey.to_str().unwrap().to_owned();
    let (code, j, err) = audit_json(&[
        "--url",
        &log.http,
        "--log-key",
        &vkey,
        "--server",
        &log.grpc,
        "--sample",
        "8",
    ]);
    assert_eq!(code, Some(0), "{err}\n{j:#}");
    assert_eq!(
        j["compare"]["holders_at"]["assets"].as_u64(),
        Some(8),
        "{j:#}"
    );
}
