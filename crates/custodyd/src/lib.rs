//! `custodyd` is the Custody Ledger server: the write path, the checkpoint
//! publisher, the gRPC service and the C2SP tile API, over one RocksDB
//! store.
//!
//! The append path is split by stage, one module each:
//! 1. [`sequencer`]: decode, verify signatures (batched, on all cores),
//!    validate, sequence, commit one fsync'd `WriteBatch` with the tree's new
//!    hashes, and only then acknowledge.
//! 2. [`publisher`]: sign and store a checkpoint of the durable tree, and
//!    wake whoever waits for one.
//!
//! What a crash loses at each stage: a submission still queued or being
//! verified was never acknowledged and is simply gone (the client retries;
//! dedup makes that safe). Once `commit` returns the entries, their hashes
//! and their dedup records are durable together; the acknowledgement
//! follows. Checkpoints are signed only over durable trees, so a restart
//! finds the same tree and its next checkpoint extends every earlier one.

pub mod access;
pub mod answer;
pub mod backup;
pub mod config;
pub mod export;
pub mod export_http;
pub mod findings;
pub mod grpc;
pub mod grpc_query;
pub mod http;
pub mod init;
pub mod metrics;
pub mod mirror;
pub mod publisher;
pub mod query;
pub mod rate;
pub mod replica;
pub mod sequencer;
pub mod server;
pub mod state;
pub mod ui;
pub mod uploads;
pub mod witnessing;

pub use custody_net::{conn, tls};
pub use state::LogState;
