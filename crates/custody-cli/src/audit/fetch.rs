//! Reading the C2SP tile API: the checkpoint, entry bundles, and hash
//! tiles for `tlog_tiles`' `TileHashReader`, which authenticates every
//! hash tile against the signed root before any hash is used.

use std::cell::RefCell;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use std::ops::Range;

use custody_log::{leaf_hash, Hash, TileId, TileKind, TILE_WIDTH};
use tlog_tiles::{Tile, TileReader};

/// `TileApi` is an HTTP client for one log's tile API.
#[derive(Clone)]
pub struct TileApi {
    /// Base URL, without a trailing slash.
    base: String,
    /// The HTTP client (connections are reused).
    client: reqwest::blocking::Client,
}

impl TileApi {
    /// `new` is a client for the tile API at `url`.
    ///
    /// # Errors
    ///
    /// If the HTTP client cannot be built.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            client: crate::net::http_client(
                reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)),
            )?,
        })
    }

    /// `get` fetches `path` (relative to the base URL).
    ///
    /// # Errors
    ///
    /// On a transport error or a status other than 200.
    pub fn get(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}/{path}", self.base);
        let body = self
            .client
            .get(&url)
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.bytes())
            .with_context(|| format!("fetch {url}"))?;
        Ok(body.to_vec())
    }

    /// `manifest` fetches the members of manifest `root` from beside the
    /// tiles ([`custody_log::manifest_path`]; a mirror in object storage
    /// keeps them there), or `None` if the tile API has no such file.
    ///
    /// # Errors
    ///
    /// On a transport error or a status other than 200 or 404.
    pub fn manifest(&self, root: &[u8; 32]) -> anyhow::Result<Option<Vec<u8>>> {
        let url = format!("{}/{}", self.base, custody_log::manifest_path(root));
        let r = self
            .client
            .get(&url)
            .send()
            .with_context(|| format!("fetch {url}"))?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = r
            .error_for_status()
            .and_then(|r| r.bytes())
            .with_context(|| format!("fetch {url}"))?;
        Ok(Some(body.to_vec()))
    }

    /// `checkpoint` fetches the latest checkpoint note.
    ///
    /// # Errors
    ///
    /// As [`TileApi::get`].
    pub fn checkpoint(&self) -> anyhow::Result<Vec<u8>> {
        self.get("checkpoint")
    }

    /// `entries` fetches entry bundle `index` as it stands in a tree of
    /// `tree_size` entries, splits it and hashes its leaves. A bundle that
    /// does not split into exactly its width of entries is
    /// [`Bundle::Malformed`]; a failed fetch is [`Bundle::Failed`].
    pub fn entries(&self, index: u64, tree_size: u64) -> Bundle {
        let Some(id) = TileId::in_tree(TileKind::Entries, index, tree_size) else {
            return Bundle::Failed(anyhow!(
                "bug: entry bundle {index} is not in a tree of size {tree_size}"
            ));
        };
        let path = id.path();
        match self.get(&path) {
            Err(e) => Bundle::Failed(e),
            Ok(body) => match split_bundle(&body) {
                Some(spans) if spans.len() == id.width as usize => {
                    let leaves = spans.iter().map(|r| leaf_hash(&body[r.clone()])).collect();
                    Bundle::Entries(Entries {
                        index,
                        body,
                        spans,
                        leaves,
                    })
                }
                _ => Bundle::Malformed { path },
            },
        }
    }

    /// `prefetch` fetches (and hashes) entry bundles `first..=last` of a
    /// tree of `tree_size` entries on a thread of its own, in order, a few
    /// ahead of the reader.
    pub fn prefetch(&self, first: u64, last: u64, tree_size: u64) -> mpsc::Receiver<Bundle> {
        let (tx, rx) = mpsc::sync_channel(16);
        let api = self.clone();
        std::thread::spawn(move || {
            for k in first..=last {
                let b = api.entries(k, tree_size);
                let failed = matches!(b, Bundle::Failed(_));
                if tx.send(b).is_err() || failed {
                    return;
                }
            }
        });
        rx
    }
}

/// `split_bundle` finds the entries of a C2SP entry bundle (each prefixed
/// by its length as a big-endian uint16), without copying them; `None` if
/// the bundle is truncated.
fn split_bundle(mut data: &[u8]) -> Option<Vec<Range<usize>>> {
    let mut out = Vec::with_capacity(TILE_WIDTH as usize);
    let mut at = 0;
    while !data.is_empty() {
        let (len, rest) = data.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return None;
        }
        out.push(at + 2..at + 2 + len);
        at += 2 + len;
        data = &rest[len..];
    }
    Some(out)
}

/// `Entries` is one entry bundle: its bytes, where each entry is in them,
/// and each entry's leaf hash.
pub struct Entries {
    /// The bundle's index N: its first entry is `N * 256`.
    pub index: u64,
    /// The bundle as served.
    body: Vec<u8>,
    /// Where each entry is in `body`.
    spans: Vec<Range<usize>>,
    /// `SHA-256(0x00 ‖ entry)` of each entry.
    pub leaves: Vec<Hash>,
}

impl Entries {
    /// `entry` is the `j`-th entry's bytes.
    pub fn entry(&self, j: usize) -> &[u8] {
        self.spans.get(j).map_or(&[], |r| &self.body[r.clone()])
    }
}

/// `Bundle` is one fetched entry bundle.
pub enum Bundle {
    /// The bundle's entries.
    Entries(Entries),
    /// The server served something that is not an entry bundle of the
    /// expected width.
    Malformed {
        /// Its C2SP path.
        path: String,
    },
    /// The fetch failed.
    Failed(anyhow::Error),
}

/// `first_entry` is the index of the first entry of bundle `index`.
pub fn first_entry(index: u64) -> u64 {
    index * u64::from(TILE_WIDTH)
}

/// `HashTiles` fetches hash tiles for `TileHashReader` and remembers why a
/// fetch failed, so a transport failure is not mistaken for a bad tile.
pub struct HashTiles<'a> {
    /// The tile API.
    pub api: &'a TileApi,
    /// The first fetch error, if any.
    pub error: RefCell<Option<anyhow::Error>>,
}

impl<'a> HashTiles<'a> {
    /// `new` reads hash tiles from `api`.
    pub fn new(api: &'a TileApi) -> Self {
        Self {
            api,
            error: RefCell::new(None),
        }
    }

    /// `take_error` is the fetch error that made a read fail, if one did.
    pub fn take_error(&self) -> Option<anyhow::Error> {
        self.error.borrow_mut().take()
    }
}

impl TileReader for HashTiles<'_> {
    fn height(&self) -> u8 {
        custody_log::TILE_HEIGHT
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        let mut out = Vec::with_capacity(tiles.len());
        for t in tiles {
            let id = TileId {
                kind: TileKind::Hash { level: t.level() },
                index: t.level_index(),
                width: t.width(),
            };
            match self.api.get(&id.path()) {
                Ok(b) => out.push(b),
                Err(e) => {
                    *self.error.borrow_mut() = Some(e);
                    return Err(tlog_tiles::Error::InvalidTile);
                }
            }
        }
        Ok(out)
    }

    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}
