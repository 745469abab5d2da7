//! Interop with an independent implementation: Go's
//! `golang.org/x/mod/sumdb/note` and `sumdb/tlog` verify our checkpoints,
//! tiles, entry bundles and proofs, and our verifier accepts checkpoints and
//! proofs that they produce. Needs `go` with Debian's
//! golang-golang-x-mod-dev (`.ci/run` installs both).

use std::path::PathBuf;
use std::process::Command;

use custody_e2e::{append, capture, custody, event, register, Log};

fn interop_binary(dir: &std::path::Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("go/interop/main.go");
    let out = dir.join("interop");
    let gopath = std::env::var("CUSTODY_GOPATH").unwrap_or_else(|_| "/usr/share/gocode".into());
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", &gopath)
        .env("GOCACHE", dir.join("gocache"))
        .env("GOFLAGS", "")
        .output()
        .expect("run `go`: install golang-go and golang-golang-x-mod-dev (.ci/run does)");
    assert!(
        built.status.success(),
        "go build of the interop checker failed (is golang-golang-x-mod-dev installed in {gopath}?): {}",
        String::from_utf8_lossy(&built.stderr)
    );
    out
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn go_sumdb_verifies_our_checkpoints_tiles_and_proofs() {
    let mut log = Log::init();
    log.start();
    let go = interop_binary(log.dir.path());
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;
    // Enough entries for full and partial tiles at level 0.
    custody_e2e::stream_captures(&mut c, "cam", &key, 600).await;
    let last = append(&mut c, &event("cam", capture("cam")), &[&key])
        .await
        .unwrap();
    assert!(last.index >= 600);

    let vkey = log.vkey.to_str().unwrap().to_owned();
    let said = run(Command::new(&go).args(["verify-log", &log.http, &vkey]));
    assert!(said.starts_with("ok: checkpoint of size"), "{said}");

    let inc = log.path("inc.json");
    run(Command::new(custody_e2e::bin("custody")).args([
        "prove",
        "inclusion",
        "--server",
        &log.grpc,
        "--index",
        "300",
        "--out",
        inc.to_str().unwrap(),
    ]));
    let said = run(Command::new(&go).args(["verify-proof", inc.to_str().unwrap(), &vkey]));
    assert!(said.starts_with("ok: entry 300"), "{said}");

    let con = log.path("con.json");
    run(Command::new(custody_e2e::bin("custody")).args([
        "prove",
        "consistency",
        "--server",
        &log.grpc,
        "--old",
        "3",
        "--out",
        con.to_str().unwrap(),
    ]));
    let said = run(Command::new(&go).args(["verify-proof", con.to_str().unwrap(), &vkey]));
    assert!(said.starts_with("ok: tree"), "{said}");
}

#[test]
fn our_verifier_accepts_what_go_sumdb_produces_and_rejects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let go = interop_binary(dir.path());
    run(Command::new(&go).args(["produce", dir.path().to_str().unwrap(), "1000"]));
    let vkey = dir.path().join("go.vkey");
    let vkey = vkey.to_str().unwrap();
    for f in ["checkpoint", "inclusion.json", "consistency.json"] {
        let p = dir.path().join(f);
        let out = custody(&["verify", p.to_str().unwrap(), "--log-key", vkey]);
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Flip one proof hash in Go's inclusion proof: we must refuse it.
    let p = dir.path().join("inclusion.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let first = v["proof"][0].as_str().unwrap().to_owned();
    let flipped = if first.starts_with('A') {
        first.replacen('A', "B", 1)
    } else {
        format!("A{}", &first[1..])
    };
    v["proof"][0] = serde_json::json!(flipped);
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = custody(&["verify", p.to_str().unwrap(), "--log-key", vkey]);
    assert!(!out.status.success(), "a tampered Go proof verified");
}
