//! Attacks on bulk events admitted in slices (`BulkJob`, the sequencer's
//! hold-back rule and the queries' pinning while a job runs), by hostile
//! reporters: vendors who want a copy hidden, a finding gone or wrong,
//! other reporters stalled, or the server exhausted. Each test asserts the
//! secure behaviour: it passes when the defence holds and fails (with
//! "ATTACK SUCCEEDED") when the attack works.
//!
//! The world: the data owner, and three devices acting for it, each with a
//! system of its own ([`register`]): a camera "cam" (which reports the bulk
//! events unless said otherwise), a gate "gate" and a vendor's box
//! "vendor". Manifests of a few thousand members, with `--bulk-slice 4`,
//! so a job runs for thousands of sequencer steps.

use std::time::{Duration, Instant};

use custody_domain::{hex, key_id_of, rfc3339};
use custody_e2e::*;
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use custody_proto::v1::event::Body;
use custody_proto::v1::CustodyActionKind as K;
use ed25519_dalek::SigningKey;
use serde_json::Value;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::Code;

type Client = CustodyLogClient<Channel>;
type Query = CustodyQueryClient<Channel>;

const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;

/// `--bulk-slice` for most tests.
const SLICE: &str = "4";
/// Members of a typical bulk event here.
const MEMBERS: usize = 4_000;
/// A long job, for attacks that need time while it runs: with
/// `--bulk-slice 1`, 8,000 slices of about half a millisecond each (a
/// debug build on two cores), some 4 s.
const LONG: usize = 8_000;
/// `--bulk-slice` for long jobs.
const LONG_SLICE: &str = "1";

/// The timing test (M) runs alone: the others share this lock, it takes
/// it whole, so their load does not pass for its stalls.
static EXCLUSIVE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

async fn shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    EXCLUSIVE.read().await
}

async fn exclusive() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    EXCLUSIVE.write().await
}

// ---------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------

/// `manifest` is `n` random digests, sorted and distinct.
fn manifest(n: usize) -> Vec<[u8; 32]> {
    let mut m: Vec<[u8; 32]> = (0..n).map(|_| random_digest()).collect();
    m.sort();
    m.dedup();
    m
}

/// `act` is a custody action body of `kind` by `actor`, set up by `f`.
fn act(kind: K, actor: &str, f: impl FnOnce(&mut v1::CustodyAction)) -> Body {
    let mut a = v1::CustodyAction {
        action: kind as i32,
        actor: actor.into(),
        ..Default::default()
    };
    f(&mut a);
    Body::Custody(a)
}

/// `over` makes a custody body act on manifest `m` instead of a digest.
fn over(mut b: Body, m: &v1::Manifest) -> Body {
    if let Body::Custody(a) = &mut b {
        a.asset_digest.clear();
        a.manifest = Some(m.clone());
    }
    b
}

/// `ev` is an event by `reporter`, now, with no sequence number (so no
/// sequence_gap findings muddy the counts).
fn ev(reporter: &str, body: Body) -> v1::Event {
    let mut e = event(reporter, body);
    e.reporter_seq = 0;
    e
}

/// `capture_one` is a CAPTURE of `asset` by `actor` into its own system.
fn capture_one(actor: &str, asset: &[u8; 32], class: v1::SubjectClass) -> v1::Event {
    ev(
        actor,
        act(K::Capture, actor, |a| {
            a.asset_digest = asset.to_vec();
            a.to_system = system_of(actor);
            a.modality = v1::Modality::FaceImage as i32;
            a.subject_class = class as i32;
        }),
    )
}

/// `bulk_capture` is a CAPTURE of manifest `m` by `actor` into its system.
fn bulk_capture(actor: &str, m: &v1::Manifest) -> v1::Event {
    ev(
        actor,
        over(
            act(K::Capture, actor, |a| {
                a.to_system = system_of(actor);
                a.modality = v1::Modality::FaceImage as i32;
                a.subject_class = v1::SubjectClass::Citizen as i32;
            }),
            m,
        ),
    )
}

/// `transfer` is a COPY or MOVE of `asset` by `actor` (reporting it)
/// between two systems, under `grant` (empty: none).
fn transfer(
    kind: K,
    actor: &str,
    asset: &[u8; 32],
    from: &str,
    to: &str,
    grant: &str,
) -> v1::Event {
    ev(
        actor,
        act(kind, actor, |a| {
            a.asset_digest = asset.to_vec();
            a.from_system = from.into();
            a.to_system = to.into();
            a.grant_id = grant.into();
            a.purpose = v1::Purpose::Maintenance as i32;
        }),
    )
}

/// `bulk_transfer` is [`transfer`] of manifest `m`.
fn bulk_transfer(
    kind: K,
    actor: &str,
    m: &v1::Manifest,
    from: &str,
    to: &str,
    grant: &str,
) -> v1::Event {
    let mut e = transfer(kind, actor, &[0; 32], from, to, grant);
    e.body = Some(over(e.body.take().unwrap(), m));
    e
}

/// `receipt` is a RECEIPT by `actor` of the transfer logged at `of`.
fn receipt(actor: &str, of: u64) -> v1::Event {
    ev(
        actor,
        act(K::Receipt, actor, |a| {
            a.receipt_of = of;
        }),
    )
}

/// `use_on` is an ACCESS of `asset` by `actor` on `system`.
fn access(actor: &str, asset: &[u8; 32], system: &str) -> v1::Event {
    ev(
        actor,
        act(K::Access, actor, |a| {
            a.asset_digest = asset.to_vec();
            a.from_system = system.into();
            a.purpose = v1::Purpose::Maintenance as i32;
        }),
    )
}

/// `send` appends without waiting for a checkpoint: the index.
async fn send(c: &mut Client, e: &v1::Event, keys: &[&SigningKey]) -> Result<u64, tonic::Status> {
    c.append(v1::AppendRequest {
        event: Some(signed(e, keys)),
        wait_for_checkpoint: false,
    })
    .await
    .map(|r| r.into_inner().index)
}

/// `sent` is the verdict of a spawned [`send`] and when it came.
type Sent = JoinHandle<(Result<u64, tonic::Status>, Instant)>;

/// `spawn_send` sends `e` signed by `key` in a task of its own.
fn spawn_send(c: &Client, e: v1::Event, key: &SigningKey) -> Sent {
    let mut c = c.clone();
    let key = key.clone();
    tokio::spawn(async move {
        let r = send(&mut c, &e, &[&key]).await;
        (r, Instant::now())
    })
}

/// `tree_size` is the size of the log's latest checkpoint, over HTTP.
async fn tree_size(http: &str) -> u64 {
    let body = reqwest::get(format!("{http}/checkpoint"))
        .await
        .expect("GET /checkpoint")
        .text()
        .await
        .expect("checkpoint body");
    body.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("checkpoint size line")
}

/// `wait_head` waits until the log's checkpoint grows past `before` (the
/// bulk entry is logged: the job is applying its members), asserting the
/// job is not acknowledged first.
async fn wait_head(http: &str, before: u64, job: &Sent) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tree_size(http).await <= before {
        assert!(
            !job.is_finished(),
            "the bulk event was answered before its entry was checkpointed: the test needs a longer job"
        );
        assert!(Instant::now() < deadline, "the bulk entry was never logged");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !job.is_finished(),
        "the job ended before the attack could start: the test needs a longer job"
    );
}

/// `all_findings` is every finding as of `as_of` (0: now), at the latest
/// answerable checkpoint, over all pages, with the total the first page
/// stated.
async fn all_findings(q: &mut Query, rule: &str, as_of: i64) -> (Vec<v1::Finding>, u64) {
    let mut out = Vec::new();
    let mut token = Vec::new();
    let mut total = None;
    loop {
        let r = q
            .findings(v1::FindingsRequest {
                rule: rule.into(),
                as_of_unix_nanos: as_of,
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("findings")
            .into_inner();
        total.get_or_insert(r.total);
        out.extend(r.findings);
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    (out, total.unwrap_or(0))
}

/// `on_entry` is the findings of `rule` whose first cited entry is `i`.
fn on_entry<'a>(all: &'a [v1::Finding], rule: &str, i: u64) -> Vec<&'a v1::Finding> {
    all.iter()
        .filter(|f| f.rule == rule && f.entries.first() == Some(&i))
        .collect()
}

/// `holders` is the systems holding `asset` now, as of `tree_size` (0:
/// the answerable checkpoint), or the status.
async fn holders(
    q: &mut Query,
    asset: &[u8; 32],
    tree_size: u64,
) -> Result<(Vec<String>, u64), tonic::Status> {
    q.holders_at(v1::HoldersAtRequest {
        asset: asset.to_vec(),
        time_unix_nanos: now(),
        tree_size,
    })
    .await
    .map(|r| {
        let r = r.into_inner();
        let size = r.evidence.as_ref().map_or(0, |e| e.tree_size);
        (r.intervals.into_iter().map(|i| i.system_id).collect(), size)
    })
}

/// `breach_count` is the breach scope's asset count of `system` over the
/// last day (and the tree size it answered as of).
async fn breach_count(q: &mut Query, system: &str) -> (u64, u64) {
    let r = q
        .breach_scope(v1::BreachScopeRequest {
            system_id: system.into(),
            from_unix_nanos: now() - 24 * HOUR,
            to_unix_nanos: now() + HOUR,
            page_size: 1,
            page_token: Vec::new(),
        })
        .await
        .expect("breach scope")
        .into_inner();
    (
        r.asset_count,
        r.evidence.as_ref().map_or(0, |e| e.tree_size),
    )
}

struct W {
    log: Log,
    c: Client,
    q: Query,
    owner: SigningKey,
    cam: SigningKey,
    gate: SigningKey,
    vendor: SigningKey,
}

impl W {
    /// `new` is a log served with `--bulk-slice slice` and `extra` flags,
    /// with cam, gate and vendor registered.
    async fn new(slice: &str, extra: &[&str]) -> Self {
        let mut log = Log::init();
        let mut args = vec!["--bulk-slice", slice];
        args.extend_from_slice(extra);
        log.start_with(&args);
        let mut c = log.client().await;
        let q = Query::connect(log.grpc.clone())
            .await
            .expect("query client");
        let cam = register(&log, &mut c, "cam", 0, 0).await;
        let gate = register(&log, &mut c, "gate", 0, 0).await;
        let vendor = register(&log, &mut c, "vendor", 0, 0).await;
        let owner = log.owner.clone();
        Self {
            log,
            c,
            q,
            owner,
            cam,
            gate,
            vendor,
        }
    }

    fn key(&self, party: &str) -> SigningKey {
        match party {
            "cam" => self.cam.clone(),
            "gate" => self.gate.clone(),
            "vendor" => self.vendor.clone(),
            _ => self.owner.clone(),
        }
    }

    /// `put` appends `e` signed by its reporter's key and waits for it.
    async fn put(&mut self, e: &v1::Event) -> u64 {
        let key = self.key(&e.reporter);
        send(&mut self.c, e, &[&key])
            .await
            .unwrap_or_else(|s| panic!("{} refused: {s}", e.event_id))
    }

    /// `spawn` sends `e` signed by its reporter's key in a task.
    fn spawn(&self, e: v1::Event) -> Sent {
        let key = self.key(&e.reporter);
        spawn_send(&self.c, e, &key)
    }

    /// `owner_event` is an event by the data owner.
    fn owner_event(&self, body: Body) -> v1::Event {
        ev(&self.log.owner_id, body)
    }

    async fn manifest(&mut self, members: &[[u8; 32]]) -> v1::Manifest {
        put_manifest(&mut self.c, members).await
    }

    /// `captured` bulk-captures `n` new members into cam's system, waits
    /// for the job to end, and returns the members, the manifest and the
    /// entry's index.
    async fn captured(&mut self, n: usize) -> (Vec<[u8; 32]>, v1::Manifest, u64) {
        let members = manifest(n);
        let m = self.manifest(&members).await;
        let i = self.put(&bulk_capture("cam", &m)).await;
        (members, m, i)
    }

    async fn tree_size(&self) -> u64 {
        tree_size(&self.log.http).await
    }
}

/// `ok` is a spawned send's index, or a panic naming `what`.
async fn ok(t: Sent, what: &str) -> (u64, Instant) {
    let (r, at) = t.await.expect("task");
    (r.unwrap_or_else(|s| panic!("{what} refused: {s}")), at)
}

// ---------------------------------------------------------------------
// Stalling other reporters
// ---------------------------------------------------------------------

/// A: while a bulk job runs, the sequencer holds back (until the job
/// ends) every envelope that conflicts with it, deciding from the
/// envelope's claimed reporter and body before any signature is checked,
/// and each held envelope keeps its charge on the queue's byte budget.
/// An attacker with no registered key fills the budget with forged
/// envelopes that claim to be the job reporter's (cam's) DERIVEs, each
/// as large as an event may be (64 parents, four signatures by stranger
/// keys), then small ones for the rest. Secure: another reporter's
/// (the gate's) unrelated CAPTURE is still logged while the job runs, as
/// it is when no job runs (forged envelopes are then refused by the
/// batch's signature check within milliseconds).
#[tokio::test(flavor = "multi_thread")]
async fn a01_forged_envelopes_held_behind_a_job_do_not_lock_out_other_reporters() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &["--queue-bytes", "1048576"]).await;
    let members = manifest(2 * LONG);
    let m = w.manifest(&members).await;
    let before = w.tree_size().await;
    let started = Instant::now();
    let job = w.spawn(bulk_capture("cam", &m));
    wait_head(&w.log.http, before, &job).await;

    let strangers: Vec<SigningKey> = (0..4)
        .map(|_| SigningKey::generate(&mut rand_core::OsRng))
        .collect();
    // Several connections, as an attacker would open: one connection's
    // stream limit (256) would otherwise cap what is in flight below the
    // byte budget whenever the sequencer is slow to refuse (a busy host).
    let mut conns = Vec::new();
    for _ in 0..8 {
        conns.push(w.log.client().await);
    }
    let sent = std::cell::Cell::new(0usize);
    let forged = |parents: usize| {
        let mut e = derive("cam", &random_digest(), &random_digest());
        if let Some(Body::Custody(a)) = &mut e.body {
            a.parents = (0..parents)
                .map(|_| v1::Parent {
                    digest: random_digest().to_vec(),
                    relationship: v1::Relationship::DerivedFrom as i32,
                })
                .collect();
        }
        let keys: Vec<&SigningKey> = strangers.iter().collect();
        let env = signed(&e, &keys);
        let n = sent.get();
        sent.set(n + 1);
        let mut c = conns[n % conns.len()].clone();
        tokio::spawn(async move {
            c.append(v1::AppendRequest {
                event: Some(env),
                wait_for_checkpoint: false,
            })
            .await
            .map(|r| r.into_inner().index)
        })
    };
    // Large ones until the budget is full, then small ones for the rest;
    // a forged envelope refused at once (not held) ends the flood.
    let mut flood = Vec::new();
    let mut refused_at_once = None;
    'flooding: for parents in [64, 1] {
        let mut full = false;
        for _ in 0..2_000 {
            let t = forged(parents);
            tokio::time::sleep(Duration::from_millis(2)).await;
            if t.is_finished() {
                match t.await.unwrap() {
                    Err(s) if s.code() == Code::ResourceExhausted => {
                        full = true;
                        break;
                    }
                    Err(s) if s.code() == Code::PermissionDenied => {
                        refused_at_once = Some(s.message().to_owned());
                        break 'flooding;
                    }
                    other => panic!("a forged envelope was answered at once with {other:?}"),
                }
            }
            flood.push(t);
        }
        assert!(
            full,
            "the byte budget never filled: {} forged envelopes ({parents} parents) in flight",
            flood.len()
        );
    }
    let held = flood.len();
    eprintln!("a01: forged envelopes refused at once (not held): {refused_at_once:?}");
    let flooded = started.elapsed();

    // The gate's unrelated CAPTURE, retried with backoff for 2.5 s.
    let mut refusals = Vec::new();
    let tried = Instant::now();
    let logged = loop {
        let e = capture_one("gate", &random_digest(), v1::SubjectClass::Citizen);
        match send(&mut w.c, &e, &[&w.gate]).await {
            Ok(i) => break Some(i),
            Err(s) => refusals.push(format!("{:?}: {}", s.code(), s.message())),
        }
        if tried.elapsed() > Duration::from_millis(2_500) || job.is_finished() {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let job_running = !job.is_finished();
    let (bulk_at, acked) = ok(job, "bulk capture").await;
    eprintln!(
        "a01: bulk at {bulk_at}, job took {:?}, {held} forged envelopes held (flood ended after {flooded:?}), gate logged {logged:?} after {} refusals, job still running then: {job_running}",
        acked - started,
        refusals.len()
    );
    for t in flood {
        let r = t.await.unwrap();
        assert!(r.is_err(), "a forged envelope was logged: {r:?}");
    }
    if logged.is_none() && job_running {
        panic!(
            "ATTACK SUCCEEDED: {held} forged, unverified envelopes held behind bulk job {bulk_at} \
             kept the queue's byte budget full; the gate's unrelated CAPTURE was refused {} times \
             over 2.5 s while the job ran ({}), and no other reporter could log anything until it ended",
            refusals.len(),
            refusals.first().cloned().unwrap_or_default()
        );
    }
    assert!(
        logged.is_some(),
        "inconclusive: the job ended before the gate could try"
    );
}

// ---------------------------------------------------------------------
// Overtaking held registry events
// ---------------------------------------------------------------------

/// `long_job` starts a long bulk CAPTURE by cam and returns once its
/// entry is logged (its members are being applied), with the task that
/// waits for its ack and the entry's index.
async fn long_job(w: &mut W) -> (Sent, u64) {
    let members = manifest(LONG);
    let m = w.manifest(&members).await;
    let before = w.tree_size().await;
    let job = w.spawn(bulk_capture("cam", &m));
    wait_head(&w.log.http, before, &job).await;
    (job, before)
}

/// B: the data owner revokes the gate's key while cam's bulk job runs. A
/// KEY_REVOKED is a registry event, so it is held until the job ends; but
/// the gate's events are not held (they do not touch the job), so the
/// gate keeps logging events signed by the key the owner revoked, ahead of
/// the revocation, for as long as the job (or a chain of jobs) runs. In
/// arrival order the revocation comes first, and an event signed by the
/// revoked key after it must be refused (or at least logged after the
/// revocation).
#[tokio::test(flavor = "multi_thread")]
async fn a02_a_key_revocation_held_by_a_job_is_not_overtaken_by_the_revoked_key() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &[]).await;
    let (job, bulk_at) = long_job(&mut w).await;
    let kid = key_id_of(&w.gate.verifying_key().to_bytes());
    let revoke = w.owner_event(Body::KeyRevoked(v1::KeyRevoked {
        party_id: "gate".into(),
        key_id: kid.0.to_vec(),
    }));
    let revoked = w.spawn(revoke);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let revocation_waiting = !revoked.is_finished();
    // After the owner sent the revocation: the gate, with the revoked key.
    let mut after = Vec::new();
    for _ in 0..5 {
        let e = capture_one("gate", &random_digest(), v1::SubjectClass::Citizen);
        after.push(send(&mut w.c, &e, &[&w.gate]).await);
    }
    let job_running = !job.is_finished();
    let (rev_at, _) = ok(revoked, "KEY_REVOKED").await;
    ok(job, "bulk capture").await;
    eprintln!(
        "a02: bulk {bulk_at}, revocation {rev_at} (waiting: {revocation_waiting}), job running: {job_running}, gate after: {after:?}"
    );
    let overtook: Vec<u64> = after
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .filter(|i| *i < rev_at)
        .collect();
    assert!(
        overtook.is_empty(),
        "ATTACK SUCCEEDED: the owner's KEY_REVOKED of the gate's key was submitted first, held behind \
         bulk job {bulk_at} and logged at {rev_at}; meanwhile {} events signed by that key, submitted \
         after it, were logged ahead of it at {overtook:?}",
        overtook.len()
    );
    for r in after {
        let s = r.expect_err("an event by a revoked key was logged");
        assert_eq!(s.code(), Code::PermissionDenied, "{s}");
    }
}

/// C: the owner revokes the vendor's grant while cam's bulk job runs; the
/// vendor then copies an image under it. In arrival order the COPY comes
/// after the revocation and must be found an unauthorized transfer (the
/// grant was revoked). The revocation is held by the job; is the COPY,
/// which does not touch the job, logged ahead of it, and its finding lost?
#[tokio::test(flavor = "multi_thread")]
async fn a03_a_grant_revocation_held_by_a_job_is_not_overtaken_by_a_copy_under_it() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &[]).await;
    let grant = w.owner_event(Body::GrantIssued(v1::GrantIssued {
        grant_id: "G1".into(),
        grantee: "vendor".into(),
        actions: vec![K::Copy as i32],
        purposes: vec![v1::Purpose::Maintenance as i32],
        systems: vec![system_of("vendor")],
        valid_from_unix_nanos: now() - HOUR,
        ..Default::default()
    }));
    w.put(&grant).await;
    let x = random_digest();
    w.put(&capture_one("cam", &x, v1::SubjectClass::Citizen))
        .await;
    // The grant covers such a COPY: no finding while it stands.
    let y = random_digest();
    w.put(&capture_one("cam", &y, v1::SubjectClass::Citizen))
        .await;
    let fine = w
        .put(&transfer(
            K::Copy,
            "vendor",
            &y,
            &system_of("cam"),
            &system_of("vendor"),
            "G1",
        ))
        .await;

    let (job, bulk_at) = long_job(&mut w).await;
    let revoke = w.owner_event(Body::GrantRevoked(v1::GrantRevoked {
        grant_id: "G1".into(),
    }));
    let revoked = w.spawn(revoke);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let copy = w
        .put(&transfer(
            K::Copy,
            "vendor",
            &x,
            &system_of("cam"),
            &system_of("vendor"),
            "G1",
        ))
        .await;
    let job_running = !job.is_finished();
    let (rev_at, _) = ok(revoked, "GRANT_REVOKED").await;
    ok(job, "bulk capture").await;
    wait_for_size(&w.log.http, copy.max(rev_at).max(bulk_at) + 1).await;
    let (all, _) = all_findings(&mut w.q, "unauthorized_transfer", 0).await;
    eprintln!(
        "a03: bulk {bulk_at}, revocation {rev_at}, copy {copy}, job running at copy: {job_running}"
    );
    assert!(
        on_entry(&all, "unauthorized_transfer", fine).is_empty(),
        "{all:?}"
    );
    let found = on_entry(&all, "unauthorized_transfer", copy);
    assert!(
        copy > rev_at && found.len() == 1,
        "ATTACK SUCCEEDED: the owner's GRANT_REVOKED of G1 was submitted first, held behind bulk job \
         {bulk_at} and logged at {rev_at}; the vendor's COPY under G1, submitted after it, was logged \
         ahead of it at {copy} and raised no unauthorized_transfer ({} found)",
        found.len()
    );
    audit_agrees(&w.log);
}

/// D: a hostile reporter takes a bulk event's event id. cam's bulk
/// CAPTURE is submitted first, then the gate's CAPTURE with the same
/// event id (one stream, in that order). Admitted whole, the bulk event is
/// logged and the gate's refused (ALREADY_EXISTS); while the bulk event's
/// members are checked, the gate's event is not held back (it does not
/// touch the job), takes the id, and the bulk event is refused at its
/// head. The control runs the same with `--bulk-slice` above the manifest.
#[tokio::test(flavor = "multi_thread")]
async fn a04_a_later_event_cannot_take_a_bulk_events_id_and_refuse_it() {
    let _turn = shared().await;
    for (slice, label) in [("1000000", "whole"), (LONG_SLICE, "sliced")] {
        let mut w = W::new(slice, &[]).await;
        let members = manifest(LONG);
        let m = w.manifest(&members).await;
        let bulk = bulk_capture("cam", &m);
        let mut squat = capture_one("gate", &random_digest(), v1::SubjectClass::Citizen);
        squat.event_id = bulk.event_id.clone();
        let reqs = vec![
            v1::AppendRequest {
                event: Some(signed(&bulk, &[&w.cam])),
                wait_for_checkpoint: false,
            },
            v1::AppendRequest {
                event: Some(signed(&squat, &[&w.gate])),
                wait_for_checkpoint: false,
            },
        ];
        let mut out =
            w.c.append_stream(tokio_stream::iter(reqs))
                .await
                .expect("stream")
                .into_inner();
        let first = out.message().await.expect("stream").expect("answer");
        let second = out.message().await.expect("stream").expect("answer");
        eprintln!(
            "a04 {label}: bulk -> {} {:?} {}; squatter -> {} {:?} {}",
            first.index,
            Code::from(first.error_code),
            first.error_message,
            second.index,
            Code::from(second.error_code),
            second.error_message
        );
        assert!(
            first.error_code == 0 && Code::from(second.error_code) == Code::AlreadyExists,
            "ATTACK SUCCEEDED ({label}): cam's bulk CAPTURE, submitted first, was answered {:?} \"{}\"; \
             the gate's event reusing its id, submitted after it, was answered {:?} at index {}",
            Code::from(first.error_code),
            first.error_message,
            Code::from(second.error_code),
            second.index
        );
    }
}

// ---------------------------------------------------------------------
// Reading or changing members' custody mid-job
// ---------------------------------------------------------------------

/// `derive` is a DERIVE by `actor` of `asset` from `parent`, into its own
/// system.
fn derive(actor: &str, asset: &[u8; 32], parent: &[u8; 32]) -> v1::Event {
    ev(
        actor,
        act(K::Derive, actor, |a| {
            a.asset_digest = asset.to_vec();
            a.to_system = system_of(actor);
            a.modality = v1::Modality::FaceImage as i32;
            a.subject_class = v1::SubjectClass::Citizen as i32;
            a.parents = vec![v1::Parent {
                digest: parent.to_vec(),
                relationship: v1::Relationship::DerivedFrom as i32,
            }];
        }),
    )
}

/// E: while cam's bulk CAPTURE (dated two hours ago) is applied, other
/// reporters act on its members by every route that does not name the
/// job: the gate COPYs the last member (a single digest), the vendor
/// DERIVEs a new asset from another deep member, ACCESSes a third on
/// cam's system, the gate COPYs a second, smaller manifest that overlaps
/// the first, the vendor attests its holdings with a manifest of one
/// member, and the gate reports an ACCESS whose actor is cam (the job's
/// reporter). Judged on partial state, the COPYs and the ACCESS would
/// raise unexplained_custody and the DERIVE's asset would be born now
/// instead of two hours ago (no retention_overdue on the vendor's system,
/// whose rule is one hour). Secure: no unexplained custody, the derived
/// asset overdue, and the audit (whole replay) agrees.
#[tokio::test(flavor = "multi_thread")]
async fn a05_events_on_members_by_any_route_are_judged_on_the_whole_event() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &[]).await;
    let rule = w.owner_event(Body::RetentionRulePublished(v1::RetentionRulePublished {
        rule_id: "R-VENDOR-1H".into(),
        authority: v1::RetentionAuthority::Sorn as i32,
        authority_ref: "sorn-1".into(),
        modality: v1::Modality::FaceImage as i32,
        system_id: system_of("vendor"),
        max_age_nanos: HOUR,
        clock: v1::RetentionClock::Capture as i32,
        ..Default::default()
    }));
    w.put(&rule).await;
    let members = manifest(LONG);
    let m = w.manifest(&members).await;
    let overlap = w.manifest(&members[LONG / 2..LONG / 2 + 10]).await;
    let one = w.manifest(&members[100..101]).await;
    let before = w.tree_size().await;
    let mut bulk = bulk_capture("cam", &m);
    bulk.event_time_unix_nanos = now() - 2 * HOUR;
    let job = w.spawn(bulk);
    wait_head(&w.log.http, before, &job).await;

    let d1 = random_digest();
    let cam_sys = system_of("cam");
    let mut attestation = ev(
        "vendor",
        Body::CustodyAttestation(v1::CustodyAttestation {
            system_id: system_of("vendor"),
            holdings: Some(one.clone()),
        }),
    );
    attestation.reporter_seq = 0;
    let attacks: Vec<(&str, Sent)> = vec![
        (
            "gate COPY of the last member",
            w.spawn(transfer(
                K::Copy,
                "gate",
                &members[LONG - 1],
                &cam_sys,
                &system_of("gate"),
                "",
            )),
        ),
        (
            "vendor DERIVE from a deep member",
            w.spawn(derive("vendor", &d1, &members[LONG - 2])),
        ),
        (
            "vendor ACCESS of a deep member on cam's system",
            w.spawn(access("vendor", &members[LONG - 3], &cam_sys)),
        ),
        (
            "gate COPY of an overlapping manifest",
            w.spawn(bulk_transfer(
                K::Copy,
                "gate",
                &overlap,
                &cam_sys,
                &system_of("gate"),
                "",
            )),
        ),
        ("vendor attestation naming a member", w.spawn(attestation)),
    ];
    let by_cam = w.spawn(access("cam", &members[LONG - 4], &cam_sys).tap_reporter("gate"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let early: Vec<&str> = attacks
        .iter()
        .filter(|(_, t)| t.is_finished())
        .map(|(what, _)| *what)
        .collect();
    let (bulk_at, _) = ok(job, "bulk capture").await;
    let mut logged = Vec::new();
    for (what, t) in attacks {
        let (i, _) = ok(t, what).await;
        logged.push((what, i));
    }
    let (by_cam, _) = by_cam.await.unwrap();
    eprintln!("a05: bulk {bulk_at}; {logged:?}; gate-reported ACCESS by cam: {by_cam:?}; answered before the job ended: {early:?}");
    let last = logged
        .iter()
        .map(|(_, i)| *i)
        .max()
        .unwrap_or(0)
        .max(bulk_at);
    wait_for_size(&w.log.http, last + 1).await;

    let (unexplained, _) = all_findings(&mut w.q, "unexplained_custody", 0).await;
    assert!(
        unexplained.is_empty(),
        "ATTACK SUCCEEDED: events on members were judged before the bulk capture at {bulk_at} was \
         applied: {:?}",
        unexplained
            .iter()
            .map(|f| (f.entries.clone(), hex(&f.asset)))
            .collect::<Vec<_>>()
    );
    let (overdue, _) = all_findings(&mut w.q, "retention_overdue", 0).await;
    let d1_overdue = overdue.iter().filter(|f| f.asset == d1.to_vec()).count();
    assert_eq!(
        d1_overdue, 1,
        "ATTACK SUCCEEDED: the asset derived from a member did not inherit the member's birth \
         (no retention_overdue on the vendor's system): {overdue:?}"
    );
    assert!(
        early.is_empty(),
        "ATTACK SUCCEEDED: answered while the job ran: {early:?}"
    );
    audit_agrees(&w.log);
}

trait Tap {
    fn tap_reporter(self, reporter: &str) -> Self;
}

impl Tap for v1::Event {
    /// `tap_reporter` makes `reporter` report the event.
    fn tap_reporter(mut self, reporter: &str) -> Self {
        self.reporter = reporter.into();
        self
    }
}

// ---------------------------------------------------------------------
// Findings and counts
// ---------------------------------------------------------------------

/// F: a grant to the vendor covers citizens' face images only; the vendor
/// bulk-COPYs a manifest of 4,000 citizens' images and one non-citizen's,
/// placed last (far beyond the first slice), under it. The class facts are
/// gathered a slice at a time before the entry is logged: is the
/// uncovered class found, and cited with that member?
#[tokio::test(flavor = "multi_thread")]
async fn a06_an_uncovered_class_deep_in_a_manifest_is_found() {
    let _turn = shared().await;
    let mut w = W::new(SLICE, &[]).await;
    let grant = w.owner_event(Body::GrantIssued(v1::GrantIssued {
        grant_id: "G-CIT".into(),
        grantee: "vendor".into(),
        actions: vec![K::Copy as i32],
        purposes: vec![v1::Purpose::Maintenance as i32],
        systems: vec![system_of("vendor")],
        subject_classes: vec![v1::SubjectClass::Citizen as i32],
        valid_from_unix_nanos: now() - HOUR,
        ..Default::default()
    }));
    w.put(&grant).await;
    let (mut members, _, _) = w.captured(MEMBERS).await;
    let hidden = [0xff; 32];
    w.put(&capture_one("cam", &hidden, v1::SubjectClass::NonCitizen))
        .await;
    members.push(hidden);
    members.sort();
    assert_eq!(members.last(), Some(&hidden));
    let mixed = w.manifest(&members).await;
    // Control: the citizens alone are covered.
    let citizens = w.manifest(&members[..members.len() - 1]).await;
    let (cam_sys, vendor_sys) = (system_of("cam"), system_of("vendor"));
    let covered = w
        .put(&bulk_transfer(
            K::Copy,
            "vendor",
            &citizens,
            &cam_sys,
            &vendor_sys,
            "G-CIT",
        ))
        .await;
    let copy = w
        .put(&bulk_transfer(
            K::Copy,
            "vendor",
            &mixed,
            &cam_sys,
            &vendor_sys,
            "G-CIT",
        ))
        .await;
    // Acknowledged without waiting for a checkpoint: wait for one that
    // holds the COPY before asking.
    wait_for_size(&w.log.http, copy + 1).await;
    let (all, total) = all_findings(&mut w.q, "", 0).await;
    assert_eq!(total as usize, all.len());
    assert!(
        on_entry(&all, "unauthorized_transfer", covered).is_empty(),
        "the covered bulk COPY raised a finding: {all:?}"
    );
    let found = on_entry(&all, "unauthorized_transfer", copy);
    assert_eq!(
        found.len(),
        1,
        "ATTACK SUCCEEDED: the non-citizen image hidden last in the bulk COPY at {copy} went \
         unnoticed: {all:?}"
    );
    assert_eq!(
        found[0].asset,
        hidden.to_vec(),
        "ATTACK SUCCEEDED: the finding cites another asset: {:?}",
        found[0]
    );
    assert!(
        found[0].detail.to_lowercase().contains("non"),
        "{:?}",
        found[0]
    );
    let others: Vec<_> = all.iter().filter(|f| f.rule != "late_reporting").collect();
    assert_eq!(others.len(), 1, "unexpected findings: {others:?}");
    audit_agrees(&w.log);
}

/// `get` is an HTTP GET's status and body.
async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("GET");
    let code = r.status().as_u16();
    (code, r.text().await.unwrap_or_default())
}

/// `ui_scope` is the web view's breach-scope count and the checkpoint
/// size it states, or the status of a refusal.
fn ui_scope(code: u16, html: &str) -> Result<(u64, u64), u16> {
    if code != 200 {
        return Err(code);
    }
    let count = html
        .split("data-count=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .expect("data-count");
    let size = html
        .split("as of checkpoint <strong>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .map(|s| s.replace([',', '\u{202f}', ' '], ""))
        .and_then(|s| s.parse().ok())
        .expect("as of checkpoint");
    Ok((count, size))
}

/// G: while a bulk COPY's members are applied, a slice at a time, every
/// way of asking must answer as of a tree size at which the state is
/// whole: before the bulk entry (none of it) or after it (all of it),
/// never a part. The COPY goes from the gate's system, which holds 3 of
/// its members, to the vendor's: all its members land on the vendor's
/// system and the other members raise unexplained custody. Asked
/// repeatedly during the job: the findings' total, the breach scope's
/// count (gRPC and web view, latest and with an explicit size), the
/// holders of the first and last members (latest and with the latest
/// checkpoint's size as explicit tree_size), the last member's history,
/// page tokens from before the job, and the evidence bundle of a member's
/// holders. Then the audit.
#[tokio::test(flavor = "multi_thread")]
async fn a07_queries_during_a_job_never_answer_from_part_of_it() {
    let _turn = shared().await;
    let n = 4_000usize;
    let mut w = W::new(LONG_SLICE, &[]).await;
    let (members, m, _) = w.captured(n).await;
    let (cam_sys, gate_sys, vendor_sys) =
        (system_of("cam"), system_of("gate"), system_of("vendor"));
    for d in &members[..3] {
        w.put(&transfer(K::Copy, "gate", d, &cam_sys, &gate_sys, ""))
            .await;
    }
    // Two findings before the job, for a findings page token.
    let mut last_put = 0;
    for _ in 0..2 {
        last_put = w
            .put(&access("vendor", &random_digest(), &vendor_sys))
            .await;
    }
    wait_for_size(&w.log.http, last_put + 1).await;
    let s0 = w.tree_size().await;
    let page1 =
        w.q.findings(v1::FindingsRequest {
            rule: "unexplained_custody".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("findings")
        .into_inner();
    assert_eq!(page1.total, 2);
    let holdings1 =
        w.q.holdings(v1::HoldingsRequest {
            holder: Some(v1::holdings_request::Holder::SystemId(gate_sys.clone())),
            time_unix_nanos: now(),
            page_size: 1,
            page_token: Vec::new(),
        })
        .await
        .expect("holdings")
        .into_inner();
    assert!(!holdings1.next_page_token.is_empty());

    let (first, last) = (members[0], members[n - 1]);
    let bulk_at = w.tree_size().await;
    let job = w.spawn(bulk_transfer(
        K::Copy,
        "vendor",
        &m,
        &gate_sys,
        &vendor_sys,
        "",
    ));
    let bad: std::cell::RefCell<Vec<String>> = Default::default();
    let mut rounds = 0;
    let mut during_head = 0;
    let check = |what: &str, size: u64, whole: bool, part: String| {
        // As of `size`, the bulk entry (at `bulk_at`) is in or out.
        let want_whole = size > bulk_at;
        if whole != want_whole {
            bad.borrow_mut()
                .push(format!("{what} as of tree size {size}: {part}"));
        }
    };
    while !job.is_finished() {
        let latest = w.tree_size().await;
        if latest > bulk_at {
            during_head += 1;
        }
        rounds += 1;
        // Findings: 2 before, 2 + (n - 3) after.
        let r =
            w.q.findings(v1::FindingsRequest {
                rule: "unexplained_custody".into(),
                page_size: 1,
                ..Default::default()
            })
            .await
            .expect("findings")
            .into_inner();
        let size = r.evidence.as_ref().map_or(0, |e| e.tree_size);
        if r.total != 2 && r.total != 2 + n as u64 - 3 {
            bad.borrow_mut()
                .push(format!("findings total {} as of {size}", r.total));
        } else {
            check("findings", size, r.total != 2, format!("total {}", r.total));
        }
        // Breach scope of the vendor's system: 0 before, n after.
        let (count, size) = breach_count(&mut w.q, &vendor_sys).await;
        if count != 0 && count != n as u64 {
            bad.borrow_mut()
                .push(format!("breach scope count {count} as of {size}"));
        } else {
            check(
                "breach scope",
                size,
                count == n as u64,
                format!("count {count}"),
            );
        }
        // Holders of the first and last members, latest and explicit.
        for (d, label) in [(&first, "first"), (&last, "last")] {
            for explicit in [0, latest] {
                match holders(&mut w.q, d, explicit).await {
                    Ok((systems, size)) => check(
                        &format!("holders of the {label} member (tree_size {explicit})"),
                        size,
                        systems.contains(&vendor_sys),
                        format!("{systems:?}"),
                    ),
                    Err(s) if explicit != 0 && s.code() == Code::Unavailable => {}
                    Err(s) => bad.borrow_mut().push(format!(
                        "holders of the {label} member (tree_size {explicit}): {s}"
                    )),
                }
            }
        }
        // The last member's history: the bulk entry in it or not.
        let h =
            w.q.asset_history(v1::AssetHistoryRequest {
                asset: last.to_vec(),
                page_size: 100,
                page_token: Vec::new(),
            })
            .await
            .expect("history")
            .into_inner();
        let size = h.evidence.as_ref().map_or(0, |e| e.tree_size);
        check(
            "history of the last member",
            size,
            h.indexes.contains(&bulk_at),
            format!("{:?}", h.indexes),
        );
        // Page tokens from before the job.
        match w
            .q
            .findings(v1::FindingsRequest {
                rule: "unexplained_custody".into(),
                page_size: 1,
                page_token: page1.next_page_token.clone(),
                ..Default::default()
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                if r.total != 2 || r.findings.iter().any(|f| f.entries[0] >= s0) {
                    bad.borrow_mut().push(format!(
                        "findings page 2 of a token at {s0}: total {} {:?}",
                        r.total, r.findings
                    ));
                }
            }
            Err(s) => bad
                .borrow_mut()
                .push(format!("findings page 2 of a token at {s0}: {s}")),
        }
        match w
            .q
            .holdings(v1::HoldingsRequest {
                holder: Some(v1::holdings_request::Holder::SystemId(gate_sys.clone())),
                time_unix_nanos: now(),
                page_size: 1,
                page_token: holdings1.next_page_token.clone(),
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                if r.intervals.iter().any(|i| i.opened_by >= s0) {
                    bad.borrow_mut().push(format!(
                        "holdings page 2 of a token at {s0}: {:?}",
                        r.intervals
                    ));
                }
            }
            Err(s) => bad
                .borrow_mut()
                .push(format!("holdings page 2 of a token at {s0}: {s}")),
        }
        // The web view, latest and at the latest checkpoint's size.
        let base = format!(
            "{}/ui/breach-scope?system={vendor_sys}&from={}&to={}",
            w.log.http,
            rfc3339(now() - 24 * HOUR),
            rfc3339(now() + HOUR)
        );
        for url in [base.clone(), format!("{base}&size={latest}")] {
            let (code, html) = get(&url).await;
            match ui_scope(code, &html) {
                Ok((count, size)) => check(
                    &format!("web view {}", url.rsplit('&').next().unwrap_or("")),
                    size,
                    count == n as u64,
                    format!("count {count}"),
                ),
                // A checkpoint published while its entries are still
                // being indexed: refused, as gRPC refuses it (503, retry).
                Err(400 | 503) if url.contains("size=") => {}
                Err(code) => bad
                    .borrow_mut()
                    .push(format!("web view {url}: HTTP {code}")),
            }
        }
        // An evidence bundle of the last member's holders.
        let (code, body) = get(&format!(
            "{}/evidence/holders?asset={}&at={}",
            w.log.http,
            hex(&last),
            rfc3339(now())
        ))
        .await;
        if code == 200 {
            let b: Value = serde_json::from_str(&body).expect("bundle JSON");
            let size: u64 = b["checkpoint"]
                .as_str()
                .and_then(|n| n.lines().nth(1))
                .and_then(|l| l.parse().ok())
                .expect("bundle checkpoint size");
            let systems: Vec<String> = b["answer"]["holders"]
                .as_array()
                .expect("holders")
                .iter()
                .map(|h| h["system"].as_str().unwrap_or("").to_owned())
                .collect();
            check(
                "evidence bundle of holders",
                size,
                systems.contains(&vendor_sys),
                format!("{systems:?}"),
            );
        } else {
            bad.borrow_mut()
                .push(format!("evidence bundle: HTTP {code} {body}"));
        }
    }
    let (copy_at, _) = ok(job, "bulk COPY").await;
    assert_eq!(copy_at, bulk_at, "another entry was logged first");
    eprintln!("a07: {rounds} rounds of questions while the job ran, {during_head} after its entry was logged");
    assert!(
        during_head > 0,
        "inconclusive: no question was asked while the members were applied"
    );
    let bad = bad.into_inner();
    assert!(
        bad.is_empty(),
        "ATTACK SUCCEEDED: answers from part of bulk entry {bulk_at}:\n{}",
        bad.join("\n")
    );
    // Once it is done: all of it.
    wait_for_size(&w.log.http, bulk_at + 1).await;
    let (_, total) = all_findings(&mut w.q, "unexplained_custody", 0).await;
    assert_eq!(total, 2 + n as u64 - 3);
    assert_eq!(breach_count(&mut w.q, &vendor_sys).await.0, n as u64);
    audit_agrees(&w.log);
}

// ---------------------------------------------------------------------
// Refusals, receipts and transfers across the job boundary
// ---------------------------------------------------------------------

/// H: cam bulk-DELETEs a manifest of its 8,000 members plus one digest
/// it never held, placed last: the event must be refused (FAILED_
/// PRECONDITION) at the last check slice, nothing logged, no member's
/// custody closed, and the gate's COPY of a member, held back meanwhile,
/// logged afterwards as an explained copy.
#[tokio::test(flavor = "multi_thread")]
async fn a08_a_bulk_delete_refused_at_its_last_member_logs_nothing() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &[]).await;
    let (mut members, _, _) = w.captured(LONG).await;
    let never = [0xff; 32];
    members.push(never);
    members.sort();
    assert_eq!(members.last(), Some(&never));
    let m = w.manifest(&members).await;
    let (cam_sys, gate_sys) = (system_of("cam"), system_of("gate"));
    let delete = ev(
        "cam",
        over(
            act(K::Delete, "cam", |a| {
                a.from_system = cam_sys.clone();
                a.delete_method = v1::DeleteMethod::CryptoErase as i32;
            }),
            &m,
        ),
    );
    let before = w.tree_size().await;
    let job = w.spawn(delete);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let copy = w.spawn(transfer(
        K::Copy,
        "gate",
        &members[LONG / 2],
        &cam_sys,
        &gate_sys,
        "",
    ));
    let (r, _) = job.await.unwrap();
    let s = r.expect_err("ATTACK SUCCEEDED: a DELETE of a copy that is not there was logged");
    assert_eq!(s.code(), Code::FailedPrecondition, "{s}");
    assert!(s.message().contains(&hex(&never)), "{s}");
    let (copy_at, _) = ok(copy, "gate COPY").await;
    assert_eq!(
        copy_at, before,
        "ATTACK SUCCEEDED: the refused DELETE left an entry"
    );
    wait_for_size(&w.log.http, copy_at + 1).await;
    for d in [&members[0], &members[LONG - 1]] {
        let (systems, _) = holders(&mut w.q, d, 0).await.expect("holders");
        assert!(
            systems.contains(&cam_sys),
            "ATTACK SUCCEEDED: the refused DELETE closed {}'s custody: {systems:?}",
            hex(d)
        );
    }
    let (unexplained, _) = all_findings(&mut w.q, "unexplained_custody", 0).await;
    assert!(unexplained.is_empty(), "{unexplained:?}");
    audit_agrees(&w.log);
}

/// I: cam bulk-COPYs its 4,000 members to the vendor's system. Mid-job,
/// the vendor acknowledges it (a RECEIPT naming the job's own entry,
/// itself a bulk RECEIPT) and the gate copies the last member on from the
/// vendor's system. If the RECEIPT were admitted mid-job, the job's next
/// slice would rewrite the transfer's record without it; if the gate's
/// COPY were, it would be unexplained. Then the vendor bulk-MOVEs the
/// members on to the gate, which acknowledges that too. Secure: no
/// unacknowledged transfer hours later, no unexplained custody, the
/// members held by cam and the gate (not the vendor), and the audit agrees.
#[tokio::test(flavor = "multi_thread")]
async fn a09_receipts_and_transfers_of_a_job_wait_for_it() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &[]).await;
    let (members, m, _) = w.captured(MEMBERS).await;
    let (cam_sys, gate_sys, vendor_sys) =
        (system_of("cam"), system_of("gate"), system_of("vendor"));
    let before = w.tree_size().await;
    let job = w.spawn(bulk_transfer(K::Copy, "cam", &m, &cam_sys, &vendor_sys, ""));
    wait_head(&w.log.http, before, &job).await;
    let copy_at = before;
    let rcpt = w.spawn(receipt("vendor", copy_at));
    let onward = w.spawn(transfer(
        K::Copy,
        "gate",
        &members[MEMBERS - 1],
        &vendor_sys,
        &gate_sys,
        "",
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let early = rcpt.is_finished() || onward.is_finished();
    let job_running = !job.is_finished();
    let (got, _) = ok(job, "bulk COPY").await;
    assert_eq!(got, copy_at);
    let (rcpt_at, _) = ok(rcpt, "RECEIPT of the bulk COPY").await;
    let (onward_at, _) = ok(onward, "onward COPY").await;
    assert!(
        !(early && job_running),
        "ATTACK SUCCEEDED: a RECEIPT of the job, or a COPY of its member, was answered while the job ran"
    );
    let mv = w
        .put(&bulk_transfer(
            K::Move,
            "vendor",
            &m,
            &vendor_sys,
            &gate_sys,
            "",
        ))
        .await;
    let mv_rcpt = w.put(&receipt("gate", mv)).await;
    eprintln!(
        "a09: copy {copy_at} receipt {rcpt_at} onward {onward_at} move {mv} receipt {mv_rcpt}"
    );
    wait_for_size(&w.log.http, mv_rcpt + 1).await;
    let (unack, _) = all_findings(&mut w.q, "unacknowledged_transfer", now() + 6 * HOUR).await;
    let ours: Vec<_> = unack
        .iter()
        .filter(|f| f.entries.first() == Some(&copy_at) || f.entries.first() == Some(&mv))
        .collect();
    assert!(
        ours.is_empty(),
        "ATTACK SUCCEEDED: acknowledged bulk transfers found unacknowledged: {ours:?}"
    );
    let (unexplained, _) = all_findings(&mut w.q, "unexplained_custody", 0).await;
    assert!(unexplained.is_empty(), "ATTACK SUCCEEDED: {unexplained:?}");
    for d in [&members[0], &members[MEMBERS / 2], &members[MEMBERS - 1]] {
        let (mut systems, _) = holders(&mut w.q, d, 0).await.expect("holders");
        systems.sort();
        systems.dedup();
        assert_eq!(
            systems,
            vec![cam_sys.clone(), gate_sys.clone()],
            "{}",
            hex(d)
        );
    }
    audit_agrees(&w.log);
}

/// J: bulk events do not starve registry events beyond arrival order. A
/// KEY_ADDED by the owner submitted during cam's first bulk job, before
/// cam's second bulk event, is logged and acknowledged before the second
/// job, not after it.
#[tokio::test(flavor = "multi_thread")]
async fn a10_a_registry_event_waits_for_the_running_job_only() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &[]).await;
    let m2 = {
        let members = manifest(LONG);
        w.manifest(&members).await
    };
    let (job1, bulk1) = long_job(&mut w).await;
    let newkey = SigningKey::generate(&mut rand_core::OsRng);
    let added = w.spawn(w.owner_event(key_added("gate", &newkey, 0, 0)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let job2 = w.spawn(bulk_capture("cam", &m2));
    let (_, job1_acked) = ok(job1, "bulk 1").await;
    let (added_at, added_acked) = ok(added, "KEY_ADDED").await;
    let (bulk2, job2_acked) = ok(job2, "bulk 2").await;
    eprintln!(
        "a10: bulk 1 at {bulk1}, KEY_ADDED at {added_at} acked {:?} after bulk 1; bulk 2 at {bulk2} acked {:?} after bulk 1",
        added_acked - job1_acked,
        job2_acked - job1_acked
    );
    assert!(
        added_at < bulk2 && added_acked < job2_acked,
        "ATTACK SUCCEEDED: the KEY_ADDED submitted before cam's second bulk event waited for it too"
    );
    // The new key works at once.
    let e = capture_one("gate", &random_digest(), v1::SubjectClass::Citizen);
    send(&mut w.c, &e, &[&newkey]).await.expect("the added key");
}

/// K: event ids across the job boundary. While cam's bulk CAPTURE is
/// applied: the same event sent again answers the index it was logged at
/// (a duplicate); cam's different event reusing its id, and the gate's,
/// are refused ALREADY_EXISTS, never logged.
#[tokio::test(flavor = "multi_thread")]
async fn a11_event_ids_reused_during_a_job_are_refused_or_duplicates() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &[]).await;
    let members = manifest(LONG);
    let m = w.manifest(&members).await;
    let bulk = bulk_capture("cam", &m);
    let before = w.tree_size().await;
    let job = w.spawn(bulk.clone());
    wait_head(&w.log.http, before, &job).await;
    let again = {
        let mut c = w.c.clone();
        let env = signed(&bulk, &[&w.cam]);
        tokio::spawn(async move {
            c.append(v1::AppendRequest {
                event: Some(env),
                wait_for_checkpoint: false,
            })
            .await
            .map(|r| r.into_inner())
        })
    };
    let mut other = capture_one("cam", &random_digest(), v1::SubjectClass::Citizen);
    other.event_id = bulk.event_id.clone();
    let other = w.spawn(other);
    let mut squat = capture_one("gate", &random_digest(), v1::SubjectClass::Citizen);
    squat.event_id = bulk.event_id.clone();
    let squat = send(&mut w.c, &squat, &[&w.gate]).await;
    let (bulk_at, _) = ok(job, "bulk").await;
    let again = again.await.unwrap().expect("resubmission");
    let (other, _) = other.await.unwrap();
    eprintln!("a11: bulk {bulk_at}; again {again:?}; cam other {other:?}; gate {squat:?}");
    assert!(again.duplicate && again.index == bulk_at, "{again:?}");
    for (who, r) in [("cam", other), ("gate", squat)] {
        match r {
            Ok(i) => panic!(
                "ATTACK SUCCEEDED: {who}'s event reusing the bulk event's id was logged at {i}"
            ),
            Err(s) => assert_eq!(s.code(), Code::AlreadyExists, "{who}: {s}"),
        }
    }
}

/// L: SIGKILL at every stage of a job that raises a finding per member
/// (the vendor ACCESSes 4,000 images on its own system, which holds none
/// of them): during the check (nothing logged; the restarted log has no
/// job), right after the entry is logged, and again while the resumed job
/// applies members. The restarted server resumes from its record; the
/// event sent again answers its index as a duplicate (once the job ends);
/// every member raises
/// exactly one unexplained_custody, none twice, none lost; the audit
/// agrees.
#[tokio::test(flavor = "multi_thread")]
async fn a12_sigkill_at_every_stage_resumes_exactly() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &[]).await;
    let vendor_sys = system_of("vendor");
    let access_of = |m: &v1::Manifest| {
        let mut e = access("vendor", &[0; 32], &vendor_sys);
        e.body = Some(over(e.body.take().unwrap(), m));
        e
    };
    // 1. Killed while checking a large event's members.
    let big = manifest(3 * LONG);
    let big_m = w.manifest(&big).await;
    let before = w.tree_size().await;
    let killed = w.spawn(access_of(&big_m));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !w.log.server_log().contains("admitting a bulk event") {
        assert!(
            Instant::now() < deadline,
            "the job never began: {}",
            w.log.server_log()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    w.log.kill();
    assert!(killed.await.unwrap().0.is_err());
    w.log.start_with(&["--bulk-slice", LONG_SLICE]);
    w.c = w.log.client().await;
    w.q = Query::connect(w.log.grpc.clone()).await.unwrap();
    let after_check_kill = w.tree_size().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !w.log.server_log().contains("resuming a bulk entry"),
        "a job killed in its check resumed: {}",
        w.log.server_log()
    );
    eprintln!("a12: killed in the check: tree {before} -> {after_check_kill}");
    assert_eq!(
        after_check_kill, before,
        "ATTACK SUCCEEDED: an event killed in its check left an entry"
    );

    // 2. Killed right after its entry is logged, then mid-apply.
    let members = manifest(MEMBERS);
    let m = w.manifest(&members).await;
    let e = access_of(&m);
    let before = w.tree_size().await;
    let job = w.spawn(e.clone());
    wait_head(&w.log.http, before, &job).await;
    w.log.kill();
    assert!(
        job.await.unwrap().0.is_err(),
        "the killed server acknowledged the bulk event"
    );
    for round in 0..2 {
        w.log.start_with(&["--bulk-slice", LONG_SLICE]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !w.log.server_log().contains("resuming a bulk entry") {
            assert!(
                Instant::now() < deadline,
                "round {round}: the job did not resume: {}",
                w.log.server_log()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let resumed = w.log.server_log();
        let line = strip_ansi(
            resumed
                .lines()
                .find(|l| l.contains("resuming a bulk entry"))
                .unwrap_or(""),
        );
        eprintln!("a12: restart {round}: {line}");
        if round == 1 {
            let applied: usize = line
                .split("applied=")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|s| s.parse().ok())
                .expect("applied=");
            assert!(
                applied > 0 && applied < MEMBERS,
                "inconclusive: the second kill was not mid-apply: {line}"
            );
        }
        if round == 0 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            w.log.kill();
        }
    }
    w.c = w.log.client().await;
    w.q = Query::connect(w.log.grpc.clone()).await.unwrap();
    let again =
        w.c.append(v1::AppendRequest {
            event: Some(signed(&e, &[&w.vendor])),
            wait_for_checkpoint: true,
        })
        .await
        .expect("resubmission")
        .into_inner();
    assert!(again.duplicate && again.index == before, "{again:?}");
    wait_for_size(&w.log.http, before + 1).await;
    let (all, total) = all_findings(&mut w.q, "unexplained_custody", 0).await;
    let mut per: std::collections::BTreeMap<(u64, Vec<u8>), usize> = Default::default();
    for f in &all {
        *per.entry((f.entries[0], f.asset.clone())).or_default() += 1;
    }
    let mut ids: Vec<&str> = all.iter().map(|f| f.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let on_job = all.iter().filter(|f| f.entries[0] == before).count();
    eprintln!("a12: job at {before}: {on_job} findings; total {total}");
    assert_eq!(total as usize, all.len());
    assert_eq!(
        ids.len(),
        all.len(),
        "ATTACK SUCCEEDED: duplicate finding ids"
    );
    assert!(
        per.values().all(|n| *n == 1),
        "ATTACK SUCCEEDED: a member found twice"
    );
    assert_eq!(
        on_job, MEMBERS,
        "ATTACK SUCCEEDED: the resumed job lost or doubled findings"
    );
    audit_agrees(&w.log);
}

/// `strip_ansi` is `s` without terminal colour codes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for ch in s.chars() {
        match (esc, ch) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------
// Stalling the log with one large bulk event
// ---------------------------------------------------------------------

/// `ack_latencies` appends the gate's CAPTUREs one at a time for `dur`
/// (or until `until` is finished) and returns each one's index and ack
/// latency.
async fn ack_latencies(w: &mut W, dur: Duration, until: Option<&Sent>) -> Vec<(u64, Duration)> {
    let mut v = Vec::new();
    let end = Instant::now() + dur;
    while Instant::now() < end && !until.is_some_and(|t| t.is_finished()) {
        let t = Instant::now();
        let e = capture_one("gate", &random_digest(), v1::SubjectClass::Citizen);
        let i = send(&mut w.c, &e, &[&w.gate]).await.expect("gate capture");
        v.push((i, t.elapsed()));
    }
    v
}

/// M: the point of slicing (issue 9) is that a bulk event of many members
/// does not hold other reporters' acks longer than a slice's work. With
/// `--bulk-slice 64` and a 250,000-member CAPTURE, the gate appends one
/// event at a time from the moment the bulk event is sent until it is
/// acknowledged. The steps that act on the event as a whole (its begin,
/// which precedes the first check slice, and its head, which logs the
/// entry) must not stall the gate longer than five times its slowest ack
/// with no job running (or 150 ms: a debug build on two shared cores):
/// a step that reads every member at once would. Those steps fall on the
/// gate's acks up to the first one after the bulk entry's index; the
/// acks while members are applied (where RocksDB's flushes of a quarter
/// million members' records also show) are reported, not judged.
#[tokio::test(flavor = "multi_thread")]
async fn a13_a_large_bulk_event_does_not_stall_other_reporters_at_any_step() {
    let _turn = exclusive().await;
    let mut w = W::new("64", &[]).await;
    let n = 250_000;
    let members = manifest(n);
    let m = w.manifest(&members).await;
    let idle = ack_latencies(&mut w, Duration::from_secs(2), None).await;
    let idle_max = idle.iter().map(|(_, d)| *d).max().unwrap_or_default();
    let job = w.spawn(bulk_capture("cam", &m));
    let during = ack_latencies(&mut w, Duration::from_secs(60), Some(&job)).await;
    let (bulk_at, _) = ok(job, "bulk capture").await;
    let (whole, apply): (Vec<_>, Vec<_>) = during.iter().partition(|(i, _)| *i <= bulk_at + 1);
    let worst = |v: &[&(u64, Duration)]| v.iter().map(|(_, d)| *d).max().unwrap_or_default();
    let slow = |v: &[&(u64, Duration)]| -> Vec<(u64, u128)> {
        v.iter()
            .filter(|(_, d)| *d > Duration::from_millis(100))
            .map(|(i, d)| (*i, d.as_millis()))
            .collect()
    };
    let (whole_worst, apply_worst) = (worst(&whole), worst(&apply));
    eprintln!(
        "a13: bulk at {bulk_at}; idle: {} acks, max {idle_max:?}; until the entry was logged: {} acks, max {whole_worst:?}, slow (index, ms): {:?}; while members were applied: {} acks, max {apply_worst:?}, slow: {:?}",
        idle.len(),
        whole.len(),
        slow(&whole),
        apply.len(),
        slow(&apply)
    );
    assert!(
        whole.len() > 1,
        "inconclusive: no ack before the entry was logged"
    );
    let bound = (idle_max * 5).max(Duration::from_millis(150));
    assert!(
        whole_worst <= bound,
        "ATTACK SUCCEEDED: one {n}-member bulk CAPTURE (--bulk-slice 64) held another reporter's \
         ack for {whole_worst:?} before or as its entry was logged (idle max {idle_max:?}; slow acks \
         (index, ms): {:?}; the entry at {bulk_at})",
        slow(&whole)
    );
}

// ---------------------------------------------------------------------
// Making an honest reporter's bulk event late
// ---------------------------------------------------------------------

/// N: a bulk event's integration time (what late_reporting judges) is
/// taken when its entry is logged, after every member is checked, and
/// the check runs between other reporters' batches. With a short
/// reporting deadline, cam submits a bulk CAPTURE of 8,000 members on
/// time; then a hostile gate streams its own (valid, unrelated) CAPTUREs
/// as fast as it can. Is the bulk event made late by traffic that arrived
/// after it? (Control: the same event with no traffic is on time.)
///
/// The sequencer gives the check at least as long as each batch of
/// others took, so traffic can at most about double the time to the
/// entry, never stretch it without bound (when the check got one slice
/// per batch, the entry came after all 12,000 of the gate's events, 4 to
/// 7 s late). The deadline is 4 s: twice what the control needs, here.
#[tokio::test(flavor = "multi_thread")]
async fn a14_later_traffic_cannot_make_a_bulk_event_late() {
    // Alone: what it judges is time (a 4 s deadline), which the other
    // tests' servers on the same two cores would take a share of (it
    // once failed by a hair beside them).
    let _turn = exclusive().await;
    let mut w = W::new(LONG_SLICE, &[]).await;
    publish_policy(&w.log, &mut w.c, 3600, 4, 86_400).await;
    // Control.
    let (_, _, quiet_at) = w.captured(LONG).await;
    let members = manifest(LONG);
    let m = w.manifest(&members).await;
    let submitted = now();
    let job = w.spawn(bulk_capture("cam", &m));
    tokio::time::sleep(Duration::from_millis(30)).await;
    // The gate's stream: valid events, none touching the job.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let reqs: Vec<_> = (0..3_000)
            .map(|_| v1::AppendRequest {
                event: Some(signed(
                    &capture_one("gate", &random_digest(), v1::SubjectClass::Citizen),
                    &[&w.gate],
                )),
                wait_for_checkpoint: false,
            })
            .collect();
        let mut c = w.c.clone();
        streams.push(tokio::spawn(async move {
            let mut out = c
                .append_stream(tokio_stream::iter(reqs))
                .await
                .expect("stream")
                .into_inner();
            let mut first = u64::MAX;
            while let Some(r) = out.message().await.expect("stream") {
                if r.error_code == 0 {
                    first = first.min(r.index);
                }
            }
            first
        }));
    }
    let (bulk_at, acked) = ok(job, "bulk capture").await;
    let mut first_gate = u64::MAX;
    for s in streams {
        first_gate = first_gate.min(s.await.unwrap());
    }
    wait_for_size(&w.log.http, bulk_at + 1).await;
    let (late, _) = all_findings(&mut w.q, "late_reporting", 0).await;
    let on = |i| {
        late.iter()
            .filter(|f| f.entries.first() == Some(&i))
            .count()
    };
    eprintln!(
        "a14: control at {quiet_at}: {} late; bulk submitted at t, logged at {bulk_at} (first gate event at {first_gate}), acked after {:?}: {} late {:?}",
        on(quiet_at),
        Duration::from_nanos((now() - submitted) as u64),
        on(bulk_at),
        late.iter().filter(|f| f.entries.first() == Some(&bulk_at)).map(|f| f.detail.clone()).collect::<Vec<_>>()
    );
    let _ = acked;
    assert_eq!(on(quiet_at), 0, "the control was late: {late:?}");
    assert_eq!(
        on(bulk_at),
        0,
        "ATTACK SUCCEEDED: cam's bulk CAPTURE, submitted on time and before the gate's traffic, was \
         logged at {bulk_at} behind {} of the gate's later events and found late_reporting: {:?}",
        bulk_at.saturating_sub(first_gate),
        late.iter().filter(|f| f.entries.first() == Some(&bulk_at)).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------
// Hiding a finished job behind the next one
// ---------------------------------------------------------------------

/// O: queries answer, while a job runs, as of the latest checkpoint no
/// later than its entry. cam chains two bulk CAPTUREs (the second held
/// behind the first, so it starts as the first ends). Once the first is
/// acknowledged and the second's entry is logged, the checkpoint of the
/// size just past the first entry exists and is whole; a question about a
/// member of the first must answer as of it (or later), showing the
/// member held, not as of a checkpoint from before the first job, which
/// would hide its members for as long as jobs keep coming.
#[tokio::test(flavor = "multi_thread")]
async fn a15_a_finished_job_is_not_hidden_behind_the_next_one() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &[]).await;
    let first = manifest(MEMBERS);
    let m1 = w.manifest(&first).await;
    let second = manifest(LONG);
    let m2 = w.manifest(&second).await;
    let before = w.tree_size().await;
    let job1 = w.spawn(bulk_capture("cam", &m1));
    wait_head(&w.log.http, before, &job1).await;
    let job2 = w.spawn(bulk_capture("cam", &m2));
    let (i1, _) = ok(job1, "bulk 1").await;
    // The second job's entry is logged, and checkpointed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.tree_size().await < i1 + 2 {
        assert!(
            Instant::now() < deadline,
            "the second entry was never logged"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_, note) = {
        let r =
            w.c.get_checkpoint(v1::GetCheckpointRequest { tree_size: i1 + 1 })
                .await
                .expect("the checkpoint just past the first bulk entry was published")
                .into_inner();
        ((), r.checkpoint)
    };
    assert!(!note.is_empty());
    let mut seen = Vec::new();
    while !job2.is_finished() {
        let (systems, size) = holders(&mut w.q, &first[MEMBERS - 1], 0)
            .await
            .expect("holders");
        seen.push((size, systems.len()));
        if seen.len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (i2, _) = ok(job2, "bulk 2").await;
    eprintln!("a15: bulk 1 at {i1} (acked), bulk 2 at {i2}; holders of a member of bulk 1 during bulk 2 (tree size, holders): {seen:?}");
    assert!(!seen.is_empty(), "inconclusive: the second job ended first");
    let stale: Vec<_> = seen.iter().filter(|(size, _)| *size <= i1).collect();
    assert!(
        stale.is_empty(),
        "ATTACK SUCCEEDED: while bulk entry {i2} was applied, questions answered as of tree size \
         {:?} (before bulk entry {i1}, acknowledged and whole, whose checkpoint {} exists): the \
         member's holders {:?}",
        stale.first().map(|s| s.0),
        i1 + 1,
        stale.first().map(|s| s.1)
    );
}

/// P: to keep each reporter's events in order, the sequencer holds back
/// every later event of a reporter with one held, and it decides that
/// from the envelope's claimed reporter before any signature is checked.
/// So one forged envelope, signed by a stranger's key, that claims to be
/// the gate's and names a manifest (held while any job runs) should not
/// hold back the gate's genuine, unrelated events until the job ends:
/// the gate's CAPTUREs sent after it must be logged while cam's job runs,
/// as they are without the forged envelope (checked first).
#[tokio::test(flavor = "multi_thread")]
async fn a16_a_forged_envelope_cannot_hold_back_another_reporter() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &[]).await;
    let (job, bulk_at) = long_job(&mut w).await;
    // Control: the gate's events pass while the job runs.
    let control = send(
        &mut w.c,
        &capture_one("gate", &random_digest(), v1::SubjectClass::Citizen),
        &[&w.gate],
    )
    .await
    .expect("gate capture");
    assert!(!job.is_finished(), "the job ended too soon");
    // The forged envelope: "the gate" copies some manifest.
    let stranger = SigningKey::generate(&mut rand_core::OsRng);
    let any = w.manifest(&manifest(3)).await;
    let forged = bulk_transfer(
        K::Copy,
        "gate",
        &any,
        &system_of("gate"),
        &system_of("vendor"),
        "",
    );
    let forged = spawn_send(&w.c, forged, &stranger);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = Instant::now();
    let gate = w.spawn(capture_one(
        "gate",
        &random_digest(),
        v1::SubjectClass::Citizen,
    ));
    let (gate_r, gate_acked) = gate.await.unwrap();
    let (_, job_acked) = ok(job, "bulk").await;
    let (forged_r, _) = forged.await.unwrap();
    eprintln!(
        "a16: bulk {bulk_at}; control {control}; forged refused: {:?}; gate {gate_r:?} answered {:?} after it was sent; the bulk's ack {:?} after",
        forged_r.as_ref().err().map(|s| s.code()),
        gate_acked - sent,
        job_acked.saturating_duration_since(sent)
    );
    assert!(forged_r.is_err(), "the forged envelope was logged");
    let gate_at = gate_r.expect("gate capture");
    let waited = gate_acked - sent;
    // Held back, the gate waits for the rest of the job (seconds); not
    // held, a few milliseconds, like the control.
    let job_left = job_acked.saturating_duration_since(sent);
    assert!(
        waited < Duration::from_secs(1) || job_left >= Duration::from_millis(1_500),
        "inconclusive: the job ended {job_left:?} after the gate's event was sent"
    );
    assert!(
        waited < Duration::from_secs(1),
        "ATTACK SUCCEEDED: one forged envelope claiming to be the gate's held the gate's genuine \
         CAPTURE back until bulk job {bulk_at} ended ({waited:?}, the job's ack {job_left:?} after \
         it was sent; logged at {gate_at})"
    );
}

// ---------------------------------------------------------------------
// Slipping past the hold with a key added in the same batch
// ---------------------------------------------------------------------

/// Q: a submission that conflicts with the job is held only once its
/// signatures verify against the registry as the sequencer's step began;
/// one that does not verify is left in the batch, to be refused there.
/// But a key may arrive earlier in that very batch: the owner's KEY_ADDED
/// for the vendor's new key, then (in one stream, so in one batch) the
/// vendor's CAPTURE, signed with that key, of a member cam's running bulk
/// CAPTURE has not reached yet, as another class. Held, it would wait and
/// then be refused (the member is already a citizen's image). Not held,
/// it is judged on partial state and logged, and the job's slice for
/// that member is then refused: the rest of the bulk event's members are
/// never applied. Secure: the vendor's CAPTURE refused, every member held
/// on cam's system, and the audit agreeing.
#[tokio::test(flavor = "multi_thread")]
async fn a17_a_key_added_in_the_same_batch_does_not_slip_an_event_past_the_hold() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &[]).await;
    let members = manifest(LONG);
    let m = w.manifest(&members).await;
    let before = w.tree_size().await;
    let job = w.spawn(bulk_capture("cam", &m));
    wait_head(&w.log.http, before, &job).await;
    let target = members[LONG / 4];
    let k2 = SigningKey::generate(&mut rand_core::OsRng);
    let add = w.owner_event(key_added("vendor", &k2, 0, 0));
    let mut grab = capture_one("vendor", &target, v1::SubjectClass::NonCitizen);
    grab.reporter_seq = 0;
    let reqs = vec![
        v1::AppendRequest {
            event: Some(signed(&add, &[&w.owner])),
            wait_for_checkpoint: false,
        },
        v1::AppendRequest {
            event: Some(signed(&grab, &[&k2])),
            wait_for_checkpoint: false,
        },
    ];
    let mut out =
        w.c.append_stream(tokio_stream::iter(reqs))
            .await
            .expect("stream")
            .into_inner();
    let added = out.message().await.expect("stream").expect("answer");
    let grabbed = out.message().await.expect("stream").expect("answer");
    let job_running = !job.is_finished();
    let (bulk_at, _) = ok(job, "bulk capture").await;
    assert_eq!(added.error_code, 0, "KEY_ADDED: {}", added.error_message);
    let alarm = w.log.server_log().lines().any(|l| l.contains("ALARM"));
    let (last_holders, _) = holders(&mut w.q, &members[LONG - 1], 0)
        .await
        .expect("holders");
    eprintln!(
        "a17: bulk {bulk_at}; KEY_ADDED at {}; vendor CAPTURE of member {} -> {:?} {} {} (job still running then: {job_running}); ALARM in the server log: {alarm}; holders of the last member: {last_holders:?}",
        added.index,
        LONG / 4,
        Code::from(grabbed.error_code),
        grabbed.index,
        grabbed.error_message,
    );
    if grabbed.error_code == 0 {
        let alarm_line = w
            .log
            .server_log()
            .lines()
            .find(|l| l.contains("ALARM"))
            .map(strip_ansi)
            .unwrap_or_default();
        let vkey = w.log.vkey.to_str().unwrap().to_owned();
        let (code, _, err) = audit_json(&[
            "--url",
            &w.log.http,
            "--log-key",
            &vkey,
            "--server",
            &w.log.grpc,
            "--compare",
            "all",
        ]);
        panic!(
            "ATTACK SUCCEEDED: the vendor's CAPTURE of member {} (signed by a key added in the same \
             batch) was logged at {} while bulk job {bulk_at} ran; the last member's holders: \
             {last_holders:?}; server: {alarm_line}; custody audit exit {code:?}: {}",
            LONG / 4,
            grabbed.index,
            err.lines().last().unwrap_or("")
        );
    }
    assert_eq!(
        Code::from(grabbed.error_code),
        Code::FailedPrecondition,
        "{}",
        grabbed.error_message
    );
    assert!(
        last_holders.contains(&system_of("cam")),
        "ATTACK SUCCEEDED: the bulk CAPTURE's members were not all applied"
    );
    audit_agrees(&w.log);
}

/// R: as A, by a registered reporter instead of a stranger. While cam's
/// bulk job runs, the vendor floods validly signed DERIVEs naming 64 of
/// the job's members as parents (so they conflict and are held), into a
/// system that does not exist (so each is refused once the job ends:
/// nothing is logged), until the queue's byte budget is full. Secure: the
/// gate's unrelated CAPTURE is still logged while the job runs.
#[tokio::test(flavor = "multi_thread")]
async fn a18_a_reporters_held_envelopes_do_not_lock_out_other_reporters() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &["--queue-bytes", "1048576"]).await;
    let members = manifest(2 * LONG);
    let m = w.manifest(&members).await;
    let before = w.tree_size().await;
    let started = Instant::now();
    let job = w.spawn(bulk_capture("cam", &m));
    wait_head(&w.log.http, before, &job).await;
    let held_back = |parents: usize| {
        let mut e = derive("vendor", &random_digest(), &members[0]);
        if let Some(Body::Custody(a)) = &mut e.body {
            a.to_system = "nowhere".into();
            a.parents = members[..parents]
                .iter()
                .map(|d| v1::Parent {
                    digest: d.to_vec(),
                    relationship: v1::Relationship::DerivedFrom as i32,
                })
                .collect();
        }
        spawn_send(&w.c, e, &w.vendor)
    };
    let mut flood = Vec::new();
    for parents in [64, 1] {
        let mut full = false;
        for _ in 0..3_000 {
            let t = held_back(parents);
            tokio::time::sleep(Duration::from_millis(2)).await;
            if t.is_finished() {
                match t.await.unwrap().0 {
                    Err(s) if s.code() == Code::ResourceExhausted => {
                        full = true;
                        break;
                    }
                    other => panic!("a held-back envelope was answered at once with {other:?}"),
                }
            }
            flood.push(t);
        }
        assert!(
            full,
            "the byte budget never filled: {} forged envelopes ({parents} parents) in flight",
            flood.len()
        );
    }
    let held = flood.len();
    let flooded = started.elapsed();
    let mut refusals = Vec::new();
    let tried = Instant::now();
    let logged = loop {
        let e = capture_one("gate", &random_digest(), v1::SubjectClass::Citizen);
        match send(&mut w.c, &e, &[&w.gate]).await {
            Ok(i) => break Some(i),
            Err(s) => refusals.push(format!("{:?}: {}", s.code(), s.message())),
        }
        if tried.elapsed() > Duration::from_millis(2_500) || job.is_finished() {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let job_running = !job.is_finished();
    let (bulk_at, acked) = ok(job, "bulk capture").await;
    let mut logged_flood = 0;
    for t in flood {
        if t.await.unwrap().0.is_ok() {
            logged_flood += 1;
        }
    }
    eprintln!(
        "a18: bulk at {bulk_at}, job took {:?}, {held} of the vendor's envelopes held (budget full after {flooded:?}), {logged_flood} of them logged; gate logged {logged:?} after {} refusals, job still running then: {job_running}",
        acked - started,
        refusals.len()
    );
    assert_eq!(logged_flood, 0, "the flood was meant to leave no entry");
    if logged.is_none() && job_running {
        panic!(
            "ATTACK SUCCEEDED: {held} of the vendor's validly signed envelopes, held behind bulk job \
             {bulk_at} (and refused once it ended, leaving no entry), kept the queue's byte budget \
             full; the gate's unrelated CAPTURE was refused {} times over 2.5 s while the job ran ({})",
            refusals.len(),
            refusals.first().cloned().unwrap_or_default()
        );
    }
    assert!(
        logged.is_some(),
        "inconclusive: the job ended before the gate could try"
    );
}

/// S: the mirror of C. The vendor COPYs one of cam's members under its
/// grant while cam's bulk job runs: the COPY names a member, so it is held
/// until the job ends. The owner revokes the grant after the COPY was
/// submitted. In arrival order the COPY came first, under a valid grant:
/// it must not be found an unauthorized transfer because the revocation
/// was logged ahead of it while it was held.
#[tokio::test(flavor = "multi_thread")]
async fn a19_a_held_transfer_is_not_judged_after_a_later_grant_revocation() {
    let _turn = shared().await;
    let mut w = W::new(LONG_SLICE, &[]).await;
    let grant = w.owner_event(Body::GrantIssued(v1::GrantIssued {
        grant_id: "G1".into(),
        grantee: "vendor".into(),
        actions: vec![K::Copy as i32],
        purposes: vec![v1::Purpose::Maintenance as i32],
        systems: vec![system_of("vendor")],
        valid_from_unix_nanos: now() - HOUR,
        ..Default::default()
    }));
    w.put(&grant).await;
    let members = manifest(LONG);
    let m = w.manifest(&members).await;
    let before = w.tree_size().await;
    let job = w.spawn(bulk_capture("cam", &m));
    wait_head(&w.log.http, before, &job).await;
    let copy = w.spawn(transfer(
        K::Copy,
        "vendor",
        &members[LONG - 1],
        &system_of("cam"),
        &system_of("vendor"),
        "G1",
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let copy_waiting = !copy.is_finished();
    let revoke = w.spawn(w.owner_event(Body::GrantRevoked(v1::GrantRevoked {
        grant_id: "G1".into(),
    })));
    let (bulk_at, _) = ok(job, "bulk").await;
    let (copy_at, _) = ok(copy, "vendor COPY").await;
    let (rev_at, _) = ok(revoke, "GRANT_REVOKED").await;
    wait_for_size(&w.log.http, copy_at.max(rev_at) + 1).await;
    let (all, _) = all_findings(&mut w.q, "unauthorized_transfer", 0).await;
    let found = on_entry(&all, "unauthorized_transfer", copy_at);
    eprintln!(
        "a19: bulk {bulk_at}; COPY submitted first (held: {copy_waiting}) logged at {copy_at}; GRANT_REVOKED submitted after, logged at {rev_at}; unauthorized_transfer on the COPY: {:?}",
        found.iter().map(|f| f.detail.clone()).collect::<Vec<_>>()
    );
    assert!(
        found.is_empty(),
        "ATTACK SUCCEEDED: the vendor's COPY under G1, submitted before the grant was revoked and \
         held behind bulk job {bulk_at}, was logged at {copy_at} after the revocation (at {rev_at}) \
         and found an unauthorized transfer: {:?}",
        found.iter().map(|f| f.detail.clone()).collect::<Vec<_>>()
    );
}
