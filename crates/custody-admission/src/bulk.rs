//! Bulk events in bounded slices.
//!
//! An event on a manifest acts on every member: a COPY of a
//! 1,000,000-member manifest opens a million custody intervals. Planned
//! and committed whole, it would hold the log for tens of seconds and its
//! effects gigabytes of memory. A [`BulkJob`] admits such an event in
//! slices of members instead, between other reporters' batches:
//!
//! 1. **Check** ([`BulkJob::check_slice`]): every member is planned, a
//!    slice at a time, against committed state, and nothing is written.
//!    A member that contradicts the log refuses the event, and nothing is
//!    logged. What the findings need of all members at once
//!    ([`MemberFacts`], the count of findings they raise) is gathered.
//! 2. **Head** ([`BulkJob::head`]): the entry is logged with the event's
//!    own effects and findings and the job's record, in one commit.
//! 3. **Apply** ([`BulkJob::apply_slice`]): each slice's effects and
//!    findings are committed, with the job's record advanced, so a crash
//!    resumes at the slice after the last one committed
//!    ([`BulkJob::resume`]).
//!
//! The slices together write exactly what [`crate::sequence_batch`]
//! writes for the event whole: both compose the same domain functions,
//! [`plan_members`] and [`observe_event`] then [`observe_members`].
//!
//! While a job runs, the event must look to everything after it as if it
//! had been applied at once. The caller therefore holds back every event
//! that [`BulkJob::conflicts`] with it (one that could read or change the
//! members' state, the registry, or the reporter's order) until the job
//! ends, and answers queries as of a checkpoint no later than the entry
//! ([`BulkJob::indexed_below`]).

use custody_domain::findings::{observe_event, observe_members, MemberFacts};
use custody_domain::{
    admit_members, bulk_manifest, AssetRef, CustodyActionKind, CustodyView, Digest, Effects, Event,
    EventBody, KeyId, ManifestRef, Refusal, Registry, SignedEnvelope,
};
use custody_proto::{decode_entry, decode_event, envelope_to_proto, v1, Entry};
use custody_store::index::{
    findings_writes_from, index_writes, retention_writes, scope_writes, RaisedCounts, StoreView,
};
use custody_store::{Commit, DedupRecord, IndexCf, KvWrite, LogStore};
use prost::Message as _;

use crate::{load_registry_below, verify_late, Appended};

/// `JOB_KEY` is the job's record in `derived_meta`: the index of the bulk
/// entry being applied, the first member not yet applied, and the number
/// of findings its slices raised so far.
const JOB_KEY: &[u8] = b"bulk_job";

/// The index members are planned at while the entry has none yet: no
/// refusal depends on it, and nothing planned with it is written.
const UNLOGGED: u64 = u64::MAX;

/// `BulkJob` is one bulk event being admitted in slices (see the module).
pub struct BulkJob {
    envelope: SignedEnvelope,
    event: Event,
    digest: [u8; 32],
    manifest: ManifestRef,
    /// Its member count: members are read a slice at a time, never all.
    members: usize,
    /// The registry its members are planned with: as the check began,
    /// then as the entry was logged. Registry events are logged while the
    /// job runs; one logged before the head starts the check again
    /// ([`BulkJob::registry_changed`]), and those after it do not reach
    /// the entry's members, as in a replay of the log.
    registry: Registry,
    stage: Stage,
}

enum Stage {
    /// Members `..next` checked; what they showed.
    Check {
        next: usize,
        facts: MemberFacts,
        raised: RaisedCounts,
    },
    /// Logged at `index`; members `..next` applied, whose findings number
    /// `ordinal` with the event's own.
    Apply {
        index: u64,
        next: usize,
        ordinal: u32,
    },
}

/// `Slice` is where a job stands after a slice [`BulkJob::apply_slice`]
/// planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// The first member not yet applied.
    pub next: usize,
    /// The findings the event raised so far.
    pub ordinal: u32,
    /// Whether every member is applied.
    pub last: bool,
}

/// `HeadStep` is what [`BulkJob::head`] came to.
pub enum HeadStep {
    /// The same event is already logged: the answer, and no job.
    Duplicate(Appended),
    /// The commit that logs the entry; the job applies its members next.
    Logged(Commit),
}

/// `bulk_members` is the member count of the manifest `event` acts on one
/// by one, if above `limit`: the events a caller admits as a [`BulkJob`].
///
/// # Errors
///
/// A `ResourceExhausted` [`Refusal`] when storage fails.
pub fn bulk_members(
    event: &Event,
    view: &dyn CustodyView,
    limit: usize,
) -> Result<Option<u64>, Refusal> {
    Ok(bulk_manifest(event, view)?
        .map(|m| m.count)
        .filter(|n| *n > limit as u64))
}

fn storage(what: &str, e: impl std::fmt::Display) -> Refusal {
    Refusal::exhausted(format!("{what} failed: {e}; retry"))
}

impl BulkJob {
    /// `begin` starts admitting `envelope`, whose decoded event is `event`
    /// and whose signatures were verified unless `unverified` holds the
    /// signed bytes to verify them over: its signers, the registry's rules
    /// and the event's own custody rules are checked against `registry`
    /// at integration time `time`, and its manifest is read.
    ///
    /// # Errors
    ///
    /// The event's [`Refusal`].
    pub fn begin(
        store: &dyn LogStore,
        registry: &Registry,
        envelope: &SignedEnvelope,
        event: Event,
        unverified: Option<&[u8]>,
        time: i64,
    ) -> Result<Self, Refusal> {
        if let Some(msg) = unverified {
            verify_late(registry, envelope, &event, msg, time)?;
        }
        let view = StoreView(store);
        let signers = signers(envelope);
        admit_members(registry, &view, &signers, &event, UNLOGGED, time, 0..0)?;
        let manifest = bulk_manifest(&event, &view)?
            .ok_or_else(|| Refusal::invalid("custody.manifest", "the event names no manifest"))?;
        // `admit_members` found it uploaded, with this count.
        let members = usize::try_from(manifest.count).map_err(|_| {
            Refusal::invalid(
                "custody.manifest.count",
                "more members than this server can address",
            )
        })?;
        Ok(Self {
            envelope: envelope.clone(),
            digest: envelope.digest(),
            event,
            manifest,
            members,
            registry: registry.clone(),
            stage: Stage::Check {
                next: 0,
                facts: MemberFacts::default(),
                raised: RaisedCounts::default(),
            },
        })
    }

    /// `resume` is the job a store's record says was logged and not yet
    /// applied in full, if any: after a restart, it goes on with the slice
    /// after the last one committed.
    ///
    /// # Errors
    ///
    /// If the store cannot be read, or the record or its entry is not what
    /// this code wrote.
    pub fn resume(store: &dyn LogStore) -> anyhow::Result<Option<Self>> {
        let Some(v) = store.index_get(IndexCf::DerivedMeta, JOB_KEY)? else {
            return Ok(None);
        };
        let (index, next, ordinal) = parse_record(&v)
            .ok_or_else(|| anyhow::anyhow!("the bulk job record has {} bytes, not 20", v.len()))?;
        let bytes = store.read_entries(index, index + 1)?;
        let Some(Ok(Entry::Event { envelope, .. })) = bytes.first().map(|e| decode_entry(e)) else {
            anyhow::bail!("bulk entry {index} does not decode");
        };
        let event =
            decode_event(&envelope.body).map_err(|e| anyhow::anyhow!("bulk entry {index}: {e}"))?;
        let view = StoreView(store);
        let manifest = bulk_manifest(&event, &view)
            .map_err(|e| anyhow::anyhow!("bulk entry {index}: {e}"))?
            .ok_or_else(|| anyhow::anyhow!("bulk entry {index} names no manifest"))?;
        if view
            .manifest_members(&manifest, 0..0)
            .map_err(|e| anyhow::anyhow!("bulk entry {index}: {e}"))?
            .is_none()
        {
            anyhow::bail!("bulk entry {index}: its manifest is not stored");
        }
        let members = usize::try_from(manifest.count)?;
        let registry = load_registry_below(store, index)?;
        Ok(Some(Self {
            digest: envelope.digest(),
            envelope,
            event,
            manifest,
            members,
            registry,
            stage: Stage::Apply {
                index,
                next: usize::try_from(next).unwrap_or(usize::MAX),
                ordinal,
            },
        }))
    }

    /// `event` is the bulk event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// `members` is its member count.
    pub fn members(&self) -> usize {
        self.members
    }

    /// `done` is how many members were checked (before the head) or
    /// applied (after it).
    pub fn done(&self) -> usize {
        match &self.stage {
            Stage::Check { next, .. } | Stage::Apply { next, .. } => *next,
        }
    }

    /// `index` is the entry's index once logged.
    pub fn index(&self) -> Option<u64> {
        match &self.stage {
            Stage::Check { .. } => None,
            Stage::Apply { index, .. } => Some(*index),
        }
    }

    /// `checked` is whether every member was checked, so the entry may be
    /// logged ([`BulkJob::head`]).
    pub fn checked(&self) -> bool {
        matches!(&self.stage, Stage::Check { next, .. } if *next >= self.members)
    }

    /// `indexed_below` is the tree size below which every entry's derived
    /// state is complete while this job runs: its entry, once logged, is
    /// the first that is not. Queries answer as of a checkpoint no larger.
    pub fn indexed_below(&self) -> u64 {
        self.index().unwrap_or(u64::MAX)
    }

    /// `holds` is whether `asset` is a member: a binary search of the
    /// stored members, which are sorted (about 20 reads for a million).
    /// A failed read counts as a member, so the caller holds back.
    fn holds(&self, asset: &Digest, view: &dyn CustodyView) -> bool {
        let (mut lo, mut hi) = (0usize, self.members);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match view.manifest_members(&self.manifest, mid..mid + 1) {
                Ok(Some(m)) => match m.first().map(|d| d.cmp(asset)) {
                    Some(std::cmp::Ordering::Equal) => return true,
                    Some(std::cmp::Ordering::Less) => lo = mid + 1,
                    Some(std::cmp::Ordering::Greater) => hi = mid,
                    None => return true,
                },
                _ => return true,
            }
        }
        false
    }

    /// `conflicts` is whether `event` must wait until the job ends: it is
    /// by the same reporter (whose events keep their order), carries the
    /// job's event id, names a manifest, or names a member, as its asset,
    /// a parent or what its RECEIPT acknowledges; or cannot be told apart
    /// from one that does. Registry events need not wait: see
    /// [`BulkJob::registry_changed`].
    pub fn conflicts(&self, event: &Event, view: &dyn CustodyView) -> bool {
        if event.reporter == self.event.reporter || event.event_id == self.event.event_id {
            return true;
        }
        match &event.body {
            EventBody::Custody(c) => {
                let named = |a: &Option<AssetRef>| match a {
                    Some(AssetRef::Manifest(_)) => true,
                    Some(AssetRef::One(d)) => self.holds(d, view),
                    None => false,
                };
                if named(&c.asset) || c.parents.iter().any(|p| self.holds(&p.digest, view)) {
                    return true;
                }
                match (c.action, c.receipt_of) {
                    (CustodyActionKind::Receipt, Some(of)) => {
                        Some(of) == self.index()
                            || match view.transfer(of) {
                                Ok(Some(t)) => named(&Some(t.asset)),
                                Ok(None) => false,
                                Err(_) => true,
                            }
                    }
                    _ => false,
                }
            }
            EventBody::CustodyAttestation(a) => a.holdings.count > 0,
            _ => false,
        }
    }

    /// `registry_changed` is told of each registry entry logged while the
    /// job runs. Before the job's entry is logged, its members' check
    /// starts again with `registry`, the registry it will be logged after;
    /// after, nothing changes: its members are applied with the registry
    /// it was logged with.
    pub fn registry_changed(&mut self, registry: &Registry) {
        if let Stage::Check {
            next,
            facts,
            raised,
        } = &mut self.stage
        {
            *next = 0;
            *facts = MemberFacts::default();
            *raised = RaisedCounts::default();
            self.registry = registry.clone();
        }
    }

    /// `check_slice` checks the next `n` members against committed state,
    /// writing nothing, and says whether all are checked.
    ///
    /// # Errors
    ///
    /// The [`Refusal`] a member gives the event: the job ends, and nothing
    /// was logged.
    pub fn check_slice(&mut self, store: &dyn LogStore, n: usize) -> Result<bool, Refusal> {
        let len = self.members;
        let Stage::Check {
            next,
            facts,
            raised,
        } = &mut self.stage
        else {
            return Ok(true);
        };
        let end = next.saturating_add(n.max(1)).min(len);
        let view = StoreView(store);
        let fx =
            custody_domain::plan_members(&self.event, UNLOGGED, &self.registry, &view, *next..end)?;
        let state = StoreView(store);
        facts.add(&state, &self.event, &fx)?;
        raised.count(&observe_members(&state, UNLOGGED, &self.event, &fx)?);
        *next = end;
        Ok(end >= len)
    }

    /// `head` is the commit that logs the checked event at index `size`,
    /// integrated at `time`: the entry, its dedup record, its own effects
    /// and findings, the running count of findings with every member's
    /// counted, and the job's record. The caller adds the tree's hashes.
    /// Once it is committed the job applies members
    /// ([`BulkJob::apply_slice`]).
    ///
    /// # Errors
    ///
    /// The event's [`Refusal`] (nothing is logged), or when called before
    /// every member is checked.
    pub fn head(
        &mut self,
        store: &dyn LogStore,
        registry: &Registry,
        size: u64,
        time: i64,
    ) -> Result<HeadStep, Refusal> {
        if !self.checked() {
            return Err(Refusal::exhausted(
                "the bulk event's members are not all checked yet; retry",
            ));
        }
        let Stage::Check { facts, raised, .. } = &self.stage else {
            return Err(Refusal::exhausted("the bulk event is already logged"));
        };
        if let Some(r) = store
            .dedup(&self.event.event_id)
            .map_err(|e| storage("dedup lookup", e))?
        {
            if r.digest == self.digest {
                return Ok(HeadStep::Duplicate(Appended {
                    index: r.index,
                    duplicate: true,
                }));
            }
            return Err(Refusal::exists(format!(
                "event_id {} is already logged at index {} with different content",
                self.event.event_id, r.index
            )));
        }
        let entry = encode_entry(&self.envelope, time)?;
        let view = StoreView(store);
        let admission = admit_members(
            registry,
            &view,
            &signers(&self.envelope),
            &self.event,
            size,
            time,
            0..0,
        )?;
        let delta = observe_event(
            &view,
            size,
            &self.event,
            time,
            registry,
            &admission.effects,
            facts,
        )?;
        let mut counts =
            RaisedCounts::latest(store).map_err(|e| storage("findings count lookup", e))?;
        counts.count(&delta);
        counts.merge(raised);
        let mut commit = Commit {
            first_index: size,
            ..Commit::default()
        };
        commit.index.extend(index_writes(
            size,
            &self.event.reporter,
            self.event.reporter_seq,
            &admission.effects,
        ));
        commit.index.extend(findings_writes_from(size, 0, &delta));
        if !delta.raised.is_empty() || raised.total() > 0 {
            commit.index.push(counts.record(size));
        }
        commit
            .index
            .extend(retention_writes(&delta.after(&view), &admission.effects)?);
        let ordinal = u32::try_from(delta.raised.len()).unwrap_or(u32::MAX);
        commit.index.push(record(size, 0, ordinal));
        commit.dedup.push((
            self.event.event_id.clone(),
            DedupRecord {
                index: size,
                digest: self.digest,
            },
        ));
        if admission.changes_registry {
            commit.registry.push(size);
        }
        commit.entries.push(entry);
        commit.index.extend(
            scope_writes(store, commit.first_index, &commit.index)
                .map_err(|e| storage("breach-scope counts", e))?,
        );
        self.registry = registry.clone();
        self.stage = Stage::Apply {
            index: size,
            next: 0,
            ordinal,
        };
        Ok(HeadStep::Logged(commit))
    }

    /// `apply_slice` is the commit of the next `n` members' effects and
    /// findings, with the job's record advanced (or removed after the
    /// last), and where the job stands after it. The job moves on only
    /// when the caller says the commit succeeded ([`BulkJob::applied`]).
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails (retry); any
    /// other means the members' state changed under the job, which the
    /// caller's holding back of conflicting events should make impossible.
    pub fn apply_slice(&self, store: &dyn LogStore, n: usize) -> Result<(Commit, Slice), Refusal> {
        let Stage::Apply {
            index,
            next,
            ordinal,
        } = self.stage
        else {
            return Err(Refusal::exhausted("the bulk event is not logged yet"));
        };
        let len = self.members;
        let end = next.saturating_add(n.max(1)).min(len);
        let view = StoreView(store);
        let fx: Effects =
            custody_domain::plan_members(&self.event, index, &self.registry, &view, next..end)?;
        let state = StoreView(store);
        let delta = observe_members(&state, index, &self.event, &fx)?;
        let size = store.tree_size().map_err(|e| storage("tree size", e))?;
        let mut commit = Commit {
            first_index: size,
            ..Commit::default()
        };
        commit
            .index
            .extend(retention_writes(&delta.after(&state), &fx)?);
        commit.index.extend(index_writes(
            index,
            &self.event.reporter,
            self.event.reporter_seq,
            &fx,
        ));
        commit
            .index
            .extend(findings_writes_from(index, ordinal, &delta));
        commit.index.extend(
            scope_writes(store, commit.first_index, &commit.index)
                .map_err(|e| storage("breach-scope counts", e))?,
        );
        let ordinal = ordinal.saturating_add(u32::try_from(delta.raised.len()).unwrap_or(u32::MAX));
        let last = end >= len;
        commit.index.push(if last {
            KvWrite {
                cf: IndexCf::DerivedMeta,
                key: JOB_KEY.to_vec(),
                value: None,
            }
        } else {
            record(index, end as u64, ordinal)
        });
        Ok((
            commit,
            Slice {
                next: end,
                ordinal,
                last,
            },
        ))
    }

    /// `applied` moves the job past `slice`, from [`BulkJob::apply_slice`],
    /// once its commit is durable.
    pub fn applied(&mut self, slice: Slice) {
        if let Stage::Apply { next, ordinal, .. } = &mut self.stage {
            *next = slice.next;
            *ordinal = slice.ordinal;
        }
    }

    /// `appended` is the acknowledgement once the job is done.
    pub fn appended(&self) -> Option<Appended> {
        self.index().map(|index| Appended {
            index,
            duplicate: false,
        })
    }
}

fn signers(envelope: &SignedEnvelope) -> Vec<KeyId> {
    envelope.signatures.iter().map(|s| s.key_id).collect()
}

/// `encode_entry` is the entry of `envelope` integrated at `time`, within
/// the entry size limit.
pub(crate) fn encode_entry(envelope: &SignedEnvelope, time: i64) -> Result<Vec<u8>, Refusal> {
    let entry = v1::LogEntry {
        content: Some(v1::log_entry::Content::Event(envelope_to_proto(envelope))),
        integrated_time_unix_nanos: time,
    }
    .encode_to_vec();
    if entry.len() > custody_domain::MAX_ENTRY_BYTES {
        return Err(Refusal::invalid(
            "event",
            format!(
                "the entry would be {} bytes; the limit is 65535",
                entry.len()
            ),
        ));
    }
    Ok(entry)
}

fn record(index: u64, next: u64, ordinal: u32) -> KvWrite {
    let mut v = index.to_be_bytes().to_vec();
    v.extend_from_slice(&next.to_be_bytes());
    v.extend_from_slice(&ordinal.to_be_bytes());
    KvWrite {
        cf: IndexCf::DerivedMeta,
        key: JOB_KEY.to_vec(),
        value: Some(v),
    }
}

fn parse_record(v: &[u8]) -> Option<(u64, u64, u32)> {
    let index = u64::from_be_bytes(v.get(0..8)?.try_into().ok()?);
    let next = u64::from_be_bytes(v.get(8..16)?.try_into().ok()?);
    let ordinal = u32::from_be_bytes(v.get(16..20)?.try_into().ok()?);
    (v.len() == 20).then_some((index, next, ordinal))
}
