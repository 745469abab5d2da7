//! The log mirrored to object storage (S3 or any store `object_store`
//! reaches), laid out as the C2SP tlog-tiles read API: `checkpoint`,
//! `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]` under a prefix,
//! and beside them `manifest/<hex root>`, the members of each manifest an
//! entry names (32 bytes each, in order).
//! Any HTTP server or CDN in front of the bucket then serves the log's
//! reads, and `custody audit` and `custody monitor` run against it; the
//! bucket is also an off-site copy.
//!
//! Rules, as the transparency logs that serve from buckets keep them:
//! - Full tiles never change: each is written once. A full tile already in
//!   the bucket (an interrupted round wrote it) is kept, not rewritten.
//! - Partial tiles are written again as they grow.
//! - The checkpoint is written last, once every tile it covers is in the
//!   bucket, so a reader never sees a checkpoint it cannot prove.
//! - A round resumes from the bucket's own checkpoint, after checking that
//!   it is this log's and that this log's tree extends it; a bucket that
//!   holds another history (another log, or this one before a restore
//!   rolled it back) is never written over.
//!
//! The bucket holds the tile API, entry bundles included, and has no
//! access list: a server mirrors only if it serves its tiles publicly
//! (`--public-tiles`).
//!
//! Credentials come from the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, ...), never from the settings file.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use custody_log::{tiles_grown, tree_root, LogVerifier, TileId};
use futures::TryStreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use tokio::sync::watch;

use custody_domain::{hex, ManifestRef};

use crate::metrics::MirrorLabels;
use crate::state::{LogState, PublishedCheckpoint};

/// Objects written at once.
const PARALLEL: usize = 8;

/// The largest checkpoint object read from the bucket.
const MAX_CHECKPOINT: u64 = 64 << 10;

/// The longest wait between failed rounds.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// `MirrorArgs` are the mirror's settings.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct MirrorArgs {
    /// Mirror the log's tiles and checkpoints to this object-storage URL
    /// as it grows, e.g. `s3://bucket/prefix` (credentials from the
    /// usual AWS_* environment variables) or `file:///srv/mirror`.
    /// Needs --public-tiles: the bucket checks no token.
    #[arg(long)]
    pub mirror: Option<String>,
    /// The S3 endpoint, for S3-compatible stores other than AWS (e.g.
    /// `http://127.0.0.1:8333`); plain `http://` is allowed when given.
    #[arg(long, requires = "mirror")]
    pub mirror_endpoint: Option<String>,
    /// The S3 region.
    #[arg(long, default_value = "us-east-1", requires = "mirror")]
    pub mirror_region: String,
}

/// `Mirror` is an open object store and the prefix the log goes under.
#[derive(Clone)]
pub struct Mirror {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    url: String,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror").field("url", &self.url).finish()
    }
}

impl Mirror {
    /// `open` opens the store `args` name, if they name one.
    ///
    /// # Errors
    ///
    /// When the URL is not one `object_store` reads, or its settings are
    /// refused, or the server does not serve its tiles publicly.
    pub fn open(args: &MirrorArgs, public_tiles: bool) -> anyhow::Result<Option<Self>> {
        let Some(url) = &args.mirror else {
            return Ok(None);
        };
        anyhow::ensure!(
            public_tiles,
            "--mirror copies the tile API, entry bundles included, to a bucket that checks no \
             token: set --public-tiles too, to say that the log's entries are public"
        );
        let parsed = url::Url::parse(url).with_context(|| format!("mirror URL {url:?}"))?;
        let (store, prefix): (Arc<dyn ObjectStore>, ObjectPath) = if parsed.scheme() == "s3" {
            // Credentials and the rest from the usual AWS_* variables.
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_region(&args.mirror_region);
            if let Some(e) = &args.mirror_endpoint {
                // Path-style requests: S3-compatible stores rarely serve
                // a bucket as a host name.
                b = b
                    .with_endpoint(e)
                    .with_allow_http(e.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            let store = b.build().with_context(|| format!("mirror URL {url:?}"))?;
            let prefix = ObjectPath::from_url_path(parsed.path())
                .with_context(|| format!("mirror URL {url:?}: its path"))?;
            (Arc::new(store), prefix)
        } else {
            let (store, prefix) =
                object_store::parse_url(&parsed).with_context(|| format!("mirror URL {url:?}"))?;
            (Arc::from(store), prefix)
        };
        Ok(Some(Self {
            store,
            prefix,
            url: url.clone(),
        }))
    }

    fn path(&self, rel: &str) -> ObjectPath {
        let mut p = self.prefix.clone();
        for part in rel.split('/') {
            p = p.child(part);
        }
        p
    }

    /// `size` is the tree size of the checkpoint in the bucket, after
    /// checking that it is this log's and that `state`'s tree extends it
    /// (0 if the bucket holds none).
    async fn size(&self, state: &Arc<LogState>, published: u64) -> anyhow::Result<u64> {
        let path = self.path("checkpoint");
        let meta = match self.store.head(&path).await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(e).context("read the mirror's checkpoint"),
        };
        // Whoever else writes to the bucket cannot make the server read
        // more than a checkpoint's worth.
        anyhow::ensure!(
            meta.size <= MAX_CHECKPOINT,
            "the mirror's checkpoint is {} bytes, not a checkpoint; it is left as it is",
            meta.size
        );
        let note = self
            .store
            .get_range(&path, 0..meta.size)
            .await
            .context("read the mirror's checkpoint")?;
        let cp = LogVerifier::new(state.signer.verifier_key())?
            .verify(&note)
            .context("the mirror's checkpoint is not this log's; it is left as it is")?;
        anyhow::ensure!(
            cp.size <= published,
            "the mirror holds a checkpoint of {} entries, ahead of this log's {published} \
             (a log restored from a backup?); it is left as it is: mirror to a new prefix",
            cp.size
        );
        let st = state.clone();
        let size = cp.size;
        let ours = tokio::task::spawn_blocking(move || tree_root(size, &st.hashes())).await??;
        anyhow::ensure!(
            ours == cp.root,
            "the mirror's checkpoint of {} entries is not a tree this log holds \
             (another history); it is left as it is: mirror to a new prefix",
            cp.size
        );
        Ok(cp.size)
    }

    /// `round` brings the bucket from `from` entries to checkpoint `to`:
    /// the tiles that grew, then the checkpoint.
    async fn round(
        &self,
        state: &Arc<LogState>,
        from: u64,
        to: &PublishedCheckpoint,
    ) -> anyhow::Result<()> {
        let tiles = tiles_grown(from, to.size);
        futures::stream::iter(tiles.into_iter().map(Ok))
            .try_for_each_concurrent(PARALLEL, |id| self.tile(state, id))
            .await?;
        // The manifests the new entries name, so that an audit of the
        // bucket can replay bulk events too.
        let st = state.clone();
        let (first, end) = (from, to.size);
        let named = tokio::task::spawn_blocking(move || manifests_named(&st, first, end)).await??;
        futures::stream::iter(named.into_iter().map(Ok))
            .try_for_each_concurrent(PARALLEL, |m| self.manifest(state, m))
            .await?;
        self.store
            .put(&self.path("checkpoint"), PutPayload::from(to.note.clone()))
            .await
            .context("write the checkpoint")?;
        count(state, "checkpoint", "written");
        Ok(())
    }

    /// `manifest` writes manifest `m` to `manifest/<hex root>` (its
    /// members, 32 bytes each, in order) unless it is there: a manifest
    /// never changes, and a reader checks it against its root.
    async fn manifest(&self, state: &Arc<LogState>, m: ManifestRef) -> anyhow::Result<()> {
        let path = self.path(&custody_log::manifest_path(&m.root));
        match self.store.head(&path).await {
            Ok(meta) if meta.size == m.count.saturating_mul(32) => {
                count(state, "manifest", "kept");
                return Ok(());
            }
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("look for {path}")),
        }
        let st = state.clone();
        let body = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
            let mut out = Vec::new();
            let mut start = 0u64;
            while start < m.count {
                let page = custody_store::index::manifest_members(
                    st.store.as_ref(),
                    &m.root,
                    start,
                    100_000,
                )?;
                anyhow::ensure!(!page.is_empty(), "manifest {} is short", hex(&m.root));
                start += page.len() as u64;
                for d in page {
                    out.extend_from_slice(&d);
                }
            }
            Ok(out)
        })
        .await??;
        self.store
            .put(&path, PutPayload::from(body))
            .await
            .with_context(|| format!("write {path}"))?;
        count(state, "manifest", "written");
        Ok(())
    }

    async fn tile(&self, state: &Arc<LogState>, id: TileId) -> anyhow::Result<()> {
        let path = self.path(&id.path());
        let st = state.clone();
        let body = tokio::task::spawn_blocking(move || crate::http::tile_body(&st, id))
            .await?
            .map_err(|e| anyhow::anyhow!("read {}: {e}", id.path()))?;
        if id.is_full() {
            // A full tile already there (an interrupted round wrote it) is
            // kept if it is this tile, byte for byte; anything else in its
            // place is written over.
            match self.store.head(&path).await {
                Ok(meta) if meta.size == body.len() as u64 => {
                    let there = self
                        .store
                        .get_range(&path, 0..meta.size)
                        .await
                        .with_context(|| format!("read {path}"))?;
                    if there.as_ref() == body.as_slice() {
                        count(state, "tile", "kept");
                        return Ok(());
                    }
                    tracing::warn!(tile = %path, "a full tile in the mirror was not this log's; it is written again");
                }
                Ok(_) => {
                    tracing::warn!(tile = %path, "a full tile in the mirror was not this log's; it is written again");
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e).with_context(|| format!("look for {path}")),
            }
        }
        self.store
            .put(&path, PutPayload::from(body))
            .await
            .with_context(|| format!("write {path}"))?;
        count(state, "tile", "written");
        Ok(())
    }
}

/// `manifests_named` are the manifests entries `from..to` name, once each.
fn manifests_named(state: &LogState, from: u64, to: u64) -> anyhow::Result<Vec<ManifestRef>> {
    let mut out: Vec<ManifestRef> = Vec::new();
    let mut at = from;
    while at < to {
        let end = (at + 4096).min(to);
        for e in state.store.read_entries(at, end)? {
            if let Ok(custody_proto::Entry::Event { envelope, .. }) =
                custody_proto::decode_entry(&e)
            {
                if let Ok(event) = custody_proto::decode_event(&envelope.body) {
                    if let Some(m) = event.body.manifest() {
                        if !out.contains(&m) {
                            out.push(m);
                        }
                    }
                }
            }
        }
        at = end;
    }
    Ok(out)
}

fn count(state: &LogState, kind: &'static str, outcome: &'static str) {
    state
        .metrics
        .mirror_objects
        .get_or_create(&MirrorLabels { kind, outcome })
        .inc();
}

/// `run` mirrors every checkpoint the server publishes, until `stop` is
/// set. A failed round is logged, counted and retried with backoff; the
/// next round starts from what the bucket's checkpoint says.
pub async fn run(mirror: Mirror, state: Arc<LogState>, mut stop: watch::Receiver<bool>) {
    let mut published = state.checkpoint.subscribe();
    let mut mirrored: Option<u64> = None;
    let mut backoff = Duration::from_millis(500);
    tracing::info!(url = %mirror.url, "mirroring the log to object storage");
    loop {
        let latest = state.latest();
        let result = async {
            let from = match mirrored {
                Some(m) => m,
                None => mirror.size(&state, latest.size).await?,
            };
            mirrored = Some(from);
            if latest.size > from {
                mirror.round(&state, from, &latest).await?;
                mirrored = Some(latest.size);
                tracing::debug!(from, to = latest.size, "mirrored");
            }
            anyhow::Ok(())
        }
        .await;
        let at = mirrored.unwrap_or(0);
        state.metrics.mirror_size.set(gauge(at));
        state
            .metrics
            .mirror_lag
            .set(gauge(latest.size.saturating_sub(at)));
        let wait = match result {
            Ok(()) => {
                backoff = Duration::from_millis(500);
                None
            }
            Err(e) => {
                state.metrics.mirror_errors.inc();
                tracing::warn!(error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "mirror round failed");
                // What the bucket holds is read again before the next.
                mirrored = None;
                let w = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                Some(w)
            }
        };
        tokio::select! {
            _ = stop.changed() => break,
            _ = published.changed(), if wait.is_none() => {}
            _ = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(60))) => {}
        }
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
