//! The findings' derived state in memory, for a replay (`custody audit`,
//! tests). The server keeps the same state in its store.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::engine::{
    findings_at, held_birth, observe, Attesting, Birth, FindingsDelta, FindingsHistory,
    FindingsState, HeldRow, Pending,
};
use super::Finding;
use crate::{AssetRef, Digest, Effects, Event, HoldRecord, Modality, Refusal, Registry};
use crate::{SubjectClass, Timestamp};

/// A custody interval a retention rule may apply to, open or closed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Held {
    party: String,
    from: Timestamp,
    to: Option<Timestamp>,
    closed_by: Option<u64>,
    born: Birth,
}

/// `MemoryFindings` is the findings' derived state in maps.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct MemoryFindings {
    /// Findings about single events, in log order.
    raised: Vec<Finding>,
    /// Every custody interval, open or closed, by (opening entry, asset,
    /// system).
    held: BTreeMap<(u64, Digest, String), Held>,
    /// The opening entry of each open interval, by (asset, system).
    open: HashMap<(Digest, String), u64>,
    born: HashMap<Digest, Birth>,
    classes: HashMap<Digest, (Modality, SubjectClass, u64)>,
    transfers: BTreeMap<u64, Pending>,
    attesting: BTreeMap<String, Attesting>,
    seqs: HashMap<String, u64>,
    /// The members of each legal hold that names a manifest, by hold id.
    hold_members: HashMap<String, HashSet<Digest>>,
}

impl MemoryFindings {
    /// `apply` records an event's delta, with the event's effects.
    pub fn apply(&mut self, d: &FindingsDelta, fx: &Effects) {
        self.raised.extend(d.raised.iter().cloned());
        if let Some((r, s)) = &d.seq {
            self.seqs.insert(r.clone(), *s);
        }
        for (a, b, _) in &d.births {
            self.born.insert(*a, b.clone());
        }
        for (a, c) in &d.classes {
            self.classes.insert(*a, *c);
        }
        for i in &fx.closed {
            if let Some(opened_by) = self.open.remove(&(i.asset, i.system.clone())) {
                if let Some(h) = self.held.get_mut(&(opened_by, i.asset, i.system.clone())) {
                    h.to = i.to;
                    h.closed_by = i.closed_by;
                }
            }
        }
        for i in &fx.opened {
            let classes = match (i.modality, i.subject_class) {
                (Some(m), Some(s)) => vec![(m, s)],
                _ => Vec::new(),
            };
            // Maps cannot fail to read.
            let born = held_birth(self, &i.asset, i.opened_by, i.from, classes.clone())
                .unwrap_or((i.from, i.opened_by, classes));
            self.open.insert((i.asset, i.system.clone()), i.opened_by);
            self.held.insert(
                (i.opened_by, i.asset, i.system.clone()),
                Held {
                    party: i.party.clone(),
                    from: i.from,
                    to: None,
                    closed_by: None,
                    born,
                },
            );
        }
        for (s, a) in &d.attesting {
            self.attesting.entry(s.clone()).or_insert_with(|| a.clone());
        }
        if let Some((s, t, i)) = &d.attestation {
            if let Some(a) = self.attesting.get_mut(s) {
                a.attestations.push((*t, *i));
            }
        }
        if let Some((i, p)) = &d.pending {
            self.transfers.insert(*i, p.clone());
        }
        if let Some((of, _, t, i)) = d.receipt {
            if let Some(p) = self.transfers.get_mut(&of) {
                p.receipt = Some((t, i));
            }
        }
        if let Some(h) = &d.hold {
            self.hold_members
                .insert(h.clone(), fx.held_assets.iter().copied().collect());
        }
    }
}

impl FindingsState for MemoryFindings {
    fn last_seq(&self, reporter: &str) -> Result<u64, Refusal> {
        Ok(self.seqs.get(reporter).copied().unwrap_or(0))
    }
    fn birth(&self, asset: &Digest) -> Result<Option<Birth>, Refusal> {
        Ok(self.born.get(asset).cloned())
    }
    fn class(&self, asset: &Digest) -> Result<Option<(Modality, SubjectClass, u64)>, Refusal> {
        Ok(self.classes.get(asset).copied())
    }
    fn is_attesting(&self, system: &str) -> Result<bool, Refusal> {
        Ok(self.attesting.contains_key(system))
    }
    fn transfer_time(&self, index: u64) -> Result<Option<Timestamp>, Refusal> {
        Ok(self.transfers.get(&index).map(|p| p.at))
    }
}

impl FindingsHistory for MemoryFindings {
    fn raised(&self, size: u64, f: &mut dyn FnMut(Finding)) -> Result<(), Refusal> {
        for r in self
            .raised
            .iter()
            .take_while(|r| r.entries.first().is_some_and(|e| *e < size))
        {
            f(r.clone());
        }
        Ok(())
    }
    fn held(
        &self,
        size: u64,
        _as_of: Timestamp,
        _horizon: Timestamp,
        f: &mut dyn FnMut(HeldRow),
    ) -> Result<(), Refusal> {
        // A replay's state is in memory: every interval, for the caller to
        // check.
        for ((opened_by, asset, system), h) in self.held.range(..(size, [0; 32], String::new())) {
            f(HeldRow {
                opened_by: *opened_by,
                asset: *asset,
                system: system.clone(),
                party: h.party.clone(),
                from: h.from,
                to: h.to,
                closed_by: h.closed_by,
                born: h.born.clone(),
            });
        }
        Ok(())
    }
    fn transfer(&self, index: u64) -> Result<Option<Pending>, Refusal> {
        Ok(self.transfers.get(&index).cloned())
    }
    fn overdue_transfers(
        &self,
        size: u64,
        _as_of: Timestamp,
        _window: i64,
        f: &mut dyn FnMut(u64, Pending),
    ) -> Result<(), Refusal> {
        // A replay's state is in memory: every transfer, for the caller
        // to check.
        for (i, p) in self.transfers.range(..size) {
            f(*i, p.clone());
        }
        Ok(())
    }
    fn attesting(&self, f: &mut dyn FnMut(String, Attesting)) -> Result<(), Refusal> {
        for (s, a) in &self.attesting {
            f(s.clone(), a.clone());
        }
        Ok(())
    }
    fn hold_names(&self, hold: &HoldRecord, asset: &Digest) -> Result<bool, Refusal> {
        Ok(match &hold.hold.assets {
            Some(AssetRef::Manifest(_)) => self
                .hold_members
                .get(&hold.hold.hold_id)
                .is_some_and(|m| m.contains(asset)),
            Some(AssetRef::One(d)) => d == asset,
            None => true,
        })
    }
}

/// `FindingsEngine` is the findings rules over state in memory: what a
/// replay of the log keeps.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FindingsEngine {
    state: MemoryFindings,
}

impl FindingsEngine {
    /// `new` is an engine with nothing observed. The policy each entry is
    /// judged by comes from the registry (`POLICY_PUBLISHED` entries).
    pub fn new() -> Self {
        Self::default()
    }

    /// `observe` records the event accepted at `index`, integrated at
    /// `integrated`, with `registry` as it stood before the event and the
    /// event's effects (see [`observe`]).
    pub fn observe(
        &mut self,
        index: u64,
        event: &Event,
        integrated: Timestamp,
        registry: &Registry,
        fx: &Effects,
    ) {
        // State in memory is never unreadable.
        if let Ok(d) = observe(&self.state, index, event, integrated, registry, fx) {
            self.state.apply(&d, fx);
        }
    }

    /// `findings` is every finding as of `as_of` over every entry observed
    /// (see [`findings_at`]).
    pub fn findings(&self, as_of: Timestamp, registry: &Registry) -> Vec<Finding> {
        self.findings_at(u64::MAX, as_of, registry)
    }

    /// `findings_at` is every finding as of `as_of` that the log's first
    /// `size` entries support (see [`findings_at`]).
    pub fn findings_at(&self, size: u64, as_of: Timestamp, registry: &Registry) -> Vec<Finding> {
        // State in memory is never unreadable.
        findings_at(&self.state, registry, size, as_of).unwrap_or_default()
    }
}
