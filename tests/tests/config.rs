//! Settings files (docs/configuration.md): `custodyd config check` names
//! the key at fault, `config show` applies file, environment and flags in
//! that order, and `serve --config` runs with the file's settings.

use std::process::Command;

use custody_e2e::*;

fn custodyd(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(bin("custodyd"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_settings_file_is_checked_shown_with_its_overrides_and_served() {
    let mut log = Log::init();
    let data = log.data.to_str().unwrap().to_owned();
    let file = log.path("custodyd.toml");
    let f = file.to_str().unwrap().to_owned();

    std::fs::write(&file, format!("data = \"{data}\"\nmax_conections = 5\n")).unwrap();
    let out = custodyd(&["config", "check", &f], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"max_conections\" is not a setting"), "{err}");

    std::fs::write(
        &file,
        format!("data = \"{data}\"\nmax_connections = \"many\"\n"),
    )
    .unwrap();
    let out = custodyd(&["config", "check", &f], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("key max_connections"),
        "{err}"
    );

    std::fs::write(
        &file,
        format!("data = \"{data}\"\nmax_connections = 10\nidle_timeout_secs = 30\npublic_tiles = true\n"),
    )
    .unwrap();
    let out = custodyd(&["config", "check", &f], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // File, then environment, then flags.
    let out = custodyd(
        &["config", "show", "--config", &f, "--idle-timeout-secs", "5"],
        &[
            ("CUSTODYD_MAX_CONNECTIONS", "20"),
            ("CUSTODYD_IDLE_TIMEOUT_SECS", "7"),
        ],
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.contains("max_connections = 20"), "{shown}");
    assert!(shown.contains("idle_timeout_secs = 5"), "{shown}");
    assert!(shown.contains("public_tiles = true"), "{shown}");

    // Served with the file: its public_tiles opens the tile API of a
    // server with an access list.
    let out = custodyd(
        &[
            "access", "add", "--data", &data, "--party", "a", "--role", "auditor",
        ],
        &[],
    );
    assert!(out.status.success());
    log.start_with(&["--config", &f]);
    let r = reqwest::get(format!("{}/checkpoint", log.http))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "public_tiles from the file");
}

/// `log_format = "json"`: every line the server logs is one JSON object
/// with its time, level and message, for a log collector.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line() {
    let mut log = custody_e2e::Log::init();
    log.env = vec![("CUSTODYD_LOG_FORMAT".into(), "json".into())];
    log.start();
    // The "serving" line follows the address it prints; wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !log.server_log().contains("\"serving\"") {
        assert!(std::time::Instant::now() < deadline, "{}", log.server_log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    log.kill();
    let text = log.server_log();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{text}");
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        for key in ["timestamp", "level", "message", "target"] {
            assert!(v.get(key).is_some(), "no {key}: {l}");
        }
    }
    assert!(
        lines.iter().any(|l| l.contains("\"message\":\"serving\"")),
        "{text}"
    );
}
