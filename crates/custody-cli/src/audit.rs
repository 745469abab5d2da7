//! `custody audit`: replay a whole log from its C2SP tile API alone, and
//! compare the server's custody answers with the replay (DESIGN §7).
//!
//! 1. Fetch the latest checkpoint and verify it with the pinned log key.
//! 2. Read every entry from `tile/entries/<N>[.p/<W>]`, hash each leaf and
//!    the tree, and require the root to be the signed one. When it is not,
//!    the level-1 and level-0 hash tiles (authenticated against the signed
//!    root by `TileHashReader`) locate the first entry that differs.
//! 3. Check every signature under the key the registry allowed at that
//!    entry's index and integrated time, as the sequencer did, in batches
//!    on all cores.
//! 4. Admit every entry again through the server's own admission path
//!    (`custody_admission`: signatures, dedup, registry,
//!    custody and findings rules), into an embedded RocksDB of the audit's
//!    own (`state.rs`); each entry must be admitted exactly where, and
//!    exactly as, the log holds it. Bulk events' manifests come from the
//!    server's `GetManifest` (with `--server`), or else from beside the
//!    tiles (`manifest/<root>`, where a mirror keeps them), and are
//!    checked against the root the entry names.
//! 5. With `--server`, compare findings, breach scope and holders with the
//!    server's answers, read from that store.
//!
//! With `--state DIR` the store is kept: the next run resumes at the entry
//! where this one stopped, whether it finished or was interrupted, after
//! proving the log's new checkpoint consistent with what it replayed.
//! Without it the store is temporary. Either way the audit's memory is
//! bounded by the store's configuration, not by the log.
//!
//! Exit status: 0 when everything verified (and agreed); 1 when the audit
//! could not be completed; 2 (`ALERT:`) when the log or server is proven
//! to misbehave.

mod compare;
mod fetch;
mod progress;
mod replayer;
mod signatures;
mod state;
mod tree;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use custody_domain::findings::{findings_page, FindingsFilter, Rule};
use custody_domain::{hex, parse_rfc3339, rfc3339};
use custody_log::{
    verify_consistency, Hash, LogVerifier, TileId, TileKind, VerifiedCheckpoint, TILE_WIDTH,
};
use serde_json::{json, Value};
use tlog_tiles::{stored_hash_index, HashReader as _, TileHashReader};

use crate::monitor::Alarm;
use custody_store::index::{check_derived_settings, StoreView};
use custody_store::LogStore;
use fetch::{first_entry, Bundle, HashTiles, TileApi};
use replayer::{Manifests, Replayer};
use state::AuditState;

/// `AuditArgs` are `custody audit`'s options.
#[derive(clap::Args)]
pub struct AuditArgs {
    /// HTTP base URL of the log's tile API.
    #[arg(long)]
    url: String,
    /// File holding the log's verifier key string.
    #[arg(long)]
    log_key: PathBuf,
    /// gRPC server, e.g. http://127.0.0.1:7100: fetch manifests from it and
    /// compare its answers with the replay.
    #[arg(long)]
    server: Option<String>,
    /// Keep the replay's state (an embedded RocksDB) in this directory,
    /// and resume from it.
    #[arg(long)]
    state: Option<PathBuf>,
    /// How much of the server's answers to compare.
    #[arg(long, value_enum, default_value_t = compare::Mode::Sample)]
    compare: compare::Mode,
    /// Assets whose holders are compared in sample mode.
    #[arg(long, default_value_t = 32)]
    sample: usize,
    /// Evaluate findings as of this RFC 3339 time (default: the latest
    /// entry's integrated time).
    #[arg(long)]
    as_of: Option<String>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

/// `Report` prints the audit's findings as it goes, or collects them for
/// `--json`.
struct Report {
    json: bool,
    out: serde_json::Map<String, Value>,
    alerts: Vec<String>,
}

impl Report {
    fn line(&self, s: impl AsRef<str>) {
        if !self.json {
            println!("{}", s.as_ref());
        }
    }

    fn set(&mut self, k: &str, v: Value) {
        self.out.insert(k.to_owned(), v);
    }

    fn alert(&mut self, s: String) {
        if !self.json {
            println!("ALERT: {s}");
        }
        self.alerts.push(s);
    }

    /// `done` prints the JSON object, if asked for.
    fn done(&mut self, ok: bool) {
        if self.json {
            self.out.insert("ok".into(), json!(ok));
            self.out.insert("alerts".into(), json!(self.alerts));
            println!("{}", Value::Object(std::mem::take(&mut self.out)));
        }
    }
}

/// `alarm` is a proven misbehaviour, for the exit status.
fn alarm(s: impl Into<String>) -> anyhow::Error {
    anyhow!(Alarm(s.into()))
}

/// `run` runs `custody audit`.
///
/// # Errors
///
/// An [`Alarm`] for proven misbehaviour; other errors when the audit could
/// not be completed.
pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let mut report = Report {
        json: args.json,
        out: serde_json::Map::new(),
        alerts: Vec::new(),
    };
    let result = audit(&args, &mut report);
    if let Err(e) = &result {
        // A misbehaviour found before any alert was reported (a checkpoint
        // or state that does not fit) still gets its `ALERT:` line.
        if let Some(a) = e.downcast_ref::<Alarm>() {
            if report.alerts.is_empty() {
                report.alert(a.0.clone());
            }
        }
    }
    let ok = result.is_ok();
    report.done(ok);
    result
}

fn audit(args: &AuditArgs, report: &mut Report) -> anyhow::Result<()> {
    let vkey = std::fs::read_to_string(&args.log_key)
        .with_context(|| format!("read {}", args.log_key.display()))?;
    let verifier = crate::read_vkey(&args.log_key)?;
    let as_of_arg = args
        .as_of
        .as_deref()
        .map(|s| parse_rfc3339(s).map_err(|e| anyhow!("--as-of: {e}")))
        .transpose()?;
    let api = TileApi::new(&args.url)?;

    // 1. The latest checkpoint, verified with the pinned key.
    let note = api.checkpoint()?;
    let cp = verifier.verify(&note).map_err(|e| {
        alarm(format!(
            "the log served a checkpoint that does not verify with the pinned key: {e}"
        ))
    })?;
    report.line(format!(
        "checkpoint: {} size {} root {} (signature verified with the pinned log key)",
        cp.origin,
        cp.size,
        hex(&cp.root.0)
    ));
    report.set(
        "checkpoint",
        json!({"origin": cp.origin, "size": cp.size, "root": hex(&cp.root.0)}),
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let manifests = match &args.server {
        Some(s) => {
            let client = rt.block_on(crate::connect(s))?;
            Manifests::new(Some((rt.handle().clone(), client)), None)
        }
        None => Manifests::new(None, Some(api.clone())),
    };

    // Resume: what the state replayed must be this log's, and the new
    // checkpoint must extend it.
    let state = AuditState::open(args.state.as_deref())?;
    let resumed_from = check_resume(&state, &vkey, &verifier, &cp, &api, report)?;
    // Kept at once, whatever becomes of this run: a later run must find
    // every tree this log signed to the auditor extended, or alarm.
    state.store.put_checkpoint(cp.size, &cp.note)?;
    check_derived_settings(&state.store, &mut |_, _| {}).map_err(|e| {
        anyhow!(
            "audit state {}: {e}; start a new state directory",
            state.path.display()
        )
    })?;
    let mut frontier = state.frontier()?;
    let mut replayer = Replayer::new(
        &state.store,
        &cp.origin,
        manifests,
        state.last_integrated()?,
        state.totals()?,
    )?;

    // 2-4. Read, hash, verify and replay every entry not yet audited.
    let start = frontier.size();
    let end = cp.size;
    let began = Instant::now();
    let mut progress = progress::Progress::new(end - start);
    let mut tile_roots: Vec<(u64, Hash)> = Vec::new();
    let mut malformed: Option<String> = None;
    let mut waiting = Duration::ZERO;
    if start < end {
        let (first, last) = (
            start / u64::from(TILE_WIDTH),
            (end - 1) / u64::from(TILE_WIDTH),
        );
        let rx = api.prefetch(first, last, end);
        for _ in first..=last {
            let w = Instant::now();
            let bundle = rx
                .recv()
                .map_err(|_| anyhow!("the entry bundle fetcher stopped"))?;
            waiting += w.elapsed();
            let bundle = match bundle {
                Bundle::Failed(e) => return Err(e),
                Bundle::Malformed { path } => {
                    malformed = Some(path);
                    break;
                }
                Bundle::Entries(b) => b,
            };
            let base = first_entry(bundle.index);
            let mut n = 0;
            for (j, (i, leaf)) in (base..).zip(&bundle.leaves).enumerate() {
                if i < start {
                    continue;
                }
                if let Some(t) = frontier.push(*leaf) {
                    tile_roots.push((i / u64::from(TILE_WIDTH), t));
                }
                replayer.process(i, bundle.entry(j))?;
                n += 1;
            }
            progress.add(n);
        }
    }
    let replayed = began.elapsed();
    let verdicts = replayer.finish()?;
    let elapsed = began.elapsed();
    progress.finish();
    let processed = frontier.size() - start;
    let rate = if elapsed.as_secs_f64() > 0.0 {
        processed as f64 / elapsed.as_secs_f64()
    } else {
        0.0
    };

    // The tree first: an entry that does not hash to the signed tree was
    // changed after it was logged, whatever else is wrong with it.
    if let Some(path) = &malformed {
        report.alert(format!(
            "the server served {path}, which is not an entry bundle of its width, for the signed tree of size {}",
            cp.size
        ));
    } else if frontier.root() != cp.root {
        report.alert(localise(&api, &cp, &tile_roots));
    } else {
        if let Some(f) = &replayer.failure {
            report.alert(format!(
                "entry {} {} (the entry is in the signed tree)",
                f.index, f.message
            ));
        }
        for (i, k) in verdicts.bad.iter().take(10) {
            report.alert(format!(
                "entry {i}: its signature by key {k} does not verify (the entry is in the signed tree)"
            ));
        }
        if verdicts.bad.len() > 10 {
            report.alert(format!(
                "{} more entries with signatures that do not verify",
                verdicts.bad.len() - 10
            ));
        }
        if let Some(f) = &replayer.manifest_failure {
            report.alert(format!("entry {} {}", f.index, f.message));
        }
    }
    let this_run = replayer.signatures_admitted + verdicts.checked;
    let signatures = replayer.signatures_before + this_run;
    report.set("resumed_from", json!(resumed_from));
    report.set("processed", json!(processed));
    report.set("size", json!(frontier.size()));
    report.set(
        "signatures",
        json!({"this_run": this_run, "total": signatures}),
    );
    report.set("entries_per_sec", json!(rate.round()));
    report.set(
        "seconds",
        json!({
            "total": elapsed.as_secs_f64(),
            "waiting_for_tiles": waiting.as_secs_f64(),
            "hashing_and_replay": replayed.saturating_sub(waiting).as_secs_f64(),
            "waiting_for_signatures": elapsed.saturating_sub(replayed).as_secs_f64(),
        }),
    );
    if let Some(first) = report.alerts.first() {
        return Err(alarm(format!("the log does not verify: {first}")));
    }
    match resumed_from {
        Some(s) => report.line(format!(
            "entries: {processed} new entries read (resumed at size {s}; the {s} before were verified by an earlier run)"
        )),
        None => report.line(format!("entries: {processed} read from the tile API")),
    }
    report.line(format!(
        "tree: every leaf rehashed; the root of size {} is the signed root",
        frontier.size()
    ));
    report.line(format!(
        "signatures: {this_run} verified this run ({signatures} in all), each under the key the registry allowed at its entry"
    ));
    report.line(format!(
        "time: {processed} entries in {:.2} s, {:.0} entries/s (waiting for tiles {:.2} s, hashing and replay {:.2} s, then waiting for signatures {:.2} s)",
        elapsed.as_secs_f64(),
        rate,
        waiting.as_secs_f64(),
        replayed.saturating_sub(waiting).as_secs_f64(),
        elapsed.saturating_sub(replayed).as_secs_f64()
    ));

    let Some(registry) = replayer.registry().cloned() else {
        return Err(anyhow!("the log is empty: it has no genesis entry"));
    };
    let replayed_size = replayer.size();
    report.line(format!(
        "replay: every entry admitted again by the server's own rules into {}; registry, custody state and findings rebuilt over {replayed_size} entries; {} bulk events' manifests checked against their roots ({} fetched this run)",
        if args.state.is_some() { state.path.display().to_string() } else { "a temporary store".to_owned() },
        replayer.bulk_events, replayer.manifests.fetched
    ));
    report.set("bulk_events", json!(replayer.bulk_events));
    let as_of = as_of_arg.unwrap_or(replayer.last_integrated);
    let counts = findings_page(
        &StoreView(&state.store),
        &registry,
        replayed_size,
        as_of,
        &FindingsFilter::all(),
        None,
        1,
    )
    .map_err(|r| anyhow!("the audit's own findings: {r}"))?;
    // Every rule, with those that raised nothing.
    let counts: std::collections::BTreeMap<&str, u64> = Rule::ALL
        .iter()
        .map(|r| (r.name(), counts.by_rule.get(r).copied().unwrap_or(0)))
        .collect();
    report.line(format!(
        "findings as of {} ({} in all): {}",
        rfc3339(as_of),
        counts.values().sum::<u64>(),
        counts
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    report.set("as_of", json!(rfc3339(as_of)));
    report.set("findings", json!(counts));

    if let Some(s) = &replayer.stopped {
        let msg = format!(
            "the custody replay stopped at entry {}: it is a bulk event naming manifest {} of {} members, which the tile API does not carry, so it cannot be checked without --server; {} bulk events from there on went unchecked (first: {:?}); custody state and findings above are as of entry {}, while hashes, signatures and registry rules were checked to the end",
            s.index,
            hex(&s.manifest.root),
            s.manifest.count,
            replayer.unchecked_bulk.len(),
            replayer.unchecked_bulk.iter().take(5).collect::<Vec<_>>(),
            s.index
        );
        report.line(format!("INCOMPLETE: {msg}"));
        report.set("stopped_at", json!(s.index));
        report.set(
            "unchecked_bulk_events",
            json!(replayer.unchecked_bulk.len()),
        );
        return Err(anyhow!("the audit is incomplete: {msg}"));
    }

    if args.state.is_some() {
        report.line(format!(
            "state: {} holds the replay of size {}",
            state.path.display(),
            replayed_size
        ));
    }

    // 5. The server's answers against the replay.
    let Some(server) = &args.server else {
        report.line("audit: OK (no --server: the server's answers were not compared)");
        return Ok(());
    };
    let audited = compare::Audited {
        size: replayed_size,
        store: &state.store,
        registry: &registry,
        as_of,
    };
    let c = rt.block_on(compare::compare(
        server,
        &audited,
        args.compare,
        args.sample,
    ))?;
    report.line(format!("compared with the server at {server}:"));
    for l in &c.summary {
        report.line(format!("  {l}"));
    }
    for d in &c.differences {
        report.line(format!("  DIFFERS: {d}"));
    }
    report.set("compare", Value::Object(c.json.clone()));
    report.set("differences", json!(c.differences));
    if !c.differences.is_empty() {
        report.alert(format!(
            "the server's answers differ from the replay of its own log in {} places (see DIFFERS above)",
            c.differences.len()
        ));
        return Err(alarm(format!(
            "the server's answers differ from the replay of its own log in {} places",
            c.differences.len()
        )));
    }
    report.line("audit: OK (the log verifies and the server's answers agree with the replay)");
    Ok(())
}

/// `check_resume` checks the audit's state against the log before going
/// on from it, and returns the size it resumes from (`None` for a new
/// state). The newest checkpoint any earlier run verified (finished or
/// not) must verify with the pinned key, and the log's new checkpoint must
/// extend it, or the log is proven to have rolled back or forked; the
/// entries replayed so far must be the first of the new tree.
fn check_resume(
    state: &AuditState,
    vkey: &str,
    verifier: &LogVerifier,
    cp: &VerifiedCheckpoint,
    api: &TileApi,
    report: &Report,
) -> anyhow::Result<Option<u64>> {
    let size = state.size()?;
    let path = state.path.display();
    if let Some((_, note)) = state.store.latest_checkpoint()? {
        let old = verifier.verify(&note).map_err(|e| {
            alarm(format!(
                "audit state {path} holds a checkpoint that the pinned key {} did not sign ({e}): it was written for another log",
                vkey.trim()
            ))
        })?;
        if old.size > cp.size {
            return Err(alarm(format!(
                "the log rolled back from size {} (saved in {path}) to size {}",
                old.size, cp.size
            )));
        }
        if old.size == cp.size && old.root != cp.root {
            return Err(alarm(format!(
                "split view: two different trees of size {} are signed (the saved one and the log's)",
                cp.size
            )));
        }
        if old.size < cp.size && !extends(api, cp, old.size, old.root)? {
            return Err(alarm(format!(
                "the checkpoint of size {} is not consistent with the saved one of size {}: the log forked or rewrote its history",
                cp.size, old.size
            )));
        }
    }
    if size == 0 {
        return Ok(None);
    }
    if let Some(origin) = state.origin()? {
        if origin != cp.origin {
            bail!(
                "audit state {path} replayed the log {origin:?}, not {:?}: start a new state directory",
                cp.origin
            );
        }
    }
    // An interrupted run's entries were read but never proven.
    let root = state.frontier()?.root();
    let fits = match size.cmp(&cp.size) {
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => root == cp.root,
        std::cmp::Ordering::Less => extends(api, cp, size, root)?,
    };
    if !fits {
        bail!(
            "audit state {path} replayed {size} entries that an earlier run read but did not finish proving, and they are not the first {size} of the log's checkpoint of size {}: audit into a new --state directory, and keep {path}, which holds the checkpoints this log signed",
            cp.size
        );
    }
    report.line(format!(
        "resume: size {} extends the {size} entries replayed in {path} (consistency proven from the hash tiles)",
        cp.size
    ));
    Ok(Some(size))
}

/// `extends` is whether the tree of size `cp.size` extends the tree of
/// `size` with root `root`, proven from the log's hash tiles.
///
/// # Errors
///
/// When the tiles cannot be fetched; an alarm when they do not match the
/// signed root.
fn extends(api: &TileApi, cp: &VerifiedCheckpoint, size: u64, root: Hash) -> anyhow::Result<bool> {
    if size == 0 {
        return Ok(true);
    }
    let tiles = HashTiles::new(api);
    let reader = TileHashReader::new(cp.size, cp.root, &tiles);
    let proof = match tlog_tiles::prove_tree(cp.size, size, &reader) {
        Ok(p) => p,
        Err(e) => {
            if let Some(fetch) = tiles.take_error() {
                return Err(fetch.context("read hash tiles for the consistency proof"));
            }
            return Err(alarm(format!(
                "the hash tiles for size {} do not match its signed root: {e}",
                cp.size
            )));
        }
    };
    Ok(verify_consistency(&proof, size, &root, cp.size, &cp.root).is_ok())
}

/// `localise` names the first entry that does not hash to the signed tree:
/// it compares the root of each 256-entry tile hashed in this run with the
/// signed tree's level-8 hashes, then that tile's leaf hashes with its
/// level-0 hashes, all read through `TileHashReader`, which authenticates
/// every hash tile against the signed root first.
fn localise(api: &TileApi, cp: &VerifiedCheckpoint, tile_roots: &[(u64, Hash)]) -> String {
    let base = format!(
        "the entries do not hash to the signed root of size {}",
        cp.size
    );
    let tiles = HashTiles::new(api);
    let reader = TileHashReader::new(cp.size, cp.root, &tiles);
    let unlocated = |e: tlog_tiles::Error| {
        match tiles.take_error() {
        Some(f) => format!("{base}; the hash tiles to locate the first bad entry could not be fetched: {f:#}"),
        None => format!(
            "{base}, and the server's hash tiles do not match that root either ({e}), so the first bad entry cannot be located"
        ),
    }
    };
    let width = u64::from(TILE_WIDTH);
    let mut candidate = None;
    if !tile_roots.is_empty() {
        let idx: Vec<u64> = tile_roots
            .iter()
            .map(|(k, _)| stored_hash_index(8, *k))
            .collect();
        match reader.read_hashes(&idx) {
            Ok(signed) => {
                candidate = tile_roots
                    .iter()
                    .zip(&signed)
                    .find(|((_, ours), theirs)| ours != *theirs)
                    .map(|((k, _), _)| *k);
            }
            Err(e) => return unlocated(e),
        }
    }
    // Every full tile agrees: the difference is in the partial right edge.
    let edge = cp.size / width;
    let candidate = candidate.or_else(|| (edge * width < cp.size).then_some(edge));
    let Some(id) = candidate.and_then(|k| TileId::in_tree(TileKind::Entries, k, cp.size)) else {
        return base;
    };
    let first = id.index * width;
    let idx: Vec<u64> = (0..u64::from(id.width))
        .map(|j| stored_hash_index(0, first + j))
        .collect();
    let signed = match reader.read_hashes(&idx) {
        Ok(h) => h,
        Err(e) => return unlocated(e),
    };
    let ours: Vec<Hash> = match api.entries(id.index, cp.size) {
        Bundle::Entries(b) => b.leaves,
        Bundle::Malformed { path } => return format!("{base}; {path} is malformed"),
        Bundle::Failed(e) => return format!("{base}; fetching {} again failed: {e:#}", id.path()),
    };
    match ours.iter().zip(&signed).position(|(a, b)| a != b) {
        Some(j) => format!(
            "entry {} (in {}) does not hash to the signed tree of size {}: its bytes hash to {}, but the signed tree has {} there, so the server's copy was changed after it was logged",
            first + j as u64,
            id.path(),
            cp.size,
            hex(&ours[j].0),
            hex(&signed[j].0)
        ),
        None => base,
    }
}
