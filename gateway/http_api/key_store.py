"""The agents' signing keys as the HTTP API answers `GET /v1/agents/{id}/signing-keys`: one reader
follows warden.admins and warden.vault for the server's life and keeps what they say (the admin set
in force, every agent key's public record), so a request reads no topic.

A request waits only until the reader has passed the ends the topics had when it came, so a key an
admin has just provisioned or rotated is answered as it now stands; and, as
`sdk.signing_keys.agent_signing_keys`, believes a vault record only when the admins' quorum for
``keys`` of the set in force signed it, so a topic writer cannot show an address the signer would
not sign from.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from runtime import metrics
from runtime.admins import AdminSetBook
from runtime.config import Settings
from runtime.kafka import partitions
from runtime.trust import pinned_admins
from schemas import topics
from schemas.auth import vault_event_problem
from sdk.mcp_results import SigningKeys
from sdk.signing_keys import AGENT_KEYS_VAULT, KEYS_ORG, KeyBook, signing_keys_of

_log = logging.getLogger("warden.api")

# After the reader fails (the broker went away), it starts again from where it was after this.
RETRY_S = 1.0


# How long a request waits for the reader to pass the topics' ends before it is answered 503.
CATCH_UP_S = 15.0


# The start of every agent key's record key on warden.vault (``secret:<org>/<vault>/<path>@<version>``,
# ``deactivated:...``), after the kind: what follows is ``agents/<agent id>/chains/...``.
_AGENT_KEYS = f"{KEYS_ORG}/{AGENT_KEYS_VAULT}/agents/"


class KeyStoreBehind(Exception):
    """The reader has not passed the topics' ends in time (or has not started): the message says which."""


@dataclass(frozen=True)
class _Held:
    """One agent key record as the topic carries it: its bytes and headers, judged when asked."""

    value: bytes
    headers: tuple[tuple[str, bytes], ...]


class KeyStoreView:
    """What warden.admins and warden.vault say of the agents' keys, kept current by one reader."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.admins = pinned_admins(settings)
        self._admin_sets = AdminSetBook(self.admins)
        # agent id → record key → the newest record under it (the topic is compacted by that key).
        self._records: dict[str, dict[bytes, _Held]] = {}
        self._position: dict[TopicPartition, int] = {}
        self._moved = asyncio.Event()
        self._parts: list[TopicPartition] = []
        self._lister: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # A consumer of its own to list the ends: one that fetches answers a listing only when its fetch does.
        self._lister = AIOKafkaConsumer(bootstrap_servers=self.settings.broker, enable_auto_commit=False)
        await self._lister.start()
        self._parts = await partitions(self._lister, (topics.ADMINS, topics.VAULT))
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._lister is not None:
            await self._lister.stop()

    async def keys(self, agent_id: str, timeout_s: float = CATCH_UP_S) -> SigningKeys:
        """The agent's keys as the signer holds them, once the reader has read what the topics held
        now: each active version, the newest of each key chain ``in_use``."""
        await self._caught_up(timeout_s)
        book = KeyBook(agent_id, {}, set())
        for held in list(self._records.get(agent_id, {}).values()):
            if vault_event_problem(held.value, held.headers, self.admins)[1] is None:
                book.read(held.value)
        return signing_keys_of(book)

    async def _caught_up(self, timeout_s: float) -> None:
        if self._lister is None or self._reader is None:
            raise KeyStoreBehind("the signing-key reader has not started")
        try:
            async with asyncio.timeout(timeout_s):
                ends = await self._lister.end_offsets(self._parts)
                while not all(self._position.get(tp, 0) >= end for tp, end in ends.items()):
                    self._moved.clear()
                    await self._moved.wait()
        except TimeoutError:
            raise KeyStoreBehind(
                f"the signing-key reader did not read {topics.ADMINS} and {topics.VAULT} to their ends within "
                f"{timeout_s:g} s"
            ) from None

    async def _read(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: requests wait, the reader comes back
                _log.warning("the signing-key reader stopped (%s); starting again in %.0f s", exc, RETRY_S)
                await asyncio.sleep(RETRY_S)

    async def _follow(self) -> None:
        """Read both topics from where the reader was (their start, the first time), forever."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.broker,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.fetch_wait_ms,
        )
        await consumer.start()
        try:
            consumer.assign(self._parts)
            for tp in self._parts:
                if tp in self._position:
                    consumer.seek(tp, self._position[tp])
            unread = [tp for tp in self._parts if tp not in self._position]
            if unread:
                await consumer.seek_to_beginning(*unread)
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        self._take(record.topic, record.key, record.value, tuple(record.headers))
                    metrics.API_KEY_STORE_RECORDS.inc(len(records))
                # The position, not the last offset + 1: it passes compacted offsets and transaction markers too.
                for tp in self._parts:
                    self._position[tp] = await consumer.position(tp)
                self._moved.set()
        finally:
            await consumer.stop()

    def _take(self, topic: str, key: bytes | None, value: bytes | None, headers: tuple[tuple[str, bytes], ...]) -> None:
        if topic == topics.ADMINS:
            if value is not None:
                for what, text, _ in self._admin_sets.read(value):
                    (_log.info if what == "adopted" else _log.warning)("%s", text)
            return
        slot = (key or b"").decode(errors="replace").partition(":")[2]
        if not slot.startswith(_AGENT_KEYS):
            return  # another vault's secret, or not an agent's key: nothing the signing-keys answer shows
        agent_id = slot.removeprefix(_AGENT_KEYS).partition("/")[0]
        held = self._records.setdefault(agent_id, {})
        if value is None:  # a tombstone: compaction has dropped the record
            held.pop(key or b"", None)
        else:
            held[key or b""] = _Held(value, headers)
