"""Audit webhooks, as an admin adds and removes them: a `WebhookRequest` signed with the admin's
key, sent to the ledger (``POST /webhooks`` at WARDEN_LEDGER_HTTP), which checks it against the
admin set in force and answers. `add_webhook` returns the endpoint's id and its signing secret,
which the ledger shows this once. The unsigned requests are built here for the command line and
the console's webhooks page alike, so both sign the same bytes. What is sent and how to verify
it: docs/webhooks.md."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.config import Settings
from schemas.errors import WardenError
from schemas.webhooks import WebhookRequest, checked_events, checked_url


class WebhookError(WardenError):
    """The ledger refused a webhook request, or could not be reached."""


def signed_request(request: WebhookRequest, admin_key: Ed25519PrivateKey, admin_key_id: str) -> WebhookRequest:
    unsigned = request.model_copy(update={"admin_key_id": admin_key_id, "signature": ""})
    return unsigned.model_copy(update={"signature": admin_key.sign(unsigned.signing_bytes()).hex()})


def addition_request(url: str, events: list[str], admin_key_id: str, now: datetime) -> WebhookRequest:
    """The unsigned request that adds ``url`` for ``events``, naming ``admin_key_id`` as its signer,
    as `warden webhooks add` and the console's webhooks page build it; WebhookUrlError or
    WebhookEventsError say what is wrong and what is allowed."""
    return WebhookRequest(
        op="add",
        url=checked_url(url.strip()),
        events=checked_events(events),
        issued_at=now,
        admin_key_id=admin_key_id,
    )


def removal_request(webhook_id: str, admin_key_id: str, now: datetime) -> WebhookRequest:
    """The unsigned request that removes endpoint ``webhook_id``, naming ``admin_key_id`` as its
    signer, as `warden webhooks remove` and the console's webhooks page build it; ValidationError
    when ``webhook_id`` is not an endpoint's id."""
    return WebhookRequest(op="remove", webhook_id=webhook_id.strip(), issued_at=now, admin_key_id=admin_key_id)


def add_webhook(
    settings: Settings,
    url: str,
    events: list[str],
    admin_key: Ed25519PrivateKey,
    admin_key_id: str,
    now: datetime,
) -> dict[str, Any]:
    """Register ``url`` for ``events`` (audit actions); the ledger's answer: ``id``, ``secret``
    (``whsec_...``, shown only now), ``url``, ``events``. Raises WebhookUrlError or ValueError for
    a URL or events the ledger would refuse, WebhookError for what the ledger said."""
    return send(settings, signed_request(addition_request(url, events, admin_key_id, now), admin_key, admin_key_id))


def remove_webhook(
    settings: Settings, webhook_id: str, admin_key: Ed25519PrivateKey, admin_key_id: str, now: datetime
) -> dict[str, Any]:
    """Stop delivering to endpoint ``webhook_id``; what is still owed to it is not sent."""
    return send(settings, signed_request(removal_request(webhook_id, admin_key_id, now), admin_key, admin_key_id))


def send(settings: Settings, request: WebhookRequest) -> dict[str, Any]:
    """``request`` to the ledger, and its answer."""
    address = f"http://{settings.ledger_http}/webhooks"
    http = urllib.request.Request(
        address, data=request.to_bytes(), headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(http, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        try:
            said = json.loads(exc.read()).get("error", "")
        except ValueError:
            said = ""
        raise WebhookError(f"the ledger refused the request (HTTP {exc.code}): {said or exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise WebhookError(
            f"no ledger answers at {address} ({getattr(exc, 'reason', exc)})",
            "start the stack (warden up) or set WARDEN_LEDGER_HTTP to the ledger's address",
        ) from None
