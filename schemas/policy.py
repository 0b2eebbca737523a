"""An agent's policy: ``AgentPolicy``, signed by an admin key, and the rules it is made of (EIP-712
domains and no-value types, token limits, contract calls)."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

import orjson
from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from evm.constants import MAX_MESSAGE_BYTES
from schemas.admins import ADMIN_SIGNATURE, AdminSignature
from schemas.fields import (
    Address,
    BaseUnits,
    BitcoinAddress,
    BitcoinPublicKey,
    HexData,
    Identifier,
    NativeAmount,
    Satoshis,
    SolanaAddress,
    UtcDatetime,
    Wei,
    evm_chain,
    known_chain,
    parse_native_amount,
    parse_token_amount,
)
from schemas.passkeys import MAX_ASSERTION_CHARS
from schemas.record import SCHEMA_VERSION, Evolving, Record
from schemas.typed_data import EIP712_VALUE_TYPES, TYPE_NAME_RE, TypedData
from svm import mints


class Eip712DomainRule(Record):
    """One allowlisted EIP-712 domain: its verifying contract, and optionally its chain id and name."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    verifying_contract: Address
    chain_id: int | None = Field(default=None, ge=1, lt=2**64)
    name: str | None = Field(default=None, max_length=256)

    def matches(self, typed_data: TypedData) -> bool:
        return (
            typed_data.verifying_contract == self.verifying_contract
            and (self.chain_id is None or typed_data.chain_id == self.chain_id)
            and (self.name is None or typed_data.domain.get("name") == self.name)
        )


class Eip712NoValueType(Record):
    """One EIP-712 message type an admin names as moving no value (a login, a vote, the spec's Mail):
    the exact (verifying contract, primary type) pair, optionally on one chain id. Typed data is
    signed only when Warden reads what it moves or the policy names it here."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    verifying_contract: Address
    primary_type: str = Field(min_length=1, max_length=128)
    chain_id: int | None = Field(default=None, ge=1, lt=2**64)

    @field_validator("primary_type")
    @classmethod
    def _moves_nothing(cls, name: str) -> str:
        if not TYPE_NAME_RE.match(name):
            raise ValueError(f"{name!r} is not an EIP-712 type name (letters, digits, _ and $)")
        if name in EIP712_VALUE_TYPES:
            raise ValueError(
                f"{name} is a type Warden reads as moving value ({', '.join(sorted(EIP712_VALUE_TYPES))}); "
                "it is judged by what it moves and cannot be named as moving nothing"
            )
        return name

    def matches(self, typed_data: TypedData) -> bool:
        return (
            typed_data.verifying_contract == self.verifying_contract
            and typed_data.primaryType == self.primary_type
            and (self.chain_id is None or typed_data.chain_id == self.chain_id)
        )


TokenStandard = Literal["erc20", "erc721", "erc1155"]
_SELECTOR_RE = re.compile(r"^0x[0-9a-f]{8}\Z")


class AssetLimit(Record):
    """One token an agent may move on one chain, with its limits in the token's own units
    (decimal strings, read with the ``decimals`` recorded here: nothing is fetched from the chain
    at decision time). A null limit means none. The standard says how the contract's calldata is
    read: ERC-20 and ERC-721 share the selectors of ``transferFrom`` and ``approve``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    chain: str
    token: Address
    standard: TokenStandard = "erc20"
    symbol: str | None = Field(default=None, max_length=32)
    decimals: int = Field(default=18, ge=0, le=77, description="the token's decimals; ERC-721 and ERC-1155: 0")
    max_per_tx: str | None = Field(default=None, description="the most one intent moves or approves, token units")
    daily_limit: str | None = Field(default=None, description="rolling 24 h limit, token units")
    approval_threshold: str | None = Field(
        default=None, description="an intent moving or approving more than this waits for an admin, token units"
    )

    @field_validator("chain")
    @classmethod
    def _known(cls, chain: str, info: ValidationInfo) -> str:
        return evm_chain(chain, info.context)

    @model_validator(mode="after")
    def _amounts_in_units(self) -> "AssetLimit":
        for name in ("max_per_tx", "daily_limit", "approval_threshold"):
            text = getattr(self, name)
            if text is not None:
                try:
                    parse_token_amount(text, self.decimals, f"{self.label}'s unit ({self.decimals} decimals)")
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        return self

    @property
    def key(self) -> str:
        """The asset's name in spend records: chain and contract."""
        return f"{self.chain}:{self.token}"

    @property
    def label(self) -> str:
        return self.symbol or self.token

    def units(self, name: str) -> int | None:
        text = getattr(self, name)
        return None if text is None else parse_token_amount(text, self.decimals)


USD_DECIMALS = 6  # USD amounts are kept in millionths of a dollar: exact integers, never floats


def parse_usd(text: str) -> int:
    """``"5000"`` or ``"0.25"`` (dollars, at most 6 decimals) → millionths of a dollar."""
    return parse_token_amount(text, USD_DECIMALS, "US dollars", "millionths of a dollar")


class PriceFeed(Record):
    """Where one asset's price in US dollars comes from: a Chainlink-style aggregator
    (``AggregatorV3Interface``: ``latestRoundData``, ``decimals``) on the asset's chain. ``asset``
    is ``"native"`` (the chain's native coin) or the token contract of an ``asset_limits`` entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    chain: str
    asset: Literal["native"] | Address
    feed: Address

    @field_validator("chain")
    @classmethod
    def _known(cls, chain: str, info: ValidationInfo) -> str:
        return evm_chain(chain, info.context)

    @property
    def key(self) -> str:
        """The asset's name in spend records: ``native`` on the feed's chain, or chain and contract."""
        return "native" if self.asset == "native" else f"{self.chain}:{self.asset}"


class ContractCallRule(Evolving):
    """Calls to one contract that the asset rules do not read (anything but a token transfer or
    approval): allowed only for the listed 4-byte selectors, or any call with ``"any"``. A
    selector may be given as hex (``0x12345678``) or as the function's signature
    (``swap(address,uint256)``), which is kept as its selector. Such a call is simulated, so that
    where the agent's value lands is seen, unless the rule says ``unsimulated``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)
    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {"unsimulated": False}

    contract: Address
    selectors: tuple[str, ...] | Literal["any"] = Field(max_length=256)
    unsimulated: bool = Field(
        default=False,
        description="sign calls to this contract without simulation: only for a contract that can "
        "move none of the agent's assets (it holds no allowance and is sent no value), since without simulation "
        "nobody sees where value it forwards lands",
    )

    @field_validator("selectors", mode="before")
    @classmethod
    def _selectors(cls, value: object) -> object:
        if value == "any" or not isinstance(value, (list, tuple)):
            return value
        from eth_utils import function_signature_to_4byte_selector

        out = []
        for text in value:
            if not isinstance(text, str):
                raise ValueError(f"each selector is a string, got {type(text).__name__}")
            if "(" in text:
                text = "0x" + function_signature_to_4byte_selector(text.replace(" ", "")).hex()
            if not _SELECTOR_RE.match(text.lower()):
                raise ValueError(
                    f"a selector is 4 bytes of hex (0x12345678) or a function signature such as "
                    f'"swap(address,uint256)", got {text!r}'
                )
            out.append(text.lower())
        return tuple(out)

    def allows(self, selector: str) -> bool:
        return self.selectors == "any" or selector in self.selectors


class SolanaTokenLimit(Evolving):
    """One SPL token (a mint, of the Token or Token-2022 program) the agent may move on Solana,
    with its limits in the token's base units. A mint the policy does not list is refused, and so
    is a Token-2022 mint carrying an extension Warden does not read whole (`svm.mints.READ_WHOLE`)
    unless ``accepted_extensions`` names it."""

    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {"accepted_extensions": ()}

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    mint: SolanaAddress
    symbol: str | None = Field(default=None, max_length=32)
    decimals: int = Field(
        ge=0, le=18, description="the mint's decimals: a TransferChecked that says otherwise is refused"
    )
    max_per_tx: BaseUnits | None = Field(default=None, description="the most one intent moves or approves, base units")
    daily_limit: BaseUnits | None = Field(default=None, description="rolling 24 h limit, base units")
    approval_threshold: BaseUnits | None = Field(
        default=None, description="an intent moving or approving more than this waits for an admin, base units"
    )
    accepted_extensions: tuple[str, ...] = Field(
        default=(),
        max_length=32,
        description="Token-2022 extensions of this mint that Warden does not read whole and the admin accepts, by "
        "name (permanent_delegate, transfer_hook, ...; extension_<n> for a type Warden does not know)",
    )

    @field_validator("accepted_extensions")
    @classmethod
    def _extensions_warden_does_not_read(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        known = {mints.extension_name(kind): kind for kind in mints.Extension}
        for name in names:
            number = re.fullmatch(r"extension_([0-9]{1,5})", name)
            if number is not None and int(number.group(1)) < 2**16:
                if int(number.group(1)) in known.values():
                    raise ValueError(f"{name} is {mints.extension_name(int(number.group(1)))}: give its name")
                continue
            if name not in known:
                raise ValueError(
                    f"{name[:40]!r} is not a Token-2022 extension: give its name in snake case "
                    f"(permanent_delegate, transfer_hook, ...), or extension_<n> for a type Warden does not know"
                )
            if known[name] in mints.READ_WHOLE or known[name] == mints.Extension.UNINITIALIZED:
                raise ValueError(
                    f"{name} is read by Warden whole (a transfer fee is counted as a movement to its withdraw "
                    "authority; the others move nothing): it needs no acceptance"
                )
        if len(set(names)) != len(names):
            raise ValueError("each extension appears once")
        return names


class SolanaProgramRule(Record):
    """Instructions of one program that the token and System rules do not read: allowed only for
    the listed discriminators (the instruction data's first 8 bytes, hex, as Anchor writes them;
    shorter for a program whose tag is shorter), or any with ``"any"``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    program: SolanaAddress
    discriminators: tuple[str, ...] | Literal["any"] = Field(max_length=256)

    @field_validator("discriminators")
    @classmethod
    def _hex(cls, value: tuple[str, ...] | str) -> tuple[str, ...] | str:
        if value == "any":
            return value
        for text in value:
            if not re.fullmatch(r"([0-9a-f]{2}){1,8}", text):
                raise ValueError(f"a discriminator is 1-8 bytes of lowercase hex without 0x, got {text[:40]!r}")
        return value

    def allows(self, discriminator: str) -> bool:
        return self.discriminators == "any" or discriminator in self.discriminators


class SolanaPolicy(Record):
    """What the agent may do on Solana networks (those of ``tx_allowed_chains`` whose key chain
    is ``solana``). SOL in lamports; each SPL mint in its base units; the fee the agent pays
    (signatures x 5,000 lamports plus compute-unit limit x price) counts as SOL spent."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    address: SolanaAddress = Field(
        description="the agent's Solana address (`warden keys provision --chain solana`): the signer refuses to sign "
        "with a key whose address is not this one"
    )
    allowlist: tuple[SolanaAddress, ...] = Field(
        default=(), max_length=1024, description="owners (wallets) that may receive SOL or tokens; the agent always may"
    )
    max_lamports_per_tx: BaseUnits | None = Field(
        default=None, description="the most SOL one intent spends, fee included"
    )
    daily_limit_lamports: BaseUnits | None = Field(default=None, description="rolling 24 h SOL limit, fees included")
    approval_threshold_lamports: BaseUnits | None = Field(
        default=None, description="an intent spending more SOL than this, fee included, waits for an admin"
    )
    max_priority_fee_lamports: BaseUnits = Field(
        default=0, description="the most priority fee (compute-unit limit x price) one transaction may pay"
    )
    tokens: tuple[SolanaTokenLimit, ...] = Field(default=(), max_length=256)
    programs: tuple[SolanaProgramRule, ...] = Field(default=(), max_length=256)
    message_signing_enabled: bool = Field(
        default=False, description="Solana off-chain messages (intent_type solana_message) signed at all"
    )
    message_max_bytes: int = Field(
        default=1232, ge=1, le=65535, description="the longest off-chain message content signed, in bytes"
    )
    message_application_domains: tuple[SolanaAddress, ...] = Field(
        default=(),
        max_length=256,
        description="when set, only version 0 messages for one of these application domains are signed (version 1 "
        "names none); when empty, any application",
    )

    @model_validator(mode="after")
    def _once_each(self) -> "SolanaPolicy":
        mints = [t.mint for t in self.tokens]
        if len(set(mints)) != len(mints):
            raise ValueError("tokens: each mint appears once")
        listed = [p.program for p in self.programs]
        if len(set(listed)) != len(listed):
            raise ValueError("programs: each program appears once")
        return self

    def token(self, mint: str) -> SolanaTokenLimit | None:
        return next((t for t in self.tokens if t.mint == mint), None)

    def program(self, program: str) -> SolanaProgramRule | None:
        return next((p for p in self.programs if p.program == program), None)


class BitcoinPolicy(Evolving):
    """What the agent may do on Bitcoin networks (those of ``tx_allowed_chains`` whose key chain is
    ``bitcoin``), in satoshis. The agent's wallet is its key's two scripts, P2WPKH and P2TR key
    path (`btc.wallet`): an output to either is change; every other output, and the fee, is spent."""

    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {"max_sign_only_outstanding_sats": None}

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    public_key: BitcoinPublicKey = Field(
        description="the agent's Bitcoin public key, 33 bytes compressed hex (`warden keys provision --chain "
        "bitcoin`): its wallet is wpkh(key) and tr(key), and the signer refuses to sign with another key"
    )
    allowlist: tuple[BitcoinAddress, ...] = Field(
        default=(), max_length=1024, description="addresses that may be paid; the agent's own always may (change)"
    )
    max_sats_per_tx: Satoshis | None = Field(
        default=None, description="the most one intent spends (outputs to others plus the fee), satoshis"
    )
    daily_limit_sats: Satoshis | None = Field(default=None, description="rolling 24 h limit, fees included, satoshis")
    approval_threshold_sats: Satoshis | None = Field(
        default=None, description="an intent spending more than this, fee included, waits for an admin"
    )
    max_fee_sats: Satoshis = Field(default=100_000, description="the most fee one transaction pays, satoshis")
    max_fee_rate_sat_vb: int = Field(
        default=100, ge=1, le=1_000_000, description="the most fee per virtual byte one transaction pays"
    )
    max_sign_only_outstanding_sats: BaseUnits | None = Field(
        default=None,
        description="the most the agent's Bitcoin payments not yet final (sign-only, or sent and not yet mined, "
        "conflicted or cancelled) may spend together, fees included, satoshis; none: no bound beyond the rolling "
        "limit, which counts them until they are final",
    )


class AgentPolicy(Evolving):
    """An agent's guardrails, versioned and signed by an admin key. What it does not describe is
    refused: messages, typed data and EIP-7702 delegations are off until their fields allow them."""

    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {
        "message_signing_enabled": False,
        "message_max_bytes": 1024,
        "eip712_domain_allowlist": (),
        "eip712_default_policy": "deny",
        "eip7702_delegate_allowlist": (),
        "eip7702_allow_any_chain": False,
        "asset_limits": (),
        "block_unlimited_approvals": True,
        "contract_calls": (),
        "approval_threshold_eth": None,
        "approval_timeout_s": 3600,
        "eip712_no_value_types": (),
        "cosignatures": (),
        "usd_max_per_tx": None,
        "usd_daily_limit": None,
        "price_feeds": (),
        "price_max_age_s": 3600,
        "solana": None,
        "bitcoin": None,
        "max_sign_only_outstanding": None,
        "sign_only_ttl_s": None,
    }

    agent_id: Identifier
    version: int = Field(ge=1)
    intents_api_enabled: bool = True
    tx_allowed_chains: tuple[str, ...] = ()
    tx_to_allowlist: tuple[Address, ...] = ()
    tx_max_value_eth: NativeAmount | None = None
    tx_daily_limit_eth: NativeAmount | None = None
    tx_max_fee_per_gas: Wei | None = Field(
        default=None, description="the most this agent pays per unit of gas (max_fee_per_gas, or gas_price), wei"
    )
    max_sign_only_outstanding: Wei | None = Field(
        default=None,
        description="the most EVM sign-only transactions not yet landed may spend together (value + worst-case "
        "fee), wei; none: no bound beyond the rolling limit, which counts them until they land",
    )
    sign_only_ttl_s: int | None = Field(
        default=None,
        ge=60,
        le=365 * 86_400,
        description="a sign-only transaction not landed this many seconds after signing is cancelled by the signer "
        "(EVM: a 0-value transfer to itself at its nonce; Bitcoin: one of its inputs spent back to the agent); none: "
        "only an admin cancels one",
    )
    require_simulation: bool = False
    sender_address: Address | None = Field(
        default=None, description="the agent's EVM signing address, so simulation runs as the real sender"
    )
    message_signing_enabled: bool = Field(default=False, description="EIP-191 personal_sign allowed at all")
    message_max_bytes: int = Field(
        default=1024, ge=1, le=MAX_MESSAGE_BYTES, description="the longest personal_sign message signed"
    )
    eip712_domain_allowlist: tuple[Eip712DomainRule, ...] = Field(
        default=(),
        max_length=256,
        description="domains whose value-moving typed data (permits, EIP-3009 "
        "authorizations, orders) may be signed, each judged by what it moves; nothing else under them is",
    )
    eip712_default_policy: Literal["deny", "allow"] = Field(
        default="deny",
        description="typed data of a type Warden does not read and the policy does not name: allow "
        "signs it only when it carries no address-and-amount and its domain is not an asset of asset_limits",
    )
    eip712_no_value_types: tuple[Eip712NoValueType, ...] = Field(
        default=(),
        max_length=256,
        description="(verifying contract, primary type) pairs an admin names as moving "
        "no value; signed without a movement to judge",
    )
    eip7702_delegate_allowlist: tuple[Address, ...] = Field(
        default=(), max_length=256, description="contracts the agent's account may delegate to (EIP-7702); empty: none"
    )
    eip7702_allow_any_chain: bool = Field(
        default=False, description="allow authorizations with chain_id 0, valid on every chain"
    )
    asset_limits: tuple[AssetLimit, ...] = Field(
        default=(),
        max_length=256,
        description="the tokens this agent may move, per chain and contract, with their "
        "limits; a token transfer or approval of any other contract is refused",
    )
    block_unlimited_approvals: bool = Field(
        default=True,
        description="an approval or permit must fit the asset's per-transaction cap (or daily limit) "
        "and counts as spend; setApprovalForAll(true) only to an operator on tx_to_allowlist",
    )
    contract_calls: tuple[ContractCallRule, ...] = Field(
        default=(),
        max_length=256,
        description="calls other than token transfers and approvals, per contract; "
        "calldata to any contract not listed here is refused",
    )
    approval_threshold_eth: NativeAmount | None = Field(
        default=None, description="an intent whose value is above this waits for an admin's signed approval"
    )
    approval_timeout_s: int = Field(
        default=3600, ge=1, le=7 * 86_400, description="how long an intent waits for an admin before APPROVAL_EXPIRED"
    )
    usd_max_per_tx: str | None = Field(
        default=None,
        description="the most one intent moves in US dollars (native value, worst-case fee and every asset), "
        "priced by price_feeds; decimal string, at most 6 decimals",
    )
    usd_daily_limit: str | None = Field(
        default=None, description="rolling 24 h limit in US dollars across native value, fees and every asset"
    )
    price_feeds: tuple[PriceFeed, ...] = Field(
        default=(),
        max_length=256,
        description="the price source of each asset a USD limit counts; an asset without one is refused",
    )
    price_max_age_s: int = Field(
        default=3600, ge=1, le=7 * 86_400, description="a price older than this (its updatedAt) is refused"
    )
    solana: SolanaPolicy | None = Field(
        default=None, description="what the agent may do on Solana networks; none: every Solana intent is refused"
    )
    bitcoin: BitcoinPolicy | None = Field(
        default=None, description="what the agent may do on Bitcoin networks; none: every Bitcoin intent is refused"
    )
    agent_public_key: HexData = Field(description="the agent's Ed25519 public key, 32 bytes hex")
    issued_at: UtcDatetime
    admin_key_id: str = ""
    signature: str = Field(
        default="", max_length=MAX_ASSERTION_CHARS, description="the proposing admin's, " + ADMIN_SIGNATURE
    )
    cosignatures: tuple[AdminSignature, ...] = Field(
        default=(), max_length=64, description="the other admins' signatures over the same bytes (a quorum)"
    )

    @field_validator("tx_allowed_chains")
    @classmethod
    def _known_chains(cls, chains: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        return tuple(known_chain(c, info.context) for c in chains)

    @field_validator("agent_public_key")
    @classmethod
    def _ed25519_key(cls, key: str) -> str:
        if len(key) != 66:
            raise ValueError(
                f"must be a 32-byte Ed25519 public key (0x + 64 hex digits), got {len(key) - 2} hex digits"
            )
        return key

    @model_validator(mode="after")
    def _one_rule_per_thing(self) -> "AgentPolicy":
        keys = [a.key for a in self.asset_limits]
        if len(set(keys)) != len(keys):
            raise ValueError(f"asset_limits: each (chain, token) appears once, got {sorted(keys)}")
        feeds = [(f.chain, f.key) for f in self.price_feeds]
        if len(set(feeds)) != len(feeds):
            raise ValueError("price_feeds: each (chain, asset) has one feed")
        for name in ("usd_max_per_tx", "usd_daily_limit"):
            text = getattr(self, name)
            if text is not None:
                try:
                    parse_usd(text)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        contracts = [c.contract for c in self.contract_calls]
        if len(set(contracts)) != len(contracts):
            raise ValueError("contract_calls: each contract appears once")
        return self

    def asset(self, chain: str, token: str) -> AssetLimit | None:
        return next((a for a in self.asset_limits if a.chain == chain and a.token == token), None)

    def price_feed(self, chain: str, key: str) -> PriceFeed | None:
        """The feed that prices asset ``key`` (``native`` or chain:contract) on ``chain``."""
        return next((f for f in self.price_feeds if f.chain == chain and f.key == key), None)

    @property
    def usd_limited(self) -> bool:
        return self.usd_max_per_tx is not None or self.usd_daily_limit is not None

    def calls_to(self, contract: str) -> ContractCallRule | None:
        return next((c for c in self.contract_calls if c.contract == contract), None)

    @property
    def max_value_wei(self) -> int | None:
        return None if self.tx_max_value_eth is None else parse_native_amount(self.tx_max_value_eth)

    @property
    def approval_threshold_wei(self) -> int | None:
        return None if self.approval_threshold_eth is None else parse_native_amount(self.approval_threshold_eth)

    @property
    def daily_limit_wei(self) -> int | None:
        return None if self.tx_daily_limit_eth is None else parse_native_amount(self.tx_daily_limit_eth)

    def signing_bytes(self) -> bytes:
        return orjson.dumps(
            self.model_dump(mode="json", exclude={"signature", "cosignatures"}), option=orjson.OPT_SORT_KEYS
        )
