//! `custody bench-proofs`: inclusion proofs served per second over gRPC.
//!
//! `--concurrency` tasks ask `GetInclusionProof` for entries at random
//! indexes of the latest checkpoint, for `--seconds`, and the rate and the
//! latencies' median and p99 are reported. Every answer is checked against
//! the checkpoint it names (signature once, then the proof from its leaf),
//! so a fast wrong answer cannot pass.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use custody_log::{leaf_hash, verify_inclusion, Hash, LogVerifier};
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use serde::Serialize;

use crate::load::quantile;

/// `ProofReport` is what `bench-proofs` prints.
#[derive(Serialize)]
pub struct ProofReport {
    pub tree_size: u64,
    pub concurrency: usize,
    pub seconds: f64,
    pub proofs: usize,
    pub proofs_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `run` runs the benchmark.
///
/// # Errors
///
/// If the server cannot be reached, or an answer does not verify.
pub async fn run(
    server: &str,
    verifier: &LogVerifier,
    concurrency: usize,
    seconds: f64,
) -> anyhow::Result<ProofReport> {
    let ch = crate::net::endpoint(server)?
        .connect()
        .await
        .with_context(|| format!("connect {server}"))?;
    let mut c = CustodyLogClient::new(ch.clone());
    let note = c
        .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
        .await
        .map_err(|s| anyhow!("checkpoint: {}", s.message()))?
        .into_inner()
        .checkpoint;
    let cp = verifier.verify(&note).context("the latest checkpoint")?;
    let (size, root) = (cp.size, cp.root);
    if size == 0 {
        bail!("the log is empty");
    }
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency.max(1) {
        let mut c = CustodyLogClient::new(ch.clone());
        let note = note.clone();
        tasks.push(tokio::spawn(async move {
            // A per-task xorshift: indexes spread over the whole tree.
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1).wrapping_mul(0x2545_f491);
            let mut lat = Vec::new();
            while Instant::now() < until {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let index = x % size;
                let sent = Instant::now();
                let r = c
                    .get_inclusion_proof(v1::GetInclusionProofRequest {
                        index,
                        tree_size: size,
                    })
                    .await
                    .map_err(|s| anyhow!("proof of {index}: {}", s.message()))?
                    .into_inner();
                lat.push(sent.elapsed().as_secs_f64() * 1e3);
                if r.checkpoint != note {
                    bail!("the proof of {index} names another checkpoint");
                }
                check(&r, size, &root)?;
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.map_err(|e| anyhow!("task: {e}"))??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok(ProofReport {
        tree_size: size,
        concurrency,
        seconds: elapsed,
        proofs: lat.len(),
        proofs_per_sec: lat.len() as f64 / elapsed,
        p50_ms: quantile(&lat, 0.5),
        p99_ms: quantile(&lat, 0.99),
    })
}

fn check(r: &v1::GetInclusionProofResponse, size: u64, root: &Hash) -> anyhow::Result<()> {
    let proof = r
        .proof
        .iter()
        .map(|h| <[u8; 32]>::try_from(h.as_slice()).map(Hash))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| anyhow!("the proof of {} has a hash that is not 32 bytes", r.index))?;
    verify_inclusion(&proof, size, root, r.index, &leaf_hash(&r.entry))
        .map_err(|e| anyhow!("the proof of entry {} does not verify: {e}", r.index))
}
