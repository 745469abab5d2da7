//! Arbitrary bytes as a C2SP signed checkpoint note, verified with
//! custody-log's `LogVerifier` against the fixture's pinned log key (what
//! `custody verify`, the audit and every evidence check do with a note
//! from the server), and as a checkpoint body (`tlog_tiles::Checkpoint`,
//! which the verifier parses the note's text with).
//!
//! Random bytes never carry a valid signature, so the input is also
//! signed here, as a note body, with the pinned key: the verifier then
//! gets past the signature to the body. It must accept exactly the bodies
//! that are checkpoints of the pinned origin, and return what they say.
//!
//! As text, the input is also a verifier key string (`LogVerifier::new`)
//! and a private key string (`LogSigner::from_key_string`).
#![no_main]

use custody_fuzz::{fixture, ORIGIN};
use custody_log::{CheckpointError, LogSigner, LogVerifier};
use libfuzzer_sys::fuzz_target;
use signed_note::{Note, StandardSigner};
use tlog_tiles::Checkpoint;

fuzz_target!(|data: &[u8]| {
    let fx = fixture();

    if let Ok(cp) = fx.verifier.verify(data) {
        assert_eq!(cp.origin, ORIGIN);
        assert_eq!(cp.note, data);
    }
    let _ = custody_evidence::verify_checkpoint(data, &fx.verifier);
    let body = Checkpoint::from_bytes(data);

    if let Ok(mut note) = Note::new(data, &[]) {
        let signer = signer(&fx.signer_key);
        if note.add_sigs(&[signer]).is_ok() {
            let signed = note.to_bytes();
            match (fx.verifier.verify(&signed), &body) {
                (Ok(v), Ok(cp)) => {
                    assert_eq!(v.origin, cp.origin());
                    assert_eq!(v.size, cp.size());
                    assert_eq!(v.root, *cp.hash());
                    assert_eq!(v.note, signed);
                }
                (Ok(v), Err(_)) => panic!("a note whose text is no checkpoint verified: {v:?}"),
                (Err(CheckpointError::WrongOrigin { .. }), Ok(cp)) => {
                    assert_ne!(cp.origin(), ORIGIN);
                }
                (Err(e), Ok(cp)) if cp.origin() == ORIGIN => {
                    panic!("a checkpoint signed by the pinned key was refused: {e}")
                }
                (Err(_), _) => {}
            }
        }
    }

    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(v) = LogVerifier::new(text) {
            let _ = v.origin();
            let _ = v.verify(&fx.note);
        }
        if let Ok(s) = LogSigner::from_key_string(text) {
            let _ = s.origin();
            let _ = LogVerifier::new(s.verifier_key());
        }
    }
});

/// `signer` is the pinned log key as a note signer, made once.
fn signer(skey: &str) -> &'static StandardSigner {
    static S: std::sync::OnceLock<StandardSigner> = std::sync::OnceLock::new();
    S.get_or_init(|| match StandardSigner::new(skey) {
        Ok(s) => s,
        Err(e) => panic!("fixture log key: {e}"),
    })
}
