"""The admins' webhooks page: the audit webhooks in force with their delivery state, as
`warden webhooks list` reads them from the ledger's store, the form that adds one and, beside each,
the button that removes it.

Adding one is a `WebhookRequest` the console builds unsigned as the command line does
(`sdk.webhooks.addition_request`) and shows; the admin's passkey signs
its signing bytes on the page, and the console sends the signed request to the ledger
(`gateway.console.relay.relay_webhook`), which checks it against the admin set in force as it checks the
command line's. The endpoint's signing secret is shown once, on the page, after adding. Removing
one is the same: the `WebhookRequest` naming the endpoint (`sdk.webhooks.removal_request`), shown,
signed by the passkey, relayed.
Everything here shapes what it is given and does no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gateway.console.layout import attr, esc, plain
from schemas.actions import AuditAction


def _when(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _deliveries(r: Mapping[str, Any]) -> str:
    pending = f"{esc(r['pending'])} pending" + (
        f" (the oldest since {esc(_when(r['oldest_pending']))})" if r["oldest_pending"] else ""
    )
    return f"{esc(r['delivered'])} delivered<br>{pending}<br>{esc(r['given_up'])} given up"


def webhooks_table(rows: Sequence[Mapping[str, Any]], csrf: str) -> str:
    """Each endpoint in force (`ledger.webhook_store.summaries`): its id and URL, its events, who
    added it when, what was delivered, what is pending (since when), given up, the last error, and
    the form that builds the request removing it; six columns whose long words wrap, so the page
    fits a window 1280 pixels wide."""
    if not rows:
        return "<p>No webhook endpoint is registered.</p>"
    head = "<tr><th>endpoint</th><th>events</th><th>added</th><th>deliveries</th><th>last error</th><th></th></tr>"
    body = "".join(
        f'<tr class="webhook"><td><code class="id">{esc(r["webhook_id"])}</code><br>'
        f'<code class="url">{esc(r["url"])}</code></td><td>{esc(", ".join(r["events"]))}</td>'
        f"<td>{esc(_when(r['added_at']))}<br>by {esc(r['added_by'])}</td><td>{_deliveries(r)}</td>"
        f'<td class="error">{esc(r["last_error"] or "")}</td><td>{_removal_form(r["webhook_id"], csrf)}</td></tr>'
        for r in rows
    )
    return f'<table class="webhooks">{head}{body}</table>'


def _removal_form(webhook_id: str, csrf: str) -> str:
    return (
        '<form class="webhook-removal draft" method="post" action="/webhooks/removal">'
        f'<input type="hidden" name="csrf" value="{attr(csrf)}"><input type="hidden" name="webhook_id" '
        f'value="{attr(webhook_id)}"><button>Remove</button><span class="result"></span></form>'
    )


def webhook_form(csrf: str, values: Mapping[str, Any] | None = None) -> str:
    """The form that adds an endpoint: its URL and the audit actions it is sent. The page's script
    sends it and shows what is wrong, if anything, under it."""
    values = values or {}
    chosen = set(values.get("events", ()))
    options = "".join(
        f'<option value="{attr(a.value)}"{" selected" if a.value in chosen else ""}>{plain(a.value)}</option>'
        for a in AuditAction
    )
    return (
        f'<h2>Add an endpoint</h2><form class="webhook draft" method="post" action="/webhooks/draft">'
        f'<input type="hidden" name="csrf" value="{attr(csrf)}">'
        f'<label>URL (https://; plain http only to localhost) <input name="url" value="{attr(values.get("url", ""))}" '
        "required></label>"
        f'<label>events (the audit actions it is sent) <select name="events" multiple size="12">{options}</select></label>'
        '<button>Show the request to sign</button><p class="result"></p></form>'
    )
