//! Roles (DESIGN §8): once a data directory has an access list
//! (`custodyd access add`), every request needs a bearer token, and each
//! role may do what it may and no more. A reporter reports only its own
//! party's events and reads back only its own entries; auditors read
//! everything; witnesses read checkpoints and hash tiles. Tokens are
//! stored hashed and never written to the server's log, and a revoked one
//! stops working without a restart.

use std::process::Command;
use std::time::{Duration, Instant};

use custody_e2e::*;
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use tonic::transport::Channel;
use tonic::Code;

/// `http` is the status code of GET `url` with `token`.
async fn http(url: String, token: Option<String>) -> u16 {
    tokio::task::spawn_blocking(move || {
        let mut r = reqwest::blocking::Client::new().get(&url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().expect("HTTP request").status().as_u16()
    })
    .await
    .expect("HTTP task")
}

async fn append_as(
    c: &mut CustodyLogClient<Channel>,
    e: &v1::Event,
    key: &ed25519_dalek::SigningKey,
    token: Option<&str>,
) -> Result<v1::AppendResponse, tonic::Status> {
    c.append(authed(
        v1::AppendRequest {
            event: Some(signed(e, &[key])),
            wait_for_checkpoint: false,
        },
        token,
    ))
    .await
    .map(|r| r.into_inner())
}

fn code<T>(r: Result<T, tonic::Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_role_does_what_it_may_and_no_more() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    // Set up while the server is open: two reporters, one event each.
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let vendor = register(&log, &mut c, "vendor", 0, 0).await;
    let cam_idx = append_as(&mut c, &event("cam", capture("cam")), &cam, None)
        .await
        .expect("open server")
        .index;
    let vendor_idx = append_as(&mut c, &event("vendor", capture("vendor")), &vendor, None)
        .await
        .expect("open server")
        .index;
    wait_for_size(&log.http, vendor_idx + 1).await;

    // Close it: the server re-reads the list as it changes.
    let cam_t = token(&log, "cam", "reporter");
    let aud_t = token(&log, "oig", "auditor");
    let wit_t = token(&log, "witness-1", "witness");
    let (cam_t, aud_t, wit_t) = (cam_t.as_str(), aud_t.as_str(), wit_t.as_str());
    let mut q = CustodyQueryClient::connect(log.grpc.clone()).await.unwrap();
    let findings = || v1::FindingsRequest::default();

    // Without a token, or with a wrong one: nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    while code(q.findings(authed(findings(), None)).await) != Code::Unauthenticated {
        assert!(Instant::now() < deadline, "the access list was not read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bogus = "clt_0000000000000000000000000000000000000000000000000000000000000000";
    for t in [None, Some(bogus), Some("not-a-token")] {
        assert_eq!(
            code(append_as(&mut c, &event("cam", capture("cam")), &cam, t).await),
            Code::Unauthenticated
        );
        assert_eq!(
            code(q.findings(authed(findings(), t)).await),
            Code::Unauthenticated
        );
        let t = t.map(str::to_owned);
        for path in [
            "/checkpoint",
            "/ui/",
            "/tile/entries/000.p/1",
            "/tile/0/000.p/1",
        ] {
            assert_eq!(
                http(format!("{}{path}", log.http), t.clone()).await,
                401,
                "{path}"
            );
        }
    }
    // Health stays open, for probes.
    let ch = Channel::from_shared(log.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    assert!(health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .is_ok());

    // A reporter: its own events only, its own entries only.
    let own = append_as(&mut c, &event("cam", capture("cam")), &cam, Some(cam_t))
        .await
        .expect("cam reports for cam");
    // The vendor's event is validly signed by the vendor, but cam's token
    // may not submit it: PERMISSION_DENIED, and nothing is appended.
    let foreign = event("vendor", capture("vendor"));
    let r = append_as(&mut c, &foreign, &vendor, Some(cam_t)).await;
    assert_eq!(code(r), Code::PermissionDenied);
    let reqs = vec![
        v1::AppendRequest {
            event: Some(signed(&foreign, &[&vendor])),
            wait_for_checkpoint: false,
        },
        v1::AppendRequest {
            event: Some(signed(&event("cam", capture("cam")), &[&cam])),
            wait_for_checkpoint: false,
        },
    ];
    let answers: Vec<v1::AppendResponse> = {
        let mut out = c
            .append_stream(authed(tokio_stream::iter(reqs), Some(cam_t)))
            .await
            .expect("stream")
            .into_inner();
        let mut v = Vec::new();
        while let Some(a) = out.message().await.expect("stream answer") {
            v.push(a);
        }
        v
    };
    assert_eq!(answers[0].error_code, Code::PermissionDenied as i32);
    assert_eq!(answers[1].error_code, 0, "{}", answers[1].error_message);
    let last = answers[1].index;
    assert_eq!(last, own.index + 1, "the refused event took no index");
    let entries = |start, end| v1::GetEntriesRequest { start, end };
    wait_for_size_with(&log.http, last + 1, aud_t).await;
    for (i, want) in [
        (0, Code::Ok),
        (cam_idx, Code::Ok),
        (own.index, Code::Ok),
        (vendor_idx, Code::PermissionDenied),
    ] {
        assert_eq!(
            code(c.get_entries(authed(entries(i, i + 1), Some(cam_t))).await),
            want,
            "entry {i}"
        );
        let p = v1::GetInclusionProofRequest {
            index: i,
            tree_size: 0,
        };
        if i > 0 {
            assert_eq!(
                code(c.get_inclusion_proof(authed(p, Some(cam_t))).await),
                want,
                "proof of {i}"
            );
        }
    }
    assert_eq!(
        code(
            c.get_entries(authed(entries(cam_idx, vendor_idx + 1), Some(cam_t)))
                .await
        ),
        Code::PermissionDenied,
        "a range holding another's entry"
    );
    assert_eq!(
        code(
            c.get_checkpoint(authed(v1::GetCheckpointRequest::default(), Some(cam_t)))
                .await
        ),
        Code::Ok
    );
    assert_eq!(
        code(q.findings(authed(findings(), Some(cam_t))).await),
        Code::PermissionDenied
    );
    for (path, want) in [
        ("/checkpoint", 200),
        ("/ui/", 403),
        ("/tile/0/000.p/1", 403),
        ("/tile/entries/000.p/1", 403),
    ] {
        assert_eq!(
            http(format!("{}{path}", log.http), Some(cam_t.into())).await,
            want,
            "reporter {path}"
        );
    }

    // An auditor reads everything and reports nothing.
    assert_eq!(
        code(q.findings(authed(findings(), Some(aud_t))).await),
        Code::Ok
    );
    assert_eq!(
        code(
            c.get_entries(authed(entries(vendor_idx, vendor_idx + 1), Some(aud_t)))
                .await
        ),
        Code::Ok
    );
    assert_eq!(
        code(append_as(&mut c, &event("oig", capture("cam")), &cam, Some(aud_t)).await),
        Code::PermissionDenied
    );
    for path in [
        "/checkpoint",
        "/ui/",
        "/tile/0/000.p/1",
        "/tile/entries/000.p/1",
    ] {
        assert_eq!(
            http(format!("{}{path}", log.http), Some(aud_t.into())).await,
            200,
            "auditor {path}"
        );
    }
    // The CLI carries the token.
    let out = Command::new(bin("custody"))
        .args(["inspect", "findings", "--server", &log.grpc, "--json"])
        .env("CUSTODY_TOKEN", aud_t)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(bin("custody"))
        .args(["inspect", "findings", "--server", &log.grpc, "--json"])
        .env_remove("CUSTODY_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));

    // A witness: checkpoints and hash tiles, not entries or answers.
    for (path, want) in [
        ("/checkpoint", 200),
        ("/tile/0/000.p/1", 200),
        ("/tile/entries/000.p/1", 403),
        ("/ui/", 403),
    ] {
        assert_eq!(
            http(format!("{}{path}", log.http), Some(wit_t.into())).await,
            want,
            "witness {path}"
        );
    }
    assert_eq!(
        code(q.findings(authed(findings(), Some(wit_t))).await),
        Code::PermissionDenied
    );

    // Secrets: the list holds hashes only, readable by its owner only;
    // the server's log names no token.
    let list = std::fs::read_to_string(log.data.join("access.json")).unwrap();
    let server_log = log.server_log();
    for t in [cam_t, aud_t, wit_t, bogus] {
        assert!(!list.contains(t));
        assert!(!server_log.contains(t), "the server logged a token");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(log.data.join("access.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "access.json is {mode:o}");
    }

    // Revoked: the token stops working without a restart.
    let out = Command::new(bin("custodyd"))
        .args(["access", "list", "--data", log.data.to_str().unwrap()])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let prefix = listed
        .lines()
        .find(|l| l.contains("\tcam\t"))
        .and_then(|l| l.split('\t').next())
        .expect("cam's grant is listed")
        .to_owned();
    // A file time one second on, so a coarse clock still shows a change.
    std::thread::sleep(Duration::from_millis(1100));
    let out = Command::new(bin("custodyd"))
        .args([
            "access",
            "revoke",
            "--data",
            log.data.to_str().unwrap(),
            &prefix,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        code(append_as(&mut c, &event("cam", capture("cam")), &cam, Some(cam_t)).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(q.findings(authed(findings(), Some(aud_t))).await),
        Code::Ok,
        "other tokens still work"
    );

    // --public-tiles opens the tile API, and nothing else.
    log.kill();
    log.start_with(&["--public-tiles"]);
    for (path, want) in [
        ("/checkpoint", 200),
        ("/tile/0/000.p/1", 200),
        ("/tile/entries/000.p/1", 200),
        ("/ui/", 401),
        ("/evidence/history?asset=00", 401),
    ] {
        assert_eq!(
            http(format!("{}{path}", log.http), None).await,
            want,
            "public tiles: {path}"
        );
    }
}

/// `wait_for_size_with` waits until a checkpoint of at least `size`
/// entries is published, reading it with `token`.
async fn wait_for_size_with(http_base: &str, size: u64, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (url, t) = (format!("{http_base}/checkpoint"), token.to_owned());
        let body = tokio::task::spawn_blocking(move || {
            reqwest::blocking::Client::new()
                .get(url)
                .bearer_auth(t)
                .send()
                .and_then(|r| r.text())
                .unwrap_or_default()
        })
        .await
        .unwrap();
        let got: u64 = body
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        if got >= size {
            return;
        }
        assert!(Instant::now() < deadline, "no checkpoint of size {size}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
