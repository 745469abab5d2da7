//! `custody-log` is the pure core of the Custody Ledger log: RFC 6962/9162
//! tree math, C2SP checkpoints and their witness cosignatures, C2SP
//! tlog-tiles paths and contents, and proof verification.
//!
//! It does no I/O. Stored hashes come in through [`HashSource`], a one-method
//! trait whose contract is "return exactly as many hashes as asked, in order,
//! or an error". Every operation here follows the same steps: work out the
//! indexes it needs, read them in one batch, compute, and check that nothing
//! is left over. The tree math itself is `tlog_tiles`; this crate adds the
//! guard rails (no panics on hostile input, one opaque proof error) and the
//! Custody Ledger conventions.
//!
//! ```
//! use custody_log::{leaf_hash, MemoryHashes, append_leaves, tree_root,
//!     prove_inclusion, verify_inclusion};
//!
//! let mut store = MemoryHashes::default();
//! let leaves: Vec<Vec<u8>> = (0u8..5).map(|i| vec![i; 3]).collect();
//! let hashes: Vec<_> = leaves.iter().map(|l| leaf_hash(l)).collect();
//! let new = append_leaves(0, &hashes, &store).unwrap();
//! store.insert_all(new);
//! let root = tree_root(5, &store).unwrap();
//! let proof = prove_inclusion(5, 3, &store).unwrap();
//! assert!(verify_inclusion(&proof, 5, &root, 3, &hashes[3]).is_ok());
//! assert!(verify_inclusion(&proof, 5, &root, 2, &hashes[3]).is_err());
//! ```

mod cache;
mod checkpoint;
mod cosignature;
mod proof;
mod tile;
mod tree;

pub use cache::{Cached, HashCache, CACHED_FROM_LEVEL};
pub use checkpoint::{CheckpointError, LogSigner, LogVerifier, VerifiedCheckpoint};
pub use cosignature::{
    add_cosignatures, note_text, verify_witnessed, CosignatureError, CosignatureSigner,
    CosignatureVerifier, Cosigned, WitnessPolicyError, Witnessed, COSIGNATURE_ALG,
    MAX_COSIGNATURE_TIME,
};
pub use proof::{verify_consistency, verify_inclusion, ProofError, MAX_PROOF_LEN};
pub use tile::{
    decode_entry_bundle, encode_entry_bundle, manifest_path, proven_leaf_hashes, tiles_grown,
    EntryTooLarge, ProvenError, TileId, TileKind, TilePathError, TILE_HEIGHT, TILE_WIDTH,
};
pub use tlog_tiles::{Hash, HASH_SIZE};
pub use tree::{
    append_leaves, hash_tile, leaf_hash, prove_consistency, prove_inclusion, stored_hash_index,
    tree_root, HashSource, MemoryHashes, TreeError,
};
