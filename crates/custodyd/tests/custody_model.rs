//! Random valid custody event sequences (single, bulk and derived assets) go through the real write path into RocksDB, and HoldersAt, Holdings, BreachScope and AssetHistory answered from the indexes must equal a naive replay of the same events, at the latest and at earlier tree sizes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use custody_domain::{
    admit, key_id_of, AssetRef, CustodyAction, CustodyActionKind as K, DeleteMethod, Digest, Event,
    EventBody, Genesis, Interval, KeyAdded, KeyId, ManifestRef, Modality, Overlay, Parent,
    PartyKind, PartyRegistered, Purpose, Registry, Relationship, SubjectClass, SystemRegistered,
    Timestamp,
};
use custody_store::index::{index_writes, manifest_writes, StoreView};
use custody_store::{Commit, LogStore};
use custody_store_rocks::RocksStore;
use custodyd::query::AsOf;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

/// The origin of every model log.
const ORIGIN: &str = "custody.example/model";

/// The event time of the registry events; custody events follow it.
const T0: Timestamp = 1_700_000_000_000_000_000;

/// Events sequenced over all cases, counted to show the run's scale.
static EVENTS: AtomicU64 = AtomicU64::new(0);

/// `Rng` is SplitMix64: a tiny deterministic generator for choices derived
/// from proptest's values, so a failing case replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Clone>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())].clone()
    }

    fn digest(&mut self) -> Digest {
        let mut d = [0u8; 32];
        for c in d.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_be_bytes());
        }
        d
    }
}

/// `one_in` is a choice made from `v` that holds with odds 1 in `n`.
fn one_in(v: impl Into<u32>, n: u32) -> bool {
    v.into() % n == n - 1
}

/// `Step` is one intention for a custody event, resolved against the state
/// the generator keeps; intentions that would be invalid are skipped.
#[derive(Debug, Clone)]
struct Step {
    /// Which action, with what weight (see [`Builder::step`]).
    kind: u8,
    /// Which asset or member set.
    a: u32,
    /// Which system.
    b: u32,
    /// Which class, purpose or method, and the smaller choices.
    c: u32,
    /// How far the clock advances, and which related party reports.
    dt: u16,
}

/// `Raw` is what proptest generates and shrinks.
#[derive(Debug, Clone)]
struct Raw {
    owner_seed: [u8; 32],
    /// Per party, which earlier party (or the owner) it acts for.
    principals: Vec<u8>,
    /// Per system, which party owns it.
    system_owners: Vec<u8>,
    pool_size: usize,
    pool_seed: u64,
    steps: Vec<Step>,
    /// Batch sizes, used in turn.
    batches: Vec<usize>,
    query_seed: u64,
}

fn raw_strategy(max_steps: usize) -> impl Strategy<Value = Raw> {
    let step = (
        any::<u8>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
    )
        .prop_map(|(kind, a, b, c, dt)| Step { kind, a, b, c, dt });
    (
        any::<[u8; 32]>(),
        prop::collection::vec(any::<u8>(), 1..=4),
        prop::collection::vec(any::<u8>(), 3..=5),
        20usize..=40,
        any::<u64>(),
        prop::collection::vec(step, 1..=max_steps),
        prop::collection::vec(1usize..=8, 1..=24),
        any::<u64>(),
    )
        .prop_map(
            |(
                owner_seed,
                principals,
                system_owners,
                pool_size,
                pool_seed,
                steps,
                batches,
                query_seed,
            )| Raw {
                owner_seed,
                principals,
                system_owners,
                pool_size,
                pool_seed,
                steps,
                batches,
                query_seed,
            },
        )
}

/// `Scenario` is a resolved, valid event sequence.
struct Scenario {
    genesis: Genesis,
    /// `events[i]` is logged at index `i + 1`.
    events: Vec<Event>,
    /// Manifests to upload before the event at that position.
    uploads: HashMap<usize, (Digest, Vec<Digest>)>,
    pool: Vec<Digest>,
    /// System ids with their owners, in registration order.
    systems: Vec<(String, String)>,
    /// Every party, the owner first.
    parties: Vec<String>,
    /// Each party's signing key id (the owner's is the genesis key).
    keys: HashMap<String, KeyId>,
}

/// `Builder` resolves intentions against a simple model of custody state.
struct Builder {
    /// The registry as the events so far make it, for the domain's rules.
    registry: Registry,
    /// Party → the party it acts for (empty for the owner).
    principal: HashMap<String, String>,
    parties: Vec<String>,
    systems: Vec<(String, String)>,
    pool: Vec<Digest>,
    /// Class of each created asset, by pool ordinal.
    class: HashMap<usize, (Modality, SubjectClass)>,
    /// Open (asset ordinal, system ordinal) pairs.
    open: BTreeSet<(usize, usize)>,
    /// Logged transfers not yet acknowledged: (index, assets, destination).
    pending: Vec<(u64, AssetRef, usize)>,
    events: Vec<Event>,
    uploads: HashMap<usize, (Digest, Vec<Digest>)>,
    seqs: HashMap<String, u64>,
    time: Timestamp,
    manifests: u64,
}

impl Builder {
    /// `reporters` is every party that may report `c`, by the domain's
    /// own rule (`Registry::attribute`): the actor's principals, and the
    /// owners and operators of the system it is observed on.
    fn reporters(&self, c: &CustodyAction) -> Vec<String> {
        self.parties
            .iter()
            .filter(|p| {
                self.registry
                    .attribute(p, &c.actor, &[c.observation_system()])
                    .is_ok()
            })
            .cloned()
            .collect()
    }

    fn push(&mut self, reporter: &str, body: EventBody) -> u64 {
        let seq = self.seqs.entry(reporter.to_owned()).or_default();
        *seq += 1;
        let n = self.events.len() as u64 + 1;
        let event = Event {
            event_id: format!("00000000-0000-4000-8000-{n:012x}"),
            event_time: self.time,
            reporter: reporter.to_owned(),
            reporter_seq: *seq,
            log_origin: ORIGIN.into(),
            body,
        };
        self.registry.apply(&event, n);
        self.events.push(event);
        n
    }

    /// `custody` logs a custody action reported by a party related to its
    /// actor, after advancing the clock by `dt` (often zero, so times tie).
    fn custody(&mut self, step: &Step, c: CustodyAction) -> u64 {
        self.time += if one_in(step.dt, 3) {
            0
        } else {
            i64::from(step.dt % 500) + 1
        };
        let related = self.reporters(&c);
        let reporter = related[(step.dt / 3) as usize % related.len()].clone();
        self.push(&reporter, EventBody::Custody(c))
    }

    /// `asset_ref` names one asset, or uploads a manifest of `members`
    /// for the next event when `bulk`.
    fn asset_ref(&mut self, members: &[usize], bulk: bool) -> AssetRef {
        if !bulk {
            assert_eq!(members.len(), 1);
            return AssetRef::One(self.pool[members[0]]);
        }
        let mut digests: Vec<Digest> = members.iter().map(|m| self.pool[*m]).collect();
        digests.sort();
        digests.dedup();
        self.manifests += 1;
        let mut root = [0x4d; 32];
        root[..8].copy_from_slice(&self.manifests.to_be_bytes());
        let count = digests.len() as u64;
        self.uploads.insert(self.events.len(), (root, digests));
        AssetRef::Manifest(ManifestRef { root, count })
    }

    fn owner_of(&self, system: usize) -> String {
        self.systems[system].1.clone()
    }

    fn created(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.class.keys().copied().collect();
        v.sort();
        v
    }

    fn open_on(&self, system: usize) -> Vec<usize> {
        self.open
            .iter()
            .filter(|(_, s)| *s == system)
            .map(|(a, _)| *a)
            .collect()
    }

    /// `choose` is 1 to 6 distinct members of `candidates`.
    fn choose(rng: &mut Rng, candidates: &[usize]) -> Vec<usize> {
        let mut c = candidates.to_vec();
        let k = 1 + rng.below(6.min(c.len()));
        for i in 0..k {
            let j = i + rng.below(c.len() - i);
            c.swap(i, j);
        }
        c.truncate(k);
        c
    }

    /// `step` resolves one intention into a valid event, or skips it when
    /// the state allows none of its kind (nothing open to move or delete,
    /// no transfer to acknowledge, no fresh digest to derive).
    fn step(&mut self, step: &Step) {
        let s = self.systems.len();
        let mut rng = Rng((u64::from(step.a) << 32) | u64::from(step.c));
        let modality = Modality::ALL[step.c as usize % Modality::ALL.len()];
        let subject = SubjectClass::ALL[(step.c as usize / 8) % SubjectClass::ALL.len()];
        let other = |from: usize, b: u32| (from + 1 + b as usize % (s - 1)) % s;
        match step.kind % 100 {
            // CAPTURE of one asset; a re-capture keeps the asset's class.
            0..=13 => {
                let asset = step.a as usize % self.pool.len();
                let to = step.b as usize % s;
                let (m, sc) = *self.class.get(&asset).unwrap_or(&(modality, subject));
                let mut c = CustodyAction::new(K::Capture, &self.owner_of(to), None);
                c.asset = Some(self.asset_ref(&[asset], false));
                c.to_system = self.systems[to].0.clone();
                c.modality = Some(m);
                c.subject_class = Some(sc);
                self.custody(step, c);
                self.class.entry(asset).or_insert((m, sc));
                self.open.insert((asset, to));
            }
            // CAPTURE of a manifest: new assets, or known ones of the same class.
            14..=21 => {
                let to = step.b as usize % s;
                let candidates: Vec<usize> = (0..self.pool.len())
                    .filter(|a| self.class.get(a).is_none_or(|c| *c == (modality, subject)))
                    .collect();
                if candidates.is_empty() {
                    return;
                }
                let members = Self::choose(&mut rng, &candidates);
                let mut c = CustodyAction::new(K::Capture, &self.owner_of(to), None);
                c.asset = Some(self.asset_ref(&members, true));
                c.to_system = self.systems[to].0.clone();
                c.modality = Some(modality);
                c.subject_class = Some(subject);
                self.custody(step, c);
                for a in members {
                    self.class.entry(a).or_insert((modality, subject));
                    self.open.insert((a, to));
                }
            }
            // COPY or MOVE, of one asset or of a manifest.
            22..=53 => {
                let kind = if step.kind % 100 < 38 {
                    K::Copy
                } else {
                    K::Move
                };
                let bulk = matches!(step.kind % 100, 32..=37 | 48..=53);
                let (members, from) = if bulk {
                    let from = step.b as usize % s;
                    // Mostly what rests on the source, sometimes any known asset.
                    let candidates = if one_in(step.c, 4) {
                        self.created()
                    } else {
                        self.open_on(from)
                    };
                    if candidates.is_empty() {
                        return;
                    }
                    (Self::choose(&mut rng, &candidates), from)
                } else if one_in(step.c, 4) {
                    let created = self.created();
                    if created.is_empty() {
                        return;
                    }
                    (vec![rng.pick(&created)], step.b as usize % s)
                } else {
                    let open: Vec<_> = self.open.iter().copied().collect();
                    if open.is_empty() {
                        return;
                    }
                    let (a, from) = open[step.a as usize % open.len()];
                    (vec![a], from)
                };
                let to = other(from, step.b / 8);
                let mut c = CustodyAction::new(kind, &self.owner_of(from), None);
                let asset = self.asset_ref(&members, bulk);
                c.asset = Some(asset);
                c.from_system = self.systems[from].0.clone();
                c.to_system = self.systems[to].0.clone();
                if one_in(step.c, 3) {
                    c.purpose = Some(Purpose::ALL[step.a as usize % Purpose::ALL.len()]);
                }
                let index = self.custody(step, c);
                for a in members {
                    self.open.insert((a, to));
                    if kind == K::Move {
                        self.open.remove(&(a, from));
                    }
                }
                self.pending.push((index, asset, to));
            }
            // DERIVE of a new asset from one or two known parents.
            54..=61 => {
                let created = self.created();
                let fresh: Vec<usize> = (0..self.pool.len())
                    .filter(|a| !self.class.contains_key(a))
                    .collect();
                if created.is_empty() || fresh.is_empty() {
                    return;
                }
                let child = rng.pick(&fresh);
                let mut parents = vec![rng.pick(&created)];
                if one_in(step.a, 2) {
                    parents.push(rng.pick(&created));
                }
                let to = step.b as usize % s;
                let mut c = CustodyAction::new(K::Derive, &self.owner_of(to), None);
                c.asset = Some(self.asset_ref(&[child], false));
                c.to_system = self.systems[to].0.clone();
                c.modality = Some(modality);
                c.subject_class = Some(subject);
                c.parents = parents
                    .iter()
                    .map(|p| Parent {
                        digest: self.pool[*p],
                        relationship: Relationship::ALL[step.b as usize % 2],
                    })
                    .collect();
                self.custody(step, c);
                self.class.insert(child, (modality, subject));
                self.open.insert((child, to));
            }
            // DELETE of one open copy, or of a manifest all open on one system.
            62..=76 => {
                let bulk = step.kind % 100 >= 72;
                let (members, from) = if bulk {
                    let from = step.b as usize % s;
                    let open = self.open_on(from);
                    if open.is_empty() {
                        return;
                    }
                    (Self::choose(&mut rng, &open), from)
                } else {
                    let open: Vec<_> = self.open.iter().copied().collect();
                    if open.is_empty() {
                        return;
                    }
                    let (a, from) = open[step.a as usize % open.len()];
                    (vec![a], from)
                };
                let mut c = CustodyAction::new(K::Delete, &self.owner_of(from), None);
                c.asset = Some(self.asset_ref(&members, bulk));
                c.from_system = self.systems[from].0.clone();
                c.delete_method =
                    Some(DeleteMethod::ALL[step.c as usize % DeleteMethod::ALL.len()]);
                self.custody(step, c);
                for a in members {
                    self.open.remove(&(a, from));
                }
            }
            // ACCESS or USE: no custody change.
            77..=84 => {
                let created = self.created();
                if created.is_empty() {
                    return;
                }
                let bulk = one_in(step.c, 3);
                let members = if bulk {
                    Self::choose(&mut rng, &created)
                } else {
                    vec![rng.pick(&created)]
                };
                let from = step.b as usize % s;
                let kind = if one_in(step.a, 2) { K::Access } else { K::Use };
                let mut c = CustodyAction::new(kind, &self.owner_of(from), None);
                c.asset = Some(self.asset_ref(&members, bulk));
                c.from_system = self.systems[from].0.clone();
                c.purpose = Some(Purpose::ALL[step.c as usize % Purpose::ALL.len()]);
                self.custody(step, c);
            }
            // RECEIPT of a logged transfer by its recipient or an agent of it.
            _ => {
                if self.pending.is_empty() {
                    return;
                }
                let (of, asset, to) = self.pending.remove(step.a as usize % self.pending.len());
                let agents: Vec<String> = self
                    .parties
                    .iter()
                    .filter(|p| self.registry.operates(p, &self.systems[to].0))
                    .cloned()
                    .collect();
                let reporter = agents[step.b as usize % agents.len()].clone();
                let named = one_in(step.c, 2).then_some(asset);
                let mut c = CustodyAction::new(K::Receipt, &reporter, named);
                c.receipt_of = Some(of);
                self.time += i64::from(step.dt % 7);
                self.push(&reporter, EventBody::Custody(c));
            }
        }
    }
}

fn build(raw: &Raw) -> Scenario {
    let owner = "agency".to_owned();
    let key = ed25519_dalek::SigningKey::from_bytes(&raw.owner_seed);
    let genesis = Genesis {
        origin: ORIGIN.into(),
        owner_party_id: owner.clone(),
        owner_public_key: key.verifying_key().to_bytes(),
    };
    let mut pool_rng = Rng(raw.pool_seed);
    let pool: Vec<Digest> = (0..raw.pool_size).map(|_| pool_rng.digest()).collect();
    let mut b = Builder {
        registry: Registry::new(&genesis).unwrap(),
        principal: HashMap::from([(owner.clone(), String::new())]),
        parties: vec![owner.clone()],
        systems: Vec::new(),
        pool,
        class: HashMap::new(),
        open: BTreeSet::new(),
        pending: Vec::new(),
        events: Vec::new(),
        uploads: HashMap::new(),
        seqs: HashMap::new(),
        time: T0,
        manifests: 0,
    };
    let kinds = [
        PartyKind::Prime,
        PartyKind::Subcontractor,
        PartyKind::Partner,
        PartyKind::Device,
    ];
    let mut keys = HashMap::from([(owner.clone(), key_id_of(&key.verifying_key().to_bytes()))]);
    for (i, p) in raw.principals.iter().enumerate() {
        let id = format!("party-{i}");
        let principal = b.parties[*p as usize % b.parties.len()].clone();
        b.push(
            &owner,
            EventBody::PartyRegistered(PartyRegistered {
                party_id: id.clone(),
                kind: kinds[i % kinds.len()],
                acts_on_behalf_of: principal.clone(),
            }),
        );
        // Each party signs with its own key, so admission checks signers
        // as it does for the server.
        let public_key = ed25519_dalek::SigningKey::from_bytes(&seed_of(&id))
            .verifying_key()
            .to_bytes();
        b.push(
            &owner,
            EventBody::KeyAdded(KeyAdded {
                party_id: id.clone(),
                public_key,
                valid_from: T0,
                valid_to: None,
            }),
        );
        keys.insert(id.clone(), key_id_of(&public_key));
        b.principal.insert(id.clone(), principal);
        b.parties.push(id);
    }
    for (i, o) in raw.system_owners.iter().enumerate() {
        let id = format!("sys:{i}");
        let owner_party = b.parties[*o as usize % b.parties.len()].clone();
        b.push(
            &owner,
            EventBody::SystemRegistered(SystemRegistered {
                system_id: id.clone(),
                owner_party: owner_party.clone(),
                inside_boundary: i % 2 == 0,
                accredited: i % 3 == 0,
                encrypted_at_rest: true,
                removable_media: false,
            }),
        );
        b.systems.push((id, owner_party));
    }
    b.time = T0 + 1;
    for s in &raw.steps {
        b.step(s);
    }
    Scenario {
        genesis,
        events: b.events,
        uploads: b.uploads,
        pool: b.pool,
        systems: b.systems,
        parties: b.parties,
        keys,
    }
}

/// `seed_of` is a party's signing-key seed: its id, padded.
fn seed_of(party: &str) -> [u8; 32] {
    let mut seed = [0x5a; 32];
    for (s, b) in seed.iter_mut().zip(party.bytes()) {
        *s = b;
    }
    seed
}

/// `sequence` feeds the events through the write path's admission rule,
/// `custody_domain::admit` (the function the sequencer calls), in batches
/// committed as the sequencer commits them, and returns the tree sizes
/// after each batch.
fn sequence(store: &RocksStore, sc: &Scenario, batches: &[usize]) -> Vec<u64> {
    let mut registry = Registry::new(&sc.genesis).unwrap();
    store
        .commit(&Commit {
            first_index: 0,
            entries: vec![b"genesis".to_vec()],
            ..Commit::default()
        })
        .unwrap();
    let mut sizes = vec![1];
    let mut at = 0;
    let mut turn = 0;
    while at < sc.events.len() {
        let n = batches[turn % batches.len()].min(sc.events.len() - at);
        turn += 1;
        let first_index = at as u64 + 1;
        let mut commit = Commit {
            first_index,
            ..Commit::default()
        };
        let mut ov = Overlay::new(StoreView(store));
        for pos in at..at + n {
            if let Some((root, members)) = sc.uploads.get(&pos) {
                store
                    .index_write(&manifest_writes(root, members, &[]))
                    .unwrap();
            }
            let e = &sc.events[pos];
            let index = pos as u64 + 1;
            e.check_shape()
                .unwrap_or_else(|r| panic!("event {index} ({}) is malformed: {r}", e.body.code()));
            let signer = [sc.keys[&e.reporter]];
            let admission =
                admit(&registry, &ov, &signer, e, index, e.event_time).unwrap_or_else(|r| {
                    panic!("event {index} ({}) refused: {r}\n{e:?}", e.body.code())
                });
            if admission.changes_registry {
                commit.registry.push(index);
            }
            let fx = admission.effects;
            commit
                .index
                .extend(index_writes(index, &e.reporter, e.reporter_seq, &fx));
            ov.apply(&fx);
            registry.apply(e, index);
            commit.entries.push(format!("entry {index}").into_bytes());
        }
        store.commit(&commit).unwrap();
        at += n;
        sizes.push(store.tree_size().unwrap());
    }
    EVENTS.fetch_add(sc.events.len() as u64, Ordering::Relaxed);
    sizes
}

/// `Asset` is a digest that prints as a short hex prefix in failures.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Asset(Digest);

impl std::fmt::Debug for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", &custody_domain::hex(&self.0)[..8])
    }
}

/// `Row` is an interval as compared: asset, system, party, from, to,
/// opened_by, closed_by, modality, subject class.
type Row = (
    Asset,
    String,
    String,
    Timestamp,
    Option<Timestamp>,
    u64,
    Option<u64>,
    Option<Modality>,
    Option<SubjectClass>,
);

fn row(i: &Interval) -> Row {
    (
        Asset(i.asset),
        i.system.clone(),
        i.party.clone(),
        i.from,
        i.to,
        i.opened_by,
        i.closed_by,
        i.modality,
        i.subject_class,
    )
}

fn holds(r: &Row, t: Timestamp) -> bool {
    r.3 <= t && r.4.is_none_or(|to| t < to)
}

fn overlaps(r: &Row, a: Timestamp, b: Timestamp) -> bool {
    r.3 <= b && r.4.is_none_or(|to| to > a)
}

/// `Naive` is custody state replayed from the events by brute force.
struct Naive {
    intervals: Vec<Row>,
    /// Asset → (modality, subject class) from its creating event.
    class: HashMap<Digest, (Modality, SubjectClass)>,
    /// Asset → indexes of the entries about it.
    history: HashMap<Digest, BTreeSet<u64>>,
}

/// `replay` is the naive custody state after the entries before `size`.
fn replay(sc: &Scenario, manifests: &HashMap<Digest, Vec<Digest>>, size: u64) -> Naive {
    let mut n = Naive {
        intervals: Vec::new(),
        class: HashMap::new(),
        history: HashMap::new(),
    };
    let mut owners: HashMap<String, String> = HashMap::new();
    let resolve = |a: &AssetRef| -> Vec<Digest> {
        match a {
            AssetRef::One(d) => vec![*d],
            AssetRef::Manifest(m) => {
                let v = manifests[&m.root].clone();
                assert_eq!(v.len() as u64, m.count);
                v
            }
        }
    };
    for (pos, e) in sc.events.iter().enumerate() {
        let index = pos as u64 + 1;
        if index >= size {
            break;
        }
        let c = match &e.body {
            EventBody::SystemRegistered(s) => {
                owners.insert(s.system_id.clone(), s.owner_party.clone());
                continue;
            }
            EventBody::Custody(c) => c,
            _ => continue,
        };
        let t = e.event_time;
        let members = match c.action {
            K::Receipt => {
                let of = c.receipt_of.unwrap();
                let EventBody::Custody(tr) = &sc.events[of as usize - 1].body else {
                    panic!("receipt of a non-custody entry");
                };
                resolve(&tr.asset.unwrap())
            }
            _ => resolve(&c.asset.unwrap()),
        };
        for m in &members {
            n.history.entry(*m).or_default().insert(index);
        }
        for p in &c.parents {
            n.history.entry(p.digest).or_default().insert(index);
        }
        for m in &members {
            if matches!(c.action, K::Capture | K::Derive) {
                n.class
                    .entry(*m)
                    .or_insert((c.modality.unwrap(), c.subject_class.unwrap()));
            }
            if matches!(c.action, K::Capture | K::Derive | K::Copy | K::Move) {
                let open = n
                    .intervals
                    .iter()
                    .any(|r| r.0 .0 == *m && r.1 == c.to_system && r.4.is_none());
                if !open {
                    let class = n.class.get(m);
                    n.intervals.push((
                        Asset(*m),
                        c.to_system.clone(),
                        owners[&c.to_system].clone(),
                        t,
                        None,
                        index,
                        None,
                        class.map(|c| c.0),
                        class.map(|c| c.1),
                    ));
                }
            }
            if matches!(c.action, K::Move | K::Delete) {
                let open = n
                    .intervals
                    .iter_mut()
                    .find(|r| r.0 .0 == *m && r.1 == c.from_system && r.4.is_none());
                match open {
                    Some(r) => {
                        r.4 = Some(t);
                        r.6 = Some(index);
                    }
                    None => assert_eq!(
                        c.action,
                        K::Move,
                        "the model deleted a copy that is not there"
                    ),
                }
            }
        }
    }
    n
}

/// `sorted` orders rows as the indexes list them: by asset, then by the
/// opening entry (which tells one asset's intervals apart, as an entry
/// opens at most one interval per asset).
fn sorted(mut v: Vec<Row>) -> Vec<Row> {
    v.sort_by_key(|r| (r.0, r.5));
    v
}

/// `check` compares every query as of `size` with the naive replay.
fn check(
    store: &RocksStore,
    sc: &Scenario,
    manifests: &HashMap<Digest, Vec<Digest>>,
    size: u64,
    rng: &mut Rng,
) {
    let naive = replay(sc, manifests, size);
    let q = AsOf { store, size };

    // Probe times: before everything, after everything, and some event
    // times exactly and just before them.
    let times: Vec<Timestamp> = sc.events.iter().map(|e| e.event_time).collect();
    let last = *times.iter().max().unwrap_or(&T0);
    let mut probes = BTreeSet::from([T0 - 1, last + 1]);
    for _ in 0..6 {
        let t = rng.pick(&times);
        probes.insert(t);
        probes.insert(t - 1);
    }
    let probes: Vec<Timestamp> = probes.into_iter().collect();

    // HoldersAt, for every asset of the pool.
    for asset in &sc.pool {
        for &t in &probes {
            let got = sorted(q.holders_at(asset, t).unwrap().iter().map(row).collect());
            let want = sorted(
                naive
                    .intervals
                    .iter()
                    .filter(|r| r.0 .0 == *asset && holds(r, t))
                    .cloned()
                    .collect(),
            );
            assert_eq!(
                got,
                want,
                "holders_at({}, {t}) as of {size}",
                custody_domain::hex(asset)
            );
        }
    }

    // Holdings, of each system, of each party's systems and of all systems
    // in a shuffled order, paged with a small limit.
    let mut lists: Vec<Vec<String>> = sc.systems.iter().map(|(s, _)| vec![s.clone()]).collect();
    for p in &sc.parties {
        let owned: Vec<String> = sc
            .systems
            .iter()
            .filter(|(_, o)| o == p)
            .map(|(s, _)| s.clone())
            .collect();
        if owned.len() > 1 {
            lists.push(owned);
        }
    }
    let mut all: Vec<String> = sc.systems.iter().map(|(s, _)| s.clone()).collect();
    for i in (1..all.len()).rev() {
        all.swap(i, rng.below(i + 1));
    }
    lists.push(all);
    for systems in &lists {
        for _ in 0..3 {
            let t = rng.pick(&probes);
            let limit = 1 + rng.below(5);
            let mut got = Vec::new();
            let mut cursor = None;
            for _ in 0..=naive.intervals.len() + 1 {
                let (page, next) = q.holdings(systems, t, cursor, limit).unwrap();
                assert!(page.len() <= limit, "holdings page longer than its limit");
                if next.is_some() {
                    assert_eq!(page.len(), limit, "a holdings page with a cursor is full");
                }
                got.extend(page.iter().map(row));
                cursor = next;
                if cursor.is_none() {
                    break;
                }
            }
            assert!(cursor.is_none(), "holdings paging did not end");
            let mut want: Vec<(usize, Asset, u64, Row)> = naive
                .intervals
                .iter()
                .filter(|r| holds(r, t))
                .filter_map(|r| {
                    let n = systems.iter().position(|s| *s == r.1)?;
                    Some((n, r.0, r.5, r.clone()))
                })
                .collect();
            want.sort();
            let want: Vec<Row> = want.into_iter().map(|w| w.3).collect();
            assert_eq!(
                got, want,
                "holdings({systems:?}, {t}) limit {limit} as of {size}"
            );
        }
    }

    // BreachScope, over several windows of each system, paged.
    for (system, _) in &sc.systems {
        let mut windows = vec![(T0 - 1, last + 1), (T0 - 2, T0 - 1), (last + 1, last + 2)];
        for _ in 0..4 {
            let (x, y) = (rng.pick(&probes), rng.pick(&probes));
            windows.push((x.min(y), x.max(y)));
        }
        for (a, b) in windows {
            let limit = 1 + rng.below(5);
            let want_rows: Vec<Row> = sorted(
                naive
                    .intervals
                    .iter()
                    .filter(|r| r.1 == *system && overlaps(r, a, b))
                    .cloned()
                    .collect(),
            );
            let want_assets: BTreeSet<Digest> = want_rows.iter().map(|r| r.0 .0).collect();
            let mut want_classes: BTreeMap<(Option<Modality>, Option<SubjectClass>), u64> =
                BTreeMap::new();
            for asset in &want_assets {
                let c = naive.class.get(asset);
                *want_classes
                    .entry((c.map(|c| c.0), c.map(|c| c.1)))
                    .or_default() += 1;
            }
            let mut got = Vec::new();
            let mut seen = BTreeSet::new();
            let mut after = None;
            let mut ended = false;
            for _ in 0..=want_assets.len() + 1 {
                let page = q.breach_scope(system, a, b, after, limit).unwrap();
                let what = format!("breach_scope({system}, {a}, {b}) limit {limit} as of {size}");
                assert_eq!(
                    page.asset_count,
                    want_assets.len() as u64,
                    "{what}: asset_count"
                );
                assert_eq!(page.by_class, want_classes, "{what}: by_class");
                let assets: BTreeSet<Digest> = page.intervals.iter().map(|i| i.asset).collect();
                assert!(assets.len() <= limit, "{what}: more assets than the limit");
                assert!(seen.is_disjoint(&assets), "{what}: an asset on two pages");
                seen.extend(assets.iter().copied());
                got.extend(page.intervals.iter().map(row));
                match page.next {
                    None => {
                        ended = true;
                        break;
                    }
                    Some(n) => {
                        assert_eq!(assets.len(), limit, "{what}: a page with a cursor is full");
                        assert_eq!(
                            Some(&n),
                            assets.last(),
                            "{what}: next is the page's last asset"
                        );
                        after = Some(n);
                    }
                }
            }
            assert!(ended, "breach_scope paging did not end");
            assert_eq!(
                got, want_rows,
                "breach_scope({system}, {a}, {b}) limit {limit} as of {size}: intervals"
            );
        }
    }

    // AssetHistory, for every asset of the pool, paged.
    for asset in &sc.pool {
        let limit = 1 + rng.below(5);
        let mut got = Vec::new();
        let mut after = None;
        loop {
            let (page, more) = q.asset_history(asset, after, limit).unwrap();
            assert!(page.len() <= limit);
            got.extend(page.iter().copied());
            if !more {
                break;
            }
            assert_eq!(
                page.len(),
                limit,
                "a history page with more to come is full"
            );
            after = page.last().copied();
        }
        let want: Vec<u64> = naive
            .history
            .get(asset)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        assert_eq!(
            got,
            want,
            "asset_history({}) as of {size}",
            custody_domain::hex(asset)
        );
    }
}

fn run(raw: &Raw) {
    let sc = build(raw);
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let sizes = sequence(&store, &sc, &raw.batches);
    let manifests: HashMap<Digest, Vec<Digest>> = sc.uploads.values().cloned().collect();
    let size = store.tree_size().unwrap();
    assert_eq!(size, sc.events.len() as u64 + 1);
    let mut rng = Rng(raw.query_seed);
    check(&store, &sc, &manifests, size, &mut rng);
    // Earlier batch boundaries: entries at or after them must be invisible.
    for _ in 0..2 {
        let earlier = rng.pick(&sizes);
        check(&store, &sc, &manifests, earlier, &mut rng);
    }
}

#[test]
fn indexes_answer_like_a_naive_replay() {
    // PROPTEST_CASES runs more (or fewer) cases than the default 64.
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&raw_strategy(160), |raw| {
        run(&raw);
        Ok(())
    }) {
        panic!("{e}");
    }
    let events = EVENTS.load(Ordering::Relaxed);
    eprintln!("custody model: {events} events sequenced and checked");
    assert!(
        events >= u64::from(cases) * 40,
        "only {events} events in {cases} cases; the generator skips too much"
    );
}

/// Regression: a CAPTURE of an asset the log already knows, claiming
/// another modality and subject class, used to be accepted, and the
/// interval it opened carried the claimed class while the asset (and every
/// COPY of it) kept the class of its creation; BreachScope then counted it
/// under whichever class its first interval had. It is now refused, and
/// the intervals that exist agree with the asset's class.
#[test]
fn a_recapture_with_another_class_is_refused() {
    let owner = "agency";
    let genesis = Genesis {
        origin: "custody.example/model".into(),
        owner_party_id: owner.into(),
        owner_public_key: ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes(),
    };
    let owner_key = key_id_of(&genesis.owner_public_key);
    let asset = [0xa5; 32];
    let system = |id: &str| {
        EventBody::SystemRegistered(SystemRegistered {
            system_id: id.into(),
            owner_party: owner.into(),
            inside_boundary: true,
            accredited: true,
            encrypted_at_rest: true,
            removable_media: false,
        })
    };
    let capture = |to: &str, m: Modality, sc: SubjectClass| {
        let mut c = CustodyAction::new(K::Capture, owner, Some(AssetRef::One(asset)));
        c.to_system = to.into();
        c.modality = Some(m);
        c.subject_class = Some(sc);
        EventBody::Custody(c)
    };
    let bodies = [
        system("sys:0"),
        system("sys:1"),
        capture("sys:0", Modality::FaceImage, SubjectClass::Citizen),
        capture("sys:1", Modality::PlateImage, SubjectClass::NonCitizen),
    ];
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    store
        .commit(&Commit {
            first_index: 0,
            entries: vec![b"genesis".to_vec()],
            ..Commit::default()
        })
        .unwrap();
    let mut registry = Registry::new(&genesis).unwrap();
    let mut ov = Overlay::new(StoreView(&store));
    let mut commit = Commit {
        first_index: 1,
        ..Commit::default()
    };
    let mut refused = false;
    for (pos, body) in bodies.into_iter().enumerate() {
        let index = pos as u64 + 1;
        let e = Event {
            event_id: format!("00000000-0000-4000-8000-{index:012x}"),
            event_time: T0 + index as i64,
            reporter: owner.into(),
            reporter_seq: index,
            log_origin: "custody.example/model".into(),
            body,
        };
        let fx = match admit(&registry, &ov, &[owner_key], &e, index, e.event_time) {
            Ok(a) => a.effects,
            Err(r) if index == 4 => {
                assert_eq!(
                    r.kind,
                    custody_domain::RefusalKind::FailedPrecondition,
                    "{r}"
                );
                assert!(
                    r.message.contains("already logged as FACE_IMAGE CITIZEN"),
                    "{r}"
                );
                refused = true;
                break;
            }
            Err(r) => panic!("event {index} refused: {r}"),
        };
        commit
            .index
            .extend(index_writes(index, &e.reporter, e.reporter_seq, &fx));
        ov.apply(&fx);
        registry.apply(&e, index);
        commit.entries.push(format!("entry {index}").into_bytes());
    }
    store.commit(&commit).unwrap();

    let q = AsOf {
        store: &store,
        size: store.tree_size().unwrap(),
    };
    let meta = custody_store::index::asset_meta(&store, &asset)
        .unwrap()
        .unwrap();
    let class = (Some(meta.modality), Some(meta.subject_class));
    assert!(refused, "the contradicting re-capture was accepted");
    let held = q.holders_at(&asset, T0 + 10).unwrap();
    assert_eq!(
        held.len(),
        1,
        "the asset rests only where it was first captured"
    );
    for i in &held {
        assert_eq!(
            (i.modality, i.subject_class),
            class,
            "the interval on {} (entry {}) disagrees with the class the asset got at its creation (entry {})",
            i.system,
            i.opened_by,
            meta.created_by
        );
    }
    let scope = q.breach_scope("sys:0", T0, T0 + 10, None, 10).unwrap();
    assert_eq!(scope.by_class, BTreeMap::from([(class, 1)]));
}
