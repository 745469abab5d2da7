//! `custody bench-queries`: the custody query benchmarks of BENCHMARKS.md,
//! against a freshly initialised server.
//!
//! Set-up (not timed): one asset with 10,000 events (a capture, then
//! alternating COPY to a second system and DELETE there, so the asset has
//! 5,000 custody intervals), and one system holding `--bulk-assets` assets
//! (1,000,000 by default) captured in bulk events of `--manifest-size`
//! members (100,000 by default) through manifests. Then each query runs `--iterations` times, one at a time, and
//! the latencies' median and p99 are reported.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::net::Grpc;
use anyhow::{anyhow, Context as _};
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::load::{
    append, envelope, fresh_digest, put_manifest, quantile, register_party, register_system,
    system_of,
};

/// `QueryLatency` is one query's latency distribution.
#[derive(Serialize)]
pub struct QueryLatency {
    pub query: &'static str,
    pub iterations: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// What one answer held, as a sanity check on the set-up.
    pub answer: String,
}

/// `BenchReport` is what `--json` prints.
#[derive(Serialize)]
pub struct BenchReport {
    pub asset_events: usize,
    pub bulk_assets: usize,
    pub manifest_size: usize,
    pub setup_seconds: f64,
    pub queries: Vec<QueryLatency>,
}

const SEC: i64 = 1_000_000_000;

/// `Log` is what every event for the log under test names.
struct Log {
    /// The log's origin.
    origin: String,
}

impl Log {
    fn event(&self, reporter: &str, seq: u64, t: i64, body: v1::event::Body) -> v1::Event {
        v1::Event {
            event_id: uuid::Uuid::new_v4().to_string(),
            event_time_unix_nanos: t,
            reporter: reporter.to_owned(),
            reporter_seq: seq,
            log_origin: self.origin.clone(),
            body: Some(body),
        }
    }
}

fn action(
    kind: v1::CustodyActionKind,
    actor: &str,
    f: impl FnOnce(&mut v1::CustodyAction),
) -> v1::event::Body {
    let mut a = v1::CustodyAction {
        action: kind as i32,
        actor: actor.to_owned(),
        ..Default::default()
    };
    f(&mut a);
    v1::event::Body::Custody(a)
}

async fn stream(
    c: &mut CustodyLogClient<Grpc>,
    events: Vec<v1::SignedEvent>,
) -> anyhow::Result<()> {
    custody_client::append_indexes(c, events)
        .await
        .context("set-up events")?;
    Ok(())
}

async fn time<F, Fut>(n: usize, mut f: F) -> anyhow::Result<(f64, f64, String)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let mut ms = Vec::with_capacity(n);
    let mut last = String::new();
    for _ in 0..n {
        let t = Instant::now();
        last = f().await?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok((quantile(&ms, 0.5), quantile(&ms, 0.99), last))
}

/// `scope_page` asks for one BreachScope page of 100 over `[from, to]`
/// and leaves its next-page token in `next`.
async fn scope_page(
    mut q: CustodyQueryClient<Grpc>,
    system: String,
    from: i64,
    to: i64,
    token: Vec<u8>,
    next: &Mutex<Vec<u8>>,
) -> anyhow::Result<String> {
    let r = q
        .breach_scope(v1::BreachScopeRequest {
            system_id: system,
            from_unix_nanos: from,
            to_unix_nanos: to,
            page_size: 100,
            page_token: token,
        })
        .await
        .map_err(|s| anyhow!("{}", s.message()))?
        .into_inner();
    *next.lock().map_err(|_| anyhow!("token lock"))? = r.next_page_token;
    Ok(format!(
        "asset_count {}, {} intervals on the page",
        r.asset_count,
        r.intervals.len()
    ))
}

/// `run` sets up and measures.
///
/// # Errors
///
/// If the server cannot be reached or refuses the set-up.
pub async fn run(
    server: &str,
    owner: &SigningKey,
    bulk_assets: usize,
    manifest_size: usize,
    iterations: usize,
) -> anyhow::Result<BenchReport> {
    let manifest_size = manifest_size.clamp(1, 1_000_000);
    let ch = crate::net::channel(server).await?;
    let mut c = CustodyLogClient::new(ch.clone()).max_decoding_message_size(64 << 20);
    let q = CustodyQueryClient::new(ch).max_decoding_message_size(256 << 20);
    let setup = Instant::now();
    let (party, key) = register_party(&mut c, owner, v1::PartyKind::Software).await?;
    let (_, origin) = crate::load::genesis(&mut c).await?;
    let log = Log { origin };
    let home = system_of(&party);
    let mut systems = Vec::new();
    for suffix in ["copies", "bulk"] {
        let id = format!("{party}-{suffix}");
        register_system(&mut c, owner, &party, &id).await?;
        systems.push(id);
    }
    let (copies, bulk) = (systems[0].clone(), systems[1].clone());

    // One asset with 10,000 events and 5,000 intervals.
    let t0 = crate::event_json::now_nanos() - 3600 * SEC;
    let asset = {
        let mut d = [0u8; 32];
        d[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        d
    };
    let mut seq = 0u64;
    let mut next = |t: i64, body| {
        seq += 1;
        envelope(log.event(&party, seq, t, body), &key)
    };
    let mut evs = vec![next(
        t0,
        action(v1::CustodyActionKind::Capture, &party, |a| {
            a.asset_digest = asset.to_vec();
            a.to_system = home.clone();
            a.modality = v1::Modality::FaceImage as i32;
            a.subject_class = v1::SubjectClass::NonCitizen as i32;
        }),
    )];
    let cycles = 4_999;
    for k in 0..cycles {
        let t = t0 + (2 * k + 1) * 100_000;
        evs.push(next(
            t,
            action(v1::CustodyActionKind::Copy, &party, |a| {
                a.asset_digest = asset.to_vec();
                a.from_system = home.clone();
                a.to_system = copies.clone();
            }),
        ));
        evs.push(next(
            t + 100_000,
            action(v1::CustodyActionKind::Delete, &party, |a| {
                a.asset_digest = asset.to_vec();
                a.from_system = copies.clone();
                a.delete_method = v1::DeleteMethod::Logical as i32;
            }),
        ));
    }
    evs.push(next(
        t0 + 2 * SEC,
        action(v1::CustodyActionKind::Access, &party, |a| {
            a.asset_digest = asset.to_vec();
            a.from_system = home.clone();
            a.purpose = v1::Purpose::QualityAssurance as i32;
        }),
    ));
    let asset_events = evs.len();
    eprintln!("bench-queries: {asset_events} events about one asset");
    stream(&mut c, evs).await?;

    // A system holding `bulk_assets` assets, `manifest_size` per bulk
    // capture.
    let mut member_probe = None;
    let mut made = 0usize;
    while made < bulk_assets {
        let n = (bulk_assets - made).min(manifest_size);
        let mut members: Vec<[u8; 32]> = (0..n).map(|i| fresh_digest((made + i) as u64)).collect();
        members.sort_unstable();
        member_probe.get_or_insert(members[n / 2]);
        let m = put_manifest(&mut c, members).await?;
        // Appended one at a time, each waiting for its checkpoint, so the
        // last one leaves every set-up event checkpointed.
        let e = log.event(
            &party,
            (asset_events + made / manifest_size + 1) as u64,
            t0 + 10 * SEC,
            action(v1::CustodyActionKind::Capture, &party, |a| {
                a.manifest = Some(m);
                a.to_system = bulk.clone();
                a.modality = v1::Modality::PlateImage as i32;
                a.subject_class = v1::SubjectClass::Unknown as i32;
            }),
        );
        append(&mut c, e, &key).await.context("bulk capture")?;
        made += n;
        eprintln!("bench-queries: {made}/{bulk_assets} bulk assets logged");
    }
    let setup_seconds = setup.elapsed().as_secs_f64();

    let mut queries = Vec::new();
    let now = crate::event_json::now_nanos();
    let (p50, p99, answer) = time(iterations, || {
        let mut q = q.clone();
        async move {
            let r = q
                .asset_history(v1::AssetHistoryRequest {
                    asset: asset.to_vec(),
                    page_size: 100,
                    page_token: Vec::new(),
                })
                .await
                .map_err(|s| anyhow!("{}", s.message()))?
                .into_inner();
            Ok(format!(
                "{} indexes, {} proven entries",
                r.indexes.len(),
                r.evidence.map_or(0, |e| e.entries.len())
            ))
        }
    })
    .await?;
    queries.push(QueryLatency {
        query: "AssetHistory (first page of 100) on an asset with 10,000 events",
        iterations,
        p50_ms: p50,
        p99_ms: p99,
        answer,
    });
    let mid = t0 + cycles / 2 * 200_000 + 150_000;
    let (p50, p99, answer) = time(iterations, || {
        let mut q = q.clone();
        async move {
            let r = q
                .holders_at(v1::HoldersAtRequest {
                    asset: asset.to_vec(),
                    time_unix_nanos: mid,
                    tree_size: 0,
                })
                .await
                .map_err(|s| anyhow!("{}", s.message()))?
                .into_inner();
            Ok(format!("{} holders", r.intervals.len()))
        }
    })
    .await?;
    queries.push(QueryLatency {
        query: "HoldersAt on an asset with 10,000 events (5,000 intervals)",
        iterations,
        p50_ms: p50,
        p99_ms: p99,
        answer,
    });
    if let Some(probe) = member_probe {
        let (p50, p99, answer) = time(iterations, || {
            let mut q = q.clone();
            async move {
                let r = q
                    .holders_at(v1::HoldersAtRequest {
                        asset: probe.to_vec(),
                        time_unix_nanos: now,
                        tree_size: 0,
                    })
                    .await
                    .map_err(|s| anyhow!("{}", s.message()))?
                    .into_inner();
                Ok(format!(
                    "{} holders, {} memberships",
                    r.intervals.len(),
                    r.evidence.map_or(0, |e| e.memberships.len())
                ))
            }
        })
        .await?;
        queries.push(QueryLatency {
            query: "HoldersAt on one member of a bulk capture (manifest_size members)",
            iterations,
            p50_ms: p50,
            p99_ms: p99,
            answer,
        });
    }
    // The server keeps a breach scope's counts for its later pages, so
    // each first page asks about a window of its own (one nanosecond
    // longer each time) and pays for the count; the pages after it follow
    // the token, as an auditor walking the answer does.
    let n = iterations.min(20);
    let mut window = 0i64;
    let token = Arc::new(Mutex::new(Vec::new()));
    let (p50, p99, answer) = time(n, || {
        window += 1;
        let (q, bulk, to, next) = (q.clone(), bulk.clone(), now + window, token.clone());
        async move { scope_page(q, bulk, t0, to, Vec::new(), &next).await }
    })
    .await?;
    queries.push(QueryLatency {
        query: "BreachScope (count + first page of 100) over a system holding the bulk assets",
        iterations: n,
        p50_ms: p50,
        p99_ms: p99,
        answer,
    });
    // Only as many as there are pages after the first, so no empty answer
    // is timed as a page.
    let pages_after = bulk_assets.div_ceil(100).saturating_sub(1);
    let (p50, p99, answer) = time(n.min(pages_after), || {
        let (q, bulk, to, next) = (q.clone(), bulk.clone(), now + window, token.clone());
        async move {
            let page = std::mem::take(&mut *next.lock().map_err(|_| anyhow!("token lock"))?);
            if page.is_empty() {
                return Err(anyhow!("the breach scope ended before its last page"));
            }
            scope_page(q, bulk, t0, to, page, &next).await
        }
    })
    .await?;
    queries.push(QueryLatency {
        query: "BreachScope, each next page of 100 (following the token)",
        iterations: n.min(pages_after),
        p50_ms: p50,
        p99_ms: p99,
        answer,
    });
    Ok(BenchReport {
        asset_events,
        bulk_assets,
        manifest_size,
        setup_seconds,
        queries,
    })
}
