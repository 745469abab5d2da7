//! The invariants `ARCHITECTURE.md` states about crate boundaries, checked,
//! so a false one fails CI instead of misleading the next reader.
//!
//! Dependency edges come from `cargo tree` for each crate on its own (the
//! features that crate enables, as a build of it alone resolves them), and
//! "no I/O" from the crate's source: no file, network or process API.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `deps` is every package `krate` depends on, transitively, as it builds
/// on its own (normal dependencies only: what ships in the crate).
fn deps(krate: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            krate,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {krate} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// `assert_free_of` fails if `krate` reaches any of `forbidden`.
fn assert_free_of(krate: &str, forbidden: &[&str], why: &str) {
    let d = deps(krate);
    assert!(
        d.iter().any(|p| p == krate),
        "cargo tree -p {krate} did not list {krate} itself: {d:?}"
    );
    let bad: Vec<&String> = d
        .iter()
        .filter(|p| forbidden.contains(&p.as_str()))
        .collect();
    assert!(
        bad.is_empty(),
        "ARCHITECTURE.md says {krate} {why}, but it depends on {bad:?}"
    );
}

/// `shipped_sources` is every Rust source file of `krate`'s `src/`, with
/// its text up to its unit tests (tests are not shipped code).
fn shipped_sources(krate: &str) -> Vec<(PathBuf, String)> {
    let src = root().join("crates").join(krate).join("src");
    let mut stack = vec![src];
    let mut out = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read src") {
            let path = e.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|x| x != "rs")
                || path.file_name().is_some_and(|n| n == "tests.rs")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            let shipped = text.split("#[cfg(test)]").next().unwrap_or_default();
            out.push((path, shipped.to_owned()));
        }
    }
    assert!(!out.is_empty(), "no source files found for {krate}");
    out
}

/// `assert_no_io` fails if `krate`'s source names a file, network or
/// process API (tests excepted: they may write temporary files).
fn assert_no_io(krate: &str) {
    for (path, shipped) in shipped_sources(krate) {
        let apis = io_apis(&shipped);
        assert!(
            apis.is_empty(),
            "ARCHITECTURE.md says {krate} does no I/O, but {} uses {apis:?}",
            path.display()
        );
    }
}

/// `io_apis` is every file, network or process API `source` names:
/// by path (`std::fs::...`), in a grouped import (`use std::{fs, net}`),
/// or by type.
fn io_apis(source: &str) -> Vec<String> {
    const MODULES: [&str; 3] = ["fs", "net", "process"];
    let mut found = Vec::new();
    for m in MODULES {
        if source.contains(&format!("std::{m}")) {
            found.push(format!("std::{m}"));
        }
    }
    let mut rest = source;
    while let Some(at) = rest.find("std::{") {
        let group = &rest[at + 6..];
        let end = group.find('}').unwrap_or(group.len());
        for word in group[..end].split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if MODULES.contains(&word) {
                found.push(format!("std::{{{word}}}"));
            }
        }
        rest = &group[end..];
    }
    for t in ["File::", "TcpStream", "UdpSocket", "Command::new"] {
        if source.contains(t) {
            found.push(t.to_owned());
        }
    }
    found
}

#[test]
fn the_io_check_sees_grouped_imports() {
    assert!(io_apis("use std::collections::HashMap;").is_empty());
    assert_eq!(io_apis("use std::{fs, io};"), ["std::{fs}"]);
    assert_eq!(
        io_apis("use std::{\n    net::TcpListener,\n};"),
        ["std::{net}"]
    );
    assert_eq!(io_apis("let x = std::fs::read(p);"), ["std::fs"]);
}

const ASYNC_AND_RPC: [&str; 5] = ["tokio", "tonic", "hyper", "axum", "tower"];
const STORAGE: [&str; 4] = [
    "rocksdb",
    "librocksdb-sys",
    "custody-store",
    "custody-store-rocks",
];

#[test]
fn the_log_core_knows_nothing_of_async_rpc_protobuf_or_storage() {
    let mut forbidden = ASYNC_AND_RPC.to_vec();
    forbidden.extend(STORAGE);
    forbidden.extend(["prost", "custody-proto", "custody-domain"]);
    assert_free_of(
        "custody-log",
        &forbidden,
        "knows nothing of tokio, tonic, protobuf or RocksDB",
    );
    assert_no_io("custody-log");
}

#[test]
fn the_domain_has_no_protobuf_no_grpc_and_no_storage() {
    let mut forbidden = ASYNC_AND_RPC.to_vec();
    forbidden.extend(STORAGE);
    forbidden.extend(["prost", "custody-proto"]);
    assert_free_of(
        "custody-domain",
        &forbidden,
        "has no I/O, no protobuf and no gRPC",
    );
    assert_no_io("custody-domain");
}

#[test]
fn evidence_verification_uses_neither_async_rpc_nor_storage() {
    let mut forbidden = ASYNC_AND_RPC.to_vec();
    forbidden.extend(STORAGE);
    assert_free_of(
        "custody-evidence",
        &forbidden,
        "uses neither tokio, tonic nor storage",
    );
    assert_no_io("custody-evidence");
}

#[test]
fn the_storage_contract_does_not_depend_on_rocksdb() {
    assert_free_of(
        "custody-store",
        &["rocksdb", "librocksdb-sys", "custody-store-rocks"],
        "does not depend on RocksDB",
    );
}

#[test]
fn the_client_library_links_no_storage_engine_and_no_server() {
    assert_free_of(
        "custody-client",
        &[
            "rocksdb",
            "librocksdb-sys",
            "custody-store-rocks",
            "custodyd",
            "custody-admission",
        ],
        "reporters link custody-client: a spool is two files, and the log's rules are the server's",
    );
}

#[test]
fn the_server_derives_findings_once_and_never_replays_the_log() {
    // The sequencer writes each entry's findings state in the entry's own
    // batch; the server answers from the store. A replay in the server
    // would be a second copy of derived state, rebuilt at every start.
    let mut seen_observe = false;
    for (path, text) in shipped_sources("custodyd") {
        for word in ["Replay", "replay::", "MemoryFindings", "FindingsEngine"] {
            assert!(
                !text.contains(word),
                "ARCHITECTURE.md says the server never replays the log, but {} names {word}",
                path.display()
            );
        }
        seen_observe |= text.contains("check_batch(")
            && text.contains("admit_bounded(")
            && text.contains("BulkJob::begin(");
    }
    assert!(
        seen_observe,
        "the sequencer no longer admits through custody_admission (check_batch, admit_bounded, and BulkJob for bulk events)"
    );
    let admits = shipped_sources("custody-admission")
        .iter()
        .any(|(_, text)| text.contains("observe(") && text.contains("findings_writes("));
    assert!(
        admits,
        "custody-admission no longer derives findings with observe and findings_writes"
    );
}

#[test]
fn admission_reaches_storage_only_through_the_store_contract() {
    let mut forbidden = ASYNC_AND_RPC.to_vec();
    forbidden.extend(["rocksdb", "librocksdb-sys", "custody-store-rocks"]);
    assert_free_of(
        "custody-admission",
        &forbidden,
        "knows nothing of tokio, tonic or RocksDB",
    );
    assert_no_io("custody-admission");
}

#[test]
fn the_audit_admits_through_the_servers_path_and_keeps_no_replay_in_memory() {
    // ARCHITECTURE.md: `custody audit` admits every entry again through
    // custody_admission into a store of its own, so its memory does not
    // grow with the log; the in-memory `Replay` is the tests' model only.
    let mut admits = false;
    for (path, text) in shipped_sources("custody-cli") {
        for word in [
            "replay::Replay",
            "MemoryFindings",
            "FindingsEngine",
            "MemoryCustody",
        ] {
            assert!(
                !text.contains(word),
                "ARCHITECTURE.md says the audit keeps no replay in memory, but {} names {word}",
                path.display()
            );
        }
        admits |= text.contains("admit_checked(");
    }
    assert!(
        admits,
        "custody audit no longer admits through custody_admission::admit_checked"
    );
}

/// `without_fn` is `text` without the body of function `name` (from its
/// signature to the first line that closes it).
fn without_fn(text: &str, name: &str) -> String {
    match text.find(&format!("fn {name}(")) {
        Some(start) => {
            let end = text[start..]
                .find("\n}\n")
                .map_or(text.len(), |e| start + e + 3);
            format!("{}{}", &text[..start], &text[end..])
        }
        None => text.to_owned(),
    }
}

#[test]
fn read_answers_fail_through_the_answer_layer_only() {
    // ARCHITECTURE.md: every read answer fails with answer::AnswerError,
    // mapped once to gRPC statuses and once to HTTP codes, so no handler
    // picks a code of its own. The write path's refusals have their one
    // mapping too, grpc::status_of.
    let codes = [
        "Status::invalid_argument(",
        "Status::not_found(",
        "Status::unavailable(",
        "Status::resource_exhausted(",
        "Status::out_of_range(",
        "Status::internal(",
        "Status::unimplemented(",
        "Status::new(",
        "StatusCode::BAD_REQUEST",
        "StatusCode::NOT_FOUND",
        "StatusCode::UNPROCESSABLE_ENTITY",
        "StatusCode::SERVICE_UNAVAILABLE",
        "StatusCode::INTERNAL_SERVER_ERROR",
    ];
    let mut mapped = false;
    for (path, text) in shipped_sources("custodyd") {
        let p = path.to_string_lossy().replace('\\', "/");
        if p.contains("/src/answer/") {
            mapped |= p.ends_with("error.rs") && text.contains("impl From<AnswerError> for Status");
            continue;
        }
        let text = without_fn(&text, "status_of");
        for code in codes {
            assert!(
                !text.contains(code),
                "ARCHITECTURE.md says answers fail only through answer::AnswerError, but {p} names {code}"
            );
        }
        // One error type over HTTP: the web view's only wraps AnswerError.
        if text.contains("impl IntoResponse for") {
            assert!(
                p.ends_with("ui/mod.rs") && text.contains("pub struct UiError(pub AnswerError);"),
                "{p} answers HTTP errors with a type of its own"
            );
        }
        // "Which systems does a party hold" has one answer,
        // Registry::systems_of.
        assert!(
            !text.contains("owner_party =="),
            "{p} resolves a party's systems itself instead of Registry::systems_of"
        );
    }
    assert!(mapped, "answer/error.rs no longer maps AnswerError to gRPC");
}
