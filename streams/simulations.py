"""Simulation requests: what the streams worker answers on ``warden.simulations.requested``.

A request is read and admitted like an intent (on its agent's partition, under the policy in
force, with the judge's admission: the agent's signature, the intents API, freshness; what cannot
be read is dead-lettered with the reason). Its steps are then simulated in one block and judged,
step after step, by the one judge against the agent's windows as this worker holds them
(`rules.bundle`). The answer is a `SimulationResult` signed by this worker and bound to the
request's digest, with its audit events. Nothing is reserved, nothing is remembered in the
decisions table and nothing goes to the signer: a simulation never becomes a signature. No Kafka
here: bytes in, `Emit`s out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rules import bundle, judge
from rules.judge import approval_needed
from runtime.clock import to_us
from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas import topics
from schemas.actions import AuditAction
from schemas.codes import Code
from schemas.emit import Emit, Source
from schemas.emit import audit as _audit
from schemas.intake import Unreadable, read_simulation_request, unreadable_answer
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.simulation import SimulatedStep, SimulationRequest, SimulationResult
from schemas.stages import Stage
from streams.admission import Admission, bytes_digest, policy_of
from streams.decide import SERVICE, Decider


class Simulations:
    def __init__(self, decider: Decider, admission: Admission, node_for: Callable[[str], Node]):
        self.decider = decider
        self.admission = admission
        self.node_for = node_for

    async def on_request(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        request = read_simulation_request(raw, self.decider.max_record_bytes, self.admission.chains)
        if isinstance(request, Unreadable):
            return self._unreadable(request, raw, source, now)
        off = self.admission.off_home(request.agent_id, f"simulation request {request.request_id}", raw, source, now)
        if off is not None:
            return off
        out = [
            _audit(
                f"agent:{request.agent_id}",
                AuditAction.SIMULATION_REQUESTED,
                f"simulation:{request.request_id}",
                now,
                request.request_id,
                request.digest(),
                agent_id=request.agent_id,
                request_id=request.request_id,
                request_digest=request.digest(),
                chain=request.chain,
                steps=[{"intent_id": s.intent_id, "to": s.to, "value_wei": str(s.value_wei)} for s in request.steps],
            )
        ]
        raw_policy = self.admission.policies.get(request.agent_id)
        if raw_policy is None:
            refusal = _refusal(
                request.request_id,
                Stage.INTAKE,
                Code.POLICY_MISSING,
                f"no policy for agent {request.agent_id!r}; an admin creates one with `warden agents create`",
            )
            return out + self._refused(request, refusal, now)
        policy = policy_of(raw_policy)
        admitted = judge.admit_simulation(request, policy, now, self.admission.max_age_us)
        if not admitted.passed:
            # As at an intent's intake: a copy of a real request's fields under a bad signature has
            # the real one's digest, so its refusal is bound to the bytes it came in.
            forged = admitted.code == Code.AGENT_SIGNATURE_INVALID
            return out + self._refused(request, admitted, now, bound_to=bytes_digest(raw) if forged else None)
        if policy.sender_address is None:
            refusal = _refusal(
                request.request_id,
                Stage.INTAKE,
                Code.SIMULATION_SENDER_UNKNOWN,
                f"agent {request.agent_id!r}'s policy (v{policy.version}) names no sender_address, so there is no "
                "account to simulate from; an admin sets sender_address to the agent's signing address",
            )
            return out + self._refused(request, refusal, now)
        return out + await self._simulate(request, policy, policy.sender_address, now)

    async def _simulate(
        self, request: SimulationRequest, policy: AgentPolicy, sender: str, now: datetime
    ) -> list[Emit]:
        node = self.node_for(request.chain)
        try:
            block = int(await node.call("eth_blockNumber"), 16)
            outcomes = await bundle.trace(request.steps, sender, node, block)
            before, decimals = await bundle.read_balances(node, block, bundle.holdings(outcomes), policy, request.chain)
        except (RpcError, RpcUnavailable, bundle.TraceUnreadable) as exc:
            # Fail closed: a bundle the node cannot run is refused, never reported as allowed.
            reason = f"the node for {request.chain} could not simulate the request: {exc}; try again later"
            return self._refused(
                request, _refusal(request.request_id, Stage.SIMULATION, Code.SIMULATION_UNAVAILABLE, reason), now
            )
        now_us = to_us(now)
        spent = lambda asset: self.decider.windows.spent(request.agent_id, asset, now_us)  # noqa: E731
        judged = await bundle.judge_steps(
            request.steps, outcomes, policy, spent, node, sender, now, self.admission.chains
        )
        table = bundle.balance_table(outcomes, before, decimals)
        steps = []
        for done, outcome, rows in zip(judged, outcomes, table, strict=True):
            ran = {v.stage for v in done.judged.verdicts}
            steps.append(
                SimulatedStep(
                    intent_id=done.step.intent_id,
                    to=done.step.to,
                    value=done.step.value,
                    status="success" if bundle.succeeded(outcome) else "reverted",
                    revert_reason=bundle.reason_of(outcome),
                    gas_used=bundle.gas_used(outcome),
                    balance_changes=tuple(rows),
                    verdicts=done.judged.verdicts,
                    not_judged=tuple(s for s in judge.stages_of(done.step) if s not in ran),
                )
            )
        refusal = next((d.judged.refusal for d in judged if d.judged.refusal is not None), None)
        why_human = None
        if refusal is None:
            why_human = next(
                (w for d in judged if (w := approval_needed(d.step, policy, dict(d.judged.asset_spend)))), None
            )
        result = SimulationResult(
            request_id=request.request_id,
            agent_id=request.agent_id,
            chain=request.chain,
            decision="refused" if refusal is not None else "needs_human" if why_human else "allowed",
            deciding=refusal,
            why_human=why_human,
            block_number=block,
            steps=tuple(steps),
            simulated_at=now,
            intent_digest=request.digest(),
        )
        return self._answer(result, now)

    def _refused(
        self, request: SimulationRequest, refusal: StageVerdict, now: datetime, bound_to: str | None = None
    ) -> list[Emit]:
        return self._refusal_of(
            request.request_id, request.agent_id, request.chain, refusal, now, bound_to or request.digest()
        )

    def _refusal_of(
        self, request_id: str, agent_id: str, chain: str, refusal: StageVerdict, now: datetime, digest: str
    ) -> list[Emit]:
        """A refused request's answer, bound to ``digest``, with its audit event."""
        result = SimulationResult(
            request_id=request_id,
            agent_id=agent_id,
            chain=chain,
            decision="refused",
            deciding=refusal,
            simulated_at=now,
            intent_digest=digest,
        )
        return self._answer(result, now)

    def _answer(self, result: SimulationResult, now: datetime) -> list[Emit]:
        """The signed result and its audit event, each step's verdicts on the ledger with it."""
        signed = self.decider.signed(result)
        deciding = result.deciding
        facts = dict(request_id=result.request_id, request_digest=result.intent_digest, decision=result.decision)
        event = _audit(
            SERVICE,
            AuditAction.SIMULATION_DECIDED,
            f"simulation:{result.request_id}",
            now,
            result.request_id,
            result.intent_digest or "",
            agent_id=result.agent_id,
            **facts,
            deciding=None if deciding is None else {"code": deciding.code, "stage": deciding.stage},
            block_number=result.block_number,
            steps=[
                {
                    "intent_id": s.intent_id,
                    "status": s.status,
                    "revert_reason": s.revert_reason,
                    "gas_used": s.gas_used,
                    "verdicts": [{"stage": v.stage, "passed": v.passed, "code": v.code} for v in s.verdicts],
                }
                for s in result.steps
            ],
        )
        return [event, Emit(topics.SIMULATIONS_RESULTS, result.agent_id, signed.to_bytes())]

    def _unreadable(self, bad: Unreadable, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """A record that is no readable request: its dead letter, and, when it names an agent (or
        is keyed by one), a refusal bound to the SHA-256 of its bytes, so only a client that sent
        exactly them takes it for its answer."""
        out = self.decider.dead_letter(raw, source, now, bad.reason, bad.errors)
        agent_id, request_id, digest = unreadable_answer(bad, raw, source.key)
        if agent_id is not None:
            reason = f"{bad.reason}. Nothing was simulated: correct what is named above and send the request again"
            out += self._refusal_of(
                request_id, agent_id, "", _refusal(request_id, Stage.INTAKE, Code.INVALID_REQUEST, reason), now, digest
            )
        return out


def _refusal(request_id: str, stage: Stage, code: Code, reason: str) -> StageVerdict:
    return StageVerdict.refusing(intent_id=request_id, stage=stage, code=code, reason=reason)
