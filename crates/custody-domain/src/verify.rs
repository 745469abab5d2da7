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

/// Batches of this size for [`verify_signatures_by_key`]: its
/// multiscalar multiplication grows by one point per signature, so larger
/// batches amortise better, while 16 of them still keep every core busy
/// on a few thousand signatures.
const KEYED_BATCH: usize = 256;

/// `verify_signatures_by_key` is [`verify_signatures`] for many signatures
/// by few keys, as in the write path and when an auditor replays a log:
/// each batch's equation gathers the terms of each key into one, so a
/// batch of n signatures by k keys costs a multiscalar multiplication of
/// n + k + 1 points instead of 2n + 1.
///
/// The equation is the one `ed25519_dalek::verify_batch` checks, with
/// random 128-bit z_i, h_i = SHA-512(R_i ‖ A_i ‖ M_i) mod ℓ and canonical
/// s_i (RFC 8032 §5.1.7, batched, cofactorless):
/// `[−Σ z_i s_i] B + Σ [z_i] R_i + Σ_keys [Σ_{i: A_i = A} z_i h_i] A = 0`.
/// On the prime-order subgroup, summing one key's scalars first changes
/// nothing but the cost. A batch that fails is re-checked one signature at
/// a time with `verify_strict`, as in [`verify_signatures`].
///
/// Verdicts equal `verify_strict`'s except in one case, which
/// `ed25519_dalek::verify_batch` shares: a signature whose R has a torsion
/// component of order t (R = [r]B + T), which only the key's holder can
/// make, passes a batch with probability about 1/t where `verify_strict`
/// refuses it. Small-order R, non-canonical R encodings and weak keys are
/// refused outright (the registry also refuses weak and mixed-order keys),
/// and a batch that fails falls back to `verify_strict`.
pub fn verify_signatures_by_key(checks: &[SignatureCheck<'_>]) -> Vec<bool> {
    checks
        .par_chunks(KEYED_BATCH)
        .flat_map_iter(|chunk| {
            if batch_by_key(chunk) {
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

/// `canonical_y` is whether a compressed point's y coordinate is below
/// p = 2^255 − 19. (The other non-canonical encodings, x = 0 with the sign
/// bit set, are of the identity and the point of order 2, which are
/// refused as small-order anyway.)
fn canonical_y(b: &[u8; 32]) -> bool {
    // y >= p only if y is one of p..2^255-1: the low byte at least 0xed
    // and every other bit of the 255 set.
    !(b[0] >= 0xed && b[1..31].iter().all(|x| *x == 0xff) && b[31] & 0x7f == 0x7f)
}

/// `batch_by_key` checks the batch equation of [`verify_signatures_by_key`]
/// over `chunk`; false means some signature may be bad.
fn batch_by_key(chunk: &[SignatureCheck<'_>]) -> bool {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::{IsIdentity as _, VartimeMultiscalarMul as _};
    use rand_core::{RngCore as _, SeedableRng as _};
    use sha2::{Digest as _, Sha512};

    let Ok(mut rng) = rand_chacha::ChaCha20Rng::from_rng(rand_core::OsRng) else {
        return false;
    };
    let mut scalars = Vec::with_capacity(chunk.len() + 2);
    let mut points = Vec::with_capacity(chunk.len() + 2);
    let mut b = Scalar::ZERO;
    // Usually one or a few keys: a short list beats a map.
    let mut keys: Vec<(VerifyingKey, Scalar)> = Vec::new();
    for c in chunk {
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*c.signature.s_bytes()))
        else {
            return false;
        };
        let Some(r) = CompressedEdwardsY(*c.signature.r_bytes()).decompress() else {
            return false;
        };
        // verify_strict refuses a small-order or non-canonically encoded R
        // and a weak key; a batch that let them through would accept what
        // the one-at-a-time check (and every offline verifier) refuses.
        if r.is_small_order() || !canonical_y(c.signature.r_bytes()) {
            return false;
        }
        if c.key.is_weak() {
            return false;
        }
        let h = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(c.signature.r_bytes())
                .chain_update(c.key.as_bytes())
                .chain_update(c.message)
                .finalize()
                .into(),
        );
        let mut zb = [0u8; 16];
        rng.fill_bytes(&mut zb);
        let z = Scalar::from(u128::from_le_bytes(zb));
        b += z * s;
        scalars.push(z);
        points.push(r);
        let zh = z * h;
        match keys
            .iter_mut()
            .find(|(k, _)| k.as_bytes() == c.key.as_bytes())
        {
            Some((_, sum)) => *sum += zh,
            None => keys.push((c.key, zh)),
        }
    }
    scalars.push(-b);
    points.push(ED25519_BASEPOINT_POINT);
    for (k, sum) in keys {
        scalars.push(sum);
        points.push(k.to_edwards());
    }
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn canonical_y_refuses_y_at_or_above_p() {
        use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
        let p = ED25519_BASEPOINT_POINT.compress().to_bytes();
        assert!(canonical_y(&p));
        let mut big = [0xff; 32];
        big[0] = 0xed;
        big[31] = 0x7f;
        assert!(!canonical_y(&big), "y = p");
        big[0] = 0xec;
        assert!(canonical_y(&big), "y = p - 1");
        let mut sign = big;
        sign[0] = 0xee;
        sign[31] = 0xff;
        assert!(!canonical_y(&sign), "y = p + 1 with the sign bit");
    }

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
        assert_eq!(verify_signatures_by_key(&checks), v);
    }

    #[test]
    fn keyed_batches_agree_with_one_at_a_time_checks() {
        let mut rng = rand_core::OsRng;
        let keys: Vec<SigningKey> = (0..3).map(|_| SigningKey::generate(&mut rng)).collect();
        let msgs: Vec<Vec<u8>> = (0..600u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut sigs: Vec<(Signature, VerifyingKey)> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let k = &keys[i % 3];
                (k.sign(m), k.verifying_key())
            })
            .collect();
        // A signature over another message, one by another key than the
        // one claimed, one with s not reduced mod ℓ, one with R not a
        // point, and one swapped with its neighbour's message.
        sigs[5].0 = keys[2].sign(b"other");
        sigs[301].1 = keys[0].verifying_key();
        let mut bad_s = sigs[401].0.to_bytes();
        bad_s[63] |= 0xf0;
        sigs[401].0 = Signature::from_bytes(&bad_s);
        let mut bad_r = sigs[402].0.to_bytes();
        bad_r[..32].copy_from_slice(&[0xff; 32]);
        sigs[402].0 = Signature::from_bytes(&bad_r);
        sigs.swap(598, 599);
        let checks: Vec<SignatureCheck> = msgs
            .iter()
            .zip(&sigs)
            .map(|(m, (s, k))| SignatureCheck {
                message: m,
                signature: *s,
                key: *k,
            })
            .collect();
        let want: Vec<bool> = checks
            .iter()
            .map(|c| c.key.verify_strict(c.message, &c.signature).is_ok())
            .collect();
        assert_eq!(want.iter().filter(|ok| !**ok).count(), 6);
        assert_eq!(verify_signatures_by_key(&checks), want);
        assert_eq!(verify_signatures(&checks), want);
        // The batch equation itself: it holds over good signatures by
        // several keys, and fails over any batch with a bad one.
        assert!(batch_by_key(&checks[6..300]));
        assert!(batch_by_key(&checks[302..401]));
        for bad in [5, 301, 401, 402, 598, 599] {
            assert!(!batch_by_key(&checks[bad - 3..bad + 1]), "index {bad}");
        }
    }

    /// Torsion fixtures for the tests below: a signature whose R is
    /// `[r]B + t`, made with the secret scalar of `key`, so the prime-order
    /// part of its equation holds and only the torsion part `t` is off.
    mod torsion {
        use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
        use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
        use curve25519_dalek::scalar::Scalar;
        use curve25519_dalek::traits::IsIdentity as _;
        use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
        use rand_core::RngCore as _;
        use sha2::{Digest as _, Sha512};

        pub fn h(r: &[u8; 32], a: &VerifyingKey, m: &[u8]) -> Scalar {
            Scalar::from_bytes_mod_order_wide(
                &Sha512::new()
                    .chain_update(r)
                    .chain_update(a.as_bytes())
                    .chain_update(m)
                    .finalize()
                    .into(),
            )
        }

        /// A signature by `key` over `m` whose R is `[r]B + t`, encoded as
        /// `r_bytes` if given (e.g. a non-canonical encoding).
        pub fn sign_with_r(
            key: &SigningKey,
            m: &[u8],
            t: EdwardsPoint,
            r_bytes: Option<[u8; 32]>,
        ) -> Signature {
            let mut wide = [0u8; 64];
            rand_core::OsRng.fill_bytes(&mut wide);
            let r = if t.is_identity() && r_bytes.is_some() {
                Scalar::ZERO
            } else {
                Scalar::from_bytes_mod_order_wide(&wide)
            };
            let big_r = B * r + t;
            let rb = r_bytes.unwrap_or(big_r.compress().to_bytes());
            assert_eq!(CompressedEdwardsY(rb).decompress(), Some(big_r));
            let s = r + h(&rb, &key.verifying_key(), m) * key.to_scalar();
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&rb);
            sig[32..].copy_from_slice(s.as_bytes());
            Signature::from_bytes(&sig)
        }

        /// A torsion point of exactly `order` (2, 4 or 8).
        pub fn of_order(order: u64) -> EdwardsPoint {
            loop {
                let mut b = [0u8; 32];
                rand_core::OsRng.fill_bytes(&mut b);
                let Some(p) = CompressedEdwardsY(b).decompress() else {
                    continue;
                };
                // [ℓ]P is 5 times P's torsion component (ℓ ≡ 5 mod 8).
                let t = p * -Scalar::ONE + p;
                let ord = [1u64, 2, 4, 8]
                    .into_iter()
                    .find(|k| (t * Scalar::from(*k)).is_identity())
                    .unwrap_or(0);
                if ord == order {
                    return t;
                }
            }
        }
    }

    /// One check of `sig` over `m` by `key`.
    fn one<'a>(m: &'a [u8], sig: Signature, key: VerifyingKey) -> SignatureCheck<'a> {
        SignatureCheck {
            message: m,
            signature: sig,
            key,
        }
    }

    /// The identity encoded canonically and with the x sign bit set
    /// (non-canonical; `decompress` accepts it).
    fn identity_encodings() -> [[u8; 32]; 2] {
        let mut canonical = [0u8; 32];
        canonical[0] = 1;
        let mut signed = canonical;
        signed[31] = 0x80;
        [canonical, signed]
    }

    /// Signatures a batch can pass although `verify_strict` refuses them:
    /// R = identity with s = h·a (needs the key's secret), and a "signature"
    /// under the identity key (a weak key; needs no secret at all).
    fn torsion_cases(key: &SigningKey, m: &[u8]) -> Vec<(Signature, VerifyingKey)> {
        use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
        use curve25519_dalek::edwards::EdwardsPoint;
        use curve25519_dalek::scalar::Scalar;
        use curve25519_dalek::traits::Identity as _;
        let mut out: Vec<(Signature, VerifyingKey)> = identity_encodings()
            .into_iter()
            .map(|rb| {
                let sig = torsion::sign_with_r(key, m, EdwardsPoint::identity(), Some(rb));
                (sig, key.verifying_key())
            })
            .collect();
        for weak in identity_encodings() {
            let weak = VerifyingKey::from_bytes(&weak).expect("decompresses");
            let s = Scalar::from(12345u64);
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice((ED25519_BASEPOINT_POINT * s).compress().as_bytes());
            sig[32..].copy_from_slice(s.as_bytes());
            out.push((Signature::from_bytes(&sig), weak));
        }
        out
    }

    /// Small-order R (both encodings of the identity) and weak keys:
    /// `verify_strict` refuses them and so does the keyed batch, although
    /// `ed25519_dalek::verify_batch` lets them through.
    #[test]
    fn keyed_batch_refuses_small_order_points_that_dalek_batch_accepts() {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let m: &[u8] = b"event";
        for (i, (sig, vk)) in torsion_cases(&key, m).into_iter().enumerate() {
            assert!(vk.verify_strict(m, &sig).is_err(), "case {i}");
            assert!(
                ed25519_dalek::verify_batch(&[m], &[sig], &[vk]).is_ok(),
                "case {i}"
            );
            assert!(!batch_by_key(&[one(m, sig, vk)]), "case {i}");
        }
    }

    /// The one divergence from verify_strict that the doc comment states,
    /// pinned: R with an order-2 torsion component (which only the key's
    /// holder can make) is refused by verify_strict but passes a batch
    /// about half the time, as with `ed25519_dalek::verify_batch`. Out of
    /// 400 independent batches, a count outside 100..=300 has probability
    /// below 1e-20 if the rate is 1/2.
    #[test]
    fn mixed_order_r_passes_a_batch_about_half_the_time() {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let m: &[u8] = b"event";
        let t = torsion::of_order(2);
        let sig = torsion::sign_with_r(&key, m, t, None);
        assert!(key.verifying_key().verify_strict(m, &sig).is_err());
        let passed = (0..400)
            .filter(|_| verify_signatures_by_key(&[one(m, sig, key.verifying_key())])[0])
            .count();
        assert!((100..=300).contains(&passed), "{passed} of 400");
    }

    /// On small-order R and weak keys the keyed verdicts are exactly
    /// verify_strict's, in batches alone and among good signatures.
    #[test]
    fn keyed_verdicts_are_verify_strict_verdicts_on_small_order_points() {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let m: &[u8] = b"event";
        let cases = torsion_cases(&key, m);
        let good = key.sign(m);
        for (i, (sig, vk)) in cases.into_iter().enumerate() {
            assert!(vk.verify_strict(m, &sig).is_err(), "case {i}");
            assert_eq!(
                verify_signatures_by_key(&[one(m, sig, vk)]),
                vec![false],
                "case {i}"
            );
            let mixed = [
                one(m, good, key.verifying_key()),
                one(m, sig, vk),
                one(m, good, key.verifying_key()),
            ];
            assert_eq!(
                verify_signatures_by_key(&mixed),
                vec![true, false, true],
                "case {i} among good signatures"
            );
        }
    }
}
