"""Mined is not final: a transaction followed from its receipt to a final block, and put right when
a reorg moves it, on a private Anvil (`anvil_reorg`, `evm_snapshot` / `evm_revert`) by an
in-process signer as `signer.main` runs it (`tests.tracker_support`).

Each test fails without its mechanism: without the canonical-block check a reorged-out
transaction stays `mined` and is never sent again; without finality the spend is settled (and
the record final) at the first receipt; without the restart's reconciliation a lost block's
`mined` record is what a redelivery publishes again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from eth_account import Account
from prometheus_client import REGISTRY as prometheus

from runtime.clock import utcnow
from runtime.registry import REGISTRY
from schemas.actions import AuditAction
from schemas.outcomes import SignedTransaction
from sdk.outcomes import supersedes
from tests.tracker_support import Harness, automine, finish, on_chain, private_chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with private_chain(tmp_path_factory.mktemp("reorg-chain")) as rpc_url:
        yield rpc_url


async def decided(h: Harness, signed: SignedTransaction) -> SignedTransaction:
    """Tracked until the chain decided it (here: mined at once)."""
    return await asyncio.wait_for(h.signer.track(signed, utcnow, h.emit), 60)


async def follow_until(
    h: Harness, record: SignedTransaction, done: Callable[[list[SignedTransaction]], bool]
) -> SignedTransaction:
    """`Signer.follow` running until the published records of the intent satisfy ``done``."""
    task = asyncio.create_task(h.signer.tracking.follow(record, utcnow, h.emit))
    try:
        for _ in range(600):
            if done(h.records(record.intent_id)):
                return h.records(record.intent_id)[-1]
            if task.done():
                task.result()  # raises what the follower raised
            await asyncio.sleep(0.1)
        raise AssertionError([(r.status, r.block_number, r.final, r.error) for r in h.records(record.intent_id)])
    finally:
        task.cancel()


async def block_hash(h: Harness, number: int) -> str:
    return str((await h.node.call("eth_getBlockByNumber", hex(number), False))["hash"])


def test_a_mined_transaction_reorged_out_is_sent_again_mined_again_and_only_then_final(
    chain: str, tmp_path: Path
) -> None:
    async def scenario(
        h: Harness,
    ) -> tuple[SignedTransaction, SignedTransaction, int | None, SignedTransaction, int | None, SignedTransaction]:
        first = await h.sign()
        mined = await decided(h, first)
        reserved = h.state.agent(h.agent).spend_of(first.intent_id)
        # The block that held it is replaced (same height, no transactions): it is not in the chain.
        await h.node.call("anvil_reorg", 1, [])
        assert await h.node.call("eth_getTransactionReceipt", mined.tx_hash) is None
        again = await follow_until(
            h, mined, lambda rs: rs[-1].status == "mined" and rs[-1].block_hash != mined.block_hash
        )
        kept = h.state.agent(h.agent).spend_of(first.intent_id)
        await h.node.call("anvil_mine", "0x2")
        final = await follow_until(h, again, lambda rs: rs[-1].final)
        return first, mined, reserved, again, kept, final

    h, (first, mined, reserved, again, kept, final) = on_chain(tmp_path, chain, scenario, automining=True)
    history = [(r.status, r.final) for r in h.records(first.intent_id)]
    assert history == [
        ("signed", False),
        ("broadcast", False),
        ("mined", False),
        ("broadcast", False),
        ("mined", False),
        ("mined", True),
    ], history
    reorged = h.records(first.intent_id)[3]
    assert reorged.error is not None
    assert "left the chain" in reorged.error and "sent again" in reorged.error and reorged.block_number is None
    assert [r.reorgs for r in h.records(first.intent_id)] == [0, 0, 0, 1, 1, 1]
    # The same signed bytes, mined again: same hash, same nonce, another block.
    assert again.tx_hash == mined.tx_hash == final.tx_hash and again.signed_tx == mined.signed_tx
    assert again.block_hash != mined.block_hash
    assert Account.recover_transaction(final.signed_tx) == h.address
    # Every step on the ledger: the reorg and the finality are events of their own.
    actions = h.audit_actions(first.intent_id)
    assert (
        actions.count(AuditAction.TX_MINED) == 2
        and AuditAction.TX_REORGED in actions
        and actions[-1] == AuditAction.TX_FINAL
    ), actions
    # The worst case stays reserved until final, then settles to what the chain took.
    assert reserved == kept == first.max_spend_wei
    assert final.fee_wei is not None
    assert h.state.agent(h.agent).spend_of(first.intent_id) == final.value_wei + final.fee_wei < reserved


def test_a_transaction_a_reorg_moves_to_another_block_is_re_reported_there(chain: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> tuple[SignedTransaction, SignedTransaction, SignedTransaction, SignedTransaction]:
        first = await h.sign()
        mined = await decided(h, first)
        await h.node.call("evm_mine")
        # Its block and the next are replaced; the new chain holds it one block later.
        await h.node.call("anvil_reorg", 2, [[mined.signed_tx, 1]])
        moved = await follow_until(h, mined, lambda rs: rs[-1].block_number != mined.block_number)
        await h.node.call("anvil_mine", "0x2")
        final = await follow_until(h, moved, lambda rs: rs[-1].final)
        return first, mined, moved, final

    h, (first, mined, moved, final) = on_chain(tmp_path, chain, scenario, automining=True)
    assert moved.status == "mined" and not moved.final
    assert mined.block_number is not None and moved.block_number == mined.block_number + 1
    assert moved.block_hash != mined.block_hash
    assert (
        moved.error is not None
        and "left the chain" in moved.error
        and f"now in block {moved.block_number}" in moved.error
    )
    assert final.final and final.block_number == moved.block_number
    assert [r.status for r in h.records(first.intent_id)].count("broadcast") == 1  # never sent again: it was there
    assert AuditAction.TX_REORGED in h.audit_actions(first.intent_id)


@pytest.mark.parametrize("finalized_tag", [True, False])
def test_final_follows_the_finalized_block_or_the_chains_confirmations(
    chain: str, tmp_path: Path, finalized_tag: bool
) -> None:
    """Anvil's `finalized` block is 2 under its head. With the tag, 2 blocks on top are final even
    though the chain asks for 5 confirmations; without it, 5 are needed."""
    previous = REGISTRY.admin_table()  # the harness's signer reads this process's registry
    REGISTRY.adopt(REGISTRY.with_finality("anvil", finalized_tag=finalized_tag, confirmations=5))

    async def scenario(h: Harness) -> list[bool]:
        mined = await decided(h, await h.sign())
        looks = []
        for _ in range(5):
            await h.node.call("evm_mine")
            watch = h.signer.tracking.watch_for("anvil")
            ticket = watch.ticket(())  # the watch answers for the chain as it is now
            try:
                looked = await h.signer.tracking.finality.look(mined, utcnow())
            finally:
                ticket.close()
            looks.append(looked is not None and looked[1].final)
            if looks[-1]:
                break
        return looks

    try:
        _, looks = on_chain(tmp_path, chain, scenario, automining=True)
    finally:
        REGISTRY.adopt(previous)
    assert looks == ([False, True] if finalized_tag else [False, False, False, False, True]), looks


def test_after_a_restart_a_mined_record_the_chain_lost_is_reported_and_sent_again_before_anything_is_signed(
    chain: str, tmp_path: Path
) -> None:
    """A power loss: the node comes back without its last blocks. The restarted signer's record
    says mined; reconciling it with the chain reports the block gone and sends the same bytes;
    a redelivery of the intent then publishes that, never `mined`."""

    async def scenario(
        h: Harness,
    ) -> tuple[SignedTransaction, list[str], SignedTransaction, SignedTransaction, SignedTransaction]:
        snapshot = await h.node.call("evm_snapshot")
        intent, to_broadcast = await h.approve()
        emits, sent = await h.signer.send(to_broadcast, utcnow())
        h.published += emits
        assert isinstance(sent, SignedTransaction), sent
        mined = await decided(h, sent)
        h.state.commit()
        # The chain loses the block (and its mempool); the signer restarts on its file.
        await h.node.call("evm_revert", snapshot)
        assert await h.node.call("eth_getTransactionReceipt", mined.tx_hash) is None
        h.restart()
        unconfirmed = [SignedTransaction.from_bytes(raw) for raw in h.state.unconfirmed()]
        emits, reconciled = await h.signer.tracking.reconcile(unconfirmed[0], utcnow())
        h.published += emits
        h.state.commit()
        redelivered = await h.redeliver(intent.intent_id)
        final = await follow_until(
            h, reconciled, lambda rs: rs[-1].status == "mined" and rs[-1].block_hash != mined.block_hash
        )
        return mined, [u.intent_id for u in unconfirmed], reconciled, redelivered, final

    h, (mined, unconfirmed, reconciled, redelivered, again) = on_chain(tmp_path, chain, scenario, automining=True)
    assert unconfirmed == [mined.intent_id]
    assert reconciled.status == "broadcast" and reconciled.error is not None and "left the chain" in reconciled.error
    assert AuditAction.TX_REORGED in h.audit_actions(mined.intent_id)
    assert redelivered.status == "broadcast" and redelivered == reconciled  # the record as it is now, not `mined`
    assert again.tx_hash == mined.tx_hash and again.block_hash != mined.block_hash


def test_a_final_record_whose_block_a_restarted_node_lost_is_put_right_and_reserved_again(
    chain: str, tmp_path: Path
) -> None:
    """A chain never gives up a final block, but a local node restarted from older state does:
    the restarted signer does not go on saying `mined`, final, for what the chain does not hold."""

    async def scenario(
        h: Harness,
    ) -> tuple[SignedTransaction, int | None, SignedTransaction, int | None, SignedTransaction]:
        snapshot = await h.node.call("evm_snapshot")
        final = await finish(h, await h.sign())
        settled = h.state.agent(h.agent).spend_of(final.intent_id)
        h.state.commit()
        await h.node.call("evm_revert", snapshot)
        h.restart()
        (recent,) = [SignedTransaction.from_bytes(raw) for raw in h.state.final_since(0)]
        emits, reconciled = await h.signer.tracking.reconcile(recent, utcnow())
        h.published += emits
        reserved = h.state.agent(h.agent).spend_of(final.intent_id)
        again = await finish(h, reconciled)
        return final, settled, reconciled, reserved, again

    h, (final, settled, reconciled, reserved, again) = on_chain(tmp_path, chain, scenario, automining=True)
    assert final.final and final.fee_wei is not None and settled == final.value_wei + final.fee_wei
    assert reconciled.status == "broadcast" and not reconciled.final
    assert reconciled.error is not None and "which was final" in reconciled.error
    assert reserved == final.max_spend_wei  # it can be mined again: its worst case counts again
    # A client that saw it final takes the later record, which says a block left the chain since.
    assert reconciled.reorgs == again.reorgs == 1 and supersedes(reconciled, final) and not supersedes(final, again)
    assert again.final and again.tx_hash == final.tx_hash and again.block_hash != final.block_hash


def test_a_reorg_deeper_than_finality_puts_every_final_transaction_back_and_leaves_no_nonce_gap(
    chain: str, tmp_path: Path
) -> None:
    """Anvil's finality (a block is final 2 under the head) broken by a 3-block reorg: the final
    transactions it takes out of the chain are reported (`tx.finality_violated`, the metric),
    sent again with the same bytes, and final again at blocks the chain holds; the agent's next
    intent is mined, not left behind a nonce gap. Without the watch of final records the lost
    ones stay `final` at a block the chain no longer has, and nothing sends them again."""

    def violations() -> float:
        return prometheus.get_sample_value("warden_finality_violations_total", {"chain": "anvil"}) or 0.0

    async def until(
        h: Harness, done: Callable[[], Awaitable[bool]], what: Callable[[], object], mine: bool = False
    ) -> None:
        for _ in range(600):
            if await done():
                return
            if mine:
                await h.node.call("evm_mine")
            await asyncio.sleep(0.2)
        raise AssertionError(what())  # what the records say by then

    async def scenario(
        h: Harness,
    ) -> tuple[
        list[SignedTransaction],
        list[SignedTransaction],
        SignedTransaction,
        float,
        float,
        list[SignedTransaction],
        list[str | None],
    ]:
        sent = [await h.sign(idempotency_key="pay-7")] + [await h.sign() for _ in range(2)]  # held: no automining
        # An intent answered with the first one's result (same idempotency key): its record follows that one.
        _, copy = await h.approve(idempotency_key="pay-7", intent_id=f"i-copy-{os.urandom(6).hex()}")
        assert copy.tx_hash == sent[0].tx_hash
        keepers = [asyncio.create_task(h.signer.tracking.keep(s, utcnow, h.emit)) for s in [*sent, copy]]
        try:
            await h.node.call("anvil_mine", "0x1")  # all three in one block
            await h.node.call("anvil_mine", "0x2")  # and that block 2 deep: final
            await until(h, lambda: _all(h, [*sent, copy], lambda r: r.final), lambda: "not final")
            before = [h.records(s.intent_id)[-1] for s in sent]
            copy_before = h.records(copy.intent_id)[-1]
            counted = violations()
            await h.node.call("anvil_reorg", 3, [])  # the final block, and the two on top, replaced
            assert [await h.node.call("eth_getTransactionReceipt", s.tx_hash) for s in sent] == [None] * 3
            await automine(h.node, True)
            nxt = await h.sign()  # the agent's next intent: its nonce is past the three lost ones
            keepers.append(asyncio.create_task(h.signer.tracking.keep(nxt, utcnow, h.emit)))
            everything = [*sent, copy, nxt]

            async def on_chain_again() -> bool:
                receipts = [await h.node.call("eth_getTransactionReceipt", s.tx_hash) for s in everything]
                if not all(receipts) or not await _all(h, everything, lambda r: r.final and r.block_number is not None):
                    return False
                newest = [h.records(s.intent_id)[-1] for s in everything]  # final where the chain has it
                for r in newest:
                    assert r.block_number is not None  # as _all found it
                    if await block_hash(h, r.block_number) != r.block_hash:
                        return False
                return True

            def history() -> list[list[tuple[str, bool]]]:
                return [[(r.status, r.final) for r in h.records(s.intent_id)] for s in everything]

            await until(h, on_chain_again, history, mine=True)
            newest = [h.records(s.intent_id)[-1] for s in everything]
            chain_hashes = [await block_hash(h, r.block_number) if r.block_number is not None else None for r in newest]
            return sent, before, copy_before, counted, violations(), newest, chain_hashes
        finally:
            for keeper in keepers:
                keeper.cancel()

    h, (sent, before, copy_before, counted, counted_after, newest, chain_hashes) = on_chain(tmp_path, chain, scenario)
    assert all(r.status == "mined" and r.final for r in [*before, copy_before]), before
    # Every record is final again, mined at a block the chain holds, with the same signed bytes.
    for record, on_chain_hash in zip(newest, chain_hashes, strict=False):
        assert record.status == "mined" and record.final
        assert record.block_hash is not None and on_chain_hash is not None
        assert record.block_hash.lower() == on_chain_hash.lower()
    for lost, again in zip(before, newest, strict=False):
        assert again.tx_hash == lost.tx_hash and again.signed_tx == lost.signed_tx
        assert again.block_hash != lost.block_hash and again.reorgs == lost.reorgs + 1
        history = [(r.status, r.final) for r in h.records(lost.intent_id)]
        assert ("broadcast", False) in history[history.index(("mined", True)) :], history  # reopened, sent again
        # Loudly: an audit event naming the chain, the transaction, the block and how deep it was.
        (event,) = h.audit_events(lost.intent_id, AuditAction.TX_FINALITY_VIOLATED)
        assert event.details["chain"] == "anvil" and event.details["tx_hash"] == lost.tx_hash
        assert event.details["block_number"] == lost.block_number and event.details["block_hash"] == lost.block_hash
        assert event.details["depth"] >= 3 and "finality was violated" in event.details["error"]
    assert counted_after - counted == 3  # the copy's loss is its original's: reported once
    # The copy no longer says final at the lost block either: reopened, it follows its original again.
    copy_after = newest[3]
    assert copy_after.tx_hash == before[0].tx_hash and copy_after.block_hash == newest[0].block_hash
    assert copy_before.block_hash == before[0].block_hash and copy_after.reorgs == copy_before.reorgs + 1
    assert not h.audit_events(newest[-1].intent_id, AuditAction.TX_FINALITY_VIOLATED)  # the next intent lost nothing


async def _all(h: Harness, signed: list[SignedTransaction], check: Callable[[SignedTransaction], bool]) -> bool:
    """Whether the newest published record of each intent satisfies ``check``."""
    return all(h.records(s.intent_id) and check(h.records(s.intent_id)[-1]) for s in signed)
