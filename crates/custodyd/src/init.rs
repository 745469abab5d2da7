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

/// `read_signing_key` loads the log's private key from `path` (the
/// `PRIVATE+KEY+...` note format `custodyd init` and `custodyd keygen`
/// write). The error names the file but never repeats its contents.
///
/// # Errors
///
/// If the file is unreadable or holds no such key.
pub fn read_signing_key(path: &Path) -> anyhow::Result<LogSigner> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read the log's signing key {}", path.display()))?;
    LogSigner::from_key_string(&text).map_err(|_| {
        anyhow::anyhow!(
            "{} is not a log signing key (PRIVATE+KEY+<origin>+...): make one with `custodyd keygen`",
            path.display()
        )
    })
}

/// `write_signing_key` makes a new key for `origin` in the new file
/// `path`, mode 0600 from the moment it exists, and returns its signer.
///
/// # Errors
///
/// If `origin` is not a valid key name, or `path` exists or cannot be
/// written.
pub fn write_signing_key(path: &Path, origin: &str) -> anyhow::Result<LogSigner> {
    let (signer, skey) =
        LogSigner::generate(origin, &mut rand_core::OsRng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {} (it must not exist)", path.display()))?;
    f.write_all(skey.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(signer)
}

/// `run` initialises a new log in `data`. It prints the verifier key.
///
/// The log's signing key is made as `data/log.key`, or, with
/// `signing_key`, kept in that file instead (a secret store's mount, say):
/// an existing key there is used, and a missing one is made there. The
/// data directory then holds no private key, and `custodyd serve` must be
/// given the same file (`signing_key`).
///
/// # Errors
///
/// If `data` already holds a log, the origin is invalid, an existing key
/// is for another origin, or any write fails.
pub fn run(
    data: &Path,
    origin: &str,
    owner_key: &Path,
    owner_id: &str,
    signing_key: Option<&Path>,
) -> anyhow::Result<String> {
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
    let signer = match signing_key {
        Some(path) if path.exists() => {
            let signer = read_signing_key(path)?;
            if signer.origin() != origin {
                bail!(
                    "--signing-key: {} is a key for the log {:?}, not {origin:?}",
                    path.display(),
                    signer.origin()
                );
            }
            signer
        }
        Some(path) => write_signing_key(path, origin)?,
        None => write_signing_key(&paths.key, origin)?,
    };
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
