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

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use custody_domain::Timestamp;
use custody_store::StoreError;
use serde::de::DeserializeOwned;

use crate::answer::{self, fields, AnswerError};
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
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_auditor,
        ))
        .with_state(state)
}

/// `require_auditor` is the single gate every web-view request and
/// evidence download passes through: the caller's token
/// ([`crate::access`]) must hold the auditor (or admin) role, else 401 or
/// 403. A server without an access list lets every caller through.
pub(crate) async fn require_auditor(
    State(state): State<Arc<LogState>>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = state
        .admit(
            crate::access::authorization(request.headers()),
            request.extensions().get::<crate::tls::Peer>(),
        )
        .and_then(|c| c.read_all());
    match allowed {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// `UiError` is an answer's error ([`AnswerError`]) drawn as an HTML
/// error page, with the status code the answer layer maps it to.
#[derive(Debug)]
pub struct UiError(pub AnswerError);

impl From<AnswerError> for UiError {
    fn from(e: AnswerError) -> Self {
        UiError(e)
    }
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        UiError(e.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        layout::error_page(self.0.http_status(), &self.0.message())
    }
}

/// `bad` is a bad request about `field`.
fn bad(field: &str, message: impl Into<String>) -> UiError {
    UiError(AnswerError::bad(field, message))
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

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, UiError> {
        Ok(Params(crate::http::query(&parts.uri)?))
    }
}

/// `blocking` runs a page's storage reads off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, UiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, UiError> + Send + 'static,
{
    answer::blocking(move || f().map_err(|e| e.0))
        .await
        .map_err(UiError)
}

/// `given` is a form field's value, with an empty field taken as absent.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `now` is the wall clock in Unix nanoseconds, to the second.
fn now() -> Timestamp {
    let t = crate::init::now_nanos();
    t - t.rem_euclid(1_000_000_000)
}

/// `pinned` is the tree size a page answers as of: `size` from one of its
/// own paging links, which must be a checkpoint the log published, or the
/// latest checkpoint's ([`answer::pin`]). It reads storage: call it from
/// [`blocking`].
fn pinned(state: &LogState, size: Option<&str>) -> Result<u64, UiError> {
    let size = size.map(|s| fields::number("size", s)).transpose()?;
    Ok(answer::pin(state, size, "size")?.size)
}
