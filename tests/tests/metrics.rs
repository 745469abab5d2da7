//! `/metrics`: in the Prometheus text format, accepted by `promtool check
//! metrics` (Debian's `prometheus` package, which `deploy/install-deps.sh
//! --test` installs), needing no credentials, and scraped by a real
//! Prometheus started here on loopback, whose HTTP API then answers a
//! query for `custody_tree_size`.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use custody_e2e::*;
use custody_proto::v1;

/// `kill_on_drop` stops Prometheus however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_need_no_token_and_a_real_prometheus_scrapes_them() {
    let mut log = Log::init();
    let out = Command::new(bin("custodyd"))
        .args(["access", "add", "--data", log.data.to_str().unwrap()])
        .args(["--party", "data-owner", "--role", "reporter"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    log.start();
    // Appends, as the data owner's reporter token: the registry and a
    // refused event (signed by a key the log does not know).
    let ch = tonic::transport::Channel::from_shared(log.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let mut c = v1::custody_log_client::CustodyLogClient::with_interceptor(
        ch,
        move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", bearer.clone());
            Ok(r)
        },
    );
    let reg = event(&log.owner_id, party_registered("cam", &log.owner_id));
    c.append(v1::AppendRequest {
        event: Some(signed(&reg, &[&log.owner])),
        wait_for_checkpoint: true,
    })
    .await
    .expect("registered");
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let bad = event(&log.owner_id, party_registered("cam-2", &log.owner_id));
    let refused = c
        .append(v1::AppendRequest {
            event: Some(signed(&bad, &[&stranger])),
            wait_for_checkpoint: false,
        })
        .await
        .expect_err("an unknown key is refused");

    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/metrics", log.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "no token needed");
    let text = r.text().await.unwrap();
    assert_eq!(sample(&text, "custody_tree_size"), Some(2.0), "{text}");
    assert_eq!(
        sample(&text, "custody_entries_appended_total"),
        Some(1.0),
        "{text}"
    );
    let code = format!("code=\"{:?}\"", refused.code());
    assert!(
        text.lines()
            .any(|l| l.starts_with("custody_appends_refused_total{") && l.contains(&code)),
        "{code} counted: {text}"
    );
    assert!(
        text.contains("custody_rocksdb{stat=\"sst_files_bytes\"}"),
        "{text}"
    );
    assert!(
        !text.contains(&token) && !text.contains("cam-2"),
        "no secrets, no ids"
    );

    // promtool, the Prometheus project's own checker.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (deploy/install-deps.sh --test installs Debian's prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // A real Prometheus scrapes it every second.
    let dir = log.path("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let target = log.http.trim_start_matches("http://");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: custody\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = KillOnDrop(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus"),
    );
    let query = format!("http://127.0.0.1:{port}/api/v1/query?query=custody_tree_size");
    let deadline = Instant::now() + Duration::from_secs(60);
    let value = loop {
        let answer = match http.get(&query).send().await {
            Ok(r) => r
                .text()
                .await
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()),
            Err(_) => None,
        };
        let value = answer.as_ref().and_then(|j| {
            j["data"]["result"][0]["value"][1]
                .as_str()
                .map(str::to_owned)
        });
        if let Some(v) = value {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never had custody_tree_size: {answer:?} {}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(value, "2");
}
