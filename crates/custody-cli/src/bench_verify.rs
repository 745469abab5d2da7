//! `custody bench-verify`: this machine's Ed25519 verification rate on
//! all cores, through the code the sequencer uses
//! (`custody_domain::verify_signatures_by_key`). Ingest cannot beat it, so
//! ingest figures are quoted as a fraction of it, measured in the same run
//! (BENCHMARKS.md).

use std::time::Instant;

use custody_domain::{pae, verify_signatures_by_key, SignatureCheck, PAYLOAD_TYPE};
use ed25519_dalek::{Signer, SigningKey};
use serde::Serialize;

/// `Report` is one measurement.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Signatures per round.
    pub signatures: usize,
    /// Distinct signing keys among them.
    pub keys: usize,
    /// Rounds timed.
    pub rounds: usize,
    /// Worker threads (rayon), normally the core count.
    pub threads: usize,
    /// Median over rounds of signatures verified per second.
    pub median_per_s: f64,
    /// Slowest and fastest round, per second.
    pub min_per_s: f64,
    /// Fastest round, per second.
    pub max_per_s: f64,
}

/// `run` signs `signatures` event-sized messages with `keys` keys (not
/// timed), then times `rounds` verifications of all of them.
///
/// # Errors
///
/// If an argument is zero, or a signature fails to verify (a bug).
pub fn run(signatures: usize, keys: usize, rounds: usize) -> anyhow::Result<Report> {
    anyhow::ensure!(
        signatures > 0 && keys > 0 && rounds > 0,
        "--signatures, --keys and --rounds must be at least 1"
    );
    let signers: Vec<SigningKey> = (0..keys)
        .map(|k| {
            let mut seed = [0x42u8; 32];
            seed[..8].copy_from_slice(&(k as u64).to_be_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    // About the size of a signed CAPTURE body.
    let messages: Vec<Vec<u8>> = (0..signatures)
        .map(|i| {
            let mut body = vec![0x5a; 180];
            body[..8].copy_from_slice(&(i as u64).to_be_bytes());
            pae(PAYLOAD_TYPE, &body)
        })
        .collect();
    let signed: Vec<(usize, ed25519_dalek::Signature)> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (i % keys, signers[i % keys].sign(m)))
        .collect();
    let checks: Vec<SignatureCheck<'_>> = signed
        .iter()
        .zip(&messages)
        .map(|((k, s), m)| SignatureCheck {
            message: m,
            signature: *s,
            key: signers[*k].verifying_key(),
        })
        .collect();
    let mut rates = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let verdicts = verify_signatures_by_key(&checks);
        let secs = start.elapsed().as_secs_f64();
        anyhow::ensure!(
            verdicts.iter().all(|ok| *ok),
            "a valid signature did not verify"
        );
        rates.push(signatures as f64 / secs);
    }
    rates.sort_by(f64::total_cmp);
    Ok(Report {
        signatures,
        keys,
        rounds,
        threads: rayon::current_num_threads(),
        median_per_s: rates[rates.len() / 2],
        min_per_s: rates[0],
        max_per_s: rates[rates.len() - 1],
    })
}
