//! Why the log refuses an event.

/// `RefusalKind` is the class of a refusal; the server maps each to one gRPC
/// status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// Malformed, oversized, or otherwise not a valid event.
    InvalidArgument,
    /// Signed by a key that may not sign this event.
    PermissionDenied,
    /// Well formed, but the registry or log state does not allow it.
    FailedPrecondition,
    /// The event id is already logged with other bytes.
    AlreadyExists,
    /// The server is at capacity; try again later.
    ResourceExhausted,
}

/// `Refusal` is a refusal with a message a person can act on. Messages are
/// lower-case fragments with no final period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// The class of refusal.
    pub kind: RefusalKind,
    /// What is wrong, and where.
    pub message: String,
    /// The request field at fault, for `InvalidArgument`, if known.
    pub field: Option<&'static str>,
}

impl Refusal {
    /// `invalid` is an `InvalidArgument` refusal about `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::InvalidArgument,
            message: message.into(),
            field: Some(field),
        }
    }

    /// `denied` is a `PermissionDenied` refusal.
    pub fn denied(message: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::PermissionDenied,
            message: message.into(),
            field: None,
        }
    }

    /// `precondition` is a `FailedPrecondition` refusal.
    pub fn precondition(message: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::FailedPrecondition,
            message: message.into(),
            field: None,
        }
    }

    /// `exists` is an `AlreadyExists` refusal.
    pub fn exists(message: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::AlreadyExists,
            message: message.into(),
            field: None,
        }
    }

    /// `exhausted` is a `ResourceExhausted` refusal.
    pub fn exhausted(message: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::ResourceExhausted,
            message: message.into(),
            field: None,
        }
    }
}
