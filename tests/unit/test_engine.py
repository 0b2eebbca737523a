"""Tests for the Kafka-free streams engine (streams/engine.py): plain dicts as tables, a
generated admin key pinned in ``admin_keys``, fixed clocks, raw bytes in and Emits out.

Simulation is off everywhere here (no node): ``simulate_first`` and ``require_simulation``
stay False and ``node_for`` returns None. So that no node is asked for fees either, intents
name their gas and fees, and by default pay nothing per gas (spend = value); the fee rule and
the node's suggestions are tested on Anvil in tests/test_signer_last_word.py.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
from datetime import datetime, timedelta

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.clock import to_us
from runtime.config import Settings
from runtime.kafka import partition_of
from runtime.trust import PinnedServiceKeys, service_key
from schemas import topics
from schemas.auth import outcome_forgery, public_key_hex, sign_outcome, sign_policy
from schemas.emit import Emit, Source
from schemas.intake import NEXT_STEP
from schemas.models import (
    GUARDRAIL_STAGES,
    AgentPolicy,
    DeadLetter,
    IntentAbandoned,
    IntentApproved,
    IntentRejected,
    StageEnvelope,
    TransactionIntent,
)
from streams.engine import Engine, Windows
from tests.engine_support import (
    ADMIN_ID,
    AGENT,
    DEST,
    SIGNER_ID,
    T0,
    WORKER_ID,
    StaticKeys,
    World,
    actions,
    audits,
    on,
    rejected_of,
)

DAY = timedelta(hours=24)
OTHER = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
ETH = 10**18
PASSED_CODES = [
    "CHAIN_ALLOWED",
    "RECIPIENT_ALLOWED",
    "ASSETS_WITHIN_POLICY",
    "SIMULATION_NOT_REQUIRED",
    "FEE_WITHIN_CEILING",
    "VALUE_WITHIN_CAP",
    "WITHIN_DAILY_LIMIT",
]


@pytest.fixture
def world() -> World:
    w = World()
    w.publish(w.policy())
    return w


def approved_of(emits: list[Emit]) -> IntentApproved:
    (emit,) = on(emits, topics.INTENTS_APPROVED)
    return IntentApproved.from_bytes(emit.value)


def passed_codes(emits: list[Emit]) -> list[str]:
    """The codes of the stages an intent passed, from their audit events: where verdicts are kept."""
    return [e.details["code"] for e in audits(emits) if e.action == "stage.passed"]


def assert_approved(emits: list[Emit], intent: TransactionIntent) -> IntentApproved:
    approved = approved_of(emits)
    assert approved.intent == intent
    # The signer re-runs every check and never reads verdicts: the approval carries none, not
    # even as an empty list on the wire (the ledger's stage.passed events hold them).
    assert approved.verdicts == () and b'"verdicts"' not in on(emits, topics.INTENTS_APPROVED)[0].value
    assert on(emits, topics.INTENTS_REJECTED) == [] and on(emits, topics.DLQ) == []
    return approved


# --- policies ------------------------------------------------------------------------------------


def test_a_signed_policy_is_applied_and_audited():
    w = World()
    policy = w.policy()
    emits = w.publish(policy)
    (event,) = audits(emits)
    assert len(emits) == 1
    assert (event.action, event.actor, event.resource, event.agent_id) == (
        "policy.updated",
        f"admin:{ADMIN_ID}",
        f"policy:{AGENT}",
        AGENT,
    )
    assert event.details["version"] == 1
    assert AgentPolicy.model_validate_json(w.engine.policies[AGENT]) == policy


def test_a_redelivered_policy_emits_nothing(world):
    assert world.publish(world.policy()) == []
    assert AgentPolicy.model_validate_json(world.engine.policies[AGENT]).version == 1


def _refused(world: World, policy: AgentPolicy, says: str) -> None:
    before = dict(world.engine.policies)
    emits = world.engine.on_policy(policy.to_bytes(), world.source(topics.POLICIES), T0)
    (event,) = audits(emits)
    assert len(emits) == 1
    assert (event.action, event.actor, event.agent_id) == ("policy.refused", "service:streams", AGENT)
    assert says in event.details["reason"]
    assert world.engine.policies == before


def test_an_unsigned_policy_is_refused(world):
    unsigned = AgentPolicy(
        agent_id=AGENT,
        version=2,
        tx_max_value_eth="1000",
        agent_public_key=public_key_hex(world.agent_key),
        issued_at=T0,
    )
    _refused(world, unsigned, "policy is unsigned")


def test_a_policy_signed_by_an_unpinned_key_is_refused(world):
    rogue = sign_policy(world.policy(version=2, tx_max_value_eth="1000"), Ed25519PrivateKey.generate(), ADMIN_ID)
    _refused(world, rogue, f"does not verify against pinned admin key {ADMIN_ID!r}")
    unknown_id = sign_policy(world.policy(version=2), world.admin_key, "someone-else")
    _refused(world, unknown_id, "does not verify against pinned admin key 'someone-else'")


def test_an_older_or_equal_version_is_refused(world):
    world.publish(world.policy(version=3, tx_max_value_eth="0.9"))
    _refused(world, world.policy(version=2, tx_max_value_eth="1000"), "version 2 is not newer than the policy in force")
    _refused(world, world.policy(version=3, tx_max_value_eth="1000"), "version 3 is not newer than the policy in force")
    assert AgentPolicy.model_validate_json(world.engine.policies[AGENT]).tx_max_value_eth == "0.9"


def test_an_unreadable_policy_goes_to_the_dlq(world):
    emits = world.engine.on_policy(b'{"agent_id": "agent-1"}', world.source(topics.POLICIES), T0)
    (dlq,) = on(emits, topics.DLQ)
    letter = DeadLetter.from_bytes(dlq.value)
    assert letter.source_topic == topics.POLICIES and letter.reason.startswith("invalid AgentPolicy:")
    assert "version: is required" in letter.errors
    assert actions(emits) == ["dlq.recorded"]


def test_a_newer_policy_takes_effect(world):
    world.publish(world.policy(version=2, tx_max_value_eth="0.1"))
    rejected = rejected_of(world.submit(world.intent("0.5")))
    assert (rejected.stage, rejected.code) == ("value_cap", "VALUE_OVER_CAP")


# --- a passing intent ----------------------------------------------------------------------------


def test_a_passing_intent_is_approved_with_every_stage_audited(world):
    intent = world.intent("0.5")
    emits = world.submit(intent)
    approved = assert_approved(emits, intent)
    assert approved.policy == world.policy()
    assert approved.approved_at == T0
    assert passed_codes(emits) == PASSED_CODES
    assert actions(emits) == ["intent.submitted"] + ["stage.passed"] * len(GUARDRAIL_STAGES) + ["intent.approved"]
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
        ({"tx_allowed_chains": ("ethereum", "base")}, {}, "chain", "CHAIN_NOT_ALLOWED", "chain 'anvil'"),
        ({}, {"to": OTHER}, "allowlist", "RECIPIENT_NOT_ALLOWLISTED", OTHER),
        ({}, {"value": "1.000000000000000001"}, "value_cap", "VALUE_OVER_CAP", "1.000000000000000001"),
        (
            {"tx_daily_limit_eth": "0.4"},
            {"value": "0.400000000000000001"},
            "daily_limit",
            "DAILY_LIMIT_EXCEEDED",
            "the rolling limit of 0.4",
        ),
    ],
)
def test_each_guardrail_failure_rejects_with_its_stage_and_code(policy_fields, intent_fields, stage, code, says):
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
    assert actions(emits) == ["intent.submitted"] + ["stage.passed"] * position + ["stage.failed", "intent.rejected"]
    assert audits(emits)[-1].details["code"] == code
    assert on(emits, topics.INTENTS_APPROVED) == []
    assert w.spent() == 0


def test_a_forged_agent_signature_is_rejected_at_intake(world):
    forged = world.intent("0.5", key=Ed25519PrivateKey.generate())
    emits = world.submit(forged)
    rejected = rejected_of(emits)
    assert (rejected.stage, rejected.code) == ("intake", "AGENT_SIGNATURE_INVALID")
    assert actions(emits) == ["intent.submitted", "stage.failed", "intent.rejected"]
    assert world.spent() == 0


def test_an_intent_changed_after_signing_is_rejected_at_intake(world):
    doc = orjson.loads(world.intent("0.5").to_bytes())
    doc["to"] = OTHER
    doc["value"] = "0.9"
    world.publish(world.policy(version=2, tx_to_allowlist=()))
    rejected = rejected_of(world.submit(orjson.dumps(doc)))
    assert (rejected.stage, rejected.code) == ("intake", "AGENT_SIGNATURE_INVALID")


def test_an_agent_without_a_policy_is_rejected(world):
    intent = world.intent("0.5", agent_id="agent-2")
    emits = world.submit(intent, source=world.source(key="agent-2"))
    rejected = rejected_of(emits)
    assert (rejected.agent_id, rejected.stage, rejected.code) == ("agent-2", "intake", "POLICY_MISSING")
    assert "'agent-2'" in rejected.reason
    assert actions(emits) == ["intent.submitted", "stage.failed", "intent.rejected"]


def test_an_agent_with_the_intents_api_disabled_is_rejected(world):
    world.publish(world.policy(version=2, intents_api_enabled=False))
    emits = world.submit(world.intent("0.5"))
    rejected = rejected_of(emits)
    assert (rejected.stage, rejected.code) == ("intake", "INTENTS_API_DISABLED")
    assert on(emits, topics.INTENTS_APPROVED) == []
    assert world.spent() == 0


# --- unreadable records --------------------------------------------------------------------------


def _good_doc(world: World) -> dict:
    return orjson.loads(world.intent("0.5", intent_id="i-bad").to_bytes())


def _mutated(**changes):
    def build(world: World) -> bytes:
        doc = _good_doc(world)
        for key, value in changes.items():
            if value is _DROP:
                del doc[key]
            else:
                doc[key] = value
        return orjson.dumps(doc)

    return build


_DROP = object()

BAD_RECORDS = [
    ("malformed-json", lambda w: b'{"intent_id": "i-bad", "agent_id": ', "not valid JSON", False),
    ("json-array", lambda w: b'[{"intent_id": "i-bad"}]', "a TransactionIntent must be a JSON object, got list", False),
    ("json-string", lambda w: b'"hello"', "a TransactionIntent must be a JSON object, got str", False),
    ("null", lambda w: None, "empty record: the value is null", False),
    (
        "oversize",
        lambda w: orjson.dumps({**_good_doc(w), "data": "0x" + "00" * 40_000}),
        "exceeds the 65536-byte limit; it was not parsed",
        False,
    ),
    ("missing-field", _mutated(to=_DROP), "invalid TransactionIntent: record: to is required for a transaction", True),
    (
        "bad-checksum",
        _mutated(to="0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
        f"to: bad EIP-55 checksum in '0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed'; expected {DEST!r}",
        True,
    ),
    ("negative-value", _mutated(value="-1"), "value: must be >= 0", True),
    ("over-precise-value", _mutated(value="0.0000000000000000001"), "value: has 19 decimals; at most 18", True),
    ("number-value", _mutated(value=1), "value: must be a decimal string", True),
    ("unknown-chain", _mutated(chain="nochain"), "chain: unknown chain 'nochain'; allowed:", True),
    ("non-hex-data", _mutated(data="0xzz"), "data: must be 0x-prefixed hex", True),
    ("unknown-field", _mutated(vaule="1"), "vaule: is not a field of this record", True),
]


@pytest.mark.parametrize("build, says, readable_ids", [b[1:] for b in BAD_RECORDS], ids=[b[0] for b in BAD_RECORDS])
def test_an_unreadable_record_goes_to_the_dlq_and_the_engine_keeps_going(world, build, says, readable_ids):
    raw = build(world)
    source = Source(topics.INTENTS_SUBMITTED, 2, 77, AGENT.encode())
    emits = world.submit(raw, source=source)

    (dlq,) = on(emits, topics.DLQ)
    letter = DeadLetter.from_bytes(dlq.value)
    assert says in letter.reason
    assert dlq.key == AGENT
    assert (letter.source_topic, letter.partition, letter.offset, letter.key) == (
        topics.INTENTS_SUBMITTED,
        2,
        77,
        AGENT,
    )
    payload = raw or b""
    assert letter.payload_sha256 == hashlib.sha256(payload).hexdigest()
    assert base64.b64decode(letter.payload_b64) == payload[:65_536]

    (event,) = audits(emits)
    assert (event.action, event.resource) == ("dlq.recorded", f"record:{topics.INTENTS_SUBMITTED}/2/77")
    assert event.details["reason"] == letter.reason
    assert event.details["payload_sha256"] == letter.payload_sha256

    assert on(emits, topics.INTENTS_APPROVED) == []
    # Every one is answered, to the agent it names or (naming none it can) its record's key,
    # bound to the SHA-256 of its bytes, signed by the worker, and remembered nowhere.
    rejected = rejected_of(emits)
    digest = hashlib.sha256(payload).hexdigest()
    intent_id = "i-bad" if readable_ids else "unreadable-" + digest[:32]
    assert (rejected.intent_id, rejected.agent_id, rejected.stage, rejected.code, rejected.intent_digest) == (
        intent_id,
        AGENT,
        "intake",
        "INVALID_INTENT",
        digest,
    )
    assert on(emits, topics.INTENTS_REJECTED)[0].key == AGENT
    assert rejected.reason == f"{letter.reason}. {NEXT_STEP}"
    assert outcome_forgery(rejected, world.pinned(), digest) is None
    assert len(emits) == 3
    assert intent_id not in world.engine.decisions
    assert world.spent() == 0

    good = world.intent("0.5")
    assert_approved(world.submit(good), good)


def test_the_record_size_limit_is_the_engine_setting():
    w = World(max_record_bytes=1024)
    w.publish(w.policy())
    intent = w.intent("0.5", data="0x" + "ab" * 600)
    emits = w.submit(intent)
    letter = DeadLetter.from_bytes(on(emits, topics.DLQ)[0].value)
    assert "exceeds the 1024-byte limit" in letter.reason
    assert len(base64.b64decode(letter.payload_b64)) == 1024
    small = w.intent("0.5")
    assert_approved(w.submit(small), small)


BAD_CHECKSUM = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # DEST with one letter's case flipped


def test_an_unreadable_intent_is_answered_under_its_bytes_and_never_decides_its_id(world):
    """A record with a bad EIP-55 checksum gets a rejection signed by the worker and bound to
    the SHA-256 of its bytes; it is not the decision for its intent id, so the real intent with
    that id (which anyone could have sent a broken copy of first) is decided normally, and a
    broken copy sent after it changes nothing either."""
    raw = orjson.dumps({**orjson.loads(world.intent("0.5", intent_id="i-later").to_bytes()), "to": BAD_CHECKSUM})
    digest = hashlib.sha256(raw).hexdigest()
    rejected = rejected_of(world.submit(raw))
    assert (rejected.intent_id, rejected.agent_id, rejected.code, rejected.intent_digest, rejected.signed_by) == (
        "i-later",
        AGENT,
        "INVALID_INTENT",
        digest,
        WORKER_ID,
    )
    assert outcome_forgery(rejected, world.pinned(), digest) is None
    assert rejected.reason.startswith(
        f"invalid TransactionIntent: to: bad EIP-55 checksum in {BAD_CHECKSUM!r}; expected {DEST!r}"
    ) and rejected.reason.endswith(NEXT_STEP)
    assert "i-later" not in world.engine.decisions

    real = world.intent("0.5", intent_id="i-later")
    assert outcome_forgery(rejected, world.pinned(), real.digest()) is not None  # it answers no real intent
    approved = assert_approved(world.submit(real), real)
    again = rejected_of(world.submit(raw))
    assert (again.intent_id, again.intent_digest) == ("i-later", digest)
    assert world.engine.decisions["i-later"]["outcome"] == "approved"
    assert approved_of(world.submit(real)) == approved  # still its replay, reserved once
    assert world.spent() == 5 * ETH // 10


def test_a_record_naming_no_agent_is_answered_to_its_key_if_it_is_one_else_only_dead_lettered(world):
    not_json = b'{"intent_id": "i-x", "agent_id": '
    digest = hashlib.sha256(not_json).hexdigest()
    emits = world.submit(not_json, source=world.source(key=AGENT))
    rejected = rejected_of(emits)
    assert (rejected.intent_id, rejected.agent_id, rejected.intent_digest) == (
        "unreadable-" + digest[:32],
        AGENT,
        digest,
    )
    assert rejected.reason.startswith("not valid JSON: ") and on(emits, topics.INTENTS_REJECTED)[0].key == AGENT
    assert outcome_forgery(rejected, world.pinned(), digest) is None
    assert rejected.intent_id not in world.engine.decisions

    # The body's agent_id, when it is one, wins over the key; an agent_id that is none does not.
    doc = {**orjson.loads(world.intent("0.5", intent_id="i-named").to_bytes()), "to": BAD_CHECKSUM}
    named = rejected_of(world.submit(orjson.dumps({**doc, "agent_id": "agent-2"}), source=world.source(key=AGENT)))
    assert (named.agent_id, named.intent_id) == ("agent-2", "i-named")
    broken = rejected_of(
        world.submit(orjson.dumps({**doc, "agent_id": "no agent!", "intent_id": 7}), source=world.source(key=AGENT))
    )
    assert (broken.agent_id, broken.intent_id) == (AGENT, "unreadable-" + broken.intent_digest[:32])

    # No key, or one that is no identifier: nobody to answer; the dead letter and its audit event remain.
    for key in (None, b"not an agent!", b"\xff\xfe"):
        emits = world.submit(not_json, source=Source(topics.INTENTS_SUBMITTED, 0, 1, key))
        assert [e.topic for e in emits] == [topics.DLQ, topics.AUDIT_EVENTS], key
    assert world.engine.decisions == {}


def test_the_sdk_names_and_believes_the_answer_to_the_bytes_it_sent(world):
    """`sdk.client` predicts how the worker names an unreadable record's rejection (agent,
    intent id, digest of the bytes sent) and believes it only under the digest of those bytes;
    every other outcome only under the intent's digest."""
    from sdk.client import Awaited, outcome_problem, raw_submission

    pinned = world.pinned()
    good = world.intent("0.5", intent_id="i-sdk")
    records = [
        orjson.dumps({**orjson.loads(good.to_bytes()), "to": BAD_CHECKSUM}),
        b'{"intent_id": "i-sdk", ',
        orjson.dumps({**orjson.loads(good.to_bytes()), "agent_id": "no agent!"}),
        b"",
        orjson.dumps({**orjson.loads(good.to_bytes()), "data": "0x" + "00" * 40_000}),
    ]
    for raw in records:
        rejected = rejected_of(world.submit(raw))
        sent = raw_submission(AGENT, raw, world.max_record_bytes)
        assert (sent.agent_id, sent.intent_id, sent.digest, sent.intent_digest) == (
            rejected.agent_id,
            rejected.intent_id,
            rejected.intent_digest,
            None,
        ), raw[:40]
        assert outcome_problem(rejected, Awaited.of(sent), pinned) is None
        # Nor is it the answer to the real intent under that id: a broken copy answers for nobody else.
        assert outcome_problem(rejected, Awaited.of(good), pinned) is not None
    with pytest.raises(ValueError, match="not an agent id"):
        raw_submission("not an agent!", b"{", world.max_record_bytes)

    # An intent this client holds but the worker reads differently (here: a checksum it wrote
    # unchecked): its rejection is bound to the bytes `Client.submit` sends, intent.to_bytes().
    unread = good.model_copy(update={"to": BAD_CHECKSUM})
    rejected = rejected_of(world.submit(unread.to_bytes()))
    assert rejected.intent_digest == hashlib.sha256(unread.to_bytes()).hexdigest() != unread.digest()
    assert outcome_problem(rejected, Awaited.of(unread), pinned) is None

    # A readable record sent as it is: its outcome is bound to the intent's digest, as any.
    sent = raw_submission(AGENT, good.to_bytes(), world.max_record_bytes)
    approved = approved_of(world.submit(good))
    assert (sent.intent_id, sent.intent_digest) == (good.intent_id, good.digest())
    assert outcome_problem(approved, Awaited.of(sent), pinned) is None

    # Each digest answers only for its kind of outcome: an INVALID_INTENT under the intent's digest
    # (a topic writer's record made of an intent's signing bytes) and any other outcome under the
    # digest of the bytes sent are refused, even signed by the worker.
    as_intent = sign_outcome(
        rejected.model_copy(update={"intent_digest": unread.digest()}), world.worker_key, WORKER_ID
    )
    assert "intent_digest differs" in outcome_problem(as_intent, Awaited.of(unread), pinned)
    wire = hashlib.sha256(good.to_bytes()).hexdigest()
    other = sign_outcome(approved.model_copy(update={"intent_digest": wire}), world.worker_key, WORKER_ID)
    assert "intent_digest differs" in outcome_problem(other, Awaited.of(good), pinned)
    unreadable_only = Awaited.of(raw_submission(AGENT, records[0], world.max_record_bytes))
    assert "only an INVALID_INTENT" in outcome_problem(approved, unreadable_only, pinned)


# --- redelivery ----------------------------------------------------------------------------------


def test_a_redelivered_intent_gets_the_identical_answer_and_reserves_once(world):
    intent = world.intent("0.5")
    first = world.submit(intent)
    (approved,) = on(first, topics.INTENTS_APPROVED)
    spent = world.spent()
    again = world.submit(intent, now=T0 + timedelta(minutes=5))
    assert again == [Emit(topics.INTENTS_APPROVED, AGENT, approved.value)]
    assert world.spent(T0 + timedelta(minutes=5)) == spent == 5 * ETH // 10
    assert list(world.engine.windows.of(AGENT).entries) == [intent.intent_id]


def test_a_redelivered_rejection_is_the_identical_rejection(world):
    intent = world.intent("1.1")
    (rejected,) = on(world.submit(intent), topics.INTENTS_REJECTED)
    assert world.submit(intent) == [Emit(topics.INTENTS_REJECTED, AGENT, rejected.value)]


# --- rolling daily window ------------------------------------------------------------------------


def test_two_intents_that_together_exceed_the_limit_and_a_release_after_signing_fails(world):
    first = world.intent("0.9")
    assert_approved(world.submit(first), first)
    later = T0 + timedelta(minutes=1)
    second = world.intent("0.600000000000000001", now=later)
    rejected = rejected_of(world.submit(second, now=later))
    assert (rejected.stage, rejected.code) == ("daily_limit", "DAILY_LIMIT_EXCEEDED")
    assert "0.9 already spent" in rejected.reason and "1.5" in rejected.reason
    assert world.spent(later) == 9 * ETH // 10

    assert world.engine.on_rejected(world.refusal(first, later), later) == []
    assert world.spent(later) == 0
    assert world.engine.decisions[first.intent_id]["outcome"] == "released"

    third = world.intent("1", now=later)
    assert_approved(world.submit(third, now=later), third)
    assert world.spent(later) == ETH


def test_only_a_signing_rejection_of_an_approved_intent_releases(world):
    first = world.intent("0.9")
    world.submit(first)
    for stage in ("value_cap", "daily_limit", "intake"):
        world.engine.on_rejected(world.refusal(first, stage=stage), T0)
    world.engine.on_rejected(world.refusal(world.intent("0.9", intent_id="i-unknown")), T0)
    assert world.spent() == 9 * ETH // 10
    assert world.engine.decisions[first.intent_id]["outcome"] == "approved"


def test_the_window_slides_to_the_microsecond(world):
    first = world.intent("1")
    assert_approved(world.submit(first), first)
    just_before = T0 + DAY - timedelta(microseconds=1)
    rejected = rejected_of(world.submit(world.intent("0.6", now=just_before), now=just_before))
    assert rejected.code == "DAILY_LIMIT_EXCEEDED"
    at_24h = T0 + DAY
    fresh = world.intent("0.6", now=at_24h)
    assert_approved(world.submit(fresh, now=at_24h), fresh)
    assert world.spent(at_24h) == 6 * ETH // 10


# --- idempotency keys ----------------------------------------------------------------------------


def test_idempotency_key_reuse_within_24h_is_an_approved_replay_without_spend(world):
    original = world.intent("0.3", idempotency_key="order-1")
    assert_approved(world.submit(original), original)
    later = T0 + timedelta(hours=23, minutes=59)
    reuse = world.intent("0.3", idempotency_key="order-1", intent_id="i-retry", now=later)
    emits = world.submit(reuse, now=later)
    assert_approved(emits, reuse)
    (verdict,) = [e.details for e in audits(emits) if e.action == "stage.passed"]
    assert (verdict["stage"], verdict["code"]) == ("intake", "IDEMPOTENT_REPLAY")
    assert verdict["facts"] == {"original_intent_id": original.intent_id}
    assert actions(emits) == ["intent.submitted", "stage.passed", "intent.approved"]
    assert world.spent(later) == 3 * ETH // 10
    assert world.engine.decisions["i-retry"]["counts"] is False


def test_idempotency_key_reuse_after_24h_is_a_fresh_intent(world):
    original = world.intent("0.3", idempotency_key="order-1")
    world.submit(original)
    at_24h = T0 + DAY
    fresh = world.intent("0.4", idempotency_key="order-1", intent_id="i-next-day", now=at_24h)
    emits = world.submit(fresh, now=at_24h)
    assert_approved(emits, fresh)
    assert passed_codes(emits) == PASSED_CODES
    assert world.spent(at_24h) == 4 * ETH // 10
    assert world.engine.decisions["i-next-day"]["counts"] is True


def test_idempotency_key_reuse_after_a_rejection_echoes_the_rejection(world):
    original = world.intent("5", idempotency_key="order-2")
    assert rejected_of(world.submit(original)).code == "VALUE_OVER_CAP"
    reuse = world.intent("0.1", idempotency_key="order-2", intent_id="i-retry-2")
    rejected = rejected_of(world.submit(reuse))
    assert (rejected.intent_id, rejected.stage, rejected.code) == ("i-retry-2", "value_cap", "VALUE_OVER_CAP")
    assert world.spent() == 0


def test_idempotency_keys_are_per_agent(world):
    world.publish(world.policy(agent_id="agent-2"))
    first = world.intent("0.3", idempotency_key="shared")
    world.submit(first)
    other = world.intent("0.3", idempotency_key="shared", agent_id="agent-2")
    emits = world.submit(other, source=world.source(key="agent-2"))
    assert_approved(emits, other)
    assert passed_codes(emits) == PASSED_CODES
    assert world.spent(agent_id="agent-2") == 3 * ETH // 10


# --- split topology ------------------------------------------------------------------------------


def _run_split(engine: Engine, raw: bytes, source: Source, now: datetime):
    """Feed an intent through on_intake and then on_stage hop by hop, as the split topology does.
    Returns the non-envelope emits, the stages visited and the envelopes written."""
    emits = asyncio.run(engine.on_intake(raw, source, now))
    out, visited, written = [], [], []
    while True:
        envelopes = [e for e in emits if e.topic.startswith(topics.STAGE_PREFIX)]
        out += [e for e in emits if not e.topic.startswith(topics.STAGE_PREFIX)]
        if not envelopes:
            return out, visited, written
        (envelope,) = envelopes
        assert envelope.key == AGENT
        written.append(envelope)
        stage = envelope.topic.removeprefix(topics.STAGE_PREFIX)
        visited.append(stage)
        where = Source(envelope.topic, partition_of(AGENT), len(written), AGENT.encode())
        emits = asyncio.run(engine.on_stage(stage, envelope.value, where, now))


@pytest.mark.parametrize(
    "intent_fields, expect_stages, outcome",
    [
        ({"value": "0.5"}, list(GUARDRAIL_STAGES), topics.INTENTS_APPROVED),
        ({"value": "0.5", "to": OTHER}, ["chain", "allowlist"], topics.INTENTS_REJECTED),
        ({"value": "2"}, ["chain", "allowlist", "assets", "simulation", "fee", "value_cap"], topics.INTENTS_REJECTED),
    ],
)
def test_split_topology_reaches_the_same_outcome_as_fused(intent_fields, expect_stages, outcome):
    fused = World()
    split = World(admin_key=fused.admin_key, agent_key=fused.agent_key, worker_key=fused.worker_key)
    for w in (fused, split):
        w.publish(w.policy())
    raw = fused.intent(**intent_fields, intent_id="i-split").to_bytes()
    source = Source(topics.INTENTS_SUBMITTED, 0, 5, AGENT.encode())

    fused_out = asyncio.run(fused.engine.on_intent(raw, source, T0))
    split_out, visited, written = _run_split(split.engine, raw, source, T0)
    assert written[0].topic == topics.stage_topic("chain")
    assert visited == expect_stages
    assert len(on(split_out, outcome)) == 1
    assert split_out == fused_out
    assert split.engine.decisions == fused.engine.decisions
    assert split.spent() == fused.spent()


def test_on_intake_hands_the_intent_to_the_chain_stage(world):
    intent = world.intent("0.5")
    emits = asyncio.run(world.engine.on_intake(intent.to_bytes(), world.source(), T0))
    assert [e.topic for e in emits] == [topics.AUDIT_EVENTS, topics.stage_topic("chain")]
    assert actions(emits) == ["intent.submitted"]
    envelope = orjson.loads(emits[1].value)
    assert TransactionIntent.model_validate(envelope["intent"]) == intent
    assert AgentPolicy.model_validate(envelope["policy"]) == world.policy()
    assert envelope["verdicts"] == []
    assert world.engine.decisions == {} and world.spent() == 0


def test_a_redelivered_stage_envelope_replays_the_decision(world):
    intent = world.intent("0.5")
    out, _, written = _run_split(world.engine, intent.to_bytes(), world.source(), T0)
    (approved,) = on(out, topics.INTENTS_APPROVED)
    for envelope in written:
        stage = envelope.topic.removeprefix(topics.STAGE_PREFIX)
        again = asyncio.run(
            world.engine.on_stage(stage, envelope.value, world.source(envelope.topic), T0 + timedelta(seconds=1))
        )
        assert again == [approved]
    assert world.spent() == 5 * ETH // 10


def _forged_envelopes(world: World, intent: TransactionIntent) -> dict[str, tuple[str, bytes, int]]:
    """What a topic writer can put on the chain stage's topic about a real intent, each with the
    reason its dead letter must give and the partition it is written to. Each would have the
    worker reject the intent CHAIN_NOT_ALLOWED (its policy allows only ethereum) or skip stages."""
    strict = world.policy(tx_allowed_chains=("ethereum",))
    doc = {
        "stage": "chain",
        "intent": intent.model_dump(mode="json"),
        "policy": strict.model_dump(mode="json"),
        "verdicts": [],
        "intent_digest": intent.digest(),
    }
    envelope = StageEnvelope.model_validate(doc)
    home = partition_of(AGENT)
    real_policy = StageEnvelope.model_validate({**doc, "policy": world.policy().model_dump(mode="json")})
    signed = sign_outcome(real_policy, world.worker_key, WORKER_ID)
    edited = orjson.loads(signed.to_bytes())
    edited["policy"] = strict.model_dump(mode="json")
    return {
        "the envelope before it was signed": (
            "invalid StageEnvelope",
            orjson.dumps({k: doc[k] for k in ("intent", "policy", "verdicts")}),
            home,
        ),
        "unsigned, under the worker's key id": (
            "not signed by a pinned worker key (the service signature does not verify",
            envelope.model_copy(update={"signed_by": WORKER_ID, "service_signature": "00" * 64}).to_bytes(),
            home,
        ),
        "signed by another key under the worker's id": (
            "not signed by a pinned worker key (the service signature does not verify",
            sign_outcome(envelope, Ed25519PrivateKey.generate(), WORKER_ID).to_bytes(),
            home,
        ),
        "signed by the signer": (
            f"not signed by a pinned worker key (signed_by '{SIGNER_ID}' is not a pinned worker key)",
            sign_outcome(envelope, world.signer_key, SIGNER_ID).to_bytes(),
            home,
        ),
        "the worker's envelope with its policy edited": (
            "not signed by a pinned worker key (the service signature does not verify",
            orjson.dumps(edited),
            home,
        ),
        "the worker's envelope for the daily-limit stage, on the chain stage's topic": (
            "is addressed to stage 'daily_limit', not to 'chain'",
            sign_outcome(
                real_policy.model_copy(update={"stage": "daily_limit"}), world.worker_key, WORKER_ID
            ).to_bytes(),
            home,
        ),
        "the worker's envelope re-keyed to another partition": (
            f"an agent's records belong on partition {home}",
            signed.to_bytes(),
            (home + 1) % topics.PARTITIONS,
        ),
    }


@pytest.mark.parametrize("forgery", list(_forged_envelopes(World(), World().intent())))
def test_a_stage_envelope_decides_only_when_its_worker_wrote_it_for_that_stage_and_partition(world, forgery):
    """The stage trusts the envelope's policy and verdicts: one a topic writer made, edited,
    addressed to another stage or re-keyed is dead-lettered with why, decides nothing and binds
    nothing to the intent; the real intent, after it, is approved."""
    world.engine.home_partition = partition_of  # as the topology wires it
    world.publish(world.policy())
    intent = world.intent("0.5")
    reason, raw, partition = _forged_envelopes(world, intent)[forgery]
    source = Source(topics.stage_topic("chain"), partition, 7, AGENT.encode())
    emits = asyncio.run(world.engine.on_stage("chain", raw, source, T0))
    assert [e.topic for e in emits] == [topics.DLQ, topics.AUDIT_EVENTS]
    letter = DeadLetter.from_bytes(emits[0].value)
    assert reason in letter.reason and "not decided" in letter.reason.lower(), letter.reason
    assert (letter.source_topic, letter.partition, letter.intent_digest) == (source.topic, partition, None)
    assert world.engine.decisions == {}
    out, visited, _ = _run_split(world.engine, intent.to_bytes(), world.source(), T0)
    assert visited == list(GUARDRAIL_STAGES)
    assert_approved(out, intent)


def test_a_stage_envelope_from_a_worker_started_a_moment_ago_is_believed(world, tmp_path):
    """With the local services' key files as the pinned keys, an unknown worker key id is looked
    up at once: a second worker's first envelope, a moment after this worker read the files,
    would otherwise be dead-lettered for good and its intent left without an outcome."""
    settings = Settings(home=tmp_path)
    first = service_key(dataclasses.replace(settings, worker_id="streams-0"), "worker")
    world.engine.service_keys = PinnedServiceKeys(settings)
    world.publish(world.policy())
    earlier = world.intent("0.5")
    raw = sign_outcome(
        StageEnvelope(stage="chain", intent=earlier, policy=world.policy(), intent_digest=earlier.digest()),
        first[1],
        first[0],
    ).to_bytes()
    assert (
        on(asyncio.run(world.engine.on_stage("chain", raw, world.source(topics.stage_topic("chain")), T0)), topics.DLQ)
        == []
    )  # read the key files just now
    second = service_key(dataclasses.replace(settings, worker_id="streams-1"), "worker")
    intent = world.intent("0.5")
    raw = sign_outcome(
        StageEnvelope(stage="chain", intent=intent, policy=world.policy(), intent_digest=intent.digest()),
        second[1],
        second[0],
    ).to_bytes()
    emits = asyncio.run(world.engine.on_stage("chain", raw, world.source(topics.stage_topic("chain")), T0))
    assert on(emits, topics.DLQ) == [], DeadLetter.from_bytes(on(emits, topics.DLQ)[0].value).reason
    assert on(emits, topics.stage_topic("allowlist"))


# --- rebuilding the window -----------------------------------------------------------------------


def test_windows_rebuild_from_decisions_reproduces_the_spend(world):
    a = world.intent("0.2", idempotency_key="order-a")
    b = world.intent("0.3")
    c = world.intent("0.4")
    for intent in (a, b, c):
        world.submit(intent)
    world.submit(world.intent("1.2"))  # rejected: over the daily limit with 0.9 spent
    world.submit(world.intent("0.2", idempotency_key="order-a", intent_id="i-replay"))  # approved, counts nothing
    world.engine.on_rejected(world.refusal(b), T0)
    later = T0 + timedelta(hours=1)
    assert world.spent(later) == 6 * ETH // 10

    # As a Faust table would hand them back after a restart: JSON, not the same objects.
    stored = orjson.loads(orjson.dumps(world.engine.decisions))
    rebuilt = Windows()
    rebuilt.rebuild(stored)
    assert rebuilt.of(AGENT).spent(to_us(later)) == 6 * ETH // 10
    assert rebuilt.of(AGENT).entries == world.engine.windows.of(AGENT).entries
    assert set(rebuilt.of(AGENT).entries) == {a.intent_id, c.intent_id}


def test_a_restarted_engine_enforces_the_limit_from_rebuilt_state(world):
    first = world.intent("1")
    assert_approved(world.submit(first), first)
    restarted = world.new_engine(dict(world.engine.policies), dict(world.engine.decisions))
    restarted.windows.rebuild(restarted.decisions)
    world.engine = restarted
    rejected = rejected_of(world.submit(world.intent("0.6")))
    assert rejected.code == "DAILY_LIMIT_EXCEEDED"


def test_a_forged_record_cannot_decide_the_real_intent_with_the_same_id(world):
    world.publish(world.policy())
    forger = Ed25519PrivateKey.generate()
    forged = world.intent(key=forger, intent_id="i-predictable")
    assert rejected_of(world.submit(forged)).code == "AGENT_SIGNATURE_INVALID"
    real = world.intent(intent_id="i-predictable")
    assert_approved(world.submit(real), real)


def test_redelivery_sends_again_only_what_stays_undecided_and_gives_up_after_its_attempts():
    from streams.redelivery import Pending

    pending = Pending(grace_us=10, max_attempts=2)
    pending.submitted(("a", "da"), "agent-1", b"A", now_us=0)
    pending.submitted(("b", "db"), "agent-1", b"B", now_us=0)
    pending.decided(("a", "da"))
    assert pending.due(now_us=9) == ([], [])
    assert pending.due(now_us=10) == ([("agent-1", b"B")], [])
    assert pending.due(now_us=15) == ([], [])  # not again until another grace period
    assert pending.due(now_us=20) == ([("agent-1", b"B")], [])
    assert pending.due(now_us=30) == ([], [("agent-1", b"B")])  # given up once, then never again
    pending.submitted(("b", "db"), "agent-1", b"B", now_us=31)
    assert pending.due(now_us=100) == ([], []) and len(pending) == 0


def test_redelivery_finds_every_due_intent_behind_one_sent_again_and_reads_no_further():
    """The watch keeps its intents in the order they come due and stops at the first that is not
    (a burst's thousands were scanned in full every second): one sent again goes behind those
    still waiting, so it cannot hide them, and a check takes at most ``limit``."""
    from streams.redelivery import Pending

    pending = Pending(grace_us=10)
    pending.submitted(("a", "da"), "agent-1", b"A", now_us=0)
    pending.submitted(("b", "db"), "agent-1", b"B", now_us=5)
    assert pending.due(now_us=10) == ([("agent-1", b"A")], [])
    assert pending.due(now_us=15) == ([("agent-1", b"B")], [])  # behind A, sent again at 10 and not due
    for n in range(5):
        pending.submitted((f"c{n}", "dc"), "agent-2", b"C%d" % n, now_us=16 + n)
    assert pending.due(now_us=30, limit=3) == ([("agent-1", b"A"), ("agent-1", b"B"), ("agent-2", b"C0")], [])
    assert pending.due(now_us=30, limit=3) == ([("agent-2", b"C1"), ("agent-2", b"C2"), ("agent-2", b"C3")], [])
    assert pending.due(now_us=30) == ([("agent-2", b"C4")], [])


def test_redelivery_watches_only_what_the_worker_can_read_and_a_dead_letter_ends_the_watch(world):
    from streams.redelivery import outcome_about, watched_intent

    good = world.intent("0.1")
    assert watched_intent(good.to_bytes(), 65_536) == ((good.intent_id, good.digest()), AGENT)
    doc = orjson.loads(good.to_bytes())
    for bad in (
        orjson.dumps({**doc, "agent_id": ["a", "list"]}),
        orjson.dumps({**doc, "agent_id": None}),
        orjson.dumps({**doc, "data": "0x" + "ab" * 40_000}),
        b"{",
        None,
    ):
        assert watched_intent(bad, 65_536) is None
    assert watched_intent(good.to_bytes(), 100) is None  # over the size limit
    # The worker dead-letters a record it fails on, signed: that names the intent, and ends its watch.
    keys = world.pinned()
    emits = world.engine.dead_letter(good.to_bytes(), world.source(), T0, "boom")
    (letter,) = on(emits, topics.DLQ)
    assert outcome_about(topics.DLQ, letter.value, keys) == (good.intent_id, good.digest())
    # So does a dead letter a signer signed.
    signer_letter = sign_outcome(DeadLetter.from_bytes(letter.value), world.signer_key, SIGNER_ID)
    assert outcome_about(topics.DLQ, signer_letter.to_bytes(), keys) == (good.intent_id, good.digest())
    approved = approved_of(world.submit(good))
    assert outcome_about(topics.INTENTS_APPROVED, approved.to_bytes(), keys) == (good.intent_id, good.digest())
    assert outcome_about(topics.INTENTS_REJECTED, world.refusal(good), keys) == (good.intent_id, good.digest())
    assert outcome_about(topics.DLQ, b"not json", keys) is None
    # A forged outcome on any watched topic (a topic writer's: unsigned, or signed by a key nobody
    # pinned) does not end the watch: the intent is redelivered, and ends with a true outcome.
    stranger = Ed25519PrivateKey.generate()
    unsigned = DeadLetter.from_bytes(letter.value).model_copy(update={"signed_by": "", "service_signature": ""})
    for topic, forged in (
        (topics.DLQ, unsigned.to_bytes()),
        (topics.DLQ, sign_outcome(unsigned, stranger, WORKER_ID).to_bytes()),
        (topics.INTENTS_APPROVED, sign_outcome(approved, stranger, WORKER_ID).to_bytes()),
        (topics.INTENTS_REJECTED, world.refusal(good, key=stranger)),
    ):
        assert outcome_about(topic, forged, keys) is None, topic


def test_the_watch_ends_only_for_the_very_intent_an_outcome_is_about(world):
    """A topic writer's edited copy of an intent (same id, so it is readable, its agent signature
    broken) is refused AGENT_SIGNATURE_INVALID by the worker, signed and with the copy's digest.
    That authentic refusal used to end the watch of the id, real intent included: had the worker
    skipped the real one, nothing would have sent it again. Now each (id, digest) is watched and
    ends on its own; the copy seen first does not displace the real one either."""
    from streams.redelivery import Pending, outcome_about, watched_intent

    world.publish(world.policy())
    real = world.intent("0.1")
    copy = world.intent(
        "0.2", intent_id=real.intent_id, key=Ed25519PrivateKey.generate()
    )  # edited: re-signed by nobody
    pending = Pending(grace_us=10)
    for intent in (copy, real):
        about, key = watched_intent(intent.to_bytes(), 65_536)
        pending.submitted(about, key, intent.to_bytes(), now_us=0)
    refused = rejected_of(world.submit(copy))
    assert (refused.intent_id, refused.code, refused.signed_by) == (
        real.intent_id,
        "AGENT_SIGNATURE_INVALID",
        WORKER_ID,
    )
    pending.decided(outcome_about(topics.INTENTS_REJECTED, refused.to_bytes(), world.pinned()))
    assert pending.due(now_us=10) == ([(AGENT, real.to_bytes())], [])
    # The real intent's own outcome ends its watch.
    pending.decided(outcome_about(topics.INTENTS_APPROVED, approved_of(world.submit(real)).to_bytes(), world.pinned()))
    assert len(pending) == 0


def test_an_intent_off_its_agents_partition_is_dead_lettered_never_decided(world):
    """With two workers, another partition may be another worker's, without the agent's policy or
    decisions: a copy of a real intent re-keyed there was rejected POLICY_MISSING, signed and bound
    to the real intent's digest, while the real one was signed (seen on a two-worker stack). Off
    its partition an intent gets a dead letter, not an outcome, and the watch of the real intent
    goes on."""
    from streams.redelivery import outcome_about

    world.engine.home_partition = partition_of
    world.publish(world.policy())
    intent = world.intent("0.1")
    home = partition_of(AGENT)
    elsewhere = Source(topics.INTENTS_SUBMITTED, (home + 1) % topics.PARTITIONS, 9, b"someone-else")
    for emits in (
        world.submit(intent, source=elsewhere),
        world.engine.on_abandoned(
            world.abandoned(intent), dataclasses.replace(elsewhere, topic=topics.INTENTS_ABANDONED), T0
        ),
    ):
        assert not on(emits, topics.INTENTS_REJECTED) and not on(emits, topics.INTENTS_APPROVED)
        (letter,) = on(emits, topics.DLQ)
        reason = DeadLetter.from_bytes(letter.value).reason
        assert f"is on partition {elsewhere.partition}" in reason and f"belong on partition {home}" in reason
        assert outcome_about(topics.DLQ, letter.value, world.pinned()) is None  # the real one is still watched
    # Nothing was remembered: on its own partition the same intent is decided as usual.
    assert approved_of(world.submit(intent)).intent.intent_id == intent.intent_id
    letter = on(world.engine.dead_letter(intent.to_bytes(), world.source(), T0, "boom"), topics.DLQ)[0]
    assert outcome_about(topics.DLQ, letter.value, world.pinned()) == (intent.intent_id, intent.digest())


def test_the_watch_believes_the_bytes_this_worker_published_and_verifies_everything_else(world):
    from streams.redelivery import Published, outcome_about

    good = world.intent("0.1")
    approved = approved_of(world.submit(good)).to_bytes()
    refused = world.refusal(world.intent("0.2"))
    nobody = StaticKeys()  # no key pinned: only the worker's own bytes can end a watch
    published = Published(limit=2)
    published.add(approved)
    published.add(refused)
    # The worker's record edited by a topic writer (its approval time moved) is not the worker's: it
    # is verified, and fails. So does the same record with one more byte: it is verified too.
    edited = orjson.dumps({**orjson.loads(approved), "approved_at": "2026-01-01T00:00:00Z"})
    assert outcome_about(topics.INTENTS_APPROVED, edited, world.pinned(), published) is None
    assert outcome_about(topics.INTENTS_APPROVED, approved + b" ", nobody, published) is None
    assert outcome_about(topics.INTENTS_APPROVED, approved, nobody, published) == (good.intent_id, good.digest())
    assert outcome_about(topics.INTENTS_APPROVED, approved, nobody, published) is None  # once
    assert outcome_about(topics.INTENTS_REJECTED, refused, nobody, published) is not None
    parking = World()
    parking.publish(parking.policy(approval_threshold_eth="0.4", approval_timeout_s=600))
    big = parking.intent("1")
    (parked,) = on(parking.submit(big), topics.INTENTS_AWAITING_APPROVAL)
    mine = Published()
    mine.add(parked.value)
    assert outcome_about(topics.INTENTS_AWAITING_APPROVAL, parked.value, nobody, mine) == (big.intent_id, big.digest())
    # Bounded: the oldest is forgotten, and then verified like any other record.
    for n in range(3):
        published.add(world.refusal(world.intent(f"0.{n + 3}")))
    assert outcome_about(topics.INTENTS_APPROVED, approved, world.pinned(), published) == (
        good.intent_id,
        good.digest(),
    )
    published.add(approved)
    for n in range(2):
        published.add(world.refusal(world.intent(f"0.{n + 6}")))
    assert outcome_about(topics.INTENTS_APPROVED, approved, nobody, published) is None


def test_an_abandoned_intent_is_decided_no_outcome_unless_it_was_decided(world):
    decided = world.intent("0.1")
    approved = approved_of(world.submit(decided))
    assert world.engine.on_abandoned(world.abandoned(decided), world.source(topics.INTENTS_ABANDONED), T0) == []
    lost = world.intent("0.2")
    emits = world.engine.on_abandoned(world.abandoned(lost), world.source(topics.INTENTS_ABANDONED), T0)
    rejected = rejected_of(emits)
    assert (rejected.code, rejected.intent_digest, rejected.signed_by) == ("NO_OUTCOME", lost.digest(), WORKER_ID)
    assert "will not be signed" in rejected.reason
    # A late copy of the lost intent gets the same answer, never an approval; nothing was reserved.
    assert rejected_of(world.submit(lost)) == rejected
    assert world.spent() == 10**17 and approved_of(world.submit(decided)) == approved


def _forged_abandonments(world: World, intent: TransactionIntent) -> dict[str, tuple[str, bytes]]:
    """What a topic writer can put on warden.intents.abandoned, with what its dead letter says."""
    record = IntentAbandoned.from_bytes(world.abandoned(intent))
    unsigned = record.model_copy(update={"service_signature": "00" * 64})
    return {
        "a copy of the intent, as abandoned records used to be": ("invalid IntentAbandoned", intent.to_bytes()),
        "unsigned, under the worker's key id": ("the service signature does not verify", unsigned.to_bytes()),
        "signed by another key under the worker's id": (
            "the service signature does not verify",
            sign_outcome(unsigned, Ed25519PrivateKey.generate(), WORKER_ID).to_bytes(),
        ),
        "signed by the signer": (
            f"signed_by '{SIGNER_ID}' is not a pinned worker key",
            sign_outcome(unsigned, world.signer_key, SIGNER_ID).to_bytes(),
        ),
    }


@pytest.mark.parametrize("forgery", list(_forged_abandonments(World(), World().intent())))
def test_only_a_worker_gives_an_intent_up(world, forgery):
    """A topic writer who copies a real intent onto warden.intents.abandoned before the worker
    reads it had it decided NO_OUTCOME, and one who writes an intent of its own under an id an
    agent will use (idempotent ids can be computed) had the real one refused INTENT_ID_REUSED.
    Only an IntentAbandoned a pinned worker signed decides: the rest is dead-lettered."""
    world.publish(world.policy())
    intent = world.intent("0.5")
    reason, raw = _forged_abandonments(world, intent)[forgery]
    emits = world.engine.on_abandoned(raw, world.source(topics.INTENTS_ABANDONED), T0)
    assert [e.topic for e in emits] == [topics.DLQ, topics.AUDIT_EVENTS]
    letter = DeadLetter.from_bytes(emits[0].value)
    assert reason in letter.reason and "not decided" in letter.reason, letter.reason
    assert world.engine.decisions == {}
    assert_approved(world.submit(intent), intent)


def test_an_abandoned_intent_its_agent_did_not_sign_is_answered_not_remembered(world):
    """The redelivery task watches whatever readable intent is submitted, forgeries included. If
    the worker gives one up, its NO_OUTCOME is bound to the forgery and not remembered, as at
    intake: the agent's own intent with that id is still decided."""
    world.publish(world.policy())
    forged = world.intent("0.5", key=Ed25519PrivateKey.generate(), intent_id="i-predictable")
    rejected = rejected_of(
        world.engine.on_abandoned(world.abandoned(forged), world.source(topics.INTENTS_ABANDONED), T0)
    )
    assert (rejected.code, rejected.intent_digest) == ("NO_OUTCOME", forged.digest())
    real = world.intent("0.5", intent_id="i-predictable")
    assert_approved(world.submit(real), real)


# --- authenticated outcomes, freshness, reused ids (the signer-is-the-last-word issue) ------------


def test_every_decision_is_signed_by_the_worker_and_bound_to_the_intent(world):
    from schemas.auth import outcome_forgery

    good = world.intent("0.5")
    bad = world.intent("2")
    approved = approved_of(world.submit(good))
    rejected = rejected_of(world.submit(bad))
    pinned = world.pinned()
    assert approved.intent_digest == good.digest() and approved.signed_by == WORKER_ID
    assert outcome_forgery(approved, pinned, good.digest()) is None
    assert outcome_forgery(rejected, pinned, bad.digest()) is None
    # About another intent, tampered with, or claimed by a worker where only a signer may speak:
    assert "intent_digest differs" in outcome_forgery(rejected, pinned, good.digest())
    tampered = rejected.model_copy(update={"code": "VALUE_WITHIN_CAP"})
    assert "does not verify" in outcome_forgery(tampered, pinned, bad.digest())
    as_signer = rejected.model_copy(update={"stage": "signing"})
    assert "not a pinned signer key" in outcome_forgery(as_signer, pinned, bad.digest())


def test_stale_and_future_intents_are_refused_at_intake_and_not_remembered_as_spend(world):
    stale = world.intent("0.5", now=T0 - timedelta(minutes=10))
    future = world.intent("0.5", now=T0 + timedelta(minutes=3), intent_id="i-future")
    assert rejected_of(world.submit(stale)).code == "INTENT_EXPIRED"
    assert rejected_of(world.submit(future)).code == "INTENT_FROM_THE_FUTURE"
    assert world.spent() == 0
    just_in_time = world.intent("0.5", now=T0 - timedelta(minutes=10) + timedelta(microseconds=1))
    assert_approved(world.submit(just_in_time), just_in_time)


def test_a_different_intent_under_a_decided_id_gets_its_own_refusal(world):
    first = world.intent("0.5", intent_id="i-same")
    approved = approved_of(world.submit(first))
    variant = world.intent("0.9", intent_id="i-same")
    rejected = rejected_of(world.submit(variant))
    assert (rejected.code, rejected.intent_digest) == ("INTENT_ID_REUSED", variant.digest())
    # The first keeps its decision and its replay; the variant reserved nothing.
    assert approved_of(world.submit(first)) == approved
    assert world.spent() == 5 * ETH // 10


def test_a_forged_signing_rejection_does_not_release_the_reservation(world):
    """Anyone can write to warden.intents.rejected. Unsigned, signed by another key, signed by
    the worker, or a real signer refusal of a different intent with the same id: none releases."""
    first = world.intent("1")
    world.submit(first)
    other_intent = world.intent("1", intent_id=first.intent_id, now=T0 + timedelta(seconds=1))
    forgeries = [
        world.refusal(first, key=Ed25519PrivateKey.generate()),
        world.refusal(first, key=world.worker_key),
        world.refusal(other_intent),
        IntentRejected(
            intent_id=first.intent_id,
            agent_id=AGENT,
            stage="signing",
            code="X",
            reason="x",
            decided_at=T0,
            intent_digest=first.digest(),
        ).to_bytes(),
    ]
    for raw in forgeries:
        emits = world.engine.on_rejected(raw, T0)
        assert actions(emits) == ["outcome.forged"]
    assert world.spent() == ETH
    assert rejected_of(world.submit(world.intent("0.6"))).code == "DAILY_LIMIT_EXCEEDED"
    world.engine.on_rejected(world.refusal(first), T0)  # the signer's own refusal does
    assert world.spent() == 0


# --- per-asset rolling windows ----------------------------------------------------------------------

TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _token_transfer(world: World, units: int, now: datetime = T0) -> TransactionIntent:
    data = "0xa9059cbb" + DEST[2:].lower().rjust(64, "0") + f"{units:064x}"
    return world.intent(value="0", to=TOKEN, data=data, now=now, gas_limit=60_000)


def test_token_spend_is_reserved_per_asset_released_by_the_signer_and_rebuilt():
    w = World()
    asset = {"chain": "anvil", "token": TOKEN, "decimals": 6, "daily_limit": "100"}
    w.publish(w.policy(tx_to_allowlist=(DEST, TOKEN), asset_limits=(asset,)))
    first = _token_transfer(w, 60 * 10**6)
    assert_approved(w.submit(first), first)
    assert w.engine.windows.of(AGENT, f"anvil:{TOKEN}").spent(to_us(T0)) == 60 * 10**6
    # 60 + 60 > 100: the second waits for nothing, the reservation already counts.
    second = _token_transfer(w, 60 * 10**6, now=T0 + timedelta(seconds=1))
    rejected = rejected_of(w.submit(second, now=T0 + timedelta(seconds=1)))
    assert (rejected.stage, rejected.code) == ("assets", "ASSET_DAILY_LIMIT_EXCEEDED")
    # The signer refused the first: its tokens are released, and the same transfer now fits.
    w.engine.on_rejected(w.refusal(first), T0 + timedelta(seconds=2))
    assert w.engine.windows.of(AGENT, f"anvil:{TOKEN}").spent(to_us(T0)) == 0
    third = _token_transfer(w, 60 * 10**6, now=T0 + timedelta(seconds=3))
    assert_approved(w.submit(third, now=T0 + timedelta(seconds=3)), third)
    # A restarted worker rebuilds the same windows from its decisions alone.
    rebuilt = Windows()
    rebuilt.rebuild(w.engine.decisions)
    assert rebuilt.of(AGENT, f"anvil:{TOKEN}").entries == w.engine.windows.of(AGENT, f"anvil:{TOKEN}").entries
    assert list(rebuilt.of(AGENT, f"anvil:{TOKEN}").entries) == [third.intent_id]


def test_split_topology_token_limit_holds_when_two_intents_interleave():
    """Both pass the assets stage before either is decided: the second is refused when it would
    be reserved, not approved over the limit."""
    w = World()
    asset = {"chain": "anvil", "token": TOKEN, "decimals": 6, "daily_limit": "100"}
    w.publish(w.policy(tx_to_allowlist=(DEST, TOKEN), asset_limits=(asset,)))
    first, second = _token_transfer(w, 60 * 10**6), _token_transfer(w, 60 * 10**6)

    def hop(emits):
        (envelope,) = [e for e in emits if e.topic.startswith(topics.STAGE_PREFIX)]
        return envelope.topic.removeprefix(topics.STAGE_PREFIX), envelope.value

    at = {}
    for intent in (first, second):  # each up to (and through) its assets stage
        stage, raw = hop(asyncio.run(w.engine.on_intake(intent.to_bytes(), w.source(), T0)))
        while stage != "assets":
            stage, raw = hop(asyncio.run(w.engine.on_stage(stage, raw, w.source(topics.stage_topic(stage)), T0)))
        at[intent.intent_id] = hop(asyncio.run(w.engine.on_stage(stage, raw, w.source(topics.stage_topic(stage)), T0)))
    results = {}
    for intent in (first, second):  # then the rest of the stages, one after the other
        stage, raw = at[intent.intent_id]
        while True:
            emits = asyncio.run(w.engine.on_stage(stage, raw, w.source(topics.stage_topic(stage)), T0))
            if not [e for e in emits if e.topic.startswith(topics.STAGE_PREFIX)]:
                results[intent.intent_id] = emits
                break
            stage, raw = hop(emits)
    assert on(results[first.intent_id], topics.INTENTS_APPROVED)
    rejected = rejected_of(results[second.intent_id])
    assert (rejected.stage, rejected.code) == ("assets", "ASSET_DAILY_LIMIT_EXCEEDED")
    assert w.engine.windows.of(AGENT, f"anvil:{TOKEN}").spent(to_us(T0)) == 60 * 10**6
