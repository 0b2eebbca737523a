"""The one judge: what admits an intent, and its stages in their one order.

The streams worker, the signer and the signer's fee bump all call these, each with its own
state (its own policy in force, its own spend record, its own node), so the trust model is
unchanged: the signer still decides everything again itself. What they cannot do any more is
disagree about what "admitted" means, in which order the stages run, or what a code says.

A stage reads the intent, the policy, what the caller supplies in a `Context` (the spend so
far per asset, the node for the intent's chain, the sender, the networks in force) and the
typed results of the stages before it (`Judgement`: the fee quote, what the assets stage
counted). The judge does no I/O of its own and reads no process-wide state: the node and the
networks are the caller's, passed in. `run_stages` runs the stages in order from
where a judgement left off, and stops before the first stage whose needs the context does not
supply: the signer judges what the policy alone decides before it opens a key, then the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeVar

from rules import assets, fees, guardrails, movements, prices, sign_only, simulation, solana
from runtime.rpc import Node
from schemas.auth import intent_signature_valid, simulation_request_signature_valid
from schemas.chains import ChainLookup
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from schemas.simulation import SimulationRequest
from schemas.stages import Stage, guardrail_stages

__all__ = [
    "Context",
    "Judgement",
    "admit",
    "admit_recorded",
    "admit_simulation",
    "recheck_windows",
    "run_stage",
    "run_stages",
    "stages_of",
]

stages_of = guardrail_stages  # the order of an intent's stages, by its kind (schemas.stages, the contract)


@dataclass(frozen=True)
class Context:
    """What the caller supplies besides the intent and the policy. Each part is optional: a
    stage that needs one the context lacks is not run (`run_stages` stops before it).

    ``spent(asset)`` is what the caller's own record holds for the last 24 h, per asset key
    (``"native"``: wei), the intent itself left out. ``node`` is the caller's node for the
    intent's chain; ``sender`` the address a transaction is sent from (the signer's comes from
    the key itself; the worker's is the policy's ``sender_address``, possibly None).
    ``simulated``: the simulation stage's verdict when the caller traced the call itself, in a
    bundle's one block where an earlier step changes what a later one does (`rules.bundle`);
    None, and the stage simulates on ``node``. ``now``: the moment of the decision, against which
    a price's age is measured (the USD limits). ``quote`` and ``prices``: what the ledger recorded
    of the fee stage and of the feeds at the time, for a replay that must not ask today's chain
    (`sdk.what_if`); given, the fee and USD stages use them instead of ``node``. ``chains``: the
    networks the caller holds in force (its `runtime.registry.ChainRegistry`), where the stages
    that compare a chain id with the intent's chain (typed data, delegation) look that chain up;
    the rules reach for no process-wide registry."""

    spent: Callable[[str], int] | None = None
    node: Node | None = None
    sender: str | None = None
    simulated: StageVerdict | None = None
    now: datetime | None = None
    quote: FeeQuote | None = None
    prices: Mapping[str, prices.Price] | None = None
    chains: ChainLookup | None = None


@dataclass(frozen=True)
class Judgement:
    """The stages judged so far, in order, with their typed results: the fee stage's quote and
    what the assets stage counted per asset key."""

    verdicts: tuple[StageVerdict, ...] = ()
    quote: FeeQuote | None = None
    asset_spend: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def refusal(self) -> StageVerdict | None:
        """The verdict that refused the intent, if one did (judging stops there)."""
        return self.verdicts[-1] if self.verdicts and not self.verdicts[-1].passed else None

    def next_stage(self, intent: TransactionIntent) -> Stage | None:
        """The stage to judge next: None once one refused or every stage passed."""
        stages = stages_of(intent)
        if self.refusal is not None or len(self.verdicts) >= len(stages):
            return None
        return stages[len(self.verdicts)]

    def spend_wei(self, intent: TransactionIntent) -> int:
        """The native spend to reserve: value plus worst-case fee (a message moves none)."""
        return 0 if self.quote is None else self.quote.spend_wei(intent)


# What each stage needs from the context, beyond the intent, the policy and earlier results.
_NEEDS: dict[Stage, tuple[str, ...]] = {
    Stage.DELEGATION: ("chains",),
    Stage.TYPED_DATA: ("chains",),
    Stage.ASSETS: ("spent",),
    Stage.SIMULATION: ("node",),
    Stage.FEE: ("node",),
    Stage.DAILY_LIMIT: ("spent",),
    Stage.USD_LIMIT: ("spent", "node", "now"),
    Stage.SOLANA: ("spent", "node"),
}


_T = TypeVar("_T")


def _given(value: _T | None, stage: Stage, need: str) -> _T:
    """What ``stage`` needs of the context (`_NEEDS`). `run_stages` runs no stage without it; a
    caller of `run_stage` that leaves it out is told so here, not by the stage failing inside."""
    if value is None:
        raise ValueError(f"the {stage} stage needs the context's {need}, and this context supplies none")
    return value


@dataclass(frozen=True)
class _NoNode:
    """The `Node` of a context that supplies none. A stage that must ask the chain is told so
    clearly; one that need not (an intent naming its gas and fees, a call nothing asks to
    simulate, prices recorded for a replay) runs as it would with a node. `run_stages` runs no
    stage that needs a node without one; the split topology's `run_stage` runs what it is given."""

    stage: Stage

    async def call(self, method: str, *params: Any) -> Any:
        raise ValueError(f"the {self.stage} stage asks the node for {method}, and this context supplies none")


def _node(ctx: Context, stage: Stage) -> Node:
    return ctx.node if ctx.node is not None else _NoNode(stage)


def _supplied(stage: Stage, ctx: Context) -> bool:
    """Whether ``ctx`` holds what ``stage`` needs: the node, or what was recorded in its place."""
    recorded = {Stage.SIMULATION: ctx.simulated, Stage.FEE: ctx.quote, Stage.USD_LIMIT: ctx.prices}.get(stage)
    return all(
        getattr(ctx, need) is not None or (need == "node" and recorded is not None) for need in _NEEDS.get(stage, ())
    )


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
    return guardrails.verdict(
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
        return guardrails.verdict(
            intent,
            Stage.INTAKE,
            False,
            Code.INTENTS_API_DISABLED,
            f"the intents API is disabled for agent {intent.agent_id!r} (policy v{policy.version}); an admin "
            "turns it on with intents_api_enabled",
        )
    return guardrails.check_freshness(intent, now, max_age_us)


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
    quote, asset_spend = so_far.quote, so_far.asset_spend
    check = guardrails.POLICY_CHECKS.get(stage)
    chain_id_check = guardrails.CHAIN_ID_CHECKS.get(stage)
    if check is not None:
        verdict = check(intent, policy)
    elif chain_id_check is not None:
        verdict = chain_id_check(intent, policy, _given(ctx.chains, stage, "chains").get(intent.chain).chain_id)
    elif stage == Stage.ASSETS:
        verdict, counted = assets.assess_assets(intent, policy, _given(ctx.spent, stage, "spent"))
        asset_spend = MappingProxyType(counted)
    elif stage == Stage.SOLANA:
        verdict, counted = await solana.check(
            intent, policy, _node(ctx, stage), _given(ctx.spent, stage, "spent"), ctx.sender
        )
        asset_spend = MappingProxyType(counted)
    elif stage == Stage.SOLANA_MESSAGE:
        verdict = solana.check_message(intent, policy, ctx.sender)
    elif stage == Stage.SIMULATION and ctx.simulated is not None:
        verdict = ctx.simulated
    elif stage == Stage.SIMULATION:
        verdict = await simulation.check_simulation(intent, policy, _node(ctx, stage), ctx.sender)
    elif stage == Stage.FEE and ctx.quote is not None:
        verdict, quote = fees.check_fee(intent, policy, ctx.quote), ctx.quote
    elif stage == Stage.FEE:
        verdict, quote = await fees.check_price(intent, policy, _node(ctx, stage), ctx.sender)
    elif stage == Stage.USD_LIMIT:
        spent_usd = _given(ctx.spent, stage, "spent")(prices.USD)
        now = _given(ctx.now, stage, "now")
        verdict, usd = await prices.check_usd(
            intent, policy, _node(ctx, stage), spent_usd, quote, asset_spend, now, ctx.prices
        )
        if usd is not None:  # reserved and settled in the USD window like any asset
            asset_spend = MappingProxyType({**asset_spend, prices.USD: usd})
    elif quote is None:
        # The spend stages come after "fee" (schemas.stages), and an envelope that has passed it
        # carries its quote (schemas.outcomes.StageEnvelope): no record reaches this.
        raise ValueError(f"the {stage} stage counts the fee stage's quote; judge the fee stage first")
    elif stage == Stage.VALUE_CAP:
        verdict = guardrails.check_value_cap(intent, policy, quote)
    elif stage == Stage.DAILY_LIMIT:
        verdict = _daily_limit(intent, policy, _given(ctx.spent, stage, "spent"), quote)
    else:
        raise ValueError(f"unknown stage {stage!r}")
    return Judgement((*so_far.verdicts, verdict), quote, asset_spend)


def _daily_limit(
    intent: TransactionIntent, policy: AgentPolicy, spent: Callable[[str], int], quote: FeeQuote
) -> StageVerdict:
    """The rolling limit (sign-only transactions not yet landed counted in it, whatever their
    age), then for a sign-only intent the bound on what those may spend together."""
    verdict = guardrails.check_daily_limit(intent, policy, spent(movements.NATIVE), quote)
    if not verdict.passed:
        return verdict
    outstanding = sign_only.check_outstanding(intent, policy, spent(sign_only.OUTSTANDING), quote)
    return verdict if outstanding is None else outstanding


def recheck_windows(
    intent: TransactionIntent, policy: AgentPolicy, judged: Judgement, spent: Callable[[str], int]
) -> StageVerdict | None:
    """Every rolling window the judgement counts, again, against ``spent`` as it is now: for a
    caller that judged the stages in several steps, between which other intents of the agent may
    have been reserved (the split topology), checked in the step that reserves. The first
    refusal, or None."""
    if intent.intent_type == "solana_transaction":
        return solana.recheck_windows(intent, policy, judged.asset_spend, spent)
    if judged.asset_spend:
        again = assets.check_assets(intent, policy, spent)
        if not again.passed:
            return again
    if judged.quote is not None and Stage.DAILY_LIMIT in stages_of(intent):
        again = _daily_limit(intent, policy, spent, judged.quote)
        if not again.passed:
            return again
    usd = judged.asset_spend.get(prices.USD)
    return None if usd is None else prices.recheck_usd_window(intent, policy, spent(prices.USD), usd)
