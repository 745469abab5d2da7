//! `custody-store` is the storage contract of the Custody Ledger log, with
//! no storage engine in it. `custody-store-rocks` implements it on RocksDB;
//! [`MemoryStore`] implements it in memory and is the reference the
//! contract tests hold every backend to.
//!
//! The trait is sized to what the ledger needs, not to an engine's API:
//! one atomic, durable commit per sequenced batch, and point or range
//! reads.
//!
//! ```
//! use custody_store::{Commit, LogStore, MemoryStore};
//! let s = MemoryStore::default();
//! s.commit(&Commit { first_index: 0, entries: vec![b"e0".to_vec()], ..Commit::default() }).unwrap();
//! assert_eq!(s.tree_size().unwrap(), 1);
//! assert_eq!(s.read_entries(0, 1).unwrap(), vec![b"e0".to_vec()]);
//! ```

#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod index;
mod memory;

pub use index::{IndexCf, KvWrite};
pub use memory::MemoryStore;

/// `DedupRecord` is what the log remembers of an event id: where it was
/// logged and the digest of the exact envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupRecord {
    /// The entry's log index.
    pub index: u64,
    /// The digest of the signed envelope.
    pub digest: [u8; 32],
}

impl DedupRecord {
    /// `to_bytes` is the 40-byte stored form: index (big-endian) ‖ digest.
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.index.to_be_bytes());
        out[8..].copy_from_slice(&self.digest);
        out
    }

    /// `from_bytes` parses the stored form.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] if `b` is not 40 bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, StoreError> {
        let b: &[u8; 40] = b
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("dedup record of {} bytes", b.len())))?;
        let mut index = [0u8; 8];
        index.copy_from_slice(&b[..8]);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&b[8..]);
        Ok(Self {
            index: u64::from_be_bytes(index),
            digest,
        })
    }
}

/// `Commit` is one sequenced batch: everything that must become durable
/// together, or not at all.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// Index of `entries[0]`; must equal the stored tree size.
    pub first_index: u64,
    /// The new leaves, exactly as logged.
    pub entries: Vec<Vec<u8>>,
    /// New stored hashes `(stored hash index, hash)` for the grown tree.
    pub hashes: Vec<(u64, [u8; 32])>,
    /// Event ids of the new entries.
    pub dedup: Vec<(String, DedupRecord)>,
    /// Indexes of new entries that change the registry.
    pub registry: Vec<u64>,
    /// Index writes for the new entries, applied in order (see [`index`]).
    pub index: Vec<KvWrite>,
}

/// `StoreError` is a storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The engine failed (I/O, lock held, ...).
    #[error("storage: {0}")]
    Engine(String),
    /// Stored data is not what this code wrote.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// A read asked for something that is not stored.
    #[error("not found: {0}")]
    NotFound(String),
    /// A commit did not start at the stored tree size.
    #[error("commit starts at index {got}, but the tree has {want} entries")]
    OutOfOrder {
        /// The stored tree size.
        want: u64,
        /// The commit's first index.
        got: u64,
    },
}

/// `KvPair` is one stored index pair, (key, value).
pub type KvPair = (Vec<u8>, Vec<u8>);

/// `IndexRead` reads the index families: of the store as it is, or of a
/// snapshot of it ([`LogStore::index_snapshot`]).
pub trait IndexRead: Send + Sync {
    /// `index_get` reads one index value.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on engine failure.
    fn index_get(&self, cf: IndexCf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// `index_get_many` reads several index values of one family, in the
    /// order of `keys`; a backend may read them in one batch.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on engine failure.
    fn index_get_many(
        &self,
        cf: IndexCf,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.index_get(cf, k)).collect()
    }

    /// `index_scan` visits `(key, value)` pairs of `cf` whose key starts
    /// with `prefix`, from the first key `>= start`, until `f` returns false.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on engine failure.
    fn index_scan(
        &self,
        cf: IndexCf,
        prefix: &[u8],
        start: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;

    /// `index_last` is the greatest `(key, value)` pair of `cf` whose key
    /// starts with `prefix`, if any.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on engine failure.
    fn index_last(&self, cf: IndexCf, prefix: &[u8]) -> Result<Option<KvPair>, StoreError>;
}

/// `LogStore` is durable storage for one log.
///
/// Contract, which [`contract`] checks for every backend:
/// - `commit` MUST make the whole batch durable (fsync'd) before it
///   returns `Ok`, and MUST NOT make any part of it visible on `Err`.
/// - `commit` MUST refuse a batch whose `first_index` is not the tree size.
/// - `read_hashes` returns exactly as many hashes as asked, in order, or an
///   error.
/// - `read_entries(start, end)` returns exactly `end - start` entries, or
///   an error.
/// - `index_scan` visits keys of one family that start with `prefix`, from
///   the first key `>= start`, in ascending byte order, until the visitor
///   returns false.
/// - `index_write` applies its writes atomically and durably.
/// - Checkpoints are kept by tree size; a later `put_checkpoint` of the
///   same size replaces the earlier one only with identical bytes.
/// - A snapshot MUST NOT see writes committed after it was taken.
pub trait LogStore: IndexRead + Send + Sync + 'static {
    /// `tree_size` is the number of durable entries.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on engine failure.
    fn tree_size(&self) -> Result<u64, StoreError>;

    /// `commit` appends a batch atomically and durably.
    ///
    /// # Errors
    ///
    /// [`StoreError::OutOfOrder`] if the batch does not start at the tree
    /// size; otherwise on engine failure, with nothing written.
    fn commit(&self, batch: &Commit) -> Result<(), StoreError>;

    /// `read_hashes` reads stored hashes by stored-hash index.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] if any is absent.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError>;

    /// `read_entries` reads the entries at `start..end`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] if any is absent.
    fn read_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError>;

    /// `dedup` looks an event id up.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on engine failure.
    fn dedup(&self, event_id: &str) -> Result<Option<DedupRecord>, StoreError>;

    /// `registry_indexes` lists, in order, the indexes of entries that
    /// changed the registry.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on engine failure.
    fn registry_indexes(&self) -> Result<Vec<u64>, StoreError>;

    /// `index_snapshot` is the indexes as they are now: reads through it
    /// see no write committed after it was taken, so an answer made of
    /// several scans reads one state.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on engine failure.
    fn index_snapshot(&self) -> Result<Box<dyn IndexRead + '_>, StoreError>;

    /// `index_write` durably applies index writes that belong to no log
    /// commit (uploaded manifests).
    ///
    /// # Errors
    ///
    /// [`StoreError`] on engine failure, with nothing written.
    fn index_write(&self, writes: &[KvWrite]) -> Result<(), StoreError>;

    /// `engine_stats` is what the storage engine says of itself, as
    /// (name, value) pairs for metrics: sizes on disk and in memory,
    /// compactions running. A backend with nothing to say says nothing.
    fn engine_stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// `put_checkpoint` durably stores the signed checkpoint of `size`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on engine failure.
    fn put_checkpoint(&self, size: u64, note: &[u8]) -> Result<(), StoreError>;

    /// `checkpoint` reads the stored checkpoint of exactly `size`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on engine failure.
    fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// `latest_checkpoint` is the stored checkpoint of the largest size.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on engine failure.
    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError>;

    /// `checkpoint_at_or_below` is the stored checkpoint of the largest
    /// size no larger than `size`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on engine failure.
    fn checkpoint_at_or_below(&self, size: u64) -> Result<Option<(u64, Vec<u8>)>, StoreError>;
}
