//! Replaying the log: the registry, custody state and findings rebuilt
//! from entries alone, in memory.
//!
//! The server's findings stage and `custody audit` both replay with
//! [`Replay`]; signatures are the caller's to check (the server checked
//! them before logging; the auditor checks them as it reads).

use std::collections::HashMap;
use std::sync::Arc;

use crate::findings::{Finding, FindingsEngine};
use crate::{
    admit, admit_to_registry, Admission, AssetMeta, CustodyView, Digest, Effects, Event, Genesis,
    Interval, KeyId, ManifestRef, Refusal, Registry, Timestamp, Transfer,
};

/// `ManifestSource` supplies a manifest's members, sorted.
pub trait ManifestSource {
    /// `members` is the manifest's members, or `None` if unknown.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when the source fails.
    fn members(&self, m: &ManifestRef) -> Result<Option<Arc<Vec<Digest>>>, Refusal>;
}

/// `MemoryCustody` is custody state in memory: open intervals, assets and
/// transfers.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct MemoryCustody {
    open: HashMap<(Digest, String), Interval>,
    assets: HashMap<Digest, AssetMeta>,
    transfers: HashMap<u64, Transfer>,
}

impl MemoryCustody {
    /// `apply` records an accepted event's effects.
    pub fn apply(&mut self, fx: &Effects) {
        for i in &fx.closed {
            self.open.remove(&(i.asset, i.system.clone()));
        }
        for i in &fx.opened {
            self.open.insert((i.asset, i.system.clone()), i.clone());
        }
        for (d, m) in &fx.created {
            self.assets.insert(*d, *m);
        }
        if let Some((i, t)) = &fx.transfer {
            self.transfers.insert(*i, t.clone());
        }
    }

    /// `open_intervals` is every interval open now.
    pub fn open_intervals(&self) -> impl Iterator<Item = &Interval> {
        self.open.values()
    }
}

struct View<'a> {
    custody: &'a MemoryCustody,
    manifests: &'a dyn ManifestSource,
}

impl CustodyView for View<'_> {
    fn open_interval(&self, asset: &Digest, system: &str) -> Result<Option<Interval>, Refusal> {
        Ok(self.custody.open.get(&(*asset, system.to_owned())).cloned())
    }
    fn asset_meta(&self, asset: &Digest) -> Result<Option<AssetMeta>, Refusal> {
        Ok(self.custody.assets.get(asset).copied())
    }
    fn transfer(&self, index: u64) -> Result<Option<Transfer>, Refusal> {
        Ok(self.custody.transfers.get(&index).cloned())
    }
    fn manifest(&self, m: &ManifestRef) -> Result<Option<Arc<Vec<Digest>>>, Refusal> {
        self.manifests.members(m)
    }
}

/// `Replay` is the log's derived state after the entries applied so far.
/// It (de)serialises with serde, so an auditor can save it and resume.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Replay {
    /// The registry.
    pub registry: Registry,
    /// Custody state.
    pub custody: MemoryCustody,
    /// Findings.
    pub findings: FindingsEngine,
    /// Entries applied (the next index expected).
    pub size: u64,
}

impl Replay {
    /// `new` starts a replay after the genesis entry (index 0).
    ///
    /// # Errors
    ///
    /// If the genesis entry is malformed.
    pub fn new(genesis: &Genesis) -> Result<Self, Refusal> {
        Ok(Self {
            registry: Registry::new(genesis)?,
            custody: MemoryCustody::default(),
            findings: FindingsEngine::new(),
            size: 1,
        })
    }

    /// `apply` replays the event logged at `index` (which must be the next
    /// one), signed by the keys `signers` and integrated at `integrated`,
    /// through [`admit`], the rule the sequencer applied before logging
    /// it. It returns the [`Admission`]: the keys the caller must verify the
    /// signatures with, and the event's [`Effects`] for a caller that keeps
    /// more state than the replay (an auditor keeps every custody interval,
    /// closed ones too).
    ///
    /// # Errors
    ///
    /// The [`Refusal`] the log should have given: a log that holds such an
    /// entry was not built by these rules.
    pub fn apply(
        &mut self,
        index: u64,
        event: &Event,
        signers: &[KeyId],
        integrated: Timestamp,
        manifests: &dyn ManifestSource,
    ) -> Result<Admission, Refusal> {
        self.expect(index)?;
        let admission = admit(
            &self.registry,
            &View {
                custody: &self.custody,
                manifests,
            },
            signers,
            event,
            index,
            integrated,
        )?;
        let fx = &admission.effects;
        self.findings
            .observe(index, event, integrated, &self.registry, fx);
        self.custody.apply(fx);
        self.registry.apply(event, index);
        self.size = index + 1;
        Ok(admission)
    }

    /// `apply_registry_only` replays the entry at `index` into the registry
    /// alone, for an auditor whose custody replay had to stop (a manifest it
    /// could not fetch): signers and the registry's rules are still checked,
    /// so later signatures are checked against the right keys. Custody
    /// state and findings no longer advance, and neither does
    /// [`Replay::size`]: it stays where the custody replay stopped.
    ///
    /// # Errors
    ///
    /// As [`Replay::apply`], for the checks it makes.
    pub fn apply_registry_only(
        &mut self,
        index: u64,
        event: &Event,
        signers: &[KeyId],
        integrated: Timestamp,
    ) -> Result<Vec<ed25519_dalek::VerifyingKey>, Refusal> {
        admit_to_registry(&mut self.registry, signers, event, index, integrated)
    }

    fn expect(&self, index: u64) -> Result<(), Refusal> {
        if index != self.size {
            return Err(Refusal::precondition(format!(
                "replay expected entry {}, got {index}",
                self.size
            )));
        }
        Ok(())
    }

    /// `findings` is every finding as of `as_of` (see
    /// [`FindingsEngine::findings`]).
    pub fn findings(&self, as_of: Timestamp) -> Vec<Finding> {
        self.findings.findings(as_of, &self.registry)
    }

    /// `findings_at` is every finding as of `as_of` that the first `size`
    /// entries support: what a replay of those entries alone gives (see
    /// [`FindingsEngine::findings_at`]).
    pub fn findings_at(&self, size: u64, as_of: Timestamp) -> Vec<Finding> {
        self.findings.findings_at(size, as_of, &self.registry)
    }
}

/// `manifest_of` is the manifest an event names, if any, so a replayer can
/// fetch it before applying the event.
pub fn manifest_of(event: &Event) -> Option<ManifestRef> {
    event.body.manifest()
}
