//! Proof files: the JSON that `custody prove` writes, that
//! `custody-client` keeps as a reporter's receipts, and that
//! `custody verify` checks offline against a pinned log key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custody_log::{leaf_hash, verify_consistency, verify_inclusion, Hash, LogVerifier};
use serde::{Deserialize, Serialize};

use crate::EvidenceError;

/// `ProofFile` is the JSON a proof is carried in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// `b64_hashes` encodes proof hashes for a file.
pub fn b64_hashes(p: &[Vec<u8>]) -> Vec<String> {
    p.iter().map(|h| B64.encode(h)).collect()
}

fn hashes(p: &[String]) -> Result<Vec<Hash>, EvidenceError> {
    p.iter()
        .map(|s| {
            let raw = B64
                .decode(s)
                .map_err(|e| EvidenceError::Malformed(format!("proof hash: {e}")))?;
            let h: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
                EvidenceError::Malformed(format!("proof hash of {} bytes", raw.len()))
            })?;
            Ok(Hash(h))
        })
        .collect()
}

impl ProofFile {
    /// `inclusion` is the proof file of an inclusion proof as the log
    /// serves it (`GetInclusionProof`).
    ///
    /// # Errors
    ///
    /// [`EvidenceError::Checkpoint`] if the checkpoint is not text.
    pub fn inclusion(
        checkpoint: Vec<u8>,
        index: u64,
        entry: &[u8],
        proof: &[Vec<u8>],
    ) -> Result<Self, EvidenceError> {
        Ok(Self::Inclusion {
            checkpoint: String::from_utf8(checkpoint)
                .map_err(|_| EvidenceError::Checkpoint("not text".into()))?,
            index,
            entry: B64.encode(entry),
            proof: b64_hashes(proof),
        })
    }

    /// `checkpoints` are the checkpoint notes the file holds.
    pub fn checkpoints(&self) -> Vec<Vec<u8>> {
        match self {
            Self::Inclusion { checkpoint, .. } => vec![checkpoint.clone().into_bytes()],
            Self::Consistency {
                old_checkpoint,
                new_checkpoint,
                ..
            } => vec![
                old_checkpoint.clone().into_bytes(),
                new_checkpoint.clone().into_bytes(),
            ],
        }
    }

    /// `entry` is the entry an inclusion proof proves, decoded.
    ///
    /// # Errors
    ///
    /// [`EvidenceError::Malformed`] if it is not base64, or this is not
    /// an inclusion proof.
    pub fn entry(&self) -> Result<Vec<u8>, EvidenceError> {
        match self {
            Self::Inclusion { entry, .. } => B64
                .decode(entry)
                .map_err(|e| EvidenceError::Malformed(format!("entry: {e}"))),
            Self::Consistency { .. } => Err(EvidenceError::Malformed(
                "a consistency proof proves no entry".into(),
            )),
        }
    }

    /// `verify` checks the file against the pinned log key and says what
    /// it proves.
    ///
    /// # Errors
    ///
    /// What failed: a checkpoint signature, or the proof.
    pub fn verify(&self, verifier: &LogVerifier) -> Result<String, EvidenceError> {
        let checkpoint = |what: &str, note: &str| {
            verifier
                .verify(note.as_bytes())
                .map_err(|e| EvidenceError::Checkpoint(format!("{what}{e}")))
        };
        match self {
            Self::Inclusion {
                checkpoint: note,
                index,
                proof,
                ..
            } => {
                let cp = checkpoint("", note)?;
                let entry = self.entry()?;
                verify_inclusion(
                    &hashes(proof)?,
                    cp.size,
                    &cp.root,
                    *index,
                    &leaf_hash(&entry),
                )
                .map_err(|e| EvidenceError::Entry {
                    index: *index,
                    msg: format!("inclusion proof: {e}"),
                })?;
                Ok(format!(
                    "inclusion verified: entry {index} ({} bytes) is in log {} at size {}",
                    entry.len(),
                    cp.origin,
                    cp.size
                ))
            }
            Self::Consistency {
                old_checkpoint,
                new_checkpoint,
                proof,
            } => {
                let old = checkpoint("old: ", old_checkpoint)?;
                let new = checkpoint("new: ", new_checkpoint)?;
                verify_consistency(&hashes(proof)?, old.size, &old.root, new.size, &new.root)
                    .map_err(|e| {
                        EvidenceError::Evidence(format!(
                            "consistency proof {} -> {}: {e}",
                            old.size, new.size
                        ))
                    })?;
                Ok(format!(
                    "consistency verified: log {} at size {} extends its tree at size {}",
                    new.origin, new.size, old.size
                ))
            }
        }
    }
}
