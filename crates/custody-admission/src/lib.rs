//! `custody-admission` is how events enter the log's state: one path,
//! over a [`LogStore`], for every caller.
//!
//! [`sequence_batch`] decodes a batch of signed events, verifies their
//! signatures in parallel against the registry, then admits them in order
//! with the domain's [`admit`] and [`observe`], over the custody and
//! findings state the store holds plus the batch's earlier entries. It
//! returns the [`Commit`] that makes them durable (entries, dedup records,
//! registry marks, custody indexes, the findings' derived state) and each
//! event's verdict; the caller adds the tree's hashes and commits.
//! custodyd's sequencer calls it for every batch, and the custody model
//! test to log its scenarios, and `custody audit` to replay a log into a
//! store of its own. [`grow_tree`] adds the tree's hashes for a commit's
//! entries, and [`load_registry`] rebuilds the registry from a store.
//!
//! It does no I/O but through the store, and knows nothing of tokio,
//! tonic or RocksDB.

use std::borrow::Cow;
use std::collections::HashMap;

use custody_domain::findings::{observe, FindingsOverlay, FindingsState};
use custody_domain::{
    admit, check_signers, verify_signatures_by_key, CustodyView, Event, KeyId, Overlay, Refusal,
    Registry, SignatureCheck, SignedEnvelope,
};
use custody_log::{append_leaves, leaf_hash, Hash, HashSource, TreeError};
use custody_proto::{decode_entry, decode_event, Entry};
use custody_store::index::{
    findings_writes, index_writes, retention_writes, RaisedCounts, StoreView,
};
use custody_store::{Commit, DedupRecord, LogStore, StoreError};

mod bulk;
pub use bulk::{bulk_members, BulkJob, HeadStep, Slice};
use rayon::prelude::*;

/// `Appended` is the acknowledgement of a durable entry.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    /// The entry's index.
    pub index: u64,
    /// True when the same event was already logged there.
    pub duplicate: bool,
}

/// `StoreHashes` is a [`LogStore`] seen as a [`HashSource`].
pub struct StoreHashes<'a>(pub &'a dyn LogStore);

impl HashSource for StoreHashes<'_> {
    type Error = StoreError;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        Ok(self.0.read_hashes(indexes)?.into_iter().map(Hash).collect())
    }
}

/// `grow_tree` sets `commit.hashes` to the stored hashes its entries add
/// to the tree of its first `commit.first_index` leaves, whose hashes
/// `tree` reads: what every committer of entries (the sequencer, `custodyd
/// init`, an auditor's replay) adds before it commits.
///
/// # Errors
///
/// When `tree` cannot be read or does not hold that tree.
pub fn grow_tree(commit: &mut Commit, tree: &impl HashSource) -> Result<(), TreeError> {
    let leaves: Vec<Hash> = commit.entries.iter().map(|e| leaf_hash(e)).collect();
    commit.hashes = append_leaves(commit.first_index, &leaves, tree)?
        .into_iter()
        .map(|(i, h)| (i, h.0))
        .collect();
    Ok(())
}

/// `load_registry` rebuilds the registry from the genesis entry and the
/// registry entries the store lists.
///
/// # Errors
///
/// If the store cannot be read or holds entries this code did not write.
pub fn load_registry(store: &dyn LogStore) -> anyhow::Result<Registry> {
    load_registry_below(store, u64::MAX)
}

/// `load_registry_below` is the registry as of the log's first `size`
/// entries: what a bulk entry at index `size` was logged after.
///
/// # Errors
///
/// As [`load_registry`].
pub fn load_registry_below(store: &dyn LogStore, size: u64) -> anyhow::Result<Registry> {
    let genesis = match store.read_entries(0, 1)?.first().map(|e| decode_entry(e)) {
        Some(Ok(Entry::Genesis(g))) => g,
        _ => anyhow::bail!("entry 0 is not a genesis entry: is this a custodyd database?"),
    };
    let mut registry = Registry::new(&genesis).map_err(|e| anyhow::anyhow!("genesis: {e}"))?;
    for i in store.registry_indexes()?.into_iter().filter(|i| *i < size) {
        let bytes = store.read_entries(i, i + 1)?;
        let Some(Ok(Entry::Event { envelope, .. })) = bytes.first().map(|e| decode_entry(e)) else {
            anyhow::bail!("registry entry {i} does not decode");
        };
        let event =
            decode_event(&envelope.body).map_err(|e| anyhow::anyhow!("registry entry {i}: {e}"))?;
        registry.apply(&event, i);
    }
    Ok(registry)
}

/// One submission after the parallel stage.
struct Checked {
    /// The signed bytes, PAE(payload type, body).
    message: Vec<u8>,
    /// The envelope digest, for dedup.
    digest: [u8; 32],
    /// The decoded event, and whether some signature's key was unknown at
    /// the batch start (and so is still unverified); or the refusal.
    event: Result<(Event, bool), Refusal>,
}

/// `Sequenced` is a batch admitted in order and not yet committed.
pub struct Sequenced {
    /// What to commit: the entries, their dedup records, registry marks,
    /// custody index updates and the findings' derived state; the tree's
    /// hashes are the committer's to add.
    pub commit: Commit,
    /// The registry after the batch, if the batch changed it.
    pub registry: Option<Registry>,
    /// Each envelope's verdict, in order: of every envelope, or of those
    /// before [`Sequenced::bulk`].
    pub verdicts: Vec<Result<Appended, Refusal>>,
    /// The bulk event admission stopped at ([`admit_bounded`]), if
    /// any: it and the envelopes after it have no verdict yet.
    pub bulk: Option<BulkCandidate>,
}

/// `BulkCandidate` is an event whose manifest has more members than a
/// batch may plan at once: the caller admits it as a [`BulkJob`].
pub struct BulkCandidate {
    /// Its position in the batch.
    pub position: usize,
    /// The decoded event.
    pub event: Event,
    /// Its signed bytes, if some signature is still to verify (a key
    /// arrived in the batch).
    pub unverified: Option<Vec<u8>>,
}

/// `sequence_batch` is the sequencer's work on one batch short of the
/// commit: decode and verify `envelopes` (in parallel, against `registry`
/// as it stands after the log's first `size` entries), then admit them in
/// order at integration time `time`, deriving what each adds to the
/// findings under the policy the log publishes, over the custody and findings state committed
/// in `store` and the batch's earlier entries. The sequencer calls it for
/// every batch; the custody model test calls it to log its scenarios at
/// integration times of its choosing.
pub fn sequence_batch(
    store: &dyn LogStore,
    registry: &Registry,
    size: u64,
    envelopes: &[&SignedEnvelope],
    time: i64,
) -> Sequenced {
    sequence_timed(store, registry, size, envelopes, &|_| time)
}

/// `sequence_timed` is [`sequence_batch`] with an integration time for
/// each envelope, `time(i)` for `envelopes[i]`, not decreasing: for a
/// replay (`custody audit`) of entries the log integrated over many
/// batches, admitted in batches of its own. Each entry is admitted at its
/// own time, as it was logged; only the keys the parallel stage verifies
/// with are looked up once, in the registry at the batch start, and every
/// other key in order, as in any batch.
pub fn sequence_timed(
    store: &dyn LogStore,
    registry: &Registry,
    size: u64,
    envelopes: &[&SignedEnvelope],
    time: &dyn Fn(usize) -> i64,
) -> Sequenced {
    let checked = check_batch(registry, envelopes);
    admit_checked(store, registry, size, envelopes, checked, time)
}

/// `admit_bounded` is the sequencer's sequential stage, over a batch that
/// [`check_batch`] checked: [`admit_checked`] at one integration
/// time that stops at the first new event acting on more than `limit`
/// manifest members one by one ([`bulk_members`]). The batch up to it is
/// admitted as usual, and it is returned in [`Sequenced::bulk`] for the
/// caller to admit in slices as a [`BulkJob`], so no batch plans more than
/// `limit` members of a manifest at once.
#[allow(clippy::too_many_arguments)]
pub fn admit_bounded(
    store: &dyn LogStore,
    registry: &Registry,
    size: u64,
    envelopes: &[&SignedEnvelope],
    checked: CheckedBatch,
    time: i64,
    limit: usize,
) -> Sequenced {
    admit_in_order(
        store,
        registry,
        size,
        envelopes,
        checked,
        &|_| time,
        Some(limit),
    )
}

/// `CheckedBatch` is a batch after the parallel stage ([`check_batch`]):
/// each event decoded, and its signatures by keys the registry knew
/// verified.
pub struct CheckedBatch(Vec<Checked>);

/// `check_batch` is the parallel stage of [`sequence_timed`] on its own,
/// so a replayer can run it for one batch while it admits the one before
/// ([`admit_checked`]). `registry` may be the registry as of any point of
/// the same log up to the batch's start: a key id names one public key,
/// so a signature it verifies stays verified, and whether that key may
/// sign at an entry's index and time is checked in order at admission;
/// signatures by keys it does not know are verified then too.
pub fn check_batch(registry: &Registry, envelopes: &[&SignedEnvelope]) -> CheckedBatch {
    CheckedBatch(check_parallel(registry, envelopes))
}

/// `admit_checked` is the sequential stage of [`sequence_timed`], over a
/// batch that [`check_batch`] checked.
pub fn admit_checked(
    store: &dyn LogStore,
    registry: &Registry,
    size: u64,
    envelopes: &[&SignedEnvelope],
    checked: CheckedBatch,
    time: &dyn Fn(usize) -> i64,
) -> Sequenced {
    admit_in_order(store, registry, size, envelopes, checked, time, None)
}

/// The sequential stage, stopping at a bulk event above `bulk_limit`.
#[allow(clippy::too_many_arguments)]
fn admit_in_order(
    store: &dyn LogStore,
    registry: &Registry,
    size: u64,
    envelopes: &[&SignedEnvelope],
    checked: CheckedBatch,
    time: &dyn Fn(usize) -> i64,
    bulk_limit: Option<usize>,
) -> Sequenced {
    // A batch checked for other envelopes is checked again, never
    // half-trusted.
    let checked = if checked.0.len() == envelopes.len() {
        checked.0
    } else {
        check_parallel(registry, envelopes)
    };

    // The sequential stage, in arrival order. A registry entry changes
    // the registry as we go, so a key added earlier in the batch can
    // sign later in it; the registry is copied only for a batch that
    // holds one, and the copy replaces it only if the commit succeeds.
    let mut registry: Cow<'_, Registry> = Cow::Borrowed(registry);
    let mut in_batch: HashMap<String, (u64, [u8; 32])> = HashMap::new();
    let mut commit = Commit {
        first_index: size,
        ..Commit::default()
    };
    let mut custody = Overlay::new(StoreView(store));
    let mut findings = FindingsOverlay::new(StoreView(store));
    // The running count of raised findings, read when an entry first
    // raises one.
    let mut counts: Option<RaisedCounts> = None;
    let mut verdicts: Vec<Result<Appended, Refusal>> = Vec::with_capacity(envelopes.len());
    let mut bulk = None;
    for (k, (envelope, c)) in envelopes.iter().zip(checked).enumerate() {
        let time = time(k);
        if let (Some(limit), Ok((event, unknown))) = (bulk_limit, &c.event) {
            // A resubmission is answered by `admit_one`, at no cost; only a
            // bulk event (rare) costs the lookup twice.
            if matches!(bulk_members(event, &custody, limit), Ok(Some(_)))
                && !in_batch.contains_key(&event.event_id)
                && matches!(store.dedup(&event.event_id), Ok(None))
            {
                let unverified = unknown.then(|| c.message.clone());
                if let Ok((event, _)) = c.event {
                    bulk = Some(BulkCandidate {
                        position: k,
                        event,
                        unverified,
                    });
                }
                break;
            }
        }
        let verdict = match c.event {
            Err(r) => Err(r),
            Ok((event, unknown_keys)) => admit_one(
                store,
                &mut registry,
                envelope,
                &event,
                unknown_keys.then_some(c.message.as_slice()),
                c.digest,
                time,
                &mut in_batch,
                &mut custody,
                &mut findings,
                &mut counts,
                &mut commit,
            ),
        };
        verdicts.push(verdict);
    }
    // The breach-scope counts of the intervals the batch opens and closes,
    // read once for the whole batch.
    match custody_store::index::scope_writes(store, commit.first_index, &commit.index) {
        Ok(w) => commit.index.extend(w),
        Err(e) => {
            let r = Refusal::exhausted(format!(
                "the log could not read its breach-scope counts ({e}); nothing was logged, retry"
            ));
            return Sequenced {
                commit: Commit {
                    first_index: size,
                    ..Commit::default()
                },
                registry: None,
                verdicts: verdicts.iter().map(|_| Err(r.clone())).collect(),
                bulk,
            };
        }
    }
    Sequenced {
        commit,
        registry: match registry {
            Cow::Owned(r) => Some(r),
            Cow::Borrowed(_) => None,
        },
        verdicts,
        bulk,
    }
}

/// The parallel stage: decode, look keys up in the registry as it stood
/// at the batch start, and verify those signatures in batches.
fn check_parallel(registry: &Registry, envelopes: &[&SignedEnvelope]) -> Vec<Checked> {
    // Everything per event that needs no registry runs here, on all
    // cores, so the sequential stage only validates and sequences.
    let decoded: Vec<Checked> = envelopes
        .par_iter()
        .map(|e| Checked {
            message: e.signing_bytes(),
            digest: e.digest(),
            event: decode_event(&e.body).map(|e| (e, false)),
        })
        .collect();
    // Collect the checks whose key is already known.
    let mut checks = Vec::new();
    let mut owner = Vec::new();
    let mut unknown = vec![false; envelopes.len()];
    for (i, (e, c)) in envelopes.iter().zip(&decoded).enumerate() {
        if c.event.is_err() {
            continue;
        }
        for sig in &e.signatures {
            match registry.key(&sig.key_id) {
                Some(k) => {
                    checks.push(SignatureCheck {
                        message: &c.message,
                        signature: ed25519_dalek::Signature::from_bytes(&sig.sig),
                        key: k.public_key,
                    });
                    owner.push(i);
                }
                None => unknown[i] = true,
            }
        }
    }
    // Most events in a batch come from few keys: the keyed batch
    // equation costs n + k + 1 points for n signatures by k keys
    // (2n + 1 for ed25519-dalek's), with the same per-signature
    // verify_strict fallback when a batch fails.
    let verdicts = verify_signatures_by_key(&checks);
    let mut bad = vec![false; envelopes.len()];
    for (i, ok) in owner.into_iter().zip(verdicts) {
        if !ok {
            bad[i] = true;
        }
    }
    decoded
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.event = match c.event {
                Err(r) => Err(r),
                Ok(_) if bad[i] => Err(Refusal::denied(
                    "a signature does not verify over the event: sign PAE(payload_type, body) with the key named by key_id",
                )),
                Ok((event, _)) => Ok((event, unknown[i])),
            };
            c
        })
        .collect()
}

/// `verify_signatures` verifies every signature of `envelope`, whose
/// event is `event`, by keys `registry` allows its reporter at `time`:
/// for a caller about to keep a submission waiting, so nothing forged
/// waits, and nothing forged makes another reporter's events wait.
///
/// # Errors
///
/// The `PermissionDenied` [`Refusal`] for the first key or signature at
/// fault.
pub fn verify_signatures(
    registry: &Registry,
    envelope: &SignedEnvelope,
    event: &Event,
    time: i64,
) -> Result<(), Refusal> {
    verify_late(registry, envelope, event, &envelope.signing_bytes(), time)
}

/// `verify_late` verifies every signature of an envelope the parallel
/// stage could not (a key arrived in its batch) over its signed bytes
/// `msg`, before any rule looks at the event, so a forgery learns nothing
/// of custody state and costs no reads.
fn verify_late(
    registry: &Registry,
    envelope: &SignedEnvelope,
    event: &Event,
    msg: &[u8],
    time: i64,
) -> Result<(), Refusal> {
    let signers: Vec<KeyId> = envelope.signatures.iter().map(|s| s.key_id).collect();
    let keys = check_signers(registry, &signers, &event.reporter, time)?;
    for (sig, key) in envelope.signatures.iter().zip(&keys) {
        let s = ed25519_dalek::Signature::from_bytes(&sig.sig);
        if key.verify_strict(msg, &s).is_err() {
            return Err(Refusal::denied(format!(
                "signature by key {} does not verify over the event",
                sig.key_id
            )));
        }
    }
    Ok(())
}

/// `admit_one` admits one event in sequence (dedup, then the domain's
/// [`admit`], then any signature the parallel stage could not check) and,
/// if admitted, adds it to the commit and applies it to the batch's view
/// of custody and the registry.
#[allow(clippy::too_many_arguments)]
fn admit_one(
    store: &dyn LogStore,
    registry: &mut Cow<'_, Registry>,
    envelope: &SignedEnvelope,
    event: &Event,
    unverified: Option<&[u8]>,
    digest: [u8; 32],
    time: i64,
    in_batch: &mut HashMap<String, (u64, [u8; 32])>,
    custody: &mut Overlay<impl CustodyView>,
    findings: &mut FindingsOverlay<impl FindingsState>,
    counts: &mut Option<RaisedCounts>,
    commit: &mut Commit,
) -> Result<Appended, Refusal> {
    // Dedup first: a resubmission is answered even if its key has since
    // been revoked.
    let seen = match in_batch.get(&event.event_id) {
        Some((index, d)) => Some((*index, *d)),
        None => store
            .dedup(&event.event_id)
            .map_err(|e| Refusal::exhausted(format!("dedup lookup failed: {e}; retry")))?
            .map(|r| (r.index, r.digest)),
    };
    if let Some((index, d)) = seen {
        if d == digest {
            return Ok(Appended {
                index,
                duplicate: true,
            });
        }
        return Err(Refusal::exists(format!(
            "event_id {} is already logged at index {index} with different content",
            event.event_id
        )));
    }

    let index = commit.first_index + commit.entries.len() as u64;
    let entry = bulk::encode_entry(envelope, time)?;
    let signers: Vec<KeyId> = envelope.signatures.iter().map(|s| s.key_id).collect();
    if let Some(msg) = unverified {
        verify_late(registry.as_ref(), envelope, event, msg, time)?;
    }
    // The custody rules see this batch's earlier entries through the
    // overlay and the registry.
    let admission = admit(registry.as_ref(), custody, &signers, event, index, time)?;
    // What it adds to the findings, with the registry as it stood before
    // it: written in the same batch, never derived again.
    let delta = observe(
        findings,
        index,
        event,
        time,
        registry.as_ref(),
        &admission.effects,
    )?;
    // Every read that can fail comes before the one change to batch
    // state that is not in the commit (the running counts).
    let retention = retention_writes(&delta.after(&*findings), &admission.effects)?;
    let counted = if delta.raised.is_empty() {
        None
    } else {
        let c = match counts {
            Some(c) => c,
            None => counts.insert(RaisedCounts::latest(store).map_err(|e| {
                Refusal::exhausted(format!("findings count lookup failed: {e}; retry"))
            })?),
        };
        c.add(index, &delta)
    };
    if admission.changes_registry {
        commit.registry.push(index);
        registry.to_mut().apply(event, index);
    }
    commit.index.extend(index_writes(
        index,
        &event.reporter,
        event.reporter_seq,
        &admission.effects,
    ));
    commit.index.extend(findings_writes(index, &delta));
    commit.index.extend(counted);
    commit.index.extend(retention);
    findings.apply(&delta);
    custody.apply(&admission.effects);
    in_batch.insert(event.event_id.clone(), (index, digest));
    commit
        .dedup
        .push((event.event_id.clone(), DedupRecord { index, digest }));
    commit.entries.push(entry);
    Ok(Appended {
        index,
        duplicate: false,
    })
}
