//! A bounded cache of the tree's upper hashes.
//!
//! An inclusion proof for leaf `n` reads one stored hash per level of the
//! tree. The low levels' hashes lie next to the leaf, in the same few
//! storage blocks, and differ from proof to proof. The upper levels' are
//! few and shared: every proof in one half of the tree needs the same
//! level-23 hash. Tile-based logs keep those as hot upper tiles; this
//! keeps them as hashes, so a proof at 10 million entries reads 8 hashes
//! from storage instead of 24.
//!
//! Stored hashes never change once written (the tree is append-only), so
//! the cache needs no invalidation: an index is cached only after the
//! source returned it, and an index that has no hash yet is never cached.

use quick_cache::sync::Cache;
use tlog_tiles::Hash;

use crate::tree::HashSource;

/// `CACHED_FROM_LEVEL` is the lowest tree level whose hashes are cached:
/// a tile's height, so the cache holds what the upper tiles would. Below
/// it, one hash in 2^8 leaves' worth is shared by few proofs.
pub const CACHED_FROM_LEVEL: u8 = crate::TILE_HEIGHT;

/// `HashCache` holds up to a fixed number of upper-level stored hashes,
/// evicting the least useful (S3-FIFO, from `quick_cache`). Shared by
/// every reader of one log.
pub struct HashCache {
    hashes: Cache<u64, Hash>,
}

impl HashCache {
    /// `new` makes a cache of at most `capacity` hashes, about 64 bytes
    /// each with the map's own overhead.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            hashes: Cache::new(capacity.max(1)),
        }
    }

    /// `len` is how many hashes are cached.
    #[must_use]
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// `is_empty` is true while nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// `over` is `source` read through this cache.
    pub fn over<S: HashSource>(&self, source: S) -> Cached<'_, S> {
        Cached {
            cache: self,
            source,
        }
    }
}

impl std::fmt::Debug for HashCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashCache")
            .field("len", &self.hashes.len())
            .field("capacity", &self.hashes.capacity())
            .finish()
    }
}

fn cacheable(index: u64) -> bool {
    tlog_tiles::split_stored_hash_index(index).0 >= CACHED_FROM_LEVEL
}

/// `Cached` is a [`HashSource`] that answers upper-level hashes from a
/// [`HashCache`] and reads the rest, in one batch, from its source.
pub struct Cached<'a, S> {
    cache: &'a HashCache,
    source: S,
}

impl<S: HashSource> HashSource for Cached<'_, S> {
    type Error = S::Error;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, S::Error> {
        let mut out: Vec<Option<Hash>> = Vec::with_capacity(indexes.len());
        let mut missing = Vec::new();
        for &i in indexes {
            let hit = if cacheable(i) {
                self.cache.hashes.get(&i)
            } else {
                None
            };
            if hit.is_none() {
                missing.push(i);
            }
            out.push(hit);
        }
        if missing.is_empty() {
            return Ok(out.into_iter().flatten().collect());
        }
        let read = self.source.read_hashes(&missing)?;
        if read.len() != missing.len() {
            // A broken source. Which hash is which is unknown, so none is
            // used or cached; the empty answer fails the caller's
            // contract check, whatever the lengths.
            return Ok(Vec::new());
        }
        let mut read = missing.iter().zip(read);
        Ok(out
            .into_iter()
            .filter_map(|slot| match slot {
                Some(h) => Some(h),
                None => read.next().map(|(&i, h)| {
                    if cacheable(i) {
                        self.cache.hashes.insert(i, h);
                    }
                    h
                }),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::{append_leaves, leaf_hash, prove_inclusion, tree_root, MemoryHashes};

    /// Counts what reaches the source.
    struct Counting<'a> {
        inner: &'a MemoryHashes,
        asked: RefCell<Vec<u64>>,
    }

    impl HashSource for Counting<'_> {
        type Error = <MemoryHashes as HashSource>::Error;
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error> {
            self.asked.borrow_mut().extend_from_slice(indexes);
            self.inner.read_hashes(indexes)
        }
    }

    fn tree(n: u64) -> MemoryHashes {
        let mut store = MemoryHashes::default();
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let new = append_leaves(0, &leaves, &store).unwrap();
        store.insert_all(new);
        store
    }

    #[test]
    fn proofs_through_the_cache_equal_proofs_without_it() {
        let n = 70_000;
        let store = tree(n);
        let cache = HashCache::new(1_000);
        for size in [1, 2, 255, 256, 257, 65_536, 65_537, n] {
            assert_eq!(
                tree_root(size, &cache.over(&store)).unwrap(),
                tree_root(size, &store).unwrap(),
                "root of {size}"
            );
            for leaf in [0, size / 3, size / 2, size - 1] {
                assert_eq!(
                    prove_inclusion(size, leaf, &cache.over(&store)).unwrap(),
                    prove_inclusion(size, leaf, &store).unwrap(),
                    "proof of {leaf} in {size}"
                );
            }
        }
        assert!(cache.len() <= 1_000, "bounded: {}", cache.len());
    }

    #[test]
    fn a_second_proof_reads_only_the_low_levels() {
        let store = tree(70_000);
        let cache = HashCache::new(1_000);
        let counting = Counting {
            inner: &store,
            asked: RefCell::new(Vec::new()),
        };
        prove_inclusion(70_000, 12_345, &cache.over(&counting)).unwrap();
        let first = counting.asked.take();
        assert!(first.iter().any(|&i| cacheable(i)), "{first:?}");
        prove_inclusion(70_000, 12_345, &cache.over(&counting)).unwrap();
        let second = counting.asked.take();
        assert!(!second.is_empty());
        assert!(second.iter().all(|&i| !cacheable(i)), "{second:?}");
        assert_eq!(
            second.len(),
            first.iter().filter(|&&i| !cacheable(i)).count()
        );
    }

    /// Answers `.1` hashes too many.
    struct TooMany<'a>(&'a MemoryHashes, usize);

    impl HashSource for TooMany<'_> {
        type Error = <MemoryHashes as HashSource>::Error;
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error> {
            let mut v = self.0.read_hashes(indexes)?;
            v.extend(std::iter::repeat_n(Hash([7; 32]), self.1));
            Ok(v)
        }
    }

    #[test]
    fn a_source_that_breaks_its_contract_is_caught_even_with_hits() {
        let store = tree(70_000);
        let cache = HashCache::new(1_000);
        // Warm the upper levels, so the next read of the same proof has
        // `upper` hits: as many extra hashes make up the full count.
        prove_inclusion(70_000, 12_345, &cache.over(&store)).unwrap();
        let upper = cache.len();
        assert!(upper > 0);
        let broken = TooMany(&store, upper);
        assert!(prove_inclusion(70_000, 12_345, &cache.over(broken)).is_err());
        assert_eq!(cache.len(), upper, "nothing from a broken source is cached");
    }

    #[test]
    fn a_missing_hash_is_an_error_and_is_not_cached() {
        let store = tree(300);
        let cache = HashCache::new(1_000);
        assert!(prove_inclusion(70_000, 69_999, &cache.over(&store)).is_err());
        let upper_before = cache.len();
        assert!(prove_inclusion(70_000, 69_999, &cache.over(&store)).is_err());
        assert_eq!(cache.len(), upper_before);
        assert!(prove_inclusion(300, 299, &cache.over(&store)).is_ok());
    }
}
