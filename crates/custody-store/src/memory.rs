//! An in-memory [`LogStore`]: the reference backend for contract tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::{Commit, DedupRecord, IndexCf, IndexRead, KvWrite, LogStore, StoreError};

/// `MemoryStore` keeps everything in maps behind one mutex. "Durable" means
/// "in the map"; it exists to pin the trait's contract, not for production.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: Vec<Vec<u8>>,
    hashes: HashMap<u64, [u8; 32]>,
    dedup: HashMap<String, DedupRecord>,
    registry: Vec<u64>,
    checkpoints: BTreeMap<u64, Vec<u8>>,
    index: Index,
}

impl Inner {
    fn write(&mut self, writes: &[KvWrite]) {
        for w in writes {
            match &w.value {
                Some(v) => {
                    self.index.insert((w.cf, w.key.clone()), v.clone());
                }
                None => {
                    self.index.remove(&(w.cf, w.key.clone()));
                }
            }
        }
    }
}

impl MemoryStore {
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Engine("memory store mutex poisoned".into()))
    }
}

/// `Index` is the index families in memory.
type Index = BTreeMap<(IndexCf, Vec<u8>), Vec<u8>>;

fn index_scan(
    index: &Index,
    cf: IndexCf,
    prefix: &[u8],
    start: &[u8],
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) {
    for ((c, k), v) in index.range((cf, start.to_vec())..) {
        if *c != cf || !k.starts_with(prefix) || !f(k, v) {
            break;
        }
    }
}

fn index_last(index: &Index, cf: IndexCf, prefix: &[u8]) -> Option<crate::KvPair> {
    index
        .range((cf, prefix.to_vec())..)
        .take_while(|((c, k), _)| *c == cf && k.starts_with(prefix))
        .last()
        .map(|((_, k), v)| (k.clone(), v.clone()))
}

/// `Snapshot` is a copy of the index families: a test backend's snapshot.
struct Snapshot {
    index: Index,
}

impl IndexRead for Snapshot {
    fn index_get(&self, cf: IndexCf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.index.get(&(cf, key.to_vec())).cloned())
    }

    fn index_scan(
        &self,
        cf: IndexCf,
        prefix: &[u8],
        start: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        index_scan(&self.index, cf, prefix, start, f);
        Ok(())
    }

    fn index_last(&self, cf: IndexCf, prefix: &[u8]) -> Result<Option<crate::KvPair>, StoreError> {
        Ok(index_last(&self.index, cf, prefix))
    }
}

impl IndexRead for MemoryStore {
    fn index_get(&self, cf: IndexCf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?.index.get(&(cf, key.to_vec())).cloned())
    }

    fn index_scan(
        &self,
        cf: IndexCf,
        prefix: &[u8],
        start: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        index_scan(&self.lock()?.index, cf, prefix, start, f);
        Ok(())
    }

    fn index_last(&self, cf: IndexCf, prefix: &[u8]) -> Result<Option<crate::KvPair>, StoreError> {
        Ok(index_last(&self.lock()?.index, cf, prefix))
    }
}

impl LogStore for MemoryStore {
    fn tree_size(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.entries.len() as u64)
    }

    fn commit(&self, batch: &Commit) -> Result<(), StoreError> {
        let mut g = self.lock()?;
        let size = g.entries.len() as u64;
        if batch.first_index != size {
            return Err(StoreError::OutOfOrder {
                want: size,
                got: batch.first_index,
            });
        }
        g.entries.extend(batch.entries.iter().cloned());
        g.hashes.extend(batch.hashes.iter().copied());
        g.dedup.extend(batch.dedup.iter().cloned());
        g.registry.extend(batch.registry.iter().copied());
        g.write(&batch.index);
        Ok(())
    }

    fn index_snapshot(&self) -> Result<Box<dyn IndexRead + '_>, StoreError> {
        let index = self.lock()?.index.clone();
        Ok(Box::new(Snapshot { index }))
    }

    fn index_write(&self, writes: &[KvWrite]) -> Result<(), StoreError> {
        self.lock()?.write(writes);
        Ok(())
    }

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        let g = self.lock()?;
        indexes
            .iter()
            .map(|i| {
                g.hashes
                    .get(i)
                    .copied()
                    .ok_or_else(|| StoreError::NotFound(format!("stored hash {i}")))
            })
            .collect()
    }

    fn read_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let g = self.lock()?;
        if start > end || end > g.entries.len() as u64 {
            return Err(StoreError::NotFound(format!("entries {start}..{end}")));
        }
        Ok(g.entries[start as usize..end as usize].to_vec())
    }

    fn dedup(&self, event_id: &str) -> Result<Option<DedupRecord>, StoreError> {
        Ok(self.lock()?.dedup.get(event_id).copied())
    }

    fn registry_indexes(&self) -> Result<Vec<u64>, StoreError> {
        Ok(self.lock()?.registry.clone())
    }

    fn put_checkpoint(&self, size: u64, note: &[u8]) -> Result<(), StoreError> {
        self.lock()?.checkpoints.insert(size, note.to_vec());
        Ok(())
    }

    fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?.checkpoints.get(&size).cloned())
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()?
            .checkpoints
            .last_key_value()
            .map(|(k, v)| (*k, v.clone())))
    }

    fn checkpoint_at_or_below(&self, size: u64) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()?
            .checkpoints
            .range(..=size)
            .next_back()
            .map(|(k, v)| (*k, v.clone())))
    }
}
