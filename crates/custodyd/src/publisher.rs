//! Stage 2 of the append path: publish checkpoints.
//!
//! Contract:
//! - The publisher MUST only sign trees that are durable: it reads the size
//!   the sequencer announces after each commit.
//! - While the tree grows it MUST publish at least once per interval (one
//!   second at most), store every checkpoint it publishes, and only then
//!   show it to readers and waiters.

use std::sync::Arc;
use std::time::Duration;

use custody_log::tree_root;

use crate::state::{LogState, PublishedCheckpoint};

/// `publish` signs and stores a checkpoint of `size` and makes it the
/// latest.
///
/// # Errors
///
/// If the root cannot be computed, or signing or storing fails.
pub fn publish(state: &LogState, size: u64) -> anyhow::Result<Arc<PublishedCheckpoint>> {
    let root = tree_root(size, &state.hashes())?;
    let note = state.signer.sign(size, &root)?;
    state.store.put_checkpoint(size, &note)?;
    let cp = Arc::new(PublishedCheckpoint { size, root, note });
    if size <= *state.indexed.borrow() {
        state.answerable.send_replace(cp.clone());
    }
    state.checkpoint.send_replace(cp.clone());
    Ok(cp)
}

/// `run` publishes a checkpoint every `interval` while the durable tree has
/// grown past the latest checkpoint. It returns when `shutdown` resolves.
pub async fn run(
    state: Arc<LogState>,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut durable = state.durable.subscribe();
    loop {
        // Wait for growth, then give the batch window `interval` to fill.
        let grown = {
            let latest = state.latest().size;
            durable.wait_for(move |s| *s > latest)
        };
        tokio::select! {
            r = grown => if r.is_err() { return },
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {},
            _ = shutdown.changed() => return,
        }
        let size = *state.durable.borrow();
        let st = state.clone();
        match tokio::task::spawn_blocking(move || publish(&st, size)).await {
            Ok(Ok(cp)) => tracing::debug!(size = cp.size, "published checkpoint"),
            Ok(Err(e)) => tracing::error!(error = %e, size, "publish checkpoint failed"),
            Err(e) => tracing::error!(error = %e, "publisher task failed"),
        }
    }
}
