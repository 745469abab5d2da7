//! Bundles of a small, real log built here: they verify, their canonical
//! form is their only accepted form, and every single-byte change fails
//! with a message naming the part that was changed.

use custody_domain::{hex, SignedEnvelope};
use custody_log::{
    append_leaves, leaf_hash, prove_inclusion, tree_root, Hash, LogSigner, LogVerifier,
    MemoryHashes,
};
use custody_proto::{envelope_to_proto, v1};
use ed25519_dalek::SigningKey;
use prost::Message as _;

use crate::rows::{ClassCount, HistoryEvent, IntervalRow};
use crate::{verify_bundle, Answer, Bundle, EvidenceError, Holder, Question};

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_795_694_400 * SEC;
const ORIGIN: &str = "test.example/custody";

/// `Log` is a small log: entry bytes, their tree, a signed checkpoint.
struct Log {
    entries: Vec<Vec<u8>>,
    hashes: MemoryHashes,
    note: Vec<u8>,
    verifier: LogVerifier,
    manifest: Vec<[u8; 32]>,
    manifest_root: [u8; 32],
}

fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn custody(f: impl FnOnce(&mut v1::CustodyAction)) -> v1::event::Body {
    let mut a = v1::CustodyAction::default();
    f(&mut a);
    v1::event::Body::Custody(a)
}

fn tree(leaves: &[Hash]) -> MemoryHashes {
    let mut m = MemoryHashes::default();
    let new = append_leaves(0, leaves, &m).unwrap();
    m.insert_all(new);
    m
}

const A: [u8; 32] = [0xaa; 32];

/// `log` builds: 0 genesis; 1 cam-sys registered; 2 cam's key; 3 vendor-sys
/// registered; 4 vendor's key; 5 CAPTURE of A on cam-sys; 6 bulk CAPTURE of
/// B, C, D; 7 bulk COPY of them to vendor-sys; 8 COPY of A to vendor-sys;
/// 9 DELETE of A there; 10 a RECEIPT of 7 by vendor.
fn log() -> Log {
    let owner = SigningKey::from_bytes(&[1; 32]);
    let cam = SigningKey::from_bytes(&[2; 32]);
    let vendor = SigningKey::from_bytes(&[3; 32]);
    let mut manifest = vec![[0x01; 32], [0x02; 32], [0x03; 32]];
    manifest.sort_unstable();
    let manifest_root = tree_root(
        3,
        &tree(&manifest.iter().map(|d| leaf_hash(d)).collect::<Vec<_>>()),
    )
    .unwrap()
    .0;
    let m = v1::Manifest {
        root: manifest_root.to_vec(),
        count: 3,
    };
    let mut entries = vec![v1::LogEntry {
        content: Some(v1::log_entry::Content::Genesis(v1::Genesis {
            origin: ORIGIN.into(),
            owner_party_id: "owner".into(),
            owner_public_key: owner.verifying_key().to_bytes().to_vec(),
        })),
        integrated_time_unix_nanos: T0 - 100 * SEC,
    }
    .encode_to_vec()];
    let events: Vec<(&str, &SigningKey, v1::event::Body, i64)> = vec![
        (
            "owner",
            &owner,
            v1::event::Body::SystemRegistered(v1::SystemRegistered {
                system_id: "cam-sys".into(),
                owner_party: "cam".into(),
                ..Default::default()
            }),
            T0 - 90 * SEC,
        ),
        (
            "owner",
            &owner,
            v1::event::Body::KeyAdded(v1::KeyAdded {
                party_id: "cam".into(),
                public_key: cam.verifying_key().to_bytes().to_vec(),
                ..Default::default()
            }),
            T0 - 80 * SEC,
        ),
        (
            "owner",
            &owner,
            v1::event::Body::SystemRegistered(v1::SystemRegistered {
                system_id: "vendor-sys".into(),
                owner_party: "vendor".into(),
                ..Default::default()
            }),
            T0 - 70 * SEC,
        ),
        (
            "owner",
            &owner,
            v1::event::Body::KeyAdded(v1::KeyAdded {
                party_id: "vendor".into(),
                public_key: vendor.verifying_key().to_bytes().to_vec(),
                ..Default::default()
            }),
            T0 - 60 * SEC,
        ),
        (
            "cam",
            &cam,
            custody(|x| {
                x.action = v1::CustodyActionKind::Capture as i32;
                x.actor = "cam".into();
                x.asset_digest = A.to_vec();
                x.to_system = "cam-sys".into();
                x.modality = v1::Modality::FaceImage as i32;
                x.subject_class = v1::SubjectClass::Citizen as i32;
            }),
            T0,
        ),
        (
            "cam",
            &cam,
            custody(|x| {
                x.action = v1::CustodyActionKind::Capture as i32;
                x.actor = "cam".into();
                x.manifest = Some(m.clone());
                x.to_system = "cam-sys".into();
                x.modality = v1::Modality::PlateImage as i32;
                x.subject_class = v1::SubjectClass::Unknown as i32;
            }),
            T0 + SEC,
        ),
        (
            "vendor",
            &vendor,
            custody(|x| {
                x.action = v1::CustodyActionKind::Copy as i32;
                x.actor = "vendor".into();
                x.manifest = Some(m.clone());
                x.from_system = "cam-sys".into();
                x.to_system = "vendor-sys".into();
            }),
            T0 + 2 * SEC,
        ),
        (
            "vendor",
            &vendor,
            custody(|x| {
                x.action = v1::CustodyActionKind::Copy as i32;
                x.actor = "vendor".into();
                x.asset_digest = A.to_vec();
                x.from_system = "cam-sys".into();
                x.to_system = "vendor-sys".into();
            }),
            T0 + 3 * SEC,
        ),
        (
            "vendor",
            &vendor,
            custody(|x| {
                x.action = v1::CustodyActionKind::Delete as i32;
                x.actor = "vendor".into();
                x.asset_digest = A.to_vec();
                x.from_system = "vendor-sys".into();
                x.delete_method = v1::DeleteMethod::Overwrite as i32;
            }),
            T0 + 4 * SEC,
        ),
        (
            "vendor",
            &vendor,
            custody(|x| {
                x.action = v1::CustodyActionKind::Receipt as i32;
                x.actor = "vendor".into();
                x.receipt_of = 7;
            }),
            T0 + 5 * SEC,
        ),
        // 11: a policy with a reporting deadline of 5 s, for the entries
        // after it; 12: a registry entry logged 10 s after it happened.
        (
            "owner",
            &owner,
            v1::event::Body::PolicyPublished(v1::PolicyPublished {
                receipt_window_nanos: 3600 * SEC,
                reporting_deadline_nanos: 5 * SEC,
                attestation_period_nanos: 86_400 * SEC,
            }),
            T0 + 6 * SEC,
        ),
        (
            "owner",
            &owner,
            v1::event::Body::SystemRegistered(v1::SystemRegistered {
                system_id: "spare-sys".into(),
                owner_party: "owner".into(),
                ..Default::default()
            }),
            T0 + 7 * SEC,
        ),
    ];
    for (n, (reporter, key, body, t)) in events.into_iter().enumerate() {
        let e = v1::Event {
            event_id: uuid(n as u64),
            event_time_unix_nanos: t,
            reporter: reporter.into(),
            reporter_seq: n as u64,
            log_origin: ORIGIN.into(),
            body: Some(body),
        };
        let env = SignedEnvelope::sign(e.encode_to_vec(), &[key]);
        entries.push(
            v1::LogEntry {
                content: Some(v1::log_entry::Content::Event(envelope_to_proto(&env))),
                integrated_time_unix_nanos: t + 10 * SEC,
            }
            .encode_to_vec(),
        );
    }
    let hashes = tree(&entries.iter().map(|e| leaf_hash(e)).collect::<Vec<_>>());
    let size = entries.len() as u64;
    let root = tree_root(size, &hashes).unwrap();
    let (signer, _) = LogSigner::generate(ORIGIN, &mut rand_core::OsRng).unwrap();
    let note = signer.sign(size, &root).unwrap();
    let verifier = LogVerifier::new(signer.verifier_key()).unwrap();
    Log {
        entries,
        hashes,
        note,
        verifier,
        manifest,
        manifest_root,
    }
}

impl Log {
    fn proven(&self, i: u64) -> v1::ProvenEntry {
        v1::ProvenEntry {
            index: i,
            entry: self.entries[i as usize].clone(),
            proof: prove_inclusion(self.entries.len() as u64, i, &self.hashes)
                .unwrap()
                .into_iter()
                .map(|h| h.0.to_vec())
                .collect(),
        }
    }

    fn membership(&self, asset: [u8; 32]) -> v1::MembershipProof {
        let ordinal = self.manifest.iter().position(|d| *d == asset).unwrap() as u64;
        let t = tree(
            &self
                .manifest
                .iter()
                .map(|d| leaf_hash(d))
                .collect::<Vec<_>>(),
        );
        v1::MembershipProof {
            manifest_root: self.manifest_root.to_vec(),
            count: 3,
            asset: asset.to_vec(),
            index: ordinal,
            proof: prove_inclusion(3, ordinal, &t)
                .unwrap()
                .into_iter()
                .map(|h| h.0.to_vec())
                .collect(),
        }
    }

    fn evidence(&self, entries: &[u64], registry: &[u64], members: &[[u8; 32]]) -> v1::Evidence {
        v1::Evidence {
            checkpoint: self.note.clone(),
            tree_size: self.entries.len() as u64,
            entries: entries.iter().map(|i| self.proven(*i)).collect(),
            registry: registry.iter().map(|i| self.proven(*i)).collect(),
            memberships: members.iter().map(|a| self.membership(*a)).collect(),
        }
    }

    /// `breach_scope` is the bundle of vendor-sys over the whole window.
    fn breach_scope(&self) -> Bundle {
        use custody_domain::{Modality as M, SubjectClass as S};
        let mut intervals: Vec<IntervalRow> = self
            .manifest
            .iter()
            .map(|d| IntervalRow {
                asset: *d,
                party: "vendor".into(),
                system: "vendor-sys".into(),
                from: T0 + 2 * SEC,
                to: None,
                opened_by: 7,
                closed_by: None,
                modality: Some(M::PlateImage),
                subject_class: Some(S::Unknown),
            })
            .collect();
        intervals.push(IntervalRow {
            asset: A,
            party: "vendor".into(),
            system: "vendor-sys".into(),
            from: T0 + 3 * SEC,
            to: Some(T0 + 4 * SEC),
            opened_by: 8,
            closed_by: Some(9),
            modality: Some(M::FaceImage),
            subject_class: Some(S::Citizen),
        });
        Bundle::new(
            Question::BreachScope {
                system: "vendor-sys".into(),
                from: T0,
                to: T0 + 60 * SEC,
            },
            Answer::BreachScope {
                asset_count: 4,
                by_class: vec![
                    ClassCount {
                        modality: Some(M::FaceImage),
                        subject_class: Some(S::Citizen),
                        count: 1,
                    },
                    ClassCount {
                        modality: Some(M::PlateImage),
                        subject_class: Some(S::Unknown),
                        count: 3,
                    },
                ],
                intervals,
            },
            &self.evidence(&[5, 6, 7, 8, 9], &[0, 2, 3, 4], &self.manifest),
        )
    }

    fn history(&self, asset: [u8; 32], indexes: &[u64], members: &[[u8; 32]]) -> Bundle {
        let events = indexes
            .iter()
            .map(|i| HistoryEvent::from_entry(*i, &self.entries[*i as usize]).unwrap())
            .collect();
        Bundle::new(
            Question::History { asset },
            Answer::History { events },
            &self.evidence(indexes, &[0, 2, 4], members),
        )
    }
}

fn verify(log: &Log, bytes: &[u8]) -> Result<String, EvidenceError> {
    verify_bundle(bytes, &log.verifier).map(|v| v.statement)
}

#[test]
fn a_breach_scope_bundle_verifies_and_states_its_numbers() {
    let log = log();
    let bytes = log.breach_scope().to_bytes().unwrap();
    let s = verify(&log, &bytes).unwrap();
    assert!(
        s.contains("4 distinct assets rested on system vendor-sys, owned by party vendor: 1 face image of a citizen and 3 plate images of unknown subjects"),
        "{s}"
    );
    assert!(s.contains("per entries 5, 6, 7, 8 and 9"), "{s}");
    assert!(s.contains("registry entries 0, 2, 3 and 4"), "{s}");
    assert!(s.contains("not proven:"), "{s}");
}

#[test]
fn the_canonical_form_round_trips_and_is_the_only_one_accepted() {
    let log = log();
    let bundle = log.breach_scope();
    let bytes = bundle.to_bytes().unwrap();
    assert_eq!(bundle.to_bytes().unwrap(), bytes, "deterministic");
    let (parsed, _) = Bundle::parse(&bytes).unwrap();
    assert_eq!(parsed, bundle);
    assert_eq!(parsed.to_bytes().unwrap(), bytes);
    assert!(bytes.ends_with(b"\"\n}\n"));

    let text = String::from_utf8(bytes.clone()).unwrap();
    // The same JSON value, laid out differently.
    let compact =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()).unwrap();
    let e = verify(&log, &compact).unwrap_err();
    assert!(matches!(e, EvidenceError::NotCanonical { .. }), "{e}");
    // An escaped character that parses to the same string.
    let escaped = text.replacen("\"vendor-sys\"", "\"vendor\\u002dsys\"", 1);
    let e = verify(&log, escaped.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("canonical form"), "{e}");
    assert!(e.to_string().contains("question"), "{e}");
    // Trailing whitespace.
    let e = verify(&log, format!("{text} ").as_bytes()).unwrap_err();
    assert!(matches!(e, EvidenceError::NotCanonical { .. }), "{e}");
    // Upper-case hex.
    let a = hex(&A);
    let upper = text.replacen(&a, &a.to_uppercase(), 1);
    let e = verify(&log, upper.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("answer"), "{e}");
}

/// `expected_part` is the word a message must contain for a change at a
/// position inside `part`.
fn expected_part(part: &str) -> &'static str {
    match part.trim_matches('"').split('[').next().unwrap_or_default() {
        "format" => "format",
        "question" => "question",
        "answer" => "answer",
        "checkpoint" => "checkpoint",
        "entries" => "entr",
        "registry" => "registry",
        "memberships" => "membership",
        "digest" => "digest",
        _ => "",
    }
}

#[test]
fn every_single_byte_flip_fails_and_names_the_part() {
    let log = log();
    let bytes = log.breach_scope().to_bytes().unwrap();
    let mut unnamed = Vec::new();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        let e = match verify(&log, &bad) {
            Ok(_) => panic!("flip at byte {i} ({:?}) verified", bytes[i] as char),
            Err(e) => e.to_string(),
        };
        let part = crate::bundle::part_at(&bytes, i);
        let want = expected_part(&part);
        if std::env::var_os("SHOW_FLIPS").is_some() {
            println!("byte {i} in {part}: {e}");
        }
        if !(e.contains(want) || e.contains(" at line ")) {
            unnamed.push(format!("byte {i} in {part}: {e}"));
        }
    }
    assert!(
        unnamed.is_empty(),
        "{} messages do not name the part:\n{}",
        unnamed.len(),
        unnamed.join("\n")
    );
}

#[test]
fn history_bundles_check_receipts_through_their_transfer() {
    let log = log();
    let b = [0x02; 32];
    let bundle = log.history(b, &[6, 7, 10], &[b]);
    let s = verify(&log, &bundle.to_bytes().unwrap()).unwrap();
    assert!(s.contains("has 3 logged events"), "{s}");
    assert!(s.contains("1 CAPTURE, 1 COPY and 1 RECEIPT"), "{s}");

    // Without its transfer the RECEIPT is not proven to be about B.
    let bundle = log.history(b, &[6, 10], &[b]);
    let e = verify(&log, &bundle.to_bytes().unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .contains("entry 10 is not proven to be about asset"),
        "{e}"
    );
}

#[test]
fn superfluous_and_missing_parts_are_refused() {
    let log = log();
    // An extra entry no row rests on.
    let mut b = log.breach_scope();
    let extra = Bundle::new(
        b.question.clone(),
        b.answer.clone(),
        &log.evidence(&[5, 6, 7, 8, 9, 10], &[0, 2, 3, 4], &log.manifest),
    );
    let e = verify(&log, &extra.to_bytes().unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "superfluous entry 10: no row of the answer rests on it"
    );
    // An extra registry entry.
    let extra = Bundle::new(
        b.question.clone(),
        b.answer.clone(),
        &log.evidence(&[5, 6, 7, 8, 9], &[0, 1, 2, 3, 4], &log.manifest),
    );
    let e = verify(&log, &extra.to_bytes().unwrap()).unwrap_err();
    assert!(
        e.to_string().starts_with("superfluous registry entry 1"),
        "{e}"
    );
    // A missing creation entry: the class of the copied asset is unproven.
    let missing = Bundle::new(
        b.question.clone(),
        b.answer.clone(),
        &log.evidence(&[6, 7, 8, 9], &[0, 2, 3, 4], &log.manifest),
    );
    let e = verify(&log, &missing.to_bytes().unwrap()).unwrap_err();
    assert!(
        e.to_string().contains(
            "says the asset is FACE_IMAGE CITIZEN but the entries prove of unproven class"
        ),
        "{e}"
    );
    // A count that does not match the rows.
    if let Answer::BreachScope { asset_count, .. } = &mut b.answer {
        *asset_count = 5;
    }
    let e = verify(&log, &b.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().starts_with("answer: asset_count is 5"), "{e}");
}

#[test]
fn a_question_changed_within_what_the_rows_allow_fails_on_the_digest() {
    let log = log();
    let b = log.breach_scope();
    let bytes = b.to_bytes().unwrap();
    let text = String::from_utf8(bytes).unwrap();
    // Every row still overlaps a window ending a second earlier.
    let to = custody_domain::rfc3339(T0 + 60 * SEC);
    let earlier = custody_domain::rfc3339(T0 + 59 * SEC);
    let changed = text.replacen(&to, &earlier, 1);
    let e = verify(&log, changed.as_bytes()).unwrap_err();
    assert_eq!(e, EvidenceError::Digest);
    assert!(e.to_string().contains("question"), "{e}");
}

#[test]
fn holdings_and_holders_bundles_verify() {
    let log = log();
    let b = log.breach_scope();
    let Answer::BreachScope { intervals, .. } = &b.answer else {
        unreachable!()
    };
    let open: Vec<IntervalRow> = intervals
        .iter()
        .filter(|r| r.to.is_none())
        .cloned()
        .collect();
    let holdings = Bundle::new(
        Question::Holdings {
            holder: Holder::Party("vendor".into()),
            at: T0 + 30 * SEC,
        },
        Answer::Holdings {
            intervals: open.clone(),
        },
        &log.evidence(&[6, 7], &[0, 2, 3, 4], &log.manifest),
    );
    let s = verify(&log, &holdings.to_bytes().unwrap()).unwrap();
    assert!(
        s.contains(
            "party vendor held 3 distinct assets on 1 system: 3 plate images of unknown subjects"
        ),
        "{s}"
    );
    // The same rows do not answer for another party.
    let mut other = holdings.clone();
    other.question = Question::Holdings {
        holder: Holder::Party("cam".into()),
        at: T0 + 30 * SEC,
    };
    let e = verify(&log, &other.to_bytes().unwrap()).unwrap_err();
    assert!(
        e.to_string().contains("not the question's party cam"),
        "{e}"
    );
    // Nor a time before they arrived.
    other.question = Question::Holdings {
        holder: Holder::Party("vendor".into()),
        at: T0,
    };
    let e = verify(&log, &other.to_bytes().unwrap()).unwrap_err();
    assert!(
        e.to_string().contains("does not cover the question's time"),
        "{e}"
    );

    let holders = Bundle::new(
        Question::Holders {
            asset: open[0].asset,
            at: T0 + 30 * SEC,
        },
        Answer::Holders {
            holders: vec![open[0].clone()],
        },
        &log.evidence(&[6, 7], &[0, 2, 3, 4], &[open[0].asset]),
    );
    let s = verify(&log, &holders.to_bytes().unwrap()).unwrap();
    assert!(
        s.contains("was held by 1 party on 1 system (a plate image of an unknown subject)"),
        "{s}"
    );
}

#[test]
fn another_log_key_fails_on_the_checkpoint() {
    let log = log();
    let other = self::log();
    let e = verify_bundle(&log.breach_scope().to_bytes().unwrap(), &other.verifier).unwrap_err();
    assert!(e.to_string().starts_with("checkpoint: "), "{e}");
}

/// `finding` is a bundle of finding `f` as of `as_of`, citing its entries
/// with the registry entries behind their signatures.
fn finding_bundle(
    log: &Log,
    f: custody_domain::findings::Finding,
    as_of: i64,
    registry: &[u64],
) -> Bundle {
    let mut entries = f.entries.clone();
    entries.sort_unstable();
    Bundle::new(
        Question::Finding {
            id: f.id.clone(),
            as_of,
        },
        Answer::Finding { finding: f },
        &log.evidence(&entries, registry, &[]),
    )
}

/// `boundary` is the boundary violation of entry 8: vendor copied A to
/// vendor-sys, which entry 3 registers outside the boundary, unaccredited
/// and unencrypted.
fn boundary() -> custody_domain::findings::Finding {
    custody_domain::findings::Finding {
        id: "boundary_violation:8".into(),
        rule: custody_domain::findings::Rule::BoundaryViolation,
        entries: vec![8, 3],
        party: Some("vendor".into()),
        system: Some("vendor-sys".into()),
        asset: Some(A),
        grant: None,
        retention_rule: None,
        at: T0 + 3 * SEC,
        detail: "destination outside_boundary unaccredited unencrypted".into(),
        observed_by: None,
        observed_on: None,
    }
}

#[test]
fn finding_bundles_verify_and_state_the_rule_and_the_party() {
    use custody_domain::findings::{Finding, Rule};
    let log = log();
    let as_of = T0 + 60 * SEC;
    let bytes = finding_bundle(&log, boundary(), as_of, &[0, 4])
        .to_bytes()
        .unwrap();
    let s = verify(&log, &bytes).unwrap();
    assert!(
        s.contains("finding boundary_violation:8 (rule boundary_violation) about party vendor, system vendor-sys and asset"),
        "{s}"
    );
    assert!(
        s.contains("SYSTEM_REGISTERED of vendor-sys (owner vendor): outside the boundary, not accredited, not encrypted at rest and not removable media"),
        "{s}"
    );
    assert!(s.contains("per entries 3 and 8"), "{s}");

    // The same COPY names no grant: an unauthorised transfer.
    let unauthorized = Finding {
        id: "unauthorized_transfer:8".into(),
        rule: Rule::UnauthorizedTransfer,
        entries: vec![8],
        detail: "no grant named".into(),
        ..boundary()
    };
    let s = verify(
        &log,
        &finding_bundle(&log, unauthorized, as_of, &[0, 4])
            .to_bytes()
            .unwrap(),
    )
    .unwrap();
    assert!(s.contains("the transfer names no grant"), "{s}");
    assert!(
        s.contains("not proven: that the transfer was not one"),
        "{s}"
    );

    // Entry 12 was logged 10 s after it happened, under the 5 s deadline
    // that entry 11 publishes: the finding cites that policy last, and
    // the statement shows it.
    let late = Finding {
        id: "late_reporting:12".into(),
        rule: Rule::LateReporting,
        entries: vec![12, 11],
        party: Some("owner".into()),
        system: None,
        asset: None,
        grant: None,
        retention_rule: None,
        at: T0 + 7 * SEC + 5 * SEC,
        detail: "logged 10 s after it happened; the deadline is 5 s".into(),
        observed_by: None,
        observed_on: None,
    };
    let s = verify(
        &log,
        &finding_bundle(&log, late.clone(), as_of, &[])
            .to_bytes()
            .unwrap(),
    );
    assert!(s.is_err(), "genesis is required");
    let s = verify(
        &log,
        &finding_bundle(&log, late.clone(), as_of, &[0])
            .to_bytes()
            .unwrap(),
    )
    .unwrap();
    assert!(s.contains("10 s later"), "{s}");
    assert!(
        s.contains("entry 11: POLICY_PUBLISHED by the data owner, a reporting deadline of 5 s"),
        "{s}"
    );
    assert!(
        s.contains("that no other POLICY_PUBLISHED was logged between entries 11 and 12"),
        "{s}"
    );
    // Without the policy, the default deadline (one hour) applies, and
    // a finding that claims 5 s fails.
    let e = verify(
        &log,
        &finding_bundle(
            &log,
            Finding {
                entries: vec![12],
                ..late.clone()
            },
            as_of,
            &[0],
        )
        .to_bytes()
        .unwrap(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("applies a reporting deadline of 5 s, but the log's policy for it is 3600 s"),
        "{e}"
    );
    // A policy logged after the entry does not judge it.
    let e = verify(
        &log,
        &finding_bundle(
            &log,
            Finding {
                id: "late_reporting:8".into(),
                entries: vec![8, 11],
                party: Some("vendor".into()),
                at: T0 + 3 * SEC + 5 * SEC,
                ..late.clone()
            },
            as_of,
            &[0, 4],
        )
        .to_bytes()
        .unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("which is not before entry 8"), "{e}");
    // A delay the entry does not show fails.
    let wrong = Finding {
        detail: "logged 11 s after it happened; the deadline is 5 s".into(),
        ..late
    };
    let e = verify(
        &log,
        &finding_bundle(&log, wrong, as_of, &[0]).to_bytes().unwrap(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("answer: finding late_reporting:12: detail"),
        "{e}"
    );

    // Vendor's first event (entry 7) carries sequence number 6.
    let gap = Finding {
        id: "sequence_gap:7".into(),
        rule: Rule::SequenceGap,
        entries: vec![7],
        party: Some("vendor".into()),
        system: None,
        asset: None,
        grant: None,
        retention_rule: None,
        at: T0 + 2 * SEC,
        detail: "sequence number 6 follows 0; 5 missing".into(),
        observed_by: None,
        observed_on: None,
    };
    let s = verify(
        &log,
        &finding_bundle(&log, gap, as_of, &[0, 4])
            .to_bytes()
            .unwrap(),
    )
    .unwrap();
    assert!(s.contains("reporter sequence number 6"), "{s}");
    assert!(
        s.contains("only a replay of the whole log, custody audit"),
        "{s}"
    );
}

#[test]
fn a_finding_with_changed_fields_fails_naming_the_answer() {
    use custody_domain::findings::{Finding, Rule};
    let log = log();
    let as_of = T0 + 60 * SEC;
    let changes: Vec<(Finding, &str)> = vec![
        (
            Finding {
                party: Some("cam".into()),
                ..boundary()
            },
            "party is",
        ),
        (
            Finding {
                system: Some("cam-sys".into()),
                id: "boundary_violation:8".into(),
                ..boundary()
            },
            "system is",
        ),
        (
            Finding {
                detail: "destination removable_media".into(),
                ..boundary()
            },
            "detail is",
        ),
        (
            Finding {
                at: T0 + 4 * SEC,
                ..boundary()
            },
            "at is",
        ),
        (
            Finding {
                rule: Rule::UnauthorizedTransfer,
                ..boundary()
            },
            "id",
        ),
        (
            Finding {
                asset: Some([0x01; 32]),
                ..boundary()
            },
            "asset is",
        ),
        (
            Finding {
                grant: Some("G1".into()),
                ..boundary()
            },
            "grant is",
        ),
        (
            Finding {
                entries: vec![8, 1],
                ..boundary()
            },
            "not the SYSTEM_REGISTERED of system vendor-sys",
        ),
    ];
    for (f, phrase) in changes {
        let e = verify(
            &log,
            &finding_bundle(&log, f.clone(), as_of, &[0, 4])
                .to_bytes()
                .unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("answer: "), "{f:?}: {e}");
        assert!(e.contains(phrase), "{f:?}: {e}");
    }
    // A question about another finding, or asked before it arose.
    let mut b = finding_bundle(&log, boundary(), as_of, &[0, 4]);
    b.question = Question::Finding {
        id: "boundary_violation:9".into(),
        as_of,
    };
    let e = verify(&log, &b.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("not the question's id"), "{e}");
    b.question = Question::Finding {
        id: "boundary_violation:8".into(),
        as_of: T0,
    };
    let e = verify(&log, &b.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("after the question's time"), "{e}");
    // An entry the finding does not cite is superfluous; one it cites
    // must be there.
    let mut extra = finding_bundle(&log, boundary(), as_of, &[0, 4]);
    extra.entries = Bundle::new(
        extra.question.clone(),
        extra.answer.clone(),
        &log.evidence(&[3, 5, 8], &[0, 2, 4], &[]),
    )
    .entries;
    extra.registry = Bundle::new(
        extra.question.clone(),
        extra.answer.clone(),
        &log.evidence(&[3, 5, 8], &[0, 2, 4], &[]),
    )
    .registry;
    let e = verify(&log, &extra.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().starts_with("superfluous entry 5"), "{e}");
    let mut missing = finding_bundle(&log, boundary(), as_of, &[0, 4]);
    missing.entries.retain(|p| p.index != 3);
    let e = verify(&log, &missing.to_bytes().unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .contains("entry 3, which it cites, is not in the bundle"),
        "{e}"
    );
}

#[test]
fn every_single_byte_flip_of_a_finding_bundle_fails_and_names_the_part() {
    let log = log();
    let bytes = finding_bundle(&log, boundary(), T0 + 60 * SEC, &[0, 4])
        .to_bytes()
        .unwrap();
    let mut unnamed = Vec::new();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        let e = match verify(&log, &bad) {
            Ok(_) => panic!("flip at byte {i} ({:?}) verified", bytes[i] as char),
            Err(e) => e.to_string(),
        };
        let part = crate::bundle::part_at(&bytes, i);
        let want = expected_part(&part);
        if !(e.contains(want) || e.contains(" at line ")) {
            unnamed.push(format!("byte {i} in {part}: {e}"));
        }
    }
    assert!(
        unnamed.is_empty(),
        "{} messages do not name the part:\n{}",
        unnamed.len(),
        unnamed.join("\n")
    );
}
