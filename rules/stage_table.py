"""The guardrail stages, one entry each, in the one order they run: which kinds of intent a stage
judges, what it needs of the caller's `Context`, how it judges, how it checks the rolling windows
it counts again, and why it parks an intent that passed every stage for a human.

Everything else reads this table: the judge (`rules.judge.run_stage`, `run_stages`), the stages
of an intent (`stages_of`), the window recheck and the approval rule (`rules.judge`), and the
split topology's stage topics (`ALL_GUARDRAIL_STAGES`). Adding a stage is one entry here, its
name in `schemas.stages.Stage`, and its module with its tests (CONTRIBUTING.md shows one).

A stage reads the intent, the policy, what the caller supplies (the spend so far per asset, the
node for the intent's chain, the sender, the networks in force) and the typed results of the
stages before it (`Judgement`: the fee quote, what the counting stages counted)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

from rules import assets, bitcoin, fees, guardrails, movements, prices, sign_only, simulation, solana
from runtime.rpc import Node
from schemas.chains import ChainLookup
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from schemas.stages import Stage

__all__ = [
    "ALL_GUARDRAIL_STAGES",
    "STAGE_TABLE",
    "Context",
    "IntentKind",
    "Judged",
    "Judgement",
    "StageRule",
    "Step",
    "daily_limit",
    "kind_of",
    "stages_for",
    "stages_of",
]


class IntentKind(StrEnum):
    """What an intent asks to be signed, as far as which stages judge it."""

    TRANSACTION = "transaction"  # an EVM transaction, types 0 to 3
    SET_CODE = "set_code"  # an EIP-7702 transaction (type 4): it also hands the account to its delegates
    MESSAGE = "personal_sign"
    TYPED_DATA = "typed_data"
    SOLANA_TRANSACTION = "solana_transaction"
    SOLANA_MESSAGE = "solana_message"
    BITCOIN_PSBT = "bitcoin_psbt"


def kind_of(intent: TransactionIntent) -> IntentKind:
    if intent.intent_type == "transaction":
        return IntentKind.SET_CODE if intent.tx_type == 4 else IntentKind.TRANSACTION
    return IntentKind(intent.intent_type)


@dataclass(frozen=True)
class Context:
    """What the caller supplies besides the intent and the policy. Each part is optional: a
    stage that needs one the context lacks is not run (`rules.judge.run_stages` stops before it).

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
    the rules reach for no process-wide registry. ``claimed``: which open intent of the agent,
    other than this one, spends a Bitcoin output (``txid:vout``), from the caller's own record of
    them (`rules.bitcoin.claims_refused`); None: no claims are known (a replay)."""

    spent: Callable[[str], int] | None = None
    node: Node | None = None
    sender: str | None = None
    simulated: StageVerdict | None = None
    now: datetime | None = None
    quote: FeeQuote | None = None
    prices: Mapping[str, prices.Price] | None = None
    chains: ChainLookup | None = None
    claimed: bitcoin.Claimed | None = None


@dataclass(frozen=True)
class Judgement:
    """The stages judged so far, in order, with their typed results: the fee stage's quote and
    what the counting stages counted per asset key."""

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


@dataclass(frozen=True)
class Step:
    """What a stage judges: the intent, its policy, the caller's context and the stages before it."""

    stage: Stage
    intent: TransactionIntent
    policy: AgentPolicy
    ctx: Context
    so_far: Judgement

    def given(self, value: _T | None, need: str) -> _T:
        """What this stage needs of the context (`StageRule.needs`). `rules.judge.run_stages` runs
        no stage without it; a caller of `run_stage` that leaves it out is told so here, not by
        the stage failing inside."""
        if value is None:
            raise ValueError(f"the {self.stage} stage needs the context's {need}, and this context supplies none")
        return value

    @property
    def node(self) -> Node:
        return self.ctx.node if self.ctx.node is not None else _NoNode(self.stage)

    @property
    def quote(self) -> FeeQuote:
        """The fee stage's quote, which the stages that count spend need."""
        if self.so_far.quote is None:
            # The spend stages come after "fee", and an envelope that has passed it carries its
            # quote (schemas.outcomes.StageEnvelope): no record reaches this.
            raise ValueError(f"the {self.stage} stage counts the fee stage's quote; judge the fee stage first")
        return self.so_far.quote


_T = TypeVar("_T")


@dataclass(frozen=True)
class _NoNode:
    """The `Node` of a context that supplies none. A stage that must ask the chain is told so
    clearly; one that need not (an intent naming its gas and fees, a call nothing asks to
    simulate, prices recorded for a replay) runs as it would with a node. `run_stages` runs no
    stage that needs a node without one; the split topology's `run_stage` runs what it is given."""

    stage: Stage

    async def call(self, method: str, *_params: Any) -> Any:
        raise ValueError(f"the {self.stage} stage asks the node for {method}, and this context supplies none")


@dataclass(frozen=True)
class Judged:
    """A stage's verdict, with the quote it priced (the fee stage) or what it counted per asset
    key (replacing what the judgement held); None where the stage leaves either as it was."""

    verdict: StageVerdict
    quote: FeeQuote | None = None
    asset_spend: Mapping[str, int] | None = None


# A stage's judging, its window recheck (the first refusal, or None) and its reason to park.
Judge = Callable[[Step], Awaitable[Judged]]
Recheck = Callable[[TransactionIntent, AgentPolicy, Judgement, Callable[[str], int]], StageVerdict | None]
Parks = Callable[[TransactionIntent, AgentPolicy, Mapping[str, int]], str | None]


@dataclass(frozen=True)
class StageRule:
    """One guardrail stage. ``kinds``: the kinds of intent it judges. ``needs``: the `Context`
    fields it cannot judge without (``recorded``: what a context may hold in place of the node, a
    replay's record). ``recheck``: the rolling windows it counts, checked again against the spend
    as it is at reservation, for a caller that judged in several steps (None: it counts none).
    ``parks``: why an intent that passed every stage waits for a human (None: it parks none)."""

    kinds: frozenset[IntentKind]
    judge: Judge
    needs: tuple[str, ...] = ()
    recorded: Callable[[Context], object | None] | None = None
    recheck: Recheck | None = None
    parks: Parks | None = None


def daily_limit(
    intent: TransactionIntent, policy: AgentPolicy, spent: Callable[[str], int], quote: FeeQuote
) -> StageVerdict:
    """The rolling limit (sign-only transactions not yet landed counted in it, whatever their
    age), then for a sign-only intent the bound on what those may spend together."""
    verdict = guardrails.check_daily_limit(intent, policy, spent(movements.NATIVE), quote)
    if not verdict.passed:
        return verdict
    outstanding = sign_only.check_outstanding(intent, policy, spent(sign_only.OUTSTANDING), quote)
    return verdict if outstanding is None else outstanding


# -- how each stage judges -------------------------------------------------------------------------


def _by_policy(check: Callable[[TransactionIntent, AgentPolicy], StageVerdict]) -> Judge:
    """A stage decided by the intent and the policy alone."""

    async def judge(step: Step) -> Judged:
        return Judged(check(step.intent, step.policy))

    return judge


def _by_chain_id(check: Callable[[TransactionIntent, AgentPolicy, int], StageVerdict]) -> Judge:
    """A stage decided by the intent, the policy and its chain's EIP-155 id in the networks the
    caller holds in force."""

    async def judge(step: Step) -> Judged:
        chain = step.given(step.ctx.chains, "chains").get(step.intent.chain)
        return Judged(check(step.intent, step.policy, chain.chain_id))

    return judge


async def _assets(step: Step) -> Judged:
    verdict, counted = assets.assess_assets(step.intent, step.policy, step.given(step.ctx.spent, "spent"))
    return Judged(verdict, asset_spend=MappingProxyType(counted))


async def _simulation(step: Step) -> Judged:
    if step.ctx.simulated is not None:
        return Judged(step.ctx.simulated)
    return Judged(await simulation.check_simulation(step.intent, step.policy, step.node, step.ctx.sender))


async def _fee(step: Step) -> Judged:
    if step.ctx.quote is not None:
        return Judged(fees.check_fee(step.intent, step.policy, step.ctx.quote), quote=step.ctx.quote)
    verdict, quote = await fees.check_price(step.intent, step.policy, step.node, step.ctx.sender)
    return Judged(verdict, quote=quote)


async def _value_cap(step: Step) -> Judged:
    return Judged(guardrails.check_value_cap(step.intent, step.policy, step.quote))


async def _daily_limit(step: Step) -> Judged:
    return Judged(daily_limit(step.intent, step.policy, step.given(step.ctx.spent, "spent"), step.quote))


async def _usd_limit(step: Step) -> Judged:
    spent_usd = step.given(step.ctx.spent, "spent")(prices.USD)
    now = step.given(step.ctx.now, "now")
    so_far = step.so_far
    verdict, usd = await prices.check_usd(
        step.intent, step.policy, step.node, spent_usd, so_far.quote, so_far.asset_spend, now, step.ctx.prices
    )
    # Reserved and settled in the USD window like any asset.
    counted = None if usd is None else MappingProxyType({**so_far.asset_spend, prices.USD: usd})
    return Judged(verdict, asset_spend=counted)


async def _solana(step: Step) -> Judged:
    spent = step.given(step.ctx.spent, "spent")
    verdict, counted = await solana.check(step.intent, step.policy, step.node, spent, step.ctx.sender)
    return Judged(verdict, asset_spend=MappingProxyType(counted))


async def _solana_message(step: Step) -> Judged:
    return Judged(solana.check_message(step.intent, step.policy, step.ctx.sender))


async def _bitcoin(step: Step) -> Judged:
    spent = step.given(step.ctx.spent, "spent")
    verdict, counted = await bitcoin.check(
        step.intent, step.policy, step.node, spent, step.ctx.sender, step.ctx.claimed
    )
    return Judged(verdict, asset_spend=MappingProxyType(counted))


# -- how each counting stage rechecks its windows --------------------------------------------------


def _passed_or(verdict: StageVerdict) -> StageVerdict | None:
    return None if verdict.passed else verdict


def _recheck_assets(
    intent: TransactionIntent, policy: AgentPolicy, judged: Judgement, spent: Callable[[str], int]
) -> StageVerdict | None:
    return _passed_or(assets.check_assets(intent, policy, spent)) if judged.asset_spend else None


def _recheck_daily_limit(
    intent: TransactionIntent, policy: AgentPolicy, judged: Judgement, spent: Callable[[str], int]
) -> StageVerdict | None:
    return None if judged.quote is None else _passed_or(daily_limit(intent, policy, spent, judged.quote))


def _recheck_usd(
    intent: TransactionIntent, policy: AgentPolicy, judged: Judgement, spent: Callable[[str], int]
) -> StageVerdict | None:
    usd = judged.asset_spend.get(prices.USD)
    return None if usd is None else prices.recheck_usd_window(intent, policy, spent(prices.USD), usd)


def _recheck_solana(
    intent: TransactionIntent, policy: AgentPolicy, judged: Judgement, spent: Callable[[str], int]
) -> StageVerdict | None:
    return solana.recheck_windows(intent, policy, judged.asset_spend, spent)


def _recheck_bitcoin(
    intent: TransactionIntent, policy: AgentPolicy, judged: Judgement, spent: Callable[[str], int]
) -> StageVerdict | None:
    return bitcoin.recheck_windows(intent, policy, judged.asset_spend, spent)


def _native_over_threshold(
    intent: TransactionIntent, policy: AgentPolicy, _asset_spend: Mapping[str, int]
) -> str | None:
    return guardrails.over_approval_threshold(intent, policy)


_K = IntentKind
_EVM_TRANSACTIONS = frozenset({_K.TRANSACTION, _K.SET_CODE})
_EVERY_KIND = frozenset(IntentKind)

# The stages in the one order they run; an intent passes those of its kind (`stages_of`).
# "assets" judges what the calldata or typed data does before anything runs it, and simulation
# then checks the chain moves no more than that; simulation comes before "fee", so a call that
# reverts is told as a revert, not as a gas estimate that failed; "fee" comes before the cap and
# the limit, which count spend (value + worst-case fee) it prices; "usd_limit" prices everything
# an intent moves, so it comes after every stage that counts what moves. A set-code transaction's
# delegation is checked before it is priced. Messages move no native value by themselves: what
# they may authorize is their own stage's business. A Solana transaction's instructions and the
# node's simulation of it are one stage, which counts its cap, limits and fee per asset; so are a
# Bitcoin PSBT's inputs, outputs and fee, read against the node's unspent outputs.
STAGE_TABLE: dict[Stage, StageRule] = {
    Stage.CHAIN: StageRule(_EVERY_KIND, _by_policy(guardrails.check_chain)),
    Stage.ALLOWLIST: StageRule(_EVM_TRANSACTIONS, _by_policy(guardrails.check_allowlist)),
    Stage.DELEGATION: StageRule(frozenset({_K.SET_CODE}), _by_chain_id(guardrails.check_delegation), needs=("chains",)),
    Stage.MESSAGE: StageRule(frozenset({_K.MESSAGE}), _by_policy(guardrails.check_message)),
    Stage.TYPED_DATA: StageRule(
        frozenset({_K.TYPED_DATA}), _by_chain_id(guardrails.check_typed_data), needs=("chains",)
    ),
    Stage.ASSETS: StageRule(
        _EVM_TRANSACTIONS | {_K.TYPED_DATA},
        _assets,
        needs=("spent",),
        recheck=_recheck_assets,
        parks=assets.over_approval_threshold,
    ),
    Stage.SIMULATION: StageRule(_EVM_TRANSACTIONS, _simulation, needs=("node",), recorded=lambda ctx: ctx.simulated),
    Stage.FEE: StageRule(_EVM_TRANSACTIONS, _fee, needs=("node",), recorded=lambda ctx: ctx.quote),
    Stage.VALUE_CAP: StageRule(_EVM_TRANSACTIONS, _value_cap, parks=_native_over_threshold),
    Stage.DAILY_LIMIT: StageRule(_EVM_TRANSACTIONS, _daily_limit, needs=("spent",), recheck=_recheck_daily_limit),
    Stage.USD_LIMIT: StageRule(
        _EVM_TRANSACTIONS | {_K.TYPED_DATA},
        _usd_limit,
        needs=("spent", "node", "now"),
        recorded=lambda ctx: ctx.prices,
        recheck=_recheck_usd,
    ),
    Stage.SOLANA: StageRule(
        frozenset({_K.SOLANA_TRANSACTION}),
        _solana,
        needs=("spent", "node"),
        recheck=_recheck_solana,
        parks=solana.approval_needed,
    ),
    Stage.SOLANA_MESSAGE: StageRule(frozenset({_K.SOLANA_MESSAGE}), _solana_message),
    Stage.BITCOIN: StageRule(
        frozenset({_K.BITCOIN_PSBT}),
        _bitcoin,
        needs=("spent", "node"),
        recheck=_recheck_bitcoin,
        parks=bitcoin.approval_needed,
    ),
}

# Every guardrail stage (the split topology has a topic for each).
ALL_GUARDRAIL_STAGES: tuple[Stage, ...] = tuple(STAGE_TABLE)
_BY_KIND: dict[IntentKind, tuple[Stage, ...]] = {
    kind: tuple(stage for stage, rule in STAGE_TABLE.items() if kind in rule.kinds) for kind in IntentKind
}


def stages_for(kind: IntentKind) -> tuple[Stage, ...]:
    """The stages an intent of ``kind`` passes, in order."""
    return _BY_KIND[kind]


def stages_of(intent: TransactionIntent) -> tuple[Stage, ...]:
    """The stages an intent passes, in order: those of its kind."""
    return _BY_KIND[kind_of(intent)]
