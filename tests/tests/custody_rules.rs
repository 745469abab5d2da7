//! Every custody and registry refusal rule on the real server: the right code, an actionable message, nothing appended, and the corrected event accepted.

use std::time::{Duration, Instant};

use custody_domain::hex;
use custody_e2e::random_digest as digest;
use custody_e2e::{
    event, key_added, now, party_registered, signed, system_of, system_registered, Log,
};
use custody_log::{verify_inclusion, Hash, LogVerifier};
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use custody_proto::v1::event::Body;
use custody_proto::v1::CustodyActionKind as K;
use ed25519_dalek::SigningKey;
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt as _;

const HOUR: i64 = 3_600_000_000_000;

/// `Want` is the refusal a rule must produce.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// `INVALID_ARGUMENT`, with a `BadRequest` violation naming this field.
    Invalid(&'static str),
    /// `FAILED_PRECONDITION`.
    Precondition,
    /// `PERMISSION_DENIED`.
    Denied,
}

impl Want {
    fn code(self) -> Code {
        match self {
            Want::Invalid(_) => Code::InvalidArgument,
            Want::Precondition => Code::FailedPrecondition,
            Want::Denied => Code::PermissionDenied,
        }
    }
}

/// `Ledger` is a running server and the exact number of entries it must
/// hold.
///
/// Nothing-appended is proved without sleeping after each refusal: every
/// accepted append must land at exactly `size`, the index the log would
/// have given a refused event had it been appended, and a corrected event
/// reuses its refused event's `event_id`, so a stored refusal would also
/// surface as `ALREADY_EXISTS`. [`Ledger::settle`] then checks the
/// published tree size itself, as `refusals.rs` does.
struct Ledger {
    log: Log,
    c: CustodyLogClient<Channel>,
    verifier: LogVerifier,
    /// The tree size the log must have now.
    size: u64,
}

impl Ledger {
    async fn start() -> Self {
        let mut log = Log::init();
        log.start();
        let c = log.client().await;
        let verifier = LogVerifier::new(&std::fs::read_to_string(&log.vkey).unwrap()).unwrap();
        Self {
            log,
            c,
            verifier,
            // The genesis entry.
            size: 1,
        }
    }

    /// `owner` is the data owner's party id and key.
    fn owner(&self) -> (String, SigningKey) {
        (self.log.owner_id.clone(), self.log.owner.clone())
    }

    /// `party` registers `id` acting for `principal`, a system
    /// [`system_of`] it owns inside the boundary, and a key, which it
    /// returns.
    async fn party(&mut self, id: &str, principal: &str) -> SigningKey {
        let (o, ok) = self.owner();
        self.accept(&event(&o, party_registered(id, principal)), &ok)
            .await;
        self.system(&system_of(id), id, true, false).await;
        let key = SigningKey::generate(&mut rand_core::OsRng);
        self.accept(&event(&o, key_added(id, &key, 0, 0)), &ok)
            .await;
        key
    }

    /// `system` registers a system owned by `owner_party`.
    async fn system(&mut self, id: &str, owner_party: &str, inside: bool, removable: bool) -> u64 {
        let (o, ok) = self.owner();
        self.accept(
            &event(&o, system_registered(id, owner_party, inside, removable)),
            &ok,
        )
        .await
    }

    /// `accept` appends `e` and asserts it lands at exactly the next index.
    async fn accept(&mut self, e: &v1::Event, key: &SigningKey) -> u64 {
        let r = self
            .c
            .append(req(signed(e, &[key])))
            .await
            .unwrap_or_else(|s| {
                panic!(
                    "an event that must be accepted was refused ({:?}: {}): {:?}",
                    s.code(),
                    s.message(),
                    e.body
                )
            })
            .into_inner();
        assert!(!r.duplicate, "a fresh event was reported as a duplicate");
        assert_eq!(
            r.index, self.size,
            "an accepted event landed at {} but the log should have held {} entries: a refused event was appended",
            r.index, self.size
        );
        self.size += 1;
        r.index
    }

    /// `refuse` appends `e` and asserts the refusal's code, field and
    /// message.
    async fn refuse(&mut self, e: &v1::Event, key: &SigningKey, want: Want, needle: &str) {
        match self.c.append(req(signed(e, &[key]))).await {
            Ok(r) => panic!(
                "accepted at index {}, but should be refused with {needle:?}: {:?}",
                r.into_inner().index,
                e.body
            ),
            Err(err) => check_status(&err, want, needle),
        }
    }

    /// `rule` proves one rule: `bad` is refused as `want` says, then the
    /// same event with `good` as its body (and the same event id) is
    /// accepted. It returns the accepted event's index.
    async fn rule(
        &mut self,
        reporter: &str,
        key: &SigningKey,
        bad: Body,
        good: Body,
        want: Want,
        needle: &str,
    ) -> u64 {
        let mut e = event(reporter, bad);
        self.refuse(&e, key, want, needle).await;
        e.body = Some(good);
        self.accept(&e, key).await
    }

    /// `published_size` is the size of the latest signed checkpoint.
    async fn published_size(&mut self) -> u64 {
        let note = self
            .c
            .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
            .await
            .unwrap()
            .into_inner()
            .checkpoint;
        self.verifier.verify(&note).unwrap().size
    }

    /// `settle` waits for the checkpoint to cover every accepted event,
    /// then checks that the published tree holds exactly those entries.
    async fn settle(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.published_size().await < self.size {
            assert!(Instant::now() < deadline, "no checkpoint covers the log");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Three checkpoint intervals: anything appended since is published.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            self.published_size().await,
            self.size,
            "the log holds entries no accepted append accounts for"
        );
        let past_end = self
            .c
            .get_entries(v1::GetEntriesRequest {
                start: self.size,
                end: self.size + 1,
            })
            .await
            .expect_err("an entry past the accepted ones");
        assert_eq!(past_end.code(), Code::OutOfRange, "{}", past_end.message());
    }
}

fn check_status(err: &tonic::Status, want: Want, needle: &str) {
    assert_eq!(
        err.code(),
        want.code(),
        "refused with the wrong code: {}",
        err.message()
    );
    assert!(
        err.message().contains(needle),
        "{:?} lacks {needle:?}",
        err.message()
    );
    if let Want::Invalid(field) = want {
        let bad = err
            .get_details_bad_request()
            .unwrap_or_else(|| panic!("no BadRequest details on {:?}", err.message()));
        assert_eq!(
            bad.field_violations
                .iter()
                .map(|v| v.field.as_str())
                .collect::<Vec<_>>(),
            [field],
            "{}",
            err.message()
        );
    }
}

fn req(e: v1::SignedEvent) -> v1::AppendRequest {
    v1::AppendRequest {
        event: Some(e),
        wait_for_checkpoint: false,
    }
}

fn custody(c: v1::CustodyAction) -> Body {
    Body::Custody(c)
}

/// `act` is a custody action with only its kind, actor and asset set.
fn act(kind: K, actor: &str, asset: &[u8]) -> v1::CustodyAction {
    v1::CustodyAction {
        action: kind as i32,
        actor: actor.into(),
        asset_digest: asset.to_vec(),
        ..Default::default()
    }
}

/// `capture` is a well-formed CAPTURE of `asset` into `system`.
fn capture(actor: &str, asset: &[u8], system: &str) -> v1::CustodyAction {
    v1::CustodyAction {
        to_system: system.into(),
        modality: v1::Modality::FaceImage as i32,
        subject_class: v1::SubjectClass::Citizen as i32,
        ..act(K::Capture, actor, asset)
    }
}

/// `transfer` is a COPY or MOVE of `asset` from one system to another.
fn transfer(kind: K, actor: &str, asset: &[u8], from: &str, to: &str) -> v1::CustodyAction {
    v1::CustodyAction {
        from_system: from.into(),
        to_system: to.into(),
        ..act(kind, actor, asset)
    }
}

/// `delete` is a well-formed DELETE of `asset` from `system`.
fn delete(actor: &str, asset: &[u8], system: &str) -> v1::CustodyAction {
    v1::CustodyAction {
        from_system: system.into(),
        delete_method: v1::DeleteMethod::CryptoErase as i32,
        ..act(K::Delete, actor, asset)
    }
}

/// `receipt` acknowledges the transfer logged at `of`.
fn receipt(actor: &str, of: u64) -> v1::CustodyAction {
    v1::CustodyAction {
        receipt_of: of,
        ..act(K::Receipt, actor, &[])
    }
}

fn manifest(root: &[u8], count: u64) -> Option<v1::Manifest> {
    Some(v1::Manifest {
        root: root.to_vec(),
        count,
    })
}

fn grant(id: &str, grantee: &str, systems: &[&str], from: i64, to: i64) -> Body {
    Body::GrantIssued(v1::GrantIssued {
        grant_id: id.into(),
        grantee: grantee.into(),
        systems: systems.iter().map(|s| s.to_string()).collect(),
        valid_from_unix_nanos: from,
        valid_to_unix_nanos: to,
        ..Default::default()
    })
}

fn revoke_grant(id: &str) -> Body {
    Body::GrantRevoked(v1::GrantRevoked {
        grant_id: id.into(),
    })
}

fn retention(id: &str, system: &str, max_age: i64) -> Body {
    Body::RetentionRulePublished(v1::RetentionRulePublished {
        rule_id: id.into(),
        authority: v1::RetentionAuthority::Sorn as i32,
        authority_ref: "sorn-7".into(),
        system_id: system.into(),
        max_age_nanos: max_age,
        clock: v1::RetentionClock::Capture as i32,
        ..Default::default()
    })
}

fn hold(id: &str, asset: Option<&[u8]>, system: &str, released: bool) -> Body {
    Body::LegalHold(v1::LegalHold {
        hold_id: id.into(),
        assets: asset.map(|d| v1::AssetRef {
            r#ref: Some(v1::asset_ref::Ref::Digest(d.to_vec())),
        }),
        system_id: system.into(),
        released,
    })
}

fn revoke_key(party: &str, key: &SigningKey) -> Body {
    Body::KeyRevoked(v1::KeyRevoked {
        party_id: party.into(),
        key_id: custody_domain::key_id_of(&key.verifying_key().to_bytes())
            .0
            .to_vec(),
    })
}

/// `session_of` is a vendor's maintenance session on `system`, begun an
/// hour ago and still open.
fn session_of(actor: &str, system: &str) -> v1::MaintenanceSession {
    v1::MaintenanceSession {
        session_id: "ms-1".into(),
        actor: actor.into(),
        system_id: system.into(),
        purpose: v1::Purpose::Maintenance as i32,
        start_unix_nanos: now() - HOUR,
        ..Default::default()
    }
}

/// `mth` is the RFC 6962 Merkle tree hash of `digests` as leaves, computed
/// here independently of the server.
fn mth(digests: &[[u8; 32]]) -> Hash {
    match digests.len() {
        0 => unreachable!("a manifest has members"),
        1 => tlog_tiles::record_hash(&digests[0]),
        n => {
            let k = 1 << (n - 1).ilog2();
            tlog_tiles::node_hash(mth(&digests[..k]), mth(&digests[k..]))
        }
    }
}

/// `BadUpload` is a PutManifest that must be refused: its chunks, the root
/// it expects, and what the refusal must say.
type BadUpload<'a> = (Vec<Vec<[u8; 32]>>, Option<Vec<u8>>, &'a str);

/// `put_manifest` uploads `chunks` of members, each with `expected_root`.
async fn put_manifest<C: AsRef<[[u8; 32]]>>(
    c: &mut CustodyLogClient<Channel>,
    chunks: &[C],
    expected_root: Option<&[u8]>,
) -> Result<v1::Manifest, tonic::Status> {
    let reqs: Vec<_> = chunks
        .iter()
        .map(|ch| v1::PutManifestRequest {
            members: ch.as_ref().iter().map(|d| d.to_vec()).collect(),
            expected_root: expected_root.map(<[u8]>::to_vec).unwrap_or_default(),
        })
        .collect();
    c.put_manifest(tokio_stream::iter(reqs))
        .await
        .map(|r| r.into_inner().manifest.expect("a manifest"))
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_events_that_contradict_the_registry_are_refused() {
    let mut l = Ledger::start().await;
    let (o, ok) = l.owner();
    l.party("cam", &o).await;

    // SYSTEM_REGISTERED: an id already taken, and an owner never registered.
    l.rule(
        &o,
        &ok,
        system_registered("cam-sys", "cam", true, false),
        system_registered("cam-archive", "cam", true, false),
        Want::Precondition,
        "system cam-sys is already registered",
    )
    .await;
    l.rule(
        &o,
        &ok,
        system_registered("ghost-sys", "ghost", true, false),
        system_registered("ghost-sys", "cam", true, false),
        Want::Precondition,
        "owner party ghost is not a registered party: register it with PARTY_REGISTERED first",
    )
    .await;

    // GRANT_ISSUED: a duplicate id, an unknown grantee, an unknown system,
    // and an empty or inverted validity window.
    let t = now();
    l.accept(&event(&o, grant("g-1", "cam", &["cam-sys"], 0, 0)), &ok)
        .await;
    l.rule(
        &o,
        &ok,
        grant("g-1", "cam", &["cam-sys"], 0, 0),
        grant("g-2", "cam", &["cam-sys"], 0, 0),
        Want::Precondition,
        "grant g-1 is already issued; issue a new grant id",
    )
    .await;
    l.rule(
        &o,
        &ok,
        grant("g-3", "ghost", &[], 0, 0),
        grant("g-3", "cam", &[], 0, 0),
        Want::Precondition,
        "grantee ghost is not a registered party: register it with PARTY_REGISTERED first",
    )
    .await;
    l.rule(
        &o,
        &ok,
        grant("g-4", "cam", &["cam-sys", "nowhere-sys"], 0, 0),
        grant("g-4", "cam", &["cam-sys", "cam-archive"], 0, 0),
        Want::Precondition,
        "granted system nowhere-sys is not a registered system: register it with SYSTEM_REGISTERED first",
    )
    .await;
    l.refuse(
        &event(&o, grant("g-5", "cam", &[], t, t - 1)),
        &ok,
        Want::Invalid("grant_issued.valid_to"),
        "valid_to must be after valid_from (or 0 for open-ended)",
    )
    .await;
    l.rule(
        &o,
        &ok,
        grant("g-5", "cam", &[], t, t),
        grant("g-5", "cam", &[], t, t + 1),
        Want::Invalid("grant_issued.valid_to"),
        "valid_to must be after valid_from (or 0 for open-ended)",
    )
    .await;

    // GRANT_REVOKED: a grant never issued, and one already revoked.
    l.rule(
        &o,
        &ok,
        revoke_grant("g-9"),
        revoke_grant("g-1"),
        Want::Precondition,
        "grant g-9 was never issued",
    )
    .await;
    l.refuse(
        &event(&o, revoke_grant("g-1")),
        &ok,
        Want::Precondition,
        "grant g-1 is already revoked",
    )
    .await;

    // RETENTION_RULE_PUBLISHED: a duplicate id, a non-positive age, and an
    // unknown system.
    l.accept(&event(&o, retention("r-1", "", HOUR)), &ok).await;
    l.rule(
        &o,
        &ok,
        retention("r-1", "", 2 * HOUR),
        retention("r-2", "", 2 * HOUR),
        Want::Precondition,
        "retention rule r-1 is already published; publish a new rule id",
    )
    .await;
    l.refuse(
        &event(&o, retention("r-3", "", -HOUR)),
        &ok,
        Want::Invalid("retention_rule.max_age"),
        "max_age must be a positive duration in nanoseconds",
    )
    .await;
    l.rule(
        &o,
        &ok,
        retention("r-3", "", 0),
        retention("r-3", "", 1),
        Want::Invalid("retention_rule.max_age"),
        "max_age must be a positive duration in nanoseconds",
    )
    .await;
    l.rule(
        &o,
        &ok,
        retention("r-4", "nowhere-sys", HOUR),
        retention("r-4", "cam-sys", HOUR),
        Want::Precondition,
        "rule system nowhere-sys is not a registered system",
    )
    .await;

    // LEGAL_HOLD: nothing held, an unknown system, a release of a hold never
    // placed, the same hold placed twice, and released twice.
    let asset = digest();
    let placed = l
        .rule(
            &o,
            &ok,
            hold("h-1", None, "", false),
            hold("h-1", None, "cam-sys", false),
            Want::Invalid("legal_hold.assets"),
            "a legal hold must name assets (a digest or manifest) or a system",
        )
        .await;
    l.rule(
        &o,
        &ok,
        hold("h-2", None, "nowhere-sys", false),
        hold("h-2", Some(&asset), "", false),
        Want::Precondition,
        "held system nowhere-sys is not a registered system",
    )
    .await;
    l.rule(
        &o,
        &ok,
        hold("h-3", Some(&asset), "", true),
        hold("h-3", Some(&asset), "", false),
        Want::Precondition,
        "legal hold h-3 cannot be released: it was never placed",
    )
    .await;
    l.rule(
        &o,
        &ok,
        hold("h-1", None, "cam-sys", false),
        hold("h-1", None, "cam-sys", true),
        Want::Precondition,
        &format!("legal hold h-1 was already placed by entry {placed}"),
    )
    .await;
    l.refuse(
        &event(&o, hold("h-1", None, "cam-sys", true)),
        &ok,
        Want::Precondition,
        "legal hold h-1 is already released",
    )
    .await;
    l.settle().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_events_reported_by_anyone_but_the_data_owner_are_denied() {
    let mut l = Ledger::start().await;
    let (o, ok) = l.owner();
    let cam = l.party("cam", &o).await;
    let spare = SigningKey::generate(&mut rand_core::OsRng);
    let next = SigningKey::generate(&mut rand_core::OsRng);
    l.accept(&event(&o, key_added("cam", &spare, 0, 0)), &ok)
        .await;
    l.accept(&event(&o, grant("g-1", "cam", &[], 0, 0)), &ok)
        .await;
    l.accept(&event(&o, hold("h-1", None, "cam-sys", false)), &ok)
        .await;
    // Every registry kind, each well formed and valid when the owner
    // reports it: signed by a registered party's own key, it is denied.
    let bodies = [
        ("PARTY_REGISTERED", party_registered("cam-2", &o)),
        ("KEY_ADDED", key_added("cam", &next, 0, 0)),
        ("KEY_REVOKED", revoke_key("cam", &spare)),
        (
            "SYSTEM_REGISTERED",
            system_registered("usb-1", "cam", false, true),
        ),
        ("GRANT_ISSUED", grant("g-2", "cam", &[], 0, 0)),
        ("GRANT_REVOKED", revoke_grant("g-1")),
        ("RETENTION_RULE_PUBLISHED", retention("r-1", "", HOUR)),
        ("LEGAL_HOLD", hold("h-1", None, "cam-sys", true)),
    ];
    for (code, body) in bodies {
        let mut e = event("cam", body);
        l.refuse(
            &e,
            &cam,
            Want::Denied,
            &format!("{code} must be reported by the data owner {o}, not cam"),
        )
        .await;
        e.reporter = o.clone();
        l.accept(&e, &ok).await;
    }
    l.settle().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn party_and_key_registrations_that_contradict_the_registry_are_refused() {
    let mut l = Ledger::start().await;
    let (o, ok) = l.owner();
    let cam = l.party("cam", &o).await;
    l.party("vendor", &o).await;

    // PARTY_REGISTERED: no principal, and a principal never registered.
    l.rule(
        &o,
        &ok,
        party_registered("cam-2", ""),
        party_registered("cam-2", &o),
        Want::Invalid("party_registered.acts_on_behalf_of"),
        "a party must act on behalf of a registered party",
    )
    .await;
    l.rule(
        &o,
        &ok,
        party_registered("cam-3", "ghost"),
        party_registered("cam-3", "cam"),
        Want::Precondition,
        "party cam-3 acts on behalf of ghost, which is not registered",
    )
    .await;

    // KEY_ADDED of a key some party already holds.
    let fresh = SigningKey::generate(&mut rand_core::OsRng);
    l.rule(
        &o,
        &ok,
        key_added("vendor", &cam, 0, 0),
        key_added("vendor", &fresh, 0, 0),
        Want::Precondition,
        "is already registered to party cam",
    )
    .await;

    // KEY_REVOKED: an unknown key, another party's key, a revoked key.
    let stranger = SigningKey::generate(&mut rand_core::OsRng);
    l.rule(
        &o,
        &ok,
        revoke_key("vendor", &stranger),
        revoke_key("vendor", &fresh),
        Want::Precondition,
        "is not registered",
    )
    .await;
    l.rule(
        &o,
        &ok,
        revoke_key("vendor", &cam),
        revoke_key("cam", &cam),
        Want::Precondition,
        "belongs to party cam, not vendor",
    )
    .await;
    l.refuse(
        &event(&o, revoke_key("cam", &cam)),
        &ok,
        Want::Precondition,
        "is already revoked",
    )
    .await;
    l.settle().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn custody_events_naming_unregistered_or_unrelated_parties_are_refused() {
    let mut l = Ledger::start().await;
    let (o, ok) = l.owner();
    let cam = l.party("cam", &o).await;
    let vendor = l.party("vendor", &o).await;
    let agent = l.party("cam-agent", "cam").await;
    let a = digest();

    // Unregistered actor, system, principal and attester.
    l.rule(
        "cam",
        &cam,
        custody(capture("ghost", &a, "cam-sys")),
        custody(capture("cam", &a, "cam-sys")),
        Want::Precondition,
        "actor ghost is not a registered party: register it with PARTY_REGISTERED first",
    )
    .await;
    l.rule(
        "cam",
        &cam,
        custody(capture("cam", &digest(), "ghost-sys")),
        custody(capture("cam", &digest(), "cam-sys")),
        Want::Precondition,
        "to_system ghost-sys is not a registered system: register it with SYSTEM_REGISTERED first",
    )
    .await;
    l.rule(
        "cam",
        &cam,
        custody(transfer(K::Copy, "cam", &a, "ghost-sys", "vendor-sys")),
        custody(transfer(K::Copy, "cam", &a, "cam-sys", "vendor-sys")),
        Want::Precondition,
        "from_system ghost-sys is not a registered system: register it with SYSTEM_REGISTERED first",
    )
    .await;
    l.rule(
        "cam",
        &cam,
        custody(v1::CustodyAction {
            on_behalf_of: "ghost".into(),
            ..capture("cam", &digest(), "cam-sys")
        }),
        custody(v1::CustodyAction {
            on_behalf_of: o.clone(),
            ..capture("cam", &digest(), "cam-sys")
        }),
        Want::Precondition,
        "on_behalf_of ghost is not a registered party",
    )
    .await;
    l.rule(
        "vendor",
        &vendor,
        custody(v1::CustodyAction {
            attested_by: "ghost".into(),
            ..delete("vendor", &a, "vendor-sys")
        }),
        custody(v1::CustodyAction {
            attested_by: "cam".into(),
            ..delete("vendor", &a, "vendor-sys")
        }),
        Want::Precondition,
        "attested_by ghost is not a registered party",
    )
    .await;

    // A reporter that is neither the actor nor its principal, and that
    // owns or operates none of the action's systems.
    let denied =
        "reporter cam may name as actor only itself or a party acting on its behalf, not vendor";
    l.rule(
        "cam",
        &cam,
        custody(capture("vendor", &digest(), "vendor-sys")),
        custody(capture("cam", &digest(), "cam-sys")),
        Want::Denied,
        denied,
    )
    .await;
    let mut e = event("cam", custody(capture("vendor", &digest(), "vendor-sys")));
    l.refuse(&e, &cam, Want::Denied, denied).await;
    e.reporter = "vendor".into();
    l.accept(&e, &vendor).await;
    // The data owner reports its agent's action, and a principal its
    // agent's; an agent never names its principal (upward), not even on a
    // system it operates.
    l.accept(
        &event(&o, custody(capture("cam", &digest(), "cam-sys"))),
        &ok,
    )
    .await;
    l.refuse(
        &event("cam-agent", custody(capture("cam", &digest(), "cam-sys"))),
        &agent,
        Want::Denied,
        "reporter cam-agent acts on behalf of cam, so it may not name cam as the actor",
    )
    .await;
    l.accept(
        &event(
            "cam",
            custody(capture("cam-agent", &digest(), "cam-agent-sys")),
        ),
        &cam,
    )
    .await;
    // An agent of one party may not report for a sibling of its principal.
    l.refuse(
        &event(
            "cam-agent",
            custody(capture("vendor", &digest(), "vendor-sys")),
        ),
        &agent,
        Want::Denied,
        "cam-agent may name as actor only itself or a party acting on its behalf, not vendor",
    )
    .await;

    // MAINTENANCE_SESSION: a registered actor, principal and system, and a
    // reporter that is the maintained system's owner (or its agent) or may
    // report for the vendor.
    let session = |actor: &str, system: &str| Body::MaintenanceSession(session_of(actor, system));
    l.rule(
        "cam",
        &cam,
        session("ghost", "cam-sys"),
        session("vendor", "cam-sys"),
        Want::Precondition,
        "actor ghost is not a registered party: register it with PARTY_REGISTERED first",
    )
    .await;
    l.rule(
        "cam",
        &cam,
        session("vendor", "vendor-sys"),
        session("vendor", "cam-sys"),
        Want::Denied,
        denied,
    )
    .await;
    l.accept(&event("cam-agent", session("vendor", "cam-sys")), &agent)
        .await;
    l.refuse(
        &event("cam-agent", session("vendor", "vendor-sys")),
        &agent,
        Want::Denied,
        "another party's action may be reported only by the owner or operator of vendor-sys",
    )
    .await;
    l.rule(
        "vendor",
        &vendor,
        session("vendor", "ghost-sys"),
        session("vendor", "cam-sys"),
        Want::Precondition,
        "maintained system ghost-sys is not a registered system",
    )
    .await;
    l.rule(
        "vendor",
        &vendor,
        Body::MaintenanceSession(v1::MaintenanceSession {
            on_behalf_of: "ghost".into(),
            ..session_of("vendor", "cam-sys")
        }),
        Body::MaintenanceSession(v1::MaintenanceSession {
            on_behalf_of: "cam".into(),
            ..session_of("vendor", "cam-sys")
        }),
        Want::Precondition,
        "on_behalf_of ghost is not a registered party",
    )
    .await;

    // CUSTODY_ATTESTATION: only the system's owner (or its agents) may
    // attest, only a registered system, only an uploaded manifest.
    let attest = |system: &str, holdings: Option<v1::Manifest>| {
        Body::CustodyAttestation(v1::CustodyAttestation {
            system_id: system.into(),
            holdings,
        })
    };
    l.rule(
        "vendor",
        &vendor,
        attest("cam-sys", None),
        attest("vendor-sys", None),
        Want::Denied,
        "only the owner of system cam-sys (cam) or its device or software agent may attest its holdings, not vendor",
    )
    .await;
    l.rule(
        "cam",
        &cam,
        attest("ghost-sys", None),
        attest("cam-sys", None),
        Want::Precondition,
        "attested system ghost-sys is not a registered system",
    )
    .await;
    let root = digest();
    l.rule(
        "cam-agent",
        &agent,
        attest("cam-sys", manifest(&root, 3)),
        attest("cam-sys", manifest(&[0; 32], 0)),
        Want::Precondition,
        &format!(
            "manifest {} with 3 members was not uploaded: send its members with PutManifest first",
            hex(&root)
        ),
    )
    .await;
    l.settle().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_custody_events_are_refused_with_invalid_argument() {
    let mut l = Ledger::start().await;
    let (o, _) = l.owner();
    let cam = l.party("cam", &o).await;
    l.party("vendor", &o).await;
    let a = digest();
    let good = capture("cam", &a, "cam-sys");

    // CAPTURE needs an asset, a destination, a modality and a subject class,
    // and has neither a source nor parents.
    let broken: [(v1::CustodyAction, &str, &str); 6] = [
        (
            v1::CustodyAction {
                asset_digest: vec![],
                ..good.clone()
            },
            "custody.asset_digest",
            "a CAPTURE or DERIVE names the new asset: set asset_digest (or a manifest)",
        ),
        (
            v1::CustodyAction {
                to_system: String::new(),
                ..good.clone()
            },
            "custody.to_system",
            "a new asset must rest somewhere: set to_system",
        ),
        (
            v1::CustodyAction {
                modality: 0,
                ..good.clone()
            },
            "custody.modality",
            "set the new asset's modality",
        ),
        (
            v1::CustodyAction {
                subject_class: 0,
                ..good.clone()
            },
            "custody.subject_class",
            "set the new asset's subject class",
        ),
        (
            v1::CustodyAction {
                from_system: "vendor-sys".into(),
                ..good.clone()
            },
            "custody.from_system",
            "CAPTURE creates an asset; it has no from_system",
        ),
        (
            v1::CustodyAction {
                parents: vec![v1::Parent {
                    digest: digest().to_vec(),
                    relationship: v1::Relationship::DerivedFrom as i32,
                }],
                ..good.clone()
            },
            "custody.parents",
            "only DERIVE has parents",
        ),
    ];
    for (bad, field, needle) in broken {
        l.refuse(
            &event("cam", custody(bad)),
            &cam,
            Want::Invalid(field),
            needle,
        )
        .await;
    }
    l.accept(&event("cam", custody(good)), &cam).await;

    // COPY and MOVE need two different systems.
    for kind in [K::Copy, K::Move] {
        l.rule(
            "cam",
            &cam,
            custody(transfer(kind, "cam", &a, "cam-sys", "cam-sys")),
            custody(transfer(kind, "cam", &a, "cam-sys", "vendor-sys")),
            Want::Invalid("custody.to_system"),
            "from_system and to_system are the same system",
        )
        .await;
    }
    l.refuse(
        &event(
            "cam",
            custody(transfer(K::Copy, "cam", &a, "", "vendor-sys")),
        ),
        &cam,
        Want::Invalid("custody.from_system"),
        "a transfer has a source: set from_system",
    )
    .await;
    l.refuse(
        &event("cam", custody(transfer(K::Copy, "cam", &a, "cam-sys", ""))),
        &cam,
        Want::Invalid("custody.to_system"),
        "a transfer has a destination: set to_system",
    )
    .await;

    // Every action but RECEIPT names its asset.
    let unnamed = [
        (K::Copy, "name the asset or manifest transferred"),
        (K::Move, "name the asset or manifest transferred"),
        (K::Access, "name the asset or manifest used"),
        (K::Use, "name the asset or manifest used"),
        (K::Delete, "name the asset or manifest deleted"),
    ];
    for (kind, needle) in unnamed {
        let c = v1::CustodyAction {
            purpose: v1::Purpose::QualityAssurance as i32,
            delete_method: v1::DeleteMethod::Logical as i32,
            ..transfer(kind, "cam", &[], "cam-sys", "vendor-sys")
        };
        l.refuse(
            &event("cam", custody(c)),
            &cam,
            Want::Invalid("custody.asset_digest"),
            needle,
        )
        .await;
    }

    // An asset named twice over: by digest and by manifest.
    l.rule(
        "cam",
        &cam,
        custody(v1::CustodyAction {
            manifest: manifest(&digest(), 2),
            ..transfer(K::Copy, "cam", &a, "cam-sys", "vendor-sys")
        }),
        custody(transfer(K::Copy, "cam", &a, "cam-sys", "vendor-sys")),
        Want::Invalid("custody.manifest"),
        "set asset_digest or manifest, not both",
    )
    .await;
    l.refuse(
        &event(
            "cam",
            custody(v1::CustodyAction {
                asset_digest: vec![],
                manifest: manifest(&digest(), 0),
                ..transfer(K::Copy, "cam", &a, "cam-sys", "vendor-sys")
            }),
        ),
        &cam,
        Want::Invalid("custody.manifest"),
        "a manifest names 1 to 1000000 assets, not 0",
    )
    .await;

    // ACCESS and USE happen on a system, for a stated purpose.
    for kind in [K::Access, K::Use] {
        let on_cam = v1::CustodyAction {
            from_system: "cam-sys".into(),
            ..act(kind, "cam", &a)
        };
        l.rule(
            "cam",
            &cam,
            custody(on_cam.clone()),
            custody(v1::CustodyAction {
                purpose: v1::Purpose::QualityAssurance as i32,
                ..on_cam
            }),
            Want::Invalid("custody.purpose"),
            "an access or use states its purpose",
        )
        .await;
    }
    l.refuse(
        &event(
            "cam",
            custody(v1::CustodyAction {
                purpose: v1::Purpose::QualityAssurance as i32,
                ..act(K::Access, "cam", &a)
            }),
        ),
        &cam,
        Want::Invalid("custody.from_system"),
        "ACCESS happens on a system: set from_system",
    )
    .await;

    // DERIVE names its parents, and one new asset by digest.
    let derive = v1::CustodyAction {
        action: K::Derive as i32,
        ..capture("cam", &digest(), "cam-sys")
    };
    let parents = vec![v1::Parent {
        digest: a.to_vec(),
        relationship: v1::Relationship::DerivedFrom as i32,
    }];
    l.rule(
        "cam",
        &cam,
        custody(derive.clone()),
        custody(v1::CustodyAction {
            parents: parents.clone(),
            ..derive.clone()
        }),
        Want::Invalid("custody.parents"),
        "DERIVE names the parents the asset was made from",
    )
    .await;
    l.refuse(
        &event(
            "cam",
            custody(v1::CustodyAction {
                asset_digest: vec![],
                manifest: manifest(&digest(), 2),
                parents,
                ..derive
            }),
        ),
        &cam,
        Want::Invalid("custody.manifest"),
        "DERIVE makes one asset; name it by asset_digest",
    )
    .await;

    // Unknown and unspecified enumerated codes.
    let fresh = capture("cam", &digest(), "cam-sys");
    let codes: [(v1::CustodyAction, &str, &str); 7] = [
        (
            v1::CustodyAction {
                modality: 99,
                ..fresh.clone()
            },
            "custody.modality",
            "custody.modality: 99 is not a known code",
        ),
        (
            v1::CustodyAction {
                subject_class: -1,
                ..fresh.clone()
            },
            "custody.subject_class",
            "custody.subject_class: -1 is not a known code",
        ),
        (
            v1::CustodyAction {
                action: 99,
                ..fresh.clone()
            },
            "custody.action",
            "custody.action: 99 is not a known code",
        ),
        (
            v1::CustodyAction {
                action: 0,
                ..fresh.clone()
            },
            "custody.action",
            "custody.action: 0 is not a known code",
        ),
        (
            v1::CustodyAction {
                purpose: 8,
                ..fresh.clone()
            },
            "custody.purpose",
            "custody.purpose: 8 is not a known code",
        ),
        (
            v1::CustodyAction {
                outcome: 3,
                ..fresh.clone()
            },
            "custody.outcome",
            "custody.outcome: 3 is not a known code",
        ),
        (
            v1::CustodyAction {
                delete_method: 256,
                ..fresh.clone()
            },
            "custody.delete_method",
            "custody.delete_method: 256 is not a known code",
        ),
    ];
    for (bad, field, needle) in codes {
        l.refuse(
            &event("cam", custody(bad)),
            &cam,
            Want::Invalid(field),
            needle,
        )
        .await;
    }
    let unknown_parent = v1::CustodyAction {
        action: K::Derive as i32,
        parents: vec![v1::Parent {
            digest: a.to_vec(),
            relationship: 3,
        }],
        ..fresh.clone()
    };
    l.refuse(
        &event("cam", custody(unknown_parent)),
        &cam,
        Want::Invalid("custody.parents.relationship"),
        "custody.parents.relationship: 3 is not a known code",
    )
    .await;
    l.accept(&event("cam", custody(fresh)), &cam).await;

    // RECEIPT names the transfer it acknowledges.
    l.refuse(
        &event("cam", custody(receipt("cam", 0))),
        &cam,
        Want::Invalid("custody.receipt_of"),
        "RECEIPT names the log index of the COPY or MOVE it acknowledges",
    )
    .await;
    l.settle().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_and_deletes_that_contradict_the_log_are_refused() {
    let mut l = Ledger::start().await;
    let (o, ok) = l.owner();
    let cam = l.party("cam", &o).await;
    let vendor = l.party("vendor", &o).await;
    l.system("cam-archive", "cam", true, false).await;
    let a = digest();
    let captured = l
        .accept(&event("cam", custody(capture("cam", &a, "cam-sys"))), &cam)
        .await;
    let copied = l
        .accept(
            &event(
                "cam",
                custody(transfer(K::Copy, "cam", &a, "cam-sys", "vendor-sys")),
            ),
            &cam,
        )
        .await;

    // RECEIPT of an entry that is not a transfer: a CAPTURE, a registry
    // entry, and an index past the end of the log.
    for of in [captured, 1, 1_000_000] {
        l.refuse(
            &event("vendor", custody(receipt("vendor", of))),
            &vendor,
            Want::Precondition,
            &format!("entry {of} is not a logged COPY or MOVE to a system vendor operates, so there is nothing for it to acknowledge"),
        )
        .await;
    }
    // RECEIPT by a party other than the recipient, even the sender: the
    // same refusal as for no transfer at all, which names neither the
    // recipient nor its system (a reporter may not read others' entries).
    l.refuse(
        &event("cam", custody(receipt("cam", copied))),
        &cam,
        Want::Precondition,
        &format!("entry {copied} is not a logged COPY or MOVE to a system cam operates, so there is nothing for it to acknowledge"),
    )
    .await;
    // RECEIPT naming other assets than were transferred.
    let mut e = event(
        "vendor",
        custody(v1::CustodyAction {
            asset_digest: digest().to_vec(),
            ..receipt("vendor", copied)
        }),
    );
    l.refuse(
        &e,
        &vendor,
        Want::Invalid("custody.asset_digest"),
        &format!("entry {copied} transferred other assets than this RECEIPT names"),
    )
    .await;
    e.body = Some(custody(v1::CustodyAction {
        asset_digest: a.to_vec(),
        ..receipt("vendor", copied)
    }));
    let acked = l.accept(&e, &vendor).await;
    // A second RECEIPT of the same transfer.
    l.refuse(
        &event("vendor", custody(receipt("vendor", copied))),
        &vendor,
        Want::Precondition,
        &format!("the transfer at entry {copied} was already acknowledged by entry {acked}"),
    )
    .await;

    // DELETE from a system the asset never reached, and of an asset the log
    // never saw.
    l.rule(
        "cam",
        &cam,
        custody(delete("cam", &a, "cam-archive")),
        custody(delete("cam", &a, "cam-sys")),
        Want::Precondition,
        &format!(
            "asset {} has no open custody interval on system cam-archive: nothing to delete",
            hex(&a)
        ),
    )
    .await;
    let unseen = digest();
    l.refuse(
        &event("cam", custody(delete("cam", &unseen, "cam-sys"))),
        &cam,
        Want::Precondition,
        &format!(
            "asset {} has no open custody interval on system cam-sys",
            hex(&unseen)
        ),
    )
    .await;
    // A DELETE of a copy already deleted.
    l.refuse(
        &event("cam", custody(delete("cam", &a, "cam-sys"))),
        &cam,
        Want::Precondition,
        "has no open custody interval on system cam-sys",
    )
    .await;

    // DELETE without a method, and without a system.
    l.rule(
        "vendor",
        &vendor,
        custody(v1::CustodyAction {
            delete_method: 0,
            ..delete("vendor", &a, "vendor-sys")
        }),
        custody(delete("vendor", &a, "vendor-sys")),
        Want::Invalid("custody.delete_method"),
        "a DELETE records its method",
    )
    .await;
    l.refuse(
        &event("vendor", custody(delete("vendor", &a, ""))),
        &vendor,
        Want::Invalid("custody.from_system"),
        "a DELETE names the system the copy was on: set from_system",
    )
    .await;

    // DELETE and MOVE dated before the copy arrived; the boundary instant
    // itself is allowed.
    let b = digest();
    let mut e = event("cam", custody(capture("cam", &b, "cam-sys")));
    let arrived = e.event_time_unix_nanos;
    let opened = l.accept(&e, &cam).await;
    let early = format!(
        "asset {} came to system cam-sys at {arrived} ns (entry {opened}); it cannot leave earlier, at {} ns",
        hex(&b),
        arrived - 1
    );
    e = event(
        "cam",
        custody(transfer(K::Move, "cam", &b, "cam-sys", "vendor-sys")),
    );
    e.event_time_unix_nanos = arrived - 1;
    l.refuse(&e, &cam, Want::Precondition, &early).await;
    e = event("cam", custody(delete("cam", &b, "cam-sys")));
    e.event_time_unix_nanos = arrived - 1;
    l.refuse(&e, &cam, Want::Precondition, &early).await;
    e.event_time_unix_nanos = arrived;
    l.accept(&e, &cam).await;

    // The owner may report its agents' deletes too.
    let c = digest();
    l.accept(&event("cam", custody(capture("cam", &c, "cam-sys"))), &cam)
        .await;
    l.accept(&event(&o, custody(delete("cam", &c, "cam-sys"))), &ok)
        .await;
    l.settle().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_must_be_uploaded_exactly_before_bulk_events_name_them() {
    let mut l = Ledger::start().await;
    let (o, _) = l.owner();
    let cam = l.party("cam", &o).await;
    let vendor = l.party("vendor", &o).await;
    let mut members: Vec<[u8; 32]> = (0..5).map(|_| digest()).collect();
    members.sort();
    let m = &members;
    let root = mth(m).0;

    // Unsorted, duplicated (within a chunk and across chunks), wrong root,
    // empty, and malformed uploads.
    let bad_uploads: [BadUpload; 7] = [
        (
            vec![vec![m[1], m[0]]],
            None,
            "members: member 1 is not greater than the one before it; send distinct digests in ascending order",
        ),
        (
            vec![vec![m[0], m[0]]],
            None,
            "members: member 1 is not greater than the one before it",
        ),
        (
            vec![m[..3].to_vec(), m[2..].to_vec()],
            None,
            "members: member 3 is not greater than the one before it",
        ),
        (
            vec![m[..2].to_vec(), vec![m[3], m[2]]],
            None,
            "members: member 3 is not greater than the one before it",
        ),
        (
            vec![m.to_vec()],
            Some(mth(&m[..4]).0.to_vec()),
            &format!("expected_root: the members hash to {}, not ", hex(&root)),
        ),
        (vec![], None, "members: a manifest has at least one member"),
        (
            vec![vec![]],
            Some(root.to_vec()),
            "members: a manifest has at least one member",
        ),
    ];
    for (chunks, expected, needle) in bad_uploads {
        let err = put_manifest(&mut l.c, &chunks, expected.as_deref())
            .await
            .expect_err(needle);
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(
            err.message().contains(needle),
            "{:?} lacks {needle:?}",
            err.message()
        );
    }
    let short =
        l.c.put_manifest(tokio_stream::iter([v1::PutManifestRequest {
            members: vec![vec![7; 31]],
            expected_root: vec![],
        }]))
        .await
        .expect_err("a 31-byte member");
    assert_eq!(short.code(), Code::InvalidArgument, "{}", short.message());
    assert!(
        short
            .message()
            .contains("members: want a 32-byte SHA-256 digest, got 31 bytes"),
        "{}",
        short.message()
    );
    // Nothing of the refused uploads was stored.
    let err =
        l.c.get_manifest(v1::GetManifestRequest {
            root: root.to_vec(),
            ..Default::default()
        })
        .await
        .expect_err("a manifest never uploaded");
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    assert!(
        err.message().contains("was never uploaded"),
        "{}",
        err.message()
    );

    // A bulk event naming the manifest before it is uploaded.
    let bulk = |kind: K, actor: &str, from: &str, to: &str, count: u64| {
        let mut c = transfer(kind, actor, &[], from, to);
        c.manifest = manifest(&root, count);
        if kind == K::Capture {
            c = v1::CustodyAction {
                modality: v1::Modality::PlateImage as i32,
                subject_class: v1::SubjectClass::Unknown as i32,
                ..c
            };
        }
        custody(c)
    };
    let not_uploaded = format!(
        "manifest {} with 5 members was not uploaded: send its members with PutManifest first",
        hex(&root)
    );
    let mut e = event("cam", bulk(K::Capture, "cam", "", "cam-sys", 5));
    l.refuse(&e, &cam, Want::Precondition, &not_uploaded).await;

    // A valid upload, in two chunks, pinned to the root computed here.
    let put = put_manifest(&mut l.c, &[&m[..2], &m[2..]], Some(&root))
        .await
        .unwrap();
    assert_eq!(put.root, root.to_vec());
    assert_eq!(put.count, 5);
    // The same root with another count is still not an uploaded manifest.
    l.refuse(
        &event("cam", bulk(K::Capture, "cam", "", "cam-sys", 4)),
        &cam,
        Want::Precondition,
        "with 4 members was not uploaded",
    )
    .await;
    l.accept(&e, &cam).await;
    e = event("cam", bulk(K::Copy, "cam", "cam-sys", "vendor-sys", 5));
    l.accept(&e, &cam).await;
    e = event("vendor", bulk(K::Delete, "vendor", "vendor-sys", "", 5));
    if let Some(Body::Custody(ref mut c)) = e.body {
        c.delete_method = v1::DeleteMethod::Overwrite as i32;
    }
    l.accept(&e, &vendor).await;
    // Every member's copy on vendor-sys is gone, so a DELETE of one fails.
    l.refuse(
        &event("vendor", custody(delete("vendor", &m[2], "vendor-sys"))),
        &vendor,
        Want::Precondition,
        &format!(
            "asset {} has no open custody interval on system vendor-sys",
            hex(&m[2])
        ),
    )
    .await;

    // GetManifest proves a member's membership, and refuses a non-member.
    let got =
        l.c.get_manifest(v1::GetManifestRequest {
            root: root.to_vec(),
            start: 0,
            limit: 10,
            asset: m[3].to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.manifest, manifest(&root, 5));
    assert_eq!(
        got.members,
        m.iter().map(|d| d.to_vec()).collect::<Vec<_>>()
    );
    let p = got.membership.expect("a membership proof");
    assert_eq!((p.index, p.count), (3, 5));
    assert_eq!(p.asset, m[3].to_vec());
    assert_eq!(p.manifest_root, root.to_vec());
    let proof: Vec<Hash> = p
        .proof
        .iter()
        .map(|h| Hash(h.as_slice().try_into().unwrap()))
        .collect();
    verify_inclusion(&proof, 5, &Hash(root), 3, &tlog_tiles::record_hash(&m[3])).unwrap();
    assert!(
        verify_inclusion(&proof, 5, &Hash(root), 2, &tlog_tiles::record_hash(&m[3])).is_err(),
        "the proof must pin the member's position"
    );
    let outsider = digest();
    let err =
        l.c.get_manifest(v1::GetManifestRequest {
            root: root.to_vec(),
            asset: outsider.to_vec(),
            ..Default::default()
        })
        .await
        .expect_err("a non-member");
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    assert!(
        err.message().contains(&format!(
            "asset {} is not a member of manifest {}",
            hex(&outsider),
            hex(&root)
        )),
        "{}",
        err.message()
    );
    l.settle().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_breaches_are_accepted_as_evidence() {
    let mut l = Ledger::start().await;
    let (o, ok) = l.owner();
    let cam = l.party("cam", &o).await;
    let vendor = l.party("vendor", &o).await;
    l.system("usb-1", "vendor", false, true).await;
    l.system("offshore-1", "vendor", false, false).await;
    l.accept(
        &event(&o, grant("g-1", "vendor", &["vendor-sys"], 0, 0)),
        &ok,
    )
    .await;
    l.accept(&event(&o, revoke_grant("g-1")), &ok).await;
    let a = digest();
    l.accept(&event("cam", custody(capture("cam", &a, "cam-sys"))), &cam)
        .await;

    // No grant, to removable media outside the boundary.
    l.accept(
        &event(
            "cam",
            custody(transfer(K::Copy, "cam", &a, "cam-sys", "usb-1")),
        ),
        &cam,
    )
    .await;
    // No grant, to an unaccredited system outside the boundary.
    l.accept(
        &event(
            "cam",
            custody(transfer(K::Copy, "cam", &a, "cam-sys", "offshore-1")),
        ),
        &cam,
    )
    .await;
    // Relying on a revoked grant, and using the data for a purpose no grant
    // allows.
    l.accept(
        &event(
            "vendor",
            custody(v1::CustodyAction {
                grant_id: "g-1".into(),
                ..transfer(K::Move, "vendor", &a, "usb-1", "vendor-sys")
            }),
        ),
        &vendor,
    )
    .await;
    l.accept(
        &event(
            "vendor",
            custody(v1::CustodyAction {
                from_system: "offshore-1".into(),
                purpose: v1::Purpose::Training as i32,
                ..act(K::Use, "vendor", &a)
            }),
        ),
        &vendor,
    )
    .await;
    l.settle().await;

    // The breaches are on record: the asset rests offshore, and rested on
    // the USB drive until the MOVE.
    let mut q = CustodyQueryClient::connect(l.log.grpc.clone())
        .await
        .unwrap();
    let held = q
        .holders_at(v1::HoldersAtRequest {
            asset: a.to_vec(),
            time_unix_nanos: now(),
            tree_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut systems: Vec<_> = held
        .intervals
        .iter()
        .map(|i| i.system_id.as_str())
        .collect();
    systems.sort_unstable();
    assert_eq!(systems, ["cam-sys", "offshore-1", "vendor-sys"]);
    let history = q
        .asset_history(v1::AssetHistoryRequest {
            asset: a.to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.indexes.len(), 5, "{:?}", history.indexes);
}

/// Regression, "the core promise holds under attack", cases 1 and 2: a
/// subcontractor named its principal (the data owner) as the actor of its
/// own copy to its own network, and of deletes of the owner's copies, and
/// deleted from a system it never held; the lane device could not report
/// the vendor's copy it saw. Now the vendor is refused and the device's
/// report is logged as observed, with the finding on the vendor.
#[tokio::test(flavor = "multi_thread")]
async fn a_vendor_cannot_blame_its_principal_and_a_device_reports_what_a_vendor_did() {
    let mut l = Ledger::start().await;
    let (o, ok) = l.owner();
    let org = |id: &str, kind: v1::PartyKind, principal: &str| {
        Body::PartyRegistered(v1::PartyRegistered {
            party_id: id.into(),
            kind: kind as i32,
            acts_on_behalf_of: principal.into(),
        })
    };
    l.accept(&event(&o, org("prime", v1::PartyKind::Prime, &o)), &ok)
        .await;
    l.accept(
        &event(&o, org("sub", v1::PartyKind::Subcontractor, "prime")),
        &ok,
    )
    .await;
    let sub = SigningKey::generate(&mut rand_core::OsRng);
    l.accept(&event(&o, key_added("sub", &sub, 0, 0)), &ok)
        .await;
    l.system("sub-net", "sub", false, false).await;
    l.system("usb", "sub", false, true).await;
    l.system("lane", &o, true, false).await;
    let cam = l.party("cam", &o).await;
    let a = digest();
    l.accept(&event("cam", custody(capture("cam", &a, "lane"))), &cam)
        .await;

    // The vendor names the data owner, or its prime, as the actor of a
    // copy to its own network: refused, although it owns the network.
    for principal in [o.as_str(), "prime"] {
        l.refuse(
            &event(
                "sub",
                custody(transfer(K::Copy, principal, &a, "lane", "sub-net")),
            ),
            &sub,
            Want::Denied,
            &format!("reporter sub acts on behalf of {principal}, so it may not name {principal} as the actor"),
        )
        .await;
    }
    // Nor may it delete the owner's copy in the owner's name, or in its
    // own on a system it neither holds nor operates.
    l.refuse(
        &event("sub", custody(delete(&o, &a, "lane"))),
        &sub,
        Want::Denied,
        "may not name",
    )
    .await;
    l.refuse(
        &event("sub", custody(delete("sub", &a, "lane"))),
        &sub,
        Want::Denied,
        "DELETE from system lane must be made by its owner or operator",
    )
    .await;
    l.refuse(
        &event(
            "sub",
            custody(transfer(K::Move, "sub", &a, "lane", "sub-net")),
        ),
        &sub,
        Want::Denied,
        "MOVE from system lane must be made by its owner or operator",
    )
    .await;

    // The lane device reports the vendor's access and its copy to a USB
    // stick: observed, and the findings are the vendor's.
    l.accept(
        &event(
            "cam",
            custody(v1::CustodyAction {
                purpose: v1::Purpose::Maintenance as i32,
                ..transfer(K::Access, "sub", &a, "lane", "")
            }),
        ),
        &cam,
    )
    .await;
    let copied = l
        .accept(
            &event("cam", custody(transfer(K::Copy, "sub", &a, "lane", "usb"))),
            &cam,
        )
        .await;
    l.settle().await;
    let mut q = CustodyQueryClient::connect(l.log.grpc.clone())
        .await
        .unwrap();
    let found = q
        .findings(v1::FindingsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .findings;
    for rule in ["unauthorized_transfer", "boundary_violation"] {
        let f = found
            .iter()
            .find(|f| f.rule == rule && f.entries.first() == Some(&copied))
            .unwrap_or_else(|| panic!("no {rule} finding on entry {copied}: {found:?}"));
        assert_eq!(f.party, "sub", "{rule} is the actor's");
        assert_eq!(f.observed_by, "cam", "{rule} says who observed it");
        assert_eq!(f.observed_on_system, "lane");
    }
    assert!(
        found.iter().all(|f| f.party != o),
        "no finding blames the data owner: {found:?}"
    );
}

/// Regression, cases 4 to 6: an event signed for one log was replayed
/// verbatim into another with the same data owner; a body with free text
/// in an unknown field was logged and served; the same event with its id
/// in upper case was logged twice.
#[tokio::test(flavor = "multi_thread")]
async fn replayed_non_canonical_and_recased_events_are_refused() {
    let mut l = Ledger::start().await;
    let cam = l.party("cam", &l.owner().0).await;
    let mut e = event("cam", custody(capture("cam", &digest(), "cam-sys")));

    // Signed for another log.
    e.log_origin = "other.example/log".into();
    l.refuse(
        &e,
        &cam,
        Want::Invalid("event.log_origin"),
        "event is signed for log \"other.example/log\", not this log",
    )
    .await;

    // Free text in field 99 (a string), after a canonical body.
    e.log_origin = custody_e2e::ORIGIN.into();
    let mut body = prost::Message::encode_to_vec(&e);
    body.extend_from_slice(&[0x9a, 0x06, 14]);
    body.extend_from_slice(b"JANE Q DOE P12");
    let env = custody_domain::SignedEnvelope::sign(body, &[&cam]);
    let err =
        l.c.append(req(custody_proto::envelope_to_proto(&env)))
            .await
            .expect_err("a body with an unknown field is refused");
    check_status(
        &err,
        Want::Invalid("event.body"),
        "event.body is not in canonical protobuf form",
    );

    // The same event id in upper case.
    let id = e.event_id.clone();
    e.event_id = id.to_uppercase();
    l.refuse(
        &e,
        &cam,
        Want::Invalid("event.event_id"),
        "is not a UUID in its canonical form",
    )
    .await;
    e.event_id = id;
    l.accept(&e, &cam).await;
    l.settle().await;
}

/// `HoldersAt` with a `tree_size` answers as of that checkpoint, however
/// the log has grown since (an auditor compares it with a replay of
/// exactly that tree), and refuses a size the log never published.
#[tokio::test(flavor = "multi_thread")]
async fn holders_at_a_tree_size_answer_as_of_that_checkpoint() {
    let mut l = Ledger::start().await;
    let cam = l.party("cam", &l.log.owner_id.clone()).await;
    let a = digest();
    l.accept(&event("cam", custody(capture("cam", &a, "cam-sys"))), &cam)
        .await;
    l.settle().await;
    let held_size = l.size;
    l.accept(&event("cam", custody(delete("cam", &a, "cam-sys"))), &cam)
        .await;
    l.settle().await;

    let q = CustodyQueryClient::connect(l.log.grpc.clone())
        .await
        .unwrap();
    let t = now();
    let ask = |tree_size: u64| {
        let mut q = q.clone();
        async move {
            q.holders_at(v1::HoldersAtRequest {
                asset: a.to_vec(),
                time_unix_nanos: t,
                tree_size,
            })
            .await
        }
    };
    let then = ask(held_size).await.unwrap().into_inner();
    assert_eq!(then.evidence.as_ref().map(|e| e.tree_size), Some(held_size));
    let systems: Vec<_> = then
        .intervals
        .iter()
        .map(|i| i.system_id.as_str())
        .collect();
    assert_eq!(
        systems,
        ["cam-sys"],
        "as of the checkpoint before the DELETE"
    );
    let latest = ask(0).await.unwrap().into_inner();
    assert_eq!(latest.evidence.as_ref().map(|e| e.tree_size), Some(l.size));
    assert!(latest.intervals.is_empty(), "{:?}", latest.intervals);

    let err = ask(l.size + 10).await.expect_err("a size never published");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(
        err.message().starts_with("tree_size: "),
        "{}",
        err.message()
    );
}
