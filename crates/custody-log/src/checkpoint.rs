//! Checkpoints: C2SP `tlog-checkpoint` bodies signed as C2SP `signed-note`
//! with Ed25519.

use ed25519_dalek::SigningKey;
use signed_note::{Note, Signer as _, StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

/// `CheckpointError` is why a checkpoint could not be made or verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The key string is not a valid signed-note key.
    #[error("malformed key: {0}")]
    Key(String),
    /// The origin is not a valid key name (empty, spaces or `+`).
    #[error("invalid origin {0:?}: must be non-empty, without spaces or '+'")]
    Origin(String),
    /// The note is not well formed, or not a checkpoint.
    #[error("malformed checkpoint")]
    Malformed,
    /// No valid signature by the pinned log key.
    #[error("checkpoint is not signed by the log key {0}")]
    Unverified(String),
    /// The checkpoint's origin is not the pinned key's.
    #[error("checkpoint origin {got:?} does not match the log key's {want:?}")]
    WrongOrigin {
        /// The pinned key's name.
        want: String,
        /// The checkpoint's origin line.
        got: String,
    },
    /// Signing failed.
    #[error("sign checkpoint: {0}")]
    Sign(String),
}

/// `LogSigner` signs checkpoints for one log origin.
///
/// It holds the log's private key; it deliberately implements neither
/// `Debug` nor `Display`, so the key cannot end up in a log line.
pub struct LogSigner {
    /// The note signer; its name is the log's origin.
    signer: StandardSigner,
    /// The verifier key string published for this key.
    vkey: String,
}

impl LogSigner {
    /// `generate` makes a new key for `origin` and returns the signer with
    /// its private-key string (`PRIVATE+KEY+<origin>+<id>+<base64>`, the Go
    /// `note` format) for storage in a 0600 file.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Origin`] if `origin` is not a valid key name.
    pub fn generate(
        origin: &str,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<(Self, String), CheckpointError> {
        if !signed_note::is_key_name_valid(origin) {
            return Err(CheckpointError::Origin(origin.to_owned()));
        }
        let (skey, _vkey) = signed_note::generate_key(rng, origin);
        let signer = Self::from_key_string(&skey)?;
        Ok((signer, skey))
    }

    /// `from_key_string` loads a signer from its private-key string.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Key`] if the string is not a valid Ed25519 note key.
    pub fn from_key_string(skey: &str) -> Result<Self, CheckpointError> {
        let signer =
            StandardSigner::new(skey.trim()).map_err(|e| CheckpointError::Key(e.to_string()))?;
        let vkey = vkey_from_skey(skey.trim())?;
        Ok(Self { signer, vkey })
    }

    /// `origin` is the log's origin line, which is also the key's name.
    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// `verifier_key` is the public verifier key string,
    /// `<origin>+<keyid>+<base64(0x01 ‖ pubkey)>`.
    pub fn verifier_key(&self) -> &str {
        &self.vkey
    }

    /// `sign` returns the signed note of the checkpoint for a tree of `size`
    /// leaves with root `root`.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Sign`] if signing fails.
    pub fn sign(&self, size: u64, root: &Hash) -> Result<Vec<u8>, CheckpointError> {
        let body = Checkpoint::new(self.origin(), size, *root, "")
            .map_err(|_| CheckpointError::Origin(self.origin().to_owned()))?
            .to_bytes();
        let mut note = Note::new(&body, &[]).map_err(|e| CheckpointError::Sign(e.to_string()))?;
        note.add_sigs(&[&self.signer])
            .map_err(|e| CheckpointError::Sign(e.to_string()))?;
        Ok(note.to_bytes())
    }
}

fn vkey_from_skey(skey: &str) -> Result<String, CheckpointError> {
    // PRIVATE+KEY+<name>+<id>+<base64(alg ‖ seed)>
    use base64::Engine as _;
    let parts: Vec<&str> = skey.splitn(5, '+').collect();
    let [_, _, name, _, key64] = parts.as_slice() else {
        return Err(CheckpointError::Key("want PRIVATE+KEY+name+id+key".into()));
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(key64)
        .map_err(|e| CheckpointError::Key(e.to_string()))?;
    let seed: [u8; 32] = key
        .get(1..)
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| CheckpointError::Key("want a 32-byte Ed25519 seed".into()))?;
    let sk = SigningKey::from_bytes(&seed);
    Ok(signed_note::new_ed25519_verifier_key(
        name,
        &sk.verifying_key(),
    ))
}

/// `VerifiedCheckpoint` is a checkpoint whose log signature checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedCheckpoint {
    /// The origin line.
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
    /// The whole signed note, as received.
    pub note: Vec<u8>,
}

/// `LogVerifier` verifies checkpoints against a pinned log key.
#[derive(Clone)]
pub struct LogVerifier {
    verifier: StandardVerifier,
    vkey: String,
}

impl std::fmt::Debug for LogVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LogVerifier").field(&self.vkey).finish()
    }
}

impl LogVerifier {
    /// `new` parses a verifier key string.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Key`] if it is not a valid Ed25519 verifier key.
    pub fn new(vkey: &str) -> Result<Self, CheckpointError> {
        let vkey = vkey.trim();
        let verifier =
            StandardVerifier::new(vkey).map_err(|e| CheckpointError::Key(e.to_string()))?;
        Ok(Self {
            verifier,
            vkey: vkey.to_owned(),
        })
    }

    /// `origin` is the name of the pinned key.
    pub fn origin(&self) -> &str {
        signed_note::Verifier::name(&self.verifier)
    }

    /// `verify` checks a signed checkpoint note. Signatures by other keys
    /// (witness cosignatures) are allowed and ignored here.
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] if the note is malformed, not signed by the pinned
    /// key, or for another origin.
    pub fn verify(&self, note: &[u8]) -> Result<VerifiedCheckpoint, CheckpointError> {
        let parsed = Note::from_bytes(note).map_err(|_| CheckpointError::Malformed)?;
        let list = VerifierList::new(vec![Box::new(self.verifier.clone())]);
        let (verified, _) = parsed
            .verify(&list)
            .map_err(|_| CheckpointError::Unverified(self.vkey.clone()))?;
        if verified.is_empty() {
            return Err(CheckpointError::Unverified(self.vkey.clone()));
        }
        let cp = Checkpoint::from_bytes(parsed.text()).map_err(|_| CheckpointError::Malformed)?;
        if cp.origin() != self.origin() {
            return Err(CheckpointError::WrongOrigin {
                want: self.origin().to_owned(),
                got: cp.origin().to_owned(),
            });
        }
        Ok(VerifiedCheckpoint {
            origin: cp.origin().to_owned(),
            size: cp.size(),
            root: *cp.hash(),
            note: note.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> LogSigner {
        let mut rng = rand::rngs::OsRng;
        LogSigner::generate("example.org/log", &mut rng).unwrap().0
    }

    #[test]
    fn signed_checkpoint_verifies_and_round_trips() {
        let s = signer();
        let root = Hash([7; 32]);
        let note = s.sign(42, &root).unwrap();
        let v = LogVerifier::new(s.verifier_key()).unwrap();
        let cp = v.verify(&note).unwrap();
        assert_eq!(cp.size, 42);
        assert_eq!(cp.root, root);
        assert_eq!(cp.origin, "example.org/log");
    }

    #[test]
    fn any_flipped_byte_of_a_checkpoint_is_rejected() {
        let s = signer();
        let note = s.sign(42, &Hash([7; 32])).unwrap();
        let v = LogVerifier::new(s.verifier_key()).unwrap();
        for i in 0..note.len() {
            let mut bad = note.clone();
            bad[i] ^= 0x01;
            assert!(v.verify(&bad).is_err(), "flip at byte {i} accepted");
        }
    }

    #[test]
    fn other_log_key_is_rejected() {
        let note = signer().sign(1, &Hash([1; 32])).unwrap();
        let other = signer();
        let v = LogVerifier::new(other.verifier_key()).unwrap();
        assert!(matches!(
            v.verify(&note),
            Err(CheckpointError::Unverified(_))
        ));
    }

    #[test]
    fn key_string_round_trips() {
        let mut rng = rand::rngs::OsRng;
        let (s, skey) = LogSigner::generate("o", &mut rng).unwrap();
        let again = LogSigner::from_key_string(&skey).unwrap();
        assert_eq!(s.verifier_key(), again.verifier_key());
        assert!(!s.verifier_key().contains("PRIVATE"));
    }
}
