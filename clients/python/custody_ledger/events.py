"""Events, built from typed values and signed exactly as the Rust side
signs them (crates/custody-domain/src/envelope.rs,
crates/custody-client/src/reporter.rs):

- the body is the `custody.v1.Event`, serialized once; those exact bytes
  are signed, sent and logged (the log refuses a body that does not
  re-encode to itself, so it is never re-encoded here either);
- each signature is Ed25519 over the DSSE v1 pre-authentication encoding
  `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body` (lengths in ASCII
  decimal) with the payload type `PAYLOAD_TYPE`;
- the key id is the first 16 bytes of SHA-256 of the public key;
- the event names the log's origin, so its signed bytes are valid in that
  log only.
"""

from __future__ import annotations

import enum
import os
import re
import time
import uuid
from typing import Optional, Union, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import keys
from .v1 import log_pb2 as pb

#: The payload type of a custody event body (`custody_domain::PAYLOAD_TYPE`).
PAYLOAD_TYPE = "application/vnd.custody-ledger.event.v1+protobuf"

_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class Modality(enum.IntEnum):
    """What kind of image or record an asset is."""

    FACE_IMAGE = pb.MODALITY_FACE_IMAGE
    PLATE_IMAGE = pb.MODALITY_PLATE_IMAGE
    SCENE_IMAGE = pb.MODALITY_SCENE_IMAGE
    FACE_TEMPLATE = pb.MODALITY_FACE_TEMPLATE
    OTHER = pb.MODALITY_OTHER


class SubjectClass(enum.IntEnum):
    """Whose image it is, as a class; it selects the retention rule."""

    CITIZEN = pb.SUBJECT_CLASS_CITIZEN
    PERMANENT_RESIDENT = pb.SUBJECT_CLASS_PERMANENT_RESIDENT
    NON_CITIZEN = pb.SUBJECT_CLASS_NON_CITIZEN
    UNKNOWN = pb.SUBJECT_CLASS_UNKNOWN


class Purpose(enum.IntEnum):
    """Why an action was taken."""

    BORDER_INSPECTION = pb.PURPOSE_BORDER_INSPECTION
    MAINTENANCE = pb.PURPOSE_MAINTENANCE
    QUALITY_ASSURANCE = pb.PURPOSE_QUALITY_ASSURANCE
    INVESTIGATION = pb.PURPOSE_INVESTIGATION
    BACKUP = pb.PURPOSE_BACKUP
    TRAINING = pb.PURPOSE_TRAINING
    RECORDS_RETENTION = pb.PURPOSE_RECORDS_RETENTION


class Outcome(enum.IntEnum):
    """Whether the action succeeded."""

    SUCCESS = pb.OUTCOME_SUCCESS
    FAILURE = pb.OUTCOME_FAILURE


#: What an event can report: one of the messages of `Event.body`.
Body = Union[
    pb.CustodyAction,
    pb.MaintenanceSession,
    pb.CustodyAttestation,
    pb.PartyRegistered,
    pb.KeyAdded,
    pb.KeyRevoked,
    pb.SystemRegistered,
    pb.GrantIssued,
    pb.GrantRevoked,
    pb.RetentionRulePublished,
    pb.LegalHold,
    pb.PolicyPublished,
]

# Event.body's field for each message type it can hold.
_BODY_FIELD = {
    f.message_type.full_name: f.name
    for f in pb.Event.DESCRIPTOR.oneofs_by_name["body"].fields
    if f.message_type is not None
}


def check_id(field: str, value: str) -> str:
    """`value` if it is an opaque id (1 to 64 of `[A-Za-z0-9._:-]`, as the
    log requires), else ValueError naming `field`."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError(f"{field} {value!r} is not an id: 1 to 64 characters from A-Z a-z 0-9 . _ : -")
    return value


def _digest(value: bytes) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) != 32:
        raise ValueError("an asset is named by the SHA-256 of its bytes: pass hashlib.sha256(data).digest() (32 bytes)")
    return bytes(value)


def copy(
    digest: bytes,
    *,
    from_system: str,
    to_system: str,
    actor: str,
    on_behalf_of: str = "",
    grant_id: str = "",
    purpose: Optional[Purpose] = None,
    outcome: Optional[Outcome] = None,
) -> pb.CustodyAction:
    """A COPY: `actor` copied the asset `digest` (its SHA-256) from one
    system to another; the source keeps its copy. `grant_id` names the
    grant relied on, if any (an unauthorised copy is still recordable)."""
    action = pb.CustodyAction(
        action=pb.CUSTODY_ACTION_KIND_COPY,
        actor=check_id("actor", actor),
        asset_digest=_digest(digest),
        from_system=check_id("from_system", from_system),
        to_system=check_id("to_system", to_system),
    )
    if from_system == to_system:
        raise ValueError("from_system and to_system are the same system")
    if on_behalf_of:
        action.on_behalf_of = check_id("on_behalf_of", on_behalf_of)
    if grant_id:
        action.grant_id = check_id("grant_id", grant_id)
    if purpose is not None:
        action.purpose = cast(pb.Purpose, int(Purpose(purpose)))
    if outcome is not None:
        action.outcome = cast(pb.Outcome, int(Outcome(outcome)))
    return action


def capture(
    digest: bytes,
    *,
    to_system: str,
    actor: str,
    modality: Modality,
    subject_class: SubjectClass,
    on_behalf_of: str = "",
    purpose: Optional[Purpose] = None,
    port: str = "",
    lane: str = "",
    device: str = "",
) -> pb.CustodyAction:
    """A CAPTURE: the asset `digest` came into being on `to_system`, of
    this modality and subject class, optionally at a port, lane and
    device (opaque ids)."""
    action = pb.CustodyAction(
        action=pb.CUSTODY_ACTION_KIND_CAPTURE,
        actor=check_id("actor", actor),
        asset_digest=_digest(digest),
        to_system=check_id("to_system", to_system),
        modality=cast(pb.Modality, int(Modality(modality))),
        subject_class=cast(pb.SubjectClass, int(SubjectClass(subject_class))),
    )
    if on_behalf_of:
        action.on_behalf_of = check_id("on_behalf_of", on_behalf_of)
    if purpose is not None:
        action.purpose = cast(pb.Purpose, int(Purpose(purpose)))
    if port or lane or device:
        action.capture.CopyFrom(
            pb.CaptureContext(
                port=port and check_id("port", port),
                lane=lane and check_id("lane", lane),
                device=device and check_id("device", device),
            )
        )
    return action


def pae(payload_type: str, body: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding that each signature covers."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


class Reporter:
    """A party reporting to one log: its id, its signing key, the log's
    origin, and the sequence number its next event gets.

    The log detects gaps in a reporter's numbers (a `sequence_gap`
    finding), so numbers must survive restarts: a `Spool` keeps them for
    you; without one, save `next_seq` yourself and pass it back in."""

    def __init__(self, party: str, key: Ed25519PrivateKey, log_origin: str, *, next_seq: int = 1) -> None:
        self.party = check_id("party", party)
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError("key must be an Ed25519PrivateKey: load it with custody_ledger.load_secret_key")
        if not log_origin or any(c.isspace() for c in log_origin):
            raise ValueError(f"log origin {log_origin!r} is not one: the first line of the log's checkpoints")
        if next_seq < 1:
            raise ValueError("sequence numbers start at 1")
        self._key = key
        self.log_origin = log_origin
        self.next_seq = next_seq
        self.public_key = keys.public_key_bytes(key)
        self.key_id = keys.key_id(self.public_key)

    @classmethod
    def from_key_file(
        cls, party: str, path: str | os.PathLike[str], log_origin: str, *, next_seq: int = 1
    ) -> "Reporter":
        """The reporter `party` signing with the secret key file at `path`
        (`custody keygen` writes it)."""
        return cls(party, keys.load_secret_key(path), log_origin, next_seq=next_seq)

    def __repr__(self) -> str:
        return f"Reporter(party={self.party!r}, key_id={self.key_id.hex()}, log_origin={self.log_origin!r}, next_seq={self.next_seq})"

    def event(
        self,
        body: Body,
        *,
        seq: Optional[int] = None,
        event_time_unix_nanos: Optional[int] = None,
        event_id: Optional[str] = None,
    ) -> pb.Event:
        """The unsigned event reporting `body` (e.g. from `copy()`), numbered
        `seq` (default: the next number, which this takes), happened at
        `event_time_unix_nanos` (default: now), with `event_id` (default: a
        fresh UUID; the log deduplicates on it)."""
        field = _BODY_FIELD.get(body.DESCRIPTOR.full_name)
        if field is None:
            raise TypeError(f"{body.DESCRIPTOR.full_name} is not an event body; build one with copy() or capture()")
        if seq is None:
            seq = self.next_seq
        if seq < 1:
            raise ValueError("sequence numbers start at 1")
        self.next_seq = max(self.next_seq, seq + 1)
        when = time.time_ns() if event_time_unix_nanos is None else event_time_unix_nanos
        if when <= 0:
            raise ValueError("event_time must be a positive Unix time in nanoseconds")
        eid = str(uuid.uuid4()) if event_id is None else event_id
        if str(uuid.UUID(eid)) != eid:
            raise ValueError(f"event_id {eid!r} is not a UUID in its canonical form (lower-case, hyphenated)")
        e = pb.Event(
            event_id=eid,
            event_time_unix_nanos=when,
            reporter=self.party,
            reporter_seq=seq,
            log_origin=self.log_origin,
        )
        getattr(e, field).CopyFrom(body)
        return e

    def sign_event(self, event: pb.Event) -> pb.SignedEvent:
        """`event` signed by this reporter's key, as the log takes it."""
        body = event.SerializeToString(deterministic=True)
        sig = self._key.sign(pae(PAYLOAD_TYPE, body))
        return pb.SignedEvent(
            payload_type=PAYLOAD_TYPE,
            body=body,
            signatures=[pb.EventSignature(key_id=self.key_id, sig=sig)],
        )

    def sign(
        self,
        body: Body,
        *,
        seq: Optional[int] = None,
        event_time_unix_nanos: Optional[int] = None,
        event_id: Optional[str] = None,
    ) -> pb.SignedEvent:
        """`event(...)` signed: what `Client.append` sends."""
        return self.sign_event(
            self.event(body, seq=seq, event_time_unix_nanos=event_time_unix_nanos, event_id=event_id)
        )


def event_of(signed: pb.SignedEvent) -> pb.Event:
    """The event a signed event carries (its body, decoded)."""
    e = pb.Event()
    e.ParseFromString(signed.body)
    return e
