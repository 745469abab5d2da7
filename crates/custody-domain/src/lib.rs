//! `custody-domain` is the Custody Ledger's domain model with no I/O:
//! events, their canonical signing bytes, the registry of who may sign, and
//! the validation rules that decide what the log accepts.
//!
//! It knows nothing of protobuf field numbers, gRPC or storage: the proto
//! crate converts wire types into these types at the edge.
//!
//! ```
//! use custody_domain::{pae, PAYLOAD_TYPE};
//! let bytes = pae(PAYLOAD_TYPE, b"body");
//! assert!(bytes.starts_with(b"DSSEv1 "));
//! ```

mod custody;
mod envelope;
mod event;
pub mod findings;
pub mod keyfile;
mod refusal;
mod registry;
pub mod replay;
mod verify;

pub use custody::{hex, plan, AssetMeta, CustodyView, Effects, Interval, Overlay, Transfer};
pub use envelope::{
    key_id_of, pae, EventSignature, KeyId, SignedEnvelope, MAX_SIGNATURES, PAYLOAD_TYPE,
};
pub use event::{
    is_strong_key, is_valid_id, is_valid_uuid, AssetRef, CaptureContext, CustodyAction,
    CustodyActionKind, CustodyAttestation, DeleteMethod, Digest, Event, EventBody, GrantIssued,
    GrantRevoked, KeyAdded, KeyRevoked, LegalHold, MaintenanceSession, ManifestRef, Modality,
    Outcome, Parent, PartyKind, PartyRegistered, Purpose, Relationship, RetentionAuthority,
    RetentionClock, RetentionRule, SubjectClass, SystemRegistered, Timestamp, EMPTY_MANIFEST_ROOT,
    MAX_MANIFEST_MEMBERS, MAX_PARENTS,
};
pub use refusal::{Refusal, RefusalKind};
pub use registry::{
    Attribution, Genesis, GrantRecord, HoldRecord, KeyRecord, PartyRecord, Registry, RuleRecord,
    SystemRecord,
};
pub use verify::{verify_signatures, verify_signatures_by_key, SignatureCheck};

/// `MAX_ENTRY_BYTES` is the largest log entry: C2SP entry bundles prefix
/// entries with a uint16 length.
pub const MAX_ENTRY_BYTES: usize = 65_535;

/// `rfc3339` formats a Unix-nanosecond time as RFC 3339 in UTC, with
/// fractional seconds only when they are not zero.
pub fn rfc3339(t: Timestamp) -> String {
    let st = if t >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(t as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_nanos(t.unsigned_abs())
    };
    if t % 1_000_000_000 == 0 {
        humantime::format_rfc3339_seconds(st).to_string()
    } else {
        humantime::format_rfc3339_nanos(st).to_string()
    }
}

/// `parse_rfc3339` parses an RFC 3339 time in UTC (`Z`) to Unix
/// nanoseconds.
///
/// # Errors
///
/// A message naming the input if it is not RFC 3339 or is out of range.
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, String> {
    let st = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-11-26T15:04:05Z: {e}"))?;
    let d = st
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?;
    i64::try_from(d.as_nanos()).map_err(|_| format!("{s:?} is too far in the future"))
}
