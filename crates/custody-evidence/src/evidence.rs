//! Offline verification of the `Evidence` that comes with every custody
//! answer: the checkpoint's signature, each event's signatures against
//! keys the log itself registered (rooted in the genesis entry), each
//! entry's inclusion proof, and each manifest membership proof. Then the
//! answer's rows are checked against the verified entries.
//!
//! What evidence cannot show: that nothing was left out (an interval the
//! server omitted), or that a key was not revoked later than the entries
//! it signed. A full replay (`custody monitor`, and later `custody audit`)
//! covers those.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use custody_domain::{
    hex, key_id_of, AssetRef, CustodyAction, CustodyActionKind, Digest, Event, EventBody, KeyId,
    ManifestRef, Modality, SignedEnvelope, SubjectClass,
};
use custody_log::{leaf_hash, verify_inclusion, Hash, LogVerifier, VerifiedCheckpoint};
use custody_proto::{decode_entry, decode_event, v1, Entry};

use crate::rows::{AssetClass, HistoryEvent, IntervalRow};
use crate::EvidenceError;

/// `VerifiedEvidence` is evidence whose every proof and signature checked
/// out.
#[derive(Debug)]
pub struct VerifiedEvidence {
    /// The checkpoint everything was proven against.
    pub checkpoint: VerifiedCheckpoint,
    /// Cited events by log index, with their integration time.
    pub events: BTreeMap<u64, (Event, i64)>,
    /// Verified manifest memberships.
    memberships: HashSet<(ManifestRef, Digest)>,
    /// System owners from verified SYSTEM_REGISTERED entries, with the
    /// registry index of each registration.
    systems: HashMap<String, (String, u64)>,
    /// Registry indexes of the KEY_ADDED entries (and the genesis entry)
    /// whose keys signed some verified entry.
    signers: BTreeSet<u64>,
    /// Log indexes of the verified registry entries.
    registry: BTreeSet<u64>,
}

/// `Used` records which parts of some evidence the answer's checks relied
/// on, so a bundle can be required to hold nothing else.
#[derive(Debug, Default)]
pub(crate) struct Used {
    /// Cited entries relied on.
    pub entries: BTreeSet<u64>,
    /// Registry entries relied on (system registrations).
    pub registry: BTreeSet<u64>,
    /// Memberships relied on.
    pub memberships: HashSet<(ManifestRef, Digest)>,
}

/// `Creations` lists, for each asset, the verified CAPTURE and DERIVE
/// entries that name it: (log index, manifest it was named through, class).
pub(crate) type Creations =
    HashMap<Digest, Vec<(u64, Option<ManifestRef>, Modality, SubjectClass)>>;

fn proof_hashes(p: &[Vec<u8>]) -> Result<Vec<Hash>, String> {
    p.iter()
        .map(|h| {
            <[u8; 32]>::try_from(h.as_slice())
                .map(Hash)
                .map_err(|_| format!("a proof hash is {} bytes, not 32", h.len()))
        })
        .collect()
}

/// `Key` is a signing key the verified registry entries establish.
struct Key {
    party: String,
    key: ed25519_dalek::VerifyingKey,
    valid_from: i64,
    valid_to: Option<i64>,
    added_at: u64,
}

/// `check_signatures` checks every signature on the entry at `index`
/// against the keys established so far, and records the registry entries
/// whose keys it relied on.
fn check_signatures(
    index: u64,
    envelope: &SignedEnvelope,
    event: &Event,
    integrated_time: i64,
    keys: &HashMap<KeyId, Key>,
    signers: &mut BTreeSet<u64>,
) -> Result<(), String> {
    if envelope.signatures.is_empty() {
        return Err("carries no signature".into());
    }
    let msg = envelope.signing_bytes();
    for s in &envelope.signatures {
        let k = keys.get(&s.key_id).ok_or_else(|| {
            format!(
                "the signature by key {} does not verify: no registry entry in the evidence adds that key",
                s.key_id
            )
        })?;
        if k.added_at >= index {
            return Err(format!(
                "the signature by key {} does not count: the key was only added at entry {}",
                s.key_id, k.added_at
            ));
        }
        if k.party != event.reporter {
            return Err(format!(
                "the signature by key {} does not count: the event is reported by {} but the key is {}'s",
                s.key_id, event.reporter, k.party
            ));
        }
        // The log checks validity when it integrates an entry.
        let t = integrated_time;
        if t < k.valid_from || k.valid_to.is_some_and(|to| t >= to) {
            return Err(format!(
                "the signature by key {} does not count: the entry was logged outside the key's validity window",
                s.key_id
            ));
        }
        let sig = ed25519_dalek::Signature::from_bytes(&s.sig);
        k.key
            .verify_strict(&msg, &sig)
            .map_err(|_| format!("the signature by key {} does not verify", s.key_id))?;
        signers.insert(k.added_at);
    }
    Ok(())
}

/// `verify_checkpoint` checks a checkpoint note against the pinned key.
///
/// # Errors
///
/// [`EvidenceError::Checkpoint`] saying why it does not verify.
pub fn verify_checkpoint(
    note: &[u8],
    verifier: &LogVerifier,
) -> Result<VerifiedCheckpoint, EvidenceError> {
    verifier
        .verify(note)
        .map_err(|e| EvidenceError::Checkpoint(e.to_string()))
}

/// `verify` checks `ev` against the pinned log verifier.
///
/// # Errors
///
/// Says which check failed: the checkpoint signature, an entry's
/// signatures or inclusion proof (naming the entry), a registry entry, or
/// a membership.
pub fn verify(
    ev: &v1::Evidence,
    verifier: &LogVerifier,
) -> Result<VerifiedEvidence, EvidenceError> {
    let cp = verify_checkpoint(&ev.checkpoint, verifier)?;
    if cp.size != ev.tree_size {
        return Err(EvidenceError::Evidence(format!(
            "it claims tree size {} but its checkpoint is of size {}",
            ev.tree_size, cp.size
        )));
    }
    let mut registry: Vec<&v1::ProvenEntry> = ev.registry.iter().collect();
    registry.sort_by_key(|p| p.index);
    verify_parts(cp, &registry, &ev.entries, &ev.memberships)
}

/// `verify_parts` checks registry entries (genesis first), cited entries
/// and memberships against a verified checkpoint.
pub(crate) fn verify_parts(
    cp: VerifiedCheckpoint,
    registry: &[&v1::ProvenEntry],
    entries: &[v1::ProvenEntry],
    memberships: &[v1::MembershipProof],
) -> Result<VerifiedEvidence, EvidenceError> {
    let prove = |p: &v1::ProvenEntry| -> Result<(), String> {
        verify_inclusion(
            &proof_hashes(&p.proof)?,
            cp.size,
            &cp.root,
            p.index,
            &leaf_hash(&p.entry),
        )
        .map_err(|_| {
            format!(
                "the inclusion proof does not verify against the checkpoint of size {}",
                cp.size
            )
        })
    };

    // The registry: genesis first, then the owner-signed entries.
    let mut keys: HashMap<KeyId, Key> = HashMap::new();
    let mut systems: HashMap<String, (String, u64)> = HashMap::new();
    let mut signers = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let Some(first) = registry.first().filter(|p| p.index == 0) else {
        return Err(EvidenceError::Evidence(
            "it lacks the genesis entry (index 0) that roots the registry".into(),
        ));
    };
    let genesis = match decode_entry(&first.entry) {
        Ok(Entry::Genesis(g)) => g,
        _ => return Err(EvidenceError::registry(0, "not a genesis entry")),
    };
    prove(first).map_err(|m| EvidenceError::registry(0, m))?;
    if genesis.origin != cp.origin {
        return Err(EvidenceError::registry(
            0,
            format!(
                "the genesis entry names origin {:?}, not the checkpoint's {:?}",
                genesis.origin, cp.origin
            ),
        ));
    }
    let owner_key = ed25519_dalek::VerifyingKey::from_bytes(&genesis.owner_public_key)
        .map_err(|_| EvidenceError::registry(0, "the owner key is not an Ed25519 key"))?;
    keys.insert(
        key_id_of(&genesis.owner_public_key),
        Key {
            party: genesis.owner_party_id.clone(),
            key: owner_key,
            valid_from: i64::MIN,
            valid_to: None,
            added_at: 0,
        },
    );
    seen.insert(0);
    signers.insert(0);
    for p in &registry[1..] {
        let index = p.index;
        let err = |m: String| EvidenceError::registry(index, m);
        if !seen.insert(index) {
            return Err(err("appears twice".into()));
        }
        let Ok(Entry::Event {
            envelope,
            integrated_time,
        }) = decode_entry(&p.entry)
        else {
            return Err(err("not a signed event".into()));
        };
        let event = decode_event(&envelope.body).map_err(|e| err(e.message))?;
        if !event.body.is_registry() {
            return Err(err(format!(
                "a {} event is not a registry event",
                event.body.code()
            )));
        }
        if event.reporter != genesis.owner_party_id {
            return Err(err(format!(
                "reported by {}, not the data owner {}",
                event.reporter, genesis.owner_party_id
            )));
        }
        check_signatures(
            index,
            &envelope,
            &event,
            integrated_time,
            &keys,
            &mut signers,
        )
        .map_err(err)?;
        prove(p).map_err(err)?;
        match event.body {
            EventBody::KeyAdded(k) => {
                let key = ed25519_dalek::VerifyingKey::from_bytes(&k.public_key)
                    .map_err(|_| err("adds an invalid key".into()))?;
                keys.insert(
                    key_id_of(&k.public_key),
                    Key {
                        party: k.party_id,
                        key,
                        valid_from: k.valid_from,
                        valid_to: k.valid_to,
                        added_at: index,
                    },
                );
            }
            EventBody::SystemRegistered(s) => {
                if systems.contains_key(&s.system_id) {
                    return Err(err(format!("registers system {} again", s.system_id)));
                }
                systems.insert(s.system_id, (s.owner_party, index));
            }
            _ => {}
        }
    }

    let mut events = BTreeMap::new();
    for p in entries {
        let index = p.index;
        let err = |m: String| EvidenceError::entry(index, m);
        if events.contains_key(&index) {
            return Err(err("appears twice".into()));
        }
        let Ok(Entry::Event {
            envelope,
            integrated_time,
        }) = decode_entry(&p.entry)
        else {
            return Err(err("not a signed event".into()));
        };
        let event = decode_event(&envelope.body).map_err(|e| err(e.message))?;
        check_signatures(
            index,
            &envelope,
            &event,
            integrated_time,
            &keys,
            &mut signers,
        )
        .map_err(err)?;
        prove(p).map_err(err)?;
        events.insert(index, (event, integrated_time));
    }

    // A membership counts only for a manifest that a verified entry names.
    let named: HashSet<ManifestRef> = events
        .values()
        .filter_map(|(e, _)| match &e.body {
            EventBody::Custody(CustodyAction {
                asset: Some(AssetRef::Manifest(m)),
                ..
            }) => Some(*m),
            _ => None,
        })
        .collect();
    let mut verified = HashSet::new();
    for m in memberships {
        let root: Digest = m.manifest_root.as_slice().try_into().map_err(|_| {
            EvidenceError::Evidence("a membership proof's manifest root is not 32 bytes".into())
        })?;
        let asset: Digest = m.asset.as_slice().try_into().map_err(|_| {
            EvidenceError::Evidence("a membership proof's asset is not 32 bytes".into())
        })?;
        let err = |msg: String| EvidenceError::Membership {
            asset: hex(&asset),
            manifest: hex(&root),
            msg,
        };
        verify_inclusion(
            &proof_hashes(&m.proof).map_err(err)?,
            m.count,
            &Hash(root),
            m.index,
            &leaf_hash(&asset),
        )
        .map_err(|_| {
            err(format!(
                "the proof of member {} of {} does not verify against the manifest root",
                m.index, m.count
            ))
        })?;
        let key = (
            ManifestRef {
                root,
                count: m.count,
            },
            asset,
        );
        if !named.contains(&key.0) {
            return Err(err(format!(
                "no entry of the evidence names a manifest with that root and {} members",
                m.count
            )));
        }
        if !verified.insert(key) {
            return Err(err("appears twice".into()));
        }
    }
    Ok(VerifiedEvidence {
        checkpoint: cp,
        events,
        memberships: verified,
        systems,
        signers,
        registry: seen,
    })
}

/// `row_name` names an answer row in messages.
fn row_name(label: &str, i: &IntervalRow) -> String {
    format!(
        "{label} (interval of asset {} on {} opened by entry {})",
        hex(&i.asset),
        i.system,
        i.opened_by
    )
}

impl VerifiedEvidence {
    /// `signer_entries` is the registry entries whose keys signed some
    /// verified entry, genesis included.
    pub(crate) fn signer_entries(&self) -> &BTreeSet<u64> {
        &self.signers
    }

    /// `registry_entries` is the verified registry entries' log indexes.
    pub(crate) fn registry_entries(&self) -> &BTreeSet<u64> {
        &self.registry
    }

    /// `memberships` is the verified memberships.
    pub(crate) fn memberships(&self) -> &HashSet<(ManifestRef, Digest)> {
        &self.memberships
    }

    /// `system_owner` is the owner that a verified registry entry of the
    /// evidence registers `system` to, with that entry's index.
    pub(crate) fn system_owner(&self, system: &str) -> Option<(&str, u64)> {
        self.systems.get(system).map(|(o, i)| (o.as_str(), *i))
    }

    /// `names_asset` is whether an event's asset reference is `asset`,
    /// directly or through a verified manifest membership.
    pub(crate) fn names_asset(&self, a: &AssetRef, asset: &Digest, used: &mut Used) -> bool {
        match a {
            AssetRef::One(d) => d == asset,
            AssetRef::Manifest(m) => {
                let ok = self.memberships.contains(&(*m, *asset));
                if ok {
                    used.memberships.insert((*m, *asset));
                }
                ok
            }
        }
    }

    /// `custody` is the verified custody event at `index`.
    fn custody(&self, index: u64, row: &str) -> Result<(&Event, &CustodyAction), EvidenceError> {
        match self.events.get(&index) {
            Some((e, _)) => match &e.body {
                EventBody::Custody(c) => Ok((e, c)),
                _ => Err(EvidenceError::answer(format!(
                    "{row}: entry {index} is not a custody event"
                ))),
            },
            None => Err(EvidenceError::answer(format!(
                "{row}: entry {index} is not in the evidence"
            ))),
        }
    }

    /// `creations` indexes the verified CAPTURE and DERIVE entries by the
    /// assets they name (through verified memberships for bulk ones).
    pub(crate) fn creations(&self) -> Creations {
        let mut by_manifest: HashMap<ManifestRef, Vec<Digest>> = HashMap::new();
        for (m, d) in &self.memberships {
            by_manifest.entry(*m).or_default().push(*d);
        }
        let mut out: Creations = HashMap::new();
        for (index, (e, _)) in &self.events {
            let EventBody::Custody(c) = &e.body else {
                continue;
            };
            let creates = matches!(
                c.action,
                CustodyActionKind::Capture | CustodyActionKind::Derive
            );
            let (Some(m), Some(s), true) = (c.modality, c.subject_class, creates) else {
                continue;
            };
            match c.asset {
                Some(AssetRef::One(d)) => out.entry(d).or_default().push((*index, None, m, s)),
                Some(AssetRef::Manifest(mr)) => {
                    for d in by_manifest.get(&mr).into_iter().flatten() {
                        out.entry(*d).or_default().push((*index, Some(mr), m, s));
                    }
                }
                None => {}
            }
        }
        out
    }

    /// `check_row` checks one answer row against the verified events: the
    /// opening event put the asset on the system at `from`, the closing one
    /// (if any) took it off at `to`, the holder is the system's registered
    /// owner, and, given `creations`, the row's class is the one the
    /// bundle's entries establish.
    pub(crate) fn check_row(
        &self,
        label: &str,
        i: &IntervalRow,
        used: &mut Used,
        creations: Option<&Creations>,
    ) -> Result<(), EvidenceError> {
        use CustodyActionKind as K;
        let row = row_name(label, i);
        let bad = |m: String| EvidenceError::answer(format!("{row}: {m}"));
        let (e, c) = self.custody(i.opened_by, &row)?;
        used.entries.insert(i.opened_by);
        let opens = matches!(c.action, K::Capture | K::Copy | K::Move | K::Derive);
        if !opens || c.to_system != i.system || e.event_time != i.from {
            return Err(bad(format!(
                "entry {} does not put the asset on that system at {}",
                i.opened_by,
                custody_domain::rfc3339(i.from)
            )));
        }
        if !c
            .asset
            .is_some_and(|a| self.names_asset(&a, &i.asset, used))
        {
            return Err(bad(format!(
                "entry {} is not proven to name the asset",
                i.opened_by
            )));
        }
        match (i.to, i.closed_by) {
            (None, None) => {}
            (Some(to), Some(closed_by)) => {
                let (e2, c2) = self.custody(closed_by, &row)?;
                used.entries.insert(closed_by);
                let closes = matches!(c2.action, K::Delete | K::Move);
                if !closes || c2.from_system != i.system || e2.event_time != to {
                    return Err(bad(format!(
                        "entry {closed_by} does not take the asset off that system at {}",
                        custody_domain::rfc3339(to)
                    )));
                }
                if closed_by <= i.opened_by {
                    return Err(bad(format!(
                        "entry {closed_by} cannot close an interval opened later"
                    )));
                }
                if !c2
                    .asset
                    .is_some_and(|a| self.names_asset(&a, &i.asset, used))
                {
                    return Err(bad(format!(
                        "entry {closed_by} is not proven to name the asset"
                    )));
                }
            }
            _ => {
                return Err(bad(
                    "it names a closing time without a closing entry, or the reverse".into(),
                ))
            }
        }
        match self.systems.get(&i.system) {
            Some((owner, at)) if *owner == i.party => {
                used.registry.insert(*at);
            }
            Some((owner, _)) => {
                return Err(bad(format!(
                    "the system is registered to {owner}, not {}",
                    i.party
                )))
            }
            None => return Err(bad("the evidence lacks the system's registration".into())),
        }
        if let Some(creations) = creations {
            let proven = if matches!(c.action, K::Capture | K::Derive) {
                (c.modality, c.subject_class)
            } else {
                self.prior_class(&i.asset, i.opened_by, creations, used)
                    .map_err(bad)?
            };
            if proven != i.class() {
                return Err(bad(format!(
                    "it says the asset is {} but the entries prove {}",
                    class_text(i.class()),
                    class_text(proven)
                )));
            }
        }
        Ok(())
    }

    /// `prior_class` is the class the verified entries creating `asset`
    /// before entry `before` establish, if any do.
    fn prior_class(
        &self,
        asset: &Digest,
        before: u64,
        creations: &Creations,
        used: &mut Used,
    ) -> Result<AssetClass, String> {
        let mut class: AssetClass = (None, None);
        for (index, manifest, m, s) in creations.get(asset).into_iter().flatten() {
            if *index >= before {
                continue;
            }
            if class.0.is_some() && class != (Some(*m), Some(*s)) {
                return Err(format!(
                    "entries creating the asset disagree on its class ({} and {})",
                    class_text(class),
                    class_text((Some(*m), Some(*s)))
                ));
            }
            class = (Some(*m), Some(*s));
            used.entries.insert(*index);
            if let Some(mr) = manifest {
                used.memberships.insert((*mr, *asset));
            }
        }
        Ok(class)
    }

    /// `check_interval` checks one answer row against the verified events:
    /// the opening event put `asset` on `system` at `from`, the closing one
    /// (if any) took it off at `to`, and the holder is the system's
    /// registered owner. The row's modality and class are not checked: a
    /// query's evidence need not hold the entries that created the asset.
    ///
    /// # Errors
    ///
    /// [`EvidenceError::Answer`] naming the part of the row the evidence
    /// does not support.
    pub fn check_interval(&self, i: &v1::CustodyInterval) -> Result<(), EvidenceError> {
        let row = IntervalRow::from_proto(i)?;
        self.check_row("interval", &row, &mut Used::default(), None)
    }

    /// `about` is whether the verified event at `index` is about `asset`:
    /// it names it (directly, as a parent, or through a verified manifest
    /// membership), or it is a RECEIPT of a verified transfer that does.
    fn about(&self, index: u64, asset: &Digest, used: &mut Used) -> bool {
        let Some((e, _)) = self.events.get(&index) else {
            return false;
        };
        let EventBody::Custody(c) = &e.body else {
            return false;
        };
        if c.asset.is_some_and(|a| self.names_asset(&a, asset, used))
            || c.parents.iter().any(|p| p.digest == *asset)
        {
            return true;
        }
        if c.action != CustodyActionKind::Receipt {
            return false;
        }
        let Some(of) = c.receipt_of.filter(|of| *of < index) else {
            return false;
        };
        let Some((t, _)) = self.events.get(&of) else {
            return false;
        };
        match &t.body {
            EventBody::Custody(tc)
                if matches!(tc.action, CustodyActionKind::Copy | CustodyActionKind::Move)
                    && tc.asset.is_some_and(|a| self.names_asset(&a, asset, used)) =>
            {
                used.entries.insert(of);
                true
            }
            _ => false,
        }
    }

    /// `check_event` checks one history row: the entry is verified, about
    /// `asset`, and the row states exactly what the entry says.
    pub(crate) fn check_event(
        &self,
        label: &str,
        asset: &Digest,
        row: &HistoryEvent,
        used: &mut Used,
    ) -> Result<(), EvidenceError> {
        let i = row.index;
        let Some((e, integrated_time)) = self.events.get(&i) else {
            return Err(EvidenceError::answer(format!(
                "{label}: entry {i} is not in the evidence"
            )));
        };
        used.entries.insert(i);
        let want = HistoryEvent {
            index: i,
            kind: e.body.code().to_owned(),
            event_time: e.event_time,
            integrated_time: *integrated_time,
            reporter: e.reporter.clone(),
            event_id: e.event_id.clone(),
        };
        if *row != want {
            return Err(EvidenceError::answer(format!(
                "{label}: the row does not state what entry {i} says ({} at {} by {}, event id {}, integrated at {})",
                want.kind,
                custody_domain::rfc3339(want.event_time),
                want.reporter,
                want.event_id,
                custody_domain::rfc3339(want.integrated_time)
            )));
        }
        if !self.about(i, asset, used) {
            return Err(EvidenceError::answer(format!(
                "{label}: entry {i} is not proven to be about asset {}, the question's asset",
                hex(asset)
            )));
        }
        Ok(())
    }

    /// `check_history` checks that every listed index is a verified entry
    /// about `asset`: one that names it (directly, as a parent, or through
    /// a verified manifest membership), or a RECEIPT of a verified transfer
    /// that does.
    ///
    /// # Errors
    ///
    /// [`EvidenceError::Answer`] for the first index the evidence does not
    /// support.
    pub fn check_history(&self, asset: &Digest, indexes: &[u64]) -> Result<(), EvidenceError> {
        let mut used = Used::default();
        for i in indexes {
            if !self.events.contains_key(i) {
                return Err(EvidenceError::answer(format!(
                    "history entry {i} is not in the evidence"
                )));
            }
            if !self.about(*i, asset, &mut used) {
                return Err(EvidenceError::answer(format!(
                    "history entry {i} is not proven to be about the asset"
                )));
            }
        }
        Ok(())
    }
}

/// `class_text` is a class in messages, e.g. `FACE_IMAGE CITIZEN`.
pub(crate) fn class_text(c: AssetClass) -> String {
    match c {
        (None, None) => "of unproven class".into(),
        (m, s) => format!(
            "{} {}",
            m.map_or("UNPROVEN_MODALITY", Modality::name),
            s.map_or("UNPROVEN_CLASS", SubjectClass::name)
        ),
    }
}
