"""Audit webhooks: an admin's signed request to add or remove an endpoint, and the rules an
endpoint's URL and chosen events must meet.

An endpoint receives the ledger's events of the actions it chose (`AuditAction`), signed as the
Standard Webhooks specification says. Adding or removing one is an admin's act: the request is
signed with a pinned admin's Ed25519 key and the ledger checks it against the admin set in force
(`ledger.webhook_admin`). The request carries no secret: the ledger makes the endpoint's secret
and answers it once, to the admin who asked.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Literal
from urllib.parse import urlsplit

import orjson
from pydantic import Field, field_validator, model_validator

from schemas.actions import AuditAction
from schemas.admins import ADMIN_SIGNATURE
from schemas.errors import WardenError
from schemas.fields import UtcDatetime
from schemas.passkeys import MAX_ASSERTION_CHARS
from schemas.record import Record

WEBHOOK_ID_PREFIX = "wh_"
_MAX_URL = 2000


class WebhookUrlError(WardenError, ValueError):
    """A URL an endpoint may not have; the message says which rule and what is allowed."""


class WebhookEventsError(WardenError, ValueError):
    """Events an endpoint may not choose; the message lists the audit actions it may."""


def loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_url(url: str) -> str:
    """``url`` when an endpoint may have it: https to any host, plain http only to a loopback host
    (for development), no user name or password in it, no fragment. Raises WebhookUrlError."""
    if len(url) > _MAX_URL:
        raise WebhookUrlError(f"the URL is {len(url)} characters; at most {_MAX_URL}")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise WebhookUrlError("the URL holds whitespace or a control character")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise WebhookUrlError(f"the scheme is {parts.scheme or 'missing'!r}; an endpoint is https://")
    if "@" in parts.netloc:
        raise WebhookUrlError(
            "the URL carries credentials (user:password@); the signature authenticates Warden, so put none in the URL"
        )
    host = parts.hostname or ""
    if not host:
        raise WebhookUrlError("the URL names no host")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError as exc:
        raise WebhookUrlError(f"the port is not a number from 0 to 65535 ({exc})") from None
    if parts.fragment:
        raise WebhookUrlError("the URL has a #fragment, which is never sent; leave it out")
    if scheme == "http" and not loopback_host(host):
        raise WebhookUrlError(
            f"plain http is allowed only to a loopback host (localhost, 127.0.0.1, ::1), not {host!r}; use https://"
        )
    return url


def checked_events(events: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``events`` when each is an audit action, named once, at least one; else WebhookEventsError
    listing what is allowed."""
    if not events:
        raise WebhookEventsError("choose at least one event: " + _allowed())
    actions = {action.value for action in AuditAction}
    unknown = [e for e in events if e not in actions]
    if unknown:
        raise WebhookEventsError(f"{', '.join(repr(e[:80]) for e in unknown)} is not an audit action; " + _allowed())
    if len(set(events)) != len(events):
        raise WebhookEventsError("an event is named twice; name each once")
    return tuple(events)


def _allowed() -> str:
    return "the events are the ledger's audit actions: " + ", ".join(action.value for action in AuditAction)


class WebhookRequest(Record):
    """An admin's request to the ledger: ``add`` an endpoint (``url``, ``events``) or ``remove``
    one (``webhook_id``), signed over `signing_bytes` with the admin's key. ``issued_at`` bounds
    how long it may be presented; an added endpoint's id is the digest of its request, so a
    request presented twice adds nothing twice."""

    op: Literal["add", "remove"]
    url: str = ""
    events: tuple[str, ...] = ()
    webhook_id: str = Field(default="", max_length=64)
    issued_at: UtcDatetime
    admin_key_id: str = Field(default="", max_length=64)
    signature: str = Field(default="", max_length=MAX_ASSERTION_CHARS, description="the admin's, " + ADMIN_SIGNATURE)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return checked_url(url) if url else url

    @model_validator(mode="after")
    def _fields_of_op(self) -> "WebhookRequest":
        if self.op == "add":
            if not self.url:
                raise ValueError("url: an endpoint to add needs its URL")
            checked_events(self.events)
            if self.webhook_id:
                raise ValueError("webhook_id: an added endpoint's id is made by the ledger; leave it out")
        elif not self.webhook_id.startswith(WEBHOOK_ID_PREFIX) or self.url or self.events:
            raise ValueError(f"remove names the endpoint by its id ({WEBHOOK_ID_PREFIX}...) and nothing else")
        return self

    def signing_bytes(self) -> bytes:
        return b"warden.webhooks\x00" + orjson.dumps(
            self.model_dump(mode="json", exclude={"signature"}), option=orjson.OPT_SORT_KEYS
        )

    def added_id(self) -> str:
        """The id of the endpoint this ``add`` request makes."""
        return WEBHOOK_ID_PREFIX + hashlib.sha256(self.signing_bytes()).hexdigest()[:24]
