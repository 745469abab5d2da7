"""custody-ledger: report signed custody events to a Custody Ledger and
check what it logged.

    from custody_ledger import Client, Reporter, Spool, copy

- `Reporter` builds events from typed values (`copy`, `capture`) and signs
  them with the party's key, exactly as the Rust client does.
- `Client` sends them (spool-less) and fetches inclusion proofs, which
  `LogVerifier` (the log's `log.vkey`) checks offline.
- `Spool` is a durable local queue: an event is committed to disk before
  it is sent, and each event is logged once.
"""

from .client import Answer, Appended, Client, ProvenEntry
from .errors import (
    CustodyError,
    DrainIncomplete,
    KeyFileError,
    RefusedError,
    RpcError,
    SpoolError,
    UnavailableError,
    VerificationError,
)
from .events import (
    PAYLOAD_TYPE,
    Modality,
    Outcome,
    Purpose,
    Reporter,
    SubjectClass,
    capture,
    copy,
    event_of,
    pae,
)
from .keys import key_id, load_secret_key, parse_public_key, parse_secret_key
from .proof import LogVerifier, VerifiedCheckpoint, leaf_hash, root_from_inclusion_proof, verify_inclusion
from .spool import Ack, DrainReport, Spool, Spooled, SpoolStatus

__version__ = "0.1.0"

__all__ = [
    "PAYLOAD_TYPE",
    "Ack",
    "Answer",
    "Appended",
    "Client",
    "CustodyError",
    "DrainIncomplete",
    "DrainReport",
    "KeyFileError",
    "LogVerifier",
    "Modality",
    "Outcome",
    "ProvenEntry",
    "Purpose",
    "RefusedError",
    "Reporter",
    "RpcError",
    "Spool",
    "SpoolError",
    "SpoolStatus",
    "Spooled",
    "SubjectClass",
    "UnavailableError",
    "VerificationError",
    "VerifiedCheckpoint",
    "capture",
    "copy",
    "event_of",
    "key_id",
    "leaf_hash",
    "load_secret_key",
    "pae",
    "parse_public_key",
    "parse_secret_key",
    "root_from_inclusion_proof",
    "verify_inclusion",
]
