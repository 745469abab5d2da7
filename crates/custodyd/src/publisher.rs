//! Stage 2 of the append path: publish checkpoints.
//!
//! Contract:
//! - The publisher MUST only sign trees that are durable: it reads the size
//!   the sequencer announces after each commit.
//! - While the tree grows it MUST publish at least once per interval (one
//!   second at most), store every checkpoint it publishes, and only then
//!   show it to readers and waiters.
//! - With witnesses configured ([`crate::witnessing`]) it MUST publish a
//!   checkpoint only once enough of them cosigned it; until then the
//!   latest checkpoint stays as it was.

use std::sync::Arc;
use std::time::Duration;

use custody_log::tree_root;

use crate::state::{LogState, PublishedCheckpoint};
use crate::witnessing::Witnesses;

/// `publish` signs a checkpoint of `size`, has it cosigned by
/// `witnesses` (when there are any), stores it and makes it the latest.
///
/// # Errors
///
/// If the root cannot be computed, signing or storing fails, or too few
/// witnesses cosign.
pub async fn publish(
    state: &Arc<LogState>,
    witnesses: Option<&Witnesses>,
    size: u64,
) -> anyhow::Result<Arc<PublishedCheckpoint>> {
    let st = state.clone();
    let (root, note) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let root = tree_root(size, &st.hashes())?;
        let note = st.signer.sign(size, &root)?;
        Ok((root, note))
    })
    .await??;
    let note = match witnesses {
        Some(w) => {
            let cosigned = w.cosign(state, size, &note).await?;
            // What is stored must still be the log's own checkpoint:
            // whatever witnesses answered, it verifies under the log key
            // with this size and root.
            let cp = custody_log::LogVerifier::new(state.signer.verifier_key())?
                .verify(&cosigned)
                .map_err(|e| anyhow::anyhow!("the cosigned checkpoint does not verify: {e}"))?;
            anyhow::ensure!(
                cp.size == size && cp.root == root,
                "the cosigned checkpoint is not the one signed"
            );
            cosigned
        }
        None => note,
    };
    let st = state.clone();
    tokio::task::spawn_blocking(move || store(&st, size, root, note)).await?
}

/// `store` stores a checkpoint and makes it the latest.
fn store(
    state: &LogState,
    size: u64,
    root: custody_log::Hash,
    note: Vec<u8>,
) -> anyhow::Result<Arc<PublishedCheckpoint>> {
    state.store.put_checkpoint(size, &note)?;
    state.metrics.published();
    let cp = Arc::new(PublishedCheckpoint { size, root, note });
    if size <= *state.indexed.borrow() {
        state.answerable.send_replace(cp.clone());
    }
    state.checkpoint.send_replace(cp.clone());
    Ok(cp)
}

/// `run` publishes a checkpoint every `interval` while the durable tree has
/// grown past the latest checkpoint. With witnesses, it first has the
/// latest checkpoint cosigned, if it is not. It returns when `shutdown`
/// resolves.
pub async fn run(
    state: Arc<LogState>,
    interval: Duration,
    witnesses: Option<Arc<Witnesses>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut durable = state.durable.subscribe();
    if let Some(w) = &witnesses {
        let size = state.latest().size;
        match publish(&state, Some(w), size).await {
            Ok(_) => tracing::info!(size, "latest checkpoint cosigned by its witnesses"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), size, "latest checkpoint not cosigned")
            }
        }
    }
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
        match publish(&state, witnesses.as_deref(), size).await {
            Ok(cp) => tracing::debug!(size = cp.size, "published checkpoint"),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), size, "publish checkpoint failed");
                // Not again at once: the tree has still grown.
                tokio::select! {
                    _ = tokio::time::sleep(interval.max(Duration::from_secs(1))) => {},
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}
