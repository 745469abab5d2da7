//! The log's side of `add-checkpoint`: ask one witness to cosign.

use custody_log::{add_cosignatures, CosignatureError, CosignatureSigner, Hash};

use crate::witness::{clip, parse_size, AddCheckpointRequest, AddError};

/// `MAX_RESPONSE_BYTES` bounds what the client reads of a witness's
/// response.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// `ClientError` is why a witness did not cosign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// 409: the witness's latest cosigned size is not the old size sent.
    /// Retry with this size and a consistency proof from it.
    #[error("witness has cosigned size {0}; retry from it")]
    Conflict(u64),
    /// The witness refused with another status; `body` is its explanation,
    /// clipped.
    #[error("witness refused with HTTP {status}: {body}")]
    Refused {
        /// The HTTP status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The request could not be made: more than 63 proof hashes.
    #[error("{0}")]
    Request(String),
    /// The witness answered 200 with something other than signature lines
    /// for this note.
    #[error("witness answered with malformed cosignatures: {0}")]
    Malformed(String),
    /// The connection failed or timed out.
    #[error("witness request failed: {0}")]
    Http(#[from] reqwest::Error),
}

/// `add_checkpoint` asks the witness at submission prefix `prefix` (the
/// request goes to `<prefix>/add-checkpoint`) to cosign `note`, proving it
/// consistent with the witness's latest cosigned size `old_size` by
/// `proof` (empty when `old_size` is 0). It returns the witness's signature
/// lines, ready for [`custody_log::add_cosignatures`]; they are checked to
/// be well-formed, not verified: that needs the witness's key
/// ([`custody_log::verify_witnessed`]).
///
/// Timeouts are the `http` client's. The workspace builds `reqwest`
/// without TLS, so `prefix` must be an `http://` URL (a local proxy, or an
/// [https-bastion](https://c2sp.org/https-bastion) tunnel) until a TLS
/// feature is enabled.
///
/// # Errors
///
/// [`ClientError::Conflict`] with the witness's size on 409, so the caller
/// can retry with a proof from it; [`ClientError::Refused`] for other
/// refusals; [`ClientError::Malformed`] for a 200 that is not signature
/// lines; [`ClientError::Http`] if the request fails.
pub async fn add_checkpoint(
    http: &reqwest::Client,
    prefix: &str,
    old_size: u64,
    proof: &[Hash],
    note: &[u8],
) -> Result<Vec<u8>, ClientError> {
    let body = AddCheckpointRequest {
        old_size,
        proof: proof.to_vec(),
        note: note.to_vec(),
    }
    .encode()
    .map_err(|e: AddError| ClientError::Request(e.to_string()))?;
    let url = format!("{}/add-checkpoint", prefix.trim_end_matches('/'));
    let mut resp = http.post(url).body(body).send().await?;
    let status = resp.status().as_u16();
    let mut got = Vec::new();
    let mut clipped = false;
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_RESPONSE_BYTES - got.len();
        got.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() > room {
            clipped = true;
            break;
        }
    }
    match status {
        200 if clipped => Err(ClientError::Malformed(format!(
            "response larger than {MAX_RESPONSE_BYTES} bytes"
        ))),
        200 => {
            if got.is_empty() {
                return Err(ClientError::Malformed("empty response".into()));
            }
            add_cosignatures(note, &got).map_err(|e| match e {
                CosignatureError::Malformed(why) => ClientError::Malformed(why.into()),
                other => ClientError::Malformed(other.to_string()),
            })?;
            Ok(got)
        }
        409 => match parse_size_body(&got) {
            Some(size) => Err(ClientError::Conflict(size)),
            None => Err(refused(status, &got)),
        },
        _ => Err(refused(status, &got)),
    }
}

fn refused(status: u16, body: &[u8]) -> ClientError {
    ClientError::Refused {
        status,
        body: clip(String::from_utf8_lossy(body).trim_end()),
    }
}

/// `parse_size_body` reads a `text/x.tlog.size` body: a decimal and a
/// newline.
fn parse_size_body(body: &[u8]) -> Option<u64> {
    parse_size(std::str::from_utf8(body).ok()?.strip_suffix('\n')?)
}

/// `witness_key_for` is the verifier key of the witness whose private-key
/// string is `secret_key`: what a witness operator gives log operators and
/// their clients to configure, with no URL attached.
///
/// # Errors
///
/// [`CosignatureError`] if `secret_key` is not an Ed25519 cosignature key.
pub fn witness_key_for(secret_key: &str) -> Result<String, CosignatureError> {
    Ok(CosignatureSigner::from_key_string(secret_key)?
        .verifier_key()
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_bodies() {
        assert_eq!(parse_size_body(b"0\n"), Some(0));
        assert_eq!(parse_size_body(b"42\n"), Some(42));
        for bad in [&b"42"[..], b"042\n", b"\n", b"-1\n", b"4 2\n", b"1\n\n"] {
            assert_eq!(parse_size_body(bad), None, "{bad:?}");
        }
    }
}
