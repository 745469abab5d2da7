//! The findings' derived state in the store: what
//! [`custody_domain::findings::observe`] adds for each entry, written in
//! the entry's own batch, and read back by
//! [`custody_domain::findings::findings_at`] through [`StoreView`].
//!
//! Custody intervals, asset classes and reporter sequence numbers are the
//! custody indexes' own records (`system_intervals`, `assets`,
//! `reporter_seq`), read here rather than written twice. Scans are paged,
//! so no storage lock or iterator is held while a rule runs.

use custody_domain::findings::{
    finding_id, held_birth, raised_page_by_scan, retention_start, unacknowledged,
    unacknowledged_page_by_scan, Attesting, Birth, Finding, FindingsDelta, FindingsFilter,
    FindingsHistory, FindingsPage, FindingsState, HeldRow, PageCutter, Pending, Policies, Policy,
    Rule,
};
use custody_domain::{
    AssetRef, Digest, Effects, HoldRecord, Modality, Refusal, SubjectClass, Timestamp,
};

use super::scope::SCOPE_COUNTS;
use super::{
    asset_meta, decode_interval_value, lp, lp_key, manifest_member, put, storage, tail_u64,
    IndexCf, KvWrite, Reader, StoreView,
};
use super::{closed_writes, ordered, system_interval_key, CLOSED_AT_TIME, CLOSED_BY_ENTRY};
use crate::{IndexRead, LogStore, StoreError};

/// Records read per page of a scan.
const PAGE: usize = 1024;

fn lp16(out: &mut Vec<u8>, s: &str) {
    let n = s.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..n]);
}

fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            lp(out, s);
        }
    }
}

impl Reader<'_> {
    fn string16(&mut self) -> Result<String, StoreError> {
        let mut a = [0u8; 2];
        a.copy_from_slice(self.take(2)?);
        let n = u16::from_be_bytes(a) as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| StoreError::Corrupt(format!("{} text is not UTF-8", self.what)))
    }
    fn opt_string(&mut self) -> Result<Option<String>, StoreError> {
        match self.u8()? {
            0 => Ok(None),
            _ => Ok(Some(self.string()?)),
        }
    }
    fn opt_digest(&mut self) -> Result<Option<Digest>, StoreError> {
        match self.u8()? {
            0 => Ok(None),
            _ => Ok(Some(self.digest()?)),
        }
    }
}

fn finding_value(f: &Finding) -> Vec<u8> {
    let mut v = Vec::with_capacity(128);
    v.push(Rule::ALL.iter().position(|r| *r == f.rule).unwrap_or(0) as u8);
    lp16(&mut v, &f.id);
    v.extend_from_slice(&(f.entries.len().min(255) as u8).to_be_bytes());
    for e in f.entries.iter().take(255) {
        v.extend_from_slice(&e.to_be_bytes());
    }
    opt_str(&mut v, f.party.as_deref());
    opt_str(&mut v, f.system.as_deref());
    match &f.asset {
        None => v.push(0),
        Some(d) => {
            v.push(1);
            v.extend_from_slice(d);
        }
    }
    opt_str(&mut v, f.grant.as_deref());
    opt_str(&mut v, f.retention_rule.as_deref());
    v.extend_from_slice(&f.at.to_be_bytes());
    lp16(&mut v, &f.detail);
    opt_str(&mut v, f.observed_by.as_deref());
    opt_str(&mut v, f.observed_on.as_deref());
    v
}

fn decode_finding(value: &[u8]) -> Result<Finding, StoreError> {
    let mut r = Reader {
        b: value,
        what: "finding",
    };
    let rule = *Rule::ALL
        .get(r.u8()? as usize)
        .ok_or_else(|| StoreError::Corrupt("finding with an unknown rule".into()))?;
    let id = r.string16()?;
    let n = r.u8()?;
    let mut entries = Vec::with_capacity(n as usize);
    for _ in 0..n {
        entries.push(r.u64()?);
    }
    let f = Finding {
        id,
        rule,
        entries,
        party: r.opt_string()?,
        system: r.opt_string()?,
        asset: r.opt_digest()?,
        grant: r.opt_string()?,
        retention_rule: r.opt_string()?,
        at: r.i64()?,
        detail: r.string16()?,
        observed_by: r.opt_string()?,
        observed_on: r.opt_string()?,
    };
    r.done()?;
    Ok(f)
}

fn classes_value(v: &mut Vec<u8>, classes: &[(Modality, SubjectClass)]) {
    v.push(classes.len().min(255) as u8);
    for (m, s) in classes.iter().take(255) {
        v.push(m.code());
        v.push(s.code());
    }
}

fn decode_birth(value: &[u8]) -> Result<Birth, StoreError> {
    let mut r = Reader {
        b: value,
        what: "birth",
    };
    let born = r.i64()?;
    let by = r.u64()?;
    let n = r.u8()?;
    let mut classes = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let bad = || StoreError::Corrupt("birth record with an unknown code".into());
        let m = Modality::from_code(r.u8()?).ok_or_else(bad)?;
        let s = SubjectClass::from_code(r.u8()?).ok_or_else(bad)?;
        classes.push((m, s));
    }
    r.done()?;
    Ok((born, by, classes))
}

/// `by_time_write` indexes the `n`th finding raised by entry `index` by
/// (time, id), the order pages list findings in.
fn by_time_write(index: u64, n: u32, f: &Finding) -> KvWrite {
    let mut k = ordered(f.at).to_vec();
    k.extend_from_slice(f.id.as_bytes());
    let mut v = index.to_be_bytes().to_vec();
    v.extend_from_slice(&n.to_be_bytes());
    v.push(rule_code(f.rule));
    put(IndexCf::FindingsByTime, k, v)
}

fn rule_code(r: Rule) -> u8 {
    Rule::ALL.iter().position(|x| *x == r).unwrap_or(0) as u8
}

/// `RaisedCounts` is how many findings the entries up to one index
/// raised, by rule: `findings_counts` holds it for each entry that raised
/// any, so the count as of any tree size is one read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaisedCounts([u64; Rule::ALL.len()]);

impl RaisedCounts {
    /// `key` is the counts' key for entry `index`: descending, so the
    /// counts as of a size are the first key from that size down.
    fn key(index: u64) -> [u8; 8] {
        (u64::MAX - index).to_be_bytes()
    }

    /// `at` is the counts over the entries below `size`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store fails or holds a malformed record.
    pub fn at(s: &dyn IndexRead, size: u64) -> Result<Self, StoreError> {
        let mut out = Self::default();
        let Some(last) = size.checked_sub(1) else {
            return Ok(out);
        };
        let mut found = None;
        s.index_scan(
            IndexCf::FindingsCounts,
            &[],
            &Self::key(last),
            &mut |_, v| {
                found = Some(v.to_vec());
                false
            },
        )?;
        if let Some(v) = found {
            if v.len() != 8 * out.0.len() {
                return Err(StoreError::Corrupt(
                    "findings count record of the wrong length".into(),
                ));
            }
            for (c, b) in out.0.iter_mut().zip(v.chunks_exact(8)) {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                *c = u64::from_be_bytes(a);
            }
        }
        Ok(out)
    }

    /// `latest` is the counts over every entry committed.
    ///
    /// # Errors
    ///
    /// As [`RaisedCounts::at`].
    pub fn latest(s: &dyn IndexRead) -> Result<Self, StoreError> {
        Self::at(s, u64::MAX)
    }

    /// `add` counts the findings `d` raises for the entry at `index`, the
    /// next after those counted, and is the write that records the new
    /// counts, if it raised any.
    pub fn add(&mut self, index: u64, d: &FindingsDelta) -> Option<KvWrite> {
        if d.raised.is_empty() {
            return None;
        }
        self.count(d);
        Some(self.write(index))
    }

    /// `count` counts the findings `d` raises, without a write: for the
    /// slices of a bulk event, counted before the event is logged.
    pub fn count(&mut self, d: &FindingsDelta) {
        for f in &d.raised {
            self.bump(f.rule);
        }
    }

    /// `merge` adds the counts of `other`.
    pub fn merge(&mut self, other: &RaisedCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// `by_rule` is each rule's count, by the rule's name.
    pub fn by_rule(&self) -> Vec<(&'static str, u64)> {
        Rule::ALL.iter().map(|r| (r.name(), self.get(*r))).collect()
    }

    /// `total` is the number of findings counted, of every rule.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `record` is the write that records these counts as those of the
    /// entries up to `index`.
    pub fn record(&self, index: u64) -> KvWrite {
        self.write(index)
    }

    fn bump(&mut self, r: Rule) {
        self.0[rule_code(r) as usize] += 1;
    }

    fn write(&self, index: u64) -> KvWrite {
        let v: Vec<u8> = self.0.iter().flat_map(|c| c.to_be_bytes()).collect();
        put(IndexCf::FindingsCounts, Self::key(index).to_vec(), v)
    }

    /// `get` is the count of rule `r`.
    fn get(&self, r: Rule) -> u64 {
        self.0[rule_code(r) as usize]
    }
}

/// `open_since_key` is the `open_since` key of the open interval of
/// `asset` on `system` whose [`retention_start`] is `start`.
fn open_since_key(start: Timestamp, asset: &Digest, system: &str) -> Vec<u8> {
    let mut k = ordered(start).to_vec();
    k.extend_from_slice(asset);
    lp(&mut k, system);
    k
}

/// `retention_writes` keeps `open_since` in step with the intervals `fx`
/// opens and closes: the open intervals by their [`retention_start`], so
/// that the retention rule reads only those open since before its
/// horizon. `state` is the findings' state with the entry's own delta
/// applied (its births included).
///
/// # Errors
///
/// A `ResourceExhausted` [`Refusal`] when `state` cannot be read.
pub fn retention_writes<S: FindingsState + ?Sized>(
    state: &S,
    fx: &Effects,
) -> Result<Vec<KvWrite>, Refusal> {
    let mut out = Vec::with_capacity(fx.closed.len() + fx.opened.len());
    for i in &fx.closed {
        let start = retention_start(state, &i.asset, i.opened_by, i.from)?;
        out.push(KvWrite {
            cf: IndexCf::OpenSince,
            key: open_since_key(start, &i.asset, &i.system),
            value: None,
        });
    }
    for i in &fx.opened {
        let start = retention_start(state, &i.asset, i.opened_by, i.from)?;
        out.push(put(
            IndexCf::OpenSince,
            open_since_key(start, &i.asset, &i.system),
            i.opened_by.to_be_bytes().to_vec(),
        ));
    }
    Ok(out)
}

/// `findings_writes` is what the findings' derived state gains from the
/// entry at `index`, whose delta is `d`.
pub fn findings_writes(index: u64, d: &FindingsDelta) -> Vec<KvWrite> {
    findings_writes_from(index, 0, d)
}

/// `findings_writes_from` is [`findings_writes`] for a part of an entry's
/// delta whose raised findings follow `first` raised by the parts before
/// it (the slices of a bulk event, [`custody_domain::plan_members`]).
pub fn findings_writes_from(index: u64, first: u32, d: &FindingsDelta) -> Vec<KvWrite> {
    let ix = index.to_be_bytes();
    let mut out = Vec::new();
    for (n, f) in d.raised.iter().enumerate() {
        let n = first.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        let mut k = ix.to_vec();
        k.extend_from_slice(&n.to_be_bytes());
        out.push(put(IndexCf::Findings, k, finding_value(f)));
        out.push(by_time_write(index, n, f));
    }
    // A birth that is the asset's own creation is read from `assets`.
    for (a, (born, by, classes), derived) in &d.births {
        if *derived {
            let mut v = born.to_be_bytes().to_vec();
            v.extend_from_slice(&by.to_be_bytes());
            classes_value(&mut v, classes);
            out.push(put(IndexCf::Births, a.to_vec(), v));
        }
    }
    for (s, a) in &d.attesting {
        let mut v = Vec::new();
        lp(&mut v, &a.party);
        v.extend_from_slice(&a.since.to_be_bytes());
        v.extend_from_slice(&a.since_by.to_be_bytes());
        out.push(put(IndexCf::Attesting, lp_key(s), v));
    }
    if let Some((s, t, i)) = &d.attestation {
        let mut k = lp_key(s);
        k.extend_from_slice(&i.to_be_bytes());
        out.push(put(IndexCf::Attestations, k, t.to_be_bytes().to_vec()));
    }
    if let Some((i, p)) = &d.pending {
        let mut v = p.at.to_be_bytes().to_vec();
        lp(&mut v, &p.party);
        lp(&mut v, &p.system);
        match &p.asset {
            None => v.push(0),
            Some(d) => {
                v.push(1);
                v.extend_from_slice(d);
            }
        }
        match &p.observed {
            None => v.push(0),
            Some((by, on)) => {
                v.push(1);
                lp(&mut v, by);
                lp(&mut v, on);
            }
        }
        out.push(put(IndexCf::Pending, i.to_be_bytes().to_vec(), v));
        out.push(put(
            IndexCf::TransferDue,
            due_key(UNRECEIPTED, p.at, *i),
            Vec::new(),
        ));
    }
    if let Some((of, of_at, t, i)) = d.receipt {
        let mut v = t.to_be_bytes().to_vec();
        v.extend_from_slice(&i.to_be_bytes());
        out.push(put(IndexCf::Receipts, of.to_be_bytes().to_vec(), v));
        out.extend(receipt_due_writes(of, of_at, t, i));
    }
    out
}

/// The three kinds of `transfer_due` keys, by their first byte. Together
/// they let [`StoreView`] visit the overdue transfers without reading
/// every transfer: a deadline is a transfer's time plus the receipt
/// window, which the server may be given anew at each start, so keys hold
/// times and delays, and the window is applied as a scan bound.
///
/// - `UNRECEIPTED` ‖ transfer time ‖ transfer entry: no receipt yet;
/// - `DELAY` ‖ receipt time − transfer time ‖ transfer entry: receipted,
///   so late only if the delay exceeds the window;
/// - `RECEIPT_ENTRY` ‖ receipt entry ‖ transfer entry: for answers as of a
///   tree size that does not hold the receipt yet.
const UNRECEIPTED: u8 = b'u';
const DELAY: u8 = b'd';
const RECEIPT_ENTRY: u8 = b'r';

fn due_key(kind: u8, first: i64, transfer: u64) -> Vec<u8> {
    let mut k = vec![kind];
    k.extend_from_slice(&ordered(first));
    k.extend_from_slice(&transfer.to_be_bytes());
    k
}

/// `receipt_due_writes` moves the transfer at `of` (made at `of_at`) from
/// the unreceipted keys to the receipted ones, for its receipt at `t` by
/// entry `i`.
fn receipt_due_writes(of: u64, of_at: i64, t: i64, i: u64) -> [KvWrite; 3] {
    let mut by_entry = vec![RECEIPT_ENTRY];
    by_entry.extend_from_slice(&i.to_be_bytes());
    by_entry.extend_from_slice(&of.to_be_bytes());
    [
        KvWrite {
            cf: IndexCf::TransferDue,
            key: due_key(UNRECEIPTED, of_at, of),
            value: None,
        },
        put(
            IndexCf::TransferDue,
            due_key(DELAY, t.saturating_sub(of_at), of),
            Vec::new(),
        ),
        put(IndexCf::TransferDue, by_entry, Vec::new()),
    ]
}

const REPORTING_DEADLINE: &[u8] = b"reporting_deadline";

/// `check_derived_settings` makes sure the findings stored in `s` were
/// derived as this version derives them, upgrading older derived state.
/// The reporting deadline is the one policy window applied as entries are
/// logged (the others apply when findings are asked for); it comes from
/// the log's own `POLICY_PUBLISHED` entries, and before the first of them
/// it is the default. Older versions took it from a server flag and
/// recorded it; a log derived with another value cannot be served.
///
/// # Errors
///
/// A message naming the setting when the log was derived with another
/// value, or was written before derived state was kept.
pub fn check_derived_settings(s: &dyn LogStore, progress: &mut Progress<'_>) -> Result<(), String> {
    check_deadline(s, &Policy::default())?;
    upgrade_derived_state(s, progress)
}

/// `Progress` hears how an upgrade of derived state goes: the family being
/// rebuilt from and the records read from it so far (at least every
/// [`PROGRESS_EVERY`] records, and once at its end). An upgrade of a large
/// log takes minutes, and an operator should see it move.
pub type Progress<'a> = dyn FnMut(&str, u64) + 'a;

/// Records read between two reports of [`Progress`].
pub const PROGRESS_EVERY: u64 = 1 << 18;

const DERIVED_FORMAT: &[u8] = b"derived_format";

/// The derived state's format: 2 added `transfer_due`, 3 `closed`, 4
/// `findings_by_time` and `findings_counts`, 5 `open_since`, 6 `scope`
/// (kept only by logs begun at format 6 or later: see
/// [`super::scope::SCOPE_COUNTS`]).
const FORMAT: u64 = 6;

/// `upgrade_derived_state` brings derived state written by an earlier
/// version up to [`FORMAT`], once: format 1 lacked `transfer_due`, which is
/// rebuilt from the transfers and receipts it did keep.
fn upgrade_derived_state(s: &dyn LogStore, progress: &mut Progress<'_>) -> Result<(), String> {
    let e = |e: StoreError| format!("derived state: {e}");
    let format = match s
        .index_get(IndexCf::DerivedMeta, DERIVED_FORMAT)
        .map_err(e)?
    {
        Some(v) => tail_u64(&v).map_err(e)?,
        None if s.tree_size().map_err(e)? <= 1 => {
            // A log begun now keeps breach-scope counts from its first
            // interval; one begun earlier never has them all, and scans.
            s.index_write(&[put(IndexCf::DerivedMeta, SCOPE_COUNTS.to_vec(), Vec::new())])
                .map_err(e)?;
            FORMAT
        }
        None => 1,
    };
    if format > FORMAT {
        return Err(format!(
            "this log's derived state is format {format}, newer than this custodyd's {FORMAT}: run a newer custodyd"
        ));
    }
    if format == 1 {
        let view = StoreView(s);
        backfill(s, IndexCf::Pending, progress, &mut |k, _| {
            let index = tail_u64(k).map_err(corrupt)?;
            let Some(p) = view.pending(index)? else {
                return Ok(Vec::new());
            };
            Ok(match p.receipt {
                None => vec![put(
                    IndexCf::TransferDue,
                    due_key(UNRECEIPTED, p.at, index),
                    Vec::new(),
                )],
                Some((t, i)) => receipt_due_writes(index, p.at, t, i).to_vec(),
            })
        })?;
    }
    if format <= 2 {
        // Every closed interval, by its closing entry and time.
        backfill(s, IndexCf::SystemIntervals, progress, &mut |k, v| {
            let mut r = Reader {
                b: k,
                what: "system interval key",
            };
            let system = r.string().map_err(corrupt)?;
            let asset = r.digest().map_err(corrupt)?;
            let opened_by = r.u64().map_err(corrupt)?;
            let i = decode_interval_value(asset, system, opened_by, v).map_err(corrupt)?;
            Ok(closed_writes(&i))
        })?;
    }
    if format <= 3 {
        // Every raised finding, by time, and the running counts, in entry
        // order (the order `findings` keys are in).
        let mut counts = RaisedCounts::default();
        backfill(s, IndexCf::Findings, progress, &mut |k, v| {
            let mut r = Reader {
                b: k,
                what: "finding key",
            };
            let index = r.u64().map_err(corrupt)?;
            let mut n = [0u8; 4];
            n.copy_from_slice(r.take(4).map_err(corrupt)?);
            let f = decode_finding(v).map_err(corrupt)?;
            counts.bump(f.rule);
            Ok(vec![
                by_time_write(index, u32::from_be_bytes(n), &f),
                counts.write(index),
            ])
        })?;
    }
    if format <= 4 {
        // Every open interval, by its retention start.
        let view = StoreView(s);
        backfill(s, IndexCf::Open, progress, &mut |k, v| {
            let opened_by = tail_u64(v).map_err(corrupt)?;
            let mut r = Reader {
                b: k,
                what: "open interval key",
            };
            let asset = r.digest().map_err(corrupt)?;
            let system = r.string().map_err(corrupt)?;
            let key = system_interval_key(&system, &asset, opened_by);
            let v = s
                .index_get(IndexCf::SystemIntervals, &key)
                .map_err(storage)?
                .ok_or_else(|| {
                    corrupt(StoreError::Corrupt(format!(
                        "the open interval of entry {opened_by} is not stored"
                    )))
                })?;
            let i = decode_interval_value(asset, system, opened_by, &v).map_err(corrupt)?;
            retention_writes(
                &view,
                &Effects {
                    opened: vec![i],
                    ..Effects::default()
                },
            )
        })?;
    }
    if format != FORMAT
        || s.index_get(IndexCf::DerivedMeta, DERIVED_FORMAT)
            .map_err(e)?
            .is_none()
    {
        s.index_write(&[put(
            IndexCf::DerivedMeta,
            DERIVED_FORMAT.to_vec(),
            FORMAT.to_be_bytes().to_vec(),
        )])
        .map_err(e)?;
    }
    Ok(())
}

/// `Derive` turns one stored pair into the index writes derived from it.
type Derive<'a> = dyn FnMut(&[u8], &[u8]) -> Result<Vec<KvWrite>, Refusal> + 'a;

/// `backfill` writes, a page at a time, what `rows` derives from each pair
/// of `cf`: an upgrade's rebuild of an index from records already kept.
fn backfill(
    s: &dyn LogStore,
    cf: IndexCf,
    progress: &mut Progress<'_>,
    rows: &mut Derive<'_>,
) -> Result<(), String> {
    let e = |e: StoreError| format!("derived state: {e}");
    let mut writes = Vec::new();
    let mut failed = None;
    let mut read = 0u64;
    scan_paged(s, cf, &[], &[], &mut |k, v| {
        read += 1;
        if read.is_multiple_of(PROGRESS_EVERY) {
            progress(cf.name(), read);
        }
        writes.extend(rows(k, v)?);
        if writes.len() >= PAGE {
            if let Err(x) = s.index_write(&std::mem::take(&mut writes)) {
                failed = Some(x);
                return Ok(false);
            }
        }
        Ok(true)
    })
    .map_err(|r| format!("derived state: {r}"))?;
    if let Some(x) = failed {
        return Err(e(x));
    }
    s.index_write(&writes).map_err(e)?;
    progress(cf.name(), read);
    Ok(())
}

fn check_deadline(s: &dyn LogStore, policy: &Policy) -> Result<(), String> {
    let e = |e: StoreError| format!("read derived state: {e}");
    match s
        .index_get(IndexCf::DerivedMeta, REPORTING_DEADLINE)
        .map_err(e)?
    {
        Some(v) => {
            let was = tail_u64(&v).map_err(e)? as i64;
            if was != policy.reporting_deadline {
                return Err(format!(
                    "this log's late_reporting findings were derived with a reporting deadline of {} s, \
                     set by the --reporting-deadline-secs flag of an older custodyd; this version \
                     takes the deadline from the log (POLICY_PUBLISHED, default {} s), so it would \
                     derive other findings: keep serving it with the older custodyd, or export \
                     what you need with `custody audit` and start a new log",
                    was / 1_000_000_000,
                    policy.reporting_deadline / 1_000_000_000,
                ));
            }
            Ok(())
        }
        None if s.tree_size().map_err(e)? <= 1 => s
            .index_write(&[put(
                IndexCf::DerivedMeta,
                REPORTING_DEADLINE.to_vec(),
                policy.reporting_deadline.to_be_bytes().to_vec(),
            )])
            .map_err(e),
        None => Err(
            "this log was written by a version of custodyd that did not store its findings; \
             export what you need with `custody audit` and start a new log"
                .into(),
        ),
    }
}

/// `Visit` sees one pair of a paged scan and says whether to go on.
type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, Refusal> + 'a;

/// `scan_paged` visits `cf` under `prefix` from `start`, a page at a time,
/// calling `f` outside the store's scan; `f` returns false to stop.
fn scan_paged(
    s: &dyn IndexRead,
    cf: IndexCf,
    prefix: &[u8],
    start: &[u8],
    f: &mut Visit<'_>,
) -> Result<(), Refusal> {
    let mut from = start.to_vec();
    loop {
        let mut page: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(PAGE);
        s.index_scan(cf, prefix, &from, &mut |k, v| {
            page.push((k.to_vec(), v.to_vec()));
            page.len() < PAGE
        })
        .map_err(storage)?;
        let full = page.len() == PAGE;
        for (k, v) in &page {
            if !f(k, v)? {
                return Ok(());
            }
        }
        match page.pop() {
            Some((mut k, _)) if full => {
                k.push(0);
                from = k;
            }
            _ => return Ok(()),
        }
    }
}

fn corrupt(e: StoreError) -> Refusal {
    storage(e)
}

/// `due_key_parts` is a `transfer_due` key's time (or entry) and
/// transfer entry.
fn due_key_parts(k: &[u8]) -> Result<(i64, u64), Refusal> {
    let bad = || {
        storage(StoreError::Corrupt(format!(
            "transfer_due key of {} bytes",
            k.len()
        )))
    };
    if k.len() != 17 {
        return Err(bad());
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&k[1..9]);
    let first = (u64::from_be_bytes(a) ^ (1 << 63)) as i64;
    let index = tail_u64(k).map_err(storage)?;
    Ok((first, index))
}

impl StoreView<'_> {
    /// `visit_held` hands the interval stored under `system_intervals` key
    /// `key` to `f`, with the asset's birth, if an entry below `size`
    /// opened it.
    fn visit_held(
        &self,
        key: &[u8],
        size: u64,
        f: &mut dyn FnMut(HeldRow),
    ) -> Result<bool, Refusal> {
        let mut r = Reader {
            b: key,
            what: "system interval key",
        };
        let system = r.string().map_err(corrupt)?;
        let asset = r.digest().map_err(corrupt)?;
        let opened_by = r.u64().map_err(corrupt)?;
        r.done().map_err(corrupt)?;
        if opened_by >= size {
            return Ok(true);
        }
        let v = self
            .0
            .index_get(IndexCf::SystemIntervals, key)
            .map_err(storage)?
            .ok_or_else(|| {
                storage(StoreError::Corrupt(format!(
                    "an interval of entry {opened_by} is indexed but not stored"
                )))
            })?;
        let i = decode_interval_value(asset, system, opened_by, &v).map_err(corrupt)?;
        // The birth the asset had when the interval opened: an asset the
        // log created only later is dated by the interval itself.
        let classes = match (i.modality, i.subject_class) {
            (Some(m), Some(s)) => vec![(m, s)],
            _ => Vec::new(),
        };
        let born = held_birth(self, &asset, opened_by, i.from, classes)?;
        f(HeldRow {
            opened_by,
            asset,
            system: i.system,
            party: i.party,
            from: i.from,
            to: i.to,
            closed_by: i.closed_by,
            born,
        });
        Ok(true)
    }

    /// `pending` is the transfer logged at `index`, with its receipt.
    fn pending(&self, index: u64) -> Result<Option<Pending>, Refusal> {
        let Some(v) = self
            .0
            .index_get(IndexCf::Pending, &index.to_be_bytes())
            .map_err(storage)?
        else {
            return Ok(None);
        };
        let mut r = Reader {
            b: &v,
            what: "pending transfer",
        };
        let at = r.i64().map_err(corrupt)?;
        let party = r.string().map_err(corrupt)?;
        let system = r.string().map_err(corrupt)?;
        let asset = r.opt_digest().map_err(corrupt)?;
        let observed = match r.u8().map_err(corrupt)? {
            0 => None,
            _ => Some((r.string().map_err(corrupt)?, r.string().map_err(corrupt)?)),
        };
        r.done().map_err(corrupt)?;
        let receipt = match self
            .0
            .index_get(IndexCf::Receipts, &index.to_be_bytes())
            .map_err(storage)?
        {
            None => None,
            Some(v) => {
                let mut r = Reader {
                    b: &v,
                    what: "receipt",
                };
                let t = r.i64().map_err(corrupt)?;
                let i = r.u64().map_err(corrupt)?;
                r.done().map_err(corrupt)?;
                Some((t, i))
            }
        };
        Ok(Some(Pending {
            at,
            party,
            system,
            asset,
            receipt,
            observed,
        }))
    }

    /// `due_transfers` is the transfers below `size` named by the
    /// `transfer_due` keys of `kind` from `kind ‖ from` on.
    fn due_transfers(&self, kind: u8, from: &[u8], size: u64) -> Result<Vec<u64>, Refusal> {
        let mut start = vec![kind];
        start.extend_from_slice(from);
        let mut out = Vec::new();
        scan_paged(
            self.0,
            IndexCf::TransferDue,
            &[kind],
            &start,
            &mut |k, _| {
                let (_, index) = due_key_parts(k)?;
                if index < size {
                    out.push(index);
                }
                Ok(true)
            },
        )?;
        Ok(out)
    }

    /// `receipted_overdue` is the transfers logged below `size` that were
    /// receipted, yet may be unacknowledged as of `size`: those receipted
    /// at least `window` after the transfer (late), and those receipted
    /// by an entry at or past `size` (not receipted yet as of `size`).
    fn receipted_overdue(&self, size: u64, window: i64) -> Result<(Vec<u64>, Vec<u64>), Refusal> {
        Ok((
            self.due_transfers(DELAY, &ordered(window), size)?,
            self.due_transfers(RECEIPT_ENTRY, &size.to_be_bytes(), size)?,
        ))
    }

    /// `unacknowledged_by_time` is [`FindingsHistory::unacknowledged_page`]
    /// for a filter of rule alone. The transfers never receipted are read
    /// by their `transfer_due` keys alone, which are in time order: they
    /// are counted without reading them, and only the page's are read.
    /// The receipted ones that may be late are few, and read.
    #[allow(clippy::too_many_arguments)]
    fn unacknowledged_by_time(
        &self,
        policies: &Policies,
        size: u64,
        as_of: Timestamp,
        rule: Option<Rule>,
        after: Option<&(Timestamp, String)>,
        limit: usize,
    ) -> Result<FindingsPage, Refusal> {
        let wanted = rule.is_none_or(|r| r == Rule::UnacknowledgedTransfer);
        // No transfer is due sooner after it than the shortest window in
        // force, so the scan stops there; each one's own window decides.
        let shortest = policies.shortest_receipt_window(size);
        let cutoff = as_of.saturating_sub(shortest);
        let mut count = 0u64;
        let mut past = 0u64;
        // The page so far by (due, id), the last on top.
        let mut heap: std::collections::BinaryHeap<(Timestamp, String, u64)> =
            std::collections::BinaryHeap::new();
        scan_paged(
            self.0,
            IndexCf::TransferDue,
            &[UNRECEIPTED],
            &[UNRECEIPTED],
            &mut |k, _| {
                let (at, index) = due_key_parts(k)?;
                if at >= cutoff {
                    return Ok(false);
                }
                if index >= size {
                    return Ok(true);
                }
                let due = at.saturating_add(policies.policy_at(index).receipt_window);
                if due >= as_of {
                    return Ok(true);
                }
                count += 1;
                if !wanted {
                    return Ok(true);
                }
                if after.is_some_and(|(t, _)| due < *t)
                    || heap.len() >= limit && heap.peek().is_some_and(|top| due > top.0)
                {
                    if after.is_none_or(|(t, _)| due >= *t) {
                        past += 1;
                    }
                    return Ok(true);
                }
                let id = finding_id(Rule::UnacknowledgedTransfer, index, None, None);
                if after.is_some_and(|(t, i)| (due, id.as_str()) <= (*t, i.as_str())) {
                    return Ok(true);
                }
                heap.push((due, id, index));
                if heap.len() > limit {
                    heap.pop();
                    past += 1;
                }
                Ok(true)
            },
        )?;
        let mut page = FindingsPage {
            total: if wanted { count } else { 0 },
            more: past > 0,
            ..FindingsPage::default()
        };
        if count > 0 {
            page.by_rule.insert(Rule::UnacknowledgedTransfer, count);
        }
        for (_, _, index) in heap.into_sorted_vec() {
            let p = self.pending(index)?.ok_or_else(|| {
                storage(StoreError::Corrupt(format!(
                    "transfer_due names entry {index}, which has no pending transfer"
                )))
            })?;
            page.rows
                .extend(unacknowledged(policies, size, as_of, index, p));
        }
        // The receipted ones, each read; one never receipted is counted
        // above already.
        let (late, unseen) = self.receipted_overdue(size, shortest)?;
        let mut rest: Vec<u64> = late.into_iter().chain(unseen).collect();
        rest.sort_unstable();
        rest.dedup();
        let filter = FindingsFilter {
            rule,
            ..FindingsFilter::all()
        };
        let mut cut = PageCutter::new(filter, after.cloned(), limit);
        self.visit_transfers(&rest, &mut |index, p| {
            if p.receipt.is_some() {
                if let Some(f) = unacknowledged(policies, size, as_of, index, p) {
                    cut.offer(f);
                }
            }
        })?;
        Ok(page.merge(cut.finish(), limit))
    }

    /// `visit_transfers` hands each transfer of `indexes` to `f`.
    fn visit_transfers(
        &self,
        indexes: &[u64],
        f: &mut dyn FnMut(u64, Pending),
    ) -> Result<(), Refusal> {
        for i in indexes {
            let p = self.pending(*i)?.ok_or_else(|| {
                storage(StoreError::Corrupt(format!(
                    "transfer_due names entry {i}, which has no pending transfer"
                )))
            })?;
            f(*i, p);
        }
        Ok(())
    }
}

impl FindingsState for StoreView<'_> {
    fn last_seq(&self, reporter: &str) -> Result<u64, Refusal> {
        let prefix = lp_key(reporter);
        match self
            .0
            .index_last(IndexCf::ReporterSeq, &prefix)
            .map_err(storage)?
        {
            None => Ok(0),
            Some((k, _)) => {
                let mut r = Reader {
                    b: &k[prefix.len()..],
                    what: "reporter seq key",
                };
                r.u64().map_err(corrupt)
            }
        }
    }

    fn birth(&self, asset: &Digest) -> Result<Option<Birth>, Refusal> {
        if let Some(v) = self.0.index_get(IndexCf::Births, asset).map_err(storage)? {
            return decode_birth(&v).map(Some).map_err(corrupt);
        }
        Ok(asset_meta(self.0, asset).map_err(storage)?.map(|m| {
            (
                m.created_at,
                m.created_by,
                vec![(m.modality, m.subject_class)],
            )
        }))
    }

    fn class(&self, asset: &Digest) -> Result<Option<(Modality, SubjectClass, u64)>, Refusal> {
        Ok(asset_meta(self.0, asset)
            .map_err(storage)?
            .map(|m| (m.modality, m.subject_class, m.created_by)))
    }

    fn is_attesting(&self, system: &str) -> Result<bool, Refusal> {
        Ok(self
            .0
            .index_get(IndexCf::Attesting, &lp_key(system))
            .map_err(storage)?
            .is_some())
    }
    fn transfer_time(&self, index: u64) -> Result<Option<i64>, Refusal> {
        Ok(self.pending(index)?.map(|p| p.at))
    }
}

impl StoreView<'_> {
    /// `raised_by_time` is [`FindingsHistory::raised_page`] for a filter
    /// of rule alone, read from `findings_by_time` and `findings_counts`:
    /// the counts as of `size` less those that arose after `as_of`, and
    /// the page from the cursor on.
    fn raised_by_time(
        &self,
        size: u64,
        as_of: Timestamp,
        rule: Option<Rule>,
        after: Option<&(Timestamp, String)>,
        limit: usize,
    ) -> Result<FindingsPage, Refusal> {
        let mut counts = RaisedCounts::at(self.0, size).map_err(corrupt)?;
        if let Some(next) = as_of.checked_add(1) {
            scan_paged(
                self.0,
                IndexCf::FindingsByTime,
                &[],
                &ordered(next),
                &mut |_, v| {
                    let (index, _, r) = by_time_value(v).map_err(corrupt)?;
                    if index < size {
                        let c = &mut counts.0[rule_code(r) as usize];
                        *c = c.checked_sub(1).ok_or_else(|| {
                            corrupt(StoreError::Corrupt(
                                "findings_counts is below the findings it counts".into(),
                            ))
                        })?;
                    }
                    Ok(true)
                },
            )?;
        }
        let mut page = FindingsPage::default();
        for r in Rule::ALL {
            let n = counts.get(r);
            if n > 0 {
                page.by_rule.insert(r, n);
            }
        }
        page.total = match rule {
            Some(r) => counts.get(r),
            None => page.by_rule.values().sum(),
        };
        let start = match after {
            None => Vec::new(),
            Some((t, id)) => {
                let mut k = ordered(*t).to_vec();
                k.extend_from_slice(id.as_bytes());
                k.push(0);
                k
            }
        };
        let mut err = None;
        scan_paged(self.0, IndexCf::FindingsByTime, &[], &start, &mut |k, v| {
            let at = tail_i64_ordered(k).map_err(corrupt)?;
            if at > as_of {
                return Ok(false);
            }
            let (index, n, r) = by_time_value(v).map_err(corrupt)?;
            if index >= size || rule.is_some_and(|x| x != r) {
                return Ok(true);
            }
            if page.rows.len() == limit {
                page.more = true;
                return Ok(false);
            }
            let mut key = index.to_be_bytes().to_vec();
            key.extend_from_slice(&n.to_be_bytes());
            match self.0.index_get(IndexCf::Findings, &key) {
                Ok(Some(v)) => page.rows.push(decode_finding(&v).map_err(corrupt)?),
                Ok(None) => {
                    err = Some(StoreError::Corrupt(format!(
                        "findings_by_time names finding {n} of entry {index}, which is not stored"
                    )));
                    return Ok(false);
                }
                Err(e) => {
                    err = Some(e);
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        match err {
            Some(e) => Err(corrupt(e)),
            None => Ok(page),
        }
    }
}

/// `by_time_value` is a `findings_by_time` value: the raising entry, the
/// finding's ordinal in it, and its rule.
fn by_time_value(v: &[u8]) -> Result<(u64, u32, Rule), StoreError> {
    let mut r = Reader {
        b: v,
        what: "findings_by_time value",
    };
    let index = r.u64()?;
    let mut n = [0u8; 4];
    n.copy_from_slice(r.take(4)?);
    let rule = *Rule::ALL
        .get(r.u8()? as usize)
        .ok_or_else(|| StoreError::Corrupt("finding with an unknown rule".into()))?;
    r.done()?;
    Ok((index, u32::from_be_bytes(n), rule))
}

/// `tail_i64_ordered` is the time a `findings_by_time` key starts with.
fn tail_i64_ordered(k: &[u8]) -> Result<Timestamp, StoreError> {
    let b = k
        .get(..8)
        .ok_or_else(|| StoreError::Corrupt("findings_by_time key is short".into()))?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok((u64::from_be_bytes(a) ^ (1 << 63)) as i64)
}

/// `rule_only` is whether `filter` selects by rule alone as of `as_of`,
/// which the time-ordered indexes serve.
fn rule_only(filter: &FindingsFilter, as_of: Timestamp) -> bool {
    filter.party.is_none()
        && filter.system.is_none()
        && filter.from == Timestamp::MIN
        && filter.to >= as_of
}

impl FindingsHistory for StoreView<'_> {
    fn unacknowledged_page(
        &self,
        policies: &Policies,
        size: u64,
        as_of: Timestamp,
        filter: &FindingsFilter,
        after: Option<&(Timestamp, String)>,
        limit: usize,
    ) -> Result<FindingsPage, Refusal> {
        if rule_only(filter, as_of) {
            self.unacknowledged_by_time(policies, size, as_of, filter.rule, after, limit)
        } else {
            unacknowledged_page_by_scan(self, policies, size, as_of, filter, after, limit)
        }
    }

    fn raised_page(
        &self,
        size: u64,
        as_of: Timestamp,
        filter: &FindingsFilter,
        after: Option<&(Timestamp, String)>,
        limit: usize,
    ) -> Result<FindingsPage, Refusal> {
        // The indexes serve a filter of rule alone; any other part of a
        // filter is answered by reading every raised finding.
        if rule_only(filter, as_of) {
            self.raised_by_time(size, as_of, filter.rule, after, limit)
        } else {
            raised_page_by_scan(self, size, as_of, filter, after, limit)
        }
    }

    fn raised_by(&self, index: u64, f: &mut dyn FnMut(Finding)) -> Result<(), Refusal> {
        let prefix = index.to_be_bytes();
        scan_paged(self.0, IndexCf::Findings, &prefix, &prefix, &mut |_, v| {
            f(decode_finding(v).map_err(corrupt)?);
            Ok(true)
        })
    }

    fn transfer(&self, index: u64) -> Result<Option<Pending>, Refusal> {
        self.pending(index)
    }

    fn raised(&self, size: u64, f: &mut dyn FnMut(Finding)) -> Result<(), Refusal> {
        scan_paged(self.0, IndexCf::Findings, &[], &[], &mut |k, v| {
            if k.get(..8)
                .is_none_or(|i| i >= size.to_be_bytes().as_slice())
            {
                return Ok(false);
            }
            f(decode_finding(v).map_err(corrupt)?);
            Ok(true)
        })
    }

    fn held(
        &self,
        size: u64,
        as_of: i64,
        horizon: i64,
        f: &mut dyn FnMut(HeldRow),
    ) -> Result<(), Refusal> {
        // Open now, with a retention start before the horizon:
        // `open_since` holds them by that start.
        let end = ordered(horizon);
        scan_paged(self.0, IndexCf::OpenSince, &[], &[], &mut |k, v| {
            if k.get(..8).is_none_or(|t| t >= end.as_slice()) {
                return Ok(false);
            }
            let opened_by = tail_u64(v).map_err(corrupt)?;
            if opened_by >= size {
                return Ok(true);
            }
            let mut r = Reader {
                b: &k[8..],
                what: "open_since key",
            };
            let asset = r.digest().map_err(corrupt)?;
            let system = r.string().map_err(corrupt)?;
            self.visit_held(&system_interval_key(&system, &asset, opened_by), size, f)
        })?;
        // Closed, but by an entry at or past `size`, or at a time after
        // `as_of`: held as the question reads the log. One interval can be
        // both, so the first set is kept to skip it the second time; it
        // holds the intervals closed since `size`, not every closed one.
        let mut seen = std::collections::HashSet::new();
        let mut from = vec![CLOSED_BY_ENTRY];
        from.extend_from_slice(&size.to_be_bytes());
        scan_paged(
            self.0,
            IndexCf::Closed,
            &[CLOSED_BY_ENTRY],
            &from,
            &mut |k, _| {
                let key = k.get(9..).unwrap_or_default().to_vec();
                self.visit_held(&key, size, f)?;
                seen.insert(key);
                Ok(true)
            },
        )?;
        let mut from = vec![CLOSED_AT_TIME];
        from.extend_from_slice(&ordered(as_of.saturating_add(1)));
        scan_paged(
            self.0,
            IndexCf::Closed,
            &[CLOSED_AT_TIME],
            &from,
            &mut |k, _| {
                let key = k.get(9..).unwrap_or_default();
                if !seen.contains(key) {
                    self.visit_held(key, size, f)?;
                }
                Ok(true)
            },
        )
    }

    fn overdue_transfers(
        &self,
        size: u64,
        as_of: i64,
        window: i64,
        f: &mut dyn FnMut(u64, Pending),
    ) -> Result<(), Refusal> {
        // Unreceipted, and made before `as_of − window` (so due before
        // `as_of`): the keys are in time order, so the scan stops at the
        // first one made at the cutoff or later.
        let cutoff = as_of.saturating_sub(window);
        let mut overdue = Vec::new();
        scan_paged(
            self.0,
            IndexCf::TransferDue,
            &[UNRECEIPTED],
            &[UNRECEIPTED],
            &mut |k, _| {
                let (at, index) = due_key_parts(k)?;
                if at >= cutoff {
                    return Ok(false);
                }
                if index < size {
                    overdue.push(index);
                }
                Ok(true)
            },
        )?;
        let (late, mut unseen) = self.receipted_overdue(size, window)?;
        overdue.extend(late);
        // Over a live store (findings answers read a snapshot), a receipt
        // committed between two scans moves its transfer from one kind of
        // key to another, so it can be seen twice (never not at all, as
        // the scans run in the order its keys move). Each is visited once.
        overdue.sort_unstable();
        overdue.dedup();
        unseen.retain(|i| overdue.binary_search(i).is_err());
        unseen.sort_unstable();
        unseen.dedup();
        self.visit_transfers(&overdue, f)?;
        let mut late = |i: u64, p: Pending| {
            let in_time = p
                .receipt
                .is_some_and(|(rt, _)| rt.saturating_sub(p.at) < window);
            if in_time {
                f(i, p);
            }
        };
        self.visit_transfers(&unseen, &mut late)
    }

    fn attesting(&self, f: &mut dyn FnMut(String, Attesting)) -> Result<(), Refusal> {
        let mut systems = Vec::new();
        scan_paged(self.0, IndexCf::Attesting, &[], &[], &mut |k, v| {
            let system = Reader {
                b: k,
                what: "attesting key",
            }
            .string()
            .map_err(corrupt)?;
            let mut r = Reader {
                b: v,
                what: "attesting",
            };
            let party = r.string().map_err(corrupt)?;
            let since = r.i64().map_err(corrupt)?;
            let since_by = r.u64().map_err(corrupt)?;
            r.done().map_err(corrupt)?;
            systems.push((
                system,
                Attesting {
                    party,
                    since,
                    since_by,
                    attestations: Vec::new(),
                },
            ));
            Ok(true)
        })?;
        for (system, mut a) in systems {
            let prefix = lp_key(&system);
            scan_paged(
                self.0,
                IndexCf::Attestations,
                &prefix,
                &prefix,
                &mut |k, v| {
                    let i = tail_u64(k).map_err(corrupt)?;
                    let t = tail_u64(v).map_err(corrupt)? as i64;
                    a.attestations.push((t, i));
                    Ok(true)
                },
            )?;
            f(system, a);
        }
        Ok(())
    }

    fn hold_names(&self, hold: &HoldRecord, asset: &Digest) -> Result<bool, Refusal> {
        let m = match &hold.hold.assets {
            None => return Ok(true),
            Some(AssetRef::One(d)) => return Ok(d == asset),
            Some(AssetRef::Manifest(m)) => *m,
        };
        // Members are sorted: a binary search over their ordinals.
        let (mut lo, mut hi) = (0u64, m.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let Some(d) = manifest_member(self.0, &m.root, mid).map_err(storage)? else {
                return Err(corrupt(StoreError::Corrupt(format!(
                    "manifest {} lacks member {mid} of {}",
                    custody_domain::hex(&m.root),
                    m.count
                ))));
            };
            match d.cmp(asset) {
                std::cmp::Ordering::Equal => return Ok(true),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::Commit;
    use custody_domain::{Effects, Interval};

    const WINDOW: i64 = 100;

    /// A log of transfers at entries 1..=40, at times 10·i, some with a
    /// receipt (in time, on the edge, or late) logged by a later entry.
    fn log() -> (MemoryStore, Vec<(u64, Pending)>) {
        let s = MemoryStore::default();
        let mut writes = Vec::new();
        let mut all = Vec::new();
        for i in 1..=40u64 {
            let at = 10 * i as i64;
            let d = FindingsDelta {
                pending: Some((
                    i,
                    Pending {
                        at,
                        party: "p".into(),
                        system: "s".into(),
                        asset: None,
                        receipt: None,
                        observed: None,
                    },
                )),
                ..Default::default()
            };
            writes.extend(findings_writes(i, &d));
            all.push((i, d.pending.map(|p| p.1).unwrap_or_else(|| unreachable!())));
        }
        // Receipts by entries 41..: delay 0, 50, exactly the window, 101, 500.
        for (n, (of, delay)) in [
            (3u64, 0i64),
            (7, 50),
            (11, WINDOW),
            (15, 101),
            (19, 500),
            (23, 20),
        ]
        .into_iter()
        .enumerate()
        {
            let i = 41 + n as u64;
            let of_at = 10 * of as i64;
            let d = FindingsDelta {
                receipt: Some((of, of_at, of_at + delay, i)),
                ..Default::default()
            };
            writes.extend(findings_writes(i, &d));
            all[of as usize - 1].1.receipt = Some((of_at + delay, i));
        }
        s.commit(&Commit {
            first_index: 0,
            entries: (0..47).map(|i| vec![i as u8]).collect(),
            hashes: Vec::new(),
            dedup: Vec::new(),
            registry: Vec::new(),
            index: writes,
        })
        .unwrap();
        (s, all)
    }

    /// What the rule needs visited, by brute force (the engine's own test).
    fn overdue(all: &[(u64, Pending)], size: u64, as_of: i64) -> Vec<u64> {
        all.iter()
            .filter(|(i, p)| {
                let due = p.at + WINDOW;
                let receipt = p.receipt.filter(|(rt, ri)| *rt <= as_of && *ri < size);
                *i < size && due < as_of && receipt.is_none_or(|(rt, _)| rt > due)
            })
            .map(|(i, _)| *i)
            .collect()
    }

    fn visited(s: &MemoryStore, size: u64, as_of: i64) -> Vec<u64> {
        let mut v = Vec::new();
        StoreView(s)
            .overdue_transfers(size, as_of, WINDOW, &mut |i, _| v.push(i))
            .unwrap();
        v
    }

    fn check(s: &MemoryStore, all: &[(u64, Pending)]) {
        for size in [2, 10, 20, 41, 43, 45, 47] {
            for as_of in [0, 105, 111, 200, 260, 400, 1000] {
                let mut got = visited(s, size, as_of);
                let n = got.len();
                got.sort_unstable();
                got.dedup();
                assert_eq!(n, got.len(), "a transfer visited twice at {size}, {as_of}");
                let want = overdue(all, size, as_of);
                // Every overdue transfer, and beyond them only those whose
                // receipt the index cannot place in time without reading
                // it: logged at or past `size`, or not within the window.
                let extra: Vec<u64> = got.iter().filter(|i| !want.contains(i)).copied().collect();
                for i in &extra {
                    let (rt, ri) = all[*i as usize - 1].1.receipt.unwrap_or((0, 0));
                    let at = all[*i as usize - 1].1.at;
                    assert!(
                        ri >= size || rt - at >= WINDOW,
                        "transfer {i} visited at {size}, {as_of}, not overdue"
                    );
                }
                assert!(
                    want.iter().all(|i| got.contains(i)),
                    "size {size}, as of {as_of}: want {want:?}, got {got:?}"
                );
            }
        }
    }

    #[test]
    fn the_due_index_visits_exactly_the_overdue_transfers() {
        let (s, all) = log();
        check(&s, &all);
    }

    /// `Racing` is a store in which the receipts of `late` commit after
    /// the first scan of `transfer_due`, as they may while an answer is
    /// read: the answer's scans then see two states.
    struct Racing {
        s: MemoryStore,
        late: std::sync::Mutex<Option<Vec<KvWrite>>>,
    }

    impl IndexRead for Racing {
        fn index_get(&self, cf: IndexCf, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.s.index_get(cf, k)
        }
        fn index_scan(
            &self,
            cf: IndexCf,
            prefix: &[u8],
            start: &[u8],
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<(), StoreError> {
            self.s.index_scan(cf, prefix, start, f)?;
            if cf == IndexCf::TransferDue {
                if let Some(w) = self.late.lock().unwrap().take() {
                    self.s.index_write(&w)?;
                }
            }
            Ok(())
        }
        fn index_last(&self, cf: IndexCf, p: &[u8]) -> Result<Option<crate::KvPair>, StoreError> {
            self.s.index_last(cf, p)
        }
    }

    impl LogStore for Racing {
        fn tree_size(&self) -> Result<u64, StoreError> {
            self.s.tree_size()
        }
        fn commit(&self, b: &Commit) -> Result<(), StoreError> {
            self.s.commit(b)
        }
        fn read_hashes(&self, i: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
            self.s.read_hashes(i)
        }
        fn read_entries(&self, a: u64, b: u64) -> Result<Vec<Vec<u8>>, StoreError> {
            self.s.read_entries(a, b)
        }
        fn dedup(&self, id: &str) -> Result<Option<crate::DedupRecord>, StoreError> {
            self.s.dedup(id)
        }
        fn registry_indexes(&self) -> Result<Vec<u64>, StoreError> {
            self.s.registry_indexes()
        }
        fn index_snapshot(&self) -> Result<Box<dyn IndexRead + '_>, StoreError> {
            self.s.index_snapshot()
        }
        fn index_write(&self, w: &[KvWrite]) -> Result<(), StoreError> {
            self.s.index_write(w)
        }
        fn put_checkpoint(&self, size: u64, note: &[u8]) -> Result<(), StoreError> {
            self.s.put_checkpoint(size, note)
        }
        fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
            self.s.checkpoint(size)
        }
        fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
            self.s.latest_checkpoint()
        }
        fn checkpoint_at_or_below(&self, size: u64) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
            self.s.checkpoint_at_or_below(size)
        }
    }

    #[test]
    fn a_receipt_committed_while_an_answer_is_read_is_visited_once() {
        let (s, all) = log();
        // Receipts, by entries past the answer's size, of two transfers
        // the first scan sees unreceipted: one in time, one late.
        let late: Vec<KvWrite> = [(27u64, 30i64, 60u64), (31, 400, 61)]
            .into_iter()
            .flat_map(|(of, delay, i)| {
                let at = 10 * of as i64;
                findings_writes(
                    i,
                    &FindingsDelta {
                        receipt: Some((of, at, at + delay, i)),
                        ..Default::default()
                    },
                )
            })
            .collect();
        let s = Racing {
            s,
            late: std::sync::Mutex::new(Some(late)),
        };
        let mut got = Vec::new();
        StoreView(&s)
            .overdue_transfers(47, 1000, WINDOW, &mut |i, _| got.push(i))
            .unwrap();
        let n = got.len();
        got.sort_unstable();
        got.dedup();
        assert_eq!(n, got.len(), "a transfer visited twice: {got:?}");
        for i in overdue(&all, 47, 1000) {
            assert!(got.contains(&i), "transfer {i} missed: {got:?}");
        }
        assert!(got.contains(&27) && got.contains(&31));
    }

    /// Intervals for `held`: asset k (k < 60) on system "s" from entry
    /// 2k+1 at time 100k, closed by entry 2k+2 at time 100k+50 unless k is
    /// a multiple of 20 (those stay open), and a second, open interval of
    /// each asset on system "t" from entry 121+k at time 50k. Assets
    /// k ≡ 0 (mod 7) were captured at time 0 by entry 0, so the retention
    /// rule dates them from then.
    fn intervals() -> (MemoryStore, Vec<(Interval, Timestamp)>) {
        let s = MemoryStore::default();
        let mut writes = Vec::new();
        let mut all = Vec::new();
        let captured = |k: u64| k.is_multiple_of(7);
        let born = |k: u64, from: Timestamp| if captured(k) { 0 } else { from };
        let mut fx = Vec::new();
        for k in 0..60u64 {
            if captured(k) {
                fx.push((
                    0,
                    Effects {
                        created: vec![(
                            [k as u8; 32],
                            custody_domain::AssetMeta {
                                modality: Modality::FaceImage,
                                subject_class: SubjectClass::Citizen,
                                created_by: 0,
                                created_at: 0,
                            },
                        )],
                        ..Default::default()
                    },
                ));
            }
            let open = Interval {
                asset: [k as u8; 32],
                system: "s".into(),
                party: "p".into(),
                from: 100 * k as i64,
                to: None,
                opened_by: 2 * k + 1,
                closed_by: None,
                modality: None,
                subject_class: None,
            };
            let other = Interval {
                system: "t".into(),
                from: 50 * k as i64,
                opened_by: 121 + k,
                ..open.clone()
            };
            fx.push((
                2 * k + 1,
                Effects {
                    opened: vec![open.clone()],
                    ..Default::default()
                },
            ));
            fx.push((
                121 + k,
                Effects {
                    opened: vec![other.clone()],
                    ..Default::default()
                },
            ));
            all.push((other.clone(), born(k, other.from)));
            if k % 20 == 0 {
                all.push((open.clone(), born(k, open.from)));
                continue;
            }
            let closed = Interval {
                to: Some(100 * k as i64 + 50),
                closed_by: Some(2 * k + 2),
                ..open
            };
            fx.push((
                2 * k + 2,
                Effects {
                    closed: vec![closed.clone()],
                    ..Default::default()
                },
            ));
            all.push((closed.clone(), born(k, closed.from)));
        }
        for (i, e) in &fx {
            writes.extend(super::super::index_writes(*i, "p", 0, e));
        }
        s.index_write(&writes).unwrap();
        // The retention index reads the assets' births, as the sequencer
        // does after each entry.
        let mut retention = Vec::new();
        for (_, e) in &fx {
            retention.extend(retention_writes(&StoreView(&s), e).unwrap());
        }
        s.commit(&Commit {
            first_index: 0,
            entries: (0..181).map(|i| vec![i as u8]).collect(),
            hashes: Vec::new(),
            dedup: Vec::new(),
            registry: Vec::new(),
            index: retention,
        })
        .unwrap();
        (s, all)
    }

    /// `held` reads the intervals open since before the horizon and those
    /// closed since the question's size or time: exactly those the rule
    /// keeps, not every interval ever opened; and a log of format 2, which
    /// had no `closed` keys, is given them at start-up.
    #[test]
    fn held_visits_only_what_is_held_as_of_the_question() {
        let (s, all) = intervals();
        check_held(&s, &all);
        let mut gone = Vec::new();
        s.index_scan(IndexCf::Closed, &[], &[], &mut |k, _| {
            gone.push(KvWrite {
                cf: IndexCf::Closed,
                key: k.to_vec(),
                value: None,
            });
            true
        })
        .unwrap();
        assert_eq!(gone.len(), 2 * 57, "two keys per closed interval");
        s.index_scan(IndexCf::OpenSince, &[], &[], &mut |k, _| {
            gone.push(KvWrite {
                cf: IndexCf::OpenSince,
                key: k.to_vec(),
                value: None,
            });
            true
        })
        .unwrap();
        assert_eq!(gone.len(), 2 * 57 + 63, "one key per open interval");
        s.index_write(&gone).unwrap();
        let policy = Policy::default();
        s.index_write(&[
            put(
                IndexCf::DerivedMeta,
                REPORTING_DEADLINE.to_vec(),
                policy.reporting_deadline.to_be_bytes().to_vec(),
            ),
            put(
                IndexCf::DerivedMeta,
                DERIVED_FORMAT.to_vec(),
                2u64.to_be_bytes().to_vec(),
            ),
        ])
        .unwrap();
        check_derived_settings(&s, &mut |_, _| {}).unwrap();
        check_held(&s, &all);
    }

    fn check_held(s: &MemoryStore, all: &[(Interval, Timestamp)]) {
        let mut horizons_mattered = false;
        for size in [1, 10, 41, 80, 121, 150, 181] {
            for as_of in [0, 1000, 2550, 4000, 10_000] {
                for horizon in [Timestamp::MIN, 1, 1000, 2600, 5000, Timestamp::MAX] {
                    let mut got = Vec::new();
                    StoreView(s)
                        .held(size, as_of, horizon, &mut |h| {
                            got.push((h.opened_by, h.born.0))
                        })
                        .unwrap();
                    let n = got.len();
                    got.sort_unstable();
                    got.dedup();
                    assert_eq!(n, got.len(), "an interval visited twice at {size}, {as_of}");
                    let mut want: Vec<(u64, Timestamp)> = all
                        .iter()
                        .filter(|(i, born)| {
                            i.opened_by < size
                                && match i.closed_by {
                                    // Open now: if it started before the horizon.
                                    None => (*born).min(i.from) < horizon,
                                    Some(c) => c >= size || i.to.is_some_and(|t| t > as_of),
                                }
                        })
                        .map(|(i, born)| (i.opened_by, *born))
                        .collect();
                    want.sort_unstable();
                    assert_eq!(got, want, "size {size}, as of {as_of}, horizon {horizon}");
                    horizons_mattered |= horizon == 1 && got.iter().any(|g| g.1 == 0);
                }
            }
        }
        assert!(horizons_mattered, "no interval dated from its capture");
    }

    #[test]
    fn derived_state_of_format_1_is_upgraded_once() {
        let (s, all) = log();
        // Format 1: no transfer_due keys, no format marker, the deadline set.
        let mut gone = Vec::new();
        s.index_scan(IndexCf::TransferDue, &[], &[], &mut |k, _| {
            gone.push(KvWrite {
                cf: IndexCf::TransferDue,
                key: k.to_vec(),
                value: None,
            });
            true
        })
        .unwrap();
        assert!(gone.len() > 40);
        s.index_write(&gone).unwrap();
        let policy = Policy::default();
        s.index_write(&[put(
            IndexCf::DerivedMeta,
            REPORTING_DEADLINE.to_vec(),
            policy.reporting_deadline.to_be_bytes().to_vec(),
        )])
        .unwrap();
        assert!(visited(&s, 47, 1000).is_empty(), "the keys are gone");
        check_derived_settings(&s, &mut |_, _| {}).unwrap();
        check(&s, &all);
        let marker = s.index_get(IndexCf::DerivedMeta, DERIVED_FORMAT).unwrap();
        assert_eq!(marker, Some(FORMAT.to_be_bytes().to_vec()));
        // A newer format is refused, not misread.
        s.index_write(&[put(
            IndexCf::DerivedMeta,
            DERIVED_FORMAT.to_vec(),
            (FORMAT + 1).to_be_bytes().to_vec(),
        )])
        .unwrap();
        let e = check_derived_settings(&s, &mut |_, _| {}).unwrap_err();
        assert!(e.contains("newer"), "{e}");
    }

    /// A log of 300 entries raising 0 to 3 findings each, of three rules,
    /// many at one time, some dated after the times asked about: written
    /// as the sequencer writes them, counts included.
    fn raised_log() -> MemoryStore {
        let s = MemoryStore::default();
        let rules = [
            Rule::UnauthorizedTransfer,
            Rule::LateReporting,
            Rule::UnexplainedCustody,
        ];
        let mut writes = Vec::new();
        let mut counts = RaisedCounts::default();
        let mut x = 99u64;
        for i in 1..300u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let raised: Vec<Finding> = (0..x % 4)
                .map(|n| {
                    let rule = rules[((x >> 8) + n) as usize % 3];
                    let asset = [n as u8; 32];
                    Finding {
                        id: custody_domain::findings::finding_id(rule, i, Some(&asset), Some("s")),
                        rule,
                        entries: vec![i / 2, i],
                        party: Some(["a", "b"][(x >> 12) as usize % 2].into()),
                        system: Some("s".into()),
                        asset: Some(asset),
                        grant: None,
                        retention_rule: None,
                        // Times roughly follow entries, with ties and
                        // some far ahead.
                        at: if x.is_multiple_of(17) {
                            10_000
                        } else {
                            (i as i64 / 3) * 10
                        },
                        detail: "d".into(),
                        observed_by: None,
                        observed_on: None,
                    }
                })
                .collect();
            let d = FindingsDelta {
                raised,
                ..Default::default()
            };
            writes.extend(findings_writes(i, &d));
            writes.extend(counts.add(i, &d));
        }
        s.commit(&Commit {
            first_index: 0,
            entries: (0..300).map(|i| vec![i as u8]).collect(),
            hashes: Vec::new(),
            dedup: Vec::new(),
            registry: Vec::new(),
            index: writes,
        })
        .unwrap();
        s
    }

    /// Every page read from `findings_by_time` and `findings_counts`
    /// equals the page cut from every raised finding, at every size, time,
    /// rule, cursor and page size; walking the pages lists them all.
    /// A page and the page it must equal, for (size, as of, filter,
    /// cursor, page size).
    type Pages<'a> = dyn Fn(
            u64,
            Timestamp,
            &FindingsFilter,
            Option<&(Timestamp, String)>,
            usize,
        ) -> (FindingsPage, FindingsPage)
        + 'a;

    /// `compare_walks` walks the pages `pages` cuts at every size, time,
    /// rule and page size given, from the start to the last page (at most
    /// `max_pages`), checking each page against the one it must equal, and
    /// returns how many pages and rows it compared.
    fn compare_walks(
        sizes: &[u64],
        times: &[Timestamp],
        rules: &[Option<Rule>],
        limits: &[usize],
        max_pages: usize,
        pages: &Pages<'_>,
    ) -> (usize, usize) {
        let (mut compared, mut listed) = (0, 0);
        for &size in sizes {
            for &as_of in times {
                for &rule in rules {
                    let filter = FindingsFilter {
                        rule,
                        ..FindingsFilter::all()
                    };
                    for &limit in limits {
                        let mut after: Option<(Timestamp, String)> = None;
                        for _ in 0..max_pages {
                            let (got, want) = pages(size, as_of, &filter, after.as_ref(), limit);
                            assert_eq!(got, want, "{size} {as_of} {rule:?} {limit} {after:?}");
                            compared += 1;
                            listed += got.rows.len();
                            if !got.more || limit == 0 {
                                break;
                            }
                            after = got.rows.last().map(|f| (f.at, f.id.clone()));
                        }
                    }
                }
            }
        }
        (compared, listed)
    }

    fn check_raised_pages(s: &MemoryStore) {
        let view = StoreView(s);
        let (compared, listed) = compare_walks(
            &[0, 1, 2, 57, 150, 299, 300],
            &[-1, 0, 300, 555, 999, 9_999, 10_000, Timestamp::MAX],
            &[None, Some(Rule::LateReporting), Some(Rule::SequenceGap)],
            &[0, 1, 7, 1000],
            40,
            &|size, as_of, filter, after, limit| {
                (
                    view.raised_page(size, as_of, filter, after, limit).unwrap(),
                    raised_page_by_scan(&view, size, as_of, filter, after, limit).unwrap(),
                )
            },
        );
        assert!(
            compared > 1000 && listed > 10_000,
            "{compared} pages, {listed} rows"
        );
        // A filter the indexes do not serve is read by the scan.
        let by_party = FindingsFilter {
            party: Some("a".into()),
            ..FindingsFilter::all()
        };
        let got = view.raised_page(300, 999, &by_party, None, 5).unwrap();
        assert!(got.total > 0 && got.rows.iter().all(|f| f.party.as_deref() == Some("a")));
    }

    #[test]
    fn raised_pages_from_the_time_index_equal_a_scan_of_every_finding() {
        let s = raised_log();
        check_raised_pages(&s);
    }

    /// A log of format 3 had neither `findings_by_time` nor
    /// `findings_counts`; at start-up it is given both, and answers as a
    /// log written with them.
    #[test]
    fn raised_findings_of_format_3_are_indexed_once() {
        let s = raised_log();
        let mut gone = Vec::new();
        for cf in [IndexCf::FindingsByTime, IndexCf::FindingsCounts] {
            s.index_scan(cf, &[], &[], &mut |k, _| {
                gone.push(KvWrite {
                    cf,
                    key: k.to_vec(),
                    value: None,
                });
                true
            })
            .unwrap();
        }
        assert!(gone.len() > 500);
        s.index_write(&gone).unwrap();
        let policy = Policy::default();
        s.index_write(&[
            put(
                IndexCf::DerivedMeta,
                REPORTING_DEADLINE.to_vec(),
                policy.reporting_deadline.to_be_bytes().to_vec(),
            ),
            put(
                IndexCf::DerivedMeta,
                DERIVED_FORMAT.to_vec(),
                3u64.to_be_bytes().to_vec(),
            ),
        ])
        .unwrap();
        // Without the indexes, pages are empty: the check below can fail.
        let bare = StoreView(&s)
            .raised_page(300, Timestamp::MAX, &FindingsFilter::all(), None, 5)
            .unwrap();
        assert_eq!(bare.total, 0);
        let mut heard = Vec::new();
        check_derived_settings(&s, &mut |family, read| {
            heard.push((family.to_owned(), read))
        })
        .unwrap();
        // The upgrade said what it read, to its end.
        let stored = {
            let mut n = 0;
            s.index_scan(IndexCf::Findings, &[], &[], &mut |_, _| {
                n += 1;
                true
            })
            .unwrap();
            n
        };
        assert!(stored > 300);
        assert!(
            heard.contains(&("findings".to_owned(), stored)),
            "{heard:?}"
        );
        check_raised_pages(&s);
    }

    /// Transfers at entries 94..155, four to a time (so ids of 2 and 3
    /// digits share one: 98..=101, of which 99, 100 and 101 are never
    /// receipted), some receipted in time, some late, some by entries
    /// 160.. that a smaller size does not hold.
    fn transfers_with_ties() -> MemoryStore {
        let s = MemoryStore::default();
        let mut writes = Vec::new();
        let mut receipt = 160u64;
        for i in 94..155u64 {
            let at = ((i - 94) / 4) as i64 * 10;
            let d = FindingsDelta {
                pending: Some((
                    i,
                    Pending {
                        at,
                        party: "p".into(),
                        system: "s".into(),
                        asset: None,
                        receipt: None,
                        observed: None,
                    },
                )),
                ..Default::default()
            };
            writes.extend(findings_writes(i, &d));
            let delay = match i % 6 {
                0 => Some(WINDOW / 2),
                1 => Some(WINDOW * 3),
                2 => Some(WINDOW),
                _ => None,
            };
            if let Some(delay) = delay {
                let d = FindingsDelta {
                    receipt: Some((i, at, at + delay, receipt)),
                    ..Default::default()
                };
                writes.extend(findings_writes(receipt, &d));
                receipt += 1;
            }
        }
        s.commit(&Commit {
            first_index: 0,
            entries: (0..receipt).map(|i| vec![i as u8]).collect(),
            hashes: Vec::new(),
            dedup: Vec::new(),
            registry: Vec::new(),
            index: writes,
        })
        .unwrap();
        s
    }

    /// Every page of unacknowledged transfers read by `transfer_due` key
    /// equals the page cut from every overdue transfer read in full, at
    /// every size, time, rule, cursor and page size.
    #[test]
    fn unacknowledged_pages_by_key_equal_a_scan_of_every_transfer() {
        // One window for every transfer, then three published in turn
        // (the log's entries 130 and 160 change it), so that transfers
        // made at one time fall due at different times.
        let mut one = Policies::default();
        one.publish(0, window(WINDOW));
        let mut three = one.clone();
        three.publish(130, window(WINDOW / 3));
        three.publish(160, window(WINDOW * 4));
        for policies in [one, three] {
            unacknowledged_pages_agree(&policies);
        }
    }

    fn window(receipt_window: i64) -> Policy {
        Policy {
            receipt_window,
            ..Policy::default()
        }
    }

    fn unacknowledged_pages_agree(policies: &Policies) {
        let s = transfers_with_ties();
        let view = StoreView(&s);
        let (compared, listed) = compare_walks(
            &[0, 96, 120, 155, 165, 200],
            &[0, 100, 105, 150, 260, 400, 1000],
            &[
                None,
                Some(Rule::UnacknowledgedTransfer),
                Some(Rule::LateReporting),
            ],
            &[0, 1, 3, 1000],
            80,
            &|size, as_of, filter, after, limit| {
                (
                    view.unacknowledged_page(policies, size, as_of, filter, after, limit)
                        .unwrap(),
                    unacknowledged_page_by_scan(&view, policies, size, as_of, filter, after, limit)
                        .unwrap(),
                )
            },
        );
        assert!(
            compared > 500 && listed > 2000,
            "{compared} pages, {listed} rows"
        );
    }
}
