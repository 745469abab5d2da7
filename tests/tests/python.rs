//! The Python package for reporters (`clients/python`, issue 12 part 3)
//! against a real `custodyd`: `tests/python/check_client.py`, run with a
//! Python that has `pip install ./clients/python` done
//! (`tests/python/venv.sh`), reports a COPY spool-less and events through
//! its spool (a crash and a resubmission included), and proves what it
//! wrote against a checkpoint verified with `log.vkey`. This side then
//! reads the log as an auditor and checks that the party's events are
//! there, once each, numbered without a gap, signed by its key as the
//! Rust domain code checks signatures. A second test checks that the
//! checked-in stubs are what `clients/python/regen.sh` makes of `proto/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use custody_e2e::*;
use custody_proto::v1;
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use ed25519_dalek::Verifier as _;
use prost::Message as _;

/// `repo` is the root of the checkout.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `venv_python` is the Python `tests/python/venv.sh` prints: one with
/// the package installed from `clients/python`.
fn venv_python() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("tests/python/venv.sh"))
        .output()
        .expect("run tests/python/venv.sh");
    assert!(
        out.status.success(),
        "tests/python/venv.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// One of the party's events as the log holds it.
#[derive(Debug, PartialEq)]
struct Logged {
    index: u64,
    event_id: String,
    action: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn python_package_reports_spooled_and_not_and_proves_it() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let party = "vendor-py";
    let (from_system, to_system) = (system_of(party), format!("{party}-backup"));
    // Set up while the server is open: the party, its systems, its key.
    let key = register(&log, &mut c, party, 0, 0).await;
    let backup = event(
        &log.owner_id,
        system_registered(&to_system, party, true, false),
    );
    append(&mut c, &backup, &[&log.owner])
        .await
        .expect("register the backup system");
    let key_file = log.path("vendor-py.key");
    std::fs::write(&key_file, custody_domain::keyfile::format_secret(&key)).unwrap();

    // Then close it: the reporter needs its token, the checks here an
    // auditor's.
    let reporter_t = token(&log, party, "reporter");
    let auditor_t = token(&log, "oig", "auditor");
    let deadline = Instant::now() + Duration::from_secs(10);
    while c
        .get_checkpoint(v1::GetCheckpointRequest::default())
        .await
        .map_or_else(|s| s.code(), |_| tonic::Code::Ok)
        != tonic::Code::Unauthenticated
    {
        assert!(Instant::now() < deadline, "the access list was not read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let work = log.path("python");
    std::fs::create_dir_all(&work).unwrap();
    let result = work.join("result.json");
    let mut cmd = Command::new(&python);
    cmd.arg(repo().join("tests/python/check_client.py"))
        .args(["--server", &log.grpc, "--party", party])
        .arg("--key")
        .arg(&key_file)
        .arg("--vkey")
        .arg(&log.vkey)
        .args(["--from-system", &from_system, "--to-system", &to_system])
        .arg("--spool")
        .arg(work.join("vendor-py.spool"))
        .arg("--example")
        .arg(repo().join("clients/python/examples/report_copy.py"))
        .arg("--workdir")
        .arg(&work)
        .arg("--out")
        .arg(&result)
        .env("CUSTODY_TOKEN", &reporter_t)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run check_client.py"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "tests/python/check_client.py failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status,
        log.server_log()
    );

    // What Python says it logged.
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&result).expect("check_client.py --out")).unwrap();
    assert_eq!(r["party"], party);
    let mut claimed = BTreeMap::new();
    for e in r["events"].as_array().expect("events") {
        claimed.insert(
            e["seq"].as_u64().unwrap(),
            Logged {
                index: e["index"].as_u64().unwrap(),
                event_id: e["event_id"].as_str().unwrap().to_owned(),
                action: e["action"].as_str().unwrap().to_owned(),
            },
        );
    }

    // What the log holds, read as an auditor: the party's events by
    // sequence number, each once, each signed by its key.
    let aud = Some(auditor_t.as_str());
    let note = c
        .get_checkpoint(authed(v1::GetCheckpointRequest::default(), aud))
        .await
        .expect("checkpoint")
        .into_inner()
        .checkpoint;
    let size: u64 = String::from_utf8_lossy(&note)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("checkpoint size");
    let public = key.verifying_key();
    let mut in_log = BTreeMap::new();
    let mut ids = std::collections::HashSet::new();
    let mut copy_entry = None;
    let mut start = 0;
    while start < size {
        let end = (start + 1000).min(size);
        let entries = c
            .get_entries(authed(v1::GetEntriesRequest { start, end }, aud))
            .await
            .expect("entries")
            .into_inner()
            .entries;
        for (i, bytes) in (start..).zip(&entries) {
            let entry = v1::LogEntry::decode(bytes.as_slice()).unwrap();
            let Some(v1::log_entry::Content::Event(signed)) = entry.content else {
                continue;
            };
            let ev = v1::Event::decode(&signed.body[..]).unwrap();
            if ev.reporter != party {
                continue;
            }
            // Signed as the Rust side signs: PAE of the payload type and
            // body, under the party key's id.
            assert_eq!(signed.payload_type, custody_domain::PAYLOAD_TYPE);
            assert_eq!(signed.signatures.len(), 1, "entry {i}");
            let s = &signed.signatures[0];
            assert_eq!(
                s.key_id,
                custody_domain::key_id_of(&public.to_bytes()).0.to_vec(),
                "entry {i}: key id"
            );
            let sig = ed25519_dalek::Signature::from_slice(&s.sig).expect("a 64-byte signature");
            public
                .verify(
                    &custody_domain::pae(&signed.payload_type, &signed.body),
                    &sig,
                )
                .unwrap_or_else(|e| panic!("entry {i}: signature: {e}"));
            assert_eq!(ev.log_origin, ORIGIN);
            assert!(
                ids.insert(ev.event_id.clone()),
                "event {} logged twice",
                ev.event_id
            );
            let Some(v1::event::Body::Custody(action)) = ev.body else {
                panic!("entry {i}: not a custody action");
            };
            let kind = v1::CustodyActionKind::try_from(action.action)
                .unwrap()
                .as_str_name()
                .to_owned();
            if i == r["copy_index"].as_u64().unwrap() {
                copy_entry = Some(action.clone());
            }
            let prior = in_log.insert(
                ev.reporter_seq,
                Logged {
                    index: i,
                    event_id: ev.event_id,
                    action: kind,
                },
            );
            assert!(
                prior.is_none(),
                "sequence number {} logged twice",
                ev.reporter_seq
            );
        }
        start = end;
    }
    assert_eq!(
        in_log.keys().copied().collect::<Vec<_>>(),
        (1..=11).collect::<Vec<u64>>(),
        "the party's sequence numbers in the log"
    );
    assert_eq!(
        in_log, claimed,
        "what Python says it logged is what the log holds"
    );
    let copy = copy_entry.expect("the spool-less COPY is in the log");
    assert_eq!(copy.action, v1::CustodyActionKind::Copy as i32);
    assert_eq!(
        (
            copy.actor.as_str(),
            copy.from_system.as_str(),
            copy.to_system.as_str()
        ),
        (party, from_system.as_str(), to_system.as_str())
    );
    assert_eq!(copy.purpose, v1::Purpose::Backup as i32);

    // And the server sees no gap in the party's numbers.
    let mut q = CustodyQueryClient::connect(log.grpc.clone()).await.unwrap();
    let gaps = q
        .findings(authed(
            v1::FindingsRequest {
                rule: "sequence_gap".into(),
                party: party.into(),
                ..Default::default()
            },
            aud,
        ))
        .await
        .expect("findings")
        .into_inner();
    assert_eq!(gaps.total, 0, "sequence gaps: {:?}", gaps.findings);
}

/// The stubs in `clients/python/custody_ledger/v1` are what
/// `clients/python/regen.sh` generates from `proto/` now.
#[test]
fn python_stubs_match_the_proto() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(repo().join("clients/python/regen.sh"))
        .arg(dir.path())
        .output()
        .expect("run clients/python/regen.sh");
    assert!(
        out.status.success(),
        "regen.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["log_pb2.py", "log_pb2.pyi", "log_pb2_grpc.py"] {
        let fresh = std::fs::read(dir.path().join("custody_ledger/v1").join(f))
            .unwrap_or_else(|e| panic!("regen.sh wrote no {f}: {e}"));
        let checked_in = std::fs::read(repo().join("clients/python/custody_ledger/v1").join(f))
            .unwrap_or_else(|e| panic!("clients/python/custody_ledger/v1/{f}: {e}"));
        assert!(
            fresh == checked_in,
            "clients/python/custody_ledger/v1/{f} is not what proto/ generates: run `bash clients/python/regen.sh` and check in the result"
        );
    }
}

/// Which refusals are final is one rule in two languages: the Python
/// package's `errors.FINAL` is exactly the codes `custody_client::is_final`
/// says are final (every other code is retried by both).
#[test]
fn python_and_rust_give_up_on_the_same_codes() {
    let out = std::process::Command::new(venv_python())
        .args([
            "-c",
            "from custody_ledger.errors import FINAL, RETRYABLE\n\
             import grpc\n\
             print(' '.join(str(c.value[0]) for c in sorted(FINAL, key=lambda c: c.value[0])))\n\
             assert all(c in FINAL or c in RETRYABLE for c in grpc.StatusCode if c != grpc.StatusCode.OK)",
        ])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python: Vec<i32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    let rust: Vec<i32> = (1..=16)
        .filter(|c| custody_client::is_final(tonic::Code::from(*c)))
        .collect();
    assert_eq!(
        python, rust,
        "Python's FINAL codes are not the Rust client's"
    );
}
