//! Arbitrary strings as C2SP tile paths through custody-log's
//! `TileId::parse`, the one parser custodyd's HTTP tile handler
//! (`crates/custodyd/src/http.rs`) calls on `/tile/{*path}`, then the
//! handler's next steps, which are custody-log's too: whether the tile is
//! in a tree of some size (`TileId::in_tree`) and, if so, its contents
//! (`hash_tile`) over a hash source that has every hash.
//!
//! Properties: a parsed tile's path is the input (less any `tile/`) and
//! parses back to the same tile; a non-canonical path names a canonical
//! one that parses; a tile the tree holds is served with `width` hashes.
//!
//! The same bytes are also an entry bundle (`decode_entry_bundle`), which
//! must re-encode to themselves.
#![no_main]

use custody_log::{
    decode_entry_bundle, encode_entry_bundle, hash_tile, Hash, HashSource, TileId, TileKind,
    TilePathError, TILE_WIDTH,
};
use libfuzzer_sys::fuzz_target;

/// `AllHashes` has a hash at every stored-hash index, as the store of a
/// tree holding the tile does.
struct AllHashes;

impl HashSource for AllHashes {
    type Error = std::convert::Infallible;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error> {
        Ok(indexes.iter().map(|i| Hash([*i as u8; 32])).collect())
    }
}

/// The largest tree size tried: 2^62 leaves, far past any real log, and
/// within the range where stored-hash indexes (about twice the leaf
/// count) fit in a u64.
const MAX_TREE: u64 = 1 << 62;

fuzz_target!(|data: &[u8]| {
    if let Some(entries) = decode_entry_bundle(data) {
        let again = encode_entry_bundle(entries.iter().map(|e| e.as_slice()));
        assert_eq!(again.as_deref(), Ok(data));
    }

    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    match TileId::parse(path) {
        Ok(id) => {
            assert!(id.width >= 1 && id.width <= TILE_WIDTH, "{id:?}");
            let canonical = id.path();
            assert_eq!(
                canonical.strip_prefix("tile/"),
                Some(path.strip_prefix("tile/").unwrap_or(path))
            );
            assert_eq!(TileId::parse(&canonical), Ok(id));
            serve(id);
        }
        Err(TilePathError::NonCanonical { canonical, .. }) => {
            let id = TileId::parse(&canonical);
            assert!(id.is_ok(), "{path:?} names {canonical:?}, which is {id:?}");
        }
        Err(TilePathError::Malformed(_)) => {}
    }
});

/// `serve` is what the tile handler does with a parsed tile, for trees of
/// several sizes: those around the tile's own edges, and some fixed ones.
fn serve(id: TileId) {
    let level = match id.kind {
        TileKind::Hash { level } => u32::from(level),
        TileKind::Entries => 0,
    };
    // The first leaf under the tile, and the tree that ends with it.
    let per_entry = 1u64.checked_shl(8 * level).unwrap_or(0);
    let first = id
        .index
        .checked_mul(u64::from(TILE_WIDTH))
        .and_then(|n| n.checked_mul(per_entry));
    let edge = first.and_then(|f| {
        u64::from(id.width)
            .checked_mul(per_entry)
            .and_then(|w| f.checked_add(w))
    });
    let mut sizes = vec![0, 1, 255, 256, 257, 65_536, 1 << 40, MAX_TREE];
    for s in [first, edge].into_iter().flatten() {
        sizes.extend([s.saturating_sub(1), s, s.saturating_add(1)]);
    }
    for size in sizes.into_iter().filter(|s| *s <= MAX_TREE) {
        let available = TileId::in_tree(id.kind, id.index, size)
            .map(|t| t.width)
            .unwrap_or(0);
        assert!(available <= TILE_WIDTH);
        if available < id.width || (id.is_full() && available != TILE_WIDTH) {
            continue;
        }
        match id.kind {
            TileKind::Hash { level } => {
                let tile = hash_tile(level, id.index, id.width, &AllHashes);
                assert_eq!(
                    tile.map(|t| t.len()).ok(),
                    Some(32 * id.width as usize),
                    "{id:?} in a tree of {size}"
                );
            }
            TileKind::Entries => {
                let start = id.index.checked_mul(u64::from(TILE_WIDTH));
                let end = start.and_then(|s| s.checked_add(u64::from(id.width)));
                assert!(end.is_some_and(|e| e <= size), "{id:?} in a tree of {size}");
            }
        }
    }
}
