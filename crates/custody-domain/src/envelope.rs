//! The signed envelope: DSSE-style signatures over a pre-authentication
//! encoding of (payload type, body).

use sha2::{Digest, Sha256};

use crate::{Refusal, MAX_ENTRY_BYTES};

/// `PAYLOAD_TYPE` is the payload type of a custody event body: a serialized
/// `custody.v1.Event`.
pub const PAYLOAD_TYPE: &str = "application/vnd.custody-ledger.event.v1+protobuf";

/// `MAX_SIGNATURES` bounds the signatures on one event.
pub const MAX_SIGNATURES: usize = 4;

/// `KeyId` names a signing key: the first 16 bytes of SHA-256 of its
/// Ed25519 public key.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct KeyId(pub [u8; 16]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// `key_id_of` is the [`KeyId`] of an Ed25519 public key.
pub fn key_id_of(public_key: &[u8; 32]) -> KeyId {
    let d = Sha256::digest(public_key);
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    KeyId(id)
}

/// `pae` is the DSSE v1 pre-authentication encoding that every signature
/// covers: `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in
/// ASCII decimal.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(body);
    out
}

/// `EventSignature` is one signature on an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSignature {
    /// The signing key.
    pub key_id: KeyId,
    /// The Ed25519 signature over [`pae`].
    pub sig: [u8; 64],
}

/// `SignedEnvelope` is an event body with its signatures, as submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEnvelope {
    /// The payload type; must be [`PAYLOAD_TYPE`].
    pub payload_type: String,
    /// The serialized event, exactly as signed.
    pub body: Vec<u8>,
    /// One to [`MAX_SIGNATURES`] signatures.
    pub signatures: Vec<EventSignature>,
}

impl SignedEnvelope {
    /// `from_parts` checks the envelope's shape: payload type, size, and
    /// signature count and lengths.
    ///
    /// # Errors
    ///
    /// An `InvalidArgument` [`Refusal`] naming the field at fault.
    pub fn from_parts(
        payload_type: String,
        body: Vec<u8>,
        signatures: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Self, Refusal> {
        if payload_type != PAYLOAD_TYPE {
            return Err(Refusal::invalid(
                "event.payload_type",
                format!("payload type {payload_type:?} is not {PAYLOAD_TYPE:?}"),
            ));
        }
        // Leave room for the envelope framing and integrated time within
        // the 64 KiB entry limit.
        if body.len() > MAX_ENTRY_BYTES - 1024 {
            return Err(Refusal::invalid(
                "event.body",
                format!(
                    "event body is {} bytes; the limit is {} so the entry fits in 64 KiB",
                    body.len(),
                    MAX_ENTRY_BYTES - 1024
                ),
            ));
        }
        if signatures.is_empty() {
            return Err(Refusal::invalid("event.signatures", "event is not signed"));
        }
        if signatures.len() > MAX_SIGNATURES {
            return Err(Refusal::invalid(
                "event.signatures",
                format!(
                    "event has {} signatures; at most {MAX_SIGNATURES} are allowed",
                    signatures.len()
                ),
            ));
        }
        let mut sigs = Vec::with_capacity(signatures.len());
        for (key_id, sig) in signatures {
            let key_id: [u8; 16] = key_id.as_slice().try_into().map_err(|_| {
                Refusal::invalid(
                    "event.signatures.key_id",
                    format!("key id is {} bytes; want 16", key_id.len()),
                )
            })?;
            let sig: [u8; 64] = sig.as_slice().try_into().map_err(|_| {
                Refusal::invalid(
                    "event.signatures.sig",
                    format!("signature is {} bytes; want 64", sig.len()),
                )
            })?;
            sigs.push(EventSignature {
                key_id: KeyId(key_id),
                sig,
            });
        }
        Ok(Self {
            payload_type,
            body,
            signatures: sigs,
        })
    }

    /// `signing_bytes` is what each signature covers: [`pae`] of the type
    /// and body.
    pub fn signing_bytes(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.body)
    }

    /// `digest` identifies the envelope's exact content (type, body and
    /// signatures), for deduplication: the same event id with another digest
    /// is a conflict.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.signing_bytes());
        for s in &self.signatures {
            h.update(s.key_id.0);
            h.update(s.sig);
        }
        h.finalize().into()
    }
}

impl SignedEnvelope {
    /// `sign` makes an envelope of `body` signed by each of `keys`.
    pub fn sign(body: Vec<u8>, keys: &[&ed25519_dalek::SigningKey]) -> Self {
        use ed25519_dalek::Signer as _;
        let msg = pae(PAYLOAD_TYPE, &body);
        let signatures = keys
            .iter()
            .map(|k| EventSignature {
                key_id: key_id_of(&k.verifying_key().to_bytes()),
                sig: k.sign(&msg).to_bytes(),
            })
            .collect();
        Self {
            payload_type: PAYLOAD_TYPE.to_owned(),
            body,
            signatures,
        }
    }
}
