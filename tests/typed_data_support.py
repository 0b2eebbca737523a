"""EIP-712 documents of every family Warden reads (rules/typed_movements.py), built from each
protocol's own type strings, for the unit and the stack tests of typed data. Each document is also
encoded by eth-account, the independent EIP-712 oracle, so a malformed one fails where it is made."""

from __future__ import annotations

import copy
from typing import Any

from eth_account.messages import encode_typed_data

TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
NFT = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
OTHER = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"  # a token the agent buys, not in asset_limits
PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
SEAPORT = "0x0000000000000068F116a894984e2DB1123eB395"
COW = "0x9008D19f58AAbD9eD0D60971565AA8510560ab41"
ONE_INCH = "0x111111125421cA6dc452d289314280a0f8842A65"
REACTOR = "0x00000011F84B9aa48e5f8aA8B9897600006289Be"
MAIL = "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
ALICE = "0x00000000000000000000000000000000000A11cE"
MALLORY = "0x000000000000000000000000000000000000bad1"
AGENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
ZERO = "0x0000000000000000000000000000000000000000"
UNIT = 10**6

DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def fields(text: str) -> list[dict[str, Any]]:
    """ "address from,uint256 value" -> EIP-712 field objects."""
    return [{"name": part.split()[1], "type": part.split()[0]} for part in text.split(",")]


def document(
    primary: str, types: dict[str, str], message: dict[str, Any], contract: str, name: str = "X"
) -> dict[str, Any]:
    doc = {
        "types": {"EIP712Domain": DOMAIN, **{n: fields(t) for n, t in types.items()}},
        "primaryType": primary,
        "domain": {"name": name, "chainId": 31337, "verifyingContract": contract},
        "message": message,
    }
    encode_typed_data(full_message=copy.deepcopy(doc))  # a document a wallet would sign, or the test is wrong
    return doc


AUTHORIZATION = "address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce"


def authorization(
    to: str, value: int, primary: str = "TransferWithAuthorization", contract: str = TOKEN
) -> dict[str, Any]:
    return document(
        primary,
        {primary: AUTHORIZATION},
        {"from": AGENT, "to": to, "value": value, "validAfter": 0, "validBefore": 2**40, "nonce": "0x" + "ab" * 32},
        contract,
        name="Warden USD",
    )


def mail() -> dict[str, Any]:
    return document(
        "Mail",
        {"Mail": "Person from,Person to,string contents", "Person": "string name,address wallet"},
        {
            "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
            "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
            "contents": "Hello, Bob!",
        },
        MAIL,
        name="Ether Mail",
    )


DUTCH = {
    "ExclusiveDutchOrder": "OrderInfo info,uint256 decayStartTime,uint256 decayEndTime,address exclusiveFiller,"
    "uint256 exclusivityOverrideBps,address inputToken,uint256 inputStartAmount,"
    "uint256 inputEndAmount,DutchOutput[] outputs",
    "OrderInfo": "address reactor,address swapper,uint256 nonce,uint256 deadline,"
    "address additionalValidationContract,bytes additionalValidationData",
    "DutchOutput": "address token,uint256 startAmount,uint256 endAmount,address recipient",
    "TokenPermissions": "address token,uint256 amount",
    "PermitWitnessTransferFrom": "TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,"
    "ExclusiveDutchOrder witness",
}


def uniswapx(amount: int, recipient: str) -> dict[str, Any]:
    order = {
        "info": {
            "reactor": REACTOR,
            "swapper": AGENT,
            "nonce": 1,
            "deadline": 2**40,
            "additionalValidationContract": ZERO,
            "additionalValidationData": "0x",
        },
        "decayStartTime": 0,
        "decayEndTime": 2**40,
        "exclusiveFiller": ZERO,
        "exclusivityOverrideBps": 0,
        "inputToken": TOKEN,
        "inputStartAmount": amount,
        "inputEndAmount": amount,
        "outputs": [{"token": OTHER, "startAmount": str(10**18), "endAmount": str(9 * 10**17), "recipient": recipient}],
    }
    return document(
        "PermitWitnessTransferFrom",
        DUTCH,
        {
            "permitted": {"token": TOKEN, "amount": amount},
            "spender": REACTOR,
            "nonce": 1,
            "deadline": 2**40,
            "witness": order,
        },
        PERMIT2,
        name="Permit2",
    )


SEAPORT_TYPES = {
    "OrderComponents": "address offerer,address zone,OfferItem[] offer,ConsiderationItem[] consideration,"
    "uint8 orderType,uint256 startTime,uint256 endTime,bytes32 zoneHash,uint256 salt,"
    "bytes32 conduitKey,uint256 counter",
    "OfferItem": "uint8 itemType,address token,uint256 identifierOrCriteria,uint256 startAmount,uint256 endAmount",
    "ConsiderationItem": "uint8 itemType,address token,uint256 identifierOrCriteria,uint256 startAmount,"
    "uint256 endAmount,address recipient",
}


def seaport(offer: list[dict[str, Any]], recipient: str = AGENT) -> dict[str, Any]:
    consideration = [
        {
            "itemType": 0,
            "token": ZERO,
            "identifierOrCriteria": 0,
            "startAmount": 10**15,
            "endAmount": 10**15,
            "recipient": recipient,
        }
    ]
    return document(
        "OrderComponents",
        SEAPORT_TYPES,
        {
            "offerer": AGENT,
            "zone": ZERO,
            "offer": offer,
            "consideration": consideration,
            "orderType": 0,
            "startTime": 0,
            "endTime": 2**40,
            "zoneHash": "0x" + "00" * 32,
            "salt": 7,
            "conduitKey": "0x" + "00" * 32,
            "counter": 0,
        },
        SEAPORT,
        name="Seaport",
    )


def item(kind: int, token: str, amount: int, identifier: int = 0) -> dict[str, Any]:
    return {
        "itemType": kind,
        "token": token,
        "identifierOrCriteria": identifier,
        "startAmount": amount,
        "endAmount": amount,
    }


COW_ORDER = (
    "address sellToken,address buyToken,address receiver,uint256 sellAmount,uint256 buyAmount,uint32 validTo,"
    "bytes32 appData,uint256 feeAmount,string kind,bool partiallyFillable,string sellTokenBalance,"
    "string buyTokenBalance"
)


def cow(sell: int, fee: int, receiver: str = ZERO) -> dict[str, Any]:
    return document(
        "Order",
        {"Order": COW_ORDER},
        {
            "sellToken": TOKEN,
            "buyToken": OTHER,
            "receiver": receiver,
            "sellAmount": sell,
            "buyAmount": str(10**18),
            "validTo": 2**31,
            "appData": "0x" + "00" * 32,
            "feeAmount": fee,
            "kind": "sell",
            "partiallyFillable": False,
            "sellTokenBalance": "erc20",
            "buyTokenBalance": "erc20",
        },
        COW,
        name="Gnosis Protocol",
    )


ONE_INCH_ORDER = (
    "uint256 salt,uint256 maker,uint256 receiver,uint256 makerAsset,uint256 takerAsset,"
    "uint256 makingAmount,uint256 takingAmount,uint256 makerTraits"
)


def one_inch(making: int, receiver: str = ZERO, asset_word: int | None = None) -> dict[str, Any]:
    def word(address: str) -> str:
        return str(int(address, 16))

    return document(
        "Order",
        {"Order": ONE_INCH_ORDER},
        {
            "salt": 1,
            "maker": word(AGENT),
            "receiver": word(receiver),
            "makerAsset": str(asset_word) if asset_word is not None else word(TOKEN),
            "takerAsset": word(OTHER),
            "makingAmount": making,
            "takingAmount": str(10**18),
            "makerTraits": 0,
        },
        ONE_INCH,
        name="1inch Aggregation Router",
    )
