//! `custody load`: a load generator for benchmarks.
//!
//! It registers its own test party (signed with the data owner's key),
//! signs every event before the clock starts, then submits them over unary
//! calls or streams and reports throughput, time to durable ack, and time
//! to checkpoint inclusion.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::Grpc;
use anyhow::{anyhow, bail, Context as _};
use custody_domain::SignedEnvelope;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::{decode_entry, envelope_to_proto, v1, Entry};
use ed25519_dalek::SigningKey;
use prost::Message as _;
use serde::Serialize;
use tokio::sync::Mutex;

/// `LoadOptions` are `custody load`'s options.
pub struct LoadOptions {
    pub server: String,
    pub owner_key: SigningKey,
    pub events: usize,
    pub concurrency: usize,
    pub stream: bool,
    /// Offered load in events/s over all streams; `None` sends as fast as
    /// the server accepts (open loop at saturation).
    pub rate: Option<f64>,
    /// What else than single CAPTUREs the load holds.
    pub mix: Mix,
}

/// `Mix` is the share of custody transfers and bulk events in a load; the
/// rest are single CAPTUREs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mix {
    /// Percent of events (0–100) that COPY the asset captured just before
    /// to a second system of the load party.
    pub transfer_percent: u32,
    /// Every `bulk_every`-th event is a bulk CAPTURE of a fresh manifest
    /// (0: none).
    pub bulk_every: usize,
    /// Members of each bulk CAPTURE's manifest.
    pub bulk_size: usize,
}

/// `Kind` is what event `i` of a mixed load is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Capture,
    /// A COPY of the asset captured by the event before.
    Copy,
    /// A bulk CAPTURE of the `n`-th manifest.
    Bulk(usize),
}

impl Mix {
    /// `kinds` lays out `n` events. A COPY only follows a single CAPTURE,
    /// and never starts a worker's chunk of `chunk` events, so the asset
    /// it copies was captured earlier on the same stream.
    fn kinds(&self, n: usize, chunk: usize) -> Vec<Kind> {
        let mut out = Vec::with_capacity(n);
        let mut bulks = 0;
        // Spread the COPYs evenly: event i is one when the running share
        // falls behind the percentage.
        let mut copies = 0usize;
        for i in 0..n {
            let k = if self.bulk_every > 0 && (i + 1) % self.bulk_every == 0 {
                bulks += 1;
                Kind::Bulk(bulks - 1)
            } else if i % chunk.max(1) != 0
                && out.last() == Some(&Kind::Capture)
                && copies * 100 < (i + 1) * self.transfer_percent as usize
            {
                copies += 1;
                Kind::Copy
            } else {
                Kind::Capture
            };
            out.push(k);
        }
        out
    }

    /// `bulk_events` is how many bulk CAPTUREs `n` events hold.
    pub fn bulk_events(&self, n: usize) -> usize {
        n.checked_div(self.bulk_every).unwrap_or(0)
    }
}

/// `LoadReport` is what `--json` prints.
#[derive(Serialize)]
pub struct LoadReport {
    pub events: usize,
    pub mode: &'static str,
    pub concurrency: usize,
    pub seconds: f64,
    pub events_per_sec: f64,
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    pub checkpoint_p50_ms: f64,
    pub checkpoint_p99_ms: f64,
    pub refused: usize,
    /// The offered rate, if one was set.
    pub offered_rate: Option<f64>,
    /// Of `events`: custody transfers (COPY) and bulk CAPTUREs, and the
    /// assets the bulk CAPTUREs named.
    pub transfers: usize,
    pub bulk_events: usize,
    pub bulk_assets: usize,
    /// The signed events' encoded bytes: what the log's leaves hold, less
    /// each entry's integration time and framing.
    pub signed_bytes: u64,
}

pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn envelope(event: v1::Event, key: &SigningKey) -> v1::SignedEvent {
    envelope_to_proto(&SignedEnvelope::sign(event.encode_to_vec(), &[key]))
}

pub(crate) async fn append(
    client: &mut CustodyLogClient<Grpc>,
    event: v1::Event,
    key: &SigningKey,
) -> anyhow::Result<u64> {
    let r = client
        .append(v1::AppendRequest {
            event: Some(envelope(event, key)),
            wait_for_checkpoint: true,
        })
        .await
        .map_err(|s| anyhow!("{}: {}", s.code(), s.message()))?;
    Ok(r.into_inner().index)
}

/// `genesis` reads the log's genesis entry: the data owner's party id and
/// the log's origin, which every event for the log names.
///
/// # Errors
///
/// If the log cannot be read or entry 0 is not a genesis entry.
pub async fn genesis(client: &mut CustodyLogClient<Grpc>) -> anyhow::Result<(String, String)> {
    let genesis = client
        .get_entries(v1::GetEntriesRequest { start: 0, end: 1 })
        .await
        .map_err(|s| anyhow!("read genesis entry: {}", s.message()))?
        .into_inner();
    match genesis.entries.first().map(|e| decode_entry(e)) {
        Some(Ok(Entry::Genesis(g))) => Ok((g.owner_party_id, g.origin)),
        _ => bail!("entry 0 of the log is not a genesis entry"),
    }
}

/// `register_party` registers a fresh party with a fresh key, signed by
/// the data owner, and returns its id and key.
///
/// # Errors
///
/// If the log refuses, e.g. because `owner` is not the data owner's key.
pub async fn register_party(
    client: &mut CustodyLogClient<Grpc>,
    owner: &SigningKey,
    kind: v1::PartyKind,
) -> anyhow::Result<(String, SigningKey)> {
    let (owner_id, origin) = genesis(client).await?;
    let party = format!("load-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let now = crate::event_json::now_nanos();
    let reg = v1::Event {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_time_unix_nanos: now,
        reporter: owner_id.clone(),
        reporter_seq: 0,
        log_origin: origin.clone(),
        body: Some(v1::event::Body::PartyRegistered(v1::PartyRegistered {
            party_id: party.clone(),
            kind: kind as i32,
            acts_on_behalf_of: owner_id.clone(),
        })),
    };
    append(client, reg, owner).await.context("register party")?;
    let add = v1::Event {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_time_unix_nanos: now,
        reporter: owner_id.clone(),
        reporter_seq: 0,
        log_origin: origin.clone(),
        body: Some(v1::event::Body::KeyAdded(v1::KeyAdded {
            party_id: party.clone(),
            public_key: key.verifying_key().to_bytes().to_vec(),
            valid_from_unix_nanos: 0,
            valid_to_unix_nanos: 0,
        })),
    };
    append(client, add, owner).await.context("add key")?;
    register_system(client, owner, &party, &system_of(&party)).await?;
    Ok((party, key))
}

/// `register_system` registers `system_id`, owned by `party`, inside the
/// boundary and accredited, signed by the data owner.
///
/// # Errors
///
/// If the log refuses.
pub async fn register_system(
    client: &mut CustodyLogClient<Grpc>,
    owner: &SigningKey,
    party: &str,
    system_id: &str,
) -> anyhow::Result<()> {
    let (owner_id, origin) = genesis(client).await?;
    let sys = v1::Event {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_time_unix_nanos: crate::event_json::now_nanos(),
        reporter: owner_id,
        reporter_seq: 0,
        log_origin: origin,
        body: Some(v1::event::Body::SystemRegistered(v1::SystemRegistered {
            system_id: system_id.to_owned(),
            owner_party: party.to_owned(),
            inside_boundary: true,
            accredited: true,
            encrypted_at_rest: true,
            removable_media: false,
        })),
    };
    append(client, sys, owner)
        .await
        .with_context(|| format!("register system {system_id}"))?;
    Ok(())
}

/// `put_manifest` uploads `members` (any order) and returns the manifest
/// that names them.
///
/// # Errors
///
/// If the server refuses the upload.
pub async fn put_manifest(
    client: &mut CustodyLogClient<Grpc>,
    members: Vec<[u8; 32]>,
) -> anyhow::Result<v1::Manifest> {
    Ok(custody_client::put_manifest(client, members).await?)
}

/// `fresh_digest` is a digest no other load made: `i` then random bytes.
pub fn fresh_digest(i: u64) -> [u8; 32] {
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&i.to_be_bytes());
    digest[8..24].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    digest
}

/// `archive_of` is the second system a mixed load registers; its COPYs go
/// there.
pub fn archive_of(party: &str) -> String {
    format!("{party}-archive")
}

/// `system_of` is the system `register_party` registers for a load party;
/// its captures rest there.
pub fn system_of(party: &str) -> String {
    format!("{party}-store")
}

/// `capture_action` is the CAPTURE of `digest` by a load party onto its
/// system.
pub(crate) fn capture_action(party: &str, digest: &[u8; 32]) -> v1::CustodyAction {
    v1::CustodyAction {
        action: v1::CustodyActionKind::Capture as i32,
        actor: party.to_owned(),
        to_system: system_of(party),
        asset_digest: digest.to_vec(),
        modality: v1::Modality::FaceImage as i32,
        subject_class: v1::SubjectClass::Unknown as i32,
        purpose: v1::Purpose::BorderInspection as i32,
        ..Default::default()
    }
}

/// `custody_event` is the unsigned event by which `party` reports
/// `action` as its `seq`-th event, now, for the log of `origin`.
pub(crate) fn custody_event(
    origin: &str,
    party: &str,
    seq: u64,
    action: v1::CustodyAction,
) -> v1::Event {
    v1::Event {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_time_unix_nanos: crate::event_json::now_nanos(),
        reporter: party.to_owned(),
        reporter_seq: seq,
        log_origin: origin.to_owned(),
        body: Some(v1::event::Body::Custody(action)),
    }
}

/// `captures` signs `n` single CAPTUREs of fresh assets from `party`,
/// numbered from `first_seq + 1`, on all cores: what `custody load`
/// streams, for other benchmarks.
pub(crate) fn captures(
    origin: &str,
    party: &str,
    key: &SigningKey,
    n: usize,
    first_seq: u64,
) -> Vec<v1::SignedEvent> {
    mixed_events(origin, party, key, &vec![Kind::Capture; n], &[], first_seq)
}

/// `mixed_events` signs `kinds.len()` events from `party` for the log of
/// `origin`: single CAPTUREs to its system, COPYs of the asset captured
/// just before to its archive, and bulk CAPTUREs of `manifests`. Their
/// reporter sequence numbers start after `first_seq`.
fn mixed_events(
    origin: &str,
    party: &str,
    key: &SigningKey,
    kinds: &[Kind],
    manifests: &[v1::Manifest],
    first_seq: u64,
) -> Vec<v1::SignedEvent> {
    use rayon_free::par_map;
    // The digest of single CAPTURE i is fixed up front, so the COPY after
    // it can name it while both are signed on different threads.
    let digests: Vec<[u8; 32]> = (0..kinds.len())
        .map(|i| fresh_digest(first_seq + i as u64))
        .collect();
    par_map(kinds.len(), |i| {
        let mut a = capture_action(party, &digests[i]);
        match kinds[i] {
            Kind::Capture => {}
            Kind::Copy => {
                a.action = v1::CustodyActionKind::Copy as i32;
                a.asset_digest = digests[i.saturating_sub(1)].to_vec();
                a.from_system = system_of(party);
                a.to_system = archive_of(party);
                a.modality = 0;
                a.subject_class = 0;
            }
            Kind::Bulk(m) => {
                a.asset_digest.clear();
                a.manifest = manifests.get(m).cloned();
                a.modality = v1::Modality::PlateImage as i32;
            }
        }
        envelope(
            custody_event(origin, party, first_seq + i as u64 + 1, a),
            key,
        )
    })
}

/// Signs on all cores with plain threads.
mod rayon_free {
    pub fn par_map<T: Send, F: Fn(usize) -> T + Sync>(n: usize, f: F) -> Vec<T> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let chunk = n.div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .step_by(chunk)
                .map(|start| {
                    let f = &f;
                    s.spawn(move || (start..(start + chunk).min(n)).map(f).collect::<Vec<T>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    }
}

/// One acknowledged event: when it was sent, acked, and its index.
struct Ack {
    sent: Instant,
    acked: Instant,
    index: u64,
}

/// `run` runs the load and reports.
///
/// # Errors
///
/// If the server cannot be reached or refuses the set-up.
pub async fn run(opts: LoadOptions) -> anyhow::Result<LoadReport> {
    let channel = crate::net::channel(&opts.server).await?;
    let mut client = CustodyLogClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let (party, key) = register_party(&mut client, &opts.owner_key, v1::PartyKind::Device).await?;
    eprintln!(
        "load: registered party {party}; signing {} events",
        opts.events
    );
    let (_, origin) = genesis(&mut client).await?;
    let per_worker = opts.events.div_ceil(opts.concurrency.max(1)).max(1);
    let kinds = opts.mix.kinds(opts.events, per_worker);
    if opts.mix.transfer_percent > 0 {
        register_system(&mut client, &opts.owner_key, &party, &archive_of(&party)).await?;
    }
    let mut manifests = Vec::new();
    for m in 0..opts.mix.bulk_events(opts.events) {
        let base = (opts.events + m * opts.mix.bulk_size) as u64;
        let members = (0..opts.mix.bulk_size as u64)
            .map(|j| fresh_digest(base + j))
            .collect();
        manifests.push(put_manifest(&mut client, members).await?);
    }
    if !manifests.is_empty() {
        eprintln!(
            "load: uploaded {} manifests of {} members",
            manifests.len(),
            opts.mix.bulk_size
        );
    }
    let events = mixed_events(&origin, &party, &key, &kinds, &manifests, 0);
    let signed_bytes = events.iter().map(|e| e.encoded_len() as u64).sum();

    // Watch checkpoints: (time first seen, size).
    let seen: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let seen = seen.clone();
        let stop = stop.clone();
        let mut c = CustodyLogClient::new(channel.clone());
        tokio::spawn(async move {
            let mut last = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(r) = c
                    .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
                    .await
                {
                    let note = r.into_inner().checkpoint;
                    if let Some(size) = checkpoint_size(&note) {
                        if size > last {
                            last = size;
                            seen.lock().await.push((Instant::now(), size));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    eprintln!("load: sending");
    let start = Instant::now();
    let mut chunks: Vec<Vec<v1::SignedEvent>> = Vec::new();
    let mut it = events.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(it.by_ref().take(per_worker).collect());
    }
    let mut tasks = Vec::new();
    for chunk in chunks {
        let client = CustodyLogClient::new(channel.clone());
        tasks.push(tokio::spawn(if opts.stream {
            let per_stream = opts.rate.map(|r| r / opts.concurrency as f64);
            Box::pin(stream_worker(client, chunk, per_stream))
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = anyhow::Result<(Vec<Ack>, usize)>> + Send>,
                >
        } else {
            Box::pin(unary_worker(client, chunk))
        }));
    }
    let mut acks = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (a, r) = t.await.map_err(|e| anyhow!("worker: {e}"))??;
        acks.extend(a);
        refused += r;
    }
    let elapsed = start.elapsed();
    let max_index = acks.iter().map(|a| a.index).max().unwrap_or(0);
    // Wait for a checkpoint covering everything.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if seen
            .lock()
            .await
            .last()
            .is_some_and(|(_, s)| *s > max_index)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watcher.await;
    let seen = seen.lock().await.clone();

    let mut ack_ms: Vec<f64> = acks
        .iter()
        .map(|a| (a.acked - a.sent).as_secs_f64() * 1e3)
        .collect();
    let mut cp_ms: Vec<f64> = acks
        .iter()
        .filter_map(|a| {
            let i = seen.partition_point(|(_, s)| *s <= a.index);
            seen.get(i)
                .map(|(t, _)| t.saturating_duration_since(a.sent).as_secs_f64() * 1e3)
        })
        .collect();
    ack_ms.sort_by(f64::total_cmp);
    cp_ms.sort_by(f64::total_cmp);
    Ok(LoadReport {
        events: acks.len(),
        mode: if opts.stream { "stream" } else { "unary" },
        concurrency: opts.concurrency,
        seconds: elapsed.as_secs_f64(),
        events_per_sec: acks.len() as f64 / elapsed.as_secs_f64(),
        ack_p50_ms: quantile(&ack_ms, 0.5),
        ack_p99_ms: quantile(&ack_ms, 0.99),
        checkpoint_p50_ms: quantile(&cp_ms, 0.5),
        checkpoint_p99_ms: quantile(&cp_ms, 0.99),
        refused,
        offered_rate: opts.rate,
        transfers: kinds.iter().filter(|k| **k == Kind::Copy).count(),
        bulk_events: manifests.len(),
        bulk_assets: manifests.len() * opts.mix.bulk_size,
        signed_bytes,
    })
}

fn checkpoint_size(note: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(note).ok()?;
    text.lines().nth(1)?.parse().ok()
}

async fn unary_worker(
    mut client: CustodyLogClient<Grpc>,
    events: Vec<v1::SignedEvent>,
) -> anyhow::Result<(Vec<Ack>, usize)> {
    let mut acks = Vec::with_capacity(events.len());
    let mut refused = 0;
    for e in events {
        let sent = Instant::now();
        match client
            .append(v1::AppendRequest {
                event: Some(e),
                wait_for_checkpoint: false,
            })
            .await
        {
            Ok(r) => acks.push(Ack {
                sent,
                acked: Instant::now(),
                index: r.into_inner().index,
            }),
            Err(_) => refused += 1,
        }
    }
    Ok((acks, refused))
}

async fn stream_worker(
    mut client: CustodyLogClient<Grpc>,
    events: Vec<v1::SignedEvent>,
    rate: Option<f64>,
) -> anyhow::Result<(Vec<Ack>, usize)> {
    use futures::StreamExt as _;
    let n = events.len();
    let sent_at: Arc<std::sync::Mutex<Vec<Instant>>> =
        Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let sent2 = sent_at.clone();
    // With a rate, event i is due at start + i / rate; its send time is
    // taken when the stream yields it, so client-side queueing is counted.
    let start = Instant::now();
    let requests = futures::stream::iter(events.into_iter().enumerate()).then(move |(i, e)| {
        let sent2 = sent2.clone();
        async move {
            if let Some(r) = rate {
                let due = start + Duration::from_secs_f64(i as f64 / r);
                tokio::time::sleep_until(due.into()).await;
            }
            if let Ok(mut s) = sent2.lock() {
                s.push(Instant::now());
            }
            v1::AppendRequest {
                event: Some(e),
                wait_for_checkpoint: false,
            }
        }
    });
    let mut responses = client
        .append_stream(requests)
        .await
        .map_err(|s| anyhow!("open stream: {}", s.message()))?
        .into_inner();
    let mut acks = Vec::with_capacity(n);
    let mut refused = 0;
    let mut i = 0;
    while let Some(r) = responses
        .message()
        .await
        .map_err(|s| anyhow!("stream: {}", s.message()))?
    {
        let acked = Instant::now();
        let sent = sent_at
            .lock()
            .ok()
            .and_then(|s| s.get(i).copied())
            .unwrap_or(acked);
        i += 1;
        if r.error_code != 0 {
            refused += 1;
            continue;
        }
        acks.push(Ack {
            sent,
            acked,
            index: r.index,
        });
    }
    Ok((acks, refused))
}

#[cfg(test)]
mod tests {
    use super::{Kind, Mix};

    #[test]
    fn a_mix_copies_only_what_its_own_stream_captured_just_before() {
        let mix = Mix {
            transfer_percent: 20,
            bulk_every: 50,
            bulk_size: 10,
        };
        let (n, chunk) = (1000, 250);
        let kinds = mix.kinds(n, chunk);
        let copies = kinds.iter().filter(|k| **k == Kind::Copy).count();
        let bulks: Vec<usize> = kinds
            .iter()
            .filter_map(|k| match k {
                Kind::Bulk(m) => Some(*m),
                _ => None,
            })
            .collect();
        assert_eq!(bulks, (0..mix.bulk_events(n)).collect::<Vec<_>>());
        assert_eq!(bulks.len(), 20);
        assert!((190..=200).contains(&copies), "{copies} copies of 1000");
        for (i, k) in kinds.iter().enumerate() {
            if *k == Kind::Copy {
                assert_ne!(i % chunk, 0, "a COPY starts chunk {i}");
                assert_eq!(
                    kinds[i - 1],
                    Kind::Capture,
                    "event {i} copies a non-capture"
                );
            }
        }
        assert!(Mix::default()
            .kinds(10, 5)
            .iter()
            .all(|k| *k == Kind::Capture));
    }
}
