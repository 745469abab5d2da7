//! `Config`: what a server is told to do. `custodyd serve` parses it
//! from flags; the library takes it whole ([`crate::server::Server::open`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `Config` is everything `custodyd serve` is told: where its data and
/// listeners are, and every limit. Flags today; each field is one.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Data directory made by `custodyd init`.
    #[arg(long)]
    pub data: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7100")]
    pub grpc_addr: SocketAddr,
    /// HTTP (tile API) listen address.
    #[arg(long, default_value = "127.0.0.1:7180")]
    pub http_addr: SocketAddr,
    /// Checkpoint period while entries arrive, in milliseconds (≤ 1000).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=1000))]
    pub checkpoint_interval_ms: u64,
    /// Submissions that may wait for the sequencer before appends are
    /// refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 65_536)]
    pub queue: usize,
    /// Bytes of submissions that may wait for the sequencer (not yet
    /// signature-checked) before appends are refused with
    /// RESOURCE_EXHAUSTED.
    /// At least 1 MiB, so the largest event always fits.
    #[arg(long, default_value_t = 64 << 20, value_parser = queue_bytes)]
    pub queue_bytes: usize,
    /// Largest batch per commit.
    #[arg(long, default_value_t = 8192)]
    pub max_batch: usize,
    /// Manifest members planned at once: a bulk event of more is admitted
    /// in slices of this many, between other reporters' batches.
    #[arg(long, default_value_t = crate::sequencer::DEFAULT_BULK_SLICE)]
    pub bulk_slice: usize,
    /// Serve the tile API (`/checkpoint`, hash and entry tiles) to
    /// callers without a token, as public transparency logs do. Without
    /// it, a server with an access list serves the checkpoint and hash
    /// tiles to witnesses and auditors, and entry tiles to auditors.
    #[arg(long)]
    pub public_tiles: bool,
    /// Connections open at once on each listener (gRPC, HTTP); more are
    /// closed as they arrive.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Connections open at once from one address on each listener.
    #[arg(long, default_value_t = 256)]
    pub max_connections_per_address: usize,
    /// A connection on which nothing is read or written for this many
    /// seconds is closed (gRPC clients that answer keepalive pings stay).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,
    /// Free space, in MiB, that appends leave on the disk holding the
    /// database; below it they are refused with RESOURCE_EXHAUSTED, and
    /// resume once space is freed. 0 keeps none.
    #[arg(long, default_value_t = 256)]
    pub min_free_mib: u64,
    /// Fault injection, for tests: seconds added to the wall clock the
    /// sequencer integrates entries at (negative: a clock behind).
    #[arg(long, default_value_t = 0, hide = true, allow_hyphen_values = true)]
    pub fault_clock_offset_secs: i64,
    /// An HTTP request's headers must arrive within this many seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_secs: u64,
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    #[command(flatten)]
    pub witness: crate::witnessing::WitnessArgs,
    #[command(flatten)]
    pub uploads: crate::uploads::UploadArgs,
    #[command(flatten)]
    pub rates: crate::rate::RateArgs,
}

impl Config {
    /// `limits` are each listener's connection caps and timeouts.
    pub fn limits(&self) -> crate::conn::Limits {
        crate::conn::Limits {
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
