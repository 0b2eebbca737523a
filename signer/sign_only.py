"""Sign-only transactions followed until their bytes can no longer land, and cancelled when asked:
EVM ones here (until their nonce is taken), Bitcoin ones in `signer.bitcoin_sign_only`, both from
one watch (`SignOnly.look_all`) and one way to ask (an admin's denial, the policy's TTL).

The signer hands out the bytes of a sign-only transaction (an intent with ``broadcast`` false)
and consecutive nonces; the bytes do not expire, so what they can spend stays held in the
agent's windows (`rules.window`) until the chain's final block shows the nonce taken
(`rules.sign_only.fate`):

- by the transaction itself: ``mined`` or ``failed``, final; what the chain took counts from the
  moment the signer saw it land, as an ordinary spend;
- by the signer's cancellation: ``cancelled``, final; the cancellation's fee counts, nothing else;
- by another transaction: ``dropped``, final; nothing counts.

While the nonce is open, nothing changes: a node that cannot be read leaves the spend held.

A cancellation is asked for by an admin (a signed denial of the intent, `HumanApproval` with
``deny`` on warden.approvals, verified here against the pinned admins) or by the policy's
``sign_only_ttl_s``. The signer then signs, with the key version that signed the original, a
0-value transfer to the sender itself at the same nonce with fees at least 10 % over the
original's (`rules.sign_only.cancel_fees`), records it and counts its worst case, makes that
durable, sends it, and reports the intent ``cancelled``; it sends it again at each look until
the nonce is taken.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from evm import transactions as txs
from rules import sign_only
from runtime.admins import Admins
from runtime.clock import to_us
from runtime.registry import REGISTRY
from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas.actions import AuditAction
from schemas.auth import human_approval_problem
from schemas.emit import Emit, IntentRef, Source, intent_audit
from schemas.intent import INTENT_MAX_FUTURE_US, TransactionIntent
from schemas.outcomes import HumanApproval, SignedBitcoinTransaction, SignedTransaction
from signer import blocks, finality
from signer.agent_state import AgentState
from signer.bitcoin_sign_only import BitcoinSignOnly
from signer.open_sign_only import OpenSignOnly, SignOnlyRow
from signer.outcomes import SERVICE, Outcomes, SigningRefused
from signer.policies import PolicyBook
from signer.signing import Signing
from signer.state import AgentStates
from signer.tracking import already_sent

log = logging.getLogger("warden.signer")
# How often each owned partition's open sign-only transactions are compared with the chain.
WATCH_EVERY_S = 2.0


class SignOnly:
    """The agent state (the sign-only table, the spend), each chain's node, the outcomes it
    reports through, the signing of cancellations, the policies in force (their TTL), the pinned
    admins (who may cancel) and ``persist`` (a cancellation is durable before it is sent)."""

    def __init__(
        self,
        state: AgentStates,
        node_for: Callable[[str], Node],
        outcomes: Outcomes,
        signing: Signing,
        policies: PolicyBook,
        admins: Admins,
        persist: Callable[[str], Awaitable[None]],
        max_age_us: int,
        confirmations: Callable[[str], int],
    ):
        self.state = state
        self.node_for = node_for
        self.outcomes = outcomes
        self.signing = signing
        self.policies = policies
        self.admins = admins
        self.persist = persist
        self.max_age_us = max_age_us
        self._unable: set[str] = set()  # intents whose cancellation cannot be signed here, reported once
        self.bitcoin = BitcoinSignOnly(self, confirmations)  # the watch's Bitcoin rows

    # --- an admin asks -------------------------------------------------------------------------------

    def cancel_requested(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """A record of warden.approvals: an admin's signed denial of an intent this signer signed
        sign-only, whose nonce is not taken yet, asks for its cancellation. Anything else on the
        topic is the worker's (a parked intent's decision) and changes nothing here; a denial of
        an open sign-only transaction that does not verify is audited and changes nothing."""
        try:
            approval = HumanApproval.model_validate_json(raw or b"")
        except ValidationError:
            return []  # the worker reads this topic too, and dead-letters what it cannot read
        if approval.decision != "deny" or self.state.partition_of(approval.agent_id) not in (None, source.partition):
            return []
        agent = self.state.agent(approval.agent_id)
        signed = _signed(agent, approval.intent_id)
        if agent.sign_only_row(approval.intent_id) is None or signed is None:
            return []
        problem = human_approval_problem(approval, self.admins)
        age = to_us(now) - to_us(approval.decided_at)
        problem_text: str | None
        if problem is None and signed.intent_digest != approval.intent_digest:
            problem_text = (
                f"it names intent digest {approval.intent_digest}, and the intent signed is {signed.intent_digest}"
            )
        elif problem is None and not -INTENT_MAX_FUTURE_US <= age < self.max_age_us:
            problem_text = f"it was decided at {approval.decided_at.isoformat()}, outside the freshness window"
        else:
            problem_text = None if problem is None else str(problem)
        if problem_text is not None:
            return [
                self._audit(AuditAction.TX_CANCEL_REFUSED, signed, now, approval.signature[:16], reason=problem_text)
            ]
        agent.ask_cancel(
            approval.intent_id, f"cancelled by admin {approval.admin_key_id}: {approval.reason or 'no reason given'}"
        )
        return []

    # --- the chain -----------------------------------------------------------------------------------

    async def look_all(self, open_rows: OpenSignOnly, now: datetime) -> list[Emit]:
        """The open sign-only transactions whose fate can have changed, compared with the chain's
        final block (`look`); the chain's final block and each address's nonce there asked once.
        What can have changed (`signer.open_sign_only`): a row whose nonce is below its address's
        count, asked when the address is due (`rules.sign_only.look_every_us` of its youngest
        row); a Bitcoin row when it is due (by its own age); a row an admin asked to cancel (at
        once) or whose cancellation was signed (when its address, or the Bitcoin row, is due: it is
        sent again); a row past its policy's TTL (at once). Any other costs nothing. One whose
        chain cannot be read is left as it is, its spend held, and asked again at the next pass."""
        reads = _Reads(self.node_for)
        now_us = to_us(now)
        due, chosen = await self._due_addresses(open_rows, now_us, reads)
        chosen.update(intent_id for intent_id, next_us in open_rows.bitcoin.items() if next_us <= now_us)
        for intent_id in list(open_rows.cancels):
            row = open_rows.rows[intent_id]
            where = open_rows.where[intent_id]
            # A Bitcoin row's cancellation is sent again when the row is due (above).
            placed = intent_id in open_rows.bitcoin or (where is not None and (where[0], where[1]) not in due)
            if row.cancel is None or not placed:
                chosen.add(intent_id)
        for agent_id in open_rows.agents():
            policy = self.policies.current(agent_id)
            if policy is not None and policy.sign_only_ttl_s is not None:
                expired = open_rows.signed_by(agent_id, sign_only.ttl_signed_by_us(policy.sign_only_ttl_s, now_us))
                chosen.update(i for i in expired if open_rows.rows[i].cancel is None)
        chosen |= open_rows.unplaced
        rows = sorted((open_rows.rows[i] for i in chosen if i in open_rows.rows), key=lambda r: (r.at_us, r.intent_id))
        emits: list[Emit] = []
        for row in rows:
            try:
                if row.intent_id in open_rows.bitcoin:
                    open_rows.bitcoin[row.intent_id] = now_us + sign_only.look_every_us(now_us - row.at_us)
                    emits += await self.bitcoin.look(row, now)
                else:
                    emits += await self.look(row, now, reads)
            except (RpcError, RpcUnavailable) as exc:
                self._unread(open_rows, row, exc)
        return emits

    async def _due_addresses(
        self, open_rows: OpenSignOnly, now_us: int, reads: _Reads
    ) -> tuple[set[tuple[str, str]], set[str]]:
        """(the addresses due now whose count was read, the rows of theirs whose nonce it shows taken)."""
        due: set[tuple[str, str]] = set()
        taken: set[str] = set()
        for key, address in list(open_rows.addresses.items()):
            if now_us < address.next_us:
                continue
            try:
                _, count = await reads.nonce(*key)
            except (RpcError, RpcUnavailable) as exc:
                log.warning(
                    "sign-only transactions of %s on %s: the chain could not be read (%s); their spend stays held",
                    key[1],
                    key[0],
                    exc,
                )
                continue
            address.next_us = now_us + sign_only.look_every_us(now_us - address.newest_at_us)
            due.add(key)
            taken.update(open_rows.taken(key, count))
        return due, taken

    def _unread(self, open_rows: OpenSignOnly, row: SignOnlyRow, exc: Exception) -> None:
        """A look the chain did not answer: the spend stays held, and its address is due again at once."""
        log.warning("sign-only intent %s: the chain could not be read (%s); its spend stays held", row.intent_id, exc)
        if row.intent_id in open_rows.bitcoin:
            open_rows.bitcoin[row.intent_id] = 0
        where = open_rows.where.get(row.intent_id)
        address = None if where is None else open_rows.addresses.get((where[0], where[1]))
        if address is not None:
            address.next_us = 0

    async def look(self, row: SignOnlyRow, now: datetime, reads: _Reads | None = None) -> list[Emit]:
        """One open sign-only transaction compared with the chain's final block: what to publish
        when its nonce was taken (then it is closed) or it was cancelled now; nothing while it is
        open. RpcError / RpcUnavailable pass through: the spend stays held."""
        agent = self.state.agent(row.agent_id)
        raw = agent.signed_record(row.intent_id)
        if raw is None:  # written in the same scope as the row (`AgentState.record_signed`)
            raise RuntimeError(f"sign-only intent {row.intent_id} has no signed record")
        signed = SignedTransaction.from_bytes(raw)
        cancel = None if row.cancel is None else SignedTransaction.from_bytes(row.cancel)
        reads = reads or _Reads(self.node_for)
        node = self.node_for(signed.chain)
        final, count = await reads.nonce(signed.chain, signed.from_)
        own = theirs = None
        if count > signed.nonce:
            own = await node.call("eth_getTransactionReceipt", signed.tx_hash)
            if cancel is not None and own is None:
                theirs = await node.call("eth_getTransactionReceipt", cancel.tx_hash)
        fate = sign_only.fate(signed.nonce, count, _block(own), _block(theirs), final)
        if fate != sign_only.Fate.OPEN:
            return self._closed(agent, signed, fate, own or theirs, cancel, now)
        if cancel is not None:  # until the nonce is taken, the node is given it again (a no-op if it has it)
            await _send(node, cancel)
            return []
        by = sign_only.why_cancel(row.cancel_by, row.at_us, self.policies.current(signed.agent_id), to_us(now))
        return [] if by is None else await self._cancel(agent, signed, by, node, now)

    def _closed(
        self,
        agent: AgentState,
        signed: SignedTransaction,
        fate: sign_only.Fate,
        receipt: dict[str, Any] | None,
        cancel: SignedTransaction | None,
        now: datetime,
    ) -> list[Emit]:
        """The nonce was taken at a final block: the record final, and the spend what the chain took."""
        if fate == sign_only.Fate.TAKEN or receipt is None:
            update: dict[str, Any] = {
                "status": "dropped",
                "error": f"nonce {signed.nonce} was taken by another transaction: these bytes can never land",
            }
            spent, executed = 0, False
        else:
            tx_hash = signed.tx_hash if fate == sign_only.Fate.LANDED or cancel is None else cancel.tx_hash
            update = finality.included(self.state, signed, tx_hash, receipt)
            executed = fate == sign_only.Fate.LANDED and update["status"] == "mined"
            spent = update["fee_wei"] + (signed.value_wei if executed else 0)
            if fate == sign_only.Fate.CANCELLED and cancel is not None:  # the record tells the cancellation's transfer
                update |= {"status": "cancelled", "to": cancel.to, "value_wei": 0, "tx_type": cancel.tx_type}
                update |= {"error": signed.error, "replaced_by": None}
        agent.sign_only_landed(signed.intent_id, to_us(now), spent, executed)
        action = AuditAction.TX_FINAL if update["status"] == "cancelled" else None
        emits, _ = self.outcomes.transition(signed, {**update, "final": True}, now, action)
        return emits

    async def _cancel(
        self, agent: AgentState, signed: SignedTransaction, by: str, node: Node, now: datetime
    ) -> list[Emit]:
        """Sign the cancellation, record it (its worst case held with the intent's spend), make it
        durable, send it, and report the intent cancelled."""
        try:
            intent, path, version = self.signing.kept_key(agent.tx_context(signed.intent_id))
            cancel = await self._signed_cancel(intent, signed, path, version, node, by, now)
        except SigningRefused as refused:
            return self.cannot(signed, by, refused.reason, now)
        await agent.file.scope_closed()  # an intent's savepoint must not be made durable with it
        agent.record_replacement(
            intent_id=signed.intent_id,
            tx_hash=cancel.tx_hash,
            record=cancel.to_bytes(),
            now_us=to_us(now),
            spend_wei=cancel.max_spend_wei,
        )
        agent.cancel_sign_only(signed.intent_id, cancel.to_bytes())
        await self.persist(signed.agent_id)  # durable before the chain can see it
        not_sent = await _send(node, cancel)
        error = by if not_sent is None else f"{by}; the node refused the cancellation for now ({not_sent}): sent again"
        emits, _ = self.outcomes.transition(
            signed, {"status": "cancelled", "final": False, "replaced_by": cancel.tx_hash, "error": error}, now
        )
        return emits

    async def _signed_cancel(
        self,
        intent: TransactionIntent,
        signed: SignedTransaction,
        path: str,
        version: int,
        node: Node,
        by: str,
        now: datetime,
    ) -> SignedTransaction:
        """The cancellation's signed record: a 0-value transfer to the sender at the nonce, of the
        original's kind of fee (gas price, or EIP-1559 fees), each at least 10 % higher."""
        original, _, _, _ = txs.decode_signed(bytes.fromhex(signed.signed_tx[2:]))
        chain_id = REGISTRY.get(signed.chain).chain_id
        sender = bytes.fromhex(signed.from_[2:])
        cancel: txs.LegacyTransaction | txs.FeeMarketTransaction
        if isinstance(original, (txs.LegacyTransaction, txs.AccessListTransaction)):
            fee, _ = sign_only.cancel_fees(original.gas_price, None, int(await node.call("eth_gasPrice"), 16))
            cancel, tx_type = txs.LegacyTransaction(signed.nonce, fee, sign_only.CANCEL_GAS, sender, 0, b""), 0
        else:
            base = int((await node.call("eth_getBlockByNumber", "latest", False))["baseFeePerGas"], 16)
            fee, tip = sign_only.cancel_fees(original.max_fee_per_gas, original.max_priority_fee_per_gas, 2 * base)
            cancel = txs.FeeMarketTransaction(
                chain_id, signed.nonce, tip or 0, fee, sign_only.CANCEL_GAS, sender, 0, b"", ()
            )
            tx_type = 2
        raw = self.signing.replacement(intent, cancel, chain_id, path, version, signed.from_)
        return self.outcomes.signed(
            signed.model_copy(
                update={
                    "signed_tx": "0x" + raw.raw.hex(),
                    "tx_hash": "0x" + raw.tx_hash.hex(),
                    "to": signed.from_,
                    "value_wei": 0,
                    "tx_type": tx_type,
                    "max_spend_wei": sign_only.CANCEL_GAS * fee,
                    "signed_at": now,
                    "replaces": (signed.tx_hash,),
                    "status": "cancelled",
                    "final": False,
                    "error": by,
                }
            )
        )

    def cannot(
        self, signed: SignedTransaction | SignedBitcoinTransaction, by: str, why: str, now: datetime
    ) -> list[Emit]:
        """A cancellation the signer cannot sign: reported once per run; the spend stays held."""
        if signed.intent_id in self._unable:
            return []
        self._unable.add(signed.intent_id)
        return [self._audit(AuditAction.TX_CANCEL_REFUSED, signed, now, "unable", reason=f"{by}, but {why}")]

    def _audit(
        self,
        action: AuditAction,
        signed: SignedTransaction | SignedBitcoinTransaction,
        now: datetime,
        *id_parts: str,
        **details: Any,
    ) -> Emit:
        which = (
            {"txid": signed.txid}
            if isinstance(signed, SignedBitcoinTransaction)
            else {"tx_hash": signed.tx_hash, "nonce": signed.nonce}
        )
        return intent_audit(
            SERVICE,
            action,
            IntentRef(signed.agent_id, signed.intent_id, signed.intent_digest),
            now,
            *id_parts,
            **which,
            **details,
        )


def _signed(agent: AgentState, intent_id: str) -> SignedTransaction | SignedBitcoinTransaction | None:
    """The intent's signed record, EVM or Bitcoin, if it has one."""
    record = agent.signed_record(intent_id)
    if record is not None:
        return SignedTransaction.from_bytes(record)
    record = agent.bitcoin_record(intent_id)
    return None if record is None else SignedBitcoinTransaction.from_bytes(record)


class _Reads:
    """What one pass of the watch asks of the chains, asked once: each chain's final block, and
    each address's nonce at it."""

    def __init__(self, node_for: Callable[[str], Node]):
        self.node_for = node_for
        self._final: dict[str, int] = {}
        self._nonces: dict[tuple[str, str], int] = {}

    async def nonce(self, chain: str, address: str) -> tuple[int, int]:
        """(the chain's final block, the address's transaction count at it)."""
        if (chain, address) in self._nonces:  # asked already in this pass: most rows' case
            return self._final[chain], self._nonces[(chain, address)]
        node = self.node_for(chain)
        if chain not in self._final:
            self._final[chain] = max(await blocks.final_block(node, REGISTRY.get(chain)), 0)
        final = self._final[chain]
        if (chain, address) not in self._nonces:
            self._nonces[(chain, address)] = int(await node.call("eth_getTransactionCount", address, hex(final)), 16)
        return final, self._nonces[(chain, address)]


def _block(receipt: dict[str, Any] | None) -> int | None:
    return None if receipt is None else int(receipt["blockNumber"], 16)


async def _send(node: Node, signed: SignedTransaction) -> str | None:
    """The bytes to the node; None if it has them (or its nonce is taken: the next look tells
    which), else why not."""
    try:
        await node.call("eth_sendRawTransaction", signed.signed_tx)
    except RpcError as exc:
        return None if already_sent(exc.message) else exc.message
    except RpcUnavailable as exc:
        return str(exc)
    return None
