"""Redelivery: an intent that has no outcome after a grace period is submitted again, a few
times, and then given up so that it still ends with an outcome.

Why it exists: a worker that is killed and restarted must not leave an input record it never
decided behind it, whatever the broker and the consumer's offsets did meanwhile; this is the net
for any such record. Nothing may be lost, so every worker watches the submitted intents against
the outcome topics and re-publishes the original bytes of any intent still undecided after ``grace``. That is safe because every effect downstream is
idempotent by intent id: the worker replays a decision it already made, and the
signer re-emits the bytes it already signed.

It must never become the problem it solves:

- only readable intents within the size limit, on their agent's partition, are watched (the
  same rules the worker's intake applies): anything else is dead-lettered by the worker, and a
  dead letter is final. Re-publishing an intent produced to another partition keyed by its
  agent, after its dead letter told the client "Not decided: publish it keyed by its agent id",
  would sign it for a client that did so too, who would pay twice. A dead letter about a watched intent
  ends its watch too, unless it is of a copy off the agent's partition (the worker decides an
  intent only on its own, and such a copy says nothing of the one on it);
- each intent is re-published at most ``max_attempts`` times; after that it goes to
  ``warden.intents.overdue`` (an `IntentOverdue`, signed with the worker's key: only a worker
  asks), where the worker that owns its partition gives it up unless it decided it (a decision
  this watch has not read yet, behind a broker that stopped, is still a decision), and the
  signer refuses what was given up ``NO_OUTCOME`` unless it decided it already (and then signs
  no approval of it), so the client is told one thing, and the truth;
- a record the producer cannot send is logged and dropped from the watch, never raised.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from runtime.clock import US_PER_SECOND, utcnow
from runtime.config import Settings
from runtime.kafka import follow_records, partition_of
from runtime.kafka import service_producer as new_producer
from runtime.registry import REGISTRY
from runtime.trust import PinnedServiceKeys
from schemas import topics
from schemas.auth import ServiceKeys, outcome_forgery, sign_outcome
from schemas.intake import Unreadable, read_intent
from schemas.outcomes import DeadLetter, IntentApproved, IntentOverdue, IntentParked, IntentRejected

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

log = logging.getLogger("warden.redelivery")


class Pending:
    """Intents seen on the submitted topic and not yet on an outcome topic (pure, time is an argument).

    A record is watched as (intent_id, digest, sent): the intent's digest and the SHA-256 of the
    bytes it came in. Records with the same id and other contents (a topic writer's edited copy),
    or with the same contents under another signature (a copy whose digest is the real intent's:
    the digest leaves the signature out), are watched, and end, on their own: an outcome bound to
    an intent's digest ends every record of it, and one bound to the bytes sent (the worker's
    AGENT_SIGNATURE_INVALID and INVALID_INTENT) ends only the record that came in those bytes."""

    def __init__(self, grace_us: int, max_attempts: int = 3):
        self.grace_us = grace_us
        self.max_attempts = max_attempts
        # (intent_id, sent) -> (last sent at µs, key, raw record, times re-published), in the order
        # they come due: by when first seen or last sent, the oldest first (``now_us`` never goes
        # back). So a check reads only what is due, not every watched intent: a burst's thousands,
        # read ahead of the worker, scanned in full every second, cost the watch much of its CPU.
        self._waiting: dict[tuple[str, str], tuple[int, str, bytes, int]] = {}
        self._digests: dict[str, dict[str, str]] = {}  # intent_id -> {sent: intent digest} of those waiting
        self._decided: set[tuple[str, str]] = set()  # (intent_id, digest or sent) outcomes were bound to

    def submitted(self, watched: tuple[str, str, str], key: str, raw: bytes, now_us: int) -> None:
        intent_id, digest, sent = watched
        if (intent_id, digest) in self._decided or (intent_id, sent) in self._decided:
            return
        if (intent_id, sent) not in self._waiting:
            self._waiting[(intent_id, sent)] = (now_us, key, raw, 0)
            self._digests.setdefault(intent_id, {})[sent] = digest

    def decided(self, about: tuple[str, str]) -> None:
        """An outcome bound to ``about`` (intent_id, the digest it carries) was seen: every record
        of that id whose intent digest, or whose bytes' digest, it is, is no longer watched."""
        self._decided.add(about)
        intent_id, bound = about
        records = self._digests.get(intent_id, {})
        for sent, digest in list(records.items()):
            if bound in (sent, digest):
                del records[sent]
                self._waiting.pop((intent_id, sent), None)
        if not records:
            self._digests.pop(intent_id, None)

    def due(self, now_us: int, limit: int = 1000) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
        """(records to send again, records to give up on). Each comes due again only after
        another grace period; one already sent ``max_attempts`` times is given up, once."""
        again: list[tuple[str, bytes]] = []
        give_up: list[tuple[str, bytes]] = []
        due: list[tuple[tuple[str, str], tuple[int, str, bytes, int]]] = []
        for intent, waiting in self._waiting.items():
            if now_us - waiting[0] < self.grace_us or len(due) >= limit:
                break  # and so is every one after it
            due.append((intent, waiting))
        for intent, (_, key, raw, attempts) in due:
            if attempts >= self.max_attempts:
                self.decided(intent)  # the owner's decision, or the signer's NO_OUTCOME, ends it
                give_up.append((key, raw))
            else:
                del self._waiting[intent]  # to the end: due again last
                self._waiting[intent] = (now_us, key, raw, attempts + 1)
                again.append((key, raw))
        return again, give_up

    def postpone(self, by_us: int) -> None:
        """Every watched intent comes due ``by_us`` later: for that long the watch read nothing (its
        process was stopped or starved), so it cannot tell an intent without an outcome from one
        whose outcome it has not read yet. Order is kept: every one moves by the same amount."""
        self._waiting = {
            intent: (at + by_us, key, raw, attempts) for intent, (at, key, raw, attempts) in self._waiting.items()
        }

    def __len__(self) -> int:
        return len(self._waiting)


def watched_intent(raw: bytes | None, max_bytes: int, partition: int) -> tuple[tuple[str, str, str], str] | None:
    """((intent_id, digest, sent), agent_id) of a submitted record worth watching: one the worker
    can read (``sent``: the SHA-256 of its bytes), read on its agent's partition (``partition``:
    where it was read). Anything else is dead-lettered by the worker, and that is its outcome.
    Read against the networks in force in this process, which is the worker's."""
    intent = read_intent(raw, max_bytes, REGISTRY)
    if raw is None or isinstance(intent, Unreadable) or partition != partition_of(intent.agent_id):
        return None  # (a null record is Unreadable; named for the checker, which hashes it below)
    return (intent.intent_id, intent.digest(), hashlib.sha256(raw).hexdigest()), intent.agent_id


def overdue_record(
    raw: bytes, max_bytes: int, attempts: int, now: datetime, service_key: tuple[str, Ed25519PrivateKey]
) -> bytes:
    """What goes to ``warden.intents.overdue`` for a watched intent still without an outcome after
    its last attempt: the intent, signed by this worker (`IntentOverdue`). Only readable intents
    are watched."""
    intent = read_intent(raw, max_bytes, REGISTRY)
    if isinstance(intent, Unreadable):
        raise ValueError(f"only readable intents are watched, and this one is not: {intent.reason}")
    key_id, key = service_key
    return sign_outcome(
        IntentOverdue(intent=intent, attempts=attempts, overdue_at=now, intent_digest=intent.digest()), key, key_id
    ).to_bytes()


_OUTCOMES: dict[str, type[IntentApproved | IntentRejected | IntentParked | DeadLetter]] = {
    topics.INTENTS_APPROVED: IntentApproved,
    topics.INTENTS_REJECTED: IntentRejected,
    topics.INTENTS_AWAITING_APPROVAL: IntentParked,
    topics.DLQ: DeadLetter,
}


class Published:
    """The approvals, rejections and parkings this worker signed and published itself, by the
    SHA-256 of their bytes. The watch reads each of them back, and parsing and verifying one costs
    ~230 us (an approval carries the intent and its policy); a record byte for byte one this
    worker signed is authentic, so a digest lookup settles it. Anything else, another worker's
    records included, is verified as before. Bounded: past ``limit`` the oldest digests are
    forgotten, and a record whose digest was forgotten is verified."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._digests: dict[bytes, None] = {}  # insertion-ordered: the oldest first

    def add(self, value: bytes) -> None:
        self._digests[hashlib.sha256(value).digest()] = None
        if len(self._digests) > self.limit:
            del self._digests[next(iter(self._digests))]

    def take(self, value: bytes) -> bool:
        """True (once) if this worker published exactly these bytes."""
        digest = hashlib.sha256(value).digest()
        if digest not in self._digests:
            return False
        del self._digests[digest]
        return True


# The outcome topics whose records name their intent (a dead letter names it inside its payload,
# and is always verified).
PUBLISHED_OUTCOMES = frozenset(_OUTCOMES) - {topics.DLQ}


def outcome_about(
    topic: str, value: bytes, keys: ServiceKeys, published: Published | None = None
) -> tuple[str, str] | None:
    """(intent_id, digest) of the intent an authentic outcome record (approval, rejection,
    parking, dead letter) is about, if it names one. Anyone who can write to these topics could
    otherwise end the watch of an intent with a forged record and leave it without an outcome:
    only records a pinned worker or signer key signed count, or records this worker published
    itself (``published``); and only about the very intent watched, by its digest."""
    if published is not None and topic in PUBLISHED_OUTCOMES and published.take(value):
        body = orjson.loads(value)
        intent_id = body["intent"]["intent_id"] if topic == topics.INTENTS_APPROVED else body["intent_id"]
        return intent_id, body["intent_digest"]
    try:
        record = _OUTCOMES[topic].from_bytes(value)
    except (ValidationError, ValueError):
        return None
    if outcome_forgery(record, keys) is not None:
        return None
    if not isinstance(record, DeadLetter):
        return None if record.intent_digest is None else (record.intent_id, record.intent_digest)
    # A dead letter of a watched intent carries all of it (a watched intent is within the size
    # limit, and so is a dead letter's payload): the worker failed on that very record.
    try:
        payload = base64.b64decode(record.payload_b64)
    except ValueError:
        return None
    if record.payload_bytes is not None and len(payload) != record.payload_bytes:
        return None
    intent = read_intent(payload, len(payload), REGISTRY)
    if isinstance(intent, Unreadable):
        return None
    if record.source_topic in (topics.INTENTS_SUBMITTED, topics.INTENTS_OVERDUE) and record.partition != partition_of(
        intent.agent_id
    ):
        # A copy off its agent's partition, dead-lettered there (streams.engine, _off_partition):
        # it says nothing of the intent on its own partition, whose watch goes on.
        return None
    return intent.intent_id, intent.digest()


# Longer than this between two records (`follow_records` yields at least every 200 ms, idle or not), the
# watch itself was stalled, not the pipeline.
STALL_US = 2 * US_PER_SECOND


async def run_redelivery(
    settings: Settings,
    service_key: tuple[str, Ed25519PrivateKey],
    grace_s: float = 10.0,
    max_attempts: int = 3,
    published: Published | None = None,
) -> None:
    def now_us() -> int:
        # Monotonic: `Pending` keeps its intents in the order they come due, and a wall clock
        # stepped back would put later ones first.
        return time.monotonic_ns() // 1_000

    pending = Pending(int(grace_s * US_PER_SECOND), max_attempts)
    keys = PinnedServiceKeys(settings)
    producer = new_producer(settings)
    await producer.start()
    last_check = last_read = now_us()
    try:
        # A parked intent has its (non-final) outcome: the worker decides the rest, expiry included.
        watched = (
            topics.INTENTS_SUBMITTED,
            topics.INTENTS_APPROVED,
            topics.INTENTS_REJECTED,
            topics.INTENTS_AWAITING_APPROVAL,
            topics.DLQ,
        )
        async for record in follow_records(settings, watched):
            gap = now_us() - last_read
            last_read = now_us()
            if gap > STALL_US:
                # Stopped past its session, this worker would otherwise re-publish every intent it
                # watched at once, before it reads the outcomes the other workers gave them meanwhile.
                pending.postpone(gap)
            if record is not None and record.topic == topics.INTENTS_SUBMITTED:
                seen = watched_intent(record.value, settings.max_record_bytes, record.partition)
                if seen is not None:
                    pending.submitted(seen[0], seen[1], record.value, now_us())
            elif record is not None:
                about = outcome_about(record.topic, record.value, keys, published)
                if about is not None:
                    pending.decided(about)
            if now_us() - last_check >= US_PER_SECOND:
                last_check = now_us()
                again, give_up = pending.due(last_check)
                if again:
                    log.warning("redelivering %d intent(s) with no outcome after %.0f s", len(again), grace_s)
                if give_up:
                    log.warning(
                        "%d intent(s) overdue after %d redeliveries: their workers give up each one they did "
                        "not decide, and the signer refuses those NO_OUTCOME unless it decided them already",
                        len(give_up),
                        max_attempts,
                    )
                overdue = [
                    (key, overdue_record(raw, settings.max_record_bytes, max_attempts, utcnow(), service_key))
                    for key, raw in give_up
                ]
                for target, records in ((topics.INTENTS_SUBMITTED, again), (topics.INTENTS_OVERDUE, overdue)):
                    for key, raw in records:
                        await _send(producer, target, key, raw)
                await producer.flush()
    finally:
        await producer.stop()


async def _send(producer: AIOKafkaProducer, topic: str, key: str, raw: bytes) -> None:
    try:
        await producer.send(topic, raw, key=key.encode())
    except Exception:  # noqa: BLE001 - one record the producer refuses must not stop the worker
        log.exception("could not re-publish a %d-byte record to %s; it is no longer watched", len(raw), topic)
