//! Custody queries answered from the indexes, as of one tree size.
//!
//! Every answer is computed as of a checkpoint's tree size `n`: entries at
//! `n` or later are invisible, so an interval they opened does not exist
//! and an interval they closed is still open. The gRPC layer then proves
//! each cited entry against that same checkpoint.

use std::collections::BTreeMap;

use custody_domain::{Digest, Interval, Modality, SubjectClass, Timestamp};
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

/// `ScopeClass` is one cell of a breach scope's split.
pub type ScopeClass = (Option<Modality>, Option<SubjectClass>);

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
    /// # Errors
    ///
    /// [`StoreError`] on storage failure.
    pub fn breach_scope(
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
            let Some(i) = self.visible(i) else {
                return true;
            };
            if !i.overlaps(from, to) {
                return true;
            }
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
