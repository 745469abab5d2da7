//! One question, every transport, one answer: a bad or unanswerable
//! question gets the same code class and the same words over gRPC, over
//! the evidence downloads and in the web view, because all three ask the
//! answer layer (`custodyd::answer`) and map its one error type once.

use custody_e2e::*;
use custody_proto::v1;
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use tonic::Code;
use tonic_types::StatusExt as _;

/// `get` fetches `url` and returns its status code and body.
async fn get(url: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let r = reqwest::blocking::get(&url).expect("HTTP request");
        (r.status().as_u16(), r.text().expect("HTTP body"))
    })
    .await
    .expect("HTTP task")
}

/// `field_of` is the field a gRPC status's `google.rpc.BadRequest` names.
fn field_of(s: &tonic::Status) -> String {
    s.get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

/// `html` is `s` as the web view escapes it.
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_transport_refuses_a_question_in_the_same_words() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    register(&log, &mut c, "cam", 0, 0).await;
    let system = system_of("cam");
    let mut q = CustodyQueryClient::connect(log.grpc.clone())
        .await
        .expect("query client");
    let (later, earlier) = ("2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z");
    let (t_later, t_earlier) = (
        custody_domain::parse_rfc3339(later).unwrap(),
        custody_domain::parse_rfc3339(earlier).unwrap(),
    );

    // A window that ends before it starts.
    let s = q
        .breach_scope(v1::BreachScopeRequest {
            system_id: system.clone(),
            from_unix_nanos: t_later,
            to_unix_nanos: t_earlier,
            ..Default::default()
        })
        .await
        .expect_err("an inverted window");
    assert_eq!(s.code(), Code::InvalidArgument, "{}", s.message());
    assert_eq!(field_of(&s), "to");
    let (code, body) = get(format!(
        "{}/evidence/breach-scope?system={system}&from={later}&to={earlier}",
        log.http
    ))
    .await;
    assert_eq!((code, body.trim()), (400, s.message()));
    let (code, body) = get(format!(
        "{}/ui/breach-scope?system={system}&from={later}&to={earlier}",
        log.http
    ))
    .await;
    assert_eq!(code, 400);
    assert!(body.contains(&html(s.message())), "{body}");

    // A party the registry does not hold.
    let s = q
        .holdings(v1::HoldingsRequest {
            holder: Some(v1::holdings_request::Holder::Party("nobody".into())),
            time_unix_nanos: t_later,
            ..Default::default()
        })
        .await
        .expect_err("an unknown party");
    assert_eq!(s.code(), Code::NotFound, "{}", s.message());
    assert_eq!(s.message(), "party nobody is not registered");
    let (code, body) = get(format!(
        "{}/evidence/holdings?party=nobody&at={later}",
        log.http
    ))
    .await;
    assert_eq!((code, body.trim()), (404, s.message()));
    let (code, body) = get(format!("{}/ui/holdings?party=nobody&at={later}", log.http)).await;
    assert_eq!(code, 404);
    assert!(body.contains(s.message()), "{body}");

    // A checkpoint the log never published.
    let s = q
        .holders_at(v1::HoldersAtRequest {
            asset: vec![7; 32],
            time_unix_nanos: t_later,
            tree_size: 999_999,
        })
        .await
        .expect_err("an unknown checkpoint");
    assert_eq!(s.code(), Code::InvalidArgument, "{}", s.message());
    assert_eq!(field_of(&s), "tree_size");
    assert!(s.message().contains("no checkpoint of size 999999"));
    let (code, body) = get(format!(
        "{}/ui/asset/{}?size=999999",
        log.http,
        "07".repeat(32)
    ))
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("no checkpoint of size 999999"), "{body}");

    // A rule that does not exist.
    let s = q
        .findings(v1::FindingsRequest {
            rule: "no_such_rule".into(),
            ..Default::default()
        })
        .await
        .expect_err("an unknown rule");
    assert_eq!(s.code(), Code::InvalidArgument, "{}", s.message());
    assert_eq!(field_of(&s), "rule");
    let (code, body) = get(format!("{}/ui/findings?rule=no_such_rule", log.http)).await;
    assert_eq!(code, 400);
    assert!(body.contains(&html(s.message())), "{body}");

    // Page tokens and cursors the server did not write.
    let s = q
        .asset_history(v1::AssetHistoryRequest {
            asset: vec![7; 32],
            page_token: vec![1, 2, 3],
            ..Default::default()
        })
        .await
        .expect_err("a forged token");
    assert_eq!(s.code(), Code::InvalidArgument, "{}", s.message());
    assert_eq!(field_of(&s), "page_token");
    let (code, body) = get(format!(
        "{}/ui/holdings?system={system}&after=zz&size=1",
        log.http
    ))
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("not a cursor from a page link"), "{body}");

    // Unknown and repeated query parameters, by the one parser.
    for query in ["asset=00&bogus=1", "asset=00&asset=01"] {
        let (code, body) = get(format!("{}/evidence/history?{query}", log.http)).await;
        assert_eq!(code, 400, "{query}: {body}");
        assert!(body.starts_with("query string:"), "{query}: {body}");
    }
}
