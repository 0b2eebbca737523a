"""The worker's per-agent rolling windows: what each agent's approved and parked intents hold,
for the spend stages to count. Derived from the decisions (never stored on their own), so a
restarted worker rebuilds them from its decisions table alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rules.window import SpendWindow
from streams.decision import Decision


@dataclass
class Windows:
    """Per-agent rolling windows: one for native spend and one per asset the agent moved (keyed
    ``chain:token``)."""

    by_agent: dict[tuple[str, str], SpendWindow] = field(default_factory=dict)

    def of(self, agent_id: str, asset: str = "native") -> SpendWindow:
        return self.by_agent.setdefault((agent_id, asset), SpendWindow())

    def reserve(self, agent_id: str, intent_id: str, now_us: int, spend_wei: int, assets: Mapping[str, int]) -> None:
        self.of(agent_id).reserve(intent_id, now_us, spend_wei)
        for asset, units in assets.items():
            self.of(agent_id, asset).reserve(intent_id, now_us, units)

    def release(self, agent_id: str, intent_id: str) -> None:
        for (agent, _), window in self.by_agent.items():
            if agent == agent_id:
                window.release(intent_id)

    def rebuild(self, decisions: Mapping[str, Decision]) -> None:
        self.by_agent.clear()
        for intent_id, decision in decisions.items():
            if decision.reserves:
                self.reserve(decision.agent_id, intent_id, decision.at_us, decision.spend_wei, decision.assets)
