//! [`Spool`]: a reporter's durable local queue of signed events.
//!
//! A spool is a directory of two append-only files:
//!
//! - `events`: each event as it was signed, with its sequence number and
//!   event time, written and fsync'd before it is sent;
//! - `acks`: what the log answered for each, in the order answered: the
//!   index it was logged at (new, or a duplicate of an earlier
//!   submission), or the code and message it was refused with.
//!
//! An event is pending until its answer is in `acks`. Every record is
//! framed as `[length u32 LE][first 8 bytes of its SHA-256][payload]`. A
//! record cut short by a crash (at the end of a file, or followed only by
//! zeros) is dropped when the spool is opened: it was never fsync'd, so
//! it was never sent (events) or its event is still pending and will be
//! sent again and answered as a duplicate (acks). A bad record with good
//! records after it is damage, and opening fails rather than lose events.
//!
//! Once nothing is pending, `events` is emptied (after `acks` is
//! fsync'd); while events stay pending, it is rewritten with only them
//! when it has grown past [`COMPACT_BYTES`] and is mostly acknowledged.
//! `acks` is kept whole: it is the reporter's record of where each of its
//! events was logged. One process uses a spool at a time (an advisory
//! lock on `lock`).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use custody_proto::v1;
use prost::Message as _;
use sha2::{Digest as _, Sha256};

use crate::Reporter;

/// `events` is rewritten with only its pending events once it is larger
/// than this and less than a quarter of it is pending.
pub const COMPACT_BYTES: u64 = 8 << 20;

/// The largest record the spool reads back: an event is at most 64 KiB
/// of body plus signatures, so anything larger is damage.
const MAX_RECORD: u32 = 256 * 1024;

/// `SpoolError` is why a spool could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file could not be read, written or synced.
    #[error("spool {path}: {op}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// Another process holds the spool.
    #[error("spool {0} is in use by another process (its lock file is held)")]
    Locked(PathBuf),
    /// A record in the middle of a file does not check.
    #[error("spool {path} is damaged at byte {offset}: {what}; move the directory aside and keep it for inspection, do not delete it: its events may not all be logged")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong with it.
        what: String,
    },
}

/// `Outcome` is what the log answered for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Logged at the ack's index.
    Appended,
    /// Logged before, at the ack's index (a resubmission of the same bytes).
    Duplicate,
    /// Refused for good, with this gRPC code and message; the event will
    /// not be sent again.
    Refused {
        /// The gRPC status code.
        code: i32,
        /// The server's message.
        message: String,
    },
}

/// `Ack` is the log's answer for the event numbered `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The event's sequence number.
    pub seq: u64,
    /// Its index in the log (0 when refused).
    pub index: u64,
    /// What the log answered.
    pub outcome: Outcome,
}

/// `Spooled` is an event in the spool, as signed.
#[derive(Debug, Clone)]
pub struct Spooled {
    /// The reporter's sequence number.
    pub seq: u64,
    /// When the event happened, per the reporter (Unix nanoseconds).
    pub event_time_unix_nanos: i64,
    /// The signed event, byte for byte as it is sent each time.
    pub event: v1::SignedEvent,
}

/// `SpoolStatus` is what `custody agent status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolStatus {
    /// Events spooled and not yet answered.
    pub depth: usize,
    /// The oldest of them: its sequence number and event time.
    pub oldest_pending: Option<(u64, i64)>,
    /// The last answer recorded.
    pub last_ack: Option<Ack>,
    /// The sequence number the next event will get.
    pub next_seq: u64,
    /// Answers recorded, by kind: appended, duplicate, refused.
    pub answered: (u64, u64, u64),
}

/// `Spool` is a reporter's durable queue ([module docs](self)).
pub struct Spool {
    dir: PathBuf,
    events: File,
    events_len: u64,
    acks: File,
    pending: BTreeMap<u64, Spooled>,
    /// Bytes of `events` that pending events take.
    pending_bytes: u64,
    next_seq: u64,
    last_ack: Option<Ack>,
    answered: (u64, u64, u64),
    /// Held for the spool's life: the advisory lock.
    _lock: File,
}

impl Spool {
    /// `open` opens the spool in `dir`, creating it if need be, drops a
    /// record cut short by a crash, and takes the spool's lock.
    ///
    /// # Errors
    ///
    /// [`SpoolError`]: the directory cannot be made or read, another
    /// process holds it, or a file is damaged.
    pub fn open(dir: &Path) -> Result<Self, SpoolError> {
        let io = |path: &Path, op: &'static str| {
            let path = path.to_path_buf();
            move |source| SpoolError::Io { path, op, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir, "create the directory"))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path, "open"))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(SpoolError::Locked(dir.to_path_buf()))
            }
            Err(e) => return Err(io(&lock_path, "lock")(e.into())),
        }
        let (mut events, ev_records, events_len, events_file_len) = open_log(&dir.join("events"))?;
        let (mut acks, ack_records, acks_len, acks_file_len) = open_log(&dir.join("acks"))?;

        let mut pending = BTreeMap::new();
        let mut pending_bytes = 0;
        let mut max_seq = 0;
        for (payload, size) in ev_records {
            let s = decode_spooled(&payload).ok_or_else(|| SpoolError::Damaged {
                path: dir.join("events"),
                offset: 0,
                what: "a record that checks but is not an event".into(),
            })?;
            max_seq = max_seq.max(s.seq);
            pending_bytes += size;
            pending.insert(s.seq, s);
        }
        let mut last_ack = None;
        let mut answered = (0, 0, 0);
        for (payload, _) in ack_records {
            let a = decode_ack(&payload).ok_or_else(|| SpoolError::Damaged {
                path: dir.join("acks"),
                offset: 0,
                what: "a record that checks but is not an answer".into(),
            })?;
            max_seq = max_seq.max(a.seq);
            if let Some(s) = pending.remove(&a.seq) {
                pending_bytes -= record_size(&s);
            }
            count(&mut answered, &a.outcome);
            last_ack = Some(a);
        }
        // An answer is recorded only for an event still in `events`, and
        // `events` loses an event only after its answer is fsync'd: a
        // crash can cut the last answers short only while their events
        // wait. Cut answers with nothing waiting are damage.
        if acks_len < acks_file_len && pending.is_empty() {
            return Err(SpoolError::Damaged {
                path: dir.join("acks"),
                offset: acks_len,
                what: "its last record is cut short, but no event waits for an answer: \
                       a crash cannot leave that"
                    .into(),
            });
        }
        cut_tail(
            &mut events,
            &dir.join("events"),
            events_len,
            events_file_len,
        )?;
        cut_tail(&mut acks, &dir.join("acks"), acks_len, acks_file_len)?;
        sync_dir(dir)?;
        let mut spool = Self {
            dir: dir.to_path_buf(),
            events,
            events_len,
            acks,
            pending,
            pending_bytes,
            next_seq: max_seq + 1,
            last_ack,
            answered,
            _lock: lock,
        };
        spool.compact()?;
        Ok(spool)
    }

    /// `dir` is the spool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `next_seq` is the sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// `continue_after` makes the next event's number at least `seq + 1`:
    /// for a reporter whose earlier events were numbered without this
    /// spool. It is kept once an event is spooled.
    pub fn continue_after(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq.saturating_add(1));
    }

    /// `push` numbers, builds and signs an event for each `(event time,
    /// body)` with `reporter`, writes them all, and fsyncs once. It
    /// returns their sequence numbers. Nothing is spooled if it fails.
    ///
    /// # Errors
    ///
    /// [`SpoolError::Io`] if the write or fsync fails.
    pub fn push(
        &mut self,
        reporter: &Reporter,
        items: impl IntoIterator<Item = (i64, v1::event::Body)>,
    ) -> Result<Vec<u64>, SpoolError> {
        let mut buf = Vec::new();
        let mut added = Vec::new();
        let mut seq = self.next_seq;
        for (time, body) in items {
            let event = reporter.event(seq, time, body);
            let s = Spooled {
                seq,
                event_time_unix_nanos: time,
                event: reporter.sign(&event),
            };
            frame(&encode_spooled(&s), &mut buf);
            added.push(s);
            seq += 1;
        }
        if added.is_empty() {
            return Ok(Vec::new());
        }
        self.write_durably(&buf)?;
        self.next_seq = seq;
        let seqs = added.iter().map(|s| s.seq).collect();
        for s in added {
            self.pending_bytes += record_size(&s);
            self.pending.insert(s.seq, s);
        }
        Ok(seqs)
    }

    fn write_durably(&mut self, buf: &[u8]) -> Result<(), SpoolError> {
        let path = self.dir.join("events");
        let written = self
            .events
            .write_all(buf)
            .and_then(|()| self.events.sync_data());
        if let Err(source) = written {
            // Nothing half-spooled: cut back to what was there.
            let _ = self.events.set_len(self.events_len);
            let _ = self.events.seek(SeekFrom::Start(self.events_len));
            return Err(SpoolError::Io {
                path,
                op: "write and sync",
                source,
            });
        }
        self.events_len += buf.len() as u64;
        Ok(())
    }

    /// `pending_after` is up to `limit` pending events numbered after
    /// `seq`, in order.
    pub fn pending_after(&self, seq: u64, limit: usize) -> Vec<Spooled> {
        self.pending
            .range(seq.saturating_add(1)..)
            .take(limit)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// `first_pending` is the number of the oldest pending event.
    pub fn first_pending(&self) -> Option<u64> {
        self.pending.keys().next().copied()
    }

    /// `is_pending` says whether the event numbered `seq` awaits an answer.
    pub fn is_pending(&self, seq: u64) -> bool {
        self.pending.contains_key(&seq)
    }

    /// `record` writes the log's answers and fsyncs, then drops their
    /// events from the queue (and empties or compacts `events`). Answers
    /// for events not pending are ignored.
    ///
    /// # Errors
    ///
    /// [`SpoolError::Io`] if the write or fsync fails; the events then
    /// stay pending, and are sent again (and answered as duplicates).
    pub fn record(&mut self, acks: &[Ack]) -> Result<(), SpoolError> {
        let mut buf = Vec::new();
        let fresh: Vec<&Ack> = acks.iter().filter(|a| self.is_pending(a.seq)).collect();
        if fresh.is_empty() {
            return Ok(());
        }
        for a in &fresh {
            frame(&encode_ack(a), &mut buf);
        }
        let path = self.dir.join("acks");
        self.acks
            .write_all(&buf)
            .and_then(|()| self.acks.sync_data())
            .map_err(|source| SpoolError::Io {
                path,
                op: "write and sync",
                source,
            })?;
        for a in fresh {
            if let Some(s) = self.pending.remove(&a.seq) {
                self.pending_bytes -= record_size(&s);
            }
            count(&mut self.answered, &a.outcome);
            self.last_ack = Some(a.clone());
        }
        self.compact()
    }

    /// `compact` empties `events` when nothing is pending, or rewrites it
    /// with only the pending events when it is large and mostly answered.
    fn compact(&mut self) -> Result<(), SpoolError> {
        let path = self.dir.join("events");
        let io = |op: &'static str| {
            let path = path.clone();
            move |source| SpoolError::Io { path, op, source }
        };
        if self.pending.is_empty() {
            if self.events_len > 0 {
                self.events.set_len(0).map_err(io("truncate"))?;
                self.events.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
                self.events.sync_all().map_err(io("sync"))?;
                self.events_len = 0;
            }
            return Ok(());
        }
        if self.events_len <= COMPACT_BYTES || self.pending_bytes * 4 > self.events_len {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(self.pending_bytes as usize);
        for s in self.pending.values() {
            frame(&encode_spooled(s), &mut buf);
        }
        let tmp = self.dir.join("events.new");
        let mut f = File::create(&tmp).map_err(io("create events.new"))?;
        f.write_all(&buf)
            .and_then(|()| f.sync_all())
            .map_err(io("write events.new"))?;
        std::fs::rename(&tmp, &path).map_err(io("rename events.new"))?;
        sync_dir(&self.dir)?;
        f.seek(SeekFrom::End(0)).map_err(io("seek"))?;
        self.events = f;
        self.events_len = buf.len() as u64;
        Ok(())
    }

    /// `status` is the spool's depth, oldest pending event and last answer.
    pub fn status(&self) -> SpoolStatus {
        SpoolStatus {
            depth: self.pending.len(),
            oldest_pending: self
                .pending
                .values()
                .next()
                .map(|s| (s.seq, s.event_time_unix_nanos)),
            last_ack: self.last_ack.clone(),
            next_seq: self.next_seq,
            answered: self.answered,
        }
    }

    /// `acks` reads every answer recorded in the spool at `dir`, oldest
    /// first, without taking its lock (for `status` and audits).
    ///
    /// # Errors
    ///
    /// [`SpoolError`] if `acks` cannot be read or is damaged.
    pub fn read_acks(dir: &Path) -> Result<Vec<Ack>, SpoolError> {
        let path = dir.join("acks");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SpoolError::Io {
                    path,
                    op: "read",
                    source,
                })
            }
        };
        let (records, _) = parse(&path, &bytes)?;
        records
            .into_iter()
            .map(|(p, _)| {
                decode_ack(&p).ok_or_else(|| SpoolError::Damaged {
                    path: path.clone(),
                    offset: 0,
                    what: "a record that checks but is not an answer".into(),
                })
            })
            .collect()
    }
}

fn count(answered: &mut (u64, u64, u64), o: &Outcome) {
    match o {
        Outcome::Appended => answered.0 += 1,
        Outcome::Duplicate => answered.1 += 1,
        Outcome::Refused { .. } => answered.2 += 1,
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SpoolError::Io {
            path: dir.to_path_buf(),
            op: "sync the directory",
            source,
        })
}

/// `open_log` opens (or creates) a record file, reads its records, and
/// cuts off a torn tail. It returns the file, the records with their
/// framed sizes, and the file's length after the cut.
#[allow(clippy::type_complexity)]
fn open_log(path: &Path) -> Result<(File, Vec<(Vec<u8>, u64)>, u64, u64), SpoolError> {
    let io = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| SpoolError::Io { path, op, source }
    };
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("open"))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(io("read"))?;
    let (records, good) = parse(path, &bytes)?;
    Ok((f, records, good, bytes.len() as u64))
}

/// `cut_tail` drops a torn tail (`good` < `len`) and leaves the file
/// positioned at its end.
fn cut_tail(f: &mut File, path: &Path, good: u64, len: u64) -> Result<(), SpoolError> {
    let io = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| SpoolError::Io { path, op, source }
    };
    if good < len {
        tracing::warn!(
            file = %path.display(),
            cut = len - good,
            "spool: dropping a record cut short by a crash"
        );
        f.set_len(good).map_err(io("truncate a torn record"))?;
        f.sync_all().map_err(io("sync"))?;
    }
    f.seek(SeekFrom::End(0)).map_err(io("seek"))?;
    Ok(())
}

/// `parse` splits `bytes` into checked records. It returns them with
/// their framed sizes, and where the good records end: a torn tail after
/// that is to be cut; anything else that does not check is
/// [`SpoolError::Damaged`].
///
/// A crash in the middle of an append leaves the file cut short inside
/// its last record, or that record's pages unwritten (zeros up to the
/// end). Those are torn tails. A record that does not check but is not
/// that, such as a length pointing past the end with a whole record
/// after it, or a whole last record with a byte changed, was written
/// and fsync'd once, so its event may have been answered: damage.
#[allow(clippy::type_complexity)]
fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<(Vec<u8>, u64)>, u64), SpoolError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        match check_frame(rest) {
            Frame::Good(len) => {
                out.push((rest[12..len].to_vec(), len as u64));
                at += len;
            }
            Frame::Bad(what) => {
                if is_torn(rest) {
                    return Ok((out, at as u64));
                }
                return Err(SpoolError::Damaged {
                    path: path.to_path_buf(),
                    offset: at as u64,
                    what: what.to_owned(),
                });
            }
        }
    }
    Ok((out, at as u64))
}

enum Frame {
    /// A record that checks, of this framed length.
    Good(usize),
    /// Not one, and why.
    Bad(&'static str),
}

/// `check_frame` checks the record at the start of `rest`.
fn check_frame(rest: &[u8]) -> Frame {
    if rest.len() < 12 {
        return Frame::Bad("a record header cut short");
    }
    let mut len4 = [0u8; 4];
    len4.copy_from_slice(&rest[..4]);
    let len = u32::from_le_bytes(len4);
    if len > MAX_RECORD {
        return Frame::Bad("a record longer than any event");
    }
    let end = 12 + len as usize;
    if end > rest.len() {
        return Frame::Bad("a record running past the end of the file");
    }
    if Sha256::digest(&rest[12..end])[..8] != rest[4..12] {
        return Frame::Bad("a record whose checksum does not match");
    }
    Frame::Good(end)
}

/// `is_torn` says whether `rest`, which starts with a record that does
/// not check, is what a crash during its append leaves: the file cut
/// short inside it, or its unwritten pages read as zeros, with no record
/// that checks anywhere after its start.
fn is_torn(rest: &[u8]) -> bool {
    let header_len = rest.len().min(4);
    let mut len4 = [0u8; 4];
    len4[..header_len].copy_from_slice(&rest[..header_len]);
    let len = u32::from_le_bytes(len4) as usize;
    let end = 12usize.saturating_add(len);
    let cut_short = rest.len() < 12 || (len <= MAX_RECORD as usize && end > rest.len());
    // Zeros to the end of the file from somewhere inside the record (or
    // the whole rest is zeros): pages that were never written.
    let trailing_zeros = rest.iter().rev().take_while(|b| **b == 0).count();
    let unwritten = trailing_zeros == rest.len()
        || (trailing_zeros >= 16 && rest.len() - trailing_zeros < end.min(rest.len()));
    if !(cut_short || unwritten) {
        return false;
    }
    // A record that checks after the bad one means it was not the last
    // append: the bad one is damage, whatever it looks like.
    // (Zeros never check: an empty record's checksum is not zeros.)
    !(1..rest.len()).any(|i| matches!(check_frame(&rest[i..]), Frame::Good(_)))
}

fn frame(payload: &[u8], out: &mut Vec<u8>) {
    // Payloads are events of at most a few hundred KiB; MAX_RECORD is
    // checked on reading.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&Sha256::digest(payload)[..8]);
    out.extend_from_slice(payload);
}

fn record_size(s: &Spooled) -> u64 {
    12 + 16 + s.event.encoded_len() as u64
}

fn encode_spooled(s: &Spooled) -> Vec<u8> {
    let mut p = Vec::with_capacity(16 + s.event.encoded_len());
    p.extend_from_slice(&s.seq.to_le_bytes());
    p.extend_from_slice(&s.event_time_unix_nanos.to_le_bytes());
    s.event.encode(&mut p).unwrap_or_default();
    p
}

fn decode_spooled(p: &[u8]) -> Option<Spooled> {
    let seq = u64::from_le_bytes(p.get(..8)?.try_into().ok()?);
    let time = i64::from_le_bytes(p.get(8..16)?.try_into().ok()?);
    let event = v1::SignedEvent::decode(p.get(16..)?).ok()?;
    Some(Spooled {
        seq,
        event_time_unix_nanos: time,
        event,
    })
}

fn encode_ack(a: &Ack) -> Vec<u8> {
    let mut p = Vec::with_capacity(21);
    p.extend_from_slice(&a.seq.to_le_bytes());
    p.extend_from_slice(&a.index.to_le_bytes());
    match &a.outcome {
        Outcome::Appended => p.push(0),
        Outcome::Duplicate => p.push(1),
        Outcome::Refused { code, message } => {
            p.push(2);
            p.extend_from_slice(&code.to_le_bytes());
            p.extend_from_slice(message.as_bytes());
        }
    }
    p
}

fn decode_ack(p: &[u8]) -> Option<Ack> {
    let seq = u64::from_le_bytes(p.get(..8)?.try_into().ok()?);
    let index = u64::from_le_bytes(p.get(8..16)?.try_into().ok()?);
    let outcome = match *p.get(16)? {
        0 => Outcome::Appended,
        1 => Outcome::Duplicate,
        2 => Outcome::Refused {
            code: i32::from_le_bytes(p.get(17..21)?.try_into().ok()?),
            message: String::from_utf8_lossy(p.get(21..)?).into_owned(),
        },
        _ => return None,
    };
    Some(Ack {
        seq,
        index,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_proto::v1;

    fn reporter() -> Reporter {
        let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        Reporter::new("cam", key, "test.example/log")
    }

    fn capture(i: u8) -> (i64, v1::event::Body) {
        (
            1_000 + i64::from(i),
            v1::event::Body::Custody(v1::CustodyAction {
                action: v1::CustodyActionKind::Capture as i32,
                actor: "cam".into(),
                to_system: "cam-sys".into(),
                asset_digest: vec![i; 32],
                ..Default::default()
            }),
        )
    }

    fn appended(seq: u64, index: u64) -> Ack {
        Ack {
            seq,
            index,
            outcome: Outcome::Appended,
        }
    }

    #[test]
    fn events_survive_a_restart_until_answered_and_numbers_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let r = reporter();
        let mut s = Spool::open(dir.path()).unwrap();
        assert_eq!(
            s.push(&r, (0..5).map(capture)).unwrap(),
            vec![1, 2, 3, 4, 5]
        );
        s.record(&[appended(1, 10), appended(2, 11)]).unwrap();
        let sent: Vec<_> = s
            .pending_after(0, 10)
            .iter()
            .map(|e| e.event.clone())
            .collect();
        drop(s);

        let mut s = Spool::open(dir.path()).unwrap();
        let again = s.pending_after(0, 10);
        assert_eq!(
            again.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        // Byte for byte what was signed: a resubmission is a duplicate.
        assert_eq!(
            again.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
            sent
        );
        assert_eq!(s.next_seq(), 6);
        assert_eq!(s.status().last_ack, Some(appended(2, 11)));
        // Everything answered: `events` is emptied, numbers go on.
        s.record(&[appended(3, 12), appended(4, 13), appended(5, 14)])
            .unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("events")).unwrap().len(),
            0
        );
        drop(s);
        let mut s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.status().depth, 0);
        assert_eq!(s.push(&r, [capture(9)]).unwrap(), vec![6]);
        assert_eq!(Spool::read_acks(dir.path()).unwrap().len(), 5);
    }

    #[test]
    fn a_torn_tail_is_dropped_and_damage_in_the_middle_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = reporter();
        let mut s = Spool::open(dir.path()).unwrap();
        s.push(&r, (0..3).map(capture)).unwrap();
        drop(s);
        let path = dir.path().join("events");
        let whole = std::fs::read(&path).unwrap();
        // Each cut inside the last record loses only it.
        let last_start = {
            let (recs, _) = parse(&path, &whole).unwrap();
            whole.len() - recs[2].1 as usize
        };
        for cut in [last_start + 1, last_start + 11, whole.len() - 1] {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let s = Spool::open(dir.path()).unwrap();
            assert_eq!(s.status().depth, 2, "cut at {cut}");
            assert_eq!(s.next_seq(), 3, "the torn event's number is free again");
            drop(s);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), last_start as u64);
        }
        // Zeros after the last good record (a crash on a file system that
        // extends first) are a torn tail too.
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0u8; 100]);
        std::fs::write(&path, &zeros).unwrap();
        assert_eq!(Spool::open(dir.path()).unwrap().status().depth, 3);
        // A flipped byte in the first record, with good ones after it, is
        // damage: opening fails rather than drop events silently.
        let mut bad = whole.clone();
        bad[20] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        let err = Spool::open(dir.path()).err().expect("damage is refused");
        assert!(matches!(err, SpoolError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains("do not delete"), "{err}");
    }

    /// What a crash cannot leave is damage, not a torn tail: a length
    /// pointing past the end with whole records after it, a whole last
    /// record with a byte changed, answers cut short with nothing
    /// waiting. Each would otherwise drop events or reuse numbers.
    #[test]
    fn what_a_crash_cannot_leave_is_damage() {
        let damaged = |dir: &Path| {
            let err = Spool::open(dir).err().expect("damage is refused");
            assert!(matches!(err, SpoolError::Damaged { .. }), "{err}");
        };
        let dir = tempfile::tempdir().unwrap();
        let r = reporter();
        let mut s = Spool::open(dir.path()).unwrap();
        s.push(&r, (0..3).map(capture)).unwrap();
        drop(s);
        let path = dir.path().join("events");
        let whole = std::fs::read(&path).unwrap();
        let (recs, _) = parse(&path, &whole).unwrap();
        let last_start = whole.len() - recs[2].1 as usize;

        // The first record's length made to run past the end.
        let mut bad = whole.clone();
        bad[..4].copy_from_slice(&(whole.len() as u32).to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        damaged(dir.path());
        // A byte changed in the whole last record.
        let mut bad = whole.clone();
        bad[last_start + 20] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        damaged(dir.path());
        // The last record's pages unwritten (its end zeros): torn.
        let mut torn = whole.clone();
        for b in &mut torn[last_start + 30..] {
            *b = 0;
        }
        std::fs::write(&path, &torn).unwrap();
        let s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.status().depth, 2);
        drop(s);

        // Every event answered (so `events` is emptied), then the last
        // answer cut short: numbers would be given again.
        let mut s = Spool::open(dir.path()).unwrap();
        s.record(&[appended(1, 10), appended(2, 11)]).unwrap();
        assert_eq!(s.status().depth, 0);
        drop(s);
        let acks = dir.path().join("acks");
        let a = std::fs::read(&acks).unwrap();
        std::fs::write(&acks, &a[..a.len() - 3]).unwrap();
        damaged(dir.path());
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Spool::open(dir.path()).unwrap();
        assert!(matches!(
            Spool::open(dir.path()),
            Err(SpoolError::Locked(_))
        ));
    }

    #[test]
    fn a_large_mostly_answered_spool_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let r = reporter();
        let mut s = Spool::open(dir.path()).unwrap();
        let mut seqs = Vec::new();
        while std::fs::metadata(dir.path().join("events")).unwrap().len() <= COMPACT_BYTES {
            seqs.extend(s.push(&r, (0..200).map(|i| capture(i as u8))).unwrap());
        }
        let keep = *seqs.last().unwrap();
        let acks: Vec<_> = seqs[..seqs.len() - 1]
            .iter()
            .map(|q| appended(*q, *q))
            .collect();
        s.record(&acks).unwrap();
        let len = std::fs::metadata(dir.path().join("events")).unwrap().len();
        assert!(
            len < 4096,
            "rewritten with the one pending event: {len} bytes"
        );
        drop(s);
        let s = Spool::open(dir.path()).unwrap();
        assert_eq!(
            s.pending_after(0, 10)
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>(),
            vec![keep]
        );
        assert_eq!(s.next_seq(), keep + 1);
    }
}
