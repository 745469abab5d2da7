//! Shared service state.

use std::sync::Arc;

use custody_domain::Registry;
use custody_log::{Hash, HashSource, LogSigner};
use custody_store::{LogStore, StoreError};
use tokio::sync::watch;

/// `PublishedCheckpoint` is a signed checkpoint the log has published.
#[derive(Debug, Clone)]
pub struct PublishedCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
    /// The signed note.
    pub note: Vec<u8>,
}

/// `LogState` is what every handler shares, behind an `Arc`.
pub struct LogState {
    /// Durable storage.
    pub store: Arc<dyn LogStore>,
    /// Signs checkpoints; never printed.
    pub signer: LogSigner,
    /// The durable tree size, advanced by the sequencer after each commit.
    pub durable: watch::Sender<u64>,
    /// The latest published checkpoint; readers serve from it, so they
    /// only ever show checkpointed data.
    pub checkpoint: watch::Sender<Arc<PublishedCheckpoint>>,
    /// The registry at the durable tree size, replaced by the sequencer
    /// after each commit that changes it; queries read keys and system
    /// owners from it.
    pub registry: watch::Sender<Arc<Registry>>,
}

impl LogState {
    /// `latest` is the latest published checkpoint.
    pub fn latest(&self) -> Arc<PublishedCheckpoint> {
        self.checkpoint.borrow().clone()
    }

    /// `registry` is the registry at the durable tree size.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.borrow().clone()
    }

    /// `hashes` adapts the store for the log core's tree math.
    pub fn hashes(&self) -> StoreHashes<'_> {
        StoreHashes(self.store.as_ref())
    }
}

/// `StoreHashes` is a [`LogStore`] seen as a [`HashSource`].
pub struct StoreHashes<'a>(pub &'a dyn LogStore);

impl HashSource for StoreHashes<'_> {
    type Error = StoreError;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        Ok(self.0.read_hashes(indexes)?.into_iter().map(Hash).collect())
    }
}
