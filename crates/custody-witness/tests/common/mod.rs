//! Test logs and witnesses, built with custody-log's own append and proof
//! functions and signed with its own log keys.

#![allow(dead_code)] // Each test file uses its own part.

use std::path::Path;

use custody_log::{
    append_leaves, leaf_hash, prove_consistency, tree_root, CosignatureSigner, Hash, LogSigner,
    LogVerifier, MemoryHashes,
};
use custody_witness::{AddCheckpointRequest, AddError, Witness, WitnessState};

pub const ORIGIN: &str = "example.org/custody-log";

/// `TestLog` is a log: a key and a tree whose leaves depend on `seed`, so
/// two logs with one key and different seeds are a split view.
pub struct TestLog {
    skey: String,
    pub signer: LogSigner,
    store: MemoryHashes,
    size: u64,
    seed: u8,
}

impl TestLog {
    pub fn new(origin: &str) -> Self {
        let (_, skey) = LogSigner::generate(origin, &mut rand_core::OsRng).unwrap();
        Self::with_key(skey, 0)
    }

    pub fn with_key(skey: String, seed: u8) -> Self {
        Self {
            signer: LogSigner::from_key_string(&skey).unwrap(),
            skey,
            store: MemoryHashes::default(),
            size: 0,
            seed,
        }
    }

    /// `fork` is a log with the same key and different leaves.
    pub fn fork(&self, seed: u8) -> Self {
        Self::with_key(self.skey.clone(), seed)
    }

    pub fn grow(&mut self, n: u64) -> &mut Self {
        let leaves: Vec<Hash> = (self.size..self.size + n)
            .map(|i| leaf_hash(format!("{} {i}", self.seed).as_bytes()))
            .collect();
        let new = append_leaves(self.size, &leaves, &self.store).unwrap();
        self.store.insert_all(new);
        self.size += n;
        self
    }

    pub fn root(&self, size: u64) -> Hash {
        tree_root(size, &self.store).unwrap()
    }

    pub fn note(&self, size: u64) -> Vec<u8> {
        self.signer.sign(size, &self.root(size)).unwrap()
    }

    pub fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        if old == 0 {
            return vec![];
        }
        prove_consistency(old, new, &self.store).unwrap()
    }

    /// `request` is the add-checkpoint body for the checkpoint of `size`
    /// with a proof from `old`.
    pub fn request(&self, old: u64, size: u64) -> Vec<u8> {
        body(old, self.proof(old, size), self.note(size))
    }

    pub fn verifier(&self) -> LogVerifier {
        LogVerifier::new(self.signer.verifier_key()).unwrap()
    }
}

pub fn body(old_size: u64, proof: Vec<Hash>, note: Vec<u8>) -> Vec<u8> {
    AddCheckpointRequest {
        old_size,
        proof,
        note,
    }
    .encode()
    .unwrap()
}

pub fn witness_key() -> String {
    CosignatureSigner::generate("example.org/witness", &mut rand_core::OsRng)
        .unwrap()
        .1
}

pub fn open(dir: &Path, skey: &str, logs: &[&TestLog]) -> Witness {
    let state = WitnessState::open(dir, logs.iter().map(|l| l.verifier())).unwrap();
    Witness::new(CosignatureSigner::from_key_string(skey).unwrap(), state)
}

pub fn status(r: Result<Vec<u8>, AddError>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(e) => e.status(),
    }
}

/// `files` is the state directory's contents, to check that a refusal
/// changed nothing on disk.
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}
