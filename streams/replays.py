"""Replays and idempotency: an intent already decided gets the same answer again, never a
second one, and an intent whose idempotency key an earlier intent used within 24 h for the same
request gets that intent's result (`schemas.intent.idempotency_slot_live`); for another request
it is refused IDEMPOTENCY_KEY_REUSED (`schemas.intent.idempotency_conflict`)."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

from rules import judge
from runtime.clock import to_us
from schemas.actions import AuditAction
from schemas.codes import Code
from schemas.emit import Emit, IntentRef, intent_audit
from schemas.intent import TransactionIntent, idempotency_conflict, idempotency_slot_live
from schemas.outcomes import IntentRejected, StageVerdict
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from streams.decide import SERVICE, Decider


class Replays:
    """Answers from earlier decisions. ``idempotency`` maps "agent_id:sha256(idempotency_key)" to
    the first intent that used the key: {"intent_id", "at_us", "request"} (its `request_fields`;
    a slot claimed before requests were kept has none, and answers no other intent)."""

    def __init__(self, decider: Decider, idempotency: MutableMapping[str, Any]):
        self.decider = decider
        self.idempotency = idempotency

    def replay(self, intent: TransactionIntent, now: datetime) -> list[Emit]:
        """The decided intent's outcome again, as it was published."""
        decider = self.decider
        decision = decider.decisions[intent.intent_id]
        if decision.digest != intent.digest():
            # The same id on a different intent (the agent reused an id, or someone replays a
            # variant): the decided one keeps its answer, and this one gets its own refusal,
            # bound to its own digest and not remembered.
            verdict = StageVerdict.refusing(
                intent_id=intent.intent_id,
                stage=Stage.INTAKE,
                code=Code.INTENT_ID_REUSED,
                reason=f"intent id {intent.intent_id!r} was already decided for a different "
                "intent; every intent needs its own id",
            )
            return [decider.verdict_audit(verdict, intent, now)] + decider.reject(
                intent, verdict, [verdict], now, remember=False
            )
        return [Emit(decision.topic, decision.agent_id, decision.record)]

    def decided_meanwhile(self, intent: TransactionIntent, judged: judge.Judgement, now: datetime) -> list[Emit] | None:
        """None while ``intent`` is undecided; else what its judgement emits instead of a decision.
        Called after the judgement's last await, in the synchronous step that then records the
        decision: nothing can decide the intent in between, so it gets one decision, the first.

        A judgement that waits for the node (paused or unreachable) can be overtaken: the
        redelivery watch finds the intent overdue and this worker gives it up, the signer's to
        answer (`Admission.on_overdue`, on the same partition), or, in the split topology, a
        redelivered copy is decided first. That decision stands: this judgement is discarded,
        recorded as such (with what it found), and nothing else is published, no approval for
        the signer above all (the signer would refuse it NO_OUTCOME anyway, if it read the
        abandonment first). Another intent under the decided id is refused
        INTENT_ID_REUSED, as intake refuses it (`replay`)."""
        decision = self.decider.decisions.get(intent.intent_id)
        if decision is None:
            return None
        if decision.digest != intent.digest():
            return self.replay(intent, now)
        decided: str = decision.outcome
        if decided == "rejected":
            decided += " " + IntentRejected.model_validate_json(decision.record).code
        found = judged.refusal
        at = judged.verdicts[-1].stage if judged.verdicts else Stage.INTAKE
        return [
            intent_audit(
                SERVICE,
                AuditAction.INTENT_JUDGEMENT_DISCARDED,
                IntentRef(intent.agent_id, intent.intent_id, intent.digest()),
                now,
                at,
                decided=decided,
                judged="passed" if found is None else f"rejected {found.code}",
                verdicts=[f"{verdict.stage}: {verdict.code}" for verdict in judged.verdicts],
                reason=f"decided {decided} while this judgement waited (for the node); that decision stands, "
                "this one is not published",
            )
        ]

    def idempotent(self, intent: TransactionIntent, policy: AgentPolicy, now: datetime) -> list[Emit] | None:
        """The answer for an intent whose idempotency key is taken, else None (and the key is now
        this intent's, when it was free)."""
        slot = intent.idempotency_slot
        if slot is None:
            return None
        first = self.idempotency.get(slot)
        now_us = to_us(now)
        if first is None or not idempotency_slot_live(first["at_us"], now_us):
            self.idempotency[slot] = {
                "intent_id": intent.intent_id,
                "at_us": now_us,
                "request": intent.request_fields(),
            }
            return None
        decider = self.decider
        conflict = idempotency_conflict(first["intent_id"], first.get("request"), intent)
        if conflict is not None:
            # Checked before the first's outcome, which may not be known yet: a different request
            # under a taken key never gets another payment's answer, nor a judgement of its own.
            verdict = StageVerdict.refusing(
                intent_id=intent.intent_id,
                stage=Stage.INTAKE,
                code=Code.IDEMPOTENCY_KEY_REUSED,
                reason=str(conflict),
                facts={"original_intent_id": first["intent_id"]},
            )
            return [decider.verdict_audit(verdict, intent, now)] + decider.reject(intent, verdict, [verdict], now)
        original = decider.decisions.get(first["intent_id"])
        if original is None:
            return None
        verdict = StageVerdict.passing(
            intent_id=intent.intent_id,
            stage=Stage.INTAKE,
            code=Code.IDEMPOTENT_REPLAY,
            reason=f"idempotency key already used by intent {first['intent_id']} within 24 h; its result is returned",
            facts={"original_intent_id": first["intent_id"]},
        )
        if original.outcome == "parked":
            verdict = StageVerdict.refusing(
                intent_id=intent.intent_id,
                stage=Stage.INTAKE,
                code=Code.IDEMPOTENT_ORIGINAL_AWAITING_APPROVAL,
                reason=f"idempotency key already used by intent {first['intent_id']}, which is "
                "waiting for an admin's approval; follow that intent's outcome",
                facts={"original_intent_id": first["intent_id"]},
            )
            return [decider.verdict_audit(verdict, intent, now)] + decider.reject(intent, verdict, [verdict], now)
        if original.outcome in ("approved", "released"):
            # The signer returns the original's signed bytes for this key, so no spend is reserved twice.
            return [decider.verdict_audit(verdict, intent, now)] + decider.approve(
                intent, policy, judge.Judgement((verdict,)), now, counts=False
            )
        if original.outcome == "abandoned":
            # Its answer is the signer's (NO_OUTCOME, unless it signed it after all), which this
            # worker does not hold: refused, never judged again as a payment of its own.
            stage, code = Stage.INTAKE, Code.NO_OUTCOME
            reason = (
                f"idempotency key already used by intent {first['intent_id']}, which was given up without an outcome "
                "from this worker; follow that intent's outcome from the signer, and submit a new intent under a new "
                "idempotency key"
            )
        else:
            prior = IntentRejected.model_validate_json(original.record)
            stage, code, reason = prior.stage, prior.code, prior.reason
        echoed = StageVerdict.refusing(
            intent_id=intent.intent_id,
            stage=stage,
            code=code,
            reason=reason,
            facts={"original_intent_id": first["intent_id"]},
        )
        return [decider.verdict_audit(verdict, intent, now)] + decider.reject(intent, echoed, [verdict, echoed], now)
