//! `custodyd init`: create the database, the log key and the genesis entry.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use custody_domain::Genesis;
use custody_log::{tree_root, LogSigner};
use custody_proto::v1;
use custody_store::{Commit, LogStore};
use custody_store_rocks::RocksStore;
use prost::Message as _;

use crate::state::StoreHashes;
use custody_admission::grow_tree;

/// `Paths` are the files under a data directory.
pub struct Paths {
    /// The RocksDB database.
    pub db: PathBuf,
    /// The log's private key, mode 0600.
    pub key: PathBuf,
    /// The log's public verifier key string.
    pub vkey: PathBuf,
}

impl Paths {
    /// `new` lays the files out under `data`.
    pub fn new(data: &Path) -> Self {
        Self {
            db: data.join("db"),
            key: data.join("log.key"),
            vkey: data.join("log.vkey"),
        }
    }
}

/// `read_public_key` reads a `custody keygen` public key file
/// (`ed25519:<base64>`).
///
/// # Errors
///
/// If the file is unreadable or not such a key.
pub fn read_public_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read public key {}", path.display()))?;
    custody_domain::keyfile::parse_public(&text)
        .with_context(|| format!("public key {}", path.display()))
}

/// `run` initialises a new log in `data`. It prints the verifier key.
///
/// # Errors
///
/// If `data` already holds a log, the origin is invalid, or any write fails.
pub fn run(data: &Path, origin: &str, owner_key: &Path, owner_id: &str) -> anyhow::Result<String> {
    let paths = Paths::new(data);
    if paths.key.exists() || paths.db.exists() {
        bail!(
            "{} already holds a log; refusing to overwrite it",
            data.display()
        );
    }
    let owner_public_key = read_public_key(owner_key)?;
    let genesis = Genesis {
        origin: origin.to_owned(),
        owner_party_id: owner_id.to_owned(),
        owner_public_key,
    };
    custody_domain::Registry::new(&genesis).map_err(|e| anyhow::anyhow!("{e}"))?;

    std::fs::create_dir_all(data).with_context(|| format!("create {}", data.display()))?;
    let (signer, skey) =
        LogSigner::generate(origin, &mut rand_core::OsRng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&paths.key)
        .with_context(|| format!("create {}", paths.key.display()))?;
    f.write_all(skey.as_bytes())?;
    f.sync_all()?;
    std::fs::write(&paths.vkey, format!("{}\n", signer.verifier_key()))
        .with_context(|| format!("write {}", paths.vkey.display()))?;

    let store = RocksStore::open(&paths.db)?;
    let entry = v1::LogEntry {
        content: Some(v1::log_entry::Content::Genesis(v1::Genesis {
            origin: origin.to_owned(),
            owner_party_id: owner_id.to_owned(),
            owner_public_key: owner_public_key.to_vec(),
        })),
        integrated_time_unix_nanos: now_nanos(),
    }
    .encode_to_vec();
    let mut commit = Commit {
        first_index: 0,
        entries: vec![entry],
        ..Commit::default()
    };
    grow_tree(&mut commit, &StoreHashes(&store))?;
    store.commit(&commit)?;
    let root = tree_root(1, &StoreHashes(&store))?;
    store.put_checkpoint(1, &signer.sign(1, &root)?)?;
    Ok(signer.verifier_key().to_owned())
}

/// `now_nanos` is the wall clock in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
