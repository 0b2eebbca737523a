"""A broadcast Bitcoin transaction followed to a final status.

Bitcoin has no nonces and no expiry: a signed transaction is valid for as long as the outputs it
spends are unspent. So the signer sends it, then asks the node about it every second:

- held in the mempool: ``broadcast``; sent again every ``RESEND_US`` when the node does not hold it
  (a node that restarted, or refused it for a reason that passes, such as a full mempool);
- in a block: ``mined``, and final once the network's confirmations are built on that block
  (`schemas.chains.Chain.confirmations`: blocks on top; the node counts its block as the first);
- held nowhere, and a transaction the node shows (its address index, `inputs_elsewhere`) spends
  one of its inputs: once that transaction is final it can never be mined. It is ``conflicted``
  (final) and what it held in the signer's record is released; until then it stays as it was,
  its ``error`` naming the spender;
- held nowhere, and the node knows none of the transactions that made its inputs: ``unknown``
  (not final). The node is on another chain than the one it was signed on (btcd started a new
  regtest chain, or a node still syncing): a null ``gettxout`` from such a node says nothing
  about a spend, so nothing is released; it is asked again, and followed on when the node knows
  its inputs again;
- mined, then held nowhere (its block left the chain): ``broadcast`` again, and sent again.

Its spend is held in the signer's windows from signing, whatever its age (a lock time can keep
it out of a block for days), until it is mined at a final block (then it counts from that
moment, as any spend) or conflicted (then nothing counts): `AgentState.bitcoin_closed`.

Every change is signed, recorded and published through ``emit`` (`signer.outcomes`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from btc import addresses, wallet
from rules import bitcoin as bitcoin_rules
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
            inputs = await inputs_elsewhere(node, signed)
            # Looked at once more: it may have been mined between the questions.
            status = await bitcoin.transaction(node, signed.txid)
            if status is None:
                return await self._held_nowhere(signed, inputs, at)
        if status.confirmations == 0:
            return None if signed.status == "broadcast" else self.outcomes.bitcoin_status(signed, _in_mempool(), at)
        final = status.confirmations - 1 >= self.confirmations(signed.chain)
        new = ("mined", final, status.block_hash, status.confirmations, None)
        if new == (signed.status, signed.final, signed.block_hash, signed.confirmations, signed.error):
            return None
        if final:  # what it spends counts from now, as any spend: its bytes can spend nothing more
            took = int(signed.spend.get(bitcoin_rules.BTC, "0"))
            self.state.agent(signed.agent_id).bitcoin_closed(signed.intent_id, to_us(at), _asset(signed), took)
        update = dict(zip(("status", "final", "block_hash", "confirmations", "error"), new, strict=True))
        return self.outcomes.bitcoin_status(signed, update, at)

    async def _held_nowhere(
        self, signed: SignedBitcoinTransaction, inputs: Inputs, at: datetime
    ) -> tuple[list[Emit], SignedBitcoinTransaction] | None:
        """The node holds the transaction neither in a block nor in its mempool: conflicted once a
        transaction that spends one of its inputs is final; unknown while the node knows nothing of
        its inputs (another chain); else sent again, as a block that left the chain or a node that
        refused it for a while calls for."""
        if inputs.taken is not None and inputs.taken_final(self.confirmations(signed.chain)):
            self.state.agent(signed.agent_id).bitcoin_closed(signed.intent_id, to_us(at), _asset(signed), None)
            outpoint, spender = inputs.taken
            update = {
                "status": "conflicted",
                "final": True,
                "block_hash": None,
                "confirmations": 0,
                "error": f"another transaction ({spender.txid}) spent {outpoint}, an output it spends: it can never "
                "be mined, and nothing it reserved is counted",
            }
            return self.outcomes.bitcoin_status(signed, update, at)
        if inputs.chain_gone:
            update = {"status": "unknown", "block_hash": None, "confirmations": 0, "error": inputs.gone_reason()}
            return None if _same(signed, update) else self.outcomes.bitcoin_status(signed, update, at)
        if signed.status == "mined":
            await self._send(signed, to_us(at))
            gone = f"its block {signed.block_hash} left the chain; sent again"
            update = {"status": "broadcast", "block_hash": None, "confirmations": 0, "error": gone}
            return self.outcomes.bitcoin_status(signed, update, at)
        if inputs.taken is not None:  # spent by a transaction not final yet: this one may still be mined
            update = {"status": "broadcast", "error": inputs.taken_reason()}
            return None if _same(signed, update) else self.outcomes.bitcoin_status(signed, update, at)
        if to_us(at) - self._sent_us.get(signed.intent_id, 0) >= RESEND_US or signed.status == "unknown":
            error = await self._send(signed, to_us(at))
            if (signed.status, signed.error) != ("broadcast", error):
                return self.outcomes.bitcoin_status(signed, {"status": "broadcast", "error": error}, at)
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


def _asset(signed: SignedBitcoinTransaction) -> str:
    return bitcoin_rules.asset_key(signed.chain)


def _same(signed: SignedBitcoinTransaction, update: dict[str, object]) -> bool:
    """Whether ``signed`` says already what ``update`` would."""
    return all(getattr(signed, name) == value for name, value in update.items())


@dataclass(frozen=True)
class Inputs:
    """What the node shows of the outputs a transaction it holds nowhere spends: the first one
    another transaction spends (``taken``: that input and the spender, the deepest if several), and
    those it holds neither unspent nor spent by a transaction it shows (``missing``) with whether
    it knows none of the transactions that made them (``chain_gone``: its chain is not the one the
    transaction was signed on)."""

    taken: tuple[str, bitcoin.Spender] | None = None
    missing: tuple[str, ...] = ()
    chain_gone: bool = False

    def taken_final(self, confirmations: int) -> bool:
        """Whether the spender is final: ``confirmations`` blocks on top of its block."""
        return self.taken is not None and self.taken[1].confirmations - 1 >= confirmations

    def taken_reason(self) -> str:
        if self.taken is None:
            return ""
        outpoint, spender = self.taken
        where = "in the mempool" if spender.confirmations == 0 else f"{spender.confirmations} confirmation(s)"
        return (
            f"another transaction ({spender.txid}, {where}) spends {outpoint}, an output it spends: once that is "
            "final this one can never be mined; until then its spend stays counted"
        )

    def gone_reason(self) -> str:
        return (
            f"the node holds neither this transaction nor the transactions whose outputs it spends "
            f"({', '.join(self.missing)}): it is not on the chain this was signed on (a new chain, or a node still "
            "syncing). Nothing is decided: its spend stays counted, and the node is asked again"
        )


async def inputs_elsewhere(node: Node, signed: SignedBitcoinTransaction) -> Inputs:
    """`Inputs` of ``signed``, from the node: an input it holds unspent (its mempool included) is
    none of them; a spent one is looked for in the address index of the agent's addresses on the
    network (`runtime.bitcoin.spenders`); one no transaction seen spends is missing, and the chain
    is gone when the node knows none of the transactions that made the missing ones. A null
    ``gettxout`` alone says nothing: a node on another chain, or still syncing, answers it too."""
    spent = []
    for outpoint in signed.inputs:
        txid, vout = outpoint.rsplit(":", 1)
        if await bitcoin.tx_out(node, txid, int(vout), include_mempool=True) is None:
            spent.append(outpoint)
    if not spent:
        return Inputs()
    network = addresses.NETWORK_OF_CHAIN.get(signed.chain)
    found: dict[str, bitcoin.Spender] = {}
    if network is not None:
        for address in wallet.addresses(bytes.fromhex(signed.public_key), network):
            found |= await bitcoin.spenders(node, address, [o for o in spent if o not in found], signed.txid)
    taken = max(found.items(), key=lambda item: item[1].confirmations, default=None)
    missing = tuple(o for o in spent if o not in found)
    known = [o for o in missing if await bitcoin.transaction(node, o.rsplit(":", 1)[0]) is not None]
    return Inputs(taken, missing, bool(missing) and not known and taken is None)
