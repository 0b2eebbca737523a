"""The demo's script: who the demo agent pays and what its policy allows, every intent it submits,
and the outcome each one must have (`demo.py` runs it on the stack and reports).

An intent is ``Scripted``: a name, the outcome it expects, and the fields of ``sdk.client.new_intent``,
some of which are functions of the set-up (the addresses ``demo.provision`` deploys). The typed
documents a wallet is asked to sign (an ERC-2612 Permit, an EIP-3009 authorization) are built here
too, and the tests build theirs with the same functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra import contracts
from runtime.config import Settings
from schemas.codes import Code
from signer.custody import CLIENT_MODES

AGENT = "demo-agent"
ALICE = "0x00000000000000000000000000000000000a11ce"
BOB = "0x0000000000000000000000000000000000000b0b"
MALLORY = "0x000000000000000000000000000000000000bad1"
# The agent session through MCP (`demo_mcp`) acts for a second demo agent with its own chain key,
# policy and windows, paying its own payee: the scripted agent's day (1.95 ETH of its 2 plus fees)
# leaves no room for it, and its nonces and balance, which the demo's tests count, stay the script's.
MCP_AGENT = "demo-mcp-agent"
MCP_PAYEE = "0x000000000000000000000000000000000000da7e"
MCP_VALUE = "0.05"
# A contract whose every call reverts with Error("Warden demo: transfers paused"): installed by `demo.provision`.
PAUSED = "0x00000000000000000000000000000000000ca5e0"
REVERT_REASON = "Warden demo: transfers paused"
DEPOSIT = "0xd0e30db0"  # deposit(): the one call the demo policy allows to it (contract_calls)
GWEI = 10**9
FEE_CEILING = 100 * GWEI  # the demo agent's tx_max_fee_per_gas
ANVIL_CHAIN_ID = 31337
# The contract the agent's account is delegated to (EIP-7702): code that answers every call with 42.
DELEGATE = "0x00000000000000000000000000000000de1e9A7E"


# The EIP712Domain of the demo's tokens (WardenToken and AuthToken): name, version "1", chain, contract.
_TOKEN_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def _token_document(
    token: str, chain_id: int, name: str, primary: str, fields: list[dict[str, Any]], message: dict[str, Any]
) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": _TOKEN_DOMAIN_FIELDS, primary: fields},
        "primaryType": primary,
        "domain": {"name": name, "version": "1", "chainId": chain_id, "verifyingContract": token},
        "message": message,
    }


def permit_typed_data(
    token: str,
    chain_id: int,
    *,
    owner: str,
    spender: str,
    value: int,
    nonce: int,
    deadline: int,
    name: str = "Warden Demo Token",
) -> dict[str, Any]:
    """An ERC-2612 Permit as a wallet is asked to sign it: ``spender`` may take ``value`` of
    ``owner``'s tokens until ``deadline``. Amounts travel as decimal strings (exact in any JSON reader)."""
    fields = [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
    message = {"owner": owner, "spender": spender, "value": str(value), "nonce": str(nonce), "deadline": str(deadline)}
    return _token_document(token, chain_id, name, "Permit", fields, message)


def transfer_authorization(
    token: str,
    chain_id: int,
    *,
    holder: str,
    to: str,
    value: int,
    name: str = "Warden Demo USD",
    primary: str = "TransferWithAuthorization",
) -> dict[str, Any]:
    """An EIP-3009 authorization as USDC's FiatTokenV2 verifies it: whoever submits the signature
    (for ``ReceiveWithAuthorization``, only ``to``) moves ``value`` of ``holder``'s tokens to ``to``."""
    fields = [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "validAfter", "type": "uint256"},
        {"name": "validBefore", "type": "uint256"},
        {"name": "nonce", "type": "bytes32"},
    ]
    message = {
        "from": holder,
        "to": to,
        "value": str(value),
        "validAfter": "0",
        "validBefore": str(2**40),
        "nonce": "0x" + os.urandom(32).hex(),
    }
    return _token_document(token, chain_id, name, primary, fields, message)


def demo_blob() -> bytes:
    """One 131072-byte blob: 4096 field elements, each with a zero first byte (so below the BLS modulus)."""
    return b"".join(b"\x00" + f"Warden demo blob, element {i:04d}.".encode()[:31].ljust(31, b".") for i in range(4096))


@dataclass(frozen=True)
class Scripted:
    name: str
    expect: str  # "mined", "signed" (a message) or the rejection code
    fields: dict[str, Any]  # a value may be a function of the set-up (`provision`'s dict[str, Any]): deployed addresses
    client_share: str = "right"  # client-custody modes: seal the "right" share, a "wrong" one, or "none"
    admin: str | None = None  # parked for approval: what the demo, as the admin, decides


# The demo's tokens (deployed by `demo.provision`): WUSD, an ERC-20 with ERC-2612 permit, EIP-3009
# authorizations and 6 decimals, and GRD, a token whose transfer takes twice what it says. Token
# amounts below are in WUSD units.
WUSD_LIMITS = dict(max_per_tx="100", daily_limit="150", approval_threshold="60")
WUSD = 10**6


def _transfer(to: str, units: int) -> Callable[[dict[str, Any]], str]:
    return lambda setup: contracts.calldata("transfer(address,uint256)", setup.get(to, to), units)


SCRIPT = (
    Scripted("pay alice 0.5 (EIP-1559)", "mined", dict(to=ALICE, value="0.5", tx_type=2)),
    Scripted("pay bob 0.25 (legacy, EIP-155)", "mined", dict(to=BOB, value="0.25", tx_type=0)),
    Scripted(
        "pay alice 0.1 (EIP-2930, simulated first)",
        "mined",
        dict(to=ALICE, value="0.1", tx_type=1, simulate_first=True),
    ),
    Scripted("wrong chain: base", Code.CHAIN_NOT_ALLOWED, dict(to=ALICE, value="0.1", chain="base")),
    Scripted("recipient not on allowlist", Code.RECIPIENT_NOT_ALLOWLISTED, dict(to=MALLORY, value="0.1")),
    # An allowlisted contract that passes value on: judged by where simulation shows it lands.
    Scripted(
        "0.1 ETH to mallory via an allowlisted forwarder",
        Code.SIMULATION_ROUTE_NOT_ALLOWLISTED,
        dict(
            to=lambda s: s["forwarder"],
            value="0.1",
            data=lambda _s: contracts.calldata("forwardValue(address)", MALLORY),
        ),
    ),
    Scripted("over the 1 ETH per-tx cap", Code.VALUE_OVER_CAP, dict(to=BOB, value="1.5")),
    Scripted("pay bob 0.9 (the day: 1.75 + fees)", "mined", dict(to=BOB, value="0.9")),
    Scripted("over the 2 ETH daily limit", Code.DAILY_LIMIT_EXCEEDED, dict(to=ALICE, value="0.3")),
    Scripted(
        "call a paused contract, simulated",
        Code.SIMULATION_REVERTED,
        dict(to=PAUSED, value="0", data=DEPOSIT, simulate_first=True),
    ),
    # Fees are spend: a 0-value intent that offers 1,000 gwei per gas is refused at the ceiling,
    # and one whose value fits the cap but whose worst-case fee does not is refused at the cap.
    Scripted(
        "0 ETH, fee 1000 gwei/gas (ceiling 100)",
        Code.FEE_OVER_CEILING,
        dict(to=ALICE, value="0", max_fee_per_gas=1000 * GWEI, max_priority_fee_per_gas=GWEI),
    ),
    Scripted("1 ETH + worst-case fee over the 1 ETH cap", Code.VALUE_OVER_CAP, dict(to=BOB, value="1")),
    Scripted("pay alice 0.2 (the day stays under 2)", "mined", dict(to=ALICE, value="0.2")),
)


# In the client-custody modes every signature needs the client share: these show that a wrong
# or missing one fails closed, with one answer. Last, and for 0 ETH, so the spend above is unchanged.
CLIENT_SHARE_SCRIPT = (
    Scripted("sealed with a wrong client share", Code.CLIENT_SHARE_INVALID, dict(to=ALICE, value="0"), "wrong"),
    Scripted("no client share at all", Code.CLIENT_SHARE_INVALID, dict(to=ALICE, value="0"), "none"),
)


def _permit(setup: dict[str, Any], units: int = 50 * WUSD) -> dict[str, Any]:
    """A Permit for the demo's router to take ``units`` of the agent's WUSD."""
    return permit_typed_data(
        setup["token"],
        ANVIL_CHAIN_ID,
        owner=setup["address"],
        spender=setup["router"],
        value=units,
        nonce=0,
        deadline=2**40,
        name="Warden Demo USD",
    )


# The other signing paths. The delegation is last: it uses two nonces, the transaction's and the
# authorization's. Fields that need the agent's address are filled in by `_fields`.
SIGNING_SCRIPT = (
    Scripted(
        "sign a message (EIP-191 personal_sign)",
        "signed",
        dict(intent_type="personal_sign", message="0x" + b"Warden demo: I am agent demo-agent".hex()),
    ),
    Scripted(
        "a Permit (EIP-712), token not allowlisted",
        Code.EIP712_SPEND_AUTHORIZATION_REFUSED,
        dict(intent_type="typed_data", typed_data=_permit),
    ),
    Scripted(
        "blob transaction (EIP-4844) with its blob",
        "mined",
        dict(to=ALICE, value="0", max_fee_per_blob_gas=GWEI, blobs="demo"),
    ),
    Scripted(
        "delegate the account to a contract (7702)",
        "mined",
        dict(to=ALICE, value="0", tx_type=4, authorization_list=({"chain_id": ANVIL_CHAIN_ID, "address": DELEGATE},)),
    ),
)
# Tokens: WUSD's limits are 100 per intent, 150 a day, and an admin above 60.
TOKEN_SCRIPT = (
    Scripted(
        "pay alice 20 WUSD (ERC-20 transfer)",
        "mined",
        dict(to=lambda s: s["token"], value="0", data=_transfer(ALICE, 20 * WUSD)),
    ),
    Scripted(
        "20 WUSD to mallory (not allowlisted)",
        Code.RECIPIENT_NOT_ALLOWLISTED,
        dict(to=lambda s: s["token"], value="0", data=_transfer(MALLORY, 20 * WUSD)),
    ),
    Scripted(
        "approve the router for 2**256-1 WUSD",
        Code.UNLIMITED_APPROVAL_REFUSED,
        dict(
            to=lambda s: s["token"],
            value="0",
            data=lambda s: contracts.calldata("approve(address,uint256)", s["router"], 2**256 - 1),
        ),
    ),
    Scripted(
        "GRD takes 2x its transfer, simulated",
        Code.SIMULATION_MISMATCH,
        dict(to=lambda s: s["greedy"], value="0", data=_transfer(ALICE, 5 * WUSD), simulate_first=True),
    ),
    Scripted(
        "pay bob 70 WUSD (over 60: an admin approves)",
        "mined",
        dict(to=lambda s: s["token"], value="0", data=_transfer(BOB, 70 * WUSD)),
        admin="approve",
    ),
    Scripted(
        "pay alice 80 WUSD (over the 150 a day)",
        Code.ASSET_DAILY_LIMIT_EXCEEDED,
        dict(to=lambda s: s["token"], value="0", data=_transfer(ALICE, 80 * WUSD)),
    ),
)

# After an admin allowlists the token's verifying contract (policy v+1):
# The second policy's cap in US dollars, and the price its ETH feed serves: 0.03 ETH is $6,000.
USD_CAP = "5000"
ETH_USD = 200_000

AFTER_ALLOWLISTING = (
    Scripted("the same Permit, token now allowlisted", "signed", dict(intent_type="typed_data", typed_data=_permit)),
    Scripted("pay alice 0.03 ETH ($6,000: over $5,000)", Code.USD_OVER_CAP, dict(to=ALICE, value="0.03")),
    Scripted(
        "a Permit for 500 WUSD (over its limit)",
        Code.UNLIMITED_APPROVAL_REFUSED,
        dict(intent_type="typed_data", typed_data=lambda s: _permit(s, 500 * WUSD)),
    ),
    # The allowlisted domain is not a blank cheque: an EIP-3009 transfer under it is read as one.
    Scripted(
        "EIP-3009: 9,000 WUSD to mallory (typed data)",
        Code.RECIPIENT_NOT_ALLOWLISTED,
        dict(
            intent_type="typed_data",
            typed_data=lambda s: transfer_authorization(
                s["token"], ANVIL_CHAIN_ID, holder=s["address"], to=MALLORY, value=9_000 * WUSD, name="Warden Demo USD"
            ),
        ),
    ),
)


def script(settings: Settings) -> tuple[Scripted, ...]:
    return SCRIPT + SIGNING_SCRIPT + TOKEN_SCRIPT + (CLIENT_SHARE_SCRIPT if settings.key_mode in CLIENT_MODES else ())


def expected_outcomes(settings: Settings) -> list[tuple[str, str]]:
    return [(s.name, s.expect) for s in script(settings) + AFTER_ALLOWLISTING]
