//! TLS on both listeners, with optional client certificates (DESIGN §8).
//!
//! `--tls-cert` and `--tls-key` serve gRPC (ALPN `h2`) and HTTP (ALPN
//! `http/1.1`) over TLS 1.2 or 1.3, through rustls. `--tls-client-ca`
//! adds mutual TLS: a client may present a certificate issued by that CA,
//! and each of its subject alternative names (DNS names and URIs) may be
//! bound to a party and a role on the access list (`custodyd access add
//! --san NAME`), as a token is. A client without a certificate is still
//! served, and shows a token instead; a certificate that does not verify
//! ends the handshake.
//!
//! A handshake must finish within the header timeout, so a peer that opens
//! connections and never finishes one holds its descriptor no longer than
//! a peer that trickles a request's headers.
//!
//! [`issue`] makes a local CA and certificates signed by it: what the demo
//! serves with, and what `custodyd tls issue` gives an operator who has
//! no CA of their own yet.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;

use crate::conn::Guarded;

/// `TlsArgs` are the TLS flags of `custodyd serve` and `custody-demo`.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct TlsArgs {
    /// Serve gRPC and HTTP over TLS with this certificate chain (PEM,
    /// leaf first). Needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Accept client certificates issued by this CA (PEM), and map their
    /// subject alternative names to parties through the access list
    /// (`custodyd access add --san`). Needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

/// `Tls` is what both listeners need to serve TLS.
#[derive(Clone)]
pub struct Tls {
    /// For gRPC: ALPN `h2`.
    pub grpc: TlsAcceptor,
    /// For HTTP: ALPN `http/1.1`.
    pub http: TlsAcceptor,
    /// Whether clients may present certificates.
    pub mutual: bool,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{what} {}", path.display()))
}

/// `certificates` reads every certificate in a PEM file.
///
/// # Errors
///
/// When the file cannot be read or holds no certificate.
pub fn certificates(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{what} {}: not PEM certificates: {e}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{what} {}: no certificate in it (want PEM `BEGIN CERTIFICATE` blocks)",
        path.display()
    );
    Ok(certs)
}

impl Tls {
    /// `load` reads the files `args` names, or is `None` when TLS is off.
    ///
    /// # Errors
    ///
    /// When a file cannot be read or parsed, or the key does not match
    /// the certificate: each error names the flag and the file.
    pub fn load(args: &TlsArgs) -> anyhow::Result<Option<Self>> {
        let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
            return Ok(None);
        };
        let chain = certificates(cert, "--tls-cert")?;
        let key_pem = read(key, "--tls-key")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| anyhow!("--tls-key {}: not a PEM private key: {e}", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow!("TLS versions: {e}"))?;
        let builder = match &args.tls_client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certificates(ca, "--tls-client-ca")? {
                    roots
                        .add(c)
                        .map_err(|e| anyhow!("--tls-client-ca {}: {e}", ca.display()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .allow_unauthenticated()
                .build()
                .map_err(|e| anyhow!("--tls-client-ca {}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| anyhow!("--tls-cert and --tls-key do not make a certificate: {e}"))?;
        let mut http = config.clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Self {
            grpc: TlsAcceptor::from(Arc::new(config)),
            http: TlsAcceptor::from(Arc::new(http)),
            mutual: args.tls_client_ca.is_some(),
        }))
    }
}

/// `Peer` is who is at the other end of a connection, as far as the
/// transport knows: its address and the names its verified client
/// certificate carries. Both listeners put it in each request's
/// extensions.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The peer's address.
    pub addr: Option<SocketAddr>,
    /// The subject alternative names (DNS names and URIs) of the client
    /// certificate the handshake verified; empty without one.
    pub names: Arc<[String]>,
}

/// `names_of` is the DNS and URI subject alternative names of a
/// certificate, typed (`dns:…`, `uri:…`, see [`typed_name`]), or none if
/// it does not parse. A DNS name is never taken for a URI or the other
/// way round.
pub fn names_of(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(s) => Some(dns_name(s)),
            GeneralName::URI(s) => Some(format!("uri:{s}")),
            _ => None,
        })
        .collect()
}

fn dns_name(s: &str) -> String {
    format!("dns:{}", s.trim_end_matches('.').to_ascii_lowercase())
}

/// `typed_name` is a name as the access list binds it, typed as
/// [`names_of`] types a certificate's: `dns:NAME` or `uri:URI` as given,
/// else a URI if it holds `://`, else a DNS name (lower case, without a
/// trailing dot).
pub fn typed_name(name: &str) -> String {
    if let Some(d) = name.strip_prefix("dns:") {
        dns_name(d)
    } else if name.starts_with("uri:") {
        name.to_owned()
    } else if name.contains("://") {
        format!("uri:{name}")
    } else {
        dns_name(name)
    }
}

/// `Conn` is one accepted connection, plain or TLS.
pub enum Conn {
    /// Plain TCP.
    Plain(Guarded, Peer),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::server::TlsStream<Guarded>>, Peer),
}

impl Conn {
    /// `peer` is who is at the other end.
    pub fn peer(&self) -> &Peer {
        match self {
            Conn::Plain(_, p) | Conn::Tls(_, p) => p,
        }
    }
}

/// `accept` finishes accepting `io` from `addr`: nothing more for plain
/// TCP; for TLS, the handshake, within `deadline`.
///
/// # Errors
///
/// When the handshake fails or takes longer than `deadline`.
pub async fn accept(
    io: Guarded,
    addr: SocketAddr,
    tls: Option<&TlsAcceptor>,
    deadline: Duration,
) -> io::Result<Conn> {
    let Some(tls) = tls else {
        return Ok(Conn::Plain(
            io,
            Peer {
                addr: Some(addr),
                names: Arc::from(Vec::new()),
            },
        ));
    };
    let stream = tokio::time::timeout(deadline, tls.accept(io))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake took too long"))??;
    let names = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(names_of)
        .unwrap_or_default();
    Ok(Conn::Tls(
        Box::new(stream),
        Peer {
            addr: Some(addr),
            names: Arc::from(names),
        },
    ))
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io, _) => Pin::new(io).poll_read(cx, buf),
            Conn::Tls(io, _) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(io, _) => Pin::new(io).poll_write(cx, b),
            Conn::Tls(io, _) => Pin::new(io.as_mut()).poll_write(cx, b),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(io, _) => Pin::new(io).poll_write_vectored(cx, bufs),
            Conn::Tls(io, _) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(io, _) => io.is_write_vectored(),
            Conn::Tls(io, _) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io, _) => Pin::new(io).poll_flush(cx),
            Conn::Tls(io, _) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io, _) => Pin::new(io).poll_shutdown(cx),
            Conn::Tls(io, _) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer().clone()
    }
}

/// `Issued` is where [`issue`] wrote what it made.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The CA's certificate: what clients trust (`custody --ca`).
    pub ca: PathBuf,
    /// The server's certificate chain (`--tls-cert`).
    pub cert: PathBuf,
    /// The server's key (`--tls-key`), mode 0600.
    pub key: PathBuf,
}

/// `issue` makes `dir/ca.pem` and `dir/ca.key` (a new local CA) unless
/// they exist, then `dir/server.pem` and `dir/server.key` for `hosts`
/// (DNS names or IP addresses) signed by it, and for each of `clients`
/// (a subject alternative name, as the access list binds it),
/// `dir/client-N.pem` and `dir/client-N.key` where N is the name with
/// anything but `A-Za-z0-9.-_` replaced by `_`. Keys are ECDSA P-256,
/// written with mode 0600.
///
/// # Errors
///
/// On I/O failure, or a name a certificate cannot carry.
pub fn issue(dir: &Path, hosts: &[String], clients: &[String]) -> anyhow::Result<Issued> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let (ca_pem, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let ca_key_pair = if ca_pem.exists() && ca_key.exists() {
        let text = std::fs::read_to_string(&ca_key)
            .with_context(|| format!("read {}", ca_key.display()))?;
        KeyPair::from_pem(&text).map_err(|e| anyhow!("{}: {e}", ca_key.display()))?
    } else {
        let key = KeyPair::generate().map_err(|e| anyhow!("CA key: {e}"))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "Custody Ledger local CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params
            .self_signed(&key)
            .map_err(|e| anyhow!("CA certificate: {e}"))?;
        write_secret(&ca_key, &key.serialize_pem())?;
        std::fs::write(&ca_pem, cert.pem())
            .with_context(|| format!("write {}", ca_pem.display()))?;
        key
    };
    let ca_text =
        std::fs::read_to_string(&ca_pem).with_context(|| format!("read {}", ca_pem.display()))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_text, &ca_key_pair)
        .map_err(|e| anyhow!("{}: {e}", ca_pem.display()))?;

    let leaf = |names: &[String], server: bool, stem: &str| -> anyhow::Result<()> {
        let key = KeyPair::generate().map_err(|e| anyhow!("key for {stem}: {e}"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().map(String::as_str).unwrap_or(stem),
        );
        for n in names {
            params.subject_alt_names.push(match n.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) if n.contains("://") => SanType::URI(
                    n.as_str()
                        .try_into()
                        .map_err(|e| anyhow!("{n:?}: not a URI a certificate can carry: {e}"))?,
                ),
                Err(_) => SanType::DnsName(
                    n.as_str()
                        .try_into()
                        .map_err(|e| anyhow!("{n:?}: not a name a certificate can carry: {e}"))?,
                ),
            });
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| anyhow!("certificate for {stem}: {e}"))?;
        let pem = dir.join(format!("{stem}.pem"));
        std::fs::write(&pem, cert.pem()).with_context(|| format!("write {}", pem.display()))?;
        let key_path = dir.join(format!("{stem}.key"));
        let _ = std::fs::remove_file(&key_path);
        write_secret(&key_path, &key.serialize_pem())
    };
    leaf(hosts, true, "server")?;
    for c in clients {
        leaf(std::slice::from_ref(c), false, &client_stem(c))?;
    }
    Ok(Issued {
        ca: ca_pem,
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    })
}

/// `client_stem` is the file stem [`issue`] writes a client's certificate
/// under.
pub fn client_stem(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("client-{safe}")
}

/// `write_secret` writes a new file readable by its owner only (mode
/// 0600): for keys. It refuses to overwrite.
///
/// # Errors
///
/// When the file exists or cannot be written.
pub fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_load_and_carry_their_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let issued = issue(
            dir.path(),
            &["127.0.0.1".into(), "localhost".into()],
            &["spiffe://vendor.example/backup".into(), "lane-1".into()],
        )
        .expect("issue");
        let tls = Tls::load(&TlsArgs {
            tls_cert: Some(issued.cert.clone()),
            tls_key: Some(issued.key.clone()),
            tls_client_ca: Some(issued.ca.clone()),
        })
        .expect("load")
        .expect("TLS on");
        assert!(tls.mutual);
        let client = certificates(
            &dir.path().join(format!(
                "{}.pem",
                client_stem("spiffe://vendor.example/backup")
            )),
            "client",
        )
        .expect("client cert");
        assert_eq!(
            names_of(&client[0]),
            vec!["uri:spiffe://vendor.example/backup"]
        );
        let server = certificates(&issued.cert, "server").expect("server cert");
        // IP addresses are not names a party is bound by.
        assert_eq!(names_of(&server[0]), vec!["dns:localhost"]);
        assert_eq!(typed_name("LocalHost."), "dns:localhost");
        assert_eq!(typed_name("spiffe://a/b"), "uri:spiffe://a/b");
        assert_eq!(typed_name("uri:auditor.example"), "uri:auditor.example");
        // A second issue reuses the CA: the first client still verifies
        // against the same ca.pem.
        let before = std::fs::read(&issued.ca).expect("ca");
        issue(dir.path(), &["localhost".into()], &[]).expect("reissue");
        assert_eq!(std::fs::read(&issued.ca).expect("ca"), before);
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_with_the_flags_named() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let ia = issue(a.path(), &["localhost".into()], &[]).expect("issue a");
        let ib = issue(b.path(), &["localhost".into()], &[]).expect("issue b");
        let err = Tls::load(&TlsArgs {
            tls_cert: Some(ia.cert),
            tls_key: Some(ib.key),
            tls_client_ca: None,
        })
        .err()
        .expect("mismatch refused")
        .to_string();
        assert!(err.contains("--tls-cert and --tls-key"), "{err}");
        let err = Tls::load(&TlsArgs {
            tls_cert: Some(a.path().join("missing.pem")),
            tls_key: Some(ia.key),
            tls_client_ca: None,
        })
        .err()
        .expect("missing refused")
        .to_string();
        assert!(
            err.contains("--tls-cert") && err.contains("missing.pem"),
            "{err}"
        );
    }
}
