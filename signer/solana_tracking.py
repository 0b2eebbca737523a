"""A broadcast Solana transaction followed to a final status.

Solana has no nonces: a transaction is valid while its recent blockhash is (about 150 blocks), and
the same signed bytes may be sent any number of times (the network keeps one). So the signer
sends them, then looks at the transaction's status about twice a second:

- seen by the node: ``processed``, ``confirmed``, then ``finalized`` (final); ``failed`` when it ran
  and failed (its fee was paid), final once finalized too;
- not seen, its blockhash still valid: the same bytes are sent again (every ``RESEND_US``);
- not seen, its blockhash expired: it can never land. It is ``dropped`` (final) and what it
  reserved in the signer's record is released. It is never signed again: a new intent is.
- seen, then not seen (the node's fork left it): ``broadcast`` again, and sent again.

Every change is signed, recorded and published through ``emit`` (`signer.outcomes`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from runtime import solana
from runtime.clock import Clock, to_us
from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas.emit import Emit
from schemas.outcomes import SignedSolanaTransaction
from signer.state import AgentStates

log = logging.getLogger("warden.signer")

LOOK_EVERY_S = 0.5
RESEND_US = 2_000_000
_SEEN = ("processed", "confirmed", "finalized", "failed")


class SolanaTracking:
    def __init__(self, state: AgentStates, node_for: Callable[[str], Node], outcomes):
        self.state = state
        self.node_for = node_for
        self.outcomes = outcomes
        self._sent_us: dict[str, int] = {}  # intent id → when its bytes were last sent

    async def send(self, signed: SignedSolanaTransaction, now: datetime) -> tuple[list[Emit], SignedSolanaTransaction]:
        """The signed bytes to the node, then ``broadcast``. A node that refuses or cannot be
        reached is not the end: the tracker sends them again until the blockhash expires."""
        error = await self._send(signed, to_us(now))
        return self.outcomes.solana_status(signed, {"status": "broadcast", "error": error}, now)

    async def keep(
        self, signed: SignedSolanaTransaction, now: Clock, emit: Callable[[list[Emit]], Awaitable[object]]
    ) -> SignedSolanaTransaction:
        """Followed until final, every change through ``emit``; the final record."""
        while not signed.final:
            await asyncio.sleep(LOOK_EVERY_S)
            try:
                looked = await self.look(signed, now())
            except (RpcError, RpcUnavailable) as exc:
                log.warning(
                    "following Solana transaction of intent %s: the node did not answer (%s)", signed.intent_id, exc
                )
                continue
            except Exception:  # noqa: BLE001 - a tracker that dies leaves its intent without a final outcome
                log.exception("following Solana transaction of intent %s failed; retrying", signed.intent_id)
                continue
            if looked is not None:
                emits, signed = looked
                await emit(emits)
        self._sent_us.pop(signed.intent_id, None)
        return signed

    async def look(
        self, signed: SignedSolanaTransaction, at: datetime
    ) -> tuple[list[Emit], SignedSolanaTransaction] | None:
        """One look at the node: the new record and what to publish, or None (nothing changed)."""
        tx_signature = signed.tx_signature
        if tx_signature is None:  # a broadcast needs every signature, the fee payer's too (`Signer._sign_solana`)
            raise ValueError(
                f"the Solana transaction of intent {signed.intent_id} has no fee payer's signature to follow"
            )
        node = self.node_for(signed.chain)
        (status,) = await solana.statuses(node, [tx_signature])
        if status is None:
            valid = (await node.call("isBlockhashValid", signed.recent_blockhash, {"commitment": "processed"}))["value"]
            if not valid:
                # Looked for once more: it may have landed just before the blockhash expired.
                (status,) = await solana.statuses(node, [tx_signature])
            if status is None and not valid:
                self.state.agent(signed.agent_id).void_assets(signed.intent_id)
                return self.outcomes.solana_status(
                    signed,
                    {
                        "status": "dropped",
                        "final": True,
                        "slot": None,
                        "error": "its blockhash expired before it landed: it can never land, and nothing was spent; "
                        "submit a new intent with a recent blockhash",
                    },
                    at,
                )
            if status is None:
                if signed.status in _SEEN:
                    gone = f"the node no longer holds it (it was {signed.status} in slot {signed.slot}); sent again"
                    await self._send(signed, to_us(at))
                    return self.outcomes.solana_status(signed, {"status": "broadcast", "slot": None, "error": gone}, at)
                if to_us(at) - self._sent_us.get(signed.intent_id, 0) >= RESEND_US:
                    await self._send(signed, to_us(at))
                return None
        new = "failed" if status.error is not None else status.commitment
        final = status.commitment == "finalized"
        error = None if status.error is None else f"it ran and failed: {status.error}"
        if (new, final, status.slot, error) == (signed.status, signed.final, signed.slot, signed.error):
            return None
        return self.outcomes.solana_status(
            signed, {"status": new, "final": final, "slot": status.slot, "error": error}, at
        )

    async def _send(self, signed: SignedSolanaTransaction, now_us: int) -> str | None:
        """The same signed bytes to the node; None when it took them, else what it said."""
        self._sent_us[signed.intent_id] = now_us
        try:
            await solana.send(self.node_for(signed.chain), base64.b64decode(signed.signed_tx))
        except RpcError as exc:
            return f"the node refused it ({exc.message}); sent again until its blockhash expires"
        except RpcUnavailable as exc:
            return f"the node could not be reached ({exc}); sent again until its blockhash expires"
        return None
