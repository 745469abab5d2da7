//! The `custody` command line behaves as a Unix tool.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

/// Output into a pipe whose reader has gone (`custody ... | head`) ends
/// the command by SIGPIPE, quietly, as `cat` would; it used to panic with
/// a backtrace.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("k");
    // A pipe whose only reader is closed before the command starts.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let done = Command::new(custody_e2e::bin("custody"))
        .args(["keygen", "--out", out.to_str().expect("utf-8 path")])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run custody");
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(done.status.signal(), Some(SIGPIPE), "{:?}", done.status);
    // The work was done before the write failed.
    assert!(out.with_extension("key").exists());
}

/// SIGPIPE's number on Linux.
const SIGPIPE: i32 = 13;
