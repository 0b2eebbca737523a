"""The transaction lifecycle: every broadcast intent ends mined, failed, replaced or dropped,
and what is in between (stuck, a fee bump, a nonce gap) is reported with the reason.

The pure rules (`signer.lifecycle`) are tested alone; the tracker is driven against a private
Anvil (these tests turn automining off and move the base fee, which would disturb the shared
stack) by an in-process signer, as `signer.main` runs it. Every record the tracker publishes
is collected and its signature checked; signed transactions are recovered with eth-account.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes

from infra import contracts
from infra.bench.tracker import CountingNode
from runtime.clock import US_PER_SECOND, utcnow
from runtime.rpc import JsonRpc, Node
from schemas.actions import AuditAction
from schemas.codes import Code
from schemas.emit import Emit
from schemas.fields import format_native_amount
from schemas.intent import TransactionIntent
from schemas.outcomes import SignedTransaction
from schemas.stages import Stage
from signer import blocks, lifecycle
from signer.blocks import BlockWatch
from signer.service import Signer
from signer.state import SignerState
from signer.tracking import Tracked
from tests.token_support import DEPLOYER
from tests.tracker_support import Harness, automine, finish, on_chain, private_chain

S = US_PER_SECOND
GWEI = 10**9


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with private_chain(tmp_path_factory.mktemp("lifecycle-chain")) as rpc_url:
        yield rpc_url


async def price_out(node: JsonRpc, signed: SignedTransaction) -> None:
    """Mine a block whose base fee is four times what ``signed`` may pay: it stays pending."""
    max_fee = _fee_per_gas(signed)
    await node.call("anvil_setNextBlockBaseFeePerGas", hex(4 * max_fee))
    await node.call("evm_mine")
    assert await node.call("eth_getTransactionReceipt", signed.tx_hash) is None


def _fee_per_gas(signed: SignedTransaction) -> int:
    fee_per_gas: int = TypedTransaction.from_bytes(HexBytes(signed.signed_tx)).as_dict()["maxFeePerGas"]
    return fee_per_gas


async def until_stuck(h: Harness, signed: SignedTransaction) -> SignedTransaction:
    while not any(r.status == "stuck" for r in h.records(signed.intent_id)):
        await asyncio.sleep(0.2)
    return [r for r in h.records(signed.intent_id) if r.status == "stuck"][-1]


def test_an_underpriced_transaction_is_replaced_with_a_fee_bump_and_the_bump_is_mined(
    chain: str, tmp_path: Path
) -> None:
    async def scenario(h: Harness) -> tuple[SignedTransaction, SignedTransaction]:
        first = await h.sign()
        await price_out(h.node, first)
        await automine(h.node, True)
        return first, await finish(h, first)

    h, (first, final) = on_chain(tmp_path, chain, scenario)
    assert final.status == "mined" and final.tx_hash != first.tx_hash and final.replaces == (first.tx_hash,)
    assert final.nonce == first.nonce and _fee_per_gas(final) >= _fee_per_gas(first) * 9 // 8
    assert Account.recover_transaction(final.signed_tx) == h.address
    statuses = [(r.status, r.final) for r in h.records(first.intent_id)]
    assert statuses == [
        ("signed", False),
        ("broadcast", False),
        ("broadcast", False),
        ("mined", False),
        ("mined", True),
    ], statuses
    assert AuditAction.TX_FEE_BUMPED in h.audit_actions(first.intent_id)
    # The spend settled to what the chain took for the bump that was mined.
    assert final.fee_wei is not None
    assert h.state.agent(h.agent).spend_of(first.intent_id) == final.value_wei + final.fee_wei


@pytest.mark.parametrize("bound", ["ceiling", "daily_limit"])
def test_a_bump_the_policy_does_not_allow_is_not_signed_and_the_transaction_is_reported_stuck(
    chain: str, tmp_path: Path, bound: str
) -> None:
    """The fee ceiling and the rolling limit count a bump like any spend: an attacker who can
    move fees (fill blocks) cannot make the signer pay more than the policy allows."""

    async def probe(h: Harness) -> SignedTransaction:
        quote = await h.sign()  # what the signer would pay now
        await h.node.call("anvil_dropTransaction", quote.tx_hash)
        return quote

    _, quote = on_chain(tmp_path / "probe", chain, probe)
    bounds = (
        {"tx_max_fee_per_gas": _fee_per_gas(quote)}
        if bound == "ceiling"
        else {"tx_daily_limit_eth": format_native_amount(quote.max_spend_wei + 1000)}
    )

    async def scenario(h: Harness) -> tuple[SignedTransaction, SignedTransaction, int, SignedTransaction]:
        first = await h.sign()
        await price_out(h.node, first)
        task = asyncio.create_task(h.signer.track(first, utcnow, h.emit))
        stuck = await until_stuck(h, first)
        attempts = len(h.state.agent(h.agent).attempts(first.intent_id))
        # Fees fall: the original is mined after all (sent again: Anvil evicted it while it was
        # priced out), and that is its outcome.
        await h.node.call("anvil_setNextBlockBaseFeePerGas", hex(1))
        await h.node.call("evm_mine")
        await automine(h.node, True)
        return first, stuck, attempts, await asyncio.wait_for(task, 120)

    _, (first, stuck, attempts, final) = on_chain(tmp_path / "bounded", chain, scenario, **bounds)
    expected = "ceiling of" if bound == "ceiling" else "would exceed the rolling limit"
    assert stuck.error is not None
    assert expected in stuck.error, stuck.error
    assert attempts == 1
    assert final.status == "mined" and final.tx_hash == first.tx_hash and final.replaces == ()


def test_a_bump_that_would_cross_the_usd_cap_is_not_signed_and_the_ledger_says_why(chain: str, tmp_path: Path) -> None:
    """A fee bump that would break a USD cap: priced just under a $100 USD cap ($99.63: 0.033 ETH and a worst-case fee
    of 0.00021 ETH at $3,000), then priced out by a base fee anyone who fills blocks can raise.
    Its bump would pay about $5 of fee, $104 in all: not signed, never seen by the chain, the
    refusal on the ledger with its figures, and the transaction reported stuck until it is mined
    as it was signed."""
    feed = asyncio.run(_price_feed(chain, 3000 * 10**8))

    async def scenario(
        h: Harness,
    ) -> tuple[SignedTransaction, SignedTransaction, dict[str, Any], int, SignedTransaction]:
        first = await h.sign(value="0.033", gas_limit=21_000, max_fee_per_gas=10 * GWEI, max_priority_fee_per_gas=GWEI)
        await price_out(h.node, first)
        task = asyncio.create_task(h.signer.track(first, utcnow, h.emit))
        stuck = await until_stuck(h, first)
        pool = await h.node.call("txpool_content")
        attempts = len(h.state.agent(h.agent).attempts(first.intent_id))
        await h.node.call("anvil_setNextBlockBaseFeePerGas", hex(1))
        await h.node.call("evm_mine")
        await automine(h.node, True)
        return first, stuck, pool, attempts, await asyncio.wait_for(task, 120)

    h, (first, stuck, pool, attempts, final) = on_chain(
        tmp_path,
        chain,
        scenario,
        usd_max_per_tx="100",
        price_feeds=({"chain": "anvil", "asset": "native", "feed": feed},),
    )
    assert stuck.error is not None
    assert Code.USD_OVER_CAP in stuck.error and "usd_max_per_tx" in stuck.error, stuck.error
    assert attempts == 1  # nothing signed at the higher fee
    pending = [tx["hash"] for by_sender in pool.values() for txs in by_sender.values() for tx in txs.values()]
    assert set(pending) <= {first.tx_hash}, pending  # no replacement reached the node (Anvil may evict the original)
    assert final.status == "mined" and final.tx_hash == first.tx_hash and final.replaces == ()
    refusals = h.audit_events(first.intent_id, AuditAction.TX_BUMP_REFUSED)
    assert refusals and {e.details["code"] for e in refusals} == {Code.USD_OVER_CAP}, refusals
    details = refusals[0].details
    assert (details["stage"], details["code"], details["tx_hash"]) == (
        Stage.USD_LIMIT,
        Code.USD_OVER_CAP,
        first.tx_hash,
    )
    assert int(details["fee_per_gas_wei"]) > 2 * 40 * GWEI and details["previous_fee_per_gas_wei"] == str(10 * GWEI)
    assert int(details["facts"]["usd"]) > 100 * 10**6 and details["facts"]["prices"][0]["feed"] == feed
    assert details["intent_digest"] == first.intent_digest


async def _price_feed(rpc_url: str, answer: int) -> str:
    """A PriceFeed on the private chain (8 decimals) answering ``answer``, dated by the wall clock
    (the decision's `now`: another test here moves the chain's clock ahead)."""
    node = JsonRpc(rpc_url, timeout_s=120)
    try:
        feed = await contracts.deploy(node, "PriceFeed", 8, "ETH / USD", answer, sender=DEPLOYER)
        data = contracts.calldata("setAnswerAt(int256,uint256)", answer, int(time.time()))
        await contracts.send(node, DEPLOYER, feed, data)
        return feed
    finally:
        await node.close()


async def take_nonce_elsewhere(h: Harness, signed: SignedTransaction) -> None:
    """Someone else holds the key (or the node lost the transaction and the address was used
    elsewhere): a foreign transaction takes the nonce, in a block."""
    await h.node.call("anvil_dropTransaction", signed.tx_hash)
    await h.node.call("anvil_impersonateAccount", h.address)
    await h.node.call(
        "eth_sendTransaction", {"from": h.address, "to": h.address, "value": "0x0", "nonce": hex(signed.nonce)}
    )
    await h.node.call("evm_mine")


def test_a_nonce_taken_by_a_transaction_the_signer_never_signed_ends_dropped(chain: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> tuple[SignedTransaction, SignedTransaction]:
        first = await h.sign()
        await take_nonce_elsewhere(h, first)
        return first, await finish(h, first)

    h, (first, final) = on_chain(tmp_path, chain, scenario)
    assert final.status == "dropped" and final.error is not None and "did not sign" in final.error
    # What used the nonce is not known to the signer: its worst case stays counted (fail closed).
    assert h.state.agent(h.agent).spend_of(first.intent_id) == first.max_spend_wei
    assert AuditAction.TX_DROPPED in h.audit_actions(first.intent_id)


def test_a_transaction_whose_block_the_node_lost_ends_dropped_saying_what_is_known_and_stays_counted(
    chain: str, tmp_path: Path
) -> None:
    """After a power loss the node can come back with the sender's account as the block left it
    (nonce used, balance spent) and without the block (Anvil saves its state once a second): made
    here by taking the transaction out of the pool and setting the account's nonce and balance as
    its block left them. The record once said `dropped`, "used by a transaction this signer did not
    sign", "nothing it would have spent is counted", and the signer counted nothing. Now it says
    what is known (the nonce is used; no transaction of the intent is in a block) and keeps the
    worst case counted; when the transaction shows up in a block, the watch of final records
    reports it mined there."""

    async def scenario(h: Harness) -> tuple[SignedTransaction, SignedTransaction, Any]:
        first = await h.sign()
        balance = int(await h.node.call("eth_getBalance", h.address, "latest"), 16)
        await h.node.call("anvil_dropTransaction", first.tx_hash)
        await h.node.call("anvil_setNonce", h.address, hex(first.nonce + 1))
        await h.node.call("anvil_setBalance", h.address, hex(balance - first.max_spend_wei))
        await h.node.call("evm_mine")
        final = await finish(h, first)
        # The block comes back (the same bytes in a block): the record is put right.
        await h.node.call("anvil_setNonce", h.address, hex(first.nonce))
        await h.node.call("anvil_setBalance", h.address, hex(balance))
        await h.node.call("eth_sendRawTransaction", first.signed_tx)
        await h.node.call("evm_mine")
        return first, final, await h.signer.tracking.finality.look(final, utcnow())

    h, (first, final, found) = on_chain(tmp_path, chain, scenario)
    assert final.status == "dropped" and final.final and final.error is not None, final
    assert f"nonce {first.nonce} of {first.from_} on {first.chain} is used" in final.error
    assert "no transaction this signer signed" in final.error and "is counted" not in final.error
    assert h.state.agent(h.agent).spend_of(first.intent_id) == first.max_spend_wei
    assert found is not None, "the watch of final records did not find the transaction in its block"
    _, mined = found
    assert mined.status == "mined" and not mined.final and mined.tx_hash == first.tx_hash, mined
    assert mined.error is not None and "it was reported dropped" in mined.error


def test_a_transaction_replaced_by_another_intent_naming_its_nonce_ends_replaced(chain: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> tuple[SignedTransaction, ...]:
        first = await h.sign()
        fee = _fee_per_gas(first)
        second = await h.sign(nonce=first.nonce, max_fee_per_gas=2 * fee, max_priority_fee_per_gas=2 * fee)
        await h.node.call("evm_mine")
        return first, second, await finish(h, first), await finish(h, second)

    _, (first, second, first_final, second_final) = on_chain(tmp_path, chain, scenario)
    assert second_final.status == "mined" and second_final.nonce == first.nonce
    assert first_final.status == "replaced" and first_final.replaced_by == second.tx_hash
    assert first_final.error is not None
    assert second.intent_id in first_final.error


def test_a_transaction_the_node_lost_is_sent_again_unchanged(chain: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> tuple[SignedTransaction, SignedTransaction]:
        first = await h.sign()
        await h.node.call("anvil_dropTransaction", first.tx_hash)
        await automine(h.node, True)
        return first, await finish(h, first)

    _, (first, final) = on_chain(tmp_path, chain, scenario)
    assert final.status == "mined" and final.tx_hash == first.tx_hash and final.replaces == ()


def test_a_nonce_gap_is_reported_not_silently_waited_on(chain: str, tmp_path: Path) -> None:
    """A foreign pending transaction at nonce N made the signer take N+1; the node then dropped
    the foreign one. Nothing the signer holds can fill N: it says so."""

    async def scenario(h: Harness) -> tuple[int, SignedTransaction, SignedTransaction]:
        nonce = int(await h.node.call("eth_getTransactionCount", h.address, "latest"), 16)
        await h.node.call("anvil_impersonateAccount", h.address)
        foreign = await h.node.call(
            "eth_sendTransaction", {"from": h.address, "to": h.address, "value": "0x0", "nonce": hex(nonce)}
        )
        first = await h.sign()
        await h.node.call("anvil_dropTransaction", foreign)
        task = asyncio.create_task(h.signer.track(first, utcnow, h.emit))
        try:
            return nonce, first, await until_stuck(h, first)
        finally:
            task.cancel()

    _, (nonce, first, stuck) = on_chain(tmp_path, chain, scenario)
    assert first.nonce == nonce + 1
    assert stuck.error is not None
    assert f"nonce gap: the chain's next nonce for {first.from_} on anvil is {nonce}" in stuck.error
    assert f"nonce(s) {nonce} have no pending transaction" in stuck.error


def test_after_a_restart_a_signed_but_unsent_transaction_is_sent_and_tracked(chain: str, tmp_path: Path) -> None:
    """The signer recorded a signature and died before the node saw it: the next signer over
    the same record finds it open, sends the same bytes and follows it to its receipt (well
    before the replacement delay, when the tracker would have found it lost anyway)."""

    async def scenario(h: Harness) -> tuple[SignedTransaction, ...]:
        _, signed = await h.approve()  # ... and the process is killed here, before `send`
        restarted = Signer(
            SignerState(h.state_path),
            h.signer.keys,
            h.signer.admins,
            h.signer.node_for,
            service_key=("signer-test", h.service_key),
            replace_after_us=600 * S,
        )
        assert isinstance(restarted.state, SignerState)
        (open_record,) = [SignedTransaction.from_bytes(r) for r in restarted.state.unconfirmed()]
        final = await asyncio.wait_for(restarted.track(open_record, utcnow, h.emit, resend=True), 120)
        return signed, open_record, final

    _, (signed, open_record, final) = on_chain(tmp_path, chain, scenario, automining=True, replace_after_s=600)
    assert open_record.status == "signed" and open_record.tx_hash == signed.tx_hash
    assert final.status == "mined" and final.tx_hash == signed.tx_hash


def test_an_intent_answered_with_an_earlier_result_follows_that_transaction_to_its_end(
    chain: str, tmp_path: Path
) -> None:
    """Two intents with one idempotency key (a raw producer's: the SDK would give them one id):
    the second gets the first's signed bytes, as they stood (still pending). Were it to stay
    there, a client waiting for a final status would wait for ever: it reports what the first's
    transaction becomes, under its own id."""

    async def scenario(
        h: Harness,
    ) -> tuple[TransactionIntent, SignedTransaction, SignedTransaction, int]:
        first = await h.sign(idempotency_key="pay-invoice-7")
        again, copy = await h.approve(idempotency_key="pay-invoice-7", intent_id=f"i-again-{os.urandom(6).hex()}")
        assert copy.status in lifecycle.OPEN and copy.tx_hash == first.tx_hash
        sent_emits, sent = await h.signer.send(copy, utcnow())  # not sent again: the original was
        assert sent_emits == [] and sent == copy
        follower = asyncio.create_task(finish(h, copy))
        await h.node.call("evm_mine")
        finals = await finish(h, first), await follower
        return again, *finals, int(await h.node.call("eth_getTransactionCount", h.address, "latest"), 16)

    h, (again, first_final, copy_final, chain_nonce) = on_chain(tmp_path, chain, scenario)
    assert first_final.status == copy_final.status == "mined"
    assert copy_final.tx_hash == first_final.tx_hash and copy_final.block_number == first_final.block_number
    assert copy_final.intent_id == again.intent_id and copy_final.intent_digest == again.digest()
    assert h.records(again.intent_id)[-1] == copy_final  # published, signed by the signer
    assert chain_nonce == first_final.nonce + 1  # one transaction on chain


# --- what the tracker costs the node ------------------------------------------------------------


def test_pending_transactions_cost_the_node_a_look_per_block_not_per_transaction_per_poll(
    chain: str, tmp_path: Path
) -> None:
    """Twenty transactions wait 3 s for a block: the node is asked for each one's receipt when a
    block holds it (and on the watch's first read), not every 50 ms to 1 s as each tracker used
    to ask (~180 receipts and ~60 nonces in these 3 s). Nor does each tracker look at its nonce
    and the replacement rules every second: nothing changes them but a block or the time the
    last look named."""
    n = 20

    async def scenario(
        h: Harness,
    ) -> tuple[dict[str, int], dict[str, int], dict[str, int], list[SignedTransaction], float]:
        sent = [await h.sign() for _ in range(n)]
        counting = CountingNode(h.node)
        h.signer.tracking.node_for = lambda chain: counting
        steps: collections.Counter[str] = collections.Counter()
        step = h.signer.tracking._step

        async def counted_step(
            tracked: Tracked,
            node: Node,
            watch: BlockWatch,
            at: datetime,
            emit: Callable[[list[Emit]], Awaitable[object]],
        ) -> tuple[list[Emit], SignedTransaction] | None:
            steps[tracked.record.intent_id] += 1
            return await step(tracked, node, watch, at, emit)

        h.signer.tracking._step = counted_step  # type: ignore[method-assign]  # counting each look, then the real one
        started = time.monotonic()
        tasks = [asyncio.create_task(h.signer.track(s, utcnow, h.emit)) for s in sent]
        await asyncio.sleep(3)
        waiting, waiting_steps = dict(counting.calls), dict(steps)
        await h.node.call("evm_mine")
        finals = await asyncio.wait_for(asyncio.gather(*tasks), 120)
        return waiting, dict(counting.calls), waiting_steps, finals, time.monotonic() - started

    _, (waiting, calls, steps, finals, elapsed_s) = on_chain(tmp_path, chain, scenario, replace_after_s=600)
    # One look at the nonce before waiting, and one after the watch's first read (a second
    # later) if that came after it; a look a second, as before, would be 3 or 4 each.
    assert len(steps) == n and set(steps.values()) <= {1, 2}, steps
    assert [f.status for f in finals] == ["mined"] * n
    # Each: one look before waiting, one at the watch's first read, then the block that held it.
    assert waiting["eth_getTransactionReceipt"] <= 2 * n, waiting
    assert calls["eth_getTransactionReceipt"] <= 3 * n, calls
    # The sender's nonce: once per block read, and once for all who ask at the same time.
    assert waiting["eth_getTransactionCount"] <= 3, waiting
    # The one new block, read once; and while no block came, the head's hash once a second (a
    # reorg that keeps the height shows only there).
    assert calls["eth_getBlockByNumber"] <= 2 + elapsed_s // blocks.HEAD_CHECK_S, calls


def test_a_waiting_transaction_whose_nonce_a_block_takes_ends_at_once_not_at_its_replacement_delay(
    chain: str, tmp_path: Path
) -> None:
    """A tracker that looked and was told to wait (replacement delay 600 s) looks again when a
    block is read: a foreign transaction at its nonce ends it dropped after the nonce's settle
    time, not 600 s (or the 30 s receipt check) later."""

    async def scenario(h: Harness) -> SignedTransaction:
        first = await h.sign()
        task = asyncio.create_task(h.signer.track(first, utcnow, h.emit))
        await asyncio.sleep(1.5)  # it looked, and looked again after the watch's first read
        await take_nonce_elsewhere(h, first)
        # Well before the tracker's own receipt check (RECHECK_S, 30 s) would have looked.
        return await asyncio.wait_for(task, blocks.RECHECK_S / 2)

    _, final = on_chain(tmp_path, chain, scenario, replace_after_s=600)
    assert final.status == "dropped" and final.error is not None and "did not sign" in final.error


def test_transactions_behind_a_pending_one_are_not_sent_again_by_each_other(chain: str, tmp_path: Path) -> None:
    """Eight transactions of one address wait past the replacement delay: the lowest is reported
    stuck (no bumps allowed), the seven behind it wait on it. None sends again the lower
    transactions it waits on (each doing so once a second would be N² sends for N pending)."""

    async def scenario(
        h: Harness,
    ) -> tuple[list[SignedTransaction], SignedTransaction, int, list[SignedTransaction]]:
        sent = [await h.sign() for _ in range(8)]
        counting = CountingNode(h.node)
        h.signer.tracking.node_for = lambda chain: counting
        tasks = [asyncio.create_task(h.signer.track(s, utcnow, h.emit)) for s in sent]
        stuck = await asyncio.wait_for(until_stuck(h, sent[0]), 120)
        await asyncio.sleep(2)  # two more looks each, past the delay
        sends = counting.calls["eth_sendRawTransaction"]
        await h.node.call("evm_mine")
        finals = await asyncio.wait_for(asyncio.gather(*tasks), 120)
        return sent, stuck, sends, finals

    h, (sent, stuck, sends, finals) = on_chain(tmp_path, chain, scenario, replace_after_s=1, max_bumps=0)
    assert stuck.error is not None
    assert "its fees were already raised 0 time(s)" in stuck.error
    assert sends == 0
    assert [f.status for f in finals] == ["mined"] * 8
    assert not any(r.status == "stuck" for s in sent[1:] for r in h.records(s.intent_id))


def test_the_block_watch_wakes_the_trackers_of_a_block_and_all_of_them_when_the_chain_goes_back(
    chain: str, tmp_path: Path
) -> None:
    """Driven read by read (its own task reads once, at the start, then sleeps an hour)."""

    async def scenario(h: Harness) -> tuple[list[tuple[bool, bool]], int | None]:
        watch = BlockWatch(h.node, poll_s=3600)
        first = await h.sign()
        mine, other = watch.ticket([first.tx_hash]), watch.ticket(["0x" + "ab" * 32])
        seen: list[tuple[bool, bool]] = []

        async def read() -> tuple[bool, bool]:
            await watch.read_new_blocks()
            return mine.take(), other.take()

        await asyncio.sleep(0.2)
        seen.append((mine.take(), other.take()))  # the first read: everyone looks once more
        seen.append(await read())  # nothing new
        await h.node.call("evm_mine")
        seen.append(await read())  # a block with the first transaction
        snapshot = await h.node.call("evm_snapshot")
        await h.node.call("evm_mine")
        await h.node.call("evm_mine")
        seen.append(await read())  # two empty blocks
        await h.node.call("evm_revert", snapshot)
        seen.append(await read())  # the chain went back
        snapshot = await h.node.call("evm_snapshot")
        await h.node.call("evm_mine")
        seen.append(await read())  # an empty block ...
        await h.node.call("evm_revert", snapshot)
        await h.node.call("evm_mine", hex(int(datetime.now(timezone.utc).timestamp()) + 60))
        await h.node.call("evm_mine")
        seen.append(await read())  # ... replaced unseen: its successor names another parent
        mine.close()
        other.close()
        return seen, watch.height

    _, (seen, height) = on_chain(tmp_path, chain, scenario)
    assert seen == [
        (True, True),
        (False, False),
        (True, False),
        (False, False),
        (True, True),
        (False, False),
        (True, True),
    ]
    assert height is None  # nobody waits: it stopped reading


def test_the_block_watch_asks_a_nonce_once_per_block_read_and_once_before_the_first(chain: str, tmp_path: Path) -> None:
    """Trackers that look before the watch's first read share one answer too: in CI, 60 trackers
    whose receipts came back in two waves asked twice before the first read."""

    async def scenario(h: Harness) -> tuple[SignedTransaction, list[int], int, int]:
        counting = CountingNode(h.node)
        watch = BlockWatch(counting, poll_s=3600)
        sent = await h.sign()
        answers = [await watch.nonce(sent.from_), await watch.nonce(sent.from_)]  # one after the other
        before_read = counting.calls["eth_getTransactionCount"]
        ticket = watch.ticket([sent.tx_hash])
        await asyncio.sleep(0.2)  # its first read
        answers += [await watch.nonce(sent.from_), await watch.nonce(sent.from_)]
        await h.node.call("evm_mine")
        await watch.read_new_blocks()
        answers.append(await watch.nonce(sent.from_))  # the block took it
        ticket.close()
        return sent, answers, before_read, counting.calls["eth_getTransactionCount"]

    _, (sent, answers, before_read, asked) = on_chain(tmp_path, chain, scenario)
    assert answers == [sent.nonce] * 4 + [sent.nonce + 1]
    assert (before_read, asked) == (1, 3)
