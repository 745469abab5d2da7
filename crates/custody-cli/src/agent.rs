//! `custody agent`: a sidecar that reports a party's events for systems
//! that cannot link `custody-client`. It takes events as JSON lines (the
//! form `custody append` takes, see `event_json.rs`) on a local Unix
//! socket or from files dropped in a watched directory, spools each one
//! (fsync'd) before it answers or lets go of the file, and runs the
//! spool's submitter: every event reaches the log once, in the order it
//! was spooled, through server restarts, lost links and its own crashes.
//!
//! The spool directory keeps the agent's identity (`agent.json`: the
//! party and the log's origin), the spool's files, and while a watched
//! file is being taken, a marker (`agent-ingest.json`) that makes taking
//! it exactly-once across a crash.
//!
//! The socket protocol, one JSON object per line each way:
//! - an event (`{"reporter": P, "custody": {...}, ...}`) is answered
//!   `{"seq": N}` once it is spooled, or `{"error": "..."}` with nothing
//!   spooled. `reporter` must be the agent's party; the agent numbers,
//!   names (`event_id`) and signs the event. `event_time_unix_nanos`
//!   defaults to when the agent took it.
//! - `{"op": "status"}` is answered `{"status": {...}}` (see [`Status`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use custody_client::{Outcome, Reporter, Spool, SpoolError, SpoolStatus, Submitter};
use custody_proto::v1;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use crate::event_json::EventJson;

/// The longest line the agent reads: an event is at most 64 KiB as
/// protobuf, and somewhat more as JSON.
const MAX_LINE: u64 = 256 * 1024;
/// Lines spooled with one fsync, at most, and their bytes: a client
/// cannot make one connection hold more than this in memory.
const BATCH: usize = 1000;
const BATCH_BYTES: usize = 4 << 20;
/// Connections served at once; more are answered `busy` and closed.
const CONNECTIONS: usize = 64;
/// The largest watched file taken; a larger one is rejected.
const MAX_FILE: u64 = 64 << 20;
/// A connection that sends no whole line for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A connection that does not read its answers for this long is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the watched directory is listed.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// `Identity` is who the agent reports as, and to which log.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct Identity {
    party: String,
    origin: String,
}

/// `Marker` is the watched file being taken: its name and digest, and the
/// sequence numbers its events get.
#[derive(Serialize, Deserialize)]
struct Marker {
    file: String,
    sha256: String,
    first_seq: u64,
    count: u64,
}

fn identity_path(dir: &Path) -> PathBuf {
    dir.join("agent.json")
}

fn marker_path(dir: &Path) -> PathBuf {
    dir.join("agent-ingest.json")
}

/// `Options` are `custody agent run`'s flags.
pub struct Options {
    pub server: String,
    pub spool: PathBuf,
    pub party: Option<String>,
    pub key: PathBuf,
    pub origin: Option<String>,
    pub socket: Option<PathBuf>,
    pub watch: Option<PathBuf>,
    /// Keep receipts, checked against this log key.
    pub receipts: Option<custody_log::LogVerifier>,
    /// Parties other than its own it may name as actor.
    pub actors: Vec<String>,
}

/// `Status` is what `custody agent status` prints.
#[derive(Serialize, Deserialize, Debug)]
pub struct Status {
    pub party: String,
    /// Events spooled and not yet answered by the log.
    pub depth: usize,
    /// The oldest of them.
    pub oldest_unsent: Option<Unsent>,
    /// The last answer the log gave.
    pub last_ack: Option<LastAck>,
    /// The sequence number the next event gets.
    pub next_seq: u64,
    pub appended: u64,
    pub duplicate: u64,
    pub refused: u64,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Unsent {
    pub seq: u64,
    pub event_time_unix_nanos: i64,
    /// How long ago it happened, in seconds.
    pub age_secs: f64,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct LastAck {
    pub seq: u64,
    /// The log index (0 when refused).
    pub index: u64,
    /// appended, duplicate or refused.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

fn status_of(party: &str, s: &SpoolStatus) -> Status {
    let now = custody_client::reporter::now_nanos();
    Status {
        party: party.to_owned(),
        depth: s.depth,
        oldest_unsent: s.oldest_pending.map(|(seq, t)| Unsent {
            seq,
            event_time_unix_nanos: t,
            age_secs: now.saturating_sub(t) as f64 / 1e9,
        }),
        last_ack: s.last_ack.as_ref().map(|a| LastAck {
            seq: a.seq,
            index: a.index,
            outcome: match a.outcome {
                Outcome::Appended => "appended",
                Outcome::Duplicate => "duplicate",
                Outcome::Refused { .. } => "refused",
            }
            .into(),
            refusal: match &a.outcome {
                Outcome::Refused { code, message } => {
                    Some(format!("{:?}: {message}", tonic::Code::from(*code)))
                }
                _ => None,
            },
        }),
        next_seq: s.next_seq,
        appended: s.answered.0,
        duplicate: s.answered.1,
        refused: s.answered.2,
    }
}

/// `Agent` is what the socket and the watcher share.
struct Agent {
    submitter: Arc<Submitter>,
    reporter: Reporter,
    identity: Identity,
    dir: PathBuf,
    /// Parties other than its own it may name as actor.
    actors: Vec<String>,
    /// Held across each spooling, so that a watched file's marker names
    /// the sequence numbers its events get.
    ingest: Mutex<()>,
}

impl Agent {
    /// `event` checks one JSON line and turns it into what the spool takes.
    fn event(&self, line: &[u8]) -> anyhow::Result<(i64, v1::event::Body)> {
        let json: EventJson = serde_json::from_slice(line).context("not an event")?;
        if json.reporter != self.identity.party {
            bail!(
                "reporter {:?} is not this agent's party {:?}: an agent reports only as its own party",
                json.reporter,
                self.identity.party
            );
        }
        if json.event_id.is_some() || json.reporter_seq != 0 {
            bail!("leave out event_id and reporter_seq: the agent numbers and names each event");
        }
        if json
            .log_origin
            .as_deref()
            .is_some_and(|o| o != self.identity.origin)
        {
            bail!("log_origin is not the origin of the log this agent reports to");
        }
        let mut e = json.into_proto(&self.identity.origin)?;
        // Decoded as the log decodes it, so that a field the log would
        // refuse is refused here, before the event takes a number (a
        // refused event leaves a gap in the party's sequence).
        e.reporter_seq = 1;
        custody_proto::decode_event(&prost::Message::encode_to_vec(&e))
            .map_err(|r| anyhow!("{r}"))?;
        let body = e.body.ok_or_else(|| anyhow!("no event kind set"))?;
        // Whom the party may name as actor depends on the registry, which
        // the agent does not read: it names only the party itself and the
        // parties its operator listed (--actor), so that a line the log
        // would refuse for its actor is refused before it takes a number.
        if let v1::event::Body::Custody(a) = &body {
            if a.actor != self.identity.party && !self.actors.contains(&a.actor) {
                bail!(
                    "actor {:?} is not this agent's party {:?} or one it was started with (--actor)",
                    a.actor,
                    self.identity.party
                );
            }
        }
        Ok((e.event_time_unix_nanos, body))
    }

    /// `spool` spools `items` with one fsync and returns their numbers.
    fn spool(&self, items: Vec<(i64, v1::event::Body)>) -> Result<Vec<u64>, SpoolError> {
        let _g = lock(&self.ingest);
        self.submitter.push(&self.reporter, items)
    }

    fn status(&self) -> Status {
        status_of(
            &self.identity.party,
            &lock(&self.submitter.spool()).status(),
        )
    }

    /// `take_file` takes the watched file `name`: it claims it by moving
    /// it into `WATCH/.taking/` (so that a file renamed into place or
    /// written while it is read is a new file, and a symlink swapped in
    /// is moved, not followed), then spools every event of it or none.
    /// A file with a bad line, too large, or not a regular file is moved
    /// to `rejected/` with a `.error` beside it. The marker makes a crash
    /// between spooling and removing the claimed file harmless: on
    /// restart the spool's next number tells whether its events were
    /// spooled.
    fn take_file(&self, watch: &Path, name: &str) -> anyhow::Result<()> {
        let taking = watch.join(TAKING);
        std::fs::create_dir_all(&taking).with_context(|| format!("create {}", taking.display()))?;
        let claimed = taking.join(name);
        match std::fs::rename(watch.join(name), &claimed) {
            Ok(()) => {}
            // Gone since it was listed: nothing to take.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("claim {name}")),
        }
        sync_dir(watch)?;
        self.take_claimed(watch, name)
    }

    /// `take_claimed` spools the file claimed in `WATCH/.taking/NAME`.
    fn take_claimed(&self, watch: &Path, name: &str) -> anyhow::Result<()> {
        let claimed = watch.join(TAKING).join(name);
        let (mut file, bytes) = match read_regular(&claimed) {
            Ok(b) => b,
            Err(why) => return reject(watch, name, &why),
        };
        let mut items = Vec::new();
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match self.event(line) {
                Ok(item) => items.push(item),
                Err(e) => return reject(watch, name, &format!("line {}: {e:#}", i + 1)),
            }
        }
        let _g = lock(&self.ingest);
        let first_seq = lock(&self.submitter.spool()).next_seq();
        let marker = Marker {
            file: name.to_owned(),
            sha256: hex::encode(sha2::Sha256::digest(&bytes)),
            first_seq,
            count: items.len() as u64,
        };
        write_synced(&marker_path(&self.dir), &serde_json::to_vec(&marker)?)?;
        let n = items.len();
        if n > 0 {
            self.submitter.push(&self.reporter, items)?;
        }
        std::fs::remove_file(&claimed).with_context(|| format!("remove {}", claimed.display()))?;
        sync_dir(&watch.join(TAKING))?;
        std::fs::remove_file(marker_path(&self.dir)).context("remove the ingest marker")?;
        tracing::info!(
            file = name,
            events = n,
            first_seq,
            "custody agent: spooled a watched file"
        );
        // A writer that kept the file open and wrote after it was taken:
        // what it added was not spooled, and is kept and said, not lost.
        let mut late = Vec::new();
        {
            use std::io::Read as _;
            let _ = (&mut file).take(MAX_FILE).read_to_end(&mut late);
        }
        if !late.is_empty() {
            let late_name = format!("{name}.late");
            let path = watch.join(TAKING).join(&late_name);
            std::fs::write(&path, &late).with_context(|| format!("write {}", path.display()))?;
            reject(
                watch,
                &late_name,
                &format!(
                    "{} bytes were written to {name} after it was taken (its first {} bytes, {n} events, were spooled); write a file whole under a dot name and rename it into place",
                    late.len(),
                    bytes.len()
                ),
            )?;
        }
        Ok(())
    }
}

/// Where a watched file is moved while it is taken: inside the watched
/// directory, so the move is a rename on one file system.
const TAKING: &str = ".taking";

/// `read_regular` reads a claimed file without following a symlink, and
/// only if it is a regular file no larger than [`MAX_FILE`]; the error
/// says why not.
fn read_regular(path: &Path) -> Result<(std::fs::File, Vec<u8>), String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot be opened as a file (a symlink?): {e}"))?;
    let meta = f.metadata().map_err(|e| format!("stat: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE {
        return Err(format!(
            "the file is {} bytes, more than the {MAX_FILE} a watched file may be: split it",
            meta.len()
        ));
    }
    let mut f = f;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut f)
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("the file grew past {MAX_FILE} bytes while read"));
    }
    Ok((f, bytes))
}

/// `reject` moves the claimed file `name` to `WATCH/rejected/`, under a
/// name no earlier rejected file has, with a `.error` file saying `why`.
fn reject(watch: &Path, name: &str, why: &str) -> anyhow::Result<()> {
    let rejected = watch.join("rejected");
    std::fs::create_dir_all(&rejected).with_context(|| format!("create {}", rejected.display()))?;
    let mut target = name.to_owned();
    let mut n = 1;
    while rejected.join(&target).symlink_metadata().is_ok()
        || rejected
            .join(format!("{target}.error"))
            .symlink_metadata()
            .is_ok()
    {
        target = format!("{name}.{n}");
        n += 1;
    }
    std::fs::write(
        rejected.join(format!("{target}.error")),
        format!("{why}\nnothing of this file was spooled\n"),
    )?;
    std::fs::rename(watch.join(TAKING).join(name), rejected.join(&target))
        .with_context(|| format!("move {name} to {}", rejected.display()))?;
    tracing::warn!(file = name, rejected_as = %target, why, "custody agent: rejected a watched file; nothing of it was spooled");
    Ok(())
}

/// `recover` finishes taking the watched file a crash interrupted: if its
/// events were spooled, the claimed file is removed; if not, it stays
/// claimed, to be taken again ([`claimed_files`]).
fn recover(dir: &Path, watch: Option<&Path>, spool: &Spool) -> anyhow::Result<()> {
    let path = marker_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).context("read the ingest marker"),
    };
    let m: Marker = serde_json::from_slice(&bytes).context("the ingest marker")?;
    let next = spool.next_seq();
    let spooled = if next == m.first_seq {
        false
    } else if next >= m.first_seq + m.count {
        true
    } else {
        bail!(
            "{}: file {} was to be spooled as events {}..{}, but the spool's next number is {next}: move the marker aside only after checking the spool",
            path.display(),
            m.file,
            m.first_seq,
            m.first_seq + m.count
        );
    };
    if spooled {
        let Some(watch) = watch else {
            bail!(
                "{}: the events of watched file {} were spooled but the file may still be there: run with the same --watch",
                path.display(),
                m.file
            );
        };
        let f = watch.join(TAKING).join(&m.file);
        match read_regular(&f).map(|(_, b)| b) {
            Ok(b) if hex::encode(sha2::Sha256::digest(&b)) == m.sha256 => {
                std::fs::remove_file(&f).with_context(|| format!("remove {}", f.display()))?;
                sync_dir(&watch.join(TAKING))?;
                tracing::info!(file = %m.file, "custody agent: removed a watched file spooled before a crash");
            }
            _ if !f.exists() => {}
            _ => bail!(
                "{}: its events were spooled before a crash, but it is not what was spooled now; move it aside",
                f.display()
            ),
        }
    }
    std::fs::remove_file(&path).context("remove the ingest marker")?;
    sync_dir(dir)?;
    Ok(())
}

/// `identity` reads the agent's identity, or makes it on the first run.
async fn identity(o: &Options) -> anyhow::Result<Identity> {
    let path = identity_path(&o.spool);
    match std::fs::read(&path) {
        Ok(b) => {
            let id: Identity = serde_json::from_slice(&b)
                .with_context(|| format!("{}: not an agent identity", path.display()))?;
            if o.party.as_ref().is_some_and(|p| *p != id.party) {
                bail!(
                    "{} belongs to party {:?}; a spool reports for one party only",
                    o.spool.display(),
                    id.party
                );
            }
            if o.origin.as_ref().is_some_and(|p| *p != id.origin) {
                bail!(
                    "{} reports to the log {:?}, not {:?}",
                    o.spool.display(),
                    id.origin,
                    o.origin.as_deref().unwrap_or_default()
                );
            }
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let party = o
                .party
                .clone()
                .ok_or_else(|| anyhow!("the first run on {} needs --party", o.spool.display()))?;
            let origin = match &o.origin {
                Some(o) => o.clone(),
                None => {
                    let mut c = crate::connect(&o.server).await.context(
                        "read the log's origin (give --origin to start while the log is out of reach)",
                    )?;
                    crate::load::genesis(&mut c).await?.1
                }
            };
            std::fs::create_dir_all(&o.spool)
                .with_context(|| format!("create {}", o.spool.display()))?;
            let id = Identity { party, origin };
            write_synced(&path, &serde_json::to_vec(&id)?)?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// `run` runs the agent until SIGINT or SIGTERM, then stops taking events,
/// waits for what was sent to be answered, and returns.
///
/// # Errors
///
/// If the spool cannot be opened or written, or the socket bound.
pub async fn run(o: Options) -> anyhow::Result<()> {
    if o.socket.is_none() && o.watch.is_none() {
        bail!("give --socket, --watch or both: where the agent takes events from");
    }
    let key = crate::keys::load_secret(&o.key)?;
    let id = identity(&o).await?;
    let spool = Spool::open(&o.spool)?;
    recover(&o.spool, o.watch.as_deref(), &spool)?;
    let mut sub = Submitter::new(
        spool,
        crate::net::endpoint(&o.server)?.connect_timeout(Duration::from_secs(5)),
    );
    if let Some(t) = crate::net::token() {
        sub = sub.with_token(t)?;
    }
    let sub = sub.with_party(id.party.clone());
    let agent = Arc::new(Agent {
        submitter: Arc::new(sub),
        reporter: Reporter::new(id.party.clone(), key, id.origin.clone()),
        identity: id,
        dir: o.spool.clone(),
        actors: o.actors.clone(),
        ingest: Mutex::new(()),
    });
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let sender = {
        let sub = agent.submitter.clone();
        let stop = stop.clone();
        tokio::spawn(async move { sub.run(stop).await })
    };
    let mut tasks = Vec::new();
    let receipts = o.receipts.map(|v| {
        let sub = agent.submitter.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            // A proof that does not check is evidence against the log:
            // said loudly, and no receipt is kept; reporting goes on.
            if let Err(e) = sub.keep_receipts(&v, Duration::from_secs(1), stop).await {
                tracing::error!(error = %e, "custody agent: stopped keeping receipts");
            }
        })
    });
    if let Some(path) = &o.socket {
        let listener = bind(path)?;
        eprintln!("custody agent: listening on {}", path.display());
        tasks.push(tokio::spawn(serve(agent.clone(), listener, stop.clone())));
    }
    if let Some(dir) = &o.watch {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        eprintln!("custody agent: watching {}", dir.display());
        tasks.push(tokio::spawn(watch(
            agent.clone(),
            dir.clone(),
            stop.clone(),
        )));
    }
    eprintln!(
        "custody agent: reporting as {} to {}",
        agent.identity.party, o.server
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // The sender ends only on stop, or when it cannot go on (the spool
    // cannot be written, the server is not a Custody Ledger): then the
    // agent stops taking events it could not send, and says why.
    let mut sender = sender;
    let (failed, sent) = tokio::select! {
        _ = tokio::signal::ctrl_c() => (None, None),
        _ = term.recv() => (None, None),
        r = futures::future::select_all(tasks.iter_mut()) => (Some(r.0), None),
        r = &mut sender => (None, Some(r)),
    };
    let _ = stop_tx.send(true);
    for t in &tasks {
        t.abort();
    }
    if let Some(path) = &o.socket {
        let _ = std::fs::remove_file(path);
    }
    let sent = match sent {
        Some(r) => r,
        None => sender.await,
    };
    if let Some(r) = receipts {
        // Receipts of what was answered before the stop, as far as the
        // log's checkpoints cover it now.
        r.abort();
        let _ = r.await;
    }
    let s = agent.status();
    eprintln!(
        "custody agent: stopped with {} event(s) still to send",
        s.depth
    );
    sent.map_err(|e| anyhow!("sender: {e}"))?
        .context("custody agent: sending stopped")?;
    match failed {
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => Err(anyhow!("agent task: {e}")),
        _ => Ok(()),
    }
}

/// `bind` binds the socket, owner-only: whoever can write to it reports
/// as the agent's party. A socket file left by a crashed agent is
/// replaced; one another agent answers on is not.
fn bind(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("{}: another agent is listening there", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale {}", path.display()))?;
    }
    let listener =
        tokio::net::UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}

async fn serve(
    agent: Arc<Agent>,
    listener: tokio::net::UnixListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS));
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        match conn {
            Ok((stream, _)) => {
                let agent = agent.clone();
                let slot = slots.clone().try_acquire_owned();
                tokio::spawn(async move {
                    let Ok(_slot) = slot else {
                        // Over the limit: said at once, not left waiting.
                        let (_, mut w) = stream.into_split();
                        let busy = Answer::Error(format!(
                            "busy: {CONNECTIONS} connections are open; try again"
                        ));
                        let _ = tokio::time::timeout(WRITE_TIMEOUT, reply(&mut w, &[busy])).await;
                        return;
                    };
                    if let Err(e) = connection(agent, stream).await {
                        tracing::info!(error = %format!("{e:#}"), "custody agent: connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "custody agent: accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// `Answer` is one reply line.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Seq(u64),
    Error(String),
    Status(Status),
}

/// `connection` answers one socket client: lines already received are
/// spooled together, with one fsync, and answered in order.
async fn connection(agent: Arc<Agent>, stream: tokio::net::UnixStream) -> anyhow::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::with_capacity(64 * 1024, r);
    loop {
        let mut lines = Vec::new();
        let mut bytes = 0usize;
        loop {
            let mut buf = Vec::new();
            let mut limited = (&mut r).take(MAX_LINE);
            let read = limited.read_until(b'\n', &mut buf);
            let n = match tokio::time::timeout(IDLE_TIMEOUT, read).await {
                Ok(n) => n?,
                Err(_) => {
                    let a = Answer::Error("idle too long; closing the connection".into());
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, reply(&mut w, &[a])).await;
                    return Ok(());
                }
            };
            if n == 0 {
                break;
            }
            if buf.last() != Some(&b'\n') && n as u64 == MAX_LINE {
                let a = Answer::Error(format!(
                    "a line is longer than {MAX_LINE} bytes; closing the connection"
                ));
                reply(&mut w, &[a]).await?;
                return Ok(());
            }
            bytes += buf.len();
            lines.push(buf);
            if lines.len() >= BATCH || bytes >= BATCH_BYTES || !r.buffer().contains(&b'\n') {
                break;
            }
        }
        if lines.is_empty() {
            return Ok(());
        }
        let answers = {
            let agent = agent.clone();
            tokio::task::spawn_blocking(move || answer(&agent, &lines)).await?
        };
        tokio::time::timeout(WRITE_TIMEOUT, reply(&mut w, &answers))
            .await
            .map_err(|_| anyhow!("the client does not read its answers"))??;
    }
}

/// `answer` answers a batch of lines, spooling its events together.
fn answer(agent: &Agent, lines: &[Vec<u8>]) -> Vec<Answer> {
    #[derive(Deserialize)]
    struct Op {
        op: String,
    }
    let mut answers: Vec<Option<Answer>> = Vec::with_capacity(lines.len());
    let mut items = Vec::new();
    for line in lines {
        if line.iter().all(u8::is_ascii_whitespace) {
            answers.push(Some(Answer::Error("an empty line".into())));
            continue;
        }
        if let Ok(op) = serde_json::from_slice::<Op>(line) {
            answers.push(Some(match op.op.as_str() {
                "status" => Answer::Status(agent.status()),
                o => Answer::Error(format!("unknown op {o:?}: the only one is \"status\"")),
            }));
            continue;
        }
        match agent.event(line) {
            Ok(item) => {
                items.push(item);
                answers.push(None);
            }
            Err(e) => answers.push(Some(Answer::Error(format!("{e:#}")))),
        }
    }
    let spooled = if items.is_empty() {
        Ok(Vec::new())
    } else {
        agent.spool(items)
    };
    let mut seqs = match &spooled {
        Ok(s) => s.iter(),
        Err(_) => [].iter(),
    };
    answers
        .into_iter()
        .map(|a| match a {
            Some(a) => a,
            None => match (&spooled, seqs.next()) {
                (Ok(_), Some(s)) => Answer::Seq(*s),
                (Err(e), _) => Answer::Error(format!("not spooled: {e}")),
                (Ok(_), None) => Answer::Error("not spooled".into()),
            },
        })
        .collect()
}

async fn reply(w: &mut tokio::net::unix::OwnedWriteHalf, answers: &[Answer]) -> anyhow::Result<()> {
    let mut out = Vec::new();
    for a in answers {
        serde_json::to_writer(&mut out, a)?;
        out.push(b'\n');
    }
    w.write_all(&out).await?;
    Ok(())
}

/// `watch` takes each `*.jsonl` file that appears in `dir`, in name
/// order, after any a crash left claimed. Writers should write a file
/// under another name (or a dot name) and rename it into place when it
/// is whole. A file that cannot be taken is said once and skipped; the
/// others, and the socket, go on.
async fn watch(
    agent: Arc<Agent>,
    dir: PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut failing: std::collections::HashSet<String> = Default::default();
    {
        let claimed = list(&dir.join(TAKING), &mut failing).unwrap_or_default();
        for name in claimed {
            let (a, d) = (agent.clone(), dir.clone());
            let n = name.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || a.take_claimed(&d, &n)).await? {
                tracing::error!(file = %name, error = %format!("{e:#}"), "custody agent: cannot take a file claimed before a restart");
            }
        }
    }
    loop {
        let names = {
            let dir = dir.clone();
            let mut f = std::mem::take(&mut failing);
            let r = tokio::task::spawn_blocking(move || (list(&dir, &mut f), f)).await?;
            failing = r.1;
            match r.0 {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "custody agent: cannot list the watched directory");
                    Vec::new()
                }
            }
        };
        for name in names {
            if *stop.borrow() {
                return Ok(());
            }
            let (a, d) = (agent.clone(), dir.clone());
            let n = name.clone();
            match tokio::task::spawn_blocking(move || a.take_file(&d, &n)).await? {
                Ok(()) => {
                    failing.remove(&name);
                }
                Err(e) => {
                    if failing.insert(name.clone()) {
                        tracing::error!(file = %name, error = %format!("{e:#}"), "custody agent: cannot take a watched file; it is left where it is");
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(WATCH_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
}

/// `list` is the names of the `*.jsonl` regular files in `dir`, sorted.
/// A name that is not UTF-8 is said once (it is remembered in `said`)
/// and skipped.
fn list(dir: &Path, said: &mut std::collections::HashSet<String>) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e).with_context(|| format!("list {}", dir.display())),
    };
    for e in entries {
        let e = e?;
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            let lossy = e.file_name().to_string_lossy().into_owned();
            if said.insert(lossy.clone()) {
                tracing::error!(file = %lossy, "custody agent: a watched file's name is not UTF-8; rename it to be taken");
            }
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".jsonl") || !e.file_type()?.is_file() {
            continue;
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// `status` is the status of the spool in `dir`, from the agent on
/// `socket` if given, or else read from the spool (when no agent holds it).
///
/// # Errors
///
/// If the agent cannot be asked, or the spool read.
pub async fn status(socket: Option<&Path>, dir: Option<&Path>) -> anyhow::Result<Status> {
    if let Some(path) = socket {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .with_context(|| format!("connect {} (is the agent running?)", path.display()))?;
        let (r, mut w) = stream.into_split();
        w.write_all(b"{\"op\":\"status\"}\n").await?;
        let mut line = String::new();
        BufReader::new(r).read_line(&mut line).await?;
        #[derive(Deserialize)]
        struct Reply {
            status: Option<Status>,
            error: Option<String>,
        }
        let r: Reply = serde_json::from_str(&line).context("the agent's answer")?;
        return match (r.status, r.error) {
            (Some(s), _) => Ok(s),
            (None, e) => Err(anyhow!("the agent answered: {}", e.unwrap_or_default())),
        };
    }
    let dir = dir.ok_or_else(|| anyhow!("give --socket or --spool"))?;
    let id: Identity = serde_json::from_slice(
        &std::fs::read(identity_path(dir))
            .with_context(|| format!("{} holds no agent spool", dir.display()))?,
    )?;
    let spool = match Spool::open(dir) {
        Err(SpoolError::Locked(_)) => bail!(
            "an agent is running on {}: ask it with --socket",
            dir.display()
        ),
        r => r?,
    };
    Ok(status_of(&id.party, &spool.status()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("new");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    if let Some(d) = path.parent() {
        sync_dir(d)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("sync {}", dir.display()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
