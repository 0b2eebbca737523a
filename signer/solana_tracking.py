"""A broadcast Solana transaction followed to a final status, and every copy of its message counted.

Solana has no nonces: a transaction is valid while its recent blockhash is (about 150 blocks), and
the same signed bytes may be sent any number of times (the network keeps one). So the signer
sends them, then looks at the transaction's status about twice a second:

- seen by the node: ``processed``, ``confirmed``, then ``finalized`` (final); ``failed`` when it ran
  and failed (its fee was paid), final once finalized too;
- not seen, its blockhash still valid: the same bytes are sent again (every ``RESEND_US``);
- not seen, its blockhash expired at the node's newest and at its finalized slot, and no copy of
  its message landed: it can never land. It is ``dropped`` (final) and what it reserved in the
  signer's record is released. It is never signed again: a new intent is.
- seen, then not seen (the node's fork left it): ``broadcast`` again, and sent again.

A transaction is its message, not one slot's id. When another key pays the fee, its holder can
sign the same message again (Ed25519 admits many signatures by one key): a copy with another id
that carries the agent's signature, which Warden finds among the transactions naming the agent's
address (`runtime.solana.history`, each read and compared: `svm.transactions.carries`). A copy
that landed while the signed bytes did not is what the record follows (its id, bytes, slot and
status); each further landing counts against the agent's limits once more, and is said loudly
(``solana.landed_again``, ``warden_solana_repeat_landings_total``). Those are looked for until
the blockhash expired, sign-only transactions included (`SolanaTracking.keep`).

Every change is signed, recorded and published through ``emit`` (`signer.outcomes`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from solders.signature import Signature

from runtime import solana
from runtime.clock import Clock, to_us
from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas.emit import Emit
from schemas.outcomes import SignedSolanaTransaction
from signer.outcomes import Outcomes
from signer.state import AgentStates, SignerState
from svm import transactions

log = logging.getLogger("warden.signer")

LOOK_EVERY_S = 0.5
RESEND_US = 2_000_000
# How often copies of a message are looked for while its blockhash is valid.
COPIES_EVERY_US = 2_000_000
# A copy lands after Warden signed: the agent's history is read back to the signature, less this
# for the node's clock against the signer's.
CLOCK_MARGIN_S = 120
# After a restart, sign-only and final transactions signed this recently are watched for copies
# again (a blockhash lives about 150 blocks: a minute or two).
COPIES_WATCH_US = 10 * 60 * 1_000_000
_SEEN = ("processed", "confirmed", "finalized", "failed")


def copies_possible(signed: SignedSolanaTransaction) -> bool:
    """Whether another transaction can carry the agent's signature over this message: only when
    another key pays the fee. When the agent pays, the transaction's id is the agent's signature,
    and Warden's signature over one message is one (Ed25519 signing is deterministic)."""
    return transactions.read(base64.b64decode(signed.signed_tx)).fee_payer != signed.from_


class SolanaTracking:
    def __init__(self, state: AgentStates, node_for: Callable[[str], Node], outcomes: Outcomes):
        self.state = state
        self.node_for = node_for
        self.outcomes = outcomes
        self._sent_us: dict[str, int] = {}  # intent id → when its bytes were last sent
        self._looked_us: dict[str, int] = {}  # intent id → when copies of its message were last looked for
        # intent id → transaction id → its bytes when it is a copy of the intent's message, else None
        self._read: dict[str, dict[str, bytes | None]] = {}
        self._counted: dict[str, set[str]] = {}  # intent id → the landings counted again and said
        self._first: dict[str, str] = {}  # intent id → the landing its reservation counts, when its record names none

    async def send(self, signed: SignedSolanaTransaction, now: datetime) -> tuple[list[Emit], SignedSolanaTransaction]:
        """The signed bytes to the node, then ``broadcast``. A node that refuses or cannot be
        reached is not the end: the tracker sends them again until the blockhash expires."""
        error = await self._send(signed, to_us(now))
        return self.outcomes.solana_status(signed, {"status": "broadcast", "error": error}, now)

    async def resume(
        self, state: SignerState, clock: Clock, _publish: Callable[[list[Emit]], Awaitable[None]]
    ) -> list[SignedSolanaTransaction]:
        """A partition taken over: its broadcast transactions not final yet (their bytes are sent
        again while their blockhash is valid; no nonce to reconcile, nothing to publish first), and
        the final ones of the last minutes another key pays for, whose message's copies may still
        land (`count_landings`): the records to follow."""
        followed = [SignedSolanaTransaction.from_bytes(raw) for raw in state.solana_open()]
        for raw in state.solana_final_since(to_us(clock()) - COPIES_WATCH_US):
            final = SignedSolanaTransaction.from_bytes(raw)
            if copies_possible(final):
                followed.append(final)
        return followed

    def followed_unsent(self, signed: SignedSolanaTransaction) -> bool:
        """A sign-only transaction (final once signed) whose message's copies may land: followed
        once published, never sent."""
        return signed.final

    async def keep(
        self, signed: SignedSolanaTransaction, now: Clock, emit: Callable[[list[Emit]], Awaitable[object]]
    ) -> SignedSolanaTransaction:
        """Followed until final and, when copies of its message are possible (`copies_possible`),
        until its blockhash expired with each landing counted; every change through ``emit``. The
        final record."""
        watching = copies_possible(signed)
        while not signed.final or watching:
            await asyncio.sleep(LOOK_EVERY_S)
            try:
                if not signed.final:
                    looked = await self.look(signed, now())
                    if looked is not None:
                        emits, signed = looked
                        await emit(emits)
                at = now()
                if watching and to_us(at) - self._looked_us.get(signed.intent_id, 0) >= COPIES_EVERY_US:
                    counted, watching = await self.count_landings(signed, at)
                    if counted:
                        await emit(counted)
            except (RpcError, RpcUnavailable) as exc:
                log.warning(
                    "following Solana transaction of intent %s: the node did not answer (%s)", signed.intent_id, exc
                )
                continue
            except Exception:  # noqa: BLE001 - a tracker that dies leaves its intent without a final outcome
                log.exception("following Solana transaction of intent %s failed; retrying", signed.intent_id)
                continue
        for held in (self._sent_us, self._looked_us, self._read, self._counted, self._first):
            held.pop(signed.intent_id, None)
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
        switch: dict[str, object] = {}
        if status is None and copies_possible(signed):
            switch, status = await self._landed_copy(node, signed, at)
        if status is None:
            valid = await solana.blockhash_valid(node, signed.recent_blockhash, "processed")
            if not valid and await solana.blockhash_valid(node, signed.recent_blockhash, "finalized"):
                return None  # expired at the newest slot only: a copy may sit in a slot not confirmed yet
            if not valid:
                # Looked for once more: it, or a copy, may have landed just before the blockhash expired.
                (status,) = await solana.statuses(node, [tx_signature])
                if status is None and copies_possible(signed):
                    switch, status = await self._landed_copy(node, signed, at, now=True)
            if status is None and not valid:
                self.state.agent(signed.agent_id).void_assets(signed.intent_id)
                return self.outcomes.solana_status(
                    signed,
                    {
                        "status": "dropped",
                        "final": True,
                        "slot": None,
                        "error": "its blockhash expired before it, or any copy of its message, landed: it can never "
                        "land, and nothing was spent; submit a new intent with a recent blockhash",
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
        if not switch and (new, final, status.slot, error) == (signed.status, signed.final, signed.slot, signed.error):
            return None
        return self.outcomes.solana_status(
            signed, {"status": new, "final": final, "slot": status.slot, "error": error, **switch}, at
        )

    async def _landed_copy(
        self, node: Node, signed: SignedSolanaTransaction, at: datetime, now: bool = False
    ) -> tuple[dict[str, object], solana.Status | None]:
        """When the signed bytes have not landed and a copy of their message has (the first by
        slot, kept once chosen): what the record becomes to follow it (its id and bytes) and its
        status. Looked for every ``COPIES_EVERY_US``, or ``now``."""
        if not now and to_us(at) - self._looked_us.get(signed.intent_id, 0) < COPIES_EVERY_US:
            return {}, None
        landed = await self._copies(node, signed, at)
        if not landed:
            return {}, None
        chosen = self._first.setdefault(signed.intent_id, landed[0][0].signature)
        first, raw = next((found for found in landed if found[0].signature == chosen), landed[0])
        switch: dict[str, object] = {"tx_signature": first.signature, "signed_tx": base64.b64encode(raw).decode()}
        return switch, solana.Status(first.slot, first.commitment, first.error)

    async def count_landings(self, signed: SignedSolanaTransaction, at: datetime) -> tuple[list[Emit], bool]:
        """Every landing of the agent's signed message after the one its reservation counts (the
        one the record follows, else the first by slot): counted against the agent's limits once
        more when it executed, and said (`Outcomes.solana_landed_again`), each once. Returns what
        to publish, and whether copies can still land (its blockhash is valid at the node's newest
        or its finalized slot: looked at before the history, so the last look is complete)."""
        node = self.node_for(signed.chain)
        open_ = await solana.blockhash_valid(node, signed.recent_blockhash, "processed") or (
            await solana.blockhash_valid(node, signed.recent_blockhash, "finalized")
        )
        landed = await self._copies(node, signed, at)
        ids = [copy.signature for copy, _ in landed]
        counts = signed.tx_signature
        if counts not in ids and ids:  # kept once chosen: a landing read later may sort before it
            counts = self._first.setdefault(signed.intent_id, ids[0])
        said = self._counted.setdefault(signed.intent_id, set())
        emits: list[Emit] = []
        for copy, _ in landed:
            if copy.signature == counts or copy.signature in said:
                continue
            said.add(copy.signature)
            if copy.error is None:  # a copy that failed moved nothing of the agent's: another key paid its fee
                self.state.agent(signed.agent_id).count_landing(signed.intent_id, copy.signature, to_us(at))
            emits.append(self.outcomes.solana_landed_again(signed, copy, counts, len(landed), at))
        return emits, open_

    async def _copies(
        self, node: Node, signed: SignedSolanaTransaction, at: datetime
    ) -> list[tuple[solana.Landed, bytes]]:
        """The transactions the node holds (confirmed) that carry the agent's signature over the
        intent's message, each with its bytes, by slot."""
        self._looked_us[signed.intent_id] = to_us(at)
        message = transactions.read(base64.b64decode(signed.signed_tx)).message
        mine = bytes(Signature.from_string(signed.signature))
        since_s = int(signed.signed_at.timestamp()) - CLOCK_MARGIN_S
        read = self._read.setdefault(signed.intent_id, {})
        out = []
        for landed in await solana.history(node, signed.from_, since_s):
            if landed.signature not in read:
                raw = await solana.transaction(node, landed.signature)
                if raw is None:  # listed before the node serves it: read at the next look
                    continue
                read[landed.signature] = raw if transactions.carries(raw, message, signed.from_, mine) else None
            raw = read[landed.signature]
            if raw is not None:
                out.append((landed, raw))
        return sorted(out, key=lambda found: (found[0].slot, found[0].signature))

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
