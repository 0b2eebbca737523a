"""Where value really moves: the token transfers, approvals and delegations an intent makes.

The native ``value`` is only part of what a transaction can move. A call to a token contract
moves that token (``transfer``), or hands a spender the power to move it (``approve``,
``setApprovalForAll``), with a value of 0; an EIP-7702 authorization hands the whole account to
a contract's code. This module reads each of them into `Movement`s with ``eth-abi``, so the
guardrails can apply the recipient allowlist and the per-asset limits to them
(`rules.assets.check_assets`); `rules.typed_movements` does the same for EIP-712 documents,
and `balance_changes` and `landings` read what a simulation shows moved.

How calldata is read is decided by the policy, never guessed: ERC-20 and ERC-721 share the
selectors of ``transferFrom`` and ``approve``, so a contract's standard comes from its entry in
``asset_limits``. Calldata is accepted only in its canonical ABI encoding (what eth-abi encodes
back from the decoded values, byte for byte), so the bytes the token runs are exactly the
values judged here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address

from evm.rpc_results import Log
from schemas.codes import Code
from schemas.errors import WardenError
from schemas.intent import TransactionIntent
from schemas.policy import AgentPolicy, AssetLimit

NATIVE = "native"


@dataclass(frozen=True)
class TokenFunction:
    signature: str
    kind: str  # transfer | approval | operator
    # Which decoded arguments are the source, the counterparty (recipient, spender, operator) and the amount.
    source: int | None
    counterparty: int
    amount: int | None = None
    token_id: int | None = None

    @property
    def selector(self) -> str:
        return "0x" + function_signature_to_4byte_selector(self.signature).hex()

    @property
    def types(self) -> list[str]:
        inner = self.signature[self.signature.index("(") + 1 : -1]
        return inner.split(",") if inner else []


# The functions each standard's contracts are read for. A source of None is the sender itself.
TOKEN_FUNCTIONS: dict[str, tuple[TokenFunction, ...]] = {
    "erc20": (
        TokenFunction("transfer(address,uint256)", "transfer", None, 0, amount=1),
        TokenFunction("transferFrom(address,address,uint256)", "transfer", 0, 1, amount=2),
        TokenFunction("approve(address,uint256)", "approval", None, 0, amount=1),
        TokenFunction("increaseAllowance(address,uint256)", "approval", None, 0, amount=1),
    ),
    "erc721": (
        TokenFunction("transferFrom(address,address,uint256)", "transfer", 0, 1, token_id=2),
        TokenFunction("safeTransferFrom(address,address,uint256)", "transfer", 0, 1, token_id=2),
        TokenFunction("safeTransferFrom(address,address,uint256,bytes)", "transfer", 0, 1, token_id=2),
        TokenFunction("approve(address,uint256)", "approval", None, 0, token_id=1),
        TokenFunction("setApprovalForAll(address,bool)", "operator", None, 0, amount=1),
    ),
    "erc1155": (
        TokenFunction(
            "safeTransferFrom(address,address,uint256,uint256,bytes)", "transfer", 0, 1, amount=3, token_id=2
        ),
        TokenFunction(
            "safeBatchTransferFrom(address,address,uint256[],uint256[],bytes)", "transfer", 0, 1, amount=3, token_id=2
        ),
        TokenFunction("setApprovalForAll(address,bool)", "operator", None, 0, amount=1),
    ),
}
_BY_SELECTOR = {standard: {f.selector: f for f in functions} for standard, functions in TOKEN_FUNCTIONS.items()}
# Every selector some standard reads: on a contract the policy does not list as an asset, these
# are refused rather than waved through as "some other call".
TOKEN_SELECTORS = frozenset(s for by in _BY_SELECTOR.values() for s in by)


@dataclass(frozen=True)
class Movement:
    """One thing an intent does with value. ``amount`` is in the asset's base units (an NFT
    counts 1); for ``operator`` (setApprovalForAll) it is 1 to grant and 0 to revoke."""

    asset: str  # the token contract, NATIVE, or for a delegation the agent's account ("account")
    standard: str  # erc20 | erc721 | erc1155 | native | eip7702
    # transfer | approval | operator | delegation | proceeds (what an order pays out, to ``to``)
    kind: str
    source: str | None  # whose tokens (None: the agent's own account)
    to: str  # recipient, spender, operator or delegate
    amount: int
    token_ids: tuple[int, ...] = ()
    via: str = ""  # the function or EIP-712 type it was read from

    def facts(self) -> dict[str, Any]:
        # Amounts and ids as decimal strings: JSON readers elsewhere lose integers past 2**53.
        return {
            "asset": self.asset,
            "standard": self.standard,
            "kind": self.kind,
            "from": self.source,
            "to": self.to,
            "amount": str(self.amount),
            "token_ids": [str(i) for i in self.token_ids],
            "via": self.via,
        }


class MalformedOperation(WardenError, ValueError):
    """Calldata or typed data that claims to be a token operation but does not decode as one."""

    def __init__(self, code: Code, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def selector_of(data: str) -> str | None:
    return data[:10] if len(data) >= 10 else None


def token_function(asset: AssetLimit, data: str) -> TokenFunction | None:
    """The token function of ``asset``'s standard that ``data`` calls, by its selector, if any."""
    return _BY_SELECTOR[asset.standard].get(data[:10])


def decode_call(asset: AssetLimit, data: str) -> Movement | None:
    """The movement a call to ``asset``'s contract makes, or None when the selector is not one of
    its standard's token functions (then it is some other call, for ``contract_calls`` to judge)."""
    function = token_function(asset, data)
    if function is None:
        return None
    body = bytes.fromhex(data[10:])
    try:
        args = abi_decode(function.types, body, strict=True)
        canonical = abi_encode(function.types, args) == body
    except Exception as exc:  # eth-abi raises several types for bad input; any of them means unreadable
        raise MalformedOperation(
            Code.CALLDATA_MALFORMED, f"calldata for {function.signature} on {asset.label} does not decode: {exc}"
        ) from None
    if not canonical:
        raise MalformedOperation(
            Code.CALLDATA_MALFORMED,
            f"calldata for {function.signature} on {asset.label} is not in "
            "canonical ABI encoding (extra or re-pointed bytes); encode the "
            "arguments with a standard ABI encoder",
        )
    ids = () if function.token_id is None else _as_tuple(args[function.token_id])
    if function.amount is None:  # ERC-721: each token id is one token
        amount = len(ids)
    elif function.kind == "operator":
        amount = 1 if args[function.amount] else 0
    else:
        amounts = _as_tuple(args[function.amount])
        # An ERC-1155 transfer moves one amount per token id. Only transfers: setApprovalForAll
        # has no ids, and its bool is no amount to pair with them.
        if asset.standard == "erc1155" and len(ids) != len(amounts):
            raise MalformedOperation(
                Code.CALLDATA_MALFORMED, f"{function.signature} on {asset.label}: ids and amounts differ in length"
            )
        amount = sum(amounts)
    source = None if function.source is None else to_checksum_address(args[function.source])
    return Movement(
        asset.token,
        asset.standard,
        function.kind,
        source,
        to_checksum_address(args[function.counterparty]),
        amount,
        ids,
        function.signature.split("(")[0],
    )


def _as_tuple(value: Any) -> tuple[int, ...]:  # a decoded ABI value: an int, or a list of them
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


# --- the intent as a whole ------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """What an intent does: its movements, and the other call it makes (contract, selector) that
    no asset rule reads, if any."""

    movements: tuple[Movement, ...]
    other_call: tuple[str, str] | None = None


def transaction_to(intent: TransactionIntent) -> str:
    """A transaction intent's ``to``: its schema requires one (`TransactionIntent._kind_fields`),
    so an intent without it was built past validation, and nothing about it is judged."""
    if intent.to is None:
        raise ValueError(
            f"intent {intent.intent_id} ({intent.intent_type}) has no to; the schema requires one for a transaction"
        )
    return intent.to


def movements_of(intent: TransactionIntent, policy: AgentPolicy) -> Reading:
    """Every movement an intent makes, read by the policy's asset rules. Raises `MalformedOperation` for
    calldata or typed data that claims a token operation and does not decode as one."""
    if intent.intent_type != "transaction":  # typed data: `rules.typed_movements`
        return Reading(())
    to = transaction_to(intent)
    found: list[Movement] = []
    if intent.value_wei:
        found.append(Movement(NATIVE, "native", "transfer", None, to, intent.value_wei, via="value"))
    found.extend(
        Movement("account", "eip7702", "delegation", None, a.address, 0, via="authorization")
        for a in intent.authorization_list
    )
    for declared in intent.declared_outflows:
        # What a call is said to take (a router pulling with transferFrom): the contract called is
        # who takes it. Counted like a transfer, and simulation holds the call to it.
        listed = policy.asset(intent.chain, declared.token)
        found.append(
            Movement(
                declared.token,
                "erc20" if listed is None else listed.standard,
                "transfer",
                None,
                to,
                declared.amount,
                via="declared",
            )
        )
    data = intent.data
    if data == "0x":
        return Reading(tuple(found))
    asset = policy.asset(intent.chain, to)
    movement = None if asset is None else decode_call(asset, data)
    if movement is not None:
        return Reading(tuple(found + [movement]))
    return Reading(tuple(found), (to, selector_of(data) or data))


def declared_outflows(reading: Reading, sender: str) -> dict[str, int]:
    """What the intent says leaves the sender's account, per asset: its value and the amounts of
    its transfers from the sender. Approvals move nothing by themselves."""
    out: dict[str, int] = {}
    for move in reading.movements:
        if move.kind == "transfer" and move.source in (None, sender):
            out[move.asset] = out.get(move.asset, 0) + move.amount
    return out


# --- what a simulation saw -------------------------------------------------------------------------

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
TRANSFER_SINGLE_TOPIC = "0x" + keccak(text="TransferSingle(address,address,address,uint256,uint256)").hex()
TRANSFER_BATCH_TOPIC = "0x" + keccak(text="TransferBatch(address,address,address,uint256[],uint256[])").hex()
# eth_simulateV1 with traceTransfers reports native transfers as ERC-20 Transfer logs of this address.
NATIVE_TRANSFER_ADDRESS = "0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE"


@dataclass(frozen=True)
class BalanceChange:
    asset: str
    outgoing: int
    incoming: int

    def facts(self) -> dict[str, str]:
        return {
            "asset": self.asset,
            "out": str(self.outgoing),
            "in": str(self.incoming),
            "net": str(self.incoming - self.outgoing),
        }


def transfers(logs: list[Log]) -> list[tuple[str, str, str, int]]:
    """(asset, source, destination, amount) of each transfer in a simulation's logs, in the order
    they were made: ERC-20 and ERC-721 Transfer (an NFT counts 1), ERC-1155 TransferSingle/Batch,
    and native transfers (asset ``native``). Addresses are lowercase hex; the asset is ``native``
    or the token contract, checksummed."""
    found: list[tuple[str, str, str, int]] = []
    for log in logs:
        contract = to_checksum_address(log["address"])
        asset = NATIVE if contract == NATIVE_TRANSFER_ADDRESS else contract
        try:
            moves = _log_moves([t.lower() for t in log.get("topics", ())], bytes.fromhex(log.get("data", "0x")[2:]))
        except Exception:  # a log that only looks like a transfer (another event with the same topic) is not one
            continue
        found.extend((asset, source, dest, amount) for source, dest, amount in moves)
    return found


def balance_changes(logs: list[Log], account: str) -> list[BalanceChange]:
    """The account's outgoing and incoming amounts per asset in a simulation's logs (`transfers`)."""
    totals: dict[str, list[int]] = {}
    me = account.lower()
    for asset, source, dest, amount in transfers(logs):
        entry = totals.setdefault(asset, [0, 0])
        if source == me:
            entry[0] += amount
        if dest == me:
            entry[1] += amount
    return [BalanceChange(asset, out, inc) for asset, (out, inc) in totals.items() if out or inc]


def _log_moves(topics: list[str], data: bytes) -> list[tuple[str, str, int]]:
    def addr(topic: str) -> str:
        return "0x" + topic[-40:]

    if topics and topics[0] == TRANSFER_TOPIC:
        if len(topics) == 3:  # ERC-20 (and the native pseudo-logs): the amount is the data
            return [(addr(topics[1]), addr(topics[2]), abi_decode(["uint256"], data)[0])]
        if len(topics) == 4:  # ERC-721: the token id is indexed; one token moves
            return [(addr(topics[1]), addr(topics[2]), 1)]
    if topics and topics[0] == TRANSFER_SINGLE_TOPIC and len(topics) == 4:
        _, amount = abi_decode(["uint256", "uint256"], data)
        return [(addr(topics[2]), addr(topics[3]), amount)]
    if topics and topics[0] == TRANSFER_BATCH_TOPIC and len(topics) == 4:
        _, amounts = abi_decode(["uint256[]", "uint256[]"], data)
        return [(addr(topics[2]), addr(topics[3]), sum(amounts))]
    return []


APPROVAL_TOPIC = "0x" + keccak(text="Approval(address,address,uint256)").hex()
APPROVAL_FOR_ALL_TOPIC = "0x" + keccak(text="ApprovalForAll(address,address,bool)").hex()


@dataclass(frozen=True)
class Landing:
    """Where an asset that left the account ended up in a simulation: a holder other than the
    account whose balance of it rose, and the hops that asset made, in the order they were made."""

    asset: str
    holder: str
    amount: int
    route: tuple[str, ...]

    def facts(self) -> dict[str, Any]:
        return {"asset": self.asset, "holder": self.holder, "amount": str(self.amount), "route": list(self.route)}


def landings(logs: list[Log], account: str) -> list[Landing]:
    """Every place value that left ``account`` lands, per asset. A contract it only passes through
    (a router, a forwarder, a multicall) gains nothing and is not a landing; where it stops is."""
    me = account.lower()
    hops: dict[str, list[tuple[str, str, int]]] = {}
    for asset, source, dest, amount in transfers(logs):
        hops.setdefault(asset, []).append((source, dest, amount))
    found: list[Landing] = []
    for asset, moves in hops.items():
        if not any(source == me for source, _, _ in moves):
            continue
        net: dict[str, int] = {}
        for source, dest, amount in moves:
            net[source] = net.get(source, 0) - amount
            net[dest] = net.get(dest, 0) + amount
        route = tuple(f"{to_checksum_address(s)} -> {to_checksum_address(d)} {a}" for s, d, a in moves)
        found.extend(
            Landing(asset, to_checksum_address(holder), gained, route)
            for holder, gained in net.items()
            if holder != me and gained > 0
        )
    return found


def grants(logs: list[Log], account: str) -> list[tuple[str, str]]:
    """(token, spender or operator) for every allowance over ``account``'s tokens that a
    simulation shows set (an ERC-20/721 ``Approval`` above zero, ``ApprovalForAll(true)``)."""
    me = account.lower()
    found: list[tuple[str, str]] = []
    for log in logs:
        topics = [t.lower() for t in log.get("topics", ())]
        if len(topics) < 3 or topics[0] not in (APPROVAL_TOPIC, APPROVAL_FOR_ALL_TOPIC) or topics[1][-40:] != me[2:]:
            continue
        spender = "0x" + topics[2][-40:]
        if int(spender, 16) == 0:
            continue  # an ERC-721 approval cleared
        if len(topics) == 3 and int(log.get("data", "0x")[2:] or "0", 16) == 0:
            continue  # approve(spender, 0) or ApprovalForAll(operator, false): a revocation
        found.append((to_checksum_address(log["address"]), to_checksum_address(spender)))
    return found
