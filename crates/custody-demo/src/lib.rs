//! `custody-demo`: seed the border-crossing scenario into a running
//! server, over its own gRPC API, and tell an auditor where to start.
//!
//! The data directory remembers that it was seeded (`demo.json`); a second
//! run on it serves what is there and prints the same summary.

pub mod scenario;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use custody_domain::{keyfile, rfc3339, Digest, SignedEnvelope};
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use custody_proto::v1::{self, custody_log_client::CustodyLogClient};
use prost::Message as _;
use tonic::transport::Channel;

use custodyd::tls::write_secret;
use scenario::{ids, Scenario};

/// `REPORTING_DEADLINE_SECS` is the demo log's agreed reporting deadline,
/// which its first entry after genesis publishes: it loads four days of
/// history at once, so five days.
pub const REPORTING_DEADLINE_SECS: i64 = 5 * 86_400;

/// The origin line of demo logs.
pub const ORIGIN: &str = "demo.custody-ledger.example/border-poe";

/// `Marker` is what `demo.json` records of a seeded directory.
#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    seed: u64,
    from: String,
    to: String,
    events: usize,
}

fn marker_path(data: &Path) -> PathBuf {
    data.join("demo.json")
}

/// `truth_path` is where the demo keeps its ground truth.
pub fn truth_path(data: &Path) -> PathBuf {
    data.join("demo-ground-truth.json")
}

/// `prepare` makes sure `data` holds a log the scenario can be seeded
/// into: it initialises an empty directory with the scenario's data owner
/// key. It returns the scenario to seed, or `None` if `data` was already
/// seeded.
///
/// # Errors
///
/// If `data` holds a log the demo did not create, or on I/O failure.
pub fn prepare(data: &Path, seed: u64) -> anyhow::Result<Option<Scenario>> {
    if marker_path(data).exists() {
        return Ok(None);
    }
    // The scenario ends an hour ago: its last hour's events run a few
    // minutes past the hour, and the log refuses events dated in its
    // future (custody_domain::MAX_CLOCK_SKEW).
    let hour = 3_600_000_000_000;
    let scenario = Scenario::generate(seed, custodyd::init::now_nanos() - hour);
    let owner = scenario
        .keys
        .get(ids::AGENCY)
        .ok_or_else(|| anyhow!("bug: scenario has no data owner key"))?;
    let paths = custodyd::init::Paths::new(data);
    if !paths.key.exists() {
        std::fs::create_dir_all(data).with_context(|| format!("create {}", data.display()))?;
        let public = data.join("owner.pub");
        std::fs::write(
            &public,
            keyfile::format_public(&owner.verifying_key()) + "\n",
        )?;
        write_secret(
            &data.join("owner.key"),
            &(keyfile::format_secret(owner) + "\n"),
        )?;
        custodyd::init::run(data, ORIGIN, &public, ids::AGENCY, None)?;
    } else {
        bail!(
            "{} holds a log the demo did not seed; give `custody-demo` an empty or new directory",
            data.display()
        );
    }
    Ok(Some(scenario))
}

/// `WITNESS_NAME` is the name of the demo's own witness.
pub const WITNESS_NAME: &str = "witness.demo.custody-ledger.example";

/// `start_witness` runs the demo's own C2SP witness for the log in
/// `data` on a loopback port, on a thread of its own, with its key and
/// state kept in `DATA/witness`; it returns the `--witness` value that
/// points custodyd at it, and the path of its verifier key. A real
/// deployment's witnesses are run by others; this one shows the
/// mechanism: checkpoints carry its cosignature, and `custody monitor
/// --witness-key` checks it.
///
/// # Errors
///
/// On I/O failure or a damaged key file.
pub fn start_witness(data: &Path) -> anyhow::Result<(String, PathBuf)> {
    use custody_log::{CosignatureSigner, LogVerifier};
    let dir = data.join("witness");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let (key, vkey) = (dir.join("witness.key"), dir.join("witness.vkey"));
    let signer = if key.exists() {
        let text = std::fs::read_to_string(&key)?;
        CosignatureSigner::from_key_string(text.trim())
            .map_err(|e| anyhow!("{}: {e}", key.display()))?
    } else {
        let (signer, secret) = CosignatureSigner::generate(WITNESS_NAME, &mut rand_core::OsRng)
            .map_err(|e| anyhow!("witness key: {e}"))?;
        write_secret(&key, &(secret + "\n"))?;
        std::fs::write(&vkey, format!("{}\n", signer.verifier_key()))?;
        signer
    };
    let flag_key = signer.verifier_key().to_owned();
    let log = std::fs::read_to_string(data.join("log.vkey")).context("read log.vkey")?;
    let log = LogVerifier::new(log.trim()).map_err(|e| anyhow!("log.vkey: {e}"))?;
    let state = custody_witness::WitnessState::open(dir.join("state"), [log])
        .map_err(|e| anyhow!("witness state: {e}"))?;
    let witness = std::sync::Arc::new(custody_witness::Witness::new(signer, state));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind the demo witness")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("demo-witness".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "demo witness: no runtime");
                    return;
                }
            };
            rt.block_on(async move {
                let served = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => axum::serve(l, custody_witness::router(witness)).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "demo witness stopped");
                }
            });
        })
        .context("start the demo witness")?;
    Ok((format!("http://{addr} {flag_key}"), vkey))
}

/// `Reach` is where the demo's server listens, and the CA its
/// certificate chains to when it serves TLS.
#[derive(Debug, Clone)]
pub struct Reach {
    /// The gRPC address.
    pub grpc: SocketAddr,
    /// The HTTP address.
    pub http: SocketAddr,
    /// The local CA's certificate, when the server serves TLS.
    pub ca: Option<PathBuf>,
    /// The verifier key of the demo's witness, when it runs one.
    pub witness: Option<PathBuf>,
}

impl Reach {
    fn scheme(&self) -> &'static str {
        if self.ca.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// `grpc_url` is the gRPC address as a client names it.
    pub fn grpc_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.grpc)
    }

    /// `http_url` is the HTTP address as a client names it.
    pub fn http_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.http)
    }

    /// `ca_flag` is ` --ca FILE` for a TLS server, or nothing.
    fn ca_flag(&self) -> String {
        self.ca
            .as_ref()
            .map(|c| format!(" --ca {}", c.display()))
            .unwrap_or_default()
    }
}

async fn channel(at: &Reach) -> anyhow::Result<Channel> {
    let mut endpoint = Channel::from_shared(at.grpc_url()).map_err(|e| anyhow!("{e}"))?;
    if let Some(ca) = &at.ca {
        let pem = std::fs::read(ca).with_context(|| format!("read {}", ca.display()))?;
        endpoint = endpoint
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            )
            .context("TLS to own gRPC")?;
    }
    endpoint
        .connect()
        .await
        .with_context(|| format!("connect to own gRPC at {}", at.grpc))
}

/// `upload` sends a manifest's members and returns its root.
async fn upload(
    c: &mut CustodyLogClient<Channel>,
    members: &[Digest],
) -> anyhow::Result<v1::Manifest> {
    custody_client::put_manifest(c, members.to_vec())
        .await
        .context("upload manifest")
}

/// `submit` streams signed events and returns their indexes, failing on
/// any refusal (a refusal here is a bug in the scenario).
async fn submit(
    c: &mut CustodyLogClient<Channel>,
    events: Vec<v1::SignedEvent>,
) -> anyhow::Result<Vec<u64>> {
    custody_client::append_indexes(c, events)
        .await
        .context("submit scenario events")
}

/// `seed` submits the scenario to the server at `grpc`, writes the ground
/// truth, and prints the auditor's summary.
///
/// # Errors
///
/// If the server refuses anything or cannot be reached, or on I/O failure.
pub async fn seed(
    at: Reach,
    data: PathBuf,
    scenario: Scenario,
    ground_truth: Option<PathBuf>,
) -> anyhow::Result<()> {
    let ch = channel(&at).await?;
    let mut c = CustodyLogClient::new(ch.clone());
    let mut seqs: HashMap<String, u64> = HashMap::new();
    let mut sign =
        |mut e: v1::Event, signer: &str, skip: bool| -> anyhow::Result<v1::SignedEvent> {
            let seq = seqs.entry(e.reporter.clone()).or_insert(0);
            *seq += 1 + u64::from(skip);
            e.reporter_seq = *seq;
            let key = scenario
                .keys
                .get(signer)
                .ok_or_else(|| anyhow!("bug: no key for {signer}"))?;
            Ok(custody_proto::envelope_to_proto(&SignedEnvelope::sign(
                e.encode_to_vec(),
                &[key],
            )))
        };

    let registry: Vec<_> = scenario
        .registry
        .iter()
        .map(|e| sign(e.clone(), ids::AGENCY, false))
        .collect::<anyhow::Result<_>>()?;
    submit(&mut c, registry).await?;

    let total = scenario.events.len();
    eprintln!(
        "demo: seeding {total} custody events (seed {})",
        scenario.seed
    );
    let mut roots: HashMap<Vec<Digest>, v1::Manifest> = HashMap::new();
    let mut index_of: Vec<Option<u64>> = vec![None; total];
    let mut pending: Vec<(usize, v1::SignedEvent)> = Vec::new();
    let mut done = 0usize;
    let mut last_report = 0usize;
    for (pos, p) in scenario.events.iter().enumerate() {
        let mut event = p.event.clone();
        if let Some(target) = p.receipt_of {
            if index_of[target].is_none() {
                done += flush(&mut c, &mut pending, &mut index_of).await?;
            }
            let Some(Some(ix)) = index_of.get(target) else {
                bail!("bug: receipt {pos} precedes its transfer {target}");
            };
            if let Some(v1::event::Body::Custody(a)) = &mut event.body {
                a.receipt_of = *ix;
            }
        }
        if let Some(members) = &p.manifest {
            let m = match roots.get(members) {
                Some(m) => m.clone(),
                None => {
                    let m = upload(&mut c, members).await?;
                    roots.insert(members.clone(), m.clone());
                    m
                }
            };
            if let Some(v1::event::Body::Custody(a)) = &mut event.body {
                a.manifest = Some(m);
            }
        }
        pending.push((pos, sign(event, p.signer, p.skip_seq)?));
        if pending.len() >= 1000 {
            done += flush(&mut c, &mut pending, &mut index_of).await?;
        }
        if done >= last_report + total / 10 {
            last_report = done;
            eprintln!("demo: {done}/{total} events logged");
        }
    }
    flush(&mut c, &mut pending, &mut index_of).await?;
    eprintln!("demo: {total}/{total} events logged");

    let truth = scenario.ground_truth();
    let text = serde_json::to_string_pretty(&truth)?;
    std::fs::write(truth_path(&data), &text)?;
    if let Some(path) = &ground_truth {
        std::fs::write(path, &text).with_context(|| format!("write {}", path.display()))?;
    }
    let marker = Marker {
        seed: scenario.seed,
        from: truth.from.clone(),
        to: truth.to.clone(),
        events: total,
    };
    std::fs::write(marker_path(&data), serde_json::to_string_pretty(&marker)?)?;
    summary(ch, &at, &data, &marker).await
}

async fn flush(
    c: &mut CustodyLogClient<Channel>,
    pending: &mut Vec<(usize, v1::SignedEvent)>,
    index_of: &mut [Option<u64>],
) -> anyhow::Result<usize> {
    if pending.is_empty() {
        return Ok(0);
    }
    let (positions, events): (Vec<usize>, Vec<v1::SignedEvent>) = pending.drain(..).unzip();
    let n = events.len();
    for (pos, ix) in positions.into_iter().zip(submit(c, events).await?) {
        index_of[pos] = Some(ix);
    }
    Ok(n)
}

/// `reprint` prints the summary of an already seeded directory and copies
/// its ground truth where asked.
///
/// # Errors
///
/// If the directory's demo files are unreadable or the server unreachable.
pub async fn reprint(
    at: Reach,
    data: PathBuf,
    ground_truth: Option<PathBuf>,
) -> anyhow::Result<()> {
    let marker: Marker =
        serde_json::from_slice(&std::fs::read(marker_path(&data))?).context("read demo.json")?;
    if let Some(path) = &ground_truth {
        std::fs::copy(truth_path(&data), path)
            .with_context(|| format!("copy ground truth to {}", path.display()))?;
    }
    eprintln!(
        "demo: {} was seeded before (seed {}); serving it as it is",
        data.display(),
        marker.seed
    );
    summary(channel(&at).await?, &at, &data, &marker).await
}

async fn summary(ch: Channel, at: &Reach, data: &Path, marker: &Marker) -> anyhow::Result<()> {
    let from = custody_domain::parse_rfc3339(&marker.from).map_err(|e| anyhow!(e))?;
    let to = custody_domain::parse_rfc3339(&marker.to).map_err(|e| anyhow!(e))?;
    // Wait for a checkpoint that covers everything seeded.
    let mut log = CustodyLogClient::new(ch.clone());
    let size = loop {
        let cp = log
            .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
            .await
            .map_err(|s| anyhow!("checkpoint: {}", s.message()))?
            .into_inner()
            .checkpoint;
        let size: u64 = std::str::from_utf8(&cp)
            .ok()
            .and_then(|t| t.lines().nth(1))
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        if size as usize > marker.events {
            break size;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut q = CustodyQueryClient::new(ch).max_decoding_message_size(256 << 20);
    let scope = q
        .breach_scope(v1::BreachScopeRequest {
            system_id: ids::SUBCO_NET.to_owned(),
            from_unix_nanos: from,
            to_unix_nanos: to,
            page_size: 1,
            page_token: Vec::new(),
        })
        .await
        .map_err(|s| anyhow!("breach scope: {}", s.message()))?
        .into_inner();
    let server = format!("{}{}", at.grpc_url(), at.ca_flag());
    let http = at.http_url();
    let vkey = data.join("log.vkey");
    let mut out = String::new();
    out += &format!(
        "\nCustody Ledger demo: the border crossing, seed {} — {} custody events, log size {size}\n\n",
        marker.seed, marker.events
    );
    out += &format!(
        "Breach scope of {} (the subcontractor's corporate network, outside the boundary)\nfrom {} to {}: {} distinct images\n",
        ids::SUBCO_NET,
        marker.from,
        marker.to,
        scope.asset_count
    );
    for c in &scope.by_class {
        let m = u8::try_from(c.modality)
            .ok()
            .and_then(custody_domain::Modality::from_code)
            .map_or("UNKNOWN", |m| m.name());
        let s = u8::try_from(c.subject_class)
            .ok()
            .and_then(custody_domain::SubjectClass::from_code)
            .map_or("UNKNOWN", |s| s.name());
        out += &format!("  {m:<14} {s:<20} {:>6}\n", c.count);
    }
    let example = scope
        .intervals
        .first()
        .map(|i| (custody_domain::hex(&i.asset), rfc3339(i.from_unix_nanos)));
    if let Some(ca) = &at.ca {
        out += &format!(
            "\nThe server speaks TLS with a certificate from the demo's own local CA, {}:\ncustody trusts it with --ca; a browser, once it is imported (or with a warning).\n",
            ca.display()
        );
    }
    if let Some(w) = &at.witness {
        out += &format!(
            "\nCheckpoints are published only once cosigned by the demo's witness, {WITNESS_NAME} (its key: {}).\n",
            w.display()
        );
    }
    out += "\nInspect further (every answer is proven against a signed checkpoint):\n";
    out += &format!(
        "  web view (read-only): {http}/ui/breach-scope?system={}&from={}&to={}\n",
        ids::SUBCO_NET,
        marker.from,
        marker.to
    );
    out += &format!(
        "  custody inspect breach-scope --server {server} --system {} --from {} --to {} --verify --log-key {}\n",
        ids::SUBCO_NET,
        marker.from,
        marker.to,
        vkey.display()
    );
    if let Some((asset, at)) = example {
        out += &format!(
            "  custody inspect holders --server {server} --asset {asset} --at {at} --verify --log-key {}\n",
            vkey.display()
        );
        out += &format!("  custody inspect history --server {server} --asset {asset}\n");
    }
    out += &format!(
        "  custody inspect holdings --server {server} --party {} --at {}\n",
        ids::SUBCO,
        marker.to
    );
    out += &format!(
        "  custody inspect findings --server {server} --as-of {} --verify --log-key {}\n",
        marker.to,
        vkey.display()
    );
    out += &format!(
        "  custody monitor --url {http}{} --log-key {}{} --state {} --once\n",
        at.ca_flag(),
        vkey.display(),
        at.witness
            .as_ref()
            .map(|w| format!(" --witness-key {}", w.display()))
            .unwrap_or_default(),
        data.join("monitor.state").display()
    );
    println!("{out}");
    Ok(())
}
