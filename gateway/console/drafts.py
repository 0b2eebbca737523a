"""What the console builds for an admin's passkey to sign, each shown and relayed the same way: an
agent's next policy (the agents pages), a webhook's addition or removal, and the denial that
cancels a sign-only transaction. A handler builds the record unsigned and keeps it as a draft
(`gateway.console.state.Console.draft`); its signing page shows the exact bytes; the relay takes
the draft only when the passkey signed exactly them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from gateway.console import agents as agents_page
from gateway.console import cancellations
from gateway.console import decisions as decisions_page
from gateway.console import webhooks as webhooks_page
from gateway.console.layout import esc, page
from gateway.console.pages import SOURCE
from gateway.console.relay import RelayRefused, relay_policy, relay_webhook
from gateway.console.security import CSRF_FIELD
from gateway.console.state import CONSOLE, Console, admin_of, csrf_of, html, json_body, me_block
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.errors import WardenError
from schemas.passkeys import RelyingParty
from schemas.webhooks import WEBHOOK_ID_PREFIX, WebhookEventsError, WebhookUrlError
from sdk.changes import policy_change
from sdk.pending import change_lines
from sdk.policies import PolicyInvalid, unsigned_policy
from sdk.records import admins_in_force, policy_in_force
from sdk.webhooks import addition_request, removal_request

_log = logging.getLogger("warden.console")

# -- agents ----------------------------------------------------------------------------------------


def _version_pair(request: web.Request) -> tuple[str, int, int] | None:
    """The two versions of one agent the page is asked to compare (``?agent=&from=&to=``)."""
    agent, old, new = (request.query.get(k, "") for k in ("agent", "from", "to"))
    if not (agent and old.isdigit() and new.isdigit()):
        return None
    return agent, int(old), int(new)


async def agents(request: web.Request) -> web.Response:
    admin_id = admin_of(request)
    source = request.app[SOURCE]
    try:
        history = await source.policy_history()
    except WardenError as exc:
        history = {}
        _log.warning("the agents page cannot read the ledger's policy versions: %s", exc)
    chosen = _version_pair(request)
    names = sorted(set(history) | ({chosen[0]} if chosen else set()))
    policies = await source.policies(names) if names else {}
    body = agents_page.agents_body(policies, history, chosen)
    return html(page("Agents", body, who=admin_id, csrf=csrf_of(request)))


async def agent_form(request: web.Request) -> web.Response:
    console: Console = request[CONSOLE]
    admin_id = admin_of(request)
    agent = request.query.get("agent") or None
    current = None if agent is None else await policy_in_force(console.settings, agent)
    values = {"agent": agent or "", **agents_page.form_values(current)}
    form = agents_page.policy_form(agent if current is not None else None, values, csrf_of(request))
    title = "Create an agent" if current is None else f"Change the policy of {agent}"
    return html(page(title, form, who=admin_id, scripts=("console.js",), csrf=csrf_of(request)))


async def agent_draft(request: web.Request) -> web.Response:
    """The policy the form asks for (sent by the page's script), built unsigned and kept with its
    change against the one in force: where its signing page is; or 400 saying what is wrong."""
    console: Console = request[CONSOLE]
    admin_id = admin_of(request)
    sent = {k: str(v) for k, v in (await json_body(request)).items() if k != CSRF_FIELD}
    try:
        form = agents_page.read_form(sent)
        current = await policy_in_force(console.settings, form.agent_id)
        if form.create and current is not None:
            raise PolicyInvalid(f"agent: {form.agent_id!r} exists (policy v{current.version}); change it on its page")
        policy = unsigned_policy(form.agent_id, current, form.public_key, form.fields, console.now(), admin_id)
    except PolicyInvalid as exc:
        return web.json_response({"error": str(exc)}, status=400)
    lines = "\n".join(change_lines(policy_change(current, policy)))
    title = f"Sign policy v{policy.version} of {form.agent_id}"
    change = f'<p>What it changes against the policy in force:</p><pre class="change">{esc(lines)}</pre>'
    draft = console.draft(admin_id, "policy", policy.signing_bytes(), title, change)
    return web.json_response({"next": f"/agents/sign/{draft}"})


Relay = Callable[[Settings, bytes, str, str, RelyingParty], Awaitable[Any]]


async def _relay_draft(request: web.Request, kind: str, relay: Relay) -> tuple[str, bytes, Any] | web.Response:
    """The passkey's signature over the ``kind`` the console built and showed, relayed by ``relay``:
    (the admin, the bytes, what ``relay`` answered); a refusal is recorded and answered with 403."""
    console: Console = request[CONSOLE]
    admin_id = admin_of(request)
    body = await json_body(request)
    try:
        shown = decisions_page.shown_bytes(str(body.get("bytes", "")))
        message = console.take_draft(str(body.get("draft", "")), admin_id, kind, shown)
        done = await relay(console.settings, message, str(body.get("assertion", "")), admin_id, console.party)
    except RelayRefused as exc:
        await console.record(AuditAction.CONSOLE_RELAY_REFUSED, f"admin:{admin_id}", admin_id=admin_id, reason=str(exc))
        return web.json_response({"error": str(exc)}, status=403)
    return admin_id, message, done


def sign_page(kind: str, relay_path: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The page that shows a ``kind`` the console built (``/.../sign/{draft}``) for the admin's
    passkey to sign, relayed to ``relay_path``."""

    async def handler(request: web.Request) -> web.Response:
        console: Console = request[CONSOLE]
        admin_id = admin_of(request)
        draft_id = request.match_info["draft"]
        draft = console.shown_draft(draft_id, admin_id, kind)
        if draft is None:
            raise web.HTTPNotFound(
                text=f"no {kind} waits for your signature under this id: fill the form again", content_type="text/plain"
            )
        admins = await admins_in_force(console.settings)
        fields = {"draft": draft_id, "relay": relay_path}
        block = decisions_page.signing_block(kind, f"sign this {kind}", draft.message, fields)
        body = me_block(request, admins.keys, admin_id) + draft.intro + block
        return html(page(draft.title, body, who=admin_id, scripts=("console.js",), csrf=csrf_of(request)))

    return handler


async def _relayed_and_recorded(
    request: web.Request, kind: str, relay: Relay, action: AuditAction, what: Callable[[dict[str, Any]], dict[str, Any]]
) -> web.Response:
    """The ``kind`` the console built, relayed by ``relay`` and recorded as ``action`` on the
    intent's or the agent's resource (``what``: the resource and the details of its record)."""
    relayed = await _relay_draft(request, kind, relay)
    if isinstance(relayed, web.Response):
        return relayed
    admin_id, message, done = relayed
    record = orjson.loads(message)
    details = what(record)
    await request[CONSOLE].record(
        action,
        details.pop("resource"),
        record["agent_id"],
        admin_id=admin_id,
        **details,
        **{k: v for k, v in done.as_dict().items() if v},
    )
    return web.json_response(done.as_dict())


async def agent_relay(request: web.Request) -> web.Response:
    return await _relayed_and_recorded(
        request,
        "policy",
        relay_policy,
        AuditAction.CONSOLE_POLICY_RELAYED,
        lambda record: {"resource": f"policy:{record['agent_id']}", "version": record["version"]},
    )


# -- webhooks --------------------------------------------------------------------------------------


async def webhooks(request: web.Request) -> web.Response:
    admin_id = admin_of(request)
    try:
        listed = webhooks_page.webhooks_table(await request.app[SOURCE].webhooks(), csrf_of(request))
    except WardenError as exc:
        listed = f'<p class="flag">Cannot read the ledger: {esc(exc)}</p>'
    body = listed + webhooks_page.webhook_form(csrf_of(request))
    return html(page("Webhooks", body, who=admin_id, scripts=("console.js",), csrf=csrf_of(request)))


async def webhook_draft(request: web.Request) -> web.Response:
    """The request that adds the endpoint the form names (sent by the page's script), built
    unsigned and kept: where its signing page is; or 400 saying what is wrong."""
    console: Console = request[CONSOLE]
    admin_id = admin_of(request)
    sent = await json_body(request)
    chosen = sent.get("events", [])
    url, events = str(sent.get("url", "")), [str(e) for e in ([chosen] if isinstance(chosen, str) else chosen)]
    try:
        webhook = addition_request(url, events, admin_id, console.now())
    except (WebhookUrlError, WebhookEventsError) as exc:
        return web.json_response(
            {"error": f"{'url' if isinstance(exc, WebhookUrlError) else 'events'}: {exc}"}, status=400
        )
    secret = (
        '<div id="secret" hidden><p>The endpoint\'s signing secret, shown only now: keep it where the receiver '
        'verifies signatures.</p><pre class="secret"></pre></div>'
    )
    draft = console.draft(admin_id, "webhook", webhook.signing_bytes(), "Sign the webhook request", secret)
    return web.json_response({"next": f"/webhooks/sign/{draft}"})


async def webhook_removal(request: web.Request) -> web.Response:
    """The request that removes the endpoint the row's form names, built unsigned and kept: where
    its signing page is; or 400 saying what is wrong."""
    console: Console = request[CONSOLE]
    admin_id = admin_of(request)
    webhook_id = str((await json_body(request)).get("webhook_id", ""))
    try:
        removal = removal_request(webhook_id, admin_id, console.now())
    except ValidationError:
        return web.json_response(
            {
                "error": f"webhook_id: {webhook_id[:80]!r} is not an endpoint's id (one starts {WEBHOOK_ID_PREFIX}, as listed)"
            },
            status=400,
        )
    intro = f"<p>Removing webhook <code>{esc(removal.webhook_id)}</code>: it is sent nothing more.</p>"
    draft = console.draft(admin_id, "webhook", removal.signing_bytes(), "Sign the webhook's removal", intro)
    return web.json_response({"next": f"/webhooks/sign/{draft}"})


async def webhook_relay(request: web.Request) -> web.Response:
    relayed = await _relay_draft(request, "webhook", relay_webhook)
    if isinstance(relayed, web.Response):
        return relayed
    admin_id, _, answer = relayed
    if answer.get("removed"):
        await request[CONSOLE].record(
            AuditAction.CONSOLE_WEBHOOK_RELAYED,
            f"webhook:{answer['id']}",
            admin_id=admin_id,
            webhook_id=answer["id"],
            op="remove",
        )
        return web.json_response({"what": f"webhook {answer['id']} removed", "id": answer["id"]})
    await request[CONSOLE].record(
        AuditAction.CONSOLE_WEBHOOK_RELAYED,
        f"webhook:{answer['id']}",
        admin_id=admin_id,
        webhook_id=answer["id"],
        op="add",
        url=answer["url"],
        events=answer["events"],
    )
    return web.json_response({"what": f"webhook {answer['id']} added", "id": answer["id"], "secret": answer["secret"]})


# -- cancellations -----------------------------------------------------------------------------------


async def cancellation_draft(request: web.Request) -> web.Response:
    """The denial that cancels the sign-only transaction the row's form names, built unsigned for
    the admin logged in once the signer's records say it is that agent's and still sign-only, and
    kept: where its signing page is; or 400 saying what is wrong."""
    console: Console = request[CONSOLE]
    admin_id = admin_of(request)
    try:
        message, title, intro = await cancellations.build(
            console.settings, admin_id, await json_body(request), console.now()
        )
    except cancellations.CancelInvalid as exc:
        return web.json_response({"error": str(exc)}, status=400)
    draft = console.draft(admin_id, cancellations.KIND, message, title, intro)
    return web.json_response({"next": f"/transactions/cancel/sign/{draft}"})


async def cancellation_relay(request: web.Request) -> web.Response:
    return await _relayed_and_recorded(
        request,
        cancellations.KIND,
        cancellations.relay_cancellation,
        AuditAction.CONSOLE_CANCELLATION_RELAYED,
        lambda record: {"resource": f"intent:{record['intent_id']}", "reason": record.get("reason", "")},
    )
