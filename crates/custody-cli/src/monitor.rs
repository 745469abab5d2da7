//! `custody monitor`: follow a log's checkpoints over the C2SP tile API and
//! prove each one extends the last one seen.

use std::path::Path;

use anyhow::{anyhow, Context as _};
use custody_log::{verify_consistency, LogVerifier, TileId, TileKind, VerifiedCheckpoint};
use tlog_tiles::{Tile, TileHashReader, TileReader};

/// `Alarm` is a proven misbehaviour of the log: a split view or a
/// rollback. It is reported loudly and exits with its own status.
#[derive(Debug)]
pub struct Alarm(pub String);

impl std::fmt::Display for Alarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ALERT: {}", self.0)
    }
}

impl std::error::Error for Alarm {}

/// Fetches C2SP hash tiles over HTTP for `TileHashReader`, which checks them
/// against the signed root before any hash is used.
struct HttpTiles {
    base: String,
    client: reqwest::blocking::Client,
    error: std::cell::RefCell<Option<String>>,
}

impl TileReader for HttpTiles {
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
            let url = format!("{}/{}", self.base, id.path());
            let fetched = self
                .client
                .get(&url)
                .send()
                .and_then(|r| r.error_for_status())
                .and_then(|r| r.bytes());
            match fetched {
                Ok(b) => out.push(b.to_vec()),
                Err(e) => {
                    *self.error.borrow_mut() = Some(format!("fetch {url}: {e}"));
                    return Err(tlog_tiles::Error::InvalidTile);
                }
            }
        }
        Ok(out)
    }

    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}

/// `check_once` fetches the log's checkpoint, verifies it, proves it
/// consistent with the one in `state` (if any) and then stores it there.
///
/// # Errors
///
/// An [`Alarm`] when the log is proven inconsistent; other errors when
/// the check could not be made.
///
/// With a witness `policy`, a checkpoint that enough of its witnesses did
/// not cosign is an alarm too: the log publishes only cosigned ones, so
/// it may be a view shown to this client alone.
pub fn check_once(
    url: &str,
    verifier: &LogVerifier,
    policy: Option<&crate::witness::Policy>,
    state: &Path,
) -> anyhow::Result<String> {
    let base = url.trim_end_matches('/').to_owned();
    let client = crate::net::http_client(
        reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(30)),
    )?;
    let note = client
        .get(format!("{base}/checkpoint"))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.bytes())
        .with_context(|| format!("fetch {base}/checkpoint"))?;
    let new = verifier.verify(&note).map_err(|e| {
        anyhow!(Alarm(format!(
            "the log served a checkpoint that does not verify: {e}"
        )))
    })?;
    let witnessed = match policy {
        Some(p) => Some(p.check(&note, verifier).map_err(|e| {
            anyhow!(Alarm(format!(
                "the log served a checkpoint of size {} that its witnesses did not cosign ({e}): \
                 it may be a view shown to this client alone",
                new.size
            )))
        })?),
        None => None,
    };

    let old: Option<VerifiedCheckpoint> = match std::fs::read(state) {
        Ok(b) => Some(
            verifier
                .verify(&b)
                .with_context(|| format!("state file {} does not verify", state.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("read {}", state.display())),
    };

    let msg = match &old {
        None => format!("trusting first checkpoint: size {}", new.size),
        Some(old) if old.size > new.size => {
            return Err(Alarm(format!(
                "the log rolled back from size {} to size {}",
                old.size, new.size
            ))
            .into())
        }
        Some(old) if old.size == new.size => {
            if old.root != new.root {
                return Err(Alarm(format!(
                    "split view: two different trees of size {} are signed",
                    new.size
                ))
                .into());
            }
            format!("unchanged at size {}", new.size)
        }
        Some(old) => {
            let tiles = HttpTiles {
                base: base.clone(),
                client,
                error: std::cell::RefCell::new(None),
            };
            let reader = TileHashReader::new(new.size, new.root, &tiles);
            let proof = match tlog_tiles::prove_tree(new.size, old.size, &reader) {
                Ok(p) => p,
                Err(e) => {
                    if let Some(fetch) = tiles.error.borrow_mut().take() {
                        anyhow::bail!("{fetch}");
                    }
                    return Err(Alarm(format!(
                        "tiles for size {} do not match its signed root: {e}",
                        new.size
                    ))
                    .into());
                }
            };
            if verify_consistency(&proof, old.size, &old.root, new.size, &new.root).is_err() {
                return Err(Alarm(format!(
                    "checkpoint of size {} is not consistent with the earlier one of size {}",
                    new.size, old.size
                ))
                .into());
            }
            format!("consistent: size {} extends size {}", new.size, old.size)
        }
    };
    let tmp = state.with_extension("tmp");
    std::fs::write(&tmp, &new.note).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, state).with_context(|| format!("write {}", state.display()))?;
    Ok(match witnessed {
        Some(w) => format!("{msg}; {w}"),
        None => msg,
    })
}
