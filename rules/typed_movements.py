"""What an EIP-712 document moves: the value-moving documents Warden reads, and how it tells one it cannot.

A signature over typed data moves value only through the contract that verifies it, and a contract
verifies one type hash: the primary type's name with its fields, and the structs it references. So
each kind of value-moving document (`ValueShape`: a Permit, a Permit2 transfer, ...) is known by
that exact shape, and a document that borrows its name with other fields, or its fields under
another name, is read as that kind or refused, never waved
through as "some other message".

Read as movements (then judged by the same allowlist, per-asset limits, unlimited-approval rule and
approval thresholds as calldata, `rules.assets.check_assets`):

* ERC-2612 ``Permit`` and DAI's ``Permit`` (``allowed`` = an allowance of 2**256-1);
* Permit2: ``PermitSingle``, ``PermitBatch``, ``PermitTransferFrom``, ``PermitBatchTransferFrom``
  and their witness forms (UniswapX orders are these: the input is what the reactor may take);
* EIP-3009 ``TransferWithAuthorization`` and ``ReceiveWithAuthorization`` (a transfer, by whoever
  submits the signature);
* Seaport ``OrderComponents``: every offer item leaves the account for whoever fills the order;
* CoW Protocol's ``GPv2Order`` and 1inch's limit ``Order`` (v4): the sell side leaves the account.

What an order pays out must reach the account itself or an allowlisted address: a ``proceeds``
movement names any other recipient (a CoW ``receiver``, a UniswapX output's ``recipient``, a
Seaport consideration item's ``recipient``, a 1inch ``receiver``), so an order cannot sell the
agent's tokens to be paid to someone else.

`carries_value` says whether a type Warden does not read holds an address and an amount anywhere:
such a type is refused unless the policy names it as moving nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from rules.movements import MalformedOperation, Movement
from schemas.codes import Code
from schemas.fields import MAX_UINT256
from schemas.typed_data import EIP712_VALUE_TYPES, TypedData, parse_typed_int

Shape = tuple[tuple[str, str], ...]

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class ValueShape:
    """One kind of value-moving typed data: the shape its contract verifies and how it is read."""

    label: str  # how reasons name it: "ERC-2612 Permit"
    primary: str  # the primary type's name in the contract's type hash
    shape: Shape  # the primary type's fields, in order
    structs: Mapping[str, Shape]  # the referenced structs, each with its exact fields
    read: Callable[[TypedData, Mapping[str, Any]], list[Movement]]
    witness: bool = False  # the last field is the integrator's own struct ("witness"), any shape


def _address(value: Any, path: str) -> str:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise ValueError(f"{path}: an address is 0x + 40 hex digits, got {value!r}")
    return to_checksum_address(value)


def _uint(value: Any, path: str) -> int:
    number = parse_typed_int(value, path)
    if not 0 <= number <= MAX_UINT256:
        raise ValueError(f"{path}: must be between 0 and 2**256-1, got {number}")
    return number


def _address_word(value: Any, path: str) -> str:
    """An address carried in a uint256 (1inch's ``Address`` type): its high 96 bits must be clear."""
    number = _uint(value, path)
    if number >> 160:
        raise ValueError(
            f"{path}: {number:#x} carries flags above the address's 160 bits; refused rather than guessed at"
        )
    return to_checksum_address(number.to_bytes(20, "big"))


def _contract(typed: TypedData, label: str) -> str:
    contract = typed.verifying_contract
    if contract is None:
        raise ValueError(f"the {label}'s domain has no verifyingContract: no contract to read it for")
    return contract


def _proceeds(asset: str, recipient: str, owner: str | None, amount: int, via: str) -> list[Movement]:
    """What an order pays out, when it is paid to anyone but the order's own account."""
    if recipient in (owner, ZERO_ADDRESS):
        return []
    return [Movement(asset, "erc20", "proceeds", None, recipient, amount, via=via)]


# --- permits ---------------------------------------------------------------------------------------


def _permit_2612(typed: TypedData, message: Mapping[str, Any]) -> list[Movement]:
    return [
        Movement(
            _contract(typed, "Permit"),
            "erc20",
            "approval",
            _address(message["owner"], "message.owner"),
            _address(message["spender"], "message.spender"),
            _uint(message["value"], "message.value"),
            via="Permit",
        )
    ]


def _permit_dai(typed: TypedData, message: Mapping[str, Any]) -> list[Movement]:
    allowed = message["allowed"]
    if not isinstance(allowed, bool):
        raise ValueError(f"message.allowed must be true or false, got {allowed!r}")
    return [
        Movement(
            _contract(typed, "Permit"),
            "erc20",
            "approval",
            _address(message["holder"], "message.holder"),
            _address(message["spender"], "message.spender"),
            MAX_UINT256 if allowed else 0,
            via="Permit (DAI)",
        )
    ]


def _permit2_allowance(typed: TypedData, message: Mapping[str, Any]) -> list[Movement]:
    details = message["details"]
    listed = [details] if typed.primaryType == "PermitSingle" else list(details)
    spender = _address(message["spender"], "message.spender")
    return [
        Movement(
            _address(d["token"], "details.token"),
            "erc20",
            "approval",
            None,
            spender,
            _uint(d["amount"], "details.amount"),
            via=typed.primaryType,
        )
        for d in listed
    ]


def _permit2_transfer(typed: TypedData, message: Mapping[str, Any]) -> list[Movement]:
    permitted = message["permitted"]
    listed = permitted if isinstance(permitted, list) else [permitted]
    spender = _address(message["spender"], "message.spender")
    # A signature transfer lets the spender take the amount once, to wherever it says: what it
    # may take is counted and its spender allowlisted, as for an approval.
    moved = [
        Movement(
            _address(p["token"], "permitted.token"),
            "erc20",
            "approval",
            None,
            spender,
            _uint(p["amount"], "permitted.amount"),
            via=typed.primaryType,
        )
        for p in listed
    ]
    if "witness" in message:
        moved += _witness_proceeds(message["witness"], typed.primaryType)
    return moved


def _witness_proceeds(witness: Any, via: str) -> list[Movement]:
    """A UniswapX order's outputs (its witness's ``outputs``/``baseOutputs``, each with a token,
    amounts and a ``recipient``) are paid to its swapper or they are proceeds to someone else."""
    if not isinstance(witness, Mapping):
        return []
    info = witness.get("info")
    swapper = _address(info["swapper"], "witness.info.swapper") if isinstance(info, Mapping) else None
    moved: list[Movement] = []
    for key in ("outputs", "baseOutputs"):
        for index, output in enumerate(witness.get(key) or ()):
            path = f"witness.{key}[{index}]"
            if not isinstance(output, Mapping) or "recipient" not in output:
                continue
            amount = max(
                (_uint(output[k], f"{path}.{k}") for k in ("startAmount", "endAmount", "amount") if k in output),
                default=0,
            )
            moved += _proceeds(
                _address(output["token"], f"{path}.token"),
                _address(output["recipient"], f"{path}.recipient"),
                swapper,
                amount,
                f"{via} output",
            )
    return moved


# --- EIP-3009 --------------------------------------------------------------------------------------


def _authorization(typed: TypedData, message: Mapping[str, Any]) -> list[Movement]:
    return [
        Movement(
            _contract(typed, typed.primaryType),
            "erc20",
            "transfer",
            _address(message["from"], "message.from"),
            _address(message["to"], "message.to"),
            _uint(message["value"], "message.value"),
            via=typed.primaryType,
        )
    ]


# --- orders ----------------------------------------------------------------------------------------

# Seaport's ItemType: what an offer or consideration item is.
_SEAPORT_ITEMS = {1: "erc20", 2: "erc721", 3: "erc1155", 4: "erc721", 5: "erc1155"}


def _seaport(typed: TypedData, message: Mapping[str, Any]) -> list[Movement]:
    seaport = _contract(typed, "Seaport order")
    offerer = _address(message["offerer"], "message.offerer")
    moved: list[Movement] = []
    for index, item in enumerate(message["offer"]):
        path = f"message.offer[{index}]"
        kind = _uint(item["itemType"], f"{path}.itemType")
        if kind not in _SEAPORT_ITEMS:
            raise ValueError(
                f"{path}.itemType {kind}: a native offer cannot be pulled from an account; only token "
                "offers (ERC-20, ERC-721, ERC-1155) are read"
            )
        standard = _SEAPORT_ITEMS[kind]
        amount = max(_uint(item["startAmount"], f"{path}.startAmount"), _uint(item["endAmount"], f"{path}.endAmount"))
        ids = () if kind in (1, 4, 5) else (_uint(item["identifierOrCriteria"], f"{path}.identifierOrCriteria"),)
        # Whoever fills the order receives the offer, through Seaport: the marketplace is the
        # counterparty the allowlist sees, and every item counts against the asset's limits.
        moved.append(
            Movement(
                _address(item["token"], f"{path}.token"),
                standard,
                "transfer",
                offerer,
                seaport,
                amount,
                ids,
                via="OrderComponents offer",
            )
        )
    for index, item in enumerate(message["consideration"]):
        path = f"message.consideration[{index}]"
        amount = max(_uint(item["startAmount"], f"{path}.startAmount"), _uint(item["endAmount"], f"{path}.endAmount"))
        moved += _proceeds(
            _address(item["token"], f"{path}.token"),
            _address(item["recipient"], f"{path}.recipient"),
            offerer,
            amount,
            "OrderComponents consideration",
        )
    return moved


def _cow(typed: TypedData, message: Mapping[str, Any]) -> list[Movement]:
    settlement = _contract(typed, "CoW order")
    sold = _uint(message["sellAmount"], "message.sellAmount") + _uint(message["feeAmount"], "message.feeAmount")
    moved = [
        Movement(
            _address(message["sellToken"], "message.sellToken"),
            "erc20",
            "transfer",
            None,
            settlement,
            sold,
            via="GPv2Order sell",
        )
    ]
    # receiver 0 pays the owner itself, whoever that is: the signature's own account.
    return moved + _proceeds(
        _address(message["buyToken"], "message.buyToken"),
        _address(message["receiver"], "message.receiver"),
        ZERO_ADDRESS,
        _uint(message["buyAmount"], "message.buyAmount"),
        "GPv2Order receiver",
    )


def _one_inch(typed: TypedData, message: Mapping[str, Any]) -> list[Movement]:
    router = _contract(typed, "1inch order")
    maker = _address_word(message["maker"], "message.maker")
    moved = [
        Movement(
            _address_word(message["makerAsset"], "message.makerAsset"),
            "erc20",
            "transfer",
            maker,
            router,
            _uint(message["makingAmount"], "message.makingAmount"),
            via="1inch Order making",
        )
    ]
    return moved + _proceeds(
        _address_word(message["takerAsset"], "message.takerAsset"),
        _address_word(message["receiver"], "message.receiver"),
        maker,
        _uint(message["takingAmount"], "message.takingAmount"),
        "1inch Order receiver",
    )


# --- the value shapes ----------------------------------------------------------------------------

_TOKEN_PERMISSIONS: Shape = (("token", "address"), ("amount", "uint256"))
_PERMIT_DETAILS: Shape = (("token", "address"), ("amount", "uint160"), ("expiration", "uint48"), ("nonce", "uint48"))
_AUTHORIZATION: Shape = (
    ("from", "address"),
    ("to", "address"),
    ("value", "uint256"),
    ("validAfter", "uint256"),
    ("validBefore", "uint256"),
    ("nonce", "bytes32"),
)
_OFFER_ITEM: Shape = (
    ("itemType", "uint8"),
    ("token", "address"),
    ("identifierOrCriteria", "uint256"),
    ("startAmount", "uint256"),
    ("endAmount", "uint256"),
)
_CONSIDERATION_ITEM: Shape = _OFFER_ITEM + (("recipient", "address"),)

VALUE_SHAPES: tuple[ValueShape, ...] = (
    ValueShape(
        "ERC-2612 Permit",
        "Permit",
        (
            ("owner", "address"),
            ("spender", "address"),
            ("value", "uint256"),
            ("nonce", "uint256"),
            ("deadline", "uint256"),
        ),
        {},
        _permit_2612,
    ),
    ValueShape(
        "DAI Permit",
        "Permit",
        (
            ("holder", "address"),
            ("spender", "address"),
            ("nonce", "uint256"),
            ("expiry", "uint256"),
            ("allowed", "bool"),
        ),
        {},
        _permit_dai,
    ),
    ValueShape(
        "Permit2 PermitSingle",
        "PermitSingle",
        (("details", "PermitDetails"), ("spender", "address"), ("sigDeadline", "uint256")),
        {"PermitDetails": _PERMIT_DETAILS},
        _permit2_allowance,
    ),
    ValueShape(
        "Permit2 PermitBatch",
        "PermitBatch",
        (("details", "PermitDetails[]"), ("spender", "address"), ("sigDeadline", "uint256")),
        {"PermitDetails": _PERMIT_DETAILS},
        _permit2_allowance,
    ),
    ValueShape(
        "Permit2 PermitTransferFrom",
        "PermitTransferFrom",
        (("permitted", "TokenPermissions"), ("spender", "address"), ("nonce", "uint256"), ("deadline", "uint256")),
        {"TokenPermissions": _TOKEN_PERMISSIONS},
        _permit2_transfer,
    ),
    ValueShape(
        "Permit2 PermitBatchTransferFrom",
        "PermitBatchTransferFrom",
        (("permitted", "TokenPermissions[]"), ("spender", "address"), ("nonce", "uint256"), ("deadline", "uint256")),
        {"TokenPermissions": _TOKEN_PERMISSIONS},
        _permit2_transfer,
    ),
    ValueShape(
        "Permit2 PermitWitnessTransferFrom",
        "PermitWitnessTransferFrom",
        (("permitted", "TokenPermissions"), ("spender", "address"), ("nonce", "uint256"), ("deadline", "uint256")),
        {"TokenPermissions": _TOKEN_PERMISSIONS},
        _permit2_transfer,
        witness=True,
    ),
    ValueShape(
        "Permit2 PermitBatchWitnessTransferFrom",
        "PermitBatchWitnessTransferFrom",
        (("permitted", "TokenPermissions[]"), ("spender", "address"), ("nonce", "uint256"), ("deadline", "uint256")),
        {"TokenPermissions": _TOKEN_PERMISSIONS},
        _permit2_transfer,
        witness=True,
    ),
    ValueShape("EIP-3009 TransferWithAuthorization", "TransferWithAuthorization", _AUTHORIZATION, {}, _authorization),
    ValueShape("EIP-3009 ReceiveWithAuthorization", "ReceiveWithAuthorization", _AUTHORIZATION, {}, _authorization),
    ValueShape(
        "Seaport OrderComponents",
        "OrderComponents",
        (
            ("offerer", "address"),
            ("zone", "address"),
            ("offer", "OfferItem[]"),
            ("consideration", "ConsiderationItem[]"),
            ("orderType", "uint8"),
            ("startTime", "uint256"),
            ("endTime", "uint256"),
            ("zoneHash", "bytes32"),
            ("salt", "uint256"),
            ("conduitKey", "bytes32"),
            ("counter", "uint256"),
        ),
        {"OfferItem": _OFFER_ITEM, "ConsiderationItem": _CONSIDERATION_ITEM},
        _seaport,
    ),
    ValueShape(
        "CoW Protocol GPv2Order",
        "Order",
        (
            ("sellToken", "address"),
            ("buyToken", "address"),
            ("receiver", "address"),
            ("sellAmount", "uint256"),
            ("buyAmount", "uint256"),
            ("validTo", "uint32"),
            ("appData", "bytes32"),
            ("feeAmount", "uint256"),
            ("kind", "string"),
            ("partiallyFillable", "bool"),
            ("sellTokenBalance", "string"),
            ("buyTokenBalance", "string"),
        ),
        {},
        _cow,
    ),
    ValueShape(
        "1inch limit Order",
        "Order",
        (
            ("salt", "uint256"),
            ("maker", "uint256"),
            ("receiver", "uint256"),
            ("makerAsset", "uint256"),
            ("takerAsset", "uint256"),
            ("makingAmount", "uint256"),
            ("takingAmount", "uint256"),
            ("makerTraits", "uint256"),
        ),
        {},
        _one_inch,
    ),
)
assert {f.primary for f in VALUE_SHAPES} <= EIP712_VALUE_TYPES


def _fields(typed: TypedData, name: str) -> Shape:
    return tuple((f.name, f.type) for f in typed.types.get(name, ()))


def _primary_shape(typed: TypedData, known: ValueShape) -> Shape:
    fields = _fields(typed, typed.primaryType)
    if known.witness:
        # The witness forms end in one field of the integrator's own struct type.
        if len(fields) != len(known.shape) + 1 or fields[-1][0] != "witness" or fields[-1][1] not in typed.types:
            return ()
        return fields[:-1]
    return fields


def _matches(typed: TypedData, known: ValueShape) -> bool:
    return _primary_shape(typed, known) == known.shape and all(
        _fields(typed, name) == shape for name, shape in known.structs.items()
    )


def value_shape_of(typed: TypedData) -> ValueShape | None:
    """The kind of value-moving document this is, by its exact shape: under the kind's own name,
    or under another name with the same fields (a permit renamed is still a permit to the contract that
    accepts it)."""
    named = [f for f in VALUE_SHAPES if f.primary == typed.primaryType]
    renamed = [f for f in VALUE_SHAPES if not f.witness]  # a witness form is known by its name alone
    return next((known for known in (*named, *renamed) if _matches(typed, known)), None)


def reads_as_value(typed: TypedData) -> bool:
    """Whether Warden judges this document by what it moves: the shape of a value-moving kind, or
    a name one goes by (with other fields it is refused as unreadable, never taken for something else)."""
    return typed.primaryType in EIP712_VALUE_TYPES or value_shape_of(typed) is not None


def read_typed_data(typed: TypedData) -> list[Movement]:
    """The movements a document authorizes: none for one Warden does not read as moving value
    (`check_typed_data` decides those), else its kind's. Raises `MalformedOperation` for a document
    under a value-moving kind's name whose shape or values are not that kind's."""
    shape = value_shape_of(typed)
    if shape is None and typed.primaryType not in EIP712_VALUE_TYPES:
        return []
    if shape is None:
        fields = [f"{t} {n}" for n, t in _fields(typed, typed.primaryType)]
        known = sorted(f.label for f in VALUE_SHAPES if f.primary == typed.primaryType)
        raise MalformedOperation(
            Code.TYPED_DATA_UNREADABLE,
            (
                f"{typed.primaryType} has fields {fields} (or referenced structs) that are not the shape "
                f"{' or '.join(known) or 'any value-moving document Warden reads'} verifies; it is refused rather than guessed at: sign "
                "the exact type the contract verifies"
            ),
        )
    try:
        return shape.read(typed, typed.message)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedOperation(
            Code.TYPED_DATA_UNREADABLE,
            f"{typed.primaryType} does not read as a {shape.label}: {exc}; fix that value and sign again",
        ) from None


def carries_value(typed: TypedData) -> bool:
    """Whether the primary type, or any struct it references, holds both an address and an
    integer: the shape of anything that could say "this much, to there"."""
    seen, pending, kinds = {typed.primaryType}, [typed.primaryType], set()
    while pending:
        for _, field_type in _fields(typed, pending.pop()):
            base = field_type.split("[", 1)[0]
            if base in typed.types and base not in seen:
                seen.add(base)
                pending.append(base)
            elif base == "address":
                kinds.add("address")
            elif base.startswith(("uint", "int")):
                kinds.add("integer")
    return kinds == {"address", "integer"}
