"""The signer's state as a log: one record per partition per batch on ``warden.signer.changelog``.

Why a log and not a compacted table: a batch's writes (a signature, its nonce, its spend, its
idempotency entry) must arrive together or not at all, and they are deltas on rows (a spend
settled, a nonce released), so the record is the batch, kept whole; the topic is never compacted
(a snapshot record would be what shortens a restore, not what makes it correct).

Who may write: the broker has no transactions, so nothing stops a signer that lost its partition
(stalled past its session, then resumed) from appending. So every record names the record it
follows (``prev``, the offset of the last record that held) and a record holds only if it follows
the last one that held; one appended by a writer that had not seen the newest is void, for
everyone who reads the partition, in the same way (`ChangelogChain`). A writer checks that its own
record holds before it commits or publishes anything (it reads the records between the last one it read
and its own, if any): if it did not hold, another signer owns the partition, and this one stops. Records are signed with the writing signer's service key; one that does not
verify under a pinned signer key, or names another partition, is void too: write access to the
topic does not make anyone a signer.

What cannot be defended here: a broker that serves a partition without its newest records (the
new owner would start without them). A void record's signatures are on the topic like the held
ones: keep the topic readable by signers only.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schemas.errors import WardenError
from signer.state import WRITES, Write

DOMAIN = b"warden-signer-changelog-v1\x00"
SIGNATURE_BYTES = 64


class ChangelogError(WardenError, ValueError):
    """A record that cannot hold: unreadable, unsigned, or not for this partition."""


class UnreadableRecord(WardenError, RuntimeError):
    """A record a pinned signer signed for this partition that this signer cannot read (a write it
    does not know, a shape it does not expect): written by another version. Not void: it may hold
    signatures that were published, so a restore stops rather than go on without its writes."""


def _arg(value):
    # Rows hold text, integers, NULL and blobs; JSON has no blobs. The blobs a signature leaves are
    # records and intents, JSON themselves: as {"utf8": ...} they take ~1.1x their size in the log
    # against 2x as hex: a signature's writes 3.5 KB instead of 6.0. Other bytes go as hex.
    if not isinstance(value, bytes):
        return value
    try:
        return {"utf8": value.decode()}  # strict UTF-8: decoding and encoding again give these bytes
    except UnicodeDecodeError:
        return {"hex": value.hex()}


_FORMS = "text, integer, null, {'utf8': ...} nor {'hex': ...}"


def _unarg(value):
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("utf8"), str):
            return value["utf8"].encode()
        if len(value) == 1 and isinstance(value.get("hex"), str):
            return bytes.fromhex(value["hex"])
        raise ChangelogError(f"an argument {value!r} is neither {_FORMS}")
    if value is not None and not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ChangelogError(f"an argument {value!r} is neither {_FORMS}")
    return value


def seal(*, partition: int, prev: int, writer: str, writes: list[Write], key: Ed25519PrivateKey) -> bytes:
    """A record: the signer's Ed25519 signature (64 bytes) then the JSON it signs."""
    body = orjson.dumps(
        {
            "partition": partition,
            "prev": prev,
            "writer": writer,
            "writes": [[name, [_arg(a) for a in args]] for name, args in writes],
        }
    )
    return key.sign(DOMAIN + body) + body


@dataclass(frozen=True)
class Entry:
    partition: int
    prev: int
    writer: str
    writes: list[Write]


def open_record(value: bytes, partition: int, public_key_of) -> Entry:
    """The record's writes, if a pinned signer signed them for this partition; else ChangelogError.
    ``public_key_of(signer_id)`` gives a pinned signer's Ed25519 public key (hex) or None."""
    if len(value) <= SIGNATURE_BYTES:
        raise ChangelogError("too short to hold a signature and a body")
    signature, body = value[:SIGNATURE_BYTES], value[SIGNATURE_BYTES:]
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ChangelogError(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"partition", "prev", "writer", "writes"}:
        raise ChangelogError("the body must be an object of partition, prev, writer and writes")
    writer = doc["writer"]
    public = public_key_of(writer) if isinstance(writer, str) else None
    if public is None:
        raise ChangelogError(f"written by {writer!r}, not a pinned signer")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public.removeprefix("0x"))).verify(signature, DOMAIN + body)
    except (InvalidSignature, ValueError):
        raise ChangelogError(f"the signature is not {writer}'s") from None
    if doc["partition"] != partition:
        raise ChangelogError(f"written for partition {doc['partition']!r}, found on partition {partition}")
    # From here the record is authentic: what this signer cannot read is another version's, not void.
    try:
        if not isinstance(doc["prev"], int) or isinstance(doc["prev"], bool):
            raise ChangelogError("prev must be an offset")
        writes = []
        for item in doc["writes"] if isinstance(doc["writes"], list) else [None]:
            if not (isinstance(item, list) and len(item) == 2 and item[0] in WRITES and isinstance(item[1], list)):
                raise ChangelogError(f"a write {item!r} is not [one of {sorted(WRITES)}, [arguments]]")
            name, args = item
            if len(args) != WRITES[name].count("?"):
                raise ChangelogError(f"write {name} takes {WRITES[name].count('?')} arguments, not {len(args)}")
            writes.append((name, tuple(_unarg(a) for a in args)))
    except ChangelogError as exc:
        raise UnreadableRecord(
            f"a record signed by pinned signer {writer!r} for partition {partition} that this signer cannot "
            f"read: {exc}. It was written by another version of the signer; run that version (or a newer "
            "one) for this partition"
        ) from None
    return Entry(partition, doc["prev"], writer, writes)


class ChangelogChain:
    """Which records of one partition hold: each must follow the last that held. ``head`` is that
    record's offset (-1 before the first)."""

    def __init__(self, head: int = -1):
        self.head = head

    def holds(self, offset: int, entry: Entry) -> bool:
        if entry.prev != self.head:
            return False
        self.head = offset
        return True
