//! Attacks on the kept breach-scope counts (`custody-store`'s
//! `index/scope.rs`, commit da18667): `BreachScope`'s `asset_count` and
//! `by_class` now come from per-system counts of interval opens and
//! closes by time bucket (`P(N, b) - Q(N, a)`), corrected one by one for
//! assets marked as returning to a system (`r`) and intervals that close
//! before they open (`i`). A hostile reporter chooses its event times and
//! the order of its events; it wants a copy it holds counted wrong (best,
//! hidden), or the question made slow or failing.
//!
//! Each test asserts the secure behaviour: the count and split the server
//! gives are the truth, computed here by a naive model of what was sent
//! (and accepted) and cross-checked with the page of intervals the server
//! lists (a scan that does not use the kept counts) and, where it fits,
//! with `custody audit` (an independent replay). A test fails with
//! "ATTACK SUCCEEDED" when the attack works.
//!
//! s01–s04 broke the first cut: an asset whose bytes a COPY brought in
//! before a CAPTURE or DERIVE created it was counted once per interval,
//! because a created asset was taken to have no earlier interval.
//!
//! The world: the data owner and three devices acting for it, each with a
//! system of its own ([`register`]): a camera "cam", a gate "gate" and a
//! vendor's box "vendor", whose system is the one asked about.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use custody_domain::hex;
use custody_e2e::*;
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use custody_proto::v1::event::Body;
use custody_proto::v1::CustodyActionKind as K;
use ed25519_dalek::SigningKey;
use tonic::transport::Channel;

type Client = CustodyLogClient<Channel>;
type Query = CustodyQueryClient<Channel>;
type Digest = [u8; 32];
/// A breach scope's split key: (modality, subject class) wire codes.
type Class = (i32, i32);

const SEC: i64 = 1_000_000_000;
const HOUR: i64 = 3600 * SEC;
const FACE_CITIZEN: Class = (1, 1);
const PLATE_NONCITIZEN: Class = (2, 3);
const SCENE_RESIDENT: Class = (3, 2);

// ---------------------------------------------------------------------
// The model: what the log should show, from what was accepted
// ---------------------------------------------------------------------

/// `Op` is one custody action, on one asset or each member of a manifest.
#[derive(Clone, Debug)]
enum Op {
    Capture {
        to: String,
        class: Class,
    },
    /// A DERIVE from `parent`: creates its asset as a CAPTURE does.
    Derive {
        to: String,
        class: Class,
        parent: Digest,
    },
    Copy {
        from: String,
        to: String,
    },
    Move {
        from: String,
        to: String,
    },
    Delete {
        from: String,
    },
}

/// `Act` is an [`Op`] on `assets` (through `manifest` when set), dated `t`.
#[derive(Clone, Debug)]
struct Act {
    op: Op,
    assets: Vec<Digest>,
    manifest: Option<v1::Manifest>,
    t: i64,
}

impl Act {
    fn one(op: Op, asset: Digest, t: i64) -> Self {
        Self {
            op,
            assets: vec![asset],
            manifest: None,
            t,
        }
    }
}

/// `Iv` is one custody interval, as the model keeps it.
#[derive(Clone, Debug)]
struct Iv {
    asset: Digest,
    system: String,
    from: i64,
    to: Option<i64>,
    opened_by: u64,
    closed_by: Option<u64>,
    class: Class,
}

/// `Truth` is a breach scope: distinct assets, by class, and which.
#[derive(Debug, Default, PartialEq, Eq)]
struct Truth {
    count: u64,
    by_class: BTreeMap<Class, u64>,
    assets: BTreeSet<Digest>,
}

/// `Model` replays accepted actions the way the domain's rules say
/// (crates/custody-domain/src/custody.rs), naively.
#[derive(Default)]
struct Model {
    ivs: Vec<Iv>,
    open: HashMap<(Digest, String), usize>,
    meta: HashMap<Digest, Class>,
}

impl Model {
    /// `accepts` is whether the domain should log `a`.
    fn accepts(&self, a: &Act) -> bool {
        // custody_domain::MAX_CLOCK_SKEW, with a margin.
        if a.t <= 0 || a.t > now() + 290 * SEC {
            return false;
        }
        a.assets.iter().all(|d| match &a.op {
            Op::Capture { class, .. } | Op::Derive { class, .. } => {
                self.meta.get(d).is_none_or(|c| c == class)
            }
            Op::Copy { from, to } => from != to,
            Op::Move { from, to } => {
                from != to
                    && self
                        .open
                        .get(&(*d, from.clone()))
                        .is_none_or(|i| a.t >= self.ivs[*i].from)
            }
            Op::Delete { from } => self
                .open
                .get(&(*d, from.clone()))
                .is_some_and(|i| a.t >= self.ivs[*i].from),
        })
    }

    fn open_on(&mut self, d: Digest, system: &str, t: i64, index: u64) {
        let key = (d, system.to_owned());
        if self.open.contains_key(&key) {
            return;
        }
        self.ivs.push(Iv {
            asset: d,
            system: system.to_owned(),
            from: t,
            to: None,
            opened_by: index,
            closed_by: None,
            class: self.meta.get(&d).copied().unwrap_or((0, 0)),
        });
        self.open.insert(key, self.ivs.len() - 1);
    }

    fn close_on(&mut self, d: Digest, system: &str, t: i64, index: u64) {
        if let Some(i) = self.open.remove(&(d, system.to_owned())) {
            self.ivs[i].to = Some(t);
            self.ivs[i].closed_by = Some(index);
        }
    }

    /// `apply` records `a`, logged at `index`.
    fn apply(&mut self, a: &Act, index: u64) {
        for d in &a.assets {
            match &a.op {
                Op::Capture { to, class } | Op::Derive { to, class, .. } => {
                    self.meta.entry(*d).or_insert(*class);
                    self.open_on(*d, to, a.t, index);
                }
                Op::Copy { to, .. } => self.open_on(*d, to, a.t, index),
                Op::Move { from, to } => {
                    self.open_on(*d, to, a.t, index);
                    self.close_on(*d, from, a.t, index);
                }
                Op::Delete { from } => self.close_on(*d, from, a.t, index),
            }
        }
    }

    /// `truth` is the breach scope of `system` over `[a, b]` as of tree
    /// size `size`: `Interval::overlaps`, an asset counted once, with the
    /// class of its first overlapping interval (by opening entry) whose
    /// modality is known, else its last.
    fn truth(&self, system: &str, a: i64, b: i64, size: u64) -> Truth {
        let mut by_asset: BTreeMap<Digest, Vec<&Iv>> = BTreeMap::new();
        for i in self
            .ivs
            .iter()
            .filter(|i| i.system == system && i.opened_by < size)
        {
            let to = if i.closed_by.is_some_and(|c| c < size) {
                i.to
            } else {
                None
            };
            if i.from <= b && to.is_none_or(|t| t > a) {
                by_asset.entry(i.asset).or_default().push(i);
            }
        }
        let mut t = Truth::default();
        for (asset, mut ivs) in by_asset {
            ivs.sort_by_key(|i| i.opened_by);
            let mut class = ivs[0].class;
            for i in &ivs[1..] {
                if class.0 == 0 {
                    class = i.class;
                }
            }
            t.count += 1;
            *t.by_class.entry(class).or_default() += 1;
            t.assets.insert(asset);
        }
        t
    }

    /// `times` is every time an interval of `system` opens or closes.
    fn times(&self, system: &str) -> Vec<i64> {
        self.ivs
            .iter()
            .filter(|i| i.system == system)
            .flat_map(|i| [Some(i.from), i.to])
            .flatten()
            .collect()
    }
}

// ---------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------

/// `Answer` is a whole breach scope as the server gives it: the first
/// page's counts, every page's listed assets, and the tree size.
#[derive(Debug)]
struct Answer {
    count: u64,
    by_class: BTreeMap<Class, u64>,
    listed: BTreeSet<Digest>,
    size: u64,
}

/// `breach` asks the breach scope of `system` over `[a, b]`, as of the
/// stored checkpoint `pin` (None: the latest), page by page.
async fn breach(
    q: &mut Query,
    system: &str,
    a: i64,
    b: i64,
    pin: Option<u64>,
    page_size: u32,
) -> Result<Answer, tonic::Status> {
    let mut token = pin.map(|s| s.to_be_bytes().to_vec()).unwrap_or_default();
    let mut first: Option<Answer> = None;
    loop {
        let r = q
            .breach_scope(v1::BreachScopeRequest {
                system_id: system.into(),
                from_unix_nanos: a,
                to_unix_nanos: b,
                page_size,
                page_token: token,
            })
            .await?
            .into_inner();
        let size = r.evidence.as_ref().map_or(0, |e| e.tree_size);
        let ans = first.get_or_insert_with(|| Answer {
            count: r.asset_count,
            by_class: r
                .by_class
                .iter()
                .filter(|c| c.count > 0)
                .map(|c| ((c.modality, c.subject_class), c.count))
                .collect(),
            listed: BTreeSet::new(),
            size,
        });
        assert_eq!(size, ans.size, "every page is proven at one checkpoint");
        for i in &r.intervals {
            ans.listed
                .insert(i.asset.as_slice().try_into().expect("digest"));
        }
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    Ok(first.expect("a first page"))
}

struct W {
    log: Log,
    c: Client,
    q: Query,
    keys: HashMap<String, SigningKey>,
    /// Who owns (and so reports for) each system.
    owners: HashMap<String, String>,
    model: Model,
    /// Stored checkpoint sizes seen after each accepted event.
    sizes: Vec<u64>,
}

impl W {
    /// `new` is a log served with `extra` flags, with cam, gate and
    /// vendor registered.
    async fn new(extra: &[&str]) -> Self {
        let mut log = Log::init();
        log.start_with(extra);
        let mut c = log.client().await;
        let q = Query::connect(log.grpc.clone())
            .await
            .expect("query client");
        let mut keys = HashMap::new();
        let mut owners = HashMap::new();
        for p in ["cam", "gate", "vendor"] {
            keys.insert(p.to_owned(), register(&log, &mut c, p, 0, 0).await);
            owners.insert(system_of(p), p.to_owned());
        }
        keys.insert(log.owner_id.clone(), log.owner.clone());
        let size = checkpoint_size(&log.http).await;
        Self {
            log,
            c,
            q,
            keys,
            owners,
            model: Model::default(),
            sizes: vec![size],
        }
    }

    /// `add_system` registers `system`, owned by `owner`.
    async fn add_system(&mut self, system: &str, owner: &str) {
        let e = event(
            &self.log.owner_id,
            system_registered(system, owner, true, false),
        );
        append(&mut self.c, &e, &[&self.log.owner])
            .await
            .unwrap_or_else(|s| panic!("register system {system}: {s}"));
        self.owners.insert(system.to_owned(), owner.to_owned());
    }

    /// `event_of` is `a` as an event by the owner of the system it acts
    /// from (the destination, for a CAPTURE), and that party.
    fn event_of(&self, a: &Act) -> (String, v1::Event) {
        let (kind, from, to) = match &a.op {
            Op::Capture { to, .. } => (K::Capture, "", to.as_str()),
            Op::Derive { to, .. } => (K::Derive, "", to.as_str()),
            Op::Copy { from, to } => (K::Copy, from.as_str(), to.as_str()),
            Op::Move { from, to } => (K::Move, from.as_str(), to.as_str()),
            Op::Delete { from } => (K::Delete, from.as_str(), ""),
        };
        let actor = self.owners[if from.is_empty() { to } else { from }].clone();
        let mut c = v1::CustodyAction {
            action: kind as i32,
            actor: actor.clone(),
            from_system: from.into(),
            to_system: to.into(),
            ..Default::default()
        };
        match (&a.manifest, a.assets.as_slice()) {
            (Some(m), _) => c.manifest = Some(m.clone()),
            (None, [d]) => c.asset_digest = d.to_vec(),
            _ => panic!("an act names one asset or a manifest"),
        }
        match &a.op {
            Op::Capture { class, .. } => {
                c.modality = class.0;
                c.subject_class = class.1;
            }
            Op::Derive { class, parent, .. } => {
                c.modality = class.0;
                c.subject_class = class.1;
                c.parents = vec![v1::Parent {
                    digest: parent.to_vec(),
                    relationship: v1::Relationship::DerivedFrom as i32,
                }];
            }
            Op::Delete { .. } => c.delete_method = v1::DeleteMethod::CryptoErase as i32,
            _ => c.purpose = v1::Purpose::Maintenance as i32,
        }
        let mut e = event(&actor, Body::Custody(c));
        e.reporter_seq = 0;
        e.event_time_unix_nanos = a.t;
        (actor, e)
    }

    /// `signed_act` is `a` signed by its reporter.
    fn signed_act(&self, a: &Act) -> v1::SignedEvent {
        let (reporter, e) = self.event_of(a);
        signed(&e, &[&self.keys[&reporter]])
    }

    /// `manifest` uploads `members` (sorted here) and returns them and it.
    async fn manifest(&mut self, members: &mut Vec<Digest>) -> v1::Manifest {
        members.sort();
        members.dedup();
        put_manifest(&mut self.c, members).await
    }

    /// `act` sends `a`, waits for a checkpoint holding it, and records it
    /// in the model when the log accepted it: its index, or None when it
    /// was refused. A refusal the model did not expect fails the test.
    async fn act(&mut self, a: Act) -> Option<u64> {
        let expected = self.model.accepts(&a);
        let env = self.signed_act(&a);
        let r = self
            .c
            .append(v1::AppendRequest {
                event: Some(env),
                wait_for_checkpoint: false,
            })
            .await;
        match r {
            Ok(r) => {
                let index = r.into_inner().index;
                if !expected {
                    eprintln!("note: the log accepted {a:?} at {index}, which the model refuses");
                }
                self.model.apply(&a, index);
                self.settle(index + 1).await;
                Some(index)
            }
            Err(s) => {
                assert!(!expected, "the log refused {:?} at {}: {s}", a.op, a.t);
                None
            }
        }
    }

    /// `stream` sends `acts` over one AppendStream (so the sequencer may
    /// take several into one batch, one commit) and records those
    /// accepted in the model in log order.
    async fn stream(&mut self, acts: Vec<Act>) {
        let reqs: Vec<_> = acts
            .iter()
            .map(|a| v1::AppendRequest {
                event: Some(self.signed_act(a)),
                wait_for_checkpoint: false,
            })
            .collect();
        let mut out = self
            .c
            .append_stream(tokio_stream::iter(reqs))
            .await
            .expect("open stream")
            .into_inner();
        let mut got = Vec::new();
        while let Some(r) = out.message().await.expect("stream") {
            got.push(r);
        }
        assert_eq!(got.len(), acts.len(), "one answer per request");
        let mut logged: Vec<(u64, Act)> = Vec::new();
        for (a, r) in acts.into_iter().zip(got) {
            assert_eq!(r.error_code, 0, "{:?} refused: {}", a.op, r.error_message);
            logged.push((r.index, a));
        }
        logged.sort_by_key(|(i, _)| *i);
        let mut last = 0;
        for (i, a) in &logged {
            assert!(self.model.accepts(a), "the model refuses {a:?}");
            self.model.apply(a, *i);
            last = *i;
        }
        self.settle(last + 1).await;
    }

    /// `settle` waits for a checkpoint of at least `size` and records the
    /// stored checkpoint size.
    async fn settle(&mut self, size: u64) {
        wait_for_size(&self.log.http, size).await;
        let s = checkpoint_size(&self.log.http).await;
        if self.sizes.last() != Some(&s) {
            self.sizes.push(s);
        }
    }

    /// `check` asks the breach scope of `system` over `[a, b]` as of
    /// `pin` (None: latest) and fails when it is not the truth.
    async fn check(&mut self, system: &str, a: i64, b: i64, pin: Option<u64>) {
        let ans = breach(&mut self.q, system, a, b, pin, 1000)
            .await
            .unwrap_or_else(|s| {
                panic!(
                    "ATTACK SUCCEEDED: BreachScope of {system} over [{a}, {b}] as of {pin:?} failed: {s}"
                )
            });
        if let Some(p) = pin {
            assert_eq!(ans.size, p, "the token pins the size");
        }
        let want = self.model.truth(system, a, b, ans.size);
        assert!(
            ans.count == want.count && ans.by_class == want.by_class,
            "ATTACK SUCCEEDED: BreachScope of {system} over [{a}, {b}] as of tree size {} counts {} assets {:?}; the log shows {} {:?} (listed by the server's own scan: {}; assets {:?})",
            ans.size,
            ans.count,
            ans.by_class,
            want.count,
            want.by_class,
            ans.listed.len(),
            want.assets.iter().map(|d| hex(&d[..4])).collect::<Vec<_>>(),
        );
        assert!(
            ans.listed == want.assets,
            "ATTACK SUCCEEDED: BreachScope of {system} over [{a}, {b}] as of {} lists {} assets, the log shows {}",
            ans.size,
            ans.listed.len(),
            want.assets.len()
        );
    }

    /// `check_windows` checks every window between two edges of `edges`
    /// as of the latest checkpoint, and `sampled` windows as of each
    /// stored checkpoint seen.
    async fn check_windows(&mut self, system: &str, edges: &[i64], sampled: usize) {
        let mut e = edges.to_vec();
        e.sort_unstable();
        e.dedup();
        let mut n = 0;
        for (i, a) in e.iter().enumerate() {
            for b in &e[i..] {
                self.check(system, *a, *b, None).await;
                n += 1;
            }
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let sizes = self.sizes.clone();
        for s in sizes {
            for _ in 0..sampled {
                let (x, y) = (e[rng.below(e.len())], e[rng.below(e.len())]);
                self.check(system, x.min(y), x.max(y), Some(s)).await;
                n += 1;
            }
        }
        eprintln!("{system}: {n} windows checked");
    }

    /// `audit_says_ok` runs the independent audit and fails when it
    /// disagrees with the server.
    fn audit_says_ok(&self) {
        let vkey = self.log.vkey.to_str().unwrap().to_owned();
        let (code, j, err) = audit_json(&[
            "--url",
            &self.log.http,
            "--log-key",
            &vkey,
            "--server",
            &self.log.grpc,
            "--compare",
            "all",
        ]);
        assert_eq!(
            code,
            Some(0),
            "ATTACK SUCCEEDED: the independent audit disagrees with the server: {err}\n{j:#}"
        );
    }
}

/// `Rng` is xorshift64, for reproducible samples.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `edges_around` is each of `times` and its neighbours, and the extremes.
fn edges_around(times: &[i64]) -> Vec<i64> {
    let mut e: Vec<i64> = times
        .iter()
        .flat_map(|t| [t.saturating_sub(1), *t, t.saturating_add(1)])
        .collect();
    e.extend([i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX]);
    e.sort_unstable();
    e.dedup();
    e
}

fn cam() -> String {
    system_of("cam")
}

fn gate() -> String {
    system_of("gate")
}

fn vendor() -> String {
    system_of("vendor")
}

// ---------------------------------------------------------------------
// Assets that exist on a system before the log knows what they are
// ---------------------------------------------------------------------

/// S1: cam reports a COPY of an asset the log has never seen (so its
/// class is unknown) to the vendor's system; the vendor DELETEs it, then
/// CAPTUREs those same bytes into its system: the asset's second interval
/// there, opened by the entry that creates the asset. Secure: the asset
/// is counted once over a window holding both intervals (with its known
/// class), as the server's own page and the audit's replay say.
#[tokio::test(flavor = "multi_thread")]
async fn s01_an_asset_copied_in_before_it_was_captured_is_counted_once() {
    let mut w = W::new(&[]).await;
    let t0 = now() - HOUR;
    let x = random_digest();
    let other = random_digest();
    let copy = Op::Copy {
        from: cam(),
        to: vendor(),
    };
    w.act(Act::one(copy, x, t0)).await.expect("COPY logged");
    w.act(Act::one(Op::Delete { from: vendor() }, x, t0 + 10 * SEC))
        .await
        .expect("DELETE logged");
    let capture = Op::Capture {
        to: vendor(),
        class: FACE_CITIZEN,
    };
    w.act(Act::one(capture.clone(), x, t0 + 20 * SEC))
        .await
        .expect("CAPTURE logged");
    w.act(Act::one(capture, other, t0 + 20 * SEC))
        .await
        .expect("CAPTURE logged");
    // Only the first interval, only the second, both.
    w.check(&vendor(), t0, t0 + 5 * SEC, None).await;
    w.check(&vendor(), t0 + 15 * SEC, t0 + 30 * SEC, None).await;
    w.check(&vendor(), t0, t0 + 30 * SEC, None).await;
    w.check(&vendor(), i64::MIN, i64::MAX, None).await;
    w.audit_says_ok();
}

/// S2: as S1, with the CAPTURE (into cam's own system) and the COPY back
/// to the vendor's system sent together over one stream, so that the
/// sequencer takes them into one batch: the COPY's interval is opened in
/// the commit that creates the asset, which had an interval on the
/// vendor's system before. Secure: each asset counted once.
#[tokio::test(flavor = "multi_thread")]
async fn s02_a_capture_and_a_copy_back_in_one_batch_count_once() {
    let mut w = W::new(&[]).await;
    let t0 = now() - HOUR;
    let xs: Vec<Digest> = (0..16).map(|_| random_digest()).collect();
    let copy_in = Op::Copy {
        from: cam(),
        to: vendor(),
    };
    w.stream(
        xs.iter()
            .map(|x| Act::one(copy_in.clone(), *x, t0))
            .collect(),
    )
    .await;
    w.stream(
        xs.iter()
            .map(|x| Act::one(Op::Delete { from: vendor() }, *x, t0 + SEC))
            .collect(),
    )
    .await;
    let capture = Op::Capture {
        to: cam(),
        class: PLATE_NONCITIZEN,
    };
    let acts: Vec<Act> = xs
        .iter()
        .flat_map(|x| {
            [
                Act::one(capture.clone(), *x, t0 + 2 * SEC),
                Act::one(copy_in.clone(), *x, t0 + 3 * SEC),
            ]
        })
        .collect();
    w.stream(acts).await;
    w.check(&vendor(), t0 + 2 * SEC, t0 + 4 * SEC, None).await;
    w.check(&vendor(), t0, t0 + 4 * SEC, None).await;
    w.check(&vendor(), i64::MIN, i64::MAX, None).await;
    w.audit_says_ok();
}

/// S3: S1 in bulk, applied in slices of 4: the gate bulk-COPYs ten
/// digests the log has never seen to the vendor's system, the vendor
/// bulk-DELETEs them and bulk-CAPTUREs them back into its system (each
/// slice's commit creates the members it opens intervals for). Secure:
/// ten assets, not twenty.
#[tokio::test(flavor = "multi_thread")]
async fn s03_a_bulk_capture_of_assets_seen_before_counts_each_once() {
    let mut w = W::new(&["--bulk-slice", "4"]).await;
    let t0 = now() - HOUR;
    let mut xs: Vec<Digest> = (0..10).map(|_| random_digest()).collect();
    let m = w.manifest(&mut xs).await;
    let bulk = |op: Op, t: i64| Act {
        op,
        assets: xs.clone(),
        manifest: Some(m.clone()),
        t,
    };
    let copy_in = Op::Copy {
        from: gate(),
        to: vendor(),
    };
    w.act(bulk(copy_in, t0)).await.expect("bulk COPY logged");
    w.act(bulk(Op::Delete { from: vendor() }, t0 + SEC))
        .await
        .expect("bulk DELETE logged");
    let capture = Op::Capture {
        to: vendor(),
        class: SCENE_RESIDENT,
    };
    w.act(bulk(capture, t0 + 2 * SEC))
        .await
        .expect("bulk CAPTURE logged");
    w.check(&vendor(), t0, t0 + 3 * SEC, None).await;
    w.check(&vendor(), t0 + SEC, t0 + 2 * SEC, None).await;
    w.check(&vendor(), i64::MIN, i64::MAX, None).await;
    w.audit_says_ok();
}

/// S4: S1 with a DERIVE (which creates its asset as a CAPTURE does) in
/// place of the CAPTURE: the vendor derives, into its system, an asset
/// whose bytes had an interval there before. Secure: counted once.
#[tokio::test(flavor = "multi_thread")]
async fn s04_a_derive_of_an_asset_seen_before_counts_once() {
    let mut w = W::new(&[]).await;
    let t0 = now() - HOUR;
    let (parent, y) = (random_digest(), random_digest());
    let cap = Op::Capture {
        to: vendor(),
        class: FACE_CITIZEN,
    };
    w.act(Act::one(cap, parent, t0))
        .await
        .expect("CAPTURE logged");
    let copy = Op::Copy {
        from: cam(),
        to: vendor(),
    };
    w.act(Act::one(copy, y, t0)).await.expect("COPY logged");
    w.act(Act::one(Op::Delete { from: vendor() }, y, t0 + SEC))
        .await
        .expect("DELETE logged");
    let derive = Op::Derive {
        to: vendor(),
        class: FACE_CITIZEN,
        parent,
    };
    w.act(Act::one(derive, y, t0 + 2 * SEC))
        .await
        .expect("DERIVE logged");
    w.check(&vendor(), t0, t0 + 3 * SEC, None).await;
    w.check(&vendor(), i64::MIN, i64::MAX, None).await;
    w.audit_says_ok();
}

// ---------------------------------------------------------------------
// Chosen times: bucket edges, extremes, returns, zero-length intervals
// ---------------------------------------------------------------------

/// T1: the vendor dates its events on the edges of the count's time
/// buckets (2^30, 2^40, 2^50, 2^60 ns and their neighbours, and 1 ns
/// after the epoch), closes intervals at the very time they opened, moves
/// assets away and brings them back (several times, at one same time),
/// copies an asset to its system twice, and dates events in the future
/// (within the allowed clock skew). Every window between two edges
/// (±1 ns, and i64::MIN / i64::MAX), as of the latest checkpoint, and
/// samples of them as of every older stored checkpoint. Secure: every
/// count and split is the truth.
#[tokio::test(flavor = "multi_thread")]
async fn t01_counts_at_bucket_edges_and_extreme_windows_are_the_truth() {
    let mut w = W::new(&[]).await;
    let (v, g) = (vendor(), gate());
    let p = |k: u32| 1i64 << k;
    let late = now() - 2 * HOUR;
    let future = now() + 200 * SEC;
    // The last 2^50 ns bucket edge before now (2^61 is in 2043).
    let edge50 = (late >> 50) << 50;
    let xs: Vec<Digest> = (0..12).map(|_| random_digest()).collect();
    let cap = |class: Class| Op::Capture {
        to: v.clone(),
        class,
    };
    let del = Op::Delete { from: v.clone() };
    let back = Op::Copy {
        from: g.clone(),
        to: v.clone(),
    };
    let away = Op::Move {
        from: v.clone(),
        to: g.clone(),
    };
    let script: Vec<(Op, usize, i64)> = vec![
        (cap(FACE_CITIZEN), 0, 1),
        (cap(FACE_CITIZEN), 1, p(30) - 1),
        (del.clone(), 1, p(30)),
        (cap(PLATE_NONCITIZEN), 2, p(30)),
        (del.clone(), 2, p(30)),
        (cap(SCENE_RESIDENT), 3, p(40) - 1),
        (away.clone(), 3, p(50)),
        (back.clone(), 3, p(60) - 1),
        (del.clone(), 3, p(60)),
        (cap(SCENE_RESIDENT), 3, late),
        (cap(PLATE_NONCITIZEN), 4, p(50) - 1),
        (del.clone(), 4, p(60) + 1),
        // Unknown to the log: no class.
        (back.clone(), 5, p(60)),
        (del.clone(), 5, late),
        (cap(FACE_CITIZEN), 6, late),
        (back.clone(), 6, late + 1),
        (
            Op::Capture {
                to: g.clone(),
                class: SCENE_RESIDENT,
            },
            7,
            p(40),
        ),
        (back.clone(), 7, p(40)),
        (del.clone(), 7, p(40)),
        (back.clone(), 7, p(40)),
        (del.clone(), 7, p(50)),
        (back.clone(), 7, p(50)),
        (cap(FACE_CITIZEN), 8, p(31)),
        (del.clone(), 8, p(31) + 1),
        (back.clone(), 8, p(31) + 1),
        (del.clone(), 8, p(41)),
        (back.clone(), 8, p(41)),
        (away.clone(), 8, p(51)),
        (back.clone(), 8, edge50),
        (del.clone(), 8, late),
        (back.clone(), 8, late),
        (cap(FACE_CITIZEN), 9, future),
        (cap(PLATE_NONCITIZEN), 10, p(60) + 1),
        (del.clone(), 10, future + SEC),
        // Unknown, then known: the class of its later interval.
        (back.clone(), 11, p(40) + 1),
        (del.clone(), 11, p(50) + 1),
        (
            Op::Capture {
                to: g.clone(),
                class: PLATE_NONCITIZEN,
            },
            11,
            p(50) + 2,
        ),
        (back.clone(), 11, p(60) + 2),
    ];
    for (op, x, t) in script {
        w.act(Act::one(op, xs[x], t)).await;
    }
    let mut times = w.model.times(&v);
    for k in [30, 31, 40, 41, 50, 51, 60, 61, 62] {
        times.push(p(k));
    }
    times.push(edge50);
    let edges = edges_around(&times);
    let started = Instant::now();
    w.check_windows(&v, &edges, 40).await;
    eprintln!("t01: windows checked in {:?}", started.elapsed());
    w.audit_says_ok();
}

/// T2: closes dated before the copy they close (a DELETE, a MOVE away, a
/// bulk DELETE one of whose members came later than it): intervals that
/// would close before they open. Secure: refused, or, if logged, counted
/// as the log shows them.
#[tokio::test(flavor = "multi_thread")]
async fn t02_closes_dated_before_their_copies_are_refused_or_counted() {
    let mut w = W::new(&["--bulk-slice", "4"]).await;
    let (v, g) = (vendor(), gate());
    let t0 = now() - HOUR;
    let mut xs: Vec<Digest> = (0..6).map(|_| random_digest()).collect();
    for (n, x) in xs.clone().iter().enumerate() {
        let cap = Op::Capture {
            to: v.clone(),
            class: FACE_CITIZEN,
        };
        w.act(Act::one(cap, *x, t0 + n as i64 * SEC)).await;
    }
    let del = Op::Delete { from: v.clone() };
    let away = Op::Move {
        from: v.clone(),
        to: g.clone(),
    };
    let r1 = w.act(Act::one(del.clone(), xs[0], t0 - SEC)).await;
    let r2 = w.act(Act::one(away, xs[1], t0)).await;
    let r3 = w.act(Act::one(del.clone(), xs[2], 1)).await;
    // Members 0..6 opened at t0..t0+5 s; dated t0+2.5 s.
    let m = w.manifest(&mut xs).await;
    let r4 = w
        .act(Act {
            op: del,
            assets: xs.clone(),
            manifest: Some(m),
            t: t0 + 5 * SEC / 2,
        })
        .await;
    eprintln!(
        "t02: logged? delete-before {r1:?}, move-before {r2:?}, delete-at-1ns {r3:?}, bulk {r4:?}"
    );
    let times = w.model.times(&v);
    let mut edges = edges_around(&times);
    edges.extend([t0 - SEC, 1, 2]);
    w.check_windows(&v, &edges, 10).await;
    w.audit_says_ok();
}

// ---------------------------------------------------------------------
// Bulk events in slices, with other traffic between the slices
// ---------------------------------------------------------------------

/// B1: with `--bulk-slice 4`, manifests of 13 members go to the vendor's
/// system, away (MOVE), back (COPY), are deleted and come back at the
/// same time, a manifest of unknown digests is copied in, deleted,
/// captured elsewhere and copied in again; while each job runs the gate
/// logs single events on other assets between its slices. Every window
/// between edges as of the latest checkpoint, samples as of older ones,
/// and the audit. Secure: the truth everywhere.
#[tokio::test(flavor = "multi_thread")]
async fn b01_bulk_returns_in_slices_are_counted_once() {
    let mut w = W::new(&["--bulk-slice", "4"]).await;
    let (v, g, c) = (vendor(), gate(), cam());
    let t0 = now() - HOUR;
    let mut ms: Vec<Digest> = (0..13).map(|_| random_digest()).collect();
    let m = w.manifest(&mut ms).await;
    let mut us: Vec<Digest> = (0..9).map(|_| random_digest()).collect();
    let mu = w.manifest(&mut us).await;
    let bulk = |op: Op, xs: &[Digest], m: &v1::Manifest, t: i64| Act {
        op,
        assets: xs.to_vec(),
        manifest: Some(m.clone()),
        t,
    };
    let steps: Vec<Act> = vec![
        bulk(
            Op::Capture {
                to: c.clone(),
                class: FACE_CITIZEN,
            },
            &ms,
            &m,
            t0,
        ),
        bulk(
            Op::Copy {
                from: c.clone(),
                to: v.clone(),
            },
            &ms,
            &m,
            t0 + SEC,
        ),
        bulk(
            Op::Move {
                from: v.clone(),
                to: g.clone(),
            },
            &ms,
            &m,
            t0 + 2 * SEC,
        ),
        bulk(
            Op::Copy {
                from: g.clone(),
                to: v.clone(),
            },
            &ms,
            &m,
            t0 + 3 * SEC,
        ),
        bulk(Op::Delete { from: v.clone() }, &ms, &m, t0 + 4 * SEC),
        bulk(
            Op::Copy {
                from: g.clone(),
                to: v.clone(),
            },
            &ms,
            &m,
            t0 + 4 * SEC,
        ),
        // Unknown digests: in, out, known elsewhere, in again.
        bulk(
            Op::Copy {
                from: c.clone(),
                to: v.clone(),
            },
            &us,
            &mu,
            t0 + 5 * SEC,
        ),
        bulk(Op::Delete { from: v.clone() }, &us, &mu, t0 + 6 * SEC),
        bulk(
            Op::Capture {
                to: c.clone(),
                class: PLATE_NONCITIZEN,
            },
            &us,
            &mu,
            t0 + 7 * SEC,
        ),
        bulk(
            Op::Copy {
                from: c.clone(),
                to: v.clone(),
            },
            &us,
            &mu,
            t0 + 8 * SEC,
        ),
    ];
    for (n, step) in steps.into_iter().enumerate() {
        // The gate's traffic between the slices: a capture into its
        // system and a copy to the vendor's, of assets of its own.
        let y = random_digest();
        let side = [
            Act::one(
                Op::Capture {
                    to: g.clone(),
                    class: SCENE_RESIDENT,
                },
                y,
                t0 + n as i64 * SEC + 1,
            ),
            Act::one(
                Op::Copy {
                    from: g.clone(),
                    to: v.clone(),
                },
                y,
                t0 + n as i64 * SEC + 2,
            ),
        ];
        let expected = w.model.accepts(&step);
        let job = {
            let env = w.signed_act(&step);
            let mut c = w.c.clone();
            tokio::spawn(async move {
                c.append(v1::AppendRequest {
                    event: Some(env),
                    wait_for_checkpoint: false,
                })
                .await
                .map(|r| r.into_inner().index)
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut side_logged = Vec::new();
        for a in side {
            let env = w.signed_act(&a);
            let i =
                w.c.append(v1::AppendRequest {
                    event: Some(env),
                    wait_for_checkpoint: false,
                })
                .await
                .unwrap_or_else(|s| panic!("the gate's {:?} refused: {s}", a.op))
                .into_inner()
                .index;
            side_logged.push((i, a));
        }
        let index = job.await.expect("task").unwrap_or_else(|s| {
            panic!("bulk {:?} refused: {s}", step.op);
        });
        assert!(expected, "the model refuses {step:?}");
        side_logged.push((index, step));
        side_logged.sort_by_key(|(i, _)| *i);
        let last = side_logged.last().map_or(0, |(i, _)| *i);
        for (i, a) in &side_logged {
            w.model.apply(a, *i);
        }
        w.settle(last + 1).await;
    }
    let times = w.model.times(&v);
    let edges = edges_around(&times);
    w.check_windows(&v, &edges, 25).await;
    w.audit_says_ok();
}

/// `first_page` is one BreachScope first page's counts and tree size.
async fn first_page(
    q: &mut Query,
    system: &str,
    a: i64,
    b: i64,
    pin: Option<u64>,
) -> Result<(u64, BTreeMap<Class, u64>, u64), tonic::Status> {
    let r = q
        .breach_scope(v1::BreachScopeRequest {
            system_id: system.into(),
            from_unix_nanos: a,
            to_unix_nanos: b,
            page_size: 1,
            page_token: pin.map(|s| s.to_be_bytes().to_vec()).unwrap_or_default(),
        })
        .await?
        .into_inner();
    Ok((
        r.asset_count,
        r.by_class
            .iter()
            .filter(|c| c.count > 0)
            .map(|c| ((c.modality, c.subject_class), c.count))
            .collect(),
        r.evidence.as_ref().map_or(0, |e| e.tree_size),
    ))
}

/// B2: with `--bulk-slice 1`, the vendor bulk-MOVEs 1,500 assets from
/// its system to the gate's (a job of 1,500 slices) while the gate
/// appends 300 COPYs into the vendor's system, and breach scopes of both
/// systems are asked all along, latest and pinned to the latest
/// checkpoint the tile API shows: the counts add bucket totals and
/// subtract the journal of later entries, so a commit landing between
/// those reads would be subtracted without being added. Secure: every
/// answer given is the truth as of its tree size (an explicit size the
/// job has not finished may be refused).
#[tokio::test(flavor = "multi_thread")]
async fn b02_answers_while_a_job_and_appends_run_are_the_truth() {
    let mut w = W::new(&["--bulk-slice", "1"]).await;
    let (v, g, c) = (vendor(), gate(), cam());
    let t0 = now() - HOUR;
    let mut ms: Vec<Digest> = (0..1_500).map(|_| random_digest()).collect();
    let m = w.manifest(&mut ms).await;
    let bulk = |op: Op, t: i64| Act {
        op,
        assets: ms.clone(),
        manifest: Some(m.clone()),
        t,
    };
    let cap = Op::Capture {
        to: c.clone(),
        class: FACE_CITIZEN,
    };
    w.act(bulk(cap, t0)).await.expect("logged");
    let copy = Op::Copy {
        from: c.clone(),
        to: v.clone(),
    };
    w.act(bulk(copy, t0 + SEC)).await.expect("logged");
    let away = bulk(
        Op::Move {
            from: v.clone(),
            to: g.clone(),
        },
        t0 + 2 * SEC,
    );
    assert!(w.model.accepts(&away));
    let job = {
        let env = w.signed_act(&away);
        let mut c = w.c.clone();
        tokio::spawn(async move {
            c.append(v1::AppendRequest {
                event: Some(env),
                wait_for_checkpoint: false,
            })
            .await
            .map(|r| r.into_inner().index)
        })
    };
    let side_acts: Vec<Act> = (0..300)
        .map(|k| {
            Act::one(
                Op::Copy {
                    from: g.clone(),
                    to: v.clone(),
                },
                random_digest(),
                t0 + 3 * SEC + k,
            )
        })
        .collect();
    let side = {
        let envs: Vec<_> = side_acts.iter().map(|a| w.signed_act(a)).collect();
        let mut c = w.c.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            for env in envs {
                tokio::time::sleep(Duration::from_millis(3)).await;
                let r = c
                    .append(v1::AppendRequest {
                        event: Some(env),
                        wait_for_checkpoint: false,
                    })
                    .await
                    .map(|r| r.into_inner().index);
                out.push(r);
            }
            out
        })
    };
    let windows = [
        (v.clone(), t0 + 2 * SEC + 1, i64::MAX),
        (v.clone(), t0 + 2 * SEC, t0 + 2 * SEC),
        (v.clone(), i64::MIN, i64::MAX),
        (g.clone(), t0, i64::MAX),
    ];
    let mut answers = Vec::new();
    let (mut refused, mut rounds) = (0, 0u64);
    while !(job.is_finished() && side.is_finished()) {
        for (system, a, b) in &windows {
            // Distinct windows each round, so the memo never answers.
            let b = b.saturating_sub(rounds as i64 * i64::from(*b == i64::MAX));
            let latest = first_page(&mut w.q, system, *a, b, None).await;
            let pinned = checkpoint_size(&w.log.http).await;
            let pinned = first_page(&mut w.q, system, *a, b, Some(pinned)).await;
            for r in [latest, pinned] {
                match r {
                    Ok(ans) => answers.push((system.clone(), *a, b, ans)),
                    Err(s) if s.code() == tonic::Code::Unavailable => refused += 1,
                    Err(s) => panic!("ATTACK SUCCEEDED: BreachScope of {system} failed: {s}"),
                }
            }
        }
        rounds += 1;
    }
    let index = job
        .await
        .expect("task")
        .unwrap_or_else(|s| panic!("the bulk MOVE refused: {s}"));
    let mut logged = vec![(index, away)];
    for (r, a) in side.await.expect("task").into_iter().zip(side_acts) {
        let i = r.unwrap_or_else(|s| panic!("the gate's COPY refused: {s}"));
        logged.push((i, a));
    }
    logged.sort_by_key(|(i, _)| *i);
    for (i, a) in &logged {
        w.model.apply(a, *i);
    }
    eprintln!(
        "b02: {} answers over {rounds} rounds checked ({refused} pinned ones refused while the job ran)",
        answers.len()
    );
    let sizes: BTreeSet<u64> = answers.iter().map(|(.., (_, _, s))| *s).collect();
    assert!(sizes.len() > 2, "answers at several sizes: {sizes:?}");
    for (system, a, b, (count, by_class, size)) in answers {
        let want = w.model.truth(&system, a, b, size);
        assert!(
            count == want.count && by_class == want.by_class,
            "ATTACK SUCCEEDED: BreachScope of {system} over [{a}, {b}] as of tree size {size}, asked while the job ran, counted {count} {by_class:?}; the log shows {} {:?}",
            want.count,
            want.by_class
        );
    }
}

// ---------------------------------------------------------------------
// System ids
// ---------------------------------------------------------------------

/// I1: systems whose ids are one byte, the count family's own kind
/// letters, prefixes of each other and 64 bytes of every allowed
/// character, each holding its own assets (one returning). Secure: no
/// system's counts reach another's.
#[tokio::test(flavor = "multi_thread")]
async fn i01_odd_system_ids_keep_their_own_counts() {
    let mut w = W::new(&[]).await;
    let long: String = "Az09._:-".repeat(8);
    assert_eq!(long.len(), 64);
    let ids: Vec<String> = [
        "o", "c", "j", "i", "r", "v", "v.", "v.:", "v.:-", "0", "_", ":", "-",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([long.clone(), long[..63].to_owned()])
    .collect();
    let t0 = now() - HOUR;
    for (n, id) in ids.iter().enumerate() {
        w.add_system(id, "vendor").await;
        for k in 0..=n % 3 {
            let cap = Op::Capture {
                to: id.clone(),
                class: FACE_CITIZEN,
            };
            w.act(Act::one(cap, random_digest(), t0 + k as i64 * SEC))
                .await;
        }
    }
    // One asset leaves "r" and returns; one copied from "o" to "c".
    let x = random_digest();
    let cap = Op::Capture {
        to: "r".into(),
        class: PLATE_NONCITIZEN,
    };
    w.act(Act::one(cap, x, t0)).await;
    w.act(Act::one(Op::Delete { from: "r".into() }, x, t0 + SEC))
        .await;
    w.act(Act::one(
        Op::Copy {
            from: "o".into(),
            to: "r".into(),
        },
        x,
        t0 + 2 * SEC,
    ))
    .await;
    w.act(Act::one(
        Op::Copy {
            from: "r".into(),
            to: "c".into(),
        },
        x,
        t0 + 3 * SEC,
    ))
    .await;
    for id in &ids {
        for (a, b) in [
            (i64::MIN, i64::MAX),
            (t0, t0),
            (t0 + SEC, t0 + SEC),
            (t0 + 3 * SEC, i64::MAX),
        ] {
            w.check(id, a, b, None).await;
        }
    }
    w.audit_says_ok();
}

// ---------------------------------------------------------------------
// Slowness: marks and exact records every query reads
// ---------------------------------------------------------------------

/// `query_ms` is the median time of `n` BreachScope queries of `system`
/// over distinct windows inside `[a, b]` (so the memo never answers),
/// page size 1, each checked against `want` assets.
async fn query_ms(q: &mut Query, system: &str, a: i64, b: i64, want: u64, n: i64) -> f64 {
    let mut ms = Vec::new();
    for k in 0..n {
        let started = Instant::now();
        let r = q
            .breach_scope(v1::BreachScopeRequest {
                system_id: system.into(),
                from_unix_nanos: a + k,
                to_unix_nanos: b - k,
                page_size: 1,
                page_token: Vec::new(),
            })
            .await
            .unwrap_or_else(|s| panic!("ATTACK SUCCEEDED: BreachScope failed: {s}"))
            .into_inner();
        ms.push(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(
            r.asset_count, want,
            "ATTACK SUCCEEDED: BreachScope of {system} over [{}, {}] counts {}, the log shows {want}",
            a + k,
            b - k,
            r.asset_count
        );
    }
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

/// F1: the vendor bulk-CAPTUREs 4,000 and then 16,000 assets into its
/// system, then DELETEs and CAPTUREs each manifest again: every asset
/// then carries a "returns" mark, which every BreachScope of the system
/// reads, with every interval of the asset, whatever its window. Times
/// are measured (and printed: run with --nocapture) for a window far
/// from every interval and one over all of them, before and after;
/// the counts are asserted, not the times.
#[tokio::test(flavor = "multi_thread")]
async fn f01_a_flood_of_returning_assets_is_counted_right() {
    let mut w = W::new(&[]).await;
    let v = vendor();
    let t0 = now() - HOUR;
    let mut a: Vec<Digest> = (0..4_000).map(|_| random_digest()).collect();
    let mut b: Vec<Digest> = (0..16_000).map(|_| random_digest()).collect();
    let ma = w.manifest(&mut a).await;
    let mb = w.manifest(&mut b).await;
    let cap = Op::Capture {
        to: v.clone(),
        class: FACE_CITIZEN,
    };
    let del = Op::Delete { from: v.clone() };
    let bulk = |op: &Op, xs: &[Digest], m: &v1::Manifest, t: i64| Act {
        op: op.clone(),
        assets: xs.to_vec(),
        manifest: Some(m.clone()),
        t,
    };
    let started = Instant::now();
    w.act(bulk(&cap, &a, &ma, t0)).await.expect("logged");
    w.act(bulk(&cap, &b, &mb, t0)).await.expect("logged");
    eprintln!("f01: 20,000 captured in {:?}", started.elapsed());
    let far = (t0 - 1000 * HOUR, t0 - 999 * HOUR);
    let all = (t0 - SEC, t0 + HOUR);
    let mut report = Vec::new();
    let far0 = query_ms(&mut w.q, &v, far.0, far.1, 0, 7).await;
    let all0 = query_ms(&mut w.q, &v, all.0, all.1, 20_000, 7).await;
    report.push(format!(
        "0 marks: far window {far0:.1} ms, whole window {all0:.1} ms"
    ));
    w.act(bulk(&del, &a, &ma, t0 + SEC)).await.expect("logged");
    w.act(bulk(&cap, &a, &ma, t0 + 2 * SEC))
        .await
        .expect("logged");
    let far1 = query_ms(&mut w.q, &v, far.0, far.1, 0, 7).await;
    let all1 = query_ms(&mut w.q, &v, all.0, all.1, 20_000, 7).await;
    report.push(format!(
        "4,000 marks: far window {far1:.1} ms, whole window {all1:.1} ms"
    ));
    w.act(bulk(&del, &b, &mb, t0 + SEC)).await.expect("logged");
    w.act(bulk(&cap, &b, &mb, t0 + 2 * SEC))
        .await
        .expect("logged");
    let far2 = query_ms(&mut w.q, &v, far.0, far.1, 0, 7).await;
    let all2 = query_ms(&mut w.q, &v, all.0, all.1, 20_000, 7).await;
    report.push(format!(
        "20,000 marks: far window {far2:.1} ms, whole window {all2:.1} ms"
    ));
    // Between the two intervals of each asset: none held.
    let gap = query_ms(&mut w.q, &v, t0 + SEC + 1, t0 + 2 * SEC - 1, 0, 3).await;
    report.push(format!("20,000 marks: gap window {gap:.1} ms"));
    w.check(&v, t0, t0, None).await;
    w.check(&v, t0 + SEC, t0 + SEC, None).await;
    w.check(&v, t0 + 2 * SEC, t0 + 2 * SEC, None).await;

    // Marks on another party's system: cam captures 4,000 assets and
    // deletes them, as owners do; the vendor then COPYs the same digests
    // into cam's system from its own (no one need vouch for a COPY in),
    // so each has a second interval there.
    let c = cam();
    let mut d: Vec<Digest> = (0..4_000).map(|_| random_digest()).collect();
    let md = w.manifest(&mut d).await;
    let cap_cam = Op::Capture {
        to: c.clone(),
        class: FACE_CITIZEN,
    };
    w.act(bulk(&cap_cam, &d, &md, t0)).await.expect("logged");
    let cam0 = query_ms(&mut w.q, &c, all.0, all.1, 4_000, 7).await;
    let del_cam = Op::Delete { from: c.clone() };
    w.act(bulk(&del_cam, &d, &md, t0 + SEC))
        .await
        .expect("logged");
    let push = Op::Copy {
        from: v.clone(),
        to: c.clone(),
    };
    w.act(bulk(&push, &d, &md, t0 + 2 * SEC))
        .await
        .expect("the vendor's COPY logged");
    let cam1 = query_ms(&mut w.q, &c, all.0, all.1, 4_000, 7).await;
    report.push(format!(
        "cam's system, 4,000 assets: whole window {cam0:.1} ms; after the vendor copied them back in (4,000 marks) {cam1:.1} ms"
    ));
    w.check(&c, t0, t0 + 2 * SEC, None).await;
    w.check(&c, t0 + SEC + 1, t0 + 2 * SEC - 1, None).await;
    for l in &report {
        println!("f01: {l}");
    }
}

/// `first_page_ms` is the count of one BreachScope query's first page
/// (page size 1) and how long it took.
async fn first_page_ms(
    q: &mut Query,
    system: &str,
    a: i64,
    b: i64,
    pin: Option<u64>,
) -> (u64, f64) {
    let started = Instant::now();
    let r = q
        .breach_scope(v1::BreachScopeRequest {
            system_id: system.into(),
            from_unix_nanos: a,
            to_unix_nanos: b,
            page_size: 1,
            page_token: pin.map(|s| s.to_be_bytes().to_vec()).unwrap_or_default(),
        })
        .await
        .unwrap_or_else(|s| panic!("ATTACK SUCCEEDED: BreachScope failed: {s}"))
        .into_inner();
    (r.asset_count, started.elapsed().as_secs_f64() * 1e3)
}

/// F2: 3,000 single CAPTUREs into the vendor's system dated within
/// 3 ms, one 2^30 ns bucket (one exact record and one journal record
/// each), then windows whose end falls inside that bucket (the exact
/// records are read one by one) and queries as of the checkpoint before
/// them (the journal of every later entry is read). Times (first page,
/// page size 1) are printed; counts asserted against the model.
#[tokio::test(flavor = "multi_thread")]
async fn f02_many_exact_records_in_one_bucket_are_counted_right() {
    let mut w = W::new(&[]).await;
    let v = vendor();
    let before = checkpoint_size(&w.log.http).await;
    let t0 = (((now() - HOUR) >> 30) << 30) + 1_000;
    let cap = Op::Capture {
        to: v.clone(),
        class: FACE_CITIZEN,
    };
    let acts: Vec<Act> = (0..3_000)
        .map(|k| Act::one(cap.clone(), random_digest(), t0 + k * 1_000))
        .collect();
    w.stream(acts).await;
    let size = *w.sizes.last().expect("a size");
    let mut report = Vec::new();
    let mut timed = |what: &str, n: u64, want: u64, ms: f64| {
        assert_eq!(
            n, want,
            "ATTACK SUCCEEDED: {what}: {n} assets counted, the log shows {want}"
        );
        report.push(format!("{what}: {ms:.1} ms"));
    };
    let (n, ms) = first_page_ms(&mut w.q, &v, i64::MIN, i64::MAX, None).await;
    timed("whole window", n, 3_000, ms);
    let (n, ms) = first_page_ms(&mut w.q, &v, i64::MIN, t0 + 2_999_000, None).await;
    timed("window ending at the bucket's last record", n, 3_000, ms);
    let (n, ms) = first_page_ms(&mut w.q, &v, i64::MIN, t0 + 1_499_999, None).await;
    timed("window ending mid-bucket", n, 1_500, ms);
    let (n, ms) = first_page_ms(&mut w.q, &v, i64::MIN, t0 - 1, None).await;
    timed("window ending before the bucket's records", n, 0, ms);
    let (n, ms) = first_page_ms(&mut w.q, &v, i64::MIN, i64::MAX, Some(before)).await;
    timed("as of the size before the flood, whole window", n, 0, ms);
    let (n, ms) = first_page_ms(&mut w.q, &v, i64::MIN, t0 + 1_499_999, Some(before)).await;
    timed(
        "as of the size before the flood, ending mid-bucket",
        n,
        0,
        ms,
    );
    for l in &report {
        println!("f02 (3,000 exact records, tree size {size}): {l}");
    }
    for k in [
        0, 1, 999, 1_000, 1_001, 1_499_999, 1_500_000, 2_999_000, 2_999_001,
    ] {
        w.check(&v, i64::MIN, t0 + k, None).await;
        w.check(&v, t0 + k, t0 + k, None).await;
    }
    for s in w.sizes.clone() {
        w.check(&v, i64::MIN, t0 + 1_500_000, Some(s)).await;
    }
}
