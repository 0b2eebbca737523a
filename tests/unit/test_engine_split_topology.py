"""The engine in the split topology: each stage worker hands its envelope to the next, reaches the
outcome the fused worker reaches, and believes an envelope only from its own worker for that
stage and partition. Simulation is off, no node and no broker, as in test_engine.py."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rules.stage_table import IntentKind, stages_for
from runtime.config import Settings
from runtime.kafka import partition_of
from runtime.trust import PinnedServiceKeys, service_key
from schemas import topics
from schemas.actions import AuditAction
from schemas.auth import sign_outcome
from schemas.emit import Emit, Source
from schemas.intent import TransactionIntent
from schemas.outcomes import DeadLetter, StageEnvelope
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from streams.engine import Engine
from tests.engine_support import AGENT, ETH, OTHER, SIGNER_ID, T0, WORKER_ID, World, actions, assert_approved, on

# The stages of an EVM transaction, in order.
GUARDRAIL_STAGES = stages_for(IntentKind.TRANSACTION)


def _run_split(engine: Engine, raw: bytes, source: Source, now: datetime) -> tuple[list[Emit], list[Stage], list[Emit]]:
    """Feed an intent through on_intake and then on_stage hop by hop, as the split topology does.
    Returns the non-envelope emits, the stages visited and the envelopes written."""
    emits = asyncio.run(engine.on_intake(raw, source, now))
    out: list[Emit] = []
    visited: list[Stage] = []
    written: list[Emit] = []
    while True:
        envelopes = [e for e in emits if e.topic.startswith(topics.STAGE_PREFIX)]
        out += [e for e in emits if not e.topic.startswith(topics.STAGE_PREFIX)]
        if not envelopes:
            return out, visited, written
        (envelope,) = envelopes
        assert envelope.key == AGENT
        written.append(envelope)
        stage = Stage(envelope.topic.removeprefix(topics.STAGE_PREFIX))
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
def test_split_topology_reaches_the_same_outcome_as_fused(
    intent_fields: dict[str, Any], expect_stages: list[str], outcome: str
) -> None:
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


def test_on_intake_hands_the_intent_to_the_chain_stage(world: World) -> None:
    intent = world.intent("0.5")
    emits = asyncio.run(world.engine.on_intake(intent.to_bytes(), world.source(), T0))
    assert [e.topic for e in emits] == [topics.AUDIT_EVENTS, topics.stage_topic("chain")]
    assert actions(emits) == [AuditAction.INTENT_SUBMITTED]
    envelope = orjson.loads(emits[1].value)
    assert TransactionIntent.model_validate(envelope["intent"]) == intent
    assert AgentPolicy.model_validate(envelope["policy"]) == world.policy()
    assert envelope["verdicts"] == []
    assert world.engine.decisions == {} and world.spent() == 0


def test_a_redelivered_stage_envelope_replays_the_decision(world: World) -> None:
    intent = world.intent("0.5")
    out, _, written = _run_split(world.engine, intent.to_bytes(), world.source(), T0)
    (approved,) = on(out, topics.INTENTS_APPROVED)
    for envelope in written:
        stage = Stage(envelope.topic.removeprefix(topics.STAGE_PREFIX))
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
                real_policy.model_copy(update={"stage": Stage.DAILY_LIMIT}), world.worker_key, WORKER_ID
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
def test_a_stage_envelope_decides_only_when_its_worker_wrote_it_for_that_stage_and_partition(
    world: World, forgery: str
) -> None:
    """The stage trusts the envelope's policy and verdicts: one a topic writer made, edited,
    addressed to another stage or re-keyed is dead-lettered with why, decides nothing and binds
    nothing to the intent; the real intent, after it, is approved."""
    world.engine = world.new_engine({}, {}, home_partition=partition_of)  # as the topology wires it
    world.publish(world.policy())
    intent = world.intent("0.5")
    reason, raw, partition = _forged_envelopes(world, intent)[forgery]
    source = Source(topics.stage_topic("chain"), partition, 7, AGENT.encode())
    emits = asyncio.run(world.engine.on_stage(Stage.CHAIN, raw, source, T0))
    assert [e.topic for e in emits] == [topics.DLQ, topics.AUDIT_EVENTS]
    letter = DeadLetter.from_bytes(emits[0].value)
    assert reason in letter.reason and "not decided" in letter.reason.lower(), letter.reason
    assert (letter.source_topic, letter.partition, letter.intent_digest) == (source.topic, partition, None)
    assert world.engine.decisions == {}
    out, visited, _ = _run_split(world.engine, intent.to_bytes(), world.source(), T0)
    assert visited == list(GUARDRAIL_STAGES)
    assert_approved(out, intent)


def test_a_stage_envelope_from_a_worker_started_a_moment_ago_is_believed(world: World, tmp_path: Path) -> None:
    """With the local services' key files as the pinned keys, an unknown worker key id is looked
    up at once: a second worker's first envelope, a moment after this worker read the files,
    would otherwise be dead-lettered for good and its intent left without an outcome."""
    settings = Settings(home=tmp_path)
    first = service_key(dataclasses.replace(settings, worker_id="streams-0"), "worker")
    world.engine = world.new_engine({}, {}, service_keys=PinnedServiceKeys(settings))
    world.publish(world.policy())
    earlier = world.intent("0.5")
    raw = sign_outcome(
        StageEnvelope(stage="chain", intent=earlier, policy=world.policy(), intent_digest=earlier.digest()),
        first[1],
        first[0],
    ).to_bytes()
    assert (
        on(
            asyncio.run(world.engine.on_stage(Stage.CHAIN, raw, world.source(topics.stage_topic("chain")), T0)),
            topics.DLQ,
        )
        == []
    )  # read the key files just now
    second = service_key(dataclasses.replace(settings, worker_id="streams-1"), "worker")
    intent = world.intent("0.5")
    raw = sign_outcome(
        StageEnvelope(stage="chain", intent=intent, policy=world.policy(), intent_digest=intent.digest()),
        second[1],
        second[0],
    ).to_bytes()
    emits = asyncio.run(world.engine.on_stage(Stage.CHAIN, raw, world.source(topics.stage_topic("chain")), T0))
    assert on(emits, topics.DLQ) == [], DeadLetter.from_bytes(on(emits, topics.DLQ)[0].value).reason
    assert on(emits, topics.stage_topic("allowlist"))
