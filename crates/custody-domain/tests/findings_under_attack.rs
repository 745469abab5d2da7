//! Regressions for "the core promise holds under attack", cases 7 to 11:
//! grant coverage by class and by recipient, "as of T" for retention,
//! holds and attestations, sequence numbers at the top of u64, and legal
//! holds named by manifest. Each replays a small log through the domain's
//! one admission path (`Replay`) and reads the findings as of a time.

use std::collections::HashMap;
use std::sync::Arc;

use custody_domain::findings::{sequence_gap, Finding, Policy, Rule};
use custody_domain::replay::{ManifestSource, Replay};
use custody_domain::{
    key_id_of, AssetRef, CustodyAction, CustodyActionKind as K, CustodyAttestation, DeleteMethod,
    Digest, Event, EventBody, Genesis, GrantIssued, KeyAdded, KeyId, LegalHold, ManifestRef,
    Modality, PartyKind, PartyRegistered, Purpose, Refusal, RetentionAuthority, RetentionClock,
    RetentionRule, SubjectClass, SystemRegistered, Timestamp,
};

const ORIGIN: &str = "custody.example/attack";
const H: i64 = 3_600_000_000_000;
/// S, the time of the first capture.
const S: Timestamp = 1_800_000_000_000_000_000;

struct Manifests(HashMap<ManifestRef, Arc<Vec<Digest>>>);

impl ManifestSource for Manifests {
    fn members(&self, m: &ManifestRef) -> Result<Option<Arc<Vec<Digest>>>, Refusal> {
        Ok(self.0.get(m).cloned())
    }
}

struct Log {
    replay: Replay,
    manifests: Manifests,
    next: u64,
    /// Each party's key id, for admission's signer check.
    keys: HashMap<String, KeyId>,
    genesis: Genesis,
    /// Every event applied, with its index and integration time.
    events: Vec<(u64, Event, Timestamp)>,
}

impl Log {
    fn new() -> Self {
        let genesis = Genesis {
            origin: ORIGIN.into(),
            owner_party_id: "agency".into(),
            owner_public_key: ed25519_dalek::SigningKey::from_bytes(&[9; 32])
                .verifying_key()
                .to_bytes(),
        };
        let policy = Policy {
            receipt_window: H,
            reporting_deadline: 1000 * H,
            attestation_period: 24 * H,
        };
        let mut l = Self {
            replay: Replay::new(&genesis).unwrap(),
            manifests: Manifests(HashMap::new()),
            next: 1,
            keys: HashMap::from([("agency".to_owned(), key_id_of(&genesis.owner_public_key))]),
            genesis: genesis.clone(),
            events: Vec::new(),
        };
        // The log's policy, published by its first entry after genesis.
        l.registry(EventBody::PolicyPublished(policy));
        for (id, kind) in [
            ("prime", PartyKind::Prime),
            ("partner", PartyKind::Partner),
            ("cam", PartyKind::Device),
        ] {
            l.registry(EventBody::PartyRegistered(PartyRegistered {
                party_id: id.into(),
                kind,
                acts_on_behalf_of: "agency".into(),
            }));
            let mut seed = [0x11; 32];
            seed[..id.len()].copy_from_slice(id.as_bytes());
            let public_key = ed25519_dalek::SigningKey::from_bytes(&seed)
                .verifying_key()
                .to_bytes();
            l.registry(EventBody::KeyAdded(KeyAdded {
                party_id: id.into(),
                public_key,
                valid_from: 0,
                valid_to: None,
            }));
            l.keys.insert(id.into(), key_id_of(&public_key));
        }
        for (id, owner) in [
            ("lane", "agency"),
            ("storage", "agency"),
            ("prime-sys", "prime"),
            ("partner-sys", "partner"),
        ] {
            l.registry(EventBody::SystemRegistered(SystemRegistered {
                system_id: id.into(),
                owner_party: owner.into(),
                inside_boundary: true,
                accredited: true,
                encrypted_at_rest: true,
                removable_media: false,
            }));
        }
        for (id, grantee, modalities) in [
            ("g-face", "prime", vec![Modality::FaceImage]),
            ("g-partner", "partner", vec![]),
        ] {
            l.registry(EventBody::GrantIssued(GrantIssued {
                grant_id: id.into(),
                grantee: grantee.into(),
                contract_ref: "c-1".into(),
                actions: vec![],
                purposes: vec![],
                systems: vec![],
                modalities,
                subject_classes: vec![],
                max_onward_transfers: 1,
                valid_from: 0,
                valid_to: None,
            }));
        }
        l.registry(EventBody::RetentionRulePublished(RetentionRule {
            rule_id: "r-citizen-face".into(),
            authority: RetentionAuthority::Sorn,
            authority_ref: "sorn-1".into(),
            modality: Some(Modality::FaceImage),
            subject_class: Some(SubjectClass::Citizen),
            system_id: String::new(),
            max_age: 12 * H,
            clock: RetentionClock::Capture,
        }));
        l
    }

    fn at(&mut self, t: Timestamp, reporter: &str, seq: u64, body: EventBody) -> u64 {
        let index = self.next;
        let e = Event {
            event_id: format!("00000000-0000-4000-8000-{index:012x}"),
            event_time: t,
            reporter: reporter.into(),
            reporter_seq: seq,
            log_origin: ORIGIN.into(),
            body,
        };
        let signer = [self.keys[reporter]];
        self.replay
            .apply(index, &e, &signer, t, &self.manifests)
            .unwrap_or_else(|r| panic!("entry {index} refused: {r}"));
        self.events.push((index, e, t));
        self.next += 1;
        index
    }

    /// `prefix` is a fresh replay of the first `size` entries alone.
    fn prefix(&self, size: u64) -> Replay {
        let mut r = Replay::new(&self.genesis).unwrap();
        for (i, e, t) in self.events.iter().take_while(|(i, _, _)| *i < size) {
            r.apply(*i, e, &[self.keys[&e.reporter]], *t, &self.manifests)
                .unwrap_or_else(|x| panic!("entry {i} refused on replay: {x}"));
        }
        r
    }

    fn registry(&mut self, body: EventBody) -> u64 {
        self.at(S - 10 * H, "agency", 0, body)
    }

    fn capture(&mut self, t: Timestamp, asset: Digest, m: Modality) -> u64 {
        let mut c = CustodyAction::new(K::Capture, "cam", Some(AssetRef::One(asset)));
        c.to_system = "lane".into();
        c.modality = Some(m);
        c.subject_class = Some(SubjectClass::Citizen);
        self.at(t, "cam", 0, EventBody::Custody(c))
    }

    fn findings(&self, as_of: Timestamp, rule: Rule) -> Vec<Finding> {
        self.replay
            .findings(as_of)
            .into_iter()
            .filter(|f| f.rule == rule)
            .collect()
    }
}

fn copy(actor: &str, asset: Digest, from: &str, to: &str, grant: &str) -> EventBody {
    let mut c = CustodyAction::new(K::Copy, actor, Some(AssetRef::One(asset)));
    c.from_system = from.into();
    c.to_system = to.into();
    c.grant_id = grant.into();
    c.purpose = Some(Purpose::Maintenance);
    EventBody::Custody(c)
}

fn delete(asset: Digest, from: &str) -> EventBody {
    let mut c = CustodyAction::new(K::Delete, "cam", Some(AssetRef::One(asset)));
    c.from_system = from.into();
    c.delete_method = Some(DeleteMethod::CryptoErase);
    EventBody::Custody(c)
}

/// Case 7: the prime pulled a plate image under a grant for face images
/// only, and no unauthorized_transfer was raised.
#[test]
fn a_transfer_of_a_class_the_grant_does_not_list_is_unauthorized() {
    let mut l = Log::new();
    let plate = [7; 32];
    let face = [8; 32];
    let captured = l.capture(S, plate, Modality::PlateImage);
    l.capture(S, face, Modality::FaceImage);
    let pulled = l.at(
        S + H,
        "prime",
        0,
        copy("prime", plate, "lane", "prime-sys", "g-face"),
    );
    l.at(
        S + H,
        "prime",
        0,
        copy("prime", face, "lane", "prime-sys", "g-face"),
    );
    let found = l.findings(S + 2 * H, Rule::UnauthorizedTransfer);
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f.entries[0], pulled);
    assert_eq!(
        f.entries[2], captured,
        "it cites the entry that shows the class"
    );
    assert_eq!(f.detail, "modality PLATE_IMAGE not granted");
    assert_eq!(f.asset, Some(plate));
}

/// Case 8: agency storage pushed an image to a partner under the
/// partner's grant; coverage is keyed on the receiving party, not the
/// actor.
#[test]
fn grant_coverage_is_keyed_on_the_recipient() {
    let mut l = Log::new();
    let a = [1; 32];
    l.capture(S, a, Modality::FaceImage);
    l.at(S + H, "agency", 0, copy("agency", a, "lane", "storage", ""));
    l.at(
        S + 2 * H,
        "agency",
        0,
        copy("agency", a, "storage", "partner-sys", "g-partner"),
    );
    // The same push under the prime's grant: the partner is not its grantee.
    let wrong = l.at(
        S + 3 * H,
        "agency",
        0,
        copy("agency", a, "storage", "partner-sys", "g-face"),
    );
    let found = l.findings(S + 4 * H, Rule::UnauthorizedTransfer);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].entries[0], wrong);
    assert_eq!(
        found[0].detail,
        "recipient partner is not the grantee prime or its agent"
    );
}

/// Case 9: as of T means the log read up to T. A DELETE at S+31h does not
/// hide that the image was overdue as of S+30h; a hold placed at S+33h
/// does not suppress it as of S+30h; an attestation at S+16h counts as of
/// S+30h although a newer one (S+32h) exists.
#[test]
fn as_of_t_is_what_the_log_read_up_to_t_supports() {
    let mut l = Log::new();
    let deleted_late = [2; 32];
    let held_late = [3; 32];
    l.capture(S, deleted_late, Modality::FaceImage);
    l.capture(S, held_late, Modality::FaceImage);
    l.at(S + 31 * H, "cam", 0, delete(deleted_late, "lane"));
    l.at(
        S + 33 * H,
        "agency",
        0,
        EventBody::LegalHold(LegalHold {
            hold_id: "hold-1".into(),
            assets: Some(AssetRef::One(held_late)),
            system_id: String::new(),
            released: false,
        }),
    );
    let overdue = |l: &Log, t| -> Vec<Digest> {
        l.findings(t, Rule::RetentionOverdue)
            .iter()
            .filter_map(|f| f.asset)
            .collect()
    };
    let at30 = overdue(&l, S + 30 * H);
    assert!(at30.contains(&deleted_late), "deleted later: {at30:?}");
    assert!(at30.contains(&held_late), "held later: {at30:?}");
    let at34 = overdue(&l, S + 34 * H);
    assert!(!at34.contains(&deleted_late), "deleted by then");
    assert!(!at34.contains(&held_late), "held by then");

    // The prime holds a copy on its own system from S+1h, and attests at
    // S+16h and S+32h, within every 24 h period.
    let a = [4; 32];
    l.capture(S, a, Modality::FaceImage);
    l.at(
        S + H,
        "prime",
        0,
        copy("prime", a, "lane", "prime-sys", "g-face"),
    );
    let attest = |t| {
        (
            t,
            EventBody::CustodyAttestation(CustodyAttestation {
                system_id: "prime-sys".into(),
                holdings: ManifestRef {
                    root: custody_domain::EMPTY_MANIFEST_ROOT,
                    count: 0,
                },
            }),
        )
    };
    for (t, b) in [attest(S + 16 * H), attest(S + 32 * H)] {
        l.at(t, "prime", 0, b);
    }
    for t in [S + 20 * H, S + 30 * H, S + 50 * H] {
        assert_eq!(
            l.findings(t, Rule::MissingAttestation),
            vec![],
            "as of S+{}h",
            (t - S) / H
        );
    }
    let late = l.findings(S + 57 * H, Rule::MissingAttestation);
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0].at, S + 56 * H);
}

/// Case 10: a sequence number after 2^64−1 wrapped into a gap finding
/// whose own bundle failed to verify.
#[test]
fn sequence_numbers_do_not_wrap() {
    assert_eq!(sequence_gap(u64::MAX, 5), None);
    assert_eq!(sequence_gap(u64::MAX - 1, u64::MAX), None);
    assert_eq!(sequence_gap(3, 7), Some(3));
    assert_eq!(sequence_gap(0, 1), None);
    let mut l = Log::new();
    let mut c = CustodyAction::new(K::Capture, "cam", Some(AssetRef::One([5; 32])));
    c.to_system = "lane".into();
    c.modality = Some(Modality::SceneImage);
    c.subject_class = Some(SubjectClass::Unknown);
    let top = l.at(S, "cam", u64::MAX, EventBody::Custody(c.clone()));
    c.asset = Some(AssetRef::One([6; 32]));
    let after = l.at(S + 1, "cam", 5, EventBody::Custody(c));
    // u64::MAX after nothing is a gap; 5 after u64::MAX is not.
    let gaps: Vec<Vec<u64>> = l
        .findings(S + 2, Rule::SequenceGap)
        .into_iter()
        .map(|f| f.entries)
        .collect();
    assert_eq!(gaps, vec![vec![top]], "no gap cites entry {after}");
}

/// Case 11: a legal hold that names a manifest holds its members.
#[test]
fn a_legal_hold_named_by_manifest_suppresses_retention_of_its_members() {
    let mut l = Log::new();
    let held = [0x11; 32];
    let other = [0x22; 32];
    l.capture(S, held, Modality::FaceImage);
    l.capture(S, other, Modality::FaceImage);
    let m = ManifestRef {
        root: [0x33; 32],
        count: 1,
    };
    l.manifests.0.insert(m, Arc::new(vec![held]));
    l.at(
        S + H,
        "agency",
        0,
        EventBody::LegalHold(LegalHold {
            hold_id: "hold-m".into(),
            assets: Some(AssetRef::Manifest(m)),
            system_id: String::new(),
            released: false,
        }),
    );
    let overdue: Vec<Digest> = l
        .findings(S + 30 * H, Rule::RetentionOverdue)
        .iter()
        .filter_map(|f| f.asset)
        .collect();
    assert_eq!(overdue, vec![other]);
}

/// Issue 9: findings answered "as of checkpoint N" are exactly what a
/// replay of the first N entries gives, even after later entries close an
/// obligation (a receipt, a DELETE, a newer attestation, a hold placed or
/// released, a rule published later). Checked at every size and at times
/// on both sides of each event.
#[test]
fn findings_at_a_size_are_a_replay_of_that_prefix() {
    let mut l = Log::new();
    let (face, plate, kept) = ([0x41; 32], [0x42; 32], [0x43; 32]);
    l.capture(S, face, Modality::FaceImage);
    l.capture(S, plate, Modality::PlateImage);
    l.capture(S, kept, Modality::FaceImage);
    // To the partner, acknowledged late; to the prime, a plate under a
    // face-only grant, never acknowledged.
    let to_partner = l.at(
        S + H,
        "partner",
        0,
        copy("partner", face, "lane", "partner-sys", "g-partner"),
    );
    let mut receipt = CustodyAction::new(K::Receipt, "partner", None);
    receipt.receipt_of = Some(to_partner);
    l.at(S + 3 * H, "partner", 0, EventBody::Custody(receipt));
    l.at(
        S + 2 * H,
        "prime",
        0,
        copy("prime", plate, "lane", "prime-sys", "g-face"),
    );
    // A hold on one image from S+20h to S+40h, a plate rule published at
    // S+35h, attestations of the partner's system, and DELETEs.
    let hold = |released| {
        EventBody::LegalHold(LegalHold {
            hold_id: "hold-k".into(),
            assets: Some(AssetRef::One(kept)),
            system_id: String::new(),
            released,
        })
    };
    l.at(S + 20 * H, "agency", 0, hold(false));
    let attest = EventBody::CustodyAttestation(CustodyAttestation {
        system_id: "partner-sys".into(),
        holdings: ManifestRef {
            root: custody_domain::EMPTY_MANIFEST_ROOT,
            count: 0,
        },
    });
    l.at(S + 30 * H, "partner", 0, attest.clone());
    l.at(
        S + 35 * H,
        "agency",
        0,
        EventBody::RetentionRulePublished(RetentionRule {
            rule_id: "r-plate".into(),
            authority: RetentionAuthority::Sorn,
            authority_ref: "sorn-2".into(),
            modality: Some(Modality::PlateImage),
            subject_class: None,
            system_id: String::new(),
            max_age: 20 * H,
            clock: RetentionClock::Capture,
        }),
    );
    l.at(S + 40 * H, "agency", 0, hold(true));
    l.at(S + 50 * H, "cam", 0, delete(face, "lane"));
    l.at(S + 52 * H, "cam", 0, delete(kept, "lane"));
    l.at(S + 60 * H, "partner", 0, attest);

    let times: Vec<Timestamp> = [0, 1, 2, 4, 13, 21, 25, 31, 36, 41, 51, 55, 61, 90, 200]
        .iter()
        .map(|h| S + h * H)
        .collect();
    let mut compared = 0;
    let mut nonempty = 0;
    for size in 1..=l.next {
        let prefix = l.prefix(size);
        for &t in &times {
            let want = prefix.findings(t);
            let got = l.replay.findings_at(size, t);
            assert_eq!(
                got,
                want,
                "as of size {size} and S+{}h, the full replay's answer differs from the prefix's",
                (t - S) / H
            );
            compared += 1;
            nonempty += usize::from(!want.is_empty());
        }
    }
    // Later entries did change the latest answers: the check compared
    // something that could differ.
    let latest = l.replay.findings(S + 36 * H);
    let before_receipt = l.replay.findings_at(to_partner + 1, S + 36 * H);
    assert_ne!(latest, before_receipt);
    assert!(nonempty > compared / 3, "{nonempty} of {compared}");
}
