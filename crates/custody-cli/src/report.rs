//! `custody report-captures`: a reporter of CAPTUREs of fresh assets that
//! goes through `custody-client` (its spool and submitter), for the
//! chaos test and the client-library throughput benchmark.
//!
//! `--setup` registers a fresh party with the data owner's key and keeps
//! its id, key and the log's origin in the spool directory. Each later run
//! reports events until the party's sequence number reaches `--events`,
//! resuming where a killed run stopped: events already spooled are sent
//! (again, if need be: a logged one is answered as a duplicate), and new
//! ones are spooled from the next number.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context as _};
use custody_client::{Reporter, Spool, Submitter};
use custody_proto::v1;

/// The party's id and the log's origin, kept beside its key.
#[derive(serde::Serialize, serde::Deserialize)]
struct Identity {
    party: String,
    origin: String,
}

fn identity_path(dir: &Path) -> PathBuf {
    dir.join("reporter.json")
}

fn key_path(dir: &Path) -> PathBuf {
    dir.join("reporter.key")
}

/// `setup` registers a fresh party and writes its identity into `dir`.
///
/// # Errors
///
/// If `dir` already holds a reporter, or the log refuses the set-up.
pub async fn setup(
    server: &str,
    owner: &ed25519_dalek::SigningKey,
    dir: &Path,
) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    if identity_path(dir).exists() {
        anyhow::bail!("{} already holds a reporter", dir.display());
    }
    let mut c = crate::connect(server).await?;
    let (_, origin) = crate::load::genesis(&mut c).await?;
    let (party, key) = crate::load::register_party(&mut c, owner, v1::PartyKind::Device).await?;
    crate::keys::write_secret_file(
        &key_path(dir),
        &custody_domain::keyfile::format_secret(&key),
    )?;
    let id = serde_json::to_vec(&Identity {
        party: party.clone(),
        origin,
    })?;
    std::fs::write(identity_path(dir), id).context("write reporter.json")?;
    Ok(party)
}

/// `Report` is what one run did.
#[derive(serde::Serialize)]
pub struct Report {
    pub party: String,
    /// Events spooled by this run.
    pub spooled: u64,
    /// Answers recorded by this run: appended, duplicate, refused.
    pub appended: u64,
    pub duplicate: u64,
    pub refused: u64,
    pub seconds: f64,
    /// Answers recorded per second by this run.
    pub events_per_sec: f64,
    /// Events still pending at the end (0 unless stopped).
    pub pending: usize,
}

/// `run` reports until the party's sequence number reaches `events` and
/// everything is answered.
///
/// # Errors
///
/// If the spool cannot be opened or written, or the identity read.
pub async fn run(server: &str, dir: &Path, events: u64, chunk: usize) -> anyhow::Result<Report> {
    let id: Identity = serde_json::from_slice(
        &std::fs::read(identity_path(dir))
            .with_context(|| format!("read {}", identity_path(dir).display()))?,
    )
    .context("reporter.json")?;
    let key = crate::keys::load_secret(&key_path(dir))?;
    let reporter = Reporter::new(id.party.clone(), key, id.origin);
    let spool = Spool::open(&dir.join("spool"))?;
    let mut sub = Submitter::new(
        spool,
        crate::net::endpoint(server)?.connect_timeout(std::time::Duration::from_secs(5)),
    );
    if let Some(t) = crate::net::token() {
        sub = sub.with_token(t)?;
    }
    let sub = std::sync::Arc::new(sub);
    let before = answered(&sub);
    let start = Instant::now();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let sender = {
        let sub = sub.clone();
        tokio::spawn(async move { sub.run(stop).await })
    };
    let mut spooled = 0u64;
    let system = crate::load::system_of(&id.party);
    loop {
        let next = sub
            .spool()
            .lock()
            .map_err(|_| anyhow!("spool lock"))?
            .next_seq();
        if next > events {
            break;
        }
        let n = (events - next + 1).min(chunk as u64);
        let now = custody_client::reporter::now_nanos();
        let items = (0..n).map(|i| {
            let digest = crate::load::fresh_digest(next + i);
            let mut action = crate::load::capture_action(&id.party, &digest);
            action.to_system.clone_from(&system);
            (now, v1::event::Body::Custody(action))
        });
        let items: Vec<_> = items.collect();
        let sub2 = sub.clone();
        let reporter_ref = &reporter;
        // fsync off the async threads; the closure borrows nothing async.
        let seqs = tokio::task::block_in_place(|| sub2.push(reporter_ref, items))?;
        spooled += seqs.len() as u64;
    }
    let _ = stop_tx.send(true);
    sender.await.map_err(|e| anyhow!("sender: {e}"))??;
    // Whatever a broken session left pending.
    sub.drain().await?;
    let seconds = start.elapsed().as_secs_f64();
    let after = answered(&sub);
    let status = sub
        .spool()
        .lock()
        .map_err(|_| anyhow!("spool lock"))?
        .status();
    let total = (after.0 + after.1 + after.2) - (before.0 + before.1 + before.2);
    Ok(Report {
        party: id.party,
        spooled,
        appended: after.0 - before.0,
        duplicate: after.1 - before.1,
        refused: after.2 - before.2,
        seconds,
        events_per_sec: total as f64 / seconds,
        pending: status.depth,
    })
}

fn answered(sub: &Submitter) -> (u64, u64, u64) {
    sub.spool()
        .lock()
        .map(|s| s.status().answered)
        .unwrap_or_default()
}
