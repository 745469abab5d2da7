//! Tree math over stored hashes: append, root, and proof generation.
//!
//! Stored hashes use the `tlog_tiles` (Go `sumdb/tlog`) layout: every
//! complete subtree hash at every level gets one dense index,
//! [`stored_hash_index`]`(level, n)`.

use std::cell::RefCell;
use std::collections::BTreeMap;

use tlog_tiles::{Hash, HashReader};

pub use tlog_tiles::stored_hash_index;

/// `HashSource` reads stored hashes by their stored-hash index.
///
/// Contract: `read_hashes` returns exactly `indexes.len()` hashes, the i-th
/// being the hash stored at `indexes[i]`, or an error. It never returns a
/// short or reordered list.
pub trait HashSource {
    /// The error a read can fail with, for example a storage error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Reads the hashes at `indexes`, in order.
    ///
    /// # Errors
    ///
    /// Returns the source's own error when any index cannot be read.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error>;
}

impl<S: HashSource + ?Sized> HashSource for &S {
    type Error = S::Error;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error> {
        (**self).read_hashes(indexes)
    }
}

/// `TreeError` is why a tree computation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// The hash source failed.
    #[error("read stored hashes: {0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
    /// The hash source broke its contract (wrong number of hashes).
    #[error("hash source returned {got} hashes for {want} indexes")]
    ShortRead {
        /// How many were asked for.
        want: usize,
        /// How many came back.
        got: usize,
    },
    /// The arguments do not describe a valid request, e.g. index ≥ size.
    #[error("{0}")]
    InvalidInput(String),
}

/// Adapts a [`HashSource`] to `tlog_tiles::HashReader`, checking the
/// contract and keeping the source's own error for the caller.
struct Checked<'a, S: HashSource> {
    source: &'a S,
    error: RefCell<Option<TreeError>>,
}

impl<'a, S: HashSource> Checked<'a, S> {
    fn new(source: &'a S) -> Self {
        Self {
            source,
            error: RefCell::new(None),
        }
    }

    fn into_error(self, fallback: tlog_tiles::Error) -> TreeError {
        match self.error.into_inner() {
            Some(e) => e,
            None => TreeError::InvalidInput(fallback.to_string()),
        }
    }
}

impl<S: HashSource> HashReader for Checked<'_, S> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        match self.source.read_hashes(indexes) {
            Ok(h) if h.len() == indexes.len() => Ok(h),
            Ok(h) => {
                *self.error.borrow_mut() = Some(TreeError::ShortRead {
                    want: indexes.len(),
                    got: h.len(),
                });
                Err(tlog_tiles::Error::IndexesNotInTree)
            }
            Err(e) => {
                *self.error.borrow_mut() = Some(TreeError::Source(Box::new(e)));
                Err(tlog_tiles::Error::IndexesNotInTree)
            }
        }
    }
}

/// `leaf_hash` is the RFC 6962 leaf hash of an entry: `SHA-256(0x00 ‖ entry)`
/// (RFC 9162 §2.1.1).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    tlog_tiles::record_hash(entry)
}

/// `append_leaves` returns the stored hashes to write when the leaves with
/// hashes `leaf_hashes` are appended to a tree of `size` leaves.
///
/// Hashes computed earlier in the same call are served from the batch, so the
/// source only needs the hashes of the tree before the call. The result is a
/// list of `(stored index, hash)` in increasing index order.
///
/// # Errors
///
/// Returns [`TreeError`] when the source fails.
pub fn append_leaves<S: HashSource>(
    size: u64,
    leaf_hashes: &[Hash],
    source: &S,
) -> Result<Vec<(u64, Hash)>, TreeError> {
    let overlay = Overlay {
        base: source,
        new: RefCell::new(BTreeMap::new()),
    };
    for (i, h) in leaf_hashes.iter().enumerate() {
        let n = size + i as u64;
        let checked = Checked::new(&overlay);
        let hashes = match tlog_tiles::stored_hashes_for_record_hash(n, *h, &checked) {
            Ok(h) => h,
            Err(e) => return Err(checked.into_error(e)),
        };
        let first = stored_hash_index(0, n);
        let mut new = overlay.new.borrow_mut();
        for (k, h) in hashes.into_iter().enumerate() {
            new.insert(first + k as u64, h);
        }
    }
    Ok(overlay.new.into_inner().into_iter().collect())
}

/// Serves hashes written earlier in this batch, and the rest from the base.
struct Overlay<'a, S: HashSource> {
    base: &'a S,
    new: RefCell<BTreeMap<u64, Hash>>,
}

impl<S: HashSource> HashSource for Overlay<'_, S> {
    type Error = S::Error;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, S::Error> {
        let new = self.new.borrow();
        let missing: Vec<u64> = indexes
            .iter()
            .copied()
            .filter(|i| !new.contains_key(i))
            .collect();
        let mut from_base = if missing.is_empty() {
            Vec::new()
        } else {
            self.base.read_hashes(&missing)?
        }
        .into_iter();
        let mut out = Vec::with_capacity(indexes.len());
        for i in indexes {
            match new.get(i) {
                Some(h) => out.push(*h),
                None => match from_base.next() {
                    Some(h) => out.push(h),
                    // A short read from the base: let `Checked` report it.
                    None => return Ok(out),
                },
            }
        }
        Ok(out)
    }
}

/// `tree_root` is the RFC 6962 root hash of the first `size` leaves
/// (`EMPTY_HASH`, SHA-256 of the empty string, for size 0).
///
/// # Errors
///
/// Returns [`TreeError`] when the source fails.
pub fn tree_root<S: HashSource>(size: u64, source: &S) -> Result<Hash, TreeError> {
    let checked = Checked::new(source);
    match tlog_tiles::tree_hash(size, &checked) {
        Ok(h) => Ok(h),
        Err(e) => Err(checked.into_error(e)),
    }
}

/// `prove_inclusion` returns the RFC 9162 §2.1.3 inclusion proof of leaf
/// `index` in the tree of `size` leaves.
///
/// # Errors
///
/// [`TreeError::InvalidInput`] unless `index < size`; otherwise a source
/// error.
pub fn prove_inclusion<S: HashSource>(
    size: u64,
    index: u64,
    source: &S,
) -> Result<Vec<Hash>, TreeError> {
    if index >= size {
        return Err(TreeError::InvalidInput(format!(
            "index {index} is not in a tree of size {size}"
        )));
    }
    let checked = Checked::new(source);
    match tlog_tiles::prove_record(size, index, &checked) {
        Ok(p) => Ok(p),
        Err(e) => Err(checked.into_error(e)),
    }
}

/// `prove_consistency` returns the RFC 9162 §2.1.4 consistency proof that the
/// tree of `new_size` leaves extends the tree of `old_size` leaves.
///
/// # Errors
///
/// [`TreeError::InvalidInput`] unless `1 <= old_size <= new_size`; otherwise
/// a source error.
pub fn prove_consistency<S: HashSource>(
    old_size: u64,
    new_size: u64,
    source: &S,
) -> Result<Vec<Hash>, TreeError> {
    if old_size == 0 || old_size > new_size {
        return Err(TreeError::InvalidInput(format!(
            "no consistency proof from size {old_size} to size {new_size}: need 1 <= old <= new"
        )));
    }
    let checked = Checked::new(source);
    match tlog_tiles::prove_tree(new_size, old_size, &checked) {
        Ok(p) => Ok(p),
        Err(e) => Err(checked.into_error(e)),
    }
}

/// `hash_tile` returns the contents of a C2SP hash tile: the `width`
/// consecutive hashes at tree level `8 * tile_level`, starting at
/// `index * 256`, concatenated.
///
/// # Errors
///
/// Returns [`TreeError`] when the source fails.
pub fn hash_tile<S: HashSource>(
    tile_level: u8,
    index: u64,
    width: u32,
    source: &S,
) -> Result<Vec<u8>, TreeError> {
    let level = tile_level
        .checked_mul(crate::TILE_HEIGHT)
        .ok_or_else(|| TreeError::InvalidInput(format!("tile level {tile_level} too large")))?;
    let first = index
        .checked_mul(u64::from(crate::TILE_WIDTH))
        .ok_or_else(|| TreeError::InvalidInput(format!("tile index {index} too large")))?;
    let indexes: Vec<u64> = (0..u64::from(width))
        .map(|k| stored_hash_index(level, first + k))
        .collect();
    let hashes = source
        .read_hashes(&indexes)
        .map_err(|e| TreeError::Source(Box::new(e)))?;
    if hashes.len() != indexes.len() {
        return Err(TreeError::ShortRead {
            want: indexes.len(),
            got: hashes.len(),
        });
    }
    Ok(hashes.iter().flat_map(|h| h.0).collect())
}

/// `MemoryHashes` is an in-memory [`HashSource`], for tests and small tools.
#[derive(Debug, Default, Clone)]
pub struct MemoryHashes {
    hashes: BTreeMap<u64, Hash>,
}

/// `MissingHash` is the error of a [`MemoryHashes`] read of an absent index.
#[derive(Debug, thiserror::Error)]
#[error("no stored hash at index {0}")]
pub struct MissingHash(pub u64);

impl MemoryHashes {
    /// `insert_all` stores hashes, as returned by [`append_leaves`].
    pub fn insert_all(&mut self, hashes: impl IntoIterator<Item = (u64, Hash)>) {
        self.hashes.extend(hashes);
    }
}

impl HashSource for MemoryHashes {
    type Error = MissingHash;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MissingHash> {
        indexes
            .iter()
            .map(|i| self.hashes.get(i).copied().ok_or(MissingHash(*i)))
            .collect()
    }
}
