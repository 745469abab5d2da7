//! Per-client request rates (`--rate-per-client`, `crates/custodyd/src/rate.rs`):
//! a client over its rate is refused with RESOURCE_EXHAUSTED (HTTP 429)
//! and told when to retry; another client is not slowed.

use std::time::Duration;

use custody_e2e::*;
use custody_proto::v1;
use prost::Message as _;

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

/// `--refused-per-client` (on by default): a client whose appends keep
/// being refused (here, forged signatures) is turned away unread once
/// it has spent its budget, while an honest reporter on another address
/// is served as before, and nothing forged is logged.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_whose_appends_keep_failing_is_turned_away_unread() {
    let mut log = Log::init();
    log.start_with(&["--refused-per-client", "20"]);
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let before = checkpoint_size(&log.http).await;

    // The forger, from 127.0.0.2: events signed by a key no one
    // registered.
    let forger = tonic::transport::Endpoint::from_shared(log.grpc.clone())
        .unwrap()
        .local_address(Some([127, 0, 0, 2].into()))
        .connect()
        .await
        .unwrap();
    let mut forger = v1::custody_log_client::CustodyLogClient::new(forger);
    let stranger = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let forgeries = |n: usize| -> Vec<v1::AppendRequest> {
        (0..n)
            .map(|_| v1::AppendRequest {
                event: Some(signed(&event("cam", capture("cam")), &[&stranger])),
                wait_for_checkpoint: false,
            })
            .collect()
    };
    let code = |answers: &[v1::AppendResponse], c: tonic::Code| {
        answers.iter().filter(|a| a.error_code == c as i32).count()
    };
    // Its budget is ten seconds' worth (200): a first stream of 200 is
    // checked and refused, every one.
    let first = stream_requests(&mut forger, forgeries(200)).await;
    assert_eq!(code(&first, tonic::Code::PermissionDenied), 200);
    // Then it is turned away unread: the first message over its budget
    // is answered late (held back until the budget refills, 20 a second),
    // and its stream ends there; nothing after it is read.
    let answers = stream_answers(&mut forger, forgeries(60)).await;
    let last = answers.last().unwrap();
    assert_eq!(
        last.error_code,
        tonic::Code::ResourceExhausted as i32,
        "{answers:?}"
    );
    assert!(
        answers.len() < 60,
        "the stream ended at the turned-away message"
    );
    assert_eq!(
        code(&answers, tonic::Code::PermissionDenied) + 1,
        answers.len(),
        "every other answer is a checked refusal"
    );
    // A new stream fares no better: the token that refilled while the
    // last answer was held back lets one more in to be checked, at most,
    // and the next message ends it.
    let again = stream_answers(&mut forger, forgeries(5)).await;
    assert!(again.len() <= 2, "{again:?}");
    assert_eq!(
        again.last().unwrap().error_code,
        tonic::Code::ResourceExhausted as i32
    );
    let turned = last;
    assert!(
        turned.error_message.contains("127.0.0.2")
            && turned.error_message.contains("fix what it sends"),
        "{}",
        turned.error_message
    );

    // The honest reporter, from 127.0.0.1, is served meanwhile.
    stream_captures(&mut c, "cam", &cam, 100).await;
    // Nothing forged is in the log.
    wait_for_size(&log.http, before + 100).await;
    assert_eq!(checkpoint_size(&log.http).await, before + 100);
}

/// Unary appends over the gRPC message limit, which tonic refuses with
/// OUT_OF_RANGE before the service sees them, spend the refusal budget
/// too: once it is spent, the client's appends are turned away unread
/// (RESOURCE_EXHAUSTED, answered late), whatever their size, while a
/// reporter on another address is served as before.
#[tokio::test(flavor = "multi_thread")]
async fn appends_over_the_message_limit_spend_the_refusal_budget() {
    let mut log = Log::init();
    log.start_with(&["--refused-per-client", "1"]);
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let before = checkpoint_size(&log.http).await;

    let flooder = tonic::transport::Endpoint::from_shared(log.grpc.clone())
        .unwrap()
        .local_address(Some([127, 0, 0, 2].into()))
        .connect()
        .await
        .unwrap();
    let mut flooder =
        v1::custody_log_client::CustodyLogClient::new(flooder).max_encoding_message_size(1 << 20);
    let mut big = signed(&event("cam", capture("cam")), &[&cam]);
    big.body = vec![0u8; 300 * 1024].into();
    let req = || v1::AppendRequest {
        event: Some(big.clone()),
        wait_for_checkpoint: false,
    };
    // The budget is ten seconds' worth (10): each over-limit message is
    // refused by tonic and charged, until the budget is spent.
    let mut codes = Vec::new();
    for _ in 0..30 {
        let code = match flooder.append(req()).await {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        codes.push(code);
        if code == tonic::Code::ResourceExhausted {
            break;
        }
    }
    let out_of_range = codes
        .iter()
        .filter(|c| **c == tonic::Code::OutOfRange)
        .count();
    assert_eq!(
        codes.last(),
        Some(&tonic::Code::ResourceExhausted),
        "turned away once the budget is spent: {codes:?}"
    );
    assert!(
        (9..=12).contains(&out_of_range),
        "about the budget (10) was refused as too large first: {codes:?}"
    );
    // The answer was held back until one token refilled (1 a second);
    // the next message spends it...
    let next = flooder.append(req()).await.expect_err("over the limit");
    assert!(
        matches!(
            next.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{next:?}"
    );
    // ...and a well-formed append from the same address is then turned
    // away too, unread (its signature is good, but nothing of it is
    // looked at).
    let good = flooder
        .append(v1::AppendRequest {
            event: Some(signed(&event("cam", capture("cam")), &[&cam])),
            wait_for_checkpoint: false,
        })
        .await;
    let status = good.expect_err("turned away while over the budget");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("127.0.0.2"),
        "{}",
        status.message()
    );

    // The reporter on 127.0.0.1 is served meanwhile.
    stream_captures(&mut c, "cam", &cam, 50).await;
    wait_for_size(&log.http, before + 50).await;
    assert_eq!(checkpoint_size(&log.http).await, before + 50);
}

/// `raw_append` sends one unary `Append` over a raw HTTP/2 connection
/// from `from`, with `message` as its gRPC message and a bearer token in
/// the headers or in request trailers, and returns the answer's
/// grpc-status and grpc-message.
async fn raw_append(
    grpc: &str,
    from: [u8; 4],
    message: &[u8],
    header_token: Option<&str>,
    trailer_token: Option<&str>,
) -> (i32, String) {
    let addr: std::net::SocketAddr = grpc.trim_start_matches("http://").parse().unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind((std::net::IpAddr::from(from), 0).into()).unwrap();
    let tcp = sock.connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let mut req = http::Request::post(format!("http://{addr}/custody.v1.CustodyLog/Append"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(t) = header_token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let (resp, mut send) = client.send_request(req.body(()).unwrap(), false).unwrap();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    send.send_data(bytes::Bytes::from(frame), trailer_token.is_none())
        .unwrap();
    if let Some(t) = trailer_token {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("authorization", format!("Bearer {t}").parse().unwrap());
        send.send_trailers(trailers).unwrap();
    }
    let resp = resp.await.unwrap();
    let (parts, mut body) = resp.into_parts();
    let read = |h: &http::HeaderMap| {
        h.get("grpc-status").map(|s| {
            (
                s.to_str().unwrap().parse::<i32>().unwrap(),
                h.get("grpc-message")
                    .map(|m| m.to_str().unwrap_or_default().to_owned())
                    .unwrap_or_default(),
            )
        })
    };
    if let Some(a) = read(&parts.headers) {
        return a;
    }
    while let Some(d) = body.data().await {
        let d = d.unwrap();
        let _ = body.flow_control().release_capacity(d.len());
    }
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    read(&trailers).expect("a grpc-status")
}

/// Found by a hostile review of the door: tonic merges request trailers
/// into the metadata, so an `authorization` sent there named a client
/// whose budget the door never checked, and refusals tonic makes before
/// the service runs (a message that is not protobuf) cost nothing. Both
/// are now refused and charged to the client the door saw.
#[tokio::test(flavor = "multi_thread")]
async fn trailers_and_undecodable_messages_cannot_dodge_the_refusal_budget() {
    let mut log = Log::init();
    let out = std::process::Command::new(bin("custodyd"))
        .args(["access", "add", "--data", log.data.to_str().unwrap()])
        .args(["--party", "cam", "--role", "reporter", "--label", "e2e"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    log.start_with(&["--refused-per-client", "1"]);

    // A token in the trailers only: refused, naming the field, and
    // charged to the address, which is turned away once its budget (10)
    // is spent.
    let stranger = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let forged = v1::AppendRequest {
        event: Some(signed(&event("cam", capture("cam")), &[&stranger])),
        wait_for_checkpoint: false,
    }
    .encode_to_vec();
    let (code, msg) = raw_append(&log.grpc, [127, 0, 0, 2], &forged, None, Some(&token)).await;
    assert_eq!(code, tonic::Code::InvalidArgument as i32, "{msg}");
    assert!(msg.contains("authorization"), "{msg}");
    let mut codes = vec![code];
    for _ in 0..30 {
        let (code, _) = raw_append(&log.grpc, [127, 0, 0, 2], &forged, None, Some(&token)).await;
        codes.push(code);
        if code == tonic::Code::ResourceExhausted as i32 {
            break;
        }
    }
    assert_eq!(
        codes.last(),
        Some(&(tonic::Code::ResourceExhausted as i32)),
        "{codes:?}"
    );

    // Messages that are not protobuf, refused by tonic (INTERNAL) before
    // the service runs: charged too.
    let garbage = [0xffu8; 40];
    let mut codes = Vec::new();
    for _ in 0..30 {
        let (code, _) = raw_append(&log.grpc, [127, 0, 0, 3], &garbage, Some(&token), None).await;
        codes.push(code);
        if code == tonic::Code::ResourceExhausted as i32 {
            break;
        }
    }
    assert_eq!(
        codes.last(),
        Some(&(tonic::Code::ResourceExhausted as i32)),
        "{codes:?}"
    );
    assert!(
        codes[..codes.len() - 1]
            .iter()
            .all(|c| *c == tonic::Code::Internal as i32),
        "{codes:?}"
    );
}
