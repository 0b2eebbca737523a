"""The HTTP API's request models, and the patterns its OpenAPI document states (its answers are in
`gateway.http_api.answers`): a body is validated by the same field types the intent uses
(`schemas.fields`), so a bad value is refused, with the field named, before anything is signed."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, Protocol, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    ValidationInfo,
    field_validator,
    model_validator,
)

from evm.constants import NONCE_LIMIT
from runtime.registry import REGISTRY
from schemas.chains import Family
from schemas.families import FORMS
from schemas.fields import (
    Address,
    HexData,
    Identifier,
    NativeAmount,
    Wei,
    known_chain,
    parse_token_amount,
)
from schemas.intent import SOLANA_MESSAGE_MAX_CHARS, SOLANA_TRANSACTION_MAX_CHARS, AccessListEntry
from schemas.simulation import MAX_BUNDLE_STEPS

# The document's patterns: each the form the field's validator takes, so that what the document
# allows the server accepts (tests/stack/test_http_api.py: schemathesis).
IDENTIFIER_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


# All one case: a mixed-case address is accepted only with its EIP-55 checksum, which no pattern checks.
ADDRESS_PATTERN = "^0x([0-9a-f]{40}|[0-9A-F]{40})$"


ADDRESS_DESCRIPTION = "all one case, or mixed case with a valid EIP-55 checksum"


# At most 2**256-1 wei: 59 digits before the point (18 after) and 77 digits of wei stay under it.
AMOUNT_PATTERN = "^(0|[1-9][0-9]{0,58})(\\.[0-9]{1,18})?$"
SOL_AMOUNT_PATTERN = "^(0|[1-9][0-9]{0,9})(\\.[0-9]{1,9})?$"  # below 2**64 lamports
SOLANA_ADDRESS_PATTERN = "^[1-9A-HJ-NP-Za-km-z]{32,44}$"
BTC_AMOUNT_PATTERN = "^(0|[1-9][0-9]{0,7})(\\.[0-9]{1,8})?$"  # to the satoshi, below 10**8 BTC
# Letters and digits, as bech32 (bc1..., bcrt1...) and base58 write an address; whether it is one (its
# checksum, its network) is the transfer's to say (422), as no pattern says it.
BITCOIN_ADDRESS_PATTERN = "^[a-zA-Z0-9]{14,90}$"


WEI_PATTERN = "^(0|[1-9][0-9]{0,76})$"


HEX_PATTERN = "^0x([0-9a-fA-F]{2})*$"


BYTES32_PATTERN = "^0x[0-9a-fA-F]{64}$"


IDEMPOTENCY_KEY_PATTERN = "^[!-~]([ -~]{0,253}[!-~])?$"


BASE64_PATTERN = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


# Calldata within the body's limit, with room for the other fields.
MAX_DATA_CHARS = 2 + 2 * 30_000


def _network_names(family: Family) -> Callable[[dict[str, Any]], None]:
    """The document's enum of a chain field: the networks in force of one family, when it is made."""

    def add(schema: dict[str, Any]) -> None:
        schema["enum"] = sorted(name for name, chain in REGISTRY.all().items() if chain.family is family)

    return add


def _network(family: Family) -> Callable[[str, ValidationInfo], str]:
    """A chain field's check: a network in force (`schemas.fields.known_chain`) of the request's family."""

    def check(name: str, info: ValidationInfo) -> str:
        known_chain(name, info.context)
        found = REGISTRY.get(name).family
        if found is not family:
            raise ValueError(
                f"{name!r} is {found.a_network}; this request takes {family.a_network} (GET /v1/chains lists them)"
            )
        return name

    return check


EvmChainName = Annotated[
    str,
    Field(
        max_length=32, description="an EVM network of `GET /v1/chains`", json_schema_extra=_network_names(Family.EVM)
    ),
    AfterValidator(_network(Family.EVM)),
]


BitcoinChainName = Annotated[
    str,
    Field(
        max_length=32,
        description="a Bitcoin network of `GET /v1/chains`",
        json_schema_extra=_network_names(Family.BITCOIN),
    ),
    AfterValidator(_network(Family.BITCOIN)),
]


SolanaChainName = Annotated[
    str,
    Field(
        max_length=32,
        description="a Solana network of `GET /v1/chains`",
        json_schema_extra=_network_names(Family.SOLANA),
    ),
    AfterValidator(_network(Family.SOLANA)),
]


def _json_integer(value: Any) -> Any:
    # An integer field takes a JSON integer as written: no fraction, no exponent, no boolean. JSON
    # Schema calls 21000.0 the integer 21000 and pydantic's Literal takes 2.0 and true for 2 and 1:
    # a producer that writes a float for a count has made a mistake, named here, not guessed at.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"must be a JSON integer, written without a fraction or an exponent (21000, not 21000.0); got {value!r:.40}"
        )
    return value


_INTEGER = BeforeValidator(_json_integer)


GasLimit = Annotated[int, Field(ge=21000, le=30_000_000), _INTEGER]


Nonce = Annotated[int, Field(ge=0, le=2**64 - 2), _INTEGER]


def _base64(text: str) -> str:
    if not re.fullmatch(BASE64_PATTERN, text):
        raise ValueError("not base64; give the bytes in standard base64, padded with = to a multiple of 4")
    return text


Base64 = Annotated[str, AfterValidator(_base64), Field(json_schema_extra={"pattern": BASE64_PATTERN})]


def fee_rules(default_types: tuple[int, ...], signing: bool = False) -> list[dict[str, Any]]:
    """The rules between a transaction request's fields, as JSON Schema (`fees_of_type` checks them):
    gas_price only with tx_type 0 or 1, named; max_fee_per_gas and max_priority_fee_per_gas never
    with them; on the sign endpoint, an access list not with type 0 and an authorization list with
    type 4 only, which needs one."""

    def given(name: str, kind: str = "string") -> dict[str, Any]:
        return {"required": [name], "properties": {name: {"type": kind}}}

    def tx_type(*allowed: int | None) -> dict[str, Any]:
        return {"properties": {"tx_type": {"enum": list(allowed)}}}

    def non_empty(name: str) -> dict[str, Any]:
        return {"required": [name], "properties": {name: {"type": "array", "minItems": 1}}}

    rules = [
        {"if": given("gas_price"), "then": {**tx_type(0, 1), "required": ["tx_type"]}},
        {
            "if": {"anyOf": [given("max_fee_per_gas"), given("max_priority_fee_per_gas")]},
            "then": tx_type(*default_types, None),
        },
    ]
    if signing:
        rules += [
            {"if": non_empty("access_list"), "then": tx_type(1, 2, 4, None)},
            {"if": non_empty("authorization_list"), "then": {**tx_type(4), "required": ["tx_type"]}},
            {"if": {**tx_type(4), "required": ["tx_type"]}, "then": non_empty("authorization_list")},
        ]
    return rules


class _FeeFields(Protocol):
    """What `fees_of_type` reads of a transaction request."""

    @property
    def tx_type(self) -> int | None: ...
    @property
    def gas_price(self) -> int | None: ...
    @property
    def max_fee_per_gas(self) -> int | None: ...
    @property
    def max_priority_fee_per_gas(self) -> int | None: ...


_AskedT = TypeVar("_AskedT", bound=_FeeFields)


def fees_of_type(asked: _AskedT, lists: tuple[object, ...]) -> _AskedT:
    """``asked``, a transaction request, if its fields agree with its type (`fee_rules`); else
    ValueError naming the fields."""
    tx_type = 2 if asked.tx_type is None else asked.tx_type
    if asked.gas_price is not None and tx_type not in (0, 1):
        raise ValueError(f"gas_price: for tx_type 0 or 1 (give tx_type); this is tx_type {tx_type}")
    if tx_type in (0, 1) and (asked.max_fee_per_gas is not None or asked.max_priority_fee_per_gas is not None):
        fee = "max_fee_per_gas" if asked.max_fee_per_gas is not None else "max_priority_fee_per_gas"
        raise ValueError(f"{fee}: for tx_type 2 and up; tx_type {tx_type} pays gas_price")
    if lists:
        access_list, authorization_list = lists
        if tx_type == 0 and access_list:
            raise ValueError("access_list: tx_type 0 has none; use tx_type 1, 2 or 4")
        if (tx_type == 4) != bool(authorization_list):
            raise ValueError("authorization_list: tx_type 4 (EIP-7702) needs one authorization, and only it takes one")
    return asked


class Strict(BaseModel):
    # Unknown fields are refused (a misspelt field is a mistake, not a default), and so are values
    # of the wrong JSON type (a number for a string, a string for a boolean).
    model_config = ConfigDict(extra="forbid", strict=True)


class TokenRequest(Strict):
    agent_id: Identifier = Field(json_schema_extra={"pattern": IDENTIFIER_PATTERN, "maxLength": 128})
    api_key: str = Field(max_length=256, description="the key `warden agents api-key` showed once")


class _TransactionFields(Strict):
    """The fields of a transaction request, but its type."""

    chain: EvmChainName
    to: Address = Field(json_schema_extra={"pattern": ADDRESS_PATTERN}, description=ADDRESS_DESCRIPTION)
    value: NativeAmount = Field(
        description='native amount as a decimal string, e.g. "0.1" (ETH)', json_schema_extra={"pattern": AMOUNT_PATTERN}
    )
    data: HexData = Field(default="0x", json_schema_extra={"pattern": HEX_PATTERN, "maxLength": MAX_DATA_CHARS})
    signing_key_path: str | None = Field(default=None, max_length=512)
    simulate_first: bool = Field(default=False, description="simulate first; a revert is answered 422, unsigned")
    gas_limit: GasLimit | None = None
    gas_price: Wei | None = Field(
        default=None, json_schema_extra={"pattern": WEI_PATTERN}, description="tx_type 0 and 1 only"
    )
    max_fee_per_gas: Wei | None = Field(
        default=None, json_schema_extra={"pattern": WEI_PATTERN}, description="tx_type 2 and up"
    )
    max_priority_fee_per_gas: Wei | None = Field(
        default=None,
        json_schema_extra={"pattern": WEI_PATTERN},
        description="tx_type 2 and up; at most max_fee_per_gas",
    )
    nonce: Nonce | None = None


class TransactionRequest(_TransactionFields):
    """A transaction the agent asks for, as the Intents API takes it."""

    tx_type: Annotated[Literal[0, 1, 2], _INTEGER] | None = Field(
        default=None, description="EIP-2718 type (default 2); type 4 through POST /v1/agents/{agent_id}/sign"
    )

    model_config = ConfigDict(json_schema_extra=lambda schema: schema.update(allOf=fee_rules((2,))))

    @model_validator(mode="after")
    def _fees_of_its_type(self) -> Self:
        return fees_of_type(self, ())


class AuthorizationRequest(Strict):
    """One EIP-7702 authorization the agent asks for, as `schemas.intent.AuthorizationRequest` takes
    it, its integers JSON integers: delegate the agent's account to ``address``'s code. ``nonce`` may
    be left out (the signer sets the account's next nonce) and, when given, must be that nonce."""

    chain_id: Annotated[int, Field(ge=0, lt=2**64), _INTEGER] = Field(
        description="0 means every chain (refused unless the policy allows it)"
    )
    address: Address = Field(json_schema_extra={"pattern": ADDRESS_PATTERN}, description=ADDRESS_DESCRIPTION)
    nonce: Annotated[int, Field(ge=0, lt=NONCE_LIMIT), _INTEGER] | None = None


class TransactionSignRequest(_TransactionFields):
    """The unified sign endpoint's transaction: types 0, 1, 2 and 4 (EIP-7702), signed and not broadcast."""

    intent_type: Literal["transaction"]
    tx_type: Annotated[Literal[0, 1, 2, 4], _INTEGER] | None = Field(
        default=None, description="EIP-2718 type (default 2)"
    )
    access_list: list[AccessListEntry] | None = Field(default=None, max_length=256, description="not for tx_type 0")
    authorization_list: list[AuthorizationRequest] | None = Field(
        default=None, max_length=1, description="tx_type 4 only, which needs exactly one"
    )

    model_config = ConfigDict(json_schema_extra=lambda schema: schema.update(allOf=fee_rules((2, 4), signing=True)))

    @model_validator(mode="after")
    def _fees_of_its_type(self) -> Self:
        return fees_of_type(self, (self.access_list, self.authorization_list))


class PersonalSignRequest(Strict):
    intent_type: Literal["personal_sign"]
    chain: EvmChainName
    message: str = Field(max_length=16_384, description="the text to sign, as its UTF-8 bytes (EIP-191)")


class TypedDataSignRequest(Strict):
    intent_type: Literal["typed_data"]
    chain: EvmChainName
    typed_data: dict[str, Any] = Field(description="the EIP-712 document: types, primaryType, domain, message")


class SolanaRequest(Strict):
    """A Solana transaction the agent asks Warden to sign ([docs/solana.md]): its wire bytes with
    the agent's signature slot empty."""

    chain: SolanaChainName
    transaction: Base64 = Field(
        min_length=4,
        max_length=SOLANA_TRANSACTION_MAX_CHARS,
        description="the wire bytes, base64 (web3.js serialize({requireAllSignatures: false}))",
    )


class SolanaTransferRequest(Strict):
    """A transfer of SOL, asked as a transfer on any network is (``chain``, ``to``, ``value``):
    Warden writes the System transfer from the agent's Solana address (its policy's
    ``solana.address``) over the node's latest blockhash and judges it like any Solana
    transaction ([docs/solana.md])."""

    chain: SolanaChainName
    # The form here (400 when it is not); whether it decodes to 32 bytes is the transfer's to
    # say (422), as no pattern says it.
    to: str = Field(json_schema_extra={"pattern": SOLANA_ADDRESS_PATTERN}, description="the recipient's wallet, base58")
    value: str = Field(
        description='SOL as a decimal string, e.g. "0.25" (at most 9 decimals)',
        json_schema_extra={"pattern": SOL_AMOUNT_PATTERN},
    )

    @field_validator("to")
    @classmethod
    def _base58(cls, value: str) -> str:
        if not re.fullmatch(SOLANA_ADDRESS_PATTERN, value):
            raise ValueError(f"must be a Solana address: 32-44 base58 characters (no 0, O, I or l), got {value[:60]!r}")
        return value

    @field_validator("value")
    @classmethod
    def _in_lamports(cls, value: str) -> str:
        form = FORMS[Family.SOLANA]
        if parse_token_amount(value, form.native_decimals, "SOL", form.base_unit) >= 2**64:
            raise ValueError("is more SOL than an account holds (2**64 lamports)")
        return value


class BitcoinTransferRequest(Strict):
    """A payment of BTC, asked as a transfer on any network is (``chain``, ``to``, ``value``):
    Warden writes the PSBT from the agent's own unspent outputs (its policy's
    ``bitcoin.public_key``), its change back to the agent, and judges it like any Bitcoin
    intent ([docs/bitcoin.md])."""

    chain: BitcoinChainName
    to: str = Field(
        json_schema_extra={"pattern": BITCOIN_ADDRESS_PATTERN}, description="the recipient's address on that network"
    )
    value: str = Field(
        description='BTC as a decimal string, e.g. "0.1" (at most 8 decimals)',
        json_schema_extra={"pattern": BTC_AMOUNT_PATTERN},
    )

    @field_validator("to")
    @classmethod
    def _letters_and_digits(cls, value: str) -> str:
        if not re.fullmatch(BITCOIN_ADDRESS_PATTERN, value):
            raise ValueError(f"must be a Bitcoin address: 14-90 letters and digits, got {value[:60]!r}")
        return value

    @field_validator("value")
    @classmethod
    def _in_btc(cls, value: str) -> str:
        if not re.fullmatch(BTC_AMOUNT_PATTERN, value):
            raise ValueError(f"must be BTC as a decimal with at most 8 decimals, below 100000000, got {value[:40]!r}")
        return value


class TransferRequest(RootModel[Any]):
    """What `POST /v1/agents/{id}/transactions` and `.../transactions/sign` take: a transaction on
    an EVM network, a transfer of SOL on a Solana one, or a payment of BTC on a Bitcoin one, by the
    family of ``chain``."""

    root: TransactionRequest | SolanaTransferRequest | BitcoinTransferRequest


class SolanaSignRequest(SolanaRequest):
    """The unified sign endpoint's Solana transaction: signed in the agent's slot, not sent."""

    intent_type: Literal["solana_transaction"]


class SolanaMessageSignRequest(Strict):
    """A Solana off-chain message the agent asks Warden to sign: its bytes as the Solana
    Foundation's library compiles them (`compileOffchainMessageEnvelope(...).content`), the
    agent's address among its signatories."""

    intent_type: Literal["solana_message"]
    chain: SolanaChainName
    message: Base64 = Field(
        min_length=4,
        max_length=SOLANA_MESSAGE_MAX_CHARS,
        description="the off-chain message's bytes (signing domain, version, ..., content), base64",
    )


class SignRequest(RootModel[Any]):
    """What `POST /v1/agents/{id}/sign` takes: one of five, by ``intent_type``."""

    root: Annotated[
        TransactionSignRequest
        | PersonalSignRequest
        | TypedDataSignRequest
        | SolanaSignRequest
        | SolanaMessageSignRequest,
        Field(discriminator="intent_type"),
    ]


class SimulateRequest(Strict):
    chain: EvmChainName
    to: Address = Field(json_schema_extra={"pattern": ADDRESS_PATTERN}, description=ADDRESS_DESCRIPTION)
    value: NativeAmount = Field(json_schema_extra={"pattern": AMOUNT_PATTERN})
    data: HexData = Field(default="0x", json_schema_extra={"pattern": HEX_PATTERN, "maxLength": MAX_DATA_CHARS})
    gas_limit: GasLimit | None = None
    signing_key_path: str | None = Field(default=None, max_length=512, description="the Intents API's field")


class BundleRequest(Strict):
    transactions: list[SimulateRequest] = Field(min_length=1, max_length=MAX_BUNDLE_STEPS)
