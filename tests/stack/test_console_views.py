"""The analysts' and auditors' pages on the real stack, served in a bare aiohttp app (no console
server: its session check is not theirs): an agent's intents mined and final, refused at the
allowlist and parked for an admin each show where they stand; the refusal's code is charted per
day; the agent's spend is charted against its daily limit; the ledger verifies; the mined
intent's receipt holds and a tampered copy fails its inclusion check."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.console import analyst, auditor
from gateway.console.data import LedgerSource, Transaction
from infra.stack.local import LocalStack, free_port
from ledger.receipt import Receipt
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.outcomes import IntentRejected
from schemas.stages import Stage
from sdk.client import Client, new_intent, wait_outcomes
from sdk.records import ReceiptUnavailable, outcome_receipt
from tests.support import make_agent

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
STRANGER = "0x000000000000000000000000000000000000dEaD"
T = TypeVar("T")
# Above 0.5 an intent waits for an admin; at most 5 a day.
POLICY: dict[str, Any] = {
    "tx_to_allowlist": (DEST,),
    "tx_max_value_eth": "1",
    "tx_daily_limit_eth": "5",
    "approval_threshold_eth": "0.5",
}


def _row(html: str, intent_id: str) -> str:
    """The transactions table's row of ``intent_id``."""
    rows = [row for row in html.split("<tr>") if f"<code>{intent_id}</code>" in row]
    assert len(rows) == 1, html
    return rows[0]


async def _until(what: Callable[[], Awaitable[T]], ready: Callable[[T], bool], timeout_s: float = 90) -> T:
    """``await what()`` again until ``ready(answer)``, for up to ``timeout_s``: the ledger appends
    and checkpoints a moment after the services speak."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer: T | None
        try:
            answer = await what()
        except ReceiptUnavailable:
            answer = None
        if answer is not None and ready(answer):
            return answer
        assert time.monotonic() < deadline, answer
        await asyncio.sleep(1)


def _tampered(receipt: str) -> str:
    """The receipt with its audit row saying the transaction failed: the row no longer hashes to its leaf."""
    head, rest = receipt.split("\n", 1)
    extra, rest = rest.split("\n", 1)
    row = orjson.loads(base64.b64decode(extra.removeprefix("extra ")))
    row["action"] = AuditAction.TX_FAILED
    return f"{head}\nextra {base64.b64encode(orjson.dumps(row)).decode()}\n{rest}"


async def _scenario(settings: Settings, agent: str, key: Ed25519PrivateKey) -> tuple[dict[str, str], str]:
    """Three intents: one mined and final, one refused at the allowlist, one parked above the
    approval threshold; once the ledger holds them, the mined one's receipt (of its tx.final)."""
    mined = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.01", broadcast=True)
    refused = new_intent(key, agent_id=agent, chain="anvil", to=STRANGER, value="0.01")
    parked = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.6")
    async with Client(settings) as client:
        for intent in (mined, refused, parked):
            await client.submit(intent)
    outcomes = await wait_outcomes(settings, [mined, refused], 90, until_final_block=True)
    rejection = outcomes[refused.intent_id]
    assert isinstance(rejection, IntentRejected) and rejection.stage == Stage.ALLOWLIST, rejection
    receipt = await _until(
        lambda: outcome_receipt(settings, mined.intent_id, agent, mined.digest()),
        lambda text: Receipt.parse(text).event["action"] == AuditAction.TX_FINAL,
    )
    ids = {
        "mined": mined.intent_id,
        "digest": mined.digest(),
        "refused": refused.intent_id,
        "parked": parked.intent_id,
        "code": rejection.code,
    }
    return ids, receipt


async def _pages(source: LedgerSource, agent: str, receipt: str, expected: dict[str, str]) -> dict[str, str]:
    app = web.Application()
    analyst.add_routes(app, source)
    auditor.add_routes(app, source)
    pages = {}
    async with TestClient(TestServer(app, host="127.0.0.1", port=free_port())) as client:
        for name, path in (
            ("transactions", f"/transactions?agent={agent}"),
            ("spend", f"/spend?agent={agent}"),
            ("refusals", "/refusals"),
            ("ledger", "/ledger"),
            ("form", "/ledger/receipt"),
        ):
            response = await client.get(path)
            assert response.status == 200, (path, await response.text())
            pages[name] = await response.text()
        for name, text in (("receipt", receipt), ("tampered", _tampered(receipt))):
            response = await client.post("/ledger/receipt", data={"receipt": text, "csrf": "", **expected})
            assert response.status == 200, await response.text()
            pages[name] = await response.text()
    return pages


def test_the_pages_show_what_the_ledger_holds(stack: LocalStack, run: Callable[..., Any]) -> None:
    settings = stack.settings
    agent = f"agent-console-{os.urandom(3).hex()}"
    key, _, _ = run(make_agent(settings, agent, **POLICY))
    ids, receipt = run(_scenario(settings, agent, key))
    source = LedgerSource.from_settings(settings)

    def ledger_has_all(found: list[Transaction]) -> bool:
        return {t.intent_id: t.status for t in found} == {
            ids["mined"]: "mined",
            ids["refused"]: "refused",
            ids["parked"]: "parked",
        } and all(t.final for t in found if t.intent_id == ids["mined"])

    run(_until(lambda: source.transactions(agent), ledger_has_all))
    # The receipt checked as the mined intent's: its id, agent and digest named in the form.
    expected = {"intent_id": ids["mined"], "agent_id": agent, "intent_digest": ids["digest"]}
    pages = run(_pages(source, agent, receipt, expected))

    txs = pages["transactions"]
    assert 'data-status="mined">mined, final<' in _row(txs, ids["mined"])
    refused = _row(txs, ids["refused"])
    assert 'data-status="refused"' in refused and f"<code>{ids['code']}</code>" in refused
    assert f"<td>{Stage.ALLOWLIST}</td>" in refused
    assert 'data-status="parked"' in _row(txs, ids["parked"])
    assert all("signed_tx" not in html for html in pages.values())

    assert ids["code"] in pages["refusals"] and '<svg class="chart"' in pages["refusals"]
    # The agent's native spend today: one bar (the parked intent is not signed), under the limit's line.
    spend = pages["spend"]
    assert re.search(rf"<h2>{agent} <small>policy v\d+</small></h2>", spend), spend  # its policy in force, read
    native = spend.split("<h3>native")[1].split("<h3>")[0]
    assert len(re.findall(r'<rect class="bar s0"', native)) == 1 and '<line class="limit"' in native
    assert "daily limit 5000000000000000000 wei (5 native)" in native

    assert 'class="verdict ok" data-ok="true">Verified' in pages["ledger"], pages["ledger"]
    assert '<input type="hidden" name="csrf"' in pages["form"]
    assert 'data-ok="true">The receipt holds' in pages["receipt"] and 'data-ok="false"' not in pages["receipt"]
    assert f"its event is about intent {ids['mined']} of agent {agent}" in pages["receipt"]
    tampered = pages["tampered"]
    assert 'data-ok="false">The receipt does not hold' in tampered
    assert re.search(r'data-ok="false">the inclusion proof leads [^<]*: FAILS', tampered), tampered
