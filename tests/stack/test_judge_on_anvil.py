"""The one judge (rules/judge.py) past the policy's own stages: the spend, fee and simulation
stages need a node, so the signer here asks Anvil on the shared stack. The worker and the signer
refuse with the same codes, and judge the same stages in the same order."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from infra.stack.local import LocalStack
from rules import judge
from rules.stage_table import Judgement
from schemas.codes import Code
from schemas.outcomes import IntentRejected
from schemas.stages import Stage
from sdk.client import new_intent
from tests.engine_support import DEST, T0, World, rejected_of
from tests.signer_support import LoneSigner

# The stages after the policy's own need a spend record, a node and a sender. The worker decides
# these with no node (each intent names its gas and fees, and a 21,000-gas transfer runs no code);
# the signer with its own node: Anvil on the shared stack.
LATER: dict[str, tuple[dict[str, Any], dict[str, Any], tuple[str, Code]]] = {
    "over the fee ceiling": (
        {"max_fee_per_gas": 10**12},
        {"tx_max_fee_per_gas": 10**9},
        ("fee", Code.FEE_OVER_CEILING),
    ),
    "over the per-transaction cap": ({"value": "2"}, {"tx_max_value_eth": "1"}, ("value_cap", Code.VALUE_OVER_CAP)),
    "over the rolling limit": (
        {"value": "0.9"},
        {"tx_max_value_eth": "1", "tx_daily_limit_eth": "0.5"},
        ("daily_limit", Code.DAILY_LIMIT_EXCEEDED),
    ),
}


def _later_fields(case: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "chain": "anvil",
        "to": DEST,
        "value": case.get("value", "0.1"),
        "now": now,
        "gas_limit": 21_000,
        "max_fee_per_gas": case.get("max_fee_per_gas", 0),
        "max_priority_fee_per_gas": 0,
    }


@pytest.mark.parametrize("name", list(LATER))
def test_the_worker_and_the_signer_refuse_later_stages_with_the_judges_code(
    stack: LocalStack, tmp_path: Path, name: str
) -> None:
    intent_case, policy_fields, (stage, code) = LATER[name]
    world = World()
    world.publish(world.policy(tx_to_allowlist=(DEST,), **policy_fields))
    rejected = rejected_of(
        world.submit(new_intent(world.agent_key, agent_id="agent-1", **_later_fields(intent_case, T0)))
    )
    assert (rejected.stage, rejected.code) == (stage, code)
    lone = LoneSigner(tmp_path, stack.settings.rpc_url_for("anvil"))
    lone.set_policy(tx_to_allowlist=(DEST,), **policy_fields)
    fields = _later_fields(intent_case, datetime.now(timezone.utc))
    outcome, _, _ = asyncio.run(lone.handle(new_intent(lone.agent_key, agent_id=lone.agent, **fields)))
    assert isinstance(outcome, IntentRejected) and (outcome.stage, outcome.code) == (Stage.SIGNING, code), outcome


def test_the_worker_and_the_signer_judge_the_same_stages_in_the_same_order(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every stage either service judges goes through `judge.run_stage`; watched there, both
    judge exactly the intent's stages, in the judge's order."""
    seen: list[Stage] = []
    run_stage = judge.run_stage

    async def watched(stage: Stage, *args: Any) -> Judgement:
        seen.append(stage)
        return await run_stage(stage, *args)

    monkeypatch.setattr(judge, "run_stage", watched)
    world = World()
    world.publish(world.policy(tx_to_allowlist=(DEST,)))
    intent = new_intent(world.agent_key, agent_id="agent-1", **_later_fields({}, T0))
    assert any(e.topic == "warden.intents.approved" for e in world.submit(intent))
    by_worker, seen[:] = list(seen), []
    lone = LoneSigner(tmp_path, stack.settings.rpc_url_for("anvil"))
    lone.set_policy(tx_to_allowlist=(DEST,))
    fields = _later_fields({}, datetime.now(timezone.utc))
    outcome, _, _ = asyncio.run(lone.handle(new_intent(lone.agent_key, agent_id=lone.agent, **fields)))
    assert not isinstance(outcome, IntentRejected), outcome
    assert by_worker == seen == list(judge.stages_of(intent))
