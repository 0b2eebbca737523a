"""The one judge (rules/judge.py): admission and the policy-only stages in their order. The
streams worker and the signer both call it, so for the same kind of intent under the
same kind of policy they refuse with the same code: checked here against each service's own
code path (the worker's Kafka-free engine, the signer handed an approval as any topic writer
could), with no broker and no node (every refusal here comes before either is asked). The
stages that compare a chain id with the intent's chain read the networks the caller hands in
its context, never the process's registry."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from rules import judge
from rules.judge import stages_of
from runtime.registry import REGISTRY, ChainRegistry
from schemas.chains import BUILTIN
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentRejected, StageEnvelope, StageVerdict
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from schemas.stages import Stage
from sdk.client import new_intent
from tests.engine_support import AGENT, DEST, T0, World, rejected_of
from tests.signer_support import ANVIL_ID, DELEGATE, LoneSigner, mail_document

STRANGER = "0x000000000000000000000000000000000000bad1"

# Each case: what is wrong with the intent or the policy, and the stage and code the judge gives.
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], tuple[str, Code]]] = {
    "signed by another key": ({"key": "stranger"}, {}, ("intake", Code.AGENT_SIGNATURE_INVALID)),
    "intents API off": ({}, {"intents_api_enabled": False}, ("intake", Code.INTENTS_API_DISABLED)),
    "stale": ({"age_s": 601}, {}, ("intake", Code.INTENT_EXPIRED)),
    "from the future": ({"age_s": -300}, {}, ("intake", Code.INTENT_FROM_THE_FUTURE)),
    "another chain": ({"chain": "base"}, {}, ("chain", Code.CHAIN_NOT_ALLOWED)),
    "not allowlisted": ({"to": STRANGER}, {}, ("allowlist", Code.RECIPIENT_NOT_ALLOWLISTED)),
}


def _fields(
    case: dict[str, Any], default_key: Ed25519PrivateKey, now: datetime
) -> tuple[Ed25519PrivateKey, dict[str, Any]]:
    key = Ed25519PrivateKey.generate() if case.get("key") == "stranger" else default_key
    fields = {
        "chain": case.get("chain", "anvil"),
        "to": case.get("to", DEST),
        "value": "0.1",
        "now": now - timedelta(seconds=case.get("age_s", 0)),
        "gas_limit": 21_000,
        "max_fee_per_gas": 0,
        "max_priority_fee_per_gas": 0,
    }
    return key, fields


def _worker_refusal(intent_case: dict[str, Any], policy_fields: dict[str, Any]) -> tuple[str, str]:
    world = World()
    world.publish(world.policy(tx_allowed_chains=("anvil",), tx_to_allowlist=(DEST,), **policy_fields))
    key, fields = _fields(intent_case, world.agent_key, T0)
    rejected = rejected_of(world.submit(new_intent(key, agent_id="agent-1", **fields)))
    return rejected.stage, rejected.code


def _signer_refusal(tmp_path: Path, intent_case: dict[str, Any], policy_fields: dict[str, Any]) -> tuple[str, str]:
    lone = LoneSigner(tmp_path, "http://127.0.0.1:9")  # no node is asked before these refusals
    lone.set_policy(tx_to_allowlist=(DEST,), **policy_fields)
    key, fields = _fields(intent_case, lone.agent_key, datetime.now(timezone.utc))
    outcome, _, _ = asyncio.run(lone.handle(new_intent(key, agent_id=lone.agent, **fields)))
    assert isinstance(outcome, IntentRejected), outcome
    return outcome.stage, outcome.code


@pytest.mark.parametrize("name", list(CASES))
def test_the_worker_and_the_signer_refuse_with_the_judges_code(tmp_path: Path, name: str) -> None:
    intent_case, policy_fields, (stage, code) = CASES[name]
    assert _worker_refusal(intent_case, policy_fields) == (stage, code)
    # The signer says it at its own stage, signing, with the same code.
    assert _signer_refusal(tmp_path, intent_case, policy_fields) == ("signing", code)


def test_the_policy_stages_run_in_the_judges_order_and_stop_at_the_first_refusal() -> None:
    world = World()
    policy = world.policy(tx_allowed_chains=("anvil",), tx_to_allowlist=(DEST,))
    intent = world.intent("0.1")
    judged = asyncio.run(judge.run_stages(intent, policy, judge.Context()))
    # With nothing in the context the judge stops before the first stage that needs a spend record.
    assert [v.stage for v in judged.verdicts] == [Stage.CHAIN, Stage.ALLOWLIST]
    assert judged.refusal is None and judged.next_stage(intent) == Stage.ASSETS
    both_wrong = world.intent("0.1", chain="base", to=STRANGER)
    refused = asyncio.run(judge.run_stages(both_wrong, policy, judge.Context()))
    assert [(v.stage, v.code) for v in refused.verdicts] == [(Stage.CHAIN, Code.CHAIN_NOT_ALLOWED)]
    assert refused.next_stage(both_wrong) is None


def test_a_spend_stage_is_never_judged_without_the_fee_stages_quote() -> None:
    """The cap, the daily and the USD limit count the fee stage's quote. An envelope that has passed
    the fee stage must carry it (the schema refuses one without), and the judge asked to judge the
    cap without a quote raises instead of passing it."""
    world = World()
    policy = world.policy(tx_allowed_chains=("anvil",), tx_to_allowlist=(DEST,))
    intent = world.intent("0.1")
    stages = stages_of(intent)
    passed = tuple(
        StageVerdict.passing(intent_id=intent.intent_id, stage=stage, code=Code.CHAIN_ALLOWED, reason="ok")
        for stage in stages[: stages.index(Stage.VALUE_CAP)]
    )
    assert Stage.FEE in [v.stage for v in passed]
    quote = FeeQuote(gas_limit=21_000, fee_per_gas=1)
    fields = {"stage": Stage.VALUE_CAP, "intent": intent, "policy": policy, "verdicts": passed}
    assert StageEnvelope(**fields, quote=quote).quote == quote
    with pytest.raises(ValidationError, match="quote: the fee stage has passed"):
        StageEnvelope(**fields)
    with pytest.raises(ValueError, match="the value_cap stage counts the fee stage's quote"):
        asyncio.run(judge.run_stage(Stage.VALUE_CAP, intent, policy, judge.Context(), judge.Judgement(passed)))


# The networks in force of a caller whose anvil has another chain id than the process's registry says.
OTHER_ID = 999
assert REGISTRY.get("anvil").chain_id == ANVIL_ID != OTHER_ID
ANVIL_ELSEWHERE = ChainRegistry(
    tuple(dataclasses.replace(c, chain_id=OTHER_ID) if c.name == "anvil" else c for c in BUILTIN)
)


def _typed_intent(domain_chain_id: int) -> TransactionIntent:
    return TransactionIntent(
        intent_id="typed-1",
        agent_id=AGENT,
        chain="anvil",
        intent_type="typed_data",
        typed_data=mail_document(chain_id=domain_chain_id),
        created_at=T0,
    )


def _set_code_intent(world: World, authorization_chain_id: int) -> TransactionIntent:
    authorizations = ({"chain_id": authorization_chain_id, "address": DELEGATE},)
    fees: dict[str, Any] = {
        "gas_price": None,
        "max_fee_per_gas": 0,
        "max_priority_fee_per_gas": 0,
    }  # a type 4 pays by EIP-1559
    return world.intent("0.1", tx_type=4, gas_limit=60_000, authorization_list=authorizations, **fees)


def _verdict(intent: TransactionIntent, policy: AgentPolicy, chains: ChainRegistry, stage: Stage) -> StageVerdict:
    judged = asyncio.run(judge.run_stages(intent, policy, judge.Context(chains=chains)))
    verdicts = {v.stage: v for v in judged.verdicts}
    assert stage in verdicts, [v.stage for v in judged.verdicts]
    return verdicts[stage]


def test_typed_data_and_delegation_follow_the_chains_the_context_hands_in() -> None:
    """A typed-data domain and an EIP-7702 authorization for anvil's id in the process's registry
    are refused for another chain under a context whose networks give anvil another id, and those
    for that id pass: the rules look the chain up in the caller's networks, not a global one."""
    world = World()
    policy = world.policy(eip712_default_policy="allow", eip7702_delegate_allowlist=(DELEGATE,))
    typed = _verdict(_typed_intent(ANVIL_ID), policy, ANVIL_ELSEWHERE, Stage.TYPED_DATA)
    assert (typed.passed, typed.code, typed.facts["chain_id"]) == (False, Code.EIP712_CHAIN_MISMATCH, OTHER_ID)
    assert (
        _verdict(_typed_intent(OTHER_ID), policy, ANVIL_ELSEWHERE, Stage.TYPED_DATA).code == Code.EIP712_DEFAULT_ALLOW
    )
    assert _verdict(_typed_intent(ANVIL_ID), policy, REGISTRY, Stage.TYPED_DATA).code == Code.EIP712_DEFAULT_ALLOW
    delegation = _verdict(_set_code_intent(world, ANVIL_ID), policy, ANVIL_ELSEWHERE, Stage.DELEGATION)
    assert (delegation.passed, delegation.code) == (False, Code.EIP7702_CHAIN_MISMATCH)
    allowed = _verdict(_set_code_intent(world, OTHER_ID), policy, ANVIL_ELSEWHERE, Stage.DELEGATION)
    assert allowed.code == Code.EIP7702_DELEGATE_ALLOWED
    assert _verdict(_set_code_intent(world, ANVIL_ID), policy, REGISTRY, Stage.DELEGATION).passed


def test_without_the_chains_the_judge_stops_before_typed_data_and_delegation() -> None:
    """`run_stages` judges neither stage without the networks in force, and `run_stage` (the split
    topology's) says what the context lacks instead of judging it."""
    world = World()
    policy = world.policy(eip712_default_policy="allow", eip7702_delegate_allowlist=(DELEGATE,))
    typed, set_code = _typed_intent(ANVIL_ID), _set_code_intent(world, ANVIL_ID)
    judged = asyncio.run(judge.run_stages(typed, policy, judge.Context()))
    assert [v.stage for v in judged.verdicts] == [Stage.CHAIN] and judged.next_stage(typed) == Stage.TYPED_DATA
    judged_tx = asyncio.run(judge.run_stages(set_code, policy, judge.Context()))
    assert [v.stage for v in judged_tx.verdicts] == [Stage.CHAIN, Stage.ALLOWLIST]
    assert judged_tx.next_stage(set_code) == Stage.DELEGATION
    for intent, so_far in ((typed, judged), (set_code, judged_tx)):
        stage = so_far.next_stage(intent)
        assert stage is not None
        with pytest.raises(ValueError, match=f"the {stage} stage needs the context's chains"):
            asyncio.run(judge.run_stage(stage, intent, policy, judge.Context(), so_far))


def test_each_kind_of_intent_passes_its_stages_in_the_documented_order() -> None:
    """The one table gives each kind its stages (docs/policies.md and CONTRIBUTING describe this
    order): written out here, so a table entry moved or given the wrong kinds fails."""
    from rules.stage_table import ALL_GUARDRAIL_STAGES, IntentKind, stages_for

    s = Stage
    assert stages_for(IntentKind.TRANSACTION) == (
        s.CHAIN, s.ALLOWLIST, s.ASSETS, s.SIMULATION, s.FEE, s.VALUE_CAP, s.DAILY_LIMIT, s.USD_LIMIT
    )  # fmt: skip
    assert stages_for(IntentKind.SET_CODE) == (
        s.CHAIN, s.ALLOWLIST, s.DELEGATION, s.ASSETS, s.SIMULATION, s.FEE, s.VALUE_CAP, s.DAILY_LIMIT, s.USD_LIMIT
    )  # fmt: skip
    assert stages_for(IntentKind.TYPED_DATA) == (s.CHAIN, s.TYPED_DATA, s.ASSETS, s.USD_LIMIT)
    assert stages_for(IntentKind.MESSAGE) == (s.CHAIN, s.MESSAGE)
    assert stages_for(IntentKind.SOLANA_TRANSACTION) == (s.CHAIN, s.SOLANA)
    assert stages_for(IntentKind.SOLANA_MESSAGE) == (s.CHAIN, s.SOLANA_MESSAGE)
    # Every stage but intake, a human's approval and the signer's own is a guardrail with an entry.
    assert set(ALL_GUARDRAIL_STAGES) == set(Stage) - {s.INTAKE, s.APPROVAL, s.SIGNING}


def test_a_transaction_over_the_value_threshold_is_parked_by_its_value_cap_stage_entry() -> None:
    """`approval_needed` asks each of the intent's stages: the value cap's entry parks a value
    above approval_threshold_eth, and nothing parks one below it."""
    from rules.judge import approval_needed

    world = World()
    policy = world.policy(approval_threshold_eth="0.01")
    parked = approval_needed(world.intent("0.5"), policy, {})
    assert parked is not None and "above the approval threshold of 0.01" in parked
    assert approval_needed(world.intent("0.001"), policy, {}) is None
