//! A read replica: `custodyd replica` follows a log's tile API (the
//! object-storage mirror, a CDN in front of it, or a server) and answers
//! `GetCheckpoint`, `GetEntries`, `GetInclusionProof` and
//! `GetConsistencyProof` over gRPC from a database of its own, so that
//! readers can outgrow the one machine that writes.
//!
//! It trusts nothing it fetches: each checkpoint must verify with the
//! log's key, and each entry is stored only once an inclusion proof,
//! built from the source's hash tiles, places it in that checkpoint's
//! tree; a checkpoint is served only once the stored tree hashes to its
//! root. A source that serves another history is refused,
//! and the replica keeps serving what it holds. The replica holds no
//! signing key and no derived custody state: it takes no appends and
//! answers no custody queries (both are refused with
//! FAILED_PRECONDITION, naming the writer's job). Its answers are the
//! log's tiles, public by design, so it needs no access list.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use custody_admission::{grow_tree, StoreHashes};
use custody_log::{
    decode_entry_bundle, leaf_hash, proven_leaf_hashes, LogVerifier, TileId, TileKind,
};
use custody_proto::v1::{self, custody_log_server::CustodyLog};
use custody_store::{Commit, LogStore};
use custody_store_rocks::RocksStore;
use futures::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use crate::answer::{self, AnswerError};
use crate::grpc::{checkpoint_of, consistency, entries_within, inclusion};

/// Entry bundles fetched, proven and stored at once.
const BUNDLES_AT_ONCE: usize = 16;

/// The largest checkpoint read (a note with many cosignatures is a few
/// kilobytes).
const MAX_CHECKPOINT: usize = 64 << 10;

/// The largest entry bundle: 256 entries of at most 65,535 bytes, each
/// with its 2-byte length.
const MAX_BUNDLE: usize = 256 * (2 + 65_535);

/// `ReplicaArgs` are `custodyd replica`'s settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicaArgs {
    /// The replica's own data directory (made if missing).
    #[arg(long)]
    pub data: PathBuf,
    /// The tile API to follow: the bucket's HTTP URL (e.g.
    /// `http://s3.example/custody/log`) or a server's HTTP address.
    #[arg(long)]
    pub source: String,
    /// The log's verifier key file, as auditors hold it.
    #[arg(long)]
    pub log_key: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7200")]
    pub grpc_addr: SocketAddr,
    /// How often to look for a new checkpoint, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
}

/// `Replica` is a replica's store and what it serves.
pub struct Replica {
    store: Arc<RocksStore>,
    verifier: LogVerifier,
    /// The latest checkpoint the replica holds every entry of.
    latest: watch::Sender<(u64, Vec<u8>)>,
}

impl Replica {
    /// `open` opens (or makes) the replica's database in `data`.
    ///
    /// # Errors
    ///
    /// When the database cannot be opened, or holds a checkpoint that is
    /// not the log's whose key is `vkey`.
    pub fn open(data: &std::path::Path, vkey: &str) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(data).with_context(|| format!("create {}", data.display()))?;
        let store = Arc::new(RocksStore::open(&data.join("db"))?);
        let verifier = LogVerifier::new(vkey.trim())?;
        let latest = match store.latest_checkpoint()? {
            Some((size, note)) => {
                verifier.verify(&note).with_context(|| {
                    format!(
                        "{} holds a checkpoint that is not this log's: a replica of another log?",
                        data.display()
                    )
                })?;
                (size, note)
            }
            None => (0, Vec::new()),
        };
        Ok(Arc::new(Self {
            store,
            verifier,
            latest: watch::channel(latest).0,
        }))
    }

    /// `size` is the size of the latest checkpoint the replica serves.
    pub fn size(&self) -> u64 {
        self.latest.borrow().0
    }

    /// `follow` brings the replica up to the source's checkpoint, then
    /// again every `poll`, until `stop` is set. Failures are logged and
    /// retried; the replica serves what it holds meanwhile.
    pub async fn follow(
        self: Arc<Self>,
        source: String,
        poll: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        let source = source.trim_end_matches('/').to_owned();
        loop {
            match self.round(&http, &source).await {
                Ok(Some(size)) => tracing::info!(size, "replica caught up"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "replica round failed"),
            }
            tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// `get` is the body at `url`, refused past `limit` bytes: what a
    /// source sends cannot grow the replica's memory past what the
    /// largest honest answer takes.
    async fn get(http: &reqwest::Client, url: &str, limit: usize) -> anyhow::Result<Vec<u8>> {
        let mut r = http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        anyhow::ensure!(r.status().is_success(), "GET {url}: {}", r.status());
        let mut body = Vec::new();
        while let Some(chunk) = r.chunk().await.with_context(|| format!("GET {url}"))? {
            anyhow::ensure!(
                body.len() + chunk.len() <= limit,
                "GET {url}: more than {limit} bytes"
            );
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// `round` fetches the source's checkpoint and, if it is ahead, every
    /// entry up to it; it stores them once their tree hashes to the
    /// checkpoint's root. It returns the new size, if it grew.
    async fn round(&self, http: &reqwest::Client, source: &str) -> anyhow::Result<Option<u64>> {
        let note = Self::get(http, &format!("{source}/checkpoint"), MAX_CHECKPOINT).await?;
        let cp = self
            .verifier
            .verify(&note)
            .context("the source's checkpoint does not verify with the log's key")?;
        let store = self.store.clone();
        let held = tokio::task::spawn_blocking(move || store.tree_size()).await??;
        if cp.size <= held {
            if cp.size > self.size() && cp.size == held {
                // Stored before a crash, not yet marked: check it now.
                let store = self.store.clone();
                let size = cp.size;
                let root = tokio::task::spawn_blocking(move || {
                    custody_log::tree_root(size, &StoreHashes(store.as_ref()))
                })
                .await??;
                anyhow::ensure!(
                    root == cp.root,
                    "the source's checkpoint is another history"
                );
                self.mark(cp.size, note).await?;
                return Ok(Some(cp.size));
            }
            return Ok(None);
        }
        // Every entry from `held` to the checkpoint, some bundles at a
        // time: each entry proven in the signed tree (an inclusion proof
        // from the source's hash tiles, checked against the root) before
        // its bundle is stored. Memory: those bundles and their tiles.
        let width = u64::from(custody_log::TILE_WIDTH);
        let ids: Vec<TileId> = (held / width..=(cp.size - 1) / width)
            .filter_map(|i| TileId::in_tree(TileKind::Entries, i, cp.size))
            .collect();
        let mut at = held;
        for chunk in ids.chunks(BUNDLES_AT_ONCE) {
            let fetched = futures::future::try_join_all(chunk.iter().map(|id| {
                let url = format!("{source}/{}", id.path());
                async move { Self::get(http, &url, MAX_BUNDLE).await }
            }))
            .await?;
            let mut entries = Vec::new();
            for (id, body) in chunk.iter().zip(fetched) {
                let bundle = decode_entry_bundle(&body)
                    .ok_or_else(|| anyhow::anyhow!("{} is not an entry bundle", id.path()))?;
                anyhow::ensure!(
                    bundle.len() == id.width as usize,
                    "{} holds {} entries, not {}",
                    id.path(),
                    bundle.len(),
                    id.width
                );
                let skip = at.saturating_sub(id.index * width) as usize;
                entries.extend(bundle.into_iter().skip(skip));
            }
            let (store, size, root) = (self.store.clone(), cp.size, cp.root);
            let (http, source, rt) = (
                http.clone(),
                source.to_owned(),
                tokio::runtime::Handle::current(),
            );
            let first = at;
            at = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
                let end = first + entries.len() as u64;
                let fetch = |tiles: &[TileId]| -> anyhow::Result<Vec<Vec<u8>>> {
                    rt.block_on(futures::future::try_join_all(tiles.iter().map(|t| {
                        let url = format!("{source}/{}", t.path());
                        let http = &http;
                        let limit = t.width as usize * custody_log::HASH_SIZE;
                        async move { Self::get(http, &url, limit).await }
                    })))
                };
                let proven = proven_leaf_hashes(size, &root, first, end, fetch)?;
                for (i, (e, h)) in entries.iter().zip(&proven).enumerate() {
                    anyhow::ensure!(
                        leaf_hash(e) == *h,
                        "entry {} from the source is not the one the signed tree holds; nothing \
                         of it was stored",
                        first + i as u64
                    );
                }
                let mut commit = Commit {
                    first_index: first,
                    entries,
                    ..Commit::default()
                };
                grow_tree(&mut commit, &StoreHashes(store.as_ref()))?;
                store.commit(&commit)?;
                Ok(end)
            })
            .await??;
        }
        // Every leaf was proven; the stored tree must now be the signed one.
        let (store, size) = (self.store.clone(), cp.size);
        let got = tokio::task::spawn_blocking(move || {
            custody_log::tree_root(size, &StoreHashes(store.as_ref()))
        })
        .await??;
        anyhow::ensure!(
            got == cp.root,
            "the stored tree of {size} is not the signed one"
        );
        self.mark(cp.size, note).await?;
        Ok(Some(cp.size))
    }

    async fn mark(&self, size: u64, note: Vec<u8>) -> anyhow::Result<()> {
        let store = self.store.clone();
        let n = note.clone();
        tokio::task::spawn_blocking(move || store.put_checkpoint(size, &n)).await??;
        self.latest.send_replace((size, note));
        Ok(())
    }
}

/// `ReplicaService` answers the log's read RPCs from a [`Replica`].
#[derive(Clone)]
pub struct ReplicaService {
    replica: Arc<Replica>,
}

impl ReplicaService {
    /// `new` serves `replica`.
    pub fn new(replica: Arc<Replica>) -> Self {
        Self { replica }
    }

    fn latest(&self) -> Result<(u64, Vec<u8>), Status> {
        let latest = self.replica.latest.borrow().clone();
        if latest.0 == 0 {
            return Err(AnswerError::Unavailable(
                "the replica holds no checkpoint yet: it has not reached its source; retry shortly"
                    .into(),
            )
            .into());
        }
        Ok(latest)
    }
}

fn writer_only(what: &str) -> Status {
    AnswerError::WrongServer(format!(
        "this is a read replica: {what} goes to the log's server, not here"
    ))
    .into()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AnswerError> + Send + 'static,
) -> Result<T, Status> {
    answer::blocking(f).await.map_err(Status::from)
}

type AppendStream = Pin<Box<dyn Stream<Item = Result<v1::AppendResponse, Status>> + Send>>;

#[tonic::async_trait]
impl CustodyLog for ReplicaService {
    async fn append(
        &self,
        _: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        Err(writer_only("appending"))
    }

    type AppendStreamStream = AppendStream;

    async fn append_stream(
        &self,
        _: Request<Streaming<v1::AppendRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        Err(writer_only("appending"))
    }

    async fn get_checkpoint(
        &self,
        request: Request<v1::GetCheckpointRequest>,
    ) -> Result<Response<v1::GetCheckpointResponse>, Status> {
        let (size, note) = self.latest()?;
        let want = request.into_inner().tree_size;
        let store = self.replica.store.clone();
        blocking(move || {
            let (_, checkpoint) = checkpoint_of(store.as_ref(), (size, &note), want)?;
            Ok(v1::GetCheckpointResponse { checkpoint })
        })
        .await
        .map(Response::new)
    }

    async fn get_entries(
        &self,
        request: Request<v1::GetEntriesRequest>,
    ) -> Result<Response<v1::GetEntriesResponse>, Status> {
        let (size, _) = self.latest()?;
        let r = request.into_inner();
        let store = self.replica.store.clone();
        blocking(move || {
            Ok(v1::GetEntriesResponse {
                entries: entries_within(store.as_ref(), size, r.start, r.end)?,
            })
        })
        .await
        .map(Response::new)
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<v1::GetInclusionProofRequest>,
    ) -> Result<Response<v1::GetInclusionProofResponse>, Status> {
        let (size, note) = self.latest()?;
        let r = request.into_inner();
        let store = self.replica.store.clone();
        blocking(move || {
            let at = checkpoint_of(store.as_ref(), (size, &note), r.tree_size)?;
            inclusion(store.as_ref(), &StoreHashes(store.as_ref()), at, r.index)
        })
        .await
        .map(Response::new)
    }

    async fn get_consistency_proof(
        &self,
        request: Request<v1::GetConsistencyProofRequest>,
    ) -> Result<Response<v1::GetConsistencyProofResponse>, Status> {
        let (size, note) = self.latest()?;
        let r = request.into_inner();
        let store = self.replica.store.clone();
        blocking(move || {
            let (new_size, _) = checkpoint_of(store.as_ref(), (size, &note), r.new_size)?;
            consistency(&StoreHashes(store.as_ref()), r.old_size, new_size)
        })
        .await
        .map(Response::new)
    }

    async fn put_manifest(
        &self,
        _: Request<Streaming<v1::PutManifestRequest>>,
    ) -> Result<Response<v1::PutManifestResponse>, Status> {
        Err(writer_only("uploading a manifest"))
    }

    async fn get_manifest(
        &self,
        _: Request<v1::GetManifestRequest>,
    ) -> Result<Response<v1::GetManifestResponse>, Status> {
        Err(writer_only("reading a manifest"))
    }
}

/// `serve` runs a replica: it follows `args.source` and serves gRPC on
/// `listener` until `shutdown` resolves.
///
/// # Errors
///
/// When the replica cannot be opened or the key read.
pub async fn serve(
    args: &ReplicaArgs,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let vkey = std::fs::read_to_string(&args.log_key)
        .with_context(|| format!("read the log key {}", args.log_key.display()))?;
    let replica = Replica::open(&args.data, &vkey)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let follower = tokio::spawn(replica.clone().follow(
        args.source.clone(),
        Duration::from_millis(args.poll_ms.max(10)),
        stop_rx.clone(),
    ));
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<v1::custody_log_server::CustodyLogServer<ReplicaService>>()
        .await;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let result = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(v1::custody_log_server::CustodyLogServer::new(
            ReplicaService::new(replica),
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .context("gRPC server");
    let _ = stop_tx.send(true);
    let _ = follower.await;
    result
}
