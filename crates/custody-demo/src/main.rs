//! `custody-demo`: a Custody Ledger server seeded with the border-crossing
//! scenario (creates DATA if it is empty), which prints its breach scope
//! and keeps serving. It is `custodyd serve` with the same flags, plus
//! the seeding: the server comes from the `custodyd` library.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use custodyd::config::Config;
use custodyd::server::{shutdown_signal, Listeners, Server};

#[derive(Parser)]
#[command(
    name = "custody-demo",
    version,
    about = "Serve a Custody Ledger log seeded with the border-crossing scenario"
)]
struct Cli {
    #[command(flatten)]
    serve: Config,
    /// Seed of the scenario generator; the same seed gives the same
    /// numbers.
    #[arg(long, default_value_t = 2019)]
    seed: u64,
    /// Write the generator's own custody intervals per system here, as
    /// JSON.
    #[arg(long)]
    ground_truth: Option<PathBuf>,
    /// Serve without TLS. Without it and without --tls-cert, the demo
    /// issues itself a local CA and a server certificate in DATA/tls and
    /// serves TLS; clients trust DATA/tls/ca.pem (`custody --ca`).
    #[arg(long, conflicts_with = "tls_cert")]
    plaintext: bool,
}

fn main() -> ExitCode {
    custodyd::server::init_logging(custodyd::config::LogFormat::Text);
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("custody-demo: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli {
        serve: mut config,
        seed,
        ground_truth,
        plaintext,
    } = cli;
    let data = config.data.clone();
    let scenario = custody_demo::prepare(&data, seed)?;
    // TLS unless told otherwise: a local CA of the demo's own, and a
    // server certificate for the addresses it listens on.
    let ca = match (&config.tls.tls_cert, plaintext) {
        (None, false) => {
            let mut hosts = vec!["localhost".to_owned()];
            for ip in [config.grpc_addr.ip(), config.http_addr.ip()] {
                if !ip.is_unspecified() && !hosts.contains(&ip.to_string()) {
                    hosts.push(ip.to_string());
                }
            }
            let issued = custodyd::tls::issue(&data.join("tls"), &hosts, &[])?;
            config.tls.tls_cert = Some(issued.cert);
            config.tls.tls_key = Some(issued.key);
            Some(issued.ca)
        }
        _ => None,
    };
    // Its own witness, unless told which to use.
    let witness = if config.witness.witnesses.is_empty() {
        let (flag, vkey) = custody_demo::start_witness(&data)?;
        config.witness.witnesses.push(flag);
        Some(vkey)
    } else {
        None
    };
    let server = Server::open(config.clone())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listeners = Listeners::bind(config.grpc_addr, config.http_addr).await?;
        let (grpc, http) = listeners.addrs()?;
        println!("custody-demo: listening grpc={grpc} http={http}");
        let at = custody_demo::Reach {
            grpc,
            http,
            ca,
            witness,
        };
        // Seeding runs beside the server; if it fails, the server stops
        // and the demo exits with its error.
        let (fail_tx, mut fail_rx) = tokio::sync::mpsc::channel::<anyhow::Error>(1);
        tokio::spawn(async move {
            let seeded = match scenario {
                Some(s) => custody_demo::seed(at, data, s, ground_truth).await,
                None => custody_demo::reprint(at, data, ground_truth).await,
            };
            if let Err(e) = seeded {
                let _ = fail_tx.send(e).await;
            }
        });
        let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let record = failed.clone();
        let shutdown = async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                Some(e) = fail_rx.recv() => {
                    if let Ok(mut f) = record.lock() {
                        *f = Some(e);
                    }
                }
            }
        };
        server.run(listeners, shutdown).await?;
        let failed = failed.lock().ok().and_then(|mut f| f.take());
        match failed {
            Some(e) => Err(e.context("demo")),
            None => Ok(()),
        }
    })
}
