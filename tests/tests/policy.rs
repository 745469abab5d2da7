//! The findings policy is in the log (DESIGN §3, POLICY_PUBLISHED): the
//! real server and `custody audit` read it from the entries, with no flag
//! to agree on; a new policy applies to the entries after it only, also
//! after a restart; a malformed policy, or one not signed by the data
//! owner, is refused and logs nothing.

use custody_e2e::*;
use custody_proto::v1;
use serde_json::Value;
use tonic::Code;

const SEC: i64 = 1_000_000_000;
const HOUR: i64 = 3600 * SEC;

/// `late` is the entries the server finds reported late, as of now.
fn late(log: &Log) -> Vec<u64> {
    let vkey = log.vkey.to_str().unwrap().to_owned();
    let all = inspect_json(&[
        "findings",
        "--server",
        &log.grpc,
        "--all",
        "--rule",
        "late_reporting",
        "--verify",
        "--log-key",
        &vkey,
    ]);
    let Value::Array(all) = all else {
        panic!("findings --json is not an array: {all}");
    };
    let mut out: Vec<u64> = all
        .iter()
        .map(|f| f["entries"][0].as_u64().expect("an entry"))
        .collect();
    out.sort_unstable();
    out
}

/// `capture_at` logs a CAPTURE by `cam` that happened `ago` before now.
async fn capture_at(
    c: &mut custody_proto::v1::custody_log_client::CustodyLogClient<tonic::transport::Channel>,
    key: &ed25519_dalek::SigningKey,
    ago: i64,
) -> u64 {
    let mut e = event("cam", capture("cam"));
    e.event_time_unix_nanos = now() - ago;
    e.reporter_seq = 0;
    append(c, &e, &[key]).await.expect("capture").index
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_applies_to_the_entries_after_it_and_the_audit_reads_it_from_the_log() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;

    // No policy yet: the default deadline, one hour.
    let before = capture_at(&mut c, &cam, 2 * HOUR).await;
    // Three hours from the next entry on.
    let p = publish_policy(&log, &mut c, 3600, 3 * 3600, 86_400).await;
    let after = capture_at(&mut c, &cam, 2 * HOUR).await;
    let very = capture_at(&mut c, &cam, 4 * HOUR).await;
    assert!(before < p && p < after);
    assert_eq!(
        late(&log),
        vec![before, very],
        "two hours late is late before the policy and on time after it"
    );

    // The web view's status page shows the policy in force, and its entry.
    let page = reqwest::get(format!("{}/ui/", log.http))
        .await
        .expect("GET /ui/")
        .text()
        .await
        .expect("a page");
    let policy = page
        .split("id=\"policy\"")
        .nth(1)
        .and_then(|rest| rest.split("</dl>").next())
        .expect("the policy on the status page");
    assert!(
        policy.contains(&format!(">{p}<")) && policy.contains("10,800 s"),
        "{policy}"
    );

    // The auditor replays the log with no flag and agrees.
    let j = audit_agrees(&log);
    assert_eq!(j["findings"]["late_reporting"], 2, "{j:#}");

    // After a restart, the same: the policy is read from the log.
    log.kill();
    log.start();
    assert_eq!(late(&log), vec![before, very]);
    // And a server flag to change it does not exist.
    let out = std::process::Command::new(bin("custodyd"))
        .args(["serve", "--data", log.data.to_str().unwrap()])
        .args(["--reporting-deadline-secs", "60"])
        .output()
        .expect("run custodyd");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--reporting-deadline-secs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_or_unauthorised_policy_is_refused_and_logs_nothing() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let size = checkpoint_size(&log.http).await;

    for (body, field) in [
        (policy_published(0, 3600, 86_400), "receipt_window"),
        (policy_published(3600, -1, 86_400), "reporting_deadline"),
        (
            v1::event::Body::PolicyPublished(v1::PolicyPublished {
                receipt_window_nanos: HOUR,
                reporting_deadline_nanos: HOUR,
                attestation_period_nanos: i64::MAX,
            }),
            "attestation_period",
        ),
    ] {
        let e = event(&log.owner_id, body);
        let err = append(&mut c, &e, &[&log.owner])
            .await
            .expect_err("a policy with a window that is not one");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(field), "{}", err.message());
    }

    // A reporter cannot publish the policy it is judged by.
    let e = event("cam", policy_published(3600, 1_000_000, 86_400));
    let err = append(&mut c, &e, &[&cam])
        .await
        .expect_err("a policy by a reporter");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("data owner"), "{}", err.message());

    // Nothing was logged.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(checkpoint_size(&log.http).await, size);
}
