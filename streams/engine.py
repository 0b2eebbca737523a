"""What the streams worker decides, with no Kafka in sight.

The engine turns input records (raw bytes plus where they came from) and the
worker's state into output records (`Emit`s: topic, key, bytes). The topology
module feeds it from the input topics and writes its `Emit`s to topics; tests feed
it directly. State lives in three mappings the caller provides (the worker's
partition-owned tables, `streams.state`; dicts in tests):

- ``policies``: agent_id → the newest admin-signed policy (JSON);
- ``decisions``: intent_id → the outcome already emitted for it (and the
  digest of the intent it was about), so a redelivered intent gets the same
  answer, not a second one, and the rolling window can be rebuilt from it
  (stored as `streams.decision` writes it, read as a typed `Decision`);
- ``idempotency``: "agent_id:sha256(idempotency_key)" → the first intent_id
  that used the key and the request it used it for (24 h TTL).

`Engine` is what the topology calls, one method per input topic; the work is done by
its parts: `streams.admission` (policies, intake, records only a worker writes),
`streams.decide` (the stages, the decision and its reservation), `streams.replays`
(the same answer again, idempotency keys), `streams.approvals` (human approvals
and deadlines) and `streams.simulations` (simulation requests, judged and answered).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rules import judge
from runtime.admins import Admins
from runtime.registry import REGISTRY, ChainRegistry
from runtime.rpc import Node
from schemas.auth import ServiceKeys
from schemas.emit import Emit, Source
from schemas.intent import INTENT_MAX_AGE_US
from schemas.outcomes import StageEnvelope
from schemas.stages import Stage
from streams.admission import Admission
from streams.approvals import Approvals
from streams.decide import Decider
from streams.decision import Decisions
from streams.replays import Replays
from streams.simulations import Simulations


class Engine:
    def __init__(
        self,
        admins: Admins,
        node_for: Callable[[str], Node],
        policies: MutableMapping[str, Any],
        decisions: MutableMapping[str, Any],
        idempotency: MutableMapping[str, Any],
        service_key: tuple[str, Ed25519PrivateKey],
        service_keys: ServiceKeys,
        max_record_bytes: int = 65_536,
        max_age_us: int = INTENT_MAX_AGE_US,
        home_partition: Callable[[str], int] | None = None,
        chains: ChainRegistry = REGISTRY,
    ):
        # ``service_keys``: the pinned worker and signer keys (only a signer's refusal releases a
        # reservation; only a worker's envelope is believed). ``home_partition``: the partition an
        # agent's records land in, when the records come from a partitioned topic: an intent is
        # decided only there. None: not checked (one engine fed by hand, as in unit tests, holds
        # every agent). ``chains``: the networks in force, which the topology keeps to warden.chains
        # (`runtime.chains.follow_chain_sets`) and intake reads records against.
        self.decider = Decider(service_key, service_keys, Decisions(decisions), node_for, max_record_bytes, chains)
        self.replays = Replays(self.decider, idempotency)
        self.admission = Admission(
            self.decider,
            self.replays,
            admins,
            service_keys,
            policies,
            max_record_bytes,
            max_age_us,
            home_partition,
            chains,
        )
        self.approvals = Approvals(self.decider, admins)
        self.admins = admins
        self.chains = chains
        self.simulations = Simulations(self.decider, self.admission, node_for)
        self.policies = policies
        self.decisions = self.decider.decisions
        self.windows = self.decider.windows

    # -- policies -------------------------------------------------------------------------------

    def on_policy(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        return self.admission.on_policy(raw, source, now)

    # -- intents --------------------------------------------------------------------------------

    async def on_intent(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """Fused topology: intake and every guardrail in one hop."""
        out, state = self.admission.intake(raw, source, now)
        if state is None:
            return out
        intent, policy = state
        decider = self.decider
        judged = judge.Judgement()
        digest = intent.digest()
        admitted = len(out)  # intake's records: all a judgement discarded below keeps
        while (stage := judged.next_stage(intent)) is not None:
            judged = await decider.timed_stage(stage, intent, policy, now, judged)
            out.append(decider.verdict_audit(judged.verdicts[-1], intent, now, digest))
        meanwhile = self.replays.decided_meanwhile(intent, judged, now)
        if meanwhile is not None:
            return out[:admitted] + meanwhile
        if judged.refusal is not None:
            return out + decider.reject(intent, judged.refusal, judged.verdicts, now)
        return out + decider.decide(intent, policy, judged, now, recheck_assets=False)

    async def on_intake(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """Split topology, first hop: intake, then hand the intent to the first stage's topic."""
        out, state = self.admission.intake(raw, source, now)
        if state is None:
            return out
        intent, policy = state
        return out + [self.decider.envelope(intent, policy, judge.Judgement())]

    async def on_stage(self, stage: Stage, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """Split topology: one guardrail per hop, reading the envelope the previous stage wrote."""
        envelope = self.admission.stage_envelope(stage, raw, source, now)
        if isinstance(envelope, list):
            return envelope  # its dead letter
        intent, policy = envelope.intent, envelope.policy
        if intent.intent_id in self.decisions:
            return self.replays.replay(intent, now)
        decider = self.decider
        judged = await decider.timed_stage(stage, intent, policy, now, _judgement_of(envelope))
        meanwhile = self.replays.decided_meanwhile(intent, judged, now)
        if meanwhile is not None:
            return meanwhile
        out = [decider.verdict_audit(judged.verdicts[-1], intent, now)]
        if judged.refusal is not None:
            return out + decider.reject(intent, judged.refusal, judged.verdicts, now)
        if judged.next_stage(intent) is not None:
            return out + [decider.envelope(intent, policy, judged)]
        return out + decider.decide(intent, policy, judged, now, recheck_assets=True)

    async def on_simulation_request(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """A simulation request: simulated and judged, answered, nothing reserved or signed."""
        return await self.simulations.on_request(raw, source, now)

    def on_overdue(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        return self.admission.on_overdue(raw, source, now)

    def on_rejected(self, raw: bytes, now: datetime) -> list[Emit]:
        return self.decider.on_rejected(raw, now)

    def on_signed(self, raw: bytes, now: datetime) -> list[Emit]:
        return self.decider.on_signed(raw, now)

    def on_bitcoin_signed(self, raw: bytes, now: datetime) -> list[Emit]:
        return self.decider.on_bitcoin_signed(raw, now)

    def rebuild(self) -> None:
        self.decider.rebuild()

    # -- human approval -------------------------------------------------------------------------

    def on_human_approval(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        return self.approvals.on_human_approval(raw, source, now)

    def due_parked(self, now: datetime) -> list[tuple[str, str]]:
        return self.approvals.due_parked(now)

    def on_deadline(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        return self.approvals.on_deadline(raw, source, now)

    def expire_parked(self, now: datetime) -> list[Emit]:
        return self.approvals.expire_parked(now)

    def dead_letter(
        self, raw: bytes | None, source: Source, now: datetime, reason: str, errors: Sequence[str] = ()
    ) -> list[Emit]:
        """A record this worker cannot decide, dead-lettered under its signature."""
        return self.decider.dead_letter(raw, source, now, reason, errors)


def _judgement_of(envelope: StageEnvelope) -> judge.Judgement:
    """The judgement a stage envelope carries (a pinned worker signed it: `Admission.stage_envelope`)."""
    return judge.Judgement(envelope.verdicts, envelope.quote, MappingProxyType(envelope.asset_spend))
