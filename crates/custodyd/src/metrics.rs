//! Prometheus metrics, served at `/metrics` on the HTTP address in the
//! OpenMetrics text format. They need no credentials, because they hold
//! no custody data: counts, sizes and times only, never an id, a digest
//! or a token.
//!
//! Counted as things happen: entries appended, commit (fsync) latency and
//! batch sizes (the sequencer), refusals by gRPC code and field (every
//! append answer), checkpoints published. Read when scraped: tree size,
//! checkpoint age, queue depth, uploads in progress, open connections,
//! findings by rule (from the committed derived state), and RocksDB's
//! own sizes.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::state::LogState;

/// `RefusalLabels` name a refusal's kind: its gRPC code and the field at
/// fault (`none` when it names none). Both come from fixed sets, so the
/// label space stays small.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// The gRPC code, e.g. `PermissionDenied`.
    pub code: String,
    /// The request field at fault, e.g. `signatures`.
    pub field: String,
}

/// The mirror's objects: `kind` is `tile`, `checkpoint` or `manifest`;
/// `outcome` is `written` or `kept` (a full tile already there).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MirrorLabels {
    /// What the object is.
    pub kind: &'static str,
    /// What the mirror did.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EngineLabels {
    stat: String,
}

/// `Metrics` is every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// Entries appended (committed and acknowledged).
    pub appended: Counter,
    /// Entries per commit.
    pub batch_entries: Histogram,
    /// Seconds each commit (one fsync'd write batch) took.
    pub commit_seconds: Histogram,
    /// Appends refused, by code and field.
    pub refusals: Family<RefusalLabels, Counter>,
    /// Checkpoints published.
    pub checkpoints: Counter,
    /// Entries the object-storage mirror's checkpoint covers.
    pub mirror_size: Gauge,
    /// Entries published but not yet in the mirror.
    pub mirror_lag: Gauge,
    /// Objects the mirror wrote, and full tiles it found already there.
    pub mirror_objects: Family<MirrorLabels, Counter>,
    /// Mirror rounds that failed (each retried).
    pub mirror_errors: Counter,
    tree_size: Gauge,
    checkpoint_size: Gauge,
    checkpoint_age: Gauge<f64, AtomicU64>,
    queue_submissions: Gauge,
    queue_bytes: Gauge,
    uploads: Gauge,
    connections: Family<ListenerLabels, Gauge>,
    findings: Family<RuleLabels, Gauge>,
    engine: Family<EngineLabels, Gauge>,
    /// Unix seconds the latest checkpoint was published at, as this
    /// process saw it (0 before the first).
    published_at: AtomicI64,
    /// What the scrape reads the queue and connections from, once the
    /// server runs.
    sources: OnceLock<Sources>,
}

/// `Sources` are the live parts a scrape reads.
struct Sources {
    queue: crate::sequencer::SequencerHandle,
    gates: Vec<(&'static str, Arc<crate::conn::Gate>)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// `new` registers every metric under the `custody` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("custody");
        let appended = Counter::default();
        registry.register(
            "entries_appended",
            "Entries appended to the log (committed and acknowledged)",
            appended.clone(),
        );
        let batch_entries = Histogram::new(exponential_buckets(1.0, 4.0, 8));
        registry.register(
            "commit_batch_entries",
            "Entries per commit",
            batch_entries.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 14));
        registry.register_with_unit(
            "commit_duration",
            "Time to make one batch durable (one fsync'd write batch)",
            Unit::Seconds,
            commit_seconds.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "appends_refused",
            "Appends refused, by gRPC code and the field at fault",
            refusals.clone(),
        );
        let checkpoints = Counter::default();
        registry.register(
            "checkpoints_published",
            "Checkpoints signed and published",
            checkpoints.clone(),
        );
        let tree_size = Gauge::default();
        registry.register(
            "tree_size",
            "Entries in the durable tree",
            tree_size.clone(),
        );
        let checkpoint_size = Gauge::default();
        registry.register(
            "checkpoint_size",
            "Entries the latest published checkpoint covers",
            checkpoint_size.clone(),
        );
        let checkpoint_age = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "checkpoint_age",
            "Time since the latest checkpoint was published by this process",
            Unit::Seconds,
            checkpoint_age.clone(),
        );
        let queue_submissions = Gauge::default();
        registry.register(
            "queue_submissions",
            "Appends waiting for the sequencer",
            queue_submissions.clone(),
        );
        let queue_bytes = Gauge::default();
        registry.register_with_unit(
            "queue",
            "Bytes of appends waiting for the sequencer",
            Unit::Bytes,
            queue_bytes.clone(),
        );
        let uploads = Gauge::default();
        registry.register(
            "uploads_in_progress",
            "Manifest uploads in progress",
            uploads.clone(),
        );
        let connections = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "connections_open",
            "Open connections, by listener",
            connections.clone(),
        );
        let findings = Family::<RuleLabels, Gauge>::default();
        registry.register(
            "findings_raised",
            "Findings raised by the entries of the durable tree, by rule",
            findings.clone(),
        );
        let mirror_size = Gauge::default();
        registry.register(
            "mirror_size",
            "Entries the object-storage mirror's checkpoint covers",
            mirror_size.clone(),
        );
        let mirror_lag = Gauge::default();
        registry.register(
            "mirror_lag_entries",
            "Entries published but not yet in the object-storage mirror",
            mirror_lag.clone(),
        );
        let mirror_objects = Family::<MirrorLabels, Counter>::default();
        registry.register(
            "mirror_objects",
            "Objects the mirror wrote (written) or found already there (kept), by kind",
            mirror_objects.clone(),
        );
        let mirror_errors = Counter::default();
        registry.register(
            "mirror_errors",
            "Mirror rounds that failed; each is retried",
            mirror_errors.clone(),
        );
        let engine = Family::<EngineLabels, Gauge>::default();
        registry.register(
            "rocksdb",
            "RocksDB's own figures, summed over column families",
            engine.clone(),
        );
        Self {
            registry,
            appended,
            batch_entries,
            commit_seconds,
            refusals,
            checkpoints,
            mirror_size,
            mirror_lag,
            mirror_objects,
            mirror_errors,
            tree_size,
            checkpoint_size,
            checkpoint_age,
            queue_submissions,
            queue_bytes,
            uploads,
            connections,
            findings,
            engine,
            published_at: AtomicI64::new(0),
            sources: OnceLock::new(),
        }
    }

    /// `watch` gives the scrape the queue and the listeners' gates.
    pub fn watch(
        &self,
        queue: crate::sequencer::SequencerHandle,
        gates: Vec<(&'static str, Arc<crate::conn::Gate>)>,
    ) {
        let _ = self.sources.set(Sources { queue, gates });
    }

    /// `refused` counts a refused append.
    pub fn refused(&self, code: tonic::Code, field: Option<&str>) {
        self.refusals
            .get_or_create(&RefusalLabels {
                code: format!("{code:?}"),
                field: field.unwrap_or("none").to_owned(),
            })
            .inc();
    }

    /// `published` counts a checkpoint published now.
    pub fn published(&self) {
        self.checkpoints.inc();
        self.published_at
            .store(crate::init::now_nanos() / 1_000_000_000, Ordering::Relaxed);
    }

    /// `encode` reads the scraped gauges from `state` and renders every
    /// metric, in OpenMetrics (`open_metrics`, what Prometheus asks for)
    /// or else the classic Prometheus text format.
    ///
    /// # Errors
    ///
    /// When the text cannot be written (never for a `String`).
    pub fn encode(&self, state: &LogState, open_metrics: bool) -> Result<String, std::fmt::Error> {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.tree_size.set(as_i64(*state.durable.borrow()));
        self.checkpoint_size.set(as_i64(state.latest().size));
        let at = self.published_at.load(Ordering::Relaxed);
        if at > 0 {
            let now = crate::init::now_nanos() as f64 / 1e9;
            self.checkpoint_age.set((now - at as f64).max(0.0));
        }
        if let Some(s) = self.sources.get() {
            let (n, bytes) = s.queue.depth();
            self.queue_submissions.set(as_i64(n as u64));
            self.queue_bytes.set(as_i64(bytes as u64));
            for (name, gate) in &s.gates {
                self.connections
                    .get_or_create(&ListenerLabels {
                        listener: (*name).to_owned(),
                    })
                    .set(as_i64(gate.open() as u64));
            }
        }
        self.uploads.set(as_i64(state.uploads.in_progress() as u64));
        if let Ok(counts) = custody_store::index::RaisedCounts::latest(state.store.as_ref()) {
            for (rule, n) in counts.by_rule() {
                self.findings
                    .get_or_create(&RuleLabels {
                        rule: rule.to_owned(),
                    })
                    .set(as_i64(n));
            }
        }
        for (stat, v) in state.store.engine_stats() {
            self.engine
                .get_or_create(&EngineLabels {
                    stat: stat.to_owned(),
                })
                .set(as_i64(v));
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(if open_metrics { out } else { classic(&out) })
    }
}

/// `classic` turns OpenMetrics text into the classic Prometheus text
/// format (0.0.4), for scrapers and tools that read only that, such as
/// `promtool check metrics`: a counter's family takes its samples'
/// `_total` name in `# HELP` and `# TYPE`, and `# UNIT` and `# EOF` go.
pub fn classic(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_names_counter_families_by_their_samples_and_drops_openmetrics_lines() {
        let om = "# HELP custody_x Things.\n# TYPE custody_x counter\ncustody_x_total 3\n# HELP custody_age Age.\n# TYPE custody_age gauge\n# UNIT custody_age seconds\ncustody_age 1.5\n# EOF\n";
        assert_eq!(
            classic(om),
            "# HELP custody_x_total Things.\n# TYPE custody_x_total counter\ncustody_x_total 3\n# HELP custody_age Age.\n# TYPE custody_age gauge\ncustody_age 1.5\n"
        );
    }
}
