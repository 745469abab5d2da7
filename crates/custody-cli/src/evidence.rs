//! Offline verification of the `Evidence` that comes with every custody
//! answer: the checkpoint's signature, each entry's inclusion proof, each
//! event's signatures against keys the log itself registered, and each
//! manifest membership proof. Then the answer's rows are checked against
//! the verified entries.
//!
//! What evidence cannot show: that nothing was left out (an interval the
//! server omitted), or that a key was not revoked later than the entries
//! it signed. A full replay (`custody monitor`, and later `custody audit`)
//! covers those.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, Context as _};
use custody_domain::{
    hex, key_id_of, AssetRef, CustodyActionKind, Digest, Event, EventBody, KeyId, ManifestRef,
};
use custody_log::{leaf_hash, verify_inclusion, Hash, LogVerifier, VerifiedCheckpoint};
use custody_proto::{decode_entry, decode_event, v1, Entry};

/// `VerifiedEvidence` is evidence whose every proof and signature checked
/// out.
pub struct VerifiedEvidence {
    /// The checkpoint everything was proven against.
    pub checkpoint: VerifiedCheckpoint,
    /// Cited events by log index, with their integration time.
    pub events: BTreeMap<u64, (Event, i64)>,
    /// Verified manifest memberships: (manifest root, count, asset).
    pub memberships: Vec<(ManifestRef, Digest)>,
    /// System owners, from verified SYSTEM_REGISTERED entries.
    pub system_owners: HashMap<String, String>,
}

fn proof_hashes(p: &[Vec<u8>]) -> anyhow::Result<Vec<Hash>> {
    p.iter()
        .map(|h| {
            <[u8; 32]>::try_from(h.as_slice())
                .map(Hash)
                .map_err(|_| anyhow!("a proof hash is {} bytes, not 32", h.len()))
        })
        .collect()
}

struct Key {
    party: String,
    key: ed25519_dalek::VerifyingKey,
    valid_from: i64,
    valid_to: Option<i64>,
    added_at: u64,
}

fn check_signatures(
    index: u64,
    envelope: &custody_domain::SignedEnvelope,
    event: &Event,
    integrated_time: i64,
    keys: &HashMap<KeyId, Key>,
) -> anyhow::Result<()> {
    if envelope.signatures.is_empty() {
        bail!("entry {index} carries no signature");
    }
    let msg = envelope.signing_bytes();
    for s in &envelope.signatures {
        let k = keys.get(&s.key_id).ok_or_else(|| {
            anyhow!(
                "entry {index} is signed by key {}, which no registry entry in the evidence adds",
                s.key_id
            )
        })?;
        if k.added_at >= index {
            bail!(
                "entry {index} is signed by key {} that was only added at entry {}",
                s.key_id,
                k.added_at
            );
        }
        if k.party != event.reporter {
            bail!(
                "entry {index} is reported by {} but signed by a key of {}",
                event.reporter,
                k.party
            );
        }
        // The log checks validity when it integrates an entry.
        let t = integrated_time;
        if t < k.valid_from || k.valid_to.is_some_and(|to| t >= to) {
            bail!("entry {index} was logged outside its signing key's validity window");
        }
        let sig = ed25519_dalek::Signature::from_bytes(&s.sig);
        k.key
            .verify_strict(&msg, &sig)
            .map_err(|_| anyhow!("the signature on entry {index} does not verify"))?;
    }
    Ok(())
}

/// `verify` checks `ev` against the pinned log verifier.
///
/// # Errors
///
/// Says which check failed: the checkpoint signature, an inclusion proof
/// (naming the entry), a signature, a registry entry, or a membership.
pub fn verify(ev: &v1::Evidence, verifier: &LogVerifier) -> anyhow::Result<VerifiedEvidence> {
    let cp = verifier
        .verify(&ev.checkpoint)
        .context("the evidence's checkpoint")?;
    if cp.size != ev.tree_size {
        bail!(
            "the evidence claims tree size {} but its checkpoint is of size {}",
            ev.tree_size,
            cp.size
        );
    }
    let prove = |p: &v1::ProvenEntry, what: &str| -> anyhow::Result<()> {
        verify_inclusion(
            &proof_hashes(&p.proof)?,
            cp.size,
            &cp.root,
            p.index,
            &leaf_hash(&p.entry),
        )
        .map_err(|_| {
            anyhow!(
                "the inclusion proof of {what} entry {} does not verify against the checkpoint of size {}",
                p.index,
                cp.size
            )
        })
    };

    // The registry: genesis first, then the owner-signed entries.
    let mut keys: HashMap<KeyId, Key> = HashMap::new();
    let mut system_owners = HashMap::new();
    let mut registry: Vec<&v1::ProvenEntry> = ev.registry.iter().collect();
    registry.sort_by_key(|p| p.index);
    let Some(first) = registry.first().filter(|p| p.index == 0) else {
        bail!("the evidence lacks the genesis entry (index 0) that roots the registry");
    };
    prove(first, "genesis")?;
    let genesis = match decode_entry(&first.entry) {
        Ok(Entry::Genesis(g)) => g,
        _ => bail!("entry 0 of the evidence is not a genesis entry"),
    };
    let owner_key = ed25519_dalek::VerifyingKey::from_bytes(&genesis.owner_public_key)
        .map_err(|_| anyhow!("the genesis entry's owner key is not an Ed25519 key"))?;
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
    for p in &registry[1..] {
        prove(p, "registry")?;
        let Ok(Entry::Event {
            envelope,
            integrated_time,
        }) = decode_entry(&p.entry)
        else {
            bail!("registry entry {} is not a signed event", p.index);
        };
        let event =
            decode_event(&envelope.body).map_err(|e| anyhow!("registry entry {}: {e}", p.index))?;
        if event.reporter != genesis.owner_party_id {
            bail!(
                "registry entry {} is reported by {}, not the data owner",
                p.index,
                event.reporter
            );
        }
        check_signatures(p.index, &envelope, &event, integrated_time, &keys)?;
        match event.body {
            EventBody::KeyAdded(k) => {
                let key = ed25519_dalek::VerifyingKey::from_bytes(&k.public_key)
                    .map_err(|_| anyhow!("registry entry {} adds an invalid key", p.index))?;
                keys.insert(
                    key_id_of(&k.public_key),
                    Key {
                        party: k.party_id,
                        key,
                        valid_from: k.valid_from,
                        valid_to: k.valid_to,
                        added_at: p.index,
                    },
                );
            }
            EventBody::SystemRegistered(s) => {
                system_owners.insert(s.system_id, s.owner_party);
            }
            _ => {}
        }
    }

    let mut events = BTreeMap::new();
    for p in &ev.entries {
        prove(p, "cited")?;
        let Ok(Entry::Event {
            envelope,
            integrated_time,
        }) = decode_entry(&p.entry)
        else {
            bail!("cited entry {} is not a signed event", p.index);
        };
        let event =
            decode_event(&envelope.body).map_err(|e| anyhow!("cited entry {}: {e}", p.index))?;
        check_signatures(p.index, &envelope, &event, integrated_time, &keys)?;
        events.insert(p.index, (event, integrated_time));
    }

    let mut memberships = Vec::new();
    for m in &ev.memberships {
        let root: Digest = m
            .manifest_root
            .as_slice()
            .try_into()
            .map_err(|_| anyhow!("a membership proof's manifest root is not 32 bytes"))?;
        let asset: Digest = m
            .asset
            .as_slice()
            .try_into()
            .map_err(|_| anyhow!("a membership proof's asset is not 32 bytes"))?;
        verify_inclusion(
            &proof_hashes(&m.proof)?,
            m.count,
            &Hash(root),
            m.index,
            &leaf_hash(&asset),
        )
        .map_err(|_| {
            anyhow!(
                "the membership proof of asset {} in manifest {} does not verify",
                hex(&asset),
                hex(&root)
            )
        })?;
        memberships.push((
            ManifestRef {
                root,
                count: m.count,
            },
            asset,
        ));
    }
    Ok(VerifiedEvidence {
        checkpoint: cp,
        events,
        memberships,
        system_owners,
    })
}

impl VerifiedEvidence {
    /// `names_asset` is whether the verified event at `index` is about
    /// `asset`, directly or through a verified manifest membership.
    fn names_asset(&self, a: &AssetRef, asset: &Digest) -> bool {
        match a {
            AssetRef::One(d) => d == asset,
            AssetRef::Manifest(m) => self.memberships.iter().any(|(mm, d)| mm == m && d == asset),
        }
    }

    /// `check_interval` checks one answer row against the verified events:
    /// the opening event put `asset` on `system` at `from`, the closing one
    /// (if any) took it off at `to`, and the holder is the system's
    /// registered owner.
    ///
    /// # Errors
    ///
    /// Which part of the row the evidence does not support.
    pub fn check_interval(&self, i: &v1::CustodyInterval) -> anyhow::Result<()> {
        let asset: Digest = i
            .asset
            .as_slice()
            .try_into()
            .map_err(|_| anyhow!("an interval's asset is not 32 bytes"))?;
        let row = format!("interval of {} on {}", hex(&asset), i.system_id);
        let custody = |index: u64| -> anyhow::Result<(&Event, &custody_domain::CustodyAction)> {
            match self.events.get(&index) {
                Some((e, _)) => match &e.body {
                    EventBody::Custody(c) => Ok((e, c)),
                    _ => bail!("{row}: entry {index} is not a custody event"),
                },
                None => bail!("{row}: entry {index} is not in the evidence"),
            }
        };
        let (e, c) = custody(i.opened_by)?;
        use CustodyActionKind as K;
        let opens = matches!(c.action, K::Capture | K::Copy | K::Move | K::Derive);
        if !opens || c.to_system != i.system_id || e.event_time != i.from_unix_nanos {
            bail!(
                "{row}: entry {} does not put it on that system at that time",
                i.opened_by
            );
        }
        if !c.asset.is_some_and(|a| self.names_asset(&a, &asset)) {
            bail!(
                "{row}: entry {} is not proven to name the asset",
                i.opened_by
            );
        }
        if i.to_unix_nanos != 0 {
            let (e, c) = custody(i.closed_by)?;
            let closes = matches!(c.action, K::Delete | K::Move);
            if !closes || c.from_system != i.system_id || e.event_time != i.to_unix_nanos {
                bail!(
                    "{row}: entry {} does not take it off that system at that time",
                    i.closed_by
                );
            }
            if !c.asset.is_some_and(|a| self.names_asset(&a, &asset)) {
                bail!(
                    "{row}: entry {} is not proven to name the asset",
                    i.closed_by
                );
            }
        }
        match self.system_owners.get(&i.system_id) {
            Some(owner) if *owner == i.party => Ok(()),
            Some(owner) => bail!(
                "{row}: the system is registered to {owner}, not {}",
                i.party
            ),
            None => bail!("{row}: the evidence lacks the system's registration"),
        }
    }

    /// `check_history` checks that every listed index is a verified entry
    /// about `asset` (a RECEIPT counts: it acknowledges a transfer of it).
    ///
    /// # Errors
    ///
    /// The first index the evidence does not support.
    pub fn check_history(&self, asset: &Digest, indexes: &[u64]) -> anyhow::Result<()> {
        for i in indexes {
            let Some((e, _)) = self.events.get(i) else {
                bail!("history entry {i} is not in the evidence");
            };
            let about = match &e.body {
                EventBody::Custody(c) if c.action == CustodyActionKind::Receipt => true,
                EventBody::Custody(c) => {
                    c.asset.is_some_and(|a| self.names_asset(&a, asset))
                        || c.parents.iter().any(|p| p.digest == *asset)
                }
                _ => false,
            };
            if !about {
                bail!("history entry {i} is not proven to be about the asset");
            }
        }
        Ok(())
    }
}
