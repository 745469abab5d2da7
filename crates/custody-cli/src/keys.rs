//! Key files written by `custody keygen`: `PREFIX.key` (mode 0600) and
//! `PREFIX.pub`, in the text forms of `custody_domain::keyfile`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use custody_domain::keyfile;
use ed25519_dalek::SigningKey;

/// `generate` writes a new key pair to `PREFIX.key` and `PREFIX.pub`.
///
/// # Errors
///
/// If either file exists or cannot be written.
pub fn generate(prefix: &str) -> anyhow::Result<SigningKey> {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    write_secret_file(
        Path::new(&format!("{prefix}.key")),
        &keyfile::format_secret(&key),
    )?;
    let pub_path = format!("{prefix}.pub");
    std::fs::write(&pub_path, keyfile::format_public(&key.verifying_key()))
        .with_context(|| format!("write {pub_path}"))?;
    Ok(key)
}

/// `write_secret_file` writes a new secret key file, readable by its
/// owner only, and syncs it.
///
/// # Errors
///
/// If it exists or cannot be written.
pub fn write_secret_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// `load_secret` reads a `.key` file.
///
/// # Errors
///
/// If it is unreadable or not a secret key file.
pub fn load_secret(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    keyfile::parse_secret(&text).with_context(|| path.display().to_string())
}

/// `parse_public` reads `ed25519:<base64>`.
///
/// # Errors
///
/// If the text is not in that form.
pub fn parse_public(text: &str) -> anyhow::Result<[u8; 32]> {
    Ok(keyfile::parse_public(text)?)
}
