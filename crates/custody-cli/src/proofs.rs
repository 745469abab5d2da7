//! Proof files: `custody prove` fetches them, `custody verify` checks them
//! offline against a pinned log key, as it does evidence bundles
//! (`custody export`).

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custody_log::{leaf_hash, verify_consistency, verify_inclusion, Hash, LogVerifier};
use serde::{Deserialize, Serialize};

/// `ProofFile` is the JSON a proof is carried in.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProofFile {
    /// Entry `index` is in the tree of `checkpoint`.
    Inclusion {
        checkpoint: String,
        index: u64,
        /// The entry bytes, base64.
        entry: String,
        /// Proof hashes, base64.
        proof: Vec<String>,
    },
    /// `new_checkpoint` extends `old_checkpoint`.
    Consistency {
        old_checkpoint: String,
        new_checkpoint: String,
        proof: Vec<String>,
    },
}

fn hashes(p: &[String]) -> anyhow::Result<Vec<Hash>> {
    p.iter()
        .map(|s| {
            let raw = B64.decode(s).map_err(|e| anyhow!("proof hash: {e}"))?;
            let h: [u8; 32] = raw
                .as_slice()
                .try_into()
                .map_err(|_| anyhow!("proof hash of {} bytes", raw.len()))?;
            Ok(Hash(h))
        })
        .collect()
}

/// `b64_hashes` encodes proof hashes for a file.
pub fn b64_hashes(p: &[Vec<u8>]) -> Vec<String> {
    p.iter().map(|h| B64.encode(h)).collect()
}

/// `checkpoints_of` is every checkpoint note a file `verify_file` takes
/// holds: a bundle's, a proof file's (both of a consistency proof), or
/// the file itself.
///
/// # Errors
///
/// When a bundle or proof file does not parse.
pub fn checkpoints_of(bytes: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    if custody_evidence::looks_like_bundle(bytes) {
        let (bundle, _) = custody_evidence::Bundle::parse(bytes)?;
        return Ok(vec![bundle.checkpoint]);
    }
    if bytes.first() != Some(&b'{') {
        return Ok(vec![bytes.to_vec()]);
    }
    Ok(match serde_json::from_slice::<ProofFile>(bytes)? {
        ProofFile::Inclusion { checkpoint, .. } => vec![checkpoint.into_bytes()],
        ProofFile::Consistency {
            old_checkpoint,
            new_checkpoint,
            ..
        } => vec![old_checkpoint.into_bytes(), new_checkpoint.into_bytes()],
    })
}

/// `verify_file` checks an evidence bundle, a proof file or a bare
/// checkpoint note, and returns a statement of what is proven.
///
/// # Errors
///
/// What failed: the checkpoint signature, or the proof; for a bundle, the
/// part of it that failed.
pub fn verify_file(bytes: &[u8], verifier: &LogVerifier) -> anyhow::Result<String> {
    if custody_evidence::looks_like_bundle(bytes) {
        return Ok(custody_evidence::verify_bundle(bytes, verifier)?.statement);
    }
    let parsed: Result<ProofFile, _> = serde_json::from_slice(bytes);
    let file = match parsed {
        Ok(f) => f,
        Err(json_err) => {
            if bytes.first() == Some(&b'{') {
                bail!("not a proof file: {json_err}");
            }
            let cp = verifier.verify(bytes).context("checkpoint")?;
            return Ok(format!(
                "checkpoint verified: log {} has {} entries with root {}",
                cp.origin,
                cp.size,
                B64.encode(cp.root.0)
            ));
        }
    };
    match file {
        ProofFile::Inclusion {
            checkpoint,
            index,
            entry,
            proof,
        } => {
            let cp = verifier
                .verify(checkpoint.as_bytes())
                .context("checkpoint")?;
            let entry = B64.decode(entry).map_err(|e| anyhow!("entry: {e}"))?;
            verify_inclusion(
                &hashes(&proof)?,
                cp.size,
                &cp.root,
                index,
                &leaf_hash(&entry),
            )
            .map_err(|e| anyhow!("inclusion proof of entry {index}: {e}"))?;
            Ok(format!(
                "inclusion verified: entry {index} ({} bytes) is in log {} at size {}",
                entry.len(),
                cp.origin,
                cp.size
            ))
        }
        ProofFile::Consistency {
            old_checkpoint,
            new_checkpoint,
            proof,
        } => {
            let old = verifier
                .verify(old_checkpoint.as_bytes())
                .context("old checkpoint")?;
            let new = verifier
                .verify(new_checkpoint.as_bytes())
                .context("new checkpoint")?;
            verify_consistency(&hashes(&proof)?, old.size, &old.root, new.size, &new.root)
                .map_err(|e| anyhow!("consistency proof {} -> {}: {e}", old.size, new.size))?;
            Ok(format!(
                "consistency verified: log {} at size {} extends its tree at size {}",
                new.origin, new.size, old.size
            ))
        }
    }
}
