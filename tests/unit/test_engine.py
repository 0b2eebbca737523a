"""The Kafka-free streams engine (streams/engine.py) on policies and intents: plain dicts as
tables, a generated admin key pinned in ``admin_keys``, fixed clocks, raw bytes in and Emits out.
A signed policy is applied, a passing intent approved with every stage audited, and each
guardrail failure rejected with its stage and code. Unreadable records, spend windows,
redelivery, the split topology and authenticated outcomes are in the other test_engine_* files.

Simulation is off everywhere here (no node): ``simulate_first`` and ``require_simulation``
stay False and ``node_for`` returns None. So that no node is asked for fees either, intents
name their gas and fees, and by default pay nothing per gas (spend = value); the fee rule and
the node's suggestions are tested on Anvil in tests/stack/test_signer_last_word.py.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rules.stage_table import IntentKind, stages_for
from schemas import topics
from schemas.actions import AuditAction
from schemas.auth import public_key_hex, sign_policy
from schemas.codes import Code
from schemas.outcomes import DeadLetter
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from tests.engine_support import (
    ADMIN_ID,
    AGENT,
    ETH,
    OTHER,
    PASSED_CODES,
    T0,
    World,
    actions,
    assert_approved,
    audits,
    on,
    passed_codes,
    rejected_of,
)

# The stages of an EVM transaction, in order.
GUARDRAIL_STAGES = stages_for(IntentKind.TRANSACTION)


def test_a_signed_policy_is_applied_and_audited() -> None:
    w = World()
    policy = w.policy()
    emits = w.publish(policy)
    (event,) = audits(emits)
    assert len(emits) == 1
    assert (event.action, event.actor, event.resource, event.agent_id) == (
        AuditAction.POLICY_UPDATED,
        f"admin:{ADMIN_ID}",
        f"policy:{AGENT}",
        AGENT,
    )
    assert event.details["version"] == 1
    assert AgentPolicy.model_validate_json(w.engine.policies[AGENT]) == policy


def test_a_redelivered_policy_emits_nothing(world: World) -> None:
    assert world.publish(world.policy()) == []
    assert AgentPolicy.model_validate_json(world.engine.policies[AGENT]).version == 1


def _refused(world: World, policy: AgentPolicy, says: str) -> None:
    before = dict(world.engine.policies)
    emits = world.engine.on_policy(policy.to_bytes(), world.source(topics.POLICIES), T0)
    (event,) = audits(emits)
    assert len(emits) == 1
    assert (event.action, event.actor, event.agent_id) == (AuditAction.POLICY_REFUSED, "service:streams", AGENT)
    assert says in event.details["reason"]
    assert world.engine.policies == before


def test_an_unsigned_policy_is_refused(world: World) -> None:
    unsigned = AgentPolicy(
        agent_id=AGENT,
        version=2,
        tx_max_value_eth="1000",
        agent_public_key=public_key_hex(world.agent_key),
        issued_at=T0,
    )
    _refused(world, unsigned, "policy is unsigned")


def test_a_policy_signed_by_an_unpinned_key_is_refused(world: World) -> None:
    rogue = sign_policy(world.policy(version=2, tx_max_value_eth="1000"), Ed25519PrivateKey.generate(), ADMIN_ID)
    _refused(world, rogue, f"{ADMIN_ID}'s signature does not verify over this record's bytes")
    unknown_id = sign_policy(world.policy(version=2), world.admin_key, "someone-else")
    _refused(world, unknown_id, "'someone-else' is not a pinned admin")


def test_an_older_or_equal_version_is_refused(world: World) -> None:
    world.publish(world.policy(version=3, tx_max_value_eth="0.9"))
    _refused(world, world.policy(version=2, tx_max_value_eth="1000"), "version 2 is not newer than the policy in force")
    _refused(world, world.policy(version=3, tx_max_value_eth="1000"), "version 3 is not newer than the policy in force")
    assert AgentPolicy.model_validate_json(world.engine.policies[AGENT]).tx_max_value_eth == "0.9"


def test_an_unreadable_policy_goes_to_the_dlq(world: World) -> None:
    emits = world.engine.on_policy(b'{"agent_id": "agent-1"}', world.source(topics.POLICIES), T0)
    (dlq,) = on(emits, topics.DLQ)
    letter = DeadLetter.from_bytes(dlq.value)
    assert letter.source_topic == topics.POLICIES and letter.reason.startswith("invalid AgentPolicy:")
    assert "version: is required" in letter.errors
    assert actions(emits) == [AuditAction.DLQ_RECORDED]


def test_a_newer_policy_takes_effect(world: World) -> None:
    world.publish(world.policy(version=2, tx_max_value_eth="0.1"))
    rejected = rejected_of(world.submit(world.intent("0.5")))
    assert (rejected.stage, rejected.code) == (Stage.VALUE_CAP, Code.VALUE_OVER_CAP)


# --- a passing intent ----------------------------------------------------------------------------


def test_a_passing_intent_is_approved_with_every_stage_audited(world: World) -> None:
    intent = world.intent("0.5")
    emits = world.submit(intent)
    approved = assert_approved(emits, intent)
    assert approved.policy == world.policy()
    assert approved.approved_at == T0
    assert passed_codes(emits) == PASSED_CODES
    passed = [AuditAction.STAGE_PASSED] * len(GUARDRAIL_STAGES)
    assert actions(emits) == [AuditAction.INTENT_SUBMITTED, *passed, AuditAction.INTENT_APPROVED]
    events = audits(emits)
    assert [e.details["stage"] for e in events[1:-1]] == list(GUARDRAIL_STAGES)
    assert events[0].actor == f"agent:{AGENT}" and events[-1].actor == "service:streams"
    assert events[-1].details["value_wei"] == str(5 * ETH // 10)
    assert len({e.event_id for e in events}) == len(events)
    assert {e.key for e in emits} == {AGENT}
    assert world.spent() == 5 * ETH // 10


# --- guardrail failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy_fields, intent_fields, stage, code, says",
    [
        ({"tx_allowed_chains": ("ethereum", "base")}, {}, "chain", Code.CHAIN_NOT_ALLOWED, "chain 'anvil'"),
        ({}, {"to": OTHER}, "allowlist", Code.RECIPIENT_NOT_ALLOWLISTED, OTHER),
        ({}, {"value": "1.000000000000000001"}, "value_cap", Code.VALUE_OVER_CAP, "1.000000000000000001"),
        (
            {"tx_daily_limit_eth": "0.4"},
            {"value": "0.400000000000000001"},
            "daily_limit",
            Code.DAILY_LIMIT_EXCEEDED,
            "the rolling limit of 0.4",
        ),
    ],
)
def test_each_guardrail_failure_rejects_with_its_stage_and_code(
    policy_fields: dict[str, Any], intent_fields: dict[str, Any], stage: str, code: Code, says: str
) -> None:
    w = World()
    w.publish(w.policy(**policy_fields))
    intent = w.intent(**{"value": "0.5", **intent_fields})
    emits = w.submit(intent)
    rejected = rejected_of(emits)
    assert (rejected.intent_id, rejected.agent_id, rejected.stage, rejected.code) == (
        intent.intent_id,
        AGENT,
        stage,
        code,
    )
    assert says in rejected.reason
    position = GUARDRAIL_STAGES.index(stage)
    assert [v.stage for v in rejected.verdicts] == list(GUARDRAIL_STAGES[: position + 1])
    assert [v.passed for v in rejected.verdicts] == [True] * position + [False]
    passed = [AuditAction.STAGE_PASSED] * position
    assert actions(emits) == [
        AuditAction.INTENT_SUBMITTED,
        *passed,
        AuditAction.STAGE_FAILED,
        AuditAction.INTENT_REJECTED,
    ]
    assert audits(emits)[-1].details["code"] == code
    assert on(emits, topics.INTENTS_APPROVED) == []
    assert w.spent() == 0


def test_a_forged_agent_signature_is_rejected_at_intake(world: World) -> None:
    forged = world.intent("0.5", key=Ed25519PrivateKey.generate())
    emits = world.submit(forged)
    rejected = rejected_of(emits)
    assert (rejected.stage, rejected.code) == (Stage.INTAKE, Code.AGENT_SIGNATURE_INVALID)
    assert actions(emits) == [AuditAction.INTENT_SUBMITTED, AuditAction.STAGE_FAILED, AuditAction.INTENT_REJECTED]
    assert world.spent() == 0


def test_an_intent_changed_after_signing_is_rejected_at_intake(world: World) -> None:
    doc = orjson.loads(world.intent("0.5").to_bytes())
    doc["to"] = OTHER
    doc["value"] = "0.9"
    world.publish(world.policy(version=2, tx_to_allowlist=()))
    rejected = rejected_of(world.submit(orjson.dumps(doc)))
    assert (rejected.stage, rejected.code) == (Stage.INTAKE, Code.AGENT_SIGNATURE_INVALID)


def test_an_agent_without_a_policy_is_rejected(world: World) -> None:
    intent = world.intent("0.5", agent_id="agent-2")
    emits = world.submit(intent, source=world.source(key="agent-2"))
    rejected = rejected_of(emits)
    assert (rejected.agent_id, rejected.stage, rejected.code) == ("agent-2", Stage.INTAKE, Code.POLICY_MISSING)
    assert "'agent-2'" in rejected.reason
    assert actions(emits) == [AuditAction.INTENT_SUBMITTED, AuditAction.STAGE_FAILED, AuditAction.INTENT_REJECTED]


def test_an_agent_with_the_intents_api_disabled_is_rejected(world: World) -> None:
    world.publish(world.policy(version=2, intents_api_enabled=False))
    emits = world.submit(world.intent("0.5"))
    rejected = rejected_of(emits)
    assert (rejected.stage, rejected.code) == (Stage.INTAKE, Code.INTENTS_API_DISABLED)
    assert on(emits, topics.INTENTS_APPROVED) == []
    assert world.spent() == 0
