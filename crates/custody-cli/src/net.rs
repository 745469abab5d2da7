//! Connections to a server, with the caller's token when there is one
//! (`--token`, or `CUSTODY_TOKEN`): gRPC channels that send it as
//! `authorization: Bearer <token>` metadata, and HTTP clients that send it
//! as the `Authorization` header. The token is never printed.

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

fn token() -> Option<&'static str> {
    TOKEN.get().and_then(|t| t.as_deref())
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
    let ch = Channel::from_shared(server.to_owned())
        .map_err(|e| anyhow!("server url {server:?}: {e}"))?
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

/// `http_client` is `builder` with the token as a default header.
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
    Ok(builder.default_headers(headers).build()?)
}
