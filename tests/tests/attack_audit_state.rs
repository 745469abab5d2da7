//! Attacks on `custody audit`'s saved state (`--state DIR`, an embedded
//! RocksDB the audit re-admits the log into) by a hostile log operator, or
//! a vendor colluding with it, who wants an audit to pass while the log
//! hides a copy, or wants to poison the auditor's state so that a later
//! audit passes on a rewritten history.
//!
//! - An audit SIGKILLed mid-replay leaves entries in its state that were
//!   read but never proven; a log rolled back below them, or forked inside
//!   them, is refused, and the refusals leave the state able to go on with
//!   the honest log.
//! - A manifest lie (`GetManifest` members that do not hash to the root a
//!   bulk event names, or the wrong count) is alarmed, nothing of it is
//!   kept in the state, a later run against the still-lying server alarms
//!   again, and once the server tells the truth the same state finishes.
//! - A state whose saved tree edge was changed on disk is refused, not
//!   blamed on the log and not passed.
//!
//! - A signed checkpoint that an audit verified but did not finish
//!   replaying (INCOMPLETE, killed, or made to fail) is kept, so a fork of
//!   it is alarmed (this was a weakness when the attack was written).
//! - The server cannot dodge the `HoldersAt` comparison by answering as of
//!   another tree size: the audit asks as of its own size, and any other
//!   is a difference (this too was a weakness: such answers were skipped).

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

use custody_e2e::*;
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use ed25519_dalek::SigningKey;
use serde_json::Value;
use tonic::transport::Channel;

/// `text` is stdout and stderr together, for messages.
fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `open_db` opens a RocksDB (a stopped server's `data/db`, or an audit
/// state directory) with every column family, for reading and writing.
fn open_db(path: &Path) -> rocksdb::DB {
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, path).unwrap();
    rocksdb::DB::open_cf(&opts, path, cfs).unwrap()
}

/// `open_ro` opens a RocksDB read-only, leaving its files as they are.
fn open_ro(path: &Path) -> rocksdb::DB {
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, path).unwrap();
    rocksdb::DB::open_cf_for_read_only(&opts, path, cfs, false).unwrap()
}

/// `state_size` is how many entries an audit state has replayed.
fn state_size(state: &Path) -> u64 {
    let db = open_ro(state);
    let cf = db.cf_handle("meta").unwrap();
    db.get_cf(cf, b"tree_size")
        .unwrap()
        .map(|v| u64::from_be_bytes(v.as_slice().try_into().unwrap()))
        .unwrap_or(0)
}

/// `state_manifest_count` is the member count an audit state holds for
/// manifest `root`, if any.
fn state_manifest_count(state: &Path, root: &[u8]) -> Option<u64> {
    let db = open_ro(state);
    let cf = db.cf_handle("manifest_meta").unwrap();
    db.get_cf(cf, root)
        .unwrap()
        .map(|v| u64::from_be_bytes(v.as_slice().try_into().unwrap()))
}

/// `state_args` is an audit of `log` with `--server` and `--state`.
fn state_args(log: &Log, state: &Path) -> Vec<String> {
    vec![
        "--url".into(),
        log.http.clone(),
        "--log-key".into(),
        log.vkey.to_str().unwrap().into(),
        "--server".into(),
        log.grpc.clone(),
        "--state".into(),
        state.to_str().unwrap().into(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `bulk_capture` uploads a manifest of `n` fresh digests and logs a bulk
/// CAPTURE of it by `party`; it returns the manifest and its members.
async fn bulk_capture(
    c: &mut CustodyLogClient<Channel>,
    party: &str,
    key: &SigningKey,
    n: usize,
) -> (v1::Manifest, Vec<[u8; 32]>) {
    let mut members: Vec<[u8; 32]> = (0..n).map(|_| random_digest()).collect();
    members.sort();
    let m = put_manifest(c, &members).await;
    let v1::event::Body::Custody(mut a) = capture(party) else {
        unreachable!("capture is a custody action")
    };
    a.asset_digest = Vec::new();
    a.manifest = Some(m.clone());
    append(c, &event(party, v1::event::Body::Custody(a)), &[key])
        .await
        .expect("bulk capture logged");
    (m, members)
}

/// 1. Kill an audit mid-replay, so its state holds entries read past its
/// last proven checkpoint but never proven, then serve it (a) the log
/// rolled back to that proven checkpoint and (b) a fork of it that grows
/// past the killed run's entries with other ones, under the same key.
/// Each is refused (exit 1) and leaves the state as it was, never passed;
/// and the state then resumes on the honest log exactly where the killed
/// run stopped, every signature counted once.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_audits_unproven_tail_refuses_a_rollback_and_a_fork_and_stays_usable() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    stream_captures(&mut c, "cam", &cam, 100).await;
    let proven = 104;
    wait_for_size(&log.http, proven).await;
    let state = log.path("audit-state");
    let args = state_args(&log, &state);
    let (code, j, err) = audit_json(&strs(&args));
    assert_eq!(code, Some(0), "{err}\n{j:#}");

    // The root of every fork below: the log as the state proved it.
    log.kill();
    let snapshot = log.path("snapshot");
    copy_dir(&log.data, &snapshot);
    log.start();
    let mut c = log.client().await;
    let n = 8_000u64;
    stream_captures(&mut c, "cam", &cam, n as usize).await;
    let size = proven + n;
    wait_for_size(&log.http, size).await;
    let args = state_args(&log, &state);

    // SIGKILL the audit once it has committed part of the new entries.
    kill_audit_mid_replay(&args, &state, 256 << 10);
    let tail = state_size(&state);
    eprintln!("the killed audit left {tail} of {size} entries in its state");
    assert!(
        tail > proven && tail < size,
        "the killed audit left {tail} entries, not between {proven} and {size}"
    );

    // Keep the honest log; serve the snapshot instead, rolled back to the
    // proven size but not to where the killed run had read.
    log.kill();
    let honest = log.path("honest");
    copy_dir(&log.data, &honest);
    copy_dir(&snapshot, &log.data);
    log.start();
    wait_for_size(&log.http, proven).await;
    let args = state_args(&log, &state);
    let out = audit_text(&strs(&args));
    // The killed run had verified the checkpoint of `size` before it
    // replayed anything: serving less is a proven rollback.
    assert_eq!(
        out.status.code(),
        Some(2),
        "a rollback below the unproven tail: {}",
        text(&out)
    );
    assert!(
        alert_lines(&out)
            .iter()
            .any(|l| l.contains(&format!("rolled back from size {size}"))),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("audit: OK"), "{}", text(&out));
    assert_eq!(state_size(&state), tail, "a refused run changed the state");

    // The fork: other captures, past the killed run's entries (still short
    // of the checkpoint it verified).
    let mut c = log.client().await;
    let more = tail - proven + 50;
    stream_captures(&mut c, "cam", &cam, more as usize).await;
    wait_for_size(&log.http, proven + more).await;
    let out = audit_text(&strs(&args));
    assert_eq!(
        out.status.code(),
        Some(2),
        "a fork of the unproven tail: {}",
        text(&out)
    );
    assert!(
        alert_lines(&out)
            .iter()
            .any(|l| l.contains(&format!("rolled back from size {size}"))),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("audit: OK"), "{}", text(&out));
    assert_eq!(state_size(&state), tail, "a refused run changed the state");

    // The honest log again: the state resumes where the killed run
    // stopped, and agrees with the server.
    log.kill();
    copy_dir(&honest, &log.data);
    log.start();
    wait_for_size(&log.http, size).await;
    let args = state_args(&log, &state);
    let (code, j, err) = audit_json(&strs(&args));
    assert_eq!(code, Some(0), "{err}\n{j:#}");
    assert_eq!(j["resumed_from"].as_u64(), Some(tail), "{j:#}");
    assert_eq!(j["processed"].as_u64(), Some(size - tail), "{j:#}");
    assert_eq!(j["size"].as_u64(), Some(size), "{j:#}");
    assert_eq!(j["signatures"]["total"].as_u64(), Some(size - 1), "{j:#}");
    assert_eq!(j["differences"], Value::Array(vec![]), "{j:#}");
}

/// 2. A manifest lie: the server answers `GetManifest` for a bulk CAPTURE
/// with a member changed (still sorted, so only the root gives it away),
/// then with the right members but a count one more than the entry's. Each
/// run alarms, nothing of the lie is stored in the audit's state (so the
/// second run, on the same state, does not trust a count it saw before),
/// and once the server tells the truth the same state finishes and checks
/// the manifest.
#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_lie_is_alarmed_every_time_and_never_kept_in_the_state() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let (m, members) = bulk_capture(&mut c, "cam", &cam, 4).await;
    let bulk_index = 4u64;
    stream_captures(&mut c, "cam", &cam, 5).await;
    let size = 10u64;
    wait_for_size(&log.http, size).await;
    let root = m.root.clone();
    assert_eq!(m.count, 4);

    // The lie: the last member, one higher (still sorted, still distinct).
    log.kill();
    let member_key = |i: u64| {
        let mut k = root.clone();
        k.extend_from_slice(&i.to_be_bytes());
        k
    };
    {
        let db = open_db(&log.data.join("db"));
        let cf = db.cf_handle("manifest_members").unwrap();
        let got = db.get_cf(cf, member_key(3)).unwrap().expect("member 3");
        assert_eq!(got, members[3].to_vec());
        let mut lie = members[3];
        lie[31] = lie[31].wrapping_add(1);
        assert!(lie > members[2]);
        db.put_cf(cf, member_key(3), lie).unwrap();
        db.flush_cf(cf).unwrap();
    }
    log.start();
    wait_for_size(&log.http, size).await;

    let state = log.path("audit-state");
    let args = state_args(&log, &state);
    let out = audit_text(&strs(&args));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let alerts = alert_lines(&out);
    assert!(
        alerts.len() == 1
            && alerts[0].contains(&format!(
                "entry {bulk_index} names manifest {} of 4 members",
                custody_domain::hex(&root)
            ))
            && alerts[0].contains("not to the root the entry names"),
        "{alerts:?}"
    );
    assert!(!text(&out).contains("audit: OK"), "{}", text(&out));
    // Nothing unchecked was kept: no members, and the replay stopped
    // before the bulk event (the entries of the batch before it are
    // admitted with it, or not at all).
    assert_eq!(state_manifest_count(&state, &root), None);
    let kept = state_size(&state);
    assert!(kept > 0 && kept <= bulk_index, "kept {kept}");

    // Another lie on the same state: the right members, the wrong count.
    log.kill();
    {
        let db = open_db(&log.data.join("db"));
        let cf = db.cf_handle("manifest_members").unwrap();
        db.put_cf(cf, member_key(3), members[3]).unwrap();
        db.flush_cf(cf).unwrap();
        let cf = db.cf_handle("manifest_meta").unwrap();
        db.put_cf(cf, &root, 5u64.to_be_bytes()).unwrap();
        db.flush_cf(cf).unwrap();
    }
    log.start();
    wait_for_size(&log.http, size).await;
    let args = state_args(&log, &state);
    let out = audit_text(&strs(&args));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let alerts = alert_lines(&out);
    assert!(
        alerts.len() == 1
            && alerts[0].contains(&format!("entry {bulk_index} names manifest"))
            && alerts[0].contains("the server says it has 5 members, the entry says 4"),
        "{alerts:?}"
    );
    assert_eq!(state_manifest_count(&state, &root), None);
    assert_eq!(state_size(&state), kept);

    // The truth: the same state goes on from where it stopped, checks the
    // manifest and agrees with the server.
    log.kill();
    {
        let db = open_db(&log.data.join("db"));
        let cf = db.cf_handle("manifest_meta").unwrap();
        db.put_cf(cf, &root, 4u64.to_be_bytes()).unwrap();
        db.flush_cf(cf).unwrap();
    }
    log.start();
    wait_for_size(&log.http, size).await;
    let args = state_args(&log, &state);
    let (code, j, err) = audit_json(&strs(&args));
    assert_eq!(code, Some(0), "{err}\n{j:#}");
    assert_eq!(j["resumed_from"].as_u64(), Some(kept), "{j:#}");
    assert_eq!(j["processed"].as_u64(), Some(size - kept), "{j:#}");
    assert_eq!(j["bulk_events"].as_u64(), Some(1), "{j:#}");
    assert_eq!(j["differences"], Value::Array(vec![]), "{j:#}");
    assert_eq!(state_manifest_count(&state, &root), Some(4));

    // 3. The saved tree edge changed on disk (one of the frontier's stored
    // hashes, for size 10: the level-1 subtree over entries 8 and 9). The
    // next run refuses the state; it neither passes nor blames the log.
    {
        let db = open_db(&state);
        let cf = db.cf_handle("hashes").unwrap();
        let k = tlog_tiles::stored_hash_index(1, 4).to_be_bytes();
        let mut h = db.get_cf(cf, k).unwrap().expect("frontier hash stored");
        h[0] ^= 1;
        db.put_cf(cf, k, h).unwrap();
        db.flush_cf(cf).unwrap();
    }
    let out = audit_text(&strs(&args));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(alert_lines(&out).is_empty(), "{}", text(&out));
    assert!(
        text(&out).contains("are not the first 10 of the log's checkpoint of size 10"),
        "{}",
        text(&out)
    );
}

/// 4. (Was a weakness.) An audit that verified a signed checkpoint, and rehashed
/// every leaf of its tree, but did not finish (here: without `--server`
/// it stops at a bulk event, INCOMPLETE; a SIGKILL or a failed fetch is
/// the same) does not keep that checkpoint. The operator then forks the
/// log after the entries the state holds, dropping the bulk event the
/// auditor saw, and the next audit on the same state reports OK, though
/// the auditor holds two signed, inconsistent trees.
#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_seen_by_an_unfinished_run_is_not_forgotten() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    stream_captures(&mut c, "cam", &cam, 100).await;
    let proven = 104;
    wait_for_size(&log.http, proven).await;
    let state = log.path("audit-state");
    let (code, j, err) = audit_json(&strs(&state_args(&log, &state)));
    assert_eq!(code, Some(0), "{err}\n{j:#}");
    log.kill();
    let snapshot = log.path("snapshot");
    copy_dir(&log.data, &snapshot);
    log.start();

    // The log the auditor sees: a bulk CAPTURE (the copy to hide), then
    // more captures.
    let mut c = log.client().await;
    bulk_capture(&mut c, "cam", &cam, 3).await;
    stream_captures(&mut c, "cam", &cam, 20).await;
    let seen = proven + 21;
    wait_for_size(&log.http, seen).await;
    let out = audit_text(&[
        "--url",
        &log.http,
        "--log-key",
        log.vkey.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "tree: every leaf rehashed; the root of size {seen} is the signed root"
        )) && text(&out).contains("INCOMPLETE"),
        "{}",
        text(&out)
    );

    // The fork: the same key, the same first 104 entries, no bulk event.
    log.kill();
    copy_dir(&snapshot, &log.data);
    log.start();
    let mut c = log.client().await;
    stream_captures(&mut c, "cam", &cam, 30).await;
    wait_for_size(&log.http, proven + 30).await;
    let out = audit_text(&strs(&state_args(&log, &state)));
    assert_eq!(
        out.status.code(),
        Some(2),
        "ATTACK SUCCEEDED: the audit did not alarm on a fork of the checkpoint of size {seen} it had verified: {}",
        text(&out)
    );
    assert!(
        alert_lines(&out).iter().any(|l| l.contains(&format!(
            "is not consistent with the saved one of size {seen}"
        ))),
        "{}",
        text(&out)
    );
}

/// `serve_static` serves `files` (path to body) over HTTP on a port of
/// its own, one request per connection, 404 for anything else: a tile API
/// frozen at one checkpoint.
fn serve_static(files: HashMap<String, Vec<u8>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut head = Vec::new();
            let mut b = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&b[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (status, body) = match files.get(&path) {
                Some(b) => ("200 OK", b.clone()),
                None => ("404 Not Found", Vec::new()),
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}")
}

/// 5. (Was a weakness.) The server hides who holds an asset in its `HoldersAt`
/// answers (here its asset-interval index lost the asset's interval). An
/// audit that compares them alarms; but if the server answers as of a
/// tree size other than the audited one (here: the log grew by one entry
/// since the checkpoint the auditor read; a hostile server could simply
/// say so), every `HoldersAt` answer was skipped, none compared, and the
/// audit reported OK. Now it asks as of the audited size.
#[tokio::test(flavor = "multi_thread")]
async fn holders_answered_as_of_another_size_are_not_silently_skipped() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    stream_captures(&mut c, "cam", &cam, 6).await;
    let size = 10;
    wait_for_size(&log.http, size).await;
    // The tile API as it stands at size 10, frozen.
    let get = |p: &str| {
        let url = format!("{}/{p}", log.http);
        async move { reqwest::get(url).await.unwrap().bytes().await.unwrap() }
    };
    let note = get("checkpoint").await.to_vec();
    assert!(String::from_utf8_lossy(&note).contains("\n10\n"));
    let bundle = get("tile/entries/000.p/10").await.to_vec();
    let frozen = serve_static(HashMap::from([
        ("/checkpoint".to_owned(), note),
        ("/tile/entries/000.p/10".to_owned(), bundle),
    ]));
    stream_captures(&mut c, "cam", &cam, 1).await;
    wait_for_size(&log.http, size + 1).await;

    // The lie: the first asset's intervals gone from the index HoldersAt
    // reads (breach scope and findings are read from other families).
    log.kill();
    let victim = {
        let db = open_db(&log.data.join("db"));
        let cf = db.cf_handle("asset_intervals").unwrap();
        let keys: Vec<Box<[u8]>> = db
            .iterator_cf(cf, rocksdb::IteratorMode::Start)
            .map(|kv| kv.unwrap().0)
            .collect();
        // An asset captured within the frozen size 10.
        let opened_by = |k: &[u8]| u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap());
        let first = keys
            .iter()
            .find(|k| opened_by(k) < size)
            .expect("an asset of the first 10 entries");
        let victim = first[..32].to_vec();
        for k in keys.iter().filter(|k| k.starts_with(&victim)) {
            db.delete_cf(cf, k).unwrap();
        }
        db.flush_cf(cf).unwrap();
        victim
    };
    log.start();
    wait_for_size(&log.http, size + 1).await;
    let vkey = log.vkey.to_str().unwrap().to_owned();

    // Compared, the lie is caught.
    let out = audit_text(&[
        "--url",
        &log.http,
        "--log-key",
        &vkey,
        "--server",
        &log.grpc,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "DIFFERS: holders of {}",
            custody_domain::hex(&victim)
        )),
        "{}",
        text(&out)
    );

    // Audited at size 10 while the log is at 11: asked as of size 10, the
    // lie is caught the same.
    let (code, j, err) = audit_json(&["--url", &frozen, "--log-key", &vkey, "--server", &log.grpc]);
    assert_eq!(j["checkpoint"]["size"].as_u64(), Some(size), "{j:#}");
    assert_eq!(
        code,
        Some(2),
        "ATTACK SUCCEEDED: the audit passed with {} HoldersAt answers compared: {err}\n{j:#}",
        j["compare"]["holders_at"]["compared"],
    );
    let differences = j["differences"].to_string();
    assert!(
        differences.contains(&format!("holders of {}", custody_domain::hex(&victim))),
        "{j:#}"
    );
}
