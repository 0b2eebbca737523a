"""The console in a real browser: Debian's Chromium driven by Playwright, Chrome's virtual
authenticator (DevTools' WebAuthn domain) standing in for the admin's device, on a real stack
whose `console` process `LocalStack` started. An admin registers a passkey from the link
`warden console enrol` printed (taken once, still after the console restarts), pins it with the
command the page showed, logs in with it, sees an intent parked, headed by what it moves, with
what parked it, approves it with the passkey over the bytes shown, and the transaction is mined
on Anvil, and denies another; cancels a sign-only transaction from the transactions page (the
signer's record says `cancelled`); raises the agent's cap with the passkey on the agents page and adds
an audit webhook; a proposal that swaps the admin's key is shown flagged; a third admin comes in
and every threshold is two: a policy whose token symbol holds U+202E and U+200B is shown with
those characters marked and cosigned; approvals under quorums of two and three are signed by the
passkey and Ed25519 admins (the CLI) together and mined; the agent's policy versions are
compared, and every page fits a window 1280 pixels wide.
Screenshots go to .warden/screenshots/console-<time> in the checkout (the path is printed)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import shlex
import signal
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Locator, Page, sync_playwright

from infra.stack.local import (
    DEFAULT_PARTS,
    REPO,
    SERVICES,
    LocalStack,
    console_origin,
    local_settings,
    running_stack,
)
from infra.stack.provision import Agent, provision_agent
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from runtime.trust import LOCAL_ADMIN_ID
from schemas import topics
from schemas.actions import AuditAction
from schemas.auth import public_key_hex
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentParked, SignedTransaction
from sdk.admin import load_or_create_admin_key
from sdk.client import OUTCOME_TOPICS, Client, new_intent, wait_outcomes
from sdk.records import admins_in_force, agent_transactions, policy_in_force
from tests.support import warden

T = TypeVar("T")

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
AGENT = "console-treasury"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def aside(coroutine: Coroutine[Any, Any, T]) -> T:
    """``coroutine`` run to its end in a thread of its own: Playwright's synchronous API keeps an
    event loop running in the test's thread, where `asyncio.run` may not start another."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    settings = local_settings(tmp_path_factory.mktemp("console-home"))
    with running_stack(settings, parts=(*DEFAULT_PARTS, "console")) as stack:
        yield stack


@contextlib.contextmanager
def chromium_with_passkey() -> Iterator[Page]:
    """A Chromium page with a virtual platform authenticator that verifies its user (a passkey)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("WebAuthn.enable")
            options = {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
            cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})
            yield page
        finally:
            browser.close()


def _shoot(page: Page, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def _enrol(page: Page, stack: LocalStack, shots: Path) -> tuple[str, str]:
    """A passkey registered from the link `warden console enrol` printed: its key and the command
    shown. The link is taken once, and stays taken when the console restarts."""
    settings = stack.settings
    done = warden(settings, "console", "enrol", "--admin", "alice", "--json")
    assert done.returncode == 0, done.stderr
    link = json.loads(done.stdout)["link"]
    assert link.startswith(console_origin(settings) + "/enrol/")
    page.goto(link)
    page.click("#enrol")
    page.wait_for_selector("#enrolled:not([hidden])", timeout=30_000)
    _shoot(page, shots, "1-enrolled")
    key, command = page.inner_text("#passkey"), page.inner_text("#command")
    assert key.startswith("passkey:") and f"alice={key}" in command
    page.goto(link)  # a link is taken once
    assert "used already" in page.content()
    stack.kill("console", signal.SIGTERM)
    stack.start_service("console", SERVICES["console"])
    page.goto(link)
    assert "used already" in page.content(), page.content()
    return key, command


def _pin(settings: Settings, command: str) -> None:
    """The command the page showed, run by the admin in force: alice pinned with her passkey, and
    (its one change) the admin set's own changes needing both admins from then on."""
    argv = shlex.split(command)
    assert argv[:3] == ["warden", "admins", "propose"], command  # alice is new: any admin in force proposes
    quorum = argv.index("--quorum")
    argv[quorum + 1] = "policy=1,approval=1,keys=1,chains=1,admins=2"
    done = warden(settings, *argv[1:])
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 30
    while "alice" not in aside(admins_in_force(settings)).keys:
        assert time.monotonic() < deadline, "alice's passkey was not pinned"
        time.sleep(0.5)


def _park(settings: Settings, agent: Agent, *values: str) -> list[TransactionIntent]:
    """Intents of ``values`` (above the agent's approval threshold of 1), parked."""
    intents = [
        new_intent(agent.intent_key, agent_id=AGENT, chain="anvil", to=DEST, value=value, broadcast=True)
        for value in values
    ]
    start = aside(end_offsets(settings, (topics.INTENTS_AWAITING_APPROVAL,)))

    async def submit() -> None:
        async with Client(settings) as client:
            for intent in intents:
                await (await client.submit(intent))

    aside(submit())
    outcomes = aside(wait_outcomes(settings, intents, 60, start, final=False))
    assert all(isinstance(outcomes[i.intent_id], IntentParked) for i in intents), outcomes
    return intents


def _mined(settings: Settings, tx_hash: str) -> dict[str, Any]:
    async def receipt() -> dict[str, Any]:
        node = JsonRpc(settings.rpc_url_for("anvil"))
        try:
            deadline = time.monotonic() + 30
            while (found := await node.call("eth_getTransactionReceipt", tx_hash)) is None:
                assert time.monotonic() < deadline, f"{tx_hash} was not mined"
                await asyncio.sleep(0.5)
            assert isinstance(found, dict), found
            return found
        finally:
            await node.close()

    return aside(receipt())


def _a_sign_only_transaction_cancelled(page: Page, settings: Settings, shots: Path, agent: Agent) -> None:
    """The agent has a transaction signed sign-only (its bytes handed out, never sent); alice cancels
    it from the transactions page with her passkey: the signing page names its nonce, its agent and
    her reason, and the signer's record of it says `cancelled` at that nonce."""
    intent = new_intent(agent.intent_key, agent_id=AGENT, chain="anvil", to=DEST, value="0.25", broadcast=False)
    start = aside(end_offsets(settings, OUTCOME_TOPICS))

    async def submit() -> None:
        async with Client(settings) as client:
            await (await client.submit(intent))

    aside(submit())
    signed = aside(wait_outcomes(settings, [intent], 60, start, final=False))[intent.intent_id]
    assert isinstance(signed, SignedTransaction) and signed.status == "sign_only", signed
    form = page.locator(f"table.transactions tr:has(input[name=intent][value='{intent.intent_id}']) form.cancel")
    deadline = time.monotonic() + 30
    while True:  # the ledger's sink appends the signer's record within moments
        page.goto(console_origin(settings) + f"/transactions?agent={AGENT}")
        if form.count():
            break
        assert time.monotonic() < deadline, "no Cancel offered beside the sign-only transaction"
        time.sleep(1)
    form.locator("input[name=reason]").fill("bytes handed to the wrong desk")
    form.locator("button").click()
    sign = page.locator("div.sign.cancellation")
    sign.wait_for(timeout=30_000)
    said = page.locator("table.cancellation").inner_text()
    assert f"nonce\t{signed.nonce}" in said and f"agent\t{AGENT}" in said and "wrong desk" in said, said
    shown = json.loads(sign.locator("pre.bytes").inner_text())
    assert (shown["intent_id"], shown["intent_digest"], shown["decision"], shown["admin_key_id"]) == (
        intent.intent_id,
        signed.intent_digest,
        "deny",
        "alice",
    )
    sign.locator("button").click()
    sign.locator(".result").filter(has_text=f"intent {intent.intent_id} cancelled").wait_for(timeout=60_000)
    _shoot(page, shots, "3a-cancelled")
    found = aside(agent_transactions(settings, AGENT))
    record = next(r for r in found.transactions if r.intent_id == intent.intent_id)
    assert (record.status, record.nonce) == ("cancelled", signed.nonce), record


def test_an_admin_enrols_a_passkey_logs_in_and_approves_and_denies_parked_intents_in_chromium(
    console_stack: LocalStack,
) -> None:
    settings = console_stack.settings
    # In the checkout's .warden (ignored by git), not the test's temporary directory: pytest deletes
    # old temporary directories, and the screenshots are for people to look at after the run.
    shots = REPO / ".warden" / "screenshots" / f"console-{time.strftime('%Y%m%dT%H%M%S')}"
    shots.mkdir(parents=True)
    with chromium_with_passkey() as page:
        _key, command = _enrol(page, console_stack, shots)
        _pin(settings, command)
        agent = aside(provision_agent(settings, AGENT, tx_allowed_chains=("anvil",), approval_threshold_eth="1"))
        intent_id, denied_id = (i.intent_id for i in _park(settings, agent, "2", "3"))

        page.goto(console_origin(settings) + "/login")
        page.click("#login")
        page.wait_for_url("**/decisions", timeout=30_000)
        section = page.locator(f"section.parked[id='intent-{intent_id}']")
        assert section.locator("h3 .headline").inner_text() == f"2 ETH to {DEST}"  # what moves, in ETH
        assert "approval" in section.inner_text().lower()  # the limit that parked it
        assert "signed_tx" not in page.content()
        _shoot(page, shots, "2-parked")

        approve = section.locator("div.sign.approve")
        shown = approve.locator("pre.bytes").inner_text()
        assert json.loads(shown)["intent_id"] == intent_id and json.loads(shown)["admin_key_id"] == "alice"
        _other_bytes_are_not_relayed(page, section, shown)
        approve.locator("button").click()
        result = approve.locator(".result")
        result.filter(has_text="tx_hash").wait_for(timeout=60_000)
        _shoot(page, shots, "3-approved")
        assert "signed_tx" not in page.content()  # the outcome shown names the transaction, never its bytes
        (tx_hash,) = re.findall(r"tx_hash: (0x[0-9a-f]{64})", result.inner_text())
        assert int(_mined(settings, tx_hash)["status"], 16) == 1
        deny = page.locator(f"section.parked[id='intent-{denied_id}'] div.sign.deny")
        deny.locator("button").click()
        deny.locator(".result").filter(has_text=f"code: {Code.APPROVAL_DENIED}").wait_for(timeout=60_000)
        _a_sign_only_transaction_cancelled(page, settings, shots, agent)

        before = _a_policy_changed_with_the_passkey(page, settings, shots)
        _a_webhook_added_with_the_passkey(page, settings, shots)
        _a_key_swap_is_flagged(page, settings, shots)
        _a_proposal_cosigned(page, settings, shots)
        _unseen_characters_are_shown_and_signed_as_they_are(page, settings, shots)
        _an_approval_two_admins_sign(page, settings, shots, agent)
        _an_approval_three_admins_sign(page, settings, shots, agent)
        _the_ledger_believes_the_consoles_events(settings)
        _the_versions_compared(page, settings, shots, before)
        _pages_fit_a_1280_pixel_window(page, settings, shots)
        _plain_forms_post_with_the_consoles_origin(page, settings, shots)


# The width of the document (it scrolls sideways when wider than the window) and, in the
# transactions table, how many lines each recipient's address takes.
_WIDTH = "() => document.documentElement.scrollWidth"
_RECIPIENT_LINES = """() => [...document.querySelectorAll("table.transactions td.to code")].map(
  (code) => Math.round(code.getBoundingClientRect().height / parseFloat(getComputedStyle(code).lineHeight)))"""


def _fits(page: Page, path: str) -> None:
    """``path``'s page, in the 1280-pixel window, is no wider than it."""
    width = page.evaluate(_WIDTH)
    assert width <= 1280, f"{path} is {width} pixels wide in a window of 1280"


def _pages_fit_a_1280_pixel_window(page: Page, settings: Settings, shots: Path) -> None:
    """Every page the test went through fits a window 1280 pixels wide (no sideways scrolling), and
    a recipient's address in the transactions table takes two lines at most (it wrapped two
    characters a line)."""
    page.set_viewport_size({"width": 1280, "height": 900})
    for path in ("/transactions", "/decisions", "/agents", "/spend", "/refusals", "/ledger"):
        page.goto(console_origin(settings) + path)
        _fits(page, path)
    page.goto(console_origin(settings) + "/transactions")
    lines = page.evaluate(_RECIPIENT_LINES)
    assert lines and max(lines) <= 2, lines
    _shoot(page, shots, "8a-transactions-1280")


def _plain_forms_post_with_the_consoles_origin(page: Page, settings: Settings, shots: Path) -> None:
    """A page's plain form (the receipt checker, Log out) posts with the console's Origin, which the
    CSRF rule asks for: under `Referrer-Policy: no-referrer` Chromium sends `Origin: null` and every
    such form was refused with 403."""
    page.goto(console_origin(settings) + "/ledger/receipt")
    page.fill("textarea#receipt", "not a receipt")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("form.receipt button")
    assert posted.value.status != 403, posted.value.text()
    _shoot(page, shots, "9-receipt-checked")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("header form button")  # Log out
    assert posted.value.status == 303, posted.value.text()
    page.goto(console_origin(settings) + "/decisions")
    page.wait_for_url("**/login*", timeout=30_000)  # the session ended: back to the login page


def _a_policy_changed_with_the_passkey(page: Page, settings: Settings, shots: Path) -> int:
    """alice raises the agent's per-transaction cap on the agents page; her passkey signs the
    policy's bytes shown; the policy in force is then that one, signed by her passkey."""
    page.goto(console_origin(settings) + f"/agents/edit?agent={AGENT}")
    page.fill("input[name=max_value]", "5")
    page.click("form.policy button")
    sign = page.locator("div.sign.policy")
    shown = json.loads(sign.locator("pre.bytes").inner_text())
    assert (shown["tx_max_value_eth"], shown["admin_key_id"]) == ("5", "alice")
    before: int = shown["version"] - 1
    sign.locator("button").click()
    sign.locator(".result").filter(has_text="is in force").wait_for(timeout=60_000)
    _shoot(page, shots, "4-policy-signed")
    policy = aside(policy_in_force(settings, AGENT))
    assert policy is not None
    assert (policy.version, policy.tx_max_value_eth, policy.admin_key_id) == (before + 1, "5", "alice")
    assert policy.signature.startswith("webauthn:")  # the passkey's assertion, relayed as it was made
    return before


def _a_webhook_added_with_the_passkey(page: Page, settings: Settings, shots: Path) -> None:
    """alice adds an audit webhook with her passkey: its secret is shown once, and it is listed.
    Then she removes it with her passkey, and it is listed no more."""
    page.goto(console_origin(settings) + "/webhooks")
    page.fill("input[name=url]", "http://127.0.0.1:9/warden/" + "/".join(["a-long-path-segment"] * 6))
    page.select_option("select[name=events]", [AuditAction.INTENT_REJECTED.value])
    page.click("form.webhook button")
    page.locator("div.sign.webhook button").click()
    page.wait_for_selector("#secret:not([hidden])", timeout=30_000)
    assert page.inner_text("pre.secret").startswith("whsec_")
    (webhook_id,) = re.findall(r"webhook (wh_[0-9a-f]+) added", page.inner_text("div.sign.webhook .result"))
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(console_origin(settings) + "/webhooks")
    assert webhook_id in page.inner_text("table.webhooks")
    _fits(page, "/webhooks")  # it was wider than 1280 pixels
    _shoot(page, shots, "5-webhook-added")
    page.locator(f'tr.webhook:has-text("{webhook_id}") form.webhook-removal button').click()
    page.locator("div.sign.webhook button").click()
    page.wait_for_selector(f'div.sign.webhook .result:has-text("webhook {webhook_id} removed")', timeout=30_000)
    page.goto(console_origin(settings) + "/webhooks")
    assert webhook_id not in page.inner_text("body")


def _the_versions_compared(page: Page, settings: Settings, shots: Path, before: int) -> None:
    """The agents page lists both versions from the ledger and shows what changed between them."""
    deadline = time.monotonic() + 30
    while True:  # the ledger's sink appends the worker's record of v2 within moments
        page.goto(console_origin(settings) + f"/agents?agent={AGENT}&from={before}&to={before + 1}")
        section = page.locator(f"section.agent[id='agent-{AGENT}']")
        if section.locator("table.diff").count():
            break
        assert time.monotonic() < deadline, section.inner_text()
        time.sleep(1)
    history = section.locator("table.history").inner_text()  # newest first: the policy with SYMBOL is in force
    assert f"\nv{before + 2} (in force)\t" in history and f"\nv{before + 1}\t" in history, history
    assert "tx_max_value_eth" in section.locator("table.diff").inner_text()
    _shoot(page, shots, "8-versions")


def _a_key_swap_is_flagged(page: Page, settings: Settings, shots: Path) -> None:
    """local-admin proposes alice's key replaced by one of theirs: the page flags it."""
    rogue = public_key_hex(load_or_create_admin_key(settings.home, "rogue"))
    local = public_key_hex(load_or_create_admin_key(settings.home, LOCAL_ADMIN_ID))
    done = warden(
        settings,
        "admins",
        "propose",
        "--admins",
        f"{LOCAL_ADMIN_ID}={local},alice={rogue}",
        "--quorum",
        "policy=1,approval=1,keys=1,chains=1,admins=2",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    proposal_id = json.loads(done.stdout)["proposal_id"]
    page.goto(console_origin(settings) + "/decisions")
    section = page.locator(f"section.proposal[id='proposal-{proposal_id}']")
    assert "KEY CHANGED" in section.locator(".flag").first.inner_text()
    assert "KEY CHANGED: whoever holds the new key signs as alice" in section.locator("pre.change").inner_text()
    assert "Waits for alice's own signature" in section.inner_text()
    _shoot(page, shots, "6-key-swap-flagged")


# Signs the deny bytes with the passkey, then asks the console to relay the approve bytes with
# that assertion: what a page (or anything between it and the console) that swaps the bytes after
# the admin was shown them would do.
_SWAP = """async ([shown, signed]) => {
  const me = document.getElementById("me");
  const challenge = await crypto.subtle.digest("SHA-256", shownBytes(signed));
  const credential = await navigator.credentials.get({publicKey: {challenge, rpId: me.dataset.rp,
    allowCredentials: [{type: "public-key", id: fromB64url(me.dataset.credential)}], userVerification: "required"}});
  const response = await fetch("/decisions/relay", {method: "POST", headers: {"Content-Type": "application/json",
    "X-CSRF-Token": csrf()}, body: JSON.stringify({bytes: shown, assertion: assertionText(credential)})});
  return [response.status, await response.text()];
}"""


def _other_bytes_are_not_relayed(page: Page, section: Locator, shown: str) -> None:
    """An assertion over other bytes (the denial's) sent with the approval's: the console relays nothing."""
    denial = section.locator("div.sign.deny pre.bytes").inner_text()
    status, text = page.evaluate(_SWAP, [shown, denial])
    assert status == 403 and "does not verify" in text, (status, text)


def _a_proposal_cosigned(page: Page, settings: Settings, shots: Path) -> None:
    """local-admin proposes carol as a third admin, and every threshold at two; alice cosigns it
    in the console: in force."""
    carol = public_key_hex(load_or_create_admin_key(settings.home, "carol"))
    keys = aside(admins_in_force(settings)).keys
    pairs = ",".join(f"{admin}={key}" for admin, key in {**keys, "carol": carol}.items())
    section = _cosigned(page, settings, pairs, "2")
    assert not section.locator(".flag").count()  # adds an admin, changes nobody's key
    _shoot(page, shots, "7-cosigned")
    deadline = time.monotonic() + 30
    while "carol" not in aside(admins_in_force(settings)).keys:
        assert time.monotonic() < deadline, "the cosigned admin set did not come into force"
        time.sleep(0.5)


# A token symbol an admin chose: a right-to-left override and a zero-width space, which draw
# nothing themselves and (the override) reverse how what follows is drawn.
SYMBOL = "US\u202eDC\u200b"


def _unseen_characters_are_shown_and_signed_as_they_are(page: Page, settings: Settings, shots: Path) -> None:
    """local-admin proposes the agent's next policy, limiting a token whose symbol holds U+202E
    and U+200B (policies need two admins now). On alice's decisions page the change shows them as
    JSON escapes and the exact bytes as marked boxes naming them; her passkey signs the bytes
    themselves (the page's script reads each box back as its character), and the policy is in force
    with the symbol as it was written."""
    token = "0x" + "7e" * 20
    fields = settings.home / "unseen-fields.json"
    fields.write_text(
        json.dumps({"asset_limits": [{"chain": "anvil", "token": token, "symbol": SYMBOL, "decimals": 6}]})
    )
    proposed = _cli(settings, LOCAL_ADMIN_ID, "agents", "update", "--agent", AGENT, "--fields", str(fields))
    _decisions(page, settings)
    section = page.locator(f"section.proposal[id='proposal-{proposed['proposal_id']}']")
    # The change shows the symbol as JSON does (escaped); the bytes hold the characters themselves.
    assert '"symbol":"US\\u202eDC\\u200b"' in section.locator("pre.change").inner_text()
    marked = section.locator("div.sign.cosign pre.bytes span.cc")
    assert [marked.nth(n).inner_text() for n in range(marked.count())] == ["U+202E", "U+200B"]
    assert "\u202e" not in section.inner_text() and "\u200b" not in section.inner_text()
    _shoot(page, shots, "7c-unseen-characters")
    section.locator("button.sign-button").click()
    section.locator(".result").filter(has_text="quorum reached").wait_for(timeout=30_000)
    deadline = time.monotonic() + 30
    while (policy := aside(policy_in_force(settings, AGENT))) is None or not policy.asset_limits:
        assert time.monotonic() < deadline, "the cosigned policy did not come into force"
        time.sleep(0.5)
    assert policy.asset_limits[0].symbol == SYMBOL


def _cosigned(page: Page, settings: Settings, pairs: str, quorum: str) -> Locator:
    """The admin set of ``pairs`` and ``quorum``, proposed by local-admin with the CLI and cosigned
    by alice in the console (two admins sign an admin set): its section on the decisions page."""
    proposed = _cli(settings, LOCAL_ADMIN_ID, "admins", "propose", "--admins", pairs, "--quorum", quorum)
    proposal_id = proposed["proposal_id"]
    page.goto(console_origin(settings) + "/decisions")
    section = page.locator(f"section.proposal[id='proposal-{proposal_id}']")
    section.locator("button.sign-button").click()
    section.locator(".result").filter(has_text="quorum reached").wait_for(timeout=30_000)
    return section


def _cli(settings: Settings, admin_id: str, *args: str) -> dict[str, Any]:
    """`warden ARGS --json` as admin ``admin_id`` (an Ed25519 key under the home): what it printed."""
    done = warden(dataclasses.replace(settings, admin_id=admin_id), *args, "--json")
    assert done.returncode == 0, done.stderr
    said: dict[str, Any] = json.loads(done.stdout)
    return said


def _decisions(page: Page, settings: Settings) -> None:
    """The decisions page, drawn (200) for the admin logged in."""
    response = page.goto(console_origin(settings) + "/decisions")
    assert response is not None and response.status == 200, response and response.text()


def _an_approval_two_admins_sign(page: Page, settings: Settings, shots: Path, agent: Agent) -> None:
    """Approvals need two admins (every threshold is two since carol came in): local-admin, an
    Ed25519 admin, proposes the approval of a parked intent with the CLI; alice's decisions page
    is drawn, the intent pointing at that proposal and offering no second approval, and alice
    cosigns the proposal with her passkey: it is mined."""
    (intent,) = _park(settings, agent, "1.5")
    proposed = _cli(settings, LOCAL_ADMIN_ID, "approvals", "approve", intent.intent_id)
    assert proposed["needed"] == 2, proposed
    _decisions(page, settings)
    parked = page.locator(f"section.parked[id='intent-{intent.intent_id}']")
    assert f"Approval proposed by {LOCAL_ADMIN_ID}: 1 of 2 signatures" in parked.inner_text()
    assert not parked.locator("div.sign.approve").count() and parked.locator("div.sign.deny").count()
    section = page.locator(f"section.proposal[id='proposal-{proposed['proposal_id']}']")
    assert f"approve intent {intent.intent_id} of {AGENT}" in section.locator("pre.change").inner_text()
    section.locator("button.sign-button").click()
    section.locator(".result").filter(has_text="quorum reached").wait_for(timeout=30_000)
    _shoot(page, shots, "7a-approved-by-two")
    _is_mined(settings, intent)


def _an_approval_three_admins_sign(page: Page, settings: Settings, shots: Path, agent: Agent) -> None:
    """Approvals need three admins (local-admin proposes it, alice cosigns it in the console; the
    set's own threshold is at least every other's): alice approves a parked intent with her
    passkey, which proposes it; carol signs it with the CLI: two of three, nothing published, as
    alice's page says; local-admin's signature completes it, and it is mined."""
    keys = aside(admins_in_force(settings)).keys
    pairs = ",".join(f"{a}={k}" for a, k in keys.items())
    _cosigned(page, settings, pairs, "policy=2,approval=3,keys=2,chains=2,admins=3")
    deadline = time.monotonic() + 30
    while aside(admins_in_force(settings)).threshold("approval") != 3:
        assert time.monotonic() < deadline, "the quorum of three for approvals did not come into force"
        time.sleep(0.5)
    (intent,) = _park(settings, agent, "1.25")
    _decisions(page, settings)
    approve = page.locator(f"section.parked[id='intent-{intent.intent_id}'] div.sign.approve")
    approve.locator("button").click()
    approve.locator(".result").filter(has_text="approval proposed").wait_for(timeout=30_000)
    _decisions(page, settings)
    parked = page.locator(f"section.parked[id='intent-{intent.intent_id}']")
    assert "Approval proposed by alice: 1 of 3 signatures" in parked.inner_text()
    # A proposal's id is the digest of the bytes its admins sign.
    digest = str(parked.locator("p.proposed a").get_attribute("href")).removeprefix("#proposal-")
    signed = _cli(settings, "carol", "approvals", "sign", digest[:16], "--digest", digest)
    assert not signed["published"] and sorted(signed["signed_by"]) == ["alice", "carol"], signed
    _decisions(page, settings)
    section = page.locator(f"section.proposal[id='proposal-{digest}']")
    assert "2 of 3 signatures" in section.inner_text() and "You have signed this proposal" in section.inner_text()
    _shoot(page, shots, "7b-two-of-three")
    done = _cli(settings, LOCAL_ADMIN_ID, "approvals", "sign", digest[:16], "--digest", digest)
    assert done["published"], done
    _is_mined(settings, intent)


def _is_mined(settings: Settings, intent: TransactionIntent) -> None:
    outcome = aside(wait_outcomes(settings, [intent], 120, final=True))[intent.intent_id]
    assert isinstance(outcome, SignedTransaction) and outcome.status == "mined", outcome


def _the_ledger_believes_the_consoles_events(settings: Settings) -> None:
    """Each console action is a row of the ledger, believed (signed with the console's pinned key)."""
    wanted = {
        AuditAction.CONSOLE_PASSKEY_REGISTERED,
        AuditAction.CONSOLE_LOGGED_IN,
        AuditAction.CONSOLE_RELAY_REFUSED,
        AuditAction.CONSOLE_DECISION_RELAYED,
        AuditAction.CONSOLE_SIGNATURE_RELAYED,
        AuditAction.CONSOLE_POLICY_RELAYED,
        AuditAction.CONSOLE_WEBHOOK_RELAYED,
        AuditAction.CONSOLE_CANCELLATION_RELAYED,
    }
    sql = "SELECT DISTINCT action FROM audit_log WHERE actor = 'service:console'"
    deadline = time.monotonic() + 60
    while True:
        done = warden(settings, "audit", "query", sql, "--format", "JSONEachRow")
        found = {json.loads(line)["action"] for line in done.stdout.splitlines() if line.strip()}
        if wanted <= found:
            return
        assert time.monotonic() < deadline, (found, done.stderr)
        time.sleep(1)
