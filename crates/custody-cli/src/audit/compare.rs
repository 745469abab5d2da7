//! Comparing the server's custody answers with the audit's own replay:
//! findings, breach scope of every system, and who held a sample of
//! assets (or every asset, with `--compare all`).
//!
//! The audit's answers come from its own store, which its replay wrote
//! through the server's admission path, read with the same
//! `custody_store::index` and `custody_domain::findings` functions the
//! server answers with. Findings and intervals are compared as two sorted
//! streams, a page at a time, so the comparison's memory does not grow
//! with the log (except with `--compare all`, which lists every asset).
//!
//! Every question is asked as of the audited checkpoint, so the log may
//! grow meanwhile: findings and breach scope by a first page token of
//! just that tree size (the server's token format, `grpc_query.rs`),
//! `HoldersAt` by its `tree_size`. An answer as of any other size is a
//! difference, never skipped.

use std::collections::{BTreeMap, VecDeque};

use crate::net::Grpc;
use anyhow::{anyhow, Context as _};
use custody_domain::findings::{findings_page, FindingsFilter, Rule};
use custody_domain::{hex, Digest, Interval, Modality, Registry, SubjectClass};
use custody_proto::v1::{self, custody_query_client::CustodyQueryClient};
use custody_store::index::{asset_intervals, scan_system_intervals, StoreView};
use custody_store::{IndexCf, IndexRead};
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{json, Value};

/// How many differences of one kind are spelled out; the rest are counted.
const SHOWN: usize = 20;
/// Concurrent `HoldersAt` calls.
const CONCURRENCY: usize = 8;

/// `Audited` is what the audit established, to compare against.
pub struct Audited<'a> {
    /// The audited tree size, which the store holds exactly.
    pub size: u64,
    /// The audit's store.
    pub store: &'a dyn IndexRead,
    /// The registry after the audited entries.
    pub registry: &'a Registry,
    /// The time findings are evaluated at.
    pub as_of: i64,
}

/// Findings per page, on either side.
const FINDINGS_PAGE: usize = 1000;

/// `Mode` is how much of the server's answers to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Every finding, every system's breach-scope counts and first page of
    /// intervals, and `HoldersAt` for a sample of assets.
    Sample,
    /// Every finding, every system's every breach-scope interval, and
    /// `HoldersAt` for every asset.
    All,
}

/// `Comparison` is the outcome.
#[derive(Default)]
pub struct Comparison {
    /// One line per kind of answer: what was compared and what agreed.
    pub summary: Vec<String>,
    /// Every difference found, one line each.
    pub differences: Vec<String>,
    /// The same, for `--json`.
    pub json: serde_json::Map<String, Value>,
}

impl Comparison {
    fn differ(&mut self, line: String) {
        self.differences.push(line);
    }
}

/// `pin` is a first page token that pins an answer to tree size `size`.
fn pin(size: u64) -> Vec<u8> {
    size.to_be_bytes().to_vec()
}

fn status(what: &str, s: tonic::Status) -> anyhow::Error {
    anyhow!("{what} ({:?}): {}", s.code(), s.message())
}

fn proven_at(what: &str, ev: Option<&v1::Evidence>, size: u64) -> anyhow::Result<()> {
    match ev.map(|e| e.tree_size) {
        Some(s) if s == size => Ok(()),
        Some(s) => Err(anyhow!(
            "{what}: the server answered as of size {s}, not the audited size {size}"
        )),
        None => Err(anyhow!("{what}: the server's answer carries no evidence")),
    }
}

/// `interval_wire` is the wire form of an interval (as the server sends it).
fn interval_wire(i: &Interval) -> v1::CustodyInterval {
    v1::CustodyInterval {
        asset: i.asset.to_vec(),
        party: i.party.clone(),
        system_id: i.system.clone(),
        from_unix_nanos: i.from,
        to_unix_nanos: i.to.unwrap_or(0),
        opened_by: i.opened_by,
        closed_by: i.closed_by.unwrap_or(0),
        modality: i.modality.map_or(0, |m| i32::from(m.code())),
        subject_class: i.subject_class.map_or(0, |s| i32::from(s.code())),
    }
}

fn sort_intervals(v: &mut [v1::CustodyInterval]) {
    v.sort_by(|a, b| {
        (&a.system_id, &a.asset, a.opened_by).cmp(&(&b.system_id, &b.asset, b.opened_by))
    });
}

fn describe(i: &v1::CustodyInterval) -> String {
    format!(
        "{} on {} held by {} from entry {} to {}",
        hex(&i.asset),
        i.system_id,
        i.party,
        i.opened_by,
        if i.to_unix_nanos == 0 {
            "now".to_owned()
        } else {
            format!("entry {}", i.closed_by)
        }
    )
}

/// `diff_intervals` reports intervals on one side only, or differing.
fn diff_intervals(
    out: &mut Comparison,
    what: &str,
    mut ours: Vec<v1::CustodyInterval>,
    mut theirs: Vec<v1::CustodyInterval>,
) -> bool {
    sort_intervals(&mut ours);
    sort_intervals(&mut theirs);
    if ours == theirs {
        return true;
    }
    let key = |i: &v1::CustodyInterval| (i.system_id.clone(), i.asset.clone(), i.opened_by);
    let o: BTreeMap<_, _> = ours.iter().map(|i| (key(i), i)).collect();
    let t: BTreeMap<_, _> = theirs.iter().map(|i| (key(i), i)).collect();
    let mut shown = 0;
    for (k, i) in &o {
        match t.get(k) {
            None => {
                out.differ(format!("{what}: the server omits {}", describe(i)));
                shown += 1;
            }
            Some(j) if j != i => {
                out.differ(format!(
                    "{what}: the server says {}, the replay says {}",
                    describe(j),
                    describe(i)
                ));
                shown += 1;
            }
            Some(_) => {}
        }
        if shown >= SHOWN {
            break;
        }
    }
    for (k, j) in &t {
        if shown >= SHOWN {
            break;
        }
        if !o.contains_key(k) {
            out.differ(format!(
                "{what}: the server adds {}, which the replay does not have",
                describe(j)
            ));
            shown += 1;
        }
    }
    false
}

/// `compare` asks the server at `server` and compares its answers with
/// the audit's.
///
/// # Errors
///
/// When the server cannot be asked; differences are not errors.
pub async fn compare(
    server: &str,
    a: &Audited<'_>,
    mode: Mode,
    sample: usize,
) -> anyhow::Result<Comparison> {
    let ch = crate::net::channel(server).await?;
    let mut q = CustodyQueryClient::new(ch).max_decoding_message_size(256 << 20);
    let mut out = Comparison::default();
    findings(&mut q, a, &mut out).await?;
    breach_scope(&mut q, a, mode, &mut out).await?;
    holders(&q, a, mode, sample, &mut out).await?;
    Ok(out)
}

/// `OurFindings` pages through the audit's own findings in the order the
/// server lists its own: by (time, id).
struct OurFindings<'a> {
    a: &'a Audited<'a>,
    page: VecDeque<v1::Finding>,
    after: Option<(i64, String)>,
    more: bool,
}

impl OurFindings<'_> {
    fn next(&mut self) -> anyhow::Result<Option<v1::Finding>> {
        if self.page.is_empty() && self.more {
            let p = findings_page(
                &StoreView(self.a.store),
                self.a.registry,
                self.a.size,
                self.a.as_of,
                &FindingsFilter::all(),
                self.after.as_ref(),
                FINDINGS_PAGE,
            )
            .map_err(|r| anyhow!("the audit's own findings: {r}"))?;
            self.more = p.more;
            if let Some(f) = p.rows.last() {
                self.after = Some((f.at, f.id.clone()));
            } else {
                self.more = false;
            }
            self.page
                .extend(p.rows.iter().map(custody_proto::finding_to_proto));
        }
        Ok(self.page.pop_front())
    }
}

/// `TheirFindings` pages through the server's findings, pinned to the
/// audited size.
struct TheirFindings<'a> {
    q: &'a mut CustodyQueryClient<Grpc>,
    a: &'a Audited<'a>,
    page: VecDeque<v1::Finding>,
    token: Option<Vec<u8>>,
}

impl TheirFindings<'_> {
    async fn next(&mut self) -> anyhow::Result<Option<v1::Finding>> {
        if self.page.is_empty() {
            if let Some(token) = self.token.take() {
                let r = self
                    .q
                    .findings(v1::FindingsRequest {
                        as_of_unix_nanos: self.a.as_of.max(1),
                        page_size: FINDINGS_PAGE as u32,
                        page_token: token,
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| status("findings", s))?
                    .into_inner();
                proven_at("findings", r.evidence.as_ref(), self.a.size)?;
                self.page.extend(r.findings);
                if !r.next_page_token.is_empty() {
                    self.token = Some(r.next_page_token);
                }
            }
        }
        Ok(self.page.pop_front())
    }
}

fn finding_order(f: &v1::Finding) -> (i64, &str) {
    (f.at_unix_nanos, f.id.as_str())
}

async fn findings(
    q: &mut CustodyQueryClient<Grpc>,
    a: &Audited<'_>,
    out: &mut Comparison,
) -> anyhow::Result<()> {
    let mut ours = OurFindings {
        a,
        page: VecDeque::new(),
        after: None,
        more: true,
    };
    let mut theirs = TheirFindings {
        q,
        a,
        page: VecDeque::new(),
        token: Some(pin(a.size)),
    };
    let mut oc: BTreeMap<String, u64> = Rule::ALL.iter().map(|r| (r.name().into(), 0)).collect();
    let mut tc = oc.clone();
    let (mut missing, mut extra, mut changed, mut repeated) = (0usize, 0usize, 0usize, 0usize);
    let mut shown = 0usize;
    let mut show = |out: &mut Comparison, line: String| {
        if shown < SHOWN {
            out.differ(line);
        }
        shown += 1;
    };
    let (mut o, mut t) = (ours.next()?, theirs.next().await?);
    let mut last_theirs: Option<(i64, String)> = None;
    let mut compared = 0u64;
    loop {
        let take = match (&o, &t) {
            (None, None) => break,
            (Some(x), Some(y)) => finding_order(x).cmp(&finding_order(y)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
        };
        compared += 1;
        match take {
            std::cmp::Ordering::Less => {
                if let Some(x) = o.take() {
                    *oc.entry(x.rule.clone()).or_default() += 1;
                    missing += 1;
                    show(out, format!("findings: the server omits {}", x.id));
                }
                o = ours.next()?;
            }
            std::cmp::Ordering::Greater => {
                if let Some(y) = t.take() {
                    *tc.entry(y.rule.clone()).or_default() += 1;
                    let key = (y.at_unix_nanos, y.id.clone());
                    if last_theirs.as_ref() == Some(&key) {
                        repeated += 1;
                        show(out, format!("findings: the server lists {} twice", y.id));
                    } else {
                        extra += 1;
                        show(
                            out,
                            format!(
                                "findings: the server adds {}, which the replay does not raise",
                                y.id
                            ),
                        );
                    }
                    last_theirs = Some(key);
                }
                t = theirs.next().await?;
            }
            std::cmp::Ordering::Equal => {
                if let (Some(x), Some(y)) = (o.take(), t.take()) {
                    *oc.entry(x.rule.clone()).or_default() += 1;
                    *tc.entry(y.rule.clone()).or_default() += 1;
                    if x != y {
                        changed += 1;
                        show(
                            out,
                            format!(
                                "findings: {} differs: the server says {:?}, the replay {:?}",
                                x.id,
                                (&y.entries, &y.detail, y.at_unix_nanos),
                                (&x.entries, &x.detail, x.at_unix_nanos),
                            ),
                        );
                    }
                    last_theirs = Some((y.at_unix_nanos, y.id));
                }
                o = ours.next()?;
                t = theirs.next().await?;
            }
        }
    }
    for (rule, n) in &oc {
        let m = tc.get(rule).copied().unwrap_or(0);
        if *n != m {
            out.differ(format!(
                "findings: {rule}: the server counts {m}, the replay {n}"
            ));
        }
    }
    for (rule, m) in &tc {
        if !oc.contains_key(rule) {
            out.differ(format!(
                "findings: the server reports {m} findings of unknown rule {rule:?}"
            ));
        }
    }
    if shown > SHOWN {
        out.differ(format!(
            "findings: {} more differences not shown",
            shown - SHOWN
        ));
    }
    let agree = missing == 0 && extra == 0 && changed == 0 && repeated == 0 && oc == tc;
    out.summary.push(format!(
        "findings as of {}: {compared} compared (every one, per rule and by id): {}",
        custody_domain::rfc3339(a.as_of),
        if agree {
            "all agree".to_owned()
        } else {
            format!(
                "{missing} omitted by the server, {extra} added, {changed} differ, {repeated} listed twice"
            )
        }
    ));
    out.json.insert(
        "findings".into(),
        json!({
            "ours": oc, "theirs": tc, "agree": agree,
            "missing": missing, "extra": extra, "changed": changed, "repeated": repeated,
        }),
    );
    Ok(())
}

/// `Class` is a breach scope's split key, as the wire codes.
type Class = (i32, i32);

/// `Scope` is our breach scope of one system over all time: distinct
/// assets by class, and the intervals listed (every one, or those of the
/// first assets in sample mode), in (asset, opened_by) order. An asset's
/// class is its first interval's that knows one, as the server's scan
/// takes it.
#[derive(Default)]
struct Scope {
    classes: BTreeMap<Class, u64>,
    listed: Vec<v1::CustodyInterval>,
    assets: usize,
    /// The current asset and its class so far.
    current: Option<(Digest, Option<Modality>, Option<SubjectClass>)>,
}

impl Scope {
    /// `add` takes the system's next interval, in (asset, opened_by)
    /// order; intervals of the first `list` assets are listed.
    fn add(&mut self, i: &Interval, list: usize) {
        match &mut self.current {
            Some((a, m, s)) if *a == i.asset => {
                if m.is_none() {
                    (*m, *s) = (i.modality, i.subject_class);
                }
            }
            _ => {
                self.end_asset();
                self.current = Some((i.asset, i.modality, i.subject_class));
                self.assets += 1;
            }
        }
        if self.assets <= list {
            self.listed.push(interval_wire(i));
        }
    }

    fn end_asset(&mut self) {
        if let Some((_, m, s)) = self.current.take() {
            let key = (
                m.map_or(0, |m| i32::from(m.code())),
                s.map_or(0, |s| i32::from(s.code())),
            );
            *self.classes.entry(key).or_default() += 1;
        }
    }
}

/// `scope_of` reads our breach scope of `system` from the store.
fn scope_of(a: &Audited<'_>, system: &str, list: usize) -> anyhow::Result<Scope> {
    let mut scope = Scope::default();
    scan_system_intervals(a.store, system, None, &mut |i| {
        scope.add(&i, list);
        true
    })
    .with_context(|| format!("read the breach scope of {system} from the audit's state"))?;
    scope.end_asset();
    Ok(scope)
}

async fn breach_scope(
    q: &mut CustodyQueryClient<Grpc>,
    a: &Audited<'_>,
    mode: Mode,
    out: &mut Comparison,
) -> anyhow::Result<()> {
    let page_size: u32 = match mode {
        Mode::Sample => 100,
        Mode::All => 1000,
    };
    let (mut systems, mut agreed, mut assets, mut intervals) = (0usize, 0usize, 0u64, 0usize);
    for (system, _) in a.registry.systems() {
        systems += 1;
        let list = match mode {
            Mode::All => usize::MAX,
            Mode::Sample => page_size as usize,
        };
        let Scope {
            classes,
            listed: ours,
            ..
        } = scope_of(a, system, list)?;
        let count: u64 = classes.values().sum();
        assets += count;
        let what = format!("breach scope of {system}");
        let mut theirs = Vec::new();
        let mut token = pin(a.size);
        let mut first = None;
        loop {
            let r = q
                .breach_scope(v1::BreachScopeRequest {
                    system_id: (*system).to_owned(),
                    from_unix_nanos: 0,
                    to_unix_nanos: i64::MAX,
                    page_size,
                    page_token: token,
                })
                .await
                .map_err(|s| status(&what, s))?
                .into_inner();
            proven_at(&what, r.evidence.as_ref(), a.size)?;
            if first.is_none() {
                let tc: BTreeMap<Class, u64> = r
                    .by_class
                    .iter()
                    .map(|c| ((c.modality, c.subject_class), c.count))
                    .collect();
                first = Some((r.asset_count, tc));
            }
            theirs.extend(r.intervals);
            if mode == Mode::Sample || r.next_page_token.is_empty() {
                break;
            }
            token = r.next_page_token;
        }
        let (their_count, their_classes) = first.unwrap_or_default();
        let mut ok = true;
        if their_count != count || their_classes != classes {
            out.differ(format!(
                "{what}: the server counts {their_count} assets {their_classes:?}, the replay {count} {classes:?} (by modality and subject class codes)"
            ));
            ok = false;
        }
        // In sample mode, the server's first page: the intervals of the
        // first `page_size` assets in asset order, as ours are listed.
        intervals += ours.len();
        ok &= diff_intervals(out, &what, ours, theirs);
        if ok {
            agreed += 1;
        }
    }
    out.summary.push(format!(
        "breach scope over all time: {systems} systems, {assets} assets, {intervals} intervals compared ({}): {}",
        match mode {
            Mode::Sample => "counts and the first page of intervals of each",
            Mode::All => "counts and every interval",
        },
        if agreed == systems {
            "all agree".to_owned()
        } else {
            format!("{} of {systems} systems differ", systems - agreed)
        }
    ));
    out.json.insert(
        "breach_scope".into(),
        json!({"systems": systems, "agreed": agreed, "assets": assets, "intervals": intervals}),
    );
    Ok(())
}

/// `sample_assets` is every asset (`All`), or up to `n` assets spread
/// over the digest space: for each of `n` evenly spaced points, the first
/// asset at or after it not already taken, each one seek instead of a
/// listing of every asset; SHA-256 digests spread evenly, and when the
/// reported ones do not, the assets after the last taken make up `n`.
fn sample_assets(s: &dyn IndexRead, mode: Mode, n: usize) -> anyhow::Result<Vec<Digest>> {
    let mut out: Vec<Digest> = Vec::new();
    let visit = |start: &[u8], limit: usize, out: &mut Vec<Digest>| {
        s.index_scan(IndexCf::AssetIntervals, b"", start, &mut |k, _| {
            let Ok(d) = <Digest>::try_from(k.get(..32).unwrap_or_default()) else {
                return true;
            };
            if out.last().is_none_or(|l| *l < d) {
                out.push(d);
            }
            out.len() < limit
        })
    };
    match mode {
        Mode::All => visit(b"", usize::MAX, &mut out)?,
        Mode::Sample => {
            for k in 0..n as u128 {
                let point = ((k << 64) / n as u128) as u64;
                let want = out.len() + 1;
                visit(&point.to_be_bytes(), want, &mut out)?;
            }
            // Digests a reporter chose need not spread (a load generator's
            // do not): make up the sample with the assets after the last.
            if let Some(last) = out.last() {
                let mut after = last.to_vec();
                after.push(0xff);
                visit(&after, n, &mut out)?;
            }
        }
    }
    Ok(out)
}

/// `history` is every interval of `asset`, in the order they opened.
fn history(a: &Audited<'_>, asset: &Digest) -> anyhow::Result<Vec<Interval>> {
    let mut v = asset_intervals(a.store, asset).with_context(|| {
        format!(
            "read the intervals of {} from the audit's state",
            hex(asset)
        )
    })?;
    v.sort_by_key(|i| i.opened_by);
    Ok(v)
}

async fn holders(
    q: &CustodyQueryClient<Grpc>,
    a: &Audited<'_>,
    mode: Mode,
    sample: usize,
    out: &mut Comparison,
) -> anyhow::Result<()> {
    let assets = sample_assets(a.store, mode, sample)?;
    // Each asset at the audit's as-of time and at the start of each of
    // its first three intervals.
    let mut asks: Vec<(Digest, i64)> = Vec::new();
    for d in &assets {
        let mut times = vec![a.as_of];
        times.extend(history(a, d)?.iter().take(3).map(|i| i.from));
        times.sort_unstable();
        times.dedup();
        asks.extend(times.into_iter().map(|t| (*d, t)));
    }
    let answers: Vec<(Digest, i64, v1::HoldersAtResponse)> = futures::stream::iter(asks)
        .map(|(d, t)| {
            let mut q = q.clone();
            async move {
                let r = q
                    .holders_at(v1::HoldersAtRequest {
                        asset: d.to_vec(),
                        time_unix_nanos: t,
                        tree_size: a.size,
                    })
                    .await
                    .map_err(|s| status("holders at", s))?
                    .into_inner();
                Ok::<_, anyhow::Error>((d, t, r))
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let (mut compared, mut agreed) = (0usize, 0usize);
    for (d, t, r) in answers {
        compared += 1;
        let what = format!("holders of {} at {}", hex(&d), custody_domain::rfc3339(t));
        // Asked as of the audited size: an answer as of any other is no
        // answer to the question, and is never skipped.
        if let Err(e) = proven_at(&what, r.evidence.as_ref(), a.size) {
            out.differ(format!("{e:#}"));
            continue;
        }
        let ours: Vec<v1::CustodyInterval> = history(a, &d)?
            .iter()
            .filter(|i| i.holds_at(t))
            .map(interval_wire)
            .collect();
        if diff_intervals(out, &what, ours, r.intervals) {
            agreed += 1;
        }
    }
    out.summary.push(format!(
        "holders at: {} assets, {compared} questions compared as of size {}: {}",
        assets.len(),
        a.size,
        if agreed == compared {
            "all agree".to_owned()
        } else {
            format!("{} of {compared} differ", compared - agreed)
        }
    ));
    out.json.insert(
        "holders_at".into(),
        json!({"assets": assets.len(), "compared": compared, "agreed": agreed}),
    );
    Ok(())
}
