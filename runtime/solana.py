"""What Warden reads from and sends to a Solana node over its JSON-RPC (`runtime.rpc.JsonRpc`):
token accounts and mints for the judge, blockhashes, sends, signature statuses, and the transactions an
address took part in (`history`, `transaction`)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from runtime.rpc import Node, RpcError
from svm.accounts import AccountError, AccountState, TokenAccount, token_account
from svm.mints import Mint
from svm.mints import read as read_mint

# Solana's commitment levels, weakest first.
COMMITMENTS = ("processed", "confirmed", "finalized")


async def token_accounts(
    node: Node, addresses: Iterable[str], commitment: str = "confirmed"
) -> dict[str, TokenAccount]:
    """The initialized token accounts among ``addresses``, as the node holds them; an address
    with no account, or one that is not a token account, is left out (the judge refuses what it
    needs and cannot resolve)."""
    return await _read(node, addresses, commitment, token_account)


async def mints(node: Node, addresses: Iterable[str], commitment: str = "confirmed") -> dict[str, Mint]:
    """The initialized mints among ``addresses``, read whole (`svm.mints`: Token-2022's extensions
    too), as the node holds them; an address with no account, or one that does not read as a mint,
    is left out (the judge refuses a movement whose mint it needs and cannot read)."""
    return await _read(node, addresses, commitment, read_mint)


Read = TypeVar("Read")


async def _read(
    node: Node, addresses: Iterable[str], commitment: str, reader: Callable[[str, str, bytes], Read]
) -> dict[str, Read]:
    """Each of ``addresses`` the node holds, as ``reader`` reads it (address, owning program,
    data); what it refuses (`AccountError`) is left out."""
    wanted = list(dict.fromkeys(addresses))
    if not wanted:
        return {}
    reply = await node.call("getMultipleAccounts", wanted, {"encoding": "base64", "commitment": commitment})
    out = {}
    for address, account in zip(wanted, reply["value"], strict=True):
        if account is None:
            continue
        try:
            out[address] = reader(address, account["owner"], base64.b64decode(account["data"][0]))
        except AccountError:
            continue
    return out


async def latest_blockhash(node: Node, commitment: str = "confirmed") -> str:
    """The node's newest blockhash (base58), for a transaction to name."""
    answer = await node.call("getLatestBlockhash", {"commitment": commitment})
    return _text(answer, "value", "blockhash", method="getLatestBlockhash")


async def send(node: Node, raw: bytes) -> str:
    """Send a signed transaction; the node's answer is its signature (base58). Preflight is the
    node's own simulation of it: skipped, since what the signer sends was judged already and a
    failed preflight would hide whether the bytes went out."""
    answer = await node.call(
        "sendTransaction",
        base64.b64encode(raw).decode(),
        {"encoding": "base64", "skipPreflight": True, "maxRetries": 0},
    )
    return _text(answer, method="sendTransaction")


def _text(answer: Any, *path: str, method: str = "") -> str:
    """The string at ``path`` in a node's answer; RpcError naming what came instead."""
    value = answer
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    if not isinstance(value, str):
        where = ".".join(path) or "the result"
        raise RpcError(method, 0, f"the node answered {where} with {type(value).__name__}, not a string")
    return value


@dataclass(frozen=True)
class Status:
    slot: int
    commitment: str  # processed, confirmed or finalized
    error: object | None  # the runtime's error when the transaction failed, else None


async def statuses(node: Node, signatures: list[str]) -> list[Status | None]:
    """Each signature's status (None: the node has not seen it), searching its history too."""
    reply = await node.call("getSignatureStatuses", signatures, {"searchTransactionHistory": True})
    out: list[Status | None] = []
    for value in reply["value"]:
        if value is None:
            out.append(None)
        else:
            out.append(Status(int(value["slot"]), value.get("confirmationStatus") or "processed", value.get("err")))
    return out


@dataclass(frozen=True)
class Landed:
    """A transaction the node holds: its id (its fee payer's signature), where and how it landed."""

    signature: str
    slot: int
    commitment: str
    error: object | None


async def history(
    node: Node, address: str, since_s: int, commitment: str = "confirmed", page: int = 1000, pages: int = 20
) -> list[Landed]:
    """The transactions naming ``address`` that the node holds at ``commitment`` (confirmed or
    finalized), newest first, back to unix time ``since_s`` (`getSignaturesForAddress`, page by
    page). RuntimeError past ``pages`` pages: the caller decides nothing on a partial history."""
    out: list[Landed] = []
    before: str | None = None
    for _ in range(pages):
        options: dict[str, object] = {"limit": page, "commitment": commitment}
        if before is not None:
            options["before"] = before
        entries = await node.call("getSignaturesForAddress", address, options)
        for entry in entries:
            if entry.get("blockTime") is not None and entry["blockTime"] < since_s:
                return out
            status = entry.get("confirmationStatus") or commitment
            out.append(Landed(entry["signature"], int(entry["slot"]), status, entry.get("err")))
        if len(entries) < page:
            return out
        before = entries[-1]["signature"]
    raise RuntimeError(
        f"{address} took part in more than {pages * page} transactions since {since_s}: its history was not read whole"
    )


async def transaction(node: Node, signature: str, commitment: str = "confirmed") -> bytes | None:
    """The wire bytes of the transaction whose id is ``signature``, as the node holds it; None
    when it holds none at ``commitment``."""
    options = {"encoding": "base64", "maxSupportedTransactionVersion": 0, "commitment": commitment}
    reply = await node.call("getTransaction", signature, options)
    return None if reply is None else base64.b64decode(reply["transaction"][0])


async def blockhash_valid(node: Node, blockhash: str, commitment: str) -> bool:
    return bool((await node.call("isBlockhashValid", blockhash, {"commitment": commitment}))["value"])


async def landed(node: Node, signature: str, commitment: str, timeout_s: float) -> Status:
    """``signature``'s status once the node holds it at ``commitment`` or above (or it failed);
    TimeoutError after ``timeout_s``. For a local node's setup (airdrops, a demo's token), not for
    the signer's tracking, which follows every status (`signer.solana_tracking`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        (status,) = await statuses(node, [signature])
        if status is not None and (status.error is not None or _at_least(status.commitment, commitment)):
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Solana node did not hold {signature} at {commitment} within {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


def _at_least(commitment: str, wanted: str) -> bool:
    return COMMITMENTS.index(commitment) >= COMMITMENTS.index(wanted)


async def balance(node: Node, address: str, commitment: str = "confirmed") -> int:
    return int((await node.call("getBalance", address, {"commitment": commitment}))["value"])


@dataclass(frozen=True)
class Simulation:
    """What the node's runtime did with a transaction, without keeping it: the ``addresses``
    before (read first) and after; ``error`` when it failed."""

    before: dict[str, AccountState | None]
    after: dict[str, AccountState | None]
    error: object | None
    logs: tuple[str, ...]
    units: int | None


def _state(account: dict[str, Any] | None) -> AccountState | None:
    if account is None:
        return None
    return AccountState(int(account["lamports"]), account["owner"], base64.b64decode(account["data"][0]))


async def simulate(node: Node, raw: bytes, addresses: Iterable[str], commitment: str = "confirmed") -> Simulation:
    """``raw`` run by the node's `simulateTransaction` (signatures not checked: the agent's slot
    is still empty), with ``addresses`` read before it and returned after it by the node."""
    wanted = list(dict.fromkeys(addresses))
    before = await node.call("getMultipleAccounts", wanted, {"encoding": "base64", "commitment": commitment})
    reply = await node.call(
        "simulateTransaction",
        base64.b64encode(raw).decode(),
        {
            "encoding": "base64",
            "sigVerify": False,
            "replaceRecentBlockhash": False,
            "commitment": commitment,
            "accounts": {"encoding": "base64", "addresses": wanted},
        },
    )
    value = reply["value"]
    after = value.get("accounts") or [None] * len(wanted)
    return Simulation(
        before={a: _state(s) for a, s in zip(wanted, before["value"], strict=True)},
        after={a: _state(s) for a, s in zip(wanted, after, strict=True)},
        error=value.get("err"),
        logs=tuple(value.get("logs") or ()),
        units=value.get("unitsConsumed"),
    )
