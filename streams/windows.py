"""The worker's per-agent rolling windows: what each agent's approved and parked intents hold,
for the spend stages to count. Derived from the decisions (never stored on their own), so a
restarted worker rebuilds them from its decisions table alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rules import sign_only
from rules.window import SpendWindow
from streams.decision import Decision


@dataclass
class Windows:
    """Per-agent rolling windows: one for native spend and one per asset the agent moved (keyed
    ``chain:token``)."""

    by_agent: dict[tuple[str, str], SpendWindow] = field(default_factory=dict)

    def of(self, agent_id: str, asset: str = "native") -> SpendWindow:
        return self.by_agent.setdefault((agent_id, asset), SpendWindow())

    def spent(self, agent_id: str, asset: str, now_us: int) -> int:
        """What the judge asks for under ``asset`` (`rules.judge.Context.spent`): an asset's window,
        or what the agent's sign-only transactions not landed yet can spend (`sign_only.OUTSTANDING`)."""
        if asset == sign_only.OUTSTANDING:
            return self.of(agent_id).outstanding(now_us)
        return self.of(agent_id, asset).spent(now_us)

    def reserve(
        self,
        agent_id: str,
        intent_id: str,
        now_us: int,
        spend_wei: int,
        assets: Mapping[str, int],
        held: bool = False,
    ) -> None:
        """``held``: a sign-only transaction's, counted whatever its age until it lands (`rules.window`)."""
        self.of(agent_id).reserve(intent_id, now_us, spend_wei, held)
        for asset, units in assets.items():
            self.of(agent_id, asset).reserve(intent_id, now_us, units, held)

    def land(self, agent_id: str, intent_id: str, at_us: int, spend_wei: int, assets: Mapping[str, int]) -> None:
        """A sign-only transaction's nonce was taken: what the chain took counts from ``at_us``."""
        self.release(agent_id, intent_id)
        self.reserve(agent_id, intent_id, at_us, spend_wei, assets)

    def release(self, agent_id: str, intent_id: str) -> None:
        for (agent, _), window in self.by_agent.items():
            if agent == agent_id:
                window.release(intent_id)

    def rebuild(self, decisions: Mapping[str, Decision]) -> None:
        self.by_agent.clear()
        for intent_id, decision in decisions.items():
            if decision.reserves:
                at_us = decision.at_us if decision.landed_us is None else decision.landed_us
                self.reserve(decision.agent_id, intent_id, at_us, decision.spend_wei, decision.assets, decision.held)
