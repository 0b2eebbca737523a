"""The stages and the decision: the worker judges an intent's stages with the one judge
(`rules.judge`), then approves it, parks it for a human or rejects it, in the same step that
reserves its spend in the agent's windows and remembers the decision. Every outcome, stage
envelope and dead letter is signed with this worker's key. No Kafka here: bytes in, `Emit`s out.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rules import bitcoin, judge, sign_only
from runtime import metrics
from runtime.clock import from_us, to_us
from runtime.rpc import Node
from schemas import topics
from schemas.actions import AuditAction
from schemas.auth import OutcomeT, ServiceKeys, outcome_forgery, sign_outcome
from schemas.chains import ChainLookup, Family
from schemas.codes import Code
from schemas.emit import Emit, IntentRef, Source, dead_letter, intent_audit, outcome_with_audit
from schemas.families import FAMILY_OF_KIND
from schemas.intent import TransactionIntent
from schemas.outcomes import (
    IntentAbandoned,
    IntentApproved,
    IntentParked,
    IntentRejected,
    SignedBitcoinTransaction,
    SignedTransaction,
    StageEnvelope,
    StageVerdict,
)
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from streams.decision import Decision, Decisions
from streams.windows import Windows

SERVICE = "service:streams"


class Decider:
    """Decides intents and remembers the decisions: ``decisions`` (the table), the agents'
    ``windows`` derived from it, and ``parked``: intent_id → when its wait for an admin ends
    (µs), kept to expire them. ``chains``: the networks in force, which the judge's stages look
    the intent's chain up in."""

    def __init__(
        self,
        service_key: tuple[str, Ed25519PrivateKey],
        service_keys: ServiceKeys,
        decisions: Decisions,
        node_for: Callable[[str], Node],
        max_record_bytes: int,
        chains: ChainLookup,
    ):
        self.key_id, self._key = service_key
        self.service_keys = service_keys  # pinned signer keys: only a signer's refusal releases a reservation
        self.decisions = decisions
        self.node_for = node_for
        self.max_record_bytes = max_record_bytes
        self.chains = chains
        self.windows = Windows()
        self.parked: dict[str, int] = {}

    # -- the stages -----------------------------------------------------------------------------

    async def timed_stage(
        self, stage: Stage, intent: TransactionIntent, policy: AgentPolicy, now: datetime, so_far: judge.Judgement
    ) -> judge.Judgement:
        began = time.perf_counter()  # a duration for the metric; decisions use only `now`
        try:
            return await judge.run_stage(stage, intent, policy, self._context(intent, policy, now), so_far)
        finally:
            metrics.STAGE_SECONDS.labels(stage).observe(time.perf_counter() - began)

    def _context(self, intent: TransactionIntent, policy: AgentPolicy, now: datetime) -> judge.Context:
        """The worker's own spend windows, node and networks in force; the sender is the EVM address
        the policy names, for an EVM intent only: a Solana or Bitcoin stage reads the agent's address
        or key from its own section of the policy when handed none."""
        return judge.Context(
            spent=self._spent(intent, now),
            node=self.node_for(intent.chain),
            sender=policy.sender_address if FAMILY_OF_KIND[intent.intent_type] is Family.EVM else None,
            now=now,
            chains=self.chains,
            claimed=self._claimed(intent),
        )

    def _claimed(self, intent: TransactionIntent) -> bitcoin.Claimed:
        """Which other open intent of the agent spends a Bitcoin output, as its windows hold them."""
        return lambda outpoint: self.windows.claimed_by(intent.agent_id, outpoint, intent.intent_id)

    def _spent(self, intent: TransactionIntent, now: datetime) -> Callable[[str], int]:
        """The agent's spend so far in its windows, per asset key, as the judge asks for it."""
        now_us = to_us(now)
        return lambda asset: self.windows.spent(intent.agent_id, asset, now_us)

    def envelope(self, intent: TransactionIntent, policy: AgentPolicy, judged: judge.Judgement) -> Emit:
        """The hand-off to the next stage's topic, with the judgement so far, typed."""
        stage = judged.next_stage(intent)
        if stage is None:  # its callers hand on only a judgement with a stage to go (`Engine.on_intake`, `on_stage`)
            raise ValueError(f"intent {intent.intent_id} has no stage left to be handed to")
        envelope = self.signed(
            StageEnvelope(
                stage=stage,
                intent=intent,
                policy=policy,
                verdicts=judged.verdicts,
                quote=judged.quote,
                asset_spend=dict(judged.asset_spend),
                intent_digest=intent.digest(),
            )
        )
        return Emit(topics.stage_topic(stage), intent.agent_id, envelope.to_bytes())

    # -- the decision ---------------------------------------------------------------------------

    def decide(
        self,
        intent: TransactionIntent,
        policy: AgentPolicy,
        judged: judge.Judgement,
        now: datetime,
        recheck_assets: bool,
    ) -> list[Emit]:
        """Every guardrail passed: approved, or parked for a human when above a threshold. In the
        split topology (``recheck_assets``) every window (tokens, native, USD) is checked again
        here, in the same step that reserves them: other intents of the agent may have been
        reserved since their stages ran. Fused, every stage ran in this one step, so nothing
        could have been."""
        if recheck_assets:
            again = judge.recheck_windows(intent, policy, judged, self._spent(intent, now))
            again = again or bitcoin.claims_refused(intent, self._claimed(intent))
            if again is not None:
                return [self.verdict_audit(again, intent, now)] + self.reject(
                    intent, again, [*judged.verdicts, again], now
                )
        why = judge.approval_needed(intent, policy, judged.asset_spend)
        if why is None:
            return self.approve(intent, policy, judged, now, counts=True)
        return self._park(intent, policy, judged, now, why)

    def _park(
        self, intent: TransactionIntent, policy: AgentPolicy, judged: judge.Judgement, now: datetime, why: str
    ) -> list[Emit]:
        """Reserved like an approval (two parked intents can never both pass a limit), and
        remembered with the approval it becomes if an admin says so."""
        now_us = to_us(now)
        expires_us = now_us + policy.approval_timeout_s * 1_000_000
        digest = intent.digest()
        pending = IntentApproved(
            intent=intent, policy=policy, verdicts=judged.verdicts, approved_at=now, intent_digest=digest
        )
        parked = self.signed(
            IntentParked(
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                reason=f"waiting for an admin: {why}",
                intent=intent,
                verdicts=judged.verdicts,
                parked_at=now,
                expires_at=from_us(expires_us),
                intent_digest=digest,
            )
        )
        record = parked.to_bytes()
        spend, assets = judged.spend_wei(intent), judged.asset_spend
        self.decisions[intent.intent_id] = Decision(
            agent_id=intent.agent_id,
            outcome="parked",
            at_us=now_us,
            spend_wei=spend,
            assets=dict(assets),
            counts=True,
            topic=topics.INTENTS_AWAITING_APPROVAL,
            record=record,
            digest=digest,
            expires_us=expires_us,
            pending=pending.to_bytes(),
            held=sign_only.held(intent),
            claims=bitcoin.inputs_of(intent),
        )
        self.windows.reserve(
            intent.agent_id, intent.intent_id, now_us, spend, assets, sign_only.held(intent), bitcoin.inputs_of(intent)
        )
        self.parked[intent.intent_id] = expires_us
        metrics.INTENTS.labels("parked", Stage.APPROVAL, Code.AWAITING_APPROVAL).inc()
        return outcome_with_audit(
            topics.INTENTS_AWAITING_APPROVAL,
            parked,
            record,
            SERVICE,
            AuditAction.INTENT_PARKED,
            IntentRef(intent.agent_id, intent.intent_id, parked.intent_digest),
            now,
            reason=why,
            expires_at=parked.expires_at.isoformat(),
            spend_wei=str(spend),
            asset_spend={key: str(units) for key, units in assets.items()},
        )

    def approve(
        self, intent: TransactionIntent, policy: AgentPolicy, judged: judge.Judgement, now: datetime, counts: bool
    ) -> list[Emit]:
        """Approved, its spend reserved when it ``counts`` (an idempotent replay of an approval
        reserves nothing: the signer returns the original's signed bytes for it)."""
        digest = intent.digest()
        approved = self.signed(IntentApproved(intent=intent, policy=policy, approved_at=now, intent_digest=digest))
        record = approved.to_bytes()
        now_us = to_us(now)
        spend, assets = (judged.spend_wei(intent), judged.asset_spend) if counts else (0, {})
        self.decisions[intent.intent_id] = Decision(
            agent_id=intent.agent_id,
            outcome="approved",
            at_us=now_us,
            spend_wei=spend,
            assets=dict(assets),
            counts=counts,
            topic=topics.INTENTS_APPROVED,
            record=record,
            digest=digest,
            held=sign_only.held(intent),
            claims=bitcoin.inputs_of(intent) if counts else (),
        )
        metrics.INTENTS.labels("approved", "", Code.IDEMPOTENT_REPLAY if not counts else Code.APPROVED).inc()
        if counts:
            # Reserved at approval, in the same step as the decision, so two intents can never both
            # pass the limit, nor spend one output.
            self.windows.reserve(
                intent.agent_id,
                intent.intent_id,
                now_us,
                spend,
                assets,
                sign_only.held(intent),
                bitcoin.inputs_of(intent),
            )
        return outcome_with_audit(
            topics.INTENTS_APPROVED,
            approved,
            record,
            SERVICE,
            AuditAction.INTENT_APPROVED,
            IntentRef(intent.agent_id, intent.intent_id, approved.intent_digest),
            now,
            policy_version=policy.version,
            value_wei=str(intent.value_wei),
            spend_wei=str(spend),
            chain=intent.chain,
            asset_spend={key: str(units) for key, units in assets.items()},
        )

    def reject(
        self,
        intent: TransactionIntent,
        verdict: StageVerdict,
        verdicts: Sequence[StageVerdict],
        now: datetime,
        remember: bool = True,
        bound_to: str | None = None,
    ) -> list[Emit]:
        """Rejected with ``verdict``; remembered as the intent's decision unless the caller knows
        the record may not be the real intent's (``remember=False``). Bound to the intent's digest,
        or to ``bound_to``: the SHA-256 of the record's bytes, for a refusal that must not answer
        for another record with the same signing bytes (`admission.bytes_digest`)."""
        digest = bound_to or intent.digest()
        rejected = self.signed(
            IntentRejected(
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                stage=verdict.stage,
                code=verdict.code,
                reason=verdict.reason,
                verdicts=tuple(verdicts),
                decided_at=now,
                intent_digest=digest,
            )
        )
        record = rejected.to_bytes()
        metrics.INTENTS.labels("rejected", verdict.stage, verdict.code).inc()
        if remember:
            self.decisions[intent.intent_id] = Decision(
                agent_id=intent.agent_id,
                outcome="rejected",
                at_us=to_us(now),
                topic=topics.INTENTS_REJECTED,
                record=record,
                digest=digest,
            )
        return outcome_with_audit(
            topics.INTENTS_REJECTED,
            rejected,
            record,
            SERVICE,
            AuditAction.INTENT_REJECTED,
            IntentRef(intent.agent_id, intent.intent_id, rejected.intent_digest),
            now,
            stage=verdict.stage,
            code=verdict.code,
            reason=verdict.reason,
        )

    def abandon(self, intent: TransactionIntent, attempts: int, now: datetime) -> list[Emit]:
        """Given up, undecided, when the redelivery watch found it overdue after ``attempts``
        redeliveries (`Admission.on_overdue`), and handed to the signer, whose answer is the
        outcome: its `IntentAbandoned`, signed by this worker, published, and remembered with it,
        reserving nothing, so a late copy of the intent sends the signer the same question and
        its client gets the signer's answer again."""
        abandoned = self.signed(
            IntentAbandoned(intent=intent, attempts=attempts, abandoned_at=now, intent_digest=intent.digest())
        ).to_bytes()
        self.decisions[intent.intent_id] = Decision(
            agent_id=intent.agent_id,
            outcome="abandoned",
            at_us=to_us(now),
            topic=topics.INTENTS_ABANDONED,
            record=abandoned,
            digest=intent.digest(),
        )
        metrics.INTENTS.labels("abandoned", Stage.INTAKE, Code.NO_OUTCOME).inc()
        return [
            Emit(topics.INTENTS_ABANDONED, intent.agent_id, abandoned),
            intent_audit(
                SERVICE,
                AuditAction.INTENT_ABANDONED,
                IntentRef(intent.agent_id, intent.intent_id, intent.digest()),
                now,
                reason="no outcome after repeated deliveries, and this worker decided none; handed to the signer, "
                "which refuses it NO_OUTCOME unless it decided it already",
            ),
        ]

    # -- reservations ---------------------------------------------------------------------------

    def on_rejected(self, raw: bytes, now: datetime) -> list[Emit]:
        """A rejection after approval (the signer refused): release the window's reservation, but
        only when the signer really said so about this very intent. Anyone can write to the topic;
        a forged release would let an agent spend past its limit at this worker."""
        rejected = IntentRejected.model_validate_json(raw)
        decision = self.decisions.get(rejected.intent_id)
        if rejected.stage != Stage.SIGNING or decision is None or decision.outcome != "approved":
            return []
        forged = outcome_forgery(rejected, self.service_keys, decision.digest)
        if forged is not None:
            why = f"not a signer's refusal of this intent ({forged}); the reservation stays"
            return [_forged(rejected, decision, topics.INTENTS_REJECTED, now, why, code=rejected.code)]
        self.decisions[rejected.intent_id] = dataclasses.replace(decision, outcome="released")
        self.windows.release(decision.agent_id, rejected.intent_id)
        return []

    def on_signed(self, raw: bytes, now: datetime) -> list[Emit]:
        """A signer's record on warden.txs.signed saying a sign-only transaction's nonce was taken
        at a final block: its held reservation becomes what the chain took, counted from now (its
        bytes landed, or its cancellation did), or is released (another transaction took the
        nonce). Believed only when the signer signed it about this very intent: a forged one would
        let an agent spend past its limit here. Any other record changes nothing."""
        # Most of the topic: a broadcast transaction on its way, or a sign-only one just signed.
        if b'"final":true' not in raw or b'"status":"sign_only"' in raw:
            return []
        signed = SignedTransaction.model_validate_json(raw)
        decision = self.decisions.get(signed.intent_id)
        if decision is None or not decision.held or not decision.reserves or decision.outcome != "approved":
            return []  # an idempotent copy reserves nothing, and its original's record moves the original
        if signed.status not in ("mined", "failed", "dropped", "cancelled"):
            return []
        executed = signed.status == "mined"
        spend = None if signed.status == "dropped" else (signed.fee_wei or 0) + (signed.value_wei if executed else 0)
        return self._settle(signed, decision, topics.TXS_SIGNED, now, spend, decision.assets if executed else {})

    def on_bitcoin_signed(self, raw: bytes, now: datetime) -> list[Emit]:
        """A signer's record on warden.bitcoin.signed saying a payment's fate is final: its held
        reservation becomes what the chain took, counted from now (``mined``: what it spends;
        ``cancelled``: the cancellation's fee), or is released (``conflicted``: another
        transaction spent one of its inputs, so it can never be mined). Believed only when the
        signer signed it about this very intent; any other record changes nothing."""
        if b'"final":true' not in raw or b'"status":"sign_only"' in raw:
            return []
        signed = SignedBitcoinTransaction.model_validate_json(raw)
        decision = self.decisions.get(signed.intent_id)
        if decision is None or not decision.reserves or decision.outcome != "approved":
            return []  # an idempotent copy reserves nothing, and its original's record moves the original
        if signed.status == "conflicted" or (decision.held and signed.status in ("mined", "cancelled")):
            spend = None if signed.status == "conflicted" else int(signed.spend.get(bitcoin.BTC, "0"))
            assets = {} if spend is None else {bitcoin.asset_key(signed.chain): spend}
            return self._settle(signed, decision, topics.BITCOIN_SIGNED, now, spend, assets)
        return []

    def _settle(
        self,
        signed: SignedTransaction | SignedBitcoinTransaction,
        decision: Decision,
        topic: str,
        now: datetime,
        spend: int | None,
        assets: Mapping[str, int],
    ) -> list[Emit]:
        """A signer's final record of an approved intent's transaction: if the signer signed it,
        what the intent holds becomes ``spend`` wei and ``assets`` counted from now, or nothing
        (``spend`` None: its bytes can never spend)."""
        forged = outcome_forgery(signed, self.service_keys, decision.digest)
        if forged is not None:
            why = f"not a signer's record of this intent ({forged}); the reservation stays"
            return [_forged(signed, decision, topic, now, why, status=signed.status)]
        if spend is None:
            self.decisions[signed.intent_id] = dataclasses.replace(decision, outcome="released", held=False, claims=())
            self.windows.release(decision.agent_id, signed.intent_id)
            return []
        now_us = to_us(now)
        landed = dataclasses.replace(
            decision, held=False, landed_us=now_us, spend_wei=spend, assets=dict(assets), claims=()
        )
        self.decisions[signed.intent_id] = landed
        self.windows.land(decision.agent_id, signed.intent_id, now_us, spend, assets)
        return []

    def rebuild(self) -> None:
        """After partitions move: the windows and the parked intents, from ``decisions`` alone."""
        self.windows.rebuild(self.decisions)
        self.parked.clear()
        self.parked.update(
            (intent_id, d.waiting()[0]) for intent_id, d in self.decisions.items() if d.outcome == "parked"
        )

    # -- signing --------------------------------------------------------------------------------

    def signed(self, record: OutcomeT) -> OutcomeT:
        return sign_outcome(record, self._key, self.key_id)

    @staticmethod
    def verdict_audit(
        verdict: StageVerdict, intent: TransactionIntent, now: datetime, bound_to: str | None = None
    ) -> Emit:
        """The ledger's record of one stage's verdict, bound to the intent's digest, or to
        ``bound_to`` as its rejection is (`reject`)."""
        action = AuditAction.STAGE_PASSED if verdict.passed else AuditAction.STAGE_FAILED
        return intent_audit(
            SERVICE,
            action,
            IntentRef(intent.agent_id, intent.intent_id, bound_to or intent.digest()),
            now,
            verdict.stage,
            stage=verdict.stage,
            code=verdict.code,
            reason=verdict.reason,
            facts=verdict.facts,
        )

    def dead_letter(
        self, raw: bytes | None, source: Source, now: datetime, reason: str, errors: Sequence[str] = ()
    ) -> list[Emit]:
        """A record this worker cannot decide, dead-lettered under its signature."""
        return dead_letter(SERVICE, raw, source, now, reason, tuple(errors), self.max_record_bytes, self.signed)


def _forged(
    record: IntentRejected | SignedTransaction | SignedBitcoinTransaction,
    decision: Decision,
    topic: str,
    now: datetime,
    why: str,
    **details: Any,
) -> Emit:
    """The audit event of a record that claims to be a signer's about an intent and is not."""
    return intent_audit(
        SERVICE,
        AuditAction.OUTCOME_FORGED,
        IntentRef(decision.agent_id, record.intent_id, record.intent_digest),
        now,
        record.service_signature[:16],
        topic=topic,
        reason=why,
        **details,
    )
