"""A Bitcoin payment's spend stays counted until its bytes can no longer spend, and no two intents
ever claim one transaction, on the stack's btcd: the whole stack driven with the plain commands
(two payments written at once, a coin an open payment holds, `warden txs cancel`); an in-process
worker engine and signer (`tests.bitcoin_signer_support`) with the clock as an argument (a day
later); and a second btcd started as `warden up` starts one (a new regtest chain, as after a
durable restart)."""

from __future__ import annotations

import asyncio
import base64
import subprocess
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from btc import wallet
from infra.stack.local import LocalStack, local_settings
from runtime import bitcoin
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc, RpcError
from schemas.actions import AuditAction
from schemas.codes import Code
from schemas.outcomes import IntentRejected, SignedBitcoinTransaction
from schemas.stages import Stage
from sdk.client import load_or_create_agent_key, new_intent
from sdk.outcomes import OUTCOME_TOPICS, wait_outcomes
from sdk.records import policy_in_force
from streams.engine import Engine
from tests.bitcoin_signer_support import (
    CHAIN,
    BtcHarness,
    PlainAgent,
    at_once,
    cli_json,
    embit_psbt,
    plain_agent,
    shown,
    with_harness,
)
from tests.support import direct_approvals, submitted, warden

Run = Callable[[Coroutine[Any, Any, Any]], Any]
Decided = tuple[str, str]

BTC = 10**8


@pytest.fixture(scope="module")
def new_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A btcd of its own, started as `warden up` starts the stack's (a regtest chain new at each
    start, its first 101 blocks mined to another funder): its RPC URL."""
    settings = local_settings(tmp_path_factory.mktemp("new-chain"))
    other = LocalStack(settings, block_time_s=None)
    other.start(parts=("bitcoin",))
    try:
        yield settings.rpc_url_for(CHAIN)
    finally:
        other.stop()


def test_a_node_on_a_new_chain_leaves_a_payment_open_and_counted_not_conflicted(
    stack: LocalStack, new_chain: str, tmp_path: Path
) -> None:
    """The payment's node restarted on a new chain (or is still syncing): it holds neither the
    payment nor the coin it spends, and `gettxout` answers null for that coin. That is no spend:
    the payment is ``unknown``, not final, and its spend stays counted; on the node that holds the
    coin again it is sent and followed to final."""

    async def scenario(h: BtcHarness) -> tuple[SignedBitcoinTransaction, int, SignedBitcoinTransaction]:
        now = utcnow()
        coins = await h.fund(BTC // 100)
        signed, to_send = await h.pay(now, h.psbt(coins, BTC // 1000), broadcast=True)
        assert isinstance(signed, SignedBitcoinTransaction) and to_send is not None, signed
        tracking = h.signer.bitcoin_tracking
        elsewhere = JsonRpc(new_chain, timeout_s=30)
        try:
            tracking.node_for = lambda chain: elsewhere
            looked = await tracking.look(to_send, now)
        finally:
            await elsewhere.close()
        assert looked is not None
        h.published += looked[0]
        on_the_new_chain = looked[1]
        counted = h.counted(now + timedelta(seconds=1))
        tracking.node_for = lambda chain: h.node
        final = await asyncio.wait_for(tracking.keep(on_the_new_chain, utcnow, h.emit), 90)
        return on_the_new_chain, counted, final

    h, (elsewhere, counted, final) = with_harness(tmp_path, stack.settings, scenario)
    assert (elsewhere.status, elsewhere.final) == ("unknown", False), elsewhere
    assert elsewhere.error is not None and "not on the chain" in elsewhere.error, elsewhere.error
    assert counted == int(elsewhere.spend["BTC"]) > 0
    assert (final.status, final.final, final.txid) == ("mined", True, elsewhere.txid), final
    assert [r.status for r in h.records(final.intent_id)][:2] == ["signed", "unknown"]


async def first_held(h: BtcHarness, worker: Engine) -> tuple[SignedBitcoinTransaction, bytes, datetime, Decided]:
    """Two coins of 0.02 BTC paid to the agent, and a sign-only payment of 0.01 BTC from the first
    judged by ``worker`` and signed now: (its record, a payment of 0.01 BTC from the second coin,
    now, the worker's decision on the first)."""
    first_coin, second_coin = await h.two_coins(BTC // 50)
    t0 = utcnow()
    intent = h.intent(t0, h.psbt([first_coin], BTC // 100))
    decided = await h.judged(worker, t0, intent)
    signed, _ = await h.pay(t0, intent)
    assert isinstance(signed, SignedBitcoinTransaction) and signed.status == "sign_only", signed
    return signed, h.psbt([second_coin], BTC // 100), t0, decided


async def final_on_node(h: BtcHarness, txid: str) -> None:
    """Until ``txid`` is in a block with two more on top (final on regtest; the stack mines one a second)."""

    async def final() -> bool | None:
        status = await bitcoin.transaction(h.node, txid)
        return True if status is not None and status.confirmations >= 3 else None

    await h.until(f"{txid} final", final, 90)


def test_a_sign_only_payment_is_counted_a_day_later_until_it_lands_then_from_its_landing(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Signed at T0 and kept, a payment's bytes can be sent any day while its coin is unspent: at
    T0 + 25 h the worker and the signer still count it, so a second day's payment on another
    coin is refused; once it is mined and final it counts from then, for 24 h."""

    async def scenario(h: BtcHarness) -> dict[str, object]:
        worker, seen = h.worker(), dict[str, object]()
        signed, second, t0, seen["worker t0"] = await first_held(h, worker)
        day = t0 + timedelta(hours=25)
        seen["worker t0+25h"] = await h.judged(worker, day, h.intent(day, second))
        refused, _ = await h.pay(day, second)
        seen["signer t0+25h"] = (refused.stage, refused.code) if isinstance(refused, IntentRejected) else "signed"
        await h.watch(day)  # not sent: nothing changes
        seen["held t0+25h"] = h.counted(day)
        await bitcoin.send_raw(h.node, bytes.fromhex(signed.signed_tx))  # the agent sends the bytes now
        await final_on_node(h, signed.txid)
        landing = day + timedelta(minutes=1)
        await h.watch(landing)
        landed = h.records(signed.intent_id)[-1]
        h.told(worker, landed, landing)
        seen["landed"] = (landed.status, landed.final)
        at = landing + timedelta(hours=23)
        seen["worker landing+23h"] = await h.judged(worker, at, h.intent(at, second))
        seen["signer landing+23h"] = h.counted(at)
        at = landing + timedelta(hours=25)
        seen["worker landing+25h"] = await h.judged(worker, at, h.intent(at, second))
        seen["signer landing+25h"] = h.counted(landing + timedelta(hours=25))
        seen["spend"] = int(signed.spend["BTC"])
        return seen

    _, seen = with_harness(tmp_path, stack.settings, scenario, bitcoin_fields={"daily_limit_sats": 15 * BTC // 1000})
    over = (Stage.BITCOIN, Code.DAILY_LIMIT_EXCEEDED)
    assert (seen["worker t0"], seen["worker t0+25h"]) == (("approved", ""), over), seen
    assert seen["signer t0+25h"] == (Stage.SIGNING, Code.DAILY_LIMIT_EXCEEDED), seen
    assert seen["held t0+25h"] == seen["spend"] and seen["landed"] == ("mined", True), seen
    assert (seen["worker landing+23h"], seen["signer landing+23h"]) == (over, seen["spend"]), seen
    assert (seen["worker landing+25h"], seen["signer landing+25h"]) == (("approved", ""), 0), seen


def test_sign_only_payments_are_bounded_together_and_the_ttl_cancels_one_spending_its_coin_back(
    stack: LocalStack, tmp_path: Path
) -> None:
    """``bitcoin.max_sign_only_outstanding_sats`` bounds what sign-only payments not final hold,
    at the worker and the signer; ``sign_only_ttl_s`` has the signer cancel one not mined in
    time: a transaction of its own spending the payment's coin back to the agent, judged like any
    payment, after which the payment's bytes can never be mined and only the cancellation's fee
    counts."""

    async def scenario(h: BtcHarness) -> dict[str, object]:
        worker, seen = h.worker(), dict[str, object]()
        signed, second, t0, _ = await first_held(h, worker)
        seen["worker second"] = await h.judged(worker, t0, h.intent(t0, second))
        refused, _ = await h.pay(t0, second)
        seen["signer second"] = (refused.stage, refused.code) if isinstance(refused, IntentRejected) else "signed"
        await h.watch(t0 + timedelta(seconds=59))
        seen["before the ttl"] = h.records(signed.intent_id)[-1].status
        await h.watch(t0 + timedelta(seconds=61))  # signed, recorded, durable and sent
        cancelling = h.records(signed.intent_id)[-1]
        seen["cancelling"] = (cancelling.status, cancelling.final)
        cancel_txid = h.state.agent(h.agent).sign_only_row(signed.intent_id)
        assert cancel_txid is not None and cancel_txid[1] is not None
        cancellation = SignedBitcoinTransaction.from_bytes(cancel_txid[1])
        await final_on_node(h, cancellation.txid)
        later = t0 + timedelta(minutes=5)
        await h.watch(later)
        final = h.records(signed.intent_id)[-1]
        h.told(worker, final, later)
        seen["final"] = (final.status, final.final, final.txid, final.inputs)
        seen["counted"] = (h.counted(later), final.fee_sats)
        try:
            await bitcoin.send_raw(h.node, bytes.fromhex(signed.signed_tx))
            seen["the payment's bytes"] = "taken"
        except RpcError as exc:
            seen["the payment's bytes"] = exc.message
        seen["worker second after"] = await h.judged(worker, later, h.intent(later, second))
        again, _ = await h.pay(later, second)
        seen["signer second after"] = again.status if isinstance(again, SignedBitcoinTransaction) else again.code
        seen["cancellation"], seen["coin"] = cancellation, signed.inputs[0]
        return seen

    h, seen = with_harness(
        tmp_path,
        stack.settings,
        scenario,
        bitcoin_fields={"max_sign_only_outstanding_sats": 15 * BTC // 1000},
        sign_only_ttl_s=60,
    )
    bound = Code.SIGN_ONLY_OUTSTANDING_EXCEEDED
    assert (seen["worker second"], seen["signer second"]) == ((Stage.BITCOIN, bound), (Stage.SIGNING, bound)), seen
    assert seen["before the ttl"] == "sign_only" and seen["cancelling"] == ("cancelled", False), seen
    cancellation = seen["cancellation"]
    assert isinstance(cancellation, SignedBitcoinTransaction)
    assert seen["final"] == ("cancelled", True, cancellation.txid, (seen["coin"],)), seen
    assert seen["counted"] == (cancellation.fee_sats, cancellation.fee_sats) and cancellation.fee_sats > 0, seen
    assert seen["the payment's bytes"] != "taken", seen
    assert (seen["worker second after"], seen["signer second after"]) == (("approved", ""), "sign_only"), seen
    assert AuditAction.BITCOIN_FINAL in h.audit_actions(cancellation.intent_id)


def _outcome(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode in (0, 1), done.stderr
    return orjson.loads(done.stdout)["outcome"]


@pytest.fixture(scope="module")
def two_coins(stack: LocalStack) -> PlainAgent:
    """An agent made with the plain commands, two coins of 0.1 BTC, paying bob at most 0.05 BTC a day."""
    return plain_agent(stack.settings, "btc-holds", ("0.1", "0.1"), "--max-value", "0.3", "--daily-limit", "0.05")


def test_two_payments_written_at_once_are_each_their_own_transaction(stack: LocalStack, two_coins: PlainAgent) -> None:
    """Two `warden submit --to --value` started together read the same coins: the judge takes
    one, refuses the other BITCOIN_INPUT_CLAIMED naming it, and that one is written again from
    the agent's other coin. Two transactions, each mined and final under its own intent."""
    settings, agent = stack.settings, two_coins
    pay = ("submit", "--agent", agent.agent_id, "--chain", CHAIN, "--to", agent.bob, "--value", "0.001")
    done = at_once(settings, *[(*pay, "--broadcast", "--timeout", "120", "--json")] * 2)
    first, second = (_outcome(d) for d in done)
    for paid in (first, second):
        said = {k: paid.get(k) for k in ("intent_id", "status", "final", "stage", "code", "reason")}
        assert (paid.get("status"), paid.get("final")) == ("mined", True), (said, [d.stderr for d in done])
    assert first["intent_id"] != second["intent_id"] and first["txid"] != second["txid"], (first, second)
    assert not set(first["inputs"]) & set(second["inputs"]), (first, second)


def test_an_open_payments_coin_is_refused_to_another_intent_and_warden_txs_cancel_spends_it_back(
    stack: LocalStack, two_coins: PlainAgent, run: Run
) -> None:
    """A sign-only payment holds its coin and its spend: a PSBT spending that coin is refused
    BITCOIN_INPUT_CLAIMED, naming the payment, by the worker and by the signer (written straight
    to warden.intents.approved); a second payment over the daily limit is refused while it is
    held. `warden txs cancel` has the signer spend the coin back to the agent: once that is
    final, the payment's bytes can never be mined, and the worker and the signer count only the
    cancellation's fee, so the second payment passes."""
    settings, agent = stack.settings, two_coins
    pay = ("submit", "--agent", agent.agent_id, "--chain", CHAIN, "--to", agent.bob, "--timeout", "120", "--json")
    held = _outcome(warden(settings, *pay, "--value", "0.04"))
    assert held["status"] == "sign_only", held
    (coin,) = held["inputs"]
    txid, vout = coin.split(":")
    (utxo,) = [u for u in run(_coins(settings, agent.address)) if (u.txid, u.vout) == (txid, int(vout))]
    raw = embit_psbt(
        [utxo],
        [
            (agent.bob_script, BTC // 1000),
            (wallet.own_scripts(bytes.fromhex(agent.public_key)).p2wpkh, utxo.amount - BTC // 1000 - 500),
        ],
    )
    claimed = run(_both_judges(settings, agent.agent_id, raw))
    for stage, (refusal_stage, code, reason) in zip((Stage.BITCOIN, Stage.SIGNING), claimed, strict=True):
        assert (refusal_stage, code) == (stage, Code.BITCOIN_INPUT_CLAIMED) and held["intent_id"] in reason, claimed
    over = _outcome(warden(settings, *pay, "--value", "0.02", "--broadcast"))
    assert over.get("code") == Code.DAILY_LIMIT_EXCEEDED, over

    cancelled = warden(
        settings, "txs", "cancel", held["intent_id"], "--agent", agent.agent_id, "--reason", "leaked", "--json"
    )
    assert cli_json(cancelled)["outcome"]["status"] == "cancelled", cancelled.stdout
    final = shown(
        settings, agent.agent_id, held["intent_id"], lambda r: r["final"] and r["status"] != "sign_only", "cancelled"
    )
    assert (final["status"], final["inputs"]) == ("cancelled", [coin]) and "leaked" in final["error"], final
    assert held["txid"] in final["error"] and final["txid"] != held["txid"], final
    with pytest.raises(RpcError):
        run(_send(settings, held["signed_tx"]))
    after = _outcome(warden(settings, *pay, "--value", "0.04", "--broadcast"))
    assert (after.get("status"), after.get("final")) == ("mined", True), after


async def _coins(settings: Settings, address: str) -> list[bitcoin.Utxo]:
    node = JsonRpc(settings.rpc_url_for(CHAIN), timeout_s=30)
    try:
        return await bitcoin.unspent(node, address)
    finally:
        await node.close()


async def _send(settings: Settings, signed_tx: str) -> str:
    node = JsonRpc(settings.rpc_url_for(CHAIN), timeout_s=30)
    try:
        return await bitcoin.send_raw(node, bytes.fromhex(signed_tx))
    finally:
        await node.close()


async def _both_judges(settings: Settings, agent: str, psbt: bytes) -> list[tuple[str, str, str]]:
    """A payment of ``psbt`` submitted to the worker, then another written straight to
    warden.intents.approved for the signer: each one's refusal (stage, code, reason)."""
    key, policy = load_or_create_agent_key(settings.home, agent), await policy_in_force(settings, agent)
    refusals: list[tuple[str, str, str]] = []
    for straight in (False, True):
        intent = new_intent(
            key, agent_id=agent, chain=CHAIN, intent_type="bitcoin_psbt", bitcoin_psbt=base64.b64encode(psbt).decode()
        )
        start = await end_offsets(settings, OUTCOME_TOPICS)
        if straight:
            await direct_approvals(settings, (intent, policy))
        else:
            await submitted(settings, intent)
        outcome = (await wait_outcomes(settings, [intent], 120, start)).get(intent.intent_id)
        assert isinstance(outcome, IntentRejected), outcome
        refusals.append((outcome.stage, outcome.code, outcome.reason))
    return refusals


def test_a_coin_another_transaction_spent_makes_the_payment_conflicted_and_both_judges_let_it_go(
    stack: LocalStack, tmp_path: Path
) -> None:
    """The coin of a sign-only payment spent by a transaction this signer did not sign (the
    agent's key used elsewhere): once that transaction is final the node shows it spending the
    coin, the payment is ``conflicted``, final, naming it, and nothing it held is counted, by the
    signer and by the worker that reads its record: a payment refused while it was held passes."""

    async def scenario(h: BtcHarness) -> dict[str, object]:
        worker, seen = h.worker(), dict[str, object]()
        signed, second, t0, _ = await first_held(h, worker)
        seen["worker while held"] = await h.judged(worker, t0, h.intent(t0, second))
        (coin,) = [c for c in await h.coins() if f"{c.txid}:{c.vout}" in signed.inputs]
        elsewhere = h.signed_elsewhere(h.psbt([coin], BTC // 200))
        spender = await bitcoin.send_raw(h.node, elsewhere)
        await final_on_node(h, spender)
        later = t0 + timedelta(minutes=1)
        await h.watch(later)
        conflicted = h.records(signed.intent_id)[-1]
        h.told(worker, conflicted, later)
        seen["conflicted"] = (conflicted.status, conflicted.final, spender in (conflicted.error or ""))
        seen["signer counts"] = h.counted(later)
        seen["worker after"] = await h.judged(worker, later, h.intent(later, second))
        again, _ = await h.pay(later, second)
        seen["signer after"] = again.status if isinstance(again, SignedBitcoinTransaction) else again.code
        return seen

    _, seen = with_harness(tmp_path, stack.settings, scenario, bitcoin_fields={"daily_limit_sats": 15 * BTC // 1000})
    assert seen["worker while held"] == (Stage.BITCOIN, Code.DAILY_LIMIT_EXCEEDED), seen
    assert seen["conflicted"] == ("conflicted", True, True) and seen["signer counts"] == 0, seen
    assert (seen["worker after"], seen["signer after"]) == (("approved", ""), "sign_only"), seen
