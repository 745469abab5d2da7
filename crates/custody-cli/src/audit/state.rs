//! The resume file of `custody audit --state`: what a finished audit
//! proved, so the next one continues from there instead of re-verifying.
//!
//! The file is a short magic line followed by a bincode body. It holds the
//! newest signed checkpoint the audit verified (so rollbacks and forks are
//! caught against it), the right edge of the tree over the entries
//! replayed (so hashing can continue), and the replay itself: registry,
//! custody state, findings engine, every custody interval, and the event
//! ids seen. It is written to a temporary file and renamed into place, so
//! a crash leaves the old state or the new one.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, BufWriter, Read as _, Write as _};
use std::path::Path;

use anyhow::{bail, Context as _};
use bincode::Options as _;
use custody_domain::replay::Replay;
use custody_domain::{Digest, Interval};
use custody_log::Hash;
use serde::{Deserialize, Serialize};

use super::tree::Frontier;

/// The first bytes of a state file.
const MAGIC: &[u8] = b"custody-audit-state v1\n";

/// `SavedState` is the content of a state file.
#[derive(Serialize, Deserialize)]
pub struct SavedState {
    /// The log's verifier key string the audit pinned.
    pub log_key: String,
    /// The newest signed checkpoint note verified and found consistent.
    pub checkpoint: Vec<u8>,
    /// Entries verified and replayed: the tree size the frontier is at.
    pub size: u64,
    /// The frontier's subtree roots, largest first.
    pub frontier: Vec<[u8; 32]>,
    /// The root of the first `size` entries, recomputed by the audit.
    pub root: [u8; 32],
    /// Integrated time of entry `size - 1`.
    pub last_integrated: i64,
    /// The replay after `size` entries.
    pub replay: Replay,
    /// Every custody interval, open or closed, by asset.
    pub history: HashMap<Digest, Vec<Interval>>,
    /// Every event id logged so far (see `replayer::event_key`).
    pub event_ids: HashSet<(u128, u32)>,
    /// Signatures verified over the whole log so far.
    pub signatures: u64,
    /// Bulk events whose manifests were checked so far.
    pub bulk_events: u64,
}

impl SavedState {
    /// `frontier` is the saved right edge of the tree.
    ///
    /// # Errors
    ///
    /// If its node count does not match its size (a corrupt file).
    pub fn frontier(&self) -> anyhow::Result<Frontier> {
        let nodes = self.frontier.iter().map(|h| Hash(*h)).collect();
        let f = Frontier::from_parts(self.size, nodes)
            .ok_or_else(|| anyhow::anyhow!("the saved tree edge does not fit its size"))?;
        if f.root().0 != self.root {
            bail!("the saved tree edge does not hash to the saved root");
        }
        Ok(f)
    }
}

/// `load` reads a state file, or `None` if there is none.
///
/// # Errors
///
/// If the file exists but cannot be read or is not a state file.
pub fn load(path: &Path) -> anyhow::Result<Option<SavedState>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let len = file
        .metadata()
        .with_context(|| format!("read {}", path.display()))?
        .len();
    let mut r = BufReader::new(file);
    let mut magic = vec![0u8; MAGIC.len()];
    if r.read_exact(&mut magic).is_err() || magic != MAGIC {
        bail!(
            "{} is not a `custody audit` state file (or one of another version)",
            path.display()
        );
    }
    let state = options(len)
        .deserialize_from(r)
        .with_context(|| format!("state file {} is corrupt", path.display()))?;
    Ok(Some(state))
}

/// `save` writes a state file atomically (temporary file, fsync, rename).
///
/// # Errors
///
/// On I/O failure.
pub fn save(path: &Path, state: &SavedState) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> anyhow::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        w.write_all(MAGIC)?;
        options(u64::MAX).serialize_into(&mut w, state)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(())
    };
    write().with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// Bincode options for the body: variable-length integers, and no length
/// prefix may claim more bytes than the file holds.
fn options(limit: u64) -> impl bincode::Options {
    bincode::DefaultOptions::new().with_limit(limit)
}
