//! TLS on both listeners, and client certificates mapped to parties
//! (DESIGN §8): `custodyd tls issue` makes a CA and certificates,
//! `custodyd serve --tls-cert --tls-key --tls-client-ca` serves them, and
//! the `custody` CLI reaches it with `--ca` and, for mutual TLS,
//! `--client-cert` and `--client-key`.

use std::path::Path;
use std::process::{Command, Output};

use custody_e2e::{bin, custody, Log};

fn custodyd(args: &[&str]) -> Output {
    Command::new(bin("custodyd"))
        .args(args)
        .output()
        .expect("run custodyd")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output, what: &str) -> String {
    assert!(
        !out.status.success(),
        "{what} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn issue(dir: &Path, clients: &[&str]) {
    let mut args = vec!["tls", "issue", "--dir", dir.to_str().unwrap()];
    for c in clients {
        args.extend(["--client", c]);
    }
    ok(&custodyd(&args), "custodyd tls issue");
}

/// `client` is the `--client-cert` and `--client-key` flags of a client
/// certificate `custodyd tls issue` made in `dir`.
fn client(dir: &Path, name: &str) -> Vec<String> {
    let stem = dir.join(format!("client-{name}"));
    vec![
        "--client-cert".into(),
        format!("{}.pem", stem.display()),
        "--client-key".into(),
        format!("{}.key", stem.display()),
    ]
}

fn run(args: &[String]) -> Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    custody(&a)
}

#[test]
fn tls_serves_both_listeners_and_client_certificates_act_for_their_parties() {
    let mut log = Log::init();
    let pki = log.path("pki");
    issue(&pki, &["auditor.example", "vendor.example"]);
    // A second CA, which the server does not trust, issues a certificate
    // with a name the access list does bind.
    let foreign = log.path("foreign");
    issue(&foreign, &["auditor.example"]);
    let data = log.data.to_str().unwrap().to_owned();
    let add = |extra: &[&str]| {
        let mut a = vec!["access", "add", "--data", &data];
        a.extend_from_slice(extra);
        ok(&custodyd(&a), "access add")
    };
    add(&[
        "--party",
        "auditor-1",
        "--role",
        "auditor",
        "--san",
        "auditor.example",
    ]);
    add(&[
        "--party",
        "vendor",
        "--role",
        "reporter",
        "--san",
        "vendor.example",
    ]);
    let token = add(&["--party", "auditor-2", "--role", "auditor"])
        .trim()
        .to_owned();
    let listed = ok(&custodyd(&["access", "list", "--data", &data]), "list");
    assert!(
        listed.contains("san:auditor.example\tauditor-1\tauditor"),
        "{listed}"
    );

    let file = |n: &str| pki.join(n).to_str().unwrap().to_owned();
    log.start_with(&[
        "--tls-cert",
        &file("server.pem"),
        "--tls-key",
        &file("server.key"),
        "--tls-client-ca",
        &file("ca.pem"),
    ]);
    let grpc = log.grpc.replace("http://", "https://");
    let http = log.http.replace("http://", "https://");
    let ca = vec!["--ca".to_owned(), file("ca.pem")];
    let vkey = log.vkey.to_str().unwrap().to_owned();
    let state = log.path("monitor.state");
    let state = state.to_str().unwrap().to_owned();

    // gRPC (custody queries) and HTTP (checkpoint and tiles), each as
    // the auditor's certificate, as the auditor's token, and as nobody.
    let findings = |who: &[String]| {
        let mut a = ca.clone();
        a.extend_from_slice(who);
        a.extend(
            ["inspect", "findings", "--server", &grpc, "--json"]
                .iter()
                .map(|s| s.to_string()),
        );
        run(&a)
    };
    let monitor = |who: &[String]| {
        let _ = std::fs::remove_file(&state);
        let mut a = ca.clone();
        a.extend_from_slice(who);
        a.extend(
            [
                "monitor",
                "--url",
                &http,
                "--log-key",
                &vkey,
                "--state",
                &state,
                "--once",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        run(&a)
    };
    let by_cert = client(&pki, "auditor.example");
    let by_token = vec!["--token".to_owned(), token.clone()];
    ok(
        &findings(&by_cert),
        "findings with the auditor's certificate",
    );
    ok(&monitor(&by_cert), "monitor with the auditor's certificate");
    ok(&findings(&by_token), "findings with a token over TLS");
    ok(&monitor(&by_token), "monitor with a token over TLS");

    let e = failed(&findings(&[]), "findings as nobody");
    assert!(
        e.contains("needs a token") && e.contains("client certificate"),
        "{e}"
    );
    let e = failed(&monitor(&[]), "monitor as nobody");
    assert!(e.contains("401") || e.contains("token"), "{e}");

    // A reporter's certificate is a reporter: no custody queries.
    let e = failed(
        &findings(&client(&pki, "vendor.example")),
        "findings as the vendor",
    );
    assert!(e.contains("auditor role") && e.contains("vendor"), "{e}");

    // A certificate from a CA the server does not trust ends the
    // handshake, whatever name it carries.
    failed(
        &findings(&client(&foreign, "auditor.example")),
        "findings with a foreign CA's certificate",
    );
    failed(
        &monitor(&client(&foreign, "auditor.example")),
        "monitor with a foreign CA's certificate",
    );

    // A client that does not trust the server's CA does not talk to it.
    let mut no_ca = by_token.clone();
    no_ca.extend(
        ["inspect", "findings", "--server", &grpc]
            .iter()
            .map(|s| s.to_string()),
    );
    failed(&run(&no_ca), "findings without --ca");
    // Plain text to a TLS listener gets nothing.
    let mut plain = by_token.clone();
    plain.extend(
        ["inspect", "findings", "--server", &log.grpc]
            .iter()
            .map(|s| s.to_string()),
    );
    failed(&run(&plain), "findings in plain text");

    // Revoking a certificate's grant closes it out.
    ok(
        &custodyd(&["access", "revoke", "--data", &data, "san:auditor.example"]),
        "revoke",
    );
    let e = failed(&findings(&by_cert), "findings after revocation");
    assert!(e.contains("access list"), "{e}");
    // The server's log never holds the key.
    let key = std::fs::read_to_string(file("server.key")).unwrap();
    let body = key
        .lines()
        .find(|l| !l.starts_with("-----"))
        .expect("key body");
    assert!(!log.server_log().contains(body));
    assert!(!log.server_log().contains(&token));
}

#[test]
fn a_slow_handshake_does_not_hold_up_others() {
    let mut log = Log::init();
    let pki = log.path("pki");
    issue(&pki, &[]);
    let file = |n: &str| pki.join(n).to_str().unwrap().to_owned();
    log.start_with(&[
        "--tls-cert",
        &file("server.pem"),
        "--tls-key",
        &file("server.key"),
        "--header-timeout-secs",
        "2",
        "--public-tiles",
    ]);
    // Connections that send nothing, to both listeners: a handshake
    // that never starts.
    let silent: Vec<_> = [&log.http, &log.grpc]
        .iter()
        .flat_map(|url| {
            let addr = url.trim_start_matches("http://").to_owned();
            (0..20).map(move |_| std::net::TcpStream::connect(&addr).expect("connect"))
        })
        .collect();
    let http = log.http.replace("http://", "https://");
    let state = log.path("monitor.state");
    let out = custody(&[
        "--ca",
        &file("ca.pem"),
        "monitor",
        "--url",
        &http,
        "--log-key",
        log.vkey.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--once",
    ]);
    ok(&out, "monitor while 20 handshakes stall");
    let grpc = log.grpc.replace("http://", "https://");
    let asked = std::time::Instant::now();
    let out = custody(&[
        "--ca",
        &file("ca.pem"),
        "inspect",
        "findings",
        "--server",
        &grpc,
    ]);
    ok(&out, "a gRPC query while 20 handshakes stall");
    // Handshakes one after another would take 20 × 2 s.
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(20),
        "the query waited behind the stalled handshakes: {:?}",
        asked.elapsed()
    );
    // And the stalled ones are closed after the handshake deadline.
    std::thread::sleep(std::time::Duration::from_secs(4));
    for mut s in silent {
        use std::io::Read as _;
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut b = [0u8; 1];
        let n = s.read(&mut b);
        assert!(
            matches!(n, Ok(0))
                || n.is_err_and(|e| !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )),
            "a stalled handshake was closed"
        );
    }
}
