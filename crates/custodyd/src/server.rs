//! The server as a library: [`Server::open`] opens a data directory
//! (recovery included: a damaged database is refused, a tree ahead of its
//! last checkpoint is signed again, older derived state is upgraded) and
//! [`Server::run`] serves it on [`Listeners`] until told to stop, joining
//! every task and returning the first failure. `custodyd serve` is
//! argument parsing around these two; the demo and tests start servers
//! the same way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use custody_log::{tree_root, HashCache, LogVerifier};
use custody_store_rocks::RocksStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::init::Paths;
use crate::state::{
    IngestSamples, LogState, PublishedCheckpoint, StoreHashes, HASH_CACHE_CAPACITY,
};
use crate::{grpc, grpc_query, http, publisher, sequencer};

/// How long a stopping server waits for open requests and streams.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);

/// `Listeners` are a server's two bound sockets.
pub struct Listeners {
    /// gRPC.
    pub grpc: TcpListener,
    /// HTTP.
    pub http: TcpListener,
}

impl Listeners {
    /// `bind` binds both addresses (port 0 for any free port).
    ///
    /// # Errors
    ///
    /// When either cannot be bound.
    pub async fn bind(grpc: SocketAddr, http: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            grpc: TcpListener::bind(grpc)
                .await
                .with_context(|| format!("bind gRPC {grpc}"))?,
            http: TcpListener::bind(http)
                .await
                .with_context(|| format!("bind HTTP {http}"))?,
        })
    }

    /// `addrs` is where they listen: gRPC, then HTTP.
    ///
    /// # Errors
    ///
    /// When the system cannot say.
    pub fn addrs(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.grpc.local_addr()?, self.http.local_addr()?))
    }
}

/// `Server` is an opened log, ready to serve.
pub struct Server {
    state: Arc<LogState>,
    config: Config,
    /// The same store as `state.store`, for what only RocksDB does
    /// (online backups through the admin socket).
    rocks: Arc<RocksStore>,
}

/// `damaged` says what to do about a database that cannot be read as
/// this log: a store error from opening or checking it.
fn damaged(db: &std::path::Path, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "the database in {} is damaged or unreadable ({e}). custodyd will not serve from it: \
         stop anything else using the directory, keep a copy of it for investigation, and restore \
         the data directory from a backup or a copy; a restored log must extend the checkpoints \
         auditors hold (custody monitor checks that)",
        db.display()
    )
}

/// `check_tree` checks that the stored tree hashes to `root` at `signed`
/// entries, and that the last of `size` entries hashes to its stored
/// leaf.
pub(crate) fn check_tree(
    store: &RocksStore,
    signed: u64,
    root: &custody_log::Hash,
    size: u64,
) -> anyhow::Result<()> {
    let got = tree_root(signed, &StoreHashes(store))?;
    anyhow::ensure!(
        got == *root,
        "the stored tree of {signed} entries does not hash to the root its signed checkpoint holds"
    );
    let last = size.saturating_sub(1);
    let entry = custody_store::LogStore::read_entries(store, last, size)?;
    let leaf =
        custody_store::LogStore::read_hashes(store, &[custody_log::stored_hash_index(0, last)])?;
    anyhow::ensure!(
        entry.first().map(|e| custody_log::leaf_hash(e).0) == leaf.first().copied(),
        "entry {last} does not hash to its stored leaf"
    );
    Ok(())
}

impl Server {
    /// `open` opens the log in `config.data`: it checks the stored tree
    /// against its signed checkpoint, signs the durable tree again if a
    /// crash left it ahead of its last checkpoint, and upgrades older
    /// derived state.
    ///
    /// # Errors
    ///
    /// When the directory holds no log, its key or database cannot be
    /// read, or the database is damaged: each says what to do.
    pub fn open(args: Config) -> anyhow::Result<Self> {
        let paths = Paths::new(&args.data);
        let key = args.signing_key_path();
        if !paths.vkey.exists() {
            anyhow::bail!(
                "{} holds no log (no log.vkey): run `custodyd init` first",
                args.data.display()
            );
        }
        let signer = crate::init::read_signing_key(&key)?;
        // The key must be this log's: another log's key would sign
        // checkpoints no auditor of this one accepts.
        let vkey = std::fs::read_to_string(&paths.vkey)
            .with_context(|| format!("read {}", paths.vkey.display()))?;
        if vkey.trim() != signer.verifier_key() {
            anyhow::bail!(
                "the signing key {} is not the key of this log ({} names {}): give the key \
                 `custodyd init` made for it",
                key.display(),
                paths.vkey.display(),
                custody_domain::clip(vkey.trim(), 120)
            );
        }
        let store = Arc::new(RocksStore::open(&paths.db).map_err(|e| damaged(&paths.db, e))?);
        let size = custody_store::LogStore::tree_size(store.as_ref())?;
        if size == 0 {
            anyhow::bail!(
                "{} holds no genesis entry: run `custodyd init`",
                paths.db.display()
            );
        }

        // Re-sign the durable tree if it is ahead of the last stored checkpoint
        // (a crash between commit and publish); otherwise serve the stored one.
        let stored = custody_store::LogStore::latest_checkpoint(store.as_ref())
            .map_err(|e| damaged(&paths.db, e))?;
        // The stored tree must still hash to the root the log signed, and its
        // last leaf to its last entry: a damaged database is refused here,
        // before it serves a proof.
        if let Some((s, note)) = &stored {
            let cp = LogVerifier::new(signer.verifier_key())?.verify(note)?;
            check_tree(store.as_ref(), *s, &cp.root, size).map_err(|e| damaged(&paths.db, e))?;
        }
        let latest = match stored {
            Some((s, note)) if s == size => {
                let cp = LogVerifier::new(signer.verifier_key())?.verify(&note)?;
                PublishedCheckpoint {
                    size,
                    root: cp.root,
                    note,
                }
            }
            _ => {
                let root = tree_root(size, &StoreHashes(store.as_ref()))?;
                let note = signer.sign(size, &root)?;
                custody_store::LogStore::put_checkpoint(store.as_ref(), size, &note)?;
                PublishedCheckpoint { size, root, note }
            }
        };
        let (durable, _) = watch::channel(size);
        let latest = Arc::new(latest);
        let (answerable, _) = watch::channel(latest.clone());
        let (checkpoint, _) = watch::channel(latest);
        // An older log's derived state is upgraded here, once; on a large log
        // that takes minutes, so it reports as it goes.
        custody_store::index::check_derived_settings(store.as_ref(), &mut |family, read| {
            tracing::info!(family, read, "upgrading derived state");
        })
        .map_err(anyhow::Error::msg)?;
        let (registry, _) = watch::channel(Arc::new(sequencer::load_registry(store.as_ref())?));
        let access = crate::access::Access::open(&args.data)?;
        if access.is_open() {
            tracing::warn!(
            "no access list ({}): every caller may read everything and report for any party; add tokens with `custodyd access add`",
            crate::access::AccessFile::path(&args.data).display()
        );
        }
        let rocks = store.clone();
        let state = Arc::new(LogState {
            store,
            signer,
            durable,
            registry,
            checkpoint,
            ingest: IngestSamples::default(),
            findings: std::sync::OnceLock::new(),
            hash_cache: HashCache::new(HASH_CACHE_CAPACITY),
            scopes: Default::default(),
            indexed: watch::channel(u64::MAX).0,
            answerable,
            access,
            public_tiles: args.public_tiles,
            uploads: Arc::new(crate::uploads::Uploads::new(args.uploads.clone())),
            rates: crate::rate::Rates::new(&args.rates),
            refusals: crate::rate::Refusals::new(&args.rates).map(Arc::new),
            ready: watch::channel(false).0,
            metrics: crate::metrics::Metrics::new(),
        });
        Ok(Self {
            rocks,
            state,
            config: args,
        })
    }

    /// `state` is what the server's handlers share.
    pub fn state(&self) -> &Arc<LogState> {
        &self.state
    }

    /// `run` serves the log on `listeners` until `shutdown` resolves, or
    /// until one of its tasks fails; then it stops the others, waits for
    /// them, and returns the first failure.
    ///
    /// # Errors
    ///
    /// The first task's failure, or bad TLS or witness settings.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let (state, args, rocks) = (self.state, self.config, self.rocks);
        let (grpc_listener, http_listener) = (listeners.grpc, listeners.http);
        let tls = crate::tls::Tls::load(&args.tls)?;
        let witnesses = crate::witnessing::Witnesses::from_args(&args.witness)?.map(Arc::new);
        if let Some(w) = &witnesses {
            tracing::info!(witnesses = ?w.names(), threshold = w.threshold(), "checkpoints are published once cosigned");
        }
        let sequencer = sequencer::Sequencer::start(
            state.clone(),
            args.queue,
            args.queue_bytes,
            args.max_batch,
            args.bulk_slice,
            sequencer::DiskReserve {
                path: Paths::new(&args.data).db,
                min_free: args.min_free_mib.saturating_mul(1 << 20),
            },
            args.fault_clock_offset_secs.saturating_mul(1_000_000_000),
        )?;
        // Two stops: intake (both listeners) first, then the background
        // tasks, once every request in flight has been answered.
        let (stop_tx, stop_rx) = watch::channel(false);
        let (background_stop, background_rx) = watch::channel(false);

        let ingest = tokio::spawn(crate::state::sample_ingest(state.clone()));
        let collector = crate::uploads::run_collector(state.clone(), background_rx.clone());
        let publisher = publisher::run(
            state.clone(),
            Duration::from_millis(args.checkpoint_interval_ms),
            witnesses.clone(),
            background_rx.clone(),
        );

        // Health: every service served below, by its full name.
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
        .set_serving::<custody_proto::v1::custody_log_server::CustodyLogServer<grpc::CustodyLogService>>()
        .await;
        health_reporter
            .set_serving::<custody_proto::v1::custody_query_server::CustodyQueryServer<
                grpc_query::CustodyQueryService,
            >>()
            .await;
        // Reflection in both versions: v1, and v1alpha, which many clients
        // still ask for first or only. Each lists every service, both
        // reflection services included.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(custody_proto::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                )
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let service = custody_proto::v1::custody_log_server::CustodyLogServer::new(
            grpc::CustodyLogService::new(state.clone(), sequencer.clone()),
        )
        .max_decoding_message_size(256 * 1024);
        let findings = crate::findings::Findings::new(state.clone());
        // Set once, here; the web view reads it.
        let _ = state.findings.set(findings.clone());
        let query = custody_proto::v1::custody_query_server::CustodyQueryServer::new(
            grpc_query::CustodyQueryService::new(state.clone(), findings),
        )
        .max_encoding_message_size(64 << 20);

        let (grpc_addr, http_addr) = (grpc_listener.local_addr()?, http_listener.local_addr()?);
        tracing::info!(
            grpc = %grpc_addr,
            http = %http_addr,
            origin = state.signer.origin(),
            size = state.latest().size,
            tls = tls.is_some(),
            client_certificates = tls.as_ref().is_some_and(|t| t.mutual),
            "serving"
        );

        let grpc_listener = crate::conn::GatedListener::new(grpc_listener, args.limits(), "grpc");
        let http_listener = crate::conn::GatedListener::new(http_listener, args.limits(), "http");
        state.metrics.watch(
            sequencer,
            vec![
                ("grpc", grpc_listener.gate().clone()),
                ("http", http_listener.gate().clone()),
            ],
        );
        let mut grpc_stop = stop_rx.clone();
        // Keepalive pings keep a live client's idle channel open (they count
        // as traffic for the idle timeout) and close one whose peer is gone.
        let keepalive = args.limits().idle / 3;
        let grpc = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(keepalive))
            .http2_keepalive_timeout(Some(keepalive))
            .max_concurrent_streams(Some(256))
            .layer(grpc::AppendDoorLayer::new(state.clone()))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(service)
            .add_service(query)
            .serve_with_incoming_shutdown(
                grpc_listener.incoming(tls.as_ref().map(|t| t.grpc.clone())),
                async move {
                    let _ = grpc_stop.changed().await;
                },
            );
        let http = crate::conn::serve_http(
            http_listener,
            http::router(state.clone()),
            tls.as_ref().map(|t| t.http.clone()),
            stop_rx.clone(),
            Duration::from_secs(10),
        );
        let mut serving = tokio::task::JoinSet::new();
        serving.spawn(async move { grpc.await.context("gRPC server") });
        serving.spawn(async move { http.await.context("HTTP server") });
        let mut background = tokio::task::JoinSet::new();
        background.spawn(async move {
            publisher.await;
            Ok(())
        });
        background.spawn(async move {
            collector.await;
            Ok(())
        });
        if let Some(m) = crate::mirror::Mirror::open(&args.mirror, args.public_tiles)? {
            let mirror = crate::mirror::run(m, state.clone(), background_rx.clone());
            background.spawn(async move {
                mirror.await;
                Ok(())
            });
        }
        // Online backups (`custodyd backup`), for the server's own user.
        let admin = crate::backup::serve_admin(rocks, args.data.clone(), background_rx.clone())?;
        background.spawn(async move {
            admin.await;
            Ok(())
        });
        state.ready.send_replace(true);

        // Until told to stop, or until a task ends by itself: a failure.
        tokio::pin!(shutdown);
        let early = |ended: Result<anyhow::Result<()>, tokio::task::JoinError>| match ended {
            Ok(Ok(())) => anyhow::anyhow!("a server task stopped by itself"),
            Ok(Err(e)) => e,
            Err(e) => anyhow::anyhow!("a server task failed: {e}"),
        };
        let mut failed: Option<anyhow::Error> = tokio::select! {
            _ = &mut shutdown => None,
            Some(ended) = serving.join_next() => Some(early(ended)),
            Some(ended) = background.join_next() => Some(early(ended)),
        };
        // Graceful: stop intake and let open requests and streams finish
        // (every append acknowledged is durable, since acknowledgement
        // follows the commit); then stop the background tasks; then
        // publish a last checkpoint of everything durable.
        tracing::info!("shutting down: no new requests; finishing those in flight");
        state.ready.send_replace(false);
        let _ = stop_tx.send(true);
        // Streams that never end are cut after the drain period.
        let drained = tokio::time::timeout(SHUTDOWN_DRAIN, async {
            while let Some(ended) = serving.join_next().await {
                if let Ok(Err(e)) = ended {
                    tracing::error!(error = %format!("{e:#}"), "while shutting down");
                    failed.get_or_insert(e);
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                secs = SHUTDOWN_DRAIN.as_secs(),
                "requests still open after the drain period are cut"
            );
            serving.abort_all();
        }
        for set in [&mut serving, &mut background] {
            while let Some(ended) = set.join_next().await {
                let e = match ended {
                    Ok(Ok(())) => continue,
                    Err(e) if e.is_cancelled() => continue,
                    Ok(Err(e)) => e,
                    Err(e) => anyhow::anyhow!("a server task failed: {e}"),
                };
                tracing::error!(error = %format!("{e:#}"), "while shutting down");
                failed.get_or_insert(e);
            }
            let _ = background_stop.send(true);
        }
        ingest.abort();
        let durable = *state.durable.borrow();
        if durable > state.latest().size {
            match publisher::publish(&state, witnesses.as_deref(), durable).await {
                Ok(cp) => tracing::info!(size = cp.size, "published a last checkpoint"),
                Err(e) => tracing::error!(
                    error = %format!("{e:#}"),
                    size = durable,
                    "no last checkpoint; the next start signs one"
                ),
            }
        }
        tracing::info!(size = state.latest().size, "stopped");
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// `shutdown_signal` resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `init_logging` sends the process's logs to stderr, at the level
/// `RUST_LOG` sets (default `info`), as text (coloured only on a
/// terminal) or JSON lines: for every binary that runs a server.
pub fn init_logging(format: crate::config::LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    match format {
        crate::config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        crate::config::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_ansi(false)
            .init(),
    }
}
