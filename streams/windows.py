"""The worker's per-agent rolling windows: what each agent's approved and parked intents hold,
for the spend stages to count, and the Bitcoin outputs their payments spend while they hold them
(no other intent of the agent may spend one). Derived from the decisions (never stored on their
own), so a restarted worker rebuilds them from its decisions table alone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rules import sign_only
from rules.window import SpendWindow
from streams.decision import Decision


@dataclass
class Windows:
    """Per-agent rolling windows: one for native spend and one per asset the agent moved (keyed
    ``chain:token``)."""

    by_agent: dict[tuple[str, str], SpendWindow] = field(default_factory=dict)
    # (agent, txid:vout) → the intent whose payment spends that output, while it holds its spend.
    claims: dict[tuple[str, str], str] = field(default_factory=dict)

    def of(self, agent_id: str, asset: str = "native") -> SpendWindow:
        return self.by_agent.setdefault((agent_id, asset), SpendWindow())

    def spent(self, agent_id: str, asset: str, now_us: int) -> int:
        """What the judge asks for under ``asset`` (`rules.judge.Context.spent`): an asset's window,
        or what the agent's sign-only transactions not landed yet can spend (`sign_only.OUTSTANDING`;
        of an asset's window: `sign_only.outstanding_key`)."""
        if asset == sign_only.OUTSTANDING:
            return self.of(agent_id).outstanding(now_us)
        held_of = sign_only.outstanding_asset(asset)
        if held_of is not None:
            return self.of(agent_id, held_of).outstanding(now_us)
        return self.of(agent_id, asset).spent(now_us)

    def reserve(
        self,
        agent_id: str,
        intent_id: str,
        now_us: int,
        spend_wei: int,
        assets: Mapping[str, int],
        held: bool = False,
        claims: Iterable[str] = (),
    ) -> None:
        """``held``: a sign-only transaction's, or a Bitcoin payment's, counted whatever its age
        until it lands (`rules.window`); ``claims``: the outputs a Bitcoin payment spends."""
        self.of(agent_id).reserve(intent_id, now_us, spend_wei, held)
        for asset, units in assets.items():
            self.of(agent_id, asset).reserve(intent_id, now_us, units, held)
        for outpoint in claims:
            self.claims.setdefault((agent_id, outpoint), intent_id)

    def claimed_by(self, agent_id: str, outpoint: str, excluding: str) -> str | None:
        """The intent of the agent, other than ``excluding``, whose payment spends ``outpoint``."""
        holder = self.claims.get((agent_id, outpoint))
        return None if holder == excluding else holder

    def land(self, agent_id: str, intent_id: str, at_us: int, spend_wei: int, assets: Mapping[str, int]) -> None:
        """A sign-only transaction's nonce was taken, or a Bitcoin payment's fate is final: what
        the chain took counts from ``at_us``, and its outputs are no longer claimed."""
        self.release(agent_id, intent_id)
        self.reserve(agent_id, intent_id, at_us, spend_wei, assets)

    def release(self, agent_id: str, intent_id: str) -> None:
        for (agent, _), window in self.by_agent.items():
            if agent == agent_id:
                window.release(intent_id)
        for key in [key for key, holder in self.claims.items() if holder == intent_id and key[0] == agent_id]:
            del self.claims[key]

    def rebuild(self, decisions: Mapping[str, Decision]) -> None:
        self.by_agent.clear()
        self.claims.clear()
        for intent_id, d in decisions.items():
            if d.reserves:
                at_us = d.at_us if d.landed_us is None else d.landed_us
                self.reserve(d.agent_id, intent_id, at_us, d.spend_wei, d.assets, d.held, d.claims)
