//! `custody inspect`: custody answers for auditors, as tables or JSON, each
//! with the checkpoint it was proven against and, with `--verify`, every
//! proof and signature checked locally before anything is printed.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custody_domain::{hex, parse_rfc3339, rfc3339, Digest, Modality, SubjectClass};
use custody_log::LogVerifier;
use custody_proto::v1::{self, custody_query_client::CustodyQueryClient};
use serde_json::{json, Value};

use custody_evidence as evidence;

/// `InspectArgs` are the options every query shares.
#[derive(clap::Args)]
pub struct Common {
    /// gRPC server, e.g. http://127.0.0.1:7100.
    #[arg(long)]
    server: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Verify every proof and signature locally (needs --log-key).
    #[arg(long)]
    verify: bool,
    /// File holding the log's verifier key string.
    #[arg(long)]
    log_key: Option<PathBuf>,
    /// With --verify: the witnesses that must have cosigned the
    /// checkpoint.
    #[command(flatten)]
    witnesses: crate::witness::PolicyArgs,
    /// Rows per page (at most 1000).
    #[arg(long, default_value_t = 1000)]
    page_size: u32,
    /// Fetch every page, not only the first.
    #[arg(long)]
    all: bool,
}

/// `Query` is one `custody inspect` question.
#[derive(clap::Subcommand)]
pub enum Query {
    /// Every logged event about an asset.
    History {
        #[command(flatten)]
        common: Common,
        /// Hex SHA-256 of the asset.
        #[arg(long)]
        asset: String,
    },
    /// Who held an asset at a time.
    Holders {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        asset: String,
        /// RFC 3339 time, e.g. 2026-11-26T12:00:00Z.
        #[arg(long)]
        at: String,
    },
    /// What a party or system held at a time.
    Holdings {
        #[command(flatten)]
        common: Common,
        #[arg(long, conflicts_with = "system", required_unless_present = "system")]
        party: Option<String>,
        #[arg(long)]
        system: Option<String>,
        #[arg(long)]
        at: String,
    },
    /// Policy findings (DESIGN §6) as of a time, filtered.
    Findings {
        #[command(flatten)]
        common: Common,
        /// Only this rule, e.g. unauthorized_transfer.
        #[arg(long)]
        rule: Option<String>,
        /// Only findings about this party.
        #[arg(long)]
        party: Option<String>,
        /// Only findings about this system.
        #[arg(long)]
        system: Option<String>,
        /// Evaluate time-based rules as of this RFC 3339 time (default now).
        #[arg(long)]
        as_of: Option<String>,
        /// Only findings that arose at or after this time.
        #[arg(long)]
        from: Option<String>,
        /// Only findings that arose at or before this time.
        #[arg(long)]
        to: Option<String>,
    },
    /// Which assets rested on a system at any moment of a window.
    BreachScope {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        system: String,
        /// Window start, RFC 3339.
        #[arg(long)]
        from: String,
        /// Window end, RFC 3339 (inclusive).
        #[arg(long)]
        to: String,
    },
}

fn digest_arg(s: &str) -> anyhow::Result<Digest> {
    let b = hex::decode(s).map_err(|e| anyhow!("--asset {s:?}: not hex: {e}"))?;
    b.as_slice()
        .try_into()
        .map_err(|_| anyhow!("--asset: want 64 hex digits (a SHA-256), got {}", s.len()))
}

fn time_arg(flag: &str, s: &str) -> anyhow::Result<i64> {
    parse_rfc3339(s).map_err(|e| anyhow!("{flag}: {e}"))
}

/// `Checked` holds what verification established for one response.
struct Session {
    verifier: Option<LogVerifier>,
    policy: Option<crate::witness::Policy>,
    /// What the witness policy check found.
    witnessed: Option<String>,
    /// Checkpoint (origin, size, root) of the first page.
    checkpoint: Option<(String, u64, String)>,
    entries: usize,
    registry: usize,
    memberships: usize,
}

impl Session {
    fn new(c: &Common) -> anyhow::Result<Self> {
        let verifier = if c.verify {
            let path = c
                .log_key
                .as_ref()
                .ok_or_else(|| anyhow!("--verify needs --log-key FILE (the log's verifier key)"))?;
            let vkey = std::fs::read_to_string(path)
                .with_context(|| format!("read log key {}", path.display()))?;
            Some(LogVerifier::new(vkey.trim())?)
        } else {
            None
        };
        let policy = c.witnesses.policy()?;
        anyhow::ensure!(
            policy.is_none() || c.verify,
            "--witness-key is checked with --verify"
        );
        Ok(Self {
            verifier,
            policy,
            witnessed: None,
            checkpoint: None,
            entries: 0,
            registry: 0,
            memberships: 0,
        })
    }

    /// `accept` records a page's evidence, verifying it when asked, and
    /// returns the verified form for row checks.
    fn accept(
        &mut self,
        ev: Option<&v1::Evidence>,
    ) -> anyhow::Result<Option<evidence::VerifiedEvidence>> {
        let ev = ev.ok_or_else(|| anyhow!("the server's answer carries no evidence"))?;
        let cp = note_summary(&ev.checkpoint)?;
        match &self.checkpoint {
            None => self.checkpoint = Some(cp.clone()),
            Some(first) if *first != cp => {
                bail!("pages of one answer were proven against different checkpoints")
            }
            Some(_) => {}
        }
        self.entries += ev.entries.len();
        self.registry += ev.registry.len();
        self.memberships += ev.memberships.len();
        match &self.verifier {
            None => Ok(None),
            Some(v) => {
                let verified = evidence::verify(ev, v)?;
                let c = &verified.checkpoint;
                if (c.origin.as_str(), c.size) != (cp.0.as_str(), cp.1) {
                    bail!("the checkpoint's signed body differs from its text");
                }
                if let Some(p) = &self.policy {
                    self.witnessed = Some(
                        p.check(&ev.checkpoint, v)
                            .context("the checkpoint does not meet the witness policy")?,
                    );
                }
                Ok(Some(verified))
            }
        }
    }

    fn header(&self) -> String {
        let (origin, size, root) = self.checkpoint.clone().unwrap_or_default();
        let mut s = format!("proved against checkpoint: {origin} size {size} root {root}\n");
        if self.verifier.is_some() {
            s += &format!(
                "verified locally: {} entries, {} registry entries, {} manifest memberships; checkpoint signature, inclusion proofs and signatures all check\n",
                self.entries, self.registry, self.memberships
            );
        } else {
            s += "not verified locally (add --verify --log-key FILE)\n";
        }
        if let Some(w) = &self.witnessed {
            s += &format!("checkpoint {w}\n");
        }
        s
    }

    fn json(&self) -> Value {
        let (origin, size, root) = self.checkpoint.clone().unwrap_or_default();
        json!({
            "checkpoint": { "origin": origin, "tree_size": size, "root": root },
            "verified": self.verifier.is_some(),
            "witnessed": self.witnessed,
        })
    }
}

/// `note_summary` reads origin, size and root from a checkpoint note's
/// body, without checking its signature.
fn note_summary(note: &[u8]) -> anyhow::Result<(String, u64, String)> {
    let text = std::str::from_utf8(note).map_err(|_| anyhow!("checkpoint is not UTF-8"))?;
    let mut lines = text.lines();
    let origin = lines.next().unwrap_or_default().to_owned();
    let size = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| anyhow!("checkpoint has no tree size line"))?;
    let root = lines.next().unwrap_or_default().to_owned();
    if B64.decode(&root).map(|r| r.len()) != Ok(32) {
        bail!("checkpoint has no root hash line");
    }
    Ok((origin, size, root))
}

fn modality_name(code: i32) -> &'static str {
    u8::try_from(code)
        .ok()
        .and_then(Modality::from_code)
        .map_or("UNKNOWN_MODALITY", Modality::name)
}

fn class_name(code: i32) -> &'static str {
    u8::try_from(code)
        .ok()
        .and_then(SubjectClass::from_code)
        .map_or("UNKNOWN_CLASS", SubjectClass::name)
}

fn interval_json(i: &v1::CustodyInterval) -> Value {
    json!({
        "asset": hex(&i.asset),
        "party": i.party,
        "system": i.system_id,
        "from": rfc3339(i.from_unix_nanos),
        "to": (i.to_unix_nanos != 0).then(|| rfc3339(i.to_unix_nanos)),
        "opened_by": i.opened_by,
        "closed_by": (i.to_unix_nanos != 0).then_some(i.closed_by),
        "modality": modality_name(i.modality),
        "subject_class": class_name(i.subject_class),
    })
}

fn interval_table(rows: &[v1::CustodyInterval]) -> String {
    let mut s = format!(
        "{:<16} {:<20} {:<22} {:<20} {:<20} {:>8} {:>8}\n",
        "ASSET", "PARTY", "SYSTEM", "FROM", "TO", "OPENED", "CLOSED"
    );
    for i in rows {
        s += &format!(
            "{:<16} {:<20} {:<22} {:<20} {:<20} {:>8} {:>8}\n",
            &hex(&i.asset)[..16],
            i.party,
            i.system_id,
            rfc3339(i.from_unix_nanos),
            if i.to_unix_nanos == 0 {
                "(open)".to_owned()
            } else {
                rfc3339(i.to_unix_nanos)
            },
            i.opened_by,
            if i.to_unix_nanos == 0 {
                "-".to_owned()
            } else {
                i.closed_by.to_string()
            },
        );
    }
    s
}

async fn connect(server: &str) -> anyhow::Result<CustodyQueryClient<crate::net::Grpc>> {
    let ch = crate::net::channel(server).await?;
    Ok(CustodyQueryClient::new(ch).max_decoding_message_size(256 << 20))
}

fn status(what: &str, s: tonic::Status) -> anyhow::Error {
    anyhow!("{what}: {:?}: {}", s.code(), s.message())
}

/// `run` answers one query and prints it.
///
/// # Errors
///
/// Connection failures, refusals (with the server's message), and any
/// verification failure, which prints nothing of the answer.
pub async fn run(q: Query) -> anyhow::Result<()> {
    match q {
        Query::History { common, asset } => {
            let asset = digest_arg(&asset)?;
            let mut c = connect(&common.server).await?;
            let mut s = Session::new(&common)?;
            let mut token = Vec::new();
            let mut indexes = Vec::new();
            let mut events = Vec::new();
            loop {
                let r = c
                    .asset_history(v1::AssetHistoryRequest {
                        asset: asset.to_vec(),
                        page_size: common.page_size,
                        page_token: token,
                    })
                    .await
                    .map_err(|e| status("asset history", e))?
                    .into_inner();
                if let Some(v) = s.accept(r.evidence.as_ref())? {
                    v.check_history(&asset, &r.indexes)?;
                }
                for p in r.evidence.iter().flat_map(|e| e.entries.iter()) {
                    if let Ok(custody_proto::Entry::Event {
                        envelope,
                        integrated_time,
                    }) = custody_proto::decode_entry(&p.entry)
                    {
                        if let Ok(e) = custody_proto::decode_event(&envelope.body) {
                            events.push((p.index, e, integrated_time));
                        }
                    }
                }
                indexes.extend(r.indexes);
                token = r.next_page_token;
                if token.is_empty() || !common.all {
                    break;
                }
            }
            let more = !token.is_empty();
            if common.json {
                let mut out = s.json();
                out["asset"] = json!(hex(&asset));
                out["complete"] = json!(!more);
                out["events"] = Value::Array(
                    events
                        .iter()
                        .map(|(i, e, t)| {
                            json!({
                                "index": i,
                                "kind": e.body.code(),
                                "event_time": rfc3339(e.event_time),
                                "integrated_time": rfc3339(*t),
                                "reporter": e.reporter,
                                "event_id": e.event_id,
                            })
                        })
                        .collect(),
                );
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", s.header());
                println!(
                    "history of asset {}: {} events{}",
                    hex(&asset),
                    indexes.len(),
                    if more { " (more: add --all)" } else { "" }
                );
                println!(
                    "{:>8} {:<20} {:<20} {:<24}",
                    "INDEX", "EVENT TIME", "KIND", "REPORTER"
                );
                for (i, e, _) in &events {
                    println!(
                        "{:>8} {:<20} {:<20} {:<24}",
                        i,
                        rfc3339(e.event_time),
                        e.body.code(),
                        e.reporter
                    );
                }
            }
        }
        Query::Holders { common, asset, at } => {
            let asset = digest_arg(&asset)?;
            let t = time_arg("--at", &at)?;
            let mut c = connect(&common.server).await?;
            let mut s = Session::new(&common)?;
            let r = c
                .holders_at(v1::HoldersAtRequest {
                    asset: asset.to_vec(),
                    time_unix_nanos: t,
                    tree_size: 0,
                })
                .await
                .map_err(|e| status("holders", e))?
                .into_inner();
            if let Some(v) = s.accept(r.evidence.as_ref())? {
                for i in &r.intervals {
                    v.check_interval(i)?;
                }
            }
            if common.json {
                let mut out = s.json();
                out["asset"] = json!(hex(&asset));
                out["at"] = json!(rfc3339(t));
                out["holders"] = Value::Array(r.intervals.iter().map(interval_json).collect());
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", s.header());
                println!(
                    "holders of {} at {}: {}",
                    hex(&asset),
                    rfc3339(t),
                    r.intervals.len()
                );
                print!("{}", interval_table(&r.intervals));
            }
        }
        Query::Holdings {
            common,
            party,
            system,
            at,
        } => {
            let t = time_arg("--at", &at)?;
            let holder = match (&party, &system) {
                (Some(p), _) => v1::holdings_request::Holder::Party(p.clone()),
                (None, Some(s)) => v1::holdings_request::Holder::SystemId(s.clone()),
                (None, None) => bail!("set --party or --system"),
            };
            let mut c = connect(&common.server).await?;
            let mut s = Session::new(&common)?;
            let mut token = Vec::new();
            let mut rows = Vec::new();
            loop {
                let r = c
                    .holdings(v1::HoldingsRequest {
                        holder: Some(holder.clone()),
                        time_unix_nanos: t,
                        page_size: common.page_size,
                        page_token: token,
                    })
                    .await
                    .map_err(|e| status("holdings", e))?
                    .into_inner();
                if let Some(v) = s.accept(r.evidence.as_ref())? {
                    for i in &r.intervals {
                        v.check_interval(i)?;
                    }
                }
                rows.extend(r.intervals);
                token = r.next_page_token;
                if token.is_empty() || !common.all {
                    break;
                }
            }
            let more = !token.is_empty();
            let who = party.or(system).unwrap_or_default();
            if common.json {
                let mut out = s.json();
                out["holder"] = json!(who);
                out["at"] = json!(rfc3339(t));
                out["complete"] = json!(!more);
                out["intervals"] = Value::Array(rows.iter().map(interval_json).collect());
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", s.header());
                println!(
                    "holdings of {who} at {}: {} intervals{}",
                    rfc3339(t),
                    rows.len(),
                    if more { " (more: add --all)" } else { "" }
                );
                print!("{}", interval_table(&rows));
            }
        }
        Query::Findings {
            common,
            rule,
            party,
            system,
            as_of,
            from,
            to,
        } => {
            let as_of = match as_of {
                Some(t) => time_arg("--as-of", &t)?,
                None => crate::event_json::now_nanos(),
            };
            let from = from
                .map(|t| time_arg("--from", &t))
                .transpose()?
                .unwrap_or(0);
            let to = to.map(|t| time_arg("--to", &t)).transpose()?.unwrap_or(0);
            let mut c = connect(&common.server).await?;
            let mut s = Session::new(&common)?;
            let mut token = Vec::new();
            let mut rows = Vec::new();
            let mut total;
            loop {
                let r = c
                    .findings(v1::FindingsRequest {
                        rule: rule.clone().unwrap_or_default(),
                        party: party.clone().unwrap_or_default(),
                        system_id: system.clone().unwrap_or_default(),
                        from_unix_nanos: from,
                        to_unix_nanos: to,
                        as_of_unix_nanos: as_of,
                        page_size: common.page_size,
                        page_token: token,
                    })
                    .await
                    .map_err(|e| status("findings", e))?
                    .into_inner();
                if let Some(v) = s.accept(r.evidence.as_ref())? {
                    for f in &r.findings {
                        for e in &f.entries {
                            if !v.events.contains_key(e) {
                                bail!("finding {}: entry {e} is not in the evidence", f.id);
                            }
                        }
                    }
                }
                total = r.total;
                rows.extend(r.findings);
                token = r.next_page_token;
                if token.is_empty() || !common.all {
                    break;
                }
            }
            let finding_json = |f: &v1::Finding| {
                json!({
                    "id": f.id,
                    "rule": f.rule,
                    "entries": f.entries,
                    "party": (!f.party.is_empty()).then_some(&f.party),
                    "system": (!f.system_id.is_empty()).then_some(&f.system_id),
                    "asset": (!f.asset.is_empty()).then(|| hex(&f.asset)),
                    "grant": if f.grant_id.is_empty() { "none" } else { f.grant_id.as_str() },
                    "retention_rule": if f.retention_rule_id.is_empty() { "none" } else { f.retention_rule_id.as_str() },
                    "at": rfc3339(f.at_unix_nanos),
                    "detail": f.detail,
                    "observed_by": (!f.observed_by.is_empty()).then_some(&f.observed_by),
                    "observed_on_system": (!f.observed_on_system.is_empty()).then_some(&f.observed_on_system),
                })
            };
            if common.json {
                // A JSON array, one object per finding.
                let arr: Vec<Value> = rows.iter().map(finding_json).collect();
                println!("{}", serde_json::to_string_pretty(&arr)?);
            } else {
                print!("{}", s.header());
                println!(
                    "findings as of {}: {total}{}",
                    rfc3339(as_of),
                    if (rows.len() as u64) < total {
                        format!(" ({} listed; add --all)", rows.len())
                    } else {
                        String::new()
                    }
                );
                println!(
                    "{:<24} {:<20} {:<18} {:<16} {:<20} {:<16} DETAIL",
                    "RULE", "AT", "PARTY", "SYSTEM", "ENTRIES", "GRANT"
                );
                for f in &rows {
                    let mut entries: Vec<String> =
                        f.entries.iter().take(3).map(|e| e.to_string()).collect();
                    if f.entries.len() > 3 {
                        entries.push("…".into());
                    }
                    println!(
                        "{:<24} {:<20} {:<18} {:<16} {:<20} {:<16} {}",
                        f.rule,
                        rfc3339(f.at_unix_nanos),
                        f.party,
                        f.system_id,
                        entries.join(","),
                        if f.grant_id.is_empty() {
                            "none"
                        } else {
                            &f.grant_id
                        },
                        if f.observed_by.is_empty() {
                            f.detail.clone()
                        } else {
                            format!(
                                "{} (reported by {}, observed on system {})",
                                f.detail, f.observed_by, f.observed_on_system
                            )
                        }
                    );
                }
            }
        }
        Query::BreachScope {
            common,
            system,
            from,
            to,
        } => {
            let a = time_arg("--from", &from)?;
            let b = time_arg("--to", &to)?;
            let mut c = connect(&common.server).await?;
            let mut s = Session::new(&common)?;
            let mut token = Vec::new();
            let mut rows = Vec::new();
            let mut head = None;
            loop {
                let r = c
                    .breach_scope(v1::BreachScopeRequest {
                        system_id: system.clone(),
                        from_unix_nanos: a,
                        to_unix_nanos: b,
                        page_size: common.page_size,
                        page_token: token,
                    })
                    .await
                    .map_err(|e| status("breach scope", e))?
                    .into_inner();
                if let Some(v) = s.accept(r.evidence.as_ref())? {
                    for i in &r.intervals {
                        v.check_interval(i)?;
                    }
                }
                head.get_or_insert((r.asset_count, r.by_class.clone()));
                rows.extend(r.intervals);
                token = r.next_page_token;
                if token.is_empty() || !common.all {
                    break;
                }
            }
            let more = !token.is_empty();
            let (count, by_class) = head.unwrap_or_default();
            let mut listed: Vec<&[u8]> = rows.iter().map(|i| i.asset.as_slice()).collect();
            listed.dedup();
            if common.json {
                let mut out = s.json();
                out["system"] = json!(system);
                out["from"] = json!(rfc3339(a));
                out["to"] = json!(rfc3339(b));
                out["asset_count"] = json!(count);
                out["by_class"] = Value::Array(
                    by_class
                        .iter()
                        .map(|c| {
                            json!({
                                "modality": modality_name(c.modality),
                                "subject_class": class_name(c.subject_class),
                                "count": c.count,
                            })
                        })
                        .collect(),
                );
                out["complete"] = json!(!more);
                out["assets_listed"] = json!(listed.len());
                out["intervals"] = Value::Array(rows.iter().map(interval_json).collect());
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", s.header());
                println!(
                    "breach scope of {system} from {} to {}: {count} distinct assets",
                    rfc3339(a),
                    rfc3339(b)
                );
                println!(
                    "{:<16} {:<20} {:>10}",
                    "MODALITY", "SUBJECT CLASS", "ASSETS"
                );
                for c in &by_class {
                    println!(
                        "{:<16} {:<20} {:>10}",
                        modality_name(c.modality),
                        class_name(c.subject_class),
                        c.count
                    );
                }
                println!(
                    "\nlisted: {} assets{}",
                    listed.len(),
                    if more { " (more: add --all)" } else { "" }
                );
                print!("{}", interval_table(&rows));
            }
        }
    }
    Ok(())
}
