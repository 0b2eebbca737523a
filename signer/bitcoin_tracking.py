"""A broadcast Bitcoin transaction followed to a final status.

Bitcoin has no nonces and no expiry: a signed transaction is valid for as long as the outputs it
spends are unspent. So the signer sends it, then asks the node about it every second:

- held in the mempool: ``broadcast``; sent again every ``RESEND_US`` when the node does not hold it
  (a node that restarted, or refused it for a reason that passes, such as a full mempool);
- in a block: ``mined``, and final once the network's confirmations are built on that block
  (`schemas.chains.Chain.confirmations`: blocks on top; the node counts its block as the first);
- held nowhere while an output it spends is spent: another transaction took that output (a
  replacement the agent signed, or a double spend), so it can never be mined. It is
  ``conflicted`` (final) and what it reserved in the signer's record is released;
- mined, then held nowhere (its block left the chain): ``broadcast`` again, and sent again.

Every change is signed, recorded and published through ``emit`` (`signer.outcomes`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from runtime import bitcoin
from runtime.clock import Clock, to_us
from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas.emit import Emit
from schemas.outcomes import SignedBitcoinTransaction
from signer.outcomes import Outcomes
from signer.state import AgentStates, SignerState

log = logging.getLogger("warden.signer")

LOOK_EVERY_S = 1.0
RESEND_US = 5_000_000


class BitcoinTracking:
    def __init__(
        self,
        state: AgentStates,
        node_for: Callable[[str], Node],
        outcomes: Outcomes,
        confirmations: Callable[[str], int],
    ):
        self.state = state
        self.node_for = node_for
        self.outcomes = outcomes
        # The blocks on top of a transaction's block that make it final, per network.
        self.confirmations = confirmations
        self._sent_us: dict[str, int] = {}  # intent id → when its bytes were last sent

    async def send(
        self, signed: SignedBitcoinTransaction, now: datetime
    ) -> tuple[list[Emit], SignedBitcoinTransaction]:
        """The signed transaction to the node, then ``broadcast``. A node that refuses it or cannot
        be reached is not the end: the tracker sends it again while its inputs are unspent."""
        error = await self._send(signed, to_us(now))
        return self.outcomes.bitcoin_status(signed, {"status": "broadcast", "error": error}, now)

    async def resume(
        self, state: SignerState, _clock: Clock, _publish: Callable[[list[Emit]], Awaitable[None]]
    ) -> list[SignedBitcoinTransaction]:
        """A partition taken over: its broadcast transactions not final yet, to follow."""
        return [SignedBitcoinTransaction.from_bytes(raw) for raw in state.bitcoin_open()]

    def followed_unsent(self, _signed: SignedBitcoinTransaction) -> bool:
        """A sign-only Bitcoin transaction is the agent's to send: nothing to follow."""
        return False

    async def keep(
        self, signed: SignedBitcoinTransaction, now: Clock, emit: Callable[[list[Emit]], Awaitable[object]]
    ) -> SignedBitcoinTransaction:
        """Followed until final, every change through ``emit``. The final record."""
        while not signed.final:
            await asyncio.sleep(LOOK_EVERY_S)
            try:
                looked = await self.look(signed, now())
            except (RpcError, RpcUnavailable) as exc:
                log.warning(
                    "following Bitcoin transaction of intent %s: the node did not answer (%s)", signed.intent_id, exc
                )
                continue
            except Exception:  # noqa: BLE001 - a tracker that dies leaves its intent without a final outcome
                log.exception("following Bitcoin transaction of intent %s failed; retrying", signed.intent_id)
                continue
            if looked is not None:
                emits, signed = looked
                await emit(emits)
        self._sent_us.pop(signed.intent_id, None)
        return signed

    async def look(
        self, signed: SignedBitcoinTransaction, at: datetime
    ) -> tuple[list[Emit], SignedBitcoinTransaction] | None:
        """One look at the node: the new record and what to publish, or None (nothing changed)."""
        node = self.node_for(signed.chain)
        status = await bitcoin.transaction(node, signed.txid)
        if status is None:
            taken = await self._input_taken(node, signed)
            # Looked at once more: it may have been mined between the two questions.
            status = await bitcoin.transaction(node, signed.txid)
            if status is None and taken is not None:
                self.state.agent(signed.agent_id).void_assets(signed.intent_id)
                return self.outcomes.bitcoin_status(
                    signed,
                    {
                        "status": "conflicted",
                        "final": True,
                        "block_hash": None,
                        "confirmations": 0,
                        "error": f"another transaction spent {taken}, an output it spends: it can never be mined, and "
                        "nothing it reserved is counted",
                    },
                    at,
                )
        if status is None:
            if signed.status == "mined":
                await self._send(signed, to_us(at))
                gone = f"its block {signed.block_hash} left the chain; sent again"
                update = {"status": "broadcast", "block_hash": None, "confirmations": 0, "error": gone}
                return self.outcomes.bitcoin_status(signed, update, at)
            if to_us(at) - self._sent_us.get(signed.intent_id, 0) >= RESEND_US:
                error = await self._send(signed, to_us(at))
                if error != signed.error:
                    return self.outcomes.bitcoin_status(signed, {"error": error}, at)
            return None
        if status.confirmations == 0:
            return None if signed.status == "broadcast" else self.outcomes.bitcoin_status(signed, _in_mempool(), at)
        final = status.confirmations - 1 >= self.confirmations(signed.chain)
        new = ("mined", final, status.block_hash, status.confirmations, None)
        if new == (signed.status, signed.final, signed.block_hash, signed.confirmations, signed.error):
            return None
        update = dict(zip(("status", "final", "block_hash", "confirmations", "error"), new, strict=True))
        return self.outcomes.bitcoin_status(signed, update, at)

    async def _input_taken(self, node: Node, signed: SignedBitcoinTransaction) -> str | None:
        """The first output the transaction spends that the node holds spent (mempool included), or None."""
        for outpoint in signed.inputs:
            txid, vout = outpoint.rsplit(":", 1)
            if await bitcoin.tx_out(node, txid, int(vout), include_mempool=True) is None:
                return outpoint
        return None

    async def _send(self, signed: SignedBitcoinTransaction, now_us: int) -> str | None:
        """The signed transaction to the node; None when it took it, else what it said."""
        self._sent_us[signed.intent_id] = now_us
        try:
            await bitcoin.send_raw(self.node_for(signed.chain), bytes.fromhex(signed.signed_tx))
        except RpcError as exc:
            return f"the node refused it ({exc.message}); sent again while its inputs are unspent"
        except RpcUnavailable as exc:
            return f"the node could not be reached ({exc}); sent again while its inputs are unspent"
        return None


def _in_mempool() -> dict[str, object]:
    return {"status": "broadcast", "block_hash": None, "confirmations": 0, "error": None}
