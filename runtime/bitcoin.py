"""What Warden reads from and sends to a Bitcoin node over its JSON-RPC (`runtime.rpc.JsonRpc`): the
chain's height, an output while it is unspent (many in one batch), a transaction's confirmations,
an address's unspent outputs, sends and the node's verdict on a transaction without sending it,
and blocks mined on regtest.

The node is btcd (``--txindex --addrindex``: `searchrawtransactions` is its address index), or any
node with the same calls. It has no wallet: an address's unspent outputs are read from its history.
Amounts are integers in satoshis; a node's JSON amount in BTC is converted exactly (`satoshis`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from btc import addresses
from runtime.rpc import Node, RpcError, call_each
from schemas.errors import WardenError

SATS_PER_BTC = 10**8
# No amount is more: 21 million BTC.
MAX_MONEY = 21_000_000 * SATS_PER_BTC
# A coinbase output is spendable in a block 100 after its own: with 100 confirmations, by the next block.
COINBASE_MATURITY = 100
# btcd's "No information available about ..." (an unknown transaction; an address with no history).
NO_INFORMATION = -5
# testmempoolaccept's fee ceiling, in BTC per 1000 vbytes: the node's sanity bound, far over any fee a
# policy allows (Warden's rules judge the fee), so that a fee is never the node's reason to refuse.
TEST_MAX_FEE_RATE = 0.1
# Transactions asked of the address index at a time, and outputs looked up at once.
HISTORY_PAGE = 500
LOOKUPS_AT_ONCE = 8


def satoshis(value: object, method: str = "") -> int:
    """A node's amount in BTC (a JSON number: float, or int when whole) as satoshis, exactly:
    ``Decimal(repr(value)) * 10**8``, never through binary floating point. RpcError (naming
    ``method``) for anything else: a fraction of a satoshi, a negative amount, more than 21e6 BTC."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _not_an_amount(method, f"{value!r} is not a number of BTC")
    try:
        exact = Decimal(repr(value)) * SATS_PER_BTC
    except InvalidOperation:
        raise _not_an_amount(method, f"{value!r} is not a number of BTC") from None
    if not exact.is_finite() or exact != exact.to_integral_value():
        raise _not_an_amount(method, f"{value!r} BTC is not a whole number of satoshis (8 decimals at most)")
    if not 0 <= exact <= MAX_MONEY:
        raise _not_an_amount(method, f"{value!r} BTC is not an amount between 0 and 21,000,000 BTC")
    return int(exact)


def _not_an_amount(method: str, what: str) -> RpcError:
    error = RpcError(method, 0, f"the node answered an amount that is not one: {what}")
    error.next_step = "check that the chain's RPC URL (WARDEN_RPC_URL_<CHAIN>) names a Bitcoin node"
    return error


def _unexpected(method: str, answer: object, wanted: str) -> RpcError:
    error = RpcError(method, 0, f"the node answered {type(answer).__name__}, not {wanted}")
    error.next_step = "check that the chain's RPC URL (WARDEN_RPC_URL_<CHAIN>) names a Bitcoin node (btcd)"
    return error


@dataclass(frozen=True)
class TxOut:
    """An unspent output as the node holds it (in a block, or made by a transaction in its mempool)."""

    amount: int  # satoshis
    script: bytes  # its scriptPubKey
    confirmations: int  # 0: made by a transaction in the mempool
    coinbase: bool


@dataclass(frozen=True)
class TxStatus:
    confirmations: int  # 0: in the mempool
    block_hash: str | None  # None while in the mempool


@dataclass(frozen=True)
class Utxo:
    """An unspent output of an address: where it is (``txid``:``vout``), what it holds."""

    txid: str
    vout: int
    amount: int  # satoshis
    script: bytes
    confirmations: int


async def block_count(node: Node) -> int:
    """The height of the node's best block."""
    answer = await node.call("getblockcount")
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise _unexpected("getblockcount", answer, "a height")
    return answer


async def tx_out(node: Node, txid: str, vout: int, include_mempool: bool = True) -> TxOut | None:
    """Output ``vout`` of ``txid`` while it is unspent (with ``include_mempool``, one made by a
    mempool transaction too; without, only one in a block); None when it is spent or was never
    made. btcd's `gettxout` does not see a spend that is still in its mempool: an output such a
    transaction spends is answered until the spend is mined (`unspent` leaves it out, from the
    address's history)."""
    return _tx_out(await node.call("gettxout", txid, vout, include_mempool), include_mempool)


async def tx_outs(node: Node, outpoints: Sequence[tuple[str, int]], include_mempool: bool = True) -> list[TxOut | None]:
    """`tx_out` of each (txid, vout) of ``outpoints``, in their order, asked of the node in one
    JSON-RPC batch (`runtime.rpc.call_each`): one request however many there are, so a long list
    costs the node's lookups, not a round trip each."""
    calls = [(txid, vout, include_mempool) for txid, vout in outpoints]
    return [_tx_out(answer, include_mempool) for answer in await call_each(node, "gettxout", calls)]


def _tx_out(answer: object, include_mempool: bool) -> TxOut | None:
    """A `gettxout` answer as a TxOut (None: no unspent output there)."""
    if answer is None:
        return None
    if not isinstance(answer, dict):
        raise _unexpected("gettxout", answer, "an output")
    try:
        script = bytes.fromhex(answer["scriptPubKey"]["hex"])
        confirmations = int(answer.get("confirmations") or 0)
    except (KeyError, TypeError, ValueError):
        raise _unexpected("gettxout", answer, "an output with its scriptPubKey and confirmations") from None
    if not include_mempool and confirmations < 1:
        return None  # made by a transaction not in a block yet
    return TxOut(satoshis(answer.get("value"), "gettxout"), script, confirmations, bool(answer.get("coinbase")))


async def send_raw(node: Node, raw: bytes) -> str:
    """Send the signed transaction ``raw``: its txid. RpcError with the node's reason when it is refused."""
    answer = await node.call("sendrawtransaction", raw.hex())
    if not isinstance(answer, str):
        raise _unexpected("sendrawtransaction", answer, "a txid")
    return answer


async def test_accept(node: Node, raw: bytes) -> str | None:
    """Whether the node's mempool would take the signed transaction ``raw`` now, without sending it:
    None if it would, else the node's reason (``bad-txns-inputs-missingorspent``, ...)."""
    answer = await node.call("testmempoolaccept", [raw.hex()], TEST_MAX_FEE_RATE)
    if not isinstance(answer, list) or len(answer) != 1 or not isinstance(answer[0], dict):
        raise _unexpected("testmempoolaccept", answer, "one verdict")
    verdict = answer[0]
    if verdict.get("allowed") is True:
        return None
    return str(verdict.get("reject-reason") or verdict.get("reject_reason") or "refused, no reason given")


async def transaction(node: Node, txid: str) -> TxStatus | None:
    """Where ``txid`` is: in a block (its confirmations and hash) or the mempool (0, None); None
    when the node knows no such transaction."""
    try:
        answer = await node.call("getrawtransaction", txid, 1)
    except RpcError as exc:
        if exc.code == NO_INFORMATION:
            return None
        raise
    if not isinstance(answer, dict):
        raise _unexpected("getrawtransaction", answer, "a transaction")
    block_hash = answer.get("blockhash") or None
    confirmations = int(answer.get("confirmations") or 0) if block_hash else 0
    return TxStatus(confirmations, block_hash)


# btcd mines one `generate` at a time and refuses another meanwhile ("already CPU mining"): the
# stack's miner and `warden fund` both ask, so a refused one is asked again, this many times.
GENERATE_TRIES = 50


async def mine(node: Node, blocks: int) -> list[str]:
    """Mine ``blocks`` blocks at once (regtest; to the node's mining address): their hashes."""
    for _ in range(GENERATE_TRIES - 1):
        try:
            answer = await node.call("generate", blocks)
            break
        except RpcError as exc:
            if "already CPU mining" not in exc.message:
                raise
            await asyncio.sleep(0.1)
    else:
        answer = await node.call("generate", blocks)
    if not isinstance(answer, list) or not all(isinstance(h, str) for h in answer):
        raise _unexpected("generate", answer, "block hashes")
    return answer


async def unspent(node: Node, address: str, enough: int | None = None) -> list[Utxo]:
    """The unspent outputs paying ``address``, oldest first, each looked up in the node's UTXO set
    (mempool included): those its history (the address index, `searchrawtransactions`) names that
    no transaction of that history spends and `gettxout` still holds. A coinbase output counts
    once mature (`COINBASE_MATURITY`), not before. ``enough``: stop reading the history once the
    outputs found add up to that many satoshis (a payer choosing coins from a long history)."""
    script = _script_of(address)
    found: list[Utxo] = []
    spent: set[tuple[str, int]] = set()
    skip = 0
    while True:
        page = await _history(node, address, skip)
        spent |= {(i["txid"], int(i["vout"])) for tx in page for i in tx.get("vin", ()) if "txid" in i}
        candidates = [c for c in _paying(page, script) if c not in spent]
        found += [u for u in await _looked_up(node, candidates) if u is not None]
        # A later page's transaction may spend an earlier page's output, and gettxout does not see a
        # spend that is still in the mempool.
        found = [u for u in found if (u.txid, u.vout) not in spent]
        if len(page) < HISTORY_PAGE or (enough is not None and sum(u.amount for u in found) >= enough):
            return found
        skip += len(page)


@dataclass(frozen=True)
class Spender:
    """A transaction that spends an output: its txid, and its confirmations (0: in the mempool)."""

    txid: str
    confirmations: int


# The newest transactions of an address read when looking for what spent one of its outputs.
SPENDER_PAGES = 4


async def spenders(node: Node, address: str, outpoints: Iterable[str], but: str) -> dict[str, Spender]:
    """The transactions other than ``but`` that spend any of ``outpoints`` (``txid:vout``, outputs
    paying ``address``), as the node's address index shows them: its mempool first, then its blocks,
    newest first, at most `SPENDER_PAGES` pages. Outpoint → its spender; an outpoint no transaction
    seen spends is left out (a node that knows nothing of the address answers nothing)."""
    wanted = set(outpoints)
    found: dict[str, Spender] = {}
    for page_number in range(SPENDER_PAGES):
        page = await _history(node, address, page_number * HISTORY_PAGE, reverse=True)
        for tx in page:
            if tx.get("txid") == but:
                continue
            for spent in tx.get("vin", ()):
                outpoint = f"{spent.get('txid')}:{spent.get('vout')}"
                if outpoint in wanted and outpoint not in found:
                    found[outpoint] = Spender(str(tx["txid"]), int(tx.get("confirmations") or 0))
        if len(page) < HISTORY_PAGE or wanted <= found.keys():
            break
    return found


class NotAnAddress(WardenError, ValueError):
    """`unspent` was given something that is not a Bitcoin address."""

    next_step = "give a Bitcoin address (bech32 bc1…/tb1…/bcrt1…, or base58)"


def _script_of(address: str) -> bytes:
    """``address``'s scriptPubKey."""
    try:
        return addresses.script_of(addresses.parse_address(address))
    except ValueError:
        raise NotAnAddress(f"{address!r} is not a Bitcoin address") from None


async def _history(node: Node, address: str, skip: int, reverse: bool = False) -> list[dict[str, Any]]:
    """One page of the transactions naming ``address``, oldest first (``reverse``: its mempool's,
    then the newest first); [] past the end (btcd answers an address with no history, and a page
    past its end, with "No information available")."""
    try:
        newest_first = (0, True) if reverse else ()  # vinextra 0, reverse
        answer = await node.call("searchrawtransactions", address, 1, skip, HISTORY_PAGE, *newest_first)
    except RpcError as exc:
        if exc.code == NO_INFORMATION:
            return []
        raise
    if not isinstance(answer, list):
        raise _unexpected("searchrawtransactions", answer, "a list of transactions")
    return answer


def _paying(page: Iterable[dict[str, Any]], script: bytes) -> list[tuple[str, int]]:
    """The outputs of ``page``'s transactions that pay ``script``: (txid, vout)."""
    wanted = script.hex()
    return [
        (tx["txid"], int(out["n"]))
        for tx in page
        for out in tx.get("vout", ())
        if out.get("scriptPubKey", {}).get("hex") == wanted
    ]


async def _looked_up(node: Node, outputs: list[tuple[str, int]]) -> list[Utxo | None]:
    """Each output as a Utxo while it is unspent and spendable (a coinbase: mature), else None;
    a few lookups at once (btcd serves 10 clients at a time by default)."""
    gate = asyncio.Semaphore(LOOKUPS_AT_ONCE)

    async def one(txid: str, vout: int) -> Utxo | None:
        async with gate:
            out = await tx_out(node, txid, vout)
        if out is None or (out.coinbase and out.confirmations < COINBASE_MATURITY):
            return None
        return Utxo(txid, vout, out.amount, out.script, out.confirmations)

    return list(await asyncio.gather(*(one(txid, vout) for txid, vout in outputs)))
