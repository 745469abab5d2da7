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
            replay: Replay::new(&genesis, policy).unwrap(),
            manifests: Manifests(HashMap::new()),
            next: 1,
            keys: HashMap::from([("agency".to_owned(), key_id_of(&genesis.owner_public_key))]),
        };
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
        self.next += 1;
        index
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
