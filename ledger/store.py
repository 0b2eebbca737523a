"""Where the ledger lives: chDB on disk (embedded default) or a ClickHouse server
through clickhouse-connect, behind one small interface and the same SQL.

chDB lets one process own a directory. While the sink owns it, everyone else
reaches the store through the sink's ClickHouse-compatible HTTP endpoint
(ledger/endpoint.py), which is just another ClickHouse to
clickhouse-connect; ``open_reader`` picks whichever is there.
"""

from __future__ import annotations

import abc
import re
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol, cast

import pyarrow as pa
from clickhouse_connect.driver.exceptions import ClickHouseError

from ledger.merkle import hash_pairs
from ledger.schema import AUDIT_LOG, DDL, LEAF_HASH_SQL
from runtime.config import Settings
from schemas.errors import WardenError

if TYPE_CHECKING:  # for the annotations: chdb is imported by _chdb() alone, after _arrow_from_jemalloc
    from chdb.state.sqlitelike import Connection
    from clickhouse_connect.driver.client import Client

# chDB raises RuntimeError subclasses for SQL failures (it defines ChdbError twice, in two modules).
ChdbError = RuntimeError

_READONLY_CODE = 164


class StoreError(WardenError, RuntimeError):
    """The store refused or failed; the message says what to do next."""


class ReadOnlyRefused(StoreError):
    pass


def _chdb() -> ModuleType:
    """The chdb module, with the process's Arrow buffers from jemalloc (``_arrow_from_jemalloc``)."""
    _arrow_from_jemalloc()
    import chdb

    return chdb


def _arrow_from_jemalloc() -> None:
    """chDB hands every result over as Arrow buffers. From pyarrow's default pool (mimalloc, which
    backs fresh memory with 2 MB transparent huge pages) `warden bench ledger`'s verify spent
    ~17 % of its CPU in the kernel zeroing pages (perf); from jemalloc its system time is under
    half, and verify took 0.93-0.98 s against 1.10-1.18 s, three runs each, back to back; append
    did not move. Only mimalloc is replaced: a pool an operator chose with pyarrow's
    ARROW_DEFAULT_MEMORY_POOL (system, jemalloc) stands, and a pyarrow built without jemalloc
    keeps its default."""
    if pa.default_memory_pool().backend_name != "mimalloc":
        return
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:
        return


def store_path(settings: Settings) -> Path:
    return settings.home / "clickhouse"


def read_only_message(detail: str) -> str:
    return (
        "the audit ledger is read-only here: only the ledger sink appends to it. "
        f"Run a SELECT (or SHOW, DESCRIBE, EXPLAIN) instead. ClickHouse said: {detail.strip()}"
    )


def _refusal(exc: Exception) -> StoreError:
    text = str(exc)
    match = re.search(r"Code: (\d+)", text)
    if match and int(match.group(1)) == _READONLY_CODE:
        return ReadOnlyRefused(read_only_message(text))
    return StoreError(text)


def arrow_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()  # pyarrow ships no types
    return data


class Reader(Protocol):
    """What reads the store and nothing more: a ``Store``, or one of the endpoint's read-only
    connections (`ledger.endpoint`), which the proofs read."""

    def arrow(self, sql: str) -> pa.Table: ...


class Store(abc.ABC):
    """The operations the ledger needs from ClickHouse."""

    description = ""

    @abc.abstractmethod
    def execute(self, sql: str) -> None: ...

    @abc.abstractmethod
    def arrow(self, sql: str) -> pa.Table: ...

    @abc.abstractmethod
    def raw(self, sql: str, fmt: str) -> bytes:
        """The result of ``sql`` in ClickHouse format ``fmt``, as bytes."""

    @abc.abstractmethod
    def insert(self, table: str, data: pa.Table) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def sibling(self) -> "Store | None":
        """Another handle on the same store for a second thread, or None."""
        return None

    def pair_hasher(self) -> "ChdbPairHasher | None":
        """A PairHasher faster than hashlib for verify's Merkle fold, to ``close()`` when done;
        None where there is none (merkle.hash_pairs then)."""
        return None

    def ensure_schema(self) -> None:
        for statement in DDL:
            self.execute(statement)


class ChdbStore(Store):
    def __init__(self, path: Path, read_only: bool = False) -> None:
        chdb = _chdb()
        self.path = path
        self.description = f"chDB at {path}"
        try:
            self._conn = chdb.connect(f"{path}?readonly=1" if read_only else str(path))
        except RuntimeError as exc:
            raise StoreError(
                f"cannot open the chDB store at {path}: another process holds it (usually the ledger sink; "
                f"its HTTP endpoint serves queries while it runs) ({exc})"
            ) from None

    def sibling(self) -> "ChdbStore":
        # chDB runs queries on separate connections in parallel.
        return ChdbStore(self.path, read_only=True)

    def pair_hasher(self) -> "ChdbPairHasher":
        return ChdbPairHasher(self.path)

    def connect_read_only(self) -> Connection:
        """Another connection to the same engine, refusing writes and table
        functions (ClickHouse readonly=1); the endpoint serves queries on these."""
        connection: Connection = _chdb().connect(f"{self.path}?readonly=1")
        return connection

    def execute(self, sql: str) -> None:
        try:
            self._conn.query(sql)
        except ChdbError as exc:
            raise _refusal(exc) from None

    def arrow(self, sql: str) -> pa.Table:
        try:
            return self._conn.query(sql, "ArrowTable")
        except ChdbError as exc:
            raise _refusal(exc) from None

    def raw(self, sql: str, fmt: str) -> bytes:
        try:
            # A format other than Arrow or a DataFrame: chDB's result, whose bytes() are bytes.
            return cast(bytes, self._conn.query(sql, fmt).bytes())
        except ChdbError as exc:
            raise _refusal(exc) from None

    def insert(self, table: str, data: pa.Table) -> None:
        # One INSERT below max_insert_block_size makes one MergeTree part, written
        # to a temporary directory and renamed: a crash leaves all rows or none.
        columns = ", ".join(data.column_names)
        inserter = self._conn.send_insert(f"INSERT INTO {table} ({columns})", "ArrowStream")
        try:
            inserter.append(arrow_ipc(data))
            inserter.finish()
        except Exception as exc:  # noqa: BLE001 - chDB and Arrow both raise here; any failure must cancel the insert
            inserter.cancel()
            raise StoreError(f"insert into {table} failed: {exc}") from None

    def close(self) -> None:
        self._conn.close()


class ChdbPairHasher:
    """A PairHasher that has ClickHouse hash the pairs: SHA256 over a column costs ~0.2 µs a pair
    where a hashlib call costs ~0.55 µs (both measured here), which takes verify's Merkle fold
    from ~0.8 to ~0.2 CPU-seconds per million rows. Levels too small to repay a query's fixed
    cost (~1 ms) stay in hashlib.

    Its own connection, readonly=2: ClickHouse refuses writes on it, but allows the Python()
    table function, which reads the pairs from this process's memory without a copy, and
    max_threads=1, which keeps the output rows in input order (one stream, nothing reorders)."""

    MIN_PAIRS = 2048
    SQL = "SELECT SHA256(concat(char(1), pair)) AS node FROM Python(pairs) SETTINGS max_threads = 1"

    def __init__(self, path: Path) -> None:
        self._conn = _chdb().connect(f"{path}?readonly=2")

    def __call__(self, pairs: memoryview) -> bytes:
        count = len(pairs) // 64
        if count < self.MIN_PAIRS:
            return hash_pairs(pairs)
        # Python(pairs) names this local: chDB finds the table by name in the caller's frame.
        pairs = pa.table(
            {"pair": pa.FixedSizeBinaryArray.from_buffers(pa.binary(64), count, [None, pa.py_buffer(pairs)])}
        )
        try:
            nodes = self._conn.query(self.SQL, "ArrowTable").column("node").combine_chunks()
        except ChdbError as exc:
            raise StoreError(f"ClickHouse could not hash {count} Merkle pairs: {exc}") from None
        if nodes.type != pa.binary(32) or len(nodes) != count:
            raise StoreError(f"ClickHouse returned {len(nodes)} Merkle nodes of type {nodes.type} for {count} pairs")
        hashed: bytes = nodes.buffers()[1].to_pybytes()  # pyarrow ships no types
        return hashed[32 * nodes.offset : 32 * (nodes.offset + count)]

    def close(self) -> None:
        self._conn.close()


class ClickHouseStore(Store):
    """A ClickHouse server, or the sink's endpoint, through clickhouse-connect."""

    def __init__(self, client: Client, description: str, read_only: bool = False) -> None:
        self._client = client
        self.description = description
        # On a real server, readonly=1 makes ClickHouse itself refuse writes;
        # the endpoint is read-only whatever the client asks.
        self._settings = {"readonly": "1"} if read_only else {}

    def execute(self, sql: str) -> None:
        try:
            self._client.command(sql, settings=self._settings)
        except ClickHouseError as exc:
            raise _refusal(exc) from None

    def arrow(self, sql: str) -> pa.Table:
        try:
            return self._client.query_arrow(sql, settings=self._settings)
        except ClickHouseError as exc:
            raise _refusal(exc) from None

    def raw(self, sql: str, fmt: str) -> bytes:
        try:
            return self._client.raw_query(sql, settings=self._settings, fmt=fmt)
        except ClickHouseError as exc:
            raise _refusal(exc) from None

    def insert(self, table: str, data: pa.Table) -> None:
        try:
            self._client.insert_arrow(table, data)
        except ClickHouseError as exc:
            raise StoreError(f"insert into {table} failed: {exc}") from None

    def close(self) -> None:
        self._client.close()


def _server(url: str, read_only: bool) -> ClickHouseStore:
    import clickhouse_connect

    try:
        client = clickhouse_connect.get_client(dsn=url)
    except (ClickHouseError, OSError) as exc:
        raise StoreError(
            f"cannot reach ClickHouse at WARDEN_CLICKHOUSE_URL ({exc}); check the URL and that the server runs"
        ) from None
    return ClickHouseStore(client, "ClickHouse server (WARDEN_CLICKHOUSE_URL)", read_only)


def endpoint_alive(address: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/ping", timeout=timeout) as response:
            alive: bool = response.read().startswith(b"Ok.")  # urlopen's response: bytes
            return alive
    except (urllib.error.URLError, OSError):
        return False


def _endpoint(address: str) -> ClickHouseStore:
    import clickhouse_connect

    host, _, port = address.rpartition(":")
    client = clickhouse_connect.get_client(host=host, port=int(port), compress=False, autogenerate_session_id=False)
    return ClickHouseStore(client, f"ledger endpoint http://{address}")


def open_writer(settings: Settings) -> Store:
    """The store the sink appends to."""
    if settings.clickhouse_url:
        return _server(settings.clickhouse_url, read_only=False)
    path = store_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    return ChdbStore(path)


def open_reader(settings: Settings) -> Store:
    """The store for a command: the server, else the running sink's endpoint,
    else the chDB directory itself when no sink holds it."""
    if settings.clickhouse_url:
        return _server(settings.clickhouse_url, read_only=True)
    if endpoint_alive(settings.ledger_http):
        return _endpoint(settings.ledger_http)
    path = store_path(settings)
    if not path.exists():
        raise StoreError(
            f"no ledger at {path} and no ledger endpoint at http://{settings.ledger_http}; "
            "start the pipeline (warden up) or set WARDEN_HOME to where the ledger is"
        )
    return ChdbStore(path, read_only=True)


def sql_string(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def chain_leaves(store: Reader, chain: int, size: int) -> list[bytes]:
    """The RFC 9162 leaf hashes of the chain's first ``size`` rows (fewer if it has fewer), in order."""
    sql = (
        f"SELECT {LEAF_HASH_SQL} AS leaf FROM {AUDIT_LOG} WHERE chain = {int(chain)} AND seq < {int(size)} ORDER BY seq"
    )
    # leaf is a FixedString(32): bytes in Arrow.
    return cast(list[bytes], store.arrow(sql).column("leaf").to_pylist())
