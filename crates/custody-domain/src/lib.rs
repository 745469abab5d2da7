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
pub mod keyfile;
mod refusal;
mod registry;
mod verify;

pub use envelope::{
    key_id_of, pae, EventSignature, KeyId, SignedEnvelope, MAX_SIGNATURES, PAYLOAD_TYPE,
};
pub use custody::{hex, plan, AssetMeta, CustodyView, Effects, Interval, Overlay, Transfer};
pub use event::{
    is_valid_id, is_valid_uuid, AssetRef, CaptureContext, CustodyAction, CustodyActionKind,
    CustodyAttestation, DeleteMethod, Digest, Event, EventBody, GrantIssued, GrantRevoked,
    KeyAdded, KeyRevoked, LegalHold, MaintenanceSession, ManifestRef, Modality, Outcome, Parent,
    PartyKind, PartyRegistered, Purpose, Relationship, RetentionAuthority, RetentionClock,
    RetentionRule, SubjectClass, SystemRegistered, Timestamp, EMPTY_MANIFEST_ROOT, MAX_MANIFEST_MEMBERS,
    MAX_PARENTS,
};
pub use refusal::{Refusal, RefusalKind};
pub use registry::{
    Genesis, GrantRecord, HoldRecord, KeyRecord, PartyRecord, Registry, RuleRecord, SystemRecord,
};
pub use verify::{verify_signatures, SignatureCheck};

/// `MAX_ENTRY_BYTES` is the largest log entry: C2SP entry bundles prefix
/// entries with a uint16 length.
pub const MAX_ENTRY_BYTES: usize = 65_535;
