"""The one judge: what admits an intent, and its stages in their one order.

The streams worker, the signer and the signer's fee bump all call these, each with its own
state (its own policy in force, its own spend record, its own node), so the trust model is
unchanged: the signer still decides everything again itself. What they cannot do is disagree
about what "admitted" means, in which order the stages run, or what a code says.

The stages, what each needs and how it judges, rechecks its windows and parks an intent are one
table (`rules.stage_table.STAGE_TABLE`); this module runs it. The judge does no I/O of its own
and reads no process-wide state: the node and the networks are the caller's, passed in.
`run_stages` runs the stages in order from where a judgement left off, and stops before the
first stage whose needs the context does not supply: the signer judges what the policy alone
decides before it opens a key, then the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from rules.stage_table import STAGE_TABLE, Context, Judgement, Step, stages_of
from rules.verdicts import verdict
from runtime.clock import to_us
from schemas.auth import intent_signature_valid, simulation_request_signature_valid
from schemas.codes import Code
from schemas.intent import INTENT_MAX_FUTURE_US, TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.simulation import SimulationRequest
from schemas.stages import Stage

__all__ = [
    "Context",
    "Judgement",
    "admit",
    "admit_recorded",
    "admit_simulation",
    "approval_needed",
    "check_freshness",
    "recheck_windows",
    "run_stage",
    "run_stages",
    "stages_of",
]


def _supplied(stage: Stage, ctx: Context) -> bool:
    """Whether ``ctx`` holds what ``stage`` needs: the node, or what was recorded in its place."""
    rule = STAGE_TABLE[stage]
    recorded = None if rule.recorded is None else rule.recorded(ctx)
    return all(getattr(ctx, need) is not None or (need == "node" and recorded is not None) for need in rule.needs)


def admit(intent: TransactionIntent, policy: AgentPolicy, now: datetime, max_age_us: int) -> StageVerdict:
    """Intake: the agent's Ed25519 signature verifies under the policy's key, the policy has the
    intents API on, and the intent is fresh (``max_age_us``: the caller's window, which a
    signer widens for an intent that waited for an admin)."""
    refused = signature_refusal(intent, policy)
    return refused if refused is not None else _admit_signed(intent, policy, now, max_age_us)


def signature_refusal(intent: TransactionIntent, policy: AgentPolicy) -> StageVerdict | None:
    """The intake refusal of an intent whose Ed25519 signature does not verify under the policy's
    agent key, or None: every service that checks an intent's signature says it in these words."""
    if intent_signature_valid(intent, policy):
        return None
    return verdict(
        intent,
        Stage.INTAKE,
        False,
        Code.AGENT_SIGNATURE_INVALID,
        "the intent's Ed25519 signature does not verify against the agent's public key in its policy "
        f"(v{policy.version}); sign signing_bytes() with the agent key",
    )


def admit_simulation(request: SimulationRequest, policy: AgentPolicy, now: datetime, max_age_us: int) -> StageVerdict:
    """Intake of a simulation request, with `admit`'s checks: the agent's signature over the
    whole request (its steps carry none), then each step as `admit` takes an intent (the
    intents API on, fresh). The verdict of a refusal names the request, or the step refused."""
    if not simulation_request_signature_valid(request, policy):
        return StageVerdict.refusing(
            intent_id=request.request_id,
            stage=Stage.INTAKE,
            code=Code.AGENT_SIGNATURE_INVALID,
            reason="the simulation request's Ed25519 signature does not verify against the agent's public key in "
            f"its policy (v{policy.version}); sign the request's signing_bytes() with the agent key",
        )
    for step in request.steps:
        admitted = _admit_signed(step, policy, now, max_age_us)
        if not admitted.passed:
            return admitted
    return admitted


def admit_recorded(intent: TransactionIntent, policy: AgentPolicy, now: datetime, max_age_us: int) -> StageVerdict:
    """`admit` of an intent whose signature was verified when it was decided (a replay from the
    ledger, which keeps it without its blobs, so its signature is not checked again)."""
    return _admit_signed(intent, policy, now, max_age_us)


def _admit_signed(intent: TransactionIntent, policy: AgentPolicy, now: datetime, max_age_us: int) -> StageVerdict:
    """`admit` past the signature: the intents API on, and the intent fresh."""
    if not policy.intents_api_enabled:
        return verdict(
            intent,
            Stage.INTAKE,
            False,
            Code.INTENTS_API_DISABLED,
            f"the intents API is disabled for agent {intent.agent_id!r} (policy v{policy.version}); an admin "
            "turns it on with intents_api_enabled",
        )
    return check_freshness(intent, now, max_age_us)


def check_freshness(intent: TransactionIntent, now: datetime, max_age_us: int) -> StageVerdict:
    """Refuse stale and future-dated intents, so a captured intent cannot be replayed once the
    decision and idempotency records that would catch it have been let go."""
    now_us, created_us = to_us(now), to_us(intent.created_at)
    facts = dict(created_at=intent.created_at.isoformat(), now=now.isoformat(), max_age_s=max_age_us // 1_000_000)
    if created_us - now_us > INTENT_MAX_FUTURE_US:
        return verdict(
            intent,
            Stage.INTAKE,
            False,
            Code.INTENT_FROM_THE_FUTURE,
            f"created_at {intent.created_at.isoformat()} is more than {INTENT_MAX_FUTURE_US // 1_000_000} s "
            f"ahead of this service's clock ({now.isoformat()}); check the agent's clock and sign a new "
            "intent",
            **facts,
        )
    if now_us - created_us >= max_age_us:
        return verdict(
            intent,
            Stage.INTAKE,
            False,
            Code.INTENT_EXPIRED,
            f"created_at {intent.created_at.isoformat()} is older than the {max_age_us // 1_000_000} s an "
            "intent stays valid; sign a new intent",
            **facts,
        )
    if intent.expires_at is not None and to_us(intent.expires_at) <= now_us:
        return verdict(
            intent,
            Stage.INTAKE,
            False,
            Code.INTENT_EXPIRED,
            f"the intent expired at {intent.expires_at.isoformat()}; sign a new intent",
            expires_at=intent.expires_at.isoformat(),
            **facts,
        )
    return verdict(intent, Stage.INTAKE, True, Code.INTENT_FRESH, "within its validity window", **facts)


async def run_stages(
    intent: TransactionIntent, policy: AgentPolicy, ctx: Context, so_far: Judgement = Judgement()
) -> Judgement:
    """Judge the intent's stages in order from where ``so_far`` left off, up to the first that
    refuses or the first whose needs ``ctx`` does not supply."""
    judged = so_far
    while (stage := judged.next_stage(intent)) is not None:
        if not _supplied(stage, ctx):
            break
        judged = await run_stage(stage, intent, policy, ctx, judged)
    return judged


async def run_stage(
    stage: Stage, intent: TransactionIntent, policy: AgentPolicy, ctx: Context, so_far: Judgement
) -> Judgement:
    """Judge one stage, which must be the next (the split topology runs one per hop)."""
    if stage != so_far.next_stage(intent):
        raise ValueError(
            f"stage {stage!r} is not the next of intent {intent.intent_id} ({so_far.next_stage(intent)!r})"
        )
    judged = await STAGE_TABLE[stage].judge(Step(stage, intent, policy, ctx, so_far))
    return Judgement(
        (*so_far.verdicts, judged.verdict),
        so_far.quote if judged.quote is None else judged.quote,
        so_far.asset_spend if judged.asset_spend is None else judged.asset_spend,
    )


def recheck_windows(
    intent: TransactionIntent, policy: AgentPolicy, judged: Judgement, spent: Callable[[str], int]
) -> StageVerdict | None:
    """Every rolling window the judgement counts, again, against ``spent`` as it is now: for a
    caller that judged the stages in several steps, between which other intents of the agent may
    have been reserved (the split topology), checked in the step that reserves. The first
    refusal, or None."""
    for stage in stages_of(intent):
        recheck = STAGE_TABLE[stage].recheck
        again = None if recheck is None else recheck(intent, policy, judged, spent)
        if again is not None:
            return again
    return None


def approval_needed(intent: TransactionIntent, policy: AgentPolicy, asset_spend: Mapping[str, int]) -> str | None:
    """Why an intent that passed every stage still waits for a human, or None: the first of its
    stages, in order, that parks it (a value or an amount of an asset above its approval
    threshold), by what the stages counted (``asset_spend``)."""
    for stage in stages_of(intent):
        parks = STAGE_TABLE[stage].parks
        why = None if parks is None else parks(intent, policy, asset_spend)
        if why is not None:
            return why
    return None
