"""`Spool`: a reporter's durable local queue of signed events, in one
SQLite file (the standard library's sqlite3; WAL with
`synchronous=FULL`, so every commit is on disk before it returns).

- `push` numbers, signs and commits events before anything is sent; the
  numbers come from the spool, so they have no gaps across restarts (a
  crash before the commit spools nothing and uses no number; one after it
  leaves the event to be sent).
- `drain` sends what is pending over `AppendStream`, oldest first, and
  commits each answer: the index it was logged at (new, or a duplicate of
  an earlier submission), or why it was refused for good. An event whose
  answer was lost (the process died after sending) is sent again with the
  same bytes and answered as a duplicate with its original index: each
  event is logged once.
- `status` is the queue's depth, its oldest event and the last answer.

Answered events stay in the file, with where they were logged: the
reporter's record (`prune` drops their signed bytes). One process uses a
spool at a time (an advisory lock on `<path>.lock`)."""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import grpc

from .client import Client
from .errors import (
    RETRYABLE,
    CustodyError,
    DrainIncomplete,
    RefusedError,
    SpoolError,
    UnavailableError,
    rpc_error,
    status_code,
)
from .events import Body, Reporter
from .v1 import log_pb2 as pb

try:
    import fcntl
except ImportError:  # not POSIX: no advisory lock
    fcntl = None  # type: ignore[assignment]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,             -- the reporter's sequence number
    event_id TEXT NOT NULL UNIQUE,
    event_time INTEGER NOT NULL,         -- Unix nanoseconds
    signed BLOB NOT NULL,                -- the SignedEvent, byte for byte as sent each time
    spooled_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    n INTEGER PRIMARY KEY AUTOINCREMENT, -- the order answers were recorded in
    seq INTEGER NOT NULL UNIQUE REFERENCES events(seq),
    outcome TEXT NOT NULL CHECK (outcome IN ('appended', 'duplicate', 'refused')),
    log_index INTEGER,                   -- NULL when refused
    error_code INTEGER NOT NULL,
    error_message TEXT NOT NULL,
    answered_at INTEGER NOT NULL
);
"""
_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Spooled:
    """An event in the spool, as signed."""

    seq: int
    event_time_unix_nanos: int
    event_id: str
    event: pb.SignedEvent


@dataclass(frozen=True)
class Ack:
    """What the log answered for the event numbered `seq`."""

    seq: int
    #: "appended", "duplicate" (logged before, at `index`) or "refused".
    outcome: str
    #: The event's log index; None when refused.
    index: Optional[int]
    #: OK, or the code and message it was refused with.
    code: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""


@dataclass(frozen=True)
class SpoolStatus:
    """The state of a spool."""

    #: Events spooled and not yet answered.
    depth: int
    #: The oldest of them: (sequence number, event time in Unix ns).
    oldest_pending: Optional[Tuple[int, int]]
    #: The last answer recorded.
    last_ack: Optional[Ack]
    #: The log index of the last event answered as logged.
    last_acked_index: Optional[int]
    #: The number the next event will get.
    next_seq: int
    #: Answers recorded, by kind.
    appended: int
    duplicate: int
    refused: int


@dataclass(frozen=True)
class DrainReport:
    """What one `drain` recorded."""

    appended: int
    duplicate: int
    refused: Tuple[Ack, ...]
    #: AppendStream sessions it took.
    sessions: int


class Spool:
    """The durable queue at `path` (an SQLite file, made if missing) of
    `reporter`'s events. A spool belongs to one party and one log: opening
    it with another reporter's is refused."""

    def __init__(self, path: str | os.PathLike[str], reporter: Reporter) -> None:
        self.path = Path(path)
        self.reporter = reporter
        self._lock_file = None
        new = not self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if fcntl is not None:
                self._lock_file = open(f"{self.path}.lock", "a")
                try:
                    fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    self._lock_file.close()
                    raise SpoolError(
                        f"spool {self.path} is in use by another process (it holds {self.path}.lock)"
                    ) from None
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise SpoolError(
                    f"spool {self.path} has schema version {version}; this custody-ledger knows {_SCHEMA_VERSION}: upgrade the package"
                )
            with self._transaction():
                for statement in _statements(_SCHEMA):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
                self._bind(reporter)
            if new:
                _sync_dir(self.path.parent)
        except sqlite3.Error as e:
            self._release()
            raise SpoolError(
                f"spool {self.path}: {e}; if it is damaged, move it aside and keep it (its events may not all be logged)"
            ) from None
        except BaseException:
            self._release()
            raise
        self._sync_reporter()

    # -- opening ---------------------------------------------------------

    def _bind(self, reporter: Reporter) -> None:
        """Records whose spool this is, or checks it; keeps the reporter's
        next number if it is ahead (events numbered without this spool)."""
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        for key, have in (("party", reporter.party), ("log_origin", reporter.log_origin)):
            want = meta.get(key)
            if want is None:
                self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, have))
            elif want != have:
                raise SpoolError(
                    f"spool {self.path} holds the events of {meta.get('party')!r} for the log {meta.get('log_origin')!r}; "
                    f"this reporter is {reporter.party!r} for {reporter.log_origin!r}: give each party and log its own spool"
                )
        self._set_floor(reporter.next_seq)

    def _set_floor(self, seq: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('next_seq', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
            (str(seq),),
        )

    def _next_seq(self) -> int:
        floor = self._db.execute("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'next_seq'").fetchone()
        top = self._db.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        return max(floor[0] if floor else 1, (top or 0) + 1)

    def _sync_reporter(self) -> None:
        self.reporter.next_seq = max(self.reporter.next_seq, self.next_seq())

    @contextlib.contextmanager
    def _transaction(self):  # type: ignore[no-untyped-def]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _release(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def close(self) -> None:
        """Closes the spool (and releases its lock)."""
        self._release()

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------

    def next_seq(self) -> int:
        """The sequence number the next event will get."""
        return self._next_seq()

    def continue_after(self, seq: int) -> None:
        """Numbers the next event at least `seq + 1`: for a reporter whose
        earlier events were numbered without this spool."""
        with self._transaction():
            self._set_floor(seq + 1)
        self._sync_reporter()

    def push(self, body: Body, *, event_time_unix_nanos: Optional[int] = None) -> int:
        """Numbers, signs and commits one event (e.g. `copy(...)`) and
        returns its sequence number. Nothing is sent: `drain` sends."""
        return self.push_many([body], event_time_unix_nanos=event_time_unix_nanos)[0]

    def push_many(self, bodies: Iterable[Body], *, event_time_unix_nanos: Optional[int] = None) -> List[int]:
        """`push` for many events, in one commit (all or none)."""
        saved = self.reporter.next_seq
        seqs: List[int] = []
        now = time.time_ns()
        try:
            with self._transaction():
                seq = self._next_seq()
                for body in bodies:
                    t = now if event_time_unix_nanos is None else event_time_unix_nanos
                    event = self.reporter.event(body, seq=seq, event_time_unix_nanos=t)
                    signed = self.reporter.sign_event(event)
                    self._db.execute(
                        "INSERT INTO events (seq, event_id, event_time, signed, spooled_at) VALUES (?, ?, ?, ?, ?)",
                        (seq, event.event_id, t, signed.SerializeToString(deterministic=True), now),
                    )
                    seqs.append(seq)
                    seq += 1
        except sqlite3.Error as e:
            self.reporter.next_seq = saved
            raise SpoolError(f"spool {self.path}: write: {e}; nothing was spooled") from None
        except BaseException:
            self.reporter.next_seq = saved
            raise
        self._sync_reporter()
        return seqs

    def _record(self, acks: List[Ack]) -> None:
        if not acks:
            return
        now = time.time_ns()
        try:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO answers (seq, outcome, log_index, error_code, error_message, answered_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING",
                    [(a.seq, a.outcome, a.index, a.code.value[0], a.message, now) for a in acks],
                )
        except sqlite3.Error as e:
            raise SpoolError(
                f"spool {self.path}: record answers: {e}; the events stay pending and are sent again"
            ) from None

    # -- reading ---------------------------------------------------------

    def pending(self, limit: Optional[int] = None) -> List[Spooled]:
        """The events not yet answered, oldest first (at most `limit`)."""
        rows = self._db.execute(
            "SELECT e.seq, e.event_time, e.event_id, e.signed FROM events e "
            "LEFT JOIN answers a ON a.seq = e.seq WHERE a.seq IS NULL ORDER BY e.seq LIMIT ?",
            (-1 if limit is None else limit,),
        ).fetchall()
        return [_spooled(r) for r in rows]

    def event(self, seq: int) -> Optional[Spooled]:
        """The event numbered `seq`, answered or not (None if unknown or
        pruned)."""
        r = self._db.execute(
            "SELECT seq, event_time, event_id, signed FROM events WHERE seq = ? AND length(signed) > 0", (seq,)
        ).fetchone()
        return _spooled(r) if r else None

    def ack(self, seq: int) -> Optional[Ack]:
        """The answer recorded for the event numbered `seq`, if any."""
        r = self._db.execute(
            "SELECT seq, outcome, log_index, error_code, error_message FROM answers WHERE seq = ?", (seq,)
        ).fetchone()
        return _ack(r) if r else None

    def index_of(self, seq: int) -> Optional[int]:
        """Where the event numbered `seq` was logged (None if not yet, or
        refused)."""
        a = self.ack(seq)
        return a.index if a else None

    def acks(self) -> List[Ack]:
        """Every answer recorded, in the order recorded."""
        rows = self._db.execute(
            "SELECT seq, outcome, log_index, error_code, error_message FROM answers ORDER BY n"
        ).fetchall()
        return [_ack(r) for r in rows]

    def status(self) -> SpoolStatus:
        """Depth, oldest pending event, last answer and counts."""
        depth = self._db.execute(
            "SELECT COUNT(*) FROM events e LEFT JOIN answers a ON a.seq = e.seq WHERE a.seq IS NULL"
        ).fetchone()[0]
        oldest = self.pending(1)
        last = self._db.execute(
            "SELECT seq, outcome, log_index, error_code, error_message FROM answers ORDER BY n DESC LIMIT 1"
        ).fetchone()
        last_logged = self._db.execute(
            "SELECT log_index FROM answers WHERE outcome != 'refused' ORDER BY n DESC LIMIT 1"
        ).fetchone()
        counts = dict(self._db.execute("SELECT outcome, COUNT(*) FROM answers GROUP BY outcome").fetchall())
        return SpoolStatus(
            depth=depth,
            oldest_pending=(oldest[0].seq, oldest[0].event_time_unix_nanos) if oldest else None,
            last_ack=_ack(last) if last else None,
            last_acked_index=last_logged[0] if last_logged else None,
            next_seq=self._next_seq(),
            appended=counts.get("appended", 0),
            duplicate=counts.get("duplicate", 0),
            refused=counts.get("refused", 0),
        )

    def prune(self) -> int:
        """Drops the signed bytes of answered events (their answers, with
        where they were logged, stay) and returns how many."""
        with self._transaction():
            n = self._db.execute(
                "UPDATE events SET signed = x'' WHERE length(signed) > 0 AND seq IN (SELECT seq FROM answers)"
            ).rowcount
        return n

    # -- sending ---------------------------------------------------------

    def drain(self, client: Client, *, timeout: float = 60.0, batch: int = 256) -> DrainReport:
        """Sends every pending event to `client`'s log and records each
        answer, however many sessions it takes (reconnecting with back-off
        and jitter) within `timeout` seconds.

        An event the log refused for what it is is recorded as refused and
        not sent again (see `DrainReport.refused`). Raises DrainIncomplete
        if events are still pending at the end, or if the log refuses the
        stream itself (a bad token, say): they stay spooled."""
        deadline = time.monotonic() + timeout
        appended = duplicate = sessions = failures = 0
        refused: List[Ack] = []
        last_error: Optional[Exception] = None
        while True:
            todo = self.pending(batch)
            if not todo:
                return DrainReport(appended, duplicate, tuple(refused), sessions)
            sessions += 1
            acks: List[Ack] = []
            error: Optional[Exception] = None
            try:
                with contextlib.closing(client.stream([s.event for s in todo])) as answers:
                    for s, answer in zip(todo, answers):
                        if answer.ok:
                            acks.append(Ack(s.seq, "duplicate" if answer.duplicate else "appended", answer.index))
                        elif answer.code in RETRYABLE:
                            error = rpc_error(f"event {s.seq}", answer.code, answer.message)
                            break
                        else:
                            acks.append(Ack(s.seq, "refused", None, answer.code, answer.message))
            except UnavailableError as e:
                error = e
            except RefusedError as e:
                self._record(acks)
                raise DrainIncomplete(
                    f"the log refused the append stream: {e}; {self.status().depth} events stay in {self.path}",
                    self.status().depth,
                    e,
                ) from e
            self._record(acks)
            for a in acks:
                if a.outcome == "appended":
                    appended += 1
                elif a.outcome == "duplicate":
                    duplicate += 1
                else:
                    refused.append(a)
            if error is None and len(acks) < len(todo):
                error = CustodyError("the server ended the stream with events unanswered")
            if error is None:
                failures = 0
                continue
            last_error = error
            failures = 0 if acks else failures + 1
            wait = min(5.0, 0.1 * 2**failures) * random.uniform(0.5, 1.0)
            if time.monotonic() + wait > deadline:
                depth = self.status().depth
                raise DrainIncomplete(
                    f"{depth} events still pending in {self.path} after {timeout:.0f} s: {last_error}; the next drain() sends them",
                    depth,
                    last_error,
                )
            time.sleep(wait)


def _statements(script: str) -> List[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _spooled(r: Tuple[int, int, str, bytes]) -> Spooled:
    e = pb.SignedEvent()
    e.ParseFromString(r[3])
    return Spooled(seq=r[0], event_time_unix_nanos=r[1], event_id=r[2], event=e)


def _ack(r: Tuple[int, str, Optional[int], int, str]) -> Ack:
    return Ack(seq=r[0], outcome=r[1], index=r[2], code=status_code(r[3]), message=r[4])


def _sync_dir(d: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
