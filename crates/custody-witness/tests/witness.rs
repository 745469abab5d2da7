//! The witness's add-checkpoint rules and state against real trees.

mod common;

use common::{body, files, open, status, witness_key, TestLog, ORIGIN};
use custody_log::{add_cosignatures, verify_witnessed, CosignatureVerifier, Hash};
use custody_witness::{witness_key_for, AddError, StateError, WitnessState};

#[test]
fn cosignature_verifies_and_state_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let skey = witness_key();
    let mut log = TestLog::new(ORIGIN);
    log.grow(5);
    let w = open(dir.path(), &skey, &[&log]);
    let wv = CosignatureVerifier::new(w.verifier_key()).unwrap();
    assert_eq!(w.verifier_key(), witness_key_for(&skey).unwrap());
    assert_eq!(w.state().latest(ORIGIN), None);

    let line = w.add_checkpoint(&log.request(0, 5)).unwrap();
    let cosigned = add_cosignatures(&log.note(5), &line).unwrap();
    let ok = verify_witnessed(&cosigned, &log.verifier(), std::slice::from_ref(&wv), 1).unwrap();
    assert_eq!(ok.checkpoint.size, 5);
    assert_eq!(ok.witnesses[0].name, "example.org/witness");
    assert!(ok.witnesses[0].time > 1_700_000_000);

    log.grow(300);
    w.add_checkpoint(&log.request(5, 305)).unwrap();
    let recorded = w.state().latest(ORIGIN).unwrap();
    assert_eq!((recorded.size, recorded.root), (305, log.root(305)));
    // The record is the cosigned note itself.
    assert!(verify_witnessed(
        &recorded.note,
        &log.verifier(),
        std::slice::from_ref(&wv),
        1
    )
    .is_ok());
    assert_eq!(files(dir.path()).len(), 1, "no temporary file is left");
    drop(w);

    let w = open(dir.path(), &skey, &[&log]);
    assert_eq!(w.state().latest(ORIGIN), Some(recorded));
    assert!(matches!(
        w.add_checkpoint(&log.request(0, 305)),
        Err(AddError::Conflict(305))
    ));
    log.grow(1);
    w.add_checkpoint(&log.request(305, 306)).unwrap();
    // The same checkpoint again is cosigned again.
    w.add_checkpoint(&log.request(306, 306)).unwrap();
}

#[test]
fn conflict_carries_the_witness_size_and_a_retry_from_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN);
    log.grow(8);
    let w = open(dir.path(), &witness_key(), &[&log]);
    w.add_checkpoint(&log.request(0, 5)).unwrap();

    let e = w.add_checkpoint(&log.request(3, 8)).unwrap_err();
    assert!(matches!(e, AddError::Conflict(5)), "{e}");
    assert_eq!(e.status(), 409);
    let e = w.add_checkpoint(&log.request(0, 8)).unwrap_err();
    assert!(matches!(e, AddError::Conflict(5)), "{e}");
    w.add_checkpoint(&log.request(5, 8)).unwrap();
    assert_eq!(w.state().latest(ORIGIN).unwrap().size, 8);
}

#[test]
fn an_inconsistent_proof_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN);
    log.grow(20);
    let w = open(dir.path(), &witness_key(), &[&log]);
    w.add_checkpoint(&log.request(0, 7)).unwrap();
    let before = (w.state().latest(ORIGIN), files(dir.path()));

    let mut proof = log.proof(7, 20);
    proof[0].0[0] ^= 1;
    let bad = [
        body(7, proof, log.note(20)),
        body(7, vec![], log.note(20)),
        body(7, log.proof(6, 20), log.note(20)),
        body(7, log.proof(7, 19), log.note(20)),
        body(
            7,
            [log.proof(7, 20), vec![Hash([0; 32])]].concat(),
            log.note(20),
        ),
    ];
    for b in bad {
        let e = w.add_checkpoint(&b).unwrap_err();
        assert!(matches!(e, AddError::Inconsistent(_)), "{e}");
        assert_eq!(e.status(), 422);
    }
    assert_eq!((w.state().latest(ORIGIN), files(dir.path())), before);
    w.add_checkpoint(&log.request(7, 20)).unwrap();
}

#[test]
fn a_split_view_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN);
    log.grow(10);
    let mut fork = log.fork(1);
    fork.grow(12);
    let w = open(dir.path(), &witness_key(), &[&log]);
    w.add_checkpoint(&log.request(0, 10)).unwrap();
    let before = (w.state().latest(ORIGIN), files(dir.path()));

    // Same size, another root, both signed by the log.
    let e = w.add_checkpoint(&fork.request(10, 10)).unwrap_err();
    assert!(
        matches!(&e, AddError::Inconsistent(why) if why.contains("split view")),
        "{e}"
    );
    assert_eq!(e.status(), 422);
    // A larger tree that does not extend the first, with its own proof
    // from size 10 (which proves it extends *its* size-10 tree).
    let e = w.add_checkpoint(&fork.request(10, 12)).unwrap_err();
    assert_eq!(e.status(), 422, "{e}");
    assert_eq!((w.state().latest(ORIGIN), files(dir.path())), before);

    // A second witness that saw the fork first refuses the original.
    let dir2 = tempfile::tempdir().unwrap();
    let w2 = open(dir2.path(), &witness_key(), &[&log]);
    w2.add_checkpoint(&fork.request(0, 12)).unwrap();
    log.grow(2);
    assert_eq!(status(w2.add_checkpoint(&log.request(12, 12))), 422);
}

#[test]
fn a_bad_log_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN);
    log.grow(4);
    let w = open(dir.path(), &witness_key(), &[&log]);

    // Another key with the same origin.
    let mut impostor = TestLog::new(ORIGIN);
    impostor.grow(4);
    let e = w.add_checkpoint(&impostor.request(0, 4)).unwrap_err();
    assert!(matches!(e, AddError::Unverified(_)), "{e}");
    assert_eq!(e.status(), 403);

    // The log's key name and ID, but a signature that does not verify,
    // beside a good one (malformed per signed-note).
    let good = log.note(4);
    let text = custody_log::note_text(&good).unwrap();
    let own = &good[text.len() + 1..];
    let bad_line = {
        let other = impostor.note(4);
        // Keep our key ID (the first 6 base64 characters hold its 4 bytes),
        // swap in the impostor's signature bytes.
        let keep = "— ".len() + ORIGIN.len() + 1 + 6;
        [&own[..keep], &other[text.len() + 1 + keep..]].concat()
    };
    // signed-note readers check the first line of a key (and skip its
    // repeats), so the bad line goes first.
    let two = [&text[..], b"\n", &bad_line, own].concat();
    assert_eq!(status(w.add_checkpoint(&body(0, vec![], two))), 403);

    // A body changed after signing.
    let changed = String::from_utf8(good)
        .unwrap()
        .replacen("\n4\n", "\n3\n", 1);
    assert_eq!(
        status(w.add_checkpoint(&body(0, vec![], changed.into()))),
        403
    );
    assert_eq!(w.state().latest(ORIGIN), None);
    assert!(files(dir.path()).is_empty());
}

#[test]
fn the_other_refusals_have_the_spec_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN);
    log.grow(10);
    let w = open(dir.path(), &witness_key(), &[&log]);

    let mut stranger = TestLog::new("example.org/stranger");
    stranger.grow(1);
    let e = w.add_checkpoint(&stranger.request(0, 1)).unwrap_err();
    assert!(matches!(e, AddError::UnknownLog(_)), "{e}");
    assert_eq!(e.status(), 404);

    // A first checkpoint needs an empty proof.
    assert_eq!(
        status(w.add_checkpoint(&body(0, log.proof(1, 10), log.note(10)))),
        422
    );
    // Old size beyond the checkpoint: 400, before the old size is compared.
    let e = w
        .add_checkpoint(&body(11, vec![], log.note(10)))
        .unwrap_err();
    assert!(
        matches!(e, AddError::OldAfterNew { old: 11, size: 10 }),
        "{e}"
    );
    assert_eq!(e.status(), 400);
    // Not a note.
    assert_eq!(
        status(w.add_checkpoint(b"old 0\n\nexample.org/custody-log\n")),
        400
    );
    assert_eq!(status(w.add_checkpoint(b"old 0\n\n\n")), 400);

    // A smaller checkpoint than the recorded one.
    w.add_checkpoint(&log.request(0, 10)).unwrap();
    assert_eq!(
        status(w.add_checkpoint(&body(10, vec![], log.note(9)))),
        400
    );
    assert_eq!(status(w.add_checkpoint(&log.request(9, 9))), 409);
    assert_eq!(w.state().latest(ORIGIN).unwrap().size, 10);
}

#[test]
fn size_zero_needs_the_empty_tree_root() {
    let dir = tempfile::tempdir().unwrap();
    let log = TestLog::new(ORIGIN);
    let w = open(dir.path(), &witness_key(), &[&log]);
    let empty = Hash([
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9,
        0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52,
        0xb8, 0x55,
    ]);
    let zero = |root: &Hash| body(0, vec![], log.signer.sign(0, root).unwrap());
    assert_eq!(status(w.add_checkpoint(&zero(&Hash([0; 32])))), 422);
    assert_eq!(status(w.add_checkpoint(&zero(&empty))), 200);
    assert_eq!(w.state().latest(ORIGIN).unwrap().size, 0);
}

#[test]
fn concurrent_requests_for_one_log_are_serialised() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN);
    log.grow(16);
    let w = open(dir.path(), &witness_key(), &[&log]);
    // Sixteen first checkpoints at once, all from size 0: one wins, the
    // rest learn its size.
    let bodies: Vec<_> = (1..=16).map(|n| log.request(0, n)).collect();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|b| s.spawn(|| w.add_checkpoint(b)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won = w.state().latest(ORIGIN).unwrap().size;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, AddError::Conflict(s) if *s == won), "{e}");
        }
    }
    let reopened = WitnessState::open(dir.path(), [log.verifier()]).unwrap();
    assert_eq!(reopened.latest(ORIGIN).unwrap().size, won);
}

#[test]
fn the_state_directory_is_checked_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN);
    log.grow(3);
    let other = TestLog::new("example.org/other");
    let w = open(dir.path(), &witness_key(), &[&log, &other]);
    w.add_checkpoint(&log.request(0, 3)).unwrap();
    drop(w);

    // Files of logs no longer configured are left alone.
    std::fs::write(dir.path().join("unrelated"), b"x").unwrap();
    assert!(WitnessState::open(dir.path(), [other.verifier()]).is_ok());
    assert!(matches!(
        WitnessState::open(dir.path(), [log.verifier(), log.verifier()]),
        Err(StateError::DuplicateLog(_))
    ));

    let (name, note) = files(dir.path())
        .into_iter()
        .find(|(n, _)| n != "unrelated")
        .unwrap();
    std::fs::write(dir.path().join(&name), &note[..note.len() / 2]).unwrap();
    let e = WitnessState::open(dir.path(), [log.verifier()]).unwrap_err();
    assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains(ORIGIN), "{e}");
}
