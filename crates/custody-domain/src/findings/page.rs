//! One page of findings, cut from a stream of them with memory bounded by
//! the page: the order findings are listed in, the filter every reader
//! (gRPC, the web view, evidence export) applies, and the cursor a next
//! page resumes after.

use std::collections::{BTreeMap, BinaryHeap};

use super::{Finding, Rule};
use crate::Timestamp;

impl Finding {
    /// `order` is the key findings are listed by: when each arose, then
    /// its id, which is unique.
    pub fn order(&self) -> (Timestamp, &str) {
        (self.at, &self.id)
    }
}

/// `FindingsFilter` selects findings. Empty fields select all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingsFilter {
    /// Only this rule's findings.
    pub rule: Option<Rule>,
    /// Only findings about this party.
    pub party: Option<String>,
    /// Only findings about this system.
    pub system: Option<String>,
    /// Only findings that arose in `[from, to]` (both inclusive).
    pub from: Timestamp,
    pub to: Timestamp,
}

impl FindingsFilter {
    /// `all` selects every finding.
    pub fn all() -> Self {
        Self {
            to: Timestamp::MAX,
            from: Timestamp::MIN,
            ..Self::default()
        }
    }

    /// `matches_but_rule` is whether `f` passes every part of the filter
    /// except the rule (what a count by rule is over).
    pub fn matches_but_rule(&self, f: &Finding) -> bool {
        self.party
            .as_deref()
            .is_none_or(|p| f.party.as_deref() == Some(p))
            && self
                .system
                .as_deref()
                .is_none_or(|s| f.system.as_deref() == Some(s))
            && f.at >= self.from
            && f.at <= self.to
    }

    /// `matches` is whether `f` passes the filter.
    pub fn matches(&self, f: &Finding) -> bool {
        self.rule.is_none_or(|r| f.rule == r) && self.matches_but_rule(f)
    }
}

/// `FindingsPage` is a page of findings and the counts around it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingsPage {
    /// Up to the page's size of matching findings after the cursor, in
    /// [`Finding::order`].
    pub rows: Vec<Finding>,
    /// How many findings match the filter in all.
    pub total: u64,
    /// How many findings match the filter but its rule, by rule.
    pub by_rule: BTreeMap<Rule, u64>,
    /// Whether matching findings follow the page.
    pub more: bool,
}

impl FindingsPage {
    /// `merge` is the page of the union of two disjoint sets of findings,
    /// given the page of each cut with the same filter, cursor and
    /// `limit`.
    pub fn merge(self, other: FindingsPage, limit: usize) -> FindingsPage {
        let mut rows = Vec::with_capacity(self.rows.len() + other.rows.len());
        let (mut a, mut b) = (
            self.rows.into_iter().peekable(),
            other.rows.into_iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.order() <= y.order() => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, _) => b.next(),
            };
            match next {
                Some(f) => rows.push(f),
                None => break,
            }
        }
        let more = self.more || other.more || rows.len() > limit;
        rows.truncate(limit);
        let mut by_rule = self.by_rule;
        for (r, n) in other.by_rule {
            *by_rule.entry(r).or_default() += n;
        }
        FindingsPage {
            rows,
            total: self.total + other.total,
            by_rule,
            more,
        }
    }
}

/// `PageCutter` keeps, from findings handed to it in any order, the
/// `limit` first matching ones after a cursor, and counts the rest: its
/// memory is bounded by `limit`, not by the findings it is shown.
pub struct PageCutter {
    filter: FindingsFilter,
    after: Option<(Timestamp, String)>,
    limit: usize,
    /// The page so far, the last in order on top.
    heap: BinaryHeap<Ordered>,
    past: u64,
    page: FindingsPage,
}

struct Ordered(Finding);

impl PartialEq for Ordered {
    fn eq(&self, o: &Self) -> bool {
        self.0.order() == o.0.order()
    }
}
impl Eq for Ordered {}
impl PartialOrd for Ordered {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ordered {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.order().cmp(&o.0.order())
    }
}

impl PageCutter {
    /// `new` cuts a page of up to `limit` findings matching `filter` that
    /// come after `after` in [`Finding::order`] (from the first if `None`).
    pub fn new(filter: FindingsFilter, after: Option<(Timestamp, String)>, limit: usize) -> Self {
        Self {
            filter,
            after,
            limit,
            heap: BinaryHeap::new(),
            past: 0,
            page: FindingsPage::default(),
        }
    }

    /// `offer` shows the cutter one finding.
    pub fn offer(&mut self, f: Finding) {
        if !self.filter.matches_but_rule(&f) {
            return;
        }
        *self.page.by_rule.entry(f.rule).or_default() += 1;
        if self.filter.rule.is_some_and(|r| r != f.rule) {
            return;
        }
        self.page.total += 1;
        if self
            .after
            .as_ref()
            .is_some_and(|(t, id)| f.order() <= (*t, id.as_str()))
        {
            return;
        }
        // After the cursor: on the page if among the first `limit`.
        if self.heap.len() < self.limit {
            self.heap.push(Ordered(f));
            return;
        }
        self.past += 1;
        if self
            .heap
            .peek()
            .is_some_and(|top| f.order() < top.0.order())
        {
            self.heap.pop();
            self.heap.push(Ordered(f));
        }
    }

    /// `finish` is the page.
    pub fn finish(mut self) -> FindingsPage {
        self.page.more = self.past > 0;
        self.page.rows = self
            .heap
            .into_sorted_vec()
            .into_iter()
            .map(|o| o.0)
            .collect();
        self.page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(at: Timestamp, id: &str, rule: Rule, party: &str) -> Finding {
        Finding {
            id: id.to_owned(),
            rule,
            entries: vec![1],
            party: Some(party.to_owned()),
            system: None,
            asset: None,
            grant: None,
            retention_rule: None,
            at,
            detail: String::new(),
            observed_by: None,
            observed_on: None,
        }
    }

    /// Pages cut from a shuffled stream, resumed from each page's last
    /// row, list exactly the sorted matching findings, once each.
    #[test]
    fn pages_cut_from_any_order_list_the_sorted_matches_once() {
        let rules = [
            Rule::UnauthorizedTransfer,
            Rule::SequenceGap,
            Rule::LateReporting,
        ];
        let mut all: Vec<Finding> = (0..500u32)
            .map(|i| {
                // Many share a time, so the id decides their order.
                let at = Timestamp::from(i % 37) * 1000;
                f(
                    at,
                    &format!("f{:04}", (i * 7919) % 500),
                    rules[i as usize % 3],
                    ["a", "b"][i as usize % 2],
                )
            })
            .collect();
        // A deterministic shuffle.
        let mut x = 12345u64;
        for i in (1..all.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            all.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let filter = FindingsFilter {
            rule: Some(Rule::SequenceGap),
            party: Some("a".into()),
            from: 3000,
            ..FindingsFilter::all()
        };
        let mut want: Vec<Finding> = all.iter().filter(|x| filter.matches(x)).cloned().collect();
        want.sort_by(|a, b| a.order().cmp(&b.order()));
        assert!(want.len() > 40, "the filter leaves {} findings", want.len());
        let mut got = Vec::new();
        let mut after = None;
        for _ in 0..100 {
            let mut cut = PageCutter::new(filter.clone(), after.clone(), 7);
            for x in &all {
                cut.offer(x.clone());
            }
            let page = cut.finish();
            assert_eq!(page.total, want.len() as u64);
            let counted: u64 = page.by_rule.values().sum();
            assert_eq!(
                counted,
                all.iter().filter(|x| filter.matches_but_rule(x)).count() as u64
            );
            assert!(page.rows.len() <= 7);
            after = page.rows.last().map(|l| (l.at, l.id.clone()));
            got.extend(page.rows);
            if !page.more {
                break;
            }
        }
        assert_eq!(got, want);
    }

    /// The page of a union is the merge of its parts' pages: rows, counts
    /// and whether more follow, at every cursor and size.
    #[test]
    fn merged_pages_equal_the_page_of_the_union() {
        let rules = [Rule::UnauthorizedTransfer, Rule::RetentionOverdue];
        let all: Vec<Finding> = (0..200u32)
            .map(|i| {
                f(
                    Timestamp::from(i % 23) * 10,
                    &format!("g{:03}", (i * 37) % 200),
                    rules[i as usize % 2],
                    ["a", "b", "c"][i as usize % 3],
                )
            })
            .collect();
        let filters = [
            FindingsFilter::all(),
            FindingsFilter {
                rule: Some(Rule::RetentionOverdue),
                party: Some("b".into()),
                ..FindingsFilter::all()
            },
        ];
        let cut = |xs: &mut dyn Iterator<Item = &Finding>,
                   filter: &FindingsFilter,
                   after: &Option<(Timestamp, String)>,
                   limit: usize| {
            let mut c = PageCutter::new(filter.clone(), after.clone(), limit);
            for x in xs {
                c.offer(x.clone());
            }
            c.finish()
        };
        let mut pages = 0;
        for filter in &filters {
            for limit in [1, 5, 64, 500] {
                for after in [None, Some((50, "g100".to_owned())), Some((220, "z".into()))] {
                    let whole = cut(&mut all.iter(), filter, &after, limit);
                    let left = cut(&mut all.iter().step_by(3), filter, &after, limit);
                    let right = cut(
                        &mut all
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| i % 3 != 0)
                            .map(|x| x.1),
                        filter,
                        &after,
                        limit,
                    );
                    assert_eq!(
                        left.merge(right, limit),
                        whole,
                        "{filter:?} {limit} {after:?}"
                    );
                    pages += 1;
                }
            }
        }
        assert_eq!(pages, 24);
    }
}
