//! The auditors' web view: read-only HTML pages rendered on the server
//! (`maud`, no scripts, no external assets), served under `/ui/` on the
//! HTTP address.
//!
//! Each page answers with the same custody queries as the gRPC API
//! ([`crate::query::AsOf`]), as of the latest checkpoint or of the one its
//! paging links pin (`size=N`), and links to the evidence bundle that
//! proves what it shows (`/evidence/...`):
//! - `/ui/` ([`status`]): the log's state, checkpoint, witnesses, ingest
//!   rate and registered systems;
//! - `/ui/asset/<hex>` ([`asset`]): an asset's custody timeline and events;
//! - `/ui/holdings` ([`holdings`]): a party's or system's holdings at a time;
//! - `/ui/breach-scope` ([`breach`]): what rested on a system in a window;
//! - `/ui/findings` ([`findings`]): policy findings as of a time, filtered.
//!
//! Bounds, so a page costs the same at a million entries as at a thousand:
//! every listing is one page long and resumes from a cursor in its "next"
//! link; an asset's chart reads at most [`MAX_INTERVALS`] intervals; the
//! breach scope's count is the one scan `AsOf::breach_scope` makes.
//!
//! Access: the view is read-only and meant for the auditor role (DESIGN
//! §8). [`require_auditor`] is the one place where that check goes.

mod asset;
mod breach;
mod findings;
mod holdings;
pub mod layout;
mod status;
mod timeline;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use custody_domain::{is_valid_id, parse_rfc3339, Digest, Timestamp};
use custody_store::StoreError;
use serde::de::DeserializeOwned;

use crate::state::LogState;

/// `MAX_INTERVALS` is the most custody intervals of one asset drawn and
/// listed on its page.
pub const MAX_INTERVALS: usize = 500;

/// `router` serves the web view from `state`. It is generic over the
/// state of the router it is merged into, so it mounts with one `.merge`.
pub fn router<S>(state: Arc<LogState>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(status::page))
        .route("/ui/asset", get(asset::lookup))
        .route("/ui/asset/{hex}", get(asset::page))
        .route("/ui/holdings", get(holdings::page))
        .route("/ui/breach-scope", get(breach::page))
        .route("/ui/findings", get(findings::page))
        .route_layer(middleware::from_fn(require_auditor))
        .with_state(state)
}

/// `require_auditor` is the single gate every web-view request passes
/// through, and the one place where the auditor-role check will go once
/// transport security and roles arrive (DESIGN §8): it will read the
/// caller's verified identity (the mTLS client certificate, or a token
/// checked against the admin-issued roles) from the request's extensions
/// and answer 403 Forbidden unless that identity holds the auditor role.
/// Until then every caller passes. The evidence downloads (`/evidence/...`)
/// pass through it too.
pub(crate) async fn require_auditor(request: Request, next: Next) -> Response {
    next.run(request).await
}

/// `UiError` is the one error type of the web view; it turns into an HTML
/// error page with the matching status code.
#[derive(Debug)]
pub enum UiError {
    /// The input is malformed (400); the message says what to fix.
    BadRequest(String),
    /// The asset, party or system is not in the log (404).
    NotFound(String),
    /// Storage failed or a task died (500); the detail is logged, not shown.
    Internal(String),
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        UiError::Internal(format!("storage: {e}"))
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (code, message) = match self {
            UiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            UiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            UiError::Internal(m) => {
                tracing::error!(error = %m, "web view request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the server could not read the log; the error is in its log".to_owned(),
                )
            }
        };
        layout::error_page(code, &message)
    }
}

/// `Params` is a page's query string, parsed into `T`; a malformed one is
/// a [`UiError::BadRequest`].
pub struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, UiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| Params(t))
            .map_err(|e| UiError::BadRequest(format!("query string: {}", e.body_text())))
    }
}

/// `blocking` runs a page's storage reads off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, UiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, UiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| UiError::Internal(format!("page task: {e}")))?
}

/// `given` is a form field's value, with an empty field taken as absent.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `parse_digest` reads a SHA-256 digest written as 64 hex digits.
fn parse_digest(field: &str, s: &str) -> Result<Digest, UiError> {
    let bad = || {
        UiError::BadRequest(format!(
            "{field}: want a SHA-256 digest as 64 hex digits, got {:?}",
            layout::clip(s, 80)
        ))
    };
    if s.len() != 64 {
        return Err(bad());
    }
    let mut d = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
        let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
        d[i] = (hi * 16 + lo) as u8;
    }
    Ok(d)
}

/// `parse_id` reads a party or system id.
fn parse_id(field: &str, s: &str) -> Result<String, UiError> {
    if is_valid_id(s) {
        Ok(s.to_owned())
    } else {
        Err(UiError::BadRequest(format!(
            "{field}: {:?} is not an id; ids are 1 to 64 characters from A-Z a-z 0-9 . _ : -",
            layout::clip(s, 80)
        )))
    }
}

/// `parse_time` reads an RFC 3339 time.
fn parse_time(field: &str, s: &str) -> Result<Timestamp, UiError> {
    parse_rfc3339(s).map_err(|e| UiError::BadRequest(format!("{field}: {e}")))
}

/// `parse_u64` reads a log index or tree size.
fn parse_u64(field: &str, s: &str) -> Result<u64, UiError> {
    s.parse()
        .map_err(|_| UiError::BadRequest(format!("{field}: {s:?} is not a whole number")))
}

/// `now` is the wall clock in Unix nanoseconds, to the second.
fn now() -> Timestamp {
    let t = crate::init::now_nanos();
    t - t.rem_euclid(1_000_000_000)
}

/// `pinned` is the tree size a page answers as of: `size` from one of its
/// own paging links, which must be a checkpoint the log published, or the
/// latest checkpoint's. It reads storage: call it from [`blocking`].
fn pinned(state: &LogState, size: Option<&str>) -> Result<u64, UiError> {
    let latest = state.answerable().size;
    let Some(size) = size else {
        return Ok(latest);
    };
    let n = parse_u64("size", size)?;
    if n == latest {
        return Ok(n);
    }
    if n > latest || state.store.checkpoint(n)?.is_none() {
        return Err(UiError::BadRequest(format!(
            "size: the log published no checkpoint of size {n}; start again without one"
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_from_64_hex_digits_only() {
        let hex = "00ff".repeat(16);
        assert_eq!(parse_digest("asset", &hex).unwrap()[..2], [0x00, 0xff]);
        assert_eq!(parse_digest("asset", &hex.to_uppercase()).unwrap()[1], 0xff);
        for bad in ["", "00", &"0g".repeat(32), &"0".repeat(65), &"é".repeat(32)] {
            assert!(matches!(
                parse_digest("asset", bad),
                Err(UiError::BadRequest(_))
            ));
        }
    }

    #[test]
    fn ids_and_times_are_checked() {
        assert!(parse_id("party", "maint-subco").is_ok());
        assert!(parse_id("party", "<script>").is_err());
        assert!(parse_time("at", "2026-11-26T15:04:05Z").is_ok());
        assert!(parse_time("at", "yesterday").is_err());
    }
}
