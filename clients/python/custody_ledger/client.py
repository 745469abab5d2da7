"""`Client`: a connection to a Custody Ledger server (`custodyd`) over
gRPC, spool-less: each call sends now or raises.

A bearer token (the server's `custodyd access add` prints one) is sent as
`authorization: Bearer <token>` metadata on every call, as the `custody`
CLI does. `https://` targets, or any target given a CA or a client
certificate, are reached over TLS."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Generator, Iterable, List, Optional, Sequence, Tuple, Union

import grpc

from .errors import CustodyError, VerificationError, from_grpc, rpc_error, status_code
from .proof import LogVerifier, VerifiedCheckpoint, leaf_hash, verify_inclusion
from .v1 import log_pb2 as pb
from .v1 import log_pb2_grpc as pb_grpc

PathOrPem = Union[str, "os.PathLike[str]", bytes]


@dataclass(frozen=True)
class Appended:
    """The log's answer to one append."""

    #: The entry's index in the log (the original one for a duplicate).
    index: int
    #: True when the same event (same id, same bytes) was logged before.
    duplicate: bool
    #: With `wait_for_checkpoint`: the signed checkpoint note, and the
    #: inclusion proof of the entry in it.
    checkpoint: bytes = b""
    inclusion_proof: Tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Answer:
    """The log's answer to one event sent over `AppendStream`."""

    index: int
    duplicate: bool
    #: OK, or why the event was refused (or should be sent again later).
    code: grpc.StatusCode
    message: str

    @property
    def ok(self) -> bool:
        """Whether the event is in the log (new or a duplicate)."""
        return self.code == grpc.StatusCode.OK


@dataclass(frozen=True)
class ProvenEntry:
    """An entry proven included in a checkpoint signed by the log key."""

    index: int
    #: The leaf: the entry's exact bytes, and the entry decoded.
    leaf: bytes
    entry: pb.LogEntry
    checkpoint: VerifiedCheckpoint
    proof: Tuple[bytes, ...]


def _read_pem(value: Optional[PathOrPem], what: str) -> Optional[bytes]:
    if value is None:
        return None
    if isinstance(value, bytes):
        data = value
    else:
        try:
            data = Path(value).read_bytes()
        except OSError as e:
            raise CustodyError(f"{what}: {e}") from None
    if b"-----BEGIN " not in data:
        raise CustodyError(f"{what}: not a PEM file")
    return data


class Client:
    """A connection to the log at `target` (`host:port`, `http://host:port`
    or `https://host:port`), sending `token`, if given, on each call and
    trusting the CA `ca` (a PEM file or its bytes) for TLS.

    Calls wait at most `timeout` seconds."""

    def __init__(
        self,
        target: str,
        token: Optional[str] = None,
        ca: Optional[PathOrPem] = None,
        *,
        client_cert: Optional[PathOrPem] = None,
        client_key: Optional[PathOrPem] = None,
        timeout: float = 30.0,
    ) -> None:
        address = target.strip().rstrip("/")
        tls = ca is not None or client_cert is not None
        if address.startswith("https://"):
            address, tls = address[len("https://") :], True
        elif address.startswith("http://"):
            if tls:
                raise CustodyError(
                    f"{target}: an http:// target is plaintext; use https:// with a CA or client certificate"
                )
            address = address[len("http://") :]
        if not address or "/" in address:
            raise CustodyError(
                f"{target!r} is not a server address: want host:port, http://host:port or https://host:port"
            )
        self._metadata: Tuple[Tuple[str, str], ...] = ()
        if token is not None and token.strip():
            t = token.strip()
            if not all(0x21 <= ord(c) < 0x7F for c in t):
                raise CustodyError("token: not a token (printable ASCII, no spaces)")
            self._metadata = (("authorization", f"Bearer {t}"),)
        if tls:
            if (client_cert is None) != (client_key is None):
                raise CustodyError("client_cert and client_key go together")
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read_pem(ca, "ca"),
                private_key=_read_pem(client_key, "client_key"),
                certificate_chain=_read_pem(client_cert, "client_cert"),
            )
            self._channel = grpc.secure_channel(address, creds)
        else:
            self._channel = grpc.insecure_channel(address)
        self._stub = pb_grpc.CustodyLogStub(self._channel)  # type: ignore[no-untyped-call]
        self.target = target
        self.timeout = timeout

    def close(self) -> None:
        """Closes the connection."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def submit(self, event: pb.SignedEvent, *, wait_for_checkpoint: bool = False) -> Appended:
        """Appends one signed event and returns the log's answer once the
        entry is durable; with `wait_for_checkpoint`, once a checkpoint
        includes it, with that checkpoint and the inclusion proof.

        Raises RefusedError if the log refused it (do not send it again as
        it is) or UnavailableError if it may succeed later (sending the
        same signed event again is safe)."""
        try:
            r = self._stub.Append(
                pb.AppendRequest(event=event, wait_for_checkpoint=wait_for_checkpoint),
                metadata=self._metadata,
                timeout=self.timeout,
            )
        except grpc.RpcError as e:
            raise from_grpc(f"append to {self.target}", e) from None
        return Appended(
            index=r.index,
            duplicate=r.duplicate,
            checkpoint=r.checkpoint,
            inclusion_proof=tuple(r.inclusion_proof),
        )

    def append(self, event: pb.SignedEvent) -> int:
        """Appends one signed event and returns its log index once the
        entry is durable. A resubmission of a logged event (same bytes)
        returns its original index. Errors as for `submit`."""
        return self.submit(event).index

    def stream(
        self, events: Iterable[pb.SignedEvent], *, timeout: Optional[float] = None
    ) -> Generator[Answer, None, None]:
        """Sends `events` over one `AppendStream` and yields the log's
        answers, one per event, in order (fewer if the server ends the
        stream early). Raises UnavailableError or RefusedError if the
        stream breaks."""
        requests = (pb.AppendRequest(event=e) for e in events)
        call = self._stub.AppendStream(requests, metadata=self._metadata, timeout=timeout or self.timeout)
        try:
            for r in call:
                yield Answer(
                    index=r.index,
                    duplicate=r.duplicate,
                    code=status_code(r.error_code),
                    message=r.error_message,
                )
        except grpc.RpcError as e:
            raise from_grpc(f"append stream to {self.target}", e) from None
        finally:
            call.cancel()

    def append_many(self, events: Sequence[pb.SignedEvent]) -> List[Answer]:
        """`stream` collected: one answer per event, in order. Raises
        UnavailableError if the server ended the stream before answering
        every event (what it did answer is logged)."""
        answers = list(self.stream(events))
        if len(answers) != len(events):
            raise rpc_error(
                f"append stream to {self.target}",
                grpc.StatusCode.UNAVAILABLE,
                f"the server answered {len(answers)} of {len(events)} events; send the rest again",
            )
        return answers

    def log_origin(self, verifier: Optional[LogVerifier] = None) -> str:
        """The log's origin, from its genesis entry (entry 0): every event
        for this log names it, so that its signature cannot be replayed
        into another log. Given the log key `verifier`, entry 0 is proven
        in a checkpoint it signed and must name the key's origin; without
        one, the server is taken at its word (use that only over TLS, to a
        server you trust). Any caller the log knows may read it."""
        if verifier is not None:
            proven = self.prove(0, verifier)
            if proven.entry.WhichOneof("content") != "genesis":
                raise VerificationError(f"entry 0 of {self.target} is not a genesis entry")
            if proven.entry.genesis.origin != verifier.origin:
                raise VerificationError(
                    f"{self.target}'s genesis names the log {proven.entry.genesis.origin!r}, not {verifier.origin!r}"
                )
            return verifier.origin
        try:
            r = self._stub.GetEntries(
                pb.GetEntriesRequest(start=0, end=1), metadata=self._metadata, timeout=self.timeout
            )
        except grpc.RpcError as e:
            raise from_grpc(f"read the genesis entry from {self.target}", e) from None
        if len(r.entries) != 1:
            raise VerificationError(f"{self.target} has no genesis entry")
        entry = pb.LogEntry()
        entry.ParseFromString(r.entries[0])
        if entry.WhichOneof("content") != "genesis":
            raise VerificationError(f"entry 0 of {self.target} is not a genesis entry")
        return entry.genesis.origin

    def checkpoint(self, verifier: LogVerifier) -> VerifiedCheckpoint:
        """The latest checkpoint, verified with the log key."""
        try:
            r = self._stub.GetCheckpoint(pb.GetCheckpointRequest(), metadata=self._metadata, timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_grpc(f"get the checkpoint from {self.target}", e) from None
        return verifier.verify(r.checkpoint)

    def prove(
        self,
        index: int,
        verifier: LogVerifier,
        *,
        expect: Optional[pb.SignedEvent] = None,
        wait: float = 10.0,
    ) -> ProvenEntry:
        """Fetches entry `index` with its inclusion proof in the latest
        checkpoint, and checks them: the checkpoint's signature by the log
        key `verifier`, the proof against its root, and, given `expect`,
        that the entry is that signed event byte for byte. Waits up to
        `wait` seconds for a checkpoint that includes the entry.

        Raises VerificationError on any mismatch."""
        deadline = time.monotonic() + wait
        while True:
            try:
                r = self._stub.GetInclusionProof(
                    pb.GetInclusionProofRequest(index=index), metadata=self._metadata, timeout=self.timeout
                )
                break
            except grpc.RpcError as e:
                err = from_grpc(f"get the inclusion proof of entry {index} from {self.target}", e)
                if err.code != grpc.StatusCode.OUT_OF_RANGE or time.monotonic() > deadline:
                    raise err from None
                time.sleep(0.05)  # not in a checkpoint yet
        cp = verifier.verify(r.checkpoint)
        if r.index != index or r.tree_size != cp.size:
            raise VerificationError(
                f"entry {index}: the server answered for entry {r.index} in a tree of size {r.tree_size} with a checkpoint of size {cp.size}"
            )
        proof = tuple(r.proof)
        verify_inclusion(index, cp.size, leaf_hash(r.entry), proof, cp.root)
        entry = pb.LogEntry()
        try:
            entry.ParseFromString(r.entry)
        except Exception:  # protobuf's DecodeError, or worse
            raise VerificationError(f"entry {index} is not a LogEntry") from None
        # Canonical, as the log's own decoder requires (require_canonical):
        # repeated or unknown fields, or defaults written out, would let a
        # leaf read one way here and another way elsewhere.
        canonical = pb.LogEntry()
        canonical.CopyFrom(entry)
        canonical.DiscardUnknownFields()
        if canonical.SerializeToString(deterministic=True) != r.entry:
            raise VerificationError(f"entry {index} is not a canonical LogEntry")
        if expect is not None:
            sent = pb.LogEntry(event=expect, integrated_time_unix_nanos=entry.integrated_time_unix_nanos)
            if entry.WhichOneof("content") != "event" or sent.SerializeToString(deterministic=True) != r.entry:
                raise VerificationError(f"entry {index} is not the event that was sent")
        return ProvenEntry(index=index, leaf=r.entry, entry=entry, checkpoint=cp, proof=proof)
