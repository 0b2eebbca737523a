"""What a webhook delivery sends, as the Standard Webhooks specification says: the body (one
ledger event), its three headers and each endpoint's signing secret. Pure: time passed in.

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``, HMAC-SHA256 with the endpoint's
secret, sent as ``v1,<base64>``. ``webhook-id`` is the event's id, the same on every attempt, so a
receiver drops a duplicate by it; ``webhook-timestamp`` is the attempt's time, so a receiver
refuses a replayed old request.

An endpoint's secret is not stored anywhere: it is HMAC-SHA256 of the endpoint's id under the
ledger's webhook key (a file beside its checkpoint key, mode 0600), so the ledger's tables,
which its SQL endpoint serves to anyone on loopback, hold nothing that signs a webhook.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from ledger.chain import format_ts

SECRET_PREFIX = "whsec_"
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
KEY_FILE = "webhooks.key"
# A body above this leaves the event's details out (their digest stays): Standard Webhooks keeps
# payloads small, and `warden audit receipt <event id>` gives the whole row.
MAX_DETAILS_BYTES = 16 * 1024


def key_file(home: Path) -> Path:
    return home / "ledger" / KEY_FILE


def load_or_create_key(home: Path) -> bytes:
    """The ledger's webhook key (32 random bytes), made on first use with mode 0600."""
    path = key_file(home)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) != 32:
            raise ValueError(f"{path} holds {len(key)} bytes, not a 32-byte webhook key") from None
        return key
    key = os.urandom(32)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
        out.flush()
        os.fsync(out.fileno())
    return key


def secret(key: bytes, webhook_id: str) -> bytes:
    """Endpoint ``webhook_id``'s signing secret (32 bytes)."""
    return hmac.new(key, b"warden.webhook.secret\x00" + webhook_id.encode(), hashlib.sha256).digest()


def whsec(secret_bytes: bytes) -> str:
    """A secret as Standard Webhooks hands it out: ``whsec_`` and base64."""
    return SECRET_PREFIX + base64.b64encode(secret_bytes).decode()


def message_id(event_id: str) -> str:
    """An event's ``webhook-id``: its event id, which Warden's services make of hex digits; any
    other (a ``.`` would make the signed content ambiguous, a control character a broken header)
    as ``evt_`` and its SHA-256, the same on every attempt too."""
    if _PLAIN_ID.fullmatch(event_id):
        return event_id
    return "evt_" + hashlib.sha256(event_id.encode()).hexdigest()[:32]


def body(row: dict[str, Any]) -> bytes:
    """The JSON body of one ledger row (an ``audit_log`` row: its event, and where it sits in the
    ledger), ``type`` its action, ``timestamp`` when the event happened."""
    details: str = row["details"]
    parsed = orjson.loads(details) if details else {}
    data: dict[str, Any] = {
        "event_id": row["event_id"],
        "action": row["action"],
        "actor": row["actor"],
        "resource": row["resource"],
        "ts": format_ts(row["ts"]),
        "agent_id": row["agent_id"] or None,
        "intent_id": row["intent_id"] or None,
        "intent_digest": parsed.get("intent_digest") if isinstance(parsed, dict) else None,
        "ledger": {
            "chain": row["chain"],
            "seq": row["seq"],
            "integrity_hash": row["integrity_hash"],
            "appended_at": format_ts(row["appended_at"]),
        },
        "details_sha256": hashlib.sha256(details.encode()).hexdigest(),
    }
    if len(details) <= MAX_DETAILS_BYTES:
        data["details"] = parsed
    return orjson.dumps({"type": row["action"], "timestamp": format_ts(row["ts"]), "data": data})


def headers(secret_bytes: bytes, event_id: str, content: bytes, now: datetime) -> dict[str, str]:
    """The headers of one attempt at ``now`` to send ``content`` for event ``event_id``."""
    timestamp = str(int(now.timestamp()))
    signed = b".".join((event_id.encode(), timestamp.encode(), content))
    signature = base64.b64encode(hmac.new(secret_bytes, signed, hashlib.sha256).digest()).decode()
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": f"v1,{signature}",
    }
