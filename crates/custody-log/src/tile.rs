//! C2SP `tlog-tiles` paths and entry bundles.
//!
//! Paths follow C2SP, not the older Go sumdb form that `tlog_tiles`
//! prints: no height element, and data tiles are named `entries`
//! (`tile/0/x001/234`, `tile/entries/x001/234.p/17`).

use tlog_tiles::{stored_hash_index, Hash};

/// `TILE_HEIGHT` is the C2SP tile height: a tile spans 8 tree levels.
pub const TILE_HEIGHT: u8 = 8;
/// `TILE_WIDTH` is the number of hashes (or entries) in a full tile.
pub const TILE_WIDTH: u32 = 1 << TILE_HEIGHT;

/// `TileKind` says what a tile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileKind {
    /// Hashes at tree level `8 × level`.
    Hash {
        /// The tile level L.
        level: u8,
    },
    /// Log entries, as an entry bundle.
    Entries,
}

/// `TileId` names one tile: its kind, its index N within its level, and its
/// width W (256 for a full tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileId {
    /// Hash or entries tile.
    pub kind: TileKind,
    /// N: the tile's index within its level.
    pub index: u64,
    /// W: 1..=256; below 256 the tile is partial.
    pub width: u32,
}

/// `TilePathError` is a path that is not the C2SP tile path of any tile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TilePathError {
    /// Not of the form of a tile path at all.
    #[error("malformed tile path {0:?}: want tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")]
    Malformed(String),
    /// Of the form, but not the one path C2SP gives the tile it names: its
    /// index has leading groups of zeroes (`x000/x000/000` for `000`).
    #[error("tile path {path:?} is not canonical: that tile's path is {canonical}")]
    NonCanonical {
        /// The path as given.
        path: String,
        /// The tile's one C2SP path.
        canonical: String,
    },
}

impl TileId {
    /// `is_full` is whether the tile has all 256 members (and so never
    /// changes).
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// `parse` reads a path such as `tile/0/x001/234.p/5`, with or without
    /// the leading `tile/`. Each tile has one path, the one [`TileId::path`]
    /// writes: the index in groups of three digits, all but the last
    /// prefixed with `x`, and no group of leading zeroes (C2SP tlog-tiles,
    /// as Go's `sumdb/tlog` parses it).
    ///
    /// # Errors
    ///
    /// [`TilePathError::Malformed`] if the path is not of the form of a
    /// C2SP tile path, [`TilePathError::NonCanonical`] if it is but names
    /// its tile another way than [`TileId::path`].
    pub fn parse(path: &str) -> Result<Self, TilePathError> {
        let bad = || TilePathError::Malformed(path.to_owned());
        let unprefixed = path.strip_prefix("tile/").unwrap_or(path);
        let (kind, rest) = unprefixed.split_once('/').ok_or_else(bad)?;
        let kind = if kind == "entries" {
            TileKind::Entries
        } else {
            if kind.is_empty() || kind.len() > 2 || !kind.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let level: u8 = kind.parse().map_err(|_| bad())?;
            if (kind.len() > 1 && kind.starts_with('0')) || level > 7 {
                return Err(bad());
            }
            TileKind::Hash { level }
        };
        let (n_part, width) = match rest.split_once(".p/") {
            Some((n, w)) => {
                if w.is_empty()
                    || w.len() > 3
                    || !w.bytes().all(|b| b.is_ascii_digit())
                    || w.starts_with('0')
                {
                    return Err(bad());
                }
                let w: u32 = w.parse().map_err(|_| bad())?;
                if w == 0 || w >= TILE_WIDTH {
                    return Err(bad());
                }
                (n, w)
            }
            None => (rest, TILE_WIDTH),
        };
        let elems: Vec<&str> = n_part.split('/').collect();
        let mut index: u64 = 0;
        for (i, e) in elems.iter().enumerate() {
            let last = i + 1 == elems.len();
            let digits = if last {
                *e
            } else {
                e.strip_prefix('x').ok_or_else(bad)?
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let d: u64 = digits.parse().map_err(|_| bad())?;
            index = index
                .checked_mul(1000)
                .and_then(|v| v.checked_add(d))
                .ok_or_else(bad)?;
        }
        let id = Self { kind, index, width };
        let canonical = id.path();
        if canonical.strip_prefix("tile/") != Some(unprefixed) {
            return Err(TilePathError::NonCanonical {
                path: path.to_owned(),
                canonical,
            });
        }
        Ok(id)
    }

    /// `path` is the C2SP path of the tile, e.g. `tile/0/x001/234.p/5`.
    pub fn path(&self) -> String {
        let mut n = self.index;
        let mut s = format!("{:03}", n % 1000);
        while n >= 1000 {
            n /= 1000;
            s = format!("x{:03}/{s}", n % 1000);
        }
        let kind = match self.kind {
            TileKind::Hash { level } => level.to_string(),
            TileKind::Entries => "entries".to_owned(),
        };
        if self.is_full() {
            format!("tile/{kind}/{s}")
        } else {
            format!("tile/{kind}/{s}.p/{}", self.width)
        }
    }

    /// `right_edge` is the partial or full tile at `kind`'s level with index
    /// `index` as it stands in a tree of `tree_size` leaves, or `None` if
    /// the tree has no member of that tile. Per C2SP, at level L a tree of
    /// size N has a right-edge tile of width ⌊N / 256^L⌋ mod 256.
    pub fn in_tree(kind: TileKind, index: u64, tree_size: u64) -> Option<Self> {
        let level = match kind {
            TileKind::Hash { level } => level,
            TileKind::Entries => 0,
        };
        let shift = u32::from(level) * u32::from(TILE_HEIGHT);
        let at_level = if shift >= 64 { 0 } else { tree_size >> shift };
        let first = index.checked_mul(u64::from(TILE_WIDTH))?;
        if at_level <= first {
            return None;
        }
        let width = (at_level - first).min(u64::from(TILE_WIDTH));
        Some(Self {
            kind,
            index,
            width: u32::try_from(width).ok()?,
        })
    }
}

/// `tiles_grown` are the tiles of a tree of `to` leaves that a tree of
/// `from` leaves does not hold as they are: every entry bundle and hash
/// tile that is new or wider, each at its width in `to`, entry bundles
/// first, then hash tiles level by level. A copy of the tiles of `from`
/// becomes one of `to` by writing these (full tiles never change, so the
/// full tiles of `from` are not among them). Empty if `to <= from`.
pub fn tiles_grown(from: u64, to: u64) -> Vec<TileId> {
    let mut out = Vec::new();
    if to <= from {
        return out;
    }
    let width = u64::from(TILE_WIDTH);
    let mut kinds = vec![TileKind::Entries];
    let mut level: u8 = 0;
    while u32::from(level) * u32::from(TILE_HEIGHT) < 64
        && to >> (u32::from(level) * u32::from(TILE_HEIGHT)) > 0
    {
        kinds.push(TileKind::Hash { level });
        level += 1;
    }
    for kind in kinds {
        let shift = match kind {
            TileKind::Hash { level } => u32::from(level) * u32::from(TILE_HEIGHT),
            TileKind::Entries => 0,
        };
        // The first tile `from` does not hold whole at this level.
        let first = (from >> shift) / width;
        let mut index = first;
        while let Some(t) = TileId::in_tree(kind, index, to) {
            let had = TileId::in_tree(kind, index, from).map_or(0, |t| t.width);
            if t.width > had {
                out.push(t);
            }
            index += 1;
        }
    }
    out
}

/// `manifest_path` is where a log laid out as tiles (the object-storage
/// mirror) keeps the manifest whose root is `root`, beside its tiles:
/// `manifest/<64 lowercase hex digits>`, holding the members, 32 bytes
/// each, in order. Not part of C2SP tlog-tiles: this log's own.
pub fn manifest_path(root: &[u8; 32]) -> String {
    let mut s = String::with_capacity(9 + 64);
    s.push_str("manifest/");
    for b in root {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// `ProvenError` is why [`proven_leaf_hashes`] could not prove leaves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvenError {
    /// The leaves asked for are not in the tree.
    #[error("leaves {0}..{1} are not in the tree of size {2}")]
    NotInTree(u64, u64, u64),
    /// A tile could not be fetched.
    #[error("fetch tiles: {0}")]
    Fetch(String),
    /// The fetched tiles are not the tree of the signed root.
    #[error("the tiles served are not the signed tree: {0}")]
    Tiles(String),
}

/// `proven_leaf_hashes` are the leaf hashes of entries `start..end` of
/// the tree of `size` leaves whose root is `root`, each proven by an
/// inclusion proof checked against `root`. The proofs are built from hash
/// tiles that `fetch` gets (by [`TileId`], at their width in that tree;
/// all of them, in order, or an error), each fetched once per call and
/// trusted for nothing: a tile that lies makes a proof fail. A follower
/// of a tile API checks each bundle of entries against these, so it
/// stores nothing unproven and holds one bundle's worth at a time.
///
/// (`tlog_tiles::TileHashReader`, the port of Go's, authenticates tiles
/// against the root too, but as in Go, some tiles it returns hashes from
/// are never compared with their parents: the loop that checks them
/// starts at the count of subtree indexes, not of the tiles planned for
/// them. A test below shows a tampered tile that it would pass.)
///
/// # Errors
///
/// [`ProvenError`]: leaves not in the tree, a fetch failed, or a proof
/// did not verify.
pub fn proven_leaf_hashes<F, E>(
    size: u64,
    root: &Hash,
    start: u64,
    end: u64,
    fetch: F,
) -> Result<Vec<Hash>, ProvenError>
where
    F: Fn(&[TileId]) -> Result<Vec<Vec<u8>>, E>,
    E: std::fmt::Display,
{
    if start >= end || end > size {
        return Err(ProvenError::NotInTree(start, end, size));
    }
    let tiles = FetchedTiles {
        size,
        fetch,
        cache: std::cell::RefCell::new(std::collections::HashMap::new()),
        failed: std::cell::RefCell::new(None),
    };
    let mut out = Vec::new();
    for i in start..end {
        let fail = |e: crate::TreeError| match tiles.failed.borrow().clone() {
            Some(m) => ProvenError::Fetch(m),
            None => ProvenError::Tiles(e.to_string()),
        };
        let leaf = crate::HashSource::read_hashes(&tiles, &[stored_hash_index(0, i)])
            .map_err(|e| fail(crate::TreeError::Source(Box::new(e))))?
            .pop()
            .ok_or_else(|| ProvenError::Tiles(format!("no hash of leaf {i}")))?;
        let proof = crate::prove_inclusion(size, i, &tiles).map_err(fail)?;
        crate::verify_inclusion(&proof, size, root, i, &leaf).map_err(|_| {
            ProvenError::Tiles(format!("leaf {i} is not in the signed tree of {size}"))
        })?;
        out.push(leaf);
    }
    Ok(out)
}

/// Hash tiles of a tree of `size`, fetched as needed and kept for the
/// call: a [`crate::HashSource`] over a tile API.
struct FetchedTiles<F> {
    size: u64,
    fetch: F,
    cache: std::cell::RefCell<std::collections::HashMap<(u8, u64), Vec<u8>>>,
    failed: std::cell::RefCell<Option<String>>,
}

/// `TileReadError` is a hash a [`FetchedTiles`] could not give.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TileReadError(String);

impl<F, E> crate::HashSource for FetchedTiles<F>
where
    F: Fn(&[TileId]) -> Result<Vec<Vec<u8>>, E>,
    E: std::fmt::Display,
{
    type Error = TileReadError;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TileReadError> {
        let mut out = Vec::with_capacity(indexes.len());
        for &x in indexes {
            let t = tlog_tiles::Tile::from_index(TILE_HEIGHT, x);
            let id = TileId::in_tree(
                TileKind::Hash { level: t.level() },
                t.level_index(),
                self.size,
            )
            .ok_or_else(|| TileReadError(format!("hash {x} is not in the tree")))?;
            let key = (t.level(), t.level_index());
            if !self.cache.borrow().contains_key(&key) {
                let data = (self.fetch)(&[id])
                    .map_err(|e| {
                        let m = e.to_string();
                        *self.failed.borrow_mut() = Some(m.clone());
                        TileReadError(m)
                    })?
                    .pop()
                    .ok_or_else(|| TileReadError(format!("{} was not fetched", id.path())))?;
                if data.len() != id.width as usize * tlog_tiles::HASH_SIZE {
                    return Err(TileReadError(format!(
                        "{} is {} bytes, not {} hashes",
                        id.path(),
                        data.len(),
                        id.width
                    )));
                }
                self.cache.borrow_mut().insert(key, data);
            }
            let cache = self.cache.borrow();
            let data = cache
                .get(&key)
                .ok_or_else(|| TileReadError(format!("{} was not kept", id.path())))?;
            let tile =
                tlog_tiles::Tile::new(TILE_HEIGHT, t.level(), t.level_index(), id.width, false);
            out.push(
                tile.hash_at_index(data, x)
                    .map_err(|e| TileReadError(format!("{}: {e}", id.path())))?,
            );
        }
        Ok(out)
    }
}

/// `EntryTooLarge` is an entry that cannot be framed in an entry bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("entry of {0} bytes is over the 65535-byte entry bundle limit")]
pub struct EntryTooLarge(pub usize);

/// `encode_entry_bundle` concatenates entries, each prefixed by its length
/// as a big-endian uint16 (C2SP tlog-tiles "entry bundles").
///
/// # Errors
///
/// [`EntryTooLarge`] if an entry is over 65535 bytes. The write path refuses
/// such entries, so this means the store holds something it never wrote.
pub fn encode_entry_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, EntryTooLarge> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| EntryTooLarge(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// `decode_entry_bundle` splits an entry bundle into its entries.
///
/// Returns `None` if the bundle is truncated.
pub fn decode_entry_bundle(mut data: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (len, rest) = data.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return None;
        }
        out.push(rest[..len].to_vec());
        data = &rest[len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proven_leaf_hashes_are_the_trees_and_tampered_tiles_are_refused() {
        use crate::{append_leaves, hash_tile, leaf_hash, tree_root, MemoryHashes};
        let size = 700u64;
        let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut tree = MemoryHashes::default();
        tree.insert_all(append_leaves(0, &leaves, &tree.clone()).unwrap());
        let root = tree_root(size, &tree).unwrap();
        let serve = |ids: &[TileId]| -> Result<Vec<Vec<u8>>, String> {
            ids.iter()
                .map(|id| match id.kind {
                    TileKind::Hash { level } => {
                        hash_tile(level, id.index, id.width, &tree).map_err(|e| e.to_string())
                    }
                    TileKind::Entries => Err("not a hash tile".into()),
                })
                .collect()
        };
        for (a, b) in [(0, 1), (250, 260), (600, 700), (0, 700)] {
            let got = proven_leaf_hashes(size, &root, a, b, serve).unwrap();
            assert_eq!(got, leaves[a as usize..b as usize], "{a}..{b}");
        }
        // A byte changed in any one tile a proof uses: refused.
        for victim in [(0u8, 0u64), (0, 2), (1, 0)] {
            let tampered = |ids: &[TileId]| -> Result<Vec<Vec<u8>>, String> {
                let mut out = serve(ids)?;
                for (id, t) in ids.iter().zip(out.iter_mut()) {
                    if id.kind == (TileKind::Hash { level: victim.0 }) && id.index == victim.1 {
                        let last = t.len() - 1;
                        t[last] ^= 1;
                        t[0] ^= 1;
                    }
                }
                Ok(out)
            };
            assert!(
                matches!(
                    proven_leaf_hashes(size, &root, 0, 700, tampered),
                    Err(ProvenError::Tiles(_))
                ),
                "{victim:?}"
            );
        }
        // The same tampering in the tile of leaf 0, which leaves 250..260
        // share: refused here; tlog_tiles::TileHashReader returns its
        // hashes (why this function does not use it).
        let leaf0 = |ids: &[TileId]| -> Result<Vec<Vec<u8>>, String> {
            let mut out = serve(ids)?;
            for (id, t) in ids.iter().zip(out.iter_mut()) {
                if id.kind == (TileKind::Hash { level: 0 }) && id.index == 0 {
                    t[0] ^= 1;
                }
            }
            Ok(out)
        };
        assert!(matches!(
            proven_leaf_hashes(size, &root, 250, 260, leaf0),
            Err(ProvenError::Tiles(_))
        ));
        struct Lying<'a, F>(&'a F);
        impl<F: Fn(&[TileId]) -> Result<Vec<Vec<u8>>, String>> tlog_tiles::TileReader for Lying<'_, F> {
            fn height(&self) -> u8 {
                TILE_HEIGHT
            }
            fn read_tiles(
                &self,
                tiles: &[tlog_tiles::Tile],
            ) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
                let ids: Vec<TileId> = tiles
                    .iter()
                    .map(|t| TileId {
                        kind: TileKind::Hash { level: t.level() },
                        index: t.level_index(),
                        width: t.width(),
                    })
                    .collect();
                (self.0)(&ids).map_err(tlog_tiles::Error::InvalidInput)
            }
            fn save_tiles(&self, _: &[tlog_tiles::Tile], _: &[Vec<u8>]) {}
        }
        let lying = Lying(&leaf0);
        let read = tlog_tiles::HashReader::read_hashes(
            &tlog_tiles::TileHashReader::new(size, root, &lying),
            &[stored_hash_index(0, 0)],
        );
        assert!(
            read.is_ok_and(|h| h[0] != leaves[0]),
            "tlog_tiles::TileHashReader now refuses the tampered tile: it can be used"
        );
        // Another root: refused.
        let other = tree_root(size - 1, &tree).unwrap();
        assert!(matches!(
            proven_leaf_hashes(size, &other, 250, 260, serve),
            Err(ProvenError::Tiles(_))
        ));
        let down = |_: &[TileId]| -> Result<Vec<Vec<u8>>, String> { Err("offline".into()) };
        assert_eq!(
            proven_leaf_hashes(size, &root, 1, 2, down),
            Err(ProvenError::Fetch("offline".into()))
        );
        assert!(matches!(
            proven_leaf_hashes(size, &root, 699, 701, serve),
            Err(ProvenError::NotInTree(..))
        ));
    }

    #[test]
    fn tiles_grown_are_exactly_the_tiles_that_differ() {
        // Brute force: every tile of `to` (all indices from 0) that `from`
        // does not hold at the same width.
        let all = |size: u64| {
            let mut v = Vec::new();
            for kind in [
                TileKind::Entries,
                TileKind::Hash { level: 0 },
                TileKind::Hash { level: 1 },
                TileKind::Hash { level: 2 },
            ] {
                let mut i = 0;
                while let Some(t) = TileId::in_tree(kind, i, size) {
                    v.push(t);
                    i += 1;
                }
            }
            v
        };
        for (from, to) in [
            (0, 1),
            (0, 256),
            (1, 255),
            (255, 256),
            (256, 257),
            (256, 256),
            (1000, 70_000),
            (65_535, 65_536),
            (65_536, 65_537),
        ] {
            let old = all(from);
            let want: Vec<TileId> = all(to).into_iter().filter(|t| !old.contains(t)).collect();
            assert_eq!(tiles_grown(from, to), want, "{from} -> {to}");
        }
        assert!(tiles_grown(300, 200).is_empty());
    }

    #[test]
    fn c2sp_paths_round_trip() {
        for (path, kind, index, width) in [
            ("tile/0/000", TileKind::Hash { level: 0 }, 0, 256),
            ("tile/0/x001/234", TileKind::Hash { level: 0 }, 1234, 256),
            (
                "tile/3/x001/x234/067.p/8",
                TileKind::Hash { level: 3 },
                1_234_067,
                8,
            ),
            ("tile/entries/x001/234.p/1", TileKind::Entries, 1234, 1),
            ("tile/entries/999", TileKind::Entries, 999, 256),
        ] {
            let t = TileId::parse(path).unwrap();
            assert_eq!(t, TileId { kind, index, width }, "{path}");
            assert_eq!(t.path(), path);
        }
    }

    /// Every tile has one path: a second spelling of its index, with
    /// groups of leading zeroes, is refused and names the one path.
    #[test]
    fn only_the_canonical_path_is_accepted() {
        for (path, canonical) in [
            ("tile/0/x000/x000/000.p/1", "tile/0/000.p/1"),
            ("tile/0/x000/000", "tile/0/000"),
            ("tile/entries/x000/999", "tile/entries/999"),
            ("tile/3/x000/x001/x234/067.p/8", "tile/3/x001/x234/067.p/8"),
            ("0/x000/001", "tile/0/001"),
        ] {
            assert_eq!(
                TileId::parse(path),
                Err(TilePathError::NonCanonical {
                    path: path.to_owned(),
                    canonical: canonical.to_owned()
                }),
                "{path}"
            );
            assert_eq!(
                TileId::parse(canonical).map(|t| t.path()),
                Ok(canonical.to_owned())
            );
        }
        // Zero groups that are not leading are part of the index.
        let t = TileId::parse("tile/0/x001/x000/000").unwrap();
        assert_eq!(t.index, 1_000_000);
    }

    #[test]
    fn malformed_paths_are_refused() {
        for p in [
            "tile/8/0/000",
            "tile/0/1234",
            "tile/0/x1/234",
            "tile/0/001/234",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/007",
            "tile/data/000",
            "tile/01/000",
            "tile/8/000",
            "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
            "tile/0/",
            "tile/0/000.p/",
        ] {
            assert!(
                matches!(TileId::parse(p), Err(TilePathError::Malformed(_))),
                "{p} accepted"
            );
        }
    }

    #[test]
    fn right_edge_width_follows_tree_size() {
        let k0 = TileKind::Hash { level: 0 };
        let k1 = TileKind::Hash { level: 1 };
        assert_eq!(TileId::in_tree(k0, 0, 0), None);
        assert_eq!(TileId::in_tree(k0, 0, 5).map(|t| t.width), Some(5));
        assert_eq!(TileId::in_tree(k0, 0, 256).map(|t| t.width), Some(256));
        assert_eq!(TileId::in_tree(k0, 1, 256), None);
        assert_eq!(TileId::in_tree(k0, 1, 300).map(|t| t.width), Some(44));
        assert_eq!(TileId::in_tree(k1, 0, 255), None);
        assert_eq!(TileId::in_tree(k1, 0, 70_000).map(|t| t.width), Some(256));
        assert_eq!(TileId::in_tree(k1, 1, 70_000).map(|t| t.width), Some(17));
    }

    #[test]
    fn entry_bundles_round_trip_and_truncation_is_detected() {
        let entries: Vec<Vec<u8>> = vec![vec![], vec![1, 2, 3], vec![9; 300]];
        let b = encode_entry_bundle(entries.iter().map(|e| e.as_slice())).unwrap();
        assert_eq!(
            encode_entry_bundle([vec![0u8; 65_536].as_slice()]),
            Err(EntryTooLarge(65_536))
        );
        assert_eq!(decode_entry_bundle(&b).unwrap(), entries);
        assert!(decode_entry_bundle(&b[..b.len() - 1]).is_none());
        assert!(decode_entry_bundle(&[0]).is_none());
    }
}
