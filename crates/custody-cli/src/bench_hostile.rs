//! `custody bench-hostile`: how much of an honest reporter's streaming
//! throughput survives a hostile mix at full rate.
//!
//! Set-up (not timed): an honest and a hostile reporter party, each
//! registered with the data owner's key as `custody load` registers its
//! party, and the hostile traffic, signed in advance.
//!
//! Then `--rounds` rounds of two phases, A then B, so that the machine's
//! noise falls on both:
//!
//! - **A (baseline):** the honest client streams pre-signed CAPTUREs over
//!   one `AppendStream` for `--seconds` and counts the acknowledged ones.
//! - **B (mixed):** the same, while hostile tasks run from another source
//!   address (`--hostile-addr`, 127.0.0.2), each as fast as the server
//!   takes it, started `--warmup` seconds before the honest stream:
//!   - `bad-sig`: `AppendStream` floods of events signed by a key no
//!     registry entry added, carrying random bytes as the signature of
//!     the hostile party's key, or a valid signature of the hostile key
//!     over another event;
//!   - `refused`: events the hostile party signs correctly but the log
//!     must refuse (or dedup): another party as reporter, the data owner
//!     as actor, a time an hour ahead, another log's origin, a known
//!     `event_id` with other bytes, and exact replays of a logged event;
//!   - `oversized`: 60 KiB bodies of random bytes, 60 KiB protobuf bodies
//!     with an oversized field, bodies over the entry limit, and unary
//!     messages over the server's 256 KiB message limit;
//!   - `stalled-uploads`: `PutManifest` uploads that send
//!     `--stall-members` members and then nothing;
//!   - `slow-connections`: `--slow-connections` TCP connections that send
//!     nothing (half to the gRPC port, half to the HTTP port), and as
//!     many to the HTTP port that trickle a request's headers, a line a
//!     second (slowloris); each is reopened when the server closes it.
//!
//! The hostile tasks run on threads of their own at niceness
//! `--hostile-nice` (19 by default), so that on one machine the
//! attacker's own CPU, which a real attacker spends on its own machine,
//! comes out of idle time rather than the server's.
//!
//! Requests that need a token are not part of the mix: the benchmark
//! server runs open. Every phase also probes the HTTP port from the honest
//! address (`GET /checkpoint`, ten times a second).
//!
//! The report gives honest events/s per phase and round, the medians, and
//! the ratio median(B) / median(A); what each hostile task sent and how
//! the server answered it, by gRPC code; and, per phase, the CPU seconds
//! of the server (`--server-pid`), of this process, and of its hostile
//! threads, because on a small machine the hostile client's own CPU is
//! taken from the server and the honest client too.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use ed25519_dalek::SigningKey;
use prost::Message as _;
use rand_core::RngCore as _;
use serde::Serialize;
use tonic::transport::Channel;

use crate::load::{
    capture_action, captures, custody_event, envelope, fresh_digest, genesis, quantile,
    register_party, system_of,
};

/// The share of its baseline the issue asks the honest client to keep.
const TARGET: f64 = 0.8;
/// Members per `PutManifest` message, as `custody load` sends them.
const UPLOAD_CHUNK: usize = 5000;
/// Distinct messages each flood cycles through.
const FLOOD_POOL: usize = 4096;
/// Distinct messages of 60 KiB and more the oversized flood cycles through.
const BIG_POOL: usize = 64;
/// A body this large fits the entry limit (64 KiB, less 1 KiB of framing).
const BIG_BODY: usize = 60 * 1024;
/// A body over the entry limit, under the server's gRPC message limit.
const OVER_ENTRY: usize = 70 * 1024;
/// A message over the server's gRPC message limit (256 KiB).
const OVER_GRPC: usize = 300 * 1024;
/// Pause before a hostile task tries again after an answer ended its
/// attempt (a refused connection, stream or upload).
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// A connection the server closes sooner than this is counted as closed
/// at once (refused at a connection cap).
const AT_ONCE: Duration = Duration::from_millis(500);

/// `Kind` is one kind of hostile traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    BadSig,
    Refused,
    Oversized,
    StalledUploads,
    SlowConnections,
    /// No hostile task: phase B repeats phase A, to see the noise.
    None,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::BadSig,
        Kind::Refused,
        Kind::Oversized,
        Kind::StalledUploads,
        Kind::SlowConnections,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::BadSig => "bad-sig",
            Kind::Refused => "refused",
            Kind::Oversized => "oversized",
            Kind::StalledUploads => "stalled-uploads",
            Kind::SlowConnections => "slow-connections",
            Kind::None => "none",
        }
    }
}

/// `Args` are `custody bench-hostile`'s options.
#[derive(clap::Args)]
pub struct Args {
    /// gRPC server, e.g. http://127.0.0.1:17300.
    #[arg(long)]
    server: String,
    /// The server's HTTP address, HOST:PORT: where the slow connections
    /// go and what the honest HTTP probe asks. Without it, neither runs.
    #[arg(long)]
    http_addr: Option<String>,
    /// The data owner's secret key (to register the two parties).
    #[arg(long)]
    owner_key: PathBuf,
    /// Seconds the honest client streams in each phase.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Rounds of phase A (honest alone) then phase B (with the hostile
    /// mix).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Run only these hostile kinds in phase B (comma-separated; default
    /// all but `none`, which runs none: an A/A run, to see the noise).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Kind>,
    /// The local address the hostile tasks connect from.
    #[arg(long, default_value = "127.0.0.2")]
    hostile_addr: IpAddr,
    /// AppendStreams per flooding kind (bad-sig, refused, oversized).
    #[arg(long, default_value_t = 1)]
    hostile_streams: usize,
    /// Silent connections (half to the gRPC port, half to the HTTP port),
    /// and as many slowloris connections to the HTTP port.
    #[arg(long, default_value_t = 300)]
    slow_connections: usize,
    /// Stalled manifest uploads tried at once.
    #[arg(long, default_value_t = 8)]
    stalled_uploads: usize,
    /// Members each stalled upload sends before it stalls.
    #[arg(long, default_value_t = 200_000)]
    stall_members: usize,
    /// Offer the honest client's events at this many per second (default:
    /// as fast as the server takes them).
    #[arg(long)]
    honest_rate: Option<f64>,
    /// The niceness of the hostile tasks' threads, 0 to 19. By default
    /// the lowest priority: on one machine the attacker's own CPU (which
    /// a real one spends on its own machine) would otherwise come out of
    /// the server's, and the server's cost of the hostile traffic is what
    /// is measured. 0 to let them compete as equals.
    #[arg(long, default_value_t = 19)]
    hostile_nice: i32,
    /// The server's process id, to report its CPU time per phase.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds the hostile tasks run before the honest stream starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Print one JSON object (otherwise a summary, then the JSON).
    #[arg(long)]
    json: bool,
}

impl Args {
    fn check(&self) -> anyhow::Result<()> {
        let positive = |v: f64| v > 0.0 && v.is_finite();
        if !positive(self.seconds) {
            bail!("--seconds must be a positive number");
        }
        if !(self.warmup >= 0.0 && self.warmup.is_finite()) {
            bail!("--warmup must be zero or more seconds");
        }
        if self.rounds == 0 {
            bail!("--rounds must be at least 1");
        }
        if self.honest_rate.is_some_and(|r| !positive(r)) {
            bail!("--honest-rate must be a positive number of events per second");
        }
        if self.hostile_streams == 0 {
            bail!("--hostile-streams must be at least 1");
        }
        if !(1..=1_000_000).contains(&self.stall_members) {
            bail!("--stall-members is 1 to 1,000,000 (a manifest's most)");
        }
        if !(0..=19).contains(&self.hostile_nice) {
            bail!("--hostile-nice is 0 to 19");
        }
        if self.hostile_addr.is_unspecified() {
            bail!("--hostile-addr must be an address of this machine, e.g. 127.0.0.2");
        }
        Ok(())
    }

    fn kinds(&self) -> Vec<Kind> {
        if self.only.is_empty() {
            Kind::ALL.to_vec()
        } else {
            let mut k = self.only.clone();
            k.sort();
            k.dedup();
            k
        }
    }
}

// ---------------------------------------------------------------------
// The report.

/// `Report` is what `--json` prints.
#[derive(Serialize)]
pub struct Report {
    pub seconds: f64,
    pub rounds: usize,
    pub hostile_kinds: Vec<Kind>,
    /// Skipped kinds of the mix, and why.
    pub skipped: Vec<&'static str>,
    pub hostile_addr: String,
    /// The hostile threads' niceness (`--hostile-nice`).
    pub hostile_nice: i32,
    pub honest_rate: Option<f64>,
    pub cores: usize,
    pub honest_party: String,
    pub hostile_party: String,
    /// The honest stream before round 1, alone (not in the medians).
    pub warmup_events_per_sec: f64,
    /// Honest events/s per round, in phase A and in phase B.
    pub honest_events_per_sec_a: Vec<f64>,
    pub honest_events_per_sec_b: Vec<f64>,
    pub median_a: f64,
    pub median_b: f64,
    /// median_b / median_a.
    pub ratio: f64,
    pub target: f64,
    pub meets_target: bool,
    /// Every phase, in the order run.
    pub phases: Vec<Phase>,
    /// The hostile tasks' traffic over all B phases, by task and variant.
    pub hostile_totals: BTreeMap<String, Tally>,
    /// The server answered a last GetCheckpoint after the rounds.
    pub server_alive: bool,
    pub final_tree_size: Option<u64>,
}

/// `Phase` is one phase of one round.
#[derive(Serialize)]
pub struct Phase {
    pub round: usize,
    /// "A" (honest alone) or "B" (with the hostile mix).
    pub phase: &'static str,
    pub honest: Honest,
    pub http_probe: Option<Probe>,
    pub cpu: Cpu,
    /// The machine's 1-minute load average as the phase ended: other
    /// work on the machine shows here.
    pub loadavg_1m: Option<f64>,
    /// Phase B: what each hostile task sent and how it was answered.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hostile: BTreeMap<String, Tally>,
    /// Phase B: seconds the hostile tasks ran (warm-up, honest stream,
    /// and stopping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostile_seconds: Option<f64>,
}

/// `Honest` is the honest stream's result in one phase.
#[derive(Serialize, Default)]
pub struct Honest {
    pub events_per_sec: f64,
    /// Acknowledged within the phase's window.
    pub acked: u64,
    pub window_seconds: f64,
    /// Events signed for the phase; `pool_exhausted` when all were sent
    /// before the window ended (the rate is then over the time to the
    /// last ack).
    pub pool: usize,
    pub pool_exhausted: bool,
    /// Refusals, by gRPC code. RESOURCE_EXHAUSTED ones were sent again
    /// after a backoff, as README tells clients to.
    pub refused: BTreeMap<String, u64>,
    pub resent: u64,
    /// What a refusal said, one example per code.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub examples: BTreeMap<String, String>,
    /// Time from an event's first send to its ack, retries included.
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    /// An error that ended the whole stream, if one did.
    pub stream_error: Option<String>,
}

/// `Probe` is the honest HTTP probe's result in one phase.
#[derive(Serialize, Default)]
pub struct Probe {
    pub ok: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

/// `Cpu` is CPU seconds over the honest stream's window of one phase
/// (`--seconds`, not the drain of what is in flight at its end).
#[derive(Serialize, Default)]
pub struct Cpu {
    pub server: Option<f64>,
    /// This process: the honest client and the hostile threads.
    pub client: Option<f64>,
    pub hostile_threads: Option<f64>,
}

/// `Tally` is what one hostile task (or variant of one) sent, and how each
/// was answered: by gRPC code (`OK` and `OK_DUPLICATE` for appends logged
/// or deduplicated; `STREAM_<CODE>` when the code ended the whole stream;
/// `NO_ANSWER` when the task stopped first), or for connections by what
/// the server did with them.
#[derive(Serialize, Default, Clone)]
pub struct Tally {
    pub sent: u64,
    pub answers: BTreeMap<String, u64>,
    /// Connections: seconds from connect to the server's close, for those
    /// it closed later than at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_after_p50_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_after_max_s: Option<f64>,
    /// Stalled uploads: members sent by the uploads that then stalled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members_stalled: Option<u64>,
    /// What a refusal said, one example per answer.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub examples: BTreeMap<String, String>,
    #[serde(skip)]
    closed_after: Vec<f64>,
}

impl Tally {
    fn answer(&mut self, code: impl Into<String>, n: u64) {
        *self.answers.entry(code.into()).or_default() += n;
    }

    fn example(&mut self, code: &str, message: &str) {
        if !self.examples.contains_key(code) {
            let m: String = message.chars().take(200).collect();
            self.examples.insert(code.to_owned(), m);
        }
    }

    fn merge(&mut self, o: &Tally) {
        self.sent += o.sent;
        for (k, v) in &o.answers {
            self.answer(k.clone(), *v);
        }
        for (k, v) in &o.examples {
            self.example(k, v);
        }
        self.closed_after.extend_from_slice(&o.closed_after);
        if let Some(m) = o.members_stalled {
            self.members_stalled = Some(self.members_stalled.unwrap_or(0) + m);
        }
        self.finish();
    }

    fn finish(&mut self) {
        if self.closed_after.is_empty() {
            return;
        }
        let mut s = self.closed_after.clone();
        s.sort_by(f64::total_cmp);
        self.closed_after_p50_s = Some(round3(quantile(&s, 0.5)));
        self.closed_after_max_s = s.last().copied().map(round3);
    }
}

/// `Tallies` is every hostile task's tally, by "task/variant".
type Tallies = BTreeMap<String, Tally>;

fn merge_into(into: &mut Tallies, from: &Tallies) {
    for (k, t) in from {
        into.entry(k.clone()).or_default().merge(t);
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// `code_name` is a gRPC status code's canonical name.
fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "NOT_A_CODE",
    }
}

fn status_name(s: &tonic::Status) -> &'static str {
    code_name(s.code() as i32)
}

// ---------------------------------------------------------------------
// Running it.

/// `run` runs the benchmark and prints its report.
///
/// # Errors
///
/// For bad options, an unreadable owner key, a server that cannot be
/// reached or refuses the set-up.
pub fn run(args: Args) -> anyhow::Result<()> {
    args.check()?;
    let owner = crate::keys::load_secret(&args.owner_key)?;
    let honest_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the honest client's runtime")?;
    // The hostile tasks get threads of their own, so the OS, not one
    // scheduler, shares the CPU between them and the honest client; and
    // their CPU time can be read by thread name.
    let nice = args.hostile_nice;
    let nice_failed = Arc::new(AtomicBool::new(false));
    let failed = nice_failed.clone();
    let hostile_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hostile")
        .on_thread_start(move || {
            // On Linux niceness is a thread's own: this sets the calling
            // thread's (PRIO_PROCESS with who 0), not the process's.
            // SAFETY: setpriority only changes the calling thread's
            // scheduling priority.
            let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
            if r != 0 {
                failed.store(true, Ordering::Relaxed);
            }
        })
        .enable_all()
        .build()
        .context("start the hostile tasks' runtime")?;
    let mut report = honest_rt.block_on(bench(&args, &owner, hostile_rt.handle()))?;
    if nice_failed.load(Ordering::Relaxed) {
        eprintln!("bench-hostile: could not set the hostile threads' niceness; they ran at 0");
        report.hostile_nice = 0;
    }
    hostile_rt.shutdown_background();
    if !args.json {
        eprintln!(
            "honest events/s: A {:?}, B {:?}; median A {:.0}, median B {:.0}; ratio {:.3} (target {TARGET}: {})",
            report.honest_events_per_sec_a,
            report.honest_events_per_sec_b,
            report.median_a,
            report.median_b,
            report.ratio,
            if report.meets_target { "met" } else { "not met" }
        );
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// `Setup` is what the phases share.
struct Setup {
    server: String,
    http_addr: Option<SocketAddr>,
    grpc_addr: SocketAddr,
    origin: String,
    honest_party: String,
    honest_key: SigningKey,
    hostile_party: String,
    traffic: Arc<Traffic>,
}

/// `Traffic` is the hostile messages, made before the clock starts.
struct Traffic {
    bad_sig: Vec<(Variant, v1::SignedEvent)>,
    refused: Vec<(Variant, v1::SignedEvent)>,
    oversized: Vec<(Variant, v1::SignedEvent)>,
    over_grpc: v1::SignedEvent,
    /// The stalled uploads' messages, sent in order.
    upload: Vec<v1::PutManifestRequest>,
}

async fn bench(
    args: &Args,
    owner: &SigningKey,
    hostile: &tokio::runtime::Handle,
) -> anyhow::Result<Report> {
    let channel = crate::net::channel(&args.server).await?;
    let mut client = CustodyLogClient::new(channel.clone());
    let (honest_party, honest_key) =
        register_party(&mut client, owner, v1::PartyKind::Device).await?;
    let (hostile_party, hostile_key) =
        register_party(&mut client, owner, v1::PartyKind::Device).await?;
    let (owner_id, origin) = genesis(&mut client).await?;
    eprintln!("bench-hostile: honest party {honest_party}, hostile party {hostile_party}");
    // One event the hostile party logs, to replay.
    let logged = envelope(
        custody_event(
            &origin,
            &hostile_party,
            1,
            capture_action(&hostile_party, &fresh_digest(u64::MAX)),
        ),
        &hostile_key,
    );
    client
        .append(v1::AppendRequest {
            event: Some(logged.clone()),
            wait_for_checkpoint: false,
        })
        .await
        .map_err(|s| anyhow!("log the hostile party's first event: {}", s.message()))?;
    let traffic = Arc::new(make_traffic(
        &origin,
        &owner_id,
        &honest_party,
        &hostile_party,
        &hostile_key,
        &logged,
        args.stall_members,
    )?);
    let setup = Setup {
        server: args.server.clone(),
        http_addr: match &args.http_addr {
            Some(a) => Some(resolve(a).await?),
            None => None,
        },
        grpc_addr: grpc_addr(&args.server).await?,
        origin,
        honest_party,
        honest_key,
        hostile_party,
        traffic,
    };
    let kinds = args.kinds();

    let mut phases = Vec::new();
    let (mut rates_a, mut rates_b) = (Vec::new(), Vec::new());
    let mut totals = Tallies::new();
    let mut seq = 0u64;
    // A fresh server is slower for its first seconds (empty caches, the
    // first memtables): the honest client streams once before round 1,
    // so that phase A of round 1 does not pay for it alone.
    let warmup_secs = args.seconds.min(5.0);
    let pool = captures(
        &setup.origin,
        &setup.honest_party,
        &setup.honest_key,
        pool_size(args, 0.0) / 2,
        seq,
    );
    seq += pool.len() as u64;
    eprintln!("bench-hostile: warming up for {warmup_secs} s");
    let warmup = honest_stream(
        CustodyLogClient::new(channel.clone()),
        pool,
        warmup_secs,
        args.honest_rate,
    )
    .await?;
    let warmup_rate = warmup.events_per_sec;
    let mut best_rate = warmup_rate;
    for round in 1..=args.rounds {
        for phase in ["A", "B"] {
            let pool_size = pool_size(args, best_rate);
            eprintln!("bench-hostile: round {round} phase {phase}: signing {pool_size} events");
            let pool = captures(
                &setup.origin,
                &setup.honest_party,
                &setup.honest_key,
                pool_size,
                seq,
            );
            seq += pool_size as u64;
            // Let the server finish what the last phase left (queued
            // events, connections closing) before this one starts.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let p = run_phase(
                args,
                &setup,
                &channel,
                hostile,
                round,
                phase,
                if phase == "B" { &kinds[..] } else { &[] },
                pool,
            )
            .await?;
            eprintln!(
                "bench-hostile: round {round} phase {phase}: {:.0} honest events/s",
                p.honest.events_per_sec
            );
            best_rate = best_rate.max(p.honest.events_per_sec);
            if phase == "A" {
                rates_a.push(p.honest.events_per_sec);
            } else {
                rates_b.push(p.honest.events_per_sec);
                merge_into(&mut totals, &p.hostile);
            }
            phases.push(p);
        }
    }
    let final_tree_size = client
        .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
        .await
        .ok()
        .and_then(|r| checkpoint_size(&r.into_inner().checkpoint));
    let (median_a, median_b) = (median(&rates_a), median(&rates_b));
    let ratio = median_b / median_a;
    Ok(Report {
        seconds: args.seconds,
        rounds: args.rounds,
        hostile_kinds: kinds,
        skipped: vec![
            "unauthenticated and unknown-token requests: the benchmark server runs open (no access list)",
        ],
        hostile_addr: args.hostile_addr.to_string(),
        hostile_nice: args.hostile_nice,
        honest_rate: args.honest_rate,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        warmup_events_per_sec: warmup_rate.round(),
        honest_party: setup.honest_party,
        hostile_party: setup.hostile_party,
        honest_events_per_sec_a: rates_a.iter().map(|r| r.round()).collect(),
        honest_events_per_sec_b: rates_b.iter().map(|r| r.round()).collect(),
        median_a: median_a.round(),
        median_b: median_b.round(),
        ratio: round3(ratio),
        target: TARGET,
        meets_target: ratio >= TARGET,
        phases,
        hostile_totals: totals,
        server_alive: final_tree_size.is_some(),
        final_tree_size,
    })
}

/// `pool_size` is how many honest events to sign for a phase: enough for
/// `--honest-rate`, or for 40,000/s or twice the best rate seen so far,
/// whichever is more. (A phase that runs out is timed to its last ack,
/// and says so.)
fn pool_size(args: &Args, best_rate: f64) -> usize {
    let n = match args.honest_rate {
        Some(r) => r * args.seconds * 1.05 + 1000.0,
        None => (40_000.0f64).max(2.0 * best_rate) * args.seconds,
    };
    (n as usize).clamp(1000, 3_000_000)
}

fn checkpoint_size(note: &[u8]) -> Option<u64> {
    std::str::from_utf8(note).ok()?.lines().nth(1)?.parse().ok()
}

/// `resolve` is the socket address of HOST:PORT.
async fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("--http-addr {addr:?}: not a HOST:PORT this machine resolves"))?
        .next()
        .ok_or_else(|| anyhow!("--http-addr {addr:?}: resolves to no address"))
}

/// `grpc_addr` is the socket address the gRPC URL names.
async fn grpc_addr(server: &str) -> anyhow::Result<SocketAddr> {
    let uri: tonic::transport::Uri = server
        .parse()
        .map_err(|e| anyhow!("server url {server:?}: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("server url {server:?} names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    let mut addrs = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolve {host}"))?;
    addrs
        .next()
        .ok_or_else(|| anyhow!("{host} resolves to no address"))
}

#[allow(clippy::too_many_arguments)]
async fn run_phase(
    args: &Args,
    setup: &Setup,
    channel: &crate::net::Grpc,
    hostile: &tokio::runtime::Handle,
    round: usize,
    phase: &'static str,
    kinds: &[Kind],
    pool: Vec<v1::SignedEvent>,
) -> anyhow::Result<Phase> {
    // The hostile tasks start first and warm up.
    let stop = Arc::new(AtomicBool::new(false));
    let hostile_start = Instant::now();
    let tasks = spawn_hostile(args, setup, hostile, kinds, &stop);
    let tasks_were_empty = tasks.is_empty();
    if !tasks_were_empty {
        tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    }
    let probe_stop = Arc::new(AtomicBool::new(false));
    let probe = setup
        .http_addr
        .map(|a| tokio::spawn(probe(a, probe_stop.clone())));
    // CPU over the honest stream's window: from now until its deadline
    // (not its drain).
    let cpu0 = cpu_now(args.server_pid);
    let cpu_at_deadline = {
        let (pid, secs) = (args.server_pid, args.seconds);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            cpu_now(pid)
        })
    };
    let honest = honest_stream(
        CustodyLogClient::new(channel.clone()),
        pool,
        args.seconds,
        args.honest_rate,
    )
    .await?;
    let cpu1 = cpu_at_deadline
        .await
        .map_err(|e| anyhow!("cpu snapshot: {e}"))?;
    let loadavg_1m = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    probe_stop.store(true, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut tallies = Tallies::new();
    for t in tasks {
        // Each task ends by itself soon after `stop`; one that does not
        // within 10 s is counted as stuck.
        let abort = t.abort_handle();
        match tokio::time::timeout(Duration::from_secs(10), t).await {
            Ok(Ok(t)) => merge_into(&mut tallies, &t),
            Ok(Err(e)) => {
                let t = tallies.entry("hostile-task".into()).or_default();
                t.answer("TASK_FAILED", 1);
                t.example("TASK_FAILED", &e.to_string());
            }
            Err(_) => {
                abort.abort();
                tallies
                    .entry("hostile-task".into())
                    .or_default()
                    .answer("DID_NOT_STOP_IN_10S", 1);
            }
        }
    }
    let hostile_seconds =
        (!tasks_were_empty).then(|| round3(hostile_start.elapsed().as_secs_f64()));
    let http_probe = match probe {
        Some(p) => Some(p.await.map_err(|e| anyhow!("http probe: {e}"))?),
        None => None,
    };
    let diff = |a: Option<f64>, b: Option<f64>| Some(round3(b? - a?));
    Ok(Phase {
        round,
        phase,
        honest,
        http_probe,
        cpu: Cpu {
            server: diff(cpu0.server, cpu1.server),
            client: diff(cpu0.client, cpu1.client),
            hostile_threads: diff(cpu0.hostile_threads, cpu1.hostile_threads),
        },
        loadavg_1m,
        hostile: tallies,
        hostile_seconds,
    })
}

// ---------------------------------------------------------------------
// The honest client.

/// One honest event on its way: the event, when it was first sent, and
/// how often it was refused with RESOURCE_EXHAUSTED.
struct Pending {
    event: v1::SignedEvent,
    first_sent: Instant,
    attempts: u32,
}

/// `honest_stream` streams `pool` over one AppendStream for `seconds` (or
/// until all are acknowledged), sending again, after a backoff, what the
/// server refuses with RESOURCE_EXHAUSTED.
async fn honest_stream(
    mut client: CustodyLogClient<crate::net::Grpc>,
    pool: Vec<v1::SignedEvent>,
    seconds: f64,
    rate: Option<f64>,
) -> anyhow::Result<Honest> {
    let pool_size = pool.len();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<v1::AppendRequest>(256);
    let (retry_tx, mut retry_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Pending)>();
    // What was sent and not yet answered, in order: answers come in
    // request order.
    let inflight: Arc<Mutex<VecDeque<Pending>>> = Arc::default();
    let exhausted = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);

    let sender = {
        let inflight = inflight.clone();
        let exhausted = exhausted.clone();
        tokio::spawn(async move {
            let mut fresh = pool.into_iter();
            let mut retries: VecDeque<(Instant, Pending)> = VecDeque::new();
            let mut k = 0u64;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                while let Ok(r) = retry_rx.try_recv() {
                    retries.push_back(r);
                }
                let next = if retries.front().is_some_and(|(due, _)| *due <= now) {
                    retries.pop_front().map(|(_, p)| p)
                } else {
                    if let Some(r) = rate {
                        let due = start + Duration::from_secs_f64(k as f64 / r);
                        if due > now {
                            tokio::time::sleep_until(due.min(deadline).into()).await;
                            continue;
                        }
                    }
                    fresh.next().map(|event| {
                        k += 1;
                        Pending {
                            event,
                            first_sent: Instant::now(),
                            attempts: 0,
                        }
                    })
                };
                let Some(p) = next else {
                    // Nothing fresh is left: wait for refusals to resend,
                    // until nothing is in flight.
                    exhausted.store(true, Ordering::Relaxed);
                    let idle = inflight
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .is_empty();
                    if idle && retries.is_empty() {
                        break;
                    }
                    let wait = retries
                        .front()
                        .map_or(Duration::from_millis(5), |(due, _)| {
                            due.saturating_duration_since(now)
                        });
                    if let Ok(Some(r)) = tokio::time::timeout(wait, retry_rx.recv()).await {
                        retries.push_back(r);
                    }
                    continue;
                };
                let req = v1::AppendRequest {
                    event: Some(p.event.clone()),
                    wait_for_checkpoint: false,
                };
                inflight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_back(p);
                if tx.send(req).await.is_err() {
                    break;
                }
            }
        })
    };

    let requests = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut out = Honest {
        pool: pool_size,
        ..Honest::default()
    };
    let mut latencies: Vec<f64> = Vec::new();
    let mut last_ack = start;
    let mut responses = client
        .append_stream(requests)
        .await
        .map_err(|s| {
            anyhow!(
                "open the honest stream: {}: {}",
                status_name(&s),
                s.message()
            )
        })?
        .into_inner();
    // The stream ends once the sender stops at the deadline and the
    // server has answered what was in flight; a server that does not
    // answer for a minute after it ends the phase.
    let hard_stop = deadline + Duration::from_secs(60);
    loop {
        let next = tokio::time::timeout_at(hard_stop.into(), responses.message()).await;
        let r = match next {
            Err(_) => {
                out.stream_error = Some("no answer for 60 s after the phase ended".into());
                break;
            }
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => break,
            Ok(Err(s)) => {
                out.stream_error = Some(format!("{}: {}", status_name(&s), s.message()));
                break;
            }
        };
        let now = Instant::now();
        let Some(p) = inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
        else {
            out.stream_error = Some("the server answered more requests than were sent".into());
            break;
        };
        if r.error_code != 0 && !out.examples.contains_key(code_name(r.error_code)) {
            let m: String = r.error_message.chars().take(200).collect();
            out.examples.insert(code_name(r.error_code).to_owned(), m);
        }
        match r.error_code {
            0 if now <= deadline => {
                out.acked += 1;
                last_ack = now;
                latencies.push((now - p.first_sent).as_secs_f64() * 1e3);
            }
            0 => {}
            8 => {
                out.resent += 1;
                let backoff = Duration::from_millis(10 << p.attempts.min(6));
                let _ = retry_tx.send((
                    now + backoff,
                    Pending {
                        attempts: p.attempts + 1,
                        ..p
                    },
                ));
            }
            c => *out.refused.entry(code_name(c).to_owned()).or_default() += 1,
        }
    }
    sender.abort();
    out.pool_exhausted = exhausted.load(Ordering::Relaxed);
    out.window_seconds = if out.pool_exhausted {
        (last_ack - start).as_secs_f64()
    } else {
        seconds
    };
    out.events_per_sec = if out.window_seconds > 0.0 {
        out.acked as f64 / out.window_seconds
    } else {
        0.0
    };
    out.window_seconds = round3(out.window_seconds);
    latencies.sort_by(f64::total_cmp);
    out.ack_p50_ms = round3(quantile(&latencies, 0.5));
    out.ack_p99_ms = round3(quantile(&latencies, 0.99));
    Ok(out)
}

/// `probe` asks `GET /checkpoint` ten times a second from the honest
/// address until `stop`.
async fn probe(addr: SocketAddr, stop: Arc<AtomicBool>) -> Probe {
    let mut out = Probe::default();
    let mut ms = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        match tokio::time::timeout(Duration::from_secs(5), http_get(addr, "/checkpoint")).await {
            Ok(Ok(status)) if status.starts_with("HTTP/1.1 200") => {
                out.ok += 1;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            r => {
                out.failed += 1;
                if out.first_failure.is_none() {
                    out.first_failure = Some(match r {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "no answer within 5 s".into(),
                    });
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ms.sort_by(f64::total_cmp);
    out.p50_ms = round3(quantile(&ms, 0.5));
    out.p99_ms = round3(quantile(&ms, 0.99));
    out.max_ms = round3(ms.last().copied().unwrap_or(f64::NAN));
    out
}

/// `http_get` asks for `path` over a fresh HTTP/1.1 connection and returns
/// the answer's status line.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    write_all(&s, req.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        s.readable().await?;
        match s.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    Ok(text.lines().next().unwrap_or("").to_owned())
}

async fn write_all(s: &tokio::net::TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        s.writable().await?;
        match s.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------
// CPU time.

struct CpuNow {
    server: Option<f64>,
    client: Option<f64>,
    hostile_threads: Option<f64>,
}

fn cpu_now(server: Option<u32>) -> CpuNow {
    CpuNow {
        server: server.and_then(|p| proc_cpu(&format!("/proc/{p}/stat"))),
        client: proc_cpu("/proc/self/stat"),
        hostile_threads: hostile_cpu(),
    }
}

/// `proc_cpu` is utime + stime, in seconds, of a `/proc/.../stat` file.
fn proc_cpu(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is the first, utime the 12th and stime the 13th.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

/// `hostile_cpu` is the CPU seconds of this process's hostile threads.
fn hostile_cpu() -> Option<f64> {
    let mut total = 0.0;
    for t in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = t.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() == "hostile" {
            total += proc_cpu(&dir.join("stat").to_string_lossy()).unwrap_or(0.0);
        }
    }
    Some(total)
}

// ---------------------------------------------------------------------
// The hostile traffic.

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand_core::OsRng.fill_bytes(&mut b);
    b
}

/// `signed_raw` is `body` (any bytes) signed by `key`.
fn signed_raw(body: Vec<u8>, key: &SigningKey) -> v1::SignedEvent {
    custody_proto::envelope_to_proto(&custody_domain::SignedEnvelope::sign(body, &[key]))
}

#[allow(clippy::too_many_arguments)]
fn make_traffic(
    origin: &str,
    owner_id: &str,
    honest: &str,
    hostile: &str,
    key: &SigningKey,
    logged: &v1::SignedEvent,
    stall_members: usize,
) -> anyhow::Result<Traffic> {
    let stranger = SigningKey::generate(&mut rand_core::OsRng);
    let hostile_key_id = custody_domain::key_id_of(&key.verifying_key().to_bytes())
        .0
        .to_vec();
    let capture = |i: u64| {
        custody_event(
            origin,
            hostile,
            i + 2,
            capture_action(hostile, &fresh_digest(i)),
        )
    };

    // bad-sig: the three kinds in turn, so that every batch the server
    // verifies holds some of each.
    let mut bad_sig = Vec::with_capacity(FLOOD_POOL);
    for i in 0..FLOOD_POOL as u64 {
        let e = capture(i);
        bad_sig.push(match i % 3 {
            0 => (Variant("unknown-key"), envelope(e, &stranger)),
            1 => {
                let mut s = envelope(e, key);
                for sig in &mut s.signatures {
                    sig.key_id = hostile_key_id.clone();
                    sig.sig = random_bytes(64);
                }
                (Variant("random-signature"), s)
            }
            _ => {
                // A valid signature by the hostile key, over another event.
                let mut s = envelope(e, key);
                let other = envelope(capture(i + (1 << 40)), key);
                s.signatures = other.signatures;
                (Variant("signature-of-another-event"), s)
            }
        });
    }

    // refused: signed correctly by the hostile party's key.
    let logged_event = v1::Event::decode(logged.body.clone())
        .map_err(|e| anyhow!("decode the hostile party's logged event: {e}"))?;
    let mut refused = Vec::with_capacity(FLOOD_POOL);
    for i in 0..FLOOD_POOL as u64 {
        let mut e = capture(i + (2 << 40));
        let variant = match i % 6 {
            0 => {
                // Another party as reporter.
                e.reporter = honest.to_owned();
                if let Some(v1::event::Body::Custody(a)) = e.body.as_mut() {
                    a.actor = honest.to_owned();
                    a.to_system = system_of(honest);
                }
                "reporter-is-another-party"
            }
            1 => {
                // The party it acts for as actor.
                if let Some(v1::event::Body::Custody(a)) = e.body.as_mut() {
                    a.actor = owner_id.to_owned();
                }
                "actor-is-the-party-it-acts-for"
            }
            2 => {
                e.event_time_unix_nanos += 3_600_000_000_000;
                "an-hour-in-the-future"
            }
            3 => {
                e.log_origin = "another.example/log".into();
                "another-logs-origin"
            }
            4 => {
                e.event_id = logged_event.event_id.clone();
                "known-event-id-other-bytes"
            }
            _ => {
                refused.push((Variant("exact-replay"), logged.clone()));
                continue;
            }
        };
        refused.push((Variant(variant), envelope(e, key)));
    }

    // oversized.
    let mut oversized = Vec::with_capacity(BIG_POOL * 3);
    for i in 0..BIG_POOL as u64 {
        oversized.push((
            Variant("random-60KiB-body"),
            signed_raw(random_bytes(BIG_BODY), key),
        ));
        let mut e = capture(i + (3 << 40));
        if let Some(v1::event::Body::Custody(a)) = e.body.as_mut() {
            a.grant_id = "g".repeat(BIG_BODY);
        }
        oversized.push((Variant("60KiB-field"), envelope(e, key)));
        oversized.push((
            Variant("body-over-entry-limit"),
            signed_raw(random_bytes(OVER_ENTRY), key),
        ));
    }
    let over_grpc = signed_raw(random_bytes(OVER_GRPC), key);

    // stalled uploads: distinct ascending digests.
    let mut members: Vec<[u8; 32]> = (0..stall_members as u64)
        .map(|i| fresh_digest(i + (4 << 40)))
        .collect();
    members.sort_unstable();
    members.dedup();
    let upload = members
        .chunks(UPLOAD_CHUNK)
        .map(|c| v1::PutManifestRequest {
            members: c.iter().map(|d| d.to_vec()).collect(),
            expected_root: Vec::new(),
        })
        .collect();
    Ok(Traffic {
        bad_sig,
        refused,
        oversized,
        over_grpc,
        upload,
    })
}

/// `Variant` names one variant of a kind of hostile message. (A tuple of
/// a bare `&'static str` in the flood's pool trips rustc's check that the
/// flood's future is `Send`.)
#[derive(Clone, Copy)]
struct Variant(&'static str);

/// `HostileConn` is how hostile tasks reach the server: from another
/// source address.
#[derive(Clone)]
struct HostileConn {
    server: String,
    addr: IpAddr,
}

impl HostileConn {
    async fn client(&self) -> anyhow::Result<CustodyLogClient<Channel>> {
        let ch = crate::net::endpoint(&self.server)?
            .local_address(Some(self.addr))
            .connect()
            .await
            .with_context(|| format!("connect {} from {}", self.server, self.addr))?;
        Ok(CustodyLogClient::new(ch).max_encoding_message_size(1 << 20))
    }
}

fn spawn_hostile(
    args: &Args,
    setup: &Setup,
    rt: &tokio::runtime::Handle,
    kinds: &[Kind],
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Tallies>> {
    let conn = HostileConn {
        server: setup.server.clone(),
        addr: args.hostile_addr,
    };
    let t = &setup.traffic;
    let mut tasks = Vec::new();
    for kind in kinds {
        match kind {
            Kind::BadSig | Kind::Refused | Kind::Oversized => {
                let pool = Arc::new(match kind {
                    Kind::BadSig => t.bad_sig.clone(),
                    Kind::Refused => t.refused.clone(),
                    _ => t.oversized.clone(),
                });
                for _ in 0..args.hostile_streams {
                    tasks.push(rt.spawn(flood(
                        kind.name(),
                        conn.clone(),
                        pool.clone(),
                        stop.clone(),
                    )));
                }
                if *kind == Kind::Oversized {
                    tasks.push(rt.spawn(over_grpc_limit(
                        conn.clone(),
                        t.over_grpc.clone(),
                        stop.clone(),
                    )));
                }
            }
            Kind::StalledUploads => {
                let upload = Arc::new(t.upload.clone());
                for _ in 0..args.stalled_uploads {
                    tasks.push(rt.spawn(stalled_upload(
                        conn.clone(),
                        upload.clone(),
                        stop.clone(),
                    )));
                }
            }
            Kind::SlowConnections => {
                let n = args.slow_connections;
                let mut targets = vec![("silent-grpc", setup.grpc_addr, false); n / 2];
                if let Some(http) = setup.http_addr {
                    targets.extend(vec![("silent-http", http, false); n - n / 2]);
                    targets.extend(vec![("slowloris-http", http, true); n]);
                }
                for (name, addr, trickle) in targets {
                    tasks.push(rt.spawn(slow_connection(
                        name,
                        args.hostile_addr,
                        addr,
                        trickle,
                        stop.clone(),
                    )));
                }
            }
            Kind::None => {}
        }
    }
    tasks
}

/// `flood` streams `pool`, round and round, over AppendStreams from the
/// hostile address until `stop`, as fast as the server takes it, and
/// tallies each answer under "`task`/variant".
async fn flood(
    task: &'static str,
    conn: HostileConn,
    pool: Arc<Vec<(Variant, v1::SignedEvent)>>,
    stop: Arc<AtomicBool>,
) -> Tallies {
    let mut out = Tallies::new();
    // The index of the next message, kept across streams.
    let mut next = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut client = match conn.client().await {
            Ok(c) => c,
            Err(e) => {
                let t = out.entry(format!("{task}/connect")).or_default();
                t.answer("CONNECT_FAILED", 1);
                t.example("CONNECT_FAILED", &format!("{e:#}"));
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        let first = next;
        let sent = Arc::new(AtomicU64::new(0));
        let requests = {
            let (pool, stop, sent) = (pool.clone(), stop.clone(), sent.clone());
            let mut i = first;
            // Always ready: the stream goes as fast as the server takes it.
            futures::stream::poll_fn(move |_| {
                if stop.load(Ordering::Relaxed) {
                    return std::task::Poll::Ready(None);
                }
                sent.fetch_add(1, Ordering::Relaxed);
                let (_, e) = &pool[(i % pool.len() as u64) as usize];
                i += 1;
                std::task::Poll::Ready(Some(v1::AppendRequest {
                    event: Some(e.clone()),
                    wait_for_checkpoint: false,
                }))
            })
        };
        let mut answered = 0u64;
        let mut ended: Option<tonic::Status> = None;
        match client.append_stream(requests).await {
            Err(s) => ended = Some(s),
            Ok(r) => {
                let mut responses = r.into_inner();
                // After `stop`, the server has 5 s to answer what is in
                // flight.
                let grace = stopped_for(&stop, Duration::from_secs(5));
                tokio::pin!(grace);
                loop {
                    let msg = tokio::select! {
                        m = responses.message() => m,
                        _ = &mut grace => break,
                    };
                    match msg {
                        Ok(Some(r)) => {
                            let t = out
                                .entry(flood_key(task, &pool, first + answered))
                                .or_default();
                            let code = match (r.error_code, r.duplicate) {
                                (0, true) => "OK_DUPLICATE",
                                (c, _) => code_name(c),
                            };
                            t.answer(code, 1);
                            if r.error_code != 0 {
                                t.example(code, &r.error_message);
                            }
                            answered += 1;
                        }
                        Ok(None) => break,
                        Err(s) => {
                            ended = Some(s);
                            break;
                        }
                    }
                }
            }
        }
        let n = sent.load(Ordering::Relaxed);
        for i in first..first + n {
            out.entry(flood_key(task, &pool, i)).or_default().sent += 1;
        }
        if let Some(s) = &ended {
            // The status that ended the stream answers the next request;
            // the rest of what was sent got no answer.
            let code = format!("STREAM_{}", status_name(s));
            if answered < n {
                let t = out
                    .entry(flood_key(task, &pool, first + answered))
                    .or_default();
                t.answer(code.clone(), 1);
                t.example(&code, s.message());
                answered += 1;
            } else {
                let t = out.entry(format!("{task}/stream")).or_default();
                t.answer(code.clone(), 1);
                t.example(&code, s.message());
            }
        }
        for i in first + answered..first + n {
            out.entry(flood_key(task, &pool, i))
                .or_default()
                .answer("NO_ANSWER", 1);
        }
        next = first + n;
        if ended.is_some() && !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
    out
}

/// `flood_key` is the tally key of message `i` of a flood of `pool`.
fn flood_key(task: &str, pool: &[(Variant, v1::SignedEvent)], i: u64) -> String {
    let (variant, _) = &pool[(i % pool.len() as u64) as usize];
    format!("{task}/{}", variant.0)
}

/// `stopped_for` resolves `grace` after `stop` is set.
async fn stopped_for(stop: &AtomicBool, grace: Duration) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(grace).await;
}

/// `over_grpc_limit` sends unary appends over the server's message limit
/// until `stop`.
async fn over_grpc_limit(
    conn: HostileConn,
    event: v1::SignedEvent,
    stop: Arc<AtomicBool>,
) -> Tallies {
    let mut out = Tallies::new();
    let name = "oversized/message-over-grpc-limit".to_owned();
    let mut client = None;
    while !stop.load(Ordering::Relaxed) {
        let c = match &mut client {
            Some(c) => c,
            None => match conn.client().await {
                Ok(c) => client.insert(c),
                Err(e) => {
                    let t = out.entry(name.clone()).or_default();
                    t.answer("CONNECT_FAILED", 1);
                    t.example("CONNECT_FAILED", &format!("{e:#}"));
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            },
        };
        let t = out.entry(name.clone()).or_default();
        t.sent += 1;
        let r = c
            .append(v1::AppendRequest {
                event: Some(event.clone()),
                wait_for_checkpoint: false,
            })
            .await;
        match r {
            Ok(r) => t.answer(
                if r.into_inner().duplicate {
                    "OK_DUPLICATE"
                } else {
                    "OK"
                },
                1,
            ),
            Err(s) => {
                t.answer(status_name(&s), 1);
                t.example(status_name(&s), s.message());
                if s.code() == tonic::Code::Unavailable {
                    client = None;
                }
            }
        }
    }
    out
}

/// `stalled_upload` starts manifest uploads from the hostile address that
/// send `chunks` and then nothing, until `stop`; an upload the server
/// ends is started again. An upload the server answers before all its
/// members were sent is tallied by the answer's code; one that stalled,
/// as `STALLED_THEN_` the code, or `STALLED_UNTIL_STOP`.
async fn stalled_upload(
    conn: HostileConn,
    chunks: Arc<Vec<v1::PutManifestRequest>>,
    stop: Arc<AtomicBool>,
) -> Tallies {
    let mut t = Tally::default();
    let mut members_stalled = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut client = match conn.client().await {
            Ok(c) => c,
            Err(e) => {
                t.answer("CONNECT_FAILED", 1);
                t.example("CONNECT_FAILED", &format!("{e:#}"));
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<v1::PutManifestRequest>(1);
        let requests = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut call = tokio::spawn(async move { client.put_manifest(requests).await });
        t.sent += 1;
        let mut members = 0u64;
        let mut stalled = true;
        for c in chunks.iter() {
            let refused = call.is_finished()
                || tokio::select! {
                    r = tx.send(c.clone()) => r.is_err(),
                    _ = stopped_for(&stop, Duration::ZERO) => true,
                };
            if refused {
                stalled = false;
                break;
            }
            members += c.members.len() as u64;
        }
        // Hold the stream open, sending nothing, until the server answers
        // or the phase ends.
        let answer = tokio::select! {
            a = &mut call => Some(a),
            _ = stopped_for(&stop, Duration::ZERO) => None,
        };
        let prefix = if stalled {
            members_stalled += members;
            "STALLED_THEN_"
        } else {
            ""
        };
        match answer {
            None => {
                call.abort();
                t.answer(
                    if prefix.is_empty() {
                        "STOPPED_WHILE_SENDING"
                    } else {
                        "STALLED_UNTIL_STOP"
                    },
                    1,
                );
            }
            Some(Ok(Ok(_))) => t.answer(format!("{prefix}OK"), 1),
            Some(Ok(Err(s))) => {
                let code = format!("{prefix}{}", status_name(&s));
                t.example(&code, s.message());
                t.answer(code, 1);
            }
            Some(Err(e)) => {
                t.answer("TASK_FAILED", 1);
                t.example("TASK_FAILED", &e.to_string());
            }
        }
        drop(tx);
        if !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
    t.members_stalled = Some(members_stalled);
    let mut out = Tallies::new();
    out.insert("stalled-uploads/send-then-stall".into(), t);
    out
}

/// `slow_connection` keeps one connection from `from` to `to` open until
/// `stop`: silent, or trickling an HTTP request's headers a line a second.
/// When the server closes it, it is opened again.
async fn slow_connection(
    name: &'static str,
    from: IpAddr,
    to: SocketAddr,
    trickle: bool,
    stop: Arc<AtomicBool>,
) -> Tallies {
    let mut t = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let socket = match from {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        };
        let connected = match socket.and_then(|s| {
            s.bind(SocketAddr::new(from, 0))?;
            Ok(s)
        }) {
            Ok(s) => s.connect(to).await,
            Err(e) => Err(e),
        };
        let s = match connected {
            Ok(s) => s,
            Err(e) => {
                t.answer("CONNECT_FAILED", 1);
                t.example("CONNECT_FAILED", &e.to_string());
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        t.sent += 1;
        let opened = Instant::now();
        let mut line = 0u32;
        if trickle {
            let head = format!("GET /checkpoint HTTP/1.1\r\nHost: {to}\r\n");
            if write_all(&s, head.as_bytes()).await.is_err() {
                t.answer("CLOSED_AT_ONCE", 1);
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        }
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let stopped = stopped_for(&stop, Duration::ZERO);
        tokio::pin!(stopped);
        let closed: Option<String> = loop {
            tokio::select! {
                r = s.readable() => {
                    if r.is_err() {
                        break Some(String::new());
                    }
                    let mut buf = [0u8; 512];
                    match s.try_read(&mut buf) {
                        Ok(0) => break Some(String::new()),
                        // The server answered (say, 408): note the status
                        // line, and wait for it to close.
                        Ok(n) => {
                            let text = String::from_utf8_lossy(&buf[..n]);
                            let first = text.lines().next().unwrap_or("").to_owned();
                            if first.starts_with("HTTP/") {
                                t.answer(format!("ANSWERED {first}"), 1);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => break Some(e.kind().to_string()),
                    }
                }
                _ = tick.tick(), if trickle => {
                    line += 1;
                    let h = format!("X-Slow-{line}: x\r\n");
                    if let Err(e) = write_all(&s, h.as_bytes()).await {
                        break Some(e.kind().to_string());
                    }
                }
                _ = &mut stopped => break None,
            }
        };
        let lived = opened.elapsed();
        match closed {
            None => t.answer("OPEN_AT_STOP", 1),
            Some(_) if lived < AT_ONCE => t.answer("CLOSED_AT_ONCE", 1),
            Some(_) => {
                t.answer("CLOSED_LATER", 1);
                t.closed_after.push(lived.as_secs_f64());
            }
        }
        drop(s);
        if !stop.load(Ordering::Relaxed) && lived < AT_ONCE {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
    t.finish();
    let mut out = Tallies::new();
    out.insert(format!("slow-connections/{name}"), t);
    out
}

#[cfg(test)]
mod tests {
    use super::{code_name, median, proc_cpu, Tally};

    #[test]
    fn medians_and_codes() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(code_name(8), "RESOURCE_EXHAUSTED");
        assert_eq!(code_name(99), "NOT_A_CODE");
    }

    #[test]
    fn tallies_merge() {
        let mut a = Tally {
            sent: 2,
            ..Tally::default()
        };
        a.answer("OK", 1);
        a.closed_after.push(10.0);
        let mut b = Tally {
            sent: 3,
            ..Tally::default()
        };
        b.answer("OK", 2);
        b.closed_after.push(12.0);
        b.closed_after.push(11.0);
        a.merge(&b);
        assert_eq!(a.sent, 5);
        assert_eq!(a.answers.get("OK"), Some(&3));
        assert_eq!(a.closed_after_p50_s, Some(11.0));
        assert_eq!(a.closed_after_max_s, Some(12.0));
    }

    #[test]
    fn this_process_has_cpu_time() {
        assert!(proc_cpu("/proc/self/stat").is_some_and(|s| s >= 0.0));
        assert!(proc_cpu("/proc/self/no-such-file").is_none());
    }
}
