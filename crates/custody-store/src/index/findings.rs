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
    Attesting, Birth, Finding, FindingsDelta, FindingsHistory, FindingsState, HeldRow, Pending,
    Policy, Rule,
};
use custody_domain::{AssetRef, Digest, HoldRecord, Modality, Refusal, SubjectClass};

use super::{
    asset_meta, decode_interval_value, lp, lp_key, manifest_member, put, storage, tail_u64,
    IndexCf, KvWrite, Reader, StoreView,
};
use crate::{LogStore, StoreError};

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

/// `findings_writes` is what the findings' derived state gains from the
/// entry at `index`, whose delta is `d`.
pub fn findings_writes(index: u64, d: &FindingsDelta) -> Vec<KvWrite> {
    let ix = index.to_be_bytes();
    let mut out = Vec::new();
    for (n, f) in d.raised.iter().enumerate() {
        let mut k = ix.to_vec();
        k.extend_from_slice(&(n as u32).to_be_bytes());
        out.push(put(IndexCf::Findings, k, finding_value(f)));
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
    }
    if let Some((of, t, i)) = d.receipt {
        let mut v = t.to_be_bytes().to_vec();
        v.extend_from_slice(&i.to_be_bytes());
        out.push(put(IndexCf::Receipts, of.to_be_bytes().to_vec(), v));
    }
    out
}

const REPORTING_DEADLINE: &[u8] = b"reporting_deadline";

/// `check_derived_settings` makes sure the findings stored in `s` were
/// derived with `policy`'s reporting deadline, the one policy window that
/// is applied as entries are logged (the others apply when findings are
/// asked for). A new log records it.
///
/// # Errors
///
/// A message naming the setting when the log was derived with another
/// value, or was written before derived state was kept.
pub fn check_derived_settings(s: &dyn LogStore, policy: &Policy) -> Result<(), String> {
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
                     and it is served with {} s: serve it with --reporting-deadline-secs {}",
                    was / 1_000_000_000,
                    policy.reporting_deadline / 1_000_000_000,
                    was / 1_000_000_000
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
    s: &dyn LogStore,
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

impl StoreView<'_> {
    fn created_by(&self, asset: &Digest) -> Result<Option<u64>, Refusal> {
        Ok(asset_meta(self.0, asset)
            .map_err(storage)?
            .map(|m| m.created_by))
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
}

impl FindingsHistory for StoreView<'_> {
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

    fn held(&self, size: u64, f: &mut dyn FnMut(HeldRow)) -> Result<(), Refusal> {
        scan_paged(self.0, IndexCf::SystemIntervals, &[], &[], &mut |k, v| {
            let mut r = Reader {
                b: k,
                what: "system interval key",
            };
            let system = r.string().map_err(corrupt)?;
            let asset = r.digest().map_err(corrupt)?;
            let opened_by = r.u64().map_err(corrupt)?;
            if opened_by >= size {
                return Ok(true);
            }
            let i = decode_interval_value(asset, system, opened_by, v).map_err(corrupt)?;
            // The birth the asset had when the interval opened: an asset
            // the log created only later is dated by the interval itself.
            let born = match self.created_by(&asset)? {
                Some(c) if c <= opened_by => self.birth(&asset)?,
                _ => None,
            };
            let born = born.unwrap_or_else(|| {
                let classes = match (i.modality, i.subject_class) {
                    (Some(m), Some(s)) => vec![(m, s)],
                    _ => Vec::new(),
                };
                (i.from, i.opened_by, classes)
            });
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
        })
    }

    fn transfers(&self, size: u64, f: &mut dyn FnMut(u64, Pending)) -> Result<(), Refusal> {
        scan_paged(self.0, IndexCf::Pending, &[], &[], &mut |k, v| {
            let index = tail_u64(k).map_err(corrupt)?;
            if index >= size {
                return Ok(false);
            }
            let mut r = Reader {
                b: v,
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
            f(
                index,
                Pending {
                    at,
                    party,
                    system,
                    asset,
                    receipt,
                    observed,
                },
            );
            Ok(true)
        })
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
