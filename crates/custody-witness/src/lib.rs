//! `custody-witness` is a C2SP `tlog-witness` v1 witness and the client a
//! log uses to ask one for a cosignature.
//!
//! A witness knows a set of logs, each by its origin and key. For each it
//! remembers the latest checkpoint it cosigned ([`WitnessState`], one file
//! per log). [`Witness::add_checkpoint`] cosigns a new checkpoint only if
//! the log signed it and a consistency proof shows that it extends the
//! remembered one, so a log cannot show two witnesses' worth of clients two
//! different histories. [`router`] serves it as `POST /add-checkpoint`;
//! [`add_checkpoint`] is the log's side. Cosignatures are C2SP
//! `tlog-cosignature` v1 Ed25519, made and checked by `custody-log`.
//!
//! ```
//! use std::sync::Arc;
//! use custody_log::{CosignatureSigner, Hash, LogSigner, LogVerifier};
//! use custody_witness::{AddCheckpointRequest, Witness, WitnessState};
//!
//! let mut rng = rand_core::OsRng;
//! let dir = tempfile::tempdir().unwrap();
//! let (log, _) = LogSigner::generate("example.org/log", &mut rng).unwrap();
//! let (key, _) = CosignatureSigner::generate("example.org/witness", &mut rng).unwrap();
//! let logs = [LogVerifier::new(log.verifier_key()).unwrap()];
//! let witness = Witness::new(key, WitnessState::open(dir.path(), logs).unwrap());
//!
//! // The first checkpoint of a log the witness never saw: old size 0, no proof.
//! let note = log.sign(3, &Hash([9; 32])).unwrap();
//! let body = AddCheckpointRequest { old_size: 0, proof: vec![], note }.encode().unwrap();
//! let line = witness.add_checkpoint(&body).unwrap();
//! assert!(line.starts_with("— example.org/witness ".as_bytes()));
//! assert_eq!(witness.state().latest("example.org/log").unwrap().size, 3);
//!
//! // Asking again from size 0 is a conflict, which carries the witness's size.
//! assert_eq!(witness.add_checkpoint(&body).unwrap_err().status(), 409);
//! ```

mod client;
mod http;
mod state;
mod witness;

pub use client::{add_checkpoint, witness_key_for, ClientError, MAX_RESPONSE_BYTES};
pub use http::{router, SIZE_CONTENT_TYPE};
pub use state::{Recorded, StateError, WitnessState};
pub use witness::{AddCheckpointRequest, AddError, Witness, MAX_PROOF_LINES, MAX_REQUEST_BYTES};
