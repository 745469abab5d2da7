//! The witness's HTTP interface: `POST /add-checkpoint`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::witness::{AddError, Witness, MAX_REQUEST_BYTES};

/// `SIZE_CONTENT_TYPE` is the content type of a 409 response's body, the
/// witness's latest cosigned size (C2SP `tlog-witness`).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// `router` serves `POST /add-checkpoint` for `witness`; mount it at the
/// witness's submission prefix. Bodies larger than
/// [`MAX_REQUEST_BYTES`] are refused with 413 before they are read whole.
/// Each request runs on tokio's blocking pool, since it ends in an fsync.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(witness)
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    let result = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body)).await;
    match result {
        Ok(Ok(lines)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            lines,
        )
            .into_response(),
        Ok(Err(AddError::Conflict(size))) => (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
            format!("{size}\n"),
        )
            .into_response(),
        Ok(Err(e)) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, format!("{e}\n")).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("add-checkpoint did not finish: {e}\n"),
        )
            .into_response(),
    }
}
