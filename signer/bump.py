"""The fee bump: a broadcast transaction not mined in time, signed again at its nonce with higher fees.

Only when the policy in force now allows it: the judge runs again (`Judging.judge_bump`: every
stage on the new fee, the intent counted once, so the fee ceiling, the native, per-asset and USD
caps and rolling limits all hold, the USD ones priced by the feeds now). A bump a limit refuses
is not signed, and a ``tx.bump_refused`` audit event names the limit and its figures. The
replacement is recorded, its worst case reserved in every window, and made durable before the
chain can see it, so if it is ever mined it was within policy and counted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evm import transactions as txs
from rules.verdicts import verdict
from runtime.clock import to_us
from runtime.registry import REGISTRY
from runtime.rpc import Node
from schemas.actions import AuditAction
from schemas.codes import Code
from schemas.emit import Emit, IntentRef, intent_audit
from schemas.intent import TransactionIntent
from schemas.outcomes import SignedTransaction, StageVerdict
from schemas.quote import FeeQuote
from schemas.stages import Stage
from signer import lifecycle
from signer.judging import Judging
from signer.outcomes import SERVICE, Outcomes, SigningRefused
from signer.signing import Signing, build_transaction
from signer.state import AgentStates

if TYPE_CHECKING:
    from rules import judge
    from schemas.policy import AgentPolicy
    from signer.tracking import Tracked

Transition = Callable[[SignedTransaction, dict[str, Any], datetime], tuple[list[Emit], SignedTransaction]]


class FeeBump:
    """What a bump needs: the agent state (the intent and key version that signed, the spend it
    raises), the judging and signing it runs again, the outcomes it signs and reports with,
    ``persist`` to make it durable, and the tracker's ``transition`` and ``resend``."""

    def __init__(
        self,
        state: AgentStates,
        judging: Judging,
        signing: Signing,
        outcomes: Outcomes,
        persist: Callable[[str], Awaitable[None]],
        transition: Transition,
        resend: Callable[[SignedTransaction, Node], Awaitable[str | None]],
    ):
        self.state = state
        self.judging = judging
        self.signing = signing
        self.outcomes = outcomes
        self.persist = persist
        self.transition = transition
        self.resend = resend

    async def bump(
        self, tracked: Tracked, node: Node, at: datetime
    ) -> tuple[list[Emit], SignedTransaction | None, str | None]:
        """Sign the intent again at the same nonce with higher fees, if the current policy
        allows it: what to publish, and the new record or why there is none (a refusal by a
        limit is published too: `_refused`)."""
        signed = tracked.record
        bumpable = self._bumpable(signed)
        if isinstance(bumpable, str):
            return [], None, bumpable
        intent, policy, path, version = bumpable
        gas, fee, tip, market = await self._fees_now(signed, intent, node)
        try:
            new_fee, new_tip = lifecycle.bumped_fees(intent.tx_type, fee, tip, market, policy.tx_max_fee_per_gas)
        except lifecycle.BumpRefused as refused:
            ceiling = verdict(
                intent,
                Stage.FEE,
                False,
                Code.FEE_OVER_CEILING,
                str(refused),
                ceiling_wei=str(policy.tx_max_fee_per_gas),
            )
            return self._refused(signed, ceiling, fee, None, f"not mined at {fee} wei per gas, and not replaced", at)
        quote = FeeQuote(
            gas_limit=gas,
            fee_per_gas=new_fee,
            priority_fee_per_gas=new_tip,
            base_fee_per_gas=market if intent.tx_type == 2 else None,
        )
        judged = await self.judging.judge_bump(intent, policy, quote, node, signed.from_, at)
        if judged.refusal is not None:
            why = f"not mined at {fee} wei per gas, and a bump to {new_fee} is refused"
            return self._refused(signed, judged.refusal, fee, new_fee, why, at)
        chain = REGISTRY.get(intent.chain)
        replacement = build_transaction(intent, chain.chain_id, signed.nonce, gas, quote.fees(intent.tx_type))
        try:
            raw = self.signing.replacement(intent, replacement, chain.chain_id, path, version, signed.from_)
        except SigningRefused as refused:
            return [], None, f"not mined, and not replaced: {refused.reason}"
        bumped = self._replacement_record(signed, intent, raw, quote, at)
        await self._record(intent, bumped, judged, at)
        tracked.attempt(bumped.tx_hash)  # its receipt counts from now on, even if the node refuses it
        error = await self.resend(bumped, node)
        if error is not None:  # recorded all the same: if it is ever mined, it was within policy
            return [], None, f"not mined at {fee} wei per gas, and the node refused a replacement at {new_fee}: {error}"
        emits, current = self._broadcast(signed, bumped, at)
        emits.append(self._bumped_event(signed, intent, current, fee, new_fee, judged, at))
        return emits, current, None

    def _bumpable(self, signed: SignedTransaction) -> tuple[TransactionIntent, AgentPolicy, str, int] | str:
        """What a bump is signed from (the intent, the policy in force now, the key path and
        version that signed it), or why the signer does not bump this transaction."""
        context = self.state.agent(signed.agent_id).tx_context(signed.intent_id)
        if context is None:
            return (
                "not mined, and it was signed before replacements were recorded; submit an intent "
                f"naming nonce {signed.nonce} with higher fees to replace it"
            )
        if self.signing.client_held:
            return (
                "not mined, and its key needs the client's share or customer-managed key, which the "
                f"signer does not keep; submit an intent naming nonce {signed.nonce} with higher fees "
                "to replace it"
            )
        raw_intent, path, version = context
        intent = TransactionIntent.model_validate_json(raw_intent)
        if intent.tx_type in (3, 4):
            # A blob replacement must also double the blob fee, and a set-code one re-sign its
            # authorizations; neither is done automatically.
            return (
                f"not mined, and type-{intent.tx_type} transactions are not fee-bumped by the signer; "
                f"submit an intent naming nonce {signed.nonce} with higher fees to replace it"
            )
        policy = self.judging.policies.current(intent.agent_id)
        if policy is None or not policy.intents_api_enabled:
            return "not mined, and not replaced: the agent's intents API is disabled now"
        return intent, policy, path, version

    async def _fees_now(
        self, signed: SignedTransaction, intent: TransactionIntent, node: Node
    ) -> tuple[int, int, int | None, int]:
        """The signed transaction's gas limit, fee and tip per gas, and the market's fee per gas now."""
        tx, _, _, _ = txs.decode_signed(bytes.fromhex(signed.signed_tx[2:]))
        # The signed transaction is built from this very intent (`build_transaction`): of its type.
        if intent.tx_type == 2 and isinstance(tx, txs.FeeMarketTransaction):
            fee, tip = tx.max_fee_per_gas, tx.max_priority_fee_per_gas
            market = int((await node.call("eth_getBlockByNumber", "latest", False))["baseFeePerGas"], 16)
        elif intent.tx_type in (0, 1) and isinstance(tx, (txs.LegacyTransaction, txs.AccessListTransaction)):
            fee, tip = tx.gas_price, None
            market = int(await node.call("eth_gasPrice"), 16)
        else:
            raise ValueError(
                f"transaction {signed.tx_hash} of intent {signed.intent_id} is not of its intent's type {intent.tx_type}"
            )
        return tx.gas, fee, tip, market

    def _replacement_record(
        self, signed: SignedTransaction, intent: TransactionIntent, raw: txs.SignedTx, quote: FeeQuote, at: datetime
    ) -> SignedTransaction:
        """The replacement's signed record: the transaction's, with the new bytes and spend, replacing it."""
        return self.outcomes.signed(
            signed.model_copy(
                update={
                    "signed_tx": "0x" + raw.raw.hex(),
                    "tx_hash": "0x" + raw.tx_hash.hex(),
                    "signed_at": at,
                    "max_spend_wei": quote.spend_wei(intent),
                    "replaces": (signed.tx_hash, *signed.replaces),
                    "status": "signed",
                    "error": None,
                }
            )
        )

    async def _record(
        self, intent: TransactionIntent, bumped: SignedTransaction, judged: judge.Judgement, at: datetime
    ) -> None:
        """Record the replacement and reserve its worst case in every window, durable before the chain can see it."""
        agent = self.state.agent(intent.agent_id)
        await agent.file.scope_closed()  # an intent's savepoint must not be made durable with the bump
        agent.record_replacement(
            intent_id=intent.intent_id,
            tx_hash=bumped.tx_hash,
            record=bumped.to_bytes(),
            now_us=to_us(at),
            spend_wei=bumped.max_spend_wei,
            assets=dict(judged.asset_spend),
        )
        await self.persist(intent.agent_id)  # durable before the chain can see it

    def _broadcast(
        self, signed: SignedTransaction, bumped: SignedTransaction, at: datetime
    ) -> tuple[list[Emit], SignedTransaction]:
        """Move the tracked record on to the replacement, broadcast."""
        return self.transition(
            signed,
            {
                "signed_tx": bumped.signed_tx,
                "tx_hash": bumped.tx_hash,
                "signed_at": at,
                "max_spend_wei": bumped.max_spend_wei,
                "replaces": bumped.replaces,
                "status": "broadcast",
                "error": None,
            },
            at,
        )

    def _bumped_event(
        self,
        signed: SignedTransaction,
        intent: TransactionIntent,
        current: SignedTransaction,
        fee: int,
        new_fee: int,
        judged: judge.Judgement,
        at: datetime,
    ) -> Emit:
        """The ``tx.fee_bumped`` audit event: which transaction replaced which, at what fees and spend."""
        return intent_audit(
            SERVICE,
            AuditAction.TX_FEE_BUMPED,
            IntentRef(intent.agent_id, intent.intent_id, signed.intent_digest),
            at,
            current.tx_hash,
            replaced_tx_hash=signed.tx_hash,
            tx_hash=current.tx_hash,
            nonce=signed.nonce,
            fee_per_gas_wei=str(new_fee),
            previous_fee_per_gas_wei=str(fee),
            max_spend_wei=str(current.max_spend_wei),
            asset_spend={key: str(units) for key, units in judged.asset_spend.items()},
            tee=self.outcomes.tee,
        )

    def _refused(
        self, signed: SignedTransaction, refusal: StageVerdict, fee: int, new_fee: int | None, why: str, at: datetime
    ) -> tuple[list[Emit], None, str]:
        """A bump a limit refuses: nothing is signed, the transaction stays as it is (reported
        stuck with the reason), and the ledger says which limit and the figures it measured."""
        reason = f"{why} ({refusal.code}): {refusal.reason}"
        event = intent_audit(
            SERVICE,
            AuditAction.TX_BUMP_REFUSED,
            IntentRef(signed.agent_id, signed.intent_id, signed.intent_digest),
            at,
            signed.tx_hash,
            reason,
            tx_hash=signed.tx_hash,
            nonce=signed.nonce,
            stage=refusal.stage,
            code=refusal.code,
            reason=reason,
            fee_per_gas_wei=None if new_fee is None else str(new_fee),
            previous_fee_per_gas_wei=str(fee),
            facts=refusal.facts,
            tee=self.outcomes.tee,
        )
        return [event], None, reason
