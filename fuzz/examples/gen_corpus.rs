//! Writes the seed corpus: a few valid inputs per target, from the fixture
//! log (`src/lib.rs`), so the fuzzer starts from inputs that verify.
//!
//! ```sh
//! cd fuzz && cargo run --example gen_corpus -- corpus
//! ```
//!
//! It is deterministic, but for `audit_state/legacy-replay`: the
//! `HashMap`s in a `Replay` serialise in a per-process order, so that
//! file's bytes (not its content) differ from run to run.

use std::path::Path;
use std::sync::Arc;

use bincode::Options as _;
use custody_domain::replay::{ManifestSource, Replay};
use custody_domain::{Digest, ManifestRef, Refusal};
use custody_evidence::{verify_bundle, Answer, Bundle, HistoryEvent, Question, TlogProof};
use custody_fuzz::{fixture, Fixture, ASSET, MANIFEST};
use custody_log::{encode_entry_bundle, prove_inclusion};
use custody_proto::{decode_entry, decode_event, envelope_to_proto, v1, Entry};
use custody_store::index;
use prost::Message as _;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let dir = Path::new(&dir);
    let fx = fixture();

    // event_decode: entries, an Append's SignedEvent, event bodies.
    let d = dir.join("event_decode");
    for (i, e) in fx.entries.iter().enumerate() {
        write(&d, &format!("entry-{i:02}"), e)?;
    }
    for i in [4usize, 7, 8, 9, 10] {
        if let Some(Some(env)) = fx.envelopes.get(i) {
            write(
                &d,
                &format!("signed-event-{i:02}"),
                &envelope_to_proto(env).encode_to_vec(),
            )?;
            write(&d, &format!("event-body-{i:02}"), &env.body)?;
        }
    }

    // signed_note: the checkpoint note, its body, the verifier key.
    let d = dir.join("signed_note");
    write(&d, "checkpoint-note", &fx.note)?;
    let body_end = fx
        .note
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(fx.note.len(), |p| p + 1);
    write(&d, "checkpoint-body", &fx.note[..body_end])?;
    write(&d, "verifier-key", fx.signer.verifier_key().as_bytes())?;

    // tile_path: paths of each form, and an entry bundle.
    let d = dir.join("tile_path");
    for (name, p) in [
        ("hash-full", "tile/0/000"),
        ("hash-partial", "tile/0/x001/234.p/5"),
        ("hash-level3", "tile/3/x001/x234/067.p/8"),
        ("entries-partial", "tile/entries/x001/234.p/1"),
        ("entries-full", "tile/entries/999"),
        ("non-canonical", "0/x000/001"),
    ] {
        write(&d, name, p.as_bytes())?;
    }
    let bundle = encode_entry_bundle(fx.entries.iter().map(|e| e.as_slice()))?;
    write(&d, "entry-bundle", &bundle)?;

    // evidence_bundle: a history bundle that verifies, its evidence, a
    // tlog-proof.
    let d = dir.join("evidence_bundle");
    let (bundle, evidence) = history_bundle(fx)?;
    write(&d, "history-bundle.json", &bundle)?;
    write(&d, "history-evidence", &evidence.encode_to_vec())?;
    let p = TlogProof {
        extra: None,
        index: 5,
        proof: proven(fx, 5)?.proof,
        checkpoint: fx.note.clone(),
    };
    write(&d, "tlog-proof", &p.encode())?;

    // manifest: an upload, a membership proof, a manifest in an event.
    let d = dir.join("manifest");
    let upload = v1::PutManifestRequest {
        members: MANIFEST.iter().map(|m| m.to_vec()).collect(),
        expected_root: fx.manifest_root.to_vec(),
    };
    let mut input = vec![0u8];
    for v in [0u64, 2, 1, 2] {
        input.extend_from_slice(&v.to_be_bytes());
    }
    input.extend(upload.encode_to_vec());
    write(&d, "upload", &input)?;
    let (stored, _) = custody_fuzz::manifest_tree(&MANIFEST);
    let mut tree = custody_log::MemoryHashes::default();
    tree.insert_all(stored);
    let proof = v1::MembershipProof {
        manifest_root: fx.manifest_root.to_vec(),
        count: MANIFEST.len() as u64,
        asset: MANIFEST[1].to_vec(),
        index: 1,
        proof: prove_inclusion(MANIFEST.len() as u64, 1, &tree)?
            .into_iter()
            .map(|h| h.0.to_vec())
            .collect(),
    };
    write(
        &d,
        "membership-proof",
        &[&[1u8][..], &proof.encode_to_vec()].concat(),
    )?;
    let m = v1::Manifest {
        root: fx.manifest_root.to_vec(),
        count: MANIFEST.len() as u64,
    };
    write(
        &d,
        "manifest-in-event",
        &[&[2u8][..], &m.encode_to_vec()].concat(),
    )?;

    // audit_state: a store with a few records changed; a saved Replay.
    let d = dir.join("audit_state");
    let mut input = vec![0u8, 0];
    input.extend_from_slice(&(1i64 << 40).to_be_bytes());
    // Records are (family, op: >= 64 puts, key length, key[, value
    // length, value]): an asset record cut short, then the COPY's
    // transfer record (entry 9) deleted.
    let meta = fx_record(fx, index_cf("assets"), &ASSET)?;
    input.extend([index_cf("assets"), 255, 32]);
    input.extend_from_slice(&ASSET);
    input.push(u8::try_from(meta.len().saturating_sub(1).min(255))?);
    input.extend_from_slice(&meta[..meta.len().saturating_sub(1).min(255)]);
    input.extend([index_cf("transfers"), 0, 8]);
    input.extend_from_slice(&9u64.to_be_bytes());
    write(&d, "store-records", &input)?;
    let replay = replay(fx)?;
    let bytes = bincode::DefaultOptions::new().serialize(&replay)?;
    write(&d, "legacy-replay", &[&[1u8][..], &bytes].concat())?;
    Ok(())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)?;
    println!("{}/{name}: {} bytes", dir.display(), bytes.len());
    Ok(())
}

fn proven(fx: &Fixture, i: u64) -> Result<v1::ProvenEntry> {
    let size = fx.entries.len() as u64;
    Ok(v1::ProvenEntry {
        index: i,
        entry: fx.entries[usize::try_from(i)?].clone(),
        proof: prove_inclusion(size, i, &fx.hashes)?
            .into_iter()
            .map(|h| h.0.to_vec())
            .collect(),
    })
}

/// `history_bundle` is the bundle of the history of [`ASSET`], with the
/// entries the fixture store lists for it and the fewest registry entries
/// that make it verify.
fn history_bundle(fx: &Fixture) -> Result<(Vec<u8>, v1::Evidence)> {
    let indexes = index::asset_entries(&fx.store, &ASSET, None, 100)?;
    let events = indexes
        .iter()
        .map(|i| {
            HistoryEvent::from_entry(*i, &fx.entries[usize::try_from(*i)?]).map_err(Into::into)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut last = String::new();
    for registry in [&[0u64, 4, 6][..], &[0, 3, 4, 5, 6], &[0, 1, 2, 3, 4, 5, 6]] {
        let evidence = v1::Evidence {
            checkpoint: fx.note.clone(),
            tree_size: fx.entries.len() as u64,
            entries: indexes
                .iter()
                .map(|i| proven(fx, *i))
                .collect::<Result<_>>()?,
            registry: registry
                .iter()
                .map(|i| proven(fx, *i))
                .collect::<Result<_>>()?,
            memberships: Vec::new(),
        };
        let bundle = Bundle::new(
            Question::History { asset: ASSET },
            Answer::History {
                events: events.clone(),
            },
            &evidence,
        );
        let bytes = bundle.to_bytes()?;
        match verify_bundle(&bytes, &fx.verifier) {
            Ok(_) => return Ok((bytes, evidence)),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("no history bundle of the fixture verifies: {last}").into())
}

fn fx_record(fx: &Fixture, cf: u8, key: &[u8]) -> Result<Vec<u8>> {
    let cf = custody_store::IndexCf::ALL[usize::from(cf)];
    custody_store::IndexRead::index_get(&fx.store, cf, key)?
        .ok_or_else(|| format!("the fixture has no {} record", cf.name()).into())
}

/// `index_cf` is the input byte that picks a family in `audit_state`.
fn index_cf(name: &str) -> u8 {
    custody_store::IndexCf::ALL
        .iter()
        .position(|c| c.name() == name)
        .and_then(|p| u8::try_from(p).ok())
        .unwrap_or(0)
}

struct Manifests;

impl ManifestSource for Manifests {
    fn members(&self, m: &ManifestRef) -> std::result::Result<Option<Arc<Vec<Digest>>>, Refusal> {
        Ok((m.count == MANIFEST.len() as u64).then(|| Arc::new(MANIFEST.to_vec())))
    }
}

/// `replay` is the fixture log replayed in memory, as the audit did.
fn replay(fx: &Fixture) -> Result<Replay> {
    let mut r = Replay::new(&fx.genesis).map_err(|e| e.to_string())?;
    for (i, e) in fx.entries.iter().enumerate().skip(1) {
        let Ok(Entry::Event {
            envelope,
            integrated_time,
        }) = decode_entry(e)
        else {
            return Err(format!("fixture entry {i} is not an event").into());
        };
        let event = decode_event(&envelope.body).map_err(|e| e.to_string())?;
        let signers: Vec<_> = envelope.signatures.iter().map(|s| s.key_id).collect();
        r.apply(i as u64, &event, &signers, integrated_time, &Manifests)
            .map_err(|e| format!("replay of entry {i}: {e}"))?;
    }
    Ok(r)
}
