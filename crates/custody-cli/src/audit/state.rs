//! The audit's replay state: an embedded RocksDB that the replay writes as
//! it goes, through the server's own admission path
//! (`custody_admission`) and storage layout, so the audit's
//! memory is bounded by RocksDB's configuration instead of by the log.
//!
//! With `--state DIR` it is kept, and the next audit resumes at the entry
//! where the last one stopped, finished or not. Without it, it lives in a
//! temporary directory removed at exit.
//!
//! What it holds, besides the server's families:
//! - every checkpoint an audit verified with the pinned key
//!   (`put_checkpoint`), kept as soon as it is verified, before the run
//!   replays anything: the next run alarms unless the log's new checkpoint
//!   extends the newest, so a run that fails, or is made to fail, forgets
//!   nothing the log signed;
//! - running totals (signatures verified, bulk events checked), written
//!   in each batch's own commit.
//!
//! The replayed entries are proven only when a run's rehashed root is
//! the signed one; an interrupted run's are proven consistent with the
//! log's new checkpoint by the next run before it goes on.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use custody_log::Hash;
use custody_proto::{decode_entry, Entry};
use custody_store::{IndexCf, IndexRead as _, KvWrite, LogStore};
use custody_store_rocks::RocksStore;

use super::tree::Frontier;

/// Running totals, in the store's meta family.
const SIGNATURES: &[u8] = b"audit:signatures";
const BULK_EVENTS: &[u8] = b"audit:bulk_events";

/// `AuditState` is the replay's store, and where it lives.
pub struct AuditState {
    /// The store; dropped before `_temp`.
    pub store: RocksStore,
    /// Where it is.
    pub path: PathBuf,
    /// A temporary directory, removed when the audit ends.
    _temp: Option<tempfile::TempDir>,
}

impl AuditState {
    /// `open` opens the state at `dir`, creating it if needed, or a
    /// temporary one.
    ///
    /// # Errors
    ///
    /// If the directory cannot be created or opened (another audit holds
    /// it, or it is not a state directory).
    pub fn open(dir: Option<&Path>) -> anyhow::Result<Self> {
        let (path, temp) = match dir {
            Some(d) => {
                if d.is_file() {
                    bail!(
                        "--state {} is a file, but the audit's state is now a directory (an embedded RocksDB): remove the file, or name a new directory",
                        d.display()
                    );
                }
                (d.to_path_buf(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("custody-audit-")
                    .tempdir()
                    .context("create a temporary directory for the audit's state")?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let store = RocksStore::open_rebuildable(&path)
            .with_context(|| format!("open the audit state {}", path.display()))?;
        Ok(Self {
            store,
            path,
            _temp: temp,
        })
    }

    /// `size` is how many entries the state has replayed.
    ///
    /// # Errors
    ///
    /// If the store cannot be read.
    pub fn size(&self) -> anyhow::Result<u64> {
        Ok(self.store.tree_size()?)
    }

    /// `frontier` is the right edge of the tree of the replayed entries,
    /// read from the stored hashes.
    ///
    /// # Errors
    ///
    /// If the hashes cannot be read.
    pub fn frontier(&self) -> anyhow::Result<Frontier> {
        let size = self.size()?;
        let idx = Frontier::stored_indexes(size);
        let nodes = self
            .store
            .read_hashes(&idx)
            .with_context(|| format!("read the tree edge from {}", self.path.display()))?
            .into_iter()
            .map(Hash)
            .collect();
        Frontier::from_parts(size, nodes).ok_or_else(|| anyhow!("bug: frontier of size {size}"))
    }

    /// `origin` is the origin the replayed genesis entry names, if the
    /// state has one.
    ///
    /// # Errors
    ///
    /// If entry 0 cannot be read or is not a genesis entry.
    pub fn origin(&self) -> anyhow::Result<Option<String>> {
        if self.size()? == 0 {
            return Ok(None);
        }
        let e = self.store.read_entries(0, 1)?;
        match e.first().map(|b| decode_entry(b)) {
            Some(Ok(Entry::Genesis(g))) => Ok(Some(g.origin)),
            _ => bail!(
                "{} is not a `custody audit` state: its entry 0 is not a genesis entry",
                self.path.display()
            ),
        }
    }

    /// `last_integrated` is the integration time of the last replayed
    /// event, or 0.
    ///
    /// # Errors
    ///
    /// If the entry cannot be read.
    pub fn last_integrated(&self) -> anyhow::Result<i64> {
        let size = self.size()?;
        if size < 2 {
            return Ok(0);
        }
        let e = self.store.read_entries(size - 1, size)?;
        match e.first().map(|b| decode_entry(b)) {
            Some(Ok(Entry::Event {
                integrated_time, ..
            })) => Ok(integrated_time),
            _ => bail!("entry {} of the audit state does not decode", size - 1),
        }
    }

    /// `totals` is (signatures verified, bulk events checked) over every
    /// run so far.
    ///
    /// # Errors
    ///
    /// If the store cannot be read.
    pub fn totals(&self) -> anyhow::Result<(u64, u64)> {
        let get = |k: &[u8]| -> anyhow::Result<u64> {
            Ok(match self.store.index_get(IndexCf::DerivedMeta, k)? {
                Some(v) => <[u8; 8]>::try_from(v.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| anyhow!("the audit state's totals are corrupt"))?,
                None => 0,
            })
        };
        Ok((get(SIGNATURES)?, get(BULK_EVENTS)?))
    }
}

/// `totals_writes` records the running totals, for a batch's commit.
pub fn totals_writes(signatures: u64, bulk_events: u64) -> [KvWrite; 2] {
    let w = |k: &[u8], v: u64| KvWrite {
        cf: IndexCf::DerivedMeta,
        key: k.to_vec(),
        value: Some(v.to_be_bytes().to_vec()),
    };
    [w(SIGNATURES, signatures), w(BULK_EVENTS, bulk_events)]
}
