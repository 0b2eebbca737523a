"""Real Solidity contracts for token guardrail tests and the demo, and the little it takes to use them.

The ``*.sol`` sources here are compiled by ``python -m infra.contracts.build`` (solc-js, pinned in
infra/dev.sh) into the committed ``<Name>.json`` artifacts next to them, so nothing at test or demo
time needs a compiler; ``build --check`` proves the artifacts are what the sources compile to.

* ``artifact("WardenToken")``: its ABI and bytecode;
* ``selector`` / ``calldata``: a call's bytes from its signature, ``calldata("mint(address,uint256)", a, 5)``;
* ``deploy`` / ``send`` / ``call``: against a dev node (Anvil) whose ``sender`` account is unlocked
  (a dev account, or one made so with ``anvil_impersonateAccount``), through any object with
  ``async call(method, *params)`` such as ``runtime.rpc.JsonRpc``.

A call the chain reverts raises ``Reverted`` with the decoded reason, so a test set-up step that
fails says why instead of leaving a later assertion to guess.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from eth_utils.abi import collapse_if_tuple

from rules.simulation import decode_revert
from runtime.rpc import JsonRpc, RpcError
from schemas.errors import WardenError

__all__ = ["Artifact", "Reverted", "artifact", "call", "calldata", "deploy", "selector", "send"]

CONTRACTS = Path(__file__).resolve().parent
RECEIPT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: what it takes to deploy it (``bytecode``) and to talk to it (``abi``)."""

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: str  # 0x hex creation code, without constructor arguments
    deployed_bytecode: str  # 0x hex runtime code, what eth_getCode returns once deployed

    def constructor_types(self) -> list[str]:
        """The ABI types of the constructor's parameters (none when it has no constructor)."""
        for entry in self.abi:
            if entry["type"] == "constructor":
                return [collapse_if_tuple(param) for param in entry["inputs"]]
        return []


class Reverted(WardenError):
    """The chain reverted a call or transaction; ``reason`` is its decoded revert reason, if any."""

    def __init__(self, what: str, reason: str | None, data: str | None = None):
        super().__init__(f"{what} reverted" + (f": {reason}" if reason else " (no reason given)"))
        self.reason, self.data = reason, data


@cache
def artifact(name: str) -> Artifact:
    """The committed artifact ``<name>.json`` (e.g. ``artifact("WardenToken")``)."""
    path = CONTRACTS / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONTRACTS.glob("*.json"))) or "none"
        raise FileNotFoundError(
            f"no contract artifact {path}; known: {known}. Add {name}.sol and run `python -m infra.contracts.build`"
        )
    document = json.loads(path.read_text(encoding="utf-8"))
    return Artifact(
        name=document["contract"],
        abi=tuple(document["abi"]),
        bytecode=document["bytecode"],
        deployed_bytecode=document["deployed_bytecode"],
    )


def selector(signature: str) -> bytes:
    """The 4-byte function selector of ``signature``, e.g. ``selector("transfer(address,uint256)")``."""
    return function_signature_to_4byte_selector(signature)


def _parameter_types(signature: str) -> list[str]:
    """The parameter types of ``name(type1,type2,...)``, tuples such as ``(uint256,address)`` kept whole."""
    open_at = signature.find("(")
    if open_at <= 0 or not signature.endswith(")") or " " in signature:
        raise ValueError(
            f"{signature!r} is not a canonical function signature; write it as "
            "name(type1,type2), no spaces and no parameter names, e.g. transfer(address,uint256)"
        )
    inner = signature[open_at + 1 : -1]
    types, depth, start = [], 0, 0
    for at, char in enumerate(inner):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            types.append(inner[start:at])
            start = at + 1
    if inner:
        types.append(inner[start:])
    if depth != 0 or "" in types:
        raise ValueError(f"{signature!r}: unbalanced parentheses or an empty parameter type")
    return types


def calldata(signature: str, *args: Any) -> str:
    """0x hex calldata: the selector of ``signature`` and ``args`` ABI-encoded as its parameter types."""
    types = _parameter_types(signature)
    if len(types) != len(args):
        raise TypeError(f"{signature} takes {len(types)} argument(s), got {len(args)}")
    return "0x" + (selector(signature) + abi_encode(types, list(args))).hex()


def _reverted(what: str, exc: RpcError) -> Reverted | RpcError:
    """``exc`` as ``Reverted`` when the node says the EVM reverted; any other RPC error as it is."""
    if exc.data is None and "revert" not in exc.message:
        return exc
    # The pipeline's own reading of a revert payload (Error(string), Panic(uint256), or its bytes).
    decoded = decode_revert(exc.data) if exc.data else None
    reason = (
        (decoded if decoded != "reverted without a reason" else None)
        or exc.message.removeprefix("execution reverted").lstrip(": ")
        or None
    )
    return Reverted(what, reason, exc.data if isinstance(exc.data, str) else None)


async def send(node: JsonRpc, sender: str, to: str | None, data: str, value: int = 0) -> dict[str, Any]:
    """Send a transaction from the unlocked account ``sender`` and return its receipt once mined.

    ``to=None`` creates a contract. The node estimates the gas, so a transaction that would revert
    is refused before it is sent; either way that raises ``Reverted``.
    """
    tx: dict[str, str] = {"from": sender, "data": data, "value": hex(value)}
    if to is not None:
        tx["to"] = to
    what = f"transaction from {sender} to {to or 'a new contract'}"
    try:
        tx_hash = await node.call("eth_sendTransaction", tx)
    except RpcError as exc:
        raise _reverted(what, exc) from exc
    deadline = time.monotonic() + RECEIPT_TIMEOUT_S
    while (receipt := await node.call("eth_getTransactionReceipt", tx_hash)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{what}: no receipt for {tx_hash} after {RECEIPT_TIMEOUT_S:.0f} s; "
                "is the node mining (Anvil automine, or --block-time)?"
            )
        await asyncio.sleep(0.05)
    if int(receipt["status"], 16) != 1:
        # A receipt carries no revert reason: replay the call on the state before its block for it.
        before = hex(int(receipt["blockNumber"], 16) - 1)
        try:
            await node.call("eth_call", tx, before)
        except RpcError as exc:
            replayed = _reverted(what, exc)
            if isinstance(replayed, Reverted):
                raise Reverted(f"{what} (mined as {tx_hash})", replayed.reason, replayed.data) from exc
        raise Reverted(f"{what} (mined as {tx_hash})", None)
    mined: dict[str, Any] = receipt
    return mined


async def call(node: JsonRpc, to: str, data: str) -> bytes:
    """``eth_call`` at the latest block: the bytes ``to`` returns for ``data`` (raises ``Reverted``)."""
    try:
        result = await node.call("eth_call", {"to": to, "data": data}, "latest")
    except RpcError as exc:
        raise _reverted(f"call to {to}", exc) from exc
    return bytes.fromhex(result.removeprefix("0x"))


async def deploy(node: JsonRpc, name: str, *constructor_args: Any, sender: str) -> str:
    """Deploy the contract ``name`` from the unlocked account ``sender``; return its EIP-55 address."""
    compiled = artifact(name)
    types = compiled.constructor_types()
    if len(types) != len(constructor_args):
        raise TypeError(
            f"{name}'s constructor takes {len(types)} argument(s) ({', '.join(types) or 'none'}), "
            f"got {len(constructor_args)}"
        )
    code = compiled.bytecode + abi_encode(types, list(constructor_args)).hex()
    try:
        receipt = await send(node, sender, None, code)
    except Reverted as exc:
        raise Reverted(f"deploying {name} from {sender}", exc.reason, exc.data) from exc
    if not receipt.get("contractAddress"):
        raise RuntimeError(f"deploying {name}: the receipt {receipt['transactionHash']} names no contract address")
    return to_checksum_address(receipt["contractAddress"])
