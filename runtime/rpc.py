"""A small async JSON-RPC client (aiohttp) for Ethereum, Solana and Bitcoin nodes (a call, or many
calls of one method in one batch), and the per-chain cache of clients that the streams worker
(simulation) and the signer share.

A node's URL may carry a user and password (``http://user:password@127.0.0.1:18443``, btcd's
basic auth): aiohttp sends them as the Authorization header, and every message that names the URL
names it without them (`redacted`)."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from schemas.errors import WardenError

if TYPE_CHECKING:
    import aiohttp


_T = TypeVar("_T")

# The user and password of a URL: what follows ``scheme://`` up to the last "@" before the path.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@")


def redacted(url: str) -> str:
    """``url`` without its user and password, for a message, a log line or a listing to name."""
    return _USERINFO.sub(r"\1", url, count=1)


def _scrubbed(text: str, url: str) -> str:
    """``text`` (an exception's, which may quote the URL) without ``url``'s user and password."""
    found = _USERINFO.match(url)
    return text.replace(found.group(2) + "@", "") if found else text


class RpcError(WardenError):
    """The node answered with a JSON-RPC error; ``data`` keeps its revert payload if any."""

    def __init__(self, method: str, code: int, message: str, data: Any = None):
        super().__init__(f"{method}: {message} (code {code})")
        self.method, self.code, self.message, self.data = method, code, message, data


class NoRpc(WardenError, RuntimeError):
    """No JSON-RPC is configured for a chain, or the local node that would serve it is not running;
    ``next_step`` names the variable to set or what to start."""


class RpcUnavailable(WardenError):
    """The node could not be reached (connection refused, timeout)."""


def _result(method: str, reply: dict[str, Any]) -> Any:
    """One JSON-RPC reply's result, or its error raised as RpcError."""
    # Bitcoin nodes (btcd, Bitcoin Core) answer JSON-RPC 1.0's envelope: "error" is null on success.
    err = reply.get("error")
    if err is not None:
        if not isinstance(err, dict):
            err = {"message": str(err)}
        raise RpcError(method, err.get("code", 0), err.get("message", ""), err.get("data"))
    return reply.get("result")


class Node(Protocol):
    """What guardrails and the signer need of a chain: one JSON-RPC call."""

    async def call(self, method: str, *params: Any) -> Any: ...


@runtime_checkable
class Batching(Protocol):
    """A node client that asks many calls of one method in one request (`JsonRpc.batch`)."""

    async def batch(self, method: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]: ...


async def call_each(node: Node, method: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    """``method`` with each of ``calls``' params: in one batch when ``node`` asks batches, else one
    call after another (a stand-in node of a test or of a context that supplies none)."""
    if isinstance(node, Batching):
        return await node.batch(method, calls)
    return [await node.call(method, *params) for params in calls]


# Calls that only read the chain: asked again once when the node could not be reached, since a
# dropped keep-alive connection or a node slowed by a busy machine fails one call, and a read has
# no effect to double. A send is never asked again here: whether the node took it is unknown, and
# the signer's broadcast tracking decides what to do about it.
READS = (
    "eth_get",
    "eth_call",
    "eth_estimateGas",
    "eth_simulateV1",
    "eth_chainId",
    "eth_blockNumber",
    "eth_feeHistory",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_blobBaseFee",
    # Solana's reads (getAccountInfo, getSignatureStatuses, ...), and Bitcoin's (getblockcount,
    # gettxout, getrawtransaction, ...)
    "get",
    "isBlockhashValid",
    "simulateTransaction",
    "searchrawtransactions",
    "testmempoolaccept",
)


def is_read(method: str) -> bool:
    return method.startswith(READS)


class JsonRpc:
    def __init__(self, url: str, timeout_s: float = 10.0):
        # Imported by the first client made, not with this module: the judge's rules import it, and
        # every `warden` command that only reads Kafka would pay aiohttp's ~0.15 s import for nothing.
        import aiohttp

        self.url = url
        self._ids = itertools.count(1)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def call(self, method: str, *params: Any) -> Any:
        return await self._read_again(method, lambda: self._call(method, params))

    async def batch(self, method: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``method`` with each of ``calls``' params, asked in one HTTP request (a JSON-RPC batch,
        which the node answers in one reply): the results in the order of ``calls``. RpcError for
        the first call the node refused."""
        if not calls:
            return []
        return await self._read_again(method, lambda: self._batch(method, calls))

    @staticmethod
    async def _read_again(method: str, ask: Callable[[], Awaitable[_T]]) -> _T:
        """``ask()``, and once more after a moment when the node could not be reached and
        ``method`` only reads (`READS`)."""
        try:
            return await ask()
        except RpcUnavailable:
            if not is_read(method):
                raise
        await asyncio.sleep(0.2)
        return await ask()

    async def _call(self, method: str, params: tuple[Any, ...]) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        status, reply = await self._post(method, body)
        if not isinstance(reply, dict):
            raise self._no_reply(method, status, "a JSON-RPC reply")
        return _result(method, reply)

    async def _batch(self, method: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        ids = [next(self._ids) for _ in calls]
        body = [
            {"jsonrpc": "2.0", "id": n, "method": method, "params": list(p)} for n, p in zip(ids, calls, strict=True)
        ]
        status, reply = await self._post(method, body)
        if not isinstance(reply, list):
            # A node that takes no batch answers one error for the whole request.
            if isinstance(reply, dict) and reply.get("error") is not None:
                _result(method, reply)
            raise self._no_reply(method, status, f"a JSON-RPC batch reply to {len(calls)} calls")
        by_id = {r.get("id"): r for r in reply if isinstance(r, dict)}
        if any(n not in by_id for n in ids):
            raise RpcError(method, 0, f"the node answered {len(by_id)} of the batch's {len(calls)} calls")
        return [_result(method, by_id[n]) for n in ids]

    async def _post(self, method: str, body: object) -> tuple[int, Any]:
        """``body`` posted to the node: the HTTP status and the JSON reply (None when it is not JSON)."""
        import aiohttp  # loaded by __init__ already: a dictionary lookup

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        status = 0
        try:
            async with self._session.post(self.url, json=body) as resp:
                status = resp.status
                return status, await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RpcUnavailable(
                f"{method}: chain RPC at {redacted(self.url)} unreachable ({exc.__class__.__name__}: "
                f"{_scrubbed(str(exc), self.url)}); check WARDEN_RPC_URL and that the node runs"
            ) from None
        except ValueError:  # not JSON: btcd answers a wrong user or password with a text 401
            return status, None

    def _no_reply(self, method: str, status: int, wanted: str) -> RpcUnavailable:
        return RpcUnavailable(
            f"{method}: chain RPC at {redacted(self.url)} answered HTTP {status} without {wanted}; "
            "check the URL (and, for a node that asks for them, the user and password it carries)"
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class Unconfigured:
    """A chain with no RPC configured: every call is `RpcUnavailable` with what to set, so a
    stage refuses (fail closed) instead of its caller failing."""

    def __init__(self, why: str):
        self.why = why

    async def call(self, method: str, *_params: Any) -> Any:
        raise RpcUnavailable(f"{method}: {self.why}")

    async def close(self) -> None:
        return None


class Nodes:
    """One client per chain, made on first use: ``nodes.for_chain("base")``."""

    def __init__(self, url_for: Callable[[str], str]):
        self._url_for = url_for
        self._nodes: dict[str, JsonRpc] = {}

    def for_chain(self, chain: str) -> Node:
        node = self._nodes.get(chain)
        if node is None:
            try:
                url = self._url_for(chain)
            except NoRpc as exc:  # no RPC configured for it: each call says so, nothing is cached
                return Unconfigured(str(exc))
            node = self._nodes[chain] = JsonRpc(url)
        return node

    async def close(self) -> None:
        for node in self._nodes.values():
            await node.close()
