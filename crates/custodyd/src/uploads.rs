//! Limits on manifest uploads (`PutManifest`), which a reporter makes
//! before the bulk event that names a manifest. Without them one caller
//! could hold the server's memory with stalled uploads, or fill its disk
//! with manifests no event ever names.
//!
//! - **At once:** `--max-uploads-per-reporter` (2) per uploader (its party,
//!   or on an open server its address) and `--max-uploads` (16) in all.
//! - **Memory:** members wait in memory until the upload ends and its root
//!   is known; all uploads together hold at most `--upload-buffer-members`
//!   (4,000,000: 128 MiB of digests, and their tree).
//! - **Time:** each message must arrive within `--upload-idle-secs` (30)
//!   of the one before, and the whole upload within
//!   `--upload-timeout-secs` (600).
//! - **Waiting to be named:** an uploader may have at most
//!   `--max-pending-manifests` (64) manifests that no entry names yet, and
//!   the log at most 64 times that; a manifest no entry names within
//!   `--manifest-ttl-secs` (one day) of its upload is removed ([`collect`]).
//!
//! Over a limit, an upload is refused with `RESOURCE_EXHAUSTED` and a
//! message that says which limit and what to do; nothing of it is kept.
//!
//! Removal and admission never race: the sequencer holds [`Uploads::gate`]
//! shared while it admits and commits a batch (an entry that names a
//! manifest removes its pending mark in its own batch), uploads hold it
//! shared while they store, and [`collect`] holds it exclusively. So a
//! manifest is either named (and kept for ever) or removed (and an event
//! naming it later is refused as not uploaded).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use custody_store::index::{self, IndexCf, KvWrite, PendingManifest};
use custody_store::LogStore;

use crate::answer::AnswerError;

/// `UploadArgs` are the upload limits' flags.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct UploadArgs {
    /// Manifest uploads one reporter (or, on an open server, one address)
    /// may have in progress at once.
    #[arg(long, default_value_t = 2)]
    pub max_uploads_per_reporter: usize,
    /// Manifest uploads in progress at once, in all.
    #[arg(long, default_value_t = 16)]
    pub max_uploads: usize,
    /// Members all uploads in progress may hold in memory together.
    #[arg(long, default_value_t = 4_000_000)]
    pub upload_buffer_members: u64,
    /// Seconds an upload may wait between two messages.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub upload_idle_secs: u64,
    /// Seconds an upload may take in all.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub upload_timeout_secs: u64,
    /// Uploaded manifests no entry names yet that one uploader may have
    /// (the log: 64 times as many).
    #[arg(long, default_value_t = 64)]
    pub max_pending_manifests: usize,
    /// A manifest no entry names within this many seconds of its upload
    /// is removed.
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=315_360_000))]
    pub manifest_ttl_secs: u64,
}

impl Default for UploadArgs {
    fn default() -> Self {
        Self {
            max_uploads_per_reporter: 2,
            max_uploads: 16,
            upload_buffer_members: 4_000_000,
            upload_idle_secs: 30,
            upload_timeout_secs: 600,
            max_pending_manifests: 64,
            manifest_ttl_secs: 86_400,
        }
    }
}

/// `Uploads` counts uploads in progress and what they hold.
pub struct Uploads {
    /// The limits.
    pub limits: UploadArgs,
    active: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
    buffered: AtomicU64,
    /// Shared by the sequencer while it admits and commits, and by
    /// uploads while they store; exclusive for [`collect`].
    pub gate: RwLock<()>,
}

impl Default for Uploads {
    fn default() -> Self {
        Self::new(UploadArgs::default())
    }
}

/// `Slot` is one upload in progress; dropping it frees its place and its
/// members' share of the memory budget.
pub struct Slot {
    uploads: Arc<Uploads>,
    who: String,
    members: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.uploads.total.fetch_sub(1, Ordering::Relaxed);
        self.uploads
            .buffered
            .fetch_sub(self.members, Ordering::Relaxed);
        if let Ok(mut a) = self.uploads.active.lock() {
            if let Some(n) = a.get_mut(&self.who) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    a.remove(&self.who);
                }
            }
        }
    }
}

impl Uploads {
    /// `new` is no upload in progress, under `limits`.
    pub fn new(limits: UploadArgs) -> Self {
        Self {
            limits,
            active: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
            buffered: AtomicU64::new(0),
            gate: RwLock::new(()),
        }
    }

    /// `in_progress` is how many uploads are in progress.
    pub fn in_progress(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// `idle` is how long an upload may wait between messages.
    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.limits.upload_idle_secs)
    }

    /// `timeout` is how long an upload may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.limits.upload_timeout_secs)
    }

    /// `begin` starts an upload by `who`.
    ///
    /// # Errors
    ///
    /// [`AnswerError::Exhausted`] when `who`, or everyone, has as many
    /// uploads in progress as allowed.
    pub fn begin(self: &Arc<Self>, who: &str) -> Result<Slot, AnswerError> {
        let mut active = self
            .active
            .lock()
            .map_err(|_| AnswerError::internal("uploads", "lock poisoned"))?;
        let mine = active.get(who).copied().unwrap_or(0);
        if mine >= self.limits.max_uploads_per_reporter {
            return Err(AnswerError::Exhausted(format!(
                "{} already has {mine} manifest uploads in progress, the most one uploader may; finish one first",
                custody_domain::clip(who, 64)
            )));
        }
        if self.total.load(Ordering::Relaxed) >= self.limits.max_uploads {
            return Err(AnswerError::Exhausted(format!(
                "the server has {} manifest uploads in progress, the most it takes; retry in a few seconds",
                self.limits.max_uploads
            )));
        }
        *active.entry(who.to_owned()).or_insert(0) += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            uploads: self.clone(),
            who: who.to_owned(),
            members: 0,
        })
    }
}

impl Slot {
    /// `hold` counts `n` more members this upload holds in memory.
    ///
    /// # Errors
    ///
    /// [`AnswerError::Exhausted`] when all uploads together would hold
    /// more than the budget.
    pub fn hold(&mut self, n: u64) -> Result<(), AnswerError> {
        let budget = self.uploads.limits.upload_buffer_members;
        let before = self.uploads.buffered.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > budget {
            self.uploads.buffered.fetch_sub(n, Ordering::Relaxed);
            return Err(AnswerError::Exhausted(format!(
                "uploads in progress hold {before} members, and the server holds at most {budget} at once; retry when others finish, or upload a smaller manifest"
            )));
        }
        self.members += n;
        Ok(())
    }

    /// `who` is the uploader.
    pub fn who(&self) -> &str {
        &self.who
    }
}

/// `admit_pending` checks that `who` may have one more manifest waiting to
/// be named, and is the write that records it (or, for a manifest already
/// waiting, that records its new upload time). `None` when the manifest is
/// already named by an entry: it is kept for ever already.
///
/// # Errors
///
/// [`AnswerError::Exhausted`] over the uploader's or the log's quota;
/// [`AnswerError::Internal`] on storage failure.
pub fn admit_pending(
    store: &dyn LogStore,
    limits: &UploadArgs,
    root: &custody_domain::Digest,
    count: u64,
    who: &str,
    known: bool,
    now: i64,
) -> Result<Option<KvWrite>, AnswerError> {
    let storage = |e| AnswerError::internal("pending manifests", e);
    if known && !index::is_pending(store, root).map_err(storage)? {
        return Ok(None);
    }
    let record = PendingManifest {
        root: *root,
        uploaded_at: now,
        count,
        uploader: who.to_owned(),
    };
    if known {
        return Ok(Some(index::manifest_pending_write(&record)));
    }
    let pending = index::pending_manifests(store).map_err(storage)?;
    let mine = pending.iter().filter(|p| p.uploader == who).count();
    if mine >= limits.max_pending_manifests {
        return Err(AnswerError::Exhausted(format!(
            "{} has {mine} uploaded manifests that no entry names yet, the most one uploader may have; log the events that name them, or wait until they expire ({} s after upload)",
            custody_domain::clip(who, 64),
            limits.manifest_ttl_secs
        )));
    }
    let all = limits.max_pending_manifests.saturating_mul(64);
    if pending.len() >= all {
        return Err(AnswerError::Exhausted(format!(
            "the log has {} uploaded manifests that no entry names yet, the most it keeps; retry after some are named or expire",
            pending.len()
        )));
    }
    Ok(Some(index::manifest_pending_write(&record)))
}

/// How many keys [`collect`] deletes per write.
const DELETE_CHUNK: usize = 10_000;

/// `collect` removes every manifest that no entry named within the TTL of
/// its upload: first its count (after which it is unknown, and an event
/// naming it is refused), then its members and tree. It holds `gate`
/// exclusively, so no batch is being admitted meanwhile. It returns how
/// many it removed.
///
/// # Errors
///
/// On storage failure; what was removed stays removed, and the rest is
/// tried again next time.
pub fn collect(store: &dyn LogStore, uploads: &Uploads, now: i64) -> anyhow::Result<usize> {
    let ttl = i64::try_from(
        uploads
            .limits
            .manifest_ttl_secs
            .saturating_mul(1_000_000_000),
    )
    .unwrap_or(i64::MAX);
    let _exclusive = uploads.gate.write().unwrap_or_else(|e| e.into_inner());
    let expired: Vec<PendingManifest> = index::pending_manifests(store)?
        .into_iter()
        .filter(|p| p.uploaded_at.saturating_add(ttl) <= now)
        .collect();
    for p in &expired {
        store.index_write(&[
            KvWrite {
                cf: IndexCf::ManifestMeta,
                key: p.root.to_vec(),
                value: None,
            },
            KvWrite {
                cf: IndexCf::ManifestPending,
                key: p.root.to_vec(),
                value: None,
            },
        ])?;
        for cf in [IndexCf::ManifestMembers, IndexCf::ManifestHashes] {
            delete_prefix(store, cf, &p.root)?;
        }
        tracing::info!(
            root = custody_domain::hex(&p.root),
            count = p.count,
            uploader = p.uploader,
            "removed a manifest no entry named within its time"
        );
    }
    Ok(expired.len())
}

fn delete_prefix(store: &dyn LogStore, cf: IndexCf, prefix: &[u8]) -> anyhow::Result<()> {
    let mut start: Vec<u8> = Vec::new();
    loop {
        let mut keys: Vec<Vec<u8>> = Vec::with_capacity(DELETE_CHUNK);
        store.index_scan(cf, prefix, &start, &mut |k, _| {
            keys.push(k.to_vec());
            keys.len() < DELETE_CHUNK
        })?;
        let Some(last) = keys.last() else {
            return Ok(());
        };
        // Resume after the last key deleted.
        start = last.clone();
        start.push(0);
        let done = keys.len() < DELETE_CHUNK;
        let writes: Vec<KvWrite> = keys
            .into_iter()
            .map(|key| KvWrite {
                cf,
                key,
                value: None,
            })
            .collect();
        store.index_write(&writes)?;
        if done {
            return Ok(());
        }
    }
}

/// `run_collector` runs [`collect`] every minute (or TTL, if shorter)
/// until `stop` changes.
pub async fn run_collector(
    state: Arc<crate::LogState>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = Duration::from_secs(state.uploads.limits.manifest_ttl_secs.clamp(1, 60));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let st = state.clone();
        let done = tokio::task::spawn_blocking(move || {
            collect(st.store.as_ref(), &st.uploads, crate::init::now_nanos())
        })
        .await;
        match done {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(removed = n, "unnamed manifests removed"),
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "removing unnamed manifests failed")
            }
            Err(e) => tracing::error!(error = %e, "manifest collector task failed"),
        }
    }
}
