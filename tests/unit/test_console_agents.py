"""The console's agents and webhooks pages, shaped without processes: each agent's versions as the
ledger recorded them, the diff between two, the policy form (the command line's builder, its
errors naming the field), and the rule that the console relays a passkey's signature only over
the exact bytes it built and showed. The app runs in process (aiohttp's test server)."""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.console.agents import agents_body, diff_html, form_values, history_table, read_form, version_diff
from gateway.console.data import policy_versions
from gateway.console.layout import NAV
from gateway.console.relay import RelayRefused
from gateway.console.security import cookie_name
from gateway.console.server import build_app
from gateway.console.state import DRAFT_TTL, Console
from gateway.console.webhooks import webhook_form, webhooks_table
from infra.cli.agents import _policy_fields
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.emit import Emit
from schemas.passkeys import MAX_ASSERTION_CHARS
from schemas.policy import AgentPolicy
from schemas.webhooks import WebhookEventsError, WebhookRequest, WebhookUrlError
from sdk.changes import policy_change
from sdk.policies import OPTIONS, PolicyInvalid, policy_fields, unsigned_policy
from sdk.webhooks import addition_request, removal_request
from tests.passkey_support import ORIGIN, PARTY

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KEY = "0x" + "11" * 32
ConsoleClient = TestClient[web.Request, web.Application]
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def _policy(version: int, **fields: Any) -> AgentPolicy:
    return unsigned_policy("bot", None, KEY, fields, T0 + timedelta(hours=version)).model_copy(
        update={"version": version, "admin_key_id": "alice"}
    )


def _row(policy: AgentPolicy, approved_by: tuple[str] | tuple[str, str] = ("alice",), seq: int = 0) -> dict[str, Any]:
    details = {
        "version": policy.version,
        "approved_by": list(approved_by),
        "policy": policy.model_dump(mode="json", exclude={"signature", "cosignatures"}),
    }
    return {
        "agent_id": policy.agent_id,
        "ts": policy.issued_at,
        "actor": "admin:alice",
        "details": orjson.dumps(details).decode(),
    }


def test_an_agents_versions_are_listed_once_each_oldest_first_with_who_signed() -> None:
    v1, v2 = _policy(1, tx_max_value_eth="1"), _policy(2, tx_max_value_eth="2")
    rows = [_row(v1), _row(v2, ("alice", "bob")), _row(v1, ("mallory",))]  # v1 recorded again
    rows.append({"agent_id": "bot", "ts": T0, "actor": "admin:x", "details": '{"version": "3"}'})  # names none
    (versions,) = policy_versions(rows).values()
    assert [(v.version, v.approved_by, v.proposed_by) for v in versions] == [
        (1, ("alice",), "alice"),
        (2, ("alice", "bob"), "alice"),
    ]
    table = history_table(versions, in_force=2)
    assert table.index("v2 (in force)") < table.index("v1<")  # newest first, the one in force marked
    assert "alice, bob" in table


def test_the_diff_between_two_versions_is_field_by_field_old_and_new() -> None:
    v1 = _policy(1, tx_max_value_eth="1", tx_to_allowlist=(ALICE,), tx_allowed_chains=("anvil",))
    v3 = _policy(3, tx_max_value_eth="2.5", tx_to_allowlist=(ALICE, BOB), tx_allowed_chains=("anvil",))
    versions = policy_versions([_row(v1), _row(v3)])["bot"]
    diff = version_diff(versions, 1, 3)
    assert diff is not None
    changed = {row["field"]: row for row in diff.fields}
    assert set(changed) == {"version", "tx_max_value_eth", "tx_to_allowlist", "issued_at"}
    assert (changed["tx_max_value_eth"]["old"], changed["tx_max_value_eth"]["new"]) == ("1", "2.5")
    assert changed["tx_to_allowlist"]["added"] == [BOB] and changed["tx_to_allowlist"]["removed"] == []
    html = diff_html(diff)
    assert "<td>tx_max_value_eth</td><td>1</td><td>2.5</td>" in html and "+ &quot;" in html
    assert version_diff(versions, 1, 2) is None  # the ledger holds no v2


def test_the_agents_page_escapes_every_value_and_has_no_inline_script_or_style() -> None:
    hostile = '<script>alert("x")</script>'
    policy = _policy(1).model_copy(update={"agent_id": hostile, "usd_daily_limit": hostile})
    html = agents_body({hostile: policy}, {hostile: policy_versions([_row(policy)])[hostile]}, (hostile, 1, 1))
    assert "<script" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert not re.search(r"\sstyle=|<style|\son[a-z]+=", html)
    assert "/webhooks" in [item.path for item in NAV]


def test_the_form_sent_unchanged_makes_the_same_rules_and_the_cli_builds_the_same_fields() -> None:
    current = _policy(4, tx_max_value_eth="1.5", tx_allowed_chains=("anvil",), tx_to_allowlist=(ALICE,))
    sent = {"agent": "bot", **form_values(current)}
    form = read_form(sent)
    again = unsigned_policy(form.agent_id, current, form.public_key, form.fields, T0, "alice")
    assert {row["field"] for row in policy_change(current, again)["fields"]} == {"version", "issued_at"}

    fresh = read_form({"agent": "new", **form_values(None)})
    assert unsigned_policy("new", None, KEY, fresh.fields, T0) == unsigned_policy("new", None, KEY, {}, T0)

    # The command line's flags and the console's form fields go through one builder.
    flags = dict.fromkeys(OPTIONS) | {"chains": "anvil", "max_value": "none", "require_simulation": "on"}
    cli = _policy_fields(argparse.Namespace(fields=None, **flags))
    console = read_form({"agent": "bot", "chains": "anvil", "max_value": "none", "require_simulation": "on"}).fields
    assert cli == console == {"tx_allowed_chains": ("anvil",), "tx_max_value_eth": None, "require_simulation": True}


@pytest.mark.parametrize(
    ("form", "said"),
    [
        ({"agent": "bot", "max_value": "a lot"}, "tx_max_value_eth: "),
        ({"agent": "bot", "chains": "anvil,atlantis"}, "tx_allowed_chains: unknown chain 'atlantis'; allowed: "),
        ({"agent": "bot", "allowlist": "0x1234"}, "tx_to_allowlist.0: "),
        ({"agent": "bot", "approval_timeout": "0"}, "approval_timeout_s: Input should be greater than or equal to 1"),
        ({"agent": "bot", "require_simulation": "maybe"}, "require_simulation: must be on or off"),
        ({"agent": "bot", "fields": "{not json"}, "further policy fields: not JSON"),
        ({"agent": "bot", "fields": "[1]"}, "further policy fields: give one JSON object"),
        ({"agent": "bot", "fields": '{"usd_daily_limt": "5"}'}, "usd_daily_limt: is not a field of this record"),
        ({"agent": ""}, "agent: an agent id is required"),
    ],
)
def test_a_form_that_makes_no_valid_policy_is_refused_naming_the_field(form: dict[str, str], said: str) -> None:
    with pytest.raises(PolicyInvalid, match=re.escape(said)):
        sent = read_form(form)
        unsigned_policy(sent.agent_id, _policy(1), sent.public_key, sent.fields, T0, "alice")


def test_a_new_agent_needs_its_key_and_an_unknown_option_is_named() -> None:
    with pytest.raises(PolicyInvalid, match="agent_public_key: a new agent needs"):
        unsigned_policy("new", None, None, {}, T0)
    with pytest.raises(PolicyInvalid, match="max_valeu: not an option"):
        policy_fields({"max_valeu": "1"})


def test_a_webhook_request_is_checked_field_by_field_and_carries_a_passkeys_assertion() -> None:
    with pytest.raises(WebhookUrlError, match="plain http is allowed only to a loopback host"):
        addition_request("http://hooks.example.com/", [AuditAction.INTENT_REJECTED], "alice", T0)
    with pytest.raises(WebhookEventsError, match="choose at least one event"):
        addition_request("https://hooks.example.com/", [], "alice", T0)
    request = addition_request("https://hooks.example.com/", [AuditAction.INTENT_REJECTED], "alice", T0)
    assert request.admin_key_id == "alice" and not request.signature
    signed = request.model_copy(update={"signature": "webauthn:" + "A" * (MAX_ASSERTION_CHARS - 9)})
    assert WebhookRequest.model_validate_json(signed.to_bytes()).signature == signed.signature
    rows = [
        {
            "webhook_id": "wh_<b>",
            "url": "https://hooks.example.com/",
            "events": [AuditAction.INTENT_REJECTED.value],
            "added_at": T0,
            "added_by": "alice",
            "delivered": 3,
            "pending": 1,
            "oldest_pending": T0,
            "given_up": 0,
            "last_error": "HTTP 500",
        }
    ]
    html = webhooks_table(rows, "token") + webhook_form("token", {"url": '"><x'})
    assert "wh_&lt;b&gt;" in html and "&quot;&gt;&lt;x" in html and "HTTP 500" in html
    # Each row's removal: a form the page's script sends, naming the endpoint, with the session's token.
    assert 'action="/webhooks/removal"' in html and 'name="webhook_id" value="wh_&lt;b&gt;"' in html
    assert html.count('name="csrf" value="token"') == 2


def _console(tmp_path: Path, events: list[Emit], clock: list[datetime]) -> Console:
    async def sink(event: Emit) -> None:
        events.append(event)

    # Port 9 (discard): no broker answers there, and no stack picks a port below 10000.
    return Console(Settings(home=tmp_path, broker="127.0.0.1:9"), PARTY, sink, now=lambda: clock[0])


def test_a_draft_is_relayed_only_for_the_exact_bytes_built_for_that_admin_once_and_while_fresh(tmp_path: Path) -> None:
    clock = [T0]
    console = _console(tmp_path, [], clock)
    built = _policy(1).signing_bytes()
    other = _policy(1, tx_max_value_eth="1000").signing_bytes()
    for admin, kind, shown, why in [
        ("alice", "policy", other, "not the policy the console built"),
        ("bob", "policy", built, "built for alice, not bob"),
        ("alice", "webhook", built, "no webhook built by the console"),
    ]:
        draft = console.draft("alice", "policy", built)
        with pytest.raises(RelayRefused, match=why):
            console.take_draft(draft, admin, kind, shown)
        with pytest.raises(RelayRefused, match="relayed or refused already"):  # each draft is taken once
            console.take_draft(draft, "alice", "policy", built)
    draft = console.draft("alice", "policy", built)
    clock[0] = T0 + DRAFT_TTL + timedelta(seconds=1)
    with pytest.raises(RelayRefused, match="minutes old"):
        console.take_draft(draft, "alice", "policy", built)
    draft = console.draft("alice", "policy", built)
    assert console.take_draft(draft, "alice", "policy", built) == built


def test_the_relay_refuses_bytes_other_than_the_ones_built_before_any_signature_is_checked_and_records_it(
    tmp_path: Path,
) -> None:
    events: list[Emit] = []
    console = _console(tmp_path, events, [T0])
    admin = console.sessions.log_in(console.sessions.new(T0), "alice", T0)
    built = _policy(1).signing_bytes()
    request = addition_request("https://hooks.example.com/", [AuditAction.INTENT_REJECTED], "alice", T0)
    removal = removal_request("wh_" + "a" * 24, "alice", T0)

    async def scenario(client: ConsoleClient) -> None:
        client.session.cookie_jar.update_cookies({cookie_name(ORIGIN): admin.id})
        headers = {"Origin": ORIGIN, "X-CSRF-Token": admin.csrf}
        for path, kind, message in [
            ("/agents/relay", "policy", built),
            ("/webhooks/relay", "webhook", request.signing_bytes()),
            ("/webhooks/relay", "webhook", removal.signing_bytes()),
        ]:
            draft = console.draft("alice", kind, message)
            swapped = message.replace(b'"alice"', b'"mallory"')
            answer = await client.post(
                path, headers=headers, json={"draft": draft, "bytes": swapped.decode(), "assertion": "x"}
            )
            assert answer.status == 403 and "not the" in (await answer.json())["error"]

    asyncio.run(_run(console, scenario))
    assert [AuditAction.CONSOLE_RELAY_REFUSED.value.encode() in e.value for e in events] == [True, True, True]


async def _run(console: Console, scenario: Callable[[ConsoleClient], Awaitable[None]]) -> None:
    async with TestClient(TestServer(build_app(console))) as client:
        await scenario(client)


def test_a_form_is_answered_with_what_is_wrong_or_with_the_signing_page_of_the_bytes_kept(tmp_path: Path) -> None:
    console = _console(tmp_path, [], [T0])
    admin = console.sessions.log_in(console.sessions.new(T0), "alice", T0)

    async def scenario(client: ConsoleClient) -> None:
        client.session.cookie_jar.update_cookies({cookie_name(ORIGIN): admin.id})
        headers = {"Origin": ORIGIN, "X-CSRF-Token": admin.csrf}
        refused = await client.post("/agents/draft", headers=headers, json={"agent": "bot", "intents_api": "maybe"})
        assert (
            refused.status == 400
            and (await refused.json())["error"] == "intents_api_enabled: must be on or off, got 'maybe'"
        )
        refused = await client.post(
            "/webhooks/draft", headers=headers, json={"url": "http://hooks.example.com/", "events": []}
        )
        assert refused.status == 400 and (await refused.json())["error"].startswith("url: plain http is allowed only")
        sent = {"url": "https://hooks.example.com/", "events": AuditAction.INTENT_REJECTED.value}
        answer = await client.post("/webhooks/draft", headers=headers, json=sent)
        draft_id = (await answer.json())["next"].removeprefix("/webhooks/sign/")
        (draft,) = console.drafts.values()
        request = WebhookRequest.model_validate_json(draft.message.removeprefix(b"warden.webhooks\x00"))
        assert (request.url, request.events, request.admin_key_id, request.signature) == (
            sent["url"],
            (AuditAction.INTENT_REJECTED,),
            "alice",
            "",
        )
        assert console.shown_draft(draft_id, "bob", "webhook") is None  # another admin's page shows nothing
        assert (await client.get("/agents/sign/" + draft_id)).status == 404  # nor the page of another kind

        # A removal names an endpoint's id and nothing else; what is not one is named.
        refused = await client.post("/webhooks/removal", headers=headers, json={"webhook_id": "https://x/"})
        assert refused.status == 400
        assert (await refused.json())[
            "error"
        ] == "webhook_id: 'https://x/' is not an endpoint's id (one starts wh_, as listed)"
        answer = await client.post("/webhooks/removal", headers=headers, json={"webhook_id": "wh_" + "b" * 24})
        removal_id = (await answer.json())["next"].removeprefix("/webhooks/sign/")
        kept = console.drafts[removal_id]
        removal = WebhookRequest.model_validate_json(kept.message.removeprefix(b"warden.webhooks\x00"))
        assert (removal.op, removal.webhook_id, removal.admin_key_id, removal.url, removal.signature) == (
            "remove",
            "wh_" + "b" * 24,
            "alice",
            "",
            "",
        )
        assert "Removing webhook <code>wh_" + "b" * 24 in kept.intro
        # Its signing page reads the admin set in force from the broker; none answers here: said, not a 500.
        page = await client.get("/webhooks/sign/" + removal_id)
        assert page.status == 503 and "does not answer" in await page.text()

    asyncio.run(_run(console, scenario))


def test_a_removal_built_or_relayed_without_the_token_or_from_another_origin_is_refused(tmp_path: Path) -> None:
    events: list[Emit] = []
    console = _console(tmp_path, events, [T0])
    admin = console.sessions.log_in(console.sessions.new(T0), "alice", T0)
    removal = removal_request("wh_" + "c" * 24, "alice", T0)
    kept = console.draft("alice", "webhook", removal.signing_bytes())
    tries = [
        {"Origin": ORIGIN},  # no token
        {"Origin": ORIGIN, "X-CSRF-Token": "guessed"},
        {"Origin": "https://evil.example.com", "X-CSRF-Token": admin.csrf},  # another origin
        {"X-CSRF-Token": admin.csrf},  # no Origin
    ]

    async def scenario(client: ConsoleClient) -> None:
        client.session.cookie_jar.update_cookies({cookie_name(ORIGIN): admin.id})
        for headers in tries:
            built = await client.post("/webhooks/removal", headers=headers, json={"webhook_id": removal.webhook_id})
            sent = {"draft": kept, "bytes": removal.signing_bytes().decode(), "assertion": "x"}
            relayed = await client.post("/webhooks/relay", headers=headers, json=sent)
            assert (built.status, relayed.status) == (403, 403), await built.text()
        # Neither built a draft nor took the one waiting; with both the token and the origin, a removal is built.
        assert list(console.drafts) == [kept] and events == []
        headers = {"Origin": ORIGIN, "X-CSRF-Token": admin.csrf}
        built = await client.post("/webhooks/removal", headers=headers, json={"webhook_id": removal.webhook_id})
        assert built.status == 200 and len(console.drafts) == 2

    asyncio.run(_run(console, scenario))
