"""The policy dry run: what the pipeline would decide about an intent, asked before sending it.

It runs the one judge (`rules.judge`) over the agent's policy in force (the newest a pinned admin
signed), with the spend the agent's signed transactions of the last 24 h show and the chain's
node, and answers three ways: allowed, refused (by which stage and code, with the rule's own
reason, which says what to change) or waiting for a human. Nothing is reserved, signed or
published. It is advice: the worker and the signer judge the real intent with their own records,
and they also count what this reader cannot see (approved intents not yet signed, signed typed
data), so a limit can refuse what the dry run allowed, never the other way round for the
stages that read the intent and the policy alone.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from rules import judge
from rules.assets import assess_assets
from rules.judge import approval_needed
from rules.movements import NATIVE
from rules.window import in_window
from runtime.clock import to_us, utcnow
from runtime.config import Settings
from runtime.kafka import read_to_quiet
from runtime.registry import REGISTRY
from runtime.rpc import JsonRpc
from runtime.trust import PinnedServiceKeys
from schemas import topics
from schemas.auth import outcome_forgery
from schemas.chains import ChainLookup
from schemas.codes import Code
from schemas.fields import format_token_amount
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentApproved, SignedTransaction, StageVerdict
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from sdk.records import AgentRecords, agent_transactions, policy_in_force


class StageResult(BaseModel):
    stage: Stage
    passed: bool
    code: Code
    reason: str


class PolicyCheck(BaseModel):
    """The dry run's answer. ``decision``: allowed, refused or needs_human. ``deciding`` is the
    refusing stage's result (or None); ``stages`` every stage judged, in order; ``not_judged``
    the stages after a refusal. ``windows_24h``: each rolling limit, before this intent."""

    intent_id: str
    agent_id: str
    decision: Literal["allowed", "refused", "needs_human"]
    deciding: StageResult | None
    why_human: str | None
    stages: list[StageResult]
    not_judged: list[str]
    policy_version: int | None
    windows_24h: list[WindowLeft]


class WindowLeft(BaseModel):
    """One rolling 24 h limit now: its asset (``native``, or a token's ``chain:contract`` key and
    symbol), the limit, what the window holds and what is left, as decimal strings in the asset's
    own unit."""

    asset: str
    symbol: str
    limit: str
    spent_24h: str
    left: str


def windows_left(policy: AgentPolicy, spent: dict[str, int]) -> list[WindowLeft]:
    """Each rolling 24 h limit of ``policy`` with what ``spent`` leaves of it."""
    # (asset key, symbol, limit in base units, decimals) of each limit the policy sets.
    limits = [(NATIVE, "native", policy.daily_limit_wei, 18)]
    limits += [(a.key, a.label, a.units("daily_limit"), a.decimals) for a in policy.asset_limits]
    return [
        WindowLeft(
            asset=key,
            symbol=symbol,
            limit=format_token_amount(limit, decimals),
            spent_24h=format_token_amount(spent.get(key, 0), decimals),
            left=format_token_amount(max(limit - spent.get(key, 0), 0), decimals),
        )
        for key, symbol, limit, decimals in limits
        if limit is not None
    ]


async def spent_now(settings: Settings, agent_id: str, now: datetime) -> dict[str, int]:
    """`spent_in_window` of the agent's records as the topics hold them now."""
    # Each read lasts until its topics are quiet: read side by side, not one after the other.
    records, approved = await asyncio.gather(
        agent_transactions(settings, agent_id), approved_intents(settings, agent_id)
    )
    return spent_in_window(records, approved, now)


def spent_in_window(records: AgentRecords, approved: dict[str, IntentApproved], now: datetime) -> dict[str, int]:
    """Per asset key, what the agent's transactions signed in the 24 h before ``now`` spend: the
    native spend the signer reserved (value and worst-case fee), and what the assets stage counts
    of each token they move (their approved intents read again under the policy they passed)."""
    # One spend per nonce of a sender on a chain: a retry under a used idempotency key is answered
    # with the first intent's transaction, and a fee bump replaces one under the same nonce.
    by_nonce: dict[tuple[Any, ...], SignedTransaction] = {}
    for record in records.transactions:
        if in_window(to_us(record.signed_at), to_us(now)):
            slot = (record.chain_id, record.from_, record.nonce)
            if slot not in by_nonce or record.signed_at >= by_nonce[slot].signed_at:
                by_nonce[slot] = record
    spent: dict[str, int] = {}
    for record in by_nonce.values():
        spent[NATIVE] = spent.get(NATIVE, 0) + record.max_spend_wei
        approval = approved.get(record.intent_id)
        if approval is not None:
            _, counted = assess_assets(approval.intent, approval.policy, lambda _asset: 0)
            for asset, amount in counted.items():
                spent[asset] = spent.get(asset, 0) + amount
    return spent


async def approved_intents(settings: Settings, agent_id: str) -> dict[str, IntentApproved]:
    """The agent's approvals on ``warden.intents.approved`` that a pinned worker key signed, by
    intent id (anyone can write to the topic)."""
    keys = PinnedServiceKeys(settings)
    found: dict[str, IntentApproved] = {}
    async for _, value in read_to_quiet(settings, (topics.INTENTS_APPROVED,), 3):
        try:
            record = IntentApproved.from_bytes(value)
        except ValueError:
            continue
        if record.intent.agent_id == agent_id and outcome_forgery(record, keys) is None:
            found.setdefault(record.intent_id, record)
    return found


def _result(verdict: StageVerdict) -> StageResult:
    return StageResult(stage=verdict.stage, passed=verdict.passed, code=verdict.code, reason=verdict.reason)


async def check_policy(
    settings: Settings, intent: TransactionIntent, now: datetime | None = None, chains: ChainLookup = REGISTRY
) -> PolicyCheck:
    """What the pipeline would decide about ``intent`` now (`PolicyCheck`), its chain looked up in
    ``chains``: the networks in force this process knows."""
    now = now or utcnow()
    policy, spent = await asyncio.gather(
        policy_in_force(settings, intent.agent_id), spent_now(settings, intent.agent_id, now)
    )
    if policy is None:
        missing = StageResult(
            stage=Stage.INTAKE,
            passed=False,
            code=Code.POLICY_MISSING,
            reason=f"agent {intent.agent_id!r} has no policy in force; an admin creates one with `warden agents create`",
        )
        return PolicyCheck(
            intent_id=intent.intent_id,
            agent_id=intent.agent_id,
            decision="refused",
            deciding=missing,
            why_human=None,
            stages=[missing],
            not_judged=list(judge.stages_of(intent)),
            policy_version=None,
            windows_24h=[],
        )
    verdicts = [judge.admit(intent, policy, now, settings.intent_max_age_s * 1_000_000)]
    judged = judge.Judgement()
    if verdicts[0].passed:
        node = JsonRpc(settings.rpc_url_for(intent.chain))
        try:
            ctx = judge.Context(
                spent=lambda asset: spent.get(asset, 0),
                node=node,
                sender=policy.sender_address,
                now=now,
                chains=chains,
            )
            judged = await judge.run_stages(intent, policy, ctx)
        finally:
            await node.close()
        verdicts += judged.verdicts
    refusal = next((v for v in verdicts if not v.passed), None)
    why_human = approval_needed(intent, policy, dict(judged.asset_spend)) if refusal is None else None
    decision = "refused" if refusal is not None else "needs_human" if why_human else "allowed"
    judged_stages = {v.stage for v in judged.verdicts}
    return PolicyCheck(
        intent_id=intent.intent_id,
        agent_id=intent.agent_id,
        decision=decision,
        deciding=None if refusal is None else _result(refusal),
        why_human=why_human,
        stages=[_result(v) for v in verdicts],
        not_judged=[s for s in judge.stages_of(intent) if s not in judged_stages],
        policy_version=policy.version,
        windows_24h=windows_left(policy, spent),
    )
