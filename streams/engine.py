"""What the streams worker decides, with no Kafka in sight.

The engine turns input records (raw bytes plus where they came from) and the
worker's state into output records (`Emit`s: topic, key, bytes). The topology
module feeds it from Faust streams and writes its `Emit`s to topics; tests feed
it directly. State lives in three mappings the caller provides (Faust tables in
the worker, dicts in tests):

- ``policies``: agent_id → the newest admin-signed policy (JSON);
- ``decisions``: intent_id → the outcome already emitted for it (and the
  digest of the intent it was about), so a redelivered intent gets the same
  answer, not a second one, and the rolling window can be rebuilt from it;
- ``idempotency``: "agent_id:sha256(idempotency_key)" → the first intent_id
  that used the key (24 h TTL).
"""

from __future__ import annotations

import base64
import functools
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from rules import guardrails, judge
from rules.window import SpendWindow
from runtime import metrics
from runtime.clock import from_us, to_us
from runtime.rpc import Node
from schemas import topics
from schemas.auth import (
    OutcomeT,
    ServiceKeys,
    human_approval_valid,
    intent_signature_valid,
    outcome_forgery,
    policy_signature_valid,
    sign_outcome,
)
from schemas.emit import Emit, Source, dead_letter
from schemas.emit import audit as _audit
from schemas.errors import explain
from schemas.intake import Unreadable, read_intent, unreadable_answer
from schemas.intent import INTENT_MAX_AGE_US, TransactionIntent, idempotency_key_sha256, idempotency_slot_live
from schemas.outcomes import (
    HumanApproval,
    IntentAbandoned,
    IntentApproved,
    IntentParked,
    IntentRejected,
    StageEnvelope,
    StageVerdict,
)
from schemas.policy import AgentPolicy

SERVICE = "service:streams"


@dataclass
class Windows:
    """Per-agent rolling windows, derived from ``decisions`` (never stored on their own): one for
    native spend and one per asset the agent moved (keyed ``chain:token``)."""

    by_agent: dict[tuple[str, str], SpendWindow] = field(default_factory=dict)

    def of(self, agent_id: str, asset: str = "native") -> SpendWindow:
        return self.by_agent.setdefault((agent_id, asset), SpendWindow())

    def reserve(self, agent_id: str, intent_id: str, now_us: int, spend_wei: int, assets: dict[str, int]) -> None:
        self.of(agent_id).reserve(intent_id, now_us, spend_wei)
        for asset, units in assets.items():
            self.of(agent_id, asset).reserve(intent_id, now_us, units)

    def release(self, agent_id: str, intent_id: str) -> None:
        for (agent, _), window in self.by_agent.items():
            if agent == agent_id:
                window.release(intent_id)

    def rebuild(self, decisions: MutableMapping) -> None:
        self.by_agent.clear()
        for intent_id, decision in decisions.items():
            if decision.get("outcome") in ("approved", "parked") and decision.get("counts", True):
                assets = {k: int(v) for k, v in decision.get("assets", {}).items()}
                self.reserve(decision["agent_id"], intent_id, decision["at_us"], int(decision["spend_wei"]), assets)


class _KeysNow:
    """Pinned service keys, asking for an unknown key id at once (``PinnedServiceKeys.key_now``)
    where the keys can: a stage envelope from a worker started a moment ago would otherwise be
    dead-lettered for good, and its intent left without an outcome."""

    def __init__(self, keys: ServiceKeys):
        self.key = getattr(keys, "key_now", keys.key)


class Engine:
    def __init__(
        self,
        admin_keys: dict[str, str],
        node_for: Callable[[str], Node],
        policies: MutableMapping,
        decisions: MutableMapping,
        idempotency: MutableMapping,
        service_key: tuple[str, Ed25519PrivateKey],
        service_keys: ServiceKeys,
        max_record_bytes: int = 65_536,
        max_age_us: int = INTENT_MAX_AGE_US,
        home_partition: Callable[[str], int] | None = None,
    ):
        self.admin_keys = admin_keys
        # The partition an agent's records land in, when the records come from a partitioned
        # topic: an intent is decided only there (``_off_partition``). None: not checked (one
        # engine fed by hand, as in unit tests, holds every agent).
        self.home_partition = home_partition
        self.key_id, self._key = service_key
        self.service_keys = service_keys  # pinned signer keys: only a signer's refusal releases a reservation
        self.max_age_us = max_age_us
        self.node_for = node_for
        self.policies = policies
        self.decisions = decisions
        self.idempotency = idempotency
        self.windows = Windows()
        # intent_id → when its wait for an admin ends (µs): the parked decisions, kept to expire them.
        self.parked: dict[str, int] = {}
        self.max_record_bytes = max_record_bytes

    # -- policies -------------------------------------------------------------------------------

    def on_policy(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        try:
            policy = AgentPolicy.model_validate_json(raw or b"")
        except ValidationError as exc:
            return self.dead_letter(raw, source, now, f"invalid AgentPolicy: {'; '.join(explain(exc))}", explain(exc))
        agent = policy.agent_id
        if not policy_signature_valid(policy, self.admin_keys):
            why = (
                "policy is unsigned"
                if not policy.signature
                else f"policy signature does not verify against pinned admin key {policy.admin_key_id!r}"
            )
            return [
                _audit(
                    SERVICE,
                    "policy.refused",
                    f"policy:{agent}",
                    now,
                    agent,
                    str(policy.version),
                    policy.signature[:16],
                    agent_id=agent,
                    version=policy.version,
                    reason=why + "; ignored",
                )
            ]
        raw_current = self.policies.get(agent)
        current = _policy(raw_current) if raw_current else None
        if current is not None and current.version >= policy.version:
            if current.signature == policy.signature:
                return []  # a redelivery of the policy in force
            return [
                _audit(
                    SERVICE,
                    "policy.refused",
                    f"policy:{agent}",
                    now,
                    agent,
                    str(policy.version),
                    policy.signature[:16],
                    agent_id=agent,
                    version=policy.version,
                    reason=f"version {policy.version} is not newer than the policy in force; ignored",
                )
            ]
        self.policies[agent] = policy.to_bytes().decode()
        return [
            _audit(
                f"admin:{policy.admin_key_id}",
                "policy.updated",
                f"policy:{agent}",
                now,
                agent,
                str(policy.version),
                agent_id=agent,
                version=policy.version,
                policy=policy.model_dump(mode="json", exclude={"signature"}),
            )
        ]

    # -- intents --------------------------------------------------------------------------------

    async def on_intent(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """Fused topology: intake and every guardrail in one hop."""
        out, state = self._intake(raw, source, now)
        if state is None:
            return out
        intent, policy = state
        judged = judge.Judgement()
        while (stage := judged.next_stage(intent)) is not None:
            judged = await self._timed_stage(stage, intent, policy, now, judged)
            out.append(self._verdict_audit(judged.verdicts[-1], intent, now))
        if judged.refusal is not None:
            return out + self._reject(intent, judged.refusal, judged.verdicts, now)
        return out + self._decide(intent, policy, judged, now, recheck_assets=False)

    async def on_intake(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """Split topology, first hop: intake, then hand the intent to the first stage's topic."""
        out, state = self._intake(raw, source, now)
        if state is None:
            return out
        intent, policy = state
        return out + [self._envelope(intent, policy, judge.Judgement())]

    async def on_stage(self, stage: str, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """Split topology: one guardrail per hop, reading the envelope the previous stage wrote."""
        envelope = self._stage_envelope(stage, raw, source, now)
        if isinstance(envelope, list):
            return envelope  # its dead letter
        intent, policy = envelope.intent, envelope.policy
        if intent.intent_id in self.decisions:
            return self._replay(intent, now)
        judged = await self._timed_stage(stage, intent, policy, now, _judgement_of(envelope))
        out = [self._verdict_audit(judged.verdicts[-1], intent, now)]
        if judged.refusal is not None:
            return out + self._reject(intent, judged.refusal, judged.verdicts, now)
        if judged.next_stage(intent) is not None:
            return out + [self._envelope(intent, policy, judged)]
        return out + self._decide(intent, policy, judged, now, recheck_assets=True)

    def _stage_envelope(
        self, stage: str, raw: bytes | None, source: Source, now: datetime
    ) -> StageEnvelope | list[Emit]:
        """The envelope on ``stage``'s topic, or the dead letter of one that must decide nothing.

        A stage believes the policy and the verdicts the envelope carries, so only one a pinned
        worker signed is read: anyone who can write to the topic could otherwise choose them, and
        have this worker reject, under its own signature and bound to the real intent's digest, an
        intent it would have signed (seen on the running stack). It must be addressed to this stage
        (one replayed onto a later stage's topic would skip the stages between) and be on its
        agent's partition, as an intent must (``_off_partition``)."""
        envelope = self._from_a_worker(StageEnvelope, raw, source, now, "the warden.stage.* topics")
        if isinstance(envelope, list):
            return envelope
        if envelope.stage != stage:
            return self.dead_letter(
                raw,
                source,
                now,
                (
                    f"stage envelope for intent {envelope.intent_id} is addressed to stage {envelope.stage!r}, not to "
                    f"{stage!r} ({source.topic}); not decided"
                ),
            )
        return self._off_partition(envelope.intent, raw, source, now) or envelope

    def on_abandoned(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """A worker's redelivery task gave up on an intent: decide it NO_OUTCOME, unless it was
        decided (then the decision stands and nothing is said again). Remembered like any
        decision, so a late copy of the intent gets this answer, never a different one.

        Believed only when a pinned worker signed it (`IntentAbandoned` says why): anything else
        is dead-lettered and decides nothing. An intent whose agent signature does not verify
        under the policy in force is answered but not remembered, as at intake: a forged intent
        must not take the id of a real one."""
        abandoned = self._from_a_worker(
            IntentAbandoned, raw, source, now, "warden.intents.abandoned (its redelivery task)"
        )
        if isinstance(abandoned, list):
            return abandoned
        intent = abandoned.intent
        off = self._off_partition(intent, raw, source, now)
        if off is not None:
            return off
        if intent.intent_id in self.decisions:
            return []
        raw_policy = self.policies.get(intent.agent_id)
        remember = raw_policy is None or intent_signature_valid(intent, _policy(raw_policy))
        verdict = StageVerdict(
            intent_id=intent.intent_id,
            stage="intake",
            passed=False,
            code="NO_OUTCOME",
            reason="the pipeline produced no outcome for this intent after repeated deliveries; "
            "it was given up and will not be signed. Check `warden status`, then submit "
            "a new intent",
        )
        return [self._verdict_audit(verdict, intent, now)] + self._reject(intent, verdict, [verdict], now, remember)

    def _from_a_worker(
        self, model: type[OutcomeT], raw: bytes | None, source: Source, now: datetime, written_to: str
    ) -> OutcomeT | list[Emit]:
        """A record only a streams worker writes (a stage envelope, an abandoned intent), or the
        dead letter of one that no pinned worker signed about the intent it carries: what such a
        record says is acted on, so one a topic writer made must decide nothing."""
        try:
            record = model.model_validate_json(raw or b"")
        except ValidationError as exc:
            return self.dead_letter(
                raw,
                source,
                now,
                (
                    f"invalid {model.__name__}: {'; '.join(explain(exc))}; not decided: only a streams worker "
                    f"writes {written_to}"
                ),
                explain(exc),
            )
        forged = outcome_forgery(record, _KeysNow(self.service_keys), record.intent.digest())
        if forged is not None:
            return self.dead_letter(
                raw,
                source,
                now,
                (
                    f"{model.__name__} for intent {record.intent_id} not signed by a pinned worker key ({forged}); not "
                    f"decided: only a streams worker writes {written_to}"
                ),
            )
        return record

    def on_rejected(self, raw: bytes, now: datetime) -> list[Emit]:
        """A rejection after approval (the signer refused): release the window's reservation, but
        only when the signer really said so about this very intent. Anyone can write to the topic;
        a forged release would let an agent spend past its limit at this worker."""
        rejected = IntentRejected.model_validate_json(raw)
        decision = self.decisions.get(rejected.intent_id)
        if rejected.stage != "signing" or decision is None or decision.get("outcome") != "approved":
            return []
        forged = outcome_forgery(rejected, self.service_keys, decision.get("digest"))
        if forged is not None:
            return [
                _audit(
                    SERVICE,
                    "outcome.forged",
                    f"intent:{rejected.intent_id}",
                    now,
                    rejected.intent_id,
                    rejected.service_signature[:16],
                    intent_id=rejected.intent_id,
                    agent_id=decision["agent_id"],
                    topic=topics.INTENTS_REJECTED,
                    code=rejected.code,
                    reason=f"not a signer's refusal of this intent ({forged}); the reservation stays",
                )
            ]
        self.decisions[rejected.intent_id] = {**decision, "outcome": "released"}
        self.windows.release(decision["agent_id"], rejected.intent_id)
        return []

    def rebuild(self) -> None:
        """After partitions move: the windows and the parked intents, from ``decisions`` alone."""
        self.windows.rebuild(self.decisions)
        self.parked = {
            intent_id: d["expires_us"] for intent_id, d in self.decisions.items() if d.get("outcome") == "parked"
        }

    # -- human approval -------------------------------------------------------------------------

    def on_human_approval(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """An admin's decision on a parked intent. Believed only when signed by a pinned admin key
        and bound to the parked intent's digest; an approval ends the wait with the intent
        approved (the decision travels with it, for the signer to check), a denial with
        APPROVAL_DENIED and its reservation released. Anything else is audited and changes nothing."""
        try:
            approval = HumanApproval.model_validate_json(raw or b"")
        except ValidationError as exc:
            return self.dead_letter(raw, source, now, f"invalid HumanApproval: {'; '.join(explain(exc))}", explain(exc))
        decision = self.decisions.get(approval.intent_id)

        def refused(why: str) -> list[Emit]:
            return [
                _audit(
                    SERVICE,
                    "approval.refused",
                    f"intent:{approval.intent_id}",
                    now,
                    approval.intent_id,
                    approval.signature[:16],
                    intent_id=approval.intent_id,
                    agent_id=approval.agent_id,
                    decision=approval.decision,
                    admin_key_id=approval.admin_key_id,
                    reason=why,
                )
            ]

        if not human_approval_valid(approval, self.admin_keys):
            return refused(f"not signed by a pinned admin key ({approval.admin_key_id!r}); ignored")
        if decision is None or decision.get("outcome") != "parked":
            return refused("no intent with this id is awaiting approval (decided, expired or unknown); ignored")
        if approval.intent_digest != decision.get("digest") or approval.agent_id != decision["agent_id"]:
            return refused("the decision names another intent (intent_digest or agent differs); ignored")
        if to_us(now) >= decision["expires_us"]:
            return refused("the wait for approval had ended; the intent expired") + self._expire(
                approval.intent_id, now
            )
        self.parked.pop(approval.intent_id, None)
        pending = IntentApproved.from_bytes(base64.b64decode(decision["pending"]))
        actor = f"admin:{approval.admin_key_id}"
        if approval.decision == "deny":
            self.windows.release(decision["agent_id"], approval.intent_id)
            verdict = StageVerdict(
                intent_id=approval.intent_id,
                stage="approval",
                passed=False,
                code="APPROVAL_DENIED",
                reason=f"an admin ({approval.admin_key_id}) denied this intent"
                + (f": {approval.reason}" if approval.reason else ""),
            )
            return [
                _audit(
                    actor,
                    "intent.denied",
                    f"intent:{approval.intent_id}",
                    now,
                    approval.intent_id,
                    intent_id=approval.intent_id,
                    agent_id=decision["agent_id"],
                    reason=approval.reason,
                )
            ] + self._reject(pending.intent, verdict, [*pending.verdicts, verdict], now)
        # The pending record keeps its verdicts for a denial's rejection; the approval carries none.
        approved = self._signed(
            pending.model_copy(update={"human_approval": approval, "approved_at": now, "verdicts": ()})
        )
        record = approved.to_bytes()
        self.decisions[approval.intent_id] = {
            **decision,
            "outcome": "approved",
            "topic": topics.INTENTS_APPROVED,
            "record": base64.b64encode(record).decode(),
        }
        metrics.INTENTS.labels("approved", "approval", "HUMAN_APPROVED").inc()
        return [
            Emit(topics.INTENTS_APPROVED, decision["agent_id"], record),
            _audit(
                actor,
                "intent.human_approved",
                f"intent:{approval.intent_id}",
                now,
                approval.intent_id,
                intent_id=approval.intent_id,
                agent_id=decision["agent_id"],
                reason=approval.reason,
            ),
        ]

    def due_parked(self, now: datetime) -> list[tuple[str, str]]:
        """(agent_id, intent_id) of every parked intent whose wait has ended. Read-only: the worker's
        timer turns each into a deadline record, so the expiry itself happens in stream order."""
        now_us = to_us(now)
        return [
            (self.decisions[i]["agent_id"], i)
            for i, until in list(self.parked.items())
            if until <= now_us and i in self.decisions
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
            return self.dead_letter(
                raw,
                source,
                now,
                (
                    'not a deadline reminder: expected a JSON object {"intent_id": "<id>"}; only the streams '
                    "worker's own timer writes warden.approvals.deadlines; nothing was expired"
                ),
            )
        until = self.parked.get(intent_id)
        if until is None or until > to_us(now):
            return []
        return self._expire(intent_id, now)

    def expire_parked(self, now: datetime) -> list[Emit]:
        """Every parked intent whose wait has ended: APPROVAL_EXPIRED, and its reservation released."""
        return [emit for _, intent_id in self.due_parked(now) for emit in self._expire(intent_id, now)]

    def _expire(self, intent_id: str, now: datetime) -> list[Emit]:
        self.parked.pop(intent_id, None)
        decision = self.decisions.get(intent_id)
        if decision is None or decision.get("outcome") != "parked":
            return []
        pending = IntentApproved.from_bytes(base64.b64decode(decision["pending"]))
        self.windows.release(decision["agent_id"], intent_id)
        waited = pending.policy.approval_timeout_s
        verdict = StageVerdict(
            intent_id=intent_id,
            stage="approval",
            passed=False,
            code="APPROVAL_EXPIRED",
            reason=f"no admin approved this intent within {waited} s (approval_timeout_s); it "
            "will not be signed. Submit a new intent and ask an admin to approve it",
        )
        return [self._verdict_audit(verdict, pending.intent, now)] + self._reject(
            pending.intent, verdict, [*pending.verdicts, verdict], now
        )

    # -- internals ------------------------------------------------------------------------------

    def _intake(self, raw, source, now) -> tuple[list[Emit], tuple[TransactionIntent, AgentPolicy] | None]:
        intent = read_intent(raw, self.max_record_bytes)
        if isinstance(intent, Unreadable):
            return self._unreadable(intent, raw, source, now), None
        off = self._off_partition(intent, raw, source, now)
        if off is not None:
            return off, None
        if intent.intent_id in self.decisions:
            # Redelivered after a crash or re-sent by the producer: the same answer again, never a second one.
            return self._replay(intent, now), None
        out = [
            _audit(
                f"agent:{intent.agent_id}",
                "intent.submitted",
                f"intent:{intent.intent_id}",
                now,
                intent.intent_id,
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                chain=intent.chain,
                idempotency_key_sha256=idempotency_key_sha256(intent.idempotency_key),
                **_what(intent),
                # The development opt-in that sealed a secret to an unattested signer, on the ledger.
                **({"unattested_signer_accepted": True} if intent.unattested_signer_accepted else {}),
            )
        ]
        raw_policy = self.policies.get(intent.agent_id)
        policy = _policy(raw_policy) if raw_policy else None
        failure = None
        if policy is None:
            failure = (
                "POLICY_MISSING",
                f"no policy for agent {intent.agent_id!r}; an admin creates one with `warden agents create`",
            )
        else:
            admitted = judge.admit(intent, policy, now, self.max_age_us)
            if not admitted.passed:
                failure = (admitted.code, admitted.reason)
        if failure:
            verdict = StageVerdict(
                intent_id=intent.intent_id, stage="intake", passed=False, code=failure[0], reason=failure[1]
            )
            # A forged record must not decide the fate of the real intent with the same id: its
            # rejection is published (with the forged record's digest, which the real intent's
            # client does not accept) but not remembered as that intent's decision.
            remember = failure[0] != "AGENT_SIGNATURE_INVALID"
            return out + [self._verdict_audit(verdict, intent, now)] + self._reject(
                intent, verdict, [verdict], now, remember
            ), None
        replay = self._idempotent_replay(intent, policy, now)
        if replay is not None:
            return out + replay, None
        return out, (intent, policy)

    def _idempotent_replay(self, intent: TransactionIntent, policy: AgentPolicy, now: datetime) -> list[Emit] | None:
        slot = intent.idempotency_slot
        if slot is None:
            return None
        first = self.idempotency.get(slot)
        now_us = to_us(now)
        if first is None or not idempotency_slot_live(first["at_us"], now_us):
            self.idempotency[slot] = {"intent_id": intent.intent_id, "at_us": now_us}
            return None
        original = self.decisions.get(first["intent_id"])
        if original is None:
            return None
        verdict = StageVerdict(
            intent_id=intent.intent_id,
            stage="intake",
            passed=True,
            code="IDEMPOTENT_REPLAY",
            reason=f"idempotency key already used by intent {first['intent_id']} within 24 h; its result is returned",
            facts={"original_intent_id": first["intent_id"]},
        )
        if original["outcome"] == "parked":
            verdict = StageVerdict(
                intent_id=intent.intent_id,
                stage="intake",
                passed=False,
                code="IDEMPOTENT_ORIGINAL_AWAITING_APPROVAL",
                reason=f"idempotency key already used by intent {first['intent_id']}, which is "
                "waiting for an admin's approval; follow that intent's outcome",
                facts={"original_intent_id": first["intent_id"]},
            )
            return [self._verdict_audit(verdict, intent, now)] + self._reject(intent, verdict, [verdict], now)
        if original["outcome"] in ("approved", "released"):
            # The signer returns the original's signed bytes for this key, so no spend is reserved twice.
            return [self._verdict_audit(verdict, intent, now)] + self._approve(
                intent, policy, judge.Judgement((verdict,)), now, counts=False
            )
        prior = IntentRejected.model_validate_json(base64.b64decode(original["record"]))
        echoed = StageVerdict(
            intent_id=intent.intent_id,
            stage=prior.stage,
            passed=False,
            code=prior.code,
            reason=prior.reason,
            facts={"original_intent_id": first["intent_id"]},
        )
        return [self._verdict_audit(verdict, intent, now)] + self._reject(intent, echoed, [verdict, echoed], now)

    async def _timed_stage(
        self, stage: str, intent: TransactionIntent, policy: AgentPolicy, now: datetime, so_far: judge.Judgement
    ) -> judge.Judgement:
        began = time.perf_counter()  # a duration for the metric; decisions use only `now`
        try:
            return await judge.run_stage(stage, intent, policy, self._context(intent, policy, now), so_far)
        finally:
            metrics.STAGE_SECONDS.labels(stage).observe(time.perf_counter() - began)

    def _context(self, intent: TransactionIntent, policy: AgentPolicy, now: datetime) -> judge.Context:
        """The worker's own spend windows and node; the sender is the one the policy names."""
        now_us = to_us(now)
        return judge.Context(
            spent=lambda asset: self.windows.of(intent.agent_id, asset).spent(now_us),
            node=self.node_for(intent.chain),
            sender=policy.sender_address,
        )

    def _decide(self, intent, policy, judged: judge.Judgement, now, recheck_assets: bool) -> list[Emit]:
        """Every guardrail passed: approved, or parked for a human when above a threshold. In the
        split topology (``recheck_assets``) token amounts are checked against their windows again
        here, in the same step that reserves them: other intents of the agent may have been
        reserved since the assets stage ran. Fused, every stage ran in this one step, so nothing
        could have been (and the native limit needs no second look in either: its stage is last)."""
        if recheck_assets and judged.asset_spend:
            now_us = to_us(now)
            again = guardrails.check_assets(
                intent, policy, lambda asset: self.windows.of(intent.agent_id, asset).spent(now_us)
            )
            if not again.passed:
                return [self._verdict_audit(again, intent, now)] + self._reject(
                    intent, again, [*judged.verdicts, again], now
                )
        why = guardrails.approval_needed(intent, policy, judged.asset_spend)
        if why is None:
            return self._approve(intent, policy, judged, now, counts=True)
        return self._park(intent, policy, judged, now, why)

    def _park(self, intent, policy, judged: judge.Judgement, now, why: str) -> list[Emit]:
        """Reserved like an approval (two parked intents can never both pass a limit), and
        remembered with the approval it becomes if an admin says so."""
        now_us = to_us(now)
        expires_us = now_us + policy.approval_timeout_s * 1_000_000
        pending = IntentApproved(
            intent=intent, policy=policy, verdicts=judged.verdicts, approved_at=now, intent_digest=intent.digest()
        )
        parked = self._signed(
            IntentParked(
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                reason=f"waiting for an admin: {why}",
                intent=intent,
                verdicts=judged.verdicts,
                parked_at=now,
                expires_at=from_us(expires_us),
                intent_digest=intent.digest(),
            )
        )
        record = parked.to_bytes()
        spend, assets = judged.spend_wei(intent), judged.asset_spend
        self.decisions[intent.intent_id] = {
            "agent_id": intent.agent_id,
            "outcome": "parked",
            "at_us": now_us,
            "spend_wei": str(spend),
            "assets": {key: str(units) for key, units in assets.items()},
            "counts": True,
            "topic": topics.INTENTS_AWAITING_APPROVAL,
            "record": base64.b64encode(record).decode(),
            "digest": parked.intent_digest,
            "expires_us": expires_us,
            "pending": base64.b64encode(pending.to_bytes()).decode(),
        }
        self.windows.reserve(intent.agent_id, intent.intent_id, now_us, spend, assets)
        self.parked[intent.intent_id] = expires_us
        metrics.INTENTS.labels("parked", "approval", "AWAITING_APPROVAL").inc()
        return [
            Emit(topics.INTENTS_AWAITING_APPROVAL, intent.agent_id, record),
            _audit(
                SERVICE,
                "intent.parked",
                f"intent:{intent.intent_id}",
                now,
                intent.intent_id,
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                reason=why,
                expires_at=parked.expires_at.isoformat(),
                spend_wei=str(spend),
                asset_spend={key: str(units) for key, units in assets.items()},
            ),
        ]

    def _approve(self, intent, policy, judged: judge.Judgement, now, counts: bool) -> list[Emit]:
        approved = self._signed(
            IntentApproved(intent=intent, policy=policy, approved_at=now, intent_digest=intent.digest())
        )
        record = approved.to_bytes()
        now_us = to_us(now)
        spend, assets = (judged.spend_wei(intent), judged.asset_spend) if counts else (0, {})
        self.decisions[intent.intent_id] = {
            "agent_id": intent.agent_id,
            "outcome": "approved",
            "at_us": now_us,
            "spend_wei": str(spend),
            "assets": {key: str(units) for key, units in assets.items()},
            "counts": counts,
            "topic": topics.INTENTS_APPROVED,
            "record": base64.b64encode(record).decode(),
            "digest": approved.intent_digest,
        }
        metrics.INTENTS.labels("approved", "", "IDEMPOTENT_REPLAY" if not counts else "APPROVED").inc()
        if counts:
            # Reserved at approval, in the same step as the decision, so two intents can never both pass the limit.
            self.windows.reserve(intent.agent_id, intent.intent_id, now_us, spend, assets)
        return [
            Emit(topics.INTENTS_APPROVED, intent.agent_id, record),
            _audit(
                SERVICE,
                "intent.approved",
                f"intent:{intent.intent_id}",
                now,
                intent.intent_id,
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                policy_version=policy.version,
                value_wei=str(intent.value_wei),
                spend_wei=str(spend),
                chain=intent.chain,
                asset_spend={key: str(units) for key, units in assets.items()},
            ),
        ]

    def _reject(self, intent, verdict: StageVerdict, verdicts, now, remember: bool = True) -> list[Emit]:
        rejected = self._signed(
            IntentRejected(
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                stage=verdict.stage,
                code=verdict.code,
                reason=verdict.reason,
                verdicts=tuple(verdicts),
                decided_at=now,
                intent_digest=intent.digest(),
            )
        )
        record = rejected.to_bytes()
        metrics.INTENTS.labels("rejected", verdict.stage, verdict.code).inc()
        if remember:
            self.decisions[intent.intent_id] = {
                "agent_id": intent.agent_id,
                "outcome": "rejected",
                "at_us": to_us(now),
                "spend_wei": "0",
                "topic": topics.INTENTS_REJECTED,
                "record": base64.b64encode(record).decode(),
                "digest": rejected.intent_digest,
            }
        return [
            Emit(topics.INTENTS_REJECTED, intent.agent_id, record),
            _audit(
                SERVICE,
                "intent.rejected",
                f"intent:{intent.intent_id}",
                now,
                intent.intent_id,
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                stage=verdict.stage,
                code=verdict.code,
                reason=verdict.reason,
            ),
        ]

    def _replay(self, intent: TransactionIntent, now: datetime) -> list[Emit]:
        decision = self.decisions[intent.intent_id]
        if decision.get("digest") != intent.digest():
            # The same id on a different intent (the agent reused an id, or someone replays a
            # variant): the decided one keeps its answer, and this one gets its own refusal,
            # bound to its own digest and not remembered.
            verdict = StageVerdict(
                intent_id=intent.intent_id,
                stage="intake",
                passed=False,
                code="INTENT_ID_REUSED",
                reason=f"intent id {intent.intent_id!r} was already decided for a different "
                "intent; every intent needs its own id",
            )
            return [self._verdict_audit(verdict, intent, now)] + self._reject(
                intent, verdict, [verdict], now, remember=False
            )
        return [Emit(decision["topic"], decision["agent_id"], base64.b64decode(decision["record"]))]

    def _signed(self, record):
        return sign_outcome(record, self._key, self.key_id)

    def _envelope(self, intent, policy, judged: judge.Judgement) -> Emit:
        """The hand-off to the next stage's topic, with the judgement so far, typed."""
        stage = judged.next_stage(intent)
        envelope = self._signed(
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

    @staticmethod
    def _verdict_audit(verdict: StageVerdict, intent: TransactionIntent, now: datetime) -> Emit:
        action = "stage.passed" if verdict.passed else "stage.failed"
        return _audit(
            SERVICE,
            action,
            f"intent:{intent.intent_id}",
            now,
            intent.intent_id,
            verdict.stage,
            intent_id=intent.intent_id,
            agent_id=intent.agent_id,
            stage=verdict.stage,
            code=verdict.code,
            reason=verdict.reason,
            facts=verdict.facts,
        )

    def _unreadable(self, bad: Unreadable, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """The dead letter and audit event of a record that is no readable intent, and the
        producer's answer: an INVALID_INTENT rejection, signed by this worker, whose reason says
        which field was wrong, what is allowed and what to do next.

        Its ``intent_digest`` is the SHA-256 of the record's bytes as written, which its producer
        recomputes (there is no intent whose digest could be taken). It is published keyed by the
        agent the body names, else by the record's key when that is an identifier, under the
        body's intent id, else "unreadable-" and the digest's first 32 hex digits
        (`schemas.intake.unreadable_answer`). A record that names no agent either way gets no
        rejection: only its dead letter and audit event remain.

        Never remembered in ``decisions``: anyone can write such a record under a real intent's
        id, and bound to these bytes the rejection answers only a client that sent exactly them,
        never the real intent, which is decided as if this record never came."""
        out = self.dead_letter(raw, source, now, bad.reason, bad.errors)
        agent_id, intent_id, digest = unreadable_answer(bad, raw, source.key)
        if agent_id is not None:
            rejected = self._signed(
                IntentRejected(
                    intent_id=intent_id,
                    agent_id=agent_id,
                    stage="intake",
                    code="INVALID_INTENT",
                    reason=bad.rejection_reason,
                    decided_at=now,
                    intent_digest=digest,
                )
            )
            out.append(Emit(topics.INTENTS_REJECTED, agent_id, rejected.to_bytes()))
        return out

    def _off_partition(self, intent: TransactionIntent, raw, source: Source, now) -> list[Emit] | None:
        """A dead letter for an intent that is not on its agent's partition, else None.

        An agent's policy, decisions and window live in the tables of the partition its records
        land in (every record is keyed by agent_id). With two workers, another partition may be
        another worker's, which holds none of them: a copy of a real intent re-keyed there by
        anyone who can write to the topic was decided again (POLICY_MISSING), and that rejection,
        signed and bound to the real intent's digest, could answer for an intent that was signed.
        So such a record is decided nowhere but its own partition, and gets no outcome bound to
        its digest: a dead letter, as the signer does with an approval off its partition."""
        if self.home_partition is None:
            return None
        home = self.home_partition(intent.agent_id)
        if source.partition == home:
            return None
        return self.dead_letter(
            raw,
            source,
            now,
            (
                f"intent {intent.intent_id} of agent {intent.agent_id!r} is on partition {source.partition} of "
                f"{source.topic}; an agent's records belong on partition {home} (keyed by agent_id with the Java "
                "client's default partitioner, murmur2; librdkafka: partitioner=murmur2_random). Not decided: "
                "publish it keyed by its agent id"
            ),
        )

    def dead_letter(self, raw, source: Source, now, reason: str, errors=()) -> list[Emit]:
        """A record this worker cannot decide, dead-lettered under its signature."""
        return dead_letter(SERVICE, raw, source, now, reason, tuple(errors), self.max_record_bytes, self._signed)


def _what(intent: TransactionIntent) -> dict:
    """What an intent asks to sign, for the ledger: the kind and what identifies it."""
    if intent.intent_type == "personal_sign":
        return {"kind": "personal_sign", "message_bytes": (len(intent.message or "0x") - 2) // 2}
    if intent.intent_type == "typed_data":
        typed = intent.typed_data
        return {
            "kind": "typed_data",
            "primary_type": typed.primaryType,
            "verifying_contract": typed.verifying_contract,
            "domain_chain_id": typed.chain_id,
            "domain_name": typed.domain.get("name"),
        }
    return {
        "kind": "transaction",
        "to": intent.to,
        "value_wei": str(intent.value_wei),
        "tx_type": intent.tx_type,
        **intent.type_facts(),
    }


def _judgement_of(envelope: StageEnvelope) -> judge.Judgement:
    """The judgement a stage envelope carries (a pinned worker signed it: `Engine._stage_envelope`)."""
    return judge.Judgement(envelope.verdicts, envelope.quote, MappingProxyType(envelope.asset_spend))


@functools.lru_cache(maxsize=4096)
def _policy(raw: str) -> AgentPolicy:
    """The policy table holds JSON text; parse each distinct policy once, not once per intent."""
    return AgentPolicy.model_validate_json(raw)
