//! Contract tests every [`LogStore`] backend must pass. Backends call
//! [`check_all`] from their own tests with a fresh store.

use crate::{Commit, DedupRecord, IndexCf, KvWrite, LogStore, StoreError};

fn batch(first: u64, n: u64) -> Commit {
    Commit {
        first_index: first,
        entries: (first..first + n)
            .map(|i| format!("entry {i}").into_bytes())
            .collect(),
        hashes: (first..first + n).map(|i| (i * 2, [i as u8; 32])).collect(),
        dedup: (first..first + n)
            .map(|i| {
                (
                    format!("id-{i}"),
                    DedupRecord {
                        index: i,
                        digest: [i as u8 ^ 0x55; 32],
                    },
                )
            })
            .collect(),
        registry: (first..first + n).filter(|i| i % 3 == 0).collect(),
        index: (first..first + n)
            .map(|i| KvWrite {
                cf: IndexCf::AssetEntries,
                key: [b"a".as_slice(), &i.to_be_bytes()].concat(),
                value: Some(vec![i as u8]),
            })
            .collect(),
    }
}

fn scan(store: &dyn LogStore, cf: IndexCf, prefix: &[u8], start: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    store
        .index_scan(cf, prefix, start, &mut |k, _| {
            out.push(k.to_vec());
            true
        })
        .unwrap();
    out
}

/// `check_all` runs every contract check against `store`, which must be
/// empty.
///
/// # Panics
///
/// Panics, naming the broken clause, if the store breaks the contract.
pub fn check_all<S: LogStore>(store: &S) {
    assert_eq!(store.tree_size().unwrap(), 0, "a new store is empty");
    assert!(store.latest_checkpoint().unwrap().is_none());

    store.commit(&batch(0, 5)).unwrap();
    store.commit(&batch(5, 3)).unwrap();
    assert_eq!(store.tree_size().unwrap(), 8);

    // Out-of-order commits are refused and leave nothing behind.
    for first in [0, 7, 9] {
        match store.commit(&batch(first, 2)) {
            Err(StoreError::OutOfOrder { want: 8, got }) => assert_eq!(got, first),
            other => panic!("commit at {first} over size 8 gave {other:?}"),
        }
    }
    assert_eq!(store.tree_size().unwrap(), 8);
    assert!(
        store.dedup("id-9").unwrap().is_none(),
        "refused commit left a dedup record"
    );

    // Entries: exactly end - start, in order, or an error.
    let e = store.read_entries(2, 6).unwrap();
    assert_eq!(e.len(), 4);
    assert_eq!(e[0], b"entry 2");
    assert_eq!(e[3], b"entry 5");
    assert!(store.read_entries(6, 9).is_err(), "read past the end");
    assert_eq!(store.read_entries(8, 8).unwrap().len(), 0);

    // Hashes: exactly as many as asked, in the order asked.
    let h = store.read_hashes(&[14, 0, 6]).unwrap();
    assert_eq!(h, vec![[7u8; 32], [0u8; 32], [3u8; 32]]);
    assert!(
        store.read_hashes(&[0, 1]).is_err(),
        "absent hash read as present"
    );

    // Dedup and registry.
    assert_eq!(
        store.dedup("id-6").unwrap(),
        Some(DedupRecord {
            index: 6,
            digest: [6 ^ 0x55; 32]
        })
    );
    assert!(store.dedup("id-99").unwrap().is_none());
    assert_eq!(store.registry_indexes().unwrap(), vec![0, 3, 6]);

    // Index writes arrive with their commit, and not with a refused one.
    let keys = scan(store, IndexCf::AssetEntries, b"a", b"a");
    assert_eq!(keys.len(), 8, "one index key per committed entry");
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "scan is in key order");
    assert_eq!(
        store
            .index_get(
                IndexCf::AssetEntries,
                &[b"a".as_slice(), &7u64.to_be_bytes()].concat()
            )
            .unwrap(),
        Some(vec![7])
    );
    // Scans start at `start`, stop at the prefix's end and when told to.
    let from5 = scan(
        store,
        IndexCf::AssetEntries,
        b"a",
        &[b"a".as_slice(), &5u64.to_be_bytes()].concat(),
    );
    assert_eq!(from5.len(), 3);
    store
        .index_write(&[
            KvWrite {
                cf: IndexCf::AssetEntries,
                key: b"b0".to_vec(),
                value: Some(vec![]),
            },
            KvWrite {
                cf: IndexCf::PartyEntries,
                key: b"a9".to_vec(),
                value: Some(vec![]),
            },
            KvWrite {
                cf: IndexCf::AssetEntries,
                key: [b"a".as_slice(), &0u64.to_be_bytes()].concat(),
                value: None,
            },
        ])
        .unwrap();
    assert_eq!(
        scan(store, IndexCf::AssetEntries, b"a", b"a").len(),
        7,
        "delete, and prefix bound"
    );
    assert_eq!(
        scan(store, IndexCf::PartyEntries, b"a", b"a").len(),
        1,
        "families are separate"
    );
    let mut seen = 0;
    store
        .index_scan(IndexCf::AssetEntries, b"a", b"a", &mut |_, _| {
            seen += 1;
            seen < 2
        })
        .unwrap();
    assert_eq!(seen, 2, "the visitor stops the scan");

    // The last key under a prefix, whatever sorts after the prefix.
    let w = |k: &[u8]| KvWrite {
        cf: IndexCf::ReporterSeq,
        key: k.to_vec(),
        value: Some(k.to_vec()),
    };
    store
        .index_write(&[
            w(b"p\x01"),
            w(b"p\xff\x02"),
            w(b"p\xff\xff"),
            w(b"q"),
            w(b"\xff\xff"),
        ])
        .unwrap();
    let last = |p: &[u8]| {
        store
            .index_last(IndexCf::ReporterSeq, p)
            .unwrap()
            .map(|(k, _)| k)
    };
    assert_eq!(
        last(b"p").as_deref(),
        Some(&b"p\xff\xff"[..]),
        "last under a prefix"
    );
    assert_eq!(
        last(b"p\xff").as_deref(),
        Some(&b"p\xff\xff"[..]),
        "a prefix ending in 0xff"
    );
    assert_eq!(
        last(b"p\x01").as_deref(),
        Some(&b"p\x01"[..]),
        "a key equal to the prefix"
    );
    assert_eq!(last(b"o"), None, "no key under the prefix");
    assert_eq!(
        last(b"").as_deref(),
        Some(&b"\xff\xff"[..]),
        "the empty prefix"
    );
    assert_eq!(last(b"\xff").as_deref(), Some(&b"\xff\xff"[..]), "all 0xff");
    assert_eq!(
        store.index_last(IndexCf::Births, b"p").unwrap(),
        None,
        "families are separate"
    );

    // A snapshot reads the indexes as they were when it was taken: puts,
    // deletes and new keys after it are not seen, through any read.
    let snap = store.index_snapshot().unwrap();
    let before_last = snap.index_last(IndexCf::ReporterSeq, b"p").unwrap();
    store
        .index_write(&[
            KvWrite {
                cf: IndexCf::ReporterSeq,
                key: b"p\xff\xff".to_vec(),
                value: None,
            },
            KvWrite {
                cf: IndexCf::ReporterSeq,
                key: b"p\x01".to_vec(),
                value: Some(b"changed".to_vec()),
            },
            KvWrite {
                cf: IndexCf::ReporterSeq,
                key: b"p\x00new".to_vec(),
                value: Some(Vec::new()),
            },
        ])
        .unwrap();
    assert_eq!(
        snap.index_last(IndexCf::ReporterSeq, b"p").unwrap(),
        before_last,
        "a snapshot sees a key deleted after it"
    );
    let mut seen = Vec::new();
    snap.index_scan(IndexCf::ReporterSeq, b"p", b"p", &mut |k, v| {
        seen.push((k.to_vec(), v.to_vec()));
        true
    })
    .unwrap();
    assert!(
        !seen.iter().any(|(k, _)| k == b"p\x00new"),
        "a snapshot sees a key written after it"
    );
    assert_ne!(
        snap.index_get(IndexCf::ReporterSeq, b"p\x01")
            .unwrap()
            .as_deref(),
        Some(&b"changed"[..]),
        "a snapshot sees a value changed after it"
    );
    assert_eq!(
        store
            .index_get(IndexCf::ReporterSeq, b"p\x01")
            .unwrap()
            .as_deref(),
        Some(&b"changed"[..]),
        "the store itself sees the change"
    );
    drop(snap);

    // Checkpoints, by size, latest by size.
    store.put_checkpoint(5, b"cp5").unwrap();
    store.put_checkpoint(8, b"cp8").unwrap();
    assert_eq!(store.checkpoint(5).unwrap().as_deref(), Some(&b"cp5"[..]));
    assert!(store.checkpoint(6).unwrap().is_none());
    assert_eq!(
        store.latest_checkpoint().unwrap(),
        Some((8, b"cp8".to_vec()))
    );
    // The latest no larger than a size: what queries answer as of while
    // a bulk event's members are being applied.
    assert_eq!(
        store.checkpoint_at_or_below(7).unwrap(),
        Some((5, b"cp5".to_vec()))
    );
    assert_eq!(
        store.checkpoint_at_or_below(8).unwrap(),
        Some((8, b"cp8".to_vec()))
    );
    assert!(store.checkpoint_at_or_below(4).unwrap().is_none());
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_store_meets_the_contract() {
        super::check_all(&crate::MemoryStore::default());
    }
}
