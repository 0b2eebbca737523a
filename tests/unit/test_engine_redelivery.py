"""Redelivery in the engine: a redelivered intent gets the identical answer, idempotency keys replay
within 24 hours, and the watch sends again only what stays undecided until a worker gives it up.
Simulation is off, no node and no broker, as in test_engine.py."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta
from typing import cast

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.kafka import partition_of
from schemas import topics
from schemas.actions import AuditAction
from schemas.auth import outcome_forgery, sign_outcome
from schemas.codes import Code
from schemas.emit import Emit, Source
from schemas.intent import TransactionIntent
from schemas.outcomes import DeadLetter, IntentAbandoned, IntentOverdue
from schemas.stages import Stage
from sdk.client import Awaited, Outcome, outcome_problem
from tests.engine_support import (
    AGENT,
    DAY,
    DEST,
    ETH,
    OTHER,
    PASSED_CODES,
    SIGNER_ID,
    T0,
    WORKER_ID,
    StaticKeys,
    World,
    actions,
    approved_of,
    assert_approved,
    audits,
    on,
    passed_codes,
    rejected_of,
)


def test_a_redelivered_intent_gets_the_identical_answer_and_reserves_once(world: World) -> None:
    intent = world.intent("0.5")
    first = world.submit(intent)
    (approved,) = on(first, topics.INTENTS_APPROVED)
    spent = world.spent()
    again = world.submit(intent, now=T0 + timedelta(minutes=5))
    assert again == [Emit(topics.INTENTS_APPROVED, AGENT, approved.value)]
    assert world.spent(T0 + timedelta(minutes=5)) == spent == 5 * ETH // 10
    assert list(world.engine.windows.of(AGENT).reservations) == [intent.intent_id]


def test_a_redelivered_rejection_is_the_identical_rejection(world: World) -> None:
    intent = world.intent("1.1")
    (rejected,) = on(world.submit(intent), topics.INTENTS_REJECTED)
    assert world.submit(intent) == [Emit(topics.INTENTS_REJECTED, AGENT, rejected.value)]


def test_idempotency_key_reuse_within_24h_is_an_approved_replay_without_spend(world: World) -> None:
    original = world.intent("0.3", idempotency_key="order-1")
    assert_approved(world.submit(original), original)
    later = T0 + timedelta(hours=23, minutes=59)
    reuse = world.intent("0.3", idempotency_key="order-1", intent_id="i-retry", now=later)
    emits = world.submit(reuse, now=later)
    assert_approved(emits, reuse)
    (verdict,) = [e.details for e in audits(emits) if e.action == AuditAction.STAGE_PASSED]
    assert (verdict["stage"], verdict["code"]) == (Stage.INTAKE, Code.IDEMPOTENT_REPLAY)
    assert verdict["facts"] == {"original_intent_id": original.intent_id}
    assert actions(emits) == [AuditAction.INTENT_SUBMITTED, AuditAction.STAGE_PASSED, AuditAction.INTENT_APPROVED]
    assert world.spent(later) == 3 * ETH // 10
    assert world.engine.decisions["i-retry"].counts is False


def test_idempotency_key_reuse_after_24h_is_a_fresh_intent(world: World) -> None:
    # Broadcast: a sign-only one's spend would still count a day later (test_sign_only_worker_window).
    original = world.intent("0.3", idempotency_key="order-1", broadcast=True)
    world.submit(original)
    at_24h = T0 + DAY
    fresh = world.intent("0.4", idempotency_key="order-1", intent_id="i-next-day", now=at_24h, broadcast=True)
    emits = world.submit(fresh, now=at_24h)
    assert_approved(emits, fresh)
    assert passed_codes(emits) == PASSED_CODES
    assert world.spent(at_24h) == 4 * ETH // 10
    assert world.engine.decisions["i-next-day"].counts is True


def test_idempotency_key_reuse_after_a_rejection_echoes_the_rejection(world: World) -> None:
    original = world.intent("5", idempotency_key="order-2")
    assert rejected_of(world.submit(original)).code == Code.VALUE_OVER_CAP
    reuse = world.intent("5", idempotency_key="order-2", intent_id="i-retry-2")
    rejected = rejected_of(world.submit(reuse))
    assert (rejected.intent_id, rejected.stage, rejected.code) == ("i-retry-2", Stage.VALUE_CAP, Code.VALUE_OVER_CAP)
    assert world.spent() == 0


def test_a_key_reused_for_another_request_is_refused_naming_what_differs_never_answered(world: World) -> None:
    """0.001 ETH to alice under key K, then 0.5 ETH to bob under K: answered with the first's
    approval (and, from the signer, its transaction) bound to its own id and digest, the second
    would get a verified answer about another payment. It is refused, whatever the first's
    outcome, and the fields that differ are named; the same request under K still gets the first's answer."""
    world.publish(world.policy(version=2, tx_to_allowlist=(DEST, OTHER)))
    first = world.intent("0.001", idempotency_key="K")
    assert_approved(world.submit(first), first)
    later = T0 + timedelta(minutes=3)
    other = world.intent("0.5", idempotency_key="K", to=OTHER, intent_id="i-bob", now=later)
    emits = world.submit(other, now=later)
    rejected = rejected_of(emits)
    assert (rejected.intent_id, rejected.intent_digest) == ("i-bob", other.digest())
    assert (rejected.stage, rejected.code) == (Stage.INTAKE, Code.IDEMPOTENCY_KEY_REUSED)
    assert f"by intent {first.intent_id}, for a different request: to, value differ;" in rejected.reason
    assert on(emits, topics.INTENTS_APPROVED) == [] and world.spent(later) == 10**15
    (verdict,) = [e.details for e in audits(emits) if e.action == AuditAction.STAGE_FAILED]
    assert verdict["facts"] == {"original_intent_id": first.intent_id}
    # Remembered: a redelivery gets the same refusal; the first keeps the key.
    assert world.submit(other, now=later) == on(emits, topics.INTENTS_REJECTED)
    fees = world.intent("0.001", idempotency_key="K", max_fee_per_gas=7, max_priority_fee_per_gas=7, now=later)
    assert "max_fee_per_gas, max_priority_fee_per_gas differ" in rejected_of(world.submit(fees, now=later)).reason
    # What differs on each submission of one request (id, times, signature) is not the request.
    retry = world.intent("0.001", idempotency_key="K", now=later, expires_at=later + timedelta(minutes=1))
    assert_approved(world.submit(retry, now=later), retry)
    assert world.engine.decisions[retry.intent_id].counts is False and world.spent(later) == 10**15


def test_a_different_request_is_refused_even_while_the_first_is_undecided(world: World) -> None:
    """The slot is taken at intake, before the first's outcome exists (it waits for an admin, or is
    still being judged): a different request under the key is refused then too, not judged alone."""
    world.publish(world.policy(version=2, approval_threshold_eth="0.4", approval_timeout_s=600))
    first = world.intent("0.5", idempotency_key="K")
    assert on(world.submit(first), topics.INTENTS_AWAITING_APPROVAL)
    small = world.intent("0.1", idempotency_key="K")
    assert rejected_of(world.submit(small)).code == Code.IDEMPOTENCY_KEY_REUSED
    assert first.idempotency_slot is not None
    world.engine.replays.idempotency[first.idempotency_slot].pop("request")  # a slot kept before requests were
    again = rejected_of(world.submit(world.intent("0.5", idempotency_key="K")))
    assert again.code == Code.IDEMPOTENCY_KEY_REUSED and "whose request was not kept" in again.reason


def test_idempotency_keys_are_per_agent(world: World) -> None:
    world.publish(world.policy(agent_id="agent-2"))
    first = world.intent("0.3", idempotency_key="shared")
    world.submit(first)
    other = world.intent("0.3", idempotency_key="shared", agent_id="agent-2")
    emits = world.submit(other, source=world.source(key="agent-2"))
    assert_approved(emits, other)
    assert passed_codes(emits) == PASSED_CODES
    assert world.spent(agent_id="agent-2") == 3 * ETH // 10


def test_redelivery_sends_again_only_what_stays_undecided_and_gives_up_after_its_attempts() -> None:
    from streams.redelivery import Pending

    pending = Pending(grace_us=10, max_attempts=2)
    pending.submitted(("a", "da", "sa"), "agent-1", b"A", now_us=0)
    pending.submitted(("b", "db", "sb"), "agent-1", b"B", now_us=0)
    pending.decided(("a", "da"))
    assert pending.due(now_us=9) == ([], [])
    assert pending.due(now_us=10) == ([("agent-1", b"B")], [])
    assert pending.due(now_us=15) == ([], [])  # not again until another grace period
    assert pending.due(now_us=20) == ([("agent-1", b"B")], [])
    assert pending.due(now_us=30) == ([], [("agent-1", b"B")])  # given up once, then never again
    pending.submitted(("b", "db", "sb"), "agent-1", b"B", now_us=31)
    assert pending.due(now_us=100) == ([], []) and len(pending) == 0


def test_a_stalled_watch_postpones_what_it_watched_and_sends_nothing_it_has_not_read_about() -> None:
    """A worker stopped past its session resumes with its watch's clock far ahead; the outcomes the
    other worker gave meanwhile are still unread, so nothing is due for the length of the stall."""
    from streams.redelivery import Pending

    pending = Pending(grace_us=10)
    pending.submitted(("a", "da", "sa"), "agent-1", b"A", now_us=0)
    pending.submitted(("b", "db", "sb"), "agent-1", b"B", now_us=4)
    pending.postpone(30)  # stopped from 5 to 35
    assert pending.due(now_us=35) == ([], [])  # both would be due without it, neither read about
    pending.decided(("a", "da"))  # the backlog read: the other worker decided A
    assert pending.due(now_us=43) == ([], [])
    assert pending.due(now_us=44) == ([("agent-1", b"B")], [])  # a grace period after it was seen, stall aside


def test_redelivery_finds_every_due_intent_behind_one_sent_again_and_reads_no_further() -> None:
    """The watch keeps its intents in the order they come due and stops at the first that is not
    (a burst's thousands were scanned in full every second): one sent again goes behind those
    still waiting, so it cannot hide them, and a check takes at most ``limit``."""
    from streams.redelivery import Pending

    pending = Pending(grace_us=10)
    pending.submitted(("a", "da", "sa"), "agent-1", b"A", now_us=0)
    pending.submitted(("b", "db", "sb"), "agent-1", b"B", now_us=5)
    assert pending.due(now_us=10) == ([("agent-1", b"A")], [])
    assert pending.due(now_us=15) == ([("agent-1", b"B")], [])  # behind A, sent again at 10 and not due
    for n in range(5):
        pending.submitted((f"c{n}", "dc", f"sc{n}"), "agent-2", b"C%d" % n, now_us=16 + n)
    assert pending.due(now_us=30, limit=3) == ([("agent-1", b"A"), ("agent-1", b"B"), ("agent-2", b"C0")], [])
    assert pending.due(now_us=30, limit=3) == ([("agent-2", b"C1"), ("agent-2", b"C2"), ("agent-2", b"C3")], [])
    assert pending.due(now_us=30) == ([("agent-2", b"C4")], [])


def test_redelivery_watches_only_what_the_worker_can_read_and_a_dead_letter_ends_the_watch(world: World) -> None:
    from streams.redelivery import outcome_about, watched_intent

    good = world.intent("0.1")
    sent = hashlib.sha256(good.to_bytes()).hexdigest()
    assert watched_intent(good.to_bytes(), 65_536, partition_of(AGENT)) == (
        (good.intent_id, good.digest(), sent),
        AGENT,
    )
    doc = orjson.loads(good.to_bytes())
    for bad in (
        orjson.dumps({**doc, "agent_id": ["a", "list"]}),
        orjson.dumps({**doc, "agent_id": None}),
        orjson.dumps({**doc, "data": "0x" + "ab" * 40_000}),
        b"{",
        None,
    ):
        assert watched_intent(bad, 65_536, partition_of(AGENT)) is None
    assert watched_intent(good.to_bytes(), 100, partition_of(AGENT)) is None  # over the size limit
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


def test_the_watch_ends_only_for_the_very_intent_an_outcome_is_about(world: World) -> None:
    """A topic writer's edited copy of an intent (same id, so it is readable, its agent signature
    broken) is refused AGENT_SIGNATURE_INVALID by the worker, signed and with the copy's digest.
    Were that authentic refusal to end the watch of the id, real intent included, nothing would
    send the real one again had the worker skipped it. Each (id, digest) is watched and ends on
    its own; the copy seen first does not displace the real one either."""
    from streams.redelivery import Pending, outcome_about, watched_intent

    world.publish(world.policy())
    real = world.intent("0.1")
    copy = world.intent(
        "0.2", intent_id=real.intent_id, key=Ed25519PrivateKey.generate()
    )  # edited: re-signed by nobody
    pending = Pending(grace_us=10)
    for intent in (copy, real):
        watched = watched_intent(intent.to_bytes(), 65_536, partition_of(AGENT))
        assert watched is not None
        about, key = watched
        pending.submitted(about, key, intent.to_bytes(), now_us=0)
    refused = rejected_of(world.submit(copy))
    assert (refused.intent_id, refused.code, refused.signed_by) == (
        real.intent_id,
        Code.AGENT_SIGNATURE_INVALID,
        WORKER_ID,
    )
    refused_about = outcome_about(topics.INTENTS_REJECTED, refused.to_bytes(), world.pinned())
    assert refused_about is not None
    pending.decided(refused_about)
    assert pending.due(now_us=10) == ([(AGENT, real.to_bytes())], [])
    # The real intent's own outcome ends its watch.
    approved_about = outcome_about(topics.INTENTS_APPROVED, approved_of(world.submit(real)).to_bytes(), world.pinned())
    assert approved_about is not None
    pending.decided(approved_about)
    assert len(pending) == 0


def test_an_intent_off_its_agents_partition_is_dead_lettered_never_decided(world: World) -> None:
    """With two workers, another partition may be another worker's, without the agent's policy or
    decisions: a copy of a real intent re-keyed there was rejected POLICY_MISSING, signed and bound
    to the real intent's digest, while the real one was signed (seen on a two-worker stack). Off
    its partition an intent gets a dead letter, not an outcome, and the watch of the real intent
    goes on."""
    from streams.redelivery import outcome_about

    world.engine = world.new_engine({}, {}, home_partition=partition_of)
    world.publish(world.policy())
    intent = world.intent("0.1")
    home = partition_of(AGENT)
    elsewhere = Source(topics.INTENTS_SUBMITTED, (home + 1) % topics.PARTITIONS, 9, b"someone-else")
    for emits in (
        world.submit(intent, source=elsewhere),
        world.engine.on_overdue(
            world.overdue(intent), dataclasses.replace(elsewhere, topic=topics.INTENTS_OVERDUE), T0
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


def test_an_intent_dead_lettered_off_its_partition_is_never_published_again(world: World) -> None:
    """Produced to the wrong partition, an intent was dead-lettered "Not decided: publish it keyed
    by its agent id", and 10 s later the redelivery watch published it again keyed by its agent
    (it watched the record, and the dead letter of a copy off the partition does not end a watch):
    approved and mined, and a client that obeyed the dead letter paid twice. A dead letter is
    final: only records on their agent's partition are watched."""
    from streams.redelivery import Pending, watched_intent

    world.engine = world.new_engine({}, {}, home_partition=partition_of)
    world.publish(world.policy())
    intent = world.intent("0.1")
    home = partition_of(AGENT)
    elsewhere = Source(topics.INTENTS_SUBMITTED, (home + 1) % topics.PARTITIONS, 9, AGENT.encode())
    (letter,) = on(world.submit(intent, source=elsewhere), topics.DLQ)
    assert "never retried (a dead letter is final)" in DeadLetter.from_bytes(letter.value).reason
    pending = Pending(grace_us=10)
    assert watched_intent(intent.to_bytes(), 65_536, elsewhere.partition) is None
    assert pending.due(now_us=1_000) == ([], []) and len(pending) == 0
    # The client publishes it again keyed by its agent: that record is watched, and decided.
    watched = watched_intent(intent.to_bytes(), 65_536, home)
    assert watched is not None
    about, key = watched
    pending.submitted(about, key, intent.to_bytes(), now_us=1_000)
    assert approved_of(world.submit(intent)).intent == intent and len(pending) == 1


def test_the_watch_believes_the_bytes_this_worker_published_and_verifies_everything_else(world: World) -> None:
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


def test_an_overdue_intent_is_given_up_to_the_signer_unless_it_was_decided(world: World) -> None:
    """The worker publishes no refusal of an intent it gives up (the signer has the last word on
    it, tests/unit/test_signer_abandoned.py): it hands the signer its own `IntentAbandoned` and
    remembers it, judging it no further. An intent it decided gets nothing more."""
    decided = world.intent("0.1")
    approved = approved_of(world.submit(decided))
    assert world.engine.on_overdue(world.overdue(decided), world.source(topics.INTENTS_OVERDUE), T0) == []
    lost = world.intent("0.2")
    emits = world.engine.on_overdue(world.overdue(lost), world.source(topics.INTENTS_OVERDUE), T0)
    assert [e.topic for e in emits] == [topics.INTENTS_ABANDONED, topics.AUDIT_EVENTS]
    abandoned = IntentAbandoned.from_bytes(emits[0].value)
    assert (abandoned.intent, abandoned.attempts, abandoned.signed_by) == (lost, 3, WORKER_ID)
    assert outcome_forgery(abandoned, world.pinned(), lost.digest()) is None
    assert world.engine.decisions[lost.intent_id].outcome == "abandoned"
    # A late copy of the lost intent asks the signer again, never is approved; nothing was reserved.
    assert world.submit(lost) == [Emit(topics.INTENTS_ABANDONED, AGENT, emits[0].value)]
    assert world.spent() == 10**17 and approved_of(world.submit(decided)) == approved


def test_an_intent_the_worker_rejected_is_never_given_up_however_late_the_watch_reads(world: World) -> None:
    """A broker that stopped held the worker's rejections back from the redelivery watch for
    longer than its 40 s: it found 57 rejected intents overdue, and the signer, which never sees a
    worker's rejection, refused each NO_OUTCOME too, two outcomes an intent (CI, three Kafka
    nodes, the busy leader SIGSTOPped). Only the worker knows what it rejected: an overdue intent
    it decided, rejected or parked, is given up to nobody."""
    world.publish(world.policy(2, approval_threshold_eth="0.4", approval_timeout_s=600))
    over = world.intent("2")  # over the 1 ETH cap
    refusal = rejected_of(world.submit(over))
    parked = world.intent("0.5")
    assert on(world.submit(parked), topics.INTENTS_AWAITING_APPROVAL)
    for intent in (over, parked):
        assert world.engine.on_overdue(world.overdue(intent), world.source(topics.INTENTS_OVERDUE), T0) == []
    assert rejected_of(world.submit(over)) == refusal  # its one outcome, again


def _forged_overdues(world: World, intent: TransactionIntent) -> dict[str, tuple[str, bytes]]:
    """What a topic writer can put on warden.intents.overdue, with what its dead letter says."""
    record = IntentOverdue.from_bytes(world.overdue(intent))
    unsigned = record.model_copy(update={"service_signature": "00" * 64})
    return {
        "a copy of the intent, not an IntentOverdue": ("invalid IntentOverdue", intent.to_bytes()),
        "a worker's abandonment of it": (
            "invalid IntentOverdue",
            sign_outcome(
                IntentAbandoned(intent=intent, attempts=3, abandoned_at=T0, intent_digest=intent.digest()),
                world.worker_key,
                WORKER_ID,
            ).to_bytes(),
        ),
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


@pytest.mark.parametrize("forgery", list(_forged_overdues(World(), World().intent())))
def test_only_a_worker_gives_an_intent_up(world: World, forgery: str) -> None:
    """A topic writer who copies a real intent onto warden.intents.overdue before the worker
    reads it would have it given up, and one who writes an intent of its own under an id an
    agent will use (idempotent ids can be computed) would have the real one refused
    INTENT_ID_REUSED. Only an IntentOverdue a pinned worker signed decides: the rest is
    dead-lettered."""
    world.publish(world.policy())
    intent = world.intent("0.5")
    reason, raw = _forged_overdues(world, intent)[forgery]
    emits = world.engine.on_overdue(raw, world.source(topics.INTENTS_OVERDUE), T0)
    assert [e.topic for e in emits] == [topics.DLQ, topics.AUDIT_EVENTS]
    letter = DeadLetter.from_bytes(emits[0].value)
    assert reason in letter.reason and "not decided" in letter.reason, letter.reason
    assert world.engine.decisions == {}
    assert_approved(world.submit(intent), intent)


def test_an_overdue_intent_its_agent_did_not_sign_is_answered_not_remembered(world: World) -> None:
    """The redelivery task watches whatever readable intent is submitted, forgeries included. If
    the worker gives one up, it answers as intake would (AGENT_SIGNATURE_INVALID), bound to the
    forgery's bytes and not remembered: the agent's own intent with that id, which has the same
    digest (the digest leaves the signature out), is still decided, and its client never takes
    the forgery's refusal for its own."""
    world.publish(world.policy())
    forged = world.intent("0.5", key=Ed25519PrivateKey.generate(), intent_id="i-predictable")
    real = world.intent("0.5", intent_id="i-predictable")
    assert forged.digest() == real.digest()  # same fields, another signature
    rejected = rejected_of(world.engine.on_overdue(world.overdue(forged), world.source(topics.INTENTS_OVERDUE), T0))
    assert (rejected.code, rejected.intent_digest) == (
        Code.AGENT_SIGNATURE_INVALID,
        hashlib.sha256(forged.to_bytes()).hexdigest(),
    )
    # In intake's own words (the judge's), not a second phrasing of the same refusal.
    assert rejected.reason == rejected_of(world.submit(forged.to_bytes())).reason
    assert outcome_problem(rejected, Awaited.of(real), world.pinned()) is not None
    assert_approved(world.submit(real), real)


def test_a_copy_under_a_bad_signature_is_refused_under_its_own_bytes_and_watched_on_its_own(world: World) -> None:
    """The intent's digest leaves its signature out, so a copy of a real intent's fields under a
    bad signature (a topic writer who learned them first) has the real intent's digest. Written
    before the real one, its AGENT_SIGNATURE_INVALID is bound to the copy's bytes: the real
    intent's client does not take it for its own answer (it is told nothing false), the copy's
    producer does, the real intent is still decided, and each is watched until its own answer."""
    from streams.redelivery import Pending, outcome_about, watched_intent

    world.publish(world.policy())
    real = world.intent("0.1")
    copy = real.model_copy(update={"signature": "ab" * 64})
    assert copy.digest() == real.digest() and copy.to_bytes() != real.to_bytes()
    pending = Pending(grace_us=10)
    for intent in (copy, real):
        watched = watched_intent(intent.to_bytes(), 65_536, partition_of(AGENT))
        assert watched is not None
        about, key = watched
        pending.submitted(about, key, intent.to_bytes(), now_us=0)
    assert len(pending) == 2
    refused = rejected_of(world.submit(copy))
    assert refused.code == Code.AGENT_SIGNATURE_INVALID
    assert refused.intent_digest == hashlib.sha256(copy.to_bytes()).hexdigest() != real.digest()
    keys = world.pinned()
    assert str(outcome_problem(refused, Awaited.of(real), keys)) == (
        "it is about another intent with the same id (intent_digest differs)"
    )
    assert outcome_problem(refused, Awaited.of(copy), keys) is None
    # The copy's refusal ends the copy's watch only.
    refused_about = outcome_about(topics.INTENTS_REJECTED, refused.to_bytes(), keys)
    assert refused_about is not None
    pending.decided(refused_about)
    assert pending.due(now_us=10) == ([(AGENT, real.to_bytes())], [])
    approved = approved_of(world.submit(real))
    # outcome_problem is typed for the outcomes a client is answered with; it reads an approval alike.
    assert outcome_problem(cast(Outcome, approved), Awaited.of(real), keys) is None
    approved_about = outcome_about(topics.INTENTS_APPROVED, approved.to_bytes(), keys)
    assert approved_about is not None
    pending.decided(approved_about)
    assert len(pending) == 0
