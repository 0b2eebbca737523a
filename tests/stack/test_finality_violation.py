"""No wedge past finality: on a stack of the test's own, with Anvil's default finality (a block
is final 2 under its head), a 3-block `anvil_reorg` takes final transactions out of the chain.

Were the records to go on saying `mined`, final, at a block the chain no longer has, nothing would
send them again, and the agent's next intent would wait for ever behind the nonce gap. The signer,
which compares final records with the chain (`Tracking.keep`), reports the violation (`tx.finality_violated`, `warden_finality_violations_total`, `warden status`), sends the
same signed bytes again and follows them to final at blocks the chain holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

import clickhouse_connect
from aiokafka.structs import TopicPartition

from infra.cli.status import ledger_lag
from infra.stack.local import LocalStack
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.metrics import metrics_file
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, audit_events_of
from schemas.outcomes import SignedTransaction
from sdk.client import Client, new_intent
from tests.support import make_agent, read_topic, sample

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
AGENT = "agent-finality"
LOST = 3  # transactions in the final block the reorg replaces
T = TypeVar("T")


async def _newest(settings: Settings, start: dict[TopicPartition, int], ids: list[str]) -> dict[str, SignedTransaction]:
    """Each intent's newest record on warden.txs.signed (a partition keeps an agent's order)."""
    newest: dict[str, SignedTransaction] = {}
    for raw in await read_topic(settings, topics.TXS_SIGNED, idle_polls=2, start=start):
        record = SignedTransaction.from_bytes(raw)
        if record.intent_id in ids:
            newest[record.intent_id] = record
    return newest


async def _until(
    check: Callable[[], Awaitable[T | Literal[False] | None]],
    what: Callable[[], Awaitable[object]],
    deadline_s: float = 120,
) -> T:
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        found = await check()
        if found:
            return found
        await asyncio.sleep(1)
    raise AssertionError(await what())


def test_final_transactions_a_reorg_deeper_than_finality_took_are_sent_again_and_the_next_intent_is_mined(
    fresh_stack: Callable[..., LocalStack],
) -> None:
    stack = fresh_stack()
    settings = stack.settings

    async def scenario() -> tuple[
        dict[str, SignedTransaction],
        dict[str, SignedTransaction],
        list[dict[str, Any]],
        dict[str, str],
        list[AuditEvent],
    ]:
        node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=60)
        try:
            key, _, _ = await make_agent(settings, AGENT, tx_to_allowlist=(DEST,))
            start = await end_offsets(settings, (topics.TXS_SIGNED, topics.AUDIT_EVENTS))
            # Held in the mempool until mined by hand: all three in one block.
            await node.call("evm_setIntervalMining", 0)
            await node.call("evm_setAutomine", False)
            lost = [
                new_intent(key, agent_id=AGENT, chain="anvil", to=DEST, value="0.0001", broadcast=True)
                for _ in range(LOST)
            ]
            async with Client(settings) as client:
                for intent in lost:
                    await client.submit(intent)
                await client.flush()
            ids = [intent.intent_id for intent in lost]

            async def newest(of: list[str] = ids) -> dict[str, SignedTransaction]:
                return await _newest(settings, start, of)

            async def sent() -> bool:
                records = await newest()
                return len(records) == LOST and all(r.status == "broadcast" for r in records.values())

            await _until(sent, newest)
            await node.call("anvil_mine", "0x1")
            await node.call("anvil_mine", "0x2")  # that block 2 deep: final

            async def final() -> dict[str, SignedTransaction] | Literal[False]:
                records = await newest()
                return len(records) == LOST and all(r.final for r in records.values()) and records

            before = await _until(final, newest)
            # The final block and the two on top of it replaced by empty ones: finality violated.
            await node.call("anvil_reorg", 3, [])
            assert [await node.call("eth_getTransactionReceipt", r.tx_hash) for r in before.values()] == [None] * LOST
            await node.call("evm_setAutomine", True)
            await node.call("evm_setIntervalMining", 1)
            nxt = new_intent(key, agent_id=AGENT, chain="anvil", to=DEST, value="0.0001", broadcast=True)
            async with Client(settings) as client:
                await client.submit(nxt)
                await client.flush()
            everything = [*ids, nxt.intent_id]

            async def settled() -> tuple[dict[str, SignedTransaction], list[dict[str, Any]]] | Literal[False] | None:
                records = await newest(everything)
                if len(records) < len(everything) or not all(r.final and r.status == "mined" for r in records.values()):
                    return None
                receipts = [await node.call("eth_getTransactionReceipt", r.tx_hash) for r in records.values()]
                return all(receipts) and (records, receipts)

            after, receipts = await _until(settled, lambda: newest(everything), deadline_s=180)
            chain_hashes: dict[str, str] = {}
            for intent_id, r in after.items():
                assert r.block_number is not None  # mined
                chain_hashes[intent_id] = (await node.call("eth_getBlockByNumber", hex(r.block_number), False))["hash"]
            events = [
                event
                for raw in await read_topic(settings, topics.AUDIT_EVENTS, idle_polls=2, start=start)
                for event in audit_events_of(raw)
                if event.action == AuditAction.TX_FINALITY_VIOLATED and event.intent_id in everything
            ]
            return before, after, receipts, chain_hashes, events
        finally:
            await node.close()

    before, after, receipts, chain_hashes, events = asyncio.run(scenario())
    # Every transaction is on chain again, the next intent's too: no nonce gap left it waiting.
    assert all(receipt["status"] == "0x1" for receipt in receipts)
    for intent_id, record in after.items():
        # No record says final at a block the chain does not hold.
        assert record.block_hash is not None
        assert record.block_hash.lower() == chain_hashes[intent_id].lower(), (record, chain_hashes[intent_id])
    for intent_id, lost in before.items():
        assert after[intent_id].tx_hash == lost.tx_hash and after[intent_id].signed_tx == lost.signed_tx
        assert after[intent_id].reorgs == lost.reorgs + 1 and after[intent_id].block_hash != lost.block_hash
    # Said loudly: an audit event per lost transaction, naming the chain, the block and its depth.
    assert sorted(str(event.intent_id) for event in events) == sorted(before), events
    for event in events:
        assert event.intent_id is not None
        lost = before[event.intent_id]
        assert event.details["chain"] == "anvil" and event.details["tx_hash"] == lost.tx_hash
        assert event.details["block_number"] == lost.block_number and event.details["depth"] >= 3
    url = metrics_file(settings, "signer").read_text().strip()
    assert sample(url, "warden_finality_violations_total", chain="anvil") == LOST

    # The ledger: its view of signed transactions and `warden status` (what it reads) agree.
    def ledger_settled() -> tuple[dict[str, Sequence[Any]], dict[str, Any]]:
        host, _, port = settings.ledger_http.rpartition(":")
        client = clickhouse_connect.get_client(host=host, port=int(port))
        rows = client.query(
            "SELECT intent_id, status, final, block_number FROM signed_transactions WHERE agent_id = %(agent)s",
            parameters={"agent": AGENT},
        ).result_rows
        return {row[0]: row[1:] for row in rows}, ledger_lag(settings)

    for _ in range(60):
        rows, status = ledger_settled()
        if len(rows) == len(after) and status["finality_violations"] == LOST:
            break
        time.sleep(1)
    assert rows == {i: ("mined", True, r.block_number) for i, r in after.items()}, rows
    assert status["finality_violations"] == LOST and status["finality_violated_on"] == ["anvil"], status
