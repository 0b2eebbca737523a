"""Submitting intent after intent, or for many callers at once, and waiting on their outcomes
with one producer and one reader: `Client.submit_and_wait`, and `warden api`'s every request.

`sdk.client.submit_and_wait` is right for a command that sends once: it opens a producer and a
consumer for its intent. A server answering a hundred requests a second spent most of its time
doing exactly that (profiled: Kafka client bootstrap, consumer start and metadata were over half of
the API's samples, and requests queued for seconds), and an agent waiting on each of its intents
paid it every intent (p50 40 ms through it against 22.5 ms for the pipeline itself). The hub opens
both once: the reader follows the outcome topics from where they ended when it started, and hands
each submission the first outcome that is authentic and bound to what was sent, by the same check
`sdk.outcomes.wait_outcomes` makes (`outcome_problem`). Forgeries about a submission are counted,
never reported.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import TopicPartition

from runtime.config import Settings
from runtime.kafka import end_offsets, follow_records
from schemas.auth import ServiceKeys
from schemas.intent import TransactionIntent
from schemas.outcomes import SignedBitcoinTransaction, SignedSolanaTransaction, SignedTransaction
from sdk.outcomes import OUTCOME_TOPICS, Awaited, Outcome, outcome_keys, outcome_problem, read_outcome

if TYPE_CHECKING:
    from sdk.client import Client

_log = logging.getLogger("warden.outcome_hub")

# After the reader fails (the broker went away), it starts again from where it was after this.
RETRY_S = 1.0


@dataclass
class _Waiting:
    awaited: Awaited
    answer: asyncio.Future[Any]
    broadcast: bool
    forged: set[str] = field(default_factory=set)
    latest: Outcome | None = None  # the newest authentic word, if none has settled it yet


class OutcomeHub:
    """Submits through ``client`` (an entered `Client`, whose producer it shares) and reads every
    outcome once, for every intent waited on."""

    def __init__(self, settings: Settings, client: Client):
        self.settings = settings
        self._client = client
        self._waiting: dict[str, _Waiting] = {}
        self._reader: asyncio.Task[Any] | None = None
        self._keys: ServiceKeys | None = None

    async def start(self) -> None:
        self._keys = await outcome_keys(self.settings)
        start = await end_offsets(self.settings, OUTCOME_TOPICS)
        self._reader = asyncio.create_task(self._read(start))

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None

    async def submit_and_wait(
        self, _settings: Settings, intent: TransactionIntent, timeout_s: float, final: bool = False
    ) -> tuple[Outcome | None, int]:
        """`sdk.client.submit_and_wait`'s answer for ``intent`` through the hub: its first authentic
        outcome (for a transaction to broadcast, the first past ``signed``), else after
        ``timeout_s`` the newest authentic one or None. ``final`` is not offered: the API answers
        with that and a lookup follows the rest."""
        if self._reader is None or final:
            raise RuntimeError("the hub answers first outcomes only, once started")
        waiting = _Waiting(Awaited.of(intent), asyncio.get_running_loop().create_future(), intent.broadcast)
        # Registered before the intent is sent: its outcome cannot be read before anyone waits.
        self._waiting[intent.intent_id] = waiting
        try:
            await (await self._client.submit(intent))
            try:
                outcome = await asyncio.wait_for(asyncio.shield(waiting.answer), timeout_s)
            except TimeoutError:
                outcome = waiting.latest
            return outcome, len(waiting.forged)
        finally:
            self._waiting.pop(intent.intent_id, None)

    async def _read(self, start: dict[TopicPartition, int]) -> None:
        position = dict(start)  # the next offset to read, per partition: where a restart resumes
        while True:
            try:
                async for record in follow_records(
                    self.settings, OUTCOME_TOPICS, position, fetch_max_wait_ms=self.settings.fetch_wait_ms
                ):
                    if record is not None:
                        position[TopicPartition(record.topic, record.partition)] = record.offset + 1
                        self._offer(record.topic, record.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: waiters time out, the reader comes back
                _log.warning("the outcome reader stopped (%s); starting again in %.0f s", exc, RETRY_S)
                await asyncio.sleep(RETRY_S)

    def _offer(self, record_topic: str, value: bytes) -> None:
        # Every agent's outcomes pass here: one naming no intent waited on is left unparsed (every
        # outcome record names its intent at the top), so a lone agent's client in a busy
        # deployment pays a JSON read for the others' records, not a model's validation.
        try:
            named = orjson.loads(value).get("intent_id")
        except (orjson.JSONDecodeError, AttributeError):
            return
        if not isinstance(named, str) or named not in self._waiting:
            return
        outcome = read_outcome(record_topic, value)
        if outcome is None:
            return
        waiting = self._waiting.get(outcome.intent_id)
        if waiting is None or waiting.answer.done():
            return
        assert self._keys is not None
        why = outcome_problem(outcome, waiting.awaited, self._keys)
        if why is not None:
            waiting.forged.add(str(why))
            return
        waiting.latest = outcome
        # A transaction to broadcast is answered once it was broadcast (or went further), as the
        # Intents API's submit answers; that it was signed is only the step before.
        sent = SignedTransaction | SignedSolanaTransaction | SignedBitcoinTransaction
        signed = isinstance(outcome, sent) and outcome.status == "signed"
        if not (waiting.broadcast and signed):
            waiting.answer.set_result(outcome)
