"""Errors of the Custody Ledger client. Every one says what went wrong
and, where there is one, what to do about it."""

from __future__ import annotations

import grpc


class CustodyError(Exception):
    """Base class of every error this package raises."""


class KeyFileError(CustodyError):
    """A key file is missing or not in the form `custody keygen` writes."""


class VerificationError(CustodyError):
    """A checkpoint, proof or entry did not verify: do not trust it."""


class SpoolError(CustodyError):
    """The spool could not be opened, read or written."""


class RpcError(CustodyError):
    """A call to the log failed. `code` is the gRPC status code."""

    def __init__(self, what: str, code: grpc.StatusCode, details: str) -> None:
        self.what = what
        self.code = code
        self.details = details
        super().__init__(f"{what}: {code.name}: {details}")


class RefusedError(RpcError):
    """The log refused the request for what it is (a bad signature, an
    unregistered key, a reporter the token may not report for, ...).
    Sending it again gets the same answer: fix the event or the set-up."""


class UnavailableError(RpcError):
    """The log could not be reached, asked to come back later, or failed
    for a reason that can pass (any code not in `FINAL`). Sending the same
    signed event again is safe: a logged one is answered as a duplicate
    with its original index."""


#: Codes that refuse an event for what it is: sending it again would be
#: refused again, so it is recorded as refused. The same list as the Rust
#: client's (`custody-client`, `submit.rs`, `is_final`; docs/reporters.md).
FINAL = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)

#: Codes after which the same request may succeed later: every other one
#: (come back later, a revoked or expired token, a fault of the server, a
#: code this client does not know). An event is never given up for a
#: reason that can pass.
RETRYABLE = frozenset(c for c in grpc.StatusCode if c not in FINAL and c != grpc.StatusCode.OK)


def status_code(value: int) -> grpc.StatusCode:
    """The `grpc.StatusCode` of a numeric code (UNKNOWN for any other)."""
    for c in grpc.StatusCode:
        if c.value[0] == value:
            return c
    return grpc.StatusCode.UNKNOWN


def rpc_error(what: str, code: grpc.StatusCode, details: str) -> RpcError:
    """The error for a call that ended with `code`."""
    if code in FINAL:
        return RefusedError(what, code, details)
    return UnavailableError(what, code, details)


def from_grpc(what: str, e: grpc.RpcError) -> RpcError:
    """The error for a failed gRPC call."""
    code = e.code() if isinstance(e, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (e.details() if isinstance(e, grpc.Call) else None) or str(e)
    return rpc_error(what, code, details)


class DrainIncomplete(CustodyError):
    """`Spool.drain` stopped with events still pending. They stay in the
    spool, signed, and the next `drain` sends them (a logged one is then
    answered as a duplicate with its original index)."""

    def __init__(self, message: str, pending: int, cause: Exception | None) -> None:
        self.pending = pending
        self.cause = cause
        super().__init__(message)
