//! Findings answers. The findings' derived state is written by the
//! sequencer in each entry's own batch (`custody_store::index` and
//! `custody_domain::findings::observe`), so there is nothing to replay at
//! start-up: a question is answered from the store at once.
//!
//! Contract:
//! - An answer as of checkpoint size N is what a replay of the first N
//!   entries gives (`custody_domain::findings::findings_at`), however many
//!   entries were logged since.
//! - An answer holds at most one page of findings in memory
//!   (`PageCutter`), however many findings the log supports; nothing is
//!   kept between questions.
//! - The findings entries raised are read from the page's cursor on, and
//!   counted from `findings_counts` (`findings_page`), for any filter of
//!   rule alone: such an answer costs its page and the time-based rules,
//!   not the log.
//! - It reads one snapshot of the store, so entries committed while it
//!   runs change nothing in it.
//! - It never runs on the async runtime's threads, and only a few
//!   evaluations run at once.

use std::sync::Arc;

use custody_domain::findings::{
    find_finding, findings_page, Finding, FindingsFilter, FindingsPage,
};
use custody_domain::Timestamp;
use custody_store::index::StoreView;

use crate::answer::AnswerError;
use crate::state::LogState;

/// `Findings` answers findings questions.
pub struct Findings {
    state: Arc<LogState>,
    /// Evaluations that may run at once; more wait for a turn instead of
    /// each taking a blocking thread.
    evaluating: tokio::sync::Semaphore,
}

/// Evaluations at once.
const EVALUATIONS: usize = 2;

impl Findings {
    /// `new` answers from `state`'s store, under the policy its log
    /// publishes.
    pub fn new(state: Arc<LogState>) -> Arc<Self> {
        Arc::new(Self {
            state,
            evaluating: tokio::sync::Semaphore::new(EVALUATIONS),
        })
    }

    /// `page` is up to `limit` findings matching `filter` after `after`,
    /// as of `as_of` over the log's first `size` entries, with the counts
    /// of [`FindingsPage`].
    ///
    /// # Errors
    ///
    /// [`AnswerError::Unavailable`] when `size` is not durable yet or the
    /// server is shutting down, [`AnswerError::Internal`] when the store
    /// fails.
    pub async fn page(
        self: &Arc<Self>,
        size: u64,
        as_of: Timestamp,
        filter: FindingsFilter,
        after: Option<(Timestamp, String)>,
        limit: usize,
    ) -> Result<FindingsPage, AnswerError> {
        self.visit(size, move |me| {
            let registry = me.state.registry();
            let snapshot = me.snapshot()?;
            findings_page(
                &StoreView(snapshot.as_ref()),
                &registry,
                size,
                as_of,
                &filter,
                after.as_ref(),
                limit,
            )
            .map_err(|e| AnswerError::internal("findings", e))
        })
        .await
    }

    /// `find` is the finding with id `id` as of `as_of` over the log's
    /// first `size` entries, if there is one.
    ///
    /// # Errors
    ///
    /// As [`Findings::page`].
    pub async fn find(
        self: &Arc<Self>,
        size: u64,
        as_of: Timestamp,
        id: String,
    ) -> Result<Option<Finding>, AnswerError> {
        self.visit(size, move |me| {
            let registry = me.state.registry();
            let snapshot = me.snapshot()?;
            find_finding(&StoreView(snapshot.as_ref()), &registry, size, as_of, &id)
                .map_err(|e| AnswerError::internal("findings", e))
        })
        .await
    }

    /// `visit` runs `work` on a blocking thread once a turn is free.
    async fn visit<T: Send + 'static>(
        self: &Arc<Self>,
        size: u64,
        work: impl FnOnce(&Self) -> Result<T, AnswerError> + Send + 'static,
    ) -> Result<T, AnswerError> {
        let durable = *self.state.durable.borrow();
        if size > durable {
            return Err(AnswerError::Unavailable(format!(
                "the log holds {durable} durable entries, fewer than the {size} asked about"
            )));
        }
        let _turn = self
            .evaluating
            .acquire()
            .await
            .map_err(|_| AnswerError::Unavailable("the server is shutting down".to_owned()))?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || work(&me))
            .await
            .map_err(|e| AnswerError::internal("findings task", e))?
    }

    /// `snapshot` is one snapshot for a whole answer: its scans then read
    /// one state of the store, however many entries are committed
    /// meanwhile.
    fn snapshot(&self) -> Result<Box<dyn custody_store::IndexRead + '_>, AnswerError> {
        Ok(self.state.store.index_snapshot()?)
    }
}
