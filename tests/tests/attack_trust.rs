//! Trust at the edges of the log, attacked as a hostile vendor (or a
//! hostile or broken witness) would:
//!
//! - client certificates that should not act for a party: a listed name
//!   as CN only, case, trailing-dot, wildcard, e-mail and URI variants of
//!   a listed name, the server's own certificate, a certificate for
//!   server authentication only, a CA certificate, a self-signed one, one
//!   issued by a vendor's own leaf, expired and not yet valid ones, tokens
//!   and certificates of different parties together, and certificates
//!   whose names are bound to two parties;
//! - a certificate-bound reporter reporting for another party, and its
//!   stream and connections outliving the revocation of its name;
//! - the TLS listeners under plain HTTP/1 and HTTP/2, garbage, stalled
//!   and oversized handshakes, and a flood of half handshakes from one
//!   address;
//! - the witness's `add-checkpoint` rules: another key with the same
//!   origin, old sizes, replays, split views, huge and chunked bodies,
//!   100 signature lines, a fork racing the honest log, and idle
//!   connections piling up;
//! - a log whose witnesses answer with garbage, impostor, stale or extra
//!   signature lines, or not at all;
//! - the k-of-n witness policy of `custody monitor`.
//!
//! Each test passes while the defence holds; a failure lists every
//! attack that got through.
//!
//! Certificates are made with `custodyd tls issue` and, for the shapes it
//! cannot make, with the `openssl` command; gRPC is spoken over TLS
//! through an `openssl s_client` tunnel (this crate's tonic is built
//! without TLS). Without `openssl` those tests say so and pass vacuously.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use custody_e2e::*;
use custody_log::{
    append_leaves, leaf_hash, note_text, prove_consistency, tree_root, verify_witnessed,
    CosignatureSigner, CosignatureVerifier, Hash, LogSigner, LogVerifier, MemoryHashes,
};
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::Channel;
use tonic::Code;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

// ---------------------------------------------------------------------
// Helpers: processes, PKI, HTTPS and gRPC-over-TLS clients.
// ---------------------------------------------------------------------

fn custodyd(args: &[&str]) -> Output {
    Command::new(bin("custodyd"))
        .args(args)
        .output()
        .expect("run custodyd")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn clip(s: &str) -> String {
    let s = plain(s);
    let s = s.trim();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// `plain` is `s` without terminal colour sequences (the server's log
/// has them).
fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `log_lines` is the lines of a server log that mention `needle`,
/// without colour, for a failure message.
fn log_lines(log: &str, needle: &str) -> String {
    plain(log)
        .lines()
        .filter(|l| l.contains(needle))
        .take(3)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `chain` is an error with its sources, for a failure message.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn grant_san(log: &Log, party: &str, role: &str, san: &str) {
    let data = log.data.to_str().unwrap();
    ok(
        &custodyd(&[
            "access", "add", "--data", data, "--party", party, "--role", role, "--san", san,
        ]),
        "custodyd access add --san",
    );
}

fn grant_token(log: &Log, party: &str, role: &str) -> String {
    let data = log.data.to_str().unwrap();
    ok(
        &custodyd(&[
            "access", "add", "--data", data, "--party", party, "--role", role,
        ]),
        "custodyd access add",
    )
    .trim()
    .to_owned()
}

fn revoke(log: &Log, what: &str) {
    // The list is re-read when its file changes; give the stamp a moment.
    std::thread::sleep(Duration::from_millis(20));
    ok(
        &custodyd(&[
            "access",
            "revoke",
            "--data",
            log.data.to_str().unwrap(),
            what,
        ]),
        "custodyd access revoke",
    );
}

/// `Pki` is a directory `custodyd tls issue` made: a local CA, a server
/// certificate for localhost and 127.0.0.1, and client certificates.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn issue(dir: &Path, clients: &[&str]) -> Self {
        let mut args = vec!["tls", "issue", "--dir", dir.to_str().unwrap()];
        for c in clients {
            args.extend(["--client", c]);
        }
        ok(&custodyd(&args), "custodyd tls issue");
        Self {
            dir: dir.to_owned(),
        }
    }

    fn file(&self, n: &str) -> PathBuf {
        self.dir.join(n)
    }

    fn ca(&self) -> PathBuf {
        self.file("ca.pem")
    }

    fn ca_key(&self) -> PathBuf {
        self.file("ca.key")
    }

    /// `client` is the certificate and key `custodyd tls issue --client
    /// NAME` wrote (NAME of plain characters only).
    fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.file(&format!("client-{name}.pem")),
            self.file(&format!("client-{name}.key")),
        )
    }

    fn server(&self) -> (PathBuf, PathBuf) {
        (self.file("server.pem"), self.file("server.key"))
    }

    /// `serve_flags` are the TLS flags of `custodyd serve`, with the
    /// client CA when `mutual`.
    fn serve_flags(&self, mutual: bool) -> Vec<String> {
        let mut f = vec![
            "--tls-cert".to_owned(),
            self.file("server.pem").to_str().unwrap().to_owned(),
            "--tls-key".to_owned(),
            self.file("server.key").to_str().unwrap().to_owned(),
        ];
        if mutual {
            f.push("--tls-client-ca".into());
            f.push(self.ca().to_str().unwrap().to_owned());
        }
        f
    }

    /// `openssl_cert` has `issuer` (a certificate and its key; the local
    /// CA when `None`) sign a new P-256 key as `/CN=cn` with the X.509v3
    /// extension lines `ext`, valid from `dates.0` to `dates.1`
    /// (`YYYYMMDDHHMMSSZ`), or for 30 days from now. It writes
    /// `stem.pem` and `stem.key` in the PKI directory.
    fn openssl_cert(
        &self,
        stem: &str,
        cn: &str,
        ext: &str,
        dates: Option<(&str, &str)>,
        issuer: Option<(&Path, &Path)>,
    ) -> (PathBuf, PathBuf) {
        let work = self.dir.join(format!("openssl-{stem}"));
        std::fs::create_dir_all(&work).unwrap();
        let key = self.file(&format!("{stem}.key"));
        let pem = self.file(&format!("{stem}.pem"));
        let csr = work.join("req.csr");
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &s(&key),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &s(&csr),
        ]);
        std::fs::write(work.join("index.txt"), "").unwrap();
        let serial = uuid::Uuid::new_v4().simple().to_string();
        std::fs::write(work.join("serial"), format!("01{}\n", &serial[..30])).unwrap();
        let cnf = work.join("ca.cnf");
        std::fs::write(
            &cnf,
            format!(
                "[ca]\ndefault_ca = d\n[d]\ndatabase = {}\nnew_certs_dir = {}\nserial = {}\n\
                 default_md = sha256\npolicy = pol\nunique_subject = no\n[pol]\ncommonName = supplied\n",
                s(&work.join("index.txt")),
                s(&work),
                s(&work.join("serial")),
            ),
        )
        .unwrap();
        let extfile = work.join("ext.cnf");
        std::fs::write(&extfile, format!("[v3]\n{ext}\n")).unwrap();
        let (ca, ca_key) = match issuer {
            Some((c, k)) => (c.to_owned(), k.to_owned()),
            None => (self.ca(), self.ca_key()),
        };
        let mut args: Vec<String> = [
            "ca",
            "-batch",
            "-config",
            &s(&cnf),
            "-cert",
            &s(&ca),
            "-keyfile",
            &s(&ca_key),
            "-in",
            &s(&csr),
            "-extfile",
            &s(&extfile),
            "-extensions",
            "v3",
            "-notext",
            "-out",
            &s(&pem),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        match dates {
            Some((from, to)) => args.extend([
                "-startdate".into(),
                from.into(),
                "-enddate".into(),
                to.into(),
            ]),
            None => args.extend(["-days".into(), "30".into()]),
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        openssl(&a);
        (pem, key)
    }

    /// `client_cert` is [`Pki::openssl_cert`] for a client certificate
    /// signed by the local CA with these subject alternative names
    /// (`DNS:x,URI:y`, or empty for none).
    fn client_cert(&self, stem: &str, cn: &str, san: &str) -> (PathBuf, PathBuf) {
        self.openssl_cert(stem, cn, &leaf_ext(san, "clientAuth"), None, None)
    }
}

/// `leaf_ext` is the extension lines of an end-entity certificate with
/// these names and extended key usage.
fn leaf_ext(san: &str, eku: &str) -> String {
    let mut e =
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n".to_owned();
    if !san.is_empty() {
        e.push_str(&format!("subjectAltName={san}\n"));
    }
    if !eku.is_empty() {
        e.push_str(&format!("extendedKeyUsage={eku}\n"));
    }
    e
}

/// `https_client` trusts `ca` and presents `identity` (certificate chain
/// and key PEM files), if given.
fn https_client(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).expect("CA PEM"),
        )
        .timeout(Duration::from_secs(15));
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap();
        pem.push(b'\n');
        pem.extend(std::fs::read(key).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity PEM"));
    }
    b.build().expect("HTTPS client")
}

/// `probe` is the status and body of GET `url`, or why there was none.
async fn probe(
    c: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let mut r = c.get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    match r.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            Ok((status, resp.text().await.unwrap_or_default()))
        }
        Err(e) => Err(chain(&e)),
    }
}

fn describe(got: &Result<(u16, String), String>) -> String {
    match got {
        Ok((s, b)) => format!("HTTP {s}: {}", clip(b)),
        Err(e) => format!("no answer: {}", clip(e)),
    }
}

/// `Want` is what a probe of the web view (`/ui/`, auditors only) must
/// show.
enum Want<'a> {
    /// 200: an auditor or admin.
    Reads,
    /// 403, naming this party: recognised as it, and not an auditor.
    ActsAs(&'a str),
    /// 401, or no answer at all (the handshake failed): nobody.
    Nobody,
}

fn judge(errs: &mut Vec<String>, what: &str, got: &Result<(u16, String), String>, want: Want) {
    let fine = match (&want, got) {
        (Want::Reads, Ok((200, _))) => true,
        (Want::ActsAs(p), Ok((403, b))) => b.contains(&format!("of {p} has")),
        (Want::Nobody, Ok((401, _))) | (Want::Nobody, Err(_)) => true,
        _ => false,
    };
    if !fine {
        let wanted = match want {
            Want::Reads => "read as an auditor (200)".to_owned(),
            Want::ActsAs(p) => format!("act as {p} (403 naming it)"),
            Want::Nobody => "act for nobody (401 or no handshake)".to_owned(),
        };
        errs.push(format!("{what}: should {wanted}, got {}", describe(got)));
    }
}

/// `TlsTunnel` listens on a loopback port and carries each connection
/// it accepts over TLS to a server, through `openssl s_client` (trusting
/// a CA, presenting a client certificate if given, offering ALPN `h2`):
/// a gRPC client speaks plain HTTP/2 to the tunnel and the server sees a
/// TLS client. (The tests crate's tonic is built without TLS; custodyd's
/// and the CLI's turn it on only in a whole-workspace build.) One TLS
/// connection per connection the client opens, so a channel that stays
/// open is one TLS connection that stays open.
struct TlsTunnel {
    port: u16,
    children: Arc<Mutex<Vec<Child>>>,
}

impl Drop for TlsTunnel {
    fn drop(&mut self) {
        if let Ok(mut kids) = self.children.lock() {
            for c in kids.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn tls_tunnel(dst: SocketAddr, ca: &Path, identity: Option<(&Path, &Path)>) -> TlsTunnel {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("tunnel listener");
    let port = l.local_addr().unwrap().port();
    let mut args: Vec<String> = [
        "s_client",
        "-quiet",
        "-nocommands",
        "-connect",
        &dst.to_string(),
        "-servername",
        "localhost",
        "-verify_hostname",
        "localhost",
        "-verify_return_error",
        "-alpn",
        "h2",
        "-CAfile",
        ca.to_str().unwrap(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    if let Some((cert, key)) = identity {
        args.extend([
            "-cert".to_owned(),
            cert.to_str().unwrap().to_owned(),
            "-key".to_owned(),
            key.to_str().unwrap().to_owned(),
        ]);
    }
    let children = Arc::new(Mutex::new(Vec::new()));
    let kids = children.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            let Ok(mut child) = Command::new("openssl")
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
            else {
                continue;
            };
            let (Some(mut to_tls), Some(mut from_tls)) = (child.stdin.take(), child.stdout.take())
            else {
                continue;
            };
            let Ok(mut from_client) = conn.try_clone() else {
                continue;
            };
            let mut to_client = conn;
            std::thread::spawn(move || pump(&mut from_client, &mut to_tls));
            std::thread::spawn(move || {
                pump(&mut from_tls, &mut to_client);
                let _ = to_client.shutdown(std::net::Shutdown::Both);
            });
            if let Ok(mut k) = kids.lock() {
                k.push(child);
            }
        }
    });
    TlsTunnel { port, children }
}

/// `pump` copies `from` to `to` as bytes arrive, until either ends.
/// (`std::io::copy` from a socket into a pipe held data back here.)
fn pump(from: &mut impl std::io::Read, to: &mut impl std::io::Write) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                    return;
                }
            }
        }
    }
}

/// `grpc_tls` is a gRPC client of `url` (https) trusting `ca` and
/// presenting `identity`, if given, through a [`TlsTunnel`] the caller
/// keeps.
async fn grpc_tls(
    url: &str,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<(CustodyLogClient<Channel>, TlsTunnel), String> {
    let dst: SocketAddr = url
        .trim_start_matches("https://")
        .parse()
        .map_err(|e| format!("{url}: {e}"))?;
    let tunnel = tls_tunnel(dst, ca, identity);
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", tunnel.port))
            .map_err(|e| chain(&e))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .connect()
            .await
            .map_err(|e| chain(&e))?;
    Ok((CustodyLogClient::new(channel), tunnel))
}

fn https(url: &str) -> String {
    url.replace("http://", "https://")
}

/// `try_start` is [`Log::start_with`] that reports, rather than panics,
/// when the server does not come up.
fn try_start(log: &mut Log, extra: &[&str]) -> Result<(), String> {
    let (g, h) = (free_port(), free_port());
    let file = std::fs::File::create(log.dir.path().join("server.log")).unwrap();
    let child = Command::new(bin("custodyd"))
        .args(["serve", "--data", log.data.to_str().unwrap()])
        .args(["--grpc-addr", &format!("127.0.0.1:{g}")])
        .args(["--http-addr", &format!("127.0.0.1:{h}")])
        .args(["--checkpoint-interval-ms", "50"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn custodyd");
    log.child = Some(child);
    log.grpc = format!("http://127.0.0.1:{g}");
    log.http = format!("http://127.0.0.1:{h}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", g)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", h)).is_ok()
        {
            return Ok(());
        }
        if let Some(Ok(Some(status))) = log.child.as_mut().map(|c| c.try_wait()) {
            log.child = None;
            return Err(format!(
                "custodyd exited with {status}: {}",
                clip(&log.server_log())
            ));
        }
        if Instant::now() > deadline {
            return Err("custodyd did not start within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `grow` appends `n` registry entries (new parties, signed by the data
/// owner) without waiting for a checkpoint.
async fn grow(log: &Log, c: &mut CustodyLogClient<Channel>, n: usize) {
    let reqs = (0..n)
        .map(|_| {
            let id = format!("p-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            v1::AppendRequest {
                event: Some(signed(
                    &event(&log.owner_id, party_registered(&id, &log.owner_id)),
                    &[&log.owner],
                )),
                wait_for_checkpoint: false,
            }
        })
        .collect();
    for r in stream_requests(c, reqs).await {
        assert_eq!(r.error_code, 0, "grow: {}", r.error_message);
    }
}

/// `next_index` appends one more registry entry and returns the tree
/// size that covers it: a checkpoint of at least that size includes
/// everything appended so far.
async fn next_index(log: &Log, c: &mut CustodyLogClient<Channel>) -> u64 {
    let id = format!("p-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let r = c
        .append(v1::AppendRequest {
            event: Some(signed(
                &event(&log.owner_id, party_registered(&id, &log.owner_id)),
                &[&log.owner],
            )),
            wait_for_checkpoint: false,
        })
        .await
        .expect("append")
        .into_inner();
    r.index + 1
}

/// `served_note` is the log's checkpoint note from `GET /checkpoint`.
async fn served_note(http: &str) -> Vec<u8> {
    match reqwest::get(format!("{http}/checkpoint")).await {
        Ok(r) => r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// `size_of_note` is a note's tree size, read from its second line
/// without checking anything.
fn size_of_note(note: &[u8]) -> u64 {
    String::from_utf8_lossy(note)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

/// `wait_served` waits up to `within` for the log to serve a checkpoint
/// of at least `size`, and returns it with how long that took.
async fn wait_served(http: &str, size: u64, within: Duration) -> Option<(Duration, Vec<u8>)> {
    let t = Instant::now();
    while t.elapsed() < within {
        let note = served_note(http).await;
        if size_of_note(&note) >= size {
            return Some((t.elapsed(), note));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn run_custody(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        custody(&a)
    })
    .await
    .expect("custody task")
}

// ---------------------------------------------------------------------
// Helpers: witnesses, trees, notes, a fake HTTP server, raw sockets.
// ---------------------------------------------------------------------

/// `WitnessProc` is a running `custody witness serve`.
struct WitnessProc {
    child: Child,
    url: String,
    vkey: PathBuf,
    key: PathBuf,
    state: PathBuf,
    log_key: PathBuf,
    port: u16,
    /// Its descriptor limit (`ulimit -n`), if lowered.
    nofile: Option<u32>,
    stderr: PathBuf,
}

impl WitnessProc {
    fn new(dir: &Path, name: &str, log_key: &Path, nofile: Option<u32>) -> Self {
        let prefix = dir.join(name);
        ok(
            &custody(&[
                "witness",
                "keygen",
                "--name",
                name,
                "--out",
                prefix.to_str().unwrap(),
            ]),
            "custody witness keygen",
        );
        let port = free_port();
        let mut w = Self {
            child: Command::new("true").spawn().unwrap(),
            url: format!("http://127.0.0.1:{port}"),
            vkey: prefix.with_extension("vkey"),
            key: prefix.with_extension("key"),
            state: dir.join(format!("{name}.state")),
            log_key: log_key.to_owned(),
            port,
            nofile,
            stderr: dir.join(format!("{name}.stderr")),
        };
        w.start().expect("witness starts");
        w
    }

    fn start(&mut self) -> Result<(), String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let args: Vec<String> = vec![
            "witness".into(),
            "serve".into(),
            "--key".into(),
            self.key.to_str().unwrap().into(),
            "--state".into(),
            self.state.to_str().unwrap().into(),
            "--log-key".into(),
            self.log_key.to_str().unwrap().into(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.port),
        ];
        let mut cmd = match self.nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(bin("custody"))
                    .args(&args);
                c
            }
            None => {
                let mut c = Command::new(bin("custody"));
                c.args(&args);
                c
            }
        };
        self.child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.stderr).unwrap())
            .spawn()
            .expect("custody witness serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the witness exited with {status}: {}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                return Err("the witness did not start".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// `flag` is this witness as `custodyd serve --witness` takes it.
    fn flag(&self) -> String {
        format!(
            "{} {}",
            self.url,
            std::fs::read_to_string(&self.vkey).unwrap().trim()
        )
    }

    fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier::new(std::fs::read_to_string(&self.vkey).unwrap().trim()).unwrap()
    }

    /// `recorded` is the size and root of the checkpoint the witness
    /// holds on disk for the (only) log it knows.
    fn recorded(&self) -> Option<(u64, Hash)> {
        let rd = std::fs::read_dir(&self.state).ok()?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                continue;
            }
            let body = std::fs::read_to_string(e.path()).ok()?;
            let mut lines = body.lines();
            let _origin = lines.next()?;
            let size = lines.next()?.parse().ok()?;
            let root: [u8; 32] = B64.decode(lines.next()?).ok()?.try_into().ok()?;
            return Some((size, Hash(root)));
        }
        None
    }
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `Tree` is an in-memory RFC 6962 tree whose first `shared` leaves are
/// common to every tree and the rest its own.
struct Tree {
    mem: MemoryHashes,
}

impl Tree {
    fn new(n: u64, shared: u64, tag: &str) -> Self {
        let leaves: Vec<Hash> = (0..n)
            .map(|i| {
                if i < shared {
                    leaf_hash(format!("common-{i}").as_bytes())
                } else {
                    leaf_hash(format!("{tag}-{i}").as_bytes())
                }
            })
            .collect();
        let mut mem = MemoryHashes::default();
        let hashes = append_leaves(0, &leaves, &mem).unwrap();
        mem.insert_all(hashes);
        Self { mem }
    }

    fn root(&self, size: u64) -> Hash {
        tree_root(size, &self.mem).unwrap()
    }

    fn proof(&self, old: u64, size: u64) -> Vec<Hash> {
        if old == 0 {
            Vec::new()
        } else {
            prove_consistency(old, size, &self.mem).unwrap()
        }
    }
}

/// `add_request` is an `add-checkpoint` request body.
fn add_request(old: u64, proof: &[Hash], note: &[u8]) -> Vec<u8> {
    let mut out = format!("old {old}\n").into_bytes();
    for h in proof {
        out.extend(B64.encode(h.0).as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(note);
    out
}

async fn post(url: &str, body: Vec<u8>) -> Result<(u16, String), String> {
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    match c
        .post(format!("{url}/add-checkpoint"))
        .body(body)
        .send()
        .await
    {
        Ok(r) => {
            let s = r.status().as_u16();
            Ok((s, r.text().await.unwrap_or_default()))
        }
        Err(e) => Err(chain(&e)),
    }
}

/// `expect_status` records a failure unless `got` has one of `want`.
fn expect_status(
    errs: &mut Vec<String>,
    what: &str,
    got: &Result<(u16, String), String>,
    want: &[u16],
) {
    match got {
        Ok((s, _)) if want.contains(s) => {}
        other => errs.push(format!(
            "{what}: want HTTP {want:?}, got {}",
            describe(other)
        )),
    }
}

/// `junk_line` is a well-formed signature line for `name` and key ID
/// `id` whose signature is `len` bytes of junk.
fn junk_line(name: &str, id: u32, len: usize) -> Vec<u8> {
    let mut sig = id.to_be_bytes().to_vec();
    sig.extend(std::iter::repeat_n(0x5a, len));
    format!("— {name} {}\n", B64.encode(sig)).into_bytes()
}

/// `log_key_id` is the name and key ID of a log verifier key
/// (`origin+hex+base64`).
fn log_key_id(vkey: &str) -> (String, u32) {
    let parts: Vec<&str> = vkey.trim().splitn(3, '+').collect();
    (
        parts[0].to_owned(),
        u32::from_str_radix(parts[1], 16).unwrap(),
    )
}

/// `Handler` answers one request to [`fake_http`]: a status and body, or
/// `None` to hold the connection and never answer.
type Handler = Arc<dyn Fn(&str, &[u8]) -> Option<(u16, Vec<u8>)> + Send + Sync>;

/// `FakeHttp` is a minimal HTTP/1.1 server on a loopback port.
struct FakeHttp {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fake_http(handler: Handler) -> FakeHttp {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            let h = handler.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())
                            .flatten()
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                match h(&path, &buf[head_end..head_end + len]) {
                    Some((status, body)) => {
                        let hdr = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(hdr.as_bytes()).await;
                        let _ = s.write_all(&body).await;
                        let _ = s.shutdown().await;
                    }
                    None => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        drop(s);
                    }
                }
            });
        }
    });
    FakeHttp { port, task }
}

/// How a [`FakeWitness`] answers `add-checkpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Its own valid cosignature of the checkpoint, as an honest witness.
    Cosign,
    /// 200 with text that is no signature line.
    Garbage,
    /// 200 with a line carrying another witness's name and key ID and a
    /// junk signature, and nothing of its own.
    Impostor,
    /// 200 with its own valid cosignature of another checkpoint.
    Stale,
    /// Its valid cosignature, plus a junk line with the log's own name and
    /// key ID.
    StripLog,
    /// Its valid cosignature, plus a junk line with another configured
    /// witness's name and key ID.
    Displace,
    /// Its valid cosignature, plus 98 well-formed lines of unknown keys.
    Flood,
    /// Accepts the connection and never answers.
    Hang,
}

/// `FakeWitness` holds a real cosignature key but answers as `answer`
/// says, without checking anything.
struct FakeWitness {
    vkey: String,
    vkey_file: PathBuf,
    answer: Arc<Mutex<Answer>>,
    server: FakeHttp,
}

impl FakeWitness {
    async fn new(
        dir: &Path,
        name: &str,
        log_vkey: &Path,
        other: Option<CosignatureVerifier>,
        answer: Answer,
    ) -> Self {
        let (signer, _) = CosignatureSigner::generate(name, &mut rand_core::OsRng).unwrap();
        let vkey = signer.verifier_key().to_owned();
        let vkey_file = dir.join(format!("{name}.vkey"));
        std::fs::write(&vkey_file, format!("{vkey}\n")).unwrap();
        let (log_name, log_id) = log_key_id(&std::fs::read_to_string(log_vkey).unwrap());
        let answer = Arc::new(Mutex::new(answer));
        let mode = answer.clone();
        let handler: Handler = Arc::new(move |_path: &str, body: &[u8]| {
            let a = *mode.lock().unwrap();
            if a == Answer::Hang {
                return None;
            }
            let Some(at) = body.windows(2).position(|w| w == b"\n\n") else {
                return Some((400, b"no blank line\n".to_vec()));
            };
            let Ok(text) = note_text(&body[at + 2..]) else {
                return Some((400, b"not a note\n".to_vec()));
            };
            let own = signer.cosign(&text, unix_now()).unwrap();
            let other = other.as_ref();
            let out = match a {
                Answer::Cosign => own,
                Answer::Garbage => b"this is not a cosignature\n".to_vec(),
                Answer::Impostor => {
                    let o = other.expect("another witness");
                    junk_line(o.name(), o.key_id(), 72)
                }
                Answer::Stale => {
                    let body = format!("{ORIGIN}\n999\n{}\n", B64.encode([7u8; 32]));
                    signer.cosign(body.as_bytes(), unix_now()).unwrap()
                }
                Answer::StripLog => {
                    let mut o = own;
                    o.extend(junk_line(&log_name, log_id, 64));
                    o
                }
                Answer::Displace => {
                    let w = other.expect("another witness");
                    let mut o = own;
                    o.extend(junk_line(w.name(), w.key_id(), 72));
                    o
                }
                Answer::Flood => {
                    let mut o = own;
                    for i in 0..98u32 {
                        o.extend(junk_line(&format!("junk{i}.example"), i, 72));
                    }
                    o
                }
                Answer::Hang => unreachable!(),
            };
            Some((200, out))
        });
        let server = fake_http(handler).await;
        Self {
            vkey,
            vkey_file,
            answer,
            server,
        }
    }

    fn flag(&self) -> String {
        format!("http://127.0.0.1:{} {}", self.server.port, self.vkey)
    }

    fn set(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }
}

/// `monitor_once` runs `custody monitor --once` with a fresh state and
/// these witness keys.
async fn monitor_once(
    url: &str,
    log_vkey: &Path,
    state: &Path,
    keys: &[&Path],
    threshold: Option<usize>,
) -> Output {
    let _ = std::fs::remove_file(state);
    let mut args = vec![
        "monitor".to_owned(),
        "--url".into(),
        url.into(),
        "--log-key".into(),
        log_vkey.to_str().unwrap().into(),
        "--state".into(),
        state.to_str().unwrap().into(),
        "--once".into(),
    ];
    for k in keys {
        args.push("--witness-key".into());
        args.push(k.to_str().unwrap().into());
    }
    if let Some(t) = threshold {
        args.push("--witness-threshold".into());
        args.push(t.to_string());
    }
    run_custody(args).await
}

/// `connect_from` opens a TCP connection to `dst` from the loopback
/// address `src`, so a test can be two peers at once.
async fn connect_from(src: &str, dst: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.bind(format!("{src}:0").parse().unwrap())?;
    s.connect(dst).await
}

/// `drain` reads from `s` until it closes or `wait` passes, and returns
/// what it read and whether it closed.
async fn drain(s: &mut tokio::net::TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `client_hello` is a TLS 1.2 ClientHello offering ECDHE-ECDSA suites,
/// P-256 and X25519, and ALPN `alpn`: enough for the server to answer
/// with its first flight.
fn client_hello(alpn: &[u8]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend([0x42u8; 32]);
    body.push(0);
    let suites: [u16; 4] = [0xc02b, 0xc02c, 0xcca9, 0x00ff];
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend(s.to_be_bytes());
    }
    body.extend([1, 0]);
    let mut ext = Vec::new();
    let mut add = |t: u16, d: &[u8]| {
        ext.extend(t.to_be_bytes());
        ext.extend((d.len() as u16).to_be_bytes());
        ext.extend_from_slice(d);
    };
    add(0x000a, &[0, 4, 0, 0x1d, 0, 0x17]);
    add(0x000b, &[1, 0]);
    add(0x000d, &[0, 6, 4, 3, 8, 4, 4, 1]);
    add(0x0017, &[]);
    let mut a = ((alpn.len() + 1) as u16).to_be_bytes().to_vec();
    a.push(alpn.len() as u8);
    a.extend_from_slice(alpn);
    add(0x0010, &a);
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![1];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

// ---------------------------------------------------------------------
// 1. Client certificates.
// ---------------------------------------------------------------------

/// Only a certificate the client CA issued for client authentication,
/// valid now, whose subject alternative name is listed exactly, acts for
/// the listed party; tokens and certificates never combine.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_certificates_act_only_through_a_verified_listed_name() {
    if !have_openssl() {
        eprintln!("skipped: openssl is not installed, so the certificates cannot be made");
        return;
    }
    let mut log = Log::init();
    let pki = Pki::issue(
        &log.path("pki"),
        &["auditor.example", "vendor.example", "nobody.example"],
    );
    grant_san(&log, "auditor-1", "auditor", "auditor.example");
    grant_san(&log, "vendor", "reporter", "vendor.example");
    grant_san(&log, "vendor", "reporter", "spiffe://vendor.example/backup");
    // The server certificate's DNS name, bound to an admin: the server's
    // own certificate must still not act as a client.
    grant_san(&log, "ops", "admin", "localhost");
    let aud_token = grant_token(&log, "auditor-2", "auditor");
    let cam_token = grant_token(&log, "cam", "reporter");
    let flags = pki.serve_flags(true);
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    log.start_with(&f);
    let ui = format!("{}/ui/", https(&log.http));
    let ca = pki.ca();
    let as_cert = |c: &(PathBuf, PathBuf)| https_client(&ca, Some((&c.0, &c.1)));
    let mut errs = Vec::new();

    // Controls: the issued certificates, a token, nobody.
    let auditor = pki.client("auditor.example");
    let vendor = pki.client("vendor.example");
    let got = probe(&as_cert(&auditor), &ui, None).await;
    judge(
        &mut errs,
        "control: the auditor's certificate",
        &got,
        Want::Reads,
    );
    let got = probe(&as_cert(&vendor), &ui, None).await;
    judge(
        &mut errs,
        "control: the vendor's certificate",
        &got,
        Want::ActsAs("vendor"),
    );
    let got = probe(&https_client(&ca, None), &ui, None).await;
    judge(
        &mut errs,
        "control: no certificate, no token",
        &got,
        Want::Nobody,
    );
    let got = probe(&https_client(&ca, None), &ui, Some(&aud_token)).await;
    judge(&mut errs, "control: an auditor's token", &got, Want::Reads);
    let got = probe(&as_cert(&pki.client("nobody.example")), &ui, None).await;
    judge(&mut errs, "control: an unlisted name", &got, Want::Nobody);

    // Names that look like a listed one.
    let variants = [
        (
            "cn-only",
            "auditor.example",
            "",
            "a listed name as CN, no SAN",
        ),
        (
            "cn-and-other-san",
            "auditor.example",
            "DNS:nobody.example",
            "a listed name as CN, an unlisted SAN",
        ),
        (
            "wild",
            "x",
            "DNS:*.example",
            "a wildcard covering a listed name",
        ),
        (
            "email",
            "x",
            "email:auditor.example",
            "a listed name as an e-mail SAN",
        ),
        ("ip", "x", "IP:127.0.0.1", "an IP address SAN"),
        (
            "prefix",
            "x",
            "DNS:auditor.example.evil.example",
            "a listed name as a prefix",
        ),
        (
            "spiffe-sub",
            "x",
            "URI:spiffe://vendor.example/backup/../../auditor",
            "a path below a listed URI",
        ),
    ];
    for (stem, cn, san, what) in variants {
        let c = pki.client_cert(stem, cn, san);
        let got = probe(&as_cert(&c), &ui, None).await;
        judge(&mut errs, what, &got, Want::Nobody);
    }
    // DNS names are case-insensitive (RFC 4343) and a trailing dot names
    // the same host: those spellings are the listed name itself, and act
    // for its party (and only for it).
    for (stem, san, what) in [
        (
            "upper",
            "DNS:AUDITOR.EXAMPLE",
            "a listed name in upper case",
        ),
        (
            "dot",
            "DNS:auditor.example.",
            "a listed name with a trailing dot",
        ),
    ] {
        let c = pki.client_cert(stem, "x", san);
        let got = probe(&as_cert(&c), &ui, None).await;
        judge(&mut errs, what, &got, Want::Reads);
    }

    // Certificates that must not pass the handshake at all.
    let server = pki.server();
    let got = probe(&as_cert(&server), &ui, None).await;
    judge(
        &mut errs,
        "the server's own certificate (serverAuth only; its name `localhost` is bound to an admin)",
        &got,
        Want::Nobody,
    );
    let c = pki.openssl_cert(
        "server-auth",
        "auditor.example",
        &leaf_ext("DNS:auditor.example", "serverAuth"),
        None,
        None,
    );
    let got = probe(&as_cert(&c), &ui, None).await;
    judge(
        &mut errs,
        "a listed name in a serverAuth-only certificate",
        &got,
        Want::Nobody,
    );
    let c = pki.openssl_cert(
        "ca-as-leaf",
        "auditor.example",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyCertSign\nsubjectAltName=DNS:auditor.example\nextendedKeyUsage=clientAuth\n",
        None,
        None,
    );
    let got = probe(&as_cert(&c), &ui, None).await;
    judge(
        &mut errs,
        "a listed name in a CA certificate",
        &got,
        Want::Nobody,
    );
    let c = pki.openssl_cert(
        "expired",
        "auditor.example",
        &leaf_ext("DNS:auditor.example", "clientAuth"),
        Some(("20200101000000Z", "20200201000000Z")),
        None,
    );
    let got = probe(&as_cert(&c), &ui, None).await;
    judge(
        &mut errs,
        "a listed name in an expired certificate",
        &got,
        Want::Nobody,
    );
    let c = pki.openssl_cert(
        "future",
        "auditor.example",
        &leaf_ext("DNS:auditor.example", "clientAuth"),
        Some(("20990101000000Z", "20991231000000Z")),
        None,
    );
    let got = probe(&as_cert(&c), &ui, None).await;
    judge(
        &mut errs,
        "a listed name in a not yet valid certificate",
        &got,
        Want::Nobody,
    );
    // Self-signed.
    let (ss, ss_key) = (pki.file("self-signed.pem"), pki.file("self-signed.key"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        ss_key.to_str().unwrap(),
        "-out",
        ss.to_str().unwrap(),
        "-subj",
        "/CN=auditor.example",
        "-days",
        "30",
        "-addext",
        "subjectAltName=DNS:auditor.example",
        "-addext",
        "extendedKeyUsage=clientAuth",
    ]);
    let got = probe(&as_cert(&(ss, ss_key)), &ui, None).await;
    judge(
        &mut errs,
        "a self-signed certificate with a listed name",
        &got,
        Want::Nobody,
    );
    // The vendor's own leaf used as a CA, sent with the chain.
    let (evil, evil_key) = pki.openssl_cert(
        "by-vendor-leaf",
        "auditor.example",
        &leaf_ext("DNS:auditor.example", "clientAuth"),
        None,
        Some((&vendor.0, &vendor.1)),
    );
    let chain_pem = pki.file("by-vendor-leaf-chain.pem");
    let mut both = std::fs::read(&evil).unwrap();
    both.extend(std::fs::read(&vendor.0).unwrap());
    std::fs::write(&chain_pem, both).unwrap();
    let got = probe(&as_cert(&(chain_pem, evil_key)), &ui, None).await;
    judge(
        &mut errs,
        "a listed name in a certificate the vendor's leaf signed, chain included",
        &got,
        Want::Nobody,
    );
    // Another CA altogether, with a listed name.
    let foreign = Pki::issue(&log.path("foreign"), &["auditor.example"]);
    let got = probe(&as_cert(&foreign.client("auditor.example")), &ui, None).await;
    judge(
        &mut errs,
        "a listed name from an untrusted CA",
        &got,
        Want::Nobody,
    );

    // Tokens and certificates together: the token counts, they never
    // combine, and a bad token does not fall back to the certificate.
    let got = probe(&as_cert(&auditor), &ui, Some("clt_0000")).await;
    judge(
        &mut errs,
        "the auditor's certificate with an unknown token",
        &got,
        Want::Nobody,
    );
    let got = probe(&as_cert(&vendor), &ui, Some(&cam_token)).await;
    judge(
        &mut errs,
        "the vendor's certificate with cam's reporter token",
        &got,
        Want::ActsAs("cam"),
    );
    let got = probe(&as_cert(&auditor), &ui, Some(&cam_token)).await;
    judge(
        &mut errs,
        "the auditor's certificate with cam's reporter token (no union of rights)",
        &got,
        Want::ActsAs("cam"),
    );
    // Two names of one party: that party.
    let c = pki.client_cert(
        "two-vendor-names",
        "vendor.example",
        "DNS:vendor.example,URI:spiffe://vendor.example/backup",
    );
    let got = probe(&as_cert(&c), &ui, None).await;
    judge(
        &mut errs,
        "control: two names bound to the same party",
        &got,
        Want::ActsAs("vendor"),
    );
    let c = pki.client_cert("vendor-cn-auditor", "auditor.example", "DNS:vendor.example");
    let got = probe(&as_cert(&c), &ui, None).await;
    judge(
        &mut errs,
        "the vendor's SAN with the auditor's name as CN",
        &got,
        Want::ActsAs("vendor"),
    );

    let server_log = log.server_log();
    assert!(
        errs.is_empty(),
        "{} certificate attack(s) got through:\n{}\n--- server log:\n{}",
        errs.len(),
        errs.join("\n"),
        clip(&server_log)
    );
}

/// A certificate whose names the access list binds to two different
/// parties is ambiguous: the server must not pick one of them by the
/// order the names were written in (which whoever asked for the
/// certificate chose).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_certificate_whose_names_are_bound_to_two_parties_is_refused() {
    if !have_openssl() {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    let mut log = Log::init();
    let pki = Pki::issue(&log.path("pki"), &[]);
    grant_san(&log, "auditor-1", "auditor", "auditor.example");
    grant_san(&log, "vendor", "reporter", "vendor.example");
    let flags = pki.serve_flags(true);
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    log.start_with(&f);
    let ui = format!("{}/ui/", https(&log.http));
    let mut errs = Vec::new();
    for (stem, san) in [
        ("vendor-first", "DNS:vendor.example,DNS:auditor.example"),
        ("auditor-first", "DNS:auditor.example,DNS:vendor.example"),
    ] {
        let c = pki.client_cert(stem, "vendor.example", san);
        let got = probe(&https_client(&pki.ca(), Some((&c.0, &c.1))), &ui, None).await;
        judge(
            &mut errs,
            &format!("a certificate naming {san} (bound to vendor/reporter and auditor-1/auditor)"),
            &got,
            Want::Nobody,
        );
    }
    assert!(
        errs.is_empty(),
        "a certificate with names of two parties acts for one of them, chosen by name order:\n{}",
        errs.join("\n")
    );
}

/// The access list binds a name, not a kind of name: a URI subject
/// alternative name must not satisfy a grant made for a DNS name (or the
/// other way round), since CAs vet the two differently.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_uri_name_does_not_stand_in_for_a_dns_name_grant() {
    if !have_openssl() {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    let mut log = Log::init();
    let pki = Pki::issue(&log.path("pki"), &[]);
    grant_san(&log, "auditor-1", "auditor", "auditor.example");
    grant_san(&log, "oig", "auditor", "spiffe://agency.example/oig");
    let flags = pki.serve_flags(true);
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    log.start_with(&f);
    let ui = format!("{}/ui/", https(&log.http));
    let mut errs = Vec::new();
    for (stem, san, what) in [
        (
            "uri-for-dns",
            "URI:auditor.example",
            "a URI SAN `auditor.example` against the DNS grant auditor.example",
        ),
        (
            "dns-for-uri",
            "DNS:spiffe://agency.example/oig",
            "a DNS SAN `spiffe://agency.example/oig` against the URI grant",
        ),
    ] {
        let c = pki.client_cert(stem, "x", san);
        let got = probe(&https_client(&pki.ca(), Some((&c.0, &c.1))), &ui, None).await;
        judge(&mut errs, what, &got, Want::Nobody);
    }
    assert!(
        errs.is_empty(),
        "a name of one kind satisfies a grant of another:\n{}",
        errs.join("\n")
    );
}

// ---------------------------------------------------------------------
// 2. A certificate-bound reporter, over gRPC.
// ---------------------------------------------------------------------

/// A reporter bound by its certificate appends only its own party's
/// events, whatever key it signs with, and its open stream and its
/// kept-alive connections stop working when its name is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_certificate_bound_reporter_reports_only_for_itself_and_not_after_revocation() {
    if !have_openssl() {
        eprintln!("skipped: openssl is not installed, so gRPC cannot be spoken over TLS here");
        return;
    }
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let vendor = register(&log, &mut c, "vendor", 0, 0).await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    drop(c);
    log.kill();
    let pki = Pki::issue(&log.path("pki"), &["vendor.example", "auditor.example"]);
    grant_san(&log, "vendor", "reporter", "vendor.example");
    grant_san(&log, "auditor-1", "auditor", "auditor.example");
    let flags = pki.serve_flags(true);
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    log.start_with(&f);
    let (grpcs, http) = (https(&log.grpc), https(&log.http));
    let ca = pki.ca();
    let vcert = pki.client("vendor.example");
    let acert = pki.client("auditor.example");
    let auditor_http = https_client(&ca, Some((&acert.0, &acert.1)));
    let size = |c: reqwest::Client, url: String| async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        match probe(&c, &url, None).await {
            Ok((200, note)) => size_of_note(note.as_bytes()),
            other => panic!("the auditor reads the checkpoint: {}", describe(&other)),
        }
    };
    let cp_url = format!("{http}/checkpoint");
    let (mut g, _tunnel) = grpc_tls(&grpcs, &ca, Some((&vcert.0, &vcert.1)))
        .await
        .expect("the vendor connects over TLS with its certificate");
    let mut errs = Vec::new();
    let before = size(auditor_http.clone(), cp_url.clone()).await;

    let unary = |e: v1::Event, k: &ed25519_dalek::SigningKey| v1::AppendRequest {
        event: Some(signed(&e, &[k])),
        wait_for_checkpoint: false,
    };
    for (what, req) in [
        (
            "reporter cam, signed with the vendor's key",
            unary(event("cam", capture("cam")), &vendor),
        ),
        (
            "reporter cam, signed with cam's own key",
            unary(event("cam", capture("cam")), &cam),
        ),
        (
            "reporter data-owner, a registry event signed by the vendor",
            unary(
                event(&log.owner_id, party_registered("vendor-2", &log.owner_id)),
                &vendor,
            ),
        ),
        (
            "reporter `Vendor` (case)",
            unary(event("Vendor", capture("vendor")), &vendor),
        ),
        (
            "reporter `vendor.example` (its certificate name)",
            unary(event("vendor.example", capture("vendor")), &vendor),
        ),
    ] {
        match g.append(req).await {
            Err(s) if s.code() == Code::PermissionDenied => {}
            Err(s) => errs.push(format!(
                "Append {what}: want PERMISSION_DENIED, got {:?}: {}",
                s.code(),
                s.message()
            )),
            Ok(r) => errs.push(format!(
                "Append {what}: appended at {}",
                r.into_inner().index
            )),
        }
    }
    // The same over AppendStream, in band.
    let answers = stream_requests(&mut g, vec![unary(event("cam", capture("cam")), &cam)]).await;
    if answers[0].error_code != Code::PermissionDenied as i32 {
        errs.push(format!(
            "AppendStream reporter cam: want PERMISSION_DENIED, got code {} {}",
            answers[0].error_code, answers[0].error_message
        ));
    }
    let after = size(auditor_http.clone(), cp_url.clone()).await;
    if after != before {
        errs.push(format!(
            "refused appends changed the log: size {before} became {after}"
        ));
    }

    // A stream opened while the name is bound.
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::AppendRequest>(4);
    let mut out = g
        .append_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("open stream")
        .into_inner();
    tx.send(unary(event("vendor", capture("vendor")), &vendor))
        .await
        .unwrap();
    let first = out.message().await.expect("answer").expect("one answer");
    assert_eq!(
        first.error_code, 0,
        "control: the vendor reports its own capture: {}",
        first.error_message
    );
    // A kept-alive HTTPS connection of the auditor's certificate.
    let got = probe(&auditor_http, &format!("{http}/ui/"), None).await;
    judge(
        &mut errs,
        "control: the auditor's certificate",
        &got,
        Want::Reads,
    );

    revoke(&log, "san:vendor.example");
    revoke(&log, "san:auditor.example");
    tx.send(unary(event("vendor", capture("vendor")), &vendor))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(10), out.message()).await {
        Ok(Ok(Some(a))) if a.error_code == 0 => errs.push(format!(
            "the vendor's AppendStream, opened before its name was revoked, still appends (entry {})",
            a.index
        )),
        Ok(Ok(Some(a))) if a.error_code != Code::Unauthenticated as i32 => errs.push(format!(
            "after revocation the stream's answer is code {} ({}), want UNAUTHENTICATED",
            a.error_code, a.error_message
        )),
        _ => {}
    }
    drop(tx);
    match g
        .append(unary(event("vendor", capture("vendor")), &vendor))
        .await
    {
        Err(s) if s.code() == Code::Unauthenticated => {}
        Err(s) => errs.push(format!(
            "Append after revocation: want UNAUTHENTICATED, got {:?} {}",
            s.code(),
            s.message()
        )),
        Ok(r) => errs.push(format!(
            "Append after revocation, on the connection opened before it: appended at {}",
            r.into_inner().index
        )),
    }
    let got = probe(&auditor_http, &format!("{http}/ui/"), None).await;
    judge(
        &mut errs,
        "the auditor's kept-alive connection after its name was revoked",
        &got,
        Want::Nobody,
    );
    assert!(
        errs.is_empty(),
        "{} attack(s) by a certificate-bound reporter got through:\n{}",
        errs.len(),
        errs.join("\n")
    );
}

// ---------------------------------------------------------------------
// 3. TLS listeners.
// ---------------------------------------------------------------------

/// `honest` fetches the checkpoint over HTTPS and gRPC-over-TLS from
/// 127.0.0.1, each within 5 s.
async fn honest(c: &reqwest::Client, http: &str, grpcs: &str, ca: &Path) -> Result<(), String> {
    let t = Instant::now();
    match probe(c, &format!("{http}/checkpoint"), None).await {
        Ok((200, b)) if b.starts_with(ORIGIN) => {}
        other => return Err(format!("HTTPS /checkpoint: {}", describe(&other))),
    }
    if !have_openssl() {
        return Ok(());
    }
    let (mut g, _tunnel) = grpc_tls(grpcs, ca, None).await?;
    g.get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
        .await
        .map_err(|s| format!("gRPC GetCheckpoint: {:?} {}", s.code(), s.message()))?;
    if t.elapsed() > Duration::from_secs(5) {
        return Err(format!("served, but only after {:?}", t.elapsed()));
    }
    Ok(())
}

/// Plain text, garbage, stalled and oversized handshakes are closed
/// without an answer and within the handshake deadline, a flood of half
/// handshakes from one address is capped at its per-address limit, and an
/// honest client at another address is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_listeners_shrug_off_plain_text_garbage_and_stalled_or_flooding_handshakes() {
    let mut log = Log::init();
    let pki = Pki::issue(&log.path("pki"), &[]);
    let mut flags = pki.serve_flags(false);
    flags.extend(
        [
            "--header-timeout-secs",
            "3",
            "--max-connections-per-address",
            "8",
            "--public-tiles",
        ]
        .map(String::from),
    );
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    log.start_with(&f);
    let http_addr: SocketAddr = log.http.trim_start_matches("http://").parse().unwrap();
    let grpc_addr: SocketAddr = log.grpc.trim_start_matches("http://").parse().unwrap();
    let (https_url, grpcs) = (https(&log.http), https(&log.grpc));
    let ca = pki.ca();
    let client = https_client(&ca, None);
    let mut errs = Vec::new();
    if let Err(e) = honest(&client, &https_url, &grpcs, &ca).await {
        panic!("control: an honest client before the attacks: {e}");
    }

    let h2_preface = {
        let mut p = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        p.extend([0, 0, 0, 4, 0, 0, 0, 0, 0]);
        p
    };
    let garbage: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(7) + 13) as u8)
        .collect();
    let get = b"GET /checkpoint HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec();
    let cases: Vec<(&str, SocketAddr, Vec<u8>, Duration)> = vec![
        (
            "plain HTTP/1.1 to the HTTPS listener",
            http_addr,
            get.clone(),
            Duration::from_secs(2),
        ),
        (
            "plain HTTP/1.1 to the gRPC listener",
            grpc_addr,
            get.clone(),
            Duration::from_secs(2),
        ),
        (
            "an HTTP/2 preface to the gRPC listener",
            grpc_addr,
            h2_preface.clone(),
            Duration::from_secs(2),
        ),
        (
            "an HTTP/2 preface to the HTTPS listener",
            http_addr,
            h2_preface,
            Duration::from_secs(2),
        ),
        (
            "64 KiB of garbage to the HTTPS listener",
            http_addr,
            garbage.clone(),
            Duration::from_secs(4),
        ),
        (
            "64 KiB of garbage to the gRPC listener",
            grpc_addr,
            garbage,
            Duration::from_secs(4),
        ),
        (
            "a TLS record header promising 16 KiB, then nothing",
            http_addr,
            vec![0x16, 3, 1, 0x40, 0],
            Duration::from_secs(7),
        ),
    ];
    for (what, addr, bytes, within) in cases {
        let mut s = connect_from("127.0.0.1", addr).await.expect("connect");
        let _ = s.write_all(&bytes).await;
        let t = Instant::now();
        let (got, closed) = drain(&mut s, within).await;
        let shown = String::from_utf8_lossy(&got);
        if shown.contains("HTTP/") || shown.contains(ORIGIN) {
            errs.push(format!(
                "{what}: the server answered in plain text: {}",
                clip(&shown)
            ));
        }
        if got.len() >= 9 && got[3] == 4 && got[0] == 0 {
            errs.push(format!("{what}: the server answered with an HTTP/2 frame"));
        }
        if !closed {
            errs.push(format!("{what}: still open after {:?}", t.elapsed()));
        }
    }

    // A ClientHello claiming a 16 MiB handshake message, followed by
    // records of zeros.
    {
        let mut s = connect_from("127.0.0.1", http_addr).await.expect("connect");
        let mut first = vec![0x16, 3, 1, 0x40, 0, 1, 0xff, 0xff, 0xff];
        first.extend(std::iter::repeat_n(0u8, 0x4000 - 4));
        let _ = s.write_all(&first).await;
        let t = Instant::now();
        let fed = tokio::time::timeout(Duration::from_secs(8), async {
            let mut rec = vec![0x16, 3, 1, 0x40, 0];
            rec.extend(std::iter::repeat_n(0u8, 0x4000));
            for _ in 0..1024 {
                if s.write_all(&rec).await.is_err() {
                    return false;
                }
            }
            true
        })
        .await;
        let (_, closed) = drain(&mut s, Duration::from_secs(5)).await;
        if matches!(fed, Ok(true)) && !closed {
            errs.push(format!(
                "a 16 MiB ClientHello: the server took 16 MiB and kept the connection open for {:?}",
                t.elapsed()
            ));
        }
    }

    // A ClientHello, then silence, from another address.
    {
        let mut s = connect_from("127.0.0.2", http_addr).await.expect("connect");
        s.write_all(&client_hello(b"http/1.1")).await.unwrap();
        let (got, closed) = drain(&mut s, Duration::from_millis(1500)).await;
        assert!(
            got.first() == Some(&0x16) && !closed,
            "harness: the hand-made ClientHello was answered with {:02x?} (closed: {closed})",
            &got[..got.len().min(16)]
        );
        let t = Instant::now();
        let (_, closed) = drain(&mut s, Duration::from_secs(7)).await;
        if !closed {
            errs.push(format!(
                "a ClientHello then silence: still open {:?} after the server's first flight (deadline 3 s)",
                t.elapsed()
            ));
        }
    }

    // A flood of half handshakes from 127.0.0.2, 40 per listener, cap 8.
    let mut tasks = Vec::new();
    for (addr, alpn) in [(http_addr, &b"http/1.1"[..]), (grpc_addr, &b"h2"[..])] {
        for _ in 0..40 {
            let hello = client_hello(alpn);
            tasks.push(tokio::spawn(async move {
                let mut s = connect_from("127.0.0.2", addr).await.ok()?;
                let _ = s.write_all(&hello).await;
                let (got, closed) = drain(&mut s, Duration::from_millis(1500)).await;
                Some((addr, s, !got.is_empty() && !closed))
            }));
        }
    }
    let mut held = Vec::new();
    let mut per_port = std::collections::HashMap::new();
    for t in tasks {
        if let Some((addr, s, is_held)) = t.await.unwrap() {
            if is_held {
                *per_port.entry(addr.port()).or_insert(0usize) += 1;
                held.push(s);
            }
        }
    }
    for addr in [http_addr, grpc_addr] {
        assert!(
            per_port.get(&addr.port()).copied().unwrap_or(0) > 0,
            "harness: no half handshake of the flood to port {} was answered",
            addr.port()
        );
    }
    for (port, n) in &per_port {
        if *n > 8 {
            errs.push(format!(
                "port {port}: {n} half handshakes from one address held open, beyond --max-connections-per-address 8"
            ));
        }
    }
    if let Err(e) = honest(&client, &https_url, &grpcs, &ca).await {
        errs.push(format!(
            "an honest client at another address, during the flood: {e}"
        ));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut still = 0;
    for mut s in held {
        let (_, closed) = drain(&mut s, Duration::from_secs(3)).await;
        if !closed {
            still += 1;
        }
    }
    if still > 0 {
        errs.push(format!(
            "{still} half handshakes of the flood still open 7 s after they stalled (deadline 3 s)"
        ));
    }
    if let Err(e) = honest(&client, &https_url, &grpcs, &ca).await {
        errs.push(format!("an honest client after the flood: {e}"));
    }
    if let Some(Ok(Some(status))) = log.child.as_mut().map(|c| c.try_wait()) {
        errs.push(format!("custodyd exited with {status}"));
    }
    let server_log = log.server_log();
    if server_log.contains("panicked") {
        errs.push(format!("custodyd panicked: {}", clip(&server_log)));
    }
    assert!(
        errs.is_empty(),
        "{} TLS listener attack(s) got through:\n{}",
        errs.len(),
        errs.join("\n")
    );
}

// ---------------------------------------------------------------------
// 4. The witness's add-checkpoint rules.
// ---------------------------------------------------------------------

/// The witness cosigns only checkpoints the log's own key signed that
/// extend what it cosigned before, refuses the rest with the status
/// C2SP tlog-witness gives, and no request wedges it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_witness_cosigns_only_the_logs_own_extensions_of_its_record() {
    let log = Log::init();
    let signer =
        LogSigner::from_key_string(&std::fs::read_to_string(log.data.join("log.key")).unwrap())
            .expect("the log key");
    let wdir = log.path("w");
    std::fs::create_dir_all(&wdir).unwrap();
    let mut w = WitnessProc::new(&wdir, "w.example", &log.vkey, None);
    let wv = w.verifier();
    let honest = Tree::new(40, 40, "honest");
    let fork = Tree::new(40, 5, "fork");
    let cp = |t: &Tree, n: u64| signer.sign(n, &t.root(n)).unwrap();
    let mut errs = Vec::new();

    let n10 = cp(&honest, 10);
    match post(&w.url, add_request(0, &[], &n10)).await {
        Ok((200, line)) => {
            let cosigned = custody_log::add_cosignatures(&n10, line.as_bytes()).unwrap();
            assert!(
                wv.verify(&cosigned).is_ok(),
                "control: the cosignature verifies"
            );
        }
        other => panic!("control: the first checkpoint: {}", describe(&other)),
    }

    let (other_key, _) = LogSigner::generate(ORIGIN, &mut rand_core::OsRng).unwrap();
    let got = post(
        &w.url,
        add_request(
            10,
            &honest.proof(10, 15),
            &other_key.sign(15, &honest.root(15)).unwrap(),
        ),
    )
    .await;
    expect_status(
        &mut errs,
        "the same origin signed by another key",
        &got,
        &[403],
    );
    // The log's signature moved onto another body.
    let n15 = cp(&honest, 15);
    let forged = String::from_utf8(n15.clone())
        .unwrap()
        .replacen("\n15\n", "\n16\n", 1)
        .into_bytes();
    let got = post(&w.url, add_request(10, &honest.proof(10, 15), &forged)).await;
    expect_status(
        &mut errs,
        "the log's signature over another size",
        &got,
        &[403],
    );
    let got = post(&w.url, add_request(20, &[], &n15)).await;
    expect_status(
        &mut errs,
        "old size 20 for a checkpoint of size 15",
        &got,
        &[400],
    );
    let got = post(
        &w.url,
        add_request(15, &honest.proof(15, 20), &cp(&honest, 20)),
    )
    .await;
    expect_status(
        &mut errs,
        "old size 15, larger than the witness's 10, for a checkpoint of size 20",
        &got,
        &[409],
    );
    let got = post(&w.url, add_request(0, &[], &n15)).await;
    expect_status(
        &mut errs,
        "old size 0 after size 10 was cosigned",
        &got,
        &[409],
    );
    if let Ok((409, b)) = &got {
        if b != "10\n" {
            errs.push(format!(
                "a 409 should carry the witness's size 10, got {b:?}"
            ));
        }
    }
    let got = post(&w.url, add_request(10, &fork.proof(10, 15), &cp(&fork, 15))).await;
    expect_status(
        &mut errs,
        "a fork sharing 5 entries, with a proof of its own tree from 10",
        &got,
        &[422],
    );
    let got = post(
        &w.url,
        add_request(10, &honest.proof(10, 15), &cp(&fork, 15)),
    )
    .await;
    expect_status(
        &mut errs,
        "a fork with the honest tree's proof",
        &got,
        &[422],
    );
    let got = post(&w.url, add_request(10, &[], &cp(&fork, 10))).await;
    expect_status(
        &mut errs,
        "another tree of the cosigned size 10",
        &got,
        &[422],
    );
    let got = post(&w.url, add_request(10, &[Hash([1; 32])], &cp(&honest, 10))).await;
    expect_status(
        &mut errs,
        "the cosigned checkpoint with a junk proof",
        &got,
        &[200, 422],
    );

    let got = post(
        &w.url,
        add_request(10, &honest.proof(10, 20), &cp(&honest, 20)),
    )
    .await;
    expect_status(
        &mut errs,
        "control: the honest extension 10 → 20",
        &got,
        &[200],
    );
    let got = post(&w.url, add_request(20, &[], &n10)).await;
    expect_status(&mut errs, "a replay of size 10 from 20", &got, &[400]);
    let got = post(&w.url, add_request(10, &[], &n10)).await;
    expect_status(&mut errs, "a replay of size 10 from 10", &got, &[409]);
    let got = post(&w.url, add_request(0, &[], &n10)).await;
    expect_status(&mut errs, "a replay of size 10 from 0", &got, &[409]);
    let (evil, _) = LogSigner::generate("evil.example/log", &mut rand_core::OsRng).unwrap();
    let got = post(
        &w.url,
        add_request(0, &[], &evil.sign(3, &Hash([3; 32])).unwrap()),
    )
    .await;
    expect_status(&mut errs, "a log the witness does not know", &got, &[404]);

    // Huge bodies, with a length and chunked.
    let got = post(&w.url, vec![b'a'; 8 << 20]).await;
    if let Ok((200, _)) = got {
        errs.push("an 8 MiB body was cosigned".into());
    }
    let status = {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", w.port))
            .await
            .unwrap();
        let _ = s
            .write_all(
                b"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .await;
        let mut frame = format!("{:x}\r\n", 16384).into_bytes();
        frame.extend(std::iter::repeat_n(b'a', 16384));
        frame.extend(b"\r\n");
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            for _ in 0..512 {
                if s.write_all(&frame).await.is_err() {
                    return;
                }
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
        })
        .await;
        let (got, _) = drain(&mut s, Duration::from_secs(10)).await;
        String::from_utf8_lossy(&got)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    if status.contains(" 200") {
        errs.push(format!("an 8 MiB chunked body: {status}"));
    }
    if w.recorded().map(|r| r.0) != Some(20) {
        errs.push(format!(
            "after the attacks the witness holds {:?}, want size 20",
            w.recorded()
        ));
    }

    // 100 and 101 signature lines: the witness answers, and is not wedged.
    let mut n100 = cp(&honest, 25);
    for i in 0..99u32 {
        n100.extend(junk_line(&format!("junk{i}.example"), i, 64));
    }
    let _ = post(&w.url, add_request(20, &honest.proof(20, 25), &n100)).await;
    let mut n101 = n100.clone();
    n101.extend(junk_line("junk99.example", 99, 64));
    let got = post(&w.url, add_request(20, &honest.proof(20, 25), &n101)).await;
    if let Ok((200, _)) = got {
        errs.push("a note of 101 signatures was cosigned".into());
    }
    match w.start() {
        Err(e) => errs.push(format!("the witness no longer starts: {e}")),
        Ok(()) => {
            let from = w.recorded().map(|r| r.0).unwrap_or(0);
            let got = post(
                &w.url,
                add_request(from, &honest.proof(from, 30), &cp(&honest, 30)),
            )
            .await;
            expect_status(
                &mut errs,
                &format!("after a restart, the honest extension {from} → 30"),
                &got,
                &[200],
            );
        }
    }
    assert!(
        errs.is_empty(),
        "{} witness attack(s) got through:\n{}\n--- witness stderr:\n{}",
        errs.len(),
        errs.join("\n"),
        clip(&std::fs::read_to_string(&w.stderr).unwrap_or_default())
    );
}

/// A forked log and the honest one, sharing a prefix the witness
/// cosigned, race to extend it: exactly one history is cosigned, and the
/// loser cannot follow up from the winner's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fork_racing_the_honest_log_gets_only_one_history_cosigned() {
    let log = Log::init();
    let signer =
        LogSigner::from_key_string(&std::fs::read_to_string(log.data.join("log.key")).unwrap())
            .unwrap();
    let wdir = log.path("w");
    std::fs::create_dir_all(&wdir).unwrap();
    let honest = Tree::new(40, 40, "honest");
    let fork = Tree::new(40, 10, "fork");
    let mut errs = Vec::new();
    // Round 1: both of size 20; round 2: the fork one longer.
    for (round, fork_size) in [(1, 20u64), (2, 21u64)] {
        let w = WitnessProc::new(&wdir, &format!("w{round}.example"), &log.vkey, None);
        let base = signer.sign(10, &honest.root(10)).unwrap();
        let got = post(&w.url, add_request(0, &[], &base)).await;
        assert!(matches!(got, Ok((200, _))), "control: {}", describe(&got));
        let h = add_request(
            10,
            &honest.proof(10, 20),
            &signer.sign(20, &honest.root(20)).unwrap(),
        );
        let f = add_request(
            10,
            &fork.proof(10, fork_size),
            &signer.sign(fork_size, &fork.root(fork_size)).unwrap(),
        );
        let mut tasks = Vec::new();
        for i in 0..32 {
            let (body, kind) = if i % 2 == 0 {
                (h.clone(), "honest")
            } else {
                (f.clone(), "fork")
            };
            let url = w.url.clone();
            tasks.push(tokio::spawn(async move { (kind, post(&url, body).await) }));
        }
        let mut wins = Vec::new();
        for t in tasks {
            let (kind, got) = t.await.unwrap();
            match got {
                Ok((200, _)) => wins.push(kind),
                Ok((409, _)) | Ok((422, _)) => {}
                other => errs.push(format!(
                    "round {round}: a {kind} request: unexpected {}",
                    describe(&other)
                )),
            }
        }
        if wins.len() != 1 {
            errs.push(format!(
                "round {round}: {} requests were cosigned ({wins:?}); exactly one history may win",
                wins.len()
            ));
            continue;
        }
        let (won_root, won_size) = if wins[0] == "honest" {
            (honest.root(20), 20)
        } else {
            (fork.root(fork_size), fork_size)
        };
        if w.recorded() != Some((won_size, won_root)) {
            errs.push(format!(
                "round {round}: the witness records {:?}, not the winner",
                w.recorded()
            ));
        }
        // The loser now tries from the winner's size: a split view, or
        // a proof that does not verify.
        let loser = if wins[0] == "honest" {
            add_request(
                won_size,
                &fork.proof(fork_size.min(won_size), fork_size),
                &signer.sign(fork_size, &fork.root(fork_size)).unwrap(),
            )
        } else {
            add_request(won_size, &[], &signer.sign(20, &honest.root(20)).unwrap())
        };
        let got = post(&w.url, loser).await;
        if let Ok((200, _)) = got {
            errs.push(format!(
                "round {round}: the losing history was cosigned after the winner"
            ));
        }
    }
    assert!(
        errs.is_empty(),
        "the witness let two histories through:\n{}",
        errs.join("\n")
    );
}

/// Witnesses are reachable by anyone: connections that open and send
/// nothing must not lock the log out of its witness (custodyd itself has
/// header and idle timeouts and per-address caps for this).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_witness_keeps_serving_while_idle_connections_pile_up() {
    let log = Log::init();
    let signer =
        LogSigner::from_key_string(&std::fs::read_to_string(log.data.join("log.key")).unwrap())
            .unwrap();
    let wdir = log.path("w");
    std::fs::create_dir_all(&wdir).unwrap();
    // 1024 is a common default descriptor limit (systemd's soft limit).
    let w = WitnessProc::new(&wdir, "w.example", &log.vkey, Some(1024));
    let tree = Tree::new(30, 30, "honest");
    let got = post(
        &w.url,
        add_request(0, &[], &signer.sign(10, &tree.root(10)).unwrap()),
    )
    .await;
    assert!(
        matches!(got, Ok((200, _))),
        "control: before the idle connections: {}",
        describe(&got)
    );
    // From another address than the log's, as an attacker would be.
    let mut idle = Vec::new();
    for _ in 0..1100 {
        let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
            break;
        };
        if sock.bind(([127, 0, 0, 2], 0).into()).is_err() {
            break;
        }
        match sock.connect(([127, 0, 0, 1], w.port).into()).await {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = Instant::now();
    let got = post(
        &w.url,
        add_request(
            10,
            &tree.proof(10, 20),
            &signer.sign(20, &tree.root(20)).unwrap(),
        ),
    )
    .await;
    let (n, took) = (idle.len(), t.elapsed());
    drop(idle);
    // Once the idle connections are gone it serves again: the witness
    // was locked out, not broken.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from = w.recorded().map(|r| r.0).unwrap_or(0);
    let after = post(
        &w.url,
        add_request(
            from,
            &tree.proof(from, 30),
            &signer.sign(30, &tree.root(30)).unwrap(),
        ),
    )
    .await;
    assert!(
        matches!(got, Ok((200, _))),
        "with {n} idle connections open to it (one client, sending nothing), the witness did \
         not cosign the log's next checkpoint: {} after {took:?}; once they closed: {}",
        describe(&got),
        describe(&after)
    );
}

// ---------------------------------------------------------------------
// 5. custodyd with witnesses that misbehave.
// ---------------------------------------------------------------------

/// A witness that answers 200 with garbage, another witness's name, or
/// its own cosignature of another checkpoint has not cosigned: with a
/// threshold of 2 the log does not publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_witness_answer_that_is_not_its_cosignature_of_this_checkpoint_is_not_counted() {
    let mut log = Log::init();
    let wdir = log.path("w");
    std::fs::create_dir_all(&wdir).unwrap();
    let w1 = WitnessProc::new(&wdir, "w1.example", &log.vkey, None);
    let f = FakeWitness::new(
        &wdir,
        "f.example",
        &log.vkey,
        Some(w1.verifier()),
        Answer::Garbage,
    )
    .await;
    log.start_with(&[
        "--witness",
        &w1.flag(),
        "--witness",
        &f.flag(),
        "--witness-threshold",
        "2",
        "--witness-timeout-secs",
        "3",
    ]);
    let mut c = log.client().await;
    let start = size_of_note(&served_note(&log.http).await);
    let mut errs = Vec::new();
    for a in [Answer::Garbage, Answer::Impostor, Answer::Stale] {
        f.set(a);
        grow(&log, &mut c, 2).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = size_of_note(&served_note(&log.http).await);
        if now != start {
            errs.push(format!(
                "with f.example answering {a:?}, the log published size {now} (from {start}) with one real cosignature"
            ));
        }
    }
    // Control: once it cosigns, the log publishes, cosigned by both.
    f.set(Answer::Cosign);
    let want = next_index(&log, &mut c).await;
    match wait_served(&log.http, want, Duration::from_secs(15)).await {
        None => errs.push(format!(
            "control: once both cosign, no checkpoint of size {want} was published: {}",
            clip(&log.server_log())
        )),
        Some(_) => {
            let out = monitor_once(
                &log.http,
                &log.vkey,
                &log.path("m.state"),
                &[&w1.vkey, &f.vkey_file],
                None,
            )
            .await;
            if !out.status.success() {
                errs.push(format!(
                    "control: monitor with both witnesses: {}",
                    text(&out)
                ));
            }
        }
    }
    assert!(
        errs.is_empty(),
        "{}\n--- server log:\n{}",
        errs.join("\n"),
        clip(&log.server_log())
    );
}

/// A witness may add nothing to a checkpoint but its own cosignature:
/// extra lines with the log's own name and key ID must not replace the
/// log's signature in the published checkpoint (every client would then
/// refuse it, and custodyd would refuse to start on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_witness_cannot_strip_the_logs_signature_from_a_published_checkpoint() {
    let mut log = Log::init();
    let wdir = log.path("w");
    std::fs::create_dir_all(&wdir).unwrap();
    let w1 = WitnessProc::new(&wdir, "w1.example", &log.vkey, None);
    let f = FakeWitness::new(&wdir, "f.example", &log.vkey, None, Answer::StripLog).await;
    let flags = [
        "--witness".to_owned(),
        w1.flag(),
        "--witness".into(),
        f.flag(),
        "--witness-threshold".into(),
        "1".into(),
    ];
    let fl: Vec<&str> = flags.iter().map(String::as_str).collect();
    log.start_with(&fl);
    let mut c = log.client().await;
    grow(&log, &mut c, 3).await;
    let want = next_index(&log, &mut c).await;
    drop(c);
    let mut errs = Vec::new();
    let verifier = LogVerifier::new(std::fs::read_to_string(&log.vkey).unwrap().trim()).unwrap();
    match wait_served(&log.http, want, Duration::from_secs(15)).await {
        None => errs.push(format!(
            "no checkpoint of size {want} was published though w1 cosigns (threshold 1)"
        )),
        Some((_, note)) => {
            if let Err(e) = verifier.verify(&note) {
                errs.push(format!(
                    "the published checkpoint of size {} does not verify under the log's key ({e}):\n{}",
                    size_of_note(&note),
                    String::from_utf8_lossy(&note)
                ));
            }
            let out = monitor_once(&log.http, &log.vkey, &log.path("m.state"), &[], None).await;
            if !out.status.success() {
                errs.push(format!("custody monitor: {}", clip(&text(&out))));
            }
        }
    }
    // Restarted without witnesses, the log must still start.
    log.kill();
    if let Err(e) = try_start(&mut log, &[]) {
        errs.push(format!("custodyd no longer starts on its own data: {e}"));
    }
    assert!(
        errs.is_empty(),
        "a witness's extra line replaced the log's own signature:\n{}",
        errs.join("\n")
    );
}

/// Nor may a witness's extra lines replace another witness's
/// cosignature: clients requiring that witness would refuse the
/// checkpoint the log published as cosigned by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_witness_cannot_displace_another_witness_cosignature() {
    let mut log = Log::init();
    let wdir = log.path("w");
    std::fs::create_dir_all(&wdir).unwrap();
    let w1 = WitnessProc::new(&wdir, "w1.example", &log.vkey, None);
    let f = FakeWitness::new(
        &wdir,
        "f.example",
        &log.vkey,
        Some(w1.verifier()),
        Answer::Displace,
    )
    .await;
    log.start_with(&[
        "--witness",
        &w1.flag(),
        "--witness",
        &f.flag(),
        "--witness-threshold",
        "2",
    ]);
    let mut c = log.client().await;
    grow(&log, &mut c, 3).await;
    let want = next_index(&log, &mut c).await;
    let mut errs = Vec::new();
    let lv = LogVerifier::new(std::fs::read_to_string(&log.vkey).unwrap().trim()).unwrap();
    match wait_served(&log.http, want, Duration::from_secs(15)).await {
        None => errs.push(format!(
            "no checkpoint of size {want} was published (the log should either publish with w1's cosignature or refuse f's answer): {}",
            clip(&log.server_log())
        )),
        Some((_, note)) => {
            if let Err(e) = verify_witnessed(&note, &lv, &[w1.verifier()], 1) {
                errs.push(format!(
                    "the log published a checkpoint as cosigned by w1.example that w1's key does not verify ({e}):\n{}",
                    String::from_utf8_lossy(&note)
                ));
            }
            let out =
                monitor_once(&log.http, &log.vkey, &log.path("m.state"), &[&w1.vkey], None).await;
            if !out.status.success() {
                errs.push(format!(
                    "custody monitor --witness-key w1: exit {:?}: {}",
                    out.status.code(),
                    clip(&text(&out))
                ));
            }
        }
    }
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

/// A witness answering its cosignature plus 98 lines of unknown keys
/// fills the note's 100 signature lines: with a threshold another
/// witness meets alone, the log must still publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_witness_flooding_signature_lines_cannot_stop_publication() {
    let mut log = Log::init();
    let wdir = log.path("w");
    std::fs::create_dir_all(&wdir).unwrap();
    let w1 = WitnessProc::new(&wdir, "w1.example", &log.vkey, None);
    let f = FakeWitness::new(&wdir, "f.example", &log.vkey, None, Answer::Flood).await;
    log.start_with(&[
        "--witness",
        &w1.flag(),
        "--witness",
        &f.flag(),
        "--witness-threshold",
        "1",
    ]);
    let mut c = log.client().await;
    grow(&log, &mut c, 3).await;
    let want = next_index(&log, &mut c).await;
    let got = wait_served(&log.http, want, Duration::from_secs(15)).await;
    assert!(
        got.is_some(),
        "one witness answering 98 extra signature lines stopped the log publishing, though w1 \
         alone meets the threshold of 1; served size {} after 15 s, want {want}:\n{}",
        size_of_note(&served_note(&log.http).await),
        log_lines(&log.server_log(), "failed")
    );
}

/// A witness that never answers does not lower the threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_witness_does_not_lower_the_threshold() {
    let mut log = Log::init();
    let wdir = log.path("w");
    std::fs::create_dir_all(&wdir).unwrap();
    let w1 = WitnessProc::new(&wdir, "w1.example", &log.vkey, None);
    let h = FakeWitness::new(&wdir, "h.example", &log.vkey, None, Answer::Hang).await;
    log.start_with(&[
        "--witness",
        &w1.flag(),
        "--witness",
        &h.flag(),
        "--witness-timeout-secs",
        "2",
    ]);
    let mut c = log.client().await;
    let start = size_of_note(&served_note(&log.http).await);
    grow(&log, &mut c, 3).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let now = size_of_note(&served_note(&log.http).await);
    assert_eq!(
        now,
        start,
        "with one of two required witnesses hanging, the log published: {}",
        clip(&log.server_log())
    );
    let log_text = log.server_log();
    assert!(
        log_text.contains("cosigned by 1 of 2 witnesses, need 2"),
        "the log says why it does not publish: {}",
        clip(&log_text)
    );
}

/// A witness that never answers must not hold up publication once the
/// others have met the threshold: waiting out its timeout on every
/// checkpoint delays every `--wait` append by that long.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_witness_does_not_stall_publication_once_the_threshold_is_met() {
    let mut log = Log::init();
    let wdir = log.path("w");
    std::fs::create_dir_all(&wdir).unwrap();
    let w1 = WitnessProc::new(&wdir, "w1.example", &log.vkey, None);
    let h = FakeWitness::new(&wdir, "h.example", &log.vkey, None, Answer::Hang).await;
    log.start_with(&[
        "--witness",
        &w1.flag(),
        "--witness",
        &h.flag(),
        "--witness-threshold",
        "1",
        "--witness-timeout-secs",
        "20",
    ]);
    let mut c = log.client().await;
    grow(&log, &mut c, 3).await;
    let want = next_index(&log, &mut c).await;
    let got = wait_served(&log.http, want, Duration::from_secs(70)).await;
    match got {
        None => panic!("no checkpoint of size {want} within 70 s, though w1 meets the threshold"),
        Some((took, _)) => assert!(
            took < Duration::from_secs(10),
            "w1 meets the threshold of 1 at once, but the checkpoint covering the append was \
             published only after {took:?}: the log waits out the hanging witness's timeout \
             (--witness-timeout-secs 20) on every checkpoint"
        ),
    }
}

// ---------------------------------------------------------------------
// 6. The k-of-n policy of custody monitor.
// ---------------------------------------------------------------------

/// `MonitorCase` is what the fake log serves, with the witness keys and
/// threshold the monitor is given, and whether it must accept.
type MonitorCase<'a> = (&'a str, Vec<u8>, Vec<&'a Path>, Option<usize>, bool);

/// `custody monitor --witness-key` counts each configured witness once,
/// only for a cosignature its own key made over this very checkpoint,
/// and only on a checkpoint the log signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn monitor_counts_only_distinct_configured_keys_over_this_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_core::OsRng;
    let (log, _) = LogSigner::generate(ORIGIN, &mut rng).unwrap();
    let vkey = dir.path().join("log.vkey");
    std::fs::write(&vkey, format!("{}\n", log.verifier_key())).unwrap();
    let (w1, _) = CosignatureSigner::generate("w1.example", &mut rng).unwrap();
    let (w2, _) = CosignatureSigner::generate("w2.example", &mut rng).unwrap();
    let (impostor, _) = CosignatureSigner::generate("w1.example", &mut rng).unwrap();
    let (w1_files, w2_files) = (dir.path().join("w1.vkey"), dir.path().join("w2.vkey"));
    std::fs::write(&w1_files, w1.verifier_key()).unwrap();
    std::fs::write(&w2_files, w2.verifier_key()).unwrap();
    let served = Arc::new(Mutex::new(Vec::<u8>::new()));
    let s2 = served.clone();
    let srv = fake_http(Arc::new(move |path: &str, _body: &[u8]| {
        if path == "/checkpoint" {
            Some((200, s2.lock().unwrap().clone()))
        } else {
            Some((404, b"no\n".to_vec()))
        }
    }))
    .await;
    let url = format!("http://127.0.0.1:{}", srv.port);

    let note = log.sign(5, &Hash([5; 32])).unwrap();
    let body = note_text(&note).unwrap();
    let other_body = note_text(&log.sign(6, &Hash([6; 32])).unwrap()).unwrap();
    let t = unix_now();
    let with = |base: &[u8], lines: &[Vec<u8>]| {
        let mut n = base.to_vec();
        for l in lines {
            n.extend_from_slice(l);
        }
        n
    };
    let (other_log, _) = LogSigner::generate(ORIGIN, &mut rng).unwrap();
    let foreign = other_log.sign(5, &Hash([5; 32])).unwrap();
    let text_only = {
        let mut n = body.clone();
        n.push(b'\n');
        n.extend(w1.cosign(&body, t).unwrap());
        n
    };
    let cases: Vec<MonitorCase> = vec![
        (
            "control: w1 and w2 cosigned",
            with(
                &note,
                &[w1.cosign(&body, t).unwrap(), w2.cosign(&body, t).unwrap()],
            ),
            vec![&w1_files, &w2_files],
            None,
            true,
        ),
        (
            "a cosignature by another key named w1.example",
            with(&note, &[impostor.cosign(&body, t).unwrap()]),
            vec![&w1_files],
            None,
            false,
        ),
        (
            "w2 and an impostor of w1, threshold 2",
            with(
                &note,
                &[
                    impostor.cosign(&body, t).unwrap(),
                    w2.cosign(&body, t).unwrap(),
                ],
            ),
            vec![&w1_files, &w2_files],
            Some(2),
            false,
        ),
        (
            "w1's cosignature twice (two times), threshold 2 of w1 and w2",
            with(
                &note,
                &[
                    w1.cosign(&body, t).unwrap(),
                    w1.cosign(&body, t + 1).unwrap(),
                ],
            ),
            vec![&w1_files, &w2_files],
            Some(2),
            false,
        ),
        (
            "w1's key given twice, threshold 2",
            with(&note, &[w1.cosign(&body, t).unwrap()]),
            vec![&w1_files, &w1_files],
            Some(2),
            false,
        ),
        (
            "w1's cosignature of another checkpoint, moved onto this one",
            with(
                &note,
                &[
                    w1.cosign(&other_body, t).unwrap(),
                    w2.cosign(&body, t).unwrap(),
                ],
            ),
            vec![&w1_files, &w2_files],
            Some(2),
            false,
        ),
        (
            "a junk line with w1's name and key ID",
            with(&note, &[junk_line("w1.example", w1.key_id(), 72)]),
            vec![&w1_files],
            None,
            false,
        ),
        (
            "only a witness not configured cosigned",
            with(&note, &[w2.cosign(&body, t).unwrap()]),
            vec![&w1_files],
            None,
            false,
        ),
        (
            "another log key with the same origin, cosigned by w1",
            with(&foreign, &[w1.cosign(&body, t).unwrap()]),
            vec![&w1_files],
            None,
            false,
        ),
        (
            "no log signature, only w1's cosignature",
            text_only,
            vec![&w1_files],
            None,
            false,
        ),
    ];
    let mut errs = Vec::new();
    let state = dir.path().join("m.state");
    for (what, n, keys, threshold, accept) in cases {
        *served.lock().unwrap() = n;
        let out = monitor_once(&url, &vkey, &state, &keys, threshold).await;
        let code = out.status.code();
        if accept && code != Some(0) {
            errs.push(format!("{what}: refused: {}", clip(&text(&out))));
        }
        if !accept && code == Some(0) {
            errs.push(format!("{what}: accepted: {}", clip(&text(&out))));
        }
        if !accept && code != Some(2) && !text(&out).contains("must be between") {
            errs.push(format!(
                "{what}: refused, but without ALERT (exit {code:?}): {}",
                clip(&text(&out))
            ));
        }
    }
    assert!(
        errs.is_empty(),
        "{} monitor attack(s) got through:\n{}",
        errs.len(),
        errs.join("\n")
    );
}
