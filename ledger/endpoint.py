"""A read-only, ClickHouse-HTTP-compatible endpoint over the sink's chDB store.

chDB lets one process own its directory, and the sink is that process; analysts
and ``warden audit`` still need SQL while it runs. So the sink answers the
ClickHouse HTTP interface (the subset clients use: ``/ping``, queries in the
``query`` parameter and/or the POST body, ``FORMAT`` clause or
``default_format``, server-side ``param_<name>`` query parameters, ``X-ClickHouse-*`` headers, errors as ``Code: N.`` text) and
clickhouse-connect, curl, or any ClickHouse HTTP client works against it.

Read-only is ClickHouse's own ``readonly=1`` on the connections it serves from:
no writes, no DDL, no settings changes, no table functions. One more rule: the
``file()`` function would read any file the sink can read, its signing key among
them, so queries calling it are refused. URL parameters other than
``default_format``, ``query_id`` and ``param_*`` are accepted and ignored; results are
sent whole (export pages through them); there is no
authentication, so it listens on loopback (WARDEN_LEDGER_HTTP) by default.

Beside the SQL it serves the routes the sink hands it: ``POST /webhooks``, an admin's signed
request to add or remove an audit webhook (`ledger.webhook_admin`), which carries its own
authorization.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa
from aiohttp import web

from ledger import proof as proofs
from ledger.store import ChdbError, ChdbStore, read_only_message, sql_string
from schemas.errors import WardenError

if TYPE_CHECKING:  # for the annotations: chdb is imported by ledger.store._chdb() alone
    from chdb.state.sqlitelike import Connection

_FORMAT_AT_END = re.compile(r"\sFORMAT\s+(\w+)\s*$", re.IGNORECASE)
_FILE_FUNCTION = re.compile(r"^\s*Function file\b", re.MULTILINE)
_CODE = re.compile(r"Code: (\d+)")
_STATUS = {62: 400, 60: 404, 81: 404, 47: 404, 164: 403, 497: 403}
SERVER_NAME = "warden-ledger"


class QueryRefused(WardenError):
    """A query the endpoint does not run, or one that failed: ClickHouse's error code and text."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def admit(conn: Connection, sql: str, params: dict[str, str] | None = None) -> tuple[str, str | None]:
    """The single statement to run and its FORMAT, or QueryRefused.

    ClickHouse parses the text (so multi-statements are refused by the same
    parser that would run them), and the normalized statement is what runs.
    """
    try:
        formatted = (
            conn.query(f"SELECT formatQuerySingleLine({sql_string(sql)})", "TabSeparatedRaw")
            .bytes()
            .decode()
            .rstrip("\n")
        )
        tree = conn.query(f"EXPLAIN AST {formatted}", "TabSeparatedRaw", params=params or None).bytes().decode()
    except ChdbError as exc:
        raise _as_refused(exc) from None
    if tree.startswith("InsertQuery"):
        # The normalized text of an INSERT has no data, so ClickHouse would fail
        # it for that before saying it is read-only; say it here.
        raise QueryRefused(164, f"Code: 164. DB::Exception: {read_only_message('INSERT refused')} (READONLY)")
    if _FILE_FUNCTION.search(tree):
        raise QueryRefused(
            497,
            "Code: 497. DB::Exception: the ledger endpoint does not serve file(): it would read the sink's own files. "
            "Query the ledger tables and views instead. (ACCESS_DENIED)",
        )
    match = _FORMAT_AT_END.search(formatted)
    return formatted, match.group(1) if match else None


def _as_refused(exc: Exception) -> QueryRefused:
    text = str(exc)
    match = _CODE.search(text)
    code = int(match.group(1)) if match else 1002
    if code == 164:
        return QueryRefused(code, f"Code: 164. DB::Exception: {read_only_message(text)} (READONLY)")
    if not text.startswith("Code:"):
        text = f"Code: {code}. DB::Exception: {text}"
    return QueryRefused(code, text)


class _Reader:
    """A read-only connection as the proofs read a store."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def arrow(self, sql: str) -> pa.Table:
        return self._conn.query(sql, "ArrowTable")


class Endpoint:
    def __init__(
        self,
        store: ChdbStore,
        host: str,
        port: int,
        connections: int = 2,
        log_name: str = "warden.local/audit",
        routes: list[web.RouteDef] | None = None,
    ) -> None:
        self._store = store
        # Served before the SQL: the sink's own requests (`ledger.webhook_admin`).
        self._routes = routes or []
        self._log_name = log_name
        self._host = host
        self._port = port
        self._connections = connections
        self._pool: asyncio.Queue[Connection] = asyncio.Queue()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        for _ in range(self._connections):
            self._pool.put_nowait(self._store.connect_read_only())
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.add_routes(self._routes)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        while not self._pool.empty():
            self._pool.get_nowait().close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = (await request.read()).decode() if request.can_read_body else ""
        sql = "\n".join(part for part in (request.query.get("query", ""), body) if part.strip())
        if request.path in ("/ping", "/replicas_status") or (request.path == "/" and not sql):
            return web.Response(text="Ok.\n")
        if request.path == "/receipt":
            return await self._receipt(request)
        if request.path == "/checkpoint":
            return await self._checkpoint(request)
        if request.path != "/":
            return web.Response(status=404, text=f"There is no handle {request.path}; send queries to /\n")
        query_id = request.query.get("query_id") or str(uuid.uuid4())
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Server-Display-Name": SERVER_NAME,
            "X-ClickHouse-Timezone": "UTC",
        }
        conn = await self._pool.get()
        try:
            # Server-side query parameters ({name:Type} bound from param_name), as ClickHouse does:
            # clickhouse-connect sends them this way, and binding beats quoting.
            params = {k.removeprefix("param_"): v for k, v in request.query.items() if k.startswith("param_")}
            statement, fmt = await asyncio.to_thread(admit, conn, sql, params)
            fmt = fmt or request.query.get("default_format", "TabSeparated")
            # Whole results, not chDB's streaming: a streamed empty result loses
            # the header or footer some formats (JSON, Arrow) always carry.
            result = await asyncio.to_thread(conn.query, statement, fmt, params or None)
        except QueryRefused as exc:
            return self._error(exc, headers)
        except Exception as exc:  # noqa: BLE001 - an analyst's bad query is an HTTP error reply, never a dead endpoint
            return self._error(_as_refused(exc), headers)
        finally:
            self._pool.put_nowait(conn)
        return web.Response(body=result.bytes(), headers={**headers, "X-ClickHouse-Format": fmt})

    async def _receipt(self, request: web.Request) -> web.Response:
        """``GET /receipt?intent_id=I&agent_id=A&intent_digest=D`` (the newest outcome of that very
        intent) or ``?event_id=E``: the event's c2sp.org/tlog-proof receipt
        (`ledger.proof.build_receipt`), as text. An intent is named by its agent and digest too:
        an id alone can be reused by a forged copy, whose refusal is another intent's event."""
        query = request.query
        intent_id, event_id = query.get("intent_id"), query.get("event_id")
        agent_id, digest = query.get("agent_id"), query.get("intent_digest")
        if event_id and not intent_id:

            def find(reader: _Reader) -> str:  # noqa: ARG001 - the shape of both finders
                return event_id

        elif intent_id and agent_id and digest and not event_id:

            def find(reader: _Reader) -> str:
                return proofs.outcome_event_id(reader, intent_id, agent_id, digest)

        else:
            return web.Response(
                status=400,
                text="ask for one receipt: /receipt?intent_id=I&agent_id=A&intent_digest=D or /receipt?event_id=E\n",
            )

        def build(reader: _Reader) -> str:
            return proofs.build_receipt(reader, find(reader), self._log_name).text

        return await self._proven(build)

    async def _checkpoint(self, request: web.Request) -> web.Response:
        """``GET /checkpoint?chain=C``: the chain's newest checkpoint as its C2SP note, with the
        log's and the witnesses' signature lines (what a witness or a monitor fetches)."""
        chain = request.query.get("chain", "")
        if not (chain.isascii() and chain.isdigit()):  # "²" is a digit int() refuses
            return web.Response(status=400, text="name the chain: /checkpoint?chain=C (a ledger partition)\n")
        return await self._proven(
            lambda reader: proofs.latest_note(reader, int(chain), self._log_name).to_bytes().decode()
        )

    async def _proven(self, build: Callable[[_Reader], str]) -> web.Response:
        """The text ``build(reader)`` makes from the ledger on a pooled connection, in a thread, or
        404 with why (`ProofError`)."""
        conn = await self._pool.get()
        try:
            built = await asyncio.to_thread(build, _Reader(conn))
        except proofs.ProofError as exc:
            return web.Response(status=404, text=f"{exc}\n")
        finally:
            self._pool.put_nowait(conn)
        return web.Response(text=built, content_type="text/plain")

    @staticmethod
    def _error(exc: QueryRefused, headers: dict[str, str]) -> web.Response:
        return web.Response(
            status=_STATUS.get(exc.code, 500),
            text=f"{exc}\n",
            headers={**headers, "X-ClickHouse-Exception-Code": str(exc.code)},
        )
