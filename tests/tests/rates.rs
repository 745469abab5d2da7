//! Per-client request rates (`--rate-per-client`, `crates/custodyd/src/rate.rs`):
//! a client over its rate is refused with RESOURCE_EXHAUSTED (HTTP 429)
//! and told when to retry; another client is not slowed.

use std::time::Duration;

use custody_e2e::*;
use custody_proto::v1;

#[tokio::test(flavor = "multi_thread")]
async fn a_client_over_its_rate_is_refused_and_another_is_served() {
    let mut log = Log::init();
    log.start_with(&["--rate-per-client", "50", "--rate-burst", "50"]);
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 300 appends at once from 127.0.0.1: about the burst is taken, the
    // rest refused in-band, each saying when to retry.
    let reqs: Vec<_> = (0..300)
        .map(|_| v1::AppendRequest {
            event: Some(signed(&event("cam", capture("cam")), &[&cam])),
            wait_for_checkpoint: false,
        })
        .collect();
    let answers = stream_requests(&mut c, reqs).await;
    let refused: Vec<_> = answers
        .iter()
        .filter(|a| a.error_code == tonic::Code::ResourceExhausted as i32)
        .collect();
    let accepted = answers.iter().filter(|a| a.error_code == 0).count();
    assert!(
        refused.len() >= 200 && accepted >= 40,
        "{accepted} accepted, {} refused",
        refused.len()
    );
    assert!(
        refused[0].error_message.contains("over its rate")
            && refused[0].error_message.contains("retry in"),
        "{}",
        refused[0].error_message
    );
    assert_eq!(accepted + refused.len(), 300, "nothing else went wrong");

    // Meanwhile another address is served at once.
    let other = tonic::transport::Endpoint::from_shared(log.grpc.clone())
        .unwrap()
        .local_address(Some([127, 0, 0, 2].into()))
        .connect()
        .await
        .unwrap();
    let mut other = v1::custody_log_client::CustodyLogClient::new(other);
    for _ in 0..20 {
        other
            .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
            .await
            .expect("another client is not limited by the first");
    }

    // Over HTTP, the same client is told 429.
    let http = reqwest::Client::new();
    let mut codes = Vec::new();
    for _ in 0..80 {
        codes.push(
            http.get(format!("{}/checkpoint", log.http))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert!(codes.contains(&429), "{codes:?}");

    // And after a pause, it is served again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ok = http
        .get(format!("{}/checkpoint", log.http))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    // Only what was accepted is in the log.
    wait_for_size(&log.http, 4 + accepted as u64).await;
}
