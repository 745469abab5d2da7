//! Hostile input against the real server: malformed, truncated and
//! oversized protobuf, forged and misused signatures, impossible times,
//! dangling references, broken manifests, junk tile paths and query
//! strings, and a stream that never reads its answers.
//!
//! Each refusal must carry the right status code and a message that names
//! the field or the problem, and must leave nothing behind: the log's
//! checkpoint does not grow, and the next honest append gets the next
//! index. Cases are tables; every failing case of a table is reported
//! together, so one regression does not hide another.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_e2e::*;
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use custody_proto::v1::event::Body;
use custody_proto::v1::CustodyActionKind as K;
use ed25519_dalek::SigningKey;
use prost::Message as _;
use tonic::transport::Channel;
use tonic::Code;

const SEC: i64 = 1_000_000_000;
const HOUR: i64 = 3600 * SEC;
const DAY: i64 = 24 * HOUR;

/// `settled_size` is the checkpoint's size once any checkpoint for
/// earlier calls has had time to land.
async fn settled_size(log: &Log) -> u64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    checkpoint_size(&log.http).await
}

fn req(e: v1::SignedEvent) -> v1::AppendRequest {
    v1::AppendRequest {
        event: Some(e),
        wait_for_checkpoint: false,
    }
}

/// `Case` is one hostile append: what it is, the request, the code it
/// must be refused with and a substring its message must hold.
struct Case {
    name: &'static str,
    req: v1::AppendRequest,
    code: Code,
    needle: &'static str,
}

fn case(name: &'static str, e: v1::SignedEvent, code: Code, needle: &'static str) -> Case {
    Case {
        name,
        req: req(e),
        code,
        needle,
    }
}

/// `run_cases` sends each case as a unary Append and returns a line for
/// every case that was not refused as it must be.
async fn run_cases(c: &mut CustodyLogClient<Channel>, cases: Vec<Case>) -> Vec<String> {
    let mut failures = Vec::new();
    for k in cases {
        let got = tokio::time::timeout(Duration::from_secs(10), c.append(k.req)).await;
        match got {
            Err(_) => failures.push(format!("{}: no answer within 10 s", k.name)),
            Ok(Ok(r)) => failures.push(format!(
                "{}: ACCEPTED at index {} (want {:?} naming {:?})",
                k.name,
                r.get_ref().index,
                k.code,
                k.needle
            )),
            Ok(Err(s)) => {
                if s.code() != k.code || !s.message().contains(k.needle) {
                    failures.push(format!(
                        "{}: got {:?} {:?}; want {:?} naming {:?}",
                        k.name,
                        s.code(),
                        fields_clip(s.message()),
                        k.code,
                        k.needle
                    ));
                }
                // A status message travels in an HTTP/2 header: it must
                // not repeat the hostile input whole.
                if s.message().len() > 1024 {
                    failures.push(format!(
                        "{}: message is {} bytes long; it should clip the input",
                        k.name,
                        s.message().len()
                    ));
                }
            }
        }
    }
    failures
}

fn fields_clip(s: &str) -> String {
    s.chars().take(300).collect()
}

/// `assert_nothing_appended` checks that the checkpoint did not grow past
/// `before`, and that an honest append from `party` gets index `before`.
async fn assert_nothing_appended(
    log: &Log,
    c: &mut CustodyLogClient<Channel>,
    before: u64,
    party: &str,
    key: &SigningKey,
    failures: &[String],
) {
    let after = settled_size(log).await;
    assert_eq!(
        after,
        before,
        "hostile calls appended {} entries; failed cases: {failures:#?}",
        after.saturating_sub(before)
    );
    let honest = append(c, &event(party, capture(party)), &[key])
        .await
        .expect("an honest append after the hostile ones");
    assert_eq!(
        honest.index, before,
        "the honest append must get the next index"
    );
    assert!(
        failures.is_empty(),
        "hostile cases misjudged: {failures:#?}"
    );
}

/// 1. Malformed, truncated and oversized protobuf.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_truncated_and_oversized_protobuf_is_refused() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;
    let before = settled_size(&log).await;
    assert!(before >= 4, "the setup entries are checkpointed");

    // Garbage that does not decode as an Event, signed by a valid key.
    let garbage = custody_domain::SignedEnvelope::sign(vec![0xff, 0xff, 0x07, 0x80], &[&key]);
    // A real event, cut off halfway (inside the log_origin string).
    let honest = event("cam", capture("cam")).encode_to_vec();
    let half = custody_domain::SignedEnvelope::sign(honest[..honest.len() / 2].to_vec(), &[&key]);
    // ...and cut off inside its last field, the body.
    let tail = custody_domain::SignedEnvelope::sign(honest[..honest.len() - 5].to_vec(), &[&key]);
    // An event body over 64 KiB: a huge event_id.
    let mut e = event("cam", capture("cam"));
    e.event_id = "f".repeat(70_000);
    let huge_id = signed(&e, &[&key]);
    // Under 64 KiB but still no UUID: the refusal must not echo 60 KB.
    // Found by this suite: the refusal repeated the event_id whole, and a
    // 60 KB gRPC status does not fit an HTTP/2 header, so the client saw
    // INTERNAL "h2 protocol error". Refusals now repeat a caller's text
    // only through `custody_domain::quoted`, and statuses are clipped.
    let mut e = event("cam", capture("cam"));
    e.event_id = "a".repeat(60_000);
    let long_id = signed(&e, &[&key]);
    // An event body over 64 KiB: a manifest reference padded with junk.
    let mut e = event("cam", capture("cam"));
    if let Some(Body::Custody(a)) = e.body.as_mut() {
        a.asset_digest.clear();
        a.manifest = Some(v1::Manifest {
            root: vec![0x5a; 70_000],
            count: 3,
        });
    }
    let junk_manifest = signed(&e, &[&key]);
    // Envelope junk: a 3-byte key id.
    let mut short_kid = signed(&event("cam", capture("cam")), &[&key]);
    short_kid.signatures[0].key_id.truncate(3);

    let cases = vec![
        case(
            "garbage body",
            custody_proto::envelope_to_proto(&garbage),
            Code::InvalidArgument,
            "custody.v1.Event",
        ),
        case(
            "body truncated halfway",
            custody_proto::envelope_to_proto(&half),
            Code::InvalidArgument,
            "custody.v1.Event",
        ),
        case(
            "body truncated inside its last field",
            custody_proto::envelope_to_proto(&tail),
            Code::InvalidArgument,
            "custody.v1.Event",
        ),
        case(
            "body over 64 KiB (huge event_id)",
            huge_id,
            Code::InvalidArgument,
            "64 KiB",
        ),
        case(
            "60 KB event_id under the size limit",
            long_id,
            Code::InvalidArgument,
            "event_id",
        ),
        case(
            "body over 64 KiB (manifest root of junk)",
            junk_manifest,
            Code::InvalidArgument,
            "64 KiB",
        ),
        case("3-byte key id", short_kid, Code::InvalidArgument, "key_id"),
    ];
    let mut failures = run_cases(&mut c, cases).await;

    // A gRPC message over the server's 256 KiB decoding limit: tonic
    // refuses it before the service sees it, with OUT_OF_RANGE.
    let mut s = signed(&event("cam", capture("cam")), &[&key]);
    s.body = vec![0u8; 300 * 1024].into();
    match tokio::time::timeout(Duration::from_secs(10), c.append(req(s))).await {
        Err(_) => failures.push("300 KiB message: no answer within 10 s".into()),
        Ok(Ok(r)) => failures.push(format!(
            "300 KiB message: ACCEPTED at {}",
            r.get_ref().index
        )),
        Ok(Err(s)) => {
            if s.code() != Code::OutOfRange || !s.message().contains("too large") {
                failures.push(format!(
                    "300 KiB message: got {:?} {:?}; want OutOfRange naming \"too large\"",
                    s.code(),
                    fields_clip(s.message())
                ));
            }
        }
    }
    // The same channel still works after the refusal.
    c.get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
        .await
        .expect("the server still serves after an oversized message");

    assert_nothing_appended(&log, &mut c, before, "cam", &key, &failures).await;
}

/// 2. Signatures: forged, replayed, foreign, extra, revoked, not yet
/// valid, and a weak public key.
#[tokio::test(flavor = "multi_thread")]
async fn forged_replayed_foreign_and_weak_signatures_are_refused() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;
    let other = register(&log, &mut c, "other", 0, 0).await;
    // A second key of cam's, revoked by the owner.
    let revoked = add_key(&log, &mut c, "cam", 0, 0).await;
    let id = custody_domain::key_id_of(&revoked.verifying_key().to_bytes());
    let revoke = event(
        &log.owner_id,
        Body::KeyRevoked(v1::KeyRevoked {
            party_id: "cam".into(),
            key_id: id.0.to_vec(),
        }),
    );
    append(&mut c, &revoke, &[&log.owner])
        .await
        .expect("revoke cam's second key");
    // A third, valid only from tomorrow.
    let future = add_key(&log, &mut c, "cam", now() + DAY, 0).await;
    let before = settled_size(&log).await;

    // Bad signature bytes: one bit flipped.
    let mut flipped = signed(&event("cam", capture("cam")), &[&key]);
    flipped.signatures[0].sig[33] ^= 0x01;
    // A signature replayed from another event by the same key.
    let donor = signed(&event("cam", capture("cam")), &[&key]);
    let mut replayed = signed(&event("cam", capture("cam")), &[&key]);
    replayed.signatures = donor.signatures.clone();
    // Signed by a key registered to another party only.
    let foreign = signed(&event("cam", capture("cam")), &[&other]);
    // A good signature plus a second one by another party.
    let extra = signed(&event("cam", capture("cam")), &[&key, &other]);
    // The same good signature twice.
    let mut twice = signed(&event("cam", capture("cam")), &[&key]);
    let dup = twice.signatures[0].clone();
    let dup_body = twice.body.clone();
    twice.signatures.push(dup.clone());
    // The identity point, and a canonical small-order point, as keys.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak_key = |pk: Vec<u8>| {
        let e = event(
            &log.owner_id,
            Body::KeyAdded(v1::KeyAdded {
                party_id: "cam".into(),
                public_key: pk,
                valid_from_unix_nanos: 0,
                valid_to_unix_nanos: 0,
            }),
        );
        signed(&e, &[&log.owner])
    };
    // The point of order 2: y = -1.
    let mut order2 = [0xffu8; 32];
    order2[0] = 0xec;
    order2[31] = 0x7f;

    let cases = vec![
        case(
            "flipped bit",
            flipped,
            Code::PermissionDenied,
            "does not verify",
        ),
        case(
            "signature replayed from another event",
            replayed,
            Code::PermissionDenied,
            "does not verify",
        ),
        case(
            "signed by another party's key",
            foreign,
            Code::PermissionDenied,
            "belongs to party other",
        ),
        case(
            "an extra signature by another party",
            extra,
            Code::PermissionDenied,
            "belongs to party other",
        ),
        case(
            "revoked key",
            signed(&event("cam", capture("cam")), &[&revoked]),
            Code::PermissionDenied,
            "revoked",
        ),
        case(
            "key not valid yet",
            signed(&event("cam", capture("cam")), &[&future]),
            Code::PermissionDenied,
            "not valid yet",
        ),
        case(
            "KEY_ADDED of the identity point",
            weak_key(identity.to_vec()),
            Code::InvalidArgument,
            "weak",
        ),
        case(
            "KEY_ADDED of the order-2 point",
            weak_key(order2.to_vec()),
            Code::InvalidArgument,
            "weak",
        ),
        case(
            "KEY_ADDED of a 31-byte key",
            weak_key(vec![7; 31]),
            Code::InvalidArgument,
            "public_key",
        ),
    ];
    let failures = run_cases(&mut c, cases).await;
    assert_nothing_appended(&log, &mut c, before, "cam", &key, &failures).await;

    // The same good signature twice. DSSE allows several signatures and
    // nothing in the design forbids a repeated one, so the server accepts
    // it (observed, asserted). What must hold: the event is logged once,
    // and the same event re-wrapped with one signature (other envelope
    // bytes, same event_id) is not logged again.
    let first = c
        .append(req(twice))
        .await
        .expect("a repeated signature by the reporter's key is accepted")
        .into_inner();
    let mut once = signed(&event("cam", capture("cam")), &[&key]);
    once.body = dup_body;
    once.signatures.truncate(1);
    once.signatures[0] = dup;
    match c.append(req(once)).await {
        Ok(r) => {
            let r = r.into_inner();
            assert!(
                r.duplicate && r.index == first.index,
                "the same event_id was logged twice: {} and {}",
                first.index,
                r.index
            );
        }
        Err(s) => assert_eq!(
            s.code(),
            Code::AlreadyExists,
            "re-wrapped event: {}",
            s.message()
        ),
    }
    let size = settled_size(&log).await;
    assert_eq!(size, first.index + 1, "exactly one entry for the event");
}

/// 3. Times. 4. A RECEIPT of nothing. 5. Manifests that do not match
/// their root, and an event citing a manifest never uploaded.
#[tokio::test(flavor = "multi_thread")]
async fn impossible_times_dangling_receipts_and_bad_manifests_are_refused() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;
    let before = settled_size(&log).await;

    let dated = |t: i64| {
        let mut e = event("cam", capture("cam"));
        e.event_time_unix_nanos = t;
        signed(&e, &[&key])
    };
    let receipt = {
        let e = event(
            "cam",
            Body::Custody(v1::CustodyAction {
                action: K::Receipt as i32,
                actor: "cam".into(),
                asset_digest: random_digest().to_vec(),
                from_system: system_of("cam"),
                to_system: system_of("cam"),
                receipt_of: 999_999,
                ..Default::default()
            }),
        );
        signed(&e, &[&key])
    };
    let unknown_manifest = {
        let mut e = event("cam", capture("cam"));
        if let Some(Body::Custody(a)) = e.body.as_mut() {
            a.asset_digest.clear();
            a.manifest = Some(v1::Manifest {
                root: random_digest().to_vec(),
                count: 3,
            });
        }
        signed(&e, &[&key])
    };
    let cases = vec![
        case(
            "event_time now + 10 days",
            dated(now() + 10 * DAY),
            Code::InvalidArgument,
            "event_time",
        ),
        case(
            "event_time 0",
            dated(0),
            Code::InvalidArgument,
            "event_time",
        ),
        case(
            "event_time negative",
            dated(-5 * SEC),
            Code::InvalidArgument,
            "event_time",
        ),
        case(
            "event_time i64::MIN",
            dated(i64::MIN),
            Code::InvalidArgument,
            "event_time",
        ),
        case(
            "event_time i64::MAX",
            dated(i64::MAX),
            Code::InvalidArgument,
            "event_time",
        ),
        case(
            "RECEIPT of entry 999999",
            receipt,
            Code::FailedPrecondition,
            "999999",
        ),
        case(
            "CAPTURE of a manifest never uploaded",
            unknown_manifest,
            Code::FailedPrecondition,
            "PutManifest",
        ),
    ];
    let mut failures = run_cases(&mut c, cases).await;

    // PutManifest with members out of order, or repeated.
    let (a, b) = {
        let (x, y) = (random_digest(), random_digest());
        if x < y {
            (x, y)
        } else {
            (y, x)
        }
    };
    // (case, members, expected root, substring of the refusal)
    type Upload<'a> = (&'a str, Vec<Vec<u8>>, Vec<u8>, &'a str);
    let uploads: Vec<Upload> = vec![
        (
            "unsorted members",
            vec![b.to_vec(), a.to_vec()],
            Vec::new(),
            "ascending",
        ),
        (
            "duplicate members",
            vec![a.to_vec(), a.to_vec()],
            Vec::new(),
            "distinct",
        ),
        (
            "a 31-byte member",
            vec![a[..31].to_vec()],
            Vec::new(),
            "members",
        ),
        (
            "members that hash to another root",
            vec![a.to_vec(), b.to_vec()],
            random_digest().to_vec(),
            "expected_root",
        ),
        ("no members", Vec::new(), Vec::new(), "at least one member"),
    ];
    for (name, members, expected_root, needle) in uploads {
        let msg = v1::PutManifestRequest {
            members,
            expected_root,
        };
        match c.put_manifest(tokio_stream::iter(vec![msg])).await {
            Ok(r) => failures.push(format!("PutManifest {name}: ACCEPTED {:?}", r.get_ref())),
            Err(s) => {
                if s.code() != Code::InvalidArgument || !s.message().contains(needle) {
                    failures.push(format!(
                        "PutManifest {name}: got {:?} {:?}; want InvalidArgument naming {needle:?}",
                        s.code(),
                        s.message()
                    ));
                }
            }
        }
    }
    // None of the refused uploads is stored: a manifest of [b, a] (which
    // would be the root of [b, a] had it been kept) is unknown.
    let got = c
        .get_manifest(v1::GetManifestRequest {
            root: random_digest().to_vec(),
            start: 0,
            limit: 1,
            asset: Vec::new(),
        })
        .await
        .expect_err("an unknown root is not found");
    if got.code() != Code::NotFound {
        failures.push(format!(
            "GetManifest of an unknown root: got {:?} {:?}; want NotFound",
            got.code(),
            got.message()
        ));
    }
    assert_nothing_appended(&log, &mut c, before, "cam", &key, &failures).await;
}

/// 3 (continued). An event dated before the log began is ACCEPTED: a
/// reporter may log an old event (a device that was offline), and the log
/// cannot know the true time. What it must do is raise late_reporting
/// against the reporter, so the lateness is on the record.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_dated_before_the_log_began_is_accepted_and_found_late() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let mut q = CustodyQueryClient::connect(log.grpc.clone())
        .await
        .expect("connect the query service");
    let key = register(&log, &mut c, "cam", 0, 0).await;
    let before = settled_size(&log).await;

    let mut indexes = Vec::new();
    // Two hours before now (the log was initialised seconds ago), and one
    // second after the epoch.
    for t in [now() - 2 * HOUR, SEC] {
        let mut e = event("cam", capture("cam"));
        e.event_time_unix_nanos = t;
        let r = append(&mut c, &e, &[&key])
            .await
            .unwrap_or_else(|s| panic!("an old event (time {t}) is refused: {s:?}"));
        indexes.push(r.index);
    }
    assert_eq!(indexes, vec![before, before + 1], "appended in order");

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = q
            .findings(v1::FindingsRequest {
                rule: "late_reporting".into(),
                party: "cam".into(),
                page_size: 100,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().findings);
        let late: Vec<u64> = match &found {
            Ok(f) => f
                .iter()
                .filter(|f| f.rule == "late_reporting")
                .flat_map(|f| f.entries.iter().copied())
                .filter(|i| indexes.contains(i))
                .collect(),
            Err(_) => Vec::new(),
        };
        if indexes.iter().all(|i| late.contains(i)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "late_reporting not raised for entries {indexes:?}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// 6. Junk tile paths: each 4xx, none a 5xx or a hang.
/// 7. Junk query strings on the web view and the evidence downloads.
#[tokio::test(flavor = "multi_thread")]
async fn junk_tile_paths_and_query_strings_are_answered_4xx() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;
    let asset = random_digest();
    let mut e = event("cam", capture("cam"));
    if let Some(Body::Custody(a)) = e.body.as_mut() {
        a.asset_digest = asset.to_vec();
    }
    append(&mut c, &e, &[&key]).await.expect("capture an asset");
    let before = settled_size(&log).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let hex: String = asset.iter().map(|b| format!("{b:02x}")).collect();
    let sys = system_of("cam");

    // (path and query, substring of the answer). Tile answers name the
    // path or the tree; query answers name the parameter.
    let cases: Vec<(String, &str)> = vec![
        ("/tile/0/x999999999999999999999".into(), "tile"),
        ("/tile/-1/000".into(), "tile"),
        ("/tile/0/000.p/0".into(), "tile"),
        ("/tile/0/000.p/257".into(), "tile"),
        ("/tile/99/000".into(), "tile"),
        ("/tile/entries/x001/999.p/5".into(), "tile"),
        ("/tile/0/000.p/".into(), "tile"),
        ("/tile/0/0a0".into(), "tile"),
        // Not UTF-8 once decoded: refused by the path extractor.
        ("/tile/0/%00%ff".into(), "path"),
        (format!("/tile/0/{}", "x000/".repeat(2000)), "tile"),
        ("/tile/entries/999".into(), "tree"),
        // Digests: not hex, wrong length.
        (format!("/evidence/history?asset={}", "zz".repeat(32)), "asset"),
        ("/evidence/history?asset=abcd".into(), "asset"),
        (format!("/evidence/history?asset={hex}00"), "asset"),
        (format!("/ui/asset/{}", "g".repeat(64)), "asset"),
        ("/ui/asset/abc".into(), "asset"),
        ("/ui/asset?asset=not-hex".into(), "asset"),
        // Inverted time ranges.
        (
            format!("/evidence/breach-scope?system={sys}&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
            "to",
        ),
        (
            format!("/ui/breach-scope?system={sys}&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
            "to",
        ),
        // Times that are not times.
        (format!("/evidence/holders?asset={hex}&at=yesterday"), "at"),
        (format!("/ui/holdings?system={sys}&at=9999-99-99"), "at"),
        ("/ui/findings?as_of=soon".into(), "as_of"),
        (
            format!("/evidence/finding?id=x&as_of={}", "1".repeat(500)),
            "as_of",
        ),
        // Huge page sizes and paging: an unknown page_size is refused by
        // name; a tree size the log never published is refused by name.
        (format!("/evidence/history?asset={hex}&page_size=999999999"), "page_size"),
        (format!("/ui/asset/{hex}?size=999999999"), "size"),
        (format!("/ui/asset/{hex}?after=zz"), "after"),
        ("/ui/findings?size=99999999999999999999999".into(), "size"),
        ("/ui/findings?rule=no_such_rule".into(), "rule"),
        (format!("/ui/holdings?system={sys}&page=-1"), "page"),
        (format!("/ui/breach-scope?system={sys}&page=abc"), "page"),
        // Repeated and malformed parameters.
        (format!("/evidence/history?asset={hex}&asset={hex}"), "asset"),
        ("/ui/holdings?party=%3Cscript%3E".into(), "party"),
    ];
    let mut failures = Vec::new();
    for (path, needle) in &cases {
        let url = format!("{}{path}", log.http);
        match http.get(&url).send().await {
            Err(e) => failures.push(format!("{}: no answer: {e}", clip(path))),
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                if !status.is_client_error() {
                    failures.push(format!(
                        "{}: got {status}, want 4xx: {}",
                        clip(path),
                        clip(&body)
                    ));
                } else if !body.contains(needle) {
                    failures.push(format!(
                        "{}: {status} does not name {needle:?}: {}",
                        clip(path),
                        clip(&body)
                    ));
                }
            }
        }
    }

    // Dot segments, sent raw (an HTTP client would resolve them away).
    for path in [
        "/tile/entries/../../checkpoint",
        "/tile/0/000.p/1/../../../x",
        "/tile/%2e%2e/%2e%2e/checkpoint",
    ] {
        match raw_get(&log.http, path).await {
            Err(e) => failures.push(format!("{path} (raw): no answer: {e}")),
            Ok((status, body)) => {
                if !(400..500).contains(&status) {
                    failures.push(format!(
                        "{path} (raw): got {status}, want 4xx: {}",
                        clip(&body)
                    ));
                }
            }
        }
    }

    // The same questions over gRPC: huge page sizes, inverted windows and
    // malformed digests name their field.
    let mut q = CustodyQueryClient::connect(log.grpc.clone())
        .await
        .expect("connect the query service");
    let grpc: Vec<(&str, Result<(), tonic::Status>, &str)> = vec![
        (
            "Findings page_size 999999999",
            q.findings(v1::FindingsRequest {
                page_size: 999_999_999,
                ..Default::default()
            })
            .await
            .map(drop),
            "page_size",
        ),
        (
            "BreachScope from > to",
            q.breach_scope(v1::BreachScopeRequest {
                system_id: sys.clone(),
                from_unix_nanos: now(),
                to_unix_nanos: now() - DAY,
                ..Default::default()
            })
            .await
            .map(drop),
            "to",
        ),
        (
            "AssetHistory 5-byte asset",
            q.asset_history(v1::AssetHistoryRequest {
                asset: vec![1; 5],
                ..Default::default()
            })
            .await
            .map(drop),
            "asset",
        ),
        (
            "AssetHistory page_size 999999999",
            q.asset_history(v1::AssetHistoryRequest {
                asset: asset.to_vec(),
                page_size: 999_999_999,
                ..Default::default()
            })
            .await
            .map(drop),
            "page_size",
        ),
        (
            "Findings from > to",
            q.findings(v1::FindingsRequest {
                from_unix_nanos: now(),
                to_unix_nanos: now() - DAY,
                ..Default::default()
            })
            .await
            .map(drop),
            "to",
        ),
    ];
    for (name, got, needle) in grpc {
        match got {
            Ok(()) => failures.push(format!("{name}: answered, want INVALID_ARGUMENT")),
            Err(s) => {
                if s.code() != Code::InvalidArgument || !s.message().contains(needle) {
                    failures.push(format!(
                        "{name}: got {:?} {:?}; want InvalidArgument naming {needle:?}",
                        s.code(),
                        s.message()
                    ));
                }
            }
        }
    }

    // Still serving, and nothing appended.
    let cp = http
        .get(format!("{}/checkpoint", log.http))
        .send()
        .await
        .expect("the checkpoint is still served");
    assert!(cp.status().is_success(), "GET /checkpoint: {}", cp.status());
    assert_nothing_appended(&log, &mut c, before, "cam", &key, &failures).await;
}

/// `raw_get` sends `GET path` byte for byte over HTTP/1.1 and returns the
/// status code and body, within 10 s.
async fn raw_get(base: &str, path: &str) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = base.trim_start_matches("http://").to_owned();
    let io = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {}", clip(&text)))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_owned()))
}

fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(160).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// 8. A stream that sends 5,000 events and never reads its answers must
/// not stall other clients, and the server must serve on once it is
/// dropped.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_never_reads_its_answers_does_not_stall_others() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;
    let hog_key = register(&log, &mut c, "hog", 0, 0).await;
    let before = settled_size(&log).await;

    let reqs: Vec<v1::AppendRequest> = (0..5_000)
        .map(|_| v1::AppendRequest {
            event: Some(signed(&event("hog", capture("hog")), &[&hog_key])),
            // Each answer then carries a checkpoint and a proof, so the
            // unread answers fill the HTTP/2 window and the server's
            // side of the stream must stall without stalling anyone else.
            wait_for_checkpoint: true,
        })
        .collect();
    // Counts how many requests the transport pulled from the stream.
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let outgoing = tokio_stream::StreamExt::map(tokio_stream::iter(reqs), move |r| {
        counter.fetch_add(1, Ordering::Relaxed);
        r
    });
    // Its own connection, so only HTTP/2 stream-level flow control is
    // shared with nobody.
    let mut hog = log.client().await;
    let answers = tokio::time::timeout(Duration::from_secs(10), hog.append_stream(outgoing))
        .await
        .expect("the stream opens within 10 s")
        .expect("open AppendStream");
    // Never polled.
    let answers = answers.into_inner();

    // Meanwhile, an honest unary append from another client.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut honest = log.client().await;
    let t0 = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        append(&mut honest, &event("cam", capture("cam")), &[&key]),
    )
    .await
    .expect("an honest append answers within 5 s while a stream hogs")
    .expect("the honest append is admitted");
    let took = t0.elapsed();
    assert!(r.index >= before, "index {} < {before}", r.index);

    // Keep the hog open about 3 s in all, then drop it.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let sent = pulled.load(Ordering::Relaxed);
    drop(answers);
    drop(hog);

    // Still serving: an append, a checkpoint that covers it, the tiles.
    let r2 = tokio::time::timeout(
        Duration::from_secs(5),
        append(&mut honest, &event("cam", capture("cam")), &[&key]),
    )
    .await
    .expect("an append answers within 5 s after the hog left")
    .expect("admitted after the hog left");
    assert!(r2.index > r.index);
    let size = settled_size(&log).await;
    assert!(size > r2.index, "checkpoint {size} covers {}", r2.index);
    let cp = reqwest::get(format!("{}/checkpoint", log.http))
        .await
        .expect("checkpoint served");
    assert!(cp.status().is_success());
    eprintln!(
        "hog: {sent} of 5000 requests pulled by the transport; honest append took {took:?}; log grew {before} -> {size}"
    );
}
