"""What several stages share: a verdict built the one way, and what a policy says of an intent
that more than one stage asks (an allowlisted address, a call that must be simulated)."""

from __future__ import annotations

from typing import Any

from rules import movements
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.stages import Stage


def verdict(
    intent: TransactionIntent, stage: Stage, passed: bool, code: Code, reason: str, **facts: Any
) -> StageVerdict:
    return StageVerdict.judged(
        intent_id=intent.intent_id, stage=stage, passed=passed, code=code, reason=reason, facts=facts
    )


def allowlisted(policy: AgentPolicy, address: str) -> bool:
    # The same rule as `check_allowlist`: an empty allowlist allows any address.
    return not policy.tx_to_allowlist or address in policy.tx_to_allowlist


def simulation_required(intent: TransactionIntent, policy: AgentPolicy) -> bool:
    """Whether the intent must be simulated, from the intent and the policy alone: when asked to
    (simulate_first, require_simulation), and for every call a contract_calls rule allows and does
    not mark ``unsimulated`` (and for declared outflows, which only simulation holds a call to):
    such a contract may forward the agent's value or spend its allowances, and only simulation
    shows where that lands."""
    if intent.simulate_first or policy.require_simulation:
        return True
    if intent.intent_type != "transaction":
        return False
    if intent.declared_outflows:
        return True
    if intent.data == "0x":
        return False
    to = movements.transaction_to(intent)
    rule = policy.calls_to(to)
    asset = policy.asset(intent.chain, to)
    if asset is not None and movements.token_function(asset, intent.data) is not None:
        return False  # a token transfer or approval: the assets stage reads it in full, or refuses it
    return rule is None or not rule.unsimulated
