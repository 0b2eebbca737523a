"""Solana off-chain messages (the Solana Foundation's format, as `@solana/offchain-messages`
writes it), read as Warden judges them, written for a client, and signed.

Warden signs text for a Solana key in this format only, never bare bytes: every message starts
with the signing domain ``\\xffsolana offchain``, and no transaction's message can (its first
byte is a signature count or the 0x80 version prefix, and 0xff is neither), so a signature
Warden makes over a message can never be replayed as a signature over a transaction.

Version 0: domain, version, a 32-byte application domain (the application the text is for), the
content's format (0: printable ASCII, at most 1232 bytes; 1: UTF-8, at most 1232; 2: UTF-8, at
most 65535), the required signatories (count, then 32 bytes each), the content's length (u16,
little-endian), the content. Version 1: domain, version, the signatories (sorted, unique), UTF-8
content to the end. An Ed25519 signature is over all of those bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.pubkey import Pubkey

SIGNING_DOMAIN = b"\xffsolana offchain"
# What a hardware wallet can sign (the minimum IPv6 packet, less its headers): the limit of
# formats 0 and 1.
MAX_HARDWARE_BYTES = 1232
MAX_CONTENT_BYTES = 0xFFFF
# The longest message: version 0, 255 signatories, 65535 bytes of content.
MAX_MESSAGE_BYTES = len(SIGNING_DOMAIN) + 1 + 32 + 1 + 1 + 32 * 255 + 2 + MAX_CONTENT_BYTES


class MessageError(ValueError):
    pass


class Format(IntEnum):
    """A version 0 message's content format."""

    RESTRICTED_ASCII = 0  # bytes 0x20-0x7e only, at most 1232
    UTF8_1232 = 1
    UTF8_65535 = 2


@dataclass(frozen=True)
class OffchainMessage:
    """What an off-chain message says. ``application_domain`` and ``format``: version 0 only."""

    version: int
    signatories: tuple[str, ...]
    text: str
    application_domain: str | None = None
    format: Format | None = None
    raw: bytes = b""  # the bytes a signature is over

    @property
    def content_bytes(self) -> int:
        return len(self.text.encode())


def read(raw: bytes) -> OffchainMessage:
    """``raw`` as an off-chain message, or MessageError naming what is wrong. Nothing after the
    content is allowed: the bytes signed are the bytes read."""
    if not raw.startswith(SIGNING_DOMAIN):
        raise MessageError(
            "it does not start with the signing domain '\\xffsolana offchain': Warden signs Solana off-chain "
            "messages only, never bare bytes (bare bytes could be a transaction's message)"
        )
    rest = raw[len(SIGNING_DOMAIN) :]
    if not rest:
        raise MessageError("it ends after the signing domain: a version byte follows it")
    version, rest = rest[0], rest[1:]
    if version == 0:
        return _read_v0(raw, rest)
    if version == 1:
        return _read_v1(raw, rest)
    raise MessageError(f"version {version} is not one Warden reads: 0 or 1")


def _read_v0(raw: bytes, rest: bytes) -> OffchainMessage:
    if len(rest) < 33:
        raise MessageError("version 0 needs a 32-byte application domain and a format byte; the message ends first")
    domain, code, rest = rest[:32], rest[32], rest[33:]
    try:
        form = Format(code)
    except ValueError:
        raise MessageError(f"format {code} is not a message format: 0 (ASCII), 1 or 2 (UTF-8)") from None
    signatories, rest = _signatories(rest, ordered=False)
    if len(rest) < 2:
        raise MessageError("version 0 needs the content's length (2 bytes) after the signatories")
    (length,), body = struct.unpack_from("<H", rest), rest[2:]
    if length != len(body):
        raise MessageError(f"the content's length says {length} bytes, and {len(body)} follow")
    text = _text(body)
    _check_content(form, text, len(body))
    return OffchainMessage(0, signatories, text, str(Pubkey.from_bytes(domain)), form, raw)


def _read_v1(raw: bytes, rest: bytes) -> OffchainMessage:
    signatories, body = _signatories(rest, ordered=True)
    if not body:
        raise MessageError("the content is empty: there is nothing to sign")
    return OffchainMessage(1, signatories, _text(body), raw=raw)


def _signatories(rest: bytes, ordered: bool) -> tuple[tuple[str, ...], bytes]:
    if not rest:
        raise MessageError("the signatory count is missing")
    count, rest = rest[0], rest[1:]
    if count == 0:
        raise MessageError("it names no signatory: at least one is required")
    if len(rest) < 32 * count:
        raise MessageError(f"it names {count} signatories, and fewer than {32 * count} bytes follow")
    keys = [rest[32 * i : 32 * (i + 1)] for i in range(count)]
    if len(set(keys)) != count:
        raise MessageError("a signatory is named twice")
    if ordered and keys != sorted(keys):
        raise MessageError("version 1 lists its signatories sorted by their bytes, and these are not")
    return tuple(str(Pubkey.from_bytes(k)) for k in keys), rest[32 * count :]


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageError(f"the content is not UTF-8 (byte {exc.start})") from None


def _check_content(form: Format, text: str, size: int) -> None:
    if size == 0:
        raise MessageError("the content is empty: there is nothing to sign")
    limit = MAX_CONTENT_BYTES if form is Format.UTF8_65535 else MAX_HARDWARE_BYTES
    if size > limit:
        raise MessageError(f"the content is {size} bytes; format {int(form)} holds at most {limit}")
    if form is Format.RESTRICTED_ASCII and not all(0x20 <= ord(c) <= 0x7E for c in text):
        raise MessageError("format 0 is printable ASCII (0x20-0x7e) only: use format 1 or 2 for other text")


def encode(
    text: str,
    signatories: list[str] | tuple[str, ...],
    version: int = 0,
    application_domain: str | None = None,
    form: Format | None = None,
) -> bytes:
    """An off-chain message's bytes (what a client puts in a ``solana_message`` intent): version
    0 by default, for the application ``application_domain`` (all zeros when none), in the
    smallest format that holds ``text`` unless ``form`` names one; version 1 sorts the signatories."""
    body = text.encode()
    if len(body) > MAX_CONTENT_BYTES:
        raise MessageError(f"the content is {len(body)} bytes; a message holds at most {MAX_CONTENT_BYTES}")
    keys = [bytes(Pubkey.from_string(s)) for s in signatories]
    if not keys or len(keys) > 255:
        raise MessageError("a message names 1 to 255 signatories")
    if version == 1:
        message = SIGNING_DOMAIN + bytes([1, len(keys)]) + b"".join(sorted(keys)) + body
    elif version == 0:
        if form is None:
            ascii_only = all(0x20 <= b <= 0x7E for b in body)
            form = (
                Format.RESTRICTED_ASCII
                if ascii_only and len(body) <= MAX_HARDWARE_BYTES
                else Format.UTF8_1232
                if len(body) <= MAX_HARDWARE_BYTES
                else Format.UTF8_65535
            )
        domain = bytes(32) if application_domain is None else bytes(Pubkey.from_string(application_domain))
        message = (
            SIGNING_DOMAIN
            + bytes([0])
            + domain
            + bytes([int(form), len(keys)])
            + b"".join(keys)
            + struct.pack("<H", len(body))
            + body
        )
    else:
        raise MessageError(f"version {version} is not one Warden writes: 0 or 1")
    read(message)  # what a client builds is what the signer will read, or it is told now
    return message


def sign(raw: bytes, seed: bytearray | bytes) -> bytes:
    """The Ed25519 signature over ``raw`` of the key whose 32-byte seed is ``seed``, after ``raw``
    was read as an off-chain message naming that key as a signatory; the caller wipes ``seed``."""
    message = read(raw)
    key = Ed25519PrivateKey.from_private_bytes(bytes(seed))
    mine = str(Pubkey.from_bytes(key.public_key().public_bytes_raw()))
    if mine not in message.signatories:
        raise MessageError(f"{mine} is not one of the message's signatories: it cannot sign it")
    return key.sign(raw)
