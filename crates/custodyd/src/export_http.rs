//! Evidence bundle downloads over plain HTTP, for the web view's links:
//!
//! - `GET /evidence/history?asset=HEX`
//! - `GET /evidence/holders?asset=HEX&at=T`
//! - `GET /evidence/holdings?party=P&at=T` or `?system=S&at=T`
//! - `GET /evidence/breach-scope?system=S&from=T&to=T`
//! - `GET /evidence/finding?id=ID&as_of=T` (`as_of` defaults to now)
//!
//! Times are RFC 3339 in UTC. Each answers with the bundle
//! ([`crate::export`]) as an attachment, or with the answer layer's error
//! ([`AnswerError`]) as plain text: 400 for bad parameters, 404 for an
//! unknown party or system or a finding that does not exist as of its
//! time, 422 for a question too large for one bundle, 503 while entries
//! are being indexed. The same role gate as the web view applies here
//! once roles arrive (DESIGN §8).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use custody_domain::{Digest, Timestamp};
use custody_evidence::{Holder, Question};
use serde::Deserialize;

use crate::answer::{fields, AnswerError};
use crate::http::query;
use crate::state::LogState;

/// `router` serves the downloads from `state`. It is generic over the
/// state of the router it is merged into, so it mounts with one `.merge`.
pub fn router<S>(state: Arc<LogState>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/evidence/history", get(history))
        .route("/evidence/holders", get(holders))
        .route("/evidence/holdings", get(holdings))
        .route("/evidence/breach-scope", get(breach_scope))
        .route("/evidence/finding", get(finding))
        // Custody data: the same auditor gate as the web view.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::ui::require_auditor,
        ))
        .with_state(state)
}

/// `require` is a parameter that must be given.
fn require<'a>(v: &'a Option<String>, k: &str, what: &str) -> Result<&'a str, AnswerError> {
    v.as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AnswerError::bad(k, format!("missing parameter {k} ({what})")))
}

fn asset(v: &Option<String>) -> Result<Digest, AnswerError> {
    fields::digest_hex("asset", require(v, "asset", "the asset's hex SHA-256")?)
}

fn time(v: &Option<String>, k: &str) -> Result<Timestamp, AnswerError> {
    fields::time(
        k,
        require(v, k, "an RFC 3339 time such as 2026-11-26T15:04:05Z")?,
    )
}

async fn answer(state: Arc<LogState>, q: Question) -> Result<Response, AnswerError> {
    let findings = state.findings.get().cloned();
    let e = crate::export::export(state, findings, q).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", e.file_name),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        e.bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    asset: Option<String>,
}

async fn history(State(state): State<Arc<LogState>>, uri: Uri) -> Result<Response, AnswerError> {
    let p: HistoryQuery = query(&uri)?;
    answer(
        state,
        Question::History {
            asset: asset(&p.asset)?,
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldersQuery {
    asset: Option<String>,
    at: Option<String>,
}

async fn holders(State(state): State<Arc<LogState>>, uri: Uri) -> Result<Response, AnswerError> {
    let p: HoldersQuery = query(&uri)?;
    let q = Question::Holders {
        asset: asset(&p.asset)?,
        at: time(&p.at, "at")?,
    };
    answer(state, q).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldingsQuery {
    party: Option<String>,
    system: Option<String>,
    at: Option<String>,
}

async fn holdings(State(state): State<Arc<LogState>>, uri: Uri) -> Result<Response, AnswerError> {
    let p: HoldingsQuery = query(&uri)?;
    let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let holder = match (given(&p.party), given(&p.system)) {
        (Some(party), None) => Holder::Party(party),
        (None, Some(system)) => Holder::System(system),
        _ => {
            return Err(AnswerError::bad(
                "party",
                "set exactly one of party and system",
            ))
        }
    };
    let q = Question::Holdings {
        holder,
        at: time(&p.at, "at")?,
    };
    answer(state, q).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreachScopeQuery {
    system: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn breach_scope(
    State(state): State<Arc<LogState>>,
    uri: Uri,
) -> Result<Response, AnswerError> {
    let p: BreachScopeQuery = query(&uri)?;
    let system = require(&p.system, "system", "a system id")?.to_owned();
    let (from, to) = (time(&p.from, "from")?, time(&p.to, "to")?);
    fields::window(from, to)?;
    answer(state, Question::BreachScope { system, from, to }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingQuery {
    id: Option<String>,
    as_of: Option<String>,
}

async fn finding(State(state): State<Arc<LogState>>, uri: Uri) -> Result<Response, AnswerError> {
    let p: FindingQuery = query(&uri)?;
    let id = require(&p.id, "id", "a finding id")?.to_owned();
    let as_of = match p.as_of.as_deref().filter(|v| !v.is_empty()) {
        Some(_) => fields::bundle_time("as_of", time(&p.as_of, "as_of")?)?,
        None => crate::init::now_nanos(),
    };
    answer(state, Question::Finding { id, as_of }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(q: &str) -> Result<T, AnswerError> {
        query(&format!("/evidence/x?{q}").parse::<Uri>().unwrap())
    }

    #[test]
    fn query_strings_decode_and_refuse_what_they_should() {
        let p: HoldersQuery = parse("asset=ab&at=2026-11-26T12%3A00%3A00Z").unwrap();
        assert_eq!(p.at.as_deref(), Some("2026-11-26T12:00:00Z"));
        assert!(asset(&p.asset).is_err(), "too short");
        assert!(parse::<HistoryQuery>("x=1").is_err(), "unknown parameter");
        assert!(parse::<HistoryQuery>("asset=1&asset=2").is_err(), "twice");
        let p: HistoryQuery = parse(&format!("asset={}", "aB".repeat(32))).unwrap();
        assert_eq!(asset(&p.asset).unwrap(), [0xab; 32]);
        let p: HistoryQuery = parse("asset=%zz").unwrap();
        assert!(asset(&p.asset).is_err(), "not hex once decoded");
    }
}
