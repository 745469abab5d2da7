//! The citation closure of evidence: what an answer cites, and
//! everything needed to check it offline, proven against one checkpoint.
//!
//! An answer cites entries (and, for a bulk event, an asset's membership
//! of its manifest) and systems. [`EvidenceBuilder::build`] adds the
//! registry entries behind every signature and every cited system's
//! registration, then the KEY_ADDED entries of the keys that signed
//! those, until none is missing, and proves each against the pinned
//! checkpoint. Every answer over every transport cites through it.

use std::collections::{BTreeMap, BTreeSet};

use custody_domain::findings::{Finding, Rule};
use custody_domain::{
    AssetRef, CustodyActionKind, Digest, EventBody, Interval, ManifestRef, Registry,
};
use custody_log::{prove_inclusion, Hash, HashSource};
use custody_proto::v1;
use custody_proto::{decode_entry, decode_event, Entry};
use custody_store::index;
use custody_store::{LogStore, StoreError};

use super::{AnswerError, Pinned};
use crate::state::LogState;

/// `ManifestHashes` is a stored manifest's tree, for the log core's proofs.
struct ManifestHashes<'a> {
    store: &'a dyn LogStore,
    root: Digest,
}

impl HashSource for ManifestHashes<'_> {
    type Error = StoreError;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        Ok(index::manifest_hashes(self.store, &self.root, indexes)?
            .into_iter()
            .map(Hash)
            .collect())
    }
}

/// `membership` proves that `asset` is in manifest `m`, or says it is not.
pub fn membership(
    store: &dyn LogStore,
    m: &ManifestRef,
    asset: &Digest,
) -> Result<Option<v1::MembershipProof>, AnswerError> {
    // Members are stored sorted by ordinal: binary search them.
    let (mut lo, mut hi) = (0u64, m.count);
    let mut found = None;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let d = index::manifest_member(store, &m.root, mid)
            .map_err(|e| AnswerError::internal("read manifest", e))?
            .ok_or_else(|| AnswerError::internal("read manifest", "member missing"))?;
        match d.cmp(asset) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => {
                found = Some(mid);
                break;
            }
        }
    }
    let Some(ordinal) = found else {
        return Ok(None);
    };
    let proof = prove_inclusion(
        m.count,
        ordinal,
        &ManifestHashes {
            store,
            root: m.root,
        },
    )
    .map_err(|e| AnswerError::internal("manifest proof", e))?;
    Ok(Some(v1::MembershipProof {
        manifest_root: m.root.to_vec(),
        count: m.count,
        asset: asset.to_vec(),
        index: ordinal,
        proof: proof.into_iter().map(|h| h.0.to_vec()).collect(),
    }))
}

/// `Cited` is a cited entry: its bytes, the asset or manifest it names,
/// the keys that signed it, whether it creates its asset (CAPTURE, DERIVE)
/// and, for a RECEIPT, the transfer it acknowledges.
struct Cited {
    bytes: Vec<u8>,
    asset: Option<AssetRef>,
    keys: Vec<custody_domain::KeyId>,
    creates: bool,
    receipt_of: Option<u64>,
}

/// `EvidenceBuilder` collects what an answer cites, then proves it all
/// against one checkpoint.
pub struct EvidenceBuilder<'a> {
    state: &'a LogState,
    store: &'a dyn LogStore,
    cp: &'a Pinned,
    registry: &'a Registry,
    /// Cited entries, decoded once.
    entries: BTreeMap<u64, Cited>,
    /// (asset, manifest) pairs needing a membership proof.
    members: BTreeSet<(Digest, [u8; 32], u64)>,
    /// Systems whose registration (and so owner) the answer relies on.
    systems: BTreeSet<String>,
}

impl<'a> EvidenceBuilder<'a> {
    pub fn new(state: &'a LogState, cp: &'a Pinned, registry: &'a Registry) -> Self {
        Self {
            state,
            store: state.store.as_ref(),
            cp,
            registry,
            entries: BTreeMap::new(),
            members: BTreeSet::new(),
            systems: BTreeSet::new(),
        }
    }

    /// `cite` adds entry `index`, and the membership of `asset` if the entry
    /// is a bulk event.
    pub fn cite(&mut self, index: u64, asset: Option<&Digest>) -> Result<(), AnswerError> {
        if index >= self.cp.size {
            return Ok(());
        }
        if !self.entries.contains_key(&index) {
            let bytes = self
                .store
                .read_entries(index, index + 1)
                .map_err(|e| AnswerError::internal("read entry", e))?
                .pop()
                .unwrap_or_default();
            let (asset_ref, keys, creates, receipt_of) = match decode_entry(&bytes) {
                Ok(Entry::Event { envelope, .. }) => {
                    let keys = envelope.signatures.iter().map(|s| s.key_id).collect();
                    match decode_event(&envelope.body).map(|e| e.body) {
                        Ok(EventBody::Custody(c)) => (
                            c.asset,
                            keys,
                            matches!(
                                c.action,
                                CustodyActionKind::Capture | CustodyActionKind::Derive
                            ),
                            c.receipt_of
                                .filter(|_| c.action == CustodyActionKind::Receipt),
                        ),
                        _ => (None, keys, false, None),
                    }
                }
                _ => (None, Vec::new(), false, None),
            };
            self.entries.insert(
                index,
                Cited {
                    bytes,
                    asset: asset_ref,
                    keys,
                    creates,
                    receipt_of,
                },
            );
        }
        if let (
            Some(asset),
            Some(Cited {
                asset: Some(AssetRef::Manifest(m)),
                ..
            }),
        ) = (asset, self.entries.get(&index))
        {
            self.members.insert((*asset, m.root, m.count));
        }
        Ok(())
    }

    /// `cite_history` adds entry `index` of `asset`'s history and, for a
    /// RECEIPT, the transfer it acknowledges, which shows what it is about.
    pub fn cite_history(&mut self, index: u64, asset: &Digest) -> Result<(), AnswerError> {
        self.cite(index, Some(asset))?;
        if let Some(of) = self.entries.get(&index).and_then(|c| c.receipt_of) {
            if of < index {
                self.cite(of, Some(asset))?;
            }
        }
        Ok(())
    }

    /// `cite_class` adds, for an interval whose class the log knows but
    /// whose opening entry does not create the asset (a COPY or MOVE), the
    /// entry that created it, which states the class. Call it after
    /// [`Self::cite_interval`].
    pub fn cite_class(&mut self, i: &Interval) -> Result<(), AnswerError> {
        if i.modality.is_none() || self.entries.get(&i.opened_by).is_none_or(|c| c.creates) {
            return Ok(());
        }
        let meta = index::asset_meta(self.store, &i.asset)
            .map_err(|e| AnswerError::internal("read asset", e))?;
        if let Some(m) = meta.filter(|m| m.created_by < i.opened_by) {
            self.cite(m.created_by, Some(&i.asset))?;
        }
        Ok(())
    }

    /// `cite_system` adds the registration of `system`, which names its
    /// owner.
    pub fn cite_system(&mut self, system: &str) {
        if !self.systems.contains(system) {
            self.systems.insert(system.to_owned());
        }
    }

    /// `cited` is how many entries are cited so far.
    pub fn cited(&self) -> usize {
        self.entries.len()
    }

    pub fn cite_interval(&mut self, i: &Interval) -> Result<(), AnswerError> {
        if !self.systems.contains(&i.system) {
            self.systems.insert(i.system.clone());
        }
        self.cite(i.opened_by, Some(&i.asset))?;
        if let Some(c) = i.closed_by {
            self.cite(c, Some(&i.asset))?;
        }
        Ok(())
    }

    fn proven(&self, index: u64, entry: Vec<u8>) -> Result<v1::ProvenEntry, AnswerError> {
        let proof = prove_inclusion(self.cp.size, index, &self.state.hashes())
            .map_err(|e| AnswerError::internal("inclusion proof", e))?;
        Ok(v1::ProvenEntry {
            index,
            entry,
            proof: proof.into_iter().map(|h| h.0.to_vec()).collect(),
        })
    }

    pub fn build(self) -> Result<v1::Evidence, AnswerError> {
        // The registry entries behind every signature: genesis (the owner's
        // key) and the KEY_ADDED of each signing key; and the registration
        // of each system cited, which names its owner (the holder).
        let mut registry: BTreeSet<u64> = BTreeSet::from([0]);
        for s in &self.systems {
            if let Some(r) = self.registry.system(s) {
                registry.insert(r.registered_at);
            }
        }
        for c in self.entries.values() {
            for k in &c.keys {
                if let Some(r) = self.registry.key(k) {
                    registry.insert(r.added_at);
                }
            }
        }
        let mut out = v1::Evidence {
            checkpoint: self.cp.note.clone(),
            tree_size: self.cp.size,
            ..Default::default()
        };
        // Registry entries are signed too (by the data owner's keys): add
        // the KEY_ADDED entry of each of their keys, until none is missing.
        let mut todo: Vec<u64> = registry.iter().copied().collect();
        let mut read: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        while let Some(i) = todo.pop() {
            if i >= self.cp.size || read.contains_key(&i) {
                continue;
            }
            let e = self
                .store
                .read_entries(i, i + 1)
                .map_err(|e| AnswerError::internal("read registry entry", e))?
                .pop()
                .unwrap_or_default();
            if let Ok(Entry::Event { envelope, .. }) = decode_entry(&e) {
                for s in &envelope.signatures {
                    if let Some(r) = self.registry.key(&s.key_id) {
                        if registry.insert(r.added_at) {
                            todo.push(r.added_at);
                        }
                    }
                }
            }
            read.insert(i, e);
        }
        for (i, e) in read {
            out.registry.push(self.proven(i, e)?);
        }
        for (i, c) in &self.entries {
            out.entries.push(self.proven(*i, c.bytes.clone())?);
        }
        for (asset, root, count) in &self.members {
            let m = ManifestRef {
                root: *root,
                count: *count,
            };
            if let Some(p) = membership(self.store, &m, asset)? {
                out.memberships.push(p);
            }
        }
        Ok(out)
    }
}

impl EvidenceBuilder<'_> {
    /// `cite_finding` cites every entry a finding rests on (with the
    /// membership of its asset where a cited bulk event names it) and,
    /// for the rules whose party is a system's owner (the holder, or the
    /// recipient a grant must cover), that system's registration.
    pub fn cite_finding(&mut self, f: &Finding) -> Result<(), AnswerError> {
        for e in &f.entries {
            self.cite(*e, f.asset.as_ref())?;
        }
        if matches!(
            f.rule,
            Rule::RetentionOverdue | Rule::MissingAttestation | Rule::UnauthorizedTransfer
        ) {
            if let Some(s) = &f.system {
                self.cite_system(s);
            }
        }
        Ok(())
    }

    /// `cite_intervals` cites every interval, with the entry that states
    /// its class where its opening entry does not.
    pub fn cite_intervals(&mut self, intervals: &[Interval]) -> Result<(), AnswerError> {
        for i in intervals {
            self.cite_interval(i)?;
            self.cite_class(i)?;
        }
        Ok(())
    }
}
