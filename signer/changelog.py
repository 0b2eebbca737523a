"""The signer's state as a log (`runtime.changelog`): one record per partition per batch on
``warden.signer.changelog``, holding the named statements of `signer.state.WRITES`, signed by the
signer that made them."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.changelog import SIGNATURE_BYTES, ChangelogError, ChangelogFormat, Entry, UnreadableRecord, Write
from signer.state import WRITES

DOMAIN = b"warden-signer-changelog-v1\x00"
SIGNER_LOG = ChangelogFormat(DOMAIN, {name: sql.count("?") for name, sql in WRITES.items()}, "signer")

__all__ = ["DOMAIN", "SIGNATURE_BYTES", "SIGNER_LOG", "ChangelogError", "UnreadableRecord", "open_record", "seal"]


def seal(*, partition: int, prev: int, writer: str, writes: list[Write], key: Ed25519PrivateKey) -> bytes:
    """A record of the signer's log (`ChangelogFormat.seal`)."""
    return SIGNER_LOG.seal(partition=partition, prev=prev, writer=writer, writes=writes, key=key)


def open_record(value: bytes, partition: int, public_key_of: Callable[[str], str | None]) -> Entry:
    """A record of the signer's log read (`ChangelogFormat.open`)."""
    return SIGNER_LOG.open(value, partition, public_key_of)
