//! Shared fixtures of the fuzz targets: a small real log, built once per
//! process through the server's own admission path (`custody-admission`
//! over a `MemoryStore`), with fixed keys, so that every target checks
//! its input against the same registry, log key and checkpoint, and the
//! seed corpus (`examples/gen_corpus.rs`) holds inputs that verify.
//!
//! Nothing here is random: the keys come from fixed seeds, so a crash
//! found on one machine reproduces on any other.

use std::sync::OnceLock;

use custody_admission::{grow_tree, sequence_batch, StoreHashes};
use custody_domain::{Digest, Genesis, Registry, SignedEnvelope};
use custody_log::{
    append_leaves, leaf_hash, tree_root, Hash, LogSigner, LogVerifier, MemoryHashes,
};
use custody_proto::v1;
use custody_store::{index, Commit, LogStore, MemoryStore};
use ed25519_dalek::SigningKey;
use prost::Message as _;
use rand_core::SeedableRng as _;

/// `ORIGIN` is the fixture log's origin, and its log key's name.
pub const ORIGIN: &str = "fuzz.example/custody";

/// One second in Unix nanoseconds.
pub const SEC: i64 = 1_000_000_000;

/// `T0` is when the fixture log's custody events happen
/// (2026-11-26T12:00:00Z).
pub const T0: i64 = 1_795_694_400 * SEC;

/// `ASSET` is the asset the fixture log captures and copies one by one.
pub const ASSET: Digest = [0xaa; 32];

/// `MANIFEST` is the members of the fixture log's bulk capture, sorted.
pub const MANIFEST: [Digest; 3] = [[0x01; 32], [0x02; 32], [0x03; 32]];

/// `Fixture` is the fixture log: what the targets verify their inputs
/// against, and what the corpus generator writes seeds from.
pub struct Fixture {
    /// The genesis entry's content.
    pub genesis: Genesis,
    /// The registry after every entry.
    pub registry: Registry,
    /// The log, as custodyd stores it.
    pub store: MemoryStore,
    /// Every entry's bytes, in log order.
    pub entries: Vec<Vec<u8>>,
    /// Every event's signed envelope, by log index (none for genesis).
    pub envelopes: Vec<Option<SignedEnvelope>>,
    /// The log's tree.
    pub hashes: MemoryHashes,
    /// The log key's signer.
    pub signer: LogSigner,
    /// The log key's private key string, for signing arbitrary notes.
    pub signer_key: String,
    /// The pinned log key.
    pub verifier: LogVerifier,
    /// The signed checkpoint of the whole log.
    pub note: Vec<u8>,
    /// The bulk capture's manifest root.
    pub manifest_root: Digest,
    /// The integration time of the last entry.
    pub last_integrated: i64,
}

/// `party_key` is the fixed signing key of one of the fixture's parties:
/// `owner` (the data owner), `cam` and `vendor`; any other party gets a
/// key no registry entry names.
pub fn party_key(party: &str) -> SigningKey {
    let seed = match party {
        "owner" => 1,
        "cam" => 2,
        "vendor" => 3,
        _ => 4,
    };
    SigningKey::from_bytes(&[seed; 32])
}

/// `uuid` is a fixed version-4 UUID, the form event ids take.
pub fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// `custody` is a custody action body built by `f`.
pub fn custody(f: impl FnOnce(&mut v1::CustodyAction)) -> v1::event::Body {
    let mut a = v1::CustodyAction::default();
    f(&mut a);
    v1::event::Body::Custody(a)
}

/// `manifest_tree` is the tree of a manifest's members (leaves
/// `SHA-256(0x00 ‖ digest)`), as custodyd's PutManifest computes it, and
/// its root.
pub fn manifest_tree(members: &[Digest]) -> (Vec<(u64, Hash)>, Option<Digest>) {
    let leaves: Vec<Hash> = members.iter().map(|d| leaf_hash(d)).collect();
    let Ok(stored) = append_leaves(0, &leaves, &MemoryHashes::default()) else {
        return (Vec::new(), None);
    };
    let mut m = MemoryHashes::default();
    m.insert_all(stored.iter().copied());
    let root = tree_root(leaves.len() as u64, &m).ok().map(|h| h.0);
    (stored, root)
}

/// `fixture` is the fixture log, built on first use.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(build)
}

/// The events of the fixture log after genesis: (reporter, body, event
/// time); each is integrated 10 s after it happens.
fn events(manifest: &v1::Manifest) -> Vec<(&'static str, v1::event::Body, i64)> {
    let party = |id: &str, kind: v1::PartyKind| {
        v1::event::Body::PartyRegistered(v1::PartyRegistered {
            party_id: id.into(),
            kind: kind as i32,
            acts_on_behalf_of: "owner".into(),
        })
    };
    vec![
        ("owner", party("cam", v1::PartyKind::Prime), T0 - 95 * SEC),
        (
            "owner",
            party("vendor", v1::PartyKind::Partner),
            T0 - 94 * SEC,
        ),
        (
            "owner",
            v1::event::Body::SystemRegistered(v1::SystemRegistered {
                system_id: "cam-sys".into(),
                owner_party: "cam".into(),
                ..Default::default()
            }),
            T0 - 90 * SEC,
        ),
        (
            "owner",
            v1::event::Body::KeyAdded(v1::KeyAdded {
                party_id: "cam".into(),
                public_key: party_key("cam").verifying_key().to_bytes().to_vec(),
                ..Default::default()
            }),
            T0 - 80 * SEC,
        ),
        (
            "owner",
            v1::event::Body::SystemRegistered(v1::SystemRegistered {
                system_id: "vendor-sys".into(),
                owner_party: "vendor".into(),
                ..Default::default()
            }),
            T0 - 70 * SEC,
        ),
        (
            "owner",
            v1::event::Body::KeyAdded(v1::KeyAdded {
                party_id: "vendor".into(),
                public_key: party_key("vendor").verifying_key().to_bytes().to_vec(),
                ..Default::default()
            }),
            T0 - 60 * SEC,
        ),
        (
            "cam",
            custody(|x| {
                x.action = v1::CustodyActionKind::Capture as i32;
                x.actor = "cam".into();
                x.asset_digest = ASSET.to_vec();
                x.to_system = "cam-sys".into();
                x.modality = v1::Modality::FaceImage as i32;
                x.subject_class = v1::SubjectClass::Citizen as i32;
            }),
            T0,
        ),
        (
            "cam",
            custody(|x| {
                x.action = v1::CustodyActionKind::Capture as i32;
                x.actor = "cam".into();
                x.manifest = Some(manifest.clone());
                x.to_system = "cam-sys".into();
                x.modality = v1::Modality::PlateImage as i32;
                x.subject_class = v1::SubjectClass::Unknown as i32;
            }),
            T0 + SEC,
        ),
        (
            "vendor",
            custody(|x| {
                x.action = v1::CustodyActionKind::Copy as i32;
                x.actor = "vendor".into();
                x.asset_digest = ASSET.to_vec();
                x.from_system = "cam-sys".into();
                x.to_system = "vendor-sys".into();
            }),
            T0 + 2 * SEC,
        ),
        (
            "vendor",
            custody(|x| {
                x.action = v1::CustodyActionKind::Receipt as i32;
                x.actor = "vendor".into();
                // The COPY just before.
                x.receipt_of = 9;
            }),
            T0 + 3 * SEC,
        ),
        (
            "vendor",
            custody(|x| {
                x.action = v1::CustodyActionKind::Delete as i32;
                x.actor = "vendor".into();
                x.asset_digest = ASSET.to_vec();
                x.from_system = "vendor-sys".into();
                x.delete_method = v1::DeleteMethod::Overwrite as i32;
            }),
            T0 + 4 * SEC,
        ),
    ]
}

/// `build` makes the fixture log. A fixture that does not build is a bug
/// in the fixture (or an admission rule changed), so it panics saying so.
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
fn build() -> Fixture {
    let owner = party_key("owner");
    let genesis = Genesis {
        origin: ORIGIN.into(),
        owner_party_id: "owner".into(),
        owner_public_key: owner.verifying_key().to_bytes(),
    };
    let mut registry = Registry::new(&genesis).expect("fixture genesis");
    let store = MemoryStore::default();
    let genesis_entry = v1::LogEntry {
        content: Some(v1::log_entry::Content::Genesis(v1::Genesis {
            origin: ORIGIN.into(),
            owner_party_id: "owner".into(),
            owner_public_key: owner.verifying_key().to_bytes().to_vec(),
        })),
        integrated_time_unix_nanos: T0 - 100 * SEC,
    }
    .encode_to_vec();
    let mut commit = Commit {
        first_index: 0,
        entries: vec![genesis_entry],
        ..Commit::default()
    };
    grow_tree(&mut commit, &StoreHashes(&store)).expect("fixture genesis tree");
    store.commit(&commit).expect("fixture genesis commit");

    // The bulk capture's manifest, uploaded as PutManifest stores it.
    let (stored, root) = manifest_tree(&MANIFEST);
    let manifest_root = root.expect("fixture manifest root");
    let stored: Vec<(u64, [u8; 32])> = stored.into_iter().map(|(i, h)| (i, h.0)).collect();
    store
        .index_write(&index::manifest_writes(&manifest_root, &MANIFEST, &stored))
        .expect("fixture manifest");
    let manifest = v1::Manifest {
        root: manifest_root.to_vec(),
        count: MANIFEST.len() as u64,
    };

    let mut envelopes = vec![None];
    let mut last_integrated = T0 - 100 * SEC;
    for (n, (reporter, body, t)) in events(&manifest).into_iter().enumerate() {
        let e = v1::Event {
            event_id: uuid(n as u64 + 1),
            event_time_unix_nanos: t,
            reporter: reporter.into(),
            reporter_seq: n as u64 + 1,
            log_origin: ORIGIN.into(),
            body: Some(body),
        };
        let env = SignedEnvelope::sign(e.encode_to_vec(), &[&party_key(reporter)]);
        let size = store.tree_size().expect("fixture size");
        let integrated = t + 10 * SEC;
        let mut seq = sequence_batch(&store, &registry, size, &[&env], integrated);
        if let Some(Err(r)) = seq.verdicts.first() {
            panic!("fixture event {} refused: {r}", size);
        }
        grow_tree(&mut seq.commit, &StoreHashes(&store)).expect("fixture tree");
        store.commit(&seq.commit).expect("fixture commit");
        if let Some(r) = seq.registry {
            registry = r;
        }
        envelopes.push(Some(env));
        last_integrated = integrated;
    }

    let size = store.tree_size().expect("fixture size");
    let entries = store.read_entries(0, size).expect("fixture entries");
    let mut hashes = MemoryHashes::default();
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    hashes.insert_all(append_leaves(0, &leaves, &hashes).expect("fixture hashes"));

    // A deterministic log key: generated from a fixed seed.
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([9; 32]);
    let (signer_key, _) = signed_note::generate_key(&mut rng, ORIGIN);
    let signer = LogSigner::from_key_string(&signer_key).expect("fixture log key");
    let verifier = LogVerifier::new(signer.verifier_key()).expect("fixture verifier key");
    let root = tree_root(size, &hashes).expect("fixture root");
    let note = signer.sign(size, &root).expect("fixture checkpoint");
    store
        .put_checkpoint(size, &note)
        .expect("fixture checkpoint");

    Fixture {
        genesis,
        registry,
        store,
        entries,
        envelopes,
        hashes,
        signer,
        signer_key,
        verifier,
        note,
        manifest_root,
        last_integrated,
    }
}

/// `Bytes` reads structured values off the front of a fuzz input: each
/// read takes what it needs, or zeroes once the input runs out, so every
/// input means something and short inputs mean small values.
pub struct Bytes<'a>(pub &'a [u8]);

impl<'a> Bytes<'a> {
    /// `take` is the next `n` bytes, fewer at the end.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    /// `u8` is the next byte.
    pub fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    /// `u64` is the next 8 bytes, big-endian.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let t = self.take(8);
        b[..t.len()].copy_from_slice(t);
        u64::from_be_bytes(b)
    }

    /// `i64` is the next 8 bytes, big-endian.
    pub fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.u64().to_be_bytes())
    }

    /// `digest` is the next 32 bytes, zero-padded.
    pub fn digest(&mut self) -> Digest {
        let mut d = [0u8; 32];
        let t = self.take(32);
        d[..t.len()].copy_from_slice(t);
        d
    }

    /// `chunk` is a length byte, then that many bytes.
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.take(n)
    }

    /// `rest` is everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.0.len())
    }
}
