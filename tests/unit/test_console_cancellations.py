"""The console's cancellation of a sign-only transaction, shaped without processes: the transactions
page offers it only beside a sign-only EVM or Bitcoin transaction; the denial is built only for a
transaction the signer's records say is that agent's and still sign-only, bound to its digest;
its signing page says which transaction, which agent and why; and the relay refuses bytes other
than those built, another admin's draft, a stale denial, a request without the session's token,
and a transaction that is no longer sign-only under the same digest, recording each refusal. The
signer's records are built here as the signer writes them; the app runs in process (aiohttp's
test server); its broker is absent (port 9), so nothing is published."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from gateway.console.analyst import transactions_table
from gateway.console.cancellations import (
    KIND,
    REASON_MAX,
    CancelInvalid,
    intro,
    offered,
    read_form,
    still_open,
    unsigned_denial,
)
from gateway.console.data import Transaction
from gateway.console.relay import RelayRefused
from gateway.console.security import cookie_name
from gateway.console.server import build_app
from gateway.console.state import Console
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.emit import Emit
from schemas.outcomes import SignedBitcoinTransaction, SignedSolanaTransaction, SignedTransaction
from sdk.cancellation import cancellable, cancellation
from sdk.records import AgentRecords
from tests.passkey_support import ORIGIN, PARTY

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
AGENT = "treasury"
SENDER = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
DIGEST = "ab" * 32
ConsoleClient = TestClient[web.Request, web.Application]


def _evm(intent_id: str, status: str = "sign_only", nonce: int = 7, digest: str = DIGEST) -> SignedTransaction:
    return SignedTransaction(
        intent_id=intent_id,
        agent_id=AGENT,
        intent_digest=digest,
        chain="anvil",
        chain_id=31337,
        signed_tx="0x02",
        tx_hash="0x" + f"{nonce:064x}",
        **{"from": SENDER},
        to=SENDER,
        nonce=nonce,
        value_wei=10**17,
        tx_type=2,
        status=status,
        tee="none",
        signed_at=T0,
        max_spend_wei=10**17,
    )


def _btc(intent_id: str, status: str = "sign_only") -> SignedBitcoinTransaction:
    return SignedBitcoinTransaction(
        intent_id=intent_id,
        agent_id=AGENT,
        intent_digest=DIGEST,
        chain="bitcoin-regtest",
        public_key="02" + "11" * 32,
        txid="cd" * 32,
        signed_tx="00",
        inputs=("ef" * 32 + ":1",),
        fee_sats=200,
        vsize=141,
        status=status,
        tee="none",
        signed_at=T0,
    )


def _sol(intent_id: str) -> SignedSolanaTransaction:
    return SignedSolanaTransaction.model_validate(
        {
            "intent_id": intent_id,
            "agent_id": AGENT,
            "intent_digest": DIGEST,
            "chain": "solana-local",
            "from": "11111111111111111111111111111111",
            "signature": "1" * 64,
            "signed_tx": "AA==",
            "recent_blockhash": "1" * 32,
            "status": "sign_only",
            "tee": "none",
            "signed_at": T0.isoformat(),
        }
    )


def _records() -> AgentRecords:
    return AgentRecords(
        [_evm("evm-open"), _evm("evm-mined", "mined", 6)],
        [],
        0,
        bitcoin_transactions=[_btc("btc-open"), _btc("btc-cancelled", "cancelled")],
    )


def test_only_that_agents_sign_only_evm_or_bitcoin_transaction_can_be_cancelled() -> None:
    found = _records()
    assert cancellable(found, AGENT, "evm-open").nonce == 7  # type: ignore[union-attr]  # an EVM record
    assert cancellable(found, AGENT, "0x" + f"{7:064x}").intent_id == "evm-open"  # by its hash too
    assert cancellable(found, AGENT, "btc-open").intent_id == "btc-open"
    assert cancellable(found, AGENT, "cd" * 32).intent_id == "btc-open"  # by its txid
    for wanted, why in [
        ("evm-mined", "intent evm-mined is mined: only a sign-only transaction"),
        ("btc-cancelled", "intent btc-cancelled is cancelled"),
        ("another-agents-intent", f"no transaction of agent {AGENT!r} with intent id or hash"),
    ]:
        with pytest.raises(LookupError, match=why):
            cancellable(found, AGENT, wanted)
    denial = cancellation(_btc("btc-open"), "alice", "wrong desk", T0)
    assert (denial.intent_id, denial.agent_id, denial.intent_digest, denial.decision, denial.admin_key_id) == (
        "btc-open",
        AGENT,
        DIGEST,
        "deny",
        "alice",
    )
    assert (denial.reason, denial.signature) == ("wrong desk", "")
    with pytest.raises(ValidationError, match="reason"):
        cancellation(_evm("evm-open"), "alice", "x" * (REASON_MAX + 1), T0)


def _row(intent_id: str, status: str, chain: str) -> Transaction:
    return Transaction(AGENT, intent_id, DIGEST, status, False, "", "", "", chain, SENDER, 1, "0x01", None, T0, T0)


def test_the_transactions_page_offers_cancel_beside_each_sign_only_evm_or_bitcoin_transaction_only() -> None:
    rows = [
        _row("evm-open", "sign_only", "anvil"),
        _row("btc-open", "sign_only", "bitcoin-regtest"),
        _row("sol-open", "sign_only", "solana-local"),  # Solana's end with their blockhash
        _row("evm-mined", "mined", "anvil"),
        _row("unknown-net", "sign_only", "no-such-chain"),
    ]
    assert [offered(r) for r in rows] == [True, True, False, False, False]
    table = transactions_table(rows, "the-token")
    assert table.count('<form class="cancel draft"') == 2
    assert 'name="intent" value="evm-open"' in table and 'name="intent" value="btc-open"' in table
    assert table.count('name="csrf" value="the-token"') == 2
    assert "form" not in transactions_table(rows)  # a page drawn without a session's token offers nothing


def test_the_form_is_read_field_by_field_and_the_signing_page_says_what_the_cancellation_does() -> None:
    assert read_form({"agent": AGENT, "intent": "evm-open"}) == (AGENT, "evm-open", "")
    wrong: list[tuple[dict[str, object], str]] = [
        ({"intent": "evm-open"}, "agent: name the transaction's agent and intent id"),
        ({"agent": AGENT, "intent": ""}, "intent: name"),
        ({"agent": AGENT, "intent": ["a"]}, "intent: must be text, got list"),
        ({"agent": AGENT, "intent": "i", "reason": "x" * (REASON_MAX + 1)}, f"reason: at most {REASON_MAX}"),
    ]
    for sent, why in wrong:
        with pytest.raises(CancelInvalid, match=why):
            read_form(sent)
    shown = intro(_evm("evm-open"), "handed to the wrong desk \u202e")
    for said in (AGENT, "evm-open", "<th>nonce</th><td>7</td>", "0x" + f"{7:064x}", DIGEST, "wrong desk"):
        assert said in shown, said
    assert "\u202e" not in shown and "U+202E" in shown  # a reason's invisible characters shown, not obeyed
    assert "0-value transfer" in shown and "at nonce 7" in shown
    shown = intro(_btc("btc-open"), "")
    assert "cd" * 32 in shown and "ef" * 32 + ":1" in shown and "(none given)" in shown
    assert "back to the agent" in shown


def test_the_relay_takes_only_a_fresh_unsigned_denial_of_the_admin_for_a_transaction_still_sign_only() -> None:
    built = cancellation(_evm("evm-open"), "alice", "", T0)
    message = built.signing_bytes()
    age = timedelta(seconds=600)
    assert unsigned_denial(message, "alice", age, T0 + timedelta(seconds=1)) == built
    approve = built.model_copy(update={"decision": "approve"}).signing_bytes()
    signed = orjson.dumps({**orjson.loads(message), "signature": "x"}, option=orjson.OPT_SORT_KEYS)
    for shown, admin, now, why in [
        (message, "bob", T0, "names 'alice', not 'bob'"),
        (approve, "alice", T0, "not an unsigned denial"),
        (signed, "alice", T0, "not an unsigned denial"),
        (b"{}", "alice", T0, "not a cancellation"),
        (message, "alice", T0 + age, "takes a denial only within 600 s"),
    ]:
        with pytest.raises(RelayRefused, match=why):
            unsigned_denial(shown, admin, age, now)
    assert still_open(built, _records()).intent_id == "evm-open"
    for found, why in [
        (AgentRecords([_evm("evm-open", "cancelled")], [], 0), "is cancelled: only a sign-only"),
        (AgentRecords([_evm("evm-open", digest="cd" * 32)], [], 0), "now signed under digest cdcd"),
        (AgentRecords([], [], 0, [_sol("evm-open")]), "no transaction of agent"),
    ]:
        with pytest.raises(RelayRefused, match=why):
            still_open(built, found)


def _console(tmp_path: Path, events: list[Emit]) -> Console:
    async def sink(event: Emit) -> None:
        events.append(event)

    # Port 9 (discard): no broker answers there, and no stack picks a port below 10000.
    return Console(Settings(home=tmp_path, broker="127.0.0.1:9"), PARTY, sink, now=lambda: T0)


async def _run(console: Console, scenario: Callable[[ConsoleClient], Awaitable[None]]) -> None:
    async with TestClient(TestServer(build_app(console))) as client:
        await scenario(client)


def test_a_cancellation_is_relayed_only_with_the_token_for_its_admin_over_the_bytes_built(tmp_path: Path) -> None:
    events: list[Emit] = []
    console = _console(tmp_path, events)
    alice = console.sessions.log_in(console.sessions.new(T0), "alice", T0)
    built = cancellation(_evm("evm-open"), "alice", "wrong desk", T0).signing_bytes()

    async def scenario(client: ConsoleClient) -> None:
        client.session.cookie_jar.update_cookies({cookie_name(ORIGIN): alice.id})
        headers = {"Origin": ORIGIN, "X-CSRF-Token": alice.csrf}
        kept = console.draft("alice", KIND, built)
        for without in (
            {"Origin": ORIGIN},
            {"Origin": ORIGIN, "X-CSRF-Token": "guessed"},
            {"X-CSRF-Token": alice.csrf},
        ):
            sent = {"draft": kept, "bytes": built.decode(), "assertion": "x"}
            relayed = await client.post("/transactions/cancel/relay", headers=without, json=sent)
            drafted = await client.post("/transactions/cancel", headers=without, json={"agent": AGENT, "intent": "i"})
            assert (relayed.status, drafted.status) == (403, 403)
        assert list(console.drafts) == [kept] and events == []  # nothing built, nothing taken
        # The bytes altered between the page that showed them and the relay: refused, and recorded.
        altered = built.replace(b"wrong desk", b"right desk")
        sent = {"draft": kept, "bytes": altered.decode(), "assertion": "x"}
        answer = await client.post("/transactions/cancel/relay", headers=headers, json=sent)
        assert answer.status == 403 and "not the cancellation the console built" in (await answer.json())["error"]
        # Bob's draft, relayed by alice: refused (and never shown to her).
        bobs = console.draft("bob", KIND, cancellation(_evm("evm-open"), "bob", "", T0).signing_bytes())
        assert (await client.get(f"/transactions/cancel/sign/{bobs}")).status == 404
        sent = {"draft": bobs, "bytes": console.drafts[bobs].message.decode(), "assertion": "x"}
        answer = await client.post("/transactions/cancel/relay", headers=headers, json=sent)
        assert answer.status == 403 and "built for bob, not alice" in (await answer.json())["error"]
        # A policy's draft is no cancellation: its id opens no cancellation's page.
        policy = console.draft("alice", "policy", b"{}")
        assert (await client.get(f"/transactions/cancel/sign/{policy}")).status == 404
        # A form naming nothing is answered with the field; one naming a transaction reads the
        # signer's records from the broker, absent here: said, not a 500.
        answer = await client.post("/transactions/cancel", headers=headers, json={"agent": AGENT})
        assert answer.status == 400 and (await answer.json())["error"].startswith("intent: name")
        answer = await client.post("/transactions/cancel", headers=headers, json={"agent": AGENT, "intent": "evm-open"})
        assert answer.status == 503 and "does not answer" in await answer.text()
        assert list(console.drafts) == [policy]  # none built from it (the others were taken, once each)

    asyncio.run(_run(console, scenario))
    refused = [e for e in events if AuditAction.CONSOLE_RELAY_REFUSED.value.encode() in e.value]
    assert len(refused) == 2 and len(events) == 2
