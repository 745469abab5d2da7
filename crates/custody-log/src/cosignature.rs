//! Witness cosignatures: C2SP `tlog-cosignature` v1 (Ed25519, signature
//! type 0x04) over C2SP `tlog-checkpoint` notes, and the k-of-n policy a
//! client applies to them.
//!
//! A cosignature is one more C2SP `signed-note` signature line beside the
//! log's own. Its signature is `key ID ‖ u64 big-endian time ‖ Ed25519
//! signature`, and what it signs is not the note text itself but
//!
//! ```text
//! cosignature/v1
//! time <POSIX seconds>
//! <the whole checkpoint body, with its final newline>
//! ```
//!
//! so a cosignature can never be mistaken for a log signature, and it says
//! when the witness saw the checkpoint.
//!
//! ```
//! use custody_log::{add_cosignatures, verify_witnessed, CosignatureSigner,
//!     CosignatureVerifier, Hash, LogSigner, LogVerifier};
//!
//! let mut rng = rand_core::OsRng;
//! let (log, _) = LogSigner::generate("example.org/log", &mut rng).unwrap();
//! let (witness, _) = CosignatureSigner::generate("example.org/w1", &mut rng).unwrap();
//! let note = log.sign(7, &Hash([1; 32])).unwrap();
//!
//! let body = custody_log::note_text(&note).unwrap();
//! let line = witness.cosign(&body, 1_700_000_000).unwrap();
//! let cosigned = add_cosignatures(&note, &line).unwrap();
//!
//! let log = LogVerifier::new(log.verifier_key()).unwrap();
//! let w1 = CosignatureVerifier::new(witness.verifier_key()).unwrap();
//! let ok = verify_witnessed(&cosigned, &log, &[w1.clone()], 1).unwrap();
//! assert_eq!(ok.checkpoint.size, 7);
//! assert_eq!(ok.witnesses[0].name, "example.org/w1");
//! assert!(verify_witnessed(&note, &log, &[w1], 1).is_err());
//! ```

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use signed_note::{Note, Signature};

use crate::checkpoint::{CheckpointError, LogVerifier, VerifiedCheckpoint};

/// `COSIGNATURE_ALG` is the signed-note signature type of Ed25519
/// cosignatures (C2SP `signed-note`, "Signature types": 0x04).
pub const COSIGNATURE_ALG: u8 = 0x04;

/// `MAX_COSIGNATURE_TIME` is the largest time a cosignature may carry,
/// 2^63 − 1 (C2SP `tlog-cosignature`: "It MUST NOT exceed 2^63 - 1").
pub const MAX_COSIGNATURE_TIME: u64 = i64::MAX as u64;

/// The header line of the signed message, which separates cosignatures from
/// every other use of the key.
const HEADER: &[u8] = b"cosignature/v1\n";

/// Length of a cosignature after the key ID: u64 time and the signature.
const TIMESTAMPED_SIGNATURE_LEN: usize = 8 + ed25519_dalek::SIGNATURE_LENGTH;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `CosignatureError` is why a cosignature could not be made or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CosignatureError {
    /// The key string is not a valid Ed25519 cosignature key.
    #[error("malformed cosignature key: {0}")]
    Key(String),
    /// The witness name is not a valid key name (empty, spaces or `+`).
    #[error("invalid witness name {0:?}: must be non-empty, without spaces or '+'")]
    Name(String),
    /// The note, its text or a signature line is not well formed.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// The time is beyond what a cosignature can carry.
    #[error("cosignature time {0} exceeds 2^63-1")]
    Time(u64),
    /// No signature line of this witness's key verifies over the note.
    #[error("no valid cosignature by {0}")]
    Unverified(String),
}

/// `note_text` returns the text of a signed note: the checkpoint body that
/// the log signed and that cosignatures cover, with its final newline and
/// without the blank line and signature lines.
///
/// # Errors
///
/// [`CosignatureError::Malformed`] if `note` is not a well-formed signed note.
pub fn note_text(note: &[u8]) -> Result<Vec<u8>, CosignatureError> {
    let parsed = Note::from_bytes(note).map_err(|_| CosignatureError::Malformed("signed note"))?;
    Ok(parsed.text().to_vec())
}

/// `key_id` is the key ID of an Ed25519 cosignature key:
/// `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]`, read big-endian.
fn key_id(name: &str, public: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([COSIGNATURE_ALG]);
    h.update(public.as_bytes());
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// `signed_message` is what an Ed25519 cosignature signs.
fn signed_message(body: &[u8], time: u64) -> Vec<u8> {
    let mut msg = Vec::with_capacity(HEADER.len() + 32 + body.len());
    msg.extend_from_slice(HEADER);
    msg.extend_from_slice(format!("time {time}\n").as_bytes());
    msg.extend_from_slice(body);
    msg
}

/// `parse_key_hex` reads the 8-hex-digit key ID of a key string.
fn parse_key_hex(id: &str) -> Result<u32, CosignatureError> {
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CosignatureError::Key(
            "want an 8-digit hexadecimal key ID".into(),
        ));
    }
    u32::from_str_radix(id, 16).map_err(|e| CosignatureError::Key(e.to_string()))
}

/// `parse_key_material` decodes `base64(0x04 ‖ 32 bytes)`.
fn parse_key_material(key64: &str) -> Result<[u8; 32], CosignatureError> {
    let key = B64
        .decode(key64)
        .map_err(|e| CosignatureError::Key(format!("key is not base64: {e}")))?;
    match key.split_first() {
        Some((&COSIGNATURE_ALG, rest)) => rest
            .try_into()
            .map_err(|_| CosignatureError::Key("want a 32-byte Ed25519 key".into())),
        Some((alg, _)) => Err(CosignatureError::Key(format!(
            "signature type 0x{alg:02x}, want 0x04 (Ed25519 cosignature)"
        ))),
        None => Err(CosignatureError::Key("empty key".into())),
    }
}

/// `CosignatureSigner` makes Ed25519 cosignatures for one witness.
///
/// It holds the witness's private key; it deliberately implements neither
/// `Debug` nor `Display`, so the key cannot end up in a log line.
pub struct CosignatureSigner {
    name: String,
    key: SigningKey,
    id: u32,
    vkey: String,
}

impl CosignatureSigner {
    /// `generate` makes a new key for the witness `name` and returns the
    /// signer with its private-key string
    /// (`PRIVATE+KEY+<name>+<id>+<base64(0x04 ‖ seed)>`, the shape of the log
    /// key with the cosignature type byte) for storage in a 0600 file.
    ///
    /// # Errors
    ///
    /// [`CosignatureError::Name`] if `name` is not a valid key name.
    pub fn generate(
        name: &str,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<(Self, String), CosignatureError> {
        let signer = Self::from_parts(name, SigningKey::generate(rng))?;
        let mut material = vec![COSIGNATURE_ALG];
        material.extend_from_slice(&signer.key.to_bytes());
        let skey = format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            signer.name,
            signer.id,
            B64.encode(material)
        );
        Ok((signer, skey))
    }

    /// `from_key_string` loads a signer from its private-key string.
    ///
    /// # Errors
    ///
    /// [`CosignatureError::Key`] if the string is not an Ed25519 cosignature
    /// key (type 0x04), or its key ID does not match its key and name;
    /// [`CosignatureError::Name`] if the name is invalid.
    pub fn from_key_string(skey: &str) -> Result<Self, CosignatureError> {
        let parts: Vec<&str> = skey.trim().splitn(5, '+').collect();
        let [private, key, name, id, key64] = parts.as_slice() else {
            return Err(CosignatureError::Key("want PRIVATE+KEY+name+id+key".into()));
        };
        if *private != "PRIVATE" || *key != "KEY" {
            return Err(CosignatureError::Key("want PRIVATE+KEY+name+id+key".into()));
        }
        let id = parse_key_hex(id)?;
        let seed = parse_key_material(key64)?;
        let signer = Self::from_parts(name, SigningKey::from_bytes(&seed))?;
        if signer.id != id {
            return Err(CosignatureError::Key(format!(
                "key ID {id:08x} does not match the key (want {:08x})",
                signer.id
            )));
        }
        Ok(signer)
    }

    fn from_parts(name: &str, key: SigningKey) -> Result<Self, CosignatureError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(CosignatureError::Name(name.to_owned()));
        }
        let public = key.verifying_key();
        let id = key_id(name, &public);
        let mut material = vec![COSIGNATURE_ALG];
        material.extend_from_slice(public.as_bytes());
        let vkey = format!("{name}+{id:08x}+{}", B64.encode(material));
        Ok(Self {
            name: name.to_owned(),
            key,
            id,
            vkey,
        })
    }

    /// `name` is the witness's key name, which its signature lines carry.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `key_id` is the key ID,
    /// `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]` read big-endian.
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// `verifier_key` is the public verifier key string,
    /// `<name>+<keyid>+<base64(0x04 ‖ pubkey)>`.
    pub fn verifier_key(&self) -> &str {
        &self.vkey
    }

    /// `cosign` returns the signature line (`— <name> <base64>\n`) of a
    /// cosignature at `time` (POSIX seconds) over `checkpoint_body`, the note
    /// text of a checkpoint including its final newline (see [`note_text`]).
    ///
    /// It signs whatever body it is given: checking that the checkpoint is
    /// the log's and consistent with what the witness saw before is the
    /// caller's job.
    ///
    /// # Errors
    ///
    /// [`CosignatureError::Time`] if `time` exceeds 2^63 − 1;
    /// [`CosignatureError::Malformed`] if the body is not a valid note text
    /// (UTF-8 ending in a newline, no control characters but newline).
    pub fn cosign(&self, checkpoint_body: &[u8], time: u64) -> Result<Vec<u8>, CosignatureError> {
        if time > MAX_COSIGNATURE_TIME {
            return Err(CosignatureError::Time(time));
        }
        Note::new(checkpoint_body, &[])
            .map_err(|_| CosignatureError::Malformed("checkpoint body is not a note text"))?;
        let sig = self.key.sign(&signed_message(checkpoint_body, time));
        let mut bytes = Vec::with_capacity(4 + TIMESTAMPED_SIGNATURE_LEN);
        bytes.extend_from_slice(&self.id.to_be_bytes());
        bytes.extend_from_slice(&time.to_be_bytes());
        bytes.extend_from_slice(&sig.to_bytes());
        Ok(format!("— {} {}\n", self.name, B64.encode(bytes)).into_bytes())
    }
}

/// `CosignatureVerifier` checks the Ed25519 cosignatures of one witness,
/// pinned by its verifier key.
#[derive(Clone)]
pub struct CosignatureVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
    vkey: String,
}

impl std::fmt::Debug for CosignatureVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CosignatureVerifier")
            .field(&self.vkey)
            .finish()
    }
}

impl CosignatureVerifier {
    /// `new` parses a witness verifier key string,
    /// `<name>+<keyid>+<base64(0x04 ‖ pubkey)>`.
    ///
    /// # Errors
    ///
    /// [`CosignatureError::Key`] if it is not an Ed25519 cosignature key or
    /// its key ID does not match; [`CosignatureError::Name`] if the name is
    /// invalid.
    pub fn new(vkey: &str) -> Result<Self, CosignatureError> {
        let vkey = vkey.trim();
        let parts: Vec<&str> = vkey.splitn(3, '+').collect();
        let [name, id, key64] = parts.as_slice() else {
            return Err(CosignatureError::Key("want name+id+key".into()));
        };
        if !signed_note::is_key_name_valid(name) {
            return Err(CosignatureError::Name((*name).to_owned()));
        }
        let id = parse_key_hex(id)?;
        let public = parse_key_material(key64)?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| CosignatureError::Key("not an Ed25519 public key".into()))?;
        let want = key_id(name, &key);
        if id != want {
            return Err(CosignatureError::Key(format!(
                "key ID {id:08x} does not match the key (want {want:08x})"
            )));
        }
        Ok(Self {
            name: (*name).to_owned(),
            id,
            key,
            vkey: vkey.to_owned(),
        })
    }

    /// `name` is the witness's key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `key_id` is the key ID that this witness's signature lines carry.
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// `verifier_key` is the verifier key string this was made from.
    pub fn verifier_key(&self) -> &str {
        &self.vkey
    }

    /// `verify` checks this witness's cosignature on a signed note and
    /// returns the time it carries (the latest, if several lines verify).
    ///
    /// Only lines with this witness's name *and* key ID are considered;
    /// every other line, the log's included, is ignored. It does not check
    /// the log's signature: see [`verify_witnessed`].
    ///
    /// # Errors
    ///
    /// [`CosignatureError::Malformed`] if the note is not a well-formed
    /// signed note; [`CosignatureError::Unverified`] if no line of this key
    /// verifies (none present, a bad signature, a time beyond 2^63 − 1, or a
    /// cosignature made over another checkpoint).
    pub fn verify(&self, note: &[u8]) -> Result<u64, CosignatureError> {
        let (parsed, sigs) = parse_note(note)?;
        self.verify_parsed(&parsed, &sigs)
            .ok_or_else(|| CosignatureError::Unverified(self.vkey.clone()))
    }

    /// `own_line` is, of the signature `lines` a witness answered for
    /// `note`, the one line that is this witness's cosignature of `note`
    /// and verifies, ending in a newline; every other line (another name,
    /// another key, another checkpoint, the log's own) is dropped. `None`
    /// if there is no such line.
    pub fn own_line(&self, note: &[u8], lines: &[u8]) -> Option<Vec<u8>> {
        let (parsed, _) = parse_note(note).ok()?;
        lines
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .find(|line| {
                Signature::from_bytes(line).is_ok_and(|sig| {
                    sig.name() == self.name
                        && sig.id() == self.id
                        && self.verify_one(parsed.text(), sig.signature()).is_some()
                })
            })
            .map(|line| {
                let mut l = line.to_vec();
                l.push(b'\n');
                l
            })
    }

    fn verify_parsed(&self, note: &Note, sigs: &[Signature]) -> Option<u64> {
        let mut latest = None;
        for sig in sigs {
            if sig.name() != self.name || sig.id() != self.id {
                continue;
            }
            if let Some(time) = self.verify_one(note.text(), sig.signature()) {
                latest = latest.max(Some(time));
            }
        }
        latest
    }

    /// `verify_one` checks one timestamped signature (without the key ID)
    /// over `body` and returns its time.
    fn verify_one(&self, body: &[u8], sig: &[u8]) -> Option<u64> {
        if sig.len() != TIMESTAMPED_SIGNATURE_LEN {
            return None;
        }
        let (time, sig) = sig.split_at(8);
        let time = u64::from_be_bytes(time.try_into().ok()?);
        if time > MAX_COSIGNATURE_TIME {
            return None;
        }
        let sig = ed25519_dalek::Signature::from_slice(sig).ok()?;
        self.key
            .verify_strict(&signed_message(body, time), &sig)
            .ok()
            .map(|()| time)
    }
}

/// `parse_note` parses a signed note into its text and signature lines.
///
/// `signed_note::Note` checks the whole note but keeps its lines private,
/// so after it has accepted the note the lines are read from the bytes the
/// same way it read them: everything after the last blank line.
fn parse_note(note: &[u8]) -> Result<(Note, Vec<Signature>), CosignatureError> {
    let parsed = Note::from_bytes(note).map_err(|_| CosignatureError::Malformed("signed note"))?;
    let sigs = note
        .windows(2)
        .rposition(|w| w == b"\n\n")
        .and_then(|at| note.get(at + 2..))
        .ok_or(CosignatureError::Malformed("signed note"))?;
    let sigs = sigs
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            Signature::from_bytes(l).map_err(|_| CosignatureError::Malformed("signature line"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((parsed, sigs))
}

/// `add_cosignatures` returns `note` with the signature lines `lines` (as
/// returned by [`CosignatureSigner::cosign`] or a witness's
/// `add-checkpoint`) added after its own. A line with the same name and key
/// ID as one already present replaces it. The lines are not verified here.
///
/// # Errors
///
/// [`CosignatureError::Malformed`] if the note or a line is malformed, or
/// the result would exceed the note limits of `signed-note` (100 lines).
pub fn add_cosignatures(note: &[u8], lines: &[u8]) -> Result<Vec<u8>, CosignatureError> {
    let (parsed, mut sigs) = parse_note(note)?;
    if !lines.is_empty() && !lines.ends_with(b"\n") {
        return Err(CosignatureError::Malformed(
            "signature lines must end in a newline",
        ));
    }
    let mut added = Vec::new();
    for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let sig = Signature::from_bytes(line)
            .map_err(|_| CosignatureError::Malformed("signature line"))?;
        added.retain(|s: &Signature| s.name() != sig.name() || s.id() != sig.id());
        added.push(sig);
    }
    // A line already in the note with the same name and key is replaced
    // only by a cosignature (a witness's newer one); the log's own
    // signature, the first line, is never replaced.
    let log_line = sigs.first().map(|s| (s.name().to_owned(), s.id()));
    if let Some((name, id)) = &log_line {
        if added.iter().any(|a| a.name() == name && a.id() == *id) {
            return Err(CosignatureError::Malformed(
                "a line in the name and key of the note's first signature, the log's",
            ));
        }
    }
    sigs.retain(|s| {
        !added
            .iter()
            .any(|a| a.name() == s.name() && a.id() == s.id())
    });
    sigs.extend(added);
    let out = Note::new(parsed.text(), &sigs)
        .map_err(|_| CosignatureError::Malformed("signed note"))?
        .to_bytes();
    // Re-parse, so a note that readers would refuse (too many lines, too
    // large) is refused here rather than published.
    Note::from_bytes(&out).map_err(|_| CosignatureError::Malformed("note too large"))?;
    Ok(out)
}

/// `Cosigned` is one witness's verified cosignature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The witness's name.
    pub name: String,
    /// The time its cosignature carries, POSIX seconds.
    pub time: u64,
}

/// `Witnessed` is a checkpoint whose log signature and enough witness
/// cosignatures checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct Witnessed {
    /// The checkpoint, verified against the log key.
    pub checkpoint: VerifiedCheckpoint,
    /// The configured witnesses whose cosignature verified, in the order
    /// they were configured.
    pub witnesses: Vec<Cosigned>,
}

/// `WitnessPolicyError` is why a checkpoint is not accepted as witnessed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessPolicyError {
    /// The note is not a checkpoint validly signed by the log.
    #[error(transparent)]
    Log(#[from] CheckpointError),
    /// Fewer configured witnesses cosigned than the threshold requires.
    #[error(
        "checkpoint cosigned by {} of {} configured witnesses, need {threshold}; \
         cosigned: {cosigned:?}; not cosigned: {missing:?}",
        cosigned.len(), cosigned.len() + missing.len()
    )]
    BelowThreshold {
        /// How many distinct witnesses must cosign.
        threshold: usize,
        /// The witnesses whose cosignature verified.
        cosigned: Vec<String>,
        /// The configured witnesses with no valid cosignature.
        missing: Vec<String>,
    },
}

/// `verify_witnessed` checks that `note` is a checkpoint signed by the log
/// and cosigned by at least `threshold` distinct witnesses of `witnesses`.
///
/// Signature lines of unknown keys are ignored (C2SP `signed-note`). A
/// line naming a configured witness that does not verify (a bad signature,
/// or one over another checkpoint) counts as that witness not having
/// cosigned; it does not fail the whole note. Witnesses are counted by
/// name, so a witness configured twice counts once.
///
/// # Errors
///
/// [`WitnessPolicyError::Log`] if the log's signature does not verify;
/// [`WitnessPolicyError::BelowThreshold`], naming who did and did not
/// cosign, if too few witnesses cosigned.
pub fn verify_witnessed(
    note: &[u8],
    log: &LogVerifier,
    witnesses: &[CosignatureVerifier],
    threshold: usize,
) -> Result<Witnessed, WitnessPolicyError> {
    let checkpoint = log.verify(note)?;
    // `log.verify` parsed the same bytes, so this cannot fail; map it anyway.
    let (parsed, sigs) = parse_note(note).map_err(|_| CheckpointError::Malformed)?;
    let mut cosigned: Vec<Cosigned> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for w in witnesses {
        if cosigned.iter().any(|c| c.name == w.name) {
            continue;
        }
        match w.verify_parsed(&parsed, &sigs) {
            Some(time) => {
                missing.retain(|m| *m != w.name);
                cosigned.push(Cosigned {
                    name: w.name.clone(),
                    time,
                });
            }
            None if !missing.contains(&w.name) => missing.push(w.name.clone()),
            None => {}
        }
    }
    if cosigned.len() < threshold {
        return Err(WitnessPolicyError::BelowThreshold {
            threshold,
            cosigned: cosigned.into_iter().map(|c| c.name).collect(),
            missing,
        });
    }
    Ok(Witnessed {
        checkpoint,
        witnesses: cosigned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogSigner;
    use tlog_tiles::Hash;

    /// RFC 8032 §7.1 test 1: the secret key (seed) and its public key.
    const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

    fn rfc8032_key_string(name: &str) -> String {
        let seed: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&RFC8032_SEED[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let signer =
            CosignatureSigner::from_parts(name, SigningKey::from_bytes(&seed.try_into().unwrap()))
                .unwrap();
        let mut material = vec![COSIGNATURE_ALG];
        material.extend_from_slice(&signer.key.to_bytes());
        format!(
            "PRIVATE+KEY+{name}+{:08x}+{}",
            signer.id,
            B64.encode(material)
        )
    }

    fn log() -> LogSigner {
        LogSigner::generate("example.org/log", &mut rand::rngs::OsRng)
            .unwrap()
            .0
    }

    fn witness(name: &str) -> CosignatureSigner {
        CosignatureSigner::generate(name, &mut rand::rngs::OsRng)
            .unwrap()
            .0
    }

    fn verifier(w: &CosignatureSigner) -> CosignatureVerifier {
        CosignatureVerifier::new(w.verifier_key()).unwrap()
    }

    fn cosign_note(note: &[u8], witnesses: &[&CosignatureSigner], time: u64) -> Vec<u8> {
        let body = note_text(note).unwrap();
        let mut lines = Vec::new();
        for w in witnesses {
            lines.extend(w.cosign(&body, time).unwrap());
        }
        add_cosignatures(note, &lines).unwrap()
    }

    /// The key ID, verifier key and a whole cosignature line, checked
    /// against values computed independently with Python's hashlib and
    /// `cryptography` (RFC 8032 test 1 key; Ed25519 is deterministic):
    ///
    /// ```text
    /// python3 -c "
    /// import hashlib, base64, struct
    /// from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    /// seed = bytes.fromhex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')
    /// pub = bytes.fromhex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')
    /// name = b'witness.example/w1'
    /// kid = hashlib.sha256(name + b'\n' + b'\x04' + pub).digest()[:4]
    /// print(kid.hex())
    /// print(name.decode() + '+' + kid.hex() + '+' + base64.b64encode(b'\x04' + pub).decode())
    /// body = b'example.com/log\n5\n' + base64.b64encode(bytes([7] * 32)) + b'\n'
    /// t = 1679315147
    /// sig = Ed25519PrivateKey.from_private_bytes(seed).sign(b'cosignature/v1\ntime %d\n' % t + body)
    /// print('— witness.example/w1 ' + base64.b64encode(kid + struct.pack('>Q', t) + sig).decode())
    /// "
    /// ```
    #[test]
    fn key_id_vkey_and_cosignature_match_an_independent_computation() {
        let s =
            CosignatureSigner::from_key_string(&rfc8032_key_string("witness.example/w1")).unwrap();
        assert_eq!(s.key_id(), 0xeb76_2cc2);
        assert_eq!(
            s.verifier_key(),
            "witness.example/w1+eb762cc2+BNdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea"
        );
        let body = b"example.com/log\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n";
        let line = s.cosign(body, 1_679_315_147).unwrap();
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "— witness.example/w1 63YswgAAAABkGFDLYRvPGNsuNAVCCT2cn4u7MsfmWdYmyJbq/VOrfv0+P43pJujujUlHQXULj6iWUygxODJ5wLRF+TMCm8gfsqcdAw==\n"
        );
    }

    #[test]
    fn cosignature_round_trips() {
        let (w, skey) =
            CosignatureSigner::generate("example.org/w1", &mut rand::rngs::OsRng).unwrap();
        let again = CosignatureSigner::from_key_string(&skey).unwrap();
        assert_eq!(w.verifier_key(), again.verifier_key());
        assert!(!w.verifier_key().contains("PRIVATE"));
        assert!(skey.starts_with("PRIVATE+KEY+example.org/w1+"));

        let l = log();
        let note = cosign_note(&l.sign(9, &Hash([3; 32])).unwrap(), &[&again], 1234);
        assert_eq!(verifier(&w).verify(&note).unwrap(), 1234);
        let lv = LogVerifier::new(l.verifier_key()).unwrap();
        let ok = verify_witnessed(&note, &lv, &[verifier(&w)], 1).unwrap();
        assert_eq!(ok.checkpoint.size, 9);
        assert_eq!(ok.checkpoint.note, note);
        assert_eq!(
            ok.witnesses,
            vec![Cosigned {
                name: "example.org/w1".into(),
                time: 1234
            }]
        );
        // The log's own verifier still accepts the cosigned note.
        assert_eq!(lv.verify(&note).unwrap().root, Hash([3; 32]));
    }

    #[test]
    fn another_key_does_not_verify() {
        let w = witness("example.org/w1");
        let same_name = witness("example.org/w1");
        let note = cosign_note(&log().sign(1, &Hash([1; 32])).unwrap(), &[&w], 1);
        assert!(matches!(
            verifier(&same_name).verify(&note),
            Err(CosignatureError::Unverified(_))
        ));
        assert!(verifier(&witness("example.org/w2")).verify(&note).is_err());
    }

    #[test]
    fn every_flipped_byte_of_the_body_is_rejected() {
        let l = log();
        let w = witness("example.org/w1");
        let note = cosign_note(&l.sign(42, &Hash([7; 32])).unwrap(), &[&w], 99);
        let lv = LogVerifier::new(l.verifier_key()).unwrap();
        let wv = verifier(&w);
        let body_len = note_text(&note).unwrap().len();
        for i in 0..body_len {
            let mut bad = note.clone();
            bad[i] ^= 0x01;
            assert!(wv.verify(&bad).is_err(), "flip at byte {i} accepted");
            assert!(
                verify_witnessed(&bad, &lv, std::slice::from_ref(&wv), 1).is_err(),
                "flip at byte {i} accepted"
            );
        }
        // And of the cosignature's time or signature (base64 characters).
        let start = body_len + 1;
        let line_at = start + note[start..].iter().position(|&b| b == b'\n').unwrap() + 1;
        let b64_at = line_at + "— example.org/w1 ".len();
        for i in b64_at + 6..note.len() - 3 {
            let mut bad = note.clone();
            bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
            assert!(wv.verify(&bad).is_err(), "change at byte {i} accepted");
        }
    }

    #[test]
    fn cosignature_over_another_checkpoint_is_rejected() {
        let l = log();
        let w = witness("example.org/w1");
        let a = l.sign(10, &Hash([1; 32])).unwrap();
        let b = l.sign(11, &Hash([2; 32])).unwrap();
        let line = w.cosign(&note_text(&a).unwrap(), 5).unwrap();
        let moved = add_cosignatures(&b, &line).unwrap();
        let lv = LogVerifier::new(l.verifier_key()).unwrap();
        assert!(lv.verify(&moved).is_ok());
        assert!(verifier(&w).verify(&moved).is_err());
        let err = verify_witnessed(&moved, &lv, &[verifier(&w)], 1).unwrap_err();
        assert!(
            matches!(err, WitnessPolicyError::BelowThreshold { .. }),
            "{err}"
        );
    }

    #[test]
    fn threshold_met_and_not_met() {
        let l = log();
        let lv = LogVerifier::new(l.verifier_key()).unwrap();
        let ws: Vec<_> = (1..=3).map(|i| witness(&format!("w{i}.example"))).collect();
        let vs: Vec<_> = ws.iter().map(verifier).collect();
        let unknown = witness("unknown.example");
        let note = cosign_note(
            &l.sign(5, &Hash([5; 32])).unwrap(),
            &[&ws[0], &unknown, &ws[2]],
            77,
        );

        let ok = verify_witnessed(&note, &lv, &vs, 2).unwrap();
        let names: Vec<_> = ok.witnesses.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["w1.example", "w3.example"]);
        assert!(verify_witnessed(&note, &lv, &vs, 0).is_ok());

        let err = verify_witnessed(&note, &lv, &vs, 3).unwrap_err();
        let WitnessPolicyError::BelowThreshold {
            threshold,
            cosigned,
            missing,
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(*threshold, 3);
        assert_eq!(cosigned, &["w1.example", "w3.example"]);
        assert_eq!(missing, &["w2.example"]);
        assert_eq!(
            err.to_string(),
            "checkpoint cosigned by 2 of 3 configured witnesses, need 3; \
             cosigned: [\"w1.example\", \"w3.example\"]; not cosigned: [\"w2.example\"]"
        );

        // A witness configured twice counts once.
        let twice = [vs[0].clone(), vs[0].clone()];
        assert!(verify_witnessed(&note, &lv, &twice, 2).is_err());
    }

    #[test]
    fn bad_line_of_a_configured_witness_counts_as_not_cosigned() {
        let l = log();
        let lv = LogVerifier::new(l.verifier_key()).unwrap();
        let (w1, w2) = (witness("w1.example"), witness("w2.example"));
        let note = cosign_note(&l.sign(5, &Hash([5; 32])).unwrap(), &[&w1], 1);
        // A well-formed line with w2's name and key ID but garbage bytes.
        let mut sig = w2.key_id().to_be_bytes().to_vec();
        sig.extend([0x55; TIMESTAMPED_SIGNATURE_LEN]);
        let line = format!("— w2.example {}\n", B64.encode(sig));
        let note = add_cosignatures(&note, line.as_bytes()).unwrap();
        let ok = verify_witnessed(&note, &lv, &[verifier(&w1), verifier(&w2)], 1).unwrap();
        assert_eq!(ok.witnesses.len(), 1);
        assert!(verify_witnessed(&note, &lv, &[verifier(&w1), verifier(&w2)], 2).is_err());
    }

    #[test]
    fn log_signature_is_required() {
        let l = log();
        let w = witness("w1.example");
        let note = cosign_note(&l.sign(5, &Hash([5; 32])).unwrap(), &[&w], 1);
        let other = LogVerifier::new(log().verifier_key()).unwrap();
        assert!(matches!(
            verify_witnessed(&note, &other, &[verifier(&w)], 1),
            Err(WitnessPolicyError::Log(_))
        ));
    }

    #[test]
    fn times_beyond_2_63_are_refused() {
        let w = witness("w1.example");
        let body = b"o\n1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n";
        assert!(w.cosign(body, MAX_COSIGNATURE_TIME).is_ok());
        assert!(matches!(
            w.cosign(body, MAX_COSIGNATURE_TIME + 1),
            Err(CosignatureError::Time(_))
        ));
        assert!(w.cosign(b"no final newline", 1).is_err());

        // A line carrying 2^63 with a valid signature over it is refused too.
        let time = MAX_COSIGNATURE_TIME + 1;
        let sig = w.key.sign(&signed_message(body, time));
        let mut bytes = w.key_id().to_be_bytes().to_vec();
        bytes.extend(time.to_be_bytes());
        bytes.extend(sig.to_bytes());
        let mut note = body.to_vec();
        note.extend(format!("\n— w1.example {}\n", B64.encode(bytes)).as_bytes());
        assert!(verifier(&w).verify(&note).is_err());
    }

    #[test]
    fn malformed_keys_are_refused() {
        let w = witness("w1.example");
        // A log (type 0x01) key is not a cosignature key, either way round.
        let (_, log_skey) = LogSigner::generate("w1.example", &mut rand::rngs::OsRng).unwrap();
        assert!(CosignatureSigner::from_key_string(&log_skey).is_err());
        assert!(CosignatureVerifier::new(log().verifier_key()).is_err());
        assert!(LogVerifier::new(w.verifier_key()).is_err());
        // A key ID that does not match.
        let vkey = w.verifier_key().replacen('+', "+0", 1);
        assert!(CosignatureVerifier::new(&vkey).is_err());
        let mut parts: Vec<String> = w.verifier_key().split('+').map(String::from).collect();
        parts[1] = format!("{:08x}", w.key_id() ^ 1);
        assert!(CosignatureVerifier::new(&parts.join("+")).is_err());
        for bad in [
            "",
            "a+b",
            "a+0000000g+AA==",
            "a b+00000000+BA==",
            "PRIVATE+KEY+x",
        ] {
            assert!(CosignatureVerifier::new(bad).is_err(), "{bad}");
            assert!(CosignatureSigner::from_key_string(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            CosignatureSigner::generate("has space", &mut rand::rngs::OsRng),
            Err(CosignatureError::Name(_))
        ));
    }

    #[test]
    fn add_cosignatures_replaces_a_key_s_older_line() {
        let l = log();
        let w = witness("w1.example");
        let note = l.sign(3, &Hash([3; 32])).unwrap();
        assert_eq!(add_cosignatures(&note, b"").unwrap(), note);
        let once = cosign_note(&note, &[&w], 1);
        let twice = cosign_note(&once, &[&w], 2);
        assert_eq!(verifier(&w).verify(&twice).unwrap(), 2);
        assert_eq!(
            twice.split(|&b| b == b'\n').count(),
            once.split(|&b| b == b'\n').count()
        );
        assert!(add_cosignatures(&note, b"not a signature line\n").is_err());
        assert!(add_cosignatures(&note, b"\xe2\x80\x94 w1.example AAAAAAA=").is_err());
        assert!(add_cosignatures(b"not a note", b"").is_err());
    }
}
