"""The one judge: what admits an intent, the policy-only stages in their order, and the spend checks.

The streams worker, the signer and the signer's fee bump all call these, each with its own
state (its own policy in force, its own spend record, its own node), so the trust model is
unchanged: the signer still decides everything again itself. What they cannot do any more is
disagree about what "admitted" means, in which order the policy is applied, or what a code says.
"""

from __future__ import annotations

from datetime import datetime

from rules import fees, guardrails
from rules.fees import FeeQuote
from schemas.auth import intent_signature_valid
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.stages import guardrail_stages

__all__ = ["admit", "check_spend", "policy_checks", "stages_of"]

stages_of = guardrail_stages  # the order of an intent's stages, by its kind (schemas.stages, the contract)


def admit(intent: TransactionIntent, policy: AgentPolicy, now: datetime, max_age_us: int) -> StageVerdict:
    """Intake: the agent's Ed25519 signature verifies under the policy's key, the policy has the
    intents API on, and the intent is fresh (``max_age_us``: the caller's window, which a
    signer widens for an intent that waited for an admin)."""
    if not intent_signature_valid(intent, policy):
        return guardrails.verdict(
            intent,
            "intake",
            False,
            "AGENT_SIGNATURE_INVALID",
            "the intent's Ed25519 signature does not verify against the agent's public key in its policy "
            f"(v{policy.version}); sign signing_bytes() with the agent key",
        )
    if not policy.intents_api_enabled:
        return guardrails.verdict(
            intent,
            "intake",
            False,
            "INTENTS_API_DISABLED",
            f"the intents API is disabled for agent {intent.agent_id!r} (policy v{policy.version}); an admin "
            "turns it on with intents_api_enabled",
        )
    return guardrails.check_freshness(intent, now, max_age_us)


def policy_checks(intent: TransactionIntent, policy: AgentPolicy) -> list[StageVerdict]:
    """Every stage of this intent's kind decided by the intent and the policy alone, in the
    stages' order, up to the first that refuses: what the signer re-checks before it touches a
    chain or a key, and what the worker runs at those stages."""
    out = []
    for stage in stages_of(intent):
        check = guardrails.POLICY_CHECKS.get(stage)
        if check is not None:
            out.append(check(intent, policy))
            if not out[-1].passed:
                break
    return out


def check_spend(intent: TransactionIntent, policy: AgentPolicy, quote: FeeQuote, spent_wei: int) -> list[StageVerdict]:
    """The fee ceiling, the per-transaction cap and the rolling 24 h limit on spend (value and
    the worst-case fee of ``quote``), in that order, up to the first that refuses. ``spent_wei``
    is what the caller's own record holds for the last 24 h, the intent itself left out."""
    out = []
    for check in (
        lambda: fees.check_fee(intent, policy, quote),
        lambda: guardrails.check_value_cap(intent, policy, quote),
        lambda: guardrails.check_daily_limit(intent, policy, spent_wei, quote),
    ):
        out.append(check())
        if not out[-1].passed:
            break
    return out
