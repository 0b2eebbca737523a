"""The ledger's hash chain: the canonical byte encoding of one row and its hash.

This module is the specification in code; docs/ledger.md says the same in prose so a
third party can recompute every hash without Warden.

A row's message is nine fields joined by ``|`` (0x7C), encoded as UTF-8::

    prev_hash | event_id | actor | action | resource | ts | details_sha256 | intent_id | agent_id

- ``prev_hash``: the previous row's ``integrity_hash`` in the same chain, 64
  lowercase hex digits; the first row of chain C uses ``genesis_hash(C)``.
- text fields (event_id, actor, action, resource, intent_id, agent_id) are
  escaped so ``|`` only ever separates: every ``%`` becomes ``%25``, then every
  ``|`` becomes ``%7C``. An absent intent_id or agent_id is the empty string.
- ``ts``: UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six fractional digits).
- ``details_sha256``: SHA-256 of the stored ``details`` text (UTF-8 bytes, as
  stored, byte for byte), 64 lowercase hex digits.

``integrity_hash = sha256(message)``, 64 lowercase hex digits. intent_id and
agent_id come after the formula's seven fields so that every column the ledger
stores about the event is covered: re-attributing an event to another agent
breaks the chain as surely as editing its details does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import orjson

SEPARATOR = "|"
GENESIS_PREFIX = "warden.audit.v1|genesis|"


def genesis_hash(chain: int) -> str:
    """The ``prev_hash`` of a chain's first row: distinct per chain, so a chain
    cannot be passed off as another one."""
    return hashlib.sha256(f"{GENESIS_PREFIX}{chain}".encode()).hexdigest()


def escape(field: str) -> str:
    if "%" in field or "|" in field:
        return field.replace("%", "%25").replace("|", "%7C")
    return field


def format_ts(ts: datetime) -> str:
    if ts.tzinfo is not timezone.utc:
        if ts.tzinfo is None:
            raise ValueError("ledger timestamps must carry a timezone; got a naive datetime")
        ts = ts.astimezone(timezone.utc)
    # isoformat of a UTC time ends in "+00:00"; the encoding says "Z".
    return ts.isoformat(timespec="microseconds")[:-6] + "Z"


def canonical_details(details: dict[str, Any]) -> str:
    """The text stored in ``details``: JSON with sorted keys and no whitespace, so
    equal dicts store equal bytes. Verification hashes the stored text as it is."""
    return orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode()


def details_digest(details_text: str) -> str:
    return hashlib.sha256(details_text.encode()).hexdigest()


def message(
    prev_hash: str,
    event_id: str,
    actor: str,
    action: str,
    resource: str,
    ts: datetime,
    details_text: str,
    intent_id: str,
    agent_id: str,
) -> bytes:
    return encode(
        prev_hash, event_id, actor, action, resource, format_ts(ts), details_digest(details_text), intent_id, agent_id
    )


def encode(
    prev_hash: str,
    event_id: str,
    actor: str,
    action: str,
    resource: str,
    ts_text: str,
    details_sha256: str,
    intent_id: str,
    agent_id: str,
) -> bytes:
    """The message from fields already in the encoding's form: ``ts_text`` as ``format_ts``
    writes it, ``details_sha256`` as ``details_digest`` returns it. The sink's batch path
    calls this directly, so the encoding has one definition."""
    return SEPARATOR.join(
        (
            prev_hash,
            escape(event_id),
            escape(actor),
            escape(action),
            escape(resource),
            ts_text,
            details_sha256,
            escape(intent_id),
            escape(agent_id),
        )
    ).encode()


def integrity_hash(
    prev_hash: str,
    event_id: str,
    actor: str,
    action: str,
    resource: str,
    ts: datetime,
    details_text: str,
    intent_id: str,
    agent_id: str,
) -> str:
    return hashlib.sha256(
        message(prev_hash, event_id, actor, action, resource, ts, details_text, intent_id, agent_id)
    ).hexdigest()


def row_hash(row: Mapping[str, Any]) -> str:
    """The integrity hash of an exported audit row (a proof's or a receipt's event, ``ts`` as text):
    recomputed from its fields, so an altered field gives another hash. KeyError, TypeError or
    ValueError if a field is missing or garbled."""
    return integrity_hash(
        str(row["prev_hash"]),
        str(row["event_id"]),
        str(row["actor"]),
        str(row["action"]),
        str(row["resource"]),
        datetime.fromisoformat(str(row["ts"])),
        str(row["details"]),
        str(row["intent_id"]),
        str(row["agent_id"]),
    )
