"""The streams worker's state, owned partition by partition (`runtime.owner`): in each partition of
the input topics, three tables (`TABLES`): the newest admin-signed policy of each agent, each
intent's decision, each idempotency key's first claim. Kept in memory, the record is the
partition's changelog (``warden.streams.changelog``): a worker given a partition reads it there
before it decides anything on it, and every batch's writes are appended, and checked to hold,
before its outcomes go out.

Every write is one ``put`` (table, key, value as JSON, or null to delete), so a changelog record
can only ever set or clear a row of a known table. The engine sees each table as one mapping
(`Table`): read over every partition this worker owns, written into the partition of the record
being decided (`PartitionTables.deciding`), where every record of that agent lands.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson

from runtime.changelog import ChangelogFormat, Write
from schemas import topics

TABLES = ("policies", "decisions", "idempotency")
WORKER_LOG = ChangelogFormat(b"warden-streams-changelog-v1\x00", {"put": 3}, "worker")


class PartitionTables:
    """One partition's tables, the writes not yet on its changelog (with what each replaced, to
    roll back), and where in the changelog they are."""

    def __init__(self, partition: int):
        self.partition = partition
        self.tables: dict[str, dict[str, Any]] = {name: {} for name in TABLES}
        self._writes: list[Write] = []
        self._undo: list[tuple[str, str, Any]] = []
        self._position = (-1, 0)
        self._pending_position: tuple[int, int] | None = None
        self.written_bytes = 0

    def put(self, table: str, key: str, value: Any) -> None:
        """One row set (None: removed), kept for the changelog."""
        text = None if value is None else orjson.dumps(value).decode()
        self._undo.append((table, key, self.tables[table].get(key)))
        self._set(table, key, value)
        self._writes.append(("put", (table, key, text)))
        self.written_bytes += len(key) + len(text or "") + 16

    def _set(self, table: str, key: str, value: Any) -> None:
        if value is None:
            self.tables[table].pop(key, None)
        else:
            self.tables[table][key] = value

    @property
    def writes(self) -> list[Write]:
        return list(self._writes)

    @property
    def in_scope(self) -> bool:
        return False  # a decision writes all it writes without an await in between: no scope to wait for

    @property
    def where(self) -> str:
        return f"the worker's memory, partition {self.partition}"

    def replay(self, writes: list[Write]) -> None:
        """Another worker's writes, from the changelog, in the order it made them."""
        for name, (table, key, text) in writes:
            if name != "put" or table not in self.tables or not isinstance(key, str):
                raise ValueError(f"a changelog write {name} {table!r} {key!r} names no table of {TABLES}")
            self._undo.append((table, key, self.tables[table].get(key)))
            self._set(table, key, None if text is None else orjson.loads(text))

    def changelog_position(self) -> tuple[int, int]:
        return self._pending_position or self._position

    def set_changelog_position(self, head: int, next_offset: int) -> None:
        self._pending_position = (head, next_offset)

    def commit(self) -> None:
        if self._pending_position is not None:
            self._position = self._pending_position
        self._pending_position = None
        self._writes, self._undo, self.written_bytes = [], [], 0

    def rollback(self) -> None:
        """Forget the open writes: their changelog record did not hold."""
        for table, key, value in reversed(self._undo):
            self._set(table, key, value)
        self._pending_position = None
        self._writes, self._undo, self.written_bytes = [], [], 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        yield  # nothing writes here but the batch that appends


class WorkerStates:
    """Every partition's tables this worker has read, and which of them it owns now (the owner's
    ``owned``, shared), and the partition of the record being decided."""

    def __init__(self, owned: set[int], partitions: int = topics.PARTITIONS):
        self.count = partitions
        self.owned = owned
        self._parts: dict[int, PartitionTables] = {}
        # Per task (a ContextVar): a give-up is decided while an intent's judgement waits for its
        # node (`streams.topology.Worker.decide`), each writing into its own record's partition.
        self._deciding: contextvars.ContextVar[int | None] = contextvars.ContextVar("deciding", default=None)

    def partition(self, partition: int) -> PartitionTables:
        if partition not in self._parts:
            self._parts[partition] = PartitionTables(partition)
        return self._parts[partition]

    def opened(self) -> list[tuple[int, PartitionTables]]:
        return sorted(self._parts.items())

    @contextlib.contextmanager
    def deciding(self, partition: int) -> Iterator[None]:
        """While a record of ``partition`` is decided: what it writes goes there."""
        token = self._deciding.set(partition)
        try:
            yield
        finally:
            self._deciding.reset(token)

    def writing(self) -> PartitionTables:
        deciding = self._deciding.get()
        if deciding is None:
            raise RuntimeError("a table was written outside a record's decision: no partition to write it to")
        return self.partition(deciding)

    def reading(self) -> list[PartitionTables]:
        """The partitions read: the one being decided first, then the rest this worker owns."""
        deciding = self._deciding.get()
        first = [] if deciding is None else [self.partition(deciding)]
        return first + [self._parts[p] for p in sorted(self.owned) if p != deciding and p in self._parts]


class Table(MutableMapping[str, Any]):
    """One of `TABLES` as the engine sees it: one mapping over the partitions this worker owns."""

    def __init__(self, name: str, states: WorkerStates):
        if name not in TABLES:
            raise ValueError(f"no table {name!r}; the worker's tables are {TABLES}")
        self.name = name
        self.states = states

    def __getitem__(self, key: str) -> Any:
        for part in self.states.reading():
            rows = part.tables[self.name]
            if key in rows:
                return rows[key]
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        if value is None:
            raise ValueError(f"{self.name}: a row's value is never None (del removes it)")
        self.states.writing().put(self.name, key, value)

    def __delitem__(self, key: str) -> None:
        if key not in self.states.writing().tables[self.name]:
            raise KeyError(key)
        self.states.writing().put(self.name, key, None)

    def __iter__(self) -> Iterator[str]:
        for part in self.states.reading():
            yield from part.tables[self.name]

    def __len__(self) -> int:
        return sum(len(part.tables[self.name]) for part in self.states.reading())
