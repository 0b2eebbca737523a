"""Redelivery: an intent that has no outcome after a grace period is submitted again.

Why it exists: on the embedded broker (Tansu, memory storage), a Faust worker that is
killed and restarted has been seen to skip input records it never processed (the
broker's reported high watermark trails its log, and Faust's recovery and offset
bookkeeping trust it). Nothing may be lost, so every worker watches the submitted
intents against the outcome topics and re-publishes the original bytes of any intent
still undecided after ``grace``. That is safe because every effect downstream is
idempotent by intent id: the worker replays a decision it already made, and the
signer re-emits the bytes it already signed.
"""

from __future__ import annotations

import logging

import orjson

from runtime.clock import US_PER_SECOND, to_us, utcnow
from runtime.config import Settings
from runtime.kafka import follow, producer as new_producer
from schemas import topics

log = logging.getLogger("warden.redelivery")


class Pending:
    """Intents seen on the submitted topic and not yet on an outcome topic (pure, time is an argument)."""

    def __init__(self, grace_us: int):
        self.grace_us = grace_us
        self._waiting: dict[str, tuple[int, str, bytes]] = {}
        self._decided: set[str] = set()

    def submitted(self, intent_id: str, key: str, raw: bytes, now_us: int) -> None:
        if intent_id not in self._decided:
            self._waiting.setdefault(intent_id, (now_us, key, raw))

    def decided(self, intent_id: str) -> None:
        self._decided.add(intent_id)
        self._waiting.pop(intent_id, None)

    def due(self, now_us: int, limit: int = 1000) -> list[tuple[str, bytes]]:
        """Records to send again; each comes due again only after another grace period."""
        out = []
        for intent_id, (since, key, raw) in list(self._waiting.items()):
            if now_us - since >= self.grace_us:
                out.append((key, raw))
                self._waiting[intent_id] = (now_us, key, raw)
                if len(out) >= limit:
                    break
        return out

    def __len__(self) -> int:
        return len(self._waiting)


def _ids(topic: str, value: bytes) -> tuple[str, str] | None:
    """(intent_id, agent_id) of a submitted or outcome record, parsed once; None if unreadable
    (unreadable records went to the DLQ: that is their outcome)."""
    try:
        doc = orjson.loads(value)
        if topic == topics.INTENTS_APPROVED:
            doc = doc["intent"]
        intent_id, agent_id = doc.get("intent_id"), doc.get("agent_id")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(intent_id, str):
        return None
    return intent_id, agent_id if isinstance(agent_id, str) else ""


async def run_redelivery(settings: Settings, grace_s: float = 10.0) -> None:
    def now_us() -> int:
        return to_us(utcnow())

    pending = Pending(int(grace_s * US_PER_SECOND))
    producer = new_producer(settings)
    await producer.start()
    last_check = now_us()
    try:
        watched = (topics.INTENTS_SUBMITTED, topics.INTENTS_APPROVED, topics.INTENTS_REJECTED)
        async for topic, value in follow(settings, watched):
            ids = _ids(topic, value) if topic else None
            if ids is not None and topic == topics.INTENTS_SUBMITTED:
                pending.submitted(ids[0], ids[1], value, now_us())
            elif ids is not None:
                pending.decided(ids[0])
            if now_us() - last_check >= US_PER_SECOND:
                last_check = now_us()
                due = pending.due(last_check)
                if due:
                    log.warning("redelivering %d intent(s) with no outcome after %.0f s", len(due), grace_s)
                    for key, raw in due:
                        await producer.send(topics.INTENTS_SUBMITTED, raw, key=key.encode())
                    await producer.flush()
    finally:
        await producer.stop()
