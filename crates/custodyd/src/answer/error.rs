//! `AnswerError`, the one error type of every read answer, and its two
//! mappings: to a gRPC status ([`From<AnswerError> for Status`]) and to an
//! HTTP status code ([`AnswerError::http_status`]). The tile API, the
//! evidence downloads and the web view render its message as text or as
//! an HTML page; none chooses its own code.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use custody_store::StoreError;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt as _};

/// `AnswerError` is why a read could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// The question is malformed; `field` names the part to fix (a
    /// request field, query parameter or path part), `message` how.
    BadRequest {
        /// The field at fault.
        field: String,
        /// What is wrong with it, in words a person can act on.
        message: String,
    },
    /// The request carries no credentials the server accepts.
    Unauthenticated(String),
    /// The caller's role does not allow this (DESIGN §8).
    PermissionDenied(String),
    /// The asset, party, system, checkpoint, manifest or finding named
    /// is not in the log.
    NotFound(String),
    /// Past the end of the log's latest checkpoint (an entry, proof or
    /// tile it does not cover yet).
    PastEnd(String),
    /// Not answerable yet (still being indexed, shutting down); retry.
    Unavailable(String),
    /// Not answerable by this server as it is (a write sent to a read
    /// replica); the message says where to go instead.
    WrongServer(String),
    /// The answer would be too large for one response; narrow it.
    TooLarge(String),
    /// The caller is over a quota or rate (uploads, requests); the message
    /// says which and when to retry.
    Exhausted(String),
    /// Storage failed or a task died. The detail is logged where the error
    /// is made ([`AnswerError::internal`]); callers see only its context.
    Internal(String),
}

/// `INTERNAL_MESSAGE` is what a caller is told of an internal error: the
/// detail (paths, storage messages) stays in the server's log.
const INTERNAL_MESSAGE: &str = "the server could not read the log; the error is in its log";

impl AnswerError {
    /// `bad` is a [`AnswerError::BadRequest`] about `field`.
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        AnswerError::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    /// `internal` logs `e` with its `context` and is an
    /// [`AnswerError::Internal`] naming the context only.
    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "{context}");
        AnswerError::Internal(context.to_owned())
    }

    /// `message` is what the caller is told: a bad request's field, then
    /// what is wrong with it.
    pub fn message(&self) -> String {
        match self {
            AnswerError::BadRequest { field, message } => field_message(field, message),
            AnswerError::Unauthenticated(m)
            | AnswerError::PermissionDenied(m)
            | AnswerError::NotFound(m)
            | AnswerError::PastEnd(m)
            | AnswerError::Unavailable(m)
            | AnswerError::WrongServer(m)
            | AnswerError::TooLarge(m)
            | AnswerError::Exhausted(m) => m.clone(),
            AnswerError::Internal(context) => format!("{context}: {INTERNAL_MESSAGE}"),
        }
    }

    /// `http_status` is the one mapping to HTTP status codes.
    pub fn http_status(&self) -> StatusCode {
        match self {
            AnswerError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AnswerError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AnswerError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            AnswerError::NotFound(_) | AnswerError::PastEnd(_) => StatusCode::NOT_FOUND,
            AnswerError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AnswerError::WrongServer(_) => StatusCode::CONFLICT,
            AnswerError::TooLarge(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AnswerError::Exhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            AnswerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// `field_message` is `message` prefixed with `field`, unless it already
/// names it.
fn field_message(field: &str, message: &str) -> String {
    if message.starts_with(field) {
        message.to_owned()
    } else {
        format!("{field}: {message}")
    }
}

impl std::fmt::Display for AnswerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for AnswerError {}

impl From<StoreError> for AnswerError {
    fn from(e: StoreError) -> Self {
        AnswerError::internal("storage", e)
    }
}

/// `bad_request_status` is `INVALID_ARGUMENT` with `field` as a
/// `google.rpc.BadRequest` field violation, so a client can point at the
/// field without parsing text. Domain refusals (`grpc::status_of`) and
/// answers both make theirs here.
pub fn bad_request_status(field: &str, message: &str) -> Status {
    let message = &status_message(message);
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation(field, message);
    Status::with_error_details(
        tonic::Code::InvalidArgument,
        field_message(field, message),
        details,
    )
}

/// The longest message a gRPC status carries, in characters: it travels
/// in an HTTP/2 header, and a longer one tears the connection down.
pub const MAX_STATUS_MESSAGE: usize = 1024;

/// `status_message` is `message` as a gRPC status carries it: clipped to
/// [`MAX_STATUS_MESSAGE`], whatever made it. (Messages repeat a caller's
/// text only through [`custody_domain::quoted`]; this is the backstop.)
pub fn status_message(message: &str) -> String {
    custody_domain::clip(message, MAX_STATUS_MESSAGE)
}

impl From<AnswerError> for Status {
    /// The one mapping to gRPC status codes.
    fn from(e: AnswerError) -> Self {
        let message = status_message(&e.message());
        match e {
            AnswerError::BadRequest { field, message } => bad_request_status(&field, &message),
            AnswerError::Unauthenticated(_) => Status::unauthenticated(message),
            AnswerError::PermissionDenied(_) => Status::permission_denied(message),
            AnswerError::NotFound(_) => Status::not_found(message),
            AnswerError::PastEnd(_) => Status::out_of_range(message),
            AnswerError::Unavailable(_) => Status::unavailable(message),
            AnswerError::WrongServer(_) => Status::failed_precondition(message),
            AnswerError::TooLarge(_) | AnswerError::Exhausted(_) => {
                Status::resource_exhausted(message)
            }
            AnswerError::Internal(_) => Status::internal(message),
        }
    }
}

impl IntoResponse for AnswerError {
    /// A plain-text answer with [`AnswerError::http_status`], for the tile
    /// API and the evidence downloads (the web view draws its own page).
    fn into_response(self) -> Response {
        (
            self.http_status(),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message()),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind maps to one gRPC code and one HTTP code, and the two
    /// transports carry the same message.
    #[test]
    fn each_kind_maps_once_to_each_transport() {
        let cases = [
            (
                AnswerError::bad("asset", "want 32 bytes"),
                tonic::Code::InvalidArgument,
                StatusCode::BAD_REQUEST,
            ),
            (
                AnswerError::Unauthenticated("this server needs a token".into()),
                tonic::Code::Unauthenticated,
                StatusCode::UNAUTHORIZED,
            ),
            (
                AnswerError::PermissionDenied("this needs the auditor role".into()),
                tonic::Code::PermissionDenied,
                StatusCode::FORBIDDEN,
            ),
            (
                AnswerError::NotFound("system s is not registered".into()),
                tonic::Code::NotFound,
                StatusCode::NOT_FOUND,
            ),
            (
                AnswerError::PastEnd("index 9 is not in the tree of size 3".into()),
                tonic::Code::OutOfRange,
                StatusCode::NOT_FOUND,
            ),
            (
                AnswerError::Unavailable("indexing".into()),
                tonic::Code::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                AnswerError::WrongServer("a read replica".into()),
                tonic::Code::FailedPrecondition,
                StatusCode::CONFLICT,
            ),
            (
                AnswerError::TooLarge("narrow it".into()),
                tonic::Code::ResourceExhausted,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                AnswerError::Internal("read entry".into()),
                tonic::Code::Internal,
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (e, grpc, http) in cases {
            assert_eq!(e.http_status(), http, "{e:?}");
            let s = Status::from(e.clone());
            assert_eq!(s.code(), grpc, "{e:?}");
            assert_eq!(s.message(), e.message());
        }
    }

    /// A bad request names its field in the message and as a field
    /// violation, once.
    #[test]
    fn bad_requests_carry_their_field() {
        let s = Status::from(AnswerError::bad("page_size", "at most 1000, got 5000"));
        assert_eq!(s.message(), "page_size: at most 1000, got 5000");
        let v = s.get_details_bad_request().expect("field violation");
        assert_eq!(v.field_violations[0].field, "page_size");
        let s = Status::from(AnswerError::bad(
            "to",
            "to: the window ends before it starts",
        ));
        assert_eq!(s.message(), "to: the window ends before it starts");
    }

    /// What a storage failure says stays in the server's log.
    #[test]
    fn internal_errors_keep_their_detail_out_of_answers() {
        let e = AnswerError::internal("read entry", "/var/lib/custody/db/000123.sst: EIO");
        assert!(!e.message().contains("sst"), "{}", e.message());
        assert!(!Status::from(e).message().contains("/var/lib"));
    }
}
