//! A hostile subcontractor's attacks on how findings are answered since
//! findings answers hold one page (`PageCutter`, page tokens carrying the
//! last finding's (time, id)) and overdue transfers come from the
//! `transfer_due` deadline index. Each test passes when the defence holds
//! and fails with a message starting "ATTACK SUCCEEDED:" when it does not.
//!
//! The world: the data owner with a lane camera (DEVICE) and two inside
//! systems (`lane`, `vault`); a prime; the subcontractor ("sub") acting for
//! the prime, with an inside system (`sub-in`). The receipt window is one
//! minute, so its edges are easy to hit with hostile receipt times.
//!
//! The harness is a trimmed copy of `attack_derived.rs`'s `W`: test files
//! are separate crates, and including that file as a module would run its
//! tests (the flood among them) with these.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_domain::replay::{manifest_of, ManifestSource, Replay};
use custody_domain::{Digest, ManifestRef, Refusal};
use custody_e2e::random_digest as digest;
use custody_e2e::*;
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use custody_proto::v1::event::Body;
use custody_proto::v1::CustodyActionKind as K;
use custody_proto::{decode_entry, decode_event, finding_to_proto, Entry};
use ed25519_dalek::SigningKey;
use tonic::transport::Channel;

const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;

/// The receipt window, in seconds: short, so its edges are reachable.
const WINDOW_S: i64 = 60;
const WINDOW: i64 = WINDOW_S * SEC;
const DEADLINE_S: i64 = 3600;
const ATTEST_S: i64 = 86_400;

/// `published` is the POLICY_PUBLISHED the test's log starts with.
fn published() -> Body {
    policy_published(WINDOW_S, DEADLINE_S, ATTEST_S)
}

fn ev(reporter: &str, t: i64, body: Body) -> v1::Event {
    let mut e = event(reporter, body);
    e.event_time_unix_nanos = t;
    e.reporter_seq = 0;
    e
}

fn act(f: impl FnOnce(&mut v1::CustodyAction)) -> Body {
    let mut a = v1::CustodyAction::default();
    f(&mut a);
    Body::Custody(a)
}

fn capture_on(asset: &[u8; 32], to: &str) -> Body {
    act(|a| {
        a.action = K::Capture as i32;
        a.actor = "cam".into();
        a.asset_digest = asset.to_vec();
        a.to_system = to.into();
        a.modality = v1::Modality::SceneImage as i32;
        a.subject_class = v1::SubjectClass::Citizen as i32;
    })
}

fn xfer(kind: K, actor: &str, asset: &[u8; 32], from: &str, to: &str) -> Body {
    act(|a| {
        a.action = kind as i32;
        a.actor = actor.into();
        a.asset_digest = asset.to_vec();
        a.from_system = from.into();
        a.to_system = to.into();
        a.purpose = v1::Purpose::Maintenance as i32;
    })
}

fn receipt(actor: &str, of: u64) -> Body {
    act(|a| {
        a.action = K::Receipt as i32;
        a.actor = actor.into();
        a.receipt_of = of;
    })
}

fn size_of_note(note: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(note).lines().nth(1)?.parse().ok()
}

struct NoManifests;

impl ManifestSource for NoManifests {
    fn members(&self, _: &ManifestRef) -> Result<Option<Arc<Vec<Digest>>>, Refusal> {
        Ok(None)
    }
}

type Signed = (v1::Event, SigningKey);

/// A transfer under test: its name, entry, time, and its receipt's time
/// and entry.
type Logged = (&'static str, u64, i64, Option<(i64, u64)>);

struct H {
    log: Log,
    c: CustodyLogClient<Channel>,
    q: CustodyQueryClient<Channel>,
    sub: SigningKey,
    cam: SigningKey,
    next: u64,
    sizes: BTreeSet<u64>,
}

impl H {
    /// `new` starts a server and registers the world; with `rule`, a
    /// retention rule for face images is published too.
    async fn new(rule: bool) -> Self {
        let mut log = Log::init();
        log.start();
        let c = log.client().await;
        let q = CustodyQueryClient::connect(log.grpc.clone())
            .await
            .expect("connect query");
        let o = log.owner_id.clone();
        let ok = log.owner.clone();
        let mut h = Self {
            log,
            c,
            q,
            sub: ok.clone(),
            cam: ok.clone(),
            next: 1,
            sizes: BTreeSet::new(),
        };
        // The policy first: it applies to every entry after it.
        let mut setup: Vec<Body> = vec![
            published(),
            org("prime", v1::PartyKind::Prime, &o),
            org("sub", v1::PartyKind::Subcontractor, "prime"),
            org("cam", v1::PartyKind::Device, &o),
            system_registered("lane", &o, true, false),
            system_registered("vault", &o, true, false),
            system_registered("sub-in", "sub", true, false),
        ];
        let sub = SigningKey::generate(&mut rand_core::OsRng);
        let cam = SigningKey::generate(&mut rand_core::OsRng);
        setup.push(key_added("sub", &sub, 0, 0));
        setup.push(key_added("cam", &cam, 0, 0));
        if rule {
            setup.push(face_rule());
        }
        let evs: Vec<Signed> = setup
            .into_iter()
            .map(|b| (event(&o, b), ok.clone()))
            .collect();
        for r in h.stream(evs, true).await {
            assert_eq!(r.error_code, 0, "setup refused: {}", r.error_message);
        }
        h.sub = sub;
        h.cam = cam;
        h
    }

    async fn stream(&mut self, evs: Vec<Signed>, wait: bool) -> Vec<v1::AppendResponse> {
        let n = evs.len();
        let reqs: Vec<_> = evs
            .iter()
            .map(|(e, k)| v1::AppendRequest {
                event: Some(signed(e, &[k])),
                wait_for_checkpoint: wait,
            })
            .collect();
        let mut c = self.log.client().await;
        let got = stream_requests(&mut c, reqs).await;
        assert_eq!(got.len(), n, "one answer per event");
        self.note(&got);
        got
    }

    fn note(&mut self, got: &[v1::AppendResponse]) {
        for r in got {
            if r.error_code == 0 && !r.duplicate {
                self.next = self.next.max(r.index + 1);
            }
            if let Some(s) = size_of_note(&r.checkpoint) {
                self.sizes.insert(s);
            }
        }
    }

    /// `send` appends one event, waits for its checkpoint, and returns
    /// its index (failing the test if it is refused).
    async fn send(&mut self, e: &v1::Event, k: &SigningKey, what: &str) -> u64 {
        let r = append(&mut self.c, e, &[k])
            .await
            .unwrap_or_else(|s| panic!("{what}: {s}"));
        assert_eq!(r.error_code, 0, "{what} refused: {}", r.error_message);
        self.note(std::slice::from_ref(&r));
        r.index
    }

    async fn capture(&mut self, t: i64) -> [u8; 32] {
        let a = digest();
        let cam = self.cam.clone();
        self.send(&ev("cam", t, capture_on(&a, "lane")), &cam, "capture")
            .await;
        a
    }

    /// `copy_to_sub` has the camera copy `a` from the lane to the
    /// subcontractor's system at `t`.
    async fn copy_to_sub(&mut self, a: &[u8; 32], t: i64) -> u64 {
        let cam = self.cam.clone();
        let e = ev("cam", t, xfer(K::Copy, "cam", a, "lane", "sub-in"));
        self.send(&e, &cam, "copy").await
    }

    async fn sub_receipt(&mut self, of: u64, t: i64) -> u64 {
        let sub = self.sub.clone();
        self.send(&ev("sub", t, receipt("sub", of)), &sub, "receipt")
            .await
    }

    async fn wait_size(&mut self, size: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let note = self
                .c
                .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
                .await
                .map(|r| r.into_inner().checkpoint)
                .unwrap_or_default();
            if let Some(s) = size_of_note(&note).filter(|s| *s >= size) {
                self.sizes.insert(s);
                return s;
            }
            assert!(Instant::now() < deadline, "no checkpoint of size {size}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn page(
        &mut self,
        token: Vec<u8>,
        as_of: i64,
        size: u32,
    ) -> Result<v1::FindingsResponse, tonic::Status> {
        self.q
            .findings(v1::FindingsRequest {
                as_of_unix_nanos: as_of,
                page_size: size,
                page_token: token,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    /// `findings_at` is every finding as of `as_of` pinned to checkpoint
    /// `size`, read in pages of 1000.
    async fn findings_at(&mut self, size: u64, as_of: i64) -> Vec<v1::Finding> {
        let mut all = Vec::new();
        let mut token = size.to_be_bytes().to_vec();
        loop {
            let r = self
                .page(token, as_of, 1000)
                .await
                .unwrap_or_else(|s| panic!("findings at size {size} as of {as_of}: {s}"));
            all.extend(r.findings);
            if r.next_page_token.is_empty() {
                return all;
            }
            token = r.next_page_token;
        }
    }

    /// `replay` replays the log up to its latest checkpoint in memory.
    async fn replay(&mut self) -> (Replay, u64) {
        let size = self.wait_size(self.next).await;
        let mut bytes: Vec<Vec<u8>> = Vec::new();
        while (bytes.len() as u64) < size {
            let start = bytes.len() as u64;
            let end = (start + 1000).min(size);
            let got = self
                .c
                .get_entries(v1::GetEntriesRequest { start, end })
                .await
                .expect("get entries")
                .into_inner()
                .entries;
            assert!(!got.is_empty());
            bytes.extend(got);
        }
        let Ok(Entry::Genesis(g)) = decode_entry(&bytes[0]) else {
            panic!("entry 0 is not genesis");
        };
        let mut replay = Replay::new(&g).expect("replay");
        for (i, b) in bytes.iter().enumerate().skip(1) {
            let Ok(Entry::Event {
                envelope,
                integrated_time,
            }) = decode_entry(b)
            else {
                panic!("entry {i} does not decode");
            };
            let event = decode_event(&envelope.body).expect("event");
            assert!(manifest_of(&event).is_none(), "no manifests here");
            let signers: Vec<_> = envelope.signatures.iter().map(|s| s.key_id).collect();
            replay
                .apply(i as u64, &event, &signers, integrated_time, &NoManifests)
                .unwrap_or_else(|r| panic!("the replay refuses entry {i} the server logged: {r}"));
        }
        (replay, size)
    }

    /// `differential` compares the server's findings with a replay at each
    /// of `sizes` as of each of `times`, and returns the differences.
    async fn differential(&mut self, sizes: &[u64], times: &[i64]) -> (Vec<String>, usize) {
        let (replay, _) = self.replay().await;
        let mut diffs = Vec::new();
        let mut compared = 0;
        for s in sizes {
            for t in times {
                let theirs = self.findings_at(*s, *t).await;
                let ours: Vec<v1::Finding> = replay
                    .findings_at(*s, *t)
                    .iter()
                    .map(finding_to_proto)
                    .collect();
                compared += 1;
                if theirs != ours {
                    diffs.push(describe_diff(*s, *t, &ours, &theirs));
                }
            }
        }
        (diffs, compared)
    }

    /// `audit` runs `custody audit --compare all`; `Err` on a difference.
    async fn audit(&mut self) -> Result<(), String> {
        self.wait_size(self.next).await;
        let vkey = self.log.vkey.to_str().unwrap_or_default().to_owned();
        let args: Vec<String> = [
            "audit",
            "--url",
            &self.log.http,
            "--log-key",
            &vkey,
            "--server",
            &self.log.grpc,
            "--compare",
            "all",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = custody(&args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let j: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("audit printed no JSON ({e}): {err}"))?;
        if !out.status.success()
            || j["differences"] != serde_json::Value::Array(vec![])
            || j["compare"]["findings"]["agree"] != true
        {
            return Err(format!(
                "the server's findings differ from `custody audit`'s replay: exit {:?}, \
                 differences {:#}, compare {:#}\n{err}",
                out.status.code(),
                j["differences"],
                j["compare"]
            ));
        }
        Ok(())
    }

    fn alive(&mut self) -> Option<String> {
        match self.log.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(st))) => Some(format!(
                "the server exited ({st}); its log ends:\n{}",
                tail(&self.log.server_log(), 2000)
            )),
            _ => None,
        }
    }
}

fn face_rule() -> Body {
    Body::RetentionRulePublished(v1::RetentionRulePublished {
        rule_id: "R-FACE-1H".into(),
        authority: v1::RetentionAuthority::Sorn as i32,
        authority_ref: "sorn-1".into(),
        modality: v1::Modality::FaceImage as i32,
        max_age_nanos: 60 * MIN,
        clock: v1::RetentionClock::Capture as i32,
        ..Default::default()
    })
}

fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

fn describe_diff(size: u64, t: i64, ours: &[v1::Finding], theirs: &[v1::Finding]) -> String {
    let o: HashMap<&str, &v1::Finding> = ours.iter().map(|f| (f.id.as_str(), f)).collect();
    let s: HashMap<&str, &v1::Finding> = theirs.iter().map(|f| (f.id.as_str(), f)).collect();
    let mut lines = vec![format!(
        "  at size {size}, as of {t}: replay {} findings, server {}",
        ours.len(),
        theirs.len()
    )];
    for f in ours {
        match s.get(f.id.as_str()) {
            None => lines.push(format!("    server omits {f:?}")),
            Some(g) if *g != f => lines.push(format!("    differs: server {g:?}, replay {f:?}")),
            _ => {}
        }
    }
    for g in theirs {
        if !o.contains_key(g.id.as_str()) {
            lines.push(format!("    server adds {g:?}"));
        }
    }
    if lines.len() == 1 {
        lines.push("    same findings in another order".into());
    }
    lines.truncate(10);
    lines.join("\n")
}

fn unack(all: &[v1::Finding], transfer: u64) -> Option<&v1::Finding> {
    all.iter()
        .find(|f| f.rule == "unacknowledged_transfer" && f.entries.first() == Some(&transfer))
}

/// F1. Receipts with hostile times: before their transfer (negative
/// delays, down to 1 ns after the epoch), exactly at the window's edge and
/// one nanosecond either side of it, a transfer dated 1 ns after the epoch
/// (the largest delay admission lets through), transfers dated in the
/// future (inside the clock skew) with receipts dated long before them, a
/// COPY and its RECEIPT streamed together, and receipts logged several
/// checkpoints after their transfer (one in time, one late). The server's
/// findings at every checkpoint seen, as of times around every edge, must
/// be exactly a replay's, and the window's edges must fall where the rule
/// says (a receipt at the deadline is in time; one nanosecond later is
/// not).
#[tokio::test(flavor = "multi_thread")]
async fn f1_hostile_receipt_times_match_a_replay_at_every_checkpoint() {
    let mut h = H::new(false).await;
    let now0 = now();
    let t = now0 - 20 * MIN;
    let a = h.capture(t - MIN).await;
    let mut errs = Vec::new();

    // (name, transfer time, receipt time or None, logged later?)
    let cases: Vec<(&str, i64, Option<i64>)> = vec![
        ("negative delay", t, Some(t - 5 * MIN)),
        ("receipt at 1 ns", t, Some(1)),
        ("at the deadline", t, Some(t + WINDOW)),
        ("1 ns before the deadline", t, Some(t + WINDOW - 1)),
        ("1 ns after the deadline", t, Some(t + WINDOW + 1)),
        ("transfer at 1 ns", 1, Some(now0)),
        ("transfer at 1 ns, receipt at 1 ns", 1, Some(1)),
        (
            "transfer at 1 ns, receipt at the window",
            1,
            Some(1 + WINDOW),
        ),
        (
            "future transfer, receipt at 1 ns",
            now0 + 200 * SEC,
            Some(1),
        ),
        (
            "future transfer, receipt in time",
            now0 + 200 * SEC,
            Some(now0 + 250 * SEC),
        ),
        ("no receipt", t, None),
        ("no receipt, dated 1 ns", 1, None),
    ];
    let mut logged: Vec<Logged> = Vec::new();
    for (name, tt, rt) in &cases {
        let x = h.copy_to_sub(&a, *tt).await;
        let r = match rt {
            Some(rt) => Some((*rt, h.sub_receipt(x, *rt).await)),
            None => None,
        };
        logged.push((name, x, *tt, r));
    }
    // COPY and RECEIPT streamed together, behind filler that keeps the
    // sequencer busy so they likely share a batch: the receipt learns its
    // transfer's time from the overlay. One late, one at the edge.
    for (name, rt) in [
        ("one batch, late", t + WINDOW + 1),
        ("one batch, edge", t + WINDOW),
    ] {
        let cam = h.cam.clone();
        let sub = h.sub.clone();
        let mut evs: Vec<Signed> = (0..60)
            .map(|_| (ev("cam", now(), capture_on(&digest(), "lane")), cam.clone()))
            .collect();
        let base = h.next + evs.len() as u64;
        evs.push((
            ev("cam", t, xfer(K::Copy, "cam", &a, "lane", "sub-in")),
            cam,
        ));
        evs.push((ev("sub", rt, receipt("sub", base)), sub));
        let got = h.stream(evs, false).await;
        let n = got.len();
        assert!(
            got.iter().all(|r| r.error_code == 0),
            "one batch refused: {:?}",
            got.iter().find(|r| r.error_code != 0)
        );
        assert_eq!(got[n - 2].index, base, "the copy's index");
        logged.push((name, base, t, Some((rt, got[n - 1].index))));
    }
    // Receipts logged checkpoints after their transfers.
    let x_in = h.copy_to_sub(&a, t).await;
    let x_late = h.copy_to_sub(&a, t).await;
    for _ in 0..3 {
        h.capture(now()).await;
    }
    let r_in = h.sub_receipt(x_in, t + 30 * SEC).await;
    for _ in 0..2 {
        h.capture(now()).await;
    }
    let r_late = h.sub_receipt(x_late, t + 2 * WINDOW).await;
    logged.push((
        "receipt logged later, in time",
        x_in,
        t,
        Some((t + 30 * SEC, r_in)),
    ));
    logged.push((
        "receipt logged later, late",
        x_late,
        t,
        Some((t + 2 * WINDOW, r_late)),
    ));
    h.capture(now()).await;
    let latest = h.wait_size(h.next).await;

    // The rule's edges, at the latest checkpoint, as of now.
    let as_of = now();
    let all = h.findings_at(latest, as_of).await;
    for (name, x, tt, r) in &logged {
        let due = tt + WINDOW;
        let want = due < as_of && r.is_none_or(|(rt, _)| rt > due);
        let got = unack(&all, *x);
        if want != got.is_some() {
            errs.push(format!(
                "{name}: transfer {x} at {tt}, receipt {r:?}: the server {} an unacknowledged_transfer finding, the rule {} one",
                if got.is_some() { "gives" } else { "gives no" },
                if want { "needs" } else { "allows none" }
            ));
        }
    }

    // Every checkpoint seen, as of times around each edge.
    let sizes: Vec<u64> = h.sizes.iter().copied().filter(|s| *s <= latest).collect();
    let mut times = vec![
        1,
        2,
        1 + WINDOW,
        2 + WINDOW,
        t + 30 * SEC,
        t + WINDOW - 1,
        t + WINDOW,
        t + WINDOW + 1,
        t + WINDOW + 2,
        t + 2 * WINDOW,
        t + 2 * WINDOW + 1,
        now0,
        as_of,
        now0 + 200 * SEC + WINDOW + 1,
        now0 + 250 * SEC + WINDOW + 1,
        i64::MAX,
        -1,
        i64::MIN,
    ];
    times.sort_unstable();
    times.dedup();
    let started = Instant::now();
    let (diffs, compared) = h.differential(&sizes, &times).await;
    eprintln!(
        "f1: {} checkpoints x {} times = {compared} answers compared with a replay in {:?}; {} findings at the latest",
        sizes.len(),
        times.len(),
        started.elapsed(),
        all.len()
    );
    errs.extend(diffs);
    if let Err(e) = h.audit().await {
        errs.push(e);
    }
    if let Some(e) = h.alive() {
        errs.push(e);
    }
    assert!(errs.is_empty(), "ATTACK SUCCEEDED:\n{}", errs.join("\n"));
}

/// F2. Paging while the log grows, with findings sharing their time: 300
/// COPYs dated at one nanosecond raise an unauthorized transfer and an
/// unacknowledged transfer each, all at the same two times, so the ids
/// alone order them (lexicographically, "…:100" before "…:99"). A
/// walk with page_size 1 pinned to one checkpoint, while more COPYs at the
/// same time and receipts for the first transfers are logged, must list
/// every finding of that checkpoint exactly once, in order, with a total
/// that never changes, and equal to a replay of that checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn f2_page_size_one_walk_pinned_while_the_log_grows() {
    let mut h = H::new(false).await;
    let t = now() - 30 * MIN;
    let a = h.capture(t - MIN).await;
    let cam = h.cam.clone();
    // Each page is a whole evaluation, so a walk costs n²: 300 COPYs
    // (600 pages) keep it to seconds.
    let n = 300;
    let evs: Vec<Signed> = (0..n)
        .map(|_| {
            (
                ev("cam", t, xfer(K::Copy, "cam", &a, "lane", "sub-in")),
                cam.clone(),
            )
        })
        .collect();
    let got = h.stream(evs, false).await;
    assert!(got.iter().all(|r| r.error_code == 0), "copies refused");
    let copies: Vec<u64> = got.iter().map(|r| r.index).collect();
    let size = h.wait_size(h.next).await;
    let as_of = now();

    // Meanwhile: more COPYs at the same time, and receipts (in time, and
    // one at the edge) for the first transfers.
    let grow = {
        let grpc = h.log.grpc.clone();
        let sub = h.sub.clone();
        let cam = cam.clone();
        let first: Vec<u64> = copies.iter().copied().take(300).collect();
        tokio::spawn(async move {
            let mut c = CustodyLogClient::connect(grpc).await.expect("connect");
            let mut logged = 0;
            for (k, x) in first.iter().enumerate() {
                let rt = if k % 2 == 0 { t + 10 * SEC } else { t + WINDOW };
                let r = ev("sub", rt, receipt("sub", *x));
                let more = ev("cam", t, xfer(K::Copy, "cam", &a, "lane", "sub-in"));
                for (e, key) in [(r, &sub), (more, &cam)] {
                    let x = c
                        .append(v1::AppendRequest {
                            event: Some(signed(&e, &[key])),
                            wait_for_checkpoint: false,
                        })
                        .await
                        .expect("append")
                        .into_inner();
                    assert_eq!(x.error_code, 0, "refused: {}", x.error_message);
                    logged += 1;
                }
            }
            logged
        })
    };

    let mut errs = Vec::new();
    let started = Instant::now();
    let mut token = size.to_be_bytes().to_vec();
    let mut walked: Vec<v1::Finding> = Vec::new();
    let mut totals = BTreeSet::new();
    let mut pages = 0;
    let mut slowest = Duration::ZERO;
    loop {
        let t0 = Instant::now();
        let r = match h.page(token.clone(), as_of, 1).await {
            Ok(r) => r,
            Err(s) => {
                errs.push(format!("page {pages} failed: {s}"));
                break;
            }
        };
        slowest = slowest.max(t0.elapsed());
        pages += 1;
        totals.insert(r.total);
        if r.findings.len() > 1 {
            errs.push(format!("page {pages} holds {} findings", r.findings.len()));
        }
        walked.extend(r.findings);
        if r.next_page_token.is_empty() {
            break;
        }
        if r.next_page_token[..8] != size.to_be_bytes() {
            errs.push(format!("page {pages}'s token left checkpoint {size}"));
        }
        token = r.next_page_token;
        if pages > 10 * n {
            errs.push("the walk does not end".into());
            break;
        }
    }
    let walk = started.elapsed();
    let logged = grow.await.expect("grower");
    let whole = h.findings_at(size, as_of).await;
    let (replay, _) = h.replay().await;
    let ours: Vec<v1::Finding> = replay
        .findings_at(size, as_of)
        .iter()
        .map(finding_to_proto)
        .collect();
    eprintln!(
        "f2: walked {} findings in {pages} pages of 1 in {walk:?} (slowest page {slowest:?}) while {logged} entries were logged; totals seen {totals:?}",
        walked.len()
    );
    let mut seen = HashSet::new();
    let repeats: Vec<&str> = walked
        .iter()
        .filter(|f| !seen.insert(f.id.as_str()))
        .map(|f| f.id.as_str())
        .take(5)
        .collect();
    if !repeats.is_empty() {
        errs.push(format!("the walk repeats findings: {repeats:?}"));
    }
    if totals.len() != 1 || totals.first() != Some(&(ours.len() as u64)) {
        errs.push(format!(
            "the total changed across pages or is wrong: {totals:?}, replay {}",
            ours.len()
        ));
    }
    if walked != ours {
        errs.push(format!(
            "page-size-1 walk differs from the replay:\n{}",
            describe_diff(size, as_of, &ours, &walked)
        ));
    }
    if whole != ours {
        errs.push(format!(
            "pages of 1000 differ from the replay:\n{}",
            describe_diff(size, as_of, &ours, &whole)
        ));
    }
    // The shared times were really shared.
    let times: BTreeSet<i64> = ours.iter().map(|f| f.at_unix_nanos).collect();
    assert!(
        ours.len() >= 2 * n && times.len() <= 4,
        "precondition: {} findings at {} times",
        ours.len(),
        times.len()
    );
    if let Some(e) = h.alive() {
        errs.push(e);
    }
    assert!(errs.is_empty(), "ATTACK SUCCEEDED:\n{}", errs.join("\n"));
}

/// F3. Forged page tokens and web cursors: short, long, not UTF-8, for a
/// checkpoint that does not exist, with extreme as_of times and cursor
/// times, an empty id, a mismatched as_of. Each must be answered (with a
/// page, or a clean INVALID_ARGUMENT / HTTP 400), never with an internal
/// error, a 500 or a crash; and an answer for a forged cursor must still
/// be the findings after it, in order.
#[tokio::test(flavor = "multi_thread")]
async fn f3_forged_tokens_and_cursors_are_refused_cleanly() {
    let mut h = H::new(false).await;
    let t = now() - 30 * MIN;
    let a = h.capture(t - MIN).await;
    for _ in 0..5 {
        h.copy_to_sub(&a, t).await;
    }
    let size = h.wait_size(h.next).await;
    let as_of = now();
    let all = h.findings_at(size, as_of).await;
    assert!(all.len() >= 10, "precondition: {} findings", all.len());
    let mut errs = Vec::new();

    let sz = size.to_be_bytes().to_vec();
    let cursor = |s: &[u8], as_of: i64, at: i64, id: &[u8]| {
        let mut v = s.to_vec();
        v.extend_from_slice(&as_of.to_be_bytes());
        v.extend_from_slice(&at.to_be_bytes());
        v.extend_from_slice(id);
        v
    };
    let mid = &all[all.len() / 2];
    let mut forged: Vec<(String, Vec<u8>, i64)> = vec![
        ("1 byte".into(), vec![0], 0),
        ("7 bytes".into(), vec![0xff; 7], 0),
        ("size u64::MAX".into(), u64::MAX.to_be_bytes().to_vec(), 0),
        ("size 0".into(), 0u64.to_be_bytes().to_vec(), 0),
        ("size latest+1".into(), (size + 1).to_be_bytes().to_vec(), 0),
        (
            "size with 1 cursor byte".into(),
            [sz.clone(), vec![1]].concat(),
            0,
        ),
        (
            "size with 15 cursor bytes".into(),
            [sz.clone(), vec![1; 15]].concat(),
            0,
        ),
        ("empty id".into(), cursor(&sz, as_of, 0, b""), 0),
        (
            "non-UTF-8 id".into(),
            cursor(&sz, as_of, 0, &[0xff, 0xfe]),
            0,
        ),
        ("id of 1024".into(), cursor(&sz, as_of, 0, &[b'a'; 1024]), 0),
        ("id of 1025".into(), cursor(&sz, as_of, 0, &[b'a'; 1025]), 0),
        (
            "id of 100000".into(),
            cursor(&sz, as_of, 0, &vec![b'a'; 100_000]),
            0,
        ),
        (
            "as_of i64::MIN".into(),
            cursor(&sz, i64::MIN, i64::MIN, b"x"),
            0,
        ),
        (
            "as_of i64::MAX".into(),
            cursor(&sz, i64::MAX, i64::MAX, b"x"),
            0,
        ),
        (
            "as_of -1, at MAX".into(),
            cursor(&sz, -1, i64::MAX, b"\0"),
            0,
        ),
        (
            "as_of mismatch".into(),
            cursor(&sz, as_of, 0, b"x"),
            as_of + 1,
        ),
        (
            "cursor at the middle finding".into(),
            cursor(&sz, as_of, mid.at_unix_nanos, mid.id.as_bytes()),
            0,
        ),
        (
            "cursor just before the middle finding".into(),
            cursor(
                &sz,
                as_of,
                mid.at_unix_nanos,
                &mid.id.as_bytes()[..mid.id.len() - 1],
            ),
            0,
        ),
    ];
    forged.push(("no token, as_of MIN".into(), Vec::new(), i64::MIN));
    forged.push(("no token, as_of MAX".into(), Vec::new(), i64::MAX));
    for (name, token, asked) in &forged {
        let r = h.page(token.clone(), *asked, 1000).await;
        match r {
            Ok(r) => {
                // After a cursor: exactly the findings after it, in order.
                if token.len() > 24 {
                    let (at, id) = (
                        i64::from_be_bytes(token[16..24].try_into().unwrap_or_default()),
                        String::from_utf8_lossy(&token[24..]).into_owned(),
                    );
                    let t_as_of = i64::from_be_bytes(token[8..16].try_into().unwrap_or_default());
                    if t_as_of == as_of {
                        let want: Vec<&v1::Finding> = all
                            .iter()
                            .filter(|f| (f.at_unix_nanos, f.id.as_str()) > (at, id.as_str()))
                            .collect();
                        let got: Vec<&v1::Finding> = r.findings.iter().collect();
                        if want != got || r.total != all.len() as u64 {
                            errs.push(format!(
                                "{name}: {} findings after the cursor, want {}; total {} of {}",
                                got.len(),
                                want.len(),
                                r.total,
                                all.len()
                            ));
                        }
                    }
                }
                eprintln!("f3: {name}: answered, {} findings", r.findings.len());
            }
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                eprintln!("f3: {name}: INVALID_ARGUMENT: {}", s.message());
            }
            Err(s) => errs.push(format!("{name}: {:?} {}", s.code(), s.message())),
        }
        if let Some(e) = h.alive() {
            errs.push(format!("after {name}: {e}"));
            break;
        }
    }

    // The web view's cursor.
    let http = reqwest::Client::new();
    let long = "a".repeat(5000);
    let afters = [
        "abc",
        "~",
        "1~",
        "~x",
        "x~y",
        "99999999999999999999~x",
        "-9223372036854775808~x",
        "9223372036854775807~x",
        "0~%FF%FE",
        "0~%00",
        "0~a~b~c",
        &long,
        "0~",
    ];
    for after in afters {
        for page in [
            "",
            "&page=0",
            "&page=18446744073709551615",
            "&page=-1",
            "&page=x",
        ] {
            let url = format!("{}/ui/findings?after={after}{page}", h.log.http);
            match http.get(&url).send().await {
                Ok(r) if r.status().as_u16() == 200 || r.status().as_u16() == 400 => {}
                Ok(r) => errs.push(format!(
                    "/ui/findings?after={after}{page}: HTTP {}",
                    r.status()
                )),
                Err(e) => errs.push(format!("/ui/findings?after={after}{page}: {e}")),
            }
        }
        if let Some(e) = h.alive() {
            errs.push(format!("after ?after={after}: {e}"));
            break;
        }
    }
    // The web view's walk lists every finding once.
    let mut url = format!("{}/ui/findings", h.log.http);
    let mut rows = 0;
    for _ in 0..10 {
        let body = http
            .get(&url)
            .send()
            .await
            .expect("ui")
            .text()
            .await
            .unwrap_or_default();
        rows += body.matches("unauthorized_transfer:").count();
        match body.split("&amp;after=").nth(1) {
            Some(rest) => {
                let c = rest
                    .split('"')
                    .next()
                    .unwrap_or_default()
                    .replace("&amp;", "&");
                url = format!("{}/ui/findings?after={c}&page=2", h.log.http);
            }
            None => break,
        }
    }
    eprintln!("f3: the web view shows {rows} mentions of unauthorized_transfer ids");
    if let Some(e) = h.alive() {
        errs.push(e);
    }
    assert!(errs.is_empty(), "ATTACK SUCCEEDED:\n{}", errs.join("\n"));
}
