//! Backup and restore of a data directory.
//!
//! A backup is a directory: `db/` (a RocksDB checkpoint: a consistent copy
//! of the database as of one moment, taken while ingest runs), the log's
//! key pair and access list, and `backup.json` ([`BackupInfo`]): the tree
//! size and the log's signed checkpoint that the copy holds.
//!
//! A running server holds its database, so `custodyd backup` asks it
//! through the data directory's admin socket (`DATA/admin/admin.sock`,
//! in a directory of mode 0700: only the server's own user, who can read the key anyway, may
//! connect). A stopped server's directory is copied directly. Either
//! way, the backup is then opened and checked, as a restore checks it:
//! the stored tree must hash to the signed root.
//!
//! `custodyd restore` checks a backup in a directory beside the target
//! before it moves it into place, so a restore that fails leaves nothing
//! behind. A restore returns the log to the backup's point: entries
//! acknowledged after it are gone, and checkpoints published after it are
//! not consistent with what the restored log signs next (witnesses and
//! `custody monitor` refuse it). Backups hold the signing key: keep them
//! as safe as the key.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use custody_log::LogVerifier;
use custody_store_rocks::RocksStore;

use crate::init::Paths;

/// The admin socket's place in a data directory: a socket in a
/// directory of its own, mode 0700, so no other user can reach it from
/// the moment it is bound.
pub const ADMIN_SOCKET: &str = "admin/admin.sock";

/// The backup's description's name in a backup directory.
pub const BACKUP_INFO: &str = "backup.json";

/// `BackupInfo` says what a backup holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupInfo {
    /// The log's origin line.
    pub origin: String,
    /// Entries in the copy.
    pub tree_size: u64,
    /// Entries the copy's latest signed checkpoint covers (at most
    /// `tree_size`).
    pub checkpoint_size: u64,
    /// That checkpoint, a signed note.
    pub checkpoint: String,
    /// The log's verifier key.
    pub verifier_key: String,
    /// When the backup was taken, RFC 3339.
    pub taken: String,
    /// Whether it holds the log's signing key (`log.key`): it does when
    /// the data directory does, not when the key is kept elsewhere
    /// (`signing_key`).
    #[serde(default)]
    pub holds_signing_key: bool,
}

/// `admin_socket` is the admin socket's path for data directory `data`.
pub fn admin_socket(data: &Path) -> PathBuf {
    data.join(ADMIN_SOCKET)
}

/// `snapshot` writes the database's checkpoint and the log's key files
/// to `out`, a new directory (mode 0700). It does not check the result:
/// [`seal`] does.
///
/// # Errors
///
/// When `out` exists, or a file cannot be written.
pub fn snapshot(store: &RocksStore, data: &Path, out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!("{} exists: a backup goes to a new directory", out.display());
    }
    private_dir(out)?;
    let (from, to) = (Paths::new(data), Paths::new(out));
    store.checkpoint_to(&to.db)?;
    // A key kept outside the data directory (`signing_key`) stays out
    // of its backups too.
    if from.key.exists() {
        copy_file(&from.key, &to.key, 0o600)?;
    }
    copy_file(&from.vkey, &to.vkey, 0o644)?;
    let access = crate::access::AccessFile::path(data);
    if access.exists() {
        copy_file(&access, &crate::access::AccessFile::path(out), 0o600)?;
    }
    Ok(())
}

/// `private_dir` makes the new directory `dir` (not its parents), mode
/// 0700 from the moment it exists: what it will hold is readable by no
/// other user at any point, and an existing directory or a link put in
/// its place is refused, not followed.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(dir)
        .with_context(|| {
            format!(
                "create {} (its parent must exist; it must not)",
                dir.display()
            )
        })
}

fn copy_file(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("read {}", from.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_for(mode)
        .open(to)
        .with_context(|| format!("create {}", to.display()))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("write {}", to.display()))
}

/// Opening files with a mode, on Unix.
trait ModeFor {
    fn mode_for(&mut self, mode: u32) -> &mut Self;
}

impl ModeFor for std::fs::OpenOptions {
    fn mode_for(&mut self, mode: u32) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, mode)
    }
}

/// `check` opens the data directory (or backup) `dir` and checks it as a
/// log: its key pair matches, its stored tree hashes to the root of its
/// latest signed checkpoint, and its last entry to its last leaf. It
/// returns what it found.
///
/// # Errors
///
/// When any of that fails; each error says which.
pub fn check(dir: &Path) -> anyhow::Result<BackupInfo> {
    let paths = Paths::new(dir);
    let vkey = std::fs::read_to_string(&paths.vkey)
        .with_context(|| format!("read {}", paths.vkey.display()))?
        .trim()
        .to_owned();
    let holds_signing_key = paths.key.exists();
    if holds_signing_key {
        let signer = crate::init::read_signing_key(&paths.key)?;
        anyhow::ensure!(
            signer.verifier_key() == vkey,
            "{} does not match the private key beside it",
            paths.vkey.display()
        );
    }
    let store = RocksStore::open(&paths.db)?;
    let tree_size = custody_store::LogStore::tree_size(&store)?;
    let Some((checkpoint_size, note)) = custody_store::LogStore::latest_checkpoint(&store)? else {
        anyhow::bail!("{} holds no signed checkpoint", paths.db.display());
    };
    let cp = LogVerifier::new(&vkey)?.verify(&note)?;
    anyhow::ensure!(
        cp.size == checkpoint_size,
        "the stored checkpoint says {} entries, but is stored as of {checkpoint_size}",
        cp.size
    );
    crate::server::check_tree(&store, checkpoint_size, &cp.root, tree_size)?;
    // Every entry, not only the last, must hash to its stored leaf: the
    // tree's hashes alone would not notice an entry changed in place.
    let mut at = 0;
    while at < tree_size {
        let end = (at + 4096).min(tree_size);
        let entries = custody_store::LogStore::read_entries(&store, at, end)?;
        let leaves: Vec<u64> = (at..end)
            .map(|i| custody_log::stored_hash_index(0, i))
            .collect();
        let stored = custody_store::LogStore::read_hashes(&store, &leaves)?;
        anyhow::ensure!(
            entries.len() == leaves.len() && stored.len() == leaves.len(),
            "{} is missing entries {at}..{end}",
            paths.db.display()
        );
        for (i, (e, h)) in entries.iter().zip(&stored).enumerate() {
            anyhow::ensure!(
                custody_log::leaf_hash(e).0 == *h,
                "entry {} in {} does not hash to its leaf in the signed tree: the copy was altered",
                at + i as u64,
                paths.db.display()
            );
        }
        at = end;
    }
    Ok(BackupInfo {
        origin: cp.origin,
        tree_size,
        checkpoint_size,
        checkpoint: String::from_utf8(note)?,
        verifier_key: vkey,
        taken: custody_domain::rfc3339(crate::init::now_nanos()),
        holds_signing_key,
    })
}

/// `seal` checks a snapshot ([`check`]) and writes its [`BackupInfo`].
///
/// # Errors
///
/// As [`check`], or when the description cannot be written.
pub fn seal(out: &Path) -> anyhow::Result<BackupInfo> {
    let info = check(out)?;
    let path = out.join(BACKUP_INFO);
    let tmp = out.join(format!("{BACKUP_INFO}.tmp"));
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    serde_json::to_writer_pretty(&mut f, &info)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))?;
    std::fs::File::open(out)?.sync_all()?;
    Ok(info)
}

/// `backup` backs up data directory `data` to the new directory `out`:
/// through the running server's admin socket if one answers, or directly
/// if none runs. On failure, it removes what it wrote.
///
/// # Errors
///
/// When the server refuses or the copy fails; each error says why.
pub fn backup(data: &Path, out: &Path) -> anyhow::Result<BackupInfo> {
    if out.exists() {
        anyhow::bail!("{} exists: a backup goes to a new directory", out.display());
    }
    let out = absolute(out)?;
    let result = (|| {
        match std::os::unix::net::UnixStream::connect(admin_socket(data)) {
            Ok(conn) => ask_server(conn, &out)?,
            Err(_) => {
                // No server answers: the database is free to open, or held
                // by a process that does not serve (`open` says so).
                let store = RocksStore::open(&Paths::new(data).db).with_context(|| {
                    format!(
                        "no server answers on {}, and the database cannot be opened",
                        admin_socket(data).display()
                    )
                })?;
                snapshot(&store, data, &out)?;
            }
        }
        seal(&out)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&out);
    }
    result
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_owned());
    }
    Ok(std::env::current_dir()?.join(p))
}

/// The admin socket's one request.
#[derive(serde::Serialize, serde::Deserialize)]
struct AdminRequest {
    /// Write a snapshot to this new directory.
    backup: PathBuf,
}

/// Its answer: `error` is empty on success.
#[derive(serde::Serialize, serde::Deserialize)]
struct AdminAnswer {
    error: String,
}

fn ask_server(mut conn: std::os::unix::net::UnixStream, out: &Path) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(&AdminRequest {
        backup: out.to_owned(),
    })?;
    line.push(b'\n');
    conn.write_all(&line)
        .context("ask the server for a backup")?;
    let mut answer = String::new();
    BufReader::new(conn)
        .read_line(&mut answer)
        .context("read the server's answer")?;
    let answer: AdminAnswer = serde_json::from_str(&answer)
        .context("the server's answer is not one this version reads")?;
    if !answer.error.is_empty() {
        anyhow::bail!("the server refused the backup: {}", answer.error);
    }
    Ok(())
}

/// `serve_admin` answers backup requests on `DATA/admin.sock` until `stop`
/// is set. A stale socket file is replaced.
///
/// # Errors
///
/// When the socket cannot be bound.
pub fn serve_admin(
    store: Arc<RocksStore>,
    data: PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let path = admin_socket(&data);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restrict {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("bind the admin socket {}", path.display()))?;
    Ok(async move {
        loop {
            let conn = tokio::select! {
                _ = stop.changed() => break,
                c = listener.accept() => c,
            };
            let Ok((conn, _)) = conn else { continue };
            let (store, data) = (store.clone(), data.clone());
            tokio::spawn(async move {
                if let Err(e) = answer_admin(conn, store, data).await {
                    tracing::warn!(error = %format!("{e:#}"), "admin socket");
                }
            });
        }
        let _ = std::fs::remove_file(&path);
    })
}

async fn answer_admin(
    conn: tokio::net::UnixStream,
    store: Arc<RocksStore>,
    data: PathBuf,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let (read, mut write) = conn.into_split();
    let mut line = String::new();
    // One short line: a path.
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::io::BufReader::new(read.take_bytes(64 << 10)).read_line(&mut line),
    )
    .await
    .context("no request within 10 s")??;
    let result = match serde_json::from_str::<AdminRequest>(&line) {
        Ok(req) if req.backup.is_absolute() => {
            let out = req.backup;
            tracing::info!(out = %out.display(), "backup requested");
            tokio::task::spawn_blocking(move || {
                let r = snapshot(&store, &data, &out);
                if r.is_err() {
                    let _ = std::fs::remove_dir_all(&out);
                }
                r
            })
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r)
        }
        Ok(_) => Err(anyhow::anyhow!(
            "the backup directory must be an absolute path"
        )),
        Err(e) => Err(anyhow::anyhow!("not a request this server reads: {e}")),
    };
    let answer = AdminAnswer {
        error: result.err().map(|e| format!("{e:#}")).unwrap_or_default(),
    };
    let mut out = serde_json::to_vec(&answer)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    Ok(())
}

/// `take_bytes` limits a reader, for requests of bounded size.
trait TakeBytes: Sized {
    fn take_bytes(self, n: u64) -> tokio::io::Take<Self>;
}

impl<R: tokio::io::AsyncRead> TakeBytes for R {
    fn take_bytes(self, n: u64) -> tokio::io::Take<Self> {
        tokio::io::AsyncReadExt::take(self, n)
    }
}

/// `restore` restores backup `from` into the new data directory `data`.
/// It copies the backup beside `data`, checks the copy ([`check`]), that
/// it is the backup `backup.json` describes, and, if `expect_key` is
/// given, that it is that log's key; then moves it into place. On any
/// failure nothing is left behind.
///
/// # Errors
///
/// When `data` exists and is not empty, the backup is incomplete or does
/// not check, or a file cannot be copied.
pub fn restore(from: &Path, data: &Path, expect_key: Option<&str>) -> anyhow::Result<BackupInfo> {
    let described: BackupInfo =
        serde_json::from_slice(&std::fs::read(from.join(BACKUP_INFO)).with_context(|| {
            format!(
                "read {} (is this a backup?)",
                from.join(BACKUP_INFO).display()
            )
        })?)
        .with_context(|| {
            format!(
                "{} is not a backup description",
                from.join(BACKUP_INFO).display()
            )
        })?;
    if let Some(k) = expect_key {
        anyhow::ensure!(
            k.trim() == described.verifier_key,
            "the backup is of the log with key {}, not {}",
            described.verifier_key,
            k.trim()
        );
    }
    if data.exists()
        && std::fs::read_dir(data)
            .with_context(|| format!("read {}", data.display()))?
            .next()
            .is_some()
    {
        anyhow::bail!(
            "{} exists and is not empty: restore into a new directory",
            data.display()
        );
    }
    let parent = absolute(data)?
        .parent()
        .map(Path::to_owned)
        .ok_or_else(|| anyhow::anyhow!("{} has no parent directory", data.display()))?;
    std::fs::create_dir_all(&parent)?;
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let work = parent.join(format!(".{name}.restoring-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let result = restore_into(from, &work, data, &parent, &described);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result.map(|()| described)
}

fn restore_into(
    from: &Path,
    work: &Path,
    data: &Path,
    parent: &Path,
    described: &BackupInfo,
) -> anyhow::Result<()> {
    copy_tree(from, work)?;
    std::fs::remove_file(work.join(BACKUP_INFO))?;
    let found = check(work)?;
    anyhow::ensure!(
        found.verifier_key == described.verifier_key
            && found.tree_size == described.tree_size
            && found.checkpoint == described.checkpoint,
        "the backup's files do not match its description: it holds {} entries signed at {}, \
         but backup.json says {} at {}",
        found.tree_size,
        found.checkpoint_size,
        described.tree_size,
        described.checkpoint_size
    );
    std::fs::set_permissions(work, std::fs::Permissions::from_mode(0o700))?;
    if data.exists() {
        std::fs::remove_dir(data).with_context(|| format!("replace {}", data.display()))?;
    }
    std::fs::rename(work, data)
        .with_context(|| format!("move the restored log to {}", data.display()))?;
    std::fs::File::open(parent)?.sync_all()?;
    Ok(())
}

/// `copy_tree` copies directory `from` to the new directory `to`, file by
/// file, each synced, keeping each file's mode.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    private_dir(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let kind = e.file_type()?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            let mode = e.metadata()?.permissions().mode() & 0o777;
            copy_file(&src, &dst, mode)?;
        }
    }
    std::fs::File::open(to)?.sync_all()?;
    Ok(())
}
