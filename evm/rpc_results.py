"""The JSON-RPC answers of an Ethereum node that Warden reads, as the execution APIs specify
them: a log, and a call result of ``eth_simulateV1``. They are typed, not checked: whoever reads
one takes each field as absent or malformed until it has read it (a node is not trusted to follow
the specification)."""

from __future__ import annotations

from typing import TypedDict


class Log(TypedDict, total=False):
    """An event a call emitted: the emitting contract, its topics and data (hex). With transfer
    tracing, a native transfer is a log of the pseudo-address 0xeeee...eeee."""

    address: str
    topics: list[str]
    data: str


class CallError(TypedDict, total=False):
    """Why a call failed: the node's message, and the revert data when it returns them."""

    message: str
    code: int
    data: str


class CallResult(TypedDict, total=False):
    """One call of an ``eth_simulateV1`` block: ``status`` ``"0x1"`` when it succeeded, the gas it
    used, what it returned, its logs, and why it failed."""

    status: str
    gasUsed: str
    returnData: str
    logs: list[Log]
    error: CallError
