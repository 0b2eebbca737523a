"""The engine (streams/engine.py) on records it cannot read: each goes to the dead-letter topic, is
answered under its own bytes or its key when it can be, and the engine keeps going. Simulation is
off, no node and no broker, as in test_engine.py."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any, cast

import orjson
import pytest

from schemas import topics
from schemas.actions import AuditAction
from schemas.auth import outcome_forgery, sign_outcome
from schemas.codes import Code
from schemas.emit import Source
from schemas.intake import NEXT_STEP
from schemas.outcomes import DeadLetter
from schemas.stages import Stage
from tests.engine_support import (
    AGENT,
    DEST,
    ETH,
    WORKER_ID,
    World,
    approved_of,
    assert_approved,
    audits,
    on,
    rejected_of,
)


def _good_doc(world: World) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(world.intent("0.5", intent_id="i-bad").to_bytes())
    return doc


def _mutated(**changes: Any) -> Callable[[World], bytes]:
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
def test_an_unreadable_record_goes_to_the_dlq_and_the_engine_keeps_going(
    world: World, build: Callable[[World], bytes | None], says: str, readable_ids: bool
) -> None:
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
    assert (event.action, event.resource) == (AuditAction.DLQ_RECORDED, f"record:{topics.INTENTS_SUBMITTED}/2/77")
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
        Stage.INTAKE,
        Code.INVALID_INTENT,
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


def test_the_record_size_limit_is_the_engine_setting() -> None:
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


def test_an_unreadable_intent_is_answered_under_its_bytes_and_never_decides_its_id(world: World) -> None:
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
        Code.INVALID_INTENT,
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
    assert world.engine.decisions["i-later"].outcome == "approved"
    assert approved_of(world.submit(real)) == approved  # still its replay, reserved once
    assert world.spent() == 5 * ETH // 10


def test_a_record_naming_no_agent_is_answered_to_its_key_if_it_is_one_else_only_dead_lettered(world: World) -> None:
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
    assert broken.intent_digest is not None
    assert (broken.agent_id, broken.intent_id) == (AGENT, "unreadable-" + broken.intent_digest[:32])

    # No key, or one that is no identifier: nobody to answer; the dead letter and its audit event remain.
    for key in (None, b"not an agent!", b"\xff\xfe"):
        emits = world.submit(not_json, source=Source(topics.INTENTS_SUBMITTED, 0, 1, key))
        assert [e.topic for e in emits] == [topics.DLQ, topics.AUDIT_EVENTS], key
    assert world.engine.decisions == {}


def test_the_sdk_names_and_believes_the_answer_to_the_bytes_it_sent(world: World) -> None:
    """`sdk.client` predicts how the worker names an unreadable record's rejection (agent,
    intent id, digest of the bytes sent) and believes it only under the digest of those bytes;
    every other outcome only under the intent's digest."""
    from sdk.client import Awaited, Outcome, outcome_problem, raw_submission

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
    # outcome_problem is typed for the outcomes a client is answered with; it reads an approval alike.
    approved = cast(Outcome, approved_of(world.submit(good)))
    assert (sent.intent_id, sent.intent_digest) == (good.intent_id, good.digest())
    assert outcome_problem(approved, Awaited.of(sent), pinned) is None

    # Each digest answers only for its kind of outcome: an INVALID_INTENT under the intent's digest
    # (a topic writer's record made of an intent's signing bytes) and any other outcome under the
    # digest of the bytes sent are refused, even signed by the worker.
    as_intent = sign_outcome(
        rejected.model_copy(update={"intent_digest": unread.digest()}), world.worker_key, WORKER_ID
    )
    assert "intent_digest differs" in str(outcome_problem(as_intent, Awaited.of(unread), pinned))
    wire = hashlib.sha256(good.to_bytes()).hexdigest()
    other = sign_outcome(approved.model_copy(update={"intent_digest": wire}), world.worker_key, WORKER_ID)
    assert "intent_digest differs" in str(outcome_problem(other, Awaited.of(good), pinned))
    unreadable_only = Awaited.of(raw_submission(AGENT, records[0], world.max_record_bytes))
    assert "only an INVALID_INTENT" in str(outcome_problem(approved, unreadable_only, pinned))
