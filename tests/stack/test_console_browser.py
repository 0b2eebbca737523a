"""The console in a real browser: Debian's Chromium driven by Playwright, Chrome's virtual
authenticator (DevTools' WebAuthn domain) standing in for the admin's device, on a real stack
whose `console` process `LocalStack` started. An admin registers a passkey from the link
`warden console enrol` printed, pins it with the command the page showed, logs in with it, sees an
intent parked with what parked it, approves it with the passkey over the bytes shown, and the
transaction is mined on Anvil; then a proposal that swaps the admin's key is shown flagged.
Screenshots go to the test's temporary directory (the path is printed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shlex
import time

import pytest
from playwright.sync_api import Page, sync_playwright

from infra.stack.local import DEFAULT_PARTS, console_origin, local_settings, running_stack
from infra.stack.provision import provision_agent
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from runtime.trust import LOCAL_ADMIN_ID
from schemas import topics
from schemas.admins import valid_admin_keys
from schemas.auth import public_key_hex
from schemas.outcomes import IntentParked
from sdk.admin import load_or_create_admin_key
from sdk.client import Client, new_intent, wait_outcomes
from sdk.records import admins_in_force
from tests.support import warden

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


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory):
    settings = local_settings(tmp_path_factory.mktemp("console-home"))
    with running_stack(settings, parts=(*DEFAULT_PARTS, "console")) as stack:
        yield stack


@contextlib.contextmanager
def chromium_with_passkey():
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


def _shoot(page: Page, folder, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def _enrol(page: Page, settings, shots) -> tuple[str, str]:
    """A passkey registered from the link `warden console enrol` printed: its key and the command shown."""
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
    return key, command


def _pin(settings, command: str, run) -> None:
    """The command the page showed, run by the admin in force: alice pinned with her passkey, and
    the admin set's own changes needing both admins from then on."""
    argv = shlex.split(command)
    assert argv[1:4] == ["warden", "admins", "propose"], command
    quorum = argv.index("--quorum")
    argv[quorum + 1] = "policy=1,approval=1,keys=1,chains=1,admins=2"
    done = warden(settings, *argv[2:])
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 30
    while "alice" not in run(admins_in_force(settings)).keys:
        assert time.monotonic() < deadline, "alice's passkey was not pinned"
        time.sleep(0.5)


def _park(settings, run) -> str:
    """An intent above the agent's approval threshold, parked: its id."""
    agent = run(provision_agent(settings, AGENT, tx_allowed_chains=("anvil",), approval_threshold_eth="1"))
    intent = new_intent(agent.intent_key, agent_id=AGENT, chain="anvil", to=DEST, value="2", broadcast=True)
    start = run(end_offsets(settings, (topics.INTENTS_AWAITING_APPROVAL,)))

    async def submit():
        async with Client(settings) as client:
            await (await client.submit(intent))

    run(submit())
    outcome = run(wait_outcomes(settings, [intent], 60, start, final=False))[intent.intent_id]
    assert isinstance(outcome, IntentParked)
    return intent.intent_id


def _mined(settings, tx_hash: str) -> dict:
    async def receipt():
        node = JsonRpc(settings.rpc_url_for("anvil"))
        try:
            deadline = time.monotonic() + 30
            while (found := await node.call("eth_getTransactionReceipt", tx_hash)) is None:
                assert time.monotonic() < deadline, f"{tx_hash} was not mined"
                await asyncio.sleep(0.5)
            return found
        finally:
            await node.close()

    return asyncio.run(receipt())


def test_an_admin_enrols_a_passkey_logs_in_and_approves_a_parked_intent_in_chromium(console_stack, run, tmp_path):
    settings = console_stack.settings
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with chromium_with_passkey() as page:
        key, command = _enrol(page, settings, shots)
        try:
            valid_admin_keys({"alice": key})
        except ValueError:
            pytest.skip("an admin set cannot pin a passkey yet (schemas.admins, branch passkey-admins)")
        _pin(settings, command, run)
        intent_id = _park(settings, run)

        page.goto(console_origin(settings) + "/login")
        page.click("#login")
        page.wait_for_url("**/decisions", timeout=30_000)
        section = page.locator(f"section.parked[id='intent-{intent_id}']")
        assert "approval" in section.inner_text().lower()  # the limit that parked it
        assert "signed_tx" not in page.content()
        _shoot(page, shots, "2-parked")

        approve = section.locator("div.sign.approve")
        shown = approve.locator("pre.bytes").inner_text()
        assert json.loads(shown)["intent_id"] == intent_id and json.loads(shown)["admin_key_id"] == "alice"
        approve.locator("button").click()
        result = approve.locator(".result")
        result.filter(has_text="tx_hash").wait_for(timeout=60_000)
        _shoot(page, shots, "3-approved")
        (tx_hash,) = re.findall(r"tx_hash: (0x[0-9a-f]{64})", result.inner_text())
        assert int(_mined(settings, tx_hash)["status"], 16) == 1

        _a_key_swap_is_flagged(page, settings, run, shots)


def _a_key_swap_is_flagged(page: Page, settings, run, shots) -> None:
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
    _shoot(page, shots, "4-key-swap-flagged")
