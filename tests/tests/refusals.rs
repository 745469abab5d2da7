//! Every refusal of the write path, with its status code, and proof that a
//! refused event leaves nothing behind.

use custody_e2e::{add_key, append, capture, event, now, register, signed, Log};
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use tonic::transport::Channel;
use tonic::Code;

const HOUR: i64 = 3_600_000_000_000;

async fn size(c: &mut CustodyLogClient<Channel>) -> u64 {
    // Entries, not checkpoints: a refused event must not be appended at all.
    let mut n = 0;
    while c
        .get_entries(v1::GetEntriesRequest {
            start: n,
            end: n + 1,
        })
        .await
        .is_ok()
    {
        n += 1;
    }
    n
}

async fn refused(
    c: &mut CustodyLogClient<Channel>,
    req: v1::AppendRequest,
    code: Code,
    needle: &str,
) {
    // Let any checkpoint for earlier appends land first.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let before = size(c).await;
    let err = c.append(req).await.expect_err("refused");
    assert_eq!(err.code(), code, "{}", err.message());
    assert!(
        err.message().contains(needle),
        "{:?} lacks {needle:?}",
        err.message()
    );
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(size(c).await, before, "a refused event was appended");
}

fn req(e: v1::SignedEvent) -> v1::AppendRequest {
    v1::AppendRequest {
        event: Some(e),
        wait_for_checkpoint: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_that_may_not_sign_are_refused_with_permission_denied() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;

    // Unknown key.
    let stranger = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let e = event("cam", capture("cam"));
    refused(
        &mut c,
        req(signed(&e, &[&stranger])),
        Code::PermissionDenied,
        "unknown key",
    )
    .await;

    // Revoked key.
    let id = custody_domain::key_id_of(&key.verifying_key().to_bytes());
    let revoke = event(
        &log.owner_id,
        v1::event::Body::KeyRevoked(v1::KeyRevoked {
            party_id: "cam".into(),
            key_id: id.0.to_vec(),
        }),
    );
    append(&mut c, &revoke, &[&log.owner]).await.unwrap();
    refused(
        &mut c,
        req(signed(&event("cam", capture("cam")), &[&key])),
        Code::PermissionDenied,
        "revoked",
    )
    .await;

    // Not yet valid, and expired.
    let future = add_key(&log, &mut c, "cam", now() + HOUR, 0).await;
    refused(
        &mut c,
        req(signed(&event("cam", capture("cam")), &[&future])),
        Code::PermissionDenied,
        "not valid yet",
    )
    .await;
    let expired = add_key(&log, &mut c, "cam", now() - 2 * HOUR, now() - HOUR).await;
    refused(
        &mut c,
        req(signed(&event("cam", capture("cam")), &[&expired])),
        Code::PermissionDenied,
        "expired",
    )
    .await;

    // Another party's key, claiming to be "cam".
    let other = register(&log, &mut c, "other", 0, 0).await;
    refused(
        &mut c,
        req(signed(&event("cam", capture("cam")), &[&other])),
        Code::PermissionDenied,
        "belongs to party other",
    )
    .await;

    // Registry events by anyone but the data owner.
    let sneaky = event(
        "other",
        custody_e2e::party_registered("usb-gw", &log.owner_id),
    );
    refused(
        &mut c,
        req(signed(&sneaky, &[&other])),
        Code::PermissionDenied,
        "must be reported by the data owner",
    )
    .await;

    // A bad signature by a valid key.
    let good = add_key(&log, &mut c, "cam", 0, 0).await;
    let mut s = signed(&event("cam", capture("cam")), &[&good]);
    s.signatures[0].sig[10] ^= 1;
    refused(&mut c, req(s), Code::PermissionDenied, "does not verify").await;
    // ...and the same key still works.
    append(&mut c, &event("cam", capture("cam")), &[&good])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_oversized_events_are_refused_with_invalid_argument() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;

    // Not an Event at all.
    let mut s = signed(&event("cam", capture("cam")), &[&key]);
    s.body = vec![0xff, 0xff, 0xff].into();
    let env = custody_domain::SignedEnvelope::sign(s.body.to_vec(), &[&key]);
    refused(
        &mut c,
        req(custody_proto::envelope_to_proto(&env)),
        Code::InvalidArgument,
        "not a custody.v1.Event",
    )
    .await;

    // Bad field values.
    let mut e = event("cam", capture("cam"));
    e.event_id = "not-a-uuid".into();
    refused(
        &mut c,
        req(signed(&e, &[&key])),
        Code::InvalidArgument,
        "is not a UUID",
    )
    .await;
    let mut e = event("cam", capture("cam"));
    e.reporter = "Jane Doe".into();
    refused(
        &mut c,
        req(signed(&e, &[&key])),
        Code::InvalidArgument,
        "not an opaque id",
    )
    .await;
    let mut e = event("cam", capture("cam"));
    if let Some(v1::event::Body::Custody(ref mut a)) = e.body {
        a.asset_digest = vec![1; 5];
    }
    refused(
        &mut c,
        req(signed(&e, &[&key])),
        Code::InvalidArgument,
        "32-byte SHA-256",
    )
    .await;

    // Wrong payload type, no signature, malformed signature.
    let mut s = signed(&event("cam", capture("cam")), &[&key]);
    s.payload_type = "application/json".into();
    refused(&mut c, req(s), Code::InvalidArgument, "payload type").await;
    let mut s = signed(&event("cam", capture("cam")), &[&key]);
    s.signatures.clear();
    refused(&mut c, req(s), Code::InvalidArgument, "not signed").await;
    let mut s = signed(&event("cam", capture("cam")), &[&key]);
    s.signatures[0].sig.truncate(10);
    refused(&mut c, req(s), Code::InvalidArgument, "want 64").await;

    // Oversized: a body that cannot fit a 64 KiB entry.
    let mut s = signed(&event("cam", capture("cam")), &[&key]);
    s.body = vec![0u8; 70_000].into();
    refused(&mut c, req(s), Code::InvalidArgument, "64 KiB").await;

    // A missing event.
    let err = c
        .append(v1::AppendRequest {
            event: None,
            wait_for_checkpoint: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_preconditions_are_refused_with_failed_precondition() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    register(&log, &mut c, "cam", 0, 0).await;
    let dup = event(
        &log.owner_id,
        custody_e2e::party_registered("cam", &log.owner_id),
    );
    refused(
        &mut c,
        req(signed(&dup, &[&log.owner])),
        Code::FailedPrecondition,
        "already registered",
    )
    .await;
    let k = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let orphan = event(&log.owner_id, custody_e2e::key_added("nobody", &k, 0, 0));
    refused(
        &mut c,
        req(signed(&orphan, &[&log.owner])),
        Code::FailedPrecondition,
        "not registered",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_answers_resource_exhausted() {
    let mut log = Log::init();
    // A queue of one and batches of one: concurrent appends must overflow.
    log.start_with(&["--queue", "1", "--max-batch", "1"]);
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let mut c = c.clone();
        let e = signed(&event("cam", capture("cam")), &[&key]);
        tasks.push(tokio::spawn(async move { c.append(req(e)).await }));
    }
    let mut exhausted = 0;
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "{}", s.message());
                assert!(s.message().contains("retry"), "{}", s.message());
                exhausted += 1;
            }
        }
    }
    assert!(
        exhausted > 0,
        "64 concurrent appends never filled a queue of 1"
    );
    assert!(ok > 0);
}
