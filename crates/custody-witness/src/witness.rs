//! The `add-checkpoint` rules of C2SP `tlog-witness`: parse the request,
//! check the checkpoint against the log's key and the witness's record,
//! persist it, cosign it.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use custody_log::{
    add_cosignatures, note_text, verify_consistency, CheckpointError, CosignatureError,
    CosignatureSigner, Hash, HASH_SIZE,
};
use sha2::{Digest, Sha256};

use crate::state::{Recorded, StateError, WitnessState};

/// `MAX_REQUEST_BYTES` bounds an `add-checkpoint` request body: an old
/// size line, at most 63 proof lines (under 3 KiB) and a checkpoint note
/// with room for 16 post-quantum signature lines.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// `MAX_PROOF_LINES` is the most consistency proof lines a request may
/// carry (C2SP `tlog-witness`: "The client MUST NOT send more than 63").
pub const MAX_PROOF_LINES: usize = 63;

/// How much of a caller's text an error repeats.
const CLIP: usize = 100;

/// `AddError` is why a witness refused to cosign a checkpoint. Each maps
/// to the HTTP status C2SP `tlog-witness` requires ([`AddError::status`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The request is not `old N`, proof lines, a blank line and a signed
    /// checkpoint, or is too large. 400.
    #[error("malformed add-checkpoint request: {0}")]
    Malformed(String),
    /// The old size is larger than the checkpoint's. 400.
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldAfterNew {
        /// The request's old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The witness knows no log of this origin. 404.
    #[error("unknown log origin {0:?}")]
    UnknownLog(String),
    /// The checkpoint is not validly signed by the log's key. 403.
    #[error("checkpoint is not signed by the log key: {0}")]
    Unverified(String),
    /// The old size is not the size of the latest checkpoint the witness
    /// cosigned for this log, which is given. 409.
    #[error("old size does not match the witness's latest cosigned size {0}")]
    Conflict(u64),
    /// The checkpoint is not consistent with what the witness cosigned
    /// before: the proof does not verify, a split view of the same size,
    /// a proof from size 0, or a size-0 checkpoint with another root. 422.
    #[error("checkpoint is inconsistent with the witness's record: {0}")]
    Inconsistent(String),
    /// Persisting the new checkpoint failed; nothing was cosigned. 500.
    #[error("persist the checkpoint: {0}")]
    State(#[from] StateError),
    /// Cosigning failed (for example, the clock is before 1970). 500.
    #[error("cosign: {0}")]
    Cosign(String),
}

impl AddError {
    /// `status` is the HTTP status code C2SP `tlog-witness` v1 gives this
    /// refusal.
    pub fn status(&self) -> u16 {
        match self {
            AddError::Malformed(_) | AddError::OldAfterNew { .. } => 400,
            AddError::Unverified(_) => 403,
            AddError::UnknownLog(_) => 404,
            AddError::Conflict(_) => 409,
            AddError::Inconsistent(_) => 422,
            AddError::State(_) | AddError::Cosign(_) => 500,
        }
    }
}

/// `clip` shortens a caller's text for an error message.
pub(crate) fn clip(text: &str) -> String {
    match text.char_indices().nth(CLIP) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// `AddCheckpointRequest` is a parsed `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq)]
pub struct AddCheckpointRequest {
    /// The size of the checkpoint the proof starts from.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub note: Vec<u8>,
}

impl AddCheckpointRequest {
    /// `encode` is the request body: `old <N>\n`, one base64 hash per line,
    /// a blank line, the note.
    ///
    /// # Errors
    ///
    /// [`AddError::Malformed`] if the proof has more than 63 hashes.
    pub fn encode(&self) -> Result<Vec<u8>, AddError> {
        if self.proof.len() > MAX_PROOF_LINES {
            return Err(AddError::Malformed(format!(
                "{} proof lines, at most {MAX_PROOF_LINES}",
                self.proof.len()
            )));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut out = format!("old {}\n", self.old_size).into_bytes();
        for h in &self.proof {
            out.extend(b64.encode(h.0).as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.note);
        Ok(out)
    }

    /// `parse` reads a request body.
    ///
    /// # Errors
    ///
    /// [`AddError::Malformed`] if it is larger than [`MAX_REQUEST_BYTES`],
    /// the old size is not a decimal without leading zeroes, a proof line
    /// is not one base64 hash, there are more than 63 of them, or the blank
    /// line is missing. The note itself is checked later.
    pub fn parse(body: &[u8]) -> Result<Self, AddError> {
        let bad = |why: String| AddError::Malformed(why);
        if body.len() > MAX_REQUEST_BYTES {
            return Err(bad(format!("larger than {MAX_REQUEST_BYTES} bytes")));
        }
        let split = body
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint".into()))?;
        let (head, note) = (&body[..split], &body[split + 2..]);
        let head = std::str::from_utf8(head).map_err(|_| bad("not UTF-8".into()))?;
        let mut lines = head.split('\n');
        let old = lines.next().unwrap_or_default();
        let digits = old
            .strip_prefix("old ")
            .ok_or_else(|| bad(format!("first line {:?} is not `old <size>`", clip(old))))?;
        let old_size = parse_size(digits)
            .ok_or_else(|| bad(format!("old size {:?} is not a decimal size", clip(digits))))?;
        let proof = lines
            .enumerate()
            .map(|(i, l)| {
                if i >= MAX_PROOF_LINES {
                    return Err(bad(format!(
                        "more than {MAX_PROOF_LINES} consistency proof lines"
                    )));
                }
                parse_hash(l).ok_or_else(|| {
                    bad(format!(
                        "proof line {} {:?} is not a base64 hash",
                        i + 1,
                        clip(l)
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            old_size,
            proof,
            note: note.to_vec(),
        })
    }
}

/// `parse_size` reads an ASCII decimal with no leading zeroes.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

/// `parse_hash` reads one base64 hash (canonical padding and bits).
fn parse_hash(s: &str) -> Option<Hash> {
    let raw = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    let h: [u8; HASH_SIZE] = raw.try_into().ok()?;
    Some(Hash(h))
}

/// `empty_root` is the root of the empty tree, SHA-256 of the empty string
/// (RFC 6962 §2.1).
fn empty_root() -> Hash {
    Hash(Sha256::digest(b"").into())
}

/// `Witness` cosigns checkpoints of its known logs that are consistent with
/// what it cosigned before (C2SP `tlog-witness` `add-checkpoint`).
pub struct Witness {
    signer: CosignatureSigner,
    state: WitnessState,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("key", &self.signer.verifier_key())
            .field("state", &self.state)
            .finish()
    }
}

impl Witness {
    /// `new` is a witness cosigning with `signer` over `state`.
    pub fn new(signer: CosignatureSigner, state: WitnessState) -> Self {
        Self { signer, state }
    }

    /// `verifier_key` is the witness's public key, which logs and their
    /// clients configure.
    pub fn verifier_key(&self) -> &str {
        self.signer.verifier_key()
    }

    /// `state` is the witness's record of each log.
    pub fn state(&self) -> &WitnessState {
        &self.state
    }

    /// `add_checkpoint` handles an `add-checkpoint` request body and returns
    /// the cosignature line to send back.
    ///
    /// It checks, in the specification's order: the request's form; that
    /// the origin is known; the log's signature; that the old size is at
    /// most the checkpoint's; then, holding the log's lock, that the old
    /// size is the latest cosigned size, and that the checkpoint extends
    /// the latest cosigned one. Only then does it persist the checkpoint,
    /// cosigned, and return the cosignature. It blocks on file I/O.
    ///
    /// # Errors
    ///
    /// [`AddError`], whose [`AddError::status`] is the HTTP status to send.
    pub fn add_checkpoint(&self, body: &[u8]) -> Result<Vec<u8>, AddError> {
        let req = AddCheckpointRequest::parse(body)?;
        let origin_line = req.note.split(|&b| b == b'\n').next().unwrap_or_default();
        let origin = std::str::from_utf8(origin_line)
            .map_err(|_| AddError::Malformed("checkpoint origin is not UTF-8".into()))?;
        if origin.is_empty() {
            return Err(AddError::Malformed("checkpoint has no origin line".into()));
        }
        let slot = self
            .state
            .slot(origin)
            .ok_or_else(|| AddError::UnknownLog(clip(origin)))?;
        let cp = slot.verifier.verify(&req.note).map_err(|e| match e {
            CheckpointError::Unverified(key) => AddError::Unverified(key),
            CheckpointError::WrongOrigin { .. } => AddError::Unverified(e.to_string()),
            _ => AddError::Malformed("not a signed checkpoint note".into()),
        })?;
        if req.old_size > cp.size {
            return Err(AddError::OldAfterNew {
                old: req.old_size,
                size: cp.size,
            });
        }

        let mut latest = slot.lock();
        let (size, root) = latest
            .as_ref()
            .map_or((0, empty_root()), |r| (r.size, r.root));
        if req.old_size != size {
            return Err(AddError::Conflict(size));
        }
        check_consistent(&req.proof, size, &root, cp.size, &cp.root)?;

        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| AddError::Cosign(format!("clock before 1970: {e}")))?
            .as_secs();
        let cosign = |e: CosignatureError| AddError::Cosign(e.to_string());
        let line = self
            .signer
            .cosign(&note_text(&req.note).map_err(cosign)?, time)
            .map_err(cosign)?;
        let record = Recorded {
            size: cp.size,
            root: cp.root,
            note: add_cosignatures(&req.note, &line).map_err(cosign)?,
        };
        self.state.persist(slot, &record)?;
        *latest = Some(record);
        Ok(line)
    }
}

/// `check_consistent` checks that the tree of `size` leaves with root
/// `root` extends the one the witness recorded, `old_size` and `old_root`.
fn check_consistent(
    proof: &[Hash],
    old_size: u64,
    old_root: &Hash,
    size: u64,
    root: &Hash,
) -> Result<(), AddError> {
    let refuse = |why: &str| Err(AddError::Inconsistent(why.to_owned()));
    if size == 0 && *root != empty_root() {
        return refuse("a checkpoint of size 0 must have the empty tree's root");
    }
    if old_size == 0 {
        if !proof.is_empty() {
            return refuse("the proof from size 0 must be empty");
        }
        return Ok(());
    }
    if old_size == size && root != old_root {
        return refuse(&format!(
            "a different root for size {size}, which the witness cosigned: a split view"
        ));
    }
    verify_consistency(proof, old_size, old_root, size, root).or_else(|_| {
        refuse(&format!(
            "the consistency proof from size {old_size} to {size} does not verify"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let req = AddCheckpointRequest {
            old_size: 20_852_014,
            proof: vec![Hash([1; 32]), Hash([2; 32])],
            note: b"example.com/log\n3\nAQ==\n\n\xe2\x80\x94 x AAAA\n".to_vec(),
        };
        let body = req.encode().unwrap();
        assert!(body.starts_with(
            b"old 20852014\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\nAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n\nexample.com/log\n"
        ));
        assert_eq!(AddCheckpointRequest::parse(&body).unwrap(), req);
        let empty = AddCheckpointRequest::parse(b"old 0\n\nnote").unwrap();
        assert_eq!((empty.old_size, empty.proof.len()), (0, 0));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let h = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        let many = format!("old 1\n{}\nn", format!("{h}\n").repeat(64));
        for body in [
            "",
            "old 1\nnote",
            "new 1\n\nnote",
            "old\n\nnote",
            "old 01\n\nnote",
            "old +1\n\nnote",
            "old -1\n\nnote",
            "old 1 \n\nnote",
            "old 18446744073709551616\n\nnote",
            "old 1\nnot base64\n\nnote",
            "old 1\nAQEB\n\nnote",
            "old 1\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQF=\n\nnote",
            &many,
        ] {
            assert!(
                matches!(
                    AddCheckpointRequest::parse(body.as_bytes()),
                    Err(AddError::Malformed(_))
                ),
                "{body:?}"
            );
        }
        let max = format!("old 1\n{}\nn", format!("{h}\n").repeat(63));
        assert_eq!(
            AddCheckpointRequest::parse(max.as_bytes())
                .unwrap()
                .proof
                .len(),
            63
        );
        let huge = vec![b'a'; MAX_REQUEST_BYTES + 1];
        assert!(AddCheckpointRequest::parse(&huge).is_err());
    }

    #[test]
    fn errors_are_clipped() {
        let long = "x".repeat(1000);
        let e = AddCheckpointRequest::parse(format!("old {long}\n\nn").as_bytes()).unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
    }
}
