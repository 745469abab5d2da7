//! Text forms of party keys, as `custody keygen` writes them: a public key
//! is `ed25519:<base64>`, a secret key `ed25519-secret:<base64 seed>`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;

/// `KeyFileError` is text that is not a key in the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyFileError(String);

const PUBLIC: &str = "ed25519:";
const SECRET: &str = "ed25519-secret:";

/// `format_public` is the text form of a public key, with a newline.
pub fn format_public(key: &ed25519_dalek::VerifyingKey) -> String {
    format!("{PUBLIC}{}\n", B64.encode(key.to_bytes()))
}

/// `format_secret` is the text form of a secret key, with a newline.
pub fn format_secret(key: &SigningKey) -> String {
    format!("{SECRET}{}\n", B64.encode(key.to_bytes()))
}

fn decode32(text: &str, prefix: &str, what: &str) -> Result<[u8; 32], KeyFileError> {
    let Some(b64) = text.trim().strip_prefix(prefix) else {
        return Err(KeyFileError(format!(
            "not a {what}: want \"{prefix}<base64>\" as written by `custody keygen`"
        )));
    };
    let raw = B64
        .decode(b64)
        .map_err(|e| KeyFileError(format!("{what}: bad base64: {e}")))?;
    raw.as_slice()
        .try_into()
        .map_err(|_| KeyFileError(format!("{what} is {} bytes; want 32", raw.len())))
}

/// `parse_public` reads the text form of a public key.
///
/// # Errors
///
/// [`KeyFileError`] if it is not one.
pub fn parse_public(text: &str) -> Result<[u8; 32], KeyFileError> {
    decode32(text, PUBLIC, "public key")
}

/// `parse_secret` reads the text form of a secret key.
///
/// # Errors
///
/// [`KeyFileError`] if it is not one.
pub fn parse_secret(text: &str) -> Result<SigningKey, KeyFileError> {
    decode32(text, SECRET, "secret key").map(|seed| SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_are_not_confused() {
        let k = SigningKey::generate(&mut rand_core::OsRng);
        let pubtext = format_public(&k.verifying_key());
        let sectext = format_secret(&k);
        assert_eq!(
            parse_public(&pubtext).unwrap(),
            k.verifying_key().to_bytes()
        );
        assert_eq!(parse_secret(&sectext).unwrap().to_bytes(), k.to_bytes());
        assert!(parse_public(&sectext).is_err());
        assert!(parse_secret(&pubtext).is_err());
        assert!(parse_public("ed25519:AAAA").is_err());
    }
}
