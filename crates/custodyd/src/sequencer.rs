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

use std::sync::Arc;

pub use custody_admission::{grow_tree, load_registry, sequence_batch, Appended, Sequenced};
use custody_domain::findings::Policy;
use custody_domain::{Refusal, Registry, SignedEnvelope};

use custody_proto::v1;
use prost::Message as _;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::init::now_nanos;
use crate::state::LogState;

/// `Submission` is one event waiting to be sequenced.
pub struct Submission {
    /// The envelope, shape-checked.
    pub envelope: SignedEnvelope,
    /// Where the verdict goes.
    pub reply: oneshot::Sender<Result<Appended, Refusal>>,
    /// Its share of the queue's byte budget, given back when the
    /// submission is dropped (after its verdict).
    _bytes: OwnedSemaphorePermit,
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
    /// The findings policy (its reporting deadline applies as entries are
    /// logged).
    policy: Policy,
}

impl Sequencer {
    /// `start` spawns the sequencer on its own thread and returns the handle
    /// to submit to. `queue` bounds the submissions waiting.
    ///
    /// # Errors
    ///
    /// If the store cannot be read.
    pub fn start(
        state: Arc<LogState>,
        queue: usize,
        queue_bytes: usize,
        max_batch: usize,
        policy: Policy,
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
        let (tx, rx) = mpsc::channel(queue);
        let mut seq = Sequencer {
            state,
            registry,
            size,
            last_time,
            max_batch,
            policy,
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
        let mut batch = Vec::with_capacity(self.max_batch);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(s) => batch.push(s),
                    Err(_) => break,
                }
            }
            self.process(std::mem::take(&mut batch));
        }
        tracing::info!("sequencer stopped: all submitters gone");
    }

    fn process(&mut self, batch: Vec<Submission>) {
        // Keys are checked at the integration time, which a verifier can
        // read from the entry.
        let time = now_nanos().max(self.last_time);
        let envelopes: Vec<&SignedEnvelope> = batch.iter().map(|s| &s.envelope).collect();
        let Sequenced {
            mut commit,
            registry: changed,
            verdicts,
        } = sequence_batch(
            self.state.store.as_ref(),
            &self.registry,
            self.size,
            &self.policy,
            &envelopes,
            time,
        );

        if !commit.entries.is_empty() {
            let result = grow_tree(&mut commit, &self.state.hashes())
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    self.state
                        .store
                        .commit(&commit)
                        .map_err(anyhow::Error::from)
                });
            if let Err(e) = result {
                tracing::error!(error = %e, "commit failed; refusing the batch");
                for (sub, _) in batch.into_iter().zip(verdicts) {
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
            }
            self.state.durable.send_replace(self.size);
        }
        for (sub, v) in batch.into_iter().zip(verdicts) {
            // The submitter may have gone away; the entry stays logged.
            let _ = sub.reply.send(v);
        }
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
