//! Custody queries answered from the indexes, as of one tree size.
//!
//! Every answer is computed as of a checkpoint's tree size `n`: entries at
//! `n` or later are invisible, so an interval they opened does not exist
//! and an interval they closed is still open. The gRPC layer then proves
//! each cited entry against that same checkpoint.

use std::collections::BTreeMap;

use custody_domain::{Digest, Interval, Timestamp};
use custody_store::index::{self, SystemCursor};
use custody_store::{LogStore, StoreError};

/// `AsOf` is the store seen as of tree size `size`.
#[derive(Clone, Copy)]
pub struct AsOf<'a> {
    /// The store.
    pub store: &'a dyn LogStore,
    /// The tree size answers are computed at.
    pub size: u64,
}

pub use custody_store::index::ScopeClass;

/// `BreachScope` is the answer to "which assets rested on system S at any
/// moment of `[from, to]`".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreachScope {
    /// Distinct assets in scope.
    pub asset_count: u64,
    /// Distinct assets by modality and subject class.
    pub by_class: BTreeMap<ScopeClass, u64>,
    /// This page: every overlapping interval of each listed asset.
    pub intervals: Vec<Interval>,
    /// The last asset of this page, when more follow.
    pub next: Option<Digest>,
}

/// `HoldingsCursor` resumes a holdings listing: system ordinal, then the
/// position inside that system.
pub type HoldingsCursor = (usize, SystemCursor);

impl AsOf<'_> {
    /// `visible` is the interval as of `size`, or `None` if it did not
    /// exist yet.
    fn visible(&self, mut i: Interval) -> Option<Interval> {
        if i.opened_by >= self.size {
            return None;
        }
        if i.closed_by.is_some_and(|c| c >= self.size) {
            i.to = None;
            i.closed_by = None;
        }
        Some(i)
    }

    /// `asset_history` lists up to `limit` indexes of entries about `asset`
    /// after `after`, and whether more follow.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on storage failure.
    pub fn asset_history(
        &self,
        asset: &Digest,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<u64>, bool), StoreError> {
        let mut v = index::asset_entries(self.store, asset, after, limit + 1)?;
        v.retain(|i| *i < self.size);
        let more = v.len() > limit;
        v.truncate(limit);
        Ok((v, more))
    }

    /// `asset_intervals` is up to `limit` intervals of `asset` on every
    /// system, in (system, opened_by) order, and whether more exist.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on storage failure.
    pub fn asset_intervals(
        &self,
        asset: &Digest,
        limit: usize,
    ) -> Result<(Vec<Interval>, bool), StoreError> {
        let mut out = Vec::new();
        let mut more = false;
        index::scan_asset_intervals(self.store, asset, &mut |i| {
            if let Some(i) = self.visible(i) {
                if out.len() == limit {
                    more = true;
                    return false;
                }
                out.push(i);
            }
            true
        })?;
        Ok((out, more))
    }

    /// `holders_at` is every interval of `asset` covering time `t`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on storage failure.
    pub fn holders_at(&self, asset: &Digest, t: Timestamp) -> Result<Vec<Interval>, StoreError> {
        Ok(index::asset_intervals(self.store, asset)?
            .into_iter()
            .filter_map(|i| self.visible(i))
            .filter(|i| i.holds_at(t))
            .collect())
    }

    /// `holdings` lists up to `limit` intervals covering `t` on `systems`
    /// (in the order given), after `after`, and the cursor to resume from
    /// when more may follow.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on storage failure.
    pub fn holdings(
        &self,
        systems: &[String],
        t: Timestamp,
        after: Option<HoldingsCursor>,
        limit: usize,
    ) -> Result<(Vec<Interval>, Option<HoldingsCursor>), StoreError> {
        let mut out = Vec::new();
        let (first, mut within) = match after {
            Some((s, c)) => (s, Some(c)),
            None => (0, None),
        };
        for (n, system) in systems.iter().enumerate().skip(first) {
            let mut last = None;
            index::scan_system_intervals(self.store, system, within.take(), &mut |i| {
                last = Some((i.asset, i.opened_by));
                if let Some(i) = self.visible(i) {
                    if i.holds_at(t) {
                        out.push(i);
                    }
                }
                out.len() < limit
            })?;
            if out.len() >= limit {
                return Ok((out, last.map(|c| (n, c))));
            }
        }
        Ok((out, None))
    }

    /// `breach_scope` counts the distinct assets resident on `system` at any
    /// moment of `[from, to]`, split by class, and lists the intervals of up
    /// to `limit` of them after asset `after`.
    ///
    /// The counts come from the kept breach-scope counts
    /// ([`index::scope_count`]), or, on a log begun before they were kept,
    /// from a scan of every interval on the system. `memo` keeps them, so
    /// the pages after the first (and a second asker of the same question)
    /// read only their page, from the cursor on.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on storage failure.
    pub fn breach_scope(
        &self,
        memo: &ScopeMemo,
        system: &str,
        from: Timestamp,
        to: Timestamp,
        after: Option<Digest>,
        limit: usize,
    ) -> Result<BreachScope, StoreError> {
        let key = (system.to_owned(), from, to, self.size);
        if let Some(counts) = memo.counts.get(&key) {
            let (intervals, next) = self.breach_page(system, from, to, after, limit)?;
            return Ok(BreachScope {
                asset_count: counts.asset_count,
                by_class: counts.by_class,
                intervals,
                next,
            });
        }
        // One snapshot for every read of the counts: a commit landing
        // between the bucket reads and the journal's would be subtracted
        // without having been added.
        let snapshot = self.store.index_snapshot()?;
        if let Some(c) = index::scope_count(snapshot.as_ref(), system, from, to, self.size)? {
            let (intervals, next) = self.breach_page(system, from, to, after, limit)?;
            memo.counts.insert(
                key,
                ScopeCounts {
                    asset_count: c.assets,
                    by_class: c.by_class.clone(),
                },
            );
            return Ok(BreachScope {
                asset_count: c.assets,
                by_class: c.by_class,
                intervals,
                next,
            });
        }
        let scope = self.breach_scan(system, from, to, after, limit)?;
        memo.counts.insert(
            key,
            ScopeCounts {
                asset_count: scope.asset_count,
                by_class: scope.by_class.clone(),
            },
        );
        Ok(scope)
    }

    /// `in_window` is the interval as of `size` if it overlaps `[from, to]`.
    fn in_window(&self, i: Interval, from: Timestamp, to: Timestamp) -> Option<Interval> {
        self.visible(i).filter(|i| i.overlaps(from, to))
    }

    /// `breach_page` is [`AsOf::breach_scope`]'s page alone, read from the
    /// cursor on: the overlapping intervals of up to `limit` assets after
    /// `after`, and the last of them when another follows.
    fn breach_page(
        &self,
        system: &str,
        from: Timestamp,
        to: Timestamp,
        after: Option<Digest>,
        limit: usize,
    ) -> Result<(Vec<Interval>, Option<Digest>), StoreError> {
        let mut intervals: Vec<Interval> = Vec::new();
        let mut next = None;
        let mut listed = 0usize;
        // Past every interval of `after`: no interval is opened by the
        // entry at u64::MAX.
        let cursor = after.map(|a| (a, u64::MAX));
        index::scan_system_intervals(self.store, system, cursor, &mut |i| {
            let Some(i) = self.in_window(i, from, to) else {
                return true;
            };
            if intervals.last().map(|l| l.asset) != Some(i.asset) {
                if listed == limit {
                    // The first asset past the page: the page ended before it.
                    next = intervals.last().map(|l| l.asset);
                    return false;
                }
                listed += 1;
            }
            intervals.push(i);
            true
        })?;
        Ok((intervals, next))
    }

    /// `breach_scan` is [`AsOf::breach_scope`] in one scan of the system.
    fn breach_scan(
        &self,
        system: &str,
        from: Timestamp,
        to: Timestamp,
        after: Option<Digest>,
        limit: usize,
    ) -> Result<BreachScope, StoreError> {
        let mut scope = BreachScope::default();
        // The scan is in asset order, so one asset's intervals are adjacent.
        let mut current: Option<(Digest, ScopeClass)> = None;
        let mut listed = 0usize;
        let finish = |scope: &mut BreachScope,
                      cur: &mut Option<(Digest, ScopeClass)>,
                      listed: &mut usize| {
            if let Some((asset, class)) = cur.take() {
                scope.asset_count += 1;
                *scope.by_class.entry(class).or_default() += 1;
                if after.is_none_or(|a| asset > a) {
                    *listed += 1;
                }
            }
        };
        index::scan_system_intervals(self.store, system, None, &mut |i| {
            let Some(i) = self.in_window(i, from, to) else {
                return true;
            };
            match &mut current {
                Some((a, class)) if *a == i.asset => {
                    if class.0.is_none() {
                        *class = (i.modality, i.subject_class);
                    }
                }
                _ => {
                    finish(&mut scope, &mut current, &mut listed);
                    current = Some((i.asset, (i.modality, i.subject_class)));
                }
            }
            let in_page = after.is_none_or(|a| i.asset > a);
            if in_page && listed < limit {
                scope.intervals.push(i);
            } else if in_page && listed == limit && scope.next.is_none() {
                // The first asset past the page: the page ended before it.
                scope.next = scope.intervals.last().map(|l| l.asset);
            }
            true
        })?;
        finish(&mut scope, &mut current, &mut listed);
        Ok(scope)
    }
}

/// `ScopeCounts` is a breach scope's counts, without its page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ScopeCounts {
    asset_count: u64,
    by_class: BTreeMap<ScopeClass, u64>,
}

/// `ScopeMemo` keeps the counts of recent breach scopes by (system, from,
/// to, tree size). An answer as of a tree size never changes (entries at
/// that size or later are invisible to it), so nothing is invalidated;
/// the memo only bounds how many it keeps.
pub struct ScopeMemo {
    counts: quick_cache::sync::Cache<(String, Timestamp, Timestamp, u64), ScopeCounts>,
}

impl ScopeMemo {
    /// `CAPACITY` is how many breach scopes' counts are kept: each a few
    /// hundred bytes at most (one count per class).
    pub const CAPACITY: usize = 1024;
}

impl Default for ScopeMemo {
    fn default() -> Self {
        Self {
            counts: quick_cache::sync::Cache::new(Self::CAPACITY),
        }
    }
}

#[cfg(test)]
mod tests {
    use custody_domain::{Effects, Modality, SubjectClass};
    use custody_store::index::{check_derived_settings, index_writes, scope_writes};
    use custody_store::{KvWrite, MemoryStore};
    use proptest::prelude::*;

    use super::*;

    /// Intervals on system "s": asset byte, from, and (if it closed) how
    /// long after and how many entries later.
    type Spec = Vec<(u8, i64, Option<(i64, u64)>, u8)>;

    fn store(spec: &Spec) -> MemoryStore {
        let store = MemoryStore::default();
        write(&store, spec, &|_, w| w);
        store
    }

    /// `counted` is [`store`] with the breach-scope counts kept, as a log
    /// begun by this custodyd keeps them.
    fn counted(spec: &Spec) -> MemoryStore {
        let store = MemoryStore::default();
        check_derived_settings(&store, &mut |_, _| {}).unwrap();
        // Entries here write in any order, so every record is read and
        // added to (`first` past them all).
        write(&store, spec, &|s, mut w| {
            let more = scope_writes(s, u64::MAX, &w).unwrap();
            w.extend(more);
            w
        });
        store
    }

    fn write(
        store: &MemoryStore,
        spec: &Spec,
        finish: &dyn Fn(&MemoryStore, Vec<KvWrite>) -> Vec<KvWrite>,
    ) {
        let mut creations = std::collections::HashSet::new();
        for (n, (asset, from, close, class)) in spec.iter().enumerate() {
            let opened_by = 2 * n as u64;
            let i = Interval {
                asset: [*asset; 32],
                system: "s".to_owned(),
                party: "p".to_owned(),
                from: *from,
                to: None,
                opened_by,
                closed_by: None,
                modality: Modality::from_code(class % 6),
                subject_class: SubjectClass::from_code(class / 6 % 5),
            };
            // Odd classes open by creating the asset (a CAPTURE), even if
            // an earlier interval (a COPY of bytes not yet known) had it;
            // an asset is created once.
            let create = class % 2 == 1 && creations.insert(*asset);
            let created = match (i.modality, i.subject_class) {
                (Some(modality), Some(subject_class)) if create => vec![(
                    i.asset,
                    custody_domain::AssetMeta {
                        modality,
                        subject_class,
                        created_by: opened_by,
                        created_at: *from,
                    },
                )],
                _ => Vec::new(),
            };
            let open = Effects {
                opened: vec![i.clone()],
                created,
                ..Effects::default()
            };
            store
                .index_write(&finish(
                    store,
                    index_writes(opened_by, "p", n as u64, &open),
                ))
                .unwrap();
            if let Some((after, later)) = close {
                let close = Effects {
                    closed: vec![Interval {
                        to: Some(from + after),
                        closed_by: Some(opened_by + 1 + later),
                        ..i
                    }],
                    ..Effects::default()
                };
                store
                    .index_write(&finish(
                        store,
                        index_writes(opened_by + 1 + later, "p", 0, &close),
                    ))
                    .unwrap();
            }
        }
    }

    proptest! {
        /// The pages after the first are read from the cursor with the
        /// counts from the memo; walked to the end, they are what one
        /// scan lists, at any tree size, window and page size.
        #[test]
        fn pages_from_the_memo_are_the_scan(
            spec in prop::collection::vec(
                (0u8..12, 0i64..100, prop::option::of((0i64..50, 0u64..6)), 0u8..30),
                0..40,
            ),
            size in 0u64..90,
            from in 0i64..120,
            len in 0i64..80,
            limit in 1usize..5,
        ) {
            let store = store(&spec);
            let q = AsOf { store: &store, size };
            let to = from + len;
            let whole = q.breach_scan("s", from, to, None, usize::MAX).unwrap();
            let memo = ScopeMemo::default();
            let mut walked = Vec::new();
            let mut after = None;
            for _ in 0..=spec.len() {
                let page = q.breach_scope(&memo, "s", from, to, after, limit).unwrap();
                prop_assert_eq!(page.asset_count, whole.asset_count);
                prop_assert_eq!(&page.by_class, &whole.by_class);
                let mut assets: Vec<_> = page.intervals.iter().map(|i| i.asset).collect();
                assets.dedup();
                prop_assert!(assets.len() <= limit);
                walked.extend(page.intervals);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            prop_assert_eq!(walked, whole.intervals);
        }

        /// The kept breach-scope counts are what a scan counts, at any
        /// tree size and window: with times spread over every level of
        /// buckets (and before 1970), intervals that close before they
        /// open, and assets that come back to the system.
        #[test]
        fn kept_counts_are_the_scan(
            spec in prop::collection::vec(
                (0u8..12, 0i64..100, prop::option::of((-20i64..50, 0u64..6)), 0u8..30),
                0..40,
            ),
            scale in prop::sample::select(vec![1i64, 1 << 28, 1 << 33, 1 << 41, 1 << 47, 1 << 55]),
            size in 0u64..90,
            from in 0i64..120,
            len in 0i64..80,
        ) {
            let spec: Spec = spec
                .into_iter()
                .map(|(a, f, c, k)| (a, (f - 50) * scale, c.map(|(d, l)| (d * scale, l)), k))
                .collect();
            let (from, to) = ((from - 60) * scale, (from - 60 + len) * scale);
            let scanned = AsOf { store: &store(&spec), size }
                .breach_scan("s", from, to, None, usize::MAX)
                .unwrap();
            let store = counted(&spec);
            let kept = index::scope_count(&store, "s", from, to, size).unwrap().unwrap();
            prop_assert_eq!(kept.assets, scanned.asset_count);
            prop_assert_eq!(&kept.by_class, &scanned.by_class);
            // And through the query, whose first page is the scan's.
            let q = AsOf { store: &store, size };
            let page = q.breach_scope(&ScopeMemo::default(), "s", from, to, None, 3).unwrap();
            prop_assert_eq!(page.asset_count, scanned.asset_count);
            let mut first = scanned.intervals.clone();
            let mut assets: Vec<_> = first.iter().map(|i| i.asset).collect();
            assets.dedup();
            if let Some(fourth) = assets.get(3) {
                first.retain(|i| i.asset < *fourth);
            }
            prop_assert_eq!(page.intervals, first);
        }
    }

    /// Counts read while entries are committed are those of one moment:
    /// as of a size before every new entry, the answer never moves.
    #[test]
    fn counts_read_during_commits_are_of_one_moment() {
        let spec: Spec = (0..20)
            .map(|n| (n, i64::from(n) << 31, None, n % 7))
            .collect();
        let store = counted(&spec);
        let q = AsOf {
            store: &store,
            size: 50,
        };
        let want = q
            .breach_scope(&ScopeMemo::default(), "s", 0, i64::MAX, None, 1)
            .unwrap()
            .asset_count;
        assert_eq!(want, 20);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|t| {
            t.spawn(|| {
                // New assets, each in a bucket of its own, by entries past
                // the size asked about.
                for n in 0..3000u64 {
                    let i = Interval {
                        asset: [(n % 200) as u8 + 30; 32],
                        system: "s".to_owned(),
                        party: "p".to_owned(),
                        from: (n as i64 + 20) << 31,
                        to: None,
                        opened_by: 100 + n,
                        closed_by: None,
                        modality: None,
                        subject_class: None,
                    };
                    let mut w = index_writes(
                        100 + n,
                        "p",
                        n,
                        &Effects {
                            opened: vec![i],
                            ..Effects::default()
                        },
                    );
                    let more = scope_writes(&store, u64::MAX, &w).unwrap();
                    w.extend(more);
                    store.index_write(&w).unwrap();
                }
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            let mut asked = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || asked == 0 {
                let got = q
                    .breach_scope(&ScopeMemo::default(), "s", 0, i64::MAX, None, 1)
                    .unwrap()
                    .asset_count;
                assert_eq!(got, want, "as of size 50, after {asked} answers");
                asked += 1;
            }
        });
    }

    /// A log begun before the counts were kept says so, and its queries
    /// scan.
    #[test]
    fn a_log_without_kept_counts_scans() {
        let spec: Spec = vec![(1, 5, None, 0), (2, 7, Some((3, 1)), 7)];
        let store = store(&spec);
        assert_eq!(index::scope_count(&store, "s", 0, 100, 10).unwrap(), None);
        let q = AsOf {
            store: &store,
            size: 10,
        };
        let page = q
            .breach_scope(&ScopeMemo::default(), "s", 0, 100, None, 10)
            .unwrap();
        assert_eq!(page.asset_count, 2);
    }
}
