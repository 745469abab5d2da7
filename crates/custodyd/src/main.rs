//! `custodyd`: parse flags, then hand off to the library.

/// jemalloc, as RocksDB services commonly run: with glibc's allocator a
/// third of the server's time serving proofs went to `malloc`, `free`
/// and `malloc_consolidate` for RocksDB's blocks (BENCHMARKS.md,
/// "Inclusion proofs").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use custody_log::{tree_root, HashCache, LogSigner, LogVerifier};
use custody_store_rocks::RocksStore;
use custodyd::init::Paths;
use custodyd::state::{
    IngestSamples, LogState, PublishedCheckpoint, StoreHashes, HASH_CACHE_CAPACITY,
};
use custodyd::{grpc, grpc_query, http, publisher, sequencer};
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "custodyd", version, about = "Custody Ledger server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new log: database, signing key (mode 0600) and genesis entry.
    Init {
        /// Data directory to create.
        #[arg(long)]
        data: PathBuf,
        /// The log's origin line, e.g. `ledger.example.gov/custody`.
        #[arg(long)]
        origin: String,
        /// The data owner's public key, as written by `custody keygen`.
        #[arg(long)]
        owner_key: PathBuf,
        /// The data owner's party id.
        #[arg(long, default_value = "data-owner")]
        owner_id: String,
    },
    /// Serve the log over gRPC and HTTP.
    Serve(ServeArgs),
    /// Manage the access list: bearer tokens bound to a party and a role
    /// (DESIGN §8). A server re-reads it when it changes.
    #[command(subcommand)]
    Access(AccessCommand),
    /// Compact the database of a stopped server fully, and print its size
    /// before and after.
    Compact {
        /// Data directory made by `custodyd init`.
        #[arg(long)]
        data: PathBuf,
    },
    /// Serve a log seeded with the border-crossing scenario (creates DATA
    /// if it is empty), print its breach scope, and keep serving.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Seed of the scenario generator; the same seed gives the same
        /// numbers.
        #[arg(long, default_value_t = 2019)]
        seed: u64,
        /// Write the generator's own custody intervals per system here, as
        /// JSON.
        #[arg(long)]
        ground_truth: Option<PathBuf>,
        /// Serve without TLS. Without it and without --tls-cert, the demo
        /// issues itself a local CA and a server certificate in DATA/tls
        /// and serves TLS; clients trust DATA/tls/ca.pem (`custody --ca`).
        #[arg(long, conflicts_with = "tls_cert")]
        plaintext: bool,
    },
    /// Certificates for TLS, for a trial without a CA of one's own.
    #[command(subcommand)]
    Tls(TlsCommand),
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Make a local CA in DIR (kept if DIR has one), a server certificate
    /// for each --host, and a client certificate for each --client name
    /// (a subject alternative name, as `custodyd access add --san` binds
    /// it). Prints the files' paths.
    Issue {
        /// Where to write ca.pem, server.pem, client-NAME.pem and their
        /// keys (mode 0600).
        #[arg(long)]
        dir: PathBuf,
        /// A DNS name or IP address the server is reached at
        /// (repeatable).
        #[arg(long = "host", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        hosts: Vec<String>,
        /// A client certificate's name: a DNS name or a URI such as
        /// spiffe://vendor.example/backup (repeatable).
        #[arg(long = "client")]
        clients: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AccessCommand {
    /// Make a token for PARTY with ROLE, add its hash to the list, and
    /// print the token (once: it is not stored).
    Add {
        /// Data directory made by `custodyd init`.
        #[arg(long)]
        data: PathBuf,
        /// The party the token acts for.
        #[arg(long)]
        party: String,
        /// What it may do.
        #[arg(long, value_enum)]
        role: custodyd::access::Role,
        /// A note for operators: who holds it, what for.
        #[arg(long, default_value = "")]
        label: String,
        /// Bind a client certificate's subject alternative name (a DNS
        /// name or URI, verified against --tls-client-ca) instead of
        /// making a token.
        #[arg(long)]
        san: Option<String>,
    },
    /// List the grants (party, role, label, and the first digits of each
    /// token's hash).
    List {
        /// Data directory made by `custodyd init`.
        #[arg(long)]
        data: PathBuf,
    },
    /// Revoke every token whose hash starts with PREFIX (as `list`
    /// shows it), or the grant of a certificate name.
    Revoke {
        /// Data directory made by `custodyd init`.
        #[arg(long)]
        data: PathBuf,
        /// The first hex digits of the token's hash (at least 8), or
        /// `san:NAME` for a certificate's grant, as `list` shows them.
        prefix: String,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Data directory made by `custodyd init`.
    #[arg(long)]
    data: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7100")]
    grpc_addr: SocketAddr,
    /// HTTP (tile API) listen address.
    #[arg(long, default_value = "127.0.0.1:7180")]
    http_addr: SocketAddr,
    /// Checkpoint period while entries arrive, in milliseconds (≤ 1000).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=1000))]
    checkpoint_interval_ms: u64,
    /// Submissions that may wait for the sequencer before appends are
    /// refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 65_536)]
    queue: usize,
    /// Bytes of submissions that may wait for the sequencer (not yet
    /// signature-checked) before appends are refused with
    /// RESOURCE_EXHAUSTED.
    /// At least 1 MiB, so the largest event always fits.
    #[arg(long, default_value_t = 64 << 20, value_parser = queue_bytes)]
    queue_bytes: usize,
    /// Largest batch per commit.
    #[arg(long, default_value_t = 8192)]
    max_batch: usize,
    /// Manifest members planned at once: a bulk event of more is admitted
    /// in slices of this many, between other reporters' batches.
    #[arg(long, default_value_t = sequencer::DEFAULT_BULK_SLICE)]
    bulk_slice: usize,
    /// Serve the tile API (`/checkpoint`, hash and entry tiles) to
    /// callers without a token, as public transparency logs do. Without
    /// it, a server with an access list serves the checkpoint and hash
    /// tiles to witnesses and auditors, and entry tiles to auditors.
    #[arg(long)]
    public_tiles: bool,
    /// Connections open at once on each listener (gRPC, HTTP); more are
    /// closed as they arrive.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Connections open at once from one address on each listener.
    #[arg(long, default_value_t = 256)]
    max_connections_per_address: usize,
    /// A connection on which nothing is read or written for this many
    /// seconds is closed (gRPC clients that answer keepalive pings stay).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout_secs: u64,
    /// Free space, in MiB, that appends leave on the disk holding the
    /// database; below it they are refused with RESOURCE_EXHAUSTED, and
    /// resume once space is freed. 0 keeps none.
    #[arg(long, default_value_t = 256)]
    min_free_mib: u64,
    /// Fault injection, for tests: seconds added to the wall clock the
    /// sequencer integrates entries at (negative: a clock behind).
    #[arg(long, default_value_t = 0, hide = true, allow_hyphen_values = true)]
    fault_clock_offset_secs: i64,
    /// An HTTP request's headers must arrive within this many seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout_secs: u64,
    #[command(flatten)]
    tls: custodyd::tls::TlsArgs,
    #[command(flatten)]
    witness: custodyd::witnessing::WitnessArgs,
    #[command(flatten)]
    uploads: custodyd::uploads::UploadArgs,
    #[command(flatten)]
    rates: custodyd::rate::RateArgs,
}

impl ServeArgs {
    fn limits(&self) -> custodyd::conn::Limits {
        custodyd::conn::Limits {
            max_connections: self.max_connections.max(1),
            max_per_peer: self.max_connections_per_address.max(1),
            idle: Duration::from_secs(self.idle_timeout_secs),
            header: Duration::from_secs(self.header_timeout_secs),
        }
    }
}

/// `queue_bytes` parses `--queue-bytes`: at least 1 MiB, so that the
/// largest entry (64 KiB) and its overhead always fit.
fn queue_bytes(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of bytes"))?;
    if n < 1 << 20 {
        return Err(format!(
            "{n} bytes is too small: the queue must hold at least 1 MiB (1048576), so the largest event fits"
        ));
    }
    Ok(n)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init {
            data,
            origin,
            owner_key,
            owner_id,
        } => custodyd::init::run(&data, &origin, &owner_key, &owner_id).map(|vkey| {
            println!("{vkey}");
        }),
        Command::Serve(args) => serve(args, None),
        Command::Access(cmd) => access(cmd),
        Command::Compact { data } => compact(&data),
        Command::Demo {
            serve: args,
            seed,
            ground_truth,
            plaintext,
        } => demo(args, seed, ground_truth, plaintext),
        Command::Tls(TlsCommand::Issue {
            dir,
            hosts,
            clients,
        }) => custodyd::tls::issue(&dir, &hosts, &clients).map(|issued| {
            println!(
                "CA (clients trust it: custody --ca): {}",
                issued.ca.display()
            );
            println!(
                "server: --tls-cert {} --tls-key {}",
                issued.cert.display(),
                issued.key.display()
            );
            for c in &clients {
                let stem = dir.join(custodyd::tls::client_stem(c));
                println!(
                    "client {c}: --client-cert {}.pem --client-key {}.key",
                    stem.display(),
                    stem.display()
                );
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error chain, outermost first.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("custodyd: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

/// `Ready` runs once the server listens, with its gRPC and HTTP addresses.
type Ready = Box<
    dyn FnOnce(SocketAddr, SocketAddr) -> futures::future::BoxFuture<'static, anyhow::Result<()>>
        + Send,
>;

fn demo(
    mut args: ServeArgs,
    seed: u64,
    ground_truth: Option<PathBuf>,
    plaintext: bool,
) -> anyhow::Result<()> {
    let data = args.data.clone();
    let scenario = custodyd::demo::prepare(&data, seed)?;
    // TLS unless told otherwise: a local CA of the demo's own, and a
    // server certificate for the addresses it listens on.
    let ca = match (&args.tls.tls_cert, plaintext) {
        (None, false) => {
            let mut hosts = vec!["localhost".to_owned()];
            for ip in [args.grpc_addr.ip(), args.http_addr.ip()] {
                if !ip.is_unspecified() && !hosts.contains(&ip.to_string()) {
                    hosts.push(ip.to_string());
                }
            }
            let issued = custodyd::tls::issue(&data.join("tls"), &hosts, &[])?;
            args.tls.tls_cert = Some(issued.cert);
            args.tls.tls_key = Some(issued.key);
            Some(issued.ca)
        }
        _ => None,
    };
    // Its own witness, unless told which to use.
    let witness = if args.witness.witnesses.is_empty() {
        let (flag, vkey) = custodyd::demo::start_witness(&data)?;
        args.witness.witnesses.push(flag);
        Some(vkey)
    } else {
        None
    };
    let ready: Ready = Box::new(move |grpc, http| {
        Box::pin(async move {
            let at = custodyd::demo::Reach {
                grpc,
                http,
                ca,
                witness,
            };
            match scenario {
                Some(s) => custodyd::demo::seed(at, data, s, ground_truth).await,
                None => custodyd::demo::reprint(at, data, ground_truth).await,
            }
        })
    });
    serve(args, Some(ready))
}

fn compact(data: &std::path::Path) -> anyhow::Result<()> {
    let paths = Paths::new(data);
    if !paths.db.is_dir() {
        anyhow::bail!("{} holds no database: run `custodyd init`", data.display());
    }
    let before = dir_bytes(&paths.db)?;
    // Opening takes RocksDB's lock, so a running server is refused here.
    let store = RocksStore::open(&paths.db)
        .with_context(|| format!("open {} (is custodyd serving it?)", paths.db.display()))?;
    store.compact()?;
    drop(store);
    let after = dir_bytes(&paths.db)?;
    println!(
        "{}: {before} bytes before compaction, {after} after",
        paths.db.display()
    );
    Ok(())
}

/// `dir_bytes` is the size of the files directly in `dir`.
fn dir_bytes(dir: &std::path::Path) -> anyhow::Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let m = e?.metadata()?;
        if m.is_file() {
            n += m.len();
        }
    }
    Ok(n)
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
fn check_tree(
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

fn serve(args: ServeArgs, ready: Option<Ready>) -> anyhow::Result<()> {
    let paths = Paths::new(&args.data);
    let skey = std::fs::read_to_string(&paths.key).with_context(|| {
        format!(
            "read log key {} (run `custodyd init` first)",
            paths.key.display()
        )
    })?;
    let signer = LogSigner::from_key_string(&skey)?;
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
    let access = custodyd::access::Access::open(&args.data)?;
    if access.is_open() {
        tracing::warn!(
            "no access list ({}): every caller may read everything and report for any party; add tokens with `custodyd access add`",
            custodyd::access::AccessFile::path(&args.data).display()
        );
    }
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
        uploads: Arc::new(custodyd::uploads::Uploads::new(args.uploads.clone())),
        rates: custodyd::rate::Rates::new(&args.rates),
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(state, args, ready))
}

async fn run(state: Arc<LogState>, args: ServeArgs, ready: Option<Ready>) -> anyhow::Result<()> {
    let tls = custodyd::tls::Tls::load(&args.tls)?;
    let witnesses = custodyd::witnessing::Witnesses::from_args(&args.witness)?.map(Arc::new);
    if let Some(w) = &witnesses {
        tracing::info!(witnesses = ?w.names(), threshold = w.threshold(), "checkpoints are published once cosigned");
    }
    let grpc_listener = tokio::net::TcpListener::bind(args.grpc_addr)
        .await
        .with_context(|| format!("bind gRPC {}", args.grpc_addr))?;
    let http_listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("bind HTTP {}", args.http_addr))?;
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
    let (stop_tx, stop_rx) = watch::channel(false);

    tokio::spawn(custodyd::state::sample_ingest(state.clone()));
    tokio::spawn(custodyd::uploads::run_collector(
        state.clone(),
        stop_rx.clone(),
    ));
    let publisher = tokio::spawn(publisher::run(
        state.clone(),
        Duration::from_millis(args.checkpoint_interval_ms),
        witnesses,
        stop_rx.clone(),
    ));

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
        grpc::CustodyLogService::new(state.clone(), sequencer),
    )
    .max_decoding_message_size(256 * 1024);
    let findings = custodyd::findings::Findings::new(state.clone());
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

    let grpc_listener = custodyd::conn::GatedListener::new(grpc_listener, args.limits(), "grpc");
    let http_listener = custodyd::conn::GatedListener::new(http_listener, args.limits(), "http");
    let mut grpc_stop = stop_rx.clone();
    // Keepalive pings keep a live client's idle channel open (they count
    // as traffic for the idle timeout) and close one whose peer is gone.
    let keepalive = args.limits().idle / 3;
    let grpc = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(keepalive))
        .max_concurrent_streams(Some(256))
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
    let http = custodyd::conn::serve_http(
        http_listener,
        http::router(state.clone()),
        tls.as_ref().map(|t| t.http.clone()),
        stop_rx.clone(),
        Duration::from_secs(10),
    );
    let grpc = tokio::spawn(grpc);
    let http = tokio::spawn(http);
    // A failing `ready` task (the demo's seeding) stops the server with
    // its error.
    let (fail_tx, mut fail_rx) = tokio::sync::mpsc::channel::<anyhow::Error>(1);
    if let Some(ready) = ready {
        let task = ready(grpc_addr, http_addr);
        tokio::spawn(async move {
            if let Err(e) = task.await {
                let _ = fail_tx.send(e).await;
            }
        });
    }

    let failed = tokio::select! {
        _ = shutdown_signal() => None,
        Some(e) = fail_rx.recv() => Some(e),
    };
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = grpc.await;
    let _ = http.await;
    let _ = publisher.await;
    match failed {
        Some(e) => Err(e.context("demo")),
        None => Ok(()),
    }
}

/// `access` runs `custodyd access ...`.
fn access(cmd: AccessCommand) -> anyhow::Result<()> {
    use custodyd::access::{hash_token, new_token, AccessFile, Grant};
    match cmd {
        AccessCommand::Add {
            data,
            party,
            role,
            label,
            san,
        } => {
            if !custody_domain::is_valid_id(&party) {
                anyhow::bail!(
                    "--party: {party:?} is not an id; ids are 1 to 64 characters from A-Z a-z 0-9 . _ : -"
                );
            }
            anyhow::ensure!(
                data.join("db").exists() || data.join("log.key").exists(),
                "--data: {} is not a data directory made by `custodyd init`",
                data.display()
            );
            let mut file = AccessFile::load(&data)?.unwrap_or_default();
            if let Some(name) = san {
                anyhow::ensure!(
                    !name.is_empty()
                        && name.len() <= 256
                        && name.bytes().all(|b| b.is_ascii_graphic()),
                    "--san: {:?} is not a certificate name (printable ASCII, no spaces, at most 256)",
                    custody_domain::clip(&name, 64)
                );
                anyhow::ensure!(
                    !file.grants.iter().any(|g| g.san.as_deref() == Some(&name)),
                    "--san {name}: already on the list; revoke it first to change its party or role"
                );
                file.grants.push(Grant {
                    sha256: String::new(),
                    san: Some(name.clone()),
                    party,
                    role,
                    label,
                });
                file.store(&data)?;
                println!("a client certificate named {name} now acts for its party");
                return Ok(());
            }
            let token = new_token();
            file.grants.push(Grant {
                sha256: hash_token(&token),
                san: None,
                party,
                role,
                label,
            });
            file.store(&data)?;
            println!("{token}");
            Ok(())
        }
        AccessCommand::List { data } => {
            let file = AccessFile::load(&data)?;
            match file {
                None => println!("no access list: the server is open to every caller"),
                Some(f) => {
                    for g in f.grants {
                        let key = match &g.san {
                            Some(name) => format!("san:{name}"),
                            None => g.sha256[..g.sha256.len().min(16)].to_owned(),
                        };
                        println!("{}\t{}\t{}\t{}", key, g.party, g.role.name(), g.label);
                    }
                }
            }
            Ok(())
        }
        AccessCommand::Revoke { data, prefix } => {
            if let Some(name) = prefix.strip_prefix("san:") {
                let mut file = AccessFile::load(&data)?
                    .ok_or_else(|| anyhow::anyhow!("{} has no access list", data.display()))?;
                let before = file.grants.len();
                file.grants.retain(|g| g.san.as_deref() != Some(name));
                let revoked = before - file.grants.len();
                anyhow::ensure!(revoked > 0, "no grant binds the certificate name {name}");
                file.store(&data)?;
                println!("revoked {revoked}");
                return Ok(());
            }
            anyhow::ensure!(
                prefix.len() >= 8 && prefix.bytes().all(|b| b.is_ascii_hexdigit()),
                "PREFIX: give at least 8 hex digits of the hash, as `custodyd access list` shows it"
            );
            let mut file = AccessFile::load(&data)?
                .ok_or_else(|| anyhow::anyhow!("{} has no access list", data.display()))?;
            let before = file.grants.len();
            let prefix = prefix.to_ascii_lowercase();
            file.grants
                .retain(|g| g.san.is_some() || !g.sha256.starts_with(&prefix));
            let revoked = before - file.grants.len();
            anyhow::ensure!(revoked > 0, "no token's hash starts with {prefix}");
            // An empty list still closes the server: it is not the same as
            // no list.
            file.store(&data)?;
            println!("revoked {revoked}");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
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
