//! The witness's memory: for each known log, the latest checkpoint it
//! cosigned, kept in a directory with one file per log.
//!
//! A file is named by the lowercase hex SHA-256 of the log's origin (the
//! "origin hash" of C2SP `tlog-witness`, so no origin can name a path) and
//! holds the cosigned checkpoint note exactly: the log's note with the
//! witness's cosignature line added. It is replaced atomically: written to
//! `<name>.tmp`, fsync'd, renamed over the old file, and the directory
//! fsync'd, so after a crash either the old or the new checkpoint is there,
//! whole.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use custody_log::{Hash, LogVerifier};
use sha2::{Digest, Sha256};

/// `Recorded` is the latest checkpoint a witness cosigned for one log.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The tree size.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
    /// The note as cosigned: the log's signed note with the witness's
    /// cosignature line added.
    pub note: Vec<u8>,
}

/// `StateError` is why the witness state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file or the directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A state file is not a checkpoint of the log it is named for. The
    /// witness refuses to start rather than forget what it cosigned.
    #[error("{}: not a checkpoint of {origin:?}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The origin the file is named for.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two configured log keys have the same origin.
    #[error("log origin {0:?} is configured twice")]
    DuplicateLog(String),
}

/// `LogSlot` is one known log: its key, its file and its latest cosigned
/// checkpoint. The mutex is held from the check of a request's old size
/// until its checkpoint is persisted, so requests for one log are
/// serialised (C2SP `tlog-witness`: the check and the update "must be
/// performed atomically").
pub(crate) struct LogSlot {
    pub(crate) verifier: LogVerifier,
    path: PathBuf,
    latest: Mutex<Option<Recorded>>,
}

impl LogSlot {
    /// `lock` takes the log's lock. A poisoned lock is taken over: the
    /// recorded checkpoint changes only after it is persisted, so it is
    /// never half-updated.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<Recorded>> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `WitnessState` is the latest cosigned checkpoint of every known log,
/// loaded from and persisted to a directory.
pub struct WitnessState {
    dir: PathBuf,
    logs: HashMap<String, LogSlot>,
}

impl std::fmt::Debug for WitnessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessState")
            .field("dir", &self.dir)
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WitnessState {
    /// `open` loads the state of the logs `logs` from `dir`, creating the
    /// directory if it is missing. A log without a file has never been
    /// cosigned. Files of logs not configured are left alone.
    ///
    /// # Errors
    ///
    /// [`StateError::Io`] if the directory or a file cannot be read;
    /// [`StateError::Corrupt`] if a file is not a checkpoint of its log;
    /// [`StateError::DuplicateLog`] if two keys share an origin.
    pub fn open(
        dir: impl AsRef<Path>,
        logs: impl IntoIterator<Item = LogVerifier>,
    ) -> Result<Self, StateError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| StateError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut slots = HashMap::new();
        for verifier in logs {
            let origin = verifier.origin().to_owned();
            if slots.contains_key(&origin) {
                return Err(StateError::DuplicateLog(origin));
            }
            let path = dir.join(origin_hash(&origin));
            let latest = load(&path, &origin)?;
            slots.insert(
                origin,
                LogSlot {
                    verifier,
                    path,
                    latest: Mutex::new(latest),
                },
            );
        }
        Ok(Self { dir, logs: slots })
    }

    /// `dir` is the state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `origins` lists the known logs' origins, in no particular order.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.logs.keys().map(String::as_str)
    }

    /// `latest` is the latest checkpoint cosigned for `origin`, or `None`
    /// if the log is unknown or was never cosigned.
    pub fn latest(&self, origin: &str) -> Option<Recorded> {
        self.logs.get(origin).and_then(|s| s.lock().clone())
    }

    pub(crate) fn slot(&self, origin: &str) -> Option<&LogSlot> {
        self.logs.get(origin)
    }

    /// `persist` replaces `slot`'s file with `record`, atomically and
    /// durably. The caller holds the slot's lock and updates it after.
    pub(crate) fn persist(&self, slot: &LogSlot, record: &Recorded) -> Result<(), StateError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        let tmp = slot.path.with_extension("tmp");
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&record.note).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, &slot.path).map_err(io(&slot.path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }
}

/// `origin_hash` is the lowercase hex SHA-256 of an origin, the name of
/// its state file.
fn origin_hash(origin: &str) -> String {
    Sha256::digest(origin.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `load` reads one log's state file, if there is one.
fn load(path: &Path, origin: &str) -> Result<Option<Recorded>, StateError> {
    let note = match fs::read(path) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let corrupt = |reason: &str| StateError::Corrupt {
        path: path.to_path_buf(),
        origin: origin.to_owned(),
        reason: reason.to_owned(),
    };
    // The log's signature is not checked again: the file is the witness's
    // own record, and the log's key may since have been rotated.
    let text = custody_log::note_text(&note).map_err(|_| corrupt("not a signed note"))?;
    let cp =
        tlog_tiles::Checkpoint::from_bytes(&text).map_err(|_| corrupt("not a checkpoint body"))?;
    if cp.origin() != origin {
        return Err(corrupt(&format!("its origin is {:?}", cp.origin())));
    }
    Ok(Some(Recorded {
        size: cp.size(),
        root: *cp.hash(),
        note,
    }))
}
