//! Attacks on key changes racing with traffic. They were written against a
//! checker thread that verified a batch's signatures against the registry
//! the sequencer last published, a batch or two behind, while the
//! sequencer admitted the batch before (withdrawn: it stalled other
//! reporters' acks at the start of a bulk job, `attack_bulk_jobs` a13).
//! The sequencer now checks each batch itself against its own registry;
//! the attacks stay, as guards on the same gap should it come back, and
//! on key changes mid-stream. "The checker" below is that stage. A hostile
//! vendor races key changes: captures signed by a key being revoked,
//! forgeries by a key just added, a key used across the edges of its
//! validity window, one party's key signing for another while keys churn,
//! resubmissions across the gap, bulk events signed on the edge, and a
//! flood of forgeries to stall honest reporters. Each test drives the real
//! server and passes only when the defence holds; a failure says "ATTACK
//! SUCCEEDED" with what was logged wrongly.
//!
//! Small `--max-batch` values make many batch boundaries, so most of these
//! streams are checked by the checker against a stale registry. Every
//! server here runs with `--refused-per-client 0`: the attacks send
//! thousands of events that must each be judged (refused or logged) by
//! the registry as of their entry, which the refusal budget would cut
//! short by turning the sender away (`rates.rs` tests the budget).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_domain::{key_id_of, Event, KeyId, SignedEnvelope};
use custody_e2e::*;
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::v1::event::Body;
use custody_proto::{decode_entry, decode_event, Entry};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use tonic::transport::Channel;
use tonic::Code;

type Client = CustodyLogClient<Channel>;

const SEC: i64 = 1_000_000_000;

/// The tests run one at a time: the flood test measures latency, and two
/// cores shared by several servers would pass for a stall.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------

fn kid(k: &SigningKey) -> KeyId {
    key_id_of(&k.verifying_key().to_bytes())
}

/// `revoke` is a KEY_REVOKED body for `party`'s key `k`.
fn revoke(party: &str, k: &SigningKey) -> Body {
    Body::KeyRevoked(v1::KeyRevoked {
        party_id: party.into(),
        key_id: kid(k).0.to_vec(),
    })
}

fn new_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

fn req(s: v1::SignedEvent) -> v1::AppendRequest {
    v1::AppendRequest {
        event: Some(s),
        wait_for_checkpoint: false,
    }
}

/// `by` is `e` signed by `keys`, as a stream request.
fn by(e: &v1::Event, keys: &[&SigningKey]) -> v1::AppendRequest {
    req(signed(e, keys))
}

/// `forged` is `e` signed by `keys` with one bit of signature `bad`
/// flipped.
fn forged(e: &v1::Event, keys: &[&SigningKey], bad: usize) -> v1::AppendRequest {
    let mut s = signed(e, keys);
    s.signatures[bad].sig[9] ^= 0x20;
    req(s)
}

/// `owner_event` is a registry event by the data owner, as a request.
fn owner_event(log: &Log, body: Body) -> v1::AppendRequest {
    by(&event(&log.owner_id, body), &[&log.owner])
}

/// `stream` sends `reqs` over one AppendStream and returns the answers,
/// one per request, in order.
async fn stream(c: &Client, reqs: Vec<v1::AppendRequest>) -> Vec<v1::AppendResponse> {
    stream_requests(&mut c.clone(), reqs).await
}

/// `Expect` is what a request must get.
#[derive(Clone, Debug)]
enum Expect {
    /// Logged (a new entry).
    Logged,
    /// Refused with PERMISSION_DENIED, the message holding this.
    Denied(String),
}

fn denied(s: &str) -> Expect {
    Expect::Denied(s.to_owned())
}

/// `check` asserts every answer is what was expected, and returns the
/// indices of the requests' entries (`None` for refusals).
fn check(what: &str, expect: &[Expect], got: &[v1::AppendResponse]) -> Vec<Option<u64>> {
    assert_eq!(expect.len(), got.len());
    let mut wrong = Vec::new();
    let mut at = Vec::with_capacity(got.len());
    for (k, (x, r)) in expect.iter().zip(got).enumerate() {
        let ok = r.error_code == 0;
        match x {
            Expect::Logged if ok && !r.duplicate => at.push(Some(r.index)),
            Expect::Logged => {
                wrong.push(format!(
                    "request {k}: expected logged, got code {} {:?} (duplicate {})",
                    r.error_code, r.error_message, r.duplicate
                ));
                at.push(None);
            }
            Expect::Denied(needle) => {
                if ok {
                    wrong.push(format!(
                        "ATTACK SUCCEEDED: request {k} should be refused ({needle:?}) but was logged at index {}",
                        r.index
                    ));
                    at.push(Some(r.index));
                } else {
                    if r.error_code != Code::PermissionDenied as i32
                        || !r.error_message.contains(needle.as_str())
                    {
                        wrong.push(format!(
                            "request {k}: expected PERMISSION_DENIED with {needle:?}, got code {} {:?}",
                            r.error_code, r.error_message
                        ));
                    }
                    at.push(None);
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{what}: {} wrong answers:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );
    at
}

/// `Logged` is one event entry read back from the log.
struct Logged {
    index: u64,
    time: i64,
    envelope: SignedEnvelope,
    event: Event,
}

impl Logged {
    fn signed_by(&self, k: &SigningKey) -> bool {
        let id = kid(k);
        self.envelope.signatures.iter().any(|s| s.key_id == id)
    }
}

/// `read_log` waits for a checkpoint of at least `size` entries and reads
/// every event entry in the latest one.
async fn read_log(log: &Log, c: &mut Client, size: u64) -> Vec<Logged> {
    wait_for_size(&log.http, size).await;
    let size = checkpoint_size(&log.http).await;
    let mut all = Vec::new();
    let mut start = 0;
    while start < size {
        let end = (start + 1000).min(size);
        let got = c
            .get_entries(v1::GetEntriesRequest { start, end })
            .await
            .expect("GetEntries")
            .into_inner()
            .entries;
        assert!(
            !got.is_empty(),
            "GetEntries {start}..{end} returned nothing"
        );
        for (k, b) in got.iter().enumerate() {
            let index = start + k as u64;
            match decode_entry(b).expect("entry decodes") {
                Entry::Genesis(_) => assert_eq!(index, 0),
                Entry::Event {
                    envelope,
                    integrated_time,
                } => {
                    let event = decode_event(&envelope.body).expect("event decodes");
                    all.push(Logged {
                        index,
                        time: integrated_time,
                        envelope,
                        event,
                    });
                }
            }
        }
        start += got.len() as u64;
    }
    all
}

/// `largest` is the largest index among answers, for [`read_log`].
fn largest(answers: &[v1::AppendResponse]) -> u64 {
    answers
        .iter()
        .filter(|r| r.error_code == 0)
        .map(|r| r.index)
        .max()
        .unwrap_or(0)
}

/// `signatures_hold` asserts that every signature of every logged entry is
/// by one of `keys` (with their parties) and verifies strictly, and that
/// each signer is a key of the entry's reporter.
fn signatures_hold(logged: &[Logged], keys: &[(&str, &SigningKey)]) {
    let known: HashMap<KeyId, (&str, VerifyingKey)> = keys
        .iter()
        .map(|(p, k)| (kid(k), (*p, k.verifying_key())))
        .collect();
    for l in logged {
        let msg = l.envelope.signing_bytes();
        for s in &l.envelope.signatures {
            let Some((party, key)) = known.get(&s.key_id) else {
                panic!(
                    "ATTACK SUCCEEDED: entry {} is signed by key {} that no test party holds",
                    l.index, s.key_id
                );
            };
            assert!(
                key.verify_strict(&msg, &Signature::from_bytes(&s.sig))
                    .is_ok(),
                "ATTACK SUCCEEDED: entry {} carries a signature by {} that does not verify",
                l.index,
                s.key_id
            );
            assert_eq!(
                *party, l.event.reporter,
                "ATTACK SUCCEEDED: entry {} reported by {} is signed by a key of {party}",
                l.index, l.event.reporter
            );
        }
    }
}

// ---------------------------------------------------------------------
// 1. Race a revocation
// ---------------------------------------------------------------------

/// Three devices each stream 1,800 CAPTUREs signed by their key while the
/// owner revokes each key mid-stream (on another connection, at a
/// different point of each stream). With batches of 64, the batch after
/// each revocation's batch was checked against the registry in which the
/// key could still sign. No capture signed by a key may be logged after
/// its revocation; every capture refused is refused for that revocation.
#[tokio::test(flavor = "multi_thread")]
async fn r1_no_capture_is_logged_after_its_keys_revocation() {
    let _serial = SERIAL.lock().await;
    let mut log = Log::init();
    log.start_with(&["--max-batch", "64", "--refused-per-client", "0"]);
    let mut c = log.client().await;
    const PARTIES: usize = 3;
    const N: usize = 1_800;
    let mut parties = Vec::new();
    for p in 0..PARTIES {
        let party = format!("cam{p}");
        let key = register(&log, &mut c, &party, 0, 0).await;
        parties.push((party, key));
    }

    let mut streams = Vec::new();
    let mut revokers = Vec::new();
    for (p, (party, key)) in parties.iter().enumerate() {
        let answered = Arc::new(AtomicUsize::new(0));
        let reqs: Vec<_> = (0..N)
            .map(|_| by(&event(party, capture(party)), &[key]))
            .collect();
        let mut sc = log.client().await;
        let a = answered.clone();
        streams.push(tokio::spawn(async move {
            let mut out = sc
                .append_stream(tokio_stream::iter(reqs))
                .await
                .expect("open stream")
                .into_inner();
            let mut got = Vec::with_capacity(N);
            while let Some(r) = out.message().await.expect("stream") {
                got.push(r);
                a.fetch_add(1, Ordering::Relaxed);
            }
            got
        }));
        let mut rc = log.client().await;
        let revocation = owner_event(&log, revoke(party, key));
        let after = 100 + 150 * p;
        revokers.push(tokio::spawn(async move {
            while answered.load(Ordering::Relaxed) < after {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            rc.append(revocation)
                .await
                .expect("the revocation is logged")
                .into_inner()
                .index
        }));
    }
    let mut answers = Vec::new();
    for s in streams {
        answers.push(s.await.expect("stream task"));
    }
    let mut revoked_at = Vec::new();
    for r in revokers {
        revoked_at.push(r.await.expect("revoker task"));
    }

    let mut size = *revoked_at.iter().max().unwrap();
    for ((party, _), (got, r)) in parties.iter().zip(answers.iter().zip(&revoked_at)) {
        assert_eq!(got.len(), N);
        size = size.max(largest(got));
        let mut logged = 0;
        let mut refused = 0;
        let mut late = Vec::new();
        let mut wrong = Vec::new();
        for (k, a) in got.iter().enumerate() {
            if a.error_code == 0 {
                logged += 1;
                if a.index > *r {
                    late.push((k, a.index));
                }
            } else {
                refused += 1;
                if a.error_code != Code::PermissionDenied as i32
                    || !a
                        .error_message
                        .contains(&format!("was revoked by log entry {r}"))
                {
                    wrong.push((k, a.error_code, a.error_message.clone()));
                }
            }
        }
        assert!(
            late.is_empty(),
            "ATTACK SUCCEEDED: {} captures by {party}'s key were logged after its revocation at {r}: {:?}",
            late.len(),
            &late[..late.len().min(10)]
        );
        assert!(
            wrong.is_empty(),
            "{party}: {} captures refused otherwise than for the revocation at {r}: {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(10)]
        );
        eprintln!(
            "{party}: {logged} logged before the revocation at {r}, {refused} refused after it"
        );
        assert!(
            logged > 0 && refused > 0,
            "{party}: the revocation did not land mid-stream ({logged} logged, {refused} refused): the race was not run"
        );
    }

    // The log itself: every entry by a revoked key precedes its revocation,
    // and is exactly one the stream was told was logged.
    let entries = read_log(&log, &mut c, size + 1).await;
    for ((party, key), (got, r)) in parties.iter().zip(answers.iter().zip(&revoked_at)) {
        let acked: HashSet<u64> = got
            .iter()
            .filter(|a| a.error_code == 0)
            .map(|a| a.index)
            .collect();
        let mut by_key = HashSet::new();
        for l in entries.iter().filter(|l| l.signed_by(key)) {
            assert!(
                l.index < *r,
                "ATTACK SUCCEEDED: entry {} signed by {party}'s key is after its revocation at {r}",
                l.index
            );
            by_key.insert(l.index);
        }
        let revocation = entries.iter().find(|l| l.index == *r).expect("revocation");
        assert!(matches!(
            revocation.event.body,
            custody_domain::EventBody::KeyRevoked(_)
        ));
        // Setup entries signed by the key: none (the owner signed them).
        assert_eq!(
            by_key, acked,
            "{party}: the entries signed by its key are not the ones acknowledged"
        );
    }
    let mut keys: Vec<(&str, &SigningKey)> = vec![(log.owner_id.as_str(), &log.owner)];
    keys.extend(parties.iter().map(|(p, k)| (p.as_str(), k)));
    signatures_hold(&entries, &keys);
    audit_agrees(&log);
}

// ---------------------------------------------------------------------
// 2. A key added and used at once
// ---------------------------------------------------------------------

/// One stream adds a new key for the camera and at once sends 240 events
/// signed by it, five times over (batches of 16, so the checker has not
/// seen the key for the batches right after it). Some carry a flipped bit:
/// alone; as the new key's signature beside a valid one by a key the
/// checker knew (so the checker verifies one, and the other is left for
/// admission); or as the known key's signature beside a valid one by the
/// new key. Every forgery is refused; every good event is logged after its
/// key.
#[tokio::test(flavor = "multi_thread")]
async fn r2_a_key_used_right_after_its_key_added_is_verified_in_full() {
    let _serial = SERIAL.lock().await;
    let mut log = Log::init();
    log.start_with(&["--max-batch", "16", "--refused-per-client", "0"]);
    let mut c = log.client().await;
    let k0 = register(&log, &mut c, "cam", 0, 0).await;
    let bystander = register(&log, &mut c, "gate", 0, 0).await;

    const ROUNDS: usize = 5;
    const PER_ROUND: usize = 240;
    let mut reqs = Vec::new();
    let mut expect = Vec::new();
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let kn = new_key();
        let added = reqs.len();
        reqs.push(owner_event(&log, key_added("cam", &kn, 0, 0)));
        expect.push(Expect::Logged);
        let mut good = Vec::new();
        for j in 0..PER_ROUND {
            let e = event("cam", capture("cam"));
            let (r, x) = match j % 8 {
                1 => (forged(&e, &[&kn], 0), denied("does not verify")),
                3 => (forged(&e, &[&k0, &kn], 1), denied("does not verify")),
                5 => (forged(&e, &[&k0, &kn], 0), denied("does not verify")),
                6 => (by(&e, &[&k0, &kn]), Expect::Logged),
                7 => (
                    by(&event("gate", capture("gate")), &[&bystander]),
                    Expect::Logged,
                ),
                _ => (by(&e, &[&kn]), Expect::Logged),
            };
            if matches!(x, Expect::Logged) && j % 8 != 7 {
                good.push(reqs.len());
            }
            reqs.push(r);
            expect.push(x);
        }
        rounds.push((kn, added, good));
    }
    let got = stream(&c, reqs).await;
    let at = check("key added and used at once", &expect, &got);

    let entries = read_log(&log, &mut c, largest(&got) + 1).await;
    for (n, (kn, added, good)) in rounds.iter().enumerate() {
        let added_at = at[*added].expect("KEY_ADDED logged");
        for g in good {
            let i = at[*g].expect("good event logged");
            assert!(
                i > added_at,
                "round {n}: an event signed by the new key was logged at {i}, before its KEY_ADDED at {added_at}"
            );
        }
        let signed: HashSet<u64> = entries
            .iter()
            .filter(|l| l.signed_by(kn))
            .map(|l| l.index)
            .collect();
        let acked: HashSet<u64> = good.iter().map(|g| at[*g].unwrap()).collect();
        assert_eq!(
            signed, acked,
            "round {n}: the entries signed by the new key are not the good events acknowledged"
        );
    }
    let mut keys: Vec<(&str, &SigningKey)> = vec![
        (log.owner_id.as_str(), &log.owner),
        ("cam", &k0),
        ("gate", &bystander),
    ];
    keys.extend(rounds.iter().map(|(k, _, _)| ("cam", k)));
    signatures_hold(&entries, &keys);
    audit_agrees(&log);
}

// ---------------------------------------------------------------------
// 3. A key's validity window, crossed mid-stream
// ---------------------------------------------------------------------

/// A key valid for 1 s, starting 1 s from now, signs an event every
/// few milliseconds from before its window opens to after it closes, beside
/// a busy reporter's traffic. The checker verifies every signature of it
/// (the key is known all along); only admission may say whether the key
/// could sign at the entry's integration time. Every logged entry by it
/// must be integrated inside its window.
#[tokio::test(flavor = "multi_thread")]
async fn r3_a_key_signs_only_inside_its_window_across_checked_ahead_batches() {
    let _serial = SERIAL.lock().await;
    let mut log = Log::init();
    log.start_with(&["--max-batch", "8", "--refused-per-client", "0"]);
    let mut c = log.client().await;
    let busy = register(&log, &mut c, "busy", 0, 0).await;
    let t0 = now();
    let (from, to) = (t0 + SEC, t0 + 2 * SEC);
    let win = register(&log, &mut c, "win", from, to).await;

    // Events by the busy reporter per event by the windowed key.
    const BUSY: usize = 2;
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::AppendRequest>(64);
    let producer = {
        let (win, busy) = (win.clone(), busy.clone());
        tokio::spawn(async move {
            let mut ticks = 0;
            while now() < to + SEC / 2 {
                let w = by(&event("win", capture("win")), &[&win]);
                if tx.send(w).await.is_err() {
                    break;
                }
                for _ in 0..BUSY {
                    let b = by(&event("busy", capture("busy")), &[&busy]);
                    if tx.send(b).await.is_err() {
                        break;
                    }
                }
                ticks += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            ticks
        })
    };
    let mut sc = c.clone();
    let mut out = sc
        .append_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("open stream")
        .into_inner();
    let mut got = Vec::new();
    while let Some(r) = out.message().await.expect("stream") {
        got.push(r);
    }
    let ticks = producer.await.expect("producer");
    assert_eq!(got.len(), (1 + BUSY) * ticks);

    let (mut early, mut inside, mut late) = (0, 0, 0);
    let mut wrong = Vec::new();
    let mut acked = HashSet::new();
    for (k, a) in got.iter().enumerate() {
        if k % (1 + BUSY) != 0 {
            assert_eq!(
                a.error_code, 0,
                "busy reporter refused: {}",
                a.error_message
            );
            continue;
        }
        if a.error_code == 0 {
            inside += 1;
            acked.insert(a.index);
        } else if a.error_code == Code::PermissionDenied as i32
            && a.error_message.contains("not valid yet")
        {
            early += 1;
        } else if a.error_code == Code::PermissionDenied as i32
            && a.error_message.contains("expired")
        {
            late += 1;
        } else {
            wrong.push((k, a.error_code, a.error_message.clone()));
        }
    }
    assert!(wrong.is_empty(), "refused for other reasons: {wrong:?}");
    eprintln!("windowed key: {early} early, {inside} inside, {late} late");
    assert!(
        early > 0 && inside > 0 && late > 0,
        "the stream did not cross both edges of the window ({early} early, {inside} inside, {late} late)"
    );

    let entries = read_log(&log, &mut c, largest(&got) + 1).await;
    let mut signed = HashSet::new();
    for l in entries.iter().filter(|l| l.signed_by(&win)) {
        assert!(
            (from..to).contains(&l.time),
            "ATTACK SUCCEEDED: entry {} signed by the windowed key was integrated at {}, outside its window [{from}, {to})",
            l.index,
            l.time
        );
        signed.insert(l.index);
    }
    assert_eq!(signed, acked);
    signatures_hold(
        &entries,
        &[
            (log.owner_id.as_str(), &log.owner),
            ("busy", &busy),
            ("win", &win),
        ],
    );
    audit_agrees(&log);
}

// ---------------------------------------------------------------------
// 4. One party's key signing for another while keys churn
// ---------------------------------------------------------------------

/// In one stream (batches of 8), the owner adds a second key for party a,
/// revokes a's first key, then adds a second key for b and revokes b's
/// first, while a and b send events signed by their own keys, each other's
/// keys, the keys just added (which the checker has not seen) and pairs
/// of both. A key signs only for its own party, whatever the checker saw.
#[tokio::test(flavor = "multi_thread")]
async fn r4_a_key_never_signs_for_another_party_while_keys_churn() {
    let _serial = SERIAL.lock().await;
    let mut log = Log::init();
    log.start_with(&["--max-batch", "8", "--refused-per-client", "0"]);
    let mut c = log.client().await;
    let ka = register(&log, &mut c, "a", 0, 0).await;
    let kb = register(&log, &mut c, "b", 0, 0).await;
    let (ka2, kb2) = (new_key(), new_key());
    let of_a = "belongs to party a";
    let of_b = "belongs to party b";

    let mut plan: Vec<(v1::AppendRequest, Expect)> = Vec::new();
    let ev = |p: &str| event(p, capture(p));
    // Phase 1: a gets a second key.
    plan.push((
        owner_event(&log, key_added("a", &ka2, 0, 0)),
        Expect::Logged,
    ));
    for _ in 0..40 {
        plan.push((by(&ev("b"), &[&kb]), Expect::Logged));
        plan.push((by(&ev("b"), &[&ka]), denied(of_a)));
        plan.push((by(&ev("b"), &[&ka2]), denied(of_a)));
        plan.push((by(&ev("b"), &[&kb, &ka]), denied(of_a)));
        plan.push((by(&ev("b"), &[&kb, &ka2]), denied(of_a)));
        plan.push((by(&ev("a"), &[&ka2]), Expect::Logged));
        plan.push((by(&ev("a"), &[&kb]), denied(of_b)));
    }
    // Phase 2: a's first key is revoked.
    let revoke_a = plan.len();
    plan.push((owner_event(&log, revoke("a", &ka)), Expect::Logged));
    for _ in 0..40 {
        plan.push((by(&ev("a"), &[&ka]), denied("revoked")));
        plan.push((by(&ev("a"), &[&ka2]), Expect::Logged));
        plan.push((by(&ev("b"), &[&ka]), denied("revoked")));
        plan.push((by(&ev("b"), &[&kb, &ka2]), denied(of_a)));
    }
    // Phase 3: b moves to a new key.
    let add_b = plan.len();
    plan.push((
        owner_event(&log, key_added("b", &kb2, 0, 0)),
        Expect::Logged,
    ));
    let revoke_b = plan.len();
    plan.push((owner_event(&log, revoke("b", &kb)), Expect::Logged));
    for _ in 0..40 {
        plan.push((by(&ev("b"), &[&kb2]), Expect::Logged));
        plan.push((by(&ev("b"), &[&kb]), denied("revoked")));
        plan.push((by(&ev("a"), &[&kb2]), denied(of_b)));
        plan.push((by(&ev("b"), &[&kb2, &ka2]), denied(of_a)));
        plan.push((by(&ev("a"), &[&ka2, &kb2]), denied(of_b)));
    }
    let (reqs, expect): (Vec<_>, Vec<_>) = plan.into_iter().unzip();
    let got = stream(&c, reqs).await;
    let at = check("key churn", &expect, &got);
    let (ra, ab, rb) = (
        at[revoke_a].unwrap(),
        at[add_b].unwrap(),
        at[revoke_b].unwrap(),
    );

    let entries = read_log(&log, &mut c, largest(&got) + 1).await;
    for l in &entries {
        assert!(
            !(l.signed_by(&ka) && l.index > ra),
            "ATTACK SUCCEEDED: entry {} signed by a's revoked key, after its revocation at {ra}",
            l.index
        );
        assert!(
            !(l.signed_by(&kb) && l.index > rb),
            "ATTACK SUCCEEDED: entry {} signed by b's revoked key, after its revocation at {rb}",
            l.index
        );
        assert!(
            !(l.signed_by(&kb2) && l.index < ab),
            "entry {} signed by b's new key before its KEY_ADDED at {ab}",
            l.index
        );
    }
    // Every signer of every entry is a key of its reporter.
    signatures_hold(
        &entries,
        &[
            (log.owner_id.as_str(), &log.owner),
            ("a", &ka),
            ("a", &ka2),
            ("b", &kb),
            ("b", &kb2),
        ],
    );
    audit_agrees(&log);
}

// ---------------------------------------------------------------------
// 5. Resubmissions across the gap
// ---------------------------------------------------------------------

/// 150 events are logged by key K. Then one stream (batches of 8) revokes
/// K, adds K2, and for each event resubmits it unchanged (answered as the
/// duplicate it is, at its index), with a flipped bit (refused), with its
/// event_id but other content by the revoked K (refused, never logged),
/// and its body signed by K2 (same id, other signature: refused as another
/// event with that id); and sends a new event by K2 twice (logged once,
/// then its duplicate), and a new one by K (refused: revoked). Each
/// event_id is logged exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn r5_resubmissions_across_checked_ahead_batches_are_logged_once() {
    let _serial = SERIAL.lock().await;
    let mut log = Log::init();
    log.start_with(&["--max-batch", "8", "--refused-per-client", "0"]);
    let mut c = log.client().await;
    let k = register(&log, &mut c, "cam", 0, 0).await;
    let k2 = new_key();
    const N: usize = 150;
    let originals: Vec<v1::Event> = (0..N).map(|_| event("cam", capture("cam"))).collect();
    let first = stream(&c, originals.iter().map(|e| by(e, &[&k])).collect()).await;
    let logged_at: Vec<u64> = check("originals", &vec![Expect::Logged; N], &first)
        .into_iter()
        .map(Option::unwrap)
        .collect();

    let mut reqs = vec![
        owner_event(&log, revoke("cam", &k)),
        owner_event(&log, key_added("cam", &k2, 0, 0)),
    ];
    let mut fresh = Vec::new();
    for e in &originals {
        reqs.push(by(e, &[&k]));
        reqs.push(forged(e, &[&k], 0));
        let mut changed = e.clone();
        changed.event_time_unix_nanos += 1;
        reqs.push(by(&changed, &[&k]));
        reqs.push(by(e, &[&k2]));
        let f = event("cam", capture("cam"));
        reqs.push(by(&f, &[&k2]));
        reqs.push(by(&f, &[&k2]));
        reqs.push(by(&event("cam", capture("cam")), &[&k]));
        fresh.push(f);
    }
    let got = stream(&c, reqs).await;
    assert_eq!(got[0].error_code, 0, "revocation: {}", got[0].error_message);
    assert_eq!(got[1].error_code, 0, "KEY_ADDED: {}", got[1].error_message);
    let revoked_at = got[0].index;
    let mut wrong = Vec::new();
    let mut fresh_at = Vec::new();
    for (i, chunk) in got[2..].chunks(7).enumerate() {
        let (same, flipped, changed, resigned, f1, f2, new_by_k) = (
            &chunk[0], &chunk[1], &chunk[2], &chunk[3], &chunk[4], &chunk[5], &chunk[6],
        );
        if !(same.error_code == 0 && same.duplicate && same.index == logged_at[i]) {
            wrong.push(format!(
                "event {i}: the unchanged resubmission got code {} {:?}, index {} duplicate {} (logged at {})",
                same.error_code, same.error_message, same.index, same.duplicate, logged_at[i]
            ));
        }
        for (what, r) in [
            ("flipped bit", flipped),
            ("other content by the revoked key", changed),
            ("re-signed by the new key", resigned),
            ("new event by the revoked key", new_by_k),
        ] {
            if r.error_code == 0 {
                wrong.push(format!(
                    "ATTACK SUCCEEDED: event {i}, {what}: answered as logged at {} (duplicate {})",
                    r.index, r.duplicate
                ));
            } else if r.error_code != Code::PermissionDenied as i32
                && r.error_code != Code::AlreadyExists as i32
            {
                wrong.push(format!(
                    "event {i}, {what}: refused with code {} {:?}",
                    r.error_code, r.error_message
                ));
            }
        }
        if new_by_k.error_code != 0 && !new_by_k.error_message.contains("revoked") {
            wrong.push(format!(
                "event {i}: a new event by the revoked key was refused with {:?}",
                new_by_k.error_message
            ));
        }
        if !(f1.error_code == 0 && !f1.duplicate && f1.index > revoked_at) {
            wrong.push(format!(
                "event {i}: a new event by the new key got code {} {:?} index {} duplicate {}",
                f1.error_code, f1.error_message, f1.index, f1.duplicate
            ));
        }
        if !(f2.error_code == 0 && f2.duplicate && f2.index == f1.index) {
            wrong.push(format!(
                "event {i}: its resubmission got code {} {:?} index {} duplicate {} (first at {})",
                f2.error_code, f2.error_message, f2.index, f2.duplicate, f1.index
            ));
        }
        fresh_at.push(f1.index);
    }
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );

    let size = largest(&got).max(*logged_at.iter().max().unwrap());
    let entries = read_log(&log, &mut c, size + 1).await;
    let mut ids: HashMap<&str, Vec<u64>> = HashMap::new();
    for l in &entries {
        ids.entry(l.event.event_id.as_str())
            .or_default()
            .push(l.index);
        assert!(
            !(l.signed_by(&k) && l.index > revoked_at),
            "ATTACK SUCCEEDED: entry {} signed by the revoked key after {revoked_at}",
            l.index
        );
    }
    for (id, at) in &ids {
        assert_eq!(
            at.len(),
            1,
            "ATTACK SUCCEEDED: event_id {id} is logged at {at:?}"
        );
    }
    for (e, i) in originals.iter().zip(&logged_at) {
        assert_eq!(ids.get(e.event_id.as_str()), Some(&vec![*i]));
    }
    for (e, i) in fresh.iter().zip(&fresh_at) {
        assert_eq!(ids.get(e.event_id.as_str()), Some(&vec![*i]));
    }
    signatures_hold(
        &entries,
        &[
            (log.owner_id.as_str(), &log.owner),
            ("cam", &k),
            ("cam", &k2),
        ],
    );
    audit_agrees(&log);
}

// ---------------------------------------------------------------------
// 6. Bulk events signed on the edge
// ---------------------------------------------------------------------

fn manifest(n: usize) -> Vec<[u8; 32]> {
    let mut m: Vec<[u8; 32]> = (0..n).map(|_| random_digest()).collect();
    m.sort();
    m.dedup();
    m
}

/// `bulk_capture` is a CAPTURE of manifest `m` by `actor` into its system.
fn bulk_capture(actor: &str, m: &v1::Manifest) -> v1::Event {
    let mut e = event(
        actor,
        Body::Custody(v1::CustodyAction {
            action: v1::CustodyActionKind::Capture as i32,
            actor: actor.into(),
            to_system: system_of(actor),
            modality: v1::Modality::FaceImage as i32,
            subject_class: v1::SubjectClass::Citizen as i32,
            manifest: Some(m.clone()),
            ..Default::default()
        }),
    );
    e.reporter_seq = 0;
    e
}

/// A bulk event (40 members, slices of 4: a `BulkJob`) leaves the checker
/// with its verdict on the signature alone. One signed by a key revoked in
/// the batch before (batches of 1: the checker saw the key valid) must be
/// refused, one forged by a key added in the batch before (the checker did
/// not know it) must be refused, and one by that key, valid, logged; over
/// several rounds, so both sides of each race are run.
#[tokio::test(flavor = "multi_thread")]
async fn r6_a_bulk_event_signed_on_the_edge_of_a_key_change_is_judged_at_admission() {
    let _serial = SERIAL.lock().await;
    let mut log = Log::init();
    log.start_with(&[
        "--max-batch",
        "1",
        "--bulk-slice",
        "4",
        "--refused-per-client",
        "0",
    ]);
    let mut c = log.client().await;
    let mut key = register(&log, &mut c, "cam", 0, 0).await;
    let mut keys = vec![key.clone()];
    let mut revoked = Vec::new();
    let mut size = 0;
    for round in 0..4 {
        let (m1, m2, m3) = (
            put_manifest(&mut c, &manifest(40)).await,
            put_manifest(&mut c, &manifest(40)).await,
            put_manifest(&mut c, &manifest(40)).await,
        );
        let next = new_key();
        let reqs = vec![
            owner_event(&log, revoke("cam", &key)),
            by(&bulk_capture("cam", &m1), &[&key]),
            owner_event(&log, key_added("cam", &next, 0, 0)),
            forged(&bulk_capture("cam", &m2), &[&next], 0),
            by(&bulk_capture("cam", &m3), &[&next]),
            // The refused manifest, now by the valid key.
            by(&bulk_capture("cam", &m1), &[&next]),
        ];
        let expect = vec![
            Expect::Logged,
            denied("revoked"),
            Expect::Logged,
            denied("does not verify"),
            Expect::Logged,
            Expect::Logged,
        ];
        let got = stream(&c, reqs).await;
        size = size.max(largest(&got));
        let at = check(&format!("bulk round {round}"), &expect, &got);
        assert!(at[4].unwrap() > at[2].unwrap());
        revoked.push((key.clone(), at[0].unwrap()));
        key = next;
        keys.push(key.clone());
    }
    let entries = read_log(&log, &mut c, size + 1).await;
    for (k, r) in &revoked {
        for l in entries.iter().filter(|l| l.signed_by(k)) {
            assert!(
                l.index < *r,
                "ATTACK SUCCEEDED: bulk entry {} signed by a key revoked at {r}",
                l.index
            );
        }
    }
    let mut all: Vec<(&str, &SigningKey)> = vec![(log.owner_id.as_str(), &log.owner)];
    all.extend(keys.iter().map(|k| ("cam", k)));
    signatures_hold(&entries, &all);
    audit_agrees(&log);
}

/// While a long bulk job runs (1,000 members, slices of 1), the reporter's
/// later events are held back, each already checked by the checker, and
/// handed on after the job, in order, with what was held behind them.
/// First: a bulk event by the camera, then the camera's key revoked (logged
/// at once, mid-job), then its events: the bulk event and all of them are
/// refused. Then: a bulk event by the gate, its events, the gate's key
/// revoked (held behind them) and more events, checked while the key could
/// sign: those before the revocation are logged, those after refused.
#[tokio::test(flavor = "multi_thread")]
async fn r6b_events_held_behind_a_bulk_job_are_judged_by_the_registry_of_their_entry() {
    let _serial = SERIAL.lock().await;
    let mut log = Log::init();
    log.start_with(&[
        "--max-batch",
        "8",
        "--bulk-slice",
        "1",
        "--refused-per-client",
        "0",
    ]);
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let gate = register(&log, &mut c, "gate", 0, 0).await;
    const HELD: usize = 60;

    // The revocation is logged mid-job.
    let m = put_manifest(&mut c, &manifest(1_000)).await;
    let mut plan = vec![
        (by(&bulk_capture("cam", &m), &[&cam]), denied("revoked")),
        (owner_event(&log, revoke("cam", &cam)), Expect::Logged),
    ];
    for k in 0..HELD {
        let e = event("cam", capture("cam"));
        if k % 5 == 0 {
            plan.push((forged(&e, &[&cam], 0), denied("")));
        } else {
            plan.push((by(&e, &[&cam]), denied("revoked")));
        }
    }
    let (reqs, expect): (Vec<_>, Vec<_>) = plan.into_iter().unzip();
    let got = stream(&c, reqs).await;
    let at = check("revoked mid-job", &expect, &got);
    let cam_revoked = at[1].unwrap();
    let mut size = largest(&got);

    // The revocation is held behind the gate's events.
    let m = put_manifest(&mut c, &manifest(1_000)).await;
    let mut plan = vec![(by(&bulk_capture("gate", &m), &[&gate]), Expect::Logged)];
    for _ in 0..HELD {
        plan.push((
            by(&event("gate", capture("gate")), &[&gate]),
            Expect::Logged,
        ));
    }
    let revocation = plan.len();
    plan.push((owner_event(&log, revoke("gate", &gate)), Expect::Logged));
    for k in 0..HELD {
        let e = event("gate", capture("gate"));
        if k % 5 == 0 {
            plan.push((forged(&e, &[&gate], 0), denied("")));
        } else {
            plan.push((by(&e, &[&gate]), denied("revoked")));
        }
    }
    let (reqs, expect): (Vec<_>, Vec<_>) = plan.into_iter().unzip();
    let got = stream(&c, reqs).await;
    let at = check("revoked behind held events", &expect, &got);
    let gate_revoked = at[revocation].unwrap();
    for (k, i) in at.iter().enumerate().take(revocation) {
        assert!(
            i.unwrap() < gate_revoked,
            "request {k} logged at {i:?}, after the revocation at {gate_revoked} that followed it"
        );
    }
    size = size.max(largest(&got));

    let entries = read_log(&log, &mut c, size + 1).await;
    for l in &entries {
        assert!(
            !(l.signed_by(&cam) && l.index > cam_revoked),
            "ATTACK SUCCEEDED: entry {} signed by the camera's key after its revocation at {cam_revoked}",
            l.index
        );
        assert!(
            !(l.signed_by(&gate) && l.index > gate_revoked),
            "ATTACK SUCCEEDED: entry {} signed by the gate's key after its revocation at {gate_revoked}",
            l.index
        );
    }
    signatures_hold(
        &entries,
        &[
            (log.owner_id.as_str(), &log.owner),
            ("cam", &cam),
            ("gate", &gate),
        ],
    );
    audit_agrees(&log);
}

// ---------------------------------------------------------------------
// 7. Floods of forgeries
// ---------------------------------------------------------------------

/// Connections a flood comes from, and envelopes on each.
const STREAMS: usize = 8;
const FLOOD: usize = 600;
/// How long an honest append may wait behind a flood: the flood takes
/// about a second to answer in a debug build on two cores, which other
/// suites' servers share.
const STALL: Duration = Duration::from_secs(5);

/// `flood` has the vendor send `STREAMS` × `FLOOD` envelopes of four
/// signatures by `key`, the last forged, at once (after the owner's
/// KEY_ADDED of `key` when `add` is set: the checker has not seen it for a
/// batch or two, so the sequencer verifies those on its own thread), while
/// the honest camera appends every 50 ms until the flood is answered. It
/// asserts nothing forged was logged and returns the camera's slowest
/// answer.
async fn flood(
    log: &Log,
    c: &mut Client,
    cam: &SigningKey,
    key: &SigningKey,
    add: bool,
) -> Duration {
    // Signed before anything is sent, so the flood arrives at once.
    let plans: Vec<Vec<v1::AppendRequest>> = (0..STREAMS)
        .map(|_| {
            (0..FLOOD)
                .map(|_| {
                    let e = event("vend", capture("vend"));
                    forged(&e, &[key, key, key, key], 3)
                })
                .collect()
        })
        .collect();
    let adder = if add {
        let mut kc = log.client().await;
        let r = owner_event(log, key_added("vend", key, 0, 0));
        Some(tokio::spawn(async move { kc.append(r).await }))
    } else {
        None
    };
    let mut floods = Vec::new();
    for reqs in plans {
        let fc = log.client().await;
        floods.push(tokio::spawn(async move { stream(&fc, reqs).await }));
    }
    let mut slowest = Duration::ZERO;
    let mut n = 0;
    let mut during = 0;
    while n < 5 || (!floods.iter().all(|f| f.is_finished()) && n < 400) {
        if !floods.iter().all(|f| f.is_finished()) {
            during += 1;
        }
        let t = Instant::now();
        c.append(by(&event("cam", capture("cam")), &[cam]))
            .await
            .expect("the honest camera's append is logged");
        slowest = slowest.max(t.elapsed());
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(a) = adder {
        a.await.expect("adder").expect("KEY_ADDED logged");
    }
    for f in floods {
        for a in f.await.expect("flood") {
            assert!(
                a.error_code != 0,
                "ATTACK SUCCEEDED: a forged envelope was logged at {}",
                a.index
            );
            // Refused as a forgery, or (sent before its KEY_ADDED) by an
            // unknown key.
            assert_eq!(
                a.error_code,
                Code::PermissionDenied as i32,
                "{}",
                a.error_message
            );
        }
    }
    assert!(during >= 1, "the flood was over before the honest appends");
    slowest
}

/// A vendor floods the log with forged signatures: 8 × 600 envelopes
/// of four signatures by its registered key, the last forged (so every
/// chunk of the checker's batch equation fails and each signature is
/// checked alone), three times. An honest camera's appends meanwhile must
/// each be answered within `STALL`; nothing of the vendor's is logged.
#[tokio::test(flavor = "multi_thread")]
async fn r7_a_flood_of_forgeries_does_not_stall_an_honest_reporter() {
    let _serial = SERIAL.lock().await;
    let mut log = Log::init();
    // The refusal budget off (`--refused-per-client 0`): with it on, the
    // flood, from the camera's address, would be turned away unread. This
    // is the sequencer's own isolation, the worst case.
    log.start_with(&["--refused-per-client", "0"]);
    let mut c = log.client().await;
    let vend = register(&log, &mut c, "vend", 0, 0).await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        let s = flood(&log, &mut c, &cam, &vend, false).await;
        eprintln!("known key, round {round}: the honest camera's slowest append: {s:?}");
        slowest = slowest.max(s);
    }
    assert!(
        slowest < STALL,
        "ATTACK SUCCEEDED: an honest append waited {slowest:?} behind a flood of forgeries"
    );
}

/// The same flood, each time by a key the owner adds for the vendor in
/// the same instant (the vendor asked for it, so it knows when): the
/// checker has not seen the key, so the sequencer verifies the flood's
/// signatures by it on its own thread, one by one. An honest camera's
/// appends meanwhile must each be answered within `STALL`.
#[tokio::test(flavor = "multi_thread")]
async fn r8_a_flood_by_a_key_just_added_does_not_stall_an_honest_reporter() {
    let _serial = SERIAL.lock().await;
    let mut log = Log::init();
    // The refusal budget off (`--refused-per-client 0`): with it on, the
    // flood, from the camera's address, would be turned away unread. This
    // is the sequencer's own isolation, the worst case.
    log.start_with(&["--refused-per-client", "0"]);
    let mut c = log.client().await;
    register(&log, &mut c, "vend", 0, 0).await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        let s = flood(&log, &mut c, &cam, &new_key(), true).await;
        eprintln!("key just added, round {round}: the honest camera's slowest append: {s:?}");
        slowest = slowest.max(s);
    }
    assert!(
        slowest < STALL,
        "ATTACK SUCCEEDED: an honest append waited {slowest:?} behind a flood signed by a key just added"
    );
}
