//! Key files written by `custody keygen`: `PREFIX.key` holds
//! `ed25519-secret:<base64 seed>` (mode 0600), `PREFIX.pub` holds
//! `ed25519:<base64 public key>`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;

/// `generate` writes a new key pair to `PREFIX.key` and `PREFIX.pub`.
///
/// # Errors
///
/// If either file exists or cannot be written.
pub fn generate(prefix: &str) -> anyhow::Result<SigningKey> {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let secret = format!("ed25519-secret:{}\n", B64.encode(key.to_bytes()));
    let public = format!("ed25519:{}\n", B64.encode(key.verifying_key().to_bytes()));
    let key_path = format!("{prefix}.key");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .with_context(|| format!("create {key_path}"))?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    let pub_path = format!("{prefix}.pub");
    std::fs::write(&pub_path, public).with_context(|| format!("write {pub_path}"))?;
    Ok(key)
}

/// `load_secret` reads a `.key` file.
///
/// # Errors
///
/// If it is unreadable or not a key file.
pub fn load_secret(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let Some(b64) = text.trim().strip_prefix("ed25519-secret:") else {
        bail!("{} is not a custody secret key file", path.display());
    };
    let raw = B64
        .decode(b64)
        .map_err(|e| anyhow!("{}: bad base64: {e}", path.display()))?;
    let seed: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| anyhow!("{}: want a 32-byte seed", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// `parse_public` reads `ed25519:<base64>`.
///
/// # Errors
///
/// If the text is not in that form.
pub fn parse_public(text: &str) -> anyhow::Result<[u8; 32]> {
    let Some(b64) = text.trim().strip_prefix("ed25519:") else {
        bail!("want \"ed25519:<base64>\" as written by `custody keygen`");
    };
    let raw = B64.decode(b64).map_err(|e| anyhow!("bad base64: {e}"))?;
    raw.as_slice()
        .try_into()
        .map_err(|_| anyhow!("public key is {} bytes; want 32", raw.len()))
}
