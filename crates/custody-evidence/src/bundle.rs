//! The evidence bundle: one JSON document holding a question, its answer
//! and everything needed to verify the answer offline (see
//! `docs/evidence-bundle.md`).
//!
//! The bundle has one canonical serialisation, and a verifier accepts only
//! that: [`Bundle::parse`] reads the typed content, and verification
//! re-serialises it with [`Bundle::to_bytes`] and requires the file to be
//! byte for byte the same. Hex is lower-case, base64 is standard with
//! padding, times are RFC 3339 in UTC as [`custody_domain::rfc3339`] prints
//! them, and the JSON is `serde_json`'s pretty form with a final newline.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custody_domain::findings::{Finding, Rule};
use custody_domain::{hex, parse_rfc3339, rfc3339, Digest, Modality, SubjectClass, Timestamp};
use custody_proto::v1;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::rows::{ClassCount, HistoryEvent, IntervalRow};
use crate::tlog_proof::TlogProof;
use crate::EvidenceError;

/// `FORMAT` names the bundle format and its version.
pub const FORMAT: &str = "custody-evidence-bundle/v1";

/// `Question` is what a bundle answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Question {
    /// Every logged event about an asset.
    History {
        /// The asset.
        asset: Digest,
    },
    /// Who held an asset at a time.
    Holders {
        /// The asset.
        asset: Digest,
        /// The time.
        at: Timestamp,
    },
    /// What a party or a system held at a time.
    Holdings {
        /// The party or system.
        holder: Holder,
        /// The time.
        at: Timestamp,
    },
    /// Which assets rested on a system at any moment of `[from, to]`.
    BreachScope {
        /// The system.
        system: String,
        /// Window start.
        from: Timestamp,
        /// Window end, inclusive.
        to: Timestamp,
    },
    /// A policy finding, by id, as the log's findings stand at a time.
    Finding {
        /// The finding's id.
        id: String,
        /// The time the findings are evaluated at.
        as_of: Timestamp,
    },
}

/// `Holder` is whose holdings a question asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Every system the party owns.
    Party(String),
    /// One system.
    System(String),
}

impl Question {
    /// `kind` is the question's kind as the bundle names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Question::History { .. } => "history",
            Question::Holders { .. } => "holders",
            Question::Holdings { .. } => "holdings",
            Question::BreachScope { .. } => "breach_scope",
            Question::Finding { .. } => "finding",
        }
    }
}

/// `Answer` is the answer a bundle carries, row by row as `custody inspect
/// --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// One answer per bundle: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Answer {
    /// The asset's events, ascending by log index.
    History {
        /// One row per entry.
        events: Vec<HistoryEvent>,
    },
    /// The intervals covering the time.
    Holders {
        /// One row per holding interval.
        holders: Vec<IntervalRow>,
    },
    /// The intervals covering the time on the holder's systems.
    Holdings {
        /// One row per interval.
        intervals: Vec<IntervalRow>,
    },
    /// Every interval on the system overlapping the window, complete.
    BreachScope {
        /// Distinct assets in scope.
        asset_count: u64,
        /// Distinct assets by class.
        by_class: Vec<ClassCount>,
        /// Every overlapping interval.
        intervals: Vec<IntervalRow>,
    },
    /// The finding, field by field as the server computed it.
    Finding {
        /// The finding.
        finding: Finding,
    },
}

impl Answer {
    /// `kind` is the kind of question the answer is to.
    pub fn kind(&self) -> &'static str {
        match self {
            Answer::History { .. } => "history",
            Answer::Holders { .. } => "holders",
            Answer::Holdings { .. } => "holdings",
            Answer::BreachScope { .. } => "breach_scope",
            Answer::Finding { .. } => "finding",
        }
    }
}

/// `ProvenEntry` is a log entry with its C2SP tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenEntry {
    /// The entry's log index.
    pub index: u64,
    /// The entry's exact bytes (a `custody.v1.LogEntry`).
    pub entry: Vec<u8>,
    /// Its inclusion in the bundle's checkpoint.
    pub proof: TlogProof,
}

impl ProvenEntry {
    fn from_proto(p: &v1::ProvenEntry, checkpoint: &[u8]) -> Self {
        Self {
            index: p.index,
            entry: p.entry.clone(),
            proof: TlogProof {
                extra: None,
                index: p.index,
                proof: p.proof.clone(),
                checkpoint: checkpoint.to_vec(),
            },
        }
    }

    pub(crate) fn to_proto(&self) -> v1::ProvenEntry {
        v1::ProvenEntry {
            index: self.index,
            entry: self.entry.clone(),
            proof: self.proof.proof.clone(),
        }
    }
}

/// `Bundle` is an evidence bundle's typed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The question.
    pub question: Question,
    /// The answer.
    pub answer: Answer,
    /// The checkpoint everything is proven against (a C2SP signed note).
    pub checkpoint: Vec<u8>,
    /// The entries the answer rests on, ascending by index.
    pub entries: Vec<ProvenEntry>,
    /// The genesis entry and the registry entries behind the signatures
    /// and system owners, ascending by index.
    pub registry: Vec<ProvenEntry>,
    /// Manifest memberships of assets named through bulk events, ascending
    /// by (asset, manifest root, count).
    pub memberships: Vec<v1::MembershipProof>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum QuestionJson {
    History {
        asset: String,
    },
    Holders {
        asset: String,
        at: String,
    },
    Holdings {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        party: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        system: Option<String>,
        at: String,
    },
    BreachScope {
        system: String,
        from: String,
        to: String,
    },
    Finding {
        id: String,
        as_of: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
// One answer per bundle: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum AnswerJson {
    History {
        events: Vec<EventJson>,
    },
    Holders {
        holders: Vec<IntervalJson>,
    },
    Holdings {
        intervals: Vec<IntervalJson>,
    },
    BreachScope {
        asset_count: u64,
        by_class: Vec<ClassCountJson>,
        intervals: Vec<IntervalJson>,
    },
    Finding {
        id: String,
        rule: String,
        entries: Vec<u64>,
        party: Option<String>,
        system: Option<String>,
        asset: Option<String>,
        grant: Option<String>,
        retention_rule: Option<String>,
        at: String,
        detail: String,
        /// Present only for a finding about an observed action.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        observed_by: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        observed_on: Option<String>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventJson {
    index: u64,
    kind: String,
    event_time: String,
    integrated_time: String,
    reporter: String,
    event_id: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntervalJson {
    asset: String,
    party: String,
    system: String,
    from: String,
    to: Option<String>,
    opened_by: u64,
    closed_by: Option<u64>,
    modality: Option<String>,
    subject_class: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassCountJson {
    modality: Option<String>,
    subject_class: Option<String>,
    count: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryJson {
    index: u64,
    entry: String,
    tlog_proof: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MembershipJson {
    asset: String,
    manifest_root: String,
    count: u64,
    index: u64,
    proof: Vec<String>,
}

/// `BundleJson` is the document's top level, in canonical field order.
#[derive(Serialize)]
struct BundleJson<'a> {
    format: &'a str,
    question: QuestionJson,
    answer: AnswerJson,
    checkpoint: &'a str,
    entries: Vec<EntryJson>,
    registry: Vec<EntryJson>,
    memberships: Vec<MembershipJson>,
    digest: &'a str,
}

/// `FIELDS` is the top level's fields, in order.
const FIELDS: [&str; 8] = [
    "format",
    "question",
    "answer",
    "checkpoint",
    "entries",
    "registry",
    "memberships",
    "digest",
];

/// `EMPTY_DIGEST_TAIL` is the last bytes of every canonical bundle whose
/// digest is left empty.
const EMPTY_DIGEST_TAIL: &[u8] = b"\"digest\": \"\"\n}\n";

fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

/// `time_text` is a time in the bundle's form.
fn time_text(t: Timestamp) -> String {
    rfc3339(t)
}

fn interval_json(i: &IntervalRow) -> IntervalJson {
    IntervalJson {
        asset: hex(&i.asset),
        party: i.party.clone(),
        system: i.system.clone(),
        from: time_text(i.from),
        to: i.to.map(time_text),
        opened_by: i.opened_by,
        closed_by: i.closed_by,
        modality: i.modality.map(|m| m.name().to_owned()),
        subject_class: i.subject_class.map(|s| s.name().to_owned()),
    }
}

fn entry_json(p: &ProvenEntry) -> Result<EntryJson, EvidenceError> {
    Ok(EntryJson {
        index: p.index,
        entry: b64(&p.entry),
        tlog_proof: String::from_utf8(p.proof.encode())
            .map_err(|_| EvidenceError::Checkpoint("the checkpoint is not UTF-8 text".into()))?,
    })
}

impl Bundle {
    /// `new` assembles a bundle from a question, its answer and the
    /// evidence the server built for it, putting every list in canonical
    /// order.
    pub fn new(question: Question, answer: Answer, ev: &v1::Evidence) -> Self {
        let mut entries: Vec<ProvenEntry> = ev
            .entries
            .iter()
            .map(|p| ProvenEntry::from_proto(p, &ev.checkpoint))
            .collect();
        entries.sort_by_key(|p| p.index);
        let mut registry: Vec<ProvenEntry> = ev
            .registry
            .iter()
            .map(|p| ProvenEntry::from_proto(p, &ev.checkpoint))
            .collect();
        registry.sort_by_key(|p| p.index);
        let mut memberships = ev.memberships.clone();
        memberships.sort_by(|a, b| membership_key(a).cmp(&membership_key(b)));
        Self {
            question,
            answer,
            checkpoint: ev.checkpoint.clone(),
            entries,
            registry,
            memberships,
        }
    }

    /// `to_bytes` is the bundle's canonical serialisation, digest included.
    ///
    /// # Errors
    ///
    /// [`EvidenceError::Checkpoint`] if the checkpoint is not UTF-8 text
    /// (a signed note always is).
    pub fn to_bytes(&self) -> Result<Vec<u8>, EvidenceError> {
        let empty = self.canonical_without_digest()?;
        Ok(with_digest(&empty, &hex(&Sha256::digest(&empty))))
    }

    /// `canonical_without_digest` is the canonical serialisation with an
    /// empty digest: the bytes the digest is computed over.
    pub(crate) fn canonical_without_digest(&self) -> Result<Vec<u8>, EvidenceError> {
        let checkpoint = std::str::from_utf8(&self.checkpoint)
            .map_err(|_| EvidenceError::Checkpoint("the checkpoint is not UTF-8 text".into()))?;
        let question = match &self.question {
            Question::History { asset } => QuestionJson::History { asset: hex(asset) },
            Question::Holders { asset, at } => QuestionJson::Holders {
                asset: hex(asset),
                at: time_text(*at),
            },
            Question::Holdings { holder, at } => {
                let (party, system) = match holder {
                    Holder::Party(p) => (Some(p.clone()), None),
                    Holder::System(s) => (None, Some(s.clone())),
                };
                QuestionJson::Holdings {
                    party,
                    system,
                    at: time_text(*at),
                }
            }
            Question::BreachScope { system, from, to } => QuestionJson::BreachScope {
                system: system.clone(),
                from: time_text(*from),
                to: time_text(*to),
            },
            Question::Finding { id, as_of } => QuestionJson::Finding {
                id: id.clone(),
                as_of: time_text(*as_of),
            },
        };
        let answer = match &self.answer {
            Answer::History { events } => AnswerJson::History {
                events: events
                    .iter()
                    .map(|e| EventJson {
                        index: e.index,
                        kind: e.kind.clone(),
                        event_time: time_text(e.event_time),
                        integrated_time: time_text(e.integrated_time),
                        reporter: e.reporter.clone(),
                        event_id: e.event_id.clone(),
                    })
                    .collect(),
            },
            Answer::Holders { holders } => AnswerJson::Holders {
                holders: holders.iter().map(interval_json).collect(),
            },
            Answer::Holdings { intervals } => AnswerJson::Holdings {
                intervals: intervals.iter().map(interval_json).collect(),
            },
            Answer::BreachScope {
                asset_count,
                by_class,
                intervals,
            } => AnswerJson::BreachScope {
                asset_count: *asset_count,
                by_class: by_class
                    .iter()
                    .map(|c| ClassCountJson {
                        modality: c.modality.map(|m| m.name().to_owned()),
                        subject_class: c.subject_class.map(|s| s.name().to_owned()),
                        count: c.count,
                    })
                    .collect(),
                intervals: intervals.iter().map(interval_json).collect(),
            },
            Answer::Finding { finding: f } => AnswerJson::Finding {
                id: f.id.clone(),
                rule: f.rule.name().to_owned(),
                entries: f.entries.clone(),
                party: f.party.clone(),
                system: f.system.clone(),
                asset: f.asset.as_ref().map(|a| hex(a)),
                grant: f.grant.clone(),
                retention_rule: f.retention_rule.clone(),
                at: time_text(f.at),
                detail: f.detail.clone(),
                observed_by: f.observed_by.clone(),
                observed_on: f.observed_on.clone(),
            },
        };
        let doc = BundleJson {
            format: FORMAT,
            question,
            answer,
            checkpoint,
            entries: self
                .entries
                .iter()
                .map(entry_json)
                .collect::<Result<_, _>>()?,
            registry: self
                .registry
                .iter()
                .map(entry_json)
                .collect::<Result<_, _>>()?,
            memberships: self
                .memberships
                .iter()
                .map(|m| MembershipJson {
                    asset: hex(&m.asset),
                    manifest_root: hex(&m.manifest_root),
                    count: m.count,
                    index: m.index,
                    proof: m.proof.iter().map(|h| b64(h)).collect(),
                })
                .collect(),
            digest: "",
        };
        let mut out = serde_json::to_vec_pretty(&doc)
            .map_err(|e| EvidenceError::Malformed(format!("serialise the bundle: {e}")))?;
        out.push(b'\n');
        Ok(out)
    }

    /// `parse` reads a bundle's typed content and its recorded digest,
    /// checking every field's form (hex, base64, times, tlog-proofs, the
    /// order of lists) but no proof or signature.
    ///
    /// # Errors
    ///
    /// [`EvidenceError::Malformed`] for a document that is not JSON or not
    /// of the bundle's shape, naming where; otherwise the error of the
    /// part whose field is malformed.
    pub fn parse(bytes: &[u8]) -> Result<(Self, Digest), EvidenceError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            let at = offset_of(bytes, e.line(), e.column());
            EvidenceError::Malformed(format!(
                "the bundle is not valid JSON at line {} column {} (in {}): {}",
                e.line(),
                e.column(),
                part_at(bytes, at),
                strip_position(&e.to_string())
            ))
        })?;
        let Value::Object(mut top) = value else {
            return Err(EvidenceError::Malformed(
                "the bundle is not a JSON object".into(),
            ));
        };
        let unknown: Vec<String> = top
            .keys()
            .filter(|k| !FIELDS.contains(&k.as_str()))
            .map(|k| format!("{k:?}"))
            .collect();
        let missing: Vec<String> = FIELDS
            .iter()
            .filter(|k| !top.contains_key(**k))
            .map(|k| format!("{k:?}"))
            .collect();
        if !unknown.is_empty() || !missing.is_empty() {
            let mut parts = Vec::new();
            if !unknown.is_empty() {
                parts.push(format!("unknown field {}", unknown.join(", ")));
            }
            if !missing.is_empty() {
                parts.push(format!("missing field {}", missing.join(", ")));
            }
            return Err(EvidenceError::Malformed(format!(
                "the bundle's top level: {}",
                parts.join("; ")
            )));
        }
        let mut take = |k: &str| top.remove(k).unwrap_or(Value::Null);
        let (format, question, answer, checkpoint, entries, registry, memberships, digest) = (
            take("format"),
            take("question"),
            take("answer"),
            take("checkpoint"),
            take("entries"),
            take("registry"),
            take("memberships"),
            take("digest"),
        );
        if format.as_str() != Some(FORMAT) {
            return Err(EvidenceError::Malformed(format!("format: not {FORMAT:?}")));
        }
        let question = parse_question(
            serde_json::from_value(question).map_err(|e| EvidenceError::Question(e.to_string()))?,
        )?;
        let answer = parse_answer(
            serde_json::from_value(answer).map_err(|e| EvidenceError::answer(e.to_string()))?,
        )?;
        let checkpoint = match checkpoint {
            Value::String(s) => s.into_bytes(),
            _ => {
                return Err(EvidenceError::Checkpoint(
                    "not a string holding a signed note".into(),
                ))
            }
        };
        let entries = parse_entries("entries", entries, EvidenceError::entry)?;
        let registry = parse_entries("registry", registry, EvidenceError::registry)?;
        let memberships = parse_memberships(memberships)?;
        let digest = digest
            .as_str()
            .and_then(|s| hex_digest(s).ok())
            .ok_or_else(|| {
                EvidenceError::Malformed("digest: not 64 lower-case hex digits".into())
            })?;
        Ok((
            Self {
                question,
                answer,
                checkpoint,
                entries,
                registry,
                memberships,
            },
            digest,
        ))
    }
}

fn membership_key(m: &v1::MembershipProof) -> (&[u8], &[u8], u64, u64) {
    (&m.asset, &m.manifest_root, m.count, m.index)
}

/// `with_digest` puts `digest` (hex) into a canonical serialisation made
/// with an empty digest.
pub(crate) fn with_digest(empty: &[u8], digest: &str) -> Vec<u8> {
    let head = &empty[..empty.len().saturating_sub(EMPTY_DIGEST_TAIL.len())];
    let mut out = Vec::with_capacity(empty.len() + digest.len());
    out.extend_from_slice(head);
    out.extend_from_slice(b"\"digest\": \"");
    out.extend_from_slice(digest.as_bytes());
    out.extend_from_slice(b"\"\n}\n");
    out
}

/// `digest_of` is SHA-256 of the canonical serialisation with an empty
/// digest.
pub(crate) fn digest_of(empty: &[u8]) -> Digest {
    Sha256::digest(empty).into()
}

/// `hex_digest` parses 64 lower-case hex digits.
fn hex_digest(s: &str) -> Result<Digest, String> {
    let b = s.as_bytes();
    if b.len() != 64 || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("not 64 lower-case hex digits".into());
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let v = |c: u8| if c <= b'9' { c - b'0' } else { c - b'a' + 10 };
        out[i] = v(pair[0]) << 4 | v(pair[1]);
    }
    Ok(out)
}

/// `time` parses a time that must be in the bundle's canonical form.
fn time(s: &str) -> Result<Timestamp, String> {
    let t = parse_rfc3339(s)?;
    if rfc3339(t) != s {
        return Err(format!("{s:?} is not in canonical form ({:?})", rfc3339(t)));
    }
    Ok(t)
}

/// `base64` parses standard padded base64 that must re-encode the same.
fn base64(s: &str) -> Result<Vec<u8>, String> {
    let b = B64
        .decode(s)
        .map_err(|_| "not standard padded base64".to_owned())?;
    if B64.encode(&b) != s {
        return Err("not canonical base64".into());
    }
    Ok(b)
}

fn parse_question(q: QuestionJson) -> Result<Question, EvidenceError> {
    let bad = |field: &str, m: String| EvidenceError::Question(format!("{field}: {m}"));
    Ok(match q {
        QuestionJson::History { asset } => Question::History {
            asset: hex_digest(&asset).map_err(|m| bad("asset", m))?,
        },
        QuestionJson::Holders { asset, at } => Question::Holders {
            asset: hex_digest(&asset).map_err(|m| bad("asset", m))?,
            at: time(&at).map_err(|m| bad("at", m))?,
        },
        QuestionJson::Holdings { party, system, at } => {
            let holder = match (party, system) {
                (Some(p), None) => Holder::Party(p),
                (None, Some(s)) => Holder::System(s),
                _ => {
                    return Err(EvidenceError::Question(
                        "holdings: set exactly one of party and system".into(),
                    ))
                }
            };
            Question::Holdings {
                holder,
                at: time(&at).map_err(|m| bad("at", m))?,
            }
        }
        QuestionJson::BreachScope { system, from, to } => Question::BreachScope {
            system,
            from: time(&from).map_err(|m| bad("from", m))?,
            to: time(&to).map_err(|m| bad("to", m))?,
        },
        QuestionJson::Finding { id, as_of } => Question::Finding {
            id,
            as_of: time(&as_of).map_err(|m| bad("as_of", m))?,
        },
    })
}

fn parse_interval(n: usize, i: IntervalJson) -> Result<IntervalRow, EvidenceError> {
    let bad =
        |field: &str, m: String| EvidenceError::answer(format!("row {}: {field}: {m}", n + 1));
    let modality = i
        .modality
        .map(|s| {
            Modality::from_name(&s)
                .ok_or_else(|| bad("modality", format!("{s:?} is not a modality")))
        })
        .transpose()?;
    let subject_class = i
        .subject_class
        .map(|s| {
            SubjectClass::from_name(&s)
                .ok_or_else(|| bad("subject_class", format!("{s:?} is not a subject class")))
        })
        .transpose()?;
    Ok(IntervalRow {
        asset: hex_digest(&i.asset).map_err(|m| bad("asset", m))?,
        party: i.party,
        system: i.system,
        from: time(&i.from).map_err(|m| bad("from", m))?,
        to: i
            .to
            .map(|t| time(&t))
            .transpose()
            .map_err(|m| bad("to", m))?,
        opened_by: i.opened_by,
        closed_by: i.closed_by,
        modality,
        subject_class,
    })
}

fn parse_answer(a: AnswerJson) -> Result<Answer, EvidenceError> {
    let rows = |v: Vec<IntervalJson>| -> Result<Vec<IntervalRow>, EvidenceError> {
        v.into_iter()
            .enumerate()
            .map(|(n, i)| parse_interval(n, i))
            .collect()
    };
    Ok(match a {
        AnswerJson::History { events } => Answer::History {
            events: events
                .into_iter()
                .enumerate()
                .map(|(n, e)| {
                    let bad = |field: &str, m: String| {
                        EvidenceError::answer(format!("event {}: {field}: {m}", n + 1))
                    };
                    Ok(HistoryEvent {
                        index: e.index,
                        kind: e.kind,
                        event_time: time(&e.event_time).map_err(|m| bad("event_time", m))?,
                        integrated_time: time(&e.integrated_time)
                            .map_err(|m| bad("integrated_time", m))?,
                        reporter: e.reporter,
                        event_id: e.event_id,
                    })
                })
                .collect::<Result<_, EvidenceError>>()?,
        },
        AnswerJson::Holders { holders } => Answer::Holders {
            holders: rows(holders)?,
        },
        AnswerJson::Holdings { intervals } => Answer::Holdings {
            intervals: rows(intervals)?,
        },
        AnswerJson::BreachScope {
            asset_count,
            by_class,
            intervals,
        } => Answer::BreachScope {
            asset_count,
            by_class: by_class
                .into_iter()
                .enumerate()
                .map(|(n, c)| {
                    let bad = |m: String| EvidenceError::answer(format!("by_class {}: {m}", n + 1));
                    Ok(ClassCount {
                        modality: c
                            .modality
                            .map(|s| {
                                Modality::from_name(&s)
                                    .ok_or_else(|| bad(format!("{s:?} is not a modality")))
                            })
                            .transpose()?,
                        subject_class: c
                            .subject_class
                            .map(|s| {
                                SubjectClass::from_name(&s)
                                    .ok_or_else(|| bad(format!("{s:?} is not a subject class")))
                            })
                            .transpose()?,
                        count: c.count,
                    })
                })
                .collect::<Result<_, EvidenceError>>()?,
            intervals: rows(intervals)?,
        },
        AnswerJson::Finding {
            id,
            rule,
            entries,
            party,
            system,
            asset,
            grant,
            retention_rule,
            at,
            detail,
            observed_by,
            observed_on,
        } => {
            let bad = |field: &str, m: String| EvidenceError::answer(format!("{field}: {m}"));
            Answer::Finding {
                finding: Finding {
                    id,
                    rule: Rule::from_name(&rule)
                        .ok_or_else(|| bad("rule", format!("{rule:?} is not a rule")))?,
                    entries,
                    party,
                    system,
                    asset: asset
                        .map(|a| hex_digest(&a))
                        .transpose()
                        .map_err(|m| bad("asset", m))?,
                    grant,
                    retention_rule,
                    at: time(&at).map_err(|m| bad("at", m))?,
                    detail,
                    observed_by,
                    observed_on,
                },
            }
        }
    })
}

fn parse_entries(
    part: &str,
    v: Value,
    err: fn(u64, String) -> EvidenceError,
) -> Result<Vec<ProvenEntry>, EvidenceError> {
    let Value::Array(items) = v else {
        return Err(EvidenceError::Malformed(format!("{part}: not a list")));
    };
    let mut out: Vec<ProvenEntry> = Vec::with_capacity(items.len());
    for (n, item) in items.into_iter().enumerate() {
        let e: EntryJson = serde_json::from_value(item)
            .map_err(|e| EvidenceError::Malformed(format!("{part}[{n}]: {e}")))?;
        let index = e.index;
        let entry = base64(&e.entry).map_err(|m| err(index, format!("entry bytes: {m}")))?;
        let proof = TlogProof::parse(e.tlog_proof.as_bytes())
            .map_err(|m| err(index, format!("tlog-proof: {m}")))?;
        if proof.index != index {
            return Err(err(
                index,
                format!("its tlog-proof is for index {}", proof.index),
            ));
        }
        if out.last().is_some_and(|l| l.index >= index) {
            return Err(err(
                index,
                format!("{part} are not in ascending order of index"),
            ));
        }
        out.push(ProvenEntry {
            index,
            entry,
            proof,
        });
    }
    Ok(out)
}

fn parse_memberships(v: Value) -> Result<Vec<v1::MembershipProof>, EvidenceError> {
    let Value::Array(items) = v else {
        return Err(EvidenceError::Malformed("memberships: not a list".into()));
    };
    let mut out: Vec<v1::MembershipProof> = Vec::with_capacity(items.len());
    for (n, item) in items.into_iter().enumerate() {
        let m: MembershipJson = serde_json::from_value(item)
            .map_err(|e| EvidenceError::Malformed(format!("memberships[{n}]: {e}")))?;
        let err = |msg: String| EvidenceError::Membership {
            asset: m.asset.clone(),
            manifest: m.manifest_root.clone(),
            msg,
        };
        let asset = hex_digest(&m.asset).map_err(|e| err(format!("asset: {e}")))?;
        let root = hex_digest(&m.manifest_root).map_err(|e| err(format!("manifest_root: {e}")))?;
        let proof = m
            .proof
            .iter()
            .map(|h| {
                base64(h).and_then(|b| {
                    if b.len() == 32 {
                        Ok(b)
                    } else {
                        Err(format!("a proof hash is {} bytes, not 32", b.len()))
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(format!("proof: {e}")))?;
        let p = v1::MembershipProof {
            manifest_root: root.to_vec(),
            count: m.count,
            asset: asset.to_vec(),
            index: m.index,
            proof,
        };
        if out
            .last()
            .is_some_and(|l| membership_key(l) >= membership_key(&p))
        {
            return Err(err(
                "memberships are not in ascending order of asset and manifest".into(),
            ));
        }
        out.push(p);
    }
    Ok(out)
}

/// `offset_of` is the byte offset of a 1-based line and column.
pub(crate) fn offset_of(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match bytes[start..].iter().position(|b| *b == b'\n') {
            Some(n) => start += n + 1,
            None => return bytes.len(),
        }
    }
    (start + column.saturating_sub(1)).min(bytes.len())
}

/// `line_column` is the 1-based line and column of a byte offset.
pub(crate) fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |n| n + 1);
    (line, offset - start + 1)
}

/// `part_at` names the top-level part of a bundle laid out canonically
/// that holds byte `offset`, e.g. `"answer"` or `entries[3]`.
pub(crate) fn part_at(bytes: &[u8], offset: usize) -> String {
    let mut part: Option<String> = None;
    let mut element: Option<usize> = None;
    let mut start = 0;
    while start <= offset && start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |n| start + n);
        let line = &bytes[start..end];
        if let Some(rest) = line.strip_prefix(b"  \"") {
            if let Some(q) = rest.iter().position(|b| *b == b'"') {
                part = Some(String::from_utf8_lossy(&rest[..q]).into_owned());
                element = None;
            }
        } else if line.starts_with(b"    {") {
            element = Some(element.map_or(0, |e| e + 1));
        }
        start = end + 1;
    }
    match (part, element) {
        (None, _) => "the top level".into(),
        (Some(p), Some(e)) if matches!(p.as_str(), "entries" | "registry" | "memberships") => {
            format!("{p}[{e}]")
        }
        (Some(p), _) => format!("{p:?}"),
    }
}

/// `strip_position` drops serde_json's " at line L column C" suffix.
fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digests_are_lower_case_only() {
        let s = "ab".repeat(32);
        assert_eq!(hex_digest(&s).unwrap(), [0xab; 32]);
        assert!(hex_digest(&s.to_uppercase()).is_err());
        assert!(hex_digest(&s[1..]).is_err());
        assert!(hex_digest(&format!("{}g", &s[1..])).is_err());
    }

    #[test]
    fn times_must_be_canonical() {
        assert_eq!(
            time("2026-11-26T12:00:00Z").unwrap(),
            1_795_694_400_000_000_000
        );
        for bad in [
            "2026-11-26T12:00:00.000000000Z",
            "2026-11-26 12:00:00Z",
            "2026-11-26t12:00:00Z",
            "2026-11-26T12:00:00z",
            "2026-11-26T12:00:00+00:00",
        ] {
            assert!(time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_must_be_canonical() {
        assert_eq!(base64("AQI=").unwrap(), vec![1, 2]);
        assert!(base64("AQJ=").is_err(), "non-zero trailing bits");
        assert!(base64("AQI").is_err(), "missing padding");
        assert!(base64("AQ-=").is_err());
    }

    #[test]
    fn positions_are_named_by_part() {
        let doc = b"{\n  \"format\": \"x\",\n  \"entries\": [\n    {\n      \"index\": 1\n    },\n    {\n      \"index\": 2\n    }\n  ],\n  \"digest\": \"\"\n}\n";
        let at = |needle: &str| {
            let n = doc
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap();
            part_at(doc, n)
        };
        assert_eq!(at("\"x\""), "\"format\"");
        assert_eq!(at("1\n"), "entries[0]");
        assert_eq!(at("2\n"), "entries[1]");
        assert_eq!(at("\"\"\n}"), "\"digest\"");
        assert_eq!(part_at(doc, 0), "the top level");
        let (l, c) = line_column(doc, offset_of(doc, 5, 7));
        assert_eq!((l, c), (5, 7));
    }
}
