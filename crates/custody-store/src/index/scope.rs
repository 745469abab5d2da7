//! Breach-scope counts kept as entries are committed, so the count of a
//! system's assets over any window, as of any tree size, costs a few
//! hundred reads instead of a scan of every interval the system ever had.
//!
//! An interval on a system overlaps the closed window `[a, b]` when it
//! opened at or before `b` and is open or closed after `a`
//! ([`Interval::overlaps`]). As of tree size `N`, an interval opened by an
//! entry at or after `N` does not exist, and one closed by such an entry is
//! open. If an interval never closes before it opens (`to >= from`), then
//! the intervals overlapping `[a, b]` as of `N` are exactly
//!
//! `P(N, b) - Q(N, a)`,
//!
//! where `P` counts opens with `opened_by < N` and `from <= b`, and `Q`
//! closes with `closed_by < N` and `to <= a` (such an interval opened at or
//! before `a <= b`, so `P` counted it too). Both are dominance counts over
//! (entry, time), kept in one family, `scope`, under `lp(system)`:
//!
//! | key after `lp(system)` | value |
//! |---|---|
//! | kind ‖ level (1–4) ‖ time bucket | counts by class of every open (kind `o`) or close (`c`) with a time in the bucket; buckets are 2^30, 2^40, 2^50 and 2^60 ns |
//! | kind ‖ 0 ‖ time ‖ entry | counts by class of the opens or closes by one entry at one time |
//! | `j` ‖ entry ‖ kind ‖ time | the same, by entry: the journal |
//! | `i` ‖ asset ‖ opened_by | an interval that closed before it opened (kept out of `Q`) |
//! | `r` ‖ asset | an asset with more than one interval on the system |
//!
//! A prefix count up to time `t` as of `N` reads the buckets before `t`'s
//! (at most 1,023 per level, and as many as hold anything), the exact
//! records of `t`'s 2^30 ns bucket with an entry below `N`, and subtracts
//! what the journal says entries from `N` on added to the buckets. That
//! last part costs what was logged after `N`: little for a recent
//! checkpoint, which is what queries pin.
//!
//! Assets are counted, not intervals: the few assets marked `r` have their
//! intervals read and counted once; intervals marked `i` are corrected one
//! by one. A log begun before this family was kept has no
//! [`SCOPE_COUNTS`] mark, and [`scope_count`] says so; its queries scan.

use std::collections::{BTreeMap, HashMap, HashSet};

use custody_domain::{Digest, Interval, Modality, SubjectClass, Timestamp};

use super::{
    decode_interval_value, interval_fields, lp_key, ordered, put, IndexCf, KvWrite, Reader,
};
use crate::{IndexRead, StoreError};

/// `SCOPE_COUNTS` is the `derived_meta` key that says the `scope` family
/// holds every interval of the log: it is written when a log is begun.
pub(crate) const SCOPE_COUNTS: &[u8] = b"scope_counts";

const OPEN: u8 = b'o';
const CLOSE: u8 = b'c';
const JOURNAL: u8 = b'j';
const INVERTED: u8 = b'i';
const REPEAT: u8 = b'r';

/// The levels' bucket widths, as shifts of the ordered time; each level's
/// bucket holds 1,024 of the level below's.
const LEVELS: [(u8, u32); 4] = [(1, 30), (2, 40), (3, 50), (4, 60)];

/// A class as its wire codes (0 when unknown).
type Code = (u8, u8);

/// `ScopeClass` is a breach scope's split key: an asset's modality and
/// subject class, where the log knows them.
pub type ScopeClass = (Option<Modality>, Option<SubjectClass>);

/// `ScopeCount` is how many assets a system held over a window, and how
/// many of each class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeCount {
    /// Distinct assets.
    pub assets: u64,
    /// Distinct assets by class.
    pub by_class: BTreeMap<ScopeClass, u64>,
}

fn code(i: &Interval) -> Code {
    (
        i.modality.map_or(0, Modality::code),
        i.subject_class.map_or(0, SubjectClass::code),
    )
}

fn ordered_u64(t: Timestamp) -> u64 {
    u64::from_be_bytes(ordered(t))
}

fn counts_value(c: &BTreeMap<Code, u64>) -> Vec<u8> {
    let mut v = Vec::with_capacity(c.len() * 10);
    for ((m, s), n) in c {
        v.push(*m);
        v.push(*s);
        v.extend_from_slice(&n.to_be_bytes());
    }
    v
}

fn decode_counts(v: &[u8]) -> Result<BTreeMap<Code, u64>, StoreError> {
    let mut r = Reader {
        b: v,
        what: "scope count",
    };
    let mut out = BTreeMap::new();
    while !r.b.is_empty() {
        let m = r.u8()?;
        let s = r.u8()?;
        out.insert((m, s), r.u64()?);
    }
    Ok(out)
}

fn level_key(system: &str, kind: u8, level: u8, bucket: u64) -> Vec<u8> {
    let mut k = lp_key(system);
    k.push(kind);
    k.push(level);
    k.extend_from_slice(&bucket.to_be_bytes());
    k
}

fn exact_key(system: &str, kind: u8, time: Timestamp, index: u64) -> Vec<u8> {
    let mut k = lp_key(system);
    k.push(kind);
    k.push(0);
    k.extend_from_slice(&ordered(time));
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn journal_key(system: &str, index: u64, kind: u8, time: Timestamp) -> Vec<u8> {
    let mut k = lp_key(system);
    k.push(JOURNAL);
    k.extend_from_slice(&index.to_be_bytes());
    k.push(kind);
    k.extend_from_slice(&ordered(time));
    k
}

fn mark_key(system: &str, mark: u8, asset: &Digest) -> Vec<u8> {
    let mut k = lp_key(system);
    k.push(mark);
    k.extend_from_slice(asset);
    k
}

/// `scope_writes` is what the breach-scope counts gain from the intervals
/// that `writes` (the index writes of one commit, whose first entry is
/// `first`, in order) open and close, read against the counts `s` holds. Every record is added to what `s`
/// holds under its key, so a bulk entry applied in slices, one commit
/// each, leaves the same records as the same entry applied whole.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn scope_writes(
    s: &dyn IndexRead,
    first: u64,
    writes: &[KvWrite],
) -> Result<Vec<KvWrite>, StoreError> {
    // Assets created in this commit, by the entry that created each (an
    // `assets` value is modality, subject class, created_by, created_at).
    let mut created: HashMap<&[u8], u64> = HashMap::new();
    for w in writes {
        if let (IndexCf::Assets, Some(v)) = (w.cf, &w.value) {
            let mut r = Reader {
                b: v,
                what: "asset",
            };
            r.take(2)?;
            created.insert(w.key.as_slice(), r.u64()?);
        }
    }
    let mut seen: BTreeMap<Digest, ()> = BTreeMap::new();
    // Opens and closes grouped by (system, kind, time, entry) first: a
    // bulk entry's members share one group, so the keys below are built
    // once per group, not once per member.
    let mut groups: HashMap<(&str, u8, Timestamp, u64), BTreeMap<Code, u64>> = HashMap::new();
    let mut marks: BTreeMap<Vec<u8>, ()> = BTreeMap::new();
    let mut opened_here: HashSet<(&str, Digest)> = HashSet::new();
    let briefs = writes
        .iter()
        .filter_map(|w| match (w.cf, &w.value) {
            (IndexCf::SystemIntervals, Some(v)) => Some(Brief::parse(&w.key, v)),
            _ => None,
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Which assets created by their opening entry had an interval they were
    // not created with, read in one batch: most opens are creations.
    let births: Vec<&[u8]> = briefs
        .iter()
        .filter(|i| i.closed_by.is_none() && created.get(i.asset.as_slice()) == Some(&i.opened_by))
        .map(|i| i.asset.as_slice())
        .collect();
    let sighted: HashSet<&[u8]> = births
        .iter()
        .zip(s.index_get_many(IndexCf::ScopeSeen, &births)?)
        .filter_map(|(a, v)| v.map(|_| *a))
        .collect();
    for i in &briefs {
        let (kind, time, by) = match (i.closed_by, i.to) {
            (None, _) => {
                let again = !opened_here.insert((i.system, i.asset));
                // An asset its opening entry creates may have had an
                // interval here only if it had one it was not created with: a COPY
                // of bytes the log did not know yet opens one, and a
                // CAPTURE or DERIVE of them later creates the asset. Such
                // intervals are remembered in `scope_seen`, so a creation
                // (most opens) costs a point lookup, not a scan.
                let look = if created.get(i.asset.as_slice()) == Some(&i.opened_by) {
                    sighted.contains(i.asset.as_slice())
                } else {
                    seen.insert(i.asset, ());
                    true
                };
                if again || (look && has_other_interval(s, i.system, &i.asset)?) {
                    marks.insert(mark_key(i.system, REPEAT, &i.asset), ());
                }
                (OPEN, i.from, i.opened_by)
            }
            (Some(by), Some(to)) if to >= i.from => (CLOSE, to, by),
            (Some(_), Some(_)) => {
                let mut k = mark_key(i.system, INVERTED, &i.asset);
                k.extend_from_slice(&i.opened_by.to_be_bytes());
                marks.insert(k, ());
                continue;
            }
            (Some(_), None) => {
                return Err(StoreError::Corrupt(
                    "an interval closed by an entry without a time".into(),
                ))
            }
        };
        *groups
            .entry((i.system, kind, time, by))
            .or_default()
            .entry(i.class)
            .or_default() += 1;
    }
    // Keys by entries of this commit are new; those by an earlier entry
    // (a bulk entry's slices) add to what its earlier slices wrote, as
    // do the buckets.
    let mut counts: BTreeMap<Vec<u8>, (bool, BTreeMap<Code, u64>)> = BTreeMap::new();
    for ((system, kind, time, by), add) in groups {
        let u = ordered_u64(time);
        let earlier = by < first;
        let keys = [
            (earlier, exact_key(system, kind, time, by)),
            (earlier, journal_key(system, by, kind, time)),
        ]
        .into_iter()
        .chain(
            LEVELS
                .iter()
                .map(|(level, shift)| (true, level_key(system, kind, *level, u >> shift))),
        );
        for (read, key) in keys {
            let c = counts.entry(key).or_default();
            c.0 |= read;
            for (class, n) in &add {
                *c.1.entry(*class).or_default() += n;
            }
        }
    }
    let mut out = Vec::with_capacity(counts.len() + marks.len() + seen.len());
    for (key, (read, mut add)) in counts {
        if read {
            if let Some(v) = s.index_get(IndexCf::Scope, &key)? {
                for (c, n) in decode_counts(&v)? {
                    *add.entry(c).or_default() += n;
                }
            }
        }
        out.push(put(IndexCf::Scope, key, counts_value(&add)));
    }
    out.extend(
        seen.into_keys()
            .map(|a| put(IndexCf::ScopeSeen, a.to_vec(), Vec::new())),
    );
    out.extend(
        marks
            .into_keys()
            .map(|k| put(IndexCf::Scope, k, Vec::new())),
    );
    Ok(out)
}

/// `Brief` is what the counts need of one interval write, read in place.
struct Brief<'a> {
    system: &'a str,
    asset: Digest,
    opened_by: u64,
    from: Timestamp,
    to: Option<Timestamp>,
    closed_by: Option<u64>,
    class: Code,
}

impl<'a> Brief<'a> {
    /// `parse` reads a `system_intervals` key and value (see
    /// `interval_value`).
    fn parse(key: &'a [u8], value: &[u8]) -> Result<Self, StoreError> {
        let mut k = Reader {
            b: key,
            what: "system interval key",
        };
        let n = k.u8()? as usize;
        let system = std::str::from_utf8(k.take(n)?)
            .map_err(|_| StoreError::Corrupt("system interval key is not UTF-8".into()))?;
        let asset = k.digest()?;
        let opened_by = k.u64()?;
        k.done()?;
        let f = interval_fields(value)?;
        Ok(Self {
            system,
            asset,
            opened_by,
            from: f.from,
            to: f.to,
            closed_by: f.closed_by,
            class: (f.modality, f.subject_class),
        })
    }
}

/// `has_other_interval` is whether `s` holds an interval of `asset` on
/// `system`: one from before the commit being built, which `s` does not
/// hold yet.
fn has_other_interval(s: &dyn IndexRead, system: &str, asset: &Digest) -> Result<bool, StoreError> {
    let mut prefix = lp_key(system);
    prefix.extend_from_slice(asset);
    let mut other = false;
    s.index_scan(IndexCf::SystemIntervals, &prefix, &prefix, &mut |_, _| {
        other = true;
        false
    })?;
    Ok(other)
}

/// `scope_count` is how many distinct assets `system` held at some moment
/// of `[from, to]`, as of tree size `size`, by class (an asset's class is
/// that of its first interval in the window whose modality is known, or
/// its last), or `None` when this log's counts are not kept.
///
/// # Errors
///
/// [`StoreError`] on engine failure or corrupt records.
pub fn scope_count(
    s: &dyn IndexRead,
    system: &str,
    from: Timestamp,
    to: Timestamp,
    size: u64,
) -> Result<Option<ScopeCount>, StoreError> {
    if s.index_get(IndexCf::DerivedMeta, SCOPE_COUNTS)?.is_none() {
        return Ok(None);
    }
    let mut n: BTreeMap<Code, i128> = BTreeMap::new();
    prefix_count(s, system, OPEN, to, size, 1, &mut n)?;
    prefix_count(s, system, CLOSE, from, size, -1, &mut n)?;
    // Intervals that closed before they opened: `P` counted them, `Q` did
    // not; take out those that as of `size` closed at or before `from`.
    let mut inverted = Vec::new();
    scan_marks(s, system, INVERTED, &mut |rest| {
        let mut r = Reader {
            b: rest,
            what: "scope mark",
        };
        inverted.push((r.digest()?, r.u64()?));
        r.done()
    })?;
    for (asset, opened_by) in inverted {
        let mut key = lp_key(system);
        key.extend_from_slice(&asset);
        key.extend_from_slice(&opened_by.to_be_bytes());
        let Some(v) = s.index_get(IndexCf::SystemIntervals, &key)? else {
            return Err(StoreError::Corrupt(format!(
                "scope mark of an interval opened by entry {opened_by} that is not stored"
            )));
        };
        let i = decode_interval_value(asset, system.to_owned(), opened_by, &v)?;
        let closed_before = i.closed_by.is_some_and(|c| c < size);
        if i.opened_by < size && closed_before && i.from <= to && i.to.is_some_and(|t| t <= from) {
            *n.entry(code(&i)).or_default() -= 1;
        }
    }
    // Assets with more than one interval: each overlapping interval was
    // counted; count the asset once, by its class.
    let mut repeats = Vec::new();
    scan_marks(s, system, REPEAT, &mut |rest| {
        let mut r = Reader {
            b: rest,
            what: "scope mark",
        };
        repeats.push(r.digest()?);
        r.done()
    })?;
    for asset in repeats {
        let mut class: Option<Code> = None;
        let mut prefix = lp_key(system);
        prefix.extend_from_slice(&asset);
        let mut err = None;
        s.index_scan(IndexCf::SystemIntervals, &prefix, &prefix, &mut |k, v| {
            let r = (|| {
                let mut r = Reader {
                    b: &k[prefix.len()..],
                    what: "system interval key",
                };
                let opened_by = r.u64()?;
                r.done()?;
                decode_interval_value(asset, system.to_owned(), opened_by, v)
            })();
            let i = match r {
                Ok(i) => i,
                Err(e) => {
                    err = Some(e);
                    return false;
                }
            };
            let Some(i) = as_of(i, size).filter(|i| i.overlaps(from, to)) else {
                return true;
            };
            *n.entry(code(&i)).or_default() -= 1;
            if class.is_none_or(|c| c.0 == 0) {
                class = Some(code(&i));
            }
            true
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        if let Some(c) = class {
            *n.entry(c).or_default() += 1;
        }
    }
    let mut out = ScopeCount::default();
    for ((m, sc), k) in n {
        if k == 0 {
            continue;
        }
        let k = u64::try_from(k).map_err(|_| {
            StoreError::Corrupt(format!(
                "the breach-scope counts of {system} come to {k} for one class"
            ))
        })?;
        out.assets += k;
        out.by_class
            .insert((Modality::from_code(m), SubjectClass::from_code(sc)), k);
    }
    Ok(Some(out))
}

/// `as_of` is the interval as the log showed it at tree size `size`, if
/// it existed then.
fn as_of(mut i: Interval, size: u64) -> Option<Interval> {
    if i.opened_by >= size {
        return None;
    }
    if i.closed_by.is_some_and(|c| c >= size) {
        i.to = None;
        i.closed_by = None;
    }
    Some(i)
}

/// `scan_marks` visits the rest of every `mark` key of `system`.
fn scan_marks(
    s: &dyn IndexRead,
    system: &str,
    mark: u8,
    f: &mut dyn FnMut(&[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut prefix = lp_key(system);
    prefix.push(mark);
    let mut err = None;
    s.index_scan(IndexCf::Scope, &prefix, &prefix, &mut |k, _| {
        err = f(&k[prefix.len()..]).err();
        err.is_none()
    })?;
    err.map_or(Ok(()), Err)
}

/// `prefix_count` adds `sign` times the counts by class of `kind` records
/// (opens or closes) with a time at or before `t` by entries below `size`.
fn prefix_count(
    s: &dyn IndexRead,
    system: &str,
    kind: u8,
    t: Timestamp,
    size: u64,
    sign: i128,
    n: &mut BTreeMap<Code, i128>,
) -> Result<(), StoreError> {
    let u = ordered_u64(t);
    let mut add = |v: &[u8], sign: i128| -> Result<(), StoreError> {
        for (c, k) in decode_counts(v)? {
            *n.entry(c).or_default() += sign * i128::from(k);
        }
        Ok(())
    };
    let mut err = None;
    // Whole buckets before t's, level by level from the widest.
    for (level, shift) in LEVELS.iter().rev() {
        let end = u >> shift;
        let start = if *level == 4 {
            0
        } else {
            (u >> (shift + 10)) << 10
        };
        let prefix = level_key(system, kind, *level, 0);
        let prefix = &prefix[..prefix.len() - 8];
        let from = level_key(system, kind, *level, start);
        s.index_scan(IndexCf::Scope, prefix, &from, &mut |k, v| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&k[k.len().saturating_sub(8)..]);
            if u64::from_be_bytes(b) >= end {
                return false;
            }
            err = add(v, sign).err();
            err.is_none()
        })?;
        if let Some(e) = err.take() {
            return Err(e);
        }
    }
    // t's own 2^30 ns bucket, record by record, as of `size`.
    let first = (u >> 30) << 30;
    let mut prefix = lp_key(system);
    prefix.push(kind);
    prefix.push(0);
    let mut from = prefix.clone();
    from.extend_from_slice(&first.to_be_bytes());
    s.index_scan(IndexCf::Scope, &prefix, &from, &mut |k, v| {
        let r = (|| {
            let mut r = Reader {
                b: &k[prefix.len()..],
                what: "scope record key",
            };
            let time = r.u64()?;
            let index = r.u64()?;
            r.done()?;
            Ok::<_, StoreError>((time, index))
        })();
        match r {
            Ok((time, _)) if time > u => false,
            Ok((_, index)) if index >= size => true,
            Ok(_) => {
                err = add(v, sign).err();
                err.is_none()
            }
            Err(e) => {
                err = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = err.take() {
        return Err(e);
    }
    // What entries from `size` on added to the whole buckets above.
    let mut prefix = lp_key(system);
    prefix.push(JOURNAL);
    let mut from = prefix.clone();
    from.extend_from_slice(&size.to_be_bytes());
    s.index_scan(IndexCf::Scope, &prefix, &from, &mut |k, v| {
        let r = (|| {
            let mut r = Reader {
                b: &k[prefix.len()..],
                what: "scope journal key",
            };
            let _index = r.u64()?;
            let kind = r.u8()?;
            let time = r.u64()?;
            r.done()?;
            Ok::<_, StoreError>((kind, time))
        })();
        match r {
            Ok((k, time)) if k == kind && time >> 30 < u >> 30 => {
                err = add(v, -sign).err();
                err.is_none()
            }
            Ok(_) => true,
            Err(e) => {
                err = Some(e);
                false
            }
        }
    })?;
    err.map_or(Ok(()), Err)
}
