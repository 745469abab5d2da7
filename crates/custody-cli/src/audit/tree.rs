//! The right edge of an RFC 6962 tree, so an auditor can hash a log's
//! leaves as it reads them and continue later from where it stopped.

use custody_log::{Hash, TILE_HEIGHT};
use tlog_tiles::node_hash;

/// `Frontier` is the right edge of a tree: the roots of its maximal
/// complete subtrees, left to right, one per set bit of its size.
///
/// Appending a leaf merges equal-sized subtrees, `SHA-256(0x01 ‖ left ‖
/// right)` (RFC 9162 §2.1.1), so the frontier is all that is needed to go
/// on hashing; the root folds the subtrees from the right (RFC 9162 §2.1.1,
/// MTH of a size that is not a power of two).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frontier {
    /// Leaves hashed so far.
    size: u64,
    /// The subtree roots, largest (leftmost) first.
    nodes: Vec<Hash>,
}

impl Frontier {
    /// `from_parts` rebuilds a saved frontier, or `None` if the number of
    /// nodes does not match the size.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Option<Self> {
        (nodes.len() == size.count_ones() as usize).then_some(Self { size, nodes })
    }

    /// `stored_indexes` is where the frontier of a tree of `size` leaves
    /// is among its stored hashes (`tlog_tiles::stored_hash_index`): one
    /// complete subtree per set bit of `size`, largest first, so the
    /// hashes read from them make the frontier with [`Frontier::from_parts`].
    pub fn stored_indexes(size: u64) -> Vec<u64> {
        let mut idx = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size & (1 << level) != 0 {
                idx.push(tlog_tiles::stored_hash_index(level, start >> level));
                start += 1 << level;
            }
        }
        idx
    }

    /// `size` is the number of leaves hashed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `push` appends the leaf with hash `leaf`. When the leaf completes a
    /// level-0 tile (a subtree of 256 leaves, whose root is a level-1 tile
    /// hash), it returns that subtree's root.
    pub fn push(&mut self, leaf: Hash) -> Option<Hash> {
        let mut h = leaf;
        let mut n = self.size;
        let mut level = 0u8;
        let mut tile = None;
        while n & 1 == 1 {
            // The frontier has one node per set bit, so this never runs dry.
            let Some(left) = self.nodes.pop() else {
                debug_assert!(false, "bug: frontier shorter than its size says");
                break;
            };
            h = node_hash(left, h);
            level += 1;
            if level == TILE_HEIGHT {
                tile = Some(h);
            }
            n >>= 1;
        }
        self.nodes.push(h);
        self.size += 1;
        tile
    }

    /// `root` is the tree's root hash (SHA-256 of the empty string for an
    /// empty tree).
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(last) = it.next() else {
            return tlog_tiles::EMPTY_HASH;
        };
        it.fold(*last, |acc, left| node_hash(*left, acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_log::{append_leaves, leaf_hash, tree_root, MemoryHashes};

    #[test]
    fn frontier_root_matches_the_stored_tree_at_every_size() {
        let mut store = MemoryHashes::default();
        let mut f = Frontier::default();
        assert_eq!(f.root(), tlog_tiles::EMPTY_HASH);
        let mut tiles = Vec::new();
        for i in 0..600u64 {
            let h = leaf_hash(&i.to_be_bytes());
            store.insert_all(append_leaves(i, &[h], &store).unwrap());
            if let Some(t) = f.push(h) {
                tiles.push((i, t));
            }
            assert_eq!(
                f.root(),
                tree_root(i + 1, &store).unwrap(),
                "size {}",
                i + 1
            );
            // The frontier read back from the stored hashes, as a
            // resumed audit reads it.
            let stored =
                custody_log::HashSource::read_hashes(&store, &Frontier::stored_indexes(f.size()))
                    .unwrap();
            let again = Frontier::from_parts(f.size(), stored).unwrap();
            assert_eq!(again, f);
        }
        // Two tiles of 256 completed, at leaves 255 and 511, and their
        // roots are the level-8 stored hashes.
        let want: Vec<(u64, Hash)> = [255u64, 511]
            .iter()
            .enumerate()
            .map(|(k, i)| {
                let idx = tlog_tiles::stored_hash_index(8, k as u64);
                (
                    *i,
                    custody_log::HashSource::read_hashes(&store, &[idx]).unwrap()[0],
                )
            })
            .collect();
        assert_eq!(tiles, want);
        assert!(Frontier::from_parts(3, vec![]).is_none());
    }
}
