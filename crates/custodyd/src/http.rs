//! The C2SP `tlog-tiles` read API: `/checkpoint`, `/tile/<L>/<N>[.p/<W>]`
//! and `/tile/entries/<N>[.p/<W>]`. Everything served is bounded by the
//! latest published checkpoint.

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use custody_log::{encode_entry_bundle, hash_tile, TileId, TileKind, TilePathError, TILE_WIDTH};

use serde::de::DeserializeOwned;

use crate::answer::{self, fields, AnswerError};
use crate::state::LogState;

/// `query` parses a request's query string into `T`, the one parser of
/// query strings for the web view and the evidence downloads. `T` names
/// the parameters it takes (with `deny_unknown_fields`, an unknown one is
/// refused, saying which it takes); a parameter given twice is refused.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] about the query string, saying what is
/// wrong with it.
pub fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, AnswerError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(t)| t)
        .map_err(|e| AnswerError::bad("query string", fields::clip(&e.body_text(), 200)))
}

/// `router` serves the tile API from `state`.
pub fn router(state: Arc<LogState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(tile))
        .merge(crate::ui::router(state.clone()))
        .merge(crate::export_http::router(state.clone()))
        .with_state(state)
}

/// `healthz` answers 200 while the process serves HTTP at all: for a
/// liveness probe. It needs no credentials and says nothing of the log.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `readyz` answers 200 while the server takes requests, and 503 before
/// it does and once it is shutting down: for a readiness probe. It needs
/// no credentials and says nothing of the log.
async fn readyz(State(state): State<Arc<LogState>>) -> Result<&'static str, AnswerError> {
    if *state.ready.borrow() {
        Ok("ready\n")
    } else {
        Err(AnswerError::Unavailable(
            "not ready: starting, or stopping".into(),
        ))
    }
}

/// `metrics` renders the server's metrics in the OpenMetrics text format.
/// They hold no custody data, so they need no credentials.
async fn metrics(
    State(state): State<Arc<LogState>>,
    headers: HeaderMap,
) -> Result<Response, AnswerError> {
    // Prometheus asks for OpenMetrics; anything else gets the classic
    // text format.
    let open_metrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let st = state.clone();
    let text = tokio::task::spawn_blocking(move || st.metrics.encode(&st, open_metrics))
        .await
        .map_err(|e| AnswerError::internal("metrics", e))?
        .map_err(|e| AnswerError::internal("metrics", e))?;
    let content_type = if open_metrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// `may_read_tiles` checks the caller of a tile request: on a server with
/// an access list and without `--public-tiles`, hash tiles need a
/// witness, auditor or admin token, and entry tiles (the entries
/// themselves) an auditor's or admin's.
fn may_read_tiles(
    state: &LogState,
    headers: &HeaderMap,
    peer: Option<&crate::tls::Peer>,
    entries: bool,
) -> Result<(), AnswerError> {
    if state.public_tiles {
        return state.count(None, peer);
    }
    let caller = state.admit(crate::access::authorization(headers), peer)?;
    if entries {
        caller.read_all()
    } else {
        caller.read_tiles()
    }
}

async fn checkpoint(
    State(state): State<Arc<LogState>>,
    headers: HeaderMap,
    peer: Option<Extension<crate::tls::Peer>>,
) -> Result<Response, AnswerError> {
    // A checkpoint holds no custody data: any caller the server knows
    // (as GetCheckpoint over gRPC).
    let peer = peer.as_ref().map(|p| &p.0);
    if state.public_tiles {
        state.count(None, peer)?;
    } else {
        state.admit(crate::access::authorization(&headers), peer)?;
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        state.latest().note.clone(),
    )
        .into_response())
}

/// `tile_body` is tile `id`'s bytes, from the store: the one encoding of
/// tiles, for the tile API and the object-storage mirror. The caller
/// checks that the tree holds the tile at that width.
///
/// # Errors
///
/// [`AnswerError::Internal`] if the store cannot be read, or holds what
/// cannot be encoded.
pub fn tile_body(st: &LogState, id: TileId) -> Result<Vec<u8>, AnswerError> {
    match id.kind {
        TileKind::Hash { level } => hash_tile(level, id.index, id.width, &st.hashes())
            .map_err(|e| AnswerError::internal("hash tile", e)),
        TileKind::Entries => {
            let start = id.index * u64::from(TILE_WIDTH);
            let entries = st.store.read_entries(start, start + u64::from(id.width))?;
            encode_entry_bundle(entries.iter().map(|e| e.as_slice()))
                .map_err(|e| AnswerError::internal("entry bundle", e))
        }
    }
}

async fn tile(
    State(state): State<Arc<LogState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    peer: Option<Extension<crate::tls::Peer>>,
) -> Result<Response, AnswerError> {
    // A tile has one path; any other spelling of it names no resource.
    let id = TileId::parse(&path).map_err(|e| match e {
        TilePathError::Malformed(_) => AnswerError::bad("path", fields::clip(&e.to_string(), 200)),
        TilePathError::NonCanonical { .. } => {
            AnswerError::NotFound(fields::clip(&e.to_string(), 200))
        }
    })?;
    may_read_tiles(
        &state,
        &headers,
        peer.as_ref().map(|p| &p.0),
        matches!(id.kind, TileKind::Entries),
    )?;
    let size = state.latest().size;
    let available = TileId::in_tree(id.kind, id.index, size)
        .map(|t| t.width)
        .unwrap_or(0);
    if available < id.width || (id.is_full() && available != TILE_WIDTH) {
        return Err(AnswerError::PastEnd(format!(
            "{} is not in the tree of size {size}",
            id.path()
        )));
    }
    let st = state.clone();
    let body = answer::blocking(move || tile_body(&st, id)).await?;
    let cache = if id.is_full() {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=60"
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response())
}
