"""Tracking a broadcast transaction to a final status: sent, followed, receipts, gaps, fee bumps.

`Tracking.send` hands the signed bytes to the chain once; `Tracking.track` follows the transaction
until the chain says what became of it (mined, failed, replaced, dropped), through the state
machine in `signer.lifecycle`: sent again if the node lost it, replaced with a fee bump the current
policy allows (`signer.bump`), or reported stuck, with nonce gaps named. An outcome is only ever
what the chain said: while the node cannot answer, nothing is reported. `Tracking.keep` goes on
comparing a final record with the chain for a while (`lifecycle.FINAL_WATCH_US`): a chain that
gives up a final block gets the same bytes again, not a nonce gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from evm import transactions as txs
from runtime.clock import US_PER_SECOND, Clock, to_us
from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas.actions import AuditAction
from schemas.emit import Emit
from schemas.outcomes import SignedTransaction
from signer import blocks, finality, lifecycle
from signer.bump import FeeBump
from signer.judging import Judging
from signer.outcomes import Outcomes
from signer.signing import Sidecars, Signing
from signer.state import AgentStates, SignerState

log = logging.getLogger("warden.signer")
# How long a partition taken over waits for a chain that does not answer before the signer stops.
RECONCILE_S = 60.0
# A tracker asks for its receipt when its chain's block watch (signer.blocks) sees one of its
# transactions in a block. The nonce, the mempool and the replacement rules are looked at after
# a block is read (the nonce may have moved) or when the replacement delay or the nonce's settle
# time runs out, and at most once a second.
STEP_EVERY_US = US_PER_SECOND
# A final record this many blocks under the head is not looked for after a restart: a node that
# restarts from the state it saved a second earlier loses far fewer, even in a burst.
LOST_DEPTH = 256
# An idempotent copy looks at its original's record (local state) twice a second.
FOLLOW_EVERY_S = 0.5


@dataclass
class Tracked:
    """A transaction the tracker follows: its current record (a bump replaces it), when it
    was last sent, the hashes of every attempt, and since when the chain's nonce has been past it."""

    record: SignedTransaction
    sent_us: int
    hashes: list[str]  # every transaction signed for the intent, oldest first: any may be mined
    ticket: blocks.Ticket
    nonce_passed_us: int | None = None
    waiting: lifecycle.Wait | None = None  # what the last step said, if it said wait

    def attempt(self, tx_hash: str) -> None:
        """A new transaction for the intent (a fee bump): followed before it is sent, so the block
        that holds it wakes the tracker."""
        if tx_hash not in self.hashes:
            self.hashes.append(tx_hash)
            self.ticket.follow([tx_hash])


class Tracking:
    """The agent state that records what the chain did, each chain's node and block watch, the
    outcomes it reports through, the blob sidecars it sends, and the fee bump (which judges and
    signs again: ``judging``, ``signing``). A transaction not mined ``replace_after_us`` after it
    was sent is replaced, at most ``max_bumps`` times; ``persist`` makes a bump durable before
    it is sent."""

    def __init__(
        self,
        state: AgentStates,
        node_for: Callable[[str], Node],
        outcomes: Outcomes,
        sidecars: Sidecars,
        judging: Judging,
        signing: Signing,
        replace_after_us: int,
        max_bumps: int,
        persist: Callable[[str], Awaitable[None]],
    ):
        self.state = state
        self.node_for = node_for
        self.outcomes = outcomes
        self.sidecars = sidecars
        self.replace_after_us = replace_after_us
        self.max_bumps = max_bumps
        self.fee_bump = FeeBump(state, judging, signing, outcomes, persist, self.transition, self.send_again)
        self.finality = finality.Finality(
            state, node_for, self.watch_for, self.transition, self.send_again, outcomes.finality_violated
        )
        self._watches: dict[str, blocks.BlockWatch] = {}  # chain → its reader of new blocks
        self.watching_final = 0  # final records `keep` still compares with the chain

    def transition(
        self,
        signed: SignedTransaction,
        update: dict[str, Any],
        at: datetime,
        action: AuditAction | None = None,
        reopen: bool = False,
    ) -> tuple[list[Emit], SignedTransaction]:
        """`Outcomes.transition`; a final record ends the sidecar's keeping (a decided one that is not
        final may be reorged out and sent again; so may a final one a node lost, blobs aside)."""
        emits, result = self.outcomes.transition(signed, update, at, action, reopen)
        if result.final:
            self.sidecars.drop(signed.tx_hash)
        return emits, result

    async def follow(
        self,
        signed: SignedTransaction,
        now: Clock,
        emit: Callable[[list[Emit]], Awaitable[object]],
        resend: bool = False,
    ) -> SignedTransaction:
        """One transaction followed until its record is final: tracked to what the chain decided
        (`track`), then that decision to a final block (`confirm`); a reorg that takes it out of
        the chain sends the same bytes again, and it is tracked again."""
        if self.state.agent(signed.agent_id).original_of(signed.intent_id) is not None:
            return await self.track(signed, now, emit, resend)  # a copy follows its original to final
        while not signed.final:
            if signed.status in lifecycle.OPEN:
                signed = await self.track(signed, now, emit, resend)
                resend = False
            else:
                signed = await self.confirm(signed, now, emit)
        return signed

    async def keep(
        self, signed: SignedTransaction, now: Clock, emit: Callable[[list[Emit]], Awaitable[object]]
    ) -> None:
        """`follow` to final, then the final record compared with the chain for
        ``lifecycle.FINAL_WATCH_US`` (`watch_final`): one the chain gave up is followed again."""
        while True:
            signed = await self.follow(signed, now, emit)
            reopened = await self.watch_final(signed, now, emit)
            if reopened is None:
                return
            signed = reopened

    async def watch_final(
        self, signed: SignedTransaction, now: Clock, emit: Callable[[list[Emit]], Awaitable[object]]
    ) -> SignedTransaction | None:
        """A final record looked at again (`Finality.look`) whenever the chain's block watch sees
        a reorg it cannot follow, and every ``blocks.RECHECK_S``, for ``lifecycle.FINAL_WATCH_US``:
        the record the chain no longer holds, reopened (sent again, the violation reported), or
        None when the watch is over. A suspended task per record and no call per block: a look asks
        the node only for what the watch's last reading does not know. An idempotent copy looks at
        its original's record instead (`_original_reopened`)."""
        original_id = self.state.agent(signed.agent_id).original_of(signed.intent_id)
        watch = self.watch_for(signed.chain)
        ticket = watch.ticket(())  # no hashes: woken by a reorg (or a thread lost), never by a block
        until_us = to_us(now()) + lifecycle.FINAL_WATCH_US
        recheck_us = int(blocks.RECHECK_S * US_PER_SECOND)
        self.watching_final += 1
        try:
            while (wait_us := lifecycle.final_watch_wait_us(to_us(now()), until_us, recheck_us)) is not None:
                await ticket.wait(wait_us / US_PER_SECOND)
                ticket.take()
                try:
                    if original_id is not None:
                        looked = self._original_reopened(signed, original_id, now())
                    else:
                        looked = await self.finality.look(signed, now())
                except (RpcError, RpcUnavailable) as exc:
                    log.warning(
                        "watching final %s of intent %s: the node did not answer (%s)",
                        signed.tx_hash,
                        signed.intent_id,
                        exc,
                    )
                    continue
                except Exception:  # noqa: BLE001 - a watcher that dies leaves a lost final record unnoticed
                    log.exception("watching final %s of intent %s failed; retrying", signed.tx_hash, signed.intent_id)
                    continue
                if looked is not None:
                    await emit(looked[0])
                    return looked[1]
            return None
        finally:
            self.watching_final -= 1
            ticket.close()

    def _original_reopened(
        self, copy: SignedTransaction, original_id: str, at: datetime
    ) -> tuple[list[Emit], SignedTransaction] | None:
        """A final idempotent copy whose original the chain gave up (one more reorg since): the copy
        takes the original's record as it is now (reopened, or final again at another block) and
        follows it again (`_follow`), so neither says final at a block the chain no longer holds."""
        original = self._original_record(copy, original_id)
        if original.reorgs <= copy.reorgs:
            return None
        update = {name: getattr(original, name) for name in _FOLLOWED}
        return self.transition(copy, update, at, action=AuditAction.TX_REORGED, reopen=True)

    def _original_record(self, copy: SignedTransaction, original_id: str) -> SignedTransaction:
        """The record of the intent an idempotent copy answers with: one the signer signed (a copy
        is made only of a signed original, `Judging.reused_key`, and no signed row is ever deleted)."""
        raw = self.state.agent(copy.agent_id).signed_record(original_id)
        if raw is None:
            raise ValueError(f"intent {copy.intent_id} follows intent {original_id}, which has no signed record here")
        return SignedTransaction.from_bytes(raw)

    async def resume(
        self, state: SignerState, clock: Clock, publish: Callable[[list[Emit]], Awaitable[None]]
    ) -> list[SignedTransaction]:
        """A partition taken over (the caller holds its batch): its transactions that are not final
        yet, and the final ones of the last hour (a node that lost its last blocks lost them too),
        each compared with the chain (`reconcile`) before its next intent is signed, what that
        changes published durably; then the records to follow. A chain that cannot be asked for
        RECONCILE_S stops the signer: nothing is signed on a stale record."""
        unconfirmed = [SignedTransaction.from_bytes(raw) for raw in state.unconfirmed()]
        recent = [
            SignedTransaction.from_bytes(raw) for raw in state.final_since(to_us(clock()) - lifecycle.FINAL_WATCH_US)
        ]
        deadline = time.monotonic() + RECONCILE_S
        followed: list[SignedTransaction] = []
        for signed in recent + unconfirmed:  # oldest first: an address's nonces in the order they were signed
            while True:
                try:
                    emits, signed = await self.reconcile(signed, clock())
                    break
                except (RpcError, RpcUnavailable) as exc:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"transaction {signed.tx_hash} of intent {signed.intent_id} is not final and "
                            f"{signed.chain}'s node did not answer for {RECONCILE_S:.0f} s ({exc}). Not signing on "
                            "a record the chain may have left behind: bring the node back and restart"
                        ) from exc
                    await asyncio.sleep(1)
            if emits:
                await publish(emits)
            followed.append(signed)
        if unconfirmed:
            log.warning("%d transaction(s) signed before and not final yet, compared with the chain", len(unconfirmed))
        return followed

    def followed_unsent(self, _signed: SignedTransaction) -> bool:
        """A sign-only transaction is watched by `signer.sign_only`, not here."""
        return False

    async def reconcile(self, signed: SignedTransaction, now: datetime) -> tuple[list[Emit], SignedTransaction]:
        """The first look after a restart at a record that is not final (or final but recent),
        before anything new is signed for its address: open, its bytes are sent again (the node
        may have lost them); decided, it is compared with the chain (`Finality.look`: a block
        that is gone is reported, and the transaction sent again). What to publish, and the
        record to follow."""
        if self.state.agent(signed.agent_id).original_of(signed.intent_id) is not None:
            return [], signed  # a copy: its original is reconciled
        if signed.status in lifecycle.OPEN:
            refused = await self.send_again(signed, self.node_for(signed.chain))
            if refused is not None:
                log.warning("%s: sending %s again after a restart: %s", signed.intent_id, signed.tx_hash, refused)
            return [], signed
        watch = self.watch_for(signed.chain)
        ticket = watch.ticket(())  # the watch answers for the chain as it is now, not as it was
        try:
            if (
                signed.final
                and signed.block_number is not None
                and signed.block_number <= await watch.head() - LOST_DEPTH
            ):
                return [], signed  # deeper than any node loses on a restart
            looked = await self.finality.look(signed, now)
        finally:
            ticket.close()
        return looked if looked is not None else ([], signed)

    async def confirm(
        self, signed: SignedTransaction, now: Clock, emit: Callable[[list[Emit]], Awaitable[object]]
    ) -> SignedTransaction:
        """A decided record (mined, failed, replaced, dropped) looked at on each block read until it
        is final, or a reorg took it out of the chain (then it is broadcast again: returned open).
        Re-reported at another block on the way, through ``emit``."""
        watch = self.watch_for(signed.chain)
        ticket = watch.ticket(())
        try:
            while True:
                ticket.take()  # a wake (a reorg seen) is for this look, not for every wait after it
                try:
                    looked = await self.finality.look(signed, now())
                    if looked is not None:
                        await emit(looked[0])
                        signed = looked[1]
                        if signed.final or signed.status in lifecycle.OPEN:
                            return signed
                        continue
                except (RpcError, RpcUnavailable) as exc:
                    log.warning(
                        "confirming %s of intent %s: the node did not answer (%s)",
                        signed.tx_hash,
                        signed.intent_id,
                        exc,
                    )
                except Exception:  # noqa: BLE001 - a tracker that dies leaves its intent without a final outcome
                    log.exception("confirming %s of intent %s failed; retrying", signed.tx_hash, signed.intent_id)
                await ticket.wait(blocks.RECHECK_S, any_block=True)
        finally:
            ticket.close()

    async def send(self, signed: SignedTransaction, now: datetime) -> tuple[list[Emit], SignedTransaction | None]:
        """Hand the signed bytes to the chain: (what to publish, the record to `track`, or None
        when the node refused it). Called before the next intent is signed, so when the node
        refuses, the nonce can be given back without leaving a gap. An idempotent copy is not
        sent: its original was."""
        agent = self.state.agent(signed.agent_id)
        if agent.original_of(signed.intent_id) is not None:
            return [], signed
        try:
            await self.node_for(signed.chain).call("eth_sendRawTransaction", self.sidecars.network_form(signed))
        except RpcError as exc:
            # "nonce too low" at the first send: another transaction has the nonce; the tracker
            # reports it dropped (or replaced). The nonce is not given back: it is used.
            if not already_sent(exc.message):
                # Never on chain: its nonce goes back to the next intent and its spend is settled to nothing.
                agent.release_nonce(signed.chain, signed.from_, signed.nonce, last=_last_nonce(signed))
                agent.settle_spend(signed.intent_id, 0, executed=False)
                emits, _ = self.transition(
                    signed,
                    {"status": "failed", "final": True, "error": f"node refused the transaction: {exc.message}"},
                    now,
                )
                return emits, None
        except RpcUnavailable:
            # The node may or may not have it: not a refusal. The tracker sends it again.
            return [], signed
        return self.transition(signed, {"status": "broadcast"}, now)

    async def track(
        self,
        signed: SignedTransaction,
        now: Clock,
        emit: Callable[[list[Emit]], Awaitable[object]],
        resend: bool = False,
    ) -> SignedTransaction:
        """Follow one transaction for the chain until its status is final, publishing every
        change through ``emit``; returns the final record.

        Mined or failed come from a receipt of any of its transactions (a fee bump may have
        been outrun by the original); replaced or dropped when the chain's nonce passed it with
        none of them mined. Not mined within the replacement delay, it is sent again if the node
        lost it, else replaced with a fee bump the current policy allows (ceiling, cap and the
        rolling limit count the bump), else reported stuck with the reason; a nonce gap is
        reported too. While the node cannot answer, nothing is reported: an outcome is only ever
        what the chain said. With ``resend`` (after a restart), or while the record is still
        ``signed`` (the node did not answer the send), the same bytes are sent first."""
        original = self.state.agent(signed.agent_id).original_of(signed.intent_id)
        if original is not None:
            return await self._follow(signed, original, now, emit)
        node = self.node_for(signed.chain)
        if resend or signed.status == "signed":
            error = await self.send_again(signed, node)
            if error is None and signed.status == "signed":
                emits, signed = self.transition(signed, {"status": "broadcast"}, now())
                await emit(emits)
        hashes = finality.hashes_of(self.state, signed)
        watch = self.watch_for(signed.chain)
        # Waiting before the first look: a block that comes after it wakes this tracker.
        ticket = watch.ticket(hashes)
        tracked = Tracked(signed, sent_us=to_us(now()), hashes=hashes, ticket=ticket)
        check_us = look_us = 0
        stepped_at = -1  # the watch's reading at the last step

        def idle() -> bool:
            # A step that said Wait says the same until a block is read or its time comes.
            return tracked.waiting is not None and watch.reading == stepped_at

        def step_due_us() -> int:
            waiting = tracked.waiting
            return max(check_us, waiting.until_us) if waiting is not None and idle() else check_us

        try:
            while True:
                try:
                    # Its receipt is asked for when a block holds one of its transactions (and
                    # once in a while in case the watch missed it), not on every turn.
                    if ticket.take() or to_us(now()) >= look_us:
                        look_us = to_us(now()) + int(blocks.RECHECK_S * US_PER_SECOND)
                        final = await self._receipt(tracked, node, now())
                    else:
                        final = None
                    if final is None and to_us(now()) >= step_due_us():
                        check_us, stepped_at = to_us(now()) + STEP_EVERY_US, watch.reading
                        final = await self._step(tracked, node, watch, now(), emit)
                    if final is not None:
                        await emit(final[0])
                        return final[1]
                except (RpcError, RpcUnavailable) as exc:
                    log.warning(
                        "tracking %s of intent %s: the node did not answer (%s); asking again",
                        tracked.record.tx_hash,
                        signed.intent_id,
                        exc,
                    )
                    look_us, tracked.waiting = to_us(now()) + STEP_EVERY_US, None
                except Exception:  # noqa: BLE001 - a tracker that dies leaves its intent without an outcome
                    log.exception("tracking %s of intent %s failed; retrying", tracked.record.tx_hash, signed.intent_id)
                    look_us, tracked.waiting = to_us(now()) + STEP_EVERY_US, None
                wake_us = min(look_us, step_due_us())
                await ticket.wait((wake_us - to_us(now())) / US_PER_SECOND, any_block=idle())
        finally:
            ticket.close()

    def watch_for(self, chain: str) -> blocks.BlockWatch:
        """The chain's one reader of new blocks, shared by every tracker on it."""
        watch = self._watches.get(chain)
        if watch is None:
            watch = self._watches[chain] = blocks.BlockWatch(self.node_for(chain))
        return watch

    async def _follow(
        self, copy: SignedTransaction, original_id: str, now: Clock, emit: Callable[[list[Emit]], Awaitable[object]]
    ) -> SignedTransaction:
        """An intent answered with another's result (same idempotency key) reports each status
        the original's transaction reaches, under its own id and digest, until it is final."""
        while not copy.final:
            try:
                original = self._original_record(copy, original_id)
                changed = {
                    name: getattr(original, name)
                    for name in _FOLLOWED
                    if getattr(original, name) != getattr(copy, name)
                }
                if changed and original.status != "signed":
                    emits, followed = self.transition(copy, {"status": original.status, **changed}, now())
                    await emit(emits)
                    copy = followed
                    continue
            except Exception:  # noqa: BLE001 - a follower that dies leaves its intent without an outcome
                log.exception("following intent %s for intent %s failed; retrying", original_id, copy.intent_id)
            await asyncio.sleep(FOLLOW_EVERY_S)
        return copy

    async def _step(
        self,
        tracked: Tracked,
        node: Node,
        watch: blocks.BlockWatch,
        at: datetime,
        emit: Callable[[list[Emit]], Awaitable[object]],
    ) -> tuple[list[Emit], SignedTransaction] | None:
        """One look at the chain for a transaction with no receipt; what to publish and the final
        record if it is final now. Updates ``tracked`` (a bump, a stuck report, a new send)."""
        signed = tracked.record
        chain_next = await watch.nonce(signed.from_)
        if chain_next > signed.nonce and tracked.nonce_passed_us is None:
            tracked.nonce_passed_us = to_us(at)
        step = lifecycle.next_step(
            signed.nonce,
            chain_next,
            tracked.sent_us,
            to_us(at),
            len(signed.replaces),
            self.replace_after_us,
            self.max_bumps,
            tracked.nonce_passed_us,
        )
        tracked.waiting = step if isinstance(step, lifecycle.Wait) else None
        if isinstance(step, lifecycle.Wait):
            return None
        if isinstance(step, lifecycle.NonceUsed):
            # Mined between the two questions, or another transaction took the nonce.
            return await self._receipt(tracked, node, at) or await self._nonce_used(signed, node, at)
        tracked.sent_us = to_us(at)  # whatever happens below, the next look is a replacement delay away
        # The node lost it (restarted, evicted it): the same bytes again before paying more.
        # Refused again (priced out, say), it goes on to the step like a pending one.
        if (
            await node.call("eth_getTransactionByHash", signed.tx_hash) is None
            and await self.send_again(signed, node) is None
        ):
            return None
        bump_emits: list[Emit] = []  # the bump's, or a refused bump's audit event beside the stuck report
        if isinstance(step, lifecycle.Gap):
            reason = self._gap(signed, step.missing)
        elif isinstance(step, lifecycle.Stuck):
            reason = step.reason
        else:
            bump_emits, bumped, reason = await self.fee_bump.bump(tracked, node, at)
            if bumped is not None:
                await emit(bump_emits)
                tracked.record = bumped
                return None
        if reason is not None and (signed.status != "stuck" or signed.error != reason):
            emits, tracked.record = self.transition(signed, {"status": "stuck", "error": reason}, at)
            await emit(bump_emits + emits)
        return None

    async def send_again(self, signed: SignedTransaction, node: Node) -> str | None:
        """The same bytes to the chain again; None if it has them (or mined them), else why not."""
        try:
            await node.call("eth_sendRawTransaction", self.sidecars.network_form(signed))
        except RpcError as exc:
            return None if already_sent(exc.message) else exc.message
        except RpcUnavailable as exc:
            return str(exc)
        return None

    async def _receipt(self, tracked: Tracked, node: Node, at: datetime) -> tuple[list[Emit], SignedTransaction] | None:
        """Decided, if any transaction of this intent has a receipt: mined (executed) or failed
        (reverted) at its block; final once that block is (`signer.finality`)."""
        found = await finality.receipt_of(node, tracked.hashes)
        if found is None:
            return None
        # Decided at this block, not final yet: the spend stays at its worst case until it is.
        return self.transition(tracked.record, finality.included(self.state, tracked.record, *found), at)

    async def _nonce_used(
        self, signed: SignedTransaction, node: Node, at: datetime
    ) -> tuple[list[Emit], SignedTransaction]:
        """The chain's nonce passed this transaction and none of its hashes was mined: replaced,
        when another transaction this signer signed at the nonce was mined; dropped otherwise."""
        agent = self.state.agent(signed.agent_id)  # settled to nothing once the block that used the nonce is final
        for other in agent.intents_at_nonce(signed.chain, signed.from_, signed.nonce):
            if other == signed.intent_id:
                continue
            for tx_hash in agent.attempts(other):
                receipt = await node.call("eth_getTransactionReceipt", tx_hash)
                if receipt is not None:
                    return self.transition(
                        signed,
                        {
                            "status": "replaced",
                            "replaced_by": tx_hash,
                            "error": (
                                f"nonce {signed.nonce} was used by transaction {tx_hash} of intent {other}, mined in block "
                                f"{int(receipt['blockNumber'], 16)}; this one can no longer be mined"
                            ),
                        },
                        at,
                    )
        return self.transition(signed, {"status": "dropped", "error": lifecycle.dropped_reason(signed)}, at)

    def _gap(self, signed: SignedTransaction, missing: range) -> str | None:
        """Nonces below this transaction's are unused on chain: the reason to report if any of them
        has no open transaction this signer holds. One that has is followed by its own tracker,
        which sends it again if the node lost it; sending it from here too cost every transaction
        behind it a send per look, N² sends for N pending transactions of one address."""
        agent = self.state.agent(signed.agent_id)
        unfilled, sign_only = [], []
        for nonce in missing:
            held = [
                SignedTransaction.from_bytes(record)
                for intent_id in agent.intents_at_nonce(signed.chain, signed.from_, nonce)
                if (record := agent.signed_record(intent_id)) is not None
            ]
            if not any(record.status in lifecycle.OPEN or not record.final for record in held):
                unfilled.append(nonce)
                sign_only += [record.intent_id for record in held if record.status == "sign_only"]
        if not unfilled:
            return None
        log.warning("nonce gap before %s of intent %s: nonces %s unused", signed.tx_hash, signed.intent_id, unfilled)
        return lifecycle.gap_reason(signed, missing.start, unfilled, sign_only)


def _last_nonce(signed: SignedTransaction) -> int:
    """The highest nonce of its address a transaction uses: a type-4 transaction signed by the
    agent for its own account uses one more per authorization."""
    if signed.tx_type != 4:
        return signed.nonce
    tx, _, _, _ = txs.decode_signed(bytes.fromhex(signed.signed_tx[2:]))
    if not isinstance(tx, txs.SetCodeTransaction):  # signed from a type-4 intent (`build_transaction`)
        raise ValueError(f"transaction {signed.tx_hash} of intent {signed.intent_id} is recorded as type 4 but is not")
    return signed.nonce + len(tx.authorization_list)


# What an idempotent copy takes from its original's record as that transaction moves on.
_FOLLOWED = (
    "status",
    "final",
    "reorgs",
    "block_hash",
    "signed_tx",
    "tx_hash",
    "max_spend_wei",
    "block_number",
    "gas_used",
    "fee_wei",
    "error",
    "replaces",
    "replaced_by",
)


def already_sent(message: str) -> bool:
    """A node's refusal that means it has the transaction, or mined its nonce already: the
    receipt (or the nonce) will tell which."""
    message = message.lower()
    return "already known" in message or "nonce too low" in message or "already imported" in message
