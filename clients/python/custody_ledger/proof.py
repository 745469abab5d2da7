"""Offline checks of what the log serves, in pure Python:

- C2SP `signed-note` checkpoints signed with Ed25519, against the log's
  verifier key `<origin>+<key hash>+<base64(0x01 || public key)>` (the
  `log.vkey` file of the server's data directory);
- C2SP `tlog-checkpoint` bodies: origin line, tree size, base64 root hash;
- RFC 6962 / RFC 9162 inclusion proofs: a leaf hash is
  SHA-256(0x00 || leaf), a node SHA-256(0x01 || left || right), and a
  leaf of this log is the exact bytes of a `LogEntry`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import VerificationError

_ALG_ED25519 = 0x01
_SIG_PREFIX = "\u2014 "  # an em dash and a space
#: The largest note and the most signature lines taken, as on the Rust side.
MAX_NOTE_SIZE = 1_000_000
MAX_NOTE_SIGNATURES = 100


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || leaf)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` puts the leaf hash `leaf` at `index` of a tree
    of `size` under (RFC 9162 §2.1.3.2). Raises VerificationError for a
    proof of the wrong shape."""
    if not 0 <= index < size:
        raise VerificationError(f"index {index} is not in a tree of size {size}")
    if len(leaf) != 32 or any(len(p) != 32 for p in proof):
        raise VerificationError("inclusion proof: every hash is 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationError(
                f"inclusion proof of {len(proof)} hashes is too long for index {index} of size {size}"
            )
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError(f"inclusion proof of {len(proof)} hashes is too short for index {index} of size {size}")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Checks that `proof` proves the leaf hash `leaf` at `index` of the tree
    of `size` with root `root`; raises VerificationError if not."""
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise VerificationError(
            f"the inclusion proof of entry {index} does not lead to the root of the tree of size {size}"
        )


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint whose log signature checked out."""

    origin: str
    size: int
    root: bytes
    #: The whole signed note, as received.
    note: bytes


def _key_hash(name: str, alg_and_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + alg_and_key).digest()[:4]


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


class LogVerifier:
    """The log's verifier key, pinned: it checks the log's checkpoints."""

    def __init__(self, vkey: str) -> None:
        text = vkey.strip()
        parts = text.split("+", 2)  # the base64 key may hold '+' itself
        if len(parts) != 3:
            raise VerificationError(f"verifier key {text!r}: want <origin>+<key hash>+<base64 key>, as in log.vkey")
        name, hash_hex, key64 = parts
        if not _valid_name(name):
            raise VerificationError(f"verifier key: {name!r} is not a key name")
        try:
            hash_bytes = bytes.fromhex(hash_hex)
            key = base64.b64decode(key64, validate=True)
        except (ValueError, binascii.Error) as e:
            raise VerificationError(f"verifier key {text!r}: {e}") from None
        if len(hash_hex) != 8 or len(hash_bytes) != 4:
            raise VerificationError(f"verifier key {text!r}: the key hash is 8 hex digits")
        if len(key) != 33 or key[0] != _ALG_ED25519:
            raise VerificationError(f"verifier key {text!r}: not an Ed25519 key (0x01 and 32 bytes)")
        if _key_hash(name, key) != hash_bytes:
            raise VerificationError(f"verifier key {text!r}: its key hash does not match its name and key")
        self.origin = name
        self.key_hash = hash_bytes
        self.public_key = key[1:]
        self._key = Ed25519PublicKey.from_public_bytes(self.public_key)
        self.vkey = text

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "LogVerifier":
        """The verifier key in the file at `path`: the server's `log.vkey`."""
        p = Path(path)
        try:
            return cls(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise VerificationError(f"{p}: {e}; the log's verifier key is DATA/log.vkey on the server") from None
        except VerificationError as e:
            raise VerificationError(f"{p}: {e}") from None

    def __repr__(self) -> str:
        return f"LogVerifier({self.vkey!r})"

    def verify(self, note: bytes) -> VerifiedCheckpoint:
        """Checks a signed checkpoint note: a valid signature by this key
        (others, such as witness cosignatures, are ignored), and a
        checkpoint body for this key's origin. Raises VerificationError."""
        if len(note) > MAX_NOTE_SIZE:
            raise VerificationError(f"checkpoint: the note is over {MAX_NOTE_SIZE} bytes")
        try:
            text = note.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationError("checkpoint: the note is not UTF-8") from None
        # As Go's note and the Rust side: no control character but newline.
        if any(c < " " and c != "\n" for c in text):
            raise VerificationError("checkpoint: the note holds a control character")
        split = text.rfind("\n\n")
        if split < 0 or not text.endswith("\n"):
            raise VerificationError("checkpoint: not a signed note (text, a blank line, signature lines)")
        body, sigs = text[: split + 1], text[split + 2 :]
        signed = False
        sig_lines = sigs[:-1].split("\n")
        if len(sig_lines) > MAX_NOTE_SIGNATURES:
            raise VerificationError(f"checkpoint: more than {MAX_NOTE_SIGNATURES} signature lines")
        for line in sig_lines:
            if not line.startswith(_SIG_PREFIX):
                raise VerificationError(f"checkpoint: {line!r} is not a signature line")
            fields = line[len(_SIG_PREFIX) :].split(" ")
            if len(fields) != 2:
                raise VerificationError(f"checkpoint: {line!r} is not a signature line")
            name, sig64 = fields
            try:
                sig = base64.b64decode(sig64, validate=True)
            except (ValueError, binascii.Error):
                raise VerificationError(f"checkpoint: the signature of {name} is not base64") from None
            # Canonical base64 only: otherwise the note's bytes could be
            # changed in transit while the signature still verifies.
            if base64.b64encode(sig).decode("ascii") != sig64 or len(sig) < 5 or not name or " " in name or "+" in name:
                raise VerificationError(f"checkpoint: {line!r} is not a well-formed signature line")
            if name != self.origin or sig[:4] != self.key_hash:
                continue  # another signer's line (a witness): not ours to check
            if len(sig) != 4 + 64:
                raise VerificationError(f"checkpoint: the signature by {self.origin} is not an Ed25519 signature")
            try:
                self._key.verify(sig[4:], body.encode("utf-8"))
            except InvalidSignature:
                raise VerificationError(f"checkpoint: the signature by {self.origin} does not verify") from None
            signed = True
        if not signed:
            raise VerificationError(f"checkpoint is not signed by the log key {self.vkey}")
        lines = body[:-1].split("\n")
        if "" in lines:
            raise VerificationError("checkpoint: an empty line in the checkpoint body")
        if len(lines) < 3:
            raise VerificationError("checkpoint: want origin, tree size and root hash lines")
        origin, size_text, root64 = lines[0], lines[1], lines[2]
        if origin != self.origin:
            raise VerificationError(f"checkpoint origin {origin!r} does not match the log key's {self.origin!r}")
        if not (size_text.isascii() and size_text.isdigit()) or (len(size_text) > 1 and size_text[0] == "0"):
            raise VerificationError(f"checkpoint: tree size {size_text!r} is not a decimal number")
        if int(size_text) >= 1 << 64:
            raise VerificationError(f"checkpoint: tree size {size_text} is beyond 64 bits")
        try:
            root = base64.b64decode(root64, validate=True)
        except (ValueError, binascii.Error):
            raise VerificationError("checkpoint: the root hash is not base64") from None
        if base64.b64encode(root).decode("ascii") != root64:
            raise VerificationError("checkpoint: the root hash is not canonical base64")
        if len(root) != 32:
            raise VerificationError(f"checkpoint: the root hash is {len(root)} bytes; want 32")
        return VerifiedCheckpoint(origin=origin, size=int(size_text), root=root, note=bytes(note))
