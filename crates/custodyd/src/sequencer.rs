//! Stage 1 of the append path: verify, validate, sequence, commit.
//!
//! Contract:
//! - The sequencer MUST NOT resolve a submission's reply with an index
//!   until the entry is durable (its `WriteBatch` was fsync'd).
//! - It MUST NOT write any part of a refused submission.
//! - The queue in front of it is bounded in submissions and in bytes; when
//!   either is full, submitters get `RESOURCE_EXHAUSTED` at once and
//!   nothing is buffered.
//! - Entries, their tree hashes, dedup records, registry marks, custody
//!   index updates and the findings' derived state are committed in one
//!   batch, so a crash leaves all or none of them, and nothing is derived
//!   again at start-up.
//! - No batch plans more than `slice` members of a manifest. A bulk event
//!   of more is a [`BulkJob`]: its members are checked a slice at a time,
//!   then its entry is logged with the job's record, then its members are
//!   applied a slice per commit, each between other reporters' batches.
//!   Until it ends, submissions that conflict with it are held back (in
//!   order, per reporter, once their signatures verify), registry entries
//!   logged before its entry restart its check, queries answer as of a
//!   checkpoint before it
//!   (`LogState::indexed`), and its submitter waits for its verdict. A
//!   restart resumes it from its record.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

pub use custody_admission::{
    admit_bounded, check_batch, grow_tree, load_registry, sequence_batch, verify_signatures,
    Appended, BulkJob, HeadStep, Sequenced,
};
use custody_domain::{Refusal, Registry, SignedEnvelope};
use custody_log::LogVerifier;
use custody_store::index::StoreView;

use custody_proto::{decode_event, v1};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::init::now_nanos;
use crate::state::{LogState, PublishedCheckpoint};

/// `Submission` is one event waiting to be sequenced.
pub struct Submission {
    /// The envelope, shape-checked.
    pub envelope: SignedEnvelope,
    /// Where the verdict goes.
    pub reply: oneshot::Sender<Result<Appended, Refusal>>,
    /// Its share of the queue's byte budget, given back when the
    /// submission is dropped (after its verdict).
    _bytes: OwnedSemaphorePermit,
    /// Whether a running bulk job already sent it back once to be looked
    /// at again after its batch (its key may arrive in that batch).
    rechecked: bool,
}

/// `queued_bytes` is what a waiting envelope is charged against the
/// queue's byte budget: its bytes plus a fixed overhead per submission.
fn queued_bytes(envelope: &SignedEnvelope) -> u32 {
    let n = envelope.body.len() + envelope.payload_type.len() + 96 * envelope.signatures.len();
    u32::try_from(n + 256).unwrap_or(u32::MAX)
}

/// `SequencerHandle` submits events to the sequencer.
#[derive(Clone)]
pub struct SequencerHandle {
    tx: mpsc::Sender<Submission>,
    /// Bytes that envelopes waiting for the sequencer may hold, so a flood
    /// of large envelopes (none of them signature-checked yet) is refused
    /// instead of held in memory.
    bytes: Arc<Semaphore>,
    /// The budget, for messages.
    budget: usize,
}

impl SequencerHandle {
    /// `depth` is what waits for the sequencer: submissions, and bytes.
    pub fn depth(&self) -> (usize, usize) {
        (
            self.tx.max_capacity().saturating_sub(self.tx.capacity()),
            self.budget.saturating_sub(self.bytes.available_permits()),
        )
    }

    /// `submit` queues an envelope and waits for its verdict.
    ///
    /// # Errors
    ///
    /// The event's [`Refusal`]; `ResourceExhausted` when the queue is full,
    /// by count or by bytes.
    pub async fn submit(&self, envelope: SignedEnvelope) -> Result<Appended, Refusal> {
        let charge = queued_bytes(&envelope);
        let permit = self.bytes.clone().try_acquire_many_owned(charge).map_err(|e| match e {
            TryAcquireError::NoPermits => Refusal::exhausted(format!(
                "the append queue holds its limit of {} bytes of waiting events; retry with backoff or send fewer large events at once",
                self.budget
            )),
            TryAcquireError::Closed => {
                Refusal::exhausted("the server is shutting down; retry shortly")
            }
        })?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Submission {
                envelope,
                reply,
                _bytes: permit,
                rechecked: false,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Refusal::exhausted(
                    "the append queue is full; retry with backoff or use fewer concurrent writers",
                ),
                mpsc::error::TrySendError::Closed(_) => {
                    Refusal::exhausted("the server is shutting down; retry shortly")
                }
            })?;
        rx.await.map_err(|_| {
            Refusal::exhausted("the sequencer stopped before this event was logged; retry")
        })?
    }
}

/// `DiskReserve` is the free space the disk holding the log keeps: below
/// it, appends are refused with RESOURCE_EXHAUSTED before RocksDB can run
/// out of space (which stops its writes until a restart), and they resume
/// by themselves once space is freed.
#[derive(Debug, Clone)]
pub struct DiskReserve {
    /// A directory on the disk: the database's.
    pub path: std::path::PathBuf,
    /// Bytes to keep free; 0 keeps none.
    pub min_free: u64,
}

impl DiskReserve {
    /// `check` refuses when the disk has less than the reserve free. A
    /// disk whose free space cannot be read passes (and is logged).
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] saying how much is free.
    pub fn check(&self) -> Result<(), Refusal> {
        if self.min_free == 0 {
            return Ok(());
        }
        let free = match rustix::fs::statvfs(&self.path) {
            Ok(v) => v.f_bavail.saturating_mul(v.f_frsize),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the disk's free space");
                return Ok(());
            }
        };
        if free >= self.min_free {
            return Ok(());
        }
        const MIB: u64 = 1 << 20;
        Err(Refusal::exhausted(format!(
            "the disk holding the log has {} MiB free, below the {} MiB it keeps in reserve; nothing was logged: free space on it, and appends resume by themselves",
            free / MIB,
            self.min_free / MIB
        )))
    }
}

/// `integration_time` is the time the next entry is integrated at: the
/// wall clock (plus `offset`, fault injection), but never before `last`,
/// the last entry's, so integration times never decrease even when the
/// clock steps back.
fn integration_time(offset: i64, last: i64) -> i64 {
    now_nanos().saturating_add(offset).max(last)
}

/// `Sequencer` owns the registry and the right to append.
pub struct Sequencer {
    /// Shared state: store and durable-size notifier.
    state: Arc<LogState>,
    /// The registry at the durable tree size.
    registry: Registry,
    /// Durable tree size.
    size: u64,
    /// Last integrated time, so integrated times never decrease.
    last_time: i64,
    /// Largest number of submissions taken into one batch.
    max_batch: usize,
    /// The free space appends leave on the disk.
    reserve: DiskReserve,
    /// Added to the wall clock: fault injection (a clock that steps back
    /// or jumps ahead), 0 in service.
    clock_offset: i64,
    /// Members of a manifest planned at once: a bulk event of more runs as
    /// a [`BulkJob`], a slice of this many at a time between batches.
    slice: usize,
    /// The bulk event being admitted, and who waits for its verdict
    /// (nobody, for one resumed after a restart).
    job: Option<(BulkJob, Option<Submission>)>,
    /// Submissions held back until the job ends (they conflict with it,
    /// or their reporter has one held), in arrival order; each still holds
    /// its share of the queue's byte budget, so they are bounded with it.
    held: VecDeque<Submission>,
    /// Reporters with a submission in `held`, and the bytes each holds
    /// there: at most [`Sequencer::held_limit`], so no reporter's held
    /// events crowd out the others'.
    held_reporters: HashMap<String, usize>,
    /// Set once a registry event waits in `held`: every later submission
    /// waits too, so none is judged before a registry change that came
    /// first (a revoked key or grant), nor a held one after it.
    barrier: bool,
    /// The keys that KEY_ADDED events waiting in `held` add: a submission
    /// signed with one waits behind it, unverified until then.
    held_keys: HashSet<custody_domain::KeyId>,
    /// The queue's byte budget, of which one reporter may hold an eighth.
    queue_bytes: usize,
    /// How long the last batch took: a bulk job's check gets as long.
    last_batch: std::time::Duration,
    /// Submissions to sequence before any newer one: the rest of a batch a
    /// bulk event stopped, and the held ones once the job ends.
    backlog: VecDeque<Submission>,
}

/// `DEFAULT_BULK_SLICE` is how many manifest members the sequencer plans
/// at once by default: a few milliseconds of work and one fsync'd commit
/// of about 8,000 keys, so other reporters' acks wait no longer than that
/// for a bulk event (BENCHMARKS.md: 2,048 gave small acks a p99 of about
/// 35 ms beside a 1,000,000-member event, 512 about 18 ms, for 10 % more
/// time to admit it).
pub const DEFAULT_BULK_SLICE: usize = 512;

/// `CHECK_BUDGET` is how long the sequencer checks a bulk event's members
/// between two batches of other submissions.
const CHECK_BUDGET: std::time::Duration = std::time::Duration::from_millis(5);

impl Sequencer {
    /// `start` spawns the sequencer on its own thread and returns the handle
    /// to submit to. `queue` bounds the submissions waiting. A bulk event
    /// the store says was logged and not yet applied in full is resumed
    /// first, and queries answer as of a checkpoint before it until done.
    ///
    /// # Errors
    ///
    /// If the store cannot be read.
    pub fn start(
        state: Arc<LogState>,
        queue: usize,
        queue_bytes: usize,
        max_batch: usize,
        slice: usize,
        reserve: DiskReserve,
        clock_offset: i64,
    ) -> anyhow::Result<SequencerHandle> {
        let registry = state.registry().as_ref().clone();
        let size = state.store.tree_size()?;
        let last_time = match state
            .store
            .read_entries(size.saturating_sub(1), size)?
            .first()
        {
            Some(e) => v1::LogEntry::decode(e.as_slice())
                .map(|e| e.integrated_time_unix_nanos)
                .unwrap_or(0),
            None => 0,
        };
        let job = BulkJob::resume(state.store.as_ref())?;
        if let Some(j) = &job {
            let below = j.indexed_below();
            let (cp_size, note) = state
                .store
                .checkpoint_at_or_below(below)?
                .ok_or_else(|| anyhow::anyhow!("no checkpoint before bulk entry {below}"))?;
            let cp = LogVerifier::new(state.signer.verifier_key())?.verify(&note)?;
            state.indexed.send_replace(below);
            state.answerable.send_replace(Arc::new(PublishedCheckpoint {
                size: cp_size,
                root: cp.root,
                note,
            }));
            tracing::warn!(
                index = below,
                applied = j.done(),
                members = j.members(),
                "resuming a bulk entry whose members were not all applied; queries answer as of tree size {cp_size} until it is done"
            );
        }
        let (tx, rx) = mpsc::channel(queue);
        let mut seq = Sequencer {
            state,
            registry,
            size,
            last_time,
            max_batch,
            reserve,
            clock_offset,
            slice: slice.max(1),
            job: job.map(|j| (j, None)),
            held: VecDeque::new(),
            held_reporters: HashMap::new(),
            barrier: false,
            held_keys: HashSet::new(),
            queue_bytes,
            last_batch: std::time::Duration::ZERO,
            backlog: VecDeque::new(),
        };
        std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || seq.run(rx))?;
        Ok(SequencerHandle {
            tx,
            bytes: Arc::new(Semaphore::new(queue_bytes.min(Semaphore::MAX_PERMITS))),
            budget: queue_bytes,
        })
    }

    fn run(&mut self, mut rx: mpsc::Receiver<Submission>) {
        let mut open = true;
        loop {
            let mut batch = Vec::with_capacity(self.max_batch);
            while batch.len() < self.max_batch {
                match self.backlog.pop_front() {
                    Some(s) => batch.push(s),
                    None => break,
                }
            }
            if batch.is_empty() && self.job.is_none() {
                if !open {
                    break;
                }
                match rx.blocking_recv() {
                    Some(s) => batch.push(s),
                    None => break,
                }
            }
            while open && batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(s) => batch.push(s),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                }
            }
            let mut again = Vec::new();
            if self.job.is_some() {
                (batch, again) = self.hold_back(batch);
            }
            // Admission and commit hold the upload gate shared, so an
            // unnamed manifest is never removed between the check that
            // it was uploaded and the commit that names it.
            let uploads = self.state.uploads.clone();
            let _shared = uploads.gate.read().unwrap_or_else(|e| e.into_inner());
            if !batch.is_empty() {
                let start = std::time::Instant::now();
                let n = batch.len();
                self.process(batch);
                self.last_batch = start.elapsed();
                if self.last_batch > std::time::Duration::from_millis(10) {
                    tracing::debug!(
                        n,
                        ms = self.last_batch.as_secs_f64() * 1e3,
                        "a batch took over 10 ms; events that arrived meanwhile waited for it"
                    );
                }
            }
            for s in again.into_iter().rev() {
                self.backlog.push_front(s);
            }
            if self.job.is_some() {
                let start = std::time::Instant::now();
                let stage =
                    self.job
                        .as_ref()
                        .map_or("none", |(j, _)| match (j.index(), j.checked()) {
                            (Some(_), _) => "apply",
                            (None, true) => "head",
                            (None, false) => "check",
                        });
                self.bulk_step();
                let took = start.elapsed();
                if took > std::time::Duration::from_millis(10) {
                    tracing::debug!(
                        stage,
                        ms = took.as_secs_f64() * 1e3,
                        "a bulk step took over 10 ms; events that arrived meanwhile waited for it"
                    );
                }
            }
        }
        tracing::info!("sequencer stopped: all submitters gone");
    }

    /// `held_limit` is the bytes of held submissions one reporter may
    /// have: an eighth of the queue's budget.
    fn held_limit(&self) -> usize {
        (self.queue_bytes / 8).max(1 << 17)
    }

    /// `hold_back` splits a batch taken while the bulk job runs: the
    /// submissions that may be sequenced now, and those to look at again
    /// after it (signed by a key no registry entry has added yet, which
    /// the batch may add); it holds back the rest until the job ends.
    /// A submission waits if [`BulkJob::conflicts`] says so, or its
    /// reporter has one waiting (each reporter's events keep their
    /// order), or it is a registry event while others wait, or a
    /// registry event waits (see `barrier`). Only what verifies waits,
    /// or what is signed by a key a waiting KEY_ADDED adds; anything else
    /// is refused in its batch, so nothing forged waits, nor makes the
    /// reporter it names wait.
    fn hold_back(&mut self, batch: Vec<Submission>) -> (Vec<Submission>, Vec<Submission>) {
        let Some((job, _)) = &self.job else {
            return (batch, Vec::new());
        };
        let view = StoreView(self.state.store.as_ref());
        let time = integration_time(self.clock_offset, self.last_time);
        let limit = self.held_limit();
        let mut keep = Vec::with_capacity(batch.len());
        let mut again: Vec<Submission> = Vec::new();
        // Reporters sent back in this batch: their later events follow.
        let mut later: HashSet<String> = HashSet::new();
        for mut sub in batch {
            let Ok(e) = decode_event(&sub.envelope.body) else {
                keep.push(sub);
                continue;
            };
            if later.contains(&e.reporter) {
                again.push(sub);
                continue;
            }
            let waits = self.barrier
                || self.held_reporters.contains_key(&e.reporter)
                || (e.body.is_registry() && !self.held.is_empty())
                || job.conflicts(&e, &view);
            if !waits {
                keep.push(sub);
                continue;
            }
            let unknown: Vec<custody_domain::KeyId> = sub
                .envelope
                .signatures
                .iter()
                .map(|s| s.key_id)
                .filter(|k| self.registry.key(k).is_none())
                .collect();
            let may_wait = if unknown.is_empty() {
                verify_signatures(&self.registry, &sub.envelope, &e, time).is_ok()
            } else if unknown.iter().all(|k| self.held_keys.contains(k)) {
                true
            } else if !sub.rechecked {
                sub.rechecked = true;
                later.insert(e.reporter);
                again.push(sub);
                continue;
            } else {
                false
            };
            if !may_wait {
                keep.push(sub);
                continue;
            }
            let charge = queued_bytes(&sub.envelope) as usize;
            let used = self.held_reporters.get(&e.reporter).copied().unwrap_or(0);
            if used + charge > limit {
                let _ = sub.reply.send(Err(Refusal::exhausted(format!(
                    "{} already has {used} bytes of events waiting for bulk entry {} to be applied; retry once it is",
                    e.reporter,
                    job.index().map_or_else(|| "(not yet logged)".to_owned(), |i| i.to_string())
                ))));
                continue;
            }
            if e.body.is_registry() {
                self.barrier = true;
                if let custody_domain::EventBody::KeyAdded(k) = &e.body {
                    self.held_keys
                        .insert(custody_domain::key_id_of(&k.public_key));
                }
            }
            *self.held_reporters.entry(e.reporter).or_default() += charge;
            self.held.push_back(sub);
        }
        (keep, again)
    }

    fn process(&mut self, mut batch: Vec<Submission>) {
        if let Err(r) = self.reserve.check() {
            tracing::warn!(error = %r, "appends refused");
            for sub in batch {
                let _ = sub.reply.send(Err(r.clone()));
            }
            return;
        }
        // Keys are checked at the integration time, which a verifier can
        // read from the entry.
        let time = integration_time(self.clock_offset, self.last_time);
        let envelopes: Vec<&SignedEnvelope> = batch.iter().map(|s| &s.envelope).collect();
        // Decoding and signatures on all cores, then admission in order.
        let checked = check_batch(&self.registry, &envelopes);
        let Sequenced {
            mut commit,
            registry: changed,
            verdicts,
            bulk,
        } = admit_bounded(
            self.state.store.as_ref(),
            &self.registry,
            self.size,
            &envelopes,
            checked,
            time,
            self.slice,
        );
        // A bulk event stops the batch: it becomes the job, and the
        // submissions after it go back to the head of the line.
        let rest = match &bulk {
            Some(b) => batch.split_off(b.position),
            None => Vec::new(),
        };

        if !commit.entries.is_empty() {
            let result = grow_tree(&mut commit, &self.state.hashes())
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    let started = std::time::Instant::now();
                    self.state.store.commit(&commit)?;
                    let m = &self.state.metrics;
                    m.commit_seconds.observe(started.elapsed().as_secs_f64());
                    m.batch_entries.observe(commit.entries.len() as f64);
                    m.appended.inc_by(commit.entries.len() as u64);
                    Ok(())
                });
            if let Err(e) = result {
                tracing::error!(error = %e, "commit failed; refusing the batch");
                for sub in batch.into_iter().chain(rest) {
                    let _ = sub.reply.send(Err(Refusal::exhausted(
                        "the log could not make this batch durable; nothing was logged, retry",
                    )));
                }
                return;
            }
            self.size += commit.entries.len() as u64;
            self.last_time = time;
            if let Some(r) = changed {
                self.registry = r;
                self.state
                    .registry
                    .send_replace(Arc::new(self.registry.clone()));
                if let Some((job, _)) = self.job.as_mut() {
                    job.registry_changed(&self.registry);
                }
            }
            self.state.durable.send_replace(self.size);
        }
        for (sub, v) in batch.into_iter().zip(verdicts) {
            // The submitter may have gone away; the entry stays logged.
            let _ = sub.reply.send(v);
        }
        let Some(candidate) = bulk else {
            return;
        };
        let mut rest = rest.into_iter();
        let Some(sub) = rest.next() else {
            return;
        };
        for s in rest.rev() {
            self.backlog.push_front(s);
        }
        match BulkJob::begin(
            self.state.store.as_ref(),
            &self.registry,
            &sub.envelope,
            candidate.event,
            candidate.unverified.as_deref(),
            time,
        ) {
            Ok(job) => {
                tracing::info!(
                    members = job.members(),
                    reporter = %job.event().reporter,
                    "admitting a bulk event in slices of {}",
                    self.slice
                );
                self.job = Some((job, Some(sub)));
            }
            Err(r) => {
                let _ = sub.reply.send(Err(r));
            }
        }
    }

    /// `bulk_step` does one slice of the bulk job: checks a slice of its
    /// members, or logs its entry once all are checked, or applies a slice
    /// of them once it is logged; and ends it when it is done or refused.
    fn bulk_step(&mut self) {
        if let Some(verdict) = self.bulk_slice() {
            self.end_job(verdict);
        }
    }

    /// `bulk_slice` is [`Sequencer::bulk_step`]'s work, and the job's
    /// verdict if it ended.
    fn bulk_slice(&mut self) -> Option<Result<Appended, Refusal>> {
        let (job, _) = self.job.as_mut()?;
        let store = self.state.store.clone();
        let Some(index) = job.index() else {
            if !job.checked() {
                // Checking writes nothing, so it takes slices for as long
                // as the last batch took (CHECK_BUDGET at least) before
                // the next: a bulk event gets half the sequencer, and is
                // not logged ever later behind traffic that came after it.
                let start = std::time::Instant::now();
                let budget = CHECK_BUDGET.max(self.last_batch);
                loop {
                    match job.check_slice(store.as_ref(), self.slice) {
                        Err(r) => return Some(Err(r)),
                        Ok(true) => return None,
                        Ok(false) if start.elapsed() >= budget => return None,
                        Ok(false) => {}
                    }
                }
            }
            if let Err(r) = self.reserve.check() {
                return Some(Err(r));
            }
            let time = integration_time(self.clock_offset, self.last_time);
            // Queries stop at a checkpoint before the entry until its
            // members are all applied; set before any checkpoint holds it.
            // Every entry before it is complete, so the latest checkpoint
            // (which cannot hold it yet) answers.
            self.state.answerable.send_replace(self.state.latest());
            self.state.indexed.send_replace(self.size);
            let mut commit = match job.head(store.as_ref(), &self.registry, self.size, time) {
                Err(r) => return Some(Err(r)),
                Ok(HeadStep::Duplicate(a)) => return Some(Ok(a)),
                Ok(HeadStep::Logged(c)) => c,
            };
            let result = grow_tree(&mut commit, &self.state.hashes())
                .map_err(anyhow::Error::from)
                .and_then(|()| store.commit(&commit).map_err(anyhow::Error::from));
            if result.is_ok() {
                self.state.metrics.appended.inc();
            }
            if let Err(e) = result {
                tracing::error!(error = %e, "commit failed; refusing the bulk event");
                return Some(Err(Refusal::exhausted(
                    "the log could not make this event durable; nothing was logged, retry",
                )));
            }
            self.size += 1;
            self.last_time = time;
            self.state.durable.send_replace(self.size);
            return None;
        };
        let done = Appended {
            index,
            duplicate: false,
        };
        // A logged bulk entry must be applied in full: with the disk below
        // its reserve, it waits.
        if let Err(r) = self.reserve.check() {
            tracing::warn!(index, error = %r, "applying a bulk entry waits for disk space");
            std::thread::sleep(std::time::Duration::from_millis(100));
            return None;
        }
        match job.apply_slice(store.as_ref(), self.slice) {
            Ok((commit, slice)) => match store.commit(&commit) {
                Ok(()) => {
                    job.applied(slice);
                    return slice.last.then_some(Ok(done));
                }
                Err(e) => tracing::error!(error = %e, "committing a bulk slice failed; retrying"),
            },
            Err(r) if r.kind == custody_domain::RefusalKind::ResourceExhausted => {
                tracing::error!(error = %r, "reading a bulk slice failed; retrying");
            }
            Err(r) => {
                // Holding back conflicting events makes this impossible;
                // if it happens, say so loudly, with the entry.
                tracing::error!(
                    index,
                    applied = job.done(),
                    error = %r,
                    "ALARM: bulk entry {index} is logged but its members from {} on could not be applied; its custody and findings are incomplete",
                    job.done()
                );
                return Some(Ok(done));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        None
    }

    /// `end_job` answers the bulk event's submitter, lets queries answer
    /// as of the latest checkpoint again, and puts the held submissions
    /// back in line, ahead of newer ones.
    fn end_job(&mut self, verdict: Result<Appended, Refusal>) {
        // Queries answer as of the latest checkpoint again before the
        // submitter hears, so a question asked after the ack sees the
        // event (a checkpoint holding it may already be published).
        self.state.indexed.send_replace(u64::MAX);
        if let Some((_, Some(sub))) = self.job.take() {
            let _ = sub.reply.send(verdict);
        }
        for s in self.held.drain(..).rev() {
            self.backlog.push_front(s);
        }
        self.held_reporters.clear();
        self.held_keys.clear();
        self.barrier = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_domain::{EventSignature, KeyId, PAYLOAD_TYPE};

    fn envelope(body_len: usize) -> SignedEnvelope {
        SignedEnvelope {
            payload_type: PAYLOAD_TYPE.into(),
            body: vec![0; body_len],
            signatures: vec![EventSignature {
                key_id: KeyId([1; 16]),
                sig: [2; 64],
            }],
        }
    }

    /// A flood of large envelopes fills the byte budget long before the
    /// count limit, and is refused there: what waits unverified is bounded
    /// in bytes. Once the waiting ones are answered, room returns.
    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes() {
        let (tx, mut rx) = mpsc::channel(1000);
        let budget = 1 << 20;
        let handle = SequencerHandle {
            tx,
            bytes: Arc::new(Semaphore::new(budget)),
            budget,
        };
        let mut waiting = Vec::new();
        let refused = loop {
            let h = handle.clone();
            let task = tokio::spawn(async move { h.submit(envelope(60_000)).await });
            tokio::task::yield_now().await;
            if task.is_finished() {
                break task.await.expect("task");
            }
            waiting.push(task);
            assert!(waiting.len() < 1000, "the byte budget never filled");
        };
        let r = refused.expect_err("refused");
        assert_eq!(r.kind, custody_domain::RefusalKind::ResourceExhausted);
        assert!(r.message.contains("1048576 bytes"), "{r}");
        // As many as the budget holds, by their charge, and not one more.
        let charge = queued_bytes(&envelope(60_000)) as usize;
        assert!(charge > 60_000);
        assert_eq!(waiting.len(), budget / charge);
        // Answer them; the budget is free again.
        while let Ok(s) = rx.try_recv() {
            let _ = s.reply.send(Ok(Appended {
                index: 1,
                duplicate: false,
            }));
        }
        for t in waiting {
            assert!(t.await.expect("task").is_ok());
        }
        assert_eq!(handle.bytes.available_permits(), budget);
    }
}
