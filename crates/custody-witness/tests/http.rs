//! The witness over HTTP: `router` on a local port and the client.

mod common;

use std::sync::Arc;

use common::{open, witness_key, TestLog, ORIGIN};
use custody_log::{add_cosignatures, verify_witnessed, CosignatureVerifier, Hash};
use custody_witness::{add_checkpoint, router, ClientError, MAX_REQUEST_BYTES, SIZE_CONTENT_TYPE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN);
    log.grow(40);
    let w = Arc::new(open(dir.path(), &witness_key(), &[&log]));
    let wv = CosignatureVerifier::new(w.verifier_key()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let prefix = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router(w)).await });
    let http = reqwest::Client::new();

    // First contact.
    let lines = add_checkpoint(&http, &prefix, 0, &[], &log.note(10))
        .await
        .unwrap();
    let cosigned = add_cosignatures(&log.note(10), &lines).unwrap();
    let ok = verify_witnessed(&cosigned, &log.verifier(), std::slice::from_ref(&wv), 1).unwrap();
    assert_eq!(ok.checkpoint.size, 10);

    // A log that lost track of the witness learns its size from the 409
    // and retries with a proof from it.
    let got = add_checkpoint(&http, &prefix, 0, &[], &log.note(40)).await;
    let Err(ClientError::Conflict(size)) = got else {
        panic!("{got:?}")
    };
    assert_eq!(size, 10);
    let lines = add_checkpoint(&http, &prefix, size, &log.proof(size, 40), &log.note(40))
        .await
        .unwrap();
    let cosigned = add_cosignatures(&log.note(40), &lines).unwrap();
    assert!(verify_witnessed(&cosigned, &log.verifier(), &[wv], 1).is_ok());

    // Refusals carry their status and the witness's explanation.
    let mut stranger = TestLog::new("example.org/stranger");
    stranger.grow(1);
    let got = add_checkpoint(&http, &prefix, 0, &[], &stranger.note(1)).await;
    let Err(ClientError::Refused { status, body }) = got else {
        panic!("{got:?}")
    };
    assert_eq!(status, 404);
    assert!(body.contains("example.org/stranger"), "{body}");
    let mut bad = log.proof(40, 40);
    bad.push(Hash([1; 32]));
    let got = add_checkpoint(&http, &prefix, 40, &bad, &log.note(40)).await;
    assert!(
        matches!(got, Err(ClientError::Refused { status: 422, .. })),
        "{got:?}"
    );
    let too_many = vec![Hash([1; 32]); 64];
    let got = add_checkpoint(&http, &prefix, 40, &too_many, &log.note(40)).await;
    assert!(matches!(got, Err(ClientError::Request(_))), "{got:?}");

    // The raw protocol: the 409's content type and body, the size limit,
    // and POST only.
    let url = format!("{prefix}/add-checkpoint");
    let r = http
        .post(&url)
        .body(log.request(0, 40))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["content-type"], SIZE_CONTENT_TYPE);
    assert_eq!(r.text().await.unwrap(), "40\n");
    let r = http
        .post(&url)
        .body(vec![b'a'; MAX_REQUEST_BYTES + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);

    server.abort();
}
