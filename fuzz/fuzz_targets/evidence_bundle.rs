//! Arbitrary bytes as the evidence custody-evidence verifies offline,
//! against the fixture's pinned log key:
//!
//! - an evidence bundle: `Bundle::parse`, and the whole `verify_bundle`
//!   (what `custody verify-bundle`, the audit and the web view run);
//! - the `Evidence` message that comes with every query answer
//!   (`custody_evidence::verify`);
//! - a C2SP tlog-proof (`TlogProof::parse`), which must re-encode to a
//!   proof that parses to itself;
//! - a log entry as a history row (`HistoryEvent::from_entry`).
//!
//! The seed corpus holds a real bundle and evidence of the fixture log
//! (signed with the pinned key), so mutations reach past the checkpoint.
#![no_main]

use custody_evidence::{looks_like_bundle, verify, verify_bundle, Bundle, HistoryEvent, TlogProof};
use custody_fuzz::fixture;
use custody_proto::v1;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let _ = looks_like_bundle(data);
    if let Ok((bundle, _digest)) = Bundle::parse(data) {
        let _ = bundle.to_bytes();
    }
    if let Ok(v) = verify_bundle(data, &fx.verifier) {
        // A verified bundle is its own canonical form.
        assert_eq!(v.bundle.to_bytes().ok().as_deref(), Some(data));
    }
    if let Ok(ev) = v1::Evidence::decode(data) {
        let _ = verify(&ev, &fx.verifier);
    }
    if let Ok(p) = TlogProof::parse(data) {
        assert_eq!(TlogProof::parse(&p.encode()), Ok(p));
    }
    let _ = HistoryEvent::from_entry(0, data);
});
