//! `custody-evidence` verifies custody answers offline: the `Evidence`
//! that comes with every query answer ([`verify`]), and evidence bundles,
//! one self-contained JSON file per question ([`verify_bundle`]), whose
//! format is documented in `docs/evidence-bundle.md`.
//!
//! A bundle holds the question, the answer's rows, the signed checkpoint,
//! the entries the rows rest on with a C2SP tlog-proof each, the registry
//! entries behind every signature and system owner, and manifest
//! membership proofs for bulk events. Verifying it checks every proof and
//! signature, that the answer is exactly what the proven entries support,
//! that nothing else is in the file, and that the file is byte for byte
//! its canonical serialisation. The server builds bundles with
//! [`Bundle::new`] and [`Bundle::to_bytes`]; the CLI, an audit and the web
//! view verify them with [`verify_bundle`].
//!
//! It does no I/O.
//!
//! ```
//! use custody_evidence::TlogProof;
//!
//! let p = TlogProof {
//!     extra: None,
//!     index: 7,
//!     proof: vec![vec![0; 32]],
//!     checkpoint: b"example.org/log\n8\nAAAA\n\n".to_vec(),
//! };
//! let text = p.encode();
//! assert!(text.starts_with(b"c2sp.org/tlog-proof@v1\nindex 7\n"));
//! assert_eq!(TlogProof::parse(&text), Ok(p));
//! ```

mod bundle;
mod check;
mod error;
mod evidence;
mod finding;
mod proof_file;
mod rows;
mod tlog_proof;

pub use bundle::{Answer, Bundle, Holder, ProvenEntry, Question, FORMAT};
pub use check::{verify_bundle, VerifiedBundle};
pub use error::EvidenceError;
pub use evidence::{verify, verify_checkpoint, VerifiedEvidence};
pub use proof_file::{b64_hashes, ProofFile};
pub use rows::{AssetClass, ClassCount, HistoryEvent, IntervalRow};
pub use tlog_proof::{TlogProof, HEADER as TLOG_PROOF_HEADER};

/// `looks_like_bundle` is whether a file is meant to be an evidence bundle
/// (so that a verifier reports why a damaged one fails, rather than
/// trying other formats): it starts as a canonical bundle does, or names
/// the bundle format.
pub fn looks_like_bundle(bytes: &[u8]) -> bool {
    const NAME: &[u8] = b"custody-evidence-bundle";
    bytes.starts_with(b"{\n  \"format\": ") || bytes.windows(NAME.len()).any(|w| w == NAME)
}

#[cfg(test)]
mod tests;
