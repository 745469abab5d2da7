//! `ExportEvidence`: one question answered over every page at one pinned
//! checkpoint, proven with the queries' [`EvidenceBuilder`], and packed
//! into an evidence bundle (`custody-evidence`, `docs/evidence-bundle.md`)
//! that `custody verify` checks offline.
//!
//! A bundle is complete for its question at its checkpoint: the exporter
//! reads every page, so a breach scope's counts are those of its rows. The
//! work is bounded: a question whose answer would need more than
//! [`MAX_BUNDLE_ROWS`] rows or cited entries, or a bundle larger than
//! [`MAX_BUNDLE_BYTES`], is refused with `RESOURCE_EXHAUSTED`, saying how to
//! narrow it.

use std::sync::Arc;

use custody_domain::findings::Finding;
use custody_domain::{hex, rfc3339, Digest, Interval, Timestamp};
use custody_evidence::{Answer, Bundle, ClassCount, HistoryEvent, Holder, IntervalRow, Question};
use custody_proto::v1;

use crate::answer::evidence::EvidenceBuilder;
use crate::answer::fields::{bundle_time as time, digest, quoted};
use crate::answer::token::MAX_FINDING_ID;
use crate::answer::{self, pin, AnswerError, Pinned};
use crate::findings::Findings;
use crate::query::AsOf;
use crate::state::LogState;

/// `MAX_BUNDLE_ROWS` bounds a bundle: at most this many answer rows and
/// this many cited entries.
pub const MAX_BUNDLE_ROWS: usize = 100_000;

/// `MAX_BUNDLE_BYTES` bounds a bundle's size, below the gRPC service's
/// largest message (64 MiB).
pub const MAX_BUNDLE_BYTES: usize = 60 << 20;

/// `Exported` is a bundle's bytes and a suggested file name.
pub struct Exported {
    /// The canonical bundle.
    pub bytes: Vec<u8>,
    /// A file name naming the question, e.g.
    /// `evidence-breach-scope-subco-corp-net-2026-11-26T000000Z-2026-11-30T000000Z.json`.
    pub file_name: String,
}

/// `question_from_proto` reads the question of an `ExportEvidence` request.
///
/// # Errors
///
/// `INVALID_ARGUMENT` for a missing question, a malformed digest, a time
/// before 1970, a page token (an export covers every page), a window
/// that ends before it starts, or a finding without an id. A finding
/// asked as of time 0 is asked as of now.
pub fn question_from_proto(r: v1::ExportEvidenceRequest) -> Result<Question, AnswerError> {
    use v1::export_evidence_request::Question as Q;
    let no_token = |t: &[u8]| {
        if t.is_empty() {
            Ok(())
        } else {
            Err(AnswerError::bad(
                "page_token",
                "an export covers every page at one checkpoint; leave it empty",
            ))
        }
    };
    match r.question {
        None => Err(AnswerError::bad(
            "question",
            "set one of history, holders, holdings, breach_scope or finding",
        )),
        Some(Q::History(h)) => {
            no_token(&h.page_token)?;
            Ok(Question::History {
                asset: digest("history.asset", &h.asset)?,
            })
        }
        Some(Q::Holders(h)) if h.tree_size != 0 => Err(AnswerError::bad(
            "holders.tree_size",
            "an evidence bundle answers as of the latest checkpoint; leave tree_size 0",
        )),
        Some(Q::Holders(h)) => Ok(Question::Holders {
            asset: digest("holders.asset", &h.asset)?,
            at: time("holders.time", h.time_unix_nanos)?,
        }),
        Some(Q::Holdings(h)) => {
            no_token(&h.page_token)?;
            let holder = match h.holder {
                Some(v1::holdings_request::Holder::Party(p)) => Holder::Party(p),
                Some(v1::holdings_request::Holder::SystemId(s)) => Holder::System(s),
                None => {
                    return Err(AnswerError::bad(
                        "holdings.holder",
                        "set party or system_id",
                    ))
                }
            };
            Ok(Question::Holdings {
                holder,
                at: time("holdings.time", h.time_unix_nanos)?,
            })
        }
        Some(Q::BreachScope(b)) => {
            no_token(&b.page_token)?;
            let (from, to) = (
                time("breach_scope.from", b.from_unix_nanos)?,
                time("breach_scope.to", b.to_unix_nanos)?,
            );
            if to < from {
                return Err(AnswerError::bad(
                    "breach_scope.to",
                    "the window ends before it starts",
                ));
            }
            Ok(Question::BreachScope {
                system: b.system_id,
                from,
                to,
            })
        }
        Some(Q::Finding(f)) => {
            if f.id.is_empty() {
                return Err(AnswerError::bad(
                    "finding.id",
                    "set the finding's id, as custody inspect findings lists it",
                ));
            }
            if f.id.len() > MAX_FINDING_ID {
                return Err(AnswerError::bad(
                    "finding.id",
                    format!(
                        "{} bytes, longer than any finding's id (at most {MAX_FINDING_ID})",
                        f.id.len()
                    ),
                ));
            }
            Ok(Question::Finding {
                id: f.id,
                as_of: match f.as_of_unix_nanos {
                    0 => crate::init::now_nanos(),
                    t => time("finding.as_of", t)?,
                },
            })
        }
    }
}

/// `export_evidence` answers the `ExportEvidence` RPC.
///
/// # Errors
///
/// As [`question_from_proto`] and [`export`].
pub async fn export_evidence(
    state: Arc<LogState>,
    findings: Option<Arc<Findings>>,
    r: v1::ExportEvidenceRequest,
) -> Result<v1::ExportEvidenceResponse, AnswerError> {
    let q = question_from_proto(r)?;
    let e = export(state, findings, q).await?;
    Ok(v1::ExportEvidenceResponse {
        bundle: e.bytes,
        file_name: e.file_name,
    })
}

/// `export` answers `q` completely at the latest checkpoint and packs the
/// answer with its evidence into a bundle. A finding is computed by the
/// findings stage `findings` as the Findings RPC computes it, as of the
/// question's time over the entries of the pinned checkpoint.
///
/// # Errors
///
/// `NOT_FOUND` for an unregistered party or system or a finding that does
/// not exist as of its time, `UNAVAILABLE` when the findings stage is not
/// running or still catching up, `RESOURCE_EXHAUSTED` when the answer
/// exceeds [`MAX_BUNDLE_ROWS`], `INTERNAL` on storage failure.
pub async fn export(
    state: Arc<LogState>,
    findings: Option<Arc<Findings>>,
    q: Question,
) -> Result<Exported, AnswerError> {
    let cp = answer::blocking({
        let state = state.clone();
        move || pin(&state, None, "question")
    })
    .await?;
    let finding = match &q {
        Question::Finding { id, as_of } => {
            let stage = findings.ok_or_else(|| {
                AnswerError::Unavailable("the findings stage is not running".into())
            })?;
            let f = stage
                .find(cp.size, *as_of, id.clone())
                .await?
                .ok_or_else(|| {
                    AnswerError::NotFound(format!(
                        "there is no finding {} as of {} at tree size {}",
                        quoted(id),
                        rfc3339(*as_of),
                        cp.size
                    ))
                })?;
            Some(f)
        }
        _ => None,
    };
    answer::blocking(move || build(&state, &cp, q, finding)).await
}

fn too_many(what: String, how: &str) -> AnswerError {
    AnswerError::TooLarge(format!(
        "{what}, more than one bundle holds ({MAX_BUNDLE_ROWS}); {how}"
    ))
}

/// `cite_intervals` cites every interval, with the entry that states its
/// class where its opening entry does not, and returns the rows.
fn cite_intervals(
    ev: &mut EvidenceBuilder<'_>,
    intervals: &[Interval],
) -> Result<Vec<IntervalRow>, AnswerError> {
    ev.cite_intervals(intervals)?;
    Ok(intervals.iter().map(IntervalRow::from_interval).collect())
}

fn build(
    state: &LogState,
    cp: &Pinned,
    q: Question,
    finding: Option<Finding>,
) -> Result<Exported, AnswerError> {
    let registry = state.registry();
    let asof = AsOf {
        store: state.store.as_ref(),
        size: cp.size,
    };
    let mut ev = EvidenceBuilder::new(state, cp, &registry);
    let mut history: Option<Vec<u64>> = None;
    let (answer, name) = match &q {
        Question::History { asset } => {
            let (indexes, more) = asof
                .asset_history(asset, None, MAX_BUNDLE_ROWS)
                .map_err(|e| AnswerError::internal("asset history", e))?;
            if more {
                return Err(too_many(
                    format!("asset {} has more logged events", hex(asset)),
                    "ask for its holders at the times that matter instead",
                ));
            }
            for i in &indexes {
                ev.cite_history(*i, asset)?;
            }
            history = Some(indexes);
            (
                Answer::History { events: Vec::new() },
                format!("history-{}-size-{}", short(asset), cp.size),
            )
        }
        Question::Holders { asset, at } => {
            let intervals = asof
                .holders_at(asset, *at)
                .map_err(|e| AnswerError::internal("holders", e))?;
            if intervals.len() > MAX_BUNDLE_ROWS {
                return Err(too_many(
                    format!("asset {} has more holders", hex(asset)),
                    "export the holdings of its systems one at a time",
                ));
            }
            (
                Answer::Holders {
                    holders: cite_intervals(&mut ev, &intervals)?,
                },
                format!("holders-{}-{}", short(asset), stamp(*at)),
            )
        }
        Question::Holdings { holder, at } => {
            let systems = answer::holder_systems(&registry, holder, cp.size)?;
            let who = match holder {
                Holder::System(s) | Holder::Party(s) => s.clone(),
            };
            let (intervals, next) = asof
                .holdings(&systems, *at, None, MAX_BUNDLE_ROWS + 1)
                .map_err(|e| AnswerError::internal("holdings", e))?;
            if next.is_some() || intervals.len() > MAX_BUNDLE_ROWS {
                return Err(too_many(
                    format!("{who} held more assets at {}", rfc3339(*at)),
                    "export the holdings of one system at a time, or a breach scope over a short window",
                ));
            }
            (
                Answer::Holdings {
                    intervals: cite_intervals(&mut ev, &intervals)?,
                },
                format!("holdings-{}-{}", file_part(&who), stamp(*at)),
            )
        }
        Question::BreachScope { system, from, to } => {
            answer::registered_system(&registry, system)?;
            let scope = asof
                .breach_scope(&state.scopes, system, *from, *to, None, MAX_BUNDLE_ROWS)
                .map_err(|e| AnswerError::internal("breach scope", e))?;
            if scope.next.is_some() || scope.intervals.len() > MAX_BUNDLE_ROWS {
                return Err(too_many(
                    format!(
                        "system {system} held {} distinct assets in {} custody intervals in that window",
                        scope.asset_count,
                        scope.intervals.len()
                    ),
                    "export shorter windows (--from/--to) one after another",
                ));
            }
            (
                Answer::BreachScope {
                    asset_count: scope.asset_count,
                    by_class: scope
                        .by_class
                        .iter()
                        .map(|((m, s), n)| ClassCount {
                            modality: *m,
                            subject_class: *s,
                            count: *n,
                        })
                        .collect(),
                    intervals: cite_intervals(&mut ev, &scope.intervals)?,
                },
                format!(
                    "breach-scope-{}-{}-{}",
                    file_part(system),
                    stamp(*from),
                    stamp(*to)
                ),
            )
        }
        Question::Finding { id, as_of } => {
            let Some(f) = finding else {
                return Err(AnswerError::internal(
                    "finding",
                    format!("finding {id} was not computed"),
                ));
            };
            ev.cite_finding(&f)?;
            (
                Answer::Finding { finding: f },
                format!("finding-{}-{}", file_part(id), stamp(*as_of)),
            )
        }
        _ => {
            return Err(AnswerError::bad(
                "question",
                format!("{} bundles are not available yet", q.kind()),
            ))
        }
    };
    if ev.cited() > MAX_BUNDLE_ROWS {
        return Err(too_many(
            format!("the answer rests on {} entries", ev.cited()),
            "narrow the question",
        ));
    }
    let evidence = ev.build()?;
    let answer = match history {
        Some(indexes) => Answer::History {
            events: indexes
                .iter()
                .map(|i| {
                    let p = evidence
                        .entries
                        .binary_search_by_key(i, |p| p.index)
                        .map(|n| &evidence.entries[n])
                        .map_err(|_| {
                            AnswerError::internal("history", format!("entry {i} was not proven"))
                        })?;
                    HistoryEvent::from_entry(*i, &p.entry)
                        .map_err(|e| AnswerError::internal("history", e))
                })
                .collect::<Result<_, AnswerError>>()?,
        },
        None => answer,
    };
    let bytes = Bundle::new(q, answer, &evidence)
        .to_bytes()
        .map_err(|e| AnswerError::internal("bundle", e))?;
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(AnswerError::TooLarge(format!(
            "the bundle would be {} MiB, more than the {} MiB one download holds; narrow the question (a shorter window, one system at a time)",
            bytes.len() >> 20,
            MAX_BUNDLE_BYTES >> 20
        )));
    }
    Ok(Exported {
        bytes,
        file_name: format!("evidence-{name}.json"),
    })
}

/// `short` is the first 16 hex digits of a digest, for file names.
fn short(d: &Digest) -> String {
    hex(&d[..8])
}

/// `stamp` is a time for file names: RFC 3339 without colons.
fn stamp(t: Timestamp) -> String {
    rfc3339(t).replace(':', "")
}

/// `file_part` keeps an id safe in a file name.
fn file_part(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
