//! Bulk events admitted in slices (issue 9: "no request can stall the
//! log"). A CAPTURE of a large manifest runs as a bulk job, a slice of
//! members per step: other reporters' events are logged and acknowledged
//! while it runs, events that touch its members wait until it ends, and
//! `custody audit`, which replays every event whole, agrees with what the
//! slices wrote. A server killed between two slices resumes
//! the job from its record.

use std::time::{Duration, Instant};

use custody_domain::{hex, rfc3339};
use custody_e2e::*;
use custody_proto::v1;
use ed25519_dalek::SigningKey;

/// Members of the bulk event: with `SLICE`, thousands of steps.
const MEMBERS: usize = 4_000;
/// `--bulk-slice` for these tests.
const SLICE: &str = "8";

/// `manifest` is `n` random digests, sorted.
fn manifest(n: usize) -> Vec<[u8; 32]> {
    let mut m: Vec<[u8; 32]> = (0..n).map(|_| random_digest()).collect();
    m.sort();
    m.dedup();
    m
}

/// `bulk_capture` is a CAPTURE of manifest `m` by `actor` into its system.
fn bulk_capture(actor: &str, m: &v1::Manifest) -> v1::Event {
    let mut e = event(actor, capture(actor));
    if let Some(v1::event::Body::Custody(x)) = &mut e.body {
        x.asset_digest.clear();
        x.manifest = Some(m.clone());
    }
    e
}

/// `copy_of` is a COPY of `asset` by `actor` from `from` to its own system.
fn copy_of(actor: &str, asset: &[u8; 32], from: &str) -> v1::Event {
    event(
        actor,
        v1::event::Body::Custody(v1::CustodyAction {
            action: v1::CustodyActionKind::Copy as i32,
            actor: actor.to_owned(),
            asset_digest: asset.to_vec(),
            from_system: from.to_owned(),
            to_system: system_of(actor),
            ..Default::default()
        }),
    )
}

/// `append_at` appends and returns the index.
async fn append_at(
    c: &mut v1::custody_log_client::CustodyLogClient<tonic::transport::Channel>,
    e: &v1::Event,
    key: &SigningKey,
) -> u64 {
    c.append(v1::AppendRequest {
        event: Some(signed(e, &[key])),
        wait_for_checkpoint: false,
    })
    .await
    .unwrap_or_else(|s| panic!("append refused: {s}"))
    .into_inner()
    .index
}

#[tokio::test(flavor = "multi_thread")]
async fn other_reporters_are_logged_while_a_bulk_event_is_applied_and_the_audit_agrees() {
    let mut log = Log::init();
    log.start_with(&["--bulk-slice", SLICE]);
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let gate = register(&log, &mut c, "gate", 0, 0).await;
    let members = manifest(MEMBERS);
    let m = put_manifest(&mut c, &members).await;

    // The bulk CAPTURE, in its own task: its ack comes when every slice
    // is applied.
    let bulk = {
        let mut c = log.client().await;
        let e = bulk_capture("cam", &m);
        let cam = cam.clone();
        tokio::spawn(async move {
            let index = append_at(&mut c, &e, &cam).await;
            (index, Instant::now())
        })
    };
    // Another reporter's small events, one at a time, until the bulk
    // event is acknowledged.
    let mut small: Vec<(u64, Instant)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !bulk.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the bulk event was never acknowledged"
        );
        let i = append_at(&mut c, &event("gate", capture("gate")), &gate).await;
        small.push((i, Instant::now()));
        // Once the bulk entry is logged (it is the one index the small
        // events skip), one event that reads a member's custody, which
        // must wait for the whole event, and one registry event, which
        // need not (the members are applied with the registry the entry
        // was logged after).
        if small.len() >= 2
            && small[small.len() - 1].0 > small[small.len() - 2].0 + 1
            && !bulk.is_finished()
        {
            break;
        }
    }
    let skipped = small
        .windows(2)
        .find(|w| w[1].0 > w[0].0 + 1)
        .map(|w| w[0].0 + 1);
    let copy = copy_of("gate", &members[MEMBERS / 2], &system_of("cam"));
    let reg = event(&log.owner_id, party_registered("late", &log.owner_id));
    let (copy_at, reg_at) = {
        let mut c1 = log.client().await;
        let mut c2 = log.client().await;
        let owner = log.owner.clone();
        let gate = gate.clone();
        let a = tokio::spawn(async move { append_at(&mut c1, &copy, &gate).await });
        let b = tokio::spawn(async move { append_at(&mut c2, &reg, &owner).await });
        (a.await.unwrap(), b.await.unwrap())
    };
    let (bulk_at, bulk_acked) = bulk.await.unwrap();

    // The bulk entry is where the small events skipped an index, so they
    // were logged on both sides of it, some of them acknowledged while
    // its members were still being applied.
    assert_eq!(skipped, Some(bulk_at), "small events: {small:?}");
    let during: Vec<&(u64, Instant)> = small
        .iter()
        .filter(|(i, t)| *i > bulk_at && *t < bulk_acked)
        .collect();
    assert!(
        !during.is_empty(),
        "no small event was logged after the bulk entry and acknowledged before it: {small:?}"
    );
    // The events that touch its members or the registry come after it.
    assert!(
        copy_at > bulk_at && reg_at > bulk_at,
        "{copy_at} {reg_at} {bulk_at}"
    );

    // The COPY saw the whole bulk capture: no unexplained custody.
    let vkey = log.vkey.to_str().unwrap().to_owned();
    let f = inspect_json(&[
        "findings",
        "--server",
        &log.grpc,
        "--rule",
        "unexplained_custody",
        "--verify",
        "--log-key",
        &vkey,
    ]);
    assert_eq!(
        f.as_array().map(Vec::len),
        Some(0),
        "the COPY of a member was judged before the bulk capture was applied: {f:#}"
    );
    let j = audit_agrees(&log);
    assert!(j["processed"].as_u64().unwrap_or(0) >= bulk_at, "{j:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_between_slices_resumes_the_bulk_event() {
    let mut log = Log::init();
    log.start_with(&["--bulk-slice", SLICE]);
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let members = manifest(MEMBERS);
    let m = put_manifest(&mut c, &members).await;
    let before = checkpoint_size(&log.http).await;
    let e = bulk_capture("cam", &m);
    let bulk = {
        let mut c = log.client().await;
        let e = e.clone();
        let cam = cam.clone();
        tokio::spawn(async move {
            c.append(v1::AppendRequest {
                event: Some(signed(&e, &[&cam])),
                wait_for_checkpoint: false,
            })
            .await
        })
    };
    // Kill it once the entry is checkpointed but not yet acknowledged:
    // between two slices of its members.
    let deadline = Instant::now() + Duration::from_secs(300);
    while checkpoint_size(&log.http).await <= before {
        assert!(Instant::now() < deadline, "the bulk entry was never logged");
        assert!(
            !bulk.is_finished(),
            "the bulk event was acknowledged before it could be interrupted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!bulk.is_finished(), "acknowledged before the kill");
    log.kill();
    assert!(
        bulk.await.unwrap().is_err(),
        "the killed server acknowledged the bulk event"
    );

    // The restarted server resumes the job; the same event sent again is
    // answered with the index it was logged at.
    log.start();
    let mut c = log.client().await;
    let again = c
        .append(v1::AppendRequest {
            event: Some(signed(&e, &[&cam])),
            wait_for_checkpoint: false,
        })
        .await
        .expect("resubmission")
        .into_inner();
    assert_eq!(again.index, before, "logged at another index");
    assert!(again.duplicate);
    assert!(
        log.server_log().contains("resuming a bulk entry"),
        "{}",
        log.server_log()
    );
    // Queries answer as of a checkpoint before the entry until the job
    // ends; then the last member applied is held.
    let vkey = log.vkey.to_str().unwrap().to_owned();
    let last = hex(&members[members.len() - 1]);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let j = inspect_json(&[
            "holders",
            "--server",
            &log.grpc,
            "--asset",
            &last,
            "--at",
            &rfc3339(now()),
            "--verify",
            "--log-key",
            &vkey,
        ]);
        let held = j["holders"].as_array().map(Vec::len).unwrap_or(0);
        if held == 1 {
            break;
        }
        assert_eq!(held, 0, "{j:#}");
        assert!(
            Instant::now() < deadline,
            "the resumed job never finished: {j:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    audit_agrees(&log);
}
