//! Stage 3 of the append path: findings. It follows the durable log,
//! replaying each new entry into an in-memory [`Replay`] (registry,
//! custody state, findings engine), so that asking for findings is cheap.
//!
//! Contract:
//! - It MUST only read durable entries, in log order, each once.
//! - It MUST use the same domain code as `custody audit` (`Replay`), so a
//!   replay of the log by anyone gives the same findings.
//! - It never blocks the write path: it runs on its own task and catches
//!   up after a restart by replaying from the start.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};

use custody_domain::findings::{Finding, Policy};
use custody_domain::replay::{ManifestSource, Replay};
use custody_domain::{Digest, KeyId, ManifestRef, Refusal};
use custody_proto::{decode_entry, decode_event, Entry};
use custody_store::{index, LogStore};
use tokio::sync::watch;

use crate::state::LogState;

/// `Findings` is the stage's shared state.
pub struct Findings {
    /// The replay, as of `processed` entries. The stage takes it to write
    /// for one chunk of entries at a time; queries read it together in
    /// between.
    replay: RwLock<Option<Replay>>,
    /// How many entries the replay has applied.
    pub processed: watch::Sender<u64>,
    /// Why the stage stopped, if it did.
    failed: Mutex<Option<String>>,
    /// The last few answers, by (size, as of), so the pages of one
    /// question (whose token pins both) are cut from one evaluation while
    /// other questions are asked.
    answers: Mutex<VecDeque<Answer>>,
    /// Evaluations that may run at once; more wait for a turn instead of
    /// each taking a blocking thread and the replay's read lock.
    evaluating: tokio::sync::Semaphore,
}

/// Answers kept.
const ANSWERS: usize = 8;

/// Evaluations at once.
const EVALUATIONS: usize = 2;

/// `Answer` is the findings as of (entries applied, time).
type Answer = (u64, i64, Arc<Vec<Finding>>);

/// Entries the stage applies per hold of the replay's lock.
const CHUNK: u64 = 1000;

struct StoreManifests<'a>(&'a dyn LogStore);

impl ManifestSource for StoreManifests<'_> {
    fn members(&self, m: &ManifestRef) -> Result<Option<Arc<Vec<Digest>>>, Refusal> {
        let fail = |e: custody_store::StoreError| Refusal::exhausted(format!("read manifest: {e}"));
        match index::manifest_count(self.0, &m.root).map_err(fail)? {
            Some(n) if n == m.count => Ok(Some(Arc::new(
                index::manifest_members(self.0, &m.root, 0, n as usize).map_err(fail)?,
            ))),
            _ => Ok(None),
        }
    }
}

impl Findings {
    /// `start` spawns the stage on the current runtime.
    pub fn start(state: Arc<LogState>, policy: Policy) -> Arc<Self> {
        let (processed, _) = watch::channel(0);
        let me = Arc::new(Self {
            replay: RwLock::new(None),
            processed,
            failed: Mutex::new(None),
            answers: Mutex::new(VecDeque::new()),
            evaluating: tokio::sync::Semaphore::new(EVALUATIONS),
        });
        let stage = me.clone();
        tokio::spawn(async move {
            let mut durable = state.durable.subscribe();
            loop {
                let target = *durable.borrow_and_update();
                let st = state.clone();
                let stg = stage.clone();
                let r = tokio::task::spawn_blocking(move || stg.catch_up(&st, target, policy))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
                if let Err(e) = r {
                    tracing::error!(error = %e, "findings stage stopped");
                    if let Ok(mut f) = stage.failed.lock() {
                        *f = Some(e);
                    }
                    return;
                }
                if durable.changed().await.is_err() {
                    return;
                }
            }
        });
        me
    }

    fn catch_up(&self, state: &LogState, target: u64, policy: Policy) -> Result<(), String> {
        let store = state.store.as_ref();
        loop {
            let mut guard = self
                .replay
                .write()
                .map_err(|_| "findings replay lock poisoned".to_owned())?;
            if guard.is_none() {
                let genesis = match store
                    .read_entries(0, 1)
                    .map_err(|e| e.to_string())?
                    .first()
                    .map(|e| decode_entry(e))
                {
                    Some(Ok(Entry::Genesis(g))) => g,
                    _ => return Err("entry 0 is not a genesis entry".into()),
                };
                *guard = Some(Replay::new(&genesis, policy).map_err(|e| e.to_string())?);
            }
            let Some(replay) = guard.as_mut() else {
                return Err("findings replay missing".into());
            };
            // Published even when there is nothing to apply, so a log that
            // holds only its genesis entry answers at once.
            self.processed.send_replace(replay.size);
            if replay.size >= target {
                return Ok(());
            }
            let end = target.min(replay.size + CHUNK);
            let entries = store
                .read_entries(replay.size, end)
                .map_err(|e| e.to_string())?;
            for (i, bytes) in (replay.size..end).zip(entries) {
                let Ok(Entry::Event {
                    envelope,
                    integrated_time,
                }) = decode_entry(&bytes)
                else {
                    return Err(format!("entry {i} is not a signed event"));
                };
                let event = decode_event(&envelope.body).map_err(|e| format!("entry {i}: {e}"))?;
                let signers: Vec<KeyId> = envelope.signatures.iter().map(|s| s.key_id).collect();
                replay
                    .apply(i, &event, &signers, integrated_time, &StoreManifests(store))
                    .map_err(|e| format!("entry {i} does not replay: {e}"))?;
            }
            self.processed.send_replace(replay.size);
        }
    }

    /// `findings` is every finding as of `as_of` whose entries are all
    /// below `size`, once the stage has applied `size` entries. It is
    /// evaluated on a blocking thread, never on the async runtime's, and
    /// the last answer is kept for the next page of the same question.
    ///
    /// # Errors
    ///
    /// A message when the stage stopped or is still catching up.
    pub async fn findings(
        self: &Arc<Self>,
        size: u64,
        as_of: i64,
    ) -> Result<Arc<Vec<Finding>>, String> {
        if let Ok(f) = self.failed.lock() {
            if let Some(e) = f.as_ref() {
                return Err(format!("the findings stage stopped: {e}"));
            }
        }
        let mut rx = self.processed.subscribe();
        // The watch's guard is dropped here, before the next await.
        let caught_up = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            rx.wait_for(|p| *p >= size),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if !caught_up {
            return Err(format!(
                "findings are still catching up: {} of {size} entries replayed; retry shortly",
                *self.processed.borrow()
            ));
        }
        if let Some(f) = self.cached(size, as_of) {
            return Ok(f);
        }
        let _turn = self
            .evaluating
            .acquire()
            .await
            .map_err(|_| "the findings stage is shutting down".to_owned())?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.evaluate(size, as_of))
            .await
            .map_err(|e| format!("findings task: {e}"))?
    }

    fn cached(&self, size: u64, as_of: i64) -> Option<Arc<Vec<Finding>>> {
        let answers = self.answers.lock().ok()?;
        answers
            .iter()
            .find(|(s, t, _)| (*s, *t) == (size, as_of))
            .map(|(_, _, f)| f.clone())
    }

    fn evaluate(&self, size: u64, as_of: i64) -> Result<Arc<Vec<Finding>>, String> {
        if let Some(f) = self.cached(size, as_of) {
            return Ok(f);
        }
        let out = {
            let guard = self
                .replay
                .read()
                .map_err(|_| "findings replay lock poisoned".to_owned())?;
            let Some(replay) = guard.as_ref() else {
                return Err("findings are not ready yet; retry shortly".into());
            };
            // As of the first `size` entries, whatever the replay has
            // applied since: the same answer every time it is asked.
            Arc::new(replay.findings_at(size, as_of))
        };
        if let Ok(mut answers) = self.answers.lock() {
            if answers.len() == ANSWERS {
                answers.pop_front();
            }
            answers.push_back((size, as_of, out.clone()));
        }
        Ok(out)
    }
}
