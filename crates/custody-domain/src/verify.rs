//! Batched, parallel Ed25519 verification.

use ed25519_dalek::{Signature, VerifyingKey};
use rayon::prelude::*;

/// `SignatureCheck` is one signature to check.
pub struct SignatureCheck<'a> {
    /// The signed bytes (the envelope's PAE).
    pub message: &'a [u8],
    /// The signature.
    pub signature: Signature,
    /// The key it claims.
    pub key: VerifyingKey,
}

/// Batches of this size amortise the multiscalar multiplication well
/// (DESIGN §9: ~2× single verification at 64).
const BATCH: usize = 64;

/// `verify_signatures` checks every signature, in batches of 64 spread over
/// all cores, and returns one verdict per check, in order. A batch that
/// fails is re-checked one signature at a time, so one bad signature costs
/// only its own batch.
pub fn verify_signatures(checks: &[SignatureCheck<'_>]) -> Vec<bool> {
    checks
        .par_chunks(BATCH)
        .flat_map_iter(|chunk| {
            let msgs: Vec<&[u8]> = chunk.iter().map(|c| c.message).collect();
            let sigs: Vec<Signature> = chunk.iter().map(|c| c.signature).collect();
            let keys: Vec<VerifyingKey> = chunk.iter().map(|c| c.key).collect();
            if ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
                vec![true; chunk.len()]
            } else {
                chunk
                    .iter()
                    .map(|c| c.key.verify_strict(c.message, &c.signature).is_ok())
                    .collect()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn one_bad_signature_is_found_among_many() {
        let mut rng = rand_core::OsRng;
        let key = SigningKey::generate(&mut rng);
        let msgs: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut sigs: Vec<Signature> = msgs.iter().map(|m| key.sign(m)).collect();
        sigs[77] = key.sign(b"something else");
        let checks: Vec<SignatureCheck> = msgs
            .iter()
            .zip(&sigs)
            .map(|(m, s)| SignatureCheck {
                message: m,
                signature: *s,
                key: key.verifying_key(),
            })
            .collect();
        let v = verify_signatures(&checks);
        assert_eq!(v.len(), 200);
        for (i, ok) in v.iter().enumerate() {
            assert_eq!(*ok, i != 77, "index {i}");
        }
    }
}
