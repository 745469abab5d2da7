//! Prints a checkpoint signed by a fresh log key and cosigned by two fresh
//! witness keys, with the verifier keys, for checking by an independent
//! implementation (`tests/go/cosig/check.sh`).
//!
//! ```text
//! cargo run -p custody-log --example cosign [-- OUT_DIR]
//! ```
//!
//! With `OUT_DIR` it also writes there:
//!
//! - `note`: the checkpoint of a 10-leaf tree, cosigned by `w1` and `w2`;
//! - `log.vkey`, `w1.vkey`, `w2.vkey`: the keys that signed it;
//! - `other.vkey`: a key named like `w1` that signed nothing;
//! - `moved.note`: the checkpoint of the 11-leaf tree, signed by the log,
//!   carrying `w1`'s cosignature of the 10-leaf one;
//! - `retimed.note`: `note` with the time in `w1`'s cosignature changed.
//!
//! Each `*.note` but `note` must fail a check of `w1`'s cosignature.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use custody_log::{
    add_cosignatures, append_leaves, leaf_hash, note_text, tree_root, CosignatureSigner, LogSigner,
    MemoryHashes,
};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut rng = rand::rngs::OsRng;
    let (log, _) = LogSigner::generate("example.org/custody-log", &mut rng)?;
    let (w1, _) = CosignatureSigner::generate("example.org/w1", &mut rng)?;
    let (w2, _) = CosignatureSigner::generate("example.org/w2", &mut rng)?;
    let (other, _) = CosignatureSigner::generate("example.org/w1", &mut rng)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();

    let mut store = MemoryHashes::default();
    let leaves: Vec<_> = (0u8..11).map(|i| leaf_hash(&[i; 5])).collect();
    store.insert_all(append_leaves(0, &leaves, &store)?);
    let note10 = log.sign(10, &tree_root(10, &store)?)?;
    let note11 = log.sign(11, &tree_root(11, &store)?)?;

    let body10 = note_text(&note10)?;
    let w1_line = w1.cosign(&body10, now)?;
    let mut lines = w1_line.clone();
    lines.extend(w2.cosign(&body10, now)?);
    let note = add_cosignatures(&note10, &lines)?;
    let moved = add_cosignatures(&note11, &w1_line)?;
    let retimed = add_cosignatures(&note10, &retime(&w1_line)?)?;

    print!("{}", String::from_utf8(note.clone())?);
    println!();
    println!("log key:   {}", log.verifier_key());
    println!("w1 key:    {}", w1.verifier_key());
    println!("w2 key:    {}", w2.verifier_key());

    if let Some(dir) = std::env::args_os().nth(1) {
        let dir = Path::new(&dir);
        std::fs::create_dir_all(dir)?;
        let files: [(&str, &[u8]); 7] = [
            ("note", &note),
            ("moved.note", &moved),
            ("retimed.note", &retimed),
            ("log.vkey", log.verifier_key().as_bytes()),
            ("w1.vkey", w1.verifier_key().as_bytes()),
            ("w2.vkey", w2.verifier_key().as_bytes()),
            ("other.vkey", other.verifier_key().as_bytes()),
        ];
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes)?;
        }
    }
    Ok(())
}

/// `retime` adds one second to the time inside a cosignature line, leaving
/// its signature as it was.
fn retime(line: &[u8]) -> Result<Vec<u8>, Error> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let line = std::str::from_utf8(line)?.trim_end();
    let (name, sig) = line.rsplit_once(' ').ok_or("no space in line")?;
    let mut sig = b64.decode(sig)?;
    let time: [u8; 8] = sig.get(4..12).ok_or("short cosignature")?.try_into()?;
    let time = u64::from_be_bytes(time) + 1;
    sig[4..12].copy_from_slice(&time.to_be_bytes());
    Ok(format!("{name} {}\n", b64.encode(sig)).into_bytes())
}
