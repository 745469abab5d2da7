//! Batched, parallel Ed25519 verification.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity as _;
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
/// (DESIGN §9: ~2× single verification at 64). The torsion checks of
/// [`batchable_r`] cost more than that saves: `torsion_check_cost` puts
/// this path above one `verify_strict` per signature.
const BATCH: usize = 64;

/// `verify_signatures` checks every signature, in batches of 64 spread over
/// all cores, and returns one verdict per check, in order: exactly
/// `verify_strict`'s. A batch that fails, or that holds a point the batch
/// equation cannot judge as `verify_strict` does (see [`batchable_r`] and
/// [`batchable_key`]), is re-checked one signature at a time with
/// `verify_strict`, so one bad signature costs only its own batch.
pub fn verify_signatures(checks: &[SignatureCheck<'_>]) -> Vec<bool> {
    checks
        .par_chunks(BATCH)
        .flat_map_iter(|chunk| {
            if batch(chunk) {
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

/// `batch` checks `chunk` with `ed25519_dalek::verify_batch` once every R
/// and key in it is one the batch equation judges as `verify_strict` does;
/// false means some signature may be bad.
fn batch(chunk: &[SignatureCheck<'_>]) -> bool {
    let mut keys: Vec<&VerifyingKey> = Vec::new();
    for c in chunk {
        if batchable_r(&c.signature, torsion_free).is_none() {
            return false;
        }
        if !keys.iter().any(|k| k.as_bytes() == c.key.as_bytes()) {
            if !batchable_key(&c.key, torsion_free) {
                return false;
            }
            keys.push(&c.key);
        }
    }
    let msgs: Vec<&[u8]> = chunk.iter().map(|c| c.message).collect();
    let sigs: Vec<Signature> = chunk.iter().map(|c| c.signature).collect();
    let keys: Vec<VerifyingKey> = chunk.iter().map(|c| c.key).collect();
    ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
}

/// `torsion_free` is whether `p` lies in the prime-order subgroup, that is
/// [ℓ]P = 0, computed in variable time (every point checked is public) as
/// [ℓ − 1]P + P with the double-base multiplication and a zero second
/// scalar: ℓ − 1 is zero from bit 125 to bit 251, so its width-5 NAF costs
/// about 253 doublings and 21 additions. Of the ways to compute it, this
/// is the fastest (`torsion_check_cost` times them) and still costs about
/// half a `verify_strict` per point.
fn torsion_free(p: &EdwardsPoint) -> bool {
    (EdwardsPoint::vartime_double_scalar_mul_basepoint(&-Scalar::ONE, p, &Scalar::ZERO) + p)
        .is_identity()
}

/// `batchable_r` is the signature's R, decoded, if the batch equation
/// judges it as `verify_strict` does: R canonically encoded, not of small
/// order, and torsion-free (`is_torsion_free` decides the last). Otherwise
/// `None`, and the signature is left to `verify_strict`.
///
/// Why torsion-free: the batch equation is the cofactorless one, summed
/// with random 128-bit weights z_i. A signature whose R = [r]B + T, with T
/// of order t in the torsion subgroup, leaves z_i·T in the sum, which
/// vanishes whenever t divides z_i: it would pass about one batch in t
/// where `verify_strict` always refuses it. With A torsion-free, every
/// signature `verify_strict` accepts has R = [s]B − [h]A torsion-free, so
/// refusing the others here refuses nothing `verify_strict` would accept.
fn batchable_r(
    sig: &Signature,
    is_torsion_free: impl Fn(&EdwardsPoint) -> bool,
) -> Option<EdwardsPoint> {
    let bytes = sig.r_bytes();
    if !canonical_y(bytes) {
        return None;
    }
    let r = CompressedEdwardsY(*bytes).decompress()?;
    (!r.is_small_order() && is_torsion_free(&r)).then_some(r)
}

/// `batchable_key` is whether the batch equation judges signatures by `key`
/// as `verify_strict` does: the key canonically encoded, not weak (of small
/// order) and torsion-free. (The registry refuses other keys anyway.)
fn batchable_key(key: &VerifyingKey, is_torsion_free: impl Fn(&EdwardsPoint) -> bool) -> bool {
    canonical_y(key.as_bytes()) && !key.is_weak() && is_torsion_free(&key.to_edwards())
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
/// nothing but the cost. A batch that fails is split in halves, each
/// checked as a batch, down to the half that fails ([`bisect`]): one
/// forgery among honest signatures costs a few smaller batches instead of
/// every signature of its batch checked one at a time with
/// `verify_strict`, which a client sending one forgery per batch could
/// otherwise force on every honest signature.
///
/// Verdicts are exactly `verify_strict`'s: a batch runs the equation only
/// over points it judges as `verify_strict` does ([`batchable_r`],
/// [`batchable_key`]; else the batch falls back), over which a batch
/// holding a bad signature passes with probability at most 2^-128.
pub fn verify_signatures_by_key(checks: &[SignatureCheck<'_>]) -> Vec<bool> {
    checks
        .par_chunks(KEYED_BATCH)
        .flat_map_iter(|chunk| {
            if batch_by_key(chunk) {
                vec![true; chunk.len()]
            } else {
                bisect(chunk, &|c| {
                    c.key.verify_strict(c.message, &c.signature).is_ok()
                })
            }
        })
        .collect()
}

/// Below this many signatures a failed batch is checked one at a time.
const BISECT_MIN: usize = 16;

/// `bisect` gives the verdicts of `chunk`, a batch whose equation failed:
/// each half is checked as a batch; a half that passes is all good, and
/// the one that fails is split again. When both halves fail, bad
/// signatures are many, and further batches would cost more than they
/// save: the chunk is checked one at a time (`one`), as are chunks below
/// [`BISECT_MIN`]. Verdicts are `one`'s, as the batch equation's are.
fn bisect(chunk: &[SignatureCheck<'_>], one: &dyn Fn(&SignatureCheck<'_>) -> bool) -> Vec<bool> {
    if chunk.len() < BISECT_MIN {
        return chunk.iter().map(one).collect();
    }
    let (a, b) = chunk.split_at(chunk.len() / 2);
    match (batch_by_key(a), batch_by_key(b)) {
        (true, false) => [vec![true; a.len()], bisect(b, one)].concat(),
        (false, true) => [bisect(a, one), vec![true; b.len()]].concat(),
        // Both fail (many bad), or both pass although the whole did not
        // (which the equation's randomness makes all but impossible):
        // one at a time.
        _ => chunk.iter().map(one).collect(),
    }
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
/// over `chunk`; false means some signature may be bad, or some R or key
/// is one the equation cannot judge as `verify_strict` does.
fn batch_by_key(chunk: &[SignatureCheck<'_>]) -> bool {
    batch_by_key_with(chunk, torsion_free)
}

/// `batch_by_key_with` is [`batch_by_key`] with the torsion check given, so
/// that the timing harness can weigh it.
fn batch_by_key_with(
    chunk: &[SignatureCheck<'_>],
    is_torsion_free: impl Fn(&EdwardsPoint) -> bool,
) -> bool {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::traits::VartimeMultiscalarMul as _;
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
        let Some(r) = batchable_r(&c.signature, &is_torsion_free) else {
            return false;
        };
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
            None => {
                if !batchable_key(&c.key, &is_torsion_free) {
                    return false;
                }
                keys.push((c.key, zh));
            }
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

    /// One forgery in a batch of honest signatures: bisection finds it
    /// with fewer than `BISECT_MIN` one-at-a-time checks, where every
    /// signature of the batch was checked alone before; with forgeries in
    /// both halves, the batch is checked one at a time. Verdicts are
    /// `verify_strict`'s either way.
    #[test]
    fn one_forgery_costs_a_few_batches_not_every_signature_alone() {
        use std::cell::Cell;
        let mut rng = rand_core::OsRng;
        let keys: Vec<SigningKey> = (0..2).map(|_| SigningKey::generate(&mut rng)).collect();
        let msgs: Vec<Vec<u8>> = (0..KEYED_BATCH as u32)
            .map(|i| i.to_be_bytes().to_vec())
            .collect();
        let mut sigs: Vec<(Signature, VerifyingKey)> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| (keys[i % 2].sign(m), keys[i % 2].verifying_key()))
            .collect();
        sigs[200].0 = keys[0].sign(b"forged");
        let checks = |sigs: &[(Signature, VerifyingKey)]| -> Vec<SignatureCheck<'_>> {
            msgs.iter()
                .zip(sigs)
                .map(|(m, (s, k))| SignatureCheck {
                    message: m,
                    signature: *s,
                    key: *k,
                })
                .collect()
        };
        let strict = |c: &[SignatureCheck<'_>]| -> Vec<bool> {
            c.iter()
                .map(|c| c.key.verify_strict(c.message, &c.signature).is_ok())
                .collect()
        };
        let alone = Cell::new(0usize);
        let one = |c: &SignatureCheck<'_>| {
            alone.set(alone.get() + 1);
            c.key.verify_strict(c.message, &c.signature).is_ok()
        };
        let c = checks(&sigs);
        assert!(!batch_by_key(&c));
        assert_eq!(bisect(&c, &one), strict(&c));
        assert!(alone.get() < BISECT_MIN, "{} checked alone", alone.get());
        assert_eq!(verify_signatures_by_key(&c), strict(&c));

        sigs[3].0 = keys[1].sign(b"forged too");
        let c = checks(&sigs);
        alone.set(0);
        assert_eq!(bisect(&c, &one), strict(&c));
        assert_eq!(alone.get(), KEYED_BATCH, "both halves bad: one at a time");
        assert_eq!(verify_signatures_by_key(&c), strict(&c));
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

    /// Both batch functions' verdicts over `checks`, each three ways: the
    /// checks alone, each in a batch of its own, and each among good
    /// signatures (by `good`'s key, over `m`) on both sides.
    fn verdicts_everywhere(
        checks: &[SignatureCheck<'_>],
        m: &[u8],
        good: &SigningKey,
    ) -> Vec<(&'static str, usize, Vec<bool>)> {
        let g = || one(m, good.sign(m), good.verifying_key());
        let mut out = Vec::new();
        for (name, f) in [
            (
                "verify_signatures",
                verify_signatures as fn(&[SignatureCheck]) -> Vec<bool>,
            ),
            ("verify_signatures_by_key", verify_signatures_by_key),
        ] {
            for (i, c) in checks.iter().enumerate() {
                let case = || one(c.message, c.signature, c.key);
                out.push((name, i, f(&[case()])));
                let mut among: Vec<SignatureCheck> = (0..20).map(|_| g()).collect();
                among.insert(10, case());
                let v = f(&among);
                out.push((
                    name,
                    i,
                    vec![v[10], v.iter().enumerate().all(|(j, ok)| j == 10 || *ok)],
                ));
            }
        }
        out
    }

    /// R = [r]B + T with T of order 2, 4 or 8 (which only the key's holder
    /// can make) is refused by verify_strict, and so by both batch
    /// functions every time, alone and among good signatures; the good
    /// signatures beside it still pass. Before the torsion check a batch
    /// let it through about once in ord(T) runs.
    #[test]
    fn mixed_order_r_is_refused_every_time() {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let m: &[u8] = b"event";
        for order in [2, 4, 8] {
            let sig = torsion::sign_with_r(&key, m, torsion::of_order(order), None);
            assert!(
                key.verifying_key().verify_strict(m, &sig).is_err(),
                "order {order}"
            );
            let check = [one(m, sig, key.verifying_key())];
            for run in 0..200 {
                for (f, _, v) in verdicts_everywhere(&check, m, &key) {
                    assert!(
                        !v[0],
                        "{f}: R with torsion of order {order} passed run {run}"
                    );
                    assert!(
                        v.get(1).copied().unwrap_or(true),
                        "{f}: good signature refused"
                    );
                }
            }
        }
    }

    /// `torsion_free` agrees with curve25519-dalek's constant-time
    /// `is_torsion_free` on points with no torsion and with torsion of every
    /// order, including the small-order points themselves.
    #[test]
    fn torsion_free_agrees_with_dalek() {
        use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
        use curve25519_dalek::traits::Identity as _;
        let mut points = vec![EdwardsPoint::identity(), B];
        for order in [2, 4, 8] {
            let t = torsion::of_order(order);
            points.push(t);
            for _ in 0..20 {
                let mut wide = [0u8; 64];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut wide);
                let p = B * Scalar::from_bytes_mod_order_wide(&wide);
                points.push(p);
                points.push(p + t);
            }
        }
        for (i, p) in points.iter().enumerate() {
            assert_eq!(torsion_free(p), p.is_torsion_free(), "point {i}");
        }
        assert_eq!(points.iter().filter(|p| torsion_free(p)).count(), 62);
    }

    /// The 12 edge cases of "Taming the many EdDSAs" (Chalkias, Garillot,
    /// Nikolaenko, SSR 2020), as `cases.json` of
    /// github.com/novifinancial/ed25519-speccheck (commit 6551933) holds
    /// them: message, public key A and signature R ‖ S, in hex.
    const SPECCHECK: [(&str, &str, &str); 12] = [
        // 0: S = 0, small-order A and R.
        (
            "8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a\
             0000000000000000000000000000000000000000000000000000000000000000",
        ),
        // 1: small-order A, mixed-order R.
        (
            "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
            "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43\
             a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        ),
        // 2: mixed-order A, small-order R.
        (
            "aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab",
            "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa\
             8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e",
        ),
        // 3: mixed-order A and R; passes cofactorless.
        (
            "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
            "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
            "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f\
             87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009",
        ),
        // 4: mixed-order A and R; passes only cofactored.
        (
            "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
            "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
            "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed512\
             5ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09",
        ),
        // 5: mixed-order A; passes cofactored only without pre-reduced 8h.
        (
            "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
            "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
            "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7\
             e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405",
        ),
        // 6: S > L.
        (
            "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
            "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
            "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e\
             547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514",
        ),
        // 7: S >> L.
        (
            "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
            "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
            "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa1942\
             7e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22",
        ),
        // 8: non-canonical R, reduced for the hash.
        (
            "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
            "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\
             03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f",
        ),
        // 9: non-canonical R, not reduced for the hash.
        (
            "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
            "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\
             ca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908",
        ),
        // 10: non-canonical A, reduced for the hash.
        (
            "e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dc\
             a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        ),
        // 11: non-canonical A, not reduced for the hash.
        (
            "39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dc\
             a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        ),
    ];

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        assert_eq!(s.len(), 2 * N, "{s}");
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    /// On every speccheck case both batch functions give verify_strict's
    /// verdict (only case 3, mixed-order A and R satisfying the
    /// cofactorless equation, verifies), alone and among good signatures,
    /// run after run: cases 4 and 5 satisfy the equation only up to
    /// torsion, which a batch without the torsion check lets through now
    /// and then.
    #[test]
    fn speccheck_edge_cases_get_verify_strict_verdicts() {
        let cases: Vec<(Vec<u8>, Signature, VerifyingKey)> = SPECCHECK
            .iter()
            .map(|(m, a, sig)| {
                let m = unhex::<32>(m).to_vec();
                let a = VerifyingKey::from_bytes(&unhex::<32>(a)).expect("A decompresses");
                (m, Signature::from_bytes(&unhex::<64>(sig)), a)
            })
            .collect();
        let want: Vec<bool> = cases
            .iter()
            .map(|(m, sig, a)| a.verify_strict(m, sig).is_ok())
            .collect();
        assert_eq!(
            want,
            [false, false, false, true, false, false, false, false, false, false, false, false],
            "verify_strict's verdicts as the paper reports them"
        );
        let checks: Vec<SignatureCheck> =
            cases.iter().map(|(m, sig, a)| one(m, *sig, *a)).collect();
        let good = SigningKey::generate(&mut rand_core::OsRng);
        for run in 0..50 {
            for (f, i, v) in verdicts_everywhere(&checks, b"event", &good) {
                assert_eq!(v[0], want[i], "{f}: case {i}, run {run}");
                assert!(
                    v.get(1).copied().unwrap_or(true),
                    "{f}: case {i}, run {run}: good signature refused"
                );
            }
        }
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

    /// Timing harness, not a test: the cost of the torsion checks in a
    /// keyed batch of 256 signatures by one key (and in a dalek batch of
    /// 64), against the old batch without them, one thread, rounds
    /// interleaved so that drift hits every variant alike. Run it with
    /// `cargo test --release -p custody-domain --lib torsion_check_cost --
    /// --ignored --nocapture`.
    #[test]
    #[ignore = "timing harness: run in release with --ignored --nocapture"]
    fn torsion_check_cost() {
        use curve25519_dalek::traits::VartimeMultiscalarMul as _;
        use std::time::{Duration, Instant};
        const ROUNDS: usize = 61;
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let msgs: Vec<Vec<u8>> = (0..256u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let checks: Vec<SignatureCheck> = msgs
            .iter()
            .map(|m| one(m, key.sign(m), key.verifying_key()))
            .collect();
        let none = |_: &EdwardsPoint| true;
        let constant_time = |p: &EdwardsPoint| p.is_torsion_free();
        let multiscalar = |p: &EdwardsPoint| {
            (EdwardsPoint::vartime_multiscalar_mul([-Scalar::ONE], [*p]) + p).is_identity()
        };
        type Check<'a> = &'a dyn Fn(&EdwardsPoint) -> bool;
        let variants: [(&str, Check); 4] = [
            ("keyed 256, old (no torsion check)", &none),
            ("keyed 256, is_torsion_free (constant time)", &constant_time),
            ("keyed 256, vartime_multiscalar_mul", &multiscalar),
            (
                "keyed 256, vartime_double_scalar_mul_basepoint",
                &torsion_free,
            ),
        ];
        let dalek_old = |c: &[SignatureCheck<'_>]| {
            let msgs: Vec<&[u8]> = c.iter().map(|c| c.message).collect();
            let sigs: Vec<Signature> = c.iter().map(|c| c.signature).collect();
            let keys: Vec<VerifyingKey> = c.iter().map(|c| c.key).collect();
            ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
        };
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len() + 3];
        for _ in 0..ROUNDS {
            for (i, (_, f)) in variants.iter().enumerate() {
                let t = Instant::now();
                assert!(batch_by_key_with(&checks, f));
                times[i].push(t.elapsed());
            }
            let t = Instant::now();
            assert!(checks.chunks(BATCH).all(dalek_old));
            times[variants.len()].push(t.elapsed());
            let t = Instant::now();
            assert!(checks.chunks(BATCH).all(batch));
            times[variants.len() + 1].push(t.elapsed());
            let t = Instant::now();
            assert!(checks
                .iter()
                .all(|c| c.key.verify_strict(c.message, &c.signature).is_ok()));
            times[variants.len() + 2].push(t.elapsed());
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let medians: Vec<Duration> = times.iter_mut().map(median).collect();
        let names = variants.iter().map(|(n, _)| *n).chain([
            "dalek 4×64, old (verify_batch)",
            "dalek 4×64, new (checks + verify_batch)",
            "verify_strict one at a time, 256",
        ]);
        for (i, (name, m)) in names.zip(&medians).enumerate() {
            let base = if i < variants.len() {
                medians[0]
            } else {
                medians[variants.len()]
            };
            println!(
                "{name:50} median {:8.1} µs per 256, {:6.2} µs per signature, {:.3}× old",
                m.as_secs_f64() * 1e6,
                m.as_secs_f64() * 1e6 / 256.0,
                m.as_secs_f64() / base.as_secs_f64()
            );
        }
    }
}
