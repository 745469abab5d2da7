//! Proof verification.
//!
//! Every failure is the same opaque [`ProofError`], so a verifier never
//! leaks which step failed (as Go's `sumdb/tlog` does with `errProofFailed`).

use tlog_tiles::Hash;

/// `MAX_PROOF_LEN` bounds proofs: a tree of 2^64 leaves needs at most 64
/// hashes for an inclusion proof and 2 × 64 for a consistency proof.
pub const MAX_PROOF_LEN: usize = 128;

/// `ProofError` means the proof does not prove the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid proof")]
pub struct ProofError;

/// `verify_inclusion` checks that `proof` proves that the leaf with hash
/// `leaf` is at `index` in the tree of `size` leaves with root `root`
/// (RFC 9162 §2.1.3.2).
///
/// # Errors
///
/// [`ProofError`] if it does not, including when `index >= size`.
pub fn verify_inclusion(
    proof: &[Hash],
    size: u64,
    root: &Hash,
    index: u64,
    leaf: &Hash,
) -> Result<(), ProofError> {
    if index >= size || proof.len() > MAX_PROOF_LEN {
        return Err(ProofError);
    }
    tlog_tiles::check_record(&proof.to_vec(), size, *root, index, *leaf).map_err(|_| ProofError)
}

/// `verify_consistency` checks that `proof` proves that the tree of
/// `new_size` leaves with root `new_root` extends the tree of `old_size`
/// leaves with root `old_root` (RFC 9162 §2.1.4.2).
///
/// Equal sizes need an empty proof and equal roots.
///
/// # Errors
///
/// [`ProofError`] if it does not, including when `old_size` is 0 or greater
/// than `new_size`.
pub fn verify_consistency(
    proof: &[Hash],
    old_size: u64,
    old_root: &Hash,
    new_size: u64,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old_size == 0 || old_size > new_size || proof.len() > MAX_PROOF_LEN {
        return Err(ProofError);
    }
    tlog_tiles::check_tree(&proof.to_vec(), new_size, *new_root, old_size, *old_root)
        .map_err(|_| ProofError)
}
