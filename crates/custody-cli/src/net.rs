//! Connections to a server, with the caller's token when there is one
//! (`--token`, or `CUSTODY_TOKEN`): gRPC channels that send it as
//! `authorization: Bearer <token>` metadata, and HTTP clients that send it
//! as the `Authorization` header. The token is never printed.
//!
//! `https://` servers are reached over TLS, trusting the system's roots
//! and the CA given with `--ca` (`CUSTODY_CA`), and presenting the client
//! certificate of `--client-cert` and `--client-key`, when given.

use std::sync::OnceLock;

use anyhow::{anyhow, Context as _};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;

/// The token given on the command line or in the environment.
static TOKEN: OnceLock<Option<String>> = OnceLock::new();

/// `set_token` records the token for every connection this process makes.
pub fn set_token(token: Option<String>) {
    let _ = TOKEN.set(token.filter(|t| !t.trim().is_empty()));
}

pub(crate) fn token() -> Option<&'static str> {
    TOKEN.get().and_then(|t| t.as_deref())
}

/// `TlsFiles` is the caller's TLS material, read once.
struct TlsFiles {
    /// The CA to trust, PEM.
    ca: Option<Vec<u8>>,
    /// The client certificate and key, PEM.
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

static TLS: OnceLock<TlsFiles> = OnceLock::new();

/// `set_tls` reads the CA and client certificate every connection this
/// process makes uses.
///
/// # Errors
///
/// When a file cannot be read or holds no PEM block.
pub fn set_tls(
    ca: Option<&std::path::Path>,
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let read = |p: &std::path::Path, flag: &str| -> anyhow::Result<Vec<u8>> {
        let b = std::fs::read(p).with_context(|| format!("{flag} {}", p.display()))?;
        anyhow::ensure!(
            String::from_utf8_lossy(&b).contains("-----BEGIN "),
            "{flag} {}: not a PEM file",
            p.display()
        );
        Ok(b)
    };
    let ca = ca.map(|p| read(p, "--ca")).transpose()?;
    let identity = match (cert, key) {
        (Some(c), Some(k)) => Some((read(c, "--client-cert")?, read(k, "--client-key")?)),
        (None, None) => None,
        _ => anyhow::bail!("--client-cert and --client-key go together"),
    };
    let _ = TLS.set(TlsFiles { ca, identity });
    Ok(())
}

fn tls() -> Option<&'static TlsFiles> {
    TLS.get()
}

/// `Bearer` adds the token to every gRPC request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}

/// `Grpc` is a channel to the server that carries the token.
pub type Grpc = InterceptedService<Channel, Bearer>;

/// `channel` connects to the gRPC server at `server`.
///
/// # Errors
///
/// For a malformed URL or token, or when the server cannot be reached.
pub async fn channel(server: &str) -> anyhow::Result<Grpc> {
    let ch = endpoint(server)?
        .connect()
        .await
        .with_context(|| format!("connect {server}"))?;
    let bearer = match token() {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse()
                .map_err(|_| anyhow!("--token: not a token (printable ASCII only)"))?,
        ),
        None => None,
    };
    Ok(InterceptedService::new(ch, Bearer(bearer)))
}

/// `endpoint` is the gRPC endpoint `server` names, with TLS for an
/// `https://` one.
///
/// # Errors
///
/// For a malformed URL or TLS material.
pub fn endpoint(server: &str) -> anyhow::Result<tonic::transport::Endpoint> {
    let endpoint = Channel::from_shared(server.to_owned())
        .map_err(|e| anyhow!("server url {server:?}: {e}"))?;
    if !server.starts_with("https://") {
        return Ok(endpoint);
    }
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let mut config = ClientTlsConfig::new().with_native_roots();
    if let Some(files) = tls() {
        if let Some(ca) = &files.ca {
            config = config.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &files.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
    }
    endpoint
        .tls_config(config)
        .with_context(|| format!("TLS for {server}"))
}

/// `http_client` is `builder` with the token as a default header, and the
/// CA and client certificate when given.
///
/// # Errors
///
/// For a malformed token, or when the client cannot be built.
pub fn http_client(
    builder: reqwest::blocking::ClientBuilder,
) -> anyhow::Result<reqwest::blocking::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token() {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| anyhow!("--token: not a token (printable ASCII only)"))?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    let mut builder = builder.default_headers(headers);
    if let Some(files) = tls() {
        if let Some(ca) = &files.ca {
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(ca).context("--ca: not a PEM certificate")?,
            );
        }
        if let Some((cert, key)) = &files.identity {
            let mut pem = key.clone();
            pem.extend_from_slice(cert);
            builder =
                builder
                    .identity(reqwest::Identity::from_pem(&pem).context(
                        "--client-cert and --client-key: not a PEM certificate and key",
                    )?);
        }
    }
    Ok(builder.build()?)
}
