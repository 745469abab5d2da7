//! Evidence bundle downloads over plain HTTP, for the web view's links:
//!
//! - `GET /evidence/history?asset=HEX`
//! - `GET /evidence/holders?asset=HEX&at=T`
//! - `GET /evidence/holdings?party=P&at=T` or `?system=S&at=T`
//! - `GET /evidence/breach-scope?system=S&from=T&to=T`
//! - `GET /evidence/finding?id=ID&as_of=T` (`as_of` defaults to now)
//!
//! Times are RFC 3339 in UTC. Each answers with the bundle
//! ([`crate::export`]) as an attachment, or with a plain-text message: 400
//! for bad parameters, 404 for an unknown party or system or a finding
//! that does not exist as of its time, 422 for a question too large for
//! one bundle, 503 while the findings stage is catching up. The same role gate as the web view
//! applies here once roles arrive (DESIGN §8).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use custody_domain::{parse_rfc3339, Digest, Timestamp};
use custody_evidence::{Holder, Question};
use tonic::Code;

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
        .route_layer(axum::middleware::from_fn(crate::ui::require_auditor))
        .with_state(state)
}

/// `DownloadError` is the one error type of the downloads; it turns into a
/// plain-text response.
#[derive(Debug)]
struct DownloadError(StatusCode, String);

impl IntoResponse for DownloadError {
    fn into_response(self) -> Response {
        if self.0 == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self.1, "evidence download failed");
        }
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.1),
        )
            .into_response()
    }
}

fn bad(msg: impl Into<String>) -> DownloadError {
    DownloadError(StatusCode::BAD_REQUEST, msg.into())
}

/// `Params` is a query string's parameters, each named at most once.
struct Params(Vec<(String, String)>);

impl Params {
    /// `parse` reads `query`, allowing only the parameters in `allowed`.
    fn parse(query: Option<String>, allowed: &[&str]) -> Result<Self, DownloadError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in query.as_deref().unwrap_or_default().split('&') {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (percent_decode(k)?, percent_decode(v)?);
            if !allowed.contains(&k.as_str()) {
                return Err(bad(format!(
                    "unknown parameter {k:?}; this download takes {}",
                    allowed.join(", ")
                )));
            }
            if out.iter().any(|(o, _)| *o == k) {
                return Err(bad(format!("parameter {k:?} is given twice")));
            }
            out.push((k, v));
        }
        Ok(Self(out))
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(o, _)| o == k).map(|(_, v)| v.as_str())
    }

    fn require(&self, k: &str, what: &str) -> Result<&str, DownloadError> {
        self.get(k)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad(format!("missing parameter {k} ({what})")))
    }

    fn asset(&self) -> Result<Digest, DownloadError> {
        let s = self.require("asset", "the asset's hex SHA-256")?;
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!(
                "asset: want 64 hex digits (a SHA-256), got {s:?}"
            )));
        }
        let mut d = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let hexit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            d[i] = hexit(pair[0]) << 4 | hexit(pair[1]);
        }
        Ok(d)
    }

    fn time(&self, k: &str) -> Result<Timestamp, DownloadError> {
        let s = self.require(k, "an RFC 3339 time such as 2026-11-26T15:04:05Z")?;
        parse_rfc3339(s).map_err(|e| bad(format!("{k}: {e}")))
    }
}

/// `percent_decode` decodes a query-string component (`%XX`, and `+` for
/// a space).
fn percent_decode(s: &str) -> Result<String, DownloadError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hexit = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
                match (hexit(b.get(i + 1)), hexit(b.get(i + 2))) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => return Err(bad(format!("malformed percent-encoding in {s:?}"))),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad(format!("{s:?} is not UTF-8 once decoded")))
}

async fn answer(state: Arc<LogState>, q: Question) -> Result<Response, DownloadError> {
    let findings = state.findings.get().cloned();
    let e = crate::export::export(state, findings, q)
        .await
        .map_err(|s| {
            let code = match s.code() {
                Code::InvalidArgument => StatusCode::BAD_REQUEST,
                Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                Code::NotFound => StatusCode::NOT_FOUND,
                Code::ResourceExhausted => StatusCode::UNPROCESSABLE_ENTITY,
                Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            DownloadError(code, s.message().to_owned())
        })?;
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

async fn history(
    State(state): State<Arc<LogState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, DownloadError> {
    let p = Params::parse(q, &["asset"])?;
    answer(state, Question::History { asset: p.asset()? }).await
}

async fn holders(
    State(state): State<Arc<LogState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, DownloadError> {
    let p = Params::parse(q, &["asset", "at"])?;
    let q = Question::Holders {
        asset: p.asset()?,
        at: p.time("at")?,
    };
    answer(state, q).await
}

async fn holdings(
    State(state): State<Arc<LogState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, DownloadError> {
    let p = Params::parse(q, &["party", "system", "at"])?;
    let holder = match (p.get("party"), p.get("system")) {
        (Some(party), None) if !party.is_empty() => Holder::Party(party.to_owned()),
        (None, Some(system)) if !system.is_empty() => Holder::System(system.to_owned()),
        _ => return Err(bad("set exactly one of party and system")),
    };
    let q = Question::Holdings {
        holder,
        at: p.time("at")?,
    };
    answer(state, q).await
}

async fn breach_scope(
    State(state): State<Arc<LogState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, DownloadError> {
    let p = Params::parse(q, &["system", "from", "to"])?;
    let system = p.require("system", "a system id")?.to_owned();
    let (from, to) = (p.time("from")?, p.time("to")?);
    if to < from {
        return Err(bad("to: the window ends before it starts"));
    }
    answer(state, Question::BreachScope { system, from, to }).await
}

async fn finding(
    State(state): State<Arc<LogState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, DownloadError> {
    let p = Params::parse(q, &["id", "as_of"])?;
    let id = p.require("id", "a finding id")?.to_owned();
    let as_of = match p.get("as_of").filter(|v| !v.is_empty()) {
        Some(_) => p.time("as_of")?,
        None => crate::init::now_nanos(),
    };
    if as_of < 0 {
        return Err(bad(
            "as_of: a time before 1970 cannot be written in a bundle",
        ));
    }
    answer(state, Question::Finding { id, as_of }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_refuse_what_they_should() {
        let p = Params::parse(
            Some("asset=ab&at=2026-11-26T12%3A00%3A00Z".into()),
            &["asset", "at"],
        )
        .unwrap();
        assert_eq!(p.get("at"), Some("2026-11-26T12:00:00Z"));
        assert!(p.asset().is_err(), "too short");
        assert!(Params::parse(Some("x=1".into()), &["asset"]).is_err());
        assert!(Params::parse(Some("asset=1&asset=2".into()), &["asset"]).is_err());
        assert!(Params::parse(Some("asset=%zz".into()), &["asset"]).is_err());
        let p = Params::parse(Some(format!("asset={}", "aB".repeat(32))), &["asset"]).unwrap();
        assert_eq!(p.asset().unwrap(), [0xab; 32]);
    }
}
