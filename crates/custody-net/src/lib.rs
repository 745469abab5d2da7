//! `custody-net`: what every listener of Custody Ledger shares, the log's
//! (`custodyd`) and a witness's (`custody witness serve`) alike.
//!
//! - [`conn`]: connection caps in all and per address, idle timeouts, and
//!   HTTP/1 served with a header read deadline.
//! - [`tls`]: TLS through rustls with optional client certificates, the
//!   peer a request came from, and a local CA for trials.

pub mod conn;
pub mod tls;
