"""A decided transaction followed until its block is final, and put right when a reorg moves it.

A receipt (mined, failed) or a passed nonce (replaced, dropped) is what the chain said at some
block; until that block is final (`BlockWatch.finalized`: the node's ``finalized`` block, else the
chain's confirmations) a reorg can replace it. On each block read `Finality.confirm` looks again:

- mined / failed: is the block its receipt was in still the chain's block at that height?
  Yes, and final: the record becomes final and the spend settles to what the chain took.
  No: where is the transaction now? In another block: re-reported there (``tx.reorged``).
  Nowhere: the same signed bytes are sent again, and the record goes back to broadcast
  (``tx.reorged``); the tracker (`Tracking.track`) follows it from there, fee bumps included.
- replaced / dropped: is the nonce still used? No (the transaction that used it left the
  chain): this one's bytes are sent again, back to broadcast. Used at the final block: final.
  Replaced settles the spend to nothing (another intent's transaction used the nonce); dropped
  keeps its worst case counted, since what used the nonce is not known (a node that lost the
  block holding this very transaction still counts its nonce and its spend), and a dropped record
  whose transaction shows up in a block while it is watched is re-reported there.

Until a record is final its worst case stays reserved in the agent's rolling window: a
transaction that can still be mined (or mined again) is never released.

A final record is still looked at for a while (`Tracking.keep`, for ``lifecycle.FINAL_WATCH_US``;
after a restart, `Tracking.reconcile`): a chain that gives up a final block (a deeper reorg than
its finality, a node restarted from older state) breaks finality, but the signer still holds the
signed bytes. `Finality.look` finds the record lost, reports the violation loudly
(``tx.finality_violated``, ``warden_finality_violations_total``) and puts it right as for a reorg.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from runtime.registry import REGISTRY
from runtime.rpc import Node
from schemas.actions import AuditAction
from schemas.chains import Chain
from schemas.emit import Emit
from schemas.outcomes import SignedTransaction
from signer import blocks
from signer.state import AgentStates

log = logging.getLogger("warden.signer")

Transition = Callable[..., tuple[list[Emit], SignedTransaction]]


class Finality:
    """The agent state (attempts, spend), each chain's node and block watch, the tracker's
    ``transition`` and ``send_again``."""

    def __init__(
        self,
        state: AgentStates,
        node_for: Callable[[str], Node],
        watch_for: Callable[[str], blocks.BlockWatch],
        transition: Transition,
        send_again: Callable[[SignedTransaction, Node], Awaitable[str | None]],
        violated: Callable[[SignedTransaction, str, int | None, datetime], Emit],
    ):
        self.state = state
        self.node_for = node_for
        self.watch_for = watch_for
        self.transition = transition
        self.send_again = send_again
        self.violated = violated  # `Outcomes.finality_violated`: the audit event and the metric

    async def look(self, signed: SignedTransaction, at: datetime) -> tuple[list[Emit], SignedTransaction] | None:
        """One look at a decided record that is not final: what to publish and the new record
        (final; re-reported at another block; or broadcast again), or None while nothing changed.
        A final one is looked at while it is watched, and after a restart (`_lost`)."""
        chain = REGISTRY.get(signed.chain)
        node, watch = self.node_for(signed.chain), self.watch_for(signed.chain)
        if signed.final:
            return await self._lost(signed, node, watch, at)
        if signed.status in ("mined", "failed"):
            return await self._included(signed, chain, node, watch, at)
        return await self._nonce_used(signed, chain, node, watch, at)

    async def _included(
        self, signed: SignedTransaction, chain: Chain, node: Node, watch: blocks.BlockWatch, at: datetime
    ) -> tuple[list[Emit], SignedTransaction] | None:
        if signed.block_number is None:  # failed before the chain saw it (the node refused it): nothing can change
            return self.transition(signed, {"status": signed.status, "final": True}, at, action=AuditAction.TX_FINAL)
        if signed.block_hash is None:  # recorded before block hashes were: where the chain has it now
            moved = await receipt_of(node, hashes_of(self.state, signed))
            if moved is not None:
                return self.transition(signed, included(self.state, signed, *moved), at)
        elif await watch.hash_at(signed.block_number) == (signed.block_hash or "").lower():
            if signed.block_number > await watch.finalized(chain):
                return None
            ok = signed.status == "mined"
            # Settled: the worst case reserved at signing gives way to what the chain took.
            agent = self.state.agent(signed.agent_id)
            agent.settle_spend(signed.intent_id, (signed.value_wei if ok else 0) + (signed.fee_wei or 0), executed=ok)
            return self.transition(signed, {"status": signed.status, "final": True}, at, action=AuditAction.TX_FINAL)
        left = f"block {signed.block_number} ({signed.block_hash}) that held {signed.tx_hash} left the chain"
        return await self._where_now(signed, node, at, left)

    async def _lost(
        self, signed: SignedTransaction, node: Node, watch: blocks.BlockWatch, at: datetime
    ) -> tuple[list[Emit], SignedTransaction] | None:
        """A final record, watched or after a restart: does the chain still hold it? A chain should
        never give up a final block, but one can (a reorg deeper than its finality) and a node can
        lose its last blocks (a local node restarted from the state it saved a second earlier: a
        power loss). Then the record must not go on saying so: the violation is reported, the
        record put right as for a reorg, and its worst case reserved again, since it can be mined
        again."""
        depth = None  # how deep under the head the block it was final in was, when found gone
        if signed.status in ("mined", "failed") and signed.block_number is not None:
            if await watch.hash_at(signed.block_number) == (signed.block_hash or "").lower():
                return None
            what = f"block {signed.block_number} ({signed.block_hash}) that held {signed.tx_hash}"
            depth = await watch.head() - signed.block_number + 1
        elif signed.status in ("replaced", "dropped"):
            if await watch.nonce(signed.from_) > signed.nonce:
                return await self._found(signed, node, at) if signed.status == "dropped" else None
            what = f"the transaction that used nonce {signed.nonce} of {signed.from_}"
        else:
            return None
        left = (
            f"the chain no longer holds {what}, which was final: finality was violated (a reorg deeper than "
            "the chain's finality, or its node lost blocks: restarted from older state?)"
        )
        looked = await self._where_now(signed, node, at, left, reopen=True)
        if looked is None:
            return None  # the watch's view lags the node's: looked at again on the next block
        self.state.agent(signed.agent_id).reserve_again(signed.intent_id, signed.max_spend_wei)
        return [self.violated(signed, left, depth, at), *looked[0]], looked[1]

    async def _found(
        self, signed: SignedTransaction, node: Node, at: datetime
    ) -> tuple[list[Emit], SignedTransaction] | None:
        """A dropped record whose transaction the chain now holds in a block (its node found again
        the block it had lost): re-reported there, followed until that block is final, and its spend
        settled to what the chain took. None while no transaction of its intent has a receipt."""
        if await receipt_of(node, hashes_of(self.state, signed)) is None:
            return None
        left = f"it was reported dropped (nonce {signed.nonce} used, none of its transactions in a block)"
        return await self._where_now(signed, node, at, left, reopen=True)

    async def _where_now(
        self, signed: SignedTransaction, node: Node, at: datetime, left: str, reopen: bool = False
    ) -> tuple[list[Emit], SignedTransaction] | None:
        """Its block left the chain: re-reported where the chain has it now, else sent again."""
        moved = await receipt_of(node, hashes_of(self.state, signed))
        if moved is not None:
            update = included(self.state, signed, *moved)
            if update["block_hash"].lower() == (signed.block_hash or "").lower():
                return None  # the watch's view lags the node's: looked at again on the next block
            log.warning("%s: %s; now in block %d", signed.intent_id, left, update["block_number"])
            error = f"{left}; it is now in block {update['block_number']}"
            update = {**update, "final": False, "reorgs": signed.reorgs + 1, "error": error}
            return self.transition(signed, update, at, AuditAction.TX_REORGED, reopen=reopen)
        return await self._send_again(signed, node, at, left, reopen)

    async def _nonce_used(
        self, signed: SignedTransaction, chain: Chain, node: Node, watch: blocks.BlockWatch, at: datetime
    ) -> tuple[list[Emit], SignedTransaction] | None:
        if await watch.nonce(signed.from_) <= signed.nonce:
            left = f"the transaction that used nonce {signed.nonce} of {signed.from_} left the chain"
            return await self._send_again(signed, node, at, left)
        if await watch.nonce(signed.from_, await watch.finalized(chain)) <= signed.nonce:
            return None
        if signed.status == "replaced":
            # Another intent's transaction used the nonce at a final block, and counts for that
            # intent: nothing this one would have spent does.
            self.state.agent(signed.agent_id).settle_spend(signed.intent_id, 0, executed=False)
        # Dropped: what used the nonce is not known (a block the node lost may have held this very
        # transaction, and the account's state spent it), so its worst case stays counted.
        return self.transition(signed, {"status": signed.status, "final": True}, at, action=AuditAction.TX_FINAL)

    async def _send_again(
        self, signed: SignedTransaction, node: Node, at: datetime, left: str, reopen: bool = False
    ) -> tuple[list[Emit], SignedTransaction]:
        """Out of the chain: the same bytes again (still valid: same nonce, same fees), back to
        broadcast; the tracker bumps them if they wait too long, under the policy in force."""
        refused = await self.send_again(signed, node)
        log.warning("%s: %s; sent again%s", signed.intent_id, left, f" (the node said: {refused})" if refused else "")
        note = "the same signed bytes were sent again" + (f" (the node said: {refused})" if refused else "")
        update = {
            "status": "broadcast",
            "block_number": None,
            "block_hash": None,
            "gas_used": None,
            "fee_wei": None,
            "replaced_by": None,
            "final": False,
            "reorgs": signed.reorgs + 1,
            "error": f"{left}; {note}",
        }
        return self.transition(signed, update, at, action=AuditAction.TX_REORGED, reopen=reopen)


def hashes_of(state: AgentStates, signed: SignedTransaction) -> list[str]:
    """Every transaction signed for the intent, the record's own last (a fee bump may have been
    outrun by an earlier attempt: any of them may be the one mined)."""
    attempts = state.agent(signed.agent_id).attempts(signed.intent_id)
    return [h for h in attempts if h != signed.tx_hash] + [signed.tx_hash]


async def receipt_of(node: Node, hashes: list[str]) -> tuple[str, dict[str, Any]] | None:
    """The receipt of any of ``hashes`` (the newest asked first, the likeliest): (its hash, the
    receipt), or None if none has one."""
    for tx_hash in reversed(hashes):
        receipt = await node.call("eth_getTransactionReceipt", tx_hash)
        if receipt is not None:
            return tx_hash, receipt
    return None


def included(state: AgentStates, signed: SignedTransaction, tx_hash: str, receipt: dict[str, Any]) -> dict[str, Any]:
    """The record's fields for a receipt of ``tx_hash``: mined (executed) or failed (reverted), at
    its block, with the fee the chain took."""
    agent = state.agent(signed.agent_id)
    winner = (
        signed if tx_hash == signed.tx_hash else SignedTransaction.from_bytes(agent.attempts(signed.intent_id)[tx_hash])
    )
    ok = int(receipt["status"], 16) == 1
    gas_used = int(receipt["gasUsed"], 16)
    fee = gas_used * int(receipt["effectiveGasPrice"], 16)
    # A blob transaction also paid blob gas × blob gas price (EIP-4844 receipt fields).
    fee += int(receipt.get("blobGasUsed") or "0x0", 16) * int(receipt.get("blobGasPrice") or "0x0", 16)
    hashes = [h for h in agent.attempts(signed.intent_id) if h != tx_hash]
    if signed.tx_hash != tx_hash and signed.tx_hash not in hashes:
        hashes.append(signed.tx_hash)
    return {
        "signed_tx": winner.signed_tx,
        "tx_hash": tx_hash,
        "max_spend_wei": winner.max_spend_wei,
        "replaces": tuple(hashes),
        "status": "mined" if ok else "failed",
        "block_number": int(receipt["blockNumber"], 16),
        "block_hash": receipt["blockHash"],
        "gas_used": gas_used,
        "fee_wei": fee,
        "error": None if ok else "execution reverted",
    }
