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

/// `signing_key`: the log's private key kept outside the data directory
/// (a Kubernetes Secret's mount, say). `custodyd keygen` makes it, `init
/// --signing-key` uses it and writes no key into the data directory,
/// `serve` refuses to start without it or with another log's key, runs
/// with it, and a backup holds no private key.
#[tokio::test(flavor = "multi_thread")]
async fn the_signing_key_can_live_outside_the_data_directory() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut log = Log::init();
    let secret = log.path("secret");
    std::fs::create_dir(&secret).unwrap();
    let key = secret.join("log.key");
    let k = key.to_str().unwrap().to_owned();
    let out = custodyd(&["keygen", "--origin", ORIGIN, "--out", &k], &[]);
    assert!(out.status.success(), "{out:?}");
    let vkey = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(vkey.starts_with(&format!("{ORIGIN}+")), "{vkey}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file is private from the start");
    let again = custodyd(&["keygen", "--origin", ORIGIN, "--out", &k], &[]);
    assert!(
        !again.status.success(),
        "an existing key is never overwritten"
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap().lines().count(), 1);

    let owner_pub = log.owner_key.with_extension("pub");
    let owner_pub = owner_pub.to_str().unwrap();
    // A key for another origin is refused, and nothing is made.
    let other = log.path("other.key");
    let o = other.to_str().unwrap();
    assert!(
        custodyd(&["keygen", "--origin", "other.test/log", "--out", o], &[])
            .status
            .success()
    );
    let wrong_dir = log.path("wrong");
    let out = custodyd(
        &[
            "init",
            "--data",
            wrong_dir.to_str().unwrap(),
            "--origin",
            ORIGIN,
            "--owner-key",
            owner_pub,
            "--signing-key",
            o,
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("other.test/log"),
        "{err}"
    );
    assert!(!wrong_dir.join("db").exists(), "nothing is made");

    let data = log.path("data-external");
    let d = data.to_str().unwrap().to_owned();
    let out = custodyd(
        &[
            "init",
            "--data",
            &d,
            "--origin",
            ORIGIN,
            "--owner-key",
            owner_pub,
            "--signing-key",
            &k,
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), vkey);
    assert!(
        !data.join("log.key").exists(),
        "no private key in the data directory"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("log.vkey"))
            .unwrap()
            .trim(),
        vkey
    );

    let serve = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "serve",
            "--data",
            &d,
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        custodyd(&args, env)
    };
    // Without the key: refused, naming the file it looked for.
    let out = serve(&[], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("log.key"), "{err}");
    // Another log's key of the same origin: refused, before signing anything.
    let stranger = log.path("stranger.key");
    let s = stranger.to_str().unwrap();
    assert!(custodyd(&["keygen", "--origin", ORIGIN, "--out", s], &[])
        .status
        .success());
    let out = serve(&["--signing-key", s], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is not the key of this log"),
        "{err}"
    );
    assert!(
        !err.contains("PRIVATE+KEY"),
        "the key is never printed: {err}"
    );
    // `config check` looks for the key too, and names the setting.
    let file = log.path("external.toml");
    std::fs::write(&file, format!("data = \"{d}\"\n")).unwrap();
    let f = file.to_str().unwrap();
    let out = custodyd(&["config", "check", f], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("log.key"), "{err}");
    std::fs::write(&file, format!("data = \"{d}\"\nsigning_key = \"{k}\"\n")).unwrap();
    let out = custodyd(&["config", "check", f], &[]);
    assert!(out.status.success(), "{out:?}");

    // With it, from the environment as a Secret's mount would be given.
    log.data = data.clone();
    log.vkey = data.join("log.vkey");
    log.env = vec![("CUSTODYD_SIGNING_KEY".into(), k.clone())];
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    stream_captures(&mut c, "cam", &cam, 10).await;
    let size = checkpoint_size(&log.http).await;
    let note = reqwest::get(format!("{}/checkpoint", log.http))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let cp = custody_log::LogVerifier::new(&vkey)
        .unwrap()
        .verify(&note)
        .expect("the checkpoint verifies with the log's key");
    // Checkpoints only grow: the one fetched after the size was read
    // covers at least as much.
    assert!(cp.size >= size, "{} < {size}", cp.size);

    // A backup of the running server holds no private key.
    let backup = log.path("backup");
    let out = custodyd(
        &["backup", "--data", &d, "--out", backup.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("not in it"), "{said}");
    assert!(!backup.join("log.key").exists());
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("backup.json")).unwrap()).unwrap();
    assert_eq!(info["holds_signing_key"], false, "{info}");
    log.kill();
}
