//! Policy findings on the real server: each rule raised where it should be
//! and not where it should not, every answer verified offline, and the
//! demo's findings against the counts its generator planted.

use std::collections::BTreeMap;

use custody_domain::{parse_rfc3339, rfc3339};
use custody_e2e::*;
use custody_proto::v1;
use ed25519_dalek::SigningKey;
use serde_json::Value;
use tonic::transport::Channel;

const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;

type Client = custody_proto::v1::custody_log_client::CustodyLogClient<Channel>;

/// `findings` runs `custody inspect findings --json --all --verify` as of
/// `as_of`, with extra filters.
fn findings(log: &Log, as_of: i64, extra: &[&str]) -> Vec<Value> {
    let vkey = log.vkey.to_str().unwrap().to_owned();
    let as_of = rfc3339(as_of);
    let mut args = vec![
        "findings",
        "--server",
        &log.grpc,
        "--as-of",
        &as_of,
        "--all",
        "--verify",
        "--log-key",
        &vkey,
    ];
    args.extend_from_slice(extra);
    match inspect_json(&args) {
        Value::Array(a) => a,
        other => panic!("findings --json is not an array: {other}"),
    }
}

/// `about` is the findings of `rule` whose entries include `index`.
fn about(all: &[Value], rule: &str, index: u64) -> usize {
    all.iter()
        .filter(|f| f["rule"] == rule)
        .filter(|f| f["entries"].as_array().unwrap().iter().any(|e| e == index))
        .count()
}

fn custody(f: impl FnOnce(&mut v1::CustodyAction)) -> v1::event::Body {
    let mut a = v1::CustodyAction::default();
    f(&mut a);
    v1::event::Body::Custody(a)
}

async fn put(c: &mut Client, e: v1::Event, key: &SigningKey) -> u64 {
    append(c, &e, &[key]).await.expect("accepted").index
}

fn at(reporter: &str, t: i64, body: v1::event::Body) -> v1::Event {
    let mut e = event(reporter, body);
    e.event_time_unix_nanos = t;
    e.reporter_seq = 0;
    e
}

struct World {
    log: Log,
    c: Client,
    cam: SigningKey,
    vendor: SigningKey,
    t0: i64,
}

/// A log with a camera (its own system), a vendor with an inside system
/// and a USB stick, and a grant to the vendor: COPY and ACCESS onto its
/// system for maintenance, for ten minutes from `t0`.
async fn world() -> World {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let vendor = register(&log, &mut c, "vendor", 0, 0).await;
    let owner = log.owner.clone();
    let usb = event(
        &log.owner_id,
        system_registered("vendor-usb", "vendor", false, true),
    );
    append(&mut c, &usb, &[&owner]).await.unwrap();
    let t0 = now() - 40 * MIN;
    let grant = event(
        &log.owner_id,
        v1::event::Body::GrantIssued(v1::GrantIssued {
            grant_id: "G1".into(),
            grantee: "vendor".into(),
            actions: vec![
                v1::CustodyActionKind::Copy as i32,
                v1::CustodyActionKind::Use as i32,
            ],
            purposes: vec![v1::Purpose::Maintenance as i32],
            systems: vec![system_of("vendor")],
            valid_from_unix_nanos: t0,
            valid_to_unix_nanos: t0 + 10 * MIN,
            ..Default::default()
        }),
    );
    append(&mut c, &grant, &[&owner]).await.unwrap();
    World {
        log,
        c,
        cam,
        vendor,
        t0,
    }
}

impl World {
    async fn capture(&mut self, asset: [u8; 32], t: i64, class: v1::SubjectClass) -> u64 {
        let body = custody(|a| {
            a.action = v1::CustodyActionKind::Capture as i32;
            a.actor = "cam".into();
            a.asset_digest = asset.to_vec();
            a.to_system = system_of("cam");
            a.modality = v1::Modality::FaceImage as i32;
            a.subject_class = class as i32;
        });
        let key = self.cam.clone();
        put(&mut self.c, at("cam", t, body), &key).await
    }

    async fn copy(&mut self, asset: [u8; 32], t: i64, to: &str, grant: &str) -> u64 {
        let body = custody(|a| {
            a.action = v1::CustodyActionKind::Copy as i32;
            a.actor = "vendor".into();
            a.asset_digest = asset.to_vec();
            a.from_system = system_of("cam");
            a.to_system = to.into();
            a.grant_id = grant.into();
            a.purpose = v1::Purpose::Maintenance as i32;
        });
        let key = self.vendor.clone();
        put(&mut self.c, at("vendor", t, body), &key).await
    }

    async fn receipt(&mut self, of: u64, t: i64) -> u64 {
        let body = custody(|a| {
            a.action = v1::CustodyActionKind::Receipt as i32;
            a.actor = "vendor".into();
            a.receipt_of = of;
        });
        let key = self.vendor.clone();
        put(&mut self.c, at("vendor", t, body), &key).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transfer_rules_raise_exactly_what_breaks_policy() {
    let mut w = world().await;
    let t0 = w.t0;
    let vendor_sys = system_of("vendor");
    let (a, b, u) = ([0xa1; 32], [0xb1; 32], [0xc1; 32]);
    w.capture(a, t0, v1::SubjectClass::NonCitizen).await;
    w.capture(b, t0, v1::SubjectClass::NonCitizen).await;
    w.capture(u, t0, v1::SubjectClass::NonCitizen).await;

    // Compliant: under the grant, to a granted system inside the boundary,
    // acknowledged at once.
    let ok = w.copy(a, t0 + 5 * MIN, &vendor_sys, "G1").await;
    w.receipt(ok, t0 + 5 * MIN + SEC).await;
    // The same transfer a minute after the grant expired.
    let expired = w.copy(b, t0 + 11 * MIN, &vendor_sys, "G1").await;
    w.receipt(expired, t0 + 11 * MIN + SEC).await;
    // To removable media outside the boundary, with no grant, never
    // acknowledged.
    let usb = w.copy(u, t0 + 12 * MIN, "vendor-usb", "").await;

    let all = findings(&w.log, now(), &[]);
    let on = |i| all.iter().filter(|f| f["entries"][0] == i).count();
    assert_eq!(on(ok), 0, "a compliant transfer raises nothing: {all:?}");
    assert_eq!(on(expired), 1, "exactly one finding: {all:?}");
    assert_eq!(about(&all, "unauthorized_transfer", expired), 1);
    let f = all.iter().find(|f| f["entries"][0] == expired).unwrap();
    assert_eq!(f["grant"], "G1");
    assert_eq!(f["party"], "vendor");
    assert_eq!(f["system"], vendor_sys.as_str());

    assert_eq!(about(&all, "unauthorized_transfer", usb), 1);
    assert_eq!(about(&all, "boundary_violation", usb), 1);
    let f = all
        .iter()
        .find(|f| f["rule"] == "boundary_violation")
        .unwrap();
    assert!(
        f["detail"].as_str().unwrap().contains("removable_media"),
        "{f}"
    );
    assert_eq!(
        all.iter()
            .find(|f| f["rule"] == "unauthorized_transfer" && f["entries"][0] == usb)
            .unwrap()["grant"],
        "none"
    );

    // Receipts: the USB copy has none. Within the window nothing is due;
    // a minute after the window closes, exactly that transfer is.
    let usb_t = t0 + 12 * MIN;
    let before = findings(
        &w.log,
        usb_t + 59 * MIN,
        &["--rule", "unacknowledged_transfer"],
    );
    assert!(before.is_empty(), "{before:?}");
    let after = findings(
        &w.log,
        usb_t + 61 * MIN,
        &["--rule", "unacknowledged_transfer"],
    );
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["entries"][0], usb);

    // Filters by party and system.
    let by_system = findings(&w.log, now(), &["--system", "vendor-usb"]);
    assert!(by_system.iter().all(|f| f["system"] == "vendor-usb"));
    assert_eq!(by_system.len(), 2, "{by_system:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn use_retention_custody_and_reporting_rules() {
    let mut w = world().await;
    let t0 = w.t0;
    let owner = w.log.owner.clone();
    let vendor_sys = system_of("vendor");
    let (face, held, kept) = ([0xd1; 32], [0xd2; 32], [0xd3; 32]);

    // Retention: citizens' faces for ten minutes, published as the data
    // owner would, with `custody append`.
    let rule = w.log.dir.path().join("rule.json");
    std::fs::write(
        &rule,
        format!(
            r#"{{"reporter": "{}", "retention_rule_published": {{
                "rule_id": "RR-10M", "authority": "SORN", "modality": "FACE_IMAGE",
                "subject_class": "CITIZEN", "max_age_secs": 600, "clock": "CAPTURE"}}}}"#,
            w.log.owner_id
        ),
    )
    .unwrap();
    let out = custody_e2e::custody(&[
        "append",
        "--server",
        &w.log.grpc,
        "--key",
        w.log.owner_key.to_str().unwrap(),
        "--event",
        rule.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let c_face = w.capture(face, t0, v1::SubjectClass::Citizen).await;
    let c_held = w.capture(held, t0, v1::SubjectClass::Citizen).await;
    let c_kept = w.capture(kept, t0, v1::SubjectClass::NonCitizen).await;
    let hold = event(
        &w.log.owner_id,
        v1::event::Body::LegalHold(v1::LegalHold {
            hold_id: "H1".into(),
            assets: Some(v1::AssetRef {
                r#ref: Some(v1::asset_ref::Ref::Digest(held.to_vec())),
            }),
            ..Default::default()
        }),
    );
    append(&mut w.c, &hold, &[&owner]).await.unwrap();
    let ret = |as_of| findings(&w.log, as_of, &["--rule", "retention_overdue"]);
    assert!(ret(t0 + 9 * MIN).is_empty(), "not yet due");
    let due = ret(now());
    assert_eq!(about(&due, "retention_overdue", c_face), 1, "{due:?}");
    assert_eq!(about(&due, "retention_overdue", c_held), 0, "legal hold");
    assert_eq!(
        about(&due, "retention_overdue", c_kept),
        0,
        "no rule applies"
    );
    assert_eq!(due[0]["retention_rule"], "RR-10M");

    // Purpose: a use for training under a maintenance grant drifts; the
    // same use for maintenance does not.
    let copy = w.copy(kept, t0 + 2 * MIN, &vendor_sys, "G1").await;
    w.receipt(copy, t0 + 2 * MIN + SEC).await;
    let use_for = |p: v1::Purpose| {
        custody(|a| {
            a.action = v1::CustodyActionKind::Use as i32;
            a.actor = "vendor".into();
            a.asset_digest = kept.to_vec();
            a.from_system = vendor_sys.clone();
            a.grant_id = "G1".into();
            a.purpose = p as i32;
        })
    };
    let key = w.vendor.clone();
    let fine = put(
        &mut w.c,
        at("vendor", t0 + 3 * MIN, use_for(v1::Purpose::Maintenance)),
        &key,
    )
    .await;
    let drift = put(
        &mut w.c,
        at("vendor", t0 + 4 * MIN, use_for(v1::Purpose::Training)),
        &key,
    )
    .await;

    // Unexplained custody: the vendor reads, on its system, an image that
    // no logged transfer brought there.
    let read = |asset: [u8; 32]| {
        custody(|a| {
            a.action = v1::CustodyActionKind::Access as i32;
            a.actor = "vendor".into();
            a.asset_digest = asset.to_vec();
            a.from_system = vendor_sys.clone();
            a.grant_id = "G1".into();
            a.purpose = v1::Purpose::Maintenance as i32;
        })
    };
    let explained = put(&mut w.c, at("vendor", t0 + 5 * MIN, read(kept)), &key).await;
    let unexplained = put(&mut w.c, at("vendor", t0 + 5 * MIN, read(face)), &key).await;

    // Late reporting: an event two hours old (the deadline is one hour),
    // and one ten minutes old.
    let late = put(&mut w.c, at("vendor", now() - 120 * MIN, read(kept)), &key).await;
    let prompt = put(&mut w.c, at("vendor", now() - 10 * MIN, read(kept)), &key).await;

    // Sequence gaps: 1, 2, then 4.
    let mut seq_events = Vec::new();
    for s in [1, 2, 4] {
        let mut e = at("vendor", now(), read(kept));
        e.reporter_seq = s;
        seq_events.push(put(&mut w.c, e, &key).await);
    }

    let all = findings(&w.log, now(), &[]);
    assert_eq!(about(&all, "purpose_drift", fine), 0);
    assert_eq!(about(&all, "purpose_drift", drift), 1, "{all:?}");
    assert_eq!(about(&all, "unexplained_custody", explained), 0);
    assert_eq!(
        about(&all, "unexplained_custody", unexplained),
        1,
        "{all:?}"
    );
    assert_eq!(about(&all, "late_reporting", late), 1, "{all:?}");
    assert_eq!(about(&all, "late_reporting", prompt), 0);
    assert_eq!(about(&all, "sequence_gap", seq_events[1]), 0);
    assert_eq!(about(&all, "sequence_gap", seq_events[2]), 1, "{all:?}");

    // Attestations: the vendor has held data on its own system since the
    // copy; a day later it is overdue, unless it attested in between (at
    // since + 35 min, a few minutes ago: the log refuses events dated in
    // its future).
    let since = t0 + 2 * MIN;
    let overdue = findings(
        &w.log,
        since + 24 * 60 * MIN + 30 * MIN,
        &["--rule", "missing_attestation", "--system", &vendor_sys],
    );
    assert_eq!(overdue.len(), 1, "{overdue:?}");
    assert_eq!(overdue[0]["party"], "vendor");
    let attest = at(
        "vendor",
        since + 35 * MIN,
        v1::event::Body::CustodyAttestation(v1::CustodyAttestation {
            system_id: vendor_sys.clone(),
            holdings: None,
        }),
    );
    put(&mut w.c, attest, &key).await;
    let after = findings(
        &w.log,
        since + 24 * 60 * MIN + 30 * MIN,
        &["--rule", "missing_attestation", "--system", &vendor_sys],
    );
    assert!(after.is_empty(), "{after:?}");
}

/// The pages of one question asked "as of now" are cut from one
/// evaluation: the first page's token pins the time as well as the
/// checkpoint, so later pages cannot shift as deadlines pass, and a page
/// asked as of another time than its token's is refused.
#[tokio::test(flavor = "multi_thread")]
async fn the_pages_of_one_findings_question_share_one_time() {
    let mut w = world().await;
    let t0 = w.t0;
    let mut last = 0;
    for (i, d) in [[0xe1; 32], [0xe2; 32], [0xe3; 32]].into_iter().enumerate() {
        w.capture(d, t0, v1::SubjectClass::NonCitizen).await;
        last = w.copy(d, t0 + (i as i64 + 1) * MIN, "vendor-usb", "").await;
    }
    // Wait for a checkpoint that covers the last copy.
    for _ in 0..100 {
        let note =
            w.c.get_checkpoint(v1::GetCheckpointRequest::default())
                .await
                .unwrap()
                .into_inner()
                .checkpoint;
        let size: u64 = String::from_utf8_lossy(&note)
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        if size > last {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut q = v1::custody_query_client::CustodyQueryClient::connect(w.log.grpc.clone())
        .await
        .unwrap();
    let ask = |as_of: i64, token: Vec<u8>| v1::FindingsRequest {
        as_of_unix_nanos: as_of,
        page_size: 1,
        page_token: token,
        ..Default::default()
    };
    let first = q.findings(ask(0, Vec::new())).await.unwrap().into_inner();
    assert!(first.total >= 3, "{first:?}");
    assert!(!first.next_page_token.is_empty());
    // Page by page with "now" (0): every page is one finding of the same
    // total, and no finding repeats.
    let mut ids = vec![first.findings[0].id.clone()];
    let mut token = first.next_page_token.clone();
    while !token.is_empty() {
        let page = q.findings(ask(0, token)).await.unwrap().into_inner();
        assert_eq!(page.total, first.total, "the total moved between pages");
        ids.extend(page.findings.iter().map(|f| f.id.clone()));
        token = page.next_page_token;
    }
    assert_eq!(ids.len() as u64, first.total);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "a finding repeated: {ids:?}");
    // The next page asked as of another time than its token's is refused.
    let e = q
        .findings(ask(t0, first.next_page_token))
        .await
        .expect_err("a token for another time");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("as_of_unix_nanos"), "{e:?}");
}

#[test]
fn the_demos_findings_match_what_its_generator_planted() {
    let demo = Demo::start(11);
    let as_of = demo.truth["as_of"].as_str().unwrap().to_owned();
    let want: BTreeMap<String, u64> = demo.truth["findings"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(want.len(), 9, "the generator plants every rule: {want:?}");
    assert!(want.values().all(|n| *n > 0), "{want:?}");
    let vkey = demo.vkey();
    let got = inspect_json(&[
        "findings",
        "--server",
        &demo.grpc,
        "--as-of",
        &as_of,
        "--all",
        "--verify",
        "--log-key",
        vkey.to_str().unwrap(),
    ]);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for f in got.as_array().unwrap() {
        *counts
            .entry(f["rule"].as_str().unwrap().to_owned())
            .or_default() += 1;
        assert!(!f["entries"].as_array().unwrap().is_empty());
    }
    assert_eq!(counts, want);
    assert!(parse_rfc3339(&as_of).is_ok());
}
