"""Human approvals and deadlines: what ends an intent's wait for an admin. An admin's signed
approval or denial, bound to the parked intent's digest, or the end of the wait
(APPROVAL_EXPIRED), which the worker's timer turns into a deadline record so that it happens in
stream order. No Kafka here: bytes in, `Emit`s out.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import orjson
from pydantic import ValidationError

from runtime import metrics
from runtime.admins import Admins
from runtime.clock import to_us
from schemas import topics
from schemas.actions import AuditAction
from schemas.auth import human_approval_problem
from schemas.codes import Code
from schemas.emit import Emit, IntentRef, Source, intent_audit, outcome_with_audit
from schemas.errors import explain
from schemas.outcomes import HumanApproval, IntentApproved, StageVerdict
from schemas.stages import Stage
from streams.decide import SERVICE, Decider
from streams.decision import Decision


class Approvals:
    """Ends the waits of the parked intents ``decider`` holds; ``admins``: the admin set in force."""

    def __init__(self, decider: Decider, admins: Admins):
        self.decider = decider
        self.admins = admins

    def on_human_approval(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """An admin's decision on a parked intent. Believed only when signed by a pinned admin key
        and bound to the parked intent's digest; an approval ends the wait with the intent
        approved (the decision travels with it, for the signer to check), a denial with
        APPROVAL_DENIED and its reservation released. A denial of an approved sign-only intent is its
        cancellation, the signer's. Anything else is audited and changes nothing."""
        try:
            approval = HumanApproval.model_validate_json(raw or b"")
        except ValidationError as exc:
            return self.decider.dead_letter(
                raw, source, now, f"invalid HumanApproval: {'; '.join(explain(exc))}", explain(exc)
            )
        decision = self.decider.decisions.get(approval.intent_id)
        problem = human_approval_problem(approval, self.admins)
        if problem is not None:
            return self._refused(approval, f"{problem}; ignored", now, problem.code)
        if decision is not None and decision.held and decision.outcome == "approved" and approval.decision == "deny":
            # The cancellation of a sign-only transaction: the signer's to make (`signer.sign_only`);
            # its record on warden.txs.signed or warden.bitcoin.signed moves the reservation here
            # (`Decider.on_signed`, `Decider.on_bitcoin_signed`).
            return []
        if decision is None or decision.outcome != "parked":
            return self._refused(
                approval, "no intent with this id is awaiting approval (decided, expired or unknown); ignored", now
            )
        if approval.intent_digest != decision.digest or approval.agent_id != decision.agent_id:
            return self._refused(
                approval, "the decision names another intent (intent_digest or agent differs); ignored", now
            )
        expires_us, pending_record = decision.waiting()
        if to_us(now) >= expires_us:
            return self._refused(approval, "the wait for approval had ended; the intent expired", now) + self._expire(
                approval.intent_id, now
            )
        self.decider.parked.pop(approval.intent_id, None)
        pending = IntentApproved.from_bytes(pending_record)
        actor = f"admin:{approval.admin_key_id}"
        if approval.decision == "deny":
            return self._denied(approval, decision, pending, actor, now)
        return self._approved(approval, decision, pending, actor, now)

    def _refused(self, approval: HumanApproval, why: str, now: datetime, code: Code | None = None) -> list[Emit]:
        """An approval not acted on: audited with ``why`` (and ``code``, when the refusal has one of
        its own: a passkey's assertion that does not verify), nothing else changes."""
        return [
            intent_audit(
                SERVICE,
                AuditAction.APPROVAL_REFUSED,
                IntentRef(approval.agent_id, approval.intent_id, approval.intent_digest),
                now,
                approval.signature[:16],
                decision=approval.decision,
                admin_key_id=approval.admin_key_id,
                reason=why,
                **({} if code is None else {"code": code}),
            )
        ]

    def _denied(
        self, approval: HumanApproval, decision: Decision, pending: IntentApproved, actor: str, now: datetime
    ) -> list[Emit]:
        """An admin's denial: the reservation released and the intent rejected with APPROVAL_DENIED."""
        self.decider.windows.release(decision.agent_id, approval.intent_id)
        verdict = StageVerdict.refusing(
            intent_id=approval.intent_id,
            stage=Stage.APPROVAL,
            code=Code.APPROVAL_DENIED,
            reason=f"an admin ({approval.admin_key_id}) denied this intent"
            + (f": {approval.reason}" if approval.reason else ""),
        )
        return [
            intent_audit(
                actor,
                AuditAction.INTENT_DENIED,
                IntentRef(decision.agent_id, approval.intent_id, decision.digest),
                now,
                reason=approval.reason,
            )
        ] + self.decider.reject(pending.intent, verdict, [*pending.verdicts, verdict], now)

    def _approved(
        self, approval: HumanApproval, decision: Decision, pending: IntentApproved, actor: str, now: datetime
    ) -> list[Emit]:
        """An admin's approval: the intent signed as approved, carrying the approval, and recorded."""
        # The pending record keeps its verdicts for a denial's rejection; the approval carries none.
        approved = self.decider.signed(
            pending.model_copy(update={"human_approval": approval, "approved_at": now, "verdicts": ()})
        )
        record = approved.to_bytes()
        self.decider.decisions[approval.intent_id] = dataclasses.replace(
            decision, outcome="approved", topic=topics.INTENTS_APPROVED, record=record
        )
        metrics.INTENTS.labels("approved", Stage.APPROVAL, Code.HUMAN_APPROVED).inc()
        return outcome_with_audit(
            topics.INTENTS_APPROVED,
            approved,
            record,
            actor,
            AuditAction.INTENT_HUMAN_APPROVED,
            IntentRef(decision.agent_id, approval.intent_id, decision.digest),
            now,
            reason=approval.reason,
            approved_by=self.admins.signers(approval)[0],
        )

    # -- deadlines ------------------------------------------------------------------------------

    def due_parked(self, now: datetime) -> list[tuple[str, str]]:
        """(agent_id, intent_id) of every parked intent whose wait has ended. Read-only: the worker's
        timer turns each into a deadline record, so the expiry itself happens in stream order."""
        now_us = to_us(now)
        return [
            (self.decider.decisions[i].agent_id, i)
            for i, until in list(self.decider.parked.items())
            if until <= now_us and i in self.decider.decisions
        ]

    def on_deadline(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """A deadline record: expire the intent it names if its wait has really ended (anyone can
        write the topic, so the record is only a reminder to look; it decides nothing). One that
        is no reminder at all is dead-lettered: recorded, not silently skipped."""
        try:
            intent_id = orjson.loads(raw or b"")["intent_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            intent_id = None
        if not isinstance(intent_id, str):
            return self.decider.dead_letter(
                raw,
                source,
                now,
                (
                    'not a deadline reminder: expected a JSON object {"intent_id": "<id>"}; only the streams '
                    "worker's own timer writes warden.approvals.deadlines; nothing was expired"
                ),
            )
        until = self.decider.parked.get(intent_id)
        if until is None or until > to_us(now):
            return []
        return self._expire(intent_id, now)

    def expire_parked(self, now: datetime) -> list[Emit]:
        """Every parked intent whose wait has ended: APPROVAL_EXPIRED, and its reservation released."""
        return [emit for _, intent_id in self.due_parked(now) for emit in self._expire(intent_id, now)]

    def _expire(self, intent_id: str, now: datetime) -> list[Emit]:
        self.decider.parked.pop(intent_id, None)
        decision = self.decider.decisions.get(intent_id)
        if decision is None or decision.outcome != "parked":
            return []
        _, pending_record = decision.waiting()
        pending = IntentApproved.from_bytes(pending_record)
        self.decider.windows.release(decision.agent_id, intent_id)
        waited = pending.policy.approval_timeout_s
        verdict = StageVerdict.refusing(
            intent_id=intent_id,
            stage=Stage.APPROVAL,
            code=Code.APPROVAL_EXPIRED,
            reason=f"no admin approved this intent within {waited} s (approval_timeout_s); it "
            "will not be signed. Submit a new intent and ask an admin to approve it",
        )
        return [self.decider.verdict_audit(verdict, pending.intent, now)] + self.decider.reject(
            pending.intent, verdict, [*pending.verdicts, verdict], now
        )

    # -- internals ------------------------------------------------------------------------------
