"""A partition's state as a log: one record per partition per batch on the service's changelog
topic (the signer's ``warden.signer.changelog``, the streams worker's ``warden.streams.changelog``).

Why a log and not a compacted table: a batch's writes must arrive together or not at all, and
they may be deltas on rows (a spend settled, a nonce released), so the record is the batch, kept
whole; the topic is never compacted (a snapshot record would be what shortens a restore, not
what makes it correct).

Who may write: the broker has no transactions, so nothing stops a process that lost its partition
(stalled past its session, then resumed) from appending. So every record names the record it
follows (``prev``, the offset of the last record that held) and a record holds only if it follows
the last one that held; one appended by a writer that had not seen the newest is void, for
everyone who reads the partition, in the same way (`ChangelogChain`). A writer checks that its own
record holds before it commits or publishes anything (it reads the records between the last one it
read and its own, if any): if it did not hold, another process owns the partition
(`runtime.owner`). Records are signed with the writing service's key; one that does not verify
under a pinned key of that service, or names another partition, is void too: write access to the
topic does not make anyone a signer or a worker.

A log's records can ask a reader only for the writes its `ChangelogFormat` names, with their
arity: never SQL, never code. What cannot be defended here: a broker that serves a partition
without its newest records (the new owner would start without them). A void record is on the topic
like the held ones: keep each changelog topic readable by its service only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schemas.errors import WardenError

SIGNATURE_BYTES = 64
Write = tuple[str, tuple[Any, ...]]


class ChangelogError(WardenError, ValueError):
    """A record that cannot hold: unreadable, unsigned, or not for this partition."""


class UnreadableRecord(WardenError, RuntimeError):
    """A record a pinned writer signed for this partition that this process cannot read (a write it
    does not know, a shape it does not expect): written by another version. Not void: what it
    decided may have been published, so a restore stops rather than go on without its writes."""


def _arg(value: object) -> object:
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


def _unarg(value: object) -> object:
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("utf8"), str):
            return value["utf8"].encode()
        if len(value) == 1 and isinstance(value.get("hex"), str):
            return bytes.fromhex(value["hex"])
        raise ChangelogError(f"an argument {value!r} is neither {_FORMS}")
    if value is not None and not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ChangelogError(f"an argument {value!r} is neither {_FORMS}")
    return value


@dataclass(frozen=True)
class Entry:
    partition: int
    prev: int
    writer: str
    writes: list[Write]


@dataclass(frozen=True)
class ChangelogFormat:
    """One service's log: the domain its signatures are made in (a record of one service's log is
    no record of another's) and the writes a record may hold, by name, with how many arguments
    each takes. The names are the log's vocabulary: add new ones, never rename or drop one (a log
    written before would stop every restore)."""

    domain: bytes
    arities: Mapping[str, int]
    service: str  # who writes it, as an error names them: "signer", "worker"

    def seal(self, *, partition: int, prev: int, writer: str, writes: list[Write], key: Ed25519PrivateKey) -> bytes:
        """A record: the writer's Ed25519 signature (64 bytes) then the JSON it signs."""
        body = orjson.dumps(
            {
                "partition": partition,
                "prev": prev,
                "writer": writer,
                "writes": [[name, [_arg(a) for a in args]] for name, args in writes],
            }
        )
        return key.sign(self.domain + body) + body

    def open(self, value: bytes, partition: int, public_key_of: Callable[[str], str | None]) -> Entry:
        """The record's writes, if a pinned writer signed them for this partition; else
        ChangelogError. ``public_key_of(writer_id)`` gives a pinned writer's Ed25519 public key
        (hex) or None."""
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
            raise ChangelogError(f"written by {writer!r}, not a pinned {self.service}")
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(public.removeprefix("0x"))).verify(
                signature, self.domain + body
            )
        except (InvalidSignature, ValueError):
            raise ChangelogError(f"the signature is not {writer}'s") from None
        if doc["partition"] != partition:
            raise ChangelogError(f"written for partition {doc['partition']!r}, found on partition {partition}")
        # From here the record is authentic: what this process cannot read is another version's, not void.
        try:
            return Entry(partition, self._prev(doc["prev"]), writer, self._writes(doc["writes"]))
        except ChangelogError as exc:
            raise UnreadableRecord(
                f"a record signed by pinned {self.service} {writer!r} for partition {partition} that this "
                f"{self.service} cannot read: {exc}. It was written by another version of the {self.service}; "
                "run that version (or a newer one) for this partition"
            ) from None

    @staticmethod
    def _prev(prev: object) -> int:
        if not isinstance(prev, int) or isinstance(prev, bool):
            raise ChangelogError("prev must be an offset")
        return prev

    def _writes(self, items: object) -> list[Write]:
        writes: list[Write] = []
        for item in items if isinstance(items, list) else [None]:
            if not (
                isinstance(item, list) and len(item) == 2 and item[0] in self.arities and isinstance(item[1], list)
            ):
                raise ChangelogError(f"a write {item!r} is not [one of {sorted(self.arities)}, [arguments]]")
            name, args = item
            if len(args) != self.arities[name]:
                raise ChangelogError(f"write {name} takes {self.arities[name]} arguments, not {len(args)}")
            writes.append((name, tuple(_unarg(a) for a in args)))
        return writes


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
