//! Random valid custody event sequences (single, bulk and derived assets;
//! grants, retention rules, legal holds and attestations) go through the
//! sequencer's own admission path (`custody_admission::sequence_batch`)
//! into RocksDB. HoldersAt, Holdings, BreachScope and AssetHistory answered
//! from the indexes must equal a naive replay of the same events, and the
//! findings answered from the derived state the sequencer committed
//! (`findings_at` over `StoreView`, as the server answers) must equal a
//! replay of the stored entries in memory (`Replay`, as `custody audit`
//! answers), at the latest and at earlier tree sizes and at times before,
//! during and long after the scenario.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use custody_admission::{
    admit_bounded, check_batch, load_registry, sequence_batch, Appended, BulkJob, HeadStep,
    Sequenced,
};
use custody_domain::findings::{
    find_finding, findings_at, findings_page, Finding, FindingsFilter, Policy, Rule,
};
use custody_domain::replay::{ManifestSource, Replay};
use custody_domain::{
    admit, key_id_of, AssetRef, Attribution, CustodyAction, CustodyActionKind as K,
    CustodyAttestation, DeleteMethod, Digest, Event, EventBody, Genesis, GrantIssued, GrantRevoked,
    Interval, KeyAdded, LegalHold, ManifestRef, Modality, Overlay, Parent, PartyKind,
    PartyRegistered, Purpose, Refusal, Registry, Relationship, RetentionAuthority, RetentionClock,
    RetentionRule, SignedEnvelope, SubjectClass, SystemRegistered, Timestamp, EMPTY_MANIFEST_ROOT,
};
use custody_proto::{decode_entry, decode_event, v1, Entry};
use custody_store::index::{check_derived_settings, index_writes, manifest_writes, StoreView};
use custody_store::{Commit, IndexCf, IndexRead, LogStore};
use custody_store_rocks::RocksStore;
use custodyd::query::AsOf;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use prost::Message as _;

/// The origin of every model log.
const ORIGIN: &str = "custody.example/model";

/// The event time of the registry events; custody events follow it.
const T0: Timestamp = 1_700_000_000_000_000_000;

/// Events sequenced over all cases, counted to show the run's scale.
static EVENTS: AtomicU64 = AtomicU64::new(0);

/// Findings answers compared over all cases.
static FINDINGS_COMPARED: AtomicU64 = AtomicU64::new(0);

/// Per kind of finding (a rule, or a rule with a variant worth telling
/// apart), the number of cases in which the compared answers held one.
static KINDS_SEEN: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// The findings policy the sequencer derives with and the replay replays
/// with: windows of a few hundred steps of the scenario's clock (which
/// advances up to 500 ns a step), so receipts, attestations and
/// reporting fall on both sides of them.
const POLICY: Policy = Policy {
    receipt_window: 1_500,
    reporting_deadline: 2_000,
    attestation_period: 6_000,
};

/// The policies a scenario publishes later, which apply to the entries
/// after them only: each window both shorter and longer than
/// [`POLICY`]'s.
const LATER_POLICIES: [Policy; 2] = [
    Policy {
        receipt_window: 700,
        reporting_deadline: 3_000,
        attestation_period: 2_500,
    },
    Policy {
        receipt_window: 4_000,
        reporting_deadline: 1_200,
        attestation_period: 12_000,
    },
];

/// The max ages retention rules pick from, in nanoseconds.
const MAX_AGES: [i64; 4] = [800, 3_000, 10_000, 40_000];

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
    /// Batch sizes, each with how late the log integrates the batch (see
    /// [`integration_lag`]), used in turn.
    batches: Vec<(usize, u16)>,
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
        prop::collection::vec((1usize..=8, any::<u16>()), 1..=24),
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
    /// Each party's signing key (the owner's is the genesis key).
    signers: HashMap<String, SigningKey>,
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
    /// Grants issued, by id, and whether each was revoked.
    grants: Vec<(String, bool)>,
    /// Retention rules published.
    rules: usize,
    /// Legal holds placed, and whether each was released.
    holds: Vec<(LegalHold, bool)>,
}

impl Builder {
    /// `reporters` is every party that may report `c`, by the domain's
    /// own rules (`Registry::attribute`): the actor's principals, and the
    /// owners and operators of the system it is observed on; and a MOVE
    /// or DELETE from a system its actor does not operate only by those
    /// that observed it there.
    fn reporters(&self, c: &CustodyAction) -> Vec<String> {
        let closes = matches!(c.action, K::Move | K::Delete)
            && !self.registry.operates(&c.actor, &c.from_system);
        self.parties
            .iter()
            .filter(|p| {
                match self
                    .registry
                    .attribute(p, &c.actor, &[c.observation_system()])
                {
                    Err(_) => false,
                    Ok(Attribution::Own) => !closes,
                    Ok(Attribution::Observed { .. }) => true,
                }
            })
            .cloned()
            .collect()
    }

    /// `actor` is who acts on data on system `from`: mostly its owner,
    /// sometimes any party (a vendor at work on another's system, which
    /// the system's operators report as observed).
    fn actor(&self, rng: &mut Rng, step: &Step, from: usize) -> String {
        if one_in(step.c >> 8, 4) {
            rng.pick(&self.parties)
        } else {
            self.owner_of(from)
        }
    }

    fn push(&mut self, reporter: &str, body: EventBody) -> u64 {
        self.push_gap(reporter, body, 0)
    }

    /// `push_gap` logs `body` by `reporter` after skipping `gap` of its
    /// sequence numbers.
    fn push_gap(&mut self, reporter: &str, body: EventBody, gap: u64) -> u64 {
        let seq = self.seqs.entry(reporter.to_owned()).or_default();
        *seq += 1 + gap;
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

    /// `tick` advances the clock by `dt` (often zero, so times tie).
    fn tick(&mut self, step: &Step) {
        self.time += if one_in(step.dt, 3) {
            0
        } else {
            i64::from(step.dt % 500) + 1
        };
    }

    /// `custody` logs a custody action reported by a party related to its
    /// actor, after advancing the clock; now and then the reporter skips
    /// sequence numbers.
    fn custody(&mut self, step: &Step, c: CustodyAction) -> u64 {
        self.tick(step);
        let related = self.reporters(&c);
        let reporter = related[(step.dt / 3) as usize % related.len()].clone();
        let gap = if one_in(step.c >> 16, 12) {
            1 + u64::from(step.c >> 28) % 3
        } else {
            0
        };
        self.push_gap(&reporter, EventBody::Custody(c), gap)
    }

    /// `grant_for` is the grant a transfer or use names: mostly one issued
    /// (revoked or not), else none, or one never issued.
    fn grant_for(&self, rng: &mut Rng) -> String {
        match rng.below(6) {
            0 => "grant-never-issued".into(),
            1 | 2 => String::new(),
            _ if self.grants.is_empty() => String::new(),
            _ => rng.pick(&self.grants).0,
        }
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
        if step.kind >= 220 {
            return self.registry_step(step);
        }
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
                let mut c = CustodyAction::new(kind, &self.actor(&mut rng, step, from), None);
                c.from_system = self.systems[from].0.clone();
                c.to_system = self.systems[to].0.clone();
                if self.reporters(&c).is_empty() {
                    return;
                }
                let asset = self.asset_ref(&members, bulk);
                c.asset = Some(asset);
                if one_in(step.c, 3) {
                    c.purpose = Some(Purpose::ALL[step.a as usize % Purpose::ALL.len()]);
                }
                c.grant_id = self.grant_for(&mut rng);
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
                let mut c = CustodyAction::new(kind, &self.actor(&mut rng, step, from), None);
                c.asset = Some(self.asset_ref(&members, bulk));
                c.from_system = self.systems[from].0.clone();
                c.purpose = Some(Purpose::ALL[step.c as usize % Purpose::ALL.len()]);
                if one_in(step.b >> 16, 2) {
                    c.grant_id = self.grant_for(&mut rng);
                }
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

impl Builder {
    /// `registry_step` resolves an intention for an event other than a
    /// custody action: a grant issued or revoked, a retention rule, a
    /// legal hold placed or released, or a custody attestation.
    fn registry_step(&mut self, step: &Step) {
        let s = self.systems.len();
        let owner = self.parties[0].clone();
        let mut rng = Rng(((u64::from(step.a) << 32) | u64::from(step.c)) ^ 0x7265_6769_7374_7279);
        match step.kind - 220 {
            // A grant, often narrowed, sometimes not yet valid or expiring.
            0..=6 => {
                let grant_id = format!("grant-{}", self.grants.len());
                let grantee = rng.pick(&self.parties);
                let actions = match rng.below(4) {
                    0 => vec![],
                    1 => vec![K::Copy],
                    2 => vec![K::Move],
                    _ => vec![K::Copy, K::Move],
                };
                let mut purposes = match rng.below(2) {
                    0 => vec![],
                    _ => vec![rng.pick(Purpose::ALL), rng.pick(Purpose::ALL)],
                };
                purposes.sort();
                purposes.dedup();
                let systems = match rng.below(3) {
                    0 => vec![self.systems[rng.below(s)].0.clone()],
                    _ => vec![],
                };
                let modalities = match rng.below(4) {
                    0 => vec![rng.pick(Modality::ALL)],
                    _ => vec![],
                };
                let subject_classes = match rng.below(4) {
                    0 => vec![rng.pick(SubjectClass::ALL)],
                    _ => vec![],
                };
                let valid_from = match rng.below(4) {
                    0 => self.time + 1 + rng.below(3_000) as i64,
                    _ => T0,
                };
                let valid_to =
                    (rng.below(3) == 0).then(|| valid_from + 1 + rng.below(8_000) as i64);
                let max_onward_transfers = rng.below(2) as u32;
                self.tick(step);
                self.push(
                    &owner,
                    EventBody::GrantIssued(GrantIssued {
                        grant_id: grant_id.clone(),
                        grantee,
                        contract_ref: String::new(),
                        actions,
                        purposes,
                        systems,
                        modalities,
                        subject_classes,
                        max_onward_transfers,
                        valid_from,
                        valid_to,
                    }),
                );
                self.grants.push((grant_id, false));
            }
            // A grant revoked.
            7..=9 => {
                let live: Vec<usize> = (0..self.grants.len())
                    .filter(|g| !self.grants[*g].1)
                    .collect();
                if live.is_empty() {
                    return;
                }
                let g = rng.pick(&live);
                self.tick(step);
                let grant_id = self.grants[g].0.clone();
                self.push(&owner, EventBody::GrantRevoked(GrantRevoked { grant_id }));
                self.grants[g].1 = true;
            }
            // A retention rule, selecting by class and system or not.
            10..=15 => {
                let rule = RetentionRule {
                    rule_id: format!("rule-{}", self.rules),
                    authority: rng.pick(RetentionAuthority::ALL),
                    authority_ref: String::new(),
                    modality: (rng.below(3) == 0).then(|| rng.pick(Modality::ALL)),
                    subject_class: (rng.below(3) == 0).then(|| rng.pick(SubjectClass::ALL)),
                    system_id: match rng.below(3) {
                        0 => self.systems[rng.below(s)].0.clone(),
                        _ => String::new(),
                    },
                    max_age: rng.pick(&MAX_AGES),
                    clock: rng.pick(RetentionClock::ALL),
                };
                self.rules += 1;
                self.tick(step);
                self.push(&owner, EventBody::RetentionRulePublished(rule));
            }
            // A new findings policy, for the entries after it.
            23 => {
                let policy = rng.pick(&LATER_POLICIES);
                self.tick(step);
                self.push(&owner, EventBody::PolicyPublished(policy));
            }
            // A legal hold released, or placed on a system, an asset, a
            // manifest of assets, or a manifest on one system.
            16..=22 => {
                let placed: Vec<usize> = (0..self.holds.len())
                    .filter(|h| !self.holds[*h].1)
                    .collect();
                if !placed.is_empty() && one_in(step.c, 3) {
                    let h = rng.pick(&placed);
                    let release = LegalHold {
                        released: true,
                        ..self.holds[h].0.clone()
                    };
                    self.tick(step);
                    self.push(&owner, EventBody::LegalHold(release));
                    self.holds[h].1 = true;
                    return;
                }
                let system = self.systems[rng.below(s)].0.clone();
                let created = self.created();
                let (assets, system_id) = match rng.below(4) {
                    _ if created.is_empty() => (None, system),
                    0 => (None, system),
                    1 => (
                        Some(self.asset_ref(&[rng.pick(&created)], false)),
                        String::new(),
                    ),
                    2 => {
                        let members = Self::choose(&mut rng, &created);
                        (Some(self.asset_ref(&members, true)), String::new())
                    }
                    _ => {
                        let members = Self::choose(&mut rng, &created);
                        (Some(self.asset_ref(&members, true)), system)
                    }
                };
                let hold = LegalHold {
                    hold_id: format!("hold-{}", self.holds.len()),
                    assets,
                    system_id,
                    released: false,
                };
                self.tick(step);
                self.push(&owner, EventBody::LegalHold(hold.clone()));
                self.holds.push((hold, false));
            }
            // A custody attestation by an operator of a system, mostly one
            // a party other than the owner owns (those must attest).
            _ => {
                let others: Vec<usize> = (0..s).filter(|i| self.systems[*i].1 != owner).collect();
                let sys = if others.is_empty() || rng.below(4) == 0 {
                    rng.below(s)
                } else {
                    rng.pick(&others)
                };
                let system_id = self.systems[sys].0.clone();
                let operators: Vec<String> = self
                    .parties
                    .iter()
                    .filter(|p| self.registry.operates(p, &system_id))
                    .cloned()
                    .collect();
                let reporter = rng.pick(&operators);
                let open = self.open_on(sys);
                let holdings = if !open.is_empty() && rng.below(2) == 0 {
                    let members = Self::choose(&mut rng, &open);
                    match self.asset_ref(&members, true) {
                        AssetRef::Manifest(m) => m,
                        AssetRef::One(_) => unreachable!("a bulk asset ref is a manifest"),
                    }
                } else {
                    ManifestRef {
                        root: EMPTY_MANIFEST_ROOT,
                        count: 0,
                    }
                };
                self.tick(step);
                self.push(
                    &reporter,
                    EventBody::CustodyAttestation(CustodyAttestation {
                        system_id,
                        holdings,
                    }),
                );
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
        grants: Vec::new(),
        rules: 0,
        holds: Vec::new(),
    };
    let kinds = [
        PartyKind::Prime,
        PartyKind::Subcontractor,
        PartyKind::Partner,
        PartyKind::Device,
    ];
    let mut signers = HashMap::from([(owner.clone(), key.clone())]);
    // The log's first policy, published by its first entry.
    b.push(&owner, EventBody::PolicyPublished(POLICY));
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
        let signer = SigningKey::from_bytes(&seed_of(&id));
        let public_key = signer.verifying_key().to_bytes();
        b.push(
            &owner,
            EventBody::KeyAdded(KeyAdded {
                party_id: id.clone(),
                public_key,
                valid_from: T0,
                valid_to: None,
            }),
        );
        signers.insert(id.clone(), signer);
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
        signers,
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

/// `integration_lag` is how long after the latest event of its batch the
/// log integrates the batch: mostly a few nanoseconds, and for one batch
/// in six past the reporting deadline, so its events (and those of the
/// batches after it, until the scenario's clock catches up) are late.
fn integration_lag(l: u16) -> Timestamp {
    if one_in(l, 6) {
        POLICY.reporting_deadline + 1 + i64::from(l % 1_500)
    } else {
        i64::from(l % 40)
    }
}

/// `encode_event` is `e` in the wire's form, as a reporter sends it.
fn encode_event(e: &Event) -> Vec<u8> {
    let code = i32::from;
    let manifest = |m: &ManifestRef| v1::Manifest {
        root: m.root.to_vec(),
        count: m.count,
    };
    use v1::event::Body;
    let body = match &e.body {
        EventBody::PartyRegistered(p) => Body::PartyRegistered(v1::PartyRegistered {
            party_id: p.party_id.clone(),
            kind: match p.kind {
                PartyKind::Agency => v1::PartyKind::Agency,
                PartyKind::Prime => v1::PartyKind::Prime,
                PartyKind::Subcontractor => v1::PartyKind::Subcontractor,
                PartyKind::Partner => v1::PartyKind::Partner,
                PartyKind::Device => v1::PartyKind::Device,
                PartyKind::Software => v1::PartyKind::Software,
            } as i32,
            acts_on_behalf_of: p.acts_on_behalf_of.clone(),
        }),
        EventBody::KeyAdded(k) => Body::KeyAdded(v1::KeyAdded {
            party_id: k.party_id.clone(),
            public_key: k.public_key.to_vec(),
            valid_from_unix_nanos: k.valid_from,
            valid_to_unix_nanos: k.valid_to.unwrap_or(0),
        }),
        EventBody::SystemRegistered(r) => Body::SystemRegistered(v1::SystemRegistered {
            system_id: r.system_id.clone(),
            owner_party: r.owner_party.clone(),
            inside_boundary: r.inside_boundary,
            accredited: r.accredited,
            encrypted_at_rest: r.encrypted_at_rest,
            removable_media: r.removable_media,
        }),
        EventBody::GrantIssued(g) => Body::GrantIssued(v1::GrantIssued {
            grant_id: g.grant_id.clone(),
            grantee: g.grantee.clone(),
            contract_ref: g.contract_ref.clone(),
            actions: g.actions.iter().map(|x| code(x.code())).collect(),
            purposes: g.purposes.iter().map(|x| code(x.code())).collect(),
            systems: g.systems.clone(),
            modalities: g.modalities.iter().map(|x| code(x.code())).collect(),
            subject_classes: g.subject_classes.iter().map(|x| code(x.code())).collect(),
            max_onward_transfers: g.max_onward_transfers,
            valid_from_unix_nanos: g.valid_from,
            valid_to_unix_nanos: g.valid_to.unwrap_or(0),
        }),
        EventBody::GrantRevoked(g) => Body::GrantRevoked(v1::GrantRevoked {
            grant_id: g.grant_id.clone(),
        }),
        EventBody::RetentionRulePublished(r) => {
            Body::RetentionRulePublished(v1::RetentionRulePublished {
                rule_id: r.rule_id.clone(),
                authority: code(r.authority.code()),
                authority_ref: r.authority_ref.clone(),
                modality: r.modality.map_or(0, |x| code(x.code())),
                subject_class: r.subject_class.map_or(0, |x| code(x.code())),
                system_id: r.system_id.clone(),
                max_age_nanos: r.max_age,
                clock: code(r.clock.code()),
            })
        }
        EventBody::PolicyPublished(p) => Body::PolicyPublished(v1::PolicyPublished {
            receipt_window_nanos: p.receipt_window,
            reporting_deadline_nanos: p.reporting_deadline,
            attestation_period_nanos: p.attestation_period,
        }),
        EventBody::LegalHold(h) => Body::LegalHold(v1::LegalHold {
            hold_id: h.hold_id.clone(),
            assets: h.assets.as_ref().map(|a| v1::AssetRef {
                r#ref: Some(match a {
                    AssetRef::One(d) => v1::asset_ref::Ref::Digest(d.to_vec()),
                    AssetRef::Manifest(m) => v1::asset_ref::Ref::Manifest(manifest(m)),
                }),
            }),
            system_id: h.system_id.clone(),
            released: h.released,
        }),
        EventBody::Custody(c) => Body::Custody(v1::CustodyAction {
            action: code(c.action.code()),
            actor: c.actor.clone(),
            on_behalf_of: c.on_behalf_of.clone(),
            asset_digest: match &c.asset {
                Some(AssetRef::One(d)) => d.to_vec(),
                _ => Vec::new(),
            },
            from_system: c.from_system.clone(),
            to_system: c.to_system.clone(),
            grant_id: c.grant_id.clone(),
            manifest: match &c.asset {
                Some(AssetRef::Manifest(m)) => Some(manifest(m)),
                _ => None,
            },
            modality: c.modality.map_or(0, |x| code(x.code())),
            subject_class: c.subject_class.map_or(0, |x| code(x.code())),
            capture: (c.capture != Default::default()).then(|| v1::CaptureContext {
                port: c.capture.port.clone(),
                lane: c.capture.lane.clone(),
                device: c.capture.device.clone(),
            }),
            parents: c
                .parents
                .iter()
                .map(|p| v1::Parent {
                    digest: p.digest.to_vec(),
                    relationship: code(p.relationship.code()),
                })
                .collect(),
            purpose: c.purpose.map_or(0, |x| code(x.code())),
            outcome: c.outcome.map_or(0, |x| code(x.code())),
            receipt_of: c.receipt_of.unwrap_or(0),
            delete_method: c.delete_method.map_or(0, |x| code(x.code())),
            attested_by: c.attested_by.clone(),
        }),
        EventBody::CustodyAttestation(a) => Body::CustodyAttestation(v1::CustodyAttestation {
            system_id: a.system_id.clone(),
            holdings: (a.holdings.count > 0).then(|| manifest(&a.holdings)),
        }),
        EventBody::KeyRevoked(_) | EventBody::MaintenanceSession(_) => {
            panic!("the model logs no {}", e.body.code())
        }
    };
    v1::Event {
        event_id: e.event_id.clone(),
        event_time_unix_nanos: e.event_time,
        reporter: e.reporter.clone(),
        reporter_seq: e.reporter_seq,
        log_origin: e.log_origin.clone(),
        body: Some(body),
    }
    .encode_to_vec()
}

/// `envelope` is `e` encoded and signed by its reporter's key.
fn envelope(sc: &Scenario, e: &Event) -> SignedEnvelope {
    let body = encode_event(e);
    match decode_event(&body) {
        Ok(d) => assert_eq!(d, *e, "the event does not survive its wire form"),
        Err(r) => panic!("the wire form of {e:?} does not decode: {r}"),
    }
    SignedEnvelope::sign(body, &[&sc.signers[&e.reporter]])
}

/// `sequence` logs the scenario as the server does: the genesis entry,
/// then the events in batches through the sequencer's own
/// [`sequence_batch`] (decode, signatures, `admit`, the custody indexes
/// and the findings' derived state, all in the batch's one commit), each
/// batch integrated [`integration_lag`] after its latest event. It returns
/// the tree sizes after each batch and the registry the sequencer keeps.
fn sequence(
    store: &RocksStore,
    sc: &Scenario,
    batches: &[(usize, u16)],
    slice: Option<usize>,
) -> (Vec<u64>, Registry) {
    let genesis = v1::LogEntry {
        content: Some(v1::log_entry::Content::Genesis(v1::Genesis {
            origin: sc.genesis.origin.clone(),
            owner_party_id: sc.genesis.owner_party_id.clone(),
            owner_public_key: sc.genesis.owner_public_key.to_vec(),
        })),
        integrated_time_unix_nanos: T0,
    }
    .encode_to_vec();
    // As custodyd does before it serves: a log begun now keeps every
    // derived family, breach-scope counts included.
    check_derived_settings(store, &mut |_, _| {}).unwrap();
    store
        .commit(&Commit {
            first_index: 0,
            entries: vec![genesis],
            ..Commit::default()
        })
        .unwrap();
    let mut registry = load_registry(store).unwrap();
    // Batches are checked two registries behind, as `check_batch` allows
    // (custody audit checks a batch ahead of admission): admission must
    // judge signers by the registry as of each entry all the same.
    let mut behind = [registry.clone(), registry.clone()];
    let mut sizes = vec![1];
    let mut last_time = T0;
    let mut at = 0;
    let mut turn = 0;
    while at < sc.events.len() {
        let (n, lag) = batches[turn % batches.len()];
        let n = n.min(sc.events.len() - at);
        turn += 1;
        let first_index = at as u64 + 1;
        let batch = &sc.events[at..at + n];
        // Manifests are uploaded before any event may name them.
        for pos in at..at + n {
            if let Some((root, members)) = sc.uploads.get(&pos) {
                store
                    .index_write(&manifest_writes(root, members, &[]))
                    .unwrap();
            }
        }
        let envelopes: Vec<SignedEnvelope> = batch.iter().map(|e| envelope(sc, e)).collect();
        let envelopes: Vec<&SignedEnvelope> = envelopes.iter().collect();
        let latest = batch.iter().map(|e| e.event_time).max().unwrap_or(T0);
        let time = last_time.max(latest + integration_lag(lag));
        let verdicts = log_batch(store, &mut registry, &behind[0], &envelopes, time, slice);
        behind = [behind[1].clone(), registry.clone()];
        for ((k, verdict), e) in verdicts.into_iter().enumerate().zip(batch) {
            let index = first_index + k as u64;
            match verdict {
                Ok(a) => assert!(
                    a.index == index && !a.duplicate,
                    "event {index} was logged at {} (duplicate: {})",
                    a.index,
                    a.duplicate
                ),
                Err(r) => panic!("event {index} ({}) refused: {r}\n{e:?}", e.body.code()),
            }
        }
        last_time = time;
        at += n;
        sizes.push(store.tree_size().unwrap());
    }
    EVENTS.fetch_add(sc.events.len() as u64, Ordering::Relaxed);
    (sizes, registry)
}

/// `log_batch` logs one batch as the sequencer does, and each envelope's
/// verdict: with a `slice`, checked ([`check_batch`]) against the registry
/// `behind` (see [`sequence`]), as `custody audit` checks a batch while the one
/// before is admitted, then admitted through [`admit_bounded`]; a bulk
/// event of more members than that as a [`BulkJob`] (members checked,
/// entry logged, members applied, a slice per step and a commit per
/// slice), then the rest of the batch; without, whole
/// ([`sequence_batch`]), as `custody audit` replays.
fn log_batch(
    store: &RocksStore,
    registry: &mut Registry,
    behind: &Registry,
    envelopes: &[&SignedEnvelope],
    time: Timestamp,
    slice: Option<usize>,
) -> Vec<Result<Appended, Refusal>> {
    let mut out = Vec::new();
    while out.len() < envelopes.len() {
        let part = &envelopes[out.len()..];
        let size = store.tree_size().unwrap();
        let Sequenced {
            commit,
            registry: changed,
            verdicts,
            bulk,
        } = match slice {
            Some(n) => {
                let checked = check_batch(behind, part);
                admit_bounded(store, registry, size, part, checked, time, n)
            }
            None => sequence_batch(store, registry, size, part, time),
        };
        store.commit(&commit).unwrap();
        if let Some(r) = changed {
            *registry = r;
        }
        out.extend(verdicts);
        let (Some(b), Some(n)) = (bulk, slice) else {
            continue;
        };
        let size = store.tree_size().unwrap();
        let env = part[b.position];
        let verdict = (|| {
            let mut job =
                BulkJob::begin(store, registry, env, b.event, b.unverified.as_deref(), time)?;
            while !job.checked() {
                job.check_slice(store, n)?;
            }
            match job.head(store, registry, size, time)? {
                HeadStep::Logged(c) => store.commit(&c).unwrap(),
                HeadStep::Duplicate(a) => return Ok(a),
            }
            loop {
                let (c, s) = job.apply_slice(store, n)?;
                store.commit(&c).unwrap();
                job.applied(s);
                if s.last {
                    break;
                }
            }
            Ok(job.appended().unwrap())
        })();
        out.push(verdict);
    }
    out
}

/// `dump` is every record of one index family.
fn dump(store: &RocksStore, cf: IndexCf) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    store
        .index_scan(cf, &[], &[], &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        })
        .unwrap();
    out
}

/// `Uploads` serves the scenario's manifests to a replay, as `GetManifest`
/// serves them to `custody audit`.
struct Uploads<'a>(&'a HashMap<Digest, Vec<Digest>>);

impl ManifestSource for Uploads<'_> {
    fn members(&self, m: &ManifestRef) -> Result<Option<Arc<Vec<Digest>>>, Refusal> {
        Ok(self
            .0
            .get(&m.root)
            .filter(|v| v.len() as u64 == m.count)
            .map(|v| Arc::new(v.clone())))
    }
}

/// `rel` is a time relative to [`T0`], for messages.
fn rel(t: Timestamp) -> String {
    format!("T0{:+}", t - T0)
}

/// `short` is a digest's first 8 hex digits.
fn short(d: &Digest) -> String {
    custody_domain::hex(&d[..4])
}

/// `show` is a finding on one line.
fn show(f: &Finding) -> String {
    let mut out = format!(
        "{} entries={:?} at={} party={:?} detail={:?}",
        f.id,
        f.entries,
        rel(f.at),
        f.party.as_deref().unwrap_or("-"),
        f.detail
    );
    for (k, v) in [
        ("system", f.system.clone()),
        ("asset", f.asset.as_ref().map(short)),
        ("grant", f.grant.clone()),
        ("retention_rule", f.retention_rule.clone()),
        ("observed_by", f.observed_by.clone()),
        ("observed_on", f.observed_on.clone()),
    ] {
        if let Some(v) = v {
            out.push_str(&format!(" {k}={v}"));
        }
    }
    out
}

/// `diff` says how findings `a` differ from `b`, or `None` if they do
/// not: what only one holds, what both hold differently (by id), and
/// otherwise the order.
fn diff(a_name: &str, a: &[Finding], b_name: &str, b: &[Finding]) -> Option<String> {
    if a == b {
        return None;
    }
    let by_id = |v: &[Finding]| -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in v {
            m.entry(f.id.clone()).or_default().push(show(f));
        }
        m
    };
    let (am, bm) = (by_id(a), by_id(b));
    let mut out = Vec::new();
    for id in am.keys().chain(bm.keys()).collect::<BTreeSet<_>>() {
        match (am.get(id), bm.get(id)) {
            (Some(x), None) => out.extend(x.iter().map(|f| format!("  only in {a_name}: {f}"))),
            (None, Some(y)) => out.extend(y.iter().map(|f| format!("  only in {b_name}: {f}"))),
            (Some(x), Some(y)) if x != y => {
                out.push(format!("  {id} differs:"));
                out.extend(x.iter().map(|f| format!("    {a_name}: {f}")));
                out.extend(y.iter().map(|f| format!("    {b_name}: {f}")));
            }
            _ => {}
        }
    }
    if out.is_empty() {
        let ids = |v: &[Finding]| v.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
        out.push(format!(
            "  the same findings in another order:\n    {a_name}: {:?}\n    {b_name}: {:?}",
            ids(a),
            ids(b)
        ));
    }
    Some(format!(
        "{} in {a_name}, {} in {b_name}:\n{}",
        a.len(),
        b.len(),
        out.join("\n")
    ))
}

/// `describe` is a logged event on one line, for a failure's context.
fn describe(index: u64, e: &Event, integrated: Timestamp) -> String {
    let asset = |a: &Option<AssetRef>| match a {
        None => "-".to_owned(),
        Some(AssetRef::One(d)) => short(d),
        // The model's manifest roots number its manifests.
        Some(AssetRef::Manifest(m)) if m.count == 0 => "none".to_owned(),
        Some(AssetRef::Manifest(m)) => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&m.root[..8]);
            format!("manifest #{} of {}", u64::from_be_bytes(n), m.count)
        }
    };
    let what = match &e.body {
        EventBody::Custody(c) => {
            let mut w = format!(
                "{} actor={} asset={} {}->{}",
                c.action.name(),
                c.actor,
                asset(&c.asset),
                c.from_system,
                c.to_system
            );
            if !c.parents.is_empty() {
                let parents: Vec<String> = c.parents.iter().map(|p| short(&p.digest)).collect();
                w.push_str(&format!(" parents={parents:?}"));
            }
            if !c.grant_id.is_empty() {
                w.push_str(&format!(" grant={}", c.grant_id));
            }
            if let Some(p) = c.purpose {
                w.push_str(&format!(" purpose={}", p.name()));
            }
            if let Some(r) = c.receipt_of {
                w.push_str(&format!(" receipt_of={r}"));
            }
            w
        }
        EventBody::LegalHold(h) => format!(
            "LEGAL_HOLD {} assets={} system={:?} released={}",
            h.hold_id,
            asset(&h.assets),
            h.system_id,
            h.released
        ),
        EventBody::CustodyAttestation(a) => format!(
            "CUSTODY_ATTESTATION {} holdings={}",
            a.system_id,
            asset(&Some(AssetRef::Manifest(a.holdings)))
        ),
        EventBody::KeyAdded(k) => format!("KEY_ADDED {}", k.party_id),
        other => format!("{other:?}"),
    };
    format!(
        "  {index:>3} at {} logged {} by {}#{}: {what}",
        rel(e.event_time),
        rel(integrated),
        e.reporter,
        e.reporter_seq
    )
}

/// `kinds` names what a finding shows: its rule, and for some rules the
/// variant (why a transfer was unauthorized, whether a receipt came late
/// or never, whether the finding is about an observed action).
fn kinds(f: &Finding) -> Vec<String> {
    let rule = f.rule.name();
    let mut out = vec![rule.to_owned()];
    let variant = match f.rule {
        Rule::UnacknowledgedTransfer => Some(f.detail.clone()),
        Rule::UnauthorizedTransfer => Some(
            if f.detail == "no grant named" {
                "no grant named"
            } else if f.detail.contains("never issued") {
                "grant never issued"
            } else if f.detail.starts_with("grant revoked") {
                "grant revoked"
            } else if f.detail.starts_with("onward") {
                "onward transfer"
            } else {
                "grant does not cover it"
            }
            .to_owned(),
        ),
        Rule::RetentionOverdue if f.entries.len() == 3 => Some("of a copy or derived asset".into()),
        _ => None,
    };
    if let Some(v) = variant {
        out.push(format!("{rule}: {v}"));
    }
    if f.observed_by.is_some() {
        out.push(format!("{rule}: observed"));
    }
    out
}

/// `findings_probes` is where to compare findings: tree sizes (the final
/// one, a batch boundary, any size, and sizes just before an entry that
/// answers or ends something earlier: a RECEIPT, MOVE or DELETE, an
/// attestation, a revocation, a hold's release) and times (before the
/// scenario, at and around its events and windows, and long after, when
/// every window has passed).
fn findings_probes(
    sc: &Scenario,
    batch_sizes: &[u64],
    rng: &mut Rng,
) -> (Vec<u64>, Vec<Timestamp>) {
    let last_size = sc.events.len() as u64 + 1;
    let mut sizes = BTreeSet::from([last_size, rng.pick(batch_sizes)]);
    sizes.insert(1 + rng.below(last_size as usize) as u64);
    let closers: Vec<u64> = sc
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| match &e.body {
            EventBody::Custody(c) => matches!(c.action, K::Receipt | K::Move | K::Delete),
            EventBody::LegalHold(h) => h.released,
            EventBody::CustodyAttestation(_) | EventBody::GrantRevoked(_) => true,
            _ => false,
        })
        .map(|(pos, _)| pos as u64 + 1)
        .collect();
    for _ in 0..2 {
        if !closers.is_empty() {
            sizes.insert(rng.pick(&closers));
        }
    }

    let times: Vec<Timestamp> = sc.events.iter().map(|e| e.event_time).collect();
    let last = *times.iter().max().unwrap_or(&T0);
    let longest = MAX_AGES[MAX_AGES.len() - 1];
    let mut probes = BTreeSet::from([
        T0 - 1,
        T0 + (last - T0) / 2,
        last,
        last + POLICY.receipt_window + 1,
        last + POLICY.attestation_period + 1,
        last + longest + 1,
        last + 1_000 * longest,
    ]);
    for policy in std::iter::once(POLICY).chain(LATER_POLICIES) {
        for _ in 0..3 {
            let t = rng.pick(&times);
            probes.insert(t);
            probes.insert(t + policy.receipt_window);
            probes.insert(t + policy.receipt_window + 1);
        }
        let t = rng.pick(&times);
        probes.insert(t + policy.reporting_deadline + 1);
        probes.insert(t + policy.attestation_period + 1);
    }
    (sizes.into_iter().collect(), probes.into_iter().collect())
}

/// `check_findings` compares, at each of `sizes` and `times`, the
/// findings the server answers (`findings_at` over the derived state the
/// sequencer committed to `store`, with the sequencer's `registry`) with a
/// replay in memory of the stored entries (decoded from their bytes and
/// admitted again, as `custody audit` does): of the first `size` entries
/// alone, and of all of them asked as of `size`. It returns the kinds of
/// finding (see [`kinds`]) the answers held.
fn check_findings(
    store: &RocksStore,
    sc: &Scenario,
    manifests: &HashMap<Digest, Vec<Digest>>,
    registry: &Registry,
    sizes: &[u64],
    times: &[Timestamp],
) -> BTreeSet<String> {
    let size = store.tree_size().unwrap();
    let entries = store.read_entries(0, size).unwrap();
    let genesis = match decode_entry(&entries[0]) {
        Ok(Entry::Genesis(g)) => g,
        other => panic!("entry 0 is not a genesis entry: {other:?}"),
    };
    assert_eq!(genesis, sc.genesis);
    let mut replay = Replay::new(&genesis).unwrap();
    // What the replay of the first `size` entries answers, by (size, time).
    let mut prefix: BTreeMap<(u64, Timestamp), Vec<Finding>> = BTreeMap::new();
    let mut log = Vec::new();
    let record = |replay: &Replay, prefix: &mut BTreeMap<(u64, Timestamp), Vec<Finding>>| {
        if sizes.contains(&replay.size) {
            for &t in times {
                prefix.insert((replay.size, t), replay.findings_at(replay.size, t));
            }
        }
    };
    for (index, bytes) in entries.iter().enumerate().skip(1) {
        record(&replay, &mut prefix);
        let index = index as u64;
        let Ok(Entry::Event {
            envelope,
            integrated_time,
        }) = decode_entry(bytes)
        else {
            panic!("entry {index} is not an event entry");
        };
        let event = decode_event(&envelope.body).unwrap_or_else(|r| panic!("entry {index}: {r}"));
        assert_eq!(event, sc.events[index as usize - 1], "entry {index}");
        log.push(describe(index, &event, integrated_time));
        let signers: Vec<_> = envelope.signatures.iter().map(|s| s.key_id).collect();
        let admission = replay
            .apply(
                index,
                &event,
                &signers,
                integrated_time,
                &Uploads(manifests),
            )
            .unwrap_or_else(|r| {
                panic!(
                    "the replay refuses entry {index} ({}): {r}",
                    event.body.code()
                )
            });
        let message = envelope.signing_bytes();
        for (sig, key) in envelope.signatures.iter().zip(&admission.keys) {
            let sig = ed25519_dalek::Signature::from_bytes(&sig.sig);
            assert!(
                key.verify_strict(&message, &sig).is_ok(),
                "entry {index}: a signature does not verify"
            );
        }
    }
    record(&replay, &mut prefix);
    assert_eq!(
        prefix.len(),
        sizes.len() * times.len(),
        "a size to compare at is not in the log"
    );

    let mut seen = BTreeSet::new();
    for (&(n, t), want) in &prefix {
        let context = || {
            format!(
                "the first {n} entries (party, key and system registrations left out):\n{}",
                log.iter()
                    .take(n as usize - 1)
                    .filter(|l| !l.contains("Registered") && !l.contains("KEY_ADDED"))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        };
        let server = findings_at(&StoreView(store), registry, n, t)
            .unwrap_or_else(|r| panic!("findings_at({n}, {}) over the store: {r}", rel(t)));
        if let Some(d) = diff("the server", &server, "the replay", want) {
            panic!(
                "findings as of tree size {n} at {}: the server's (from the derived state the sequencer committed) differ from a replay of the first {n} entries: {d}\n{}",
                rel(t),
                context()
            );
        }
        // The server's pages (read from its time-ordered indexes and
        // counts), walked a page at a time, list the same findings, and
        // each is found again by its id.
        for rule in [None, Some(Rule::UnacknowledgedTransfer)] {
            let filter = FindingsFilter {
                rule,
                ..FindingsFilter::all()
            };
            let want_rule: Vec<Finding> =
                want.iter().filter(|f| filter.matches(f)).cloned().collect();
            // About five pages whatever the count: every page evaluates
            // the time-based rules again.
            let per_page = (want_rule.len() / 4).max(3);
            let mut walked = Vec::new();
            let mut after = None;
            loop {
                let page = findings_page(
                    &StoreView(store),
                    registry,
                    n,
                    t,
                    &filter,
                    after.as_ref(),
                    per_page,
                )
                .unwrap_or_else(|r| panic!("findings_page({n}, {}): {r}", rel(t)));
                assert_eq!(
                    page.total,
                    want_rule.len() as u64,
                    "total at {n}, {}",
                    rel(t)
                );
                assert_eq!(
                    page.by_rule.values().sum::<u64>(),
                    want.len() as u64,
                    "counts by rule at {n}, {}",
                    rel(t)
                );
                after = page.rows.last().map(|f| (f.at, f.id.clone()));
                walked.extend(page.rows);
                if !page.more {
                    break;
                }
            }
            if let Some(d) = diff("the server's pages", &walked, "the replay", &want_rule) {
                panic!("findings pages as of tree size {n} at {}: {d}", rel(t));
            }
        }
        // Every finding of a rule read by its entry or transfer; of the
        // time-based rules, whose lookup evaluates the rule, a fifth.
        let sample = want.iter().enumerate().filter(|(k, f)| {
            k % 5 == 0 || !matches!(f.rule, Rule::RetentionOverdue | Rule::MissingAttestation)
        });
        for (_, f) in sample {
            let found = find_finding(&StoreView(store), registry, n, t, &f.id)
                .unwrap_or_else(|r| panic!("find_finding({}): {r}", f.id));
            assert_eq!(found.as_ref(), Some(f), "finding {} by its id at {n}", f.id);
        }
        let all = replay.findings_at(n, t);
        if let Some(d) = diff("the replay of all", &all, "the replay of the first", want) {
            panic!(
                "findings as of tree size {n} at {}: a replay of all {size} entries asked as of {n} differs from a replay of the first {n}: {d}\n{}",
                rel(t),
                context()
            );
        }
        FINDINGS_COMPARED.fetch_add(1, Ordering::Relaxed);
        seen.extend(want.iter().flat_map(kinds));
    }
    seen
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
            // The first page reads the kept breach-scope counts and the
            // memo keeps them; the rest read from the cursor.
            let memo = custodyd::query::ScopeMemo::default();
            for _ in 0..=want_assets.len() + 1 {
                let page = q.breach_scope(&memo, system, a, b, after, limit).unwrap();
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
    // Two cases in three admit bulk events in slices of one or two
    // members, as the sequencer admits bulk events above its slice.
    let slice = match raw.query_seed % 3 {
        0 => None,
        n => Some(n as usize),
    };
    let (sizes, registry) = sequence(&store, &sc, &raw.batches, slice);
    if slice.is_some() {
        // Slices write exactly what the whole event writes: every entry
        // and every record of derived state, byte for byte.
        let dir = tempfile::tempdir().unwrap();
        let whole = RocksStore::open(dir.path()).unwrap();
        sequence(&whole, &sc, &raw.batches, None);
        let size = store.tree_size().unwrap();
        assert_eq!(
            store.read_entries(0, size).unwrap(),
            whole.read_entries(0, size).unwrap()
        );
        for cf in IndexCf::ALL {
            let (a, b) = (dump(&store, cf), dump(&whole, cf));
            if let Some(k) = (0..a.len().max(b.len())).find(|k| a.get(*k) != b.get(*k)) {
                panic!(
                    "{cf:?} differs between slices of {slice:?} and whole events, first at record {k}: {:?} against {:?}",
                    a.get(k),
                    b.get(k)
                );
            }
        }
    }
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
    // Findings: the server's derived state against a replay, at sizes and
    // times of their own.
    let mut rng = Rng(raw.query_seed ^ 0x6669_6e64_696e_6773);
    let (sizes, times) = findings_probes(&sc, &sizes, &mut rng);
    let kinds = check_findings(&store, &sc, &manifests, &registry, &sizes, &times);
    let mut seen = KINDS_SEEN.lock().unwrap();
    for k in kinds {
        *seen.entry(k).or_default() += 1;
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
    let compared = FINDINGS_COMPARED.load(Ordering::Relaxed);
    let seen = KINDS_SEEN.lock().unwrap().clone();
    eprintln!(
        "custody model: {events} events sequenced and checked; {compared} findings answers compared with a replay"
    );
    for (kind, n) in &seen {
        eprintln!("  {n:>4} of {cases} cases found {kind}");
    }
    assert!(
        events >= u64::from(cases) * 40,
        "only {events} events in {cases} cases; the generator skips too much"
    );
    // The comparison means something only if there are findings to
    // compare: enough cases must find most rules, and the default run
    // every rule and the variants the time-based rules have.
    let rules = Rule::ALL
        .iter()
        .filter(|r| seen.contains_key(r.name()))
        .count();
    if cases >= 8 {
        assert!(
            rules >= 4,
            "only {rules} rules found over {cases} cases: {seen:?}"
        );
    }
    if cases >= 32 {
        let must: Vec<String> = Rule::ALL
            .iter()
            .map(|r| r.name().to_owned())
            .chain([
                "unacknowledged_transfer: no receipt".to_owned(),
                "unacknowledged_transfer: receipt after the window".to_owned(),
                "unauthorized_transfer: no grant named".to_owned(),
                "unauthorized_transfer: grant does not cover it".to_owned(),
                "retention_overdue: of a copy or derived asset".to_owned(),
            ])
            .collect();
        for kind in must {
            assert!(
                seen.contains_key(&kind),
                "no case found {kind}: the generator no longer makes it ({seen:?})"
            );
        }
    }
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
                    r.message
                        .contains("already logged with another modality or subject class"),
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
    let scope = q
        .breach_scope(&Default::default(), "sys:0", T0, T0 + 10, None, 10)
        .unwrap();
    assert_eq!(scope.by_class, BTreeMap::from([(class, 1)]));
}
