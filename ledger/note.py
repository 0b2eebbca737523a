"""C2SP signed notes, transparency-log checkpoints and witness cosignatures.

The formats Go's checksum database, Sigstore, Sigsum and Tessera share, so that any of their
tools (and `golang.org/x/mod/sumdb/note`) reads Warden's checkpoints:

- ``c2sp.org/signed-note``: a text ending in a newline, a blank line, then signature lines
  ``— <key name> base64(key ID || signature)``. The key ID is the first 4 bytes of
  SHA-256(key name || 0x0A || signature type || public key); type 0x01 is Ed25519 over the text.
- ``c2sp.org/tlog-checkpoint``: the text is the log's origin, its tree size in decimal and the
  base64 RFC 6962 root hash, one per line.
- ``c2sp.org/tlog-cosignature`` (cosignature/v1): signature type 0x04, the signature an 8-byte
  big-endian POSIX time then Ed25519 over ``cosignature/v1\\ntime <t>\\n`` + the checkpoint text:
  a witness's statement that, at that time, this was the largest consistent tree it had seen.

A verifier is configured with the keys it trusts (`NoteKey`, written as a "vkey":
``<name>+<key ID hex>+base64(type || public key)``); signatures of other keys are ignored, a
known key's signature that does not verify rejects the note. Pure functions; no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from schemas.errors import WardenError

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014"  # the em dash that opens a signature line
MAX_SIGNATURES = 64  # the spec asks verifiers to take at least 16
_COSIGNED = "cosignature/v1\ntime {}\n"


class NoteError(WardenError, ValueError):
    """A note, checkpoint or key that cannot be read or does not verify: the message says which
    part and why."""


def b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what} is not standard base64: {text[:80]!r}") from None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decimal(text: str, what: str) -> int:
    """A size or index as these formats write it: ASCII decimal, no leading zero (but ``0``)."""
    if not text.isascii() or not text.isdigit() or (text != "0" and text.startswith("0")):
        raise NoteError(f"{what} is a decimal with no leading zero, not {text[:40]!r}")
    return int(text)


def hash_lines(lines: list[str], what: str) -> tuple[bytes, ...]:
    """Proof lines: one base64 SHA-256 hash each."""
    hashes = tuple(b64decode(line, what) for line in lines)
    if any(len(h) != 32 for h in hashes):
        raise NoteError(f"{what} is one SHA-256 hash, 32 bytes")
    return hashes


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


def raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class NoteKey:
    """A key a verifier trusts: its name, its signature type (ED25519 for a log's checkpoints,
    COSIGNATURE_V1 for a witness) and its 32-byte Ed25519 public key."""

    name: str
    type: int
    public: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.type not in (ED25519, COSIGNATURE_V1):
            raise NoteError(
                f"signature type {self.type:#04x} is not supported: 0x01 (Ed25519) or 0x04 (cosignature/v1)"
            )
        if len(self.public) != 32:
            raise NoteError(f"an Ed25519 public key is 32 bytes, not {len(self.public)}")

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(self.name.encode() + b"\n" + bytes([self.type]) + self.public).digest()[:4]

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{b64encode(bytes([self.type]) + self.public)}"

    @classmethod
    def from_vkey(cls, text: str) -> NoteKey:
        parts = text.strip().split("+", 2)  # base64 holds "+" too
        if len(parts) != 3:
            raise NoteError(f"a verifier key is <name>+<key ID hex>+<base64 key>, not {text.strip()[:80]!r}")
        name, key_id, encoded = parts
        raw = b64decode(encoded, f"verifier key {name!r}")
        if not raw:
            raise NoteError(f"verifier key {name!r} holds no key")
        key = cls(name, raw[0], raw[1:])
        if key.key_id.hex() != key_id.lower():
            raise NoteError(f"verifier key {name!r} says key ID {key_id}, but its key's ID is {key.key_id.hex()}")
        return key

    @classmethod
    def of(cls, name: str, type: int, key: Ed25519PrivateKey | Ed25519PublicKey) -> NoteKey:
        return cls(name, type, raw_public(key))


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes

    @property
    def line(self) -> str:
        return f"{DASH} {self.name} {b64encode(self.key_id + self.signature)}\n"

    @classmethod
    def from_line(cls, line: str) -> Signature:
        """One signature line, with or without its newline."""
        line = line.removesuffix("\n")
        if not line.startswith(DASH + " "):
            raise NoteError(f"a signature line starts with '{DASH} ', not {line[:40]!r}")
        fields = line[2:].split(" ")
        if len(fields) != 2:
            raise NoteError(f"a signature line is '{DASH} <key name> <base64>', not {line[:80]!r}")
        name, encoded = fields
        raw = b64decode(encoded, f"the signature of {name!r}")
        if len(raw) < 5:
            raise NoteError(f"the signature of {name!r} is {len(raw)} bytes: a key ID and a signature are more")
        return cls(_check_name(name), raw[:4], raw[4:])


@dataclass(frozen=True)
class Note:
    """A text (ending in a newline) and its signatures."""

    text: str
    signatures: tuple[Signature, ...] = ()

    def to_bytes(self) -> bytes:
        return (self.text + "\n" + "".join(s.line for s in self.signatures)).encode()

    def with_signatures(self, *signatures: Signature) -> Note:
        """The note with more signatures (the same one twice is kept once)."""
        kept = list(self.signatures)
        kept += [s for s in signatures if s not in kept]
        return Note(self.text, tuple(kept))

    @classmethod
    def parse(cls, raw: bytes | str) -> Note:
        try:
            text = raw.decode() if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            raise NoteError(f"a note is UTF-8: {exc}") from None
        if any(ord(c) < 0x20 and c != "\n" for c in text):
            raise NoteError("a note holds no control characters other than newlines")
        if not text.endswith("\n"):
            raise NoteError("a note ends with a newline")
        split = text.rfind("\n\n")
        if split < 0:
            raise NoteError("a note is a text, a blank line, then its signature lines: no blank line")
        body, lines = text[: split + 1], text[split + 2 :].splitlines(keepends=True)
        if not lines:
            raise NoteError("a note has at least one signature line")
        if len(lines) > MAX_SIGNATURES:
            raise NoteError(f"a note of {len(lines)} signatures: at most {MAX_SIGNATURES} are read")
        return cls(body, tuple(Signature.from_line(line) for line in lines))


def sign(text: str, name: str, key: Ed25519PrivateKey) -> Signature:
    """A log's Ed25519 (type 0x01) signature of a note text."""
    return Signature(name, NoteKey.of(name, ED25519, key).key_id, key.sign(text.encode()))


def cosign(text: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> Signature:
    """A witness's cosignature/v1 (type 0x04) of a checkpoint text, at POSIX time ``timestamp``."""
    if not 0 <= timestamp < 2**63:
        raise NoteError(f"a cosignature's time is 0..2^63-1, not {timestamp}")
    signed = key.sign(_COSIGNED.format(timestamp).encode() + text.encode())
    return Signature(name, NoteKey.of(name, COSIGNATURE_V1, key).key_id, timestamp.to_bytes(8, "big") + signed)


def verified_by(note: Note, keys: list[NoteKey]) -> dict[NoteKey, int | None]:
    """The known keys whose signatures on the note verify, each with its cosignature's time
    (None for a plain signature). Signatures of unknown keys are ignored; a known key's that does
    not verify raises NoteError (the note is rejected whole), as does a note no known key signed."""
    known = {(k.name, k.key_id): k for k in keys}
    verified: dict[NoteKey, int | None] = {}
    for signature in note.signatures:
        key = known.get((signature.name, signature.key_id))
        if key is None:
            continue
        message, raw, when = note.text.encode(), signature.signature, None
        if key.type == COSIGNATURE_V1:
            if len(raw) != 72:
                raise NoteError(f"the cosignature of {key.name} is {len(raw)} bytes, not 8 + 64")
            when = int.from_bytes(raw[:8], "big")
            message, raw = _COSIGNED.format(when).encode() + message, raw[8:]
        try:
            Ed25519PublicKey.from_public_bytes(key.public).verify(raw, message)
        except InvalidSignature:
            raise NoteError(
                f"the signature of {key.name} ({key.key_id.hex()}) does not verify: the note was altered"
            ) from None
        verified[key] = when
    if not verified:
        names = ", ".join(sorted({k.name for k in keys})) or "none"
        raise NoteError(f"no signature on the note is by a trusted key (trusted: {names})")
    return verified


@dataclass(frozen=True)
class NoteCheckpoint:
    """A ``c2sp.org/tlog-checkpoint`` text: the log's origin, its tree size and root hash."""

    origin: str
    size: int
    root: bytes

    @property
    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{b64encode(self.root)}\n"

    @classmethod
    def parse(cls, text: str) -> NoteCheckpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise NoteError("a checkpoint's text is its origin, tree size and root hash, one non-empty line each")
        origin, size, root = lines[:3]
        tree_size = decimal(size, "a checkpoint's tree size")
        (digest,) = hash_lines([root], "a checkpoint's root hash")
        return cls(origin, tree_size, digest)
