//! `custody`: the command-line tool for reporters and auditors.

/// jemalloc, as in `custodyd`: `custody audit` runs the server's admission
/// path over an embedded RocksDB, where glibc's allocator took a tenth of
/// its time (BENCHMARKS.md, "custody audit in RocksDB").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod agent;
mod audit;
mod bench_hostile;
mod bench_proofs;
mod bench_queries;
mod bench_verify;
mod event_json;
mod export;
mod inspect;
mod keys;
mod load;
mod monitor;
mod net;
mod proofs;
mod report;
mod witness;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use clap::{Parser, Subcommand};
use custody_domain::SignedEnvelope;
use custody_log::LogVerifier;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::{envelope_to_proto, v1};
use prost::Message as _;

#[derive(Parser)]
#[command(
    name = "custody",
    version,
    about = "Custody Ledger client and auditor tool"
)]
struct Cli {
    /// A bearer token for a server with an access list (`custodyd access
    /// add`); sent with every gRPC and HTTP request, never printed.
    #[arg(long, global = true)]
    token: Option<String>,
    /// Trust this CA (PEM) for https:// servers, as well as the system's
    /// roots: a server's own CA, such as the demo's DATA/tls/ca.pem.
    #[arg(long, global = true, env = "CUSTODY_CA")]
    ca: Option<std::path::PathBuf>,
    /// Present this client certificate (PEM) to https:// servers that
    /// take them (`custodyd access add --san`). Needs --client-key.
    #[arg(
        long,
        global = true,
        env = "CUSTODY_CLIENT_CERT",
        requires = "client_key"
    )]
    client_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --client-cert.
    #[arg(
        long,
        global = true,
        env = "CUSTODY_CLIENT_KEY",
        requires = "client_cert"
    )]
    client_key: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make an Ed25519 key pair: PREFIX.key (mode 0600) and PREFIX.pub.
    Keygen {
        #[arg(long)]
        out: String,
    },
    /// Sign an event given as JSON and submit it.
    Append {
        /// gRPC server, e.g. http://127.0.0.1:7100.
        #[arg(long)]
        server: String,
        /// The reporter's secret key file.
        #[arg(long)]
        key: PathBuf,
        /// The event as JSON (see `event_json.rs`); `-` for stdin.
        #[arg(long)]
        event: PathBuf,
        /// Wait for a checkpoint and verify the inclusion proof.
        #[arg(long)]
        wait: bool,
        /// Pinned log key, to verify the checkpoint with `--wait`.
        #[arg(long)]
        log_key: Option<PathBuf>,
    },
    /// Fetch a proof from the server into a file for offline verification.
    Prove {
        #[command(subcommand)]
        what: ProveWhat,
    },
    /// Check an evidence bundle, a checkpoint or a proof file offline
    /// against a pinned log key.
    Verify {
        /// An evidence bundle from `custody export`, a checkpoint note or a
        /// proof file from `custody prove`.
        file: PathBuf,
        /// File holding the log's verifier key string.
        #[arg(long)]
        log_key: PathBuf,
        #[command(flatten)]
        witnesses: witness::PolicyArgs,
    },
    /// Run a witness: keygen, serve.
    #[command(subcommand)]
    Witness(witness::Command),
    /// A reporting sidecar: takes events as JSON lines on a Unix socket or
    /// from a watched directory, spools and sends them (run, status).
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Follow a log's checkpoints over its tile API; alert on any split
    /// view or rollback.
    Monitor {
        /// HTTP base URL of the tile API.
        #[arg(long)]
        url: String,
        #[arg(long)]
        log_key: PathBuf,
        #[command(flatten)]
        witnesses: witness::PolicyArgs,
        /// Where the last checkpoint seen is kept.
        #[arg(long)]
        state: PathBuf,
        /// Check once and exit.
        #[arg(long)]
        once: bool,
        /// Seconds between checks.
        #[arg(long, default_value_t = 5)]
        interval: u64,
    },
    /// Fetch one self-contained evidence bundle for a question into a
    /// file: history, holders, holdings, breach-scope (or finding).
    Export(export::ExportArgs),
    /// Replay the whole log from its tile API, verifying every hash and
    /// signature, rebuild custody state and findings, and compare them with
    /// the server's answers.
    Audit(audit::AuditArgs),
    /// Ask who held what, when: history, holders, holdings, breach-scope.
    Inspect {
        #[command(subcommand)]
        query: inspect::Query,
    },
    /// Measure custody query latency against a freshly initialised server
    /// (sets up a 10,000-event asset and a system of bulk assets first).
    BenchQueries {
        #[arg(long)]
        server: String,
        /// The data owner's secret key (to register the bench party).
        #[arg(long)]
        owner_key: PathBuf,
        /// Assets to put on one system, in bulk captures of 100,000.
        #[arg(long, default_value_t = 1_000_000)]
        bulk_assets: usize,
        /// Members per bulk capture (at most 1,000,000).
        #[arg(long, default_value_t = 100_000)]
        manifest_size: usize,
        /// Times each query runs (BreachScope: at most 20).
        #[arg(long, default_value_t = 200)]
        iterations: usize,
    },
    /// Inclusion proofs served per second over gRPC, at random indexes of
    /// the latest checkpoint; every answer is verified.
    BenchProofs {
        #[arg(long)]
        server: String,
        /// The log's verifier key.
        #[arg(long)]
        log_key: PathBuf,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Measure this machine's Ed25519 verification rate on all cores, by
    /// the sequencer's own code path: the ceiling ingest is quoted against.
    BenchVerify {
        /// Signatures per round.
        #[arg(long, default_value_t = 200_000)]
        signatures: usize,
        /// Distinct signing keys among them (the load generator uses one).
        #[arg(long, default_value_t = 1)]
        keys: usize,
        /// Rounds timed; the median is reported.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Honest streaming throughput alone, then beside a hostile mix from
    /// another address, in alternating rounds; prints the ratio as JSON.
    BenchHostile(bench_hostile::Args),
    /// Generate load against a freshly initialised server.
    /// Report CAPTUREs of fresh assets through the client library's
    /// spool until the reporter's sequence number reaches --events,
    /// resuming after a crash (the chaos test and the client benchmark).
    ReportCaptures {
        #[arg(long)]
        server: String,
        /// The spool directory, which also keeps the reporter's identity.
        #[arg(long)]
        spool: PathBuf,
        /// Register a fresh reporter party (with --owner-key) into
        /// --spool, and exit.
        #[arg(long)]
        setup: bool,
        /// The data owner's secret key, for --setup.
        #[arg(long)]
        owner_key: Option<PathBuf>,
        /// The sequence number to reach.
        #[arg(long, default_value_t = 0)]
        events: u64,
        /// Events spooled with one fsync.
        #[arg(long, default_value_t = 1000)]
        chunk: usize,
    },
    Load {
        #[arg(long)]
        server: String,
        /// The data owner's secret key (to register the load party).
        #[arg(long)]
        owner_key: PathBuf,
        #[arg(long)]
        events: usize,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Use AppendStream instead of unary Append.
        #[arg(long)]
        stream: bool,
        /// With --stream: offer this many events/s in total (default: as
        /// fast as the server accepts).
        #[arg(long)]
        rate: Option<f64>,
        /// Percent of events (0-100) that COPY the asset captured just
        /// before to a second system.
        #[arg(long, default_value_t = 0)]
        transfer_percent: u32,
        /// Make every Nth event a bulk CAPTURE of a fresh manifest of
        /// --bulk-size members, uploaded before the clock starts.
        #[arg(long, default_value_t = 0)]
        bulk_every: usize,
        #[arg(long, default_value_t = 1000)]
        bulk_size: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ProveWhat {
    /// Inclusion of entry INDEX in the latest (or a given) checkpoint.
    Inclusion {
        #[arg(long)]
        server: String,
        #[arg(long)]
        index: u64,
        #[arg(long, default_value_t = 0)]
        tree_size: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Consistency of the checkpoint of size OLD with the latest (or NEW).
    Consistency {
        #[arg(long)]
        server: String,
        #[arg(long)]
        old: u64,
        #[arg(long, default_value_t = 0)]
        new: u64,
        #[arg(long)]
        out: PathBuf,
    },
}

/// Exit status for a proven log misbehaviour (`monitor`).
const EXIT_ALARM: u8 = 2;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing to a closed pipe (`custody
    // inspect ... | head`) panicked. A command-line tool ends quietly
    // there, by the signal, as `cat` and `grep` do.
    // SAFETY: called before any thread starts; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    net::set_token(
        cli.token
            .clone()
            .or_else(|| std::env::var("CUSTODY_TOKEN").ok()),
    );
    let tls = net::set_tls(
        cli.ca.as_deref(),
        cli.client_cert.as_deref(),
        cli.client_key.as_deref(),
    );
    match tls.and_then(|()| run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("custody: {}", chain.join(": "));
            if e.downcast_ref::<monitor::Alarm>().is_some() {
                ExitCode::from(EXIT_ALARM)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `custody agent`'s subcommands.
#[derive(Subcommand)]
enum AgentCommand {
    /// Run the agent until SIGTERM or Ctrl-C.
    Run {
        /// The log's gRPC URL (`https://` for TLS, with --ca).
        #[arg(long)]
        server: String,
        /// The spool directory; it also keeps the agent's party and the
        /// log's origin.
        #[arg(long)]
        spool: PathBuf,
        /// The party the agent reports as (needed on the first run).
        #[arg(long)]
        party: Option<String>,
        /// The party's secret key.
        #[arg(long)]
        key: PathBuf,
        /// The log's origin (read from the log on the first run if absent).
        #[arg(long)]
        origin: Option<String>,
        /// Take JSON lines on this Unix socket (made owner-only).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Take the `*.jsonl` files that appear in this directory.
        #[arg(long)]
        watch: Option<PathBuf>,
        /// Keep a receipt of each logged event (its inclusion proof in a
        /// checkpoint signed by this log key) in SPOOL/receipts.
        #[arg(long)]
        receipts_log_key: Option<PathBuf>,
        /// A party, other than --party, that events may name as actor
        /// (one acting on the party's behalf); repeatable.
        #[arg(long = "actor")]
        actors: Vec<String>,
    },
    /// Spool depth, oldest unsent event, last acknowledged index.
    Status {
        /// Ask the running agent on this socket.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Or read the spool directory of an agent that is not running.
        #[arg(long)]
        spool: Option<PathBuf>,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn connect(server: &str) -> anyhow::Result<CustodyLogClient<net::Grpc>> {
    Ok(CustodyLogClient::new(net::channel(server).await?))
}

fn read_vkey(path: &std::path::Path) -> anyhow::Result<LogVerifier> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    LogVerifier::new(&text).with_context(|| format!("log key {}", path.display()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keygen { out } => {
            let k = keys::generate(&out)?;
            println!(
                "wrote {out}.key and {out}.pub (key id {})",
                custody_domain::key_id_of(&k.verifying_key().to_bytes())
            );
            Ok(())
        }
        Command::Append {
            server,
            key,
            event,
            wait,
            log_key,
        } => {
            let key = keys::load_secret(&key)?;
            let text = if event.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&event)
                    .with_context(|| format!("read {}", event.display()))?
            };
            let json: event_json::EventJson = serde_json::from_str(&text).context("event JSON")?;
            let verifier = log_key.as_deref().map(read_vkey).transpose()?;
            runtime()?.block_on(async move {
                let mut c = connect(&server).await?;
                // The event is signed for this log only: it names the
                // log's origin, read from the genesis entry.
                let (_, origin) = load::genesis(&mut c).await?;
                let ev = json.into_proto(&origin)?;
                let env = SignedEnvelope::sign(ev.encode_to_vec(), &[&key]);
                let r = c
                    .append(v1::AppendRequest {
                        event: Some(envelope_to_proto(&env)),
                        wait_for_checkpoint: wait,
                    })
                    .await
                    .map_err(|s| anyhow!("append refused ({:?}): {}", s.code(), s.message()))?
                    .into_inner();
                let dup = if r.duplicate {
                    " (duplicate of an earlier submission)"
                } else {
                    ""
                };
                println!("index {} event_id {}{dup}", r.index, ev.event_id);
                if let Some(v) = verifier {
                    if wait {
                        let cp = v.verify(&r.checkpoint).context("checkpoint")?;
                        let entry = c
                            .get_entries(v1::GetEntriesRequest {
                                start: r.index,
                                end: r.index + 1,
                            })
                            .await
                            .map_err(|s| anyhow!("read entry: {}", s.message()))?
                            .into_inner()
                            .entries
                            .pop()
                            .ok_or_else(|| anyhow!("entry {} missing", r.index))?;
                        let proof: Vec<custody_log::Hash> = r
                            .inclusion_proof
                            .iter()
                            .map(|h| h.as_slice().try_into().map(custody_log::Hash))
                            .collect::<Result<_, _>>()
                            .map_err(|_| anyhow!("malformed proof hash"))?;
                        custody_log::verify_inclusion(
                            &proof,
                            cp.size,
                            &cp.root,
                            r.index,
                            &custody_log::leaf_hash(&entry),
                        )
                        .map_err(|e| anyhow!("inclusion proof: {e}"))?;
                        println!("included in checkpoint of size {} (verified)", cp.size);
                    }
                }
                Ok(())
            })
        }
        Command::Prove { what } => runtime()?.block_on(prove(what)),
        Command::Inspect { query } => runtime()?.block_on(inspect::run(query)),
        Command::Audit(args) => audit::run(args),
        Command::Export(args) => runtime()?.block_on(export::run(args)),
        Command::BenchQueries {
            server,
            owner_key,
            bulk_assets,
            manifest_size,
            iterations,
        } => {
            let owner = keys::load_secret(&owner_key)?;
            let report = runtime()?.block_on(bench_queries::run(
                &server,
                &owner,
                bulk_assets,
                manifest_size,
                iterations.max(1),
            ))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::BenchProofs {
            server,
            log_key,
            concurrency,
            seconds,
        } => {
            if !(seconds > 0.0 && seconds.is_finite()) || concurrency == 0 {
                anyhow::bail!("--seconds must be positive and --concurrency at least 1");
            }
            let v = read_vkey(&log_key)?;
            let report =
                runtime()?.block_on(bench_proofs::run(&server, &v, concurrency, seconds))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Verify {
            file,
            log_key,
            witnesses,
        } => {
            let v = read_vkey(&log_key)?;
            let policy = witnesses.policy()?;
            let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            let msg = proofs::verify_file(&bytes, &v)
                .with_context(|| format!("{} does not verify", file.display()))?;
            println!("{msg}");
            if let Some(p) = policy {
                for note in proofs::checkpoints_of(&bytes)? {
                    let ok = p.check(&note, &v).with_context(|| {
                        format!("{} does not meet the witness policy", file.display())
                    })?;
                    println!("checkpoint {ok}");
                }
            }
            Ok(())
        }
        Command::Witness(cmd) => witness::run(cmd),
        Command::Agent(AgentCommand::Run {
            server,
            spool,
            party,
            key,
            origin,
            socket,
            watch,
            receipts_log_key,
            actors,
        }) => {
            let receipts = receipts_log_key.as_deref().map(read_vkey).transpose()?;
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info".into());
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init();
            runtime()?.block_on(agent::run(agent::Options {
                server,
                spool,
                party,
                key,
                origin,
                socket,
                watch,
                receipts,
                actors,
            }))
        }
        Command::Agent(AgentCommand::Status { socket, spool }) => {
            let s = runtime()?.block_on(agent::status(socket.as_deref(), spool.as_deref()))?;
            println!("{}", serde_json::to_string_pretty(&s)?);
            Ok(())
        }
        Command::Monitor {
            url,
            log_key,
            witnesses,
            state,
            once,
            interval,
        } => {
            let v = read_vkey(&log_key)?;
            let policy = witnesses.policy()?;
            loop {
                let msg = monitor::check_once(&url, &v, policy.as_ref(), &state)?;
                println!("{msg}");
                if once {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_secs(interval));
            }
        }
        Command::BenchVerify {
            signatures,
            keys,
            rounds,
        } => {
            let report = bench_verify::run(signatures, keys, rounds)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::BenchHostile(args) => bench_hostile::run(args),
        Command::ReportCaptures {
            server,
            spool,
            setup,
            owner_key,
            events,
            chunk,
        } => {
            if setup {
                let owner = owner_key
                    .as_deref()
                    .ok_or_else(|| anyhow::anyhow!("--setup needs --owner-key"))
                    .and_then(keys::load_secret)?;
                let party = runtime()?.block_on(report::setup(&server, &owner, &spool))?;
                println!("{party}");
                Ok(())
            } else {
                if chunk == 0 {
                    anyhow::bail!("--chunk must be at least 1");
                }
                let r = runtime()?.block_on(report::run(&server, &spool, events, chunk))?;
                println!("{}", serde_json::to_string(&r)?);
                Ok(())
            }
        }
        Command::Load {
            server,
            owner_key,
            events,
            concurrency,
            stream,
            rate,
            transfer_percent,
            bulk_every,
            bulk_size,
            json,
        } => {
            if events == 0 || concurrency == 0 {
                anyhow::bail!("--events and --concurrency must be at least 1");
            }
            if transfer_percent > 50 {
                anyhow::bail!(
                    "--transfer-percent is at most 50: each COPY follows the CAPTURE it copies"
                );
            }
            if bulk_every > 0 && !(1..=1_000_000).contains(&bulk_size) {
                anyhow::bail!("--bulk-size is 1 to 1,000,000 members");
            }
            if rate.is_some() && !stream {
                anyhow::bail!("--rate needs --stream");
            }
            if rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                anyhow::bail!("--rate must be a positive number of events per second");
            }
            let owner_key = keys::load_secret(&owner_key)?;
            let report = runtime()?.block_on(load::run(load::LoadOptions {
                server,
                owner_key,
                events,
                concurrency,
                stream,
                rate,
                mix: load::Mix {
                    transfer_percent,
                    bulk_every,
                    bulk_size,
                },
            }))?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{} events ({} x{}) in {:.2}s: {:.0} events/s; durable ack p50 {:.1} ms p99 {:.1} ms; checkpoint inclusion p50 {:.0} ms p99 {:.0} ms; refused {}",
                    report.events, report.mode, report.concurrency, report.seconds, report.events_per_sec,
                    report.ack_p50_ms, report.ack_p99_ms, report.checkpoint_p50_ms, report.checkpoint_p99_ms, report.refused
                );
            }
            Ok(())
        }
    }
}

async fn prove(what: ProveWhat) -> anyhow::Result<()> {
    let (file, out) = match what {
        ProveWhat::Inclusion {
            server,
            index,
            tree_size,
            out,
        } => {
            let mut c = connect(&server).await?;
            let r = c
                .get_inclusion_proof(v1::GetInclusionProofRequest { index, tree_size })
                .await
                .map_err(|s| anyhow!("inclusion proof ({:?}): {}", s.code(), s.message()))?
                .into_inner();
            (
                proofs::ProofFile::inclusion(r.checkpoint, index, &r.entry, &r.proof)?,
                out,
            )
        }
        ProveWhat::Consistency {
            server,
            old,
            new,
            out,
        } => {
            let mut c = connect(&server).await?;
            let r = c
                .get_consistency_proof(v1::GetConsistencyProofRequest {
                    old_size: old,
                    new_size: new,
                })
                .await
                .map_err(|s| anyhow!("consistency proof ({:?}): {}", s.code(), s.message()))?
                .into_inner();
            let note = |size| {
                let mut c = c.clone();
                async move {
                    let r = c
                        .get_checkpoint(v1::GetCheckpointRequest { tree_size: size })
                        .await
                        .map_err(|s| anyhow!("checkpoint {size}: {}", s.message()))?;
                    String::from_utf8(r.into_inner().checkpoint).context("checkpoint is not text")
                }
            };
            (
                proofs::ProofFile::Consistency {
                    old_checkpoint: note(r.old_size).await?,
                    new_checkpoint: note(r.new_size).await?,
                    proof: proofs::b64_hashes(&r.proof),
                },
                out,
            )
        }
    };
    std::fs::write(&out, serde_json::to_vec_pretty(&file)?)
        .with_context(|| format!("write {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}
