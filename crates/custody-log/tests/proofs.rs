//! Proof generation and verification: RFC 6962 vectors, property tests over
//! random tree sizes, and adversarial tampering (every variant must fail).

use custody_log::{
    append_leaves, leaf_hash, prove_consistency, prove_inclusion, tree_root, verify_consistency,
    verify_inclusion, Hash, MemoryHashes,
};
use proptest::prelude::*;

fn h(s: &str) -> Hash {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    Hash(out)
}

fn tree(leaves: &[Vec<u8>]) -> (MemoryHashes, Vec<Hash>) {
    let mut store = MemoryHashes::default();
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    // Append in uneven batches to exercise the batch overlay.
    let mut size = 0u64;
    for chunk in hashes.chunks(3) {
        let new = append_leaves(size, chunk, &store).unwrap();
        store.insert_all(new);
        size += chunk.len() as u64;
    }
    (store, hashes)
}

/// The RFC 6962 test leaves used by Certificate Transparency's reference
/// implementations.
fn rfc6962_leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|s| {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    })
    .collect()
}

#[test]
fn rfc6962_roots() {
    let want = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let (store, _) = tree(&rfc6962_leaves());
    for (i, w) in want.iter().enumerate() {
        assert_eq!(
            tree_root(i as u64 + 1, &store).unwrap(),
            h(w),
            "size {}",
            i + 1
        );
    }
    assert_eq!(
        tree_root(0, &store).unwrap(),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
}

#[test]
fn rfc6962_inclusion_and_consistency_vectors() {
    let (store, hashes) = tree(&rfc6962_leaves());
    let root8 = tree_root(8, &store).unwrap();
    let want = [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ];
    let p = prove_inclusion(8, 0, &store).unwrap();
    assert_eq!(p, want.iter().map(|s| h(s)).collect::<Vec<_>>());
    verify_inclusion(&p, 8, &root8, 0, &hashes[0]).unwrap();

    let c = prove_consistency(1, 8, &store).unwrap();
    assert_eq!(c, want.iter().map(|s| h(s)).collect::<Vec<_>>());

    let c = prove_consistency(6, 8, &store).unwrap();
    let want6 = [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ];
    assert_eq!(c, want6.iter().map(|s| h(s)).collect::<Vec<_>>());
    let root6 = tree_root(6, &store).unwrap();
    verify_consistency(&c, 6, &root6, 8, &root8).unwrap();

    let c = prove_consistency(2, 5, &store).unwrap();
    let want25 = [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ];
    assert_eq!(c, want25.iter().map(|s| h(s)).collect::<Vec<_>>());
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut out = *h;
    out.0[(bit / 8) % 32] ^= 1 << (bit % 8);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_inclusion_proof_verifies_and_every_tampering_fails(
        size in 1u64..600, pick in any::<u64>(), bit in 0usize..256, junk in any::<[u8; 32]>()
    ) {
        // One extra leaf, so the root of the next size is at hand for lies.
        let leaves: Vec<Vec<u8>> = (0..=size).map(|i| i.to_be_bytes().to_vec()).collect();
        let (store, hashes) = tree(&leaves);
        let next_root = tree_root(size + 1, &store).unwrap();
        let root = tree_root(size, &store).unwrap();
        let index = pick % size;
        let proof = prove_inclusion(size, index, &store).unwrap();
        prop_assert!(verify_inclusion(&proof, size, &root, index, &hashes[index as usize]).is_ok());

        let leaf = hashes[index as usize];
        // Flipped leaf, root, or any proof element.
        prop_assert!(verify_inclusion(&proof, size, &root, index, &flip(&leaf, bit)).is_err());
        prop_assert!(verify_inclusion(&proof, size, &flip(&root, bit), index, &leaf).is_err());
        for k in 0..proof.len() {
            let mut bad = proof.clone();
            bad[k] = flip(&bad[k], bit);
            prop_assert!(verify_inclusion(&bad, size, &root, index, &leaf).is_err());
        }
        // Truncated and extended proofs.
        if !proof.is_empty() {
            prop_assert!(verify_inclusion(&proof[..proof.len() - 1], size, &root, index, &leaf).is_err());
        }
        let mut longer = proof.clone();
        longer.push(Hash(junk));
        prop_assert!(verify_inclusion(&longer, size, &root, index, &leaf).is_err());
        // Wrong index, and lies about the size.
        if size > 1 {
            let other = (index + 1) % size;
            prop_assert!(verify_inclusion(&proof, size, &root, other, &leaf).is_err());
        }
        // A root binds its size only through the signed checkpoint, so the
        // meaningful lie pairs another size with that size's own root.
        prop_assert!(verify_inclusion(&proof, size + 1, &next_root, index, &leaf).is_err());
        prop_assert!(verify_inclusion(&proof, size, &root, size, &leaf).is_err());
        // Another leaf's hash at this index.
        if size > 1 {
            let other = hashes[((index + 1) % size) as usize];
            prop_assert!(verify_inclusion(&proof, size, &root, index, &other).is_err());
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_every_tampering_fails(
        new_size in 1u64..600, pick in any::<u64>(), bit in 0usize..256, junk in any::<[u8; 32]>()
    ) {
        let leaves: Vec<Vec<u8>> = (0..=new_size).map(|i| i.to_le_bytes().to_vec()).collect();
        let (store, _) = tree(&leaves);
        let next_root = tree_root(new_size + 1, &store).unwrap();
        let old_size = 1 + pick % new_size;
        let old_root = tree_root(old_size, &store).unwrap();
        let new_root = tree_root(new_size, &store).unwrap();
        let proof = prove_consistency(old_size, new_size, &store).unwrap();
        prop_assert!(verify_consistency(&proof, old_size, &old_root, new_size, &new_root).is_ok());

        prop_assert!(verify_consistency(&proof, old_size, &flip(&old_root, bit), new_size, &new_root).is_err());
        prop_assert!(verify_consistency(&proof, old_size, &old_root, new_size, &flip(&new_root, bit)).is_err());
        for k in 0..proof.len() {
            let mut bad = proof.clone();
            bad[k] = flip(&bad[k], bit);
            prop_assert!(verify_consistency(&bad, old_size, &old_root, new_size, &new_root).is_err());
        }
        if !proof.is_empty() {
            prop_assert!(verify_consistency(&proof[..proof.len() - 1], old_size, &old_root, new_size, &new_root).is_err());
        }
        let mut longer = proof.clone();
        longer.push(Hash(junk));
        prop_assert!(verify_consistency(&longer, old_size, &old_root, new_size, &new_root).is_err());
        // Lies about either size, each paired with that size's real root.
        prop_assert!(verify_consistency(&proof, old_size, &old_root, new_size + 1, &next_root).is_err());
        if old_size < new_size {
            let r = tree_root(old_size + 1, &store).unwrap();
            prop_assert!(verify_consistency(&proof, old_size + 1, &r, new_size, &new_root).is_err());
        }
        if old_size > 1 {
            let r = tree_root(old_size - 1, &store).unwrap();
            prop_assert!(verify_consistency(&proof, old_size - 1, &r, new_size, &new_root).is_err());
        }
        prop_assert!(verify_consistency(&proof, 0, &old_root, new_size, &new_root).is_err());
    }

    #[test]
    fn batched_appends_match_one_at_a_time(sizes in proptest::collection::vec(1usize..40, 1..12)) {
        let total: usize = sizes.iter().sum();
        let hashes: Vec<Hash> = (0..total).map(|i| leaf_hash(&(i as u64).to_be_bytes())).collect();
        let mut one = MemoryHashes::default();
        for (i, h) in hashes.iter().enumerate() {
            let new = append_leaves(i as u64, std::slice::from_ref(h), &one).unwrap();
            one.insert_all(new);
        }
        let mut batched = MemoryHashes::default();
        let mut at = 0;
        for s in sizes {
            let new = append_leaves(at as u64, &hashes[at..at + s], &batched).unwrap();
            batched.insert_all(new);
            at += s;
        }
        prop_assert_eq!(tree_root(total as u64, &one).unwrap(), tree_root(total as u64, &batched).unwrap());
    }
}

#[test]
fn missing_hashes_are_an_error_not_a_panic() {
    let store = MemoryHashes::default();
    assert!(tree_root(10, &store).is_err());
    assert!(prove_inclusion(10, 3, &store).is_err());
    assert!(prove_inclusion(10, 10, &store).is_err());
    assert!(prove_consistency(0, 10, &store).is_err());
    assert!(prove_consistency(11, 10, &store).is_err());
}

#[test]
fn equal_sizes_need_an_empty_proof_and_equal_roots() {
    let (store, _) = tree(&rfc6962_leaves());
    let r = tree_root(5, &store).unwrap();
    assert!(verify_consistency(&[], 5, &r, 5, &r).is_ok());
    assert!(verify_consistency(&[r], 5, &r, 5, &r).is_err());
    assert!(verify_consistency(&[], 5, &r, 5, &flip(&r, 0)).is_err());
}
