"""A throughput rule: one parse and one signature verification per process per
intent. The streams worker's engine reads each submitted record into one TransactionIntent and
checks the agent's Ed25519 signature once, however many stages judge it; the signer reads each
approval once (the intent and its policy inside it come with it) and checks the agent's
signature once. A second parse or check slipped into a stage would cost every intent, and
fails here.

One exception, by design: the worker process's redelivery watch (streams/redelivery.py) reads
each submitted record again (~14 µs here) to learn its intent and agent ids. It exists to
catch the records the engine never saw, so it cannot take the engine's parse.

Parses are counted at pydantic's two entry points (``model_validate`` and
``model_validate_json``, which every ``from_bytes`` goes through); verifications at
``schemas.auth._verify``, which every Ed25519 check of an intent, policy or approval calls.
The signer signs on the session stack's Anvil (its nonces), as in production.
"""

from __future__ import annotations

import collections
from datetime import timedelta

import pytest

from schemas import topics
from schemas.emit import Emit
from tests.engine_support import INTENTS, T0, World, counting, on


def test_the_worker_parses_and_verifies_each_intent_once() -> None:
    world = World()
    world.publish(world.policy())
    # The first intent under a policy reads the policy out of the worker's table (then held by
    # its bytes): a cost per policy, not per intent.
    world.submit(world.intent(value="0"))
    intents = [world.intent(value="0.01", now=T0 + timedelta(seconds=i)) for i in range(INTENTS)]
    raws = [intent.to_bytes() for intent in intents]
    with pytest.MonkeyPatch.context() as patch:
        calls = counting(patch)
        approved: list[Emit] = []
        for i, raw in enumerate(raws):
            emits = world.submit(raw, now=T0 + timedelta(seconds=i))
            approved += on(emits, topics.INTENTS_APPROVED)
    assert len(approved) == INTENTS  # every intent went through every stage
    assert calls == collections.Counter(
        {"parse TransactionIntent": INTENTS, **{f"verify {intent.signing_bytes()!r}": 1 for intent in intents}}
    ), calls
