"""Party keys in the text form `custody keygen` writes
(crates/custody-domain/src/keyfile.rs): a secret key is
`ed25519-secret:<base64 of the 32-byte seed>`, a public key
`ed25519:<base64 of the 32-byte key>`, each on one line.

A key id is the first 16 bytes of SHA-256 of the Ed25519 public key
(`custody_domain::key_id_of`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from .errors import KeyFileError

SECRET_PREFIX = "ed25519-secret:"
PUBLIC_PREFIX = "ed25519:"


def _decode32(text: str, prefix: str, what: str) -> bytes:
    text = text.strip()
    if not text.startswith(prefix):
        raise KeyFileError(f'not a {what}: want "{prefix}<base64>" as written by `custody keygen`')
    try:
        raw = base64.b64decode(text[len(prefix) :], validate=True)
    except (binascii.Error, ValueError) as e:
        raise KeyFileError(f"{what}: bad base64: {e}") from None
    if len(raw) != 32:
        raise KeyFileError(f"{what} is {len(raw)} bytes; want 32")
    return raw


def parse_secret_key(text: str) -> Ed25519PrivateKey:
    """The signing key in `text` (`ed25519-secret:<base64 seed>`)."""
    return Ed25519PrivateKey.from_private_bytes(_decode32(text, SECRET_PREFIX, "secret key"))


def parse_public_key(text: str) -> bytes:
    """The 32-byte public key in `text` (`ed25519:<base64>`)."""
    return _decode32(text, PUBLIC_PREFIX, "public key")


def load_secret_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The signing key in the file at `path`, as `custody keygen --out P`
    writes it to `P.key`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="ascii")
    except FileNotFoundError:
        raise KeyFileError(f"{p}: no such key file; make one with `custody keygen --out PREFIX`") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"{p}: {e}") from None
    try:
        return parse_secret_key(text)
    except KeyFileError as e:
        raise KeyFileError(f"{p}: {e}") from None


def format_secret_key(key: Ed25519PrivateKey) -> str:
    """The text form of a secret key, with a newline (keep it mode 0600)."""
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return SECRET_PREFIX + base64.b64encode(seed).decode() + "\n"


def format_public_key(public_key: bytes) -> str:
    """The text form of a 32-byte public key, with a newline."""
    return PUBLIC_PREFIX + base64.b64encode(public_key).decode() + "\n"


def public_key_bytes(key: Ed25519PrivateKey) -> bytes:
    """The 32-byte public key of a signing key."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: bytes) -> bytes:
    """The key id of a 32-byte Ed25519 public key: the first 16 bytes of
    its SHA-256."""
    if len(public_key) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(public_key)}")
    return hashlib.sha256(public_key).digest()[:16]
