//! The one error type of evidence verification.

/// `EvidenceError` says which part of some evidence failed, and how. Every
/// message names the part (the checkpoint, an entry by log index, a
/// registry entry, a membership proof, the question, the answer), so a
/// person can tell what was tampered with or what the server got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The file is not a bundle: not JSON, or not of the bundle's shape.
    #[error("{0}")]
    Malformed(String),
    /// The checkpoint is malformed or not signed by the pinned log key.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A cited entry fails a check.
    #[error("entry {index}: {msg}")]
    Entry {
        /// The entry's log index.
        index: u64,
        /// What failed.
        msg: String,
    },
    /// A registry entry fails a check.
    #[error("registry entry {index}: {msg}")]
    Registry {
        /// The entry's log index.
        index: u64,
        /// What failed.
        msg: String,
    },
    /// A manifest membership proof fails a check.
    #[error("membership proof of asset {asset} in manifest {manifest}: {msg}")]
    Membership {
        /// The asset, hex.
        asset: String,
        /// The manifest root, hex.
        manifest: String,
        /// What failed.
        msg: String,
    },
    /// The evidence as a whole is inconsistent (sizes, missing genesis).
    #[error("evidence: {0}")]
    Evidence(String),
    /// The question is malformed.
    #[error("question: {0}")]
    Question(String),
    /// The answer is not what the verified entries support.
    #[error("answer: {0}")]
    Answer(String),
    /// The bundle holds something no part of the answer rests on.
    #[error("superfluous {0}")]
    Superfluous(String),
    /// The bundle parses and checks but is not byte for byte its canonical
    /// serialisation.
    #[error(
        "the bundle is not in canonical form: it first differs from its canonical serialisation at line {line} column {column} (in {part})"
    )]
    NotCanonical {
        /// 1-based line of the first difference.
        line: usize,
        /// 1-based column (in bytes) of the first difference.
        column: usize,
        /// The top-level part the difference is in.
        part: String,
    },
    /// The bundle does not hash to its recorded digest.
    #[error(
        "digest: the bundle does not hash to its recorded digest, so it was changed after export in a part no proof covers (the question's parameters, a signature line of a key the verifier does not know, or the digest itself)"
    )]
    Digest,
}

impl EvidenceError {
    pub(crate) fn entry(index: u64, msg: impl Into<String>) -> Self {
        EvidenceError::Entry {
            index,
            msg: msg.into(),
        }
    }

    pub(crate) fn registry(index: u64, msg: impl Into<String>) -> Self {
        EvidenceError::Registry {
            index,
            msg: msg.into(),
        }
    }

    pub(crate) fn answer(msg: impl Into<String>) -> Self {
        EvidenceError::Answer(msg.into())
    }
}
