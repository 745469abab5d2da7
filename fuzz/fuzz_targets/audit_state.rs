//! The state `custody audit --state DIR` resumes from, read back.
//!
//! Since commit d431985 that state is an embedded RocksDB holding the
//! server's own index families, written and read with custody-store's
//! record encodings (`custody_store::index`), so a resumed audit, and the
//! server, decode what is stored there with those readers. The input's
//! first byte picks:
//!
//! - even: the fixture log's index, copied into a `MemoryStore`, then
//!   changed by records from the input (family, key, value or deletion),
//!   then read back with custody-store's readers: every record the input
//!   touched, by its family, and the findings, holdings and breach-scope
//!   reads over the whole store, as the audit's comparison and custodyd's
//!   answers make them. Corrupt records must give errors, not panics.
//! - odd: the serde form of custody-domain's `Replay` (registry, custody
//!   state, findings engine) in the bincode encoding, with the options the
//!   audit's state file used before d431985
//!   (`bincode::DefaultOptions::new().with_limit(file length)`). No
//!   current code reads that file, but `Replay` still derives
//!   `Deserialize` "so an auditor can save it and resume".
#![no_main]

use bincode::Options as _;
use custody_domain::findings::{
    findings_page, FindingsFilter, FindingsHistory as _, FindingsState as _,
};
use custody_domain::replay::Replay;
use custody_domain::{CustodyView as _, Digest};
use custody_fuzz::{fixture, Bytes, T0};
use custody_store::index::{self, StoreView};
use custody_store::{DedupRecord, IndexCf, IndexRead, KvWrite, LogStore, MemoryStore};
use libfuzzer_sys::fuzz_target;

/// Records the input may change per run.
const MAX_RECORDS: usize = 32;

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    if b.u8() % 2 == 0 {
        store(&mut b);
    } else {
        legacy(b.rest());
    }
});

fn store(b: &mut Bytes<'_>) {
    let fx = fixture();
    let s = MemoryStore::default();
    let mut copy = Vec::new();
    for cf in IndexCf::ALL {
        let _ = fx.store.index_scan(cf, &[], &[], &mut |k, v| {
            copy.push(KvWrite {
                cf,
                key: k.to_vec(),
                value: Some(v.to_vec()),
            });
            true
        });
    }
    if s.index_write(&copy).is_err() {
        return;
    }
    let size = fx.entries.len() as u64 + u64::from(b.u8() % 4);
    let as_of = T0 + b.i64() % (1 << 50);
    let mut touched = Vec::new();
    while !b.0.is_empty() && touched.len() < MAX_RECORDS {
        let cf = IndexCf::ALL[usize::from(b.u8()) % IndexCf::ALL.len()];
        let op = b.u8();
        let key = b.chunk().to_vec();
        // A quarter of the records are deletions.
        let value = (op >= 64).then(|| b.chunk().to_vec());
        let _ = DedupRecord::from_bytes(value.as_deref().unwrap_or(&[]));
        touched.push((cf, key.clone()));
        if s.index_write(&[KvWrite { cf, key, value }]).is_err() {
            return;
        }
    }
    for (cf, key) in &touched {
        read(&s, *cf, key, size);
    }

    // The whole-store reads: findings, as the server and the audit's
    // comparison read them, and the derived state's own check.
    let view = StoreView(&s);
    let _ = custody_domain::findings::findings_at(&view, &fx.registry, size, as_of);
    let _ = findings_page(
        &view,
        &fx.registry,
        size,
        as_of,
        &FindingsFilter::all(),
        None,
        50,
    );
    let _ = view.held(size, as_of, as_of, &mut |_| {});
    let _ = view.attesting(&mut |_, _| {});
    let _ = view.overdue_transfers(
        size,
        as_of,
        custody_domain::findings::Policy::default().receipt_window,
        &mut |_, _| {},
    );
    let mut progress = |_: &str, _: u64| {};
    let _ = index::check_derived_settings(&s, &mut progress);
    let _ = s.tree_size();
}

/// `read` reads what a record of family `cf` with key `key` is about,
/// with the readers that decode that family.
fn read(s: &MemoryStore, cf: IndexCf, key: &[u8], size: u64) {
    let view = StoreView(s);
    let asset = digest(key);
    let (system, _) = lp(key);
    let (asset_system, _) = lp(key.get(32..).unwrap_or(&[]));
    let index = u64_at(key);
    match cf {
        IndexCf::Assets | IndexCf::Births | IndexCf::ScopeSeen => {
            let _ = index::asset_meta(s, &asset);
            let _ = view.asset_meta(&asset);
            let _ = view.birth(&asset);
            let _ = view.class(&asset);
        }
        IndexCf::AssetIntervals | IndexCf::Open | IndexCf::AssetEntries => {
            let _ = index::asset_intervals(s, &asset);
            let _ = index::open_interval(s, &asset, &asset_system);
            let _ = view.open_interval(&asset, &asset_system);
            let _ = index::asset_entries(s, &asset, None, 20);
        }
        IndexCf::SystemIntervals | IndexCf::Scope | IndexCf::Attesting | IndexCf::Attestations => {
            let _ = index::scan_system_intervals(s, &system, None, &mut |_| true);
            let _ = index::scope_count(s, &system, i64::MIN, i64::MAX, size);
            let _ = index::scope_count(s, &system, T0, T0 + (1 << 40), size);
            let _ = view.is_attesting(&system);
        }
        IndexCf::PartyEntries => {
            let _ = index::party_entries(s, &system, None, 20);
        }
        IndexCf::ReporterSeq => {
            let _ = index::reporter_seqs(s, &system, 20);
            let _ = view.last_seq(&system);
        }
        IndexCf::Transfers | IndexCf::Pending | IndexCf::Receipts => {
            let _ = index::transfer(s, index);
            let _ = view.transfer_time(index);
            let _ = custody_domain::CustodyView::transfer(&view, index);
            let _ = custody_domain::findings::FindingsHistory::transfer(&view, index);
        }
        IndexCf::ManifestMeta | IndexCf::ManifestMembers | IndexCf::ManifestHashes => {
            let count = index::manifest_count(s, &asset);
            let _ = index::manifest_members(s, &asset, 0, 16);
            let _ = index::manifest_member(s, &asset, 0);
            let _ = index::manifest_hashes(s, &asset, &[0, 1, 2]);
            if let Ok(Some(count)) = count {
                let m = custody_domain::ManifestRef { root: asset, count };
                let _ = view.manifest_members(&m, 0..16);
                if count <= 1024 {
                    let _ = view.manifest(&m);
                }
            }
        }
        IndexCf::Findings | IndexCf::FindingsByTime | IndexCf::FindingsCounts => {
            let _ = view.raised_by(index, &mut |_| {});
            let _ = view.raised(size, &mut |_| {});
        }
        IndexCf::ManifestPending => {
            let _ = index::pending_manifests(s);
            let _ = index::is_pending(s, &asset);
        }
        IndexCf::DerivedMeta | IndexCf::TransferDue | IndexCf::Closed | IndexCf::OpenSince => {}
    }
}

fn digest(key: &[u8]) -> Digest {
    let mut d = [0u8; 32];
    let n = key.len().min(32);
    d[..n].copy_from_slice(&key[..n]);
    d
}

/// `lp` is the length-prefixed id at the start of `key` (empty if it is
/// not UTF-8: ids are text of at most 64 bytes, which custody-store
/// asserts), and what follows.
fn lp(key: &[u8]) -> (String, &[u8]) {
    let n = usize::from(key.first().copied().unwrap_or(0));
    let id = key.get(1..1 + n).unwrap_or(&[]);
    let rest = key.get(1 + n..).unwrap_or(&[]);
    let id = std::str::from_utf8(id).unwrap_or_default();
    (id.to_owned(), rest)
}

fn u64_at(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// `legacy` reads a `Replay` as the state file did, and writes it back.
fn legacy(data: &[u8]) {
    let options = bincode::DefaultOptions::new().with_limit(data.len() as u64);
    if let Ok(replay) = options.deserialize::<Replay>(data) {
        let again = bincode::DefaultOptions::new().serialize(&replay);
        if let Ok(bytes) = again {
            let back = bincode::DefaultOptions::new()
                .with_limit(bytes.len() as u64)
                .deserialize::<Replay>(&bytes);
            assert!(back.is_ok(), "a Replay does not read back: {back:?}");
        }
    }
}
