//! `custody-client`: what a reporter links to report custody events to a
//! Custody Ledger so that none is lost and none is logged twice.
//!
//! - [`Reporter`] builds events from typed values and signs them with the
//!   party's key, numbering them with the party's sequence numbers.
//! - [`Spool`] is a durable local queue: an event is written and fsync'd
//!   there before it is sent, and what the log answered for it (its index,
//!   or why it was refused) is recorded there after.
//! - [`Submitter`] sends what the spool holds over `AppendStream`, in
//!   order, reconnecting with back-off and jitter. A resubmission after a
//!   crash carries the same signed bytes, so the log answers it as a
//!   duplicate with the original index: each event is logged once.
//! - [`Submitter::keep_receipts`] is the optional receipts mode: it waits
//!   for signed checkpoints that cover the logged events and keeps each
//!   one's inclusion proof, checked, as a file `custody verify` takes.
//!
//! - [`append_indexes`] and [`append_all`] send events held in memory over
//!   one stream, with no spool: for set-up events, seeders and benchmarks;
//!   [`put_manifest`] uploads the members of a bulk event's manifest.
//!
//! The crate links no storage engine: a spool is two append-only files.

pub mod direct;
pub mod receipts;
pub mod reporter;
pub mod spool;
pub mod submit;

pub use direct::{append_all, append_indexes, put_manifest, DirectError};
pub use receipts::{receipt_path, Collected, ReceiptError};
pub use reporter::Reporter;
pub use spool::{Ack, Outcome, Spool, SpoolError, SpoolStatus, Spooled};
pub use submit::{is_final, RetryPolicy, SubmitError, Submitter};
