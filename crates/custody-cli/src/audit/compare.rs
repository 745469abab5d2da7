//! Comparing the server's custody answers with the audit's own replay:
//! findings, breach scope of every system, and who held a sample of
//! assets (or every asset, with `--compare all`).
//!
//! Findings and breach scope are asked as of the audited checkpoint: their
//! page tokens begin with the tree size they are pinned to (the server's
//! token format, `grpc_query.rs`), so a first token of just that size pins
//! the answer even when the log has grown since. `HoldersAt` has no token;
//! an answer proven against another checkpoint is counted as skipped.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, Context as _};
use custody_domain::findings::{Finding, Rule};
use custody_domain::replay::Replay;
use custody_domain::{hex, Digest, Interval, Modality, SubjectClass};
use custody_proto::v1::{self, custody_query_client::CustodyQueryClient};
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{json, Value};
use tonic::transport::Channel;

/// How many differences of one kind are spelled out; the rest are counted.
const SHOWN: usize = 20;
/// Concurrent `HoldersAt` calls.
const CONCURRENCY: usize = 8;

/// `Audited` is what the audit established, to compare against.
pub struct Audited<'a> {
    /// The audited tree size.
    pub size: u64,
    /// The replay at that size.
    pub replay: &'a Replay,
    /// Every custody interval, by asset.
    pub history: &'a HashMap<Digest, Vec<Interval>>,
    /// The time findings are evaluated at.
    pub as_of: i64,
    /// Our findings as of `as_of`.
    pub findings: &'a [Finding],
}

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
    let ch = Channel::from_shared(server.to_owned())
        .map_err(|e| anyhow!("server url {server:?}: {e}"))?
        .connect()
        .await
        .with_context(|| format!("connect {server}"))?;
    let mut q = CustodyQueryClient::new(ch).max_decoding_message_size(256 << 20);
    let mut out = Comparison::default();
    findings(&mut q, a, &mut out).await?;
    breach_scope(&mut q, a, mode, &mut out).await?;
    holders(&q, a, mode, sample, &mut out).await?;
    Ok(out)
}

async fn findings(
    q: &mut CustodyQueryClient<Channel>,
    a: &Audited<'_>,
    out: &mut Comparison,
) -> anyhow::Result<()> {
    let mut theirs: Vec<v1::Finding> = Vec::new();
    let mut token = pin(a.size);
    loop {
        let r = q
            .findings(v1::FindingsRequest {
                as_of_unix_nanos: a.as_of.max(1),
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .map_err(|s| status("findings", s))?
            .into_inner();
        proven_at("findings", r.evidence.as_ref(), a.size)?;
        theirs.extend(r.findings);
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    let ours: Vec<v1::Finding> = a
        .findings
        .iter()
        .map(custody_proto::finding_to_proto)
        .collect();
    let count = |v: &[v1::Finding]| {
        let mut m: BTreeMap<String, u64> = Rule::ALL.iter().map(|r| (r.name().into(), 0)).collect();
        for f in v {
            *m.entry(f.rule.clone()).or_default() += 1;
        }
        m
    };
    let (oc, tc) = (count(&ours), count(&theirs));
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
    let o: BTreeMap<&str, &v1::Finding> = ours.iter().map(|f| (f.id.as_str(), f)).collect();
    let t: BTreeMap<&str, &v1::Finding> = theirs.iter().map(|f| (f.id.as_str(), f)).collect();
    let missing: Vec<&str> = o.keys().filter(|k| !t.contains_key(*k)).copied().collect();
    let extra: Vec<&str> = t.keys().filter(|k| !o.contains_key(*k)).copied().collect();
    let changed: Vec<&str> = o
        .iter()
        .filter(|(k, f)| t.get(*k).is_some_and(|g| g != *f))
        .map(|(k, _)| *k)
        .collect();
    for id in missing.iter().take(SHOWN) {
        out.differ(format!("findings: the server omits {id}"));
    }
    for id in extra.iter().take(SHOWN) {
        out.differ(format!(
            "findings: the server adds {id}, which the replay does not raise"
        ));
    }
    for id in changed.iter().take(SHOWN) {
        out.differ(format!(
            "findings: {id} differs: the server says {:?}, the replay {:?}",
            t.get(id).map(|f| (&f.entries, &f.detail, f.at_unix_nanos)),
            o.get(id).map(|f| (&f.entries, &f.detail, f.at_unix_nanos)),
        ));
    }
    if theirs.len() != t.len() {
        out.differ(format!(
            "findings: the server lists {} findings under {} distinct ids",
            theirs.len(),
            t.len()
        ));
    }
    let agree = missing.is_empty() && extra.is_empty() && changed.is_empty() && oc == tc;
    out.summary.push(format!(
        "findings as of {}: {} compared (every one, per rule and by id): {}",
        custody_domain::rfc3339(a.as_of),
        ours.len().max(theirs.len()),
        if agree {
            "all agree".to_owned()
        } else {
            format!(
                "{} omitted by the server, {} added, {} differ",
                missing.len(),
                extra.len(),
                changed.len()
            )
        }
    ));
    out.json.insert(
        "findings".into(),
        json!({
            "ours": oc, "theirs": tc, "agree": agree,
            "missing": missing.len(), "extra": extra.len(), "changed": changed.len(),
        }),
    );
    Ok(())
}

/// `Class` is a breach scope's split key, as the wire codes.
type Class = (i32, i32);

/// `scope_of` is our breach scope of one system over all time: distinct
/// assets by class and every interval, in (asset, opened_by) order. An
/// asset's class is its first interval's that knows one, as the server's
/// scan takes it.
fn scope_of(intervals: &[&Interval]) -> (BTreeMap<Class, u64>, Vec<v1::CustodyInterval>) {
    let mut by_asset: BTreeMap<Digest, Vec<&Interval>> = BTreeMap::new();
    for i in intervals {
        by_asset.entry(i.asset).or_default().push(i);
    }
    let mut classes: BTreeMap<Class, u64> = BTreeMap::new();
    let mut listed = Vec::new();
    for (_, mut v) in by_asset {
        v.sort_by_key(|i| i.opened_by);
        // The first interval's class, replaced by a later one's while it
        // knows none.
        let mut class: Option<(Option<Modality>, Option<SubjectClass>)> = None;
        for i in &v {
            if class.is_none_or(|c| c.0.is_none()) {
                class = Some((i.modality, i.subject_class));
            }
        }
        let class = class.unwrap_or((None, None));
        let key = (
            class.0.map_or(0, |m| i32::from(m.code())),
            class.1.map_or(0, |s| i32::from(s.code())),
        );
        *classes.entry(key).or_default() += 1;
        listed.extend(v.into_iter().map(interval_wire));
    }
    (classes, listed)
}

async fn breach_scope(
    q: &mut CustodyQueryClient<Channel>,
    a: &Audited<'_>,
    mode: Mode,
    out: &mut Comparison,
) -> anyhow::Result<()> {
    let mut per_system: BTreeMap<&str, Vec<&Interval>> = a
        .replay
        .registry
        .systems()
        .map(|(id, _)| (id.as_str(), Vec::new()))
        .collect();
    for v in a.history.values() {
        for i in v {
            if let Some(s) = per_system.get_mut(i.system.as_str()) {
                s.push(i);
            }
        }
    }
    let page_size: u32 = match mode {
        Mode::Sample => 100,
        Mode::All => 1000,
    };
    let (mut systems, mut agreed, mut assets, mut intervals) = (0usize, 0usize, 0u64, 0usize);
    for (system, list) in &per_system {
        systems += 1;
        let (classes, ours) = scope_of(list);
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
        let ours: Vec<v1::CustodyInterval> = match mode {
            Mode::All => ours,
            Mode::Sample => {
                let n = page_size as usize;
                let mut seen = std::collections::BTreeSet::new();
                ours.into_iter()
                    .filter(|i| {
                        seen.insert(i.asset.clone());
                        seen.len() <= n
                    })
                    .collect()
            }
        };
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

/// `sample_assets` is every asset (`All`), or `n` assets spread evenly over
/// the sorted list.
fn sample_assets(history: &HashMap<Digest, Vec<Interval>>, mode: Mode, n: usize) -> Vec<Digest> {
    let mut all: Vec<Digest> = history.keys().copied().collect();
    all.sort_unstable();
    if mode == Mode::All || all.len() <= n {
        return all;
    }
    if n == 0 {
        return Vec::new();
    }
    let step = all.len() as f64 / n as f64;
    (0..n).map(|k| all[(k as f64 * step) as usize]).collect()
}

async fn holders(
    q: &CustodyQueryClient<Channel>,
    a: &Audited<'_>,
    mode: Mode,
    sample: usize,
    out: &mut Comparison,
) -> anyhow::Result<()> {
    let assets = sample_assets(a.history, mode, sample);
    // Each asset at the audit's as-of time and at the start of each of
    // its first three intervals.
    let mut asks: Vec<(Digest, i64)> = Vec::new();
    for d in &assets {
        let mut times = vec![a.as_of];
        if let Some(v) = a.history.get(d) {
            times.extend(v.iter().take(3).map(|i| i.from));
        }
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
    let (mut compared, mut agreed, mut skipped) = (0usize, 0usize, 0usize);
    for (d, t, r) in answers {
        if proven_at("holders at", r.evidence.as_ref(), a.size).is_err() {
            skipped += 1;
            continue;
        }
        compared += 1;
        let ours: Vec<v1::CustodyInterval> = a
            .history
            .get(&d)
            .map(|v| {
                v.iter()
                    .filter(|i| i.holds_at(t))
                    .map(interval_wire)
                    .collect()
            })
            .unwrap_or_default();
        let what = format!("holders of {} at {}", hex(&d), custody_domain::rfc3339(t));
        if diff_intervals(out, &what, ours, r.intervals) {
            agreed += 1;
        }
    }
    out.summary.push(format!(
        "holders at: {} assets, {compared} questions compared{}: {}",
        assets.len(),
        if skipped > 0 {
            format!(" ({skipped} skipped: answered as of a newer checkpoint)")
        } else {
            String::new()
        },
        if agreed == compared {
            "all agree".to_owned()
        } else {
            format!("{} of {compared} differ", compared - agreed)
        }
    ));
    out.json.insert(
        "holders_at".into(),
        json!({"assets": assets.len(), "compared": compared, "agreed": agreed, "skipped": skipped}),
    );
    Ok(())
}
