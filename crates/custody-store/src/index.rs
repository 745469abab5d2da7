//! The custody indexes: their column families, key layouts and record
//! encodings, written once here for every backend.
//!
//! A backend only stores opaque key/value pairs per [`IndexCf`]
//! ([`LogStore::index_get`], [`LogStore::index_scan`]); this module decides
//! what the bytes mean. Keys are big-endian and length-prefixed so that a
//! prefix scan visits one asset, system or party in log order.
//!
//! | family | key | value |
//! |---|---|---|
//! | `asset_entries` | asset ‖ index | – |
//! | `party_entries` | lp(party) ‖ index | – |
//! | `system_intervals` | lp(system) ‖ asset ‖ opened_by | interval |
//! | `asset_intervals` | asset ‖ lp(system) ‖ opened_by | interval |
//! | `open` | asset ‖ lp(system) | opened_by |
//! | `open_since` | retention start ‖ asset ‖ lp(system) | opened_by (open intervals) |
//! | `assets` | asset | modality, subject class, created_by, created_at |
//! | `transfers` | index | to_system, recipient, assets, receipt |
//! | `reporter_seq` | lp(reporter) ‖ seq ‖ index | – |
//! | `manifest_meta` | root | count |
//! | `manifest_members` | root ‖ ordinal | digest |
//! | `manifest_hashes` | root ‖ stored-hash index | hash |
//! | `manifest_pending` | root | uploaded at, count, lp(uploader): uploaded, not yet named by an entry |
//! | `findings` | index ‖ n | a finding the entry raised |
//! | `findings_by_time` | time ‖ id | index ‖ n ‖ rule of a raised finding |
//! | `findings_counts` | !index | findings raised by entries up to index, by rule |
//! | `births` | asset | born, born_by, classes (derived assets only) |
//! | `pending` | index | a transfer's time, actor, destination, observer |
//! | `receipts` | transfer index | receipt time, receipt index |
//! | `attesting` | lp(system) | party, since, since_by |
//! | `attestations` | lp(system) ‖ index | time |
//! | `derived_meta` | name | the settings derived state was computed with |
//! | `transfer_due` | kind ‖ time or entry ‖ transfer index | – |
//! | `closed` | kind ‖ closing entry or time ‖ interval key | – |
//! | `scope` | lp(system) ‖ … | breach-scope counts (see `scope.rs`) |
//! | `scope_seen` | asset | – (it had an interval it was not created with) |
//!
//! `lp(s)` is one length byte then the id's bytes (ids are at most 64).

use std::sync::Arc;

use custody_domain::{
    AssetMeta, AssetRef, CustodyView, Digest, Effects, Interval, ManifestRef, Modality, Refusal,
    SubjectClass, Transfer,
};

use crate::{IndexRead, StoreError};

mod findings;
mod scope;
pub use findings::{
    check_derived_settings, findings_writes, findings_writes_from, retention_writes, Progress,
    RaisedCounts, PROGRESS_EVERY,
};
pub use scope::{scope_count, scope_writes, ScopeClass, ScopeCount};

/// `IndexCf` is one index column family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum IndexCf {
    AssetEntries,
    PartyEntries,
    SystemIntervals,
    AssetIntervals,
    Open,
    Assets,
    Transfers,
    ReporterSeq,
    ManifestMeta,
    ManifestMembers,
    ManifestHashes,
    Findings,
    Births,
    Pending,
    Receipts,
    Attesting,
    Attestations,
    DerivedMeta,
    TransferDue,
    Closed,
    FindingsByTime,
    FindingsCounts,
    OpenSince,
    Scope,
    ScopeSeen,
    ManifestPending,
}

impl IndexCf {
    /// `ALL` lists every index family.
    pub const ALL: [IndexCf; 26] = [
        IndexCf::AssetEntries,
        IndexCf::PartyEntries,
        IndexCf::SystemIntervals,
        IndexCf::AssetIntervals,
        IndexCf::Open,
        IndexCf::Assets,
        IndexCf::Transfers,
        IndexCf::ReporterSeq,
        IndexCf::ManifestMeta,
        IndexCf::ManifestMembers,
        IndexCf::ManifestHashes,
        IndexCf::Findings,
        IndexCf::Births,
        IndexCf::Pending,
        IndexCf::Receipts,
        IndexCf::Attesting,
        IndexCf::Attestations,
        IndexCf::DerivedMeta,
        IndexCf::TransferDue,
        IndexCf::Closed,
        IndexCf::FindingsByTime,
        IndexCf::FindingsCounts,
        IndexCf::OpenSince,
        IndexCf::Scope,
        IndexCf::ScopeSeen,
        IndexCf::ManifestPending,
    ];

    /// `name` is the family's storage name.
    pub fn name(self) -> &'static str {
        match self {
            IndexCf::AssetEntries => "asset_entries",
            IndexCf::PartyEntries => "party_entries",
            IndexCf::SystemIntervals => "system_intervals",
            IndexCf::AssetIntervals => "asset_intervals",
            IndexCf::Open => "open",
            IndexCf::Assets => "assets",
            IndexCf::Transfers => "transfers",
            IndexCf::ReporterSeq => "reporter_seq",
            IndexCf::ManifestMeta => "manifest_meta",
            IndexCf::ManifestMembers => "manifest_members",
            IndexCf::ManifestHashes => "manifest_hashes",
            IndexCf::Findings => "findings",
            IndexCf::Births => "births",
            IndexCf::Pending => "pending",
            IndexCf::Receipts => "receipts",
            IndexCf::Attesting => "attesting",
            IndexCf::Attestations => "attestations",
            IndexCf::DerivedMeta => "derived_meta",
            IndexCf::TransferDue => "transfer_due",
            IndexCf::Closed => "closed",
            IndexCf::FindingsByTime => "findings_by_time",
            IndexCf::FindingsCounts => "findings_counts",
            IndexCf::OpenSince => "open_since",
            IndexCf::Scope => "scope",
            IndexCf::ScopeSeen => "scope_seen",
            IndexCf::ManifestPending => "manifest_pending",
        }
    }
}

/// `KvWrite` is one index write: a put, or a delete when `value` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvWrite {
    /// The family.
    pub cf: IndexCf,
    /// The key.
    pub key: Vec<u8>,
    /// The value, or `None` to delete.
    pub value: Option<Vec<u8>>,
}

fn put(cf: IndexCf, key: Vec<u8>, value: Vec<u8>) -> KvWrite {
    KvWrite {
        cf,
        key,
        value: Some(value),
    }
}

fn lp(out: &mut Vec<u8>, s: &str) {
    // Ids are validated to at most 64 bytes before they get here.
    debug_assert!(
        s.len() <= 255,
        "bug: id longer than 255 bytes reached the index"
    );
    out.push(s.len().min(255) as u8);
    out.extend_from_slice(&s.as_bytes()[..s.len().min(255)]);
}

fn lp_key(s: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(s.len() + 1);
    lp(&mut k, s);
    k
}

/// A reader over stored bytes that fails with `Corrupt` when they run out.
struct Reader<'a> {
    b: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.b.len() < n {
            return Err(StoreError::Corrupt(format!("short {} record", self.what)));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(self.u64()? as i64)
    }
    fn digest(&mut self) -> Result<Digest, StoreError> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }
    fn string(&mut self) -> Result<String, StoreError> {
        let n = self.u8()? as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| StoreError::Corrupt(format!("{} id is not UTF-8", self.what)))
    }
    fn opt_u64(&mut self) -> Result<Option<u64>, StoreError> {
        match self.u8()? {
            0 => Ok(None),
            _ => Ok(Some(self.u64()?)),
        }
    }
    fn done(&self) -> Result<(), StoreError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!("long {} record", self.what)))
        }
    }
}

fn opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// The interval's value: party, from, to, closed_by, modality, subject class.
fn interval_value(i: &Interval) -> Vec<u8> {
    let mut v = Vec::with_capacity(48);
    lp(&mut v, &i.party);
    v.extend_from_slice(&i.from.to_be_bytes());
    opt_u64(&mut v, i.to.map(|t| t as u64));
    opt_u64(&mut v, i.closed_by);
    v.push(i.modality.map_or(0, Modality::code));
    v.push(i.subject_class.map_or(0, SubjectClass::code));
    v
}

/// `IntervalFields` is an interval value's fields, read in place.
struct IntervalFields<'a> {
    party: &'a [u8],
    from: i64,
    to: Option<i64>,
    closed_by: Option<u64>,
    modality: u8,
    subject_class: u8,
}

/// `interval_fields` reads what [`interval_value`] wrote.
fn interval_fields(value: &[u8]) -> Result<IntervalFields<'_>, StoreError> {
    let mut r = Reader {
        b: value,
        what: "interval",
    };
    let n = r.u8()? as usize;
    let party = r.take(n)?;
    let from = r.i64()?;
    let to = r.opt_u64()?.map(|t| t as i64);
    let closed_by = r.opt_u64()?;
    let modality = r.u8()?;
    let subject_class = r.u8()?;
    r.done()?;
    Ok(IntervalFields {
        party,
        from,
        to,
        closed_by,
        modality,
        subject_class,
    })
}

fn decode_interval_value(
    asset: Digest,
    system: String,
    opened_by: u64,
    value: &[u8],
) -> Result<Interval, StoreError> {
    let f = interval_fields(value)?;
    Ok(Interval {
        asset,
        system,
        party: String::from_utf8(f.party.to_vec())
            .map_err(|_| StoreError::Corrupt("interval id is not UTF-8".into()))?,
        from: f.from,
        to: f.to,
        opened_by,
        closed_by: f.closed_by,
        modality: Modality::from_code(f.modality),
        subject_class: SubjectClass::from_code(f.subject_class),
    })
}

fn system_interval_key(system: &str, asset: &Digest, opened_by: u64) -> Vec<u8> {
    let mut k = lp_key(system);
    k.extend_from_slice(asset);
    k.extend_from_slice(&opened_by.to_be_bytes());
    k
}

fn asset_interval_key(asset: &Digest, system: &str, opened_by: u64) -> Vec<u8> {
    let mut k = asset.to_vec();
    lp(&mut k, system);
    k.extend_from_slice(&opened_by.to_be_bytes());
    k
}

fn open_key(asset: &Digest, system: &str) -> Vec<u8> {
    let mut k = asset.to_vec();
    lp(&mut k, system);
    k
}

fn asset_ref_bytes(out: &mut Vec<u8>, a: &AssetRef) {
    match a {
        AssetRef::One(d) => {
            out.push(1);
            out.extend_from_slice(d);
        }
        AssetRef::Manifest(m) => {
            out.push(2);
            out.extend_from_slice(&m.root);
            out.extend_from_slice(&m.count.to_be_bytes());
        }
    }
}

/// The two kinds of `closed` keys, by their first byte: a closed interval
/// by the entry that closed it, and by the time it closed, each followed
/// by its `system_intervals` key. An answer as of a tree size and a time
/// reads the intervals open now (`open`) and, from these, those closed by
/// a later entry or at a later time, instead of every interval ever
/// opened.
pub(crate) const CLOSED_BY_ENTRY: u8 = b'e';
pub(crate) const CLOSED_AT_TIME: u8 = b't';

/// `ordered` is `t` as bytes that sort as the numbers do.
pub(crate) fn ordered(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// `closed_writes` indexes a closed interval by its closing entry and time.
pub(crate) fn closed_writes(i: &Interval) -> Vec<KvWrite> {
    let (Some(by), Some(to)) = (i.closed_by, i.to) else {
        return Vec::new();
    };
    let tail = system_interval_key(&i.system, &i.asset, i.opened_by);
    let mut e = vec![CLOSED_BY_ENTRY];
    e.extend_from_slice(&by.to_be_bytes());
    e.extend_from_slice(&tail);
    let mut t = vec![CLOSED_AT_TIME];
    t.extend_from_slice(&ordered(to));
    t.extend_from_slice(&tail);
    vec![
        put(IndexCf::Closed, e, Vec::new()),
        put(IndexCf::Closed, t, Vec::new()),
    ]
}

/// `interval_writes` stores an interval under both keyings.
fn interval_writes(out: &mut Vec<KvWrite>, i: &Interval) {
    let v = interval_value(i);
    out.push(put(
        IndexCf::SystemIntervals,
        system_interval_key(&i.system, &i.asset, i.opened_by),
        v.clone(),
    ));
    out.push(put(
        IndexCf::AssetIntervals,
        asset_interval_key(&i.asset, &i.system, i.opened_by),
        v,
    ));
}

/// `index_writes` is everything the indexes gain from the entry at `index`,
/// reported by `reporter` with sequence number `seq`, with effects `fx`.
pub fn index_writes(index: u64, reporter: &str, seq: u64, fx: &Effects) -> Vec<KvWrite> {
    let ix = index.to_be_bytes();
    let mut out = Vec::with_capacity(fx.assets.len() + 3 * fx.opened.len() + 4);
    for a in &fx.assets {
        let mut k = a.to_vec();
        k.extend_from_slice(&ix);
        out.push(put(IndexCf::AssetEntries, k, Vec::new()));
    }
    for p in &fx.parties {
        let mut k = lp_key(p);
        k.extend_from_slice(&ix);
        out.push(put(IndexCf::PartyEntries, k, Vec::new()));
    }
    let mut k = lp_key(reporter);
    k.extend_from_slice(&seq.to_be_bytes());
    k.extend_from_slice(&ix);
    out.push(put(IndexCf::ReporterSeq, k, Vec::new()));
    for (d, m) in &fx.created {
        let mut v = vec![m.modality.code(), m.subject_class.code()];
        v.extend_from_slice(&m.created_by.to_be_bytes());
        v.extend_from_slice(&m.created_at.to_be_bytes());
        out.push(put(IndexCf::Assets, d.to_vec(), v));
    }
    for i in &fx.closed {
        interval_writes(&mut out, i);
        out.push(KvWrite {
            cf: IndexCf::Open,
            key: open_key(&i.asset, &i.system),
            value: None,
        });
        out.extend(closed_writes(i));
    }
    for i in &fx.opened {
        interval_writes(&mut out, i);
        out.push(put(
            IndexCf::Open,
            open_key(&i.asset, &i.system),
            i.opened_by.to_be_bytes().to_vec(),
        ));
    }
    if let Some(m) = &fx.manifest {
        // Named: no longer an upload waiting to be (and so never removed).
        out.push(KvWrite {
            cf: IndexCf::ManifestPending,
            key: m.root.to_vec(),
            value: None,
        });
    }
    if let Some((at, t)) = &fx.transfer {
        let mut v = Vec::new();
        lp(&mut v, &t.to_system);
        lp(&mut v, &t.recipient);
        asset_ref_bytes(&mut v, &t.asset);
        opt_u64(&mut v, t.receipt);
        out.push(put(IndexCf::Transfers, at.to_be_bytes().to_vec(), v));
    }
    out
}

/// `manifest_writes` stores a manifest: its count, its members in order and
/// its tree's stored hashes.
pub fn manifest_writes(
    root: &Digest,
    members: &[Digest],
    hashes: &[(u64, [u8; 32])],
) -> Vec<KvWrite> {
    let mut out = manifest_member_writes(root, 0, members);
    out.extend(manifest_hash_writes(root, hashes));
    // Written last in the batch; the whole batch is atomic anyway.
    out.push(manifest_meta_write(root, members.len() as u64));
    out
}

/// `manifest_member_writes` stores members of a manifest, the first of
/// them at ordinal `first`: one piece of a large manifest, written before
/// its [`manifest_meta_write`], which makes it known.
pub fn manifest_member_writes(root: &Digest, first: u64, members: &[Digest]) -> Vec<KvWrite> {
    members
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut k = root.to_vec();
            k.extend_from_slice(&(first + i as u64).to_be_bytes());
            put(IndexCf::ManifestMembers, k, d.to_vec())
        })
        .collect()
}

/// `manifest_hash_writes` stores stored hashes of a manifest's tree.
pub fn manifest_hash_writes(root: &Digest, hashes: &[(u64, [u8; 32])]) -> Vec<KvWrite> {
    hashes
        .iter()
        .map(|(i, h)| {
            let mut k = root.to_vec();
            k.extend_from_slice(&i.to_be_bytes());
            put(IndexCf::ManifestHashes, k, h.to_vec())
        })
        .collect()
}

/// `manifest_meta_write` records a manifest's member count: once it is
/// written, the manifest is uploaded.
pub fn manifest_meta_write(root: &Digest, count: u64) -> KvWrite {
    put(
        IndexCf::ManifestMeta,
        root.to_vec(),
        count.to_be_bytes().to_vec(),
    )
}

fn tail_u64(key: &[u8]) -> Result<u64, StoreError> {
    let Some(t) = key.len().checked_sub(8).map(|n| &key[n..]) else {
        return Err(StoreError::Corrupt("index key too short".into()));
    };
    let mut a = [0u8; 8];
    a.copy_from_slice(t);
    Ok(u64::from_be_bytes(a))
}

/// `open_interval` is the open interval of `asset` on `system`.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn open_interval(
    s: &dyn IndexRead,
    asset: &Digest,
    system: &str,
) -> Result<Option<Interval>, StoreError> {
    let Some(v) = s.index_get(IndexCf::Open, &open_key(asset, system))? else {
        return Ok(None);
    };
    let opened_by = tail_u64(&v)?;
    let key = system_interval_key(system, asset, opened_by);
    let rec = s
        .index_get(IndexCf::SystemIntervals, &key)?
        .ok_or_else(|| StoreError::Corrupt("open interval without its record".into()))?;
    decode_interval_value(*asset, system.to_owned(), opened_by, &rec).map(Some)
}

/// `asset_meta` is what is known of an asset's creation.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn asset_meta(s: &dyn IndexRead, asset: &Digest) -> Result<Option<AssetMeta>, StoreError> {
    let Some(v) = s.index_get(IndexCf::Assets, asset)? else {
        return Ok(None);
    };
    let mut r = Reader {
        b: &v,
        what: "asset",
    };
    let bad = || StoreError::Corrupt("asset record with an unknown code".into());
    let modality = Modality::from_code(r.u8()?).ok_or_else(bad)?;
    let subject_class = SubjectClass::from_code(r.u8()?).ok_or_else(bad)?;
    let created_by = r.u64()?;
    let created_at = r.i64()?;
    r.done()?;
    Ok(Some(AssetMeta {
        modality,
        subject_class,
        created_by,
        created_at,
    }))
}

/// `transfer` is the COPY or MOVE at `index`, if that entry is one.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn transfer(s: &dyn IndexRead, index: u64) -> Result<Option<Transfer>, StoreError> {
    let Some(v) = s.index_get(IndexCf::Transfers, &index.to_be_bytes())? else {
        return Ok(None);
    };
    let mut r = Reader {
        b: &v,
        what: "transfer",
    };
    let to_system = r.string()?;
    let recipient = r.string()?;
    let asset = match r.u8()? {
        1 => AssetRef::One(r.digest()?),
        2 => AssetRef::Manifest(ManifestRef {
            root: r.digest()?,
            count: r.u64()?,
        }),
        _ => return Err(StoreError::Corrupt("transfer asset tag".into())),
    };
    let receipt = r.opt_u64()?;
    r.done()?;
    Ok(Some(Transfer {
        to_system,
        recipient,
        asset,
        receipt,
    }))
}

/// `PendingManifest` is an uploaded manifest no entry names yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingManifest {
    /// Its root.
    pub root: Digest,
    /// When it was uploaded (or last uploaded again), Unix nanoseconds.
    pub uploaded_at: i64,
    /// Its member count.
    pub count: u64,
    /// Who uploaded it: a party, or for an open server the peer's
    /// address.
    pub uploader: String,
}

/// `manifest_pending_write` records `p` as waiting to be named.
pub fn manifest_pending_write(p: &PendingManifest) -> KvWrite {
    let mut v = Vec::with_capacity(17 + p.uploader.len());
    v.extend_from_slice(&p.uploaded_at.to_be_bytes());
    v.extend_from_slice(&p.count.to_be_bytes());
    lp(&mut v, &p.uploader);
    put(IndexCf::ManifestPending, p.root.to_vec(), v)
}

/// `pending_manifests` is every uploaded manifest no entry names yet.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn pending_manifests(s: &dyn IndexRead) -> Result<Vec<PendingManifest>, StoreError> {
    let mut out = Vec::new();
    let mut bad = None;
    s.index_scan(IndexCf::ManifestPending, &[], &[], &mut |k, v| {
        let parsed = (|| {
            let root: Digest = k.try_into().ok()?;
            let at = i64::from_be_bytes(v.get(..8)?.try_into().ok()?);
            let count = u64::from_be_bytes(v.get(8..16)?.try_into().ok()?);
            let n = usize::from(*v.get(16)?);
            let uploader = std::str::from_utf8(v.get(17..17 + n)?).ok()?.to_owned();
            Some(PendingManifest {
                root,
                uploaded_at: at,
                count,
                uploader,
            })
        })();
        match parsed {
            Some(p) => {
                out.push(p);
                true
            }
            None => {
                bad = Some(StoreError::Corrupt("manifest_pending record".into()));
                false
            }
        }
    })?;
    match bad {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `is_pending` is whether the manifest `root` was uploaded and no entry
/// names it yet.
///
/// # Errors
///
/// [`StoreError`] on engine failure.
pub fn is_pending(s: &dyn IndexRead, root: &Digest) -> Result<bool, StoreError> {
    Ok(s.index_get(IndexCf::ManifestPending, root)?.is_some())
}

/// `manifest_count` is the member count of an uploaded manifest.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn manifest_count(s: &dyn IndexRead, root: &Digest) -> Result<Option<u64>, StoreError> {
    s.index_get(IndexCf::ManifestMeta, root)?
        .map(|v| tail_u64(&v))
        .transpose()
}

/// `manifest_members` reads members `[start, start + limit)`.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn manifest_members(
    s: &dyn IndexRead,
    root: &Digest,
    start: u64,
    limit: usize,
) -> Result<Vec<Digest>, StoreError> {
    // The scan below visits a member before it checks the limit.
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut from = root.to_vec();
    from.extend_from_slice(&start.to_be_bytes());
    let mut out = Vec::new();
    let mut bad = false;
    s.index_scan(IndexCf::ManifestMembers, root, &from, &mut |_, v| {
        match <[u8; 32]>::try_from(v) {
            Ok(d) => out.push(d),
            Err(_) => bad = true,
        }
        !bad && out.len() < limit
    })?;
    if bad {
        return Err(StoreError::Corrupt(
            "manifest member is not 32 bytes".into(),
        ));
    }
    Ok(out)
}

/// `manifest_member` is member `ordinal` of a manifest.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn manifest_member(
    s: &dyn IndexRead,
    root: &Digest,
    ordinal: u64,
) -> Result<Option<Digest>, StoreError> {
    let mut k = root.to_vec();
    k.extend_from_slice(&ordinal.to_be_bytes());
    match s.index_get(IndexCf::ManifestMembers, &k)? {
        None => Ok(None),
        Some(v) => <[u8; 32]>::try_from(v.as_slice())
            .map(Some)
            .map_err(|_| StoreError::Corrupt("manifest member is not 32 bytes".into())),
    }
}

/// `manifest_hashes` reads a manifest tree's stored hashes.
///
/// # Errors
///
/// [`StoreError::NotFound`] if any is absent.
pub fn manifest_hashes(
    s: &dyn IndexRead,
    root: &Digest,
    indexes: &[u64],
) -> Result<Vec<[u8; 32]>, StoreError> {
    indexes
        .iter()
        .map(|i| {
            let mut k = root.to_vec();
            k.extend_from_slice(&i.to_be_bytes());
            let v = s
                .index_get(IndexCf::ManifestHashes, &k)?
                .ok_or_else(|| StoreError::NotFound(format!("manifest hash {i}")))?;
            <[u8; 32]>::try_from(v.as_slice())
                .map_err(|_| StoreError::Corrupt("manifest hash is not 32 bytes".into()))
        })
        .collect()
}

/// `asset_intervals` is every interval of `asset`, on every system.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn asset_intervals(s: &dyn IndexRead, asset: &Digest) -> Result<Vec<Interval>, StoreError> {
    let mut out = Vec::new();
    scan_asset_intervals(s, asset, &mut |i| {
        out.push(i);
        true
    })?;
    Ok(out)
}

/// `scan_asset_intervals` visits the intervals of `asset` in (system,
/// opened_by) order until `f` returns false.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn scan_asset_intervals(
    s: &dyn IndexRead,
    asset: &Digest,
    f: &mut dyn FnMut(Interval) -> bool,
) -> Result<(), StoreError> {
    let mut err = None;
    s.index_scan(IndexCf::AssetIntervals, asset, asset, &mut |k, v| {
        let r = (|| {
            let mut r = Reader {
                b: &k[32..],
                what: "asset interval key",
            };
            let system = r.string()?;
            let opened_by = r.u64()?;
            r.done()?;
            decode_interval_value(*asset, system, opened_by, v)
        })();
        match r {
            Ok(i) => f(i),
            Err(e) => {
                err = Some(e);
                false
            }
        }
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `SystemCursor` is where a scan of a system's intervals resumes: after
/// this asset and opening index.
pub type SystemCursor = (Digest, u64);

/// `scan_system_intervals` visits the system's intervals in (asset,
/// opened_by) order, after `after` if given, until `f` returns false.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn scan_system_intervals(
    s: &dyn IndexRead,
    system: &str,
    after: Option<SystemCursor>,
    f: &mut dyn FnMut(Interval) -> bool,
) -> Result<(), StoreError> {
    let prefix = lp_key(system);
    let start = match after {
        None => prefix.clone(),
        Some((asset, opened_by)) => {
            // The next key after `after`.
            let mut k = system_interval_key(system, &asset, opened_by);
            k.push(0);
            k
        }
    };
    let mut err = None;
    s.index_scan(IndexCf::SystemIntervals, &prefix, &start, &mut |k, v| {
        let r = (|| {
            let mut r = Reader {
                b: &k[prefix.len()..],
                what: "system interval key",
            };
            let asset = r.digest()?;
            let opened_by = r.u64()?;
            r.done()?;
            decode_interval_value(asset, system.to_owned(), opened_by, v)
        })();
        match r {
            Ok(i) => f(i),
            Err(e) => {
                err = Some(e);
                false
            }
        }
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn scan_indexes(
    s: &dyn IndexRead,
    cf: IndexCf,
    prefix: Vec<u8>,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<u64>, StoreError> {
    let mut start = prefix.clone();
    if let Some(a) = after {
        match a.checked_add(1) {
            Some(n) => start.extend_from_slice(&n.to_be_bytes()),
            None => return Ok(Vec::new()),
        }
    }
    let mut out = Vec::new();
    let mut err = None;
    s.index_scan(cf, &prefix, &start, &mut |k, _| {
        match tail_u64(k) {
            Ok(i) => out.push(i),
            Err(e) => err = Some(e),
        }
        err.is_none() && out.len() < limit
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `asset_entries` lists up to `limit` log indexes of entries about
/// `asset`, ascending, after `after`.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn asset_entries(
    s: &dyn IndexRead,
    asset: &Digest,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<u64>, StoreError> {
    scan_indexes(s, IndexCf::AssetEntries, asset.to_vec(), after, limit)
}

/// `party_entries` lists up to `limit` log indexes of entries naming
/// `party`, ascending, after `after`.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn party_entries(
    s: &dyn IndexRead,
    party: &str,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<u64>, StoreError> {
    scan_indexes(s, IndexCf::PartyEntries, lp_key(party), after, limit)
}

/// `reporter_seqs` lists `(seq, index)` for `reporter`'s entries in
/// sequence-number order, up to `limit`.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn reporter_seqs(
    s: &dyn IndexRead,
    reporter: &str,
    limit: usize,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let prefix = lp_key(reporter);
    let mut out = Vec::new();
    let mut err = None;
    s.index_scan(IndexCf::ReporterSeq, &prefix, &prefix, &mut |k, _| {
        let mut r = Reader {
            b: &k[prefix.len()..],
            what: "reporter seq key",
        };
        match (r.u64(), r.u64()) {
            (Ok(seq), Ok(i)) => out.push((seq, i)),
            (Err(e), _) | (_, Err(e)) => err = Some(e),
        }
        err.is_none() && out.len() < limit
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `StoreView` is the committed custody state in a store, as the domain's
/// [`CustodyView`].
pub struct StoreView<'a>(pub &'a dyn IndexRead);

fn storage(e: StoreError) -> Refusal {
    Refusal::exhausted(format!("custody state lookup failed: {e}; retry"))
}

impl CustodyView for StoreView<'_> {
    fn open_interval(&self, asset: &Digest, system: &str) -> Result<Option<Interval>, Refusal> {
        open_interval(self.0, asset, system).map_err(storage)
    }

    fn asset_meta(&self, asset: &Digest) -> Result<Option<AssetMeta>, Refusal> {
        asset_meta(self.0, asset).map_err(storage)
    }

    fn transfer(&self, index: u64) -> Result<Option<Transfer>, Refusal> {
        transfer(self.0, index).map_err(storage)
    }

    fn manifest(&self, m: &ManifestRef) -> Result<Option<Arc<Vec<Digest>>>, Refusal> {
        match manifest_count(self.0, &m.root).map_err(storage)? {
            Some(n) if n == m.count => {
                let members = manifest_members(self.0, &m.root, 0, n as usize).map_err(storage)?;
                if members.len() as u64 != n {
                    return Err(storage(StoreError::Corrupt(format!(
                        "manifest {} lists {} of its {n} members",
                        custody_domain::hex(&m.root),
                        members.len()
                    ))));
                }
                Ok(Some(Arc::new(members)))
            }
            _ => Ok(None),
        }
    }

    fn manifest_members(
        &self,
        m: &ManifestRef,
        range: std::ops::Range<usize>,
    ) -> Result<Option<Vec<Digest>>, Refusal> {
        match manifest_count(self.0, &m.root).map_err(storage)? {
            Some(n) if n == m.count => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                let end = range.end.min(n);
                let start = range.start.min(end);
                if start == end {
                    return Ok(Some(Vec::new()));
                }
                let members = manifest_members(self.0, &m.root, start as u64, end - start)
                    .map_err(storage)?;
                if members.len() != end - start {
                    return Err(storage(StoreError::Corrupt(format!(
                        "manifest {} lists {} of its members {start}..{end}",
                        custody_domain::hex(&m.root),
                        members.len()
                    ))));
                }
                Ok(Some(members))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LogStore as _, MemoryStore};

    /// A page of no members is empty: a limit of 0 once read one member
    /// (found by the `manifest` fuzz target).
    #[test]
    fn a_page_of_manifest_members_holds_at_most_its_limit() {
        let s = MemoryStore::default();
        let root = [9u8; 32];
        let members = [[1u8; 32], [2; 32], [3; 32]];
        s.index_write(&manifest_writes(&root, &members, &[]))
            .unwrap();
        for start in 0..4u64 {
            for limit in 0..5usize {
                let page = manifest_members(&s, &root, start, limit).unwrap();
                let from = (start as usize).min(members.len());
                let want = &members[from..members.len().min(from + limit)];
                assert_eq!(page, want, "members {start}+{limit}");
            }
        }
    }
}
