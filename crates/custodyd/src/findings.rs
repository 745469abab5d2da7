//! Findings answers. The findings' derived state is written by the
//! sequencer in each entry's own batch (`custody_store::index` and
//! `custody_domain::findings::observe`), so there is nothing to replay at
//! start-up: a question is answered from the store at once.
//!
//! Contract:
//! - An answer as of checkpoint size N is what a replay of the first N
//!   entries gives (`custody_domain::findings::findings_at`), however many
//!   entries were logged since.
//! - It never runs on the async runtime's threads, and only a few
//!   evaluations run at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use custody_domain::findings::{findings_at, Finding, Policy};
use custody_store::index::StoreView;

use crate::state::LogState;

/// `Findings` answers findings questions.
pub struct Findings {
    state: Arc<LogState>,
    policy: Policy,
    /// The last few answers, by (size, as of), so the pages of one
    /// question (whose token pins both) are cut from one evaluation while
    /// other questions are asked.
    answers: Mutex<VecDeque<Answer>>,
    /// Evaluations that may run at once; more wait for a turn instead of
    /// each taking a blocking thread.
    evaluating: tokio::sync::Semaphore,
}

/// Answers kept.
const ANSWERS: usize = 8;

/// Evaluations at once.
const EVALUATIONS: usize = 2;

/// `Answer` is the findings as of (entries, time).
type Answer = (u64, i64, Arc<Vec<Finding>>);

impl Findings {
    /// `new` answers from `state`'s store with `policy`.
    pub fn new(state: Arc<LogState>, policy: Policy) -> Arc<Self> {
        Arc::new(Self {
            state,
            policy,
            answers: Mutex::new(VecDeque::new()),
            evaluating: tokio::sync::Semaphore::new(EVALUATIONS),
        })
    }

    /// `findings` is every finding as of `as_of` that the log's first
    /// `size` entries support. It is evaluated on a blocking thread, and
    /// the last answers are kept for the next page of the same question.
    ///
    /// # Errors
    ///
    /// A message when `size` is not durable yet or the store fails.
    pub async fn findings(
        self: &Arc<Self>,
        size: u64,
        as_of: i64,
    ) -> Result<Arc<Vec<Finding>>, String> {
        let durable = *self.state.durable.borrow();
        if size > durable {
            return Err(format!(
                "the log holds {durable} durable entries, fewer than the {size} asked about"
            ));
        }
        if let Some(f) = self.cached(size, as_of) {
            return Ok(f);
        }
        let _turn = self
            .evaluating
            .acquire()
            .await
            .map_err(|_| "the server is shutting down".to_owned())?;
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
        let registry = self.state.registry();
        let out = Arc::new(
            findings_at(
                &self.policy,
                &StoreView(self.state.store.as_ref()),
                &registry,
                size,
                as_of,
            )
            .map_err(|e| e.to_string())?,
        );
        if let Ok(mut answers) = self.answers.lock() {
            if answers.len() == ANSWERS {
                answers.pop_front();
            }
            answers.push_back((size, as_of, out.clone()));
        }
        Ok(out)
    }
}
