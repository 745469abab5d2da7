//! Shared service state.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custody_domain::Registry;
use custody_log::{Cached, Hash, HashCache, LogSigner};
use custody_store::LogStore;
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
    /// The findings stage, once started; the web view's findings page
    /// reads it (the gRPC service holds its own handle).
    pub findings: std::sync::OnceLock<Arc<crate::findings::Findings>>,
    /// Recent (time, size) samples of published checkpoints, so the web
    /// view can show an ingest rate without reading the log.
    pub ingest: IngestSamples,
    /// The tree's upper hashes, shared by every proof, tile and append;
    /// [`HASH_CACHE_CAPACITY`] of them at most.
    pub hash_cache: HashCache,
    /// Recent breach scopes' counts, so their later pages read only
    /// themselves.
    pub scopes: crate::query::ScopeMemo,
    /// The tree size below which every entry's derived state (custody
    /// indexes, findings) is complete: the index of a bulk entry whose
    /// members are still being applied in slices, else `u64::MAX`. Set by
    /// the sequencer before it logs such an entry.
    pub indexed: watch::Sender<u64>,
    /// The latest checkpoint published no larger than `indexed` was then:
    /// what queries answer as of while a bulk entry is being applied.
    pub answerable: watch::Sender<Arc<PublishedCheckpoint>>,
    /// Who may do what: the data directory's access list.
    pub access: crate::access::Access,
    /// Whether the tile API (checkpoint, hash and entry tiles) is served
    /// without a token (`--public-tiles`).
    pub public_tiles: bool,
    /// Manifest uploads in progress, and their limits.
    pub uploads: Arc<crate::uploads::Uploads>,
    /// Per-client request rates (`--rate-per-client`), if limited.
    pub rates: Option<crate::rate::Rates>,
    /// Each client's budget of refused appends (`--refused-per-client`).
    pub refusals: Option<Arc<crate::rate::Refusals>>,
    /// Metrics, for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Whether the server takes requests: true once both listeners
    /// serve, false again once it is shutting down (`/readyz`).
    pub ready: watch::Sender<bool>,
}

/// `HASH_CACHE_CAPACITY` bounds [`LogState::hash_cache`]: 262,144 hashes,
/// about 16 MiB. Hashes at level 8 and above number about one per 128
/// leaves, so this holds all of them up to 33 million entries, and the
/// hottest (the highest levels, shared by most proofs) beyond.
pub const HASH_CACHE_CAPACITY: usize = 1 << 18;

impl LogState {
    /// `admit` is who makes a request ([`crate::access::Access::caller`])
    /// once it has counted against that client's rate: the one check
    /// every gRPC request, streamed append and HTTP request passes.
    ///
    /// # Errors
    ///
    /// As `Access::caller`, and [`crate::answer::AnswerError::Exhausted`]
    /// over the client's rate.
    pub fn admit(
        &self,
        authorization: Option<&[u8]>,
        peer: Option<&crate::tls::Peer>,
    ) -> Result<crate::access::Caller, crate::answer::AnswerError> {
        let caller = self.access.caller(authorization, peer)?;
        self.count(Some(&caller), peer)?;
        Ok(caller)
    }

    /// `client` is whom a request with `authorization` from `peer` is
    /// counted against ([`crate::rate::client_of`]): its party when the
    /// access list knows its credentials, else its address.
    pub fn client(&self, authorization: Option<&[u8]>, peer: Option<&crate::tls::Peer>) -> String {
        let caller = self.access.caller(authorization, peer).ok();
        crate::rate::client_of(caller.as_ref(), peer)
    }

    /// `count` counts a request against its client's rate, for requests
    /// that need no credentials (public tiles).
    ///
    /// # Errors
    ///
    /// [`crate::answer::AnswerError::Exhausted`] over the client's rate.
    pub fn count(
        &self,
        caller: Option<&crate::access::Caller>,
        peer: Option<&crate::tls::Peer>,
    ) -> Result<(), crate::answer::AnswerError> {
        match &self.rates {
            Some(r) => r.take(&crate::rate::client_of(caller, peer)),
            None => Ok(()),
        }
    }

    /// `may_append` turns `client`'s appends away, unread, once it has
    /// had too many refused ([`crate::rate::Refusals`]).
    ///
    /// # Errors
    ///
    /// [`crate::rate::TurnedAway`] when it has. Otherwise the append's
    /// place in the client's budget, if it holds one: keep it until the
    /// verdict (and any charge) is in.
    pub fn may_append(
        &self,
        client: &str,
    ) -> Result<Option<crate::rate::Pending>, crate::rate::TurnedAway> {
        match &self.refusals {
            Some(r) => r.check(client),
            None => Ok(None),
        }
    }

    /// `refused` charges an append refused for what `client` sent to its
    /// budget; refusals for the server's state (full, stopping) are not
    /// the client's doing and cost nothing.
    pub fn refused(&self, client: &str, code: tonic::Code) {
        if let Some(r) = &self.refusals {
            if !matches!(
                code,
                tonic::Code::ResourceExhausted | tonic::Code::Unavailable
            ) {
                r.charge(client);
            }
        }
    }

    /// `latest` is the latest published checkpoint.
    pub fn latest(&self) -> Arc<PublishedCheckpoint> {
        self.checkpoint.borrow().clone()
    }

    /// `answerable` is the checkpoint custody and findings queries answer
    /// as of: the latest, unless a bulk entry at or below it is still
    /// being applied, then the latest published before it.
    pub fn answerable(&self) -> Arc<PublishedCheckpoint> {
        let latest = self.latest();
        if latest.size <= *self.indexed.borrow() {
            return latest;
        }
        self.answerable.borrow().clone()
    }

    /// `registry` is the registry at the durable tree size.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.borrow().clone()
    }

    /// `hashes` adapts the store for the log core's tree math, through
    /// the cache of upper hashes.
    pub fn hashes(&self) -> Cached<'_, StoreHashes<'_>> {
        self.hash_cache.over(StoreHashes(self.store.as_ref()))
    }
}

/// `IngestSamples` is a small ring of (time, tree size) samples, at least
/// [`IngestSamples::SPACING`] apart, from which the recent ingest rate is
/// computed.
#[derive(Debug, Default)]
pub struct IngestSamples {
    /// The samples, oldest first.
    ring: Mutex<VecDeque<(Instant, u64)>>,
}

impl IngestSamples {
    /// `CAPACITY` is how many samples are kept: with their spacing, a few
    /// minutes of history.
    pub const CAPACITY: usize = 128;
    /// `SPACING` is the least time between two kept samples; a newer sample
    /// inside it replaces the newest one.
    pub const SPACING: Duration = Duration::from_secs(1);

    /// `record` notes that the tree had `size` entries at `at`.
    pub fn record(&self, at: Instant, size: u64) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let n = ring.len();
        if n >= 2 && at.saturating_duration_since(ring[n - 2].0) < Self::SPACING {
            ring[n - 1] = (at, size);
            return;
        }
        if n >= Self::CAPACITY {
            ring.pop_front();
        }
        ring.push_back((at, size));
    }

    /// `rate` is the ingest rate in entries per second over about the last
    /// `window` before `now`, with the span it was measured over, or `None`
    /// while there is less than a second of samples.
    pub fn rate(&self, now: Instant, window: Duration) -> Option<(f64, Duration)> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let (_, newest) = *ring.back()?;
        let start = now.checked_sub(window);
        // The last sample at or before the window's start, else the oldest.
        let base = ring
            .iter()
            .rev()
            .find(|(t, _)| start.is_some_and(|s| *t <= s))
            .or(ring.front())
            .copied()?;
        let span = now.saturating_duration_since(base.0);
        if span < Duration::from_secs(1) {
            return None;
        }
        let grown = newest.saturating_sub(base.1);
        Some((grown as f64 / span.as_secs_f64(), span))
    }
}

/// `sample_ingest` records the size of every checkpoint `state` publishes
/// into [`LogState::ingest`], starting with the current one. It runs until
/// the task is dropped.
pub async fn sample_ingest(state: Arc<LogState>) {
    let mut rx = state.checkpoint.subscribe();
    loop {
        let size = rx.borrow_and_update().size;
        state.ingest.record(Instant::now(), size);
        if rx.changed().await.is_err() {
            return;
        }
    }
}

pub use custody_admission::StoreHashes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ingest_rate_is_growth_over_the_recent_window() {
        let s = IngestSamples::default();
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        assert_eq!(s.rate(t0, Duration::from_secs(60)), None, "no samples");
        s.record(t0, 100);
        assert_eq!(s.rate(t0, Duration::from_secs(60)), None, "under a second");
        for i in 1..=100 {
            s.record(at(i), 100 + 10 * i);
        }
        let (r, span) = s.rate(at(100), Duration::from_secs(60)).unwrap();
        assert_eq!(span, Duration::from_secs(60));
        assert!((r - 10.0).abs() < 1e-9, "{r}");
        // Idle since: the rate decays towards zero.
        let (r, _) = s.rate(at(160), Duration::from_secs(60)).unwrap();
        assert_eq!(r, 0.0);
    }

    #[test]
    fn samples_closer_than_the_spacing_replace_the_newest() {
        let s = IngestSamples::default();
        let t0 = Instant::now();
        for i in 0..10_000u64 {
            s.record(t0 + Duration::from_millis(10 * i), i);
        }
        let ring = s.ring.lock().unwrap();
        assert!(ring.len() <= IngestSamples::CAPACITY);
        assert_eq!(ring.back().map(|(_, n)| *n), Some(9_999), "newest kept");
    }
}
