//! `custody-store-rocks` is the RocksDB implementation of
//! [`custody_store::LogStore`].
//!
//! One database, one column family per kind of record. Every key is
//! big-endian so RocksDB's byte order is numeric order. RocksDB errors are
//! converted to [`StoreError`] in one place, [`engine`].

use std::path::Path;

use custody_store::{Commit, DedupRecord, IndexCf, IndexRead, KvWrite, LogStore, StoreError};
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB};

/// Column family names.
const CF_ENTRIES: &str = "entries";
const CF_HASHES: &str = "hashes";
const CF_CHECKPOINTS: &str = "checkpoints";
const CF_DEDUP: &str = "dedup";
const CF_REGISTRY: &str = "registry";
const CF_META: &str = "meta";
const ALL_CFS: [&str; 6] = [
    CF_ENTRIES,
    CF_HASHES,
    CF_CHECKPOINTS,
    CF_DEDUP,
    CF_REGISTRY,
    CF_META,
];

/// Key of the tree size in the meta column family.
const META_TREE_SIZE: &[u8] = b"tree_size";

fn engine(context: &str, e: rocksdb::Error) -> StoreError {
    // RocksDB's checksums found damage: that is the store's data, not a
    // passing engine failure.
    if e.kind() == rocksdb::ErrorKind::Corruption {
        return StoreError::Corrupt(format!("{context}: {e}"));
    }
    StoreError::Engine(format!("{context}: {e}"))
}

/// `RocksStore` is a log stored in one RocksDB database.
pub struct RocksStore {
    /// The database; column families per [`ALL_CFS`].
    db: DB,
    /// Whether each write is fsync'd before it returns.
    sync: bool,
}

/// RocksDB's memory, sized here and nowhere else: the memtables of every
/// family together, and one block cache (data, index and filter blocks)
/// shared by every family. With the server's own bounded queues and
/// caches, this is what keeps its RSS flat in the size of the log.
pub const WRITE_BUFFER_BYTES: usize = 128 << 20;

/// See [`WRITE_BUFFER_BYTES`].
pub const BLOCK_CACHE_BYTES: usize = 64 << 20;

/// The write-ahead log kept before the oldest memtables are flushed: what
/// a restart after a crash replays at most.
pub const MAX_WAL_BYTES: u64 = 64 << 20;

impl RocksStore {
    /// `open` opens (creating if needed) the database at `path`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Engine`], e.g. when another process holds the lock.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, true)
    }

    /// `open_rebuildable` opens (creating if needed) a database for state
    /// that can be rebuilt from the log, such as an auditor's replay. Its
    /// writes are atomic and survive the process crashing, as every
    /// RocksDB write does, but are not fsync'd one by one: a crash of the
    /// machine may lose the latest, leaving an earlier consistent state.
    /// It does not keep [`LogStore`]'s durability clause, so a server must
    /// never open its log this way.
    ///
    /// # Errors
    ///
    /// As [`RocksStore::open`].
    pub fn open_rebuildable(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, sync: bool) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.increase_parallelism(2);
        // One memory budget for every family's memtables; without it each
        // of the families may buffer 64 MiB on its own.
        opts.set_db_write_buffer_size(WRITE_BUFFER_BYTES);
        // A family written rarely keeps every write-ahead log file since
        // its last flush alive; past this size the oldest is flushed, so
        // the log that recovery after a crash replays stays bounded.
        opts.set_max_total_wal_size(MAX_WAL_BYTES);
        // One block cache for every family, holding their index and filter
        // blocks too; without it each family's table factory makes its own
        // 32 MiB cache, and table readers grow outside any cache.
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        // Families read by point lookups that usually miss (a new event
        // id, a new asset, no open interval yet) get Bloom filters, so a
        // miss costs no block reads.
        let point = [
            CF_DEDUP,
            IndexCf::Assets.name(),
            IndexCf::Open.name(),
            IndexCf::Transfers.name(),
            IndexCf::ManifestMeta.name(),
            IndexCf::Births.name(),
            IndexCf::Receipts.name(),
            IndexCf::Attesting.name(),
            IndexCf::ScopeSeen.name(),
        ];
        let cfs = ALL_CFS
            .iter()
            .copied()
            .chain(IndexCf::ALL.iter().map(|c| c.name()))
            .map(|name| {
                let mut o = Options::default();
                let mut b = rocksdb::BlockBasedOptions::default();
                b.set_block_cache(&cache);
                b.set_cache_index_and_filter_blocks(true);
                b.set_pin_l0_filter_and_index_blocks_in_cache(true);
                // Index and filter blocks are partitioned: a lookup loads
                // one 4 KiB partition, not the whole filter of a file.
                // Whole filters (megabytes per file once the log holds
                // millions of entries) did not stay in the shared cache,
                // so every lookup read and checksummed one again: at 3 M
                // entries that was 70 % of the server's time and ingest
                // fell from 10,000 to 1,300 events/s.
                b.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
                b.set_metadata_block_size(4096);
                b.set_pin_top_level_index_and_filter(true);
                if point.contains(&name) {
                    b.set_bloom_filter(10.0, false);
                    b.set_partition_filters(true);
                    // The memtable too: recent keys are where most
                    // lookups land while entries stream in.
                    o.set_memtable_whole_key_filtering(true);
                    o.set_memtable_prefix_bloom_ratio(0.05);
                }
                o.set_block_based_table_factory(&b);
                ColumnFamilyDescriptor::new(name, o)
            });
        let db = DB::open_cf_descriptors(&opts, path, cfs)
            .map_err(|e| engine(&format!("open {}", path.display()), e))?;
        Ok(Self { db, sync })
    }

    /// `compact` compacts every family fully: superseded values and
    /// tombstones are dropped and each family is left in its last level.
    /// For operators (`custodyd compact`) and the scale benchmark's disk
    /// figures; RocksDB compacts in the background without it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Engine`] if a compaction fails.
    pub fn compact(&self) -> Result<(), StoreError> {
        let mut o = rocksdb::CompactOptions::default();
        o.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for name in ALL_CFS
            .iter()
            .copied()
            .chain(IndexCf::ALL.iter().map(|c| c.name()))
        {
            self.db
                .compact_range_cf_opt(self.cf(name)?, None::<&[u8]>, None::<&[u8]>, &o);
        }
        self.db
            .flush_wal(true)
            .map_err(|e| engine("flush write-ahead log", e))
    }

    /// `checkpoint_to` writes a consistent copy of the database, as of
    /// one moment, to `dir` (which must not exist) while writes go on:
    /// a RocksDB checkpoint, hard-linking table files where `dir` is on
    /// the same file system and copying them elsewhere. Every commit is
    /// one atomic write batch, so the copy holds whole commits: each one
    /// acknowledged before the call, and none in part.
    ///
    /// # Errors
    ///
    /// [`StoreError::Engine`] if the checkpoint cannot be written (e.g.
    /// `dir` exists, or the disk is full).
    pub fn checkpoint_to(&self, dir: &Path) -> Result<(), StoreError> {
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.db)
            .map_err(|e| engine("start a checkpoint", e))?;
        cp.create_checkpoint(dir)
            .map_err(|e| engine(&format!("write a checkpoint to {}", dir.display()), e))
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Corrupt(format!("column family {name} missing")))
    }

    fn put_index(&self, wb: &mut WriteBatch, writes: &[KvWrite]) -> Result<(), StoreError> {
        for w in writes {
            let cf = self.cf(w.cf.name())?;
            match &w.value {
                Some(v) => wb.put_cf(cf, &w.key, v),
                None => wb.delete_cf(cf, &w.key),
            }
        }
        Ok(())
    }

    fn get_u64(&self, cf: &str, key: &[u8]) -> Result<Option<u64>, StoreError> {
        match self
            .db
            .get_cf(self.cf(cf)?, key)
            .map_err(|e| engine("get", e))?
        {
            None => Ok(None),
            Some(v) => {
                let b: [u8; 8] = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt(format!("{cf} value of {} bytes", v.len())))?;
                Ok(Some(u64::from_be_bytes(b)))
            }
        }
    }
}

/// `Reads` reads the index families, of the database as it is or of a
/// snapshot of it: one implementation for both.
struct Reads<'a> {
    store: &'a RocksStore,
    snapshot: Option<rocksdb::Snapshot<'a>>,
}

impl Reads<'_> {
    fn opts(&self) -> rocksdb::ReadOptions {
        let mut o = rocksdb::ReadOptions::default();
        if let Some(s) = &self.snapshot {
            o.set_snapshot(s);
        }
        o
    }
}

impl IndexRead for Reads<'_> {
    fn index_get(&self, cf: IndexCf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.store
            .db
            .get_cf_opt(self.store.cf(cf.name())?, key, &self.opts())
            .map_err(|e| engine("index get", e))
    }

    fn index_get_many(
        &self,
        cf: IndexCf,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.store
            .db
            .batched_multi_get_cf_opt(
                self.store.cf(cf.name())?,
                keys.iter().copied(),
                false,
                &self.opts(),
            )
            .into_iter()
            .map(|r| {
                r.map(|v| v.map(|v| v.to_vec()))
                    .map_err(|e| engine("index get", e))
            })
            .collect()
    }

    fn index_scan(
        &self,
        cf: IndexCf,
        prefix: &[u8],
        start: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let iter = self.store.db.iterator_cf_opt(
            self.store.cf(cf.name())?,
            self.opts(),
            IteratorMode::From(start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(|e| engine("index scan", e))?;
            if !k.starts_with(prefix) || !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn index_last(
        &self,
        cf: IndexCf,
        prefix: &[u8],
    ) -> Result<Option<custody_store::KvPair>, StoreError> {
        // The least key after every key with the prefix: the prefix with
        // its trailing 0xff bytes dropped and its last byte raised.
        let mut succ = prefix.to_vec();
        while succ.last() == Some(&0xff) {
            succ.pop();
        }
        let mode = match succ.last_mut() {
            Some(b) => {
                *b += 1;
                IteratorMode::From(&succ, rocksdb::Direction::Reverse)
            }
            None => IteratorMode::End,
        };
        for item in self
            .store
            .db
            .iterator_cf_opt(self.store.cf(cf.name())?, self.opts(), mode)
        {
            let (k, v) = item.map_err(|e| engine("index scan", e))?;
            if k.as_ref() == succ.as_slice() && !succ.is_empty() {
                continue;
            }
            if k.starts_with(prefix) {
                return Ok(Some((k.to_vec(), v.to_vec())));
            }
            return Ok(None);
        }
        Ok(None)
    }
}

impl IndexRead for RocksStore {
    fn index_get(&self, cf: IndexCf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.now().index_get(cf, key)
    }

    fn index_get_many(
        &self,
        cf: IndexCf,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.now().index_get_many(cf, keys)
    }

    fn index_scan(
        &self,
        cf: IndexCf,
        prefix: &[u8],
        start: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.now().index_scan(cf, prefix, start, f)
    }

    fn index_last(
        &self,
        cf: IndexCf,
        prefix: &[u8],
    ) -> Result<Option<custody_store::KvPair>, StoreError> {
        self.now().index_last(cf, prefix)
    }
}

impl RocksStore {
    /// `now` reads the database as it is.
    fn now(&self) -> Reads<'_> {
        Reads {
            store: self,
            snapshot: None,
        }
    }
}

impl LogStore for RocksStore {
    fn engine_stats(&self) -> Vec<(&'static str, u64)> {
        // Summed over every column family.
        const PROPERTIES: [(&str, &str); 6] = [
            ("sst_files_bytes", "rocksdb.total-sst-files-size"),
            ("live_data_bytes", "rocksdb.estimate-live-data-size"),
            ("memtable_bytes", "rocksdb.cur-size-all-mem-tables"),
            ("table_readers_bytes", "rocksdb.estimate-table-readers-mem"),
            (
                "pending_compaction_bytes",
                "rocksdb.estimate-pending-compaction-bytes",
            ),
            ("running_compactions", "rocksdb.num-running-compactions"),
        ];
        let names: Vec<&str> = ALL_CFS
            .iter()
            .copied()
            .chain(IndexCf::ALL.iter().map(|c| c.name()))
            .collect();
        PROPERTIES
            .iter()
            .map(|(metric, property)| {
                let total = names
                    .iter()
                    .filter_map(|n| self.db.cf_handle(n))
                    .filter_map(|cf| self.db.property_int_value_cf(cf, *property).ok().flatten())
                    .sum::<u64>();
                (*metric, total)
            })
            .collect()
    }

    fn tree_size(&self) -> Result<u64, StoreError> {
        Ok(self.get_u64(CF_META, META_TREE_SIZE)?.unwrap_or(0))
    }

    fn commit(&self, batch: &Commit) -> Result<(), StoreError> {
        let size = self.tree_size()?;
        if batch.first_index != size {
            return Err(StoreError::OutOfOrder {
                want: size,
                got: batch.first_index,
            });
        }
        let mut wb = WriteBatch::default();
        let entries = self.cf(CF_ENTRIES)?;
        for (i, e) in batch.entries.iter().enumerate() {
            wb.put_cf(entries, (size + i as u64).to_be_bytes(), e);
        }
        let hashes = self.cf(CF_HASHES)?;
        for (i, h) in &batch.hashes {
            wb.put_cf(hashes, i.to_be_bytes(), h);
        }
        let dedup = self.cf(CF_DEDUP)?;
        for (id, r) in &batch.dedup {
            wb.put_cf(dedup, id.as_bytes(), r.to_bytes());
        }
        let registry = self.cf(CF_REGISTRY)?;
        for i in &batch.registry {
            wb.put_cf(registry, i.to_be_bytes(), []);
        }
        self.put_index(&mut wb, &batch.index)?;
        let new_size = size + batch.entries.len() as u64;
        wb.put_cf(self.cf(CF_META)?, META_TREE_SIZE, new_size.to_be_bytes());
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync);
        self.db.write_opt(wb, &wo).map_err(|e| engine("commit", e))
    }

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        let cf = self.cf(CF_HASHES)?;
        let keys: Vec<_> = indexes.iter().map(|i| (cf, i.to_be_bytes())).collect();
        let mut out = Vec::with_capacity(indexes.len());
        for (i, r) in indexes.iter().zip(self.db.multi_get_cf(keys)) {
            let v = r
                .map_err(|e| engine("read hashes", e))?
                .ok_or_else(|| StoreError::NotFound(format!("stored hash {i}")))?;
            let h: [u8; 32] = v.as_slice().try_into().map_err(|_| {
                StoreError::Corrupt(format!("stored hash {i} of {} bytes", v.len()))
            })?;
            out.push(h);
        }
        Ok(out)
    }

    fn read_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        if start > end {
            return Err(StoreError::NotFound(format!("entries {start}..{end}")));
        }
        let cf = self.cf(CF_ENTRIES)?;
        if end - start == 1 {
            // One entry (a proof, a cited event): a point lookup costs a
            // fraction of an iterator's set-up.
            return match self
                .db
                .get_cf(cf, start.to_be_bytes())
                .map_err(|e| engine("read entry", e))?
            {
                Some(v) => Ok(vec![v]),
                None => Err(StoreError::NotFound(format!("entry {start}"))),
            };
        }
        let mut out = Vec::with_capacity((end - start) as usize);
        let iter = self.db.iterator_cf(
            cf,
            IteratorMode::From(&start.to_be_bytes(), rocksdb::Direction::Forward),
        );
        for (want, item) in (start..end).zip(iter) {
            let (k, v) = item.map_err(|e| engine("read entries", e))?;
            if k.as_ref() != want.to_be_bytes() {
                return Err(StoreError::NotFound(format!("entry {want}")));
            }
            out.push(v.to_vec());
        }
        if out.len() as u64 != end - start {
            return Err(StoreError::NotFound(format!(
                "entries {}..{end}",
                start + out.len() as u64
            )));
        }
        Ok(out)
    }

    fn dedup(&self, event_id: &str) -> Result<Option<DedupRecord>, StoreError> {
        match self
            .db
            .get_cf(self.cf(CF_DEDUP)?, event_id.as_bytes())
            .map_err(|e| engine("dedup", e))?
        {
            None => Ok(None),
            Some(v) => Ok(Some(DedupRecord::from_bytes(&v)?)),
        }
    }

    fn registry_indexes(&self) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_REGISTRY)?, IteratorMode::Start)
        {
            let (k, _) = item.map_err(|e| engine("registry", e))?;
            let b: [u8; 8] = k
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("registry key".into()))?;
            out.push(u64::from_be_bytes(b));
        }
        Ok(out)
    }

    fn index_snapshot(&self) -> Result<Box<dyn IndexRead + '_>, StoreError> {
        Ok(Box::new(Reads {
            store: self,
            snapshot: Some(self.db.snapshot()),
        }))
    }

    fn index_write(&self, writes: &[KvWrite]) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        self.put_index(&mut wb, writes)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync);
        self.db
            .write_opt(wb, &wo)
            .map_err(|e| engine("index write", e))
    }

    fn put_checkpoint(&self, size: u64, note: &[u8]) -> Result<(), StoreError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync);
        self.db
            .put_cf_opt(self.cf(CF_CHECKPOINTS)?, size.to_be_bytes(), note, &wo)
            .map_err(|e| engine("put checkpoint", e))
    }

    fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(self.cf(CF_CHECKPOINTS)?, size.to_be_bytes())
            .map_err(|e| engine("checkpoint", e))
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.checkpoint_at_or_below(u64::MAX)
    }

    fn checkpoint_at_or_below(&self, size: u64) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let key = size.to_be_bytes();
        let mut it = self.db.iterator_cf(
            self.cf(CF_CHECKPOINTS)?,
            IteratorMode::From(&key, rocksdb::Direction::Reverse),
        );
        match it.next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(|e| engine("checkpoint at or below", e))?;
                let b: [u8; 8] = k
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("checkpoint key".into()))?;
                Ok(Some((u64::from_be_bytes(b), v.to_vec())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocks_store_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        custody_store::contract::check_all(&RocksStore::open(dir.path()).unwrap());
    }

    #[test]
    fn commits_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RocksStore::open(dir.path()).unwrap();
            s.commit(&Commit {
                first_index: 0,
                entries: vec![b"a".to_vec(), b"b".to_vec()],
                ..Commit::default()
            })
            .unwrap();
        }
        let s = RocksStore::open(dir.path()).unwrap();
        assert_eq!(s.tree_size().unwrap(), 2);
        assert_eq!(s.read_entries(1, 2).unwrap(), vec![b"b".to_vec()]);
    }

    #[test]
    fn second_open_of_a_held_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _held = RocksStore::open(dir.path()).unwrap();
        let err = RocksStore::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("lock"), "{err}");
    }
}
