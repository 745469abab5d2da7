//! The C2SP `tlog-tiles` read API: `/checkpoint`, `/tile/<L>/<N>[.p/<W>]`
//! and `/tile/entries/<N>[.p/<W>]`. Everything served is bounded by the
//! latest published checkpoint.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use custody_log::{encode_entry_bundle, hash_tile, TileId, TileKind, TilePathError, TILE_WIDTH};

use crate::state::LogState;

/// `HttpError` is the one error type of the HTTP API; it turns into a
/// plain-text response.
#[derive(Debug)]
pub enum HttpError {
    /// The path is not a tile path.
    BadRequest(String),
    /// Not (yet) in the tree, or not the tile's canonical path.
    NotFound(String),
    /// A bug or storage failure.
    Internal(String),
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            HttpError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            HttpError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            HttpError::Internal(m) => {
                tracing::error!(error = %m, "http read failed");
                (StatusCode::INTERNAL_SERVER_ERROR, m)
            }
        };
        (code, format!("{msg}\n")).into_response()
    }
}

/// `router` serves the tile API from `state`.
pub fn router(state: Arc<LogState>) -> Router {
    Router::new()
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(tile))
        .merge(crate::ui::router(state.clone()))
        .merge(crate::export_http::router(state.clone()))
        .with_state(state)
}

async fn checkpoint(State(state): State<Arc<LogState>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        state.latest().note.clone(),
    )
        .into_response()
}

async fn tile(
    State(state): State<Arc<LogState>>,
    Path(path): Path<String>,
) -> Result<Response, HttpError> {
    // A tile has one path; any other spelling of it names no resource.
    let id = TileId::parse(&path).map_err(|e| match e {
        TilePathError::Malformed(_) => HttpError::BadRequest(e.to_string()),
        TilePathError::NonCanonical { .. } => HttpError::NotFound(e.to_string()),
    })?;
    let size = state.latest().size;
    let available = TileId::in_tree(id.kind, id.index, size)
        .map(|t| t.width)
        .unwrap_or(0);
    if available < id.width || (id.is_full() && available != TILE_WIDTH) {
        return Err(HttpError::NotFound(format!(
            "{} is not in the tree of size {size}",
            id.path()
        )));
    }
    let st = state.clone();
    let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, HttpError> {
        match id.kind {
            TileKind::Hash { level } => hash_tile(level, id.index, id.width, &st.hashes())
                .map_err(|e| HttpError::Internal(e.to_string())),
            TileKind::Entries => {
                let start = id.index * u64::from(TILE_WIDTH);
                let entries = st
                    .store
                    .read_entries(start, start + u64::from(id.width))
                    .map_err(|e| HttpError::Internal(e.to_string()))?;
                encode_entry_bundle(entries.iter().map(|e| e.as_slice()))
                    .map_err(|e| HttpError::Internal(e.to_string()))
            }
        }
    })
    .await
    .map_err(|e| HttpError::Internal(e.to_string()))??;
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
