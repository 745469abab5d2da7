//! Proof files: `custody prove` fetches them, `custody verify` checks them
//! offline against a pinned log key, as it does evidence bundles
//! (`custody export`).

use anyhow::{bail, Context as _};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custody_log::LogVerifier;

pub use custody_evidence::{b64_hashes, ProofFile};

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
    Ok(serde_json::from_slice::<ProofFile>(bytes)?.checkpoints())
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
    Ok(file.verify(verifier)?)
}
