"""The records Warden puts on Kafka: pydantic v2 models, orjson on the wire.

Every record carries ``schema_version`` so a reader can refuse what it does not
understand instead of misreading it. Models are frozen and refuse unknown
fields: a typo in a producer's field name is an error, not a silent default.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from evm.constants import (  # noqa: F401
    BYTES_PER_BLOB,
    EIP712_DOMAIN_FIELDS,
    EIP712_MAX_DEPTH,
    GAS_PER_BLOB,
    MAX_BLOBS_PER_TX,
    MAX_MESSAGE_BYTES,
    NONCE_LIMIT,
    PER_AUTHORIZATION_GAS,
)
from evm.typed_data import parse_integer
from schemas.chains import REGISTRY, UnknownChain
from schemas.fields import (
    Address,
    HexData,
    Identifier,
    NativeAmount,
    UtcDatetime,
    Wei,
    parse_address,
    parse_native_amount,
    parse_token_amount,
)
from schemas.quote import FeeQuote

SCHEMA_VERSION = 1

# An idempotency key holds its first intent's result for 24 h (the seeds' Idempotency-Key TTL).
IDEMPOTENCY_TTL_US = 86_400 * 1_000_000

# Freshness: an intent is refused once older than the deployment's window (WARDEN_INTENT_MAX_AGE_S,
# 10 minutes unless set) or when dated further ahead than clocks plausibly drift.
INTENT_MAX_AGE_US = 600 * 1_000_000
INTENT_MAX_FUTURE_US = 120 * 1_000_000

Stage = Literal[
    "intake",
    "chain",
    "allowlist",
    "delegation",
    "assets",
    "simulation",
    "fee",
    "value_cap",
    "daily_limit",
    "message",
    "typed_data",
    "approval",
    "signing",
]
# "fee" comes before the cap and the limit: they count spend (value + worst-case fee), which it
# prices. Simulation comes before "fee", so a call that reverts is told as a revert, not as a
# gas estimate that failed.
# "assets" judges what the calldata does (token transfers and approvals, other contract calls)
# before anything runs it, and simulation then checks the chain moves no more than that.
GUARDRAIL_STAGES: tuple[Stage, ...] = ("chain", "allowlist", "assets", "simulation", "fee", "value_cap", "daily_limit")
# A set-code transaction (type 4) also hands the account to its delegates: checked before it is priced.
SET_CODE_STAGES: tuple[Stage, ...] = (
    "chain",
    "allowlist",
    "delegation",
    "assets",
    "simulation",
    "fee",
    "value_cap",
    "daily_limit",
)
# Messages move no native value by themselves, so they have no fee or spend stages; what they may
# authorize is their stage's business (an EIP-712 Permit is refused unless its contract is allowlisted).
MESSAGE_STAGES: tuple[Stage, ...] = ("chain", "message")
# Typed data's "assets" stage counts what a Permit authorizes against the token's limits.
TYPED_DATA_STAGES: tuple[Stage, ...] = ("chain", "typed_data", "assets")
ALL_GUARDRAIL_STAGES: tuple[Stage, ...] = (
    "chain",
    "allowlist",
    "delegation",
    "assets",
    "simulation",
    "fee",
    "value_cap",
    "daily_limit",
    "message",
    "typed_data",
)

IntentType = Literal["transaction", "personal_sign", "typed_data"]


def guardrail_stages(intent: "TransactionIntent") -> tuple[Stage, ...]:
    """The stages an intent passes, in order: each kind of signature has its own guardrails."""
    if intent.intent_type == "personal_sign":
        return MESSAGE_STAGES
    if intent.intent_type == "typed_data":
        return TYPED_DATA_STAGES
    return SET_CODE_STAGES if intent.tx_type == 4 else GUARDRAIL_STAGES


# Integers a JSON reader in any language holds exactly: larger ones travel as decimal strings.
JSON_SAFE_INT = 2**53 - 1


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_version: Literal[1] = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", by_alias=True))

    @classmethod
    def from_bytes(cls, raw: bytes):
        return cls.model_validate_json(raw)


class Evolving(Record):
    """A record that gained fields after its first version: those are left out of it while they
    hold their defaults, so what was signed before they existed is the same bytes and still
    verifies, and readers of the first version still read it."""

    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Each such field is left out by pydantic-core's own serializer (exclude_if, one C-level
        # comparison per field) rather than by a Python model serializer wrapped around every
        # dump: IntentApproved.to_bytes 54 -> 20-22 us, TransactionIntent's 10-12 -> 4-5 us
        # (measured here), on the hot path of the worker and the signer. Same bytes.
        super().__pydantic_init_subclass__(**kwargs)
        for name, default in cls._OMITTED_AT_DEFAULT.items():
            if name in cls.model_fields:
                cls.model_fields[name].exclude_if = functools.partial(operator.eq, default)
        cls.model_rebuild(force=True)


class AccessListEntry(Record):
    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    address: Address
    storage_keys: tuple[HexData, ...] = ()

    @field_validator("storage_keys")
    @classmethod
    def _32_bytes(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        for key in keys:
            if len(key) != 66:
                raise ValueError(f"each storage key must be 32 bytes (0x + 64 hex digits), got {key!r}")
        return keys


def _known_chain(name: str) -> str:
    try:
        REGISTRY.get(name)
    except UnknownChain as exc:
        raise ValueError(str(exc)) from None
    return name


_TYPE_NAME_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*\Z")
_FIELD_TYPE_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*(\[[0-9]*\])*\Z")
# The EIP-712 primary types Warden reads as moving value (`rules.typed_movements`): a policy can
# never name one of them as moving nothing, and the default policy never covers them.
EIP712_VALUE_TYPES = frozenset(
    {
        "Permit",
        "PermitSingle",
        "PermitBatch",
        "PermitTransferFrom",
        "PermitBatchTransferFrom",
        "PermitWitnessTransferFrom",
        "PermitBatchWitnessTransferFrom",
        "TransferWithAuthorization",
        "ReceiveWithAuthorization",
        "OrderComponents",
        "Order",
    }
)


def _json_safe(value: Any, path: str, depth: int = 0) -> None:
    """Typed-data values as JSON any reader holds exactly: no floats, no integers past 2**53
    (as decimal strings they are exact everywhere), bounded nesting."""
    if depth > EIP712_MAX_DEPTH:
        raise ValueError(f"{path}: nested more than {EIP712_MAX_DEPTH} levels")
    if isinstance(value, float):
        raise ValueError(
            f"{path}: numbers with a fraction or exponent are refused; integers only, as JSON "
            "integers up to 2**53-1 or as decimal strings"
        )
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > JSON_SAFE_INT:
        raise ValueError(
            f"{path}: {value} is past 2**53-1, which JSON readers in other languages round; send it as a decimal string"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _json_safe(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _json_safe(item, f"{path}[{index}]", depth + 1)


def parse_typed_int(value: Any, path: str) -> int:
    """An EIP-712 uint256 as JSON carries it (an integer, a decimal string or a 0x-hex string),
    read by the signer's own rule (`evm.typed_data.parse_integer`), so the record and the
    signature can never read one value two ways."""
    return parse_integer(path, "uint256", value)


class TypedDataField(Record):
    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    name: str = Field(min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=128)


class TypedData(Record):
    """An EIP-712 document as ``eth_signTypedData_v4`` takes it. The schema checks its shape (types
    defined, domain fields known); the signer's encoder (evm/typed_data.py) checks every value
    when it hashes it, and refuses what does not encode."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    types: dict[str, tuple[TypedDataField, ...]] = Field(max_length=64)
    primaryType: str
    domain: dict[str, Any]
    message: dict[str, Any]

    @model_validator(mode="after")
    def _shape(self) -> "TypedData":
        if "EIP712Domain" not in self.types:
            raise ValueError("types.EIP712Domain is missing; EIP-712 needs the domain's type")
        for name, fields in self.types.items():
            if not _TYPE_NAME_RE.match(name):
                raise ValueError(f"types: {name!r} is not a valid type name (letters, digits, _ and $)")
            seen = set()
            for field in fields:
                if field.name in seen:
                    raise ValueError(f"types.{name}: field {field.name!r} appears twice")
                seen.add(field.name)
                if not _FIELD_TYPE_RE.match(field.type):
                    raise ValueError(f"types.{name}.{field.name}: {field.type!r} is not an EIP-712 type")
        if self.primaryType not in self.types or self.primaryType == "EIP712Domain":
            raise ValueError(f"primaryType {self.primaryType!r} must name one of the types other than EIP712Domain")
        domain_fields = {f.name: f.type for f in self.types["EIP712Domain"]}
        for name, kind in domain_fields.items():
            if EIP712_DOMAIN_FIELDS.get(name) != kind:
                raise ValueError(
                    f"types.EIP712Domain.{name}: the domain's fields are "
                    f"{', '.join(f'{k} ({t})' for k, t in EIP712_DOMAIN_FIELDS.items())}"
                )
        if set(self.domain) != set(domain_fields):
            raise ValueError(
                f"domain has {sorted(self.domain)} but types.EIP712Domain lists {sorted(domain_fields)}; "
                "they must match, or a domain value would go unsigned"
            )
        _json_safe(self.domain, "domain")
        _json_safe(self.message, "message")
        if "chainId" in self.domain:
            parse_typed_int(self.domain["chainId"], "domain.chainId")
        if "verifyingContract" in self.domain:
            parse_address(self.domain["verifyingContract"])
        return self

    @property
    def chain_id(self) -> int | None:
        return None if "chainId" not in self.domain else parse_typed_int(self.domain["chainId"], "domain.chainId")

    @property
    def verifying_contract(self) -> str | None:
        vc = self.domain.get("verifyingContract")
        return None if vc is None else parse_address(vc)

    def as_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class AuthorizationRequest(Record):
    """One EIP-7702 authorization the agent asks for: delegate its account to ``address``'s code.
    The signer signs it with the agent's key; ``nonce`` may be left out (the signer sets the
    account's next nonce) and, when given, must be that nonce."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    chain_id: int = Field(ge=0, lt=2**64, description="0 means every chain (refused unless the policy allows it)")
    address: Address
    nonce: int | None = Field(default=None, ge=0, lt=NONCE_LIMIT)


class SealedSecret(Record):
    """A client-held secret (the vault's client share, or its customer-managed key), sealed with
    HPKE to one signer's sealing key and bound to one intent."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    key_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="the sealing key it was sealed to")
    sealed: str = Field(max_length=512, description="HPKE encapsulated key followed by ciphertext, base64")


class AttestationEvidence(Record):
    """An SEV-SNP report and what it binds: its report_data is
    ``runtime.attestation.verify.report_data_binding(signer_id, sealing key, service_public_key,
    nonce)``, and an announcement's nonce is derived from its ``announced_at``
    (``runtime.attestation.announcement.announcement_nonce``), so a verifier recomputes both."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    report: str = Field(max_length=2048, description="the 1184-byte attestation report, base64")
    vcek: str | None = Field(
        default=None,
        max_length=4096,
        description="the chip's VCEK (DER, base64), when the host's certificate table gave it",
    )
    vcek_url: str = Field(max_length=512, description="where AMD's KDS serves this chip's VCEK at this TCB")
    product: Literal["milan", "genoa", "turin"]
    service_key_id: Identifier
    service_public_key: HexData = Field(description="the Ed25519 key that signs this signer's outcomes")
    nonce: HexData


class SealingKey(Record):
    """A signer's announcement of its sealing key: an X25519 public key made in memory when the
    signer starts and never stored. ``tee`` says where the signer runs; on SEV-SNP
    ``attestation`` carries a report binding this key, the signer's service key and a nonce
    derived from ``announced_at``. With ``tee="none"`` no hardware vouches for the key: clients
    refuse it unless told to accept an unattested signer, and then take it only signed by the
    signer's pinned service key (``signed_by``, ``service_signature``, as an outcome is)."""

    signer_id: Identifier
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    public_key: HexData
    suite: Literal["DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM"]
    tee: str
    attestation: AttestationEvidence | None = None
    announced_at: UtcDatetime
    signed_by: str = Field(default="", description="the key id of the signer's service key that signed this")
    service_signature: str = Field(default="", description="Ed25519 over service_signing_bytes(), hex")

    def service_signing_bytes(self) -> bytes:
        """The announcement as it travels without service_signature, keys sorted (as an outcome's)."""
        return orjson.dumps(
            self.model_dump(mode="json", by_alias=True, exclude={"service_signature"}), option=orjson.OPT_SORT_KEYS
        )


class DeclaredOutflow(Record):
    """Tokens a contract call is expected to take from the agent's account, in base units."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    token: Address
    amount: Wei


class TransactionIntent(Evolving):
    """What an agent asks for, signed by the agent. ``intent_type`` says what: a ``transaction``
    (the default: move ``value`` to ``to`` on ``chain``, EIP-2718 types 0 to 4), an EIP-191
    ``personal_sign`` of ``message``, or an EIP-712 signature over ``typed_data``. Every kind has
    the same envelope: agent signature, idempotency, freshness, audit and one outcome."""

    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {
        "intent_type": "transaction",
        "message": None,
        "typed_data": None,
        "max_fee_per_blob_gas": None,
        "blob_versioned_hashes": (),
        "blobs": (),
        "authorization_list": (),
        "declared_outflows": (),
        "unattested_signer_accepted": False,
    }

    intent_id: Identifier
    agent_id: Identifier
    idempotency_key: str | None = Field(default=None, max_length=255)
    intent_type: IntentType = "transaction"
    chain: str
    to: Address | None = Field(default=None, description="required for a transaction; absent for a message")
    value: NativeAmount | None = Field(default=None, description="required for a transaction; absent for a message")
    data: HexData = "0x"
    tx_type: Literal[0, 1, 2, 3, 4] = 2
    gas_limit: int | None = Field(default=None, ge=21000, le=30_000_000)
    gas_price: Wei | None = None
    max_fee_per_gas: Wei | None = None
    max_priority_fee_per_gas: Wei | None = None
    access_list: tuple[AccessListEntry, ...] = ()
    nonce: int | None = Field(default=None, ge=0, lt=NONCE_LIMIT)
    max_fee_per_blob_gas: Wei | None = Field(default=None, description="type 3: the most one unit of blob gas costs")
    blob_versioned_hashes: tuple[HexData, ...] = Field(
        default=(), max_length=MAX_BLOBS_PER_TX, description="type 3: 0x01-versioned KZG commitment hashes"
    )
    blobs: tuple[HexData, ...] = Field(
        default=(),
        max_length=MAX_BLOBS_PER_TX,
        description="type 3 with broadcast: the blobs themselves (131072 bytes each), in the order of their hashes",
    )
    authorization_list: tuple[AuthorizationRequest, ...] = Field(
        default=(), max_length=1, description="type 4: the EIP-7702 delegation of the agent's account to sign"
    )
    declared_outflows: tuple[DeclaredOutflow, ...] = Field(
        default=(),
        max_length=16,
        description="a contract call: the tokens it is expected to take from the agent's account (a router's "
        "transferFrom), counted against their asset limits; simulation refuses a call that takes more",
    )
    message: HexData | None = Field(
        default=None, description="personal_sign: the message bytes (UTF-8 text as hex), at most 16384 bytes"
    )
    typed_data: TypedData | None = Field(default=None, description="typed_data: the EIP-712 document")
    signing_key_path: str | None = Field(default=None, max_length=512)
    simulate_first: bool = False
    broadcast: bool = False
    sealed_client_share: tuple[SealedSecret, ...] = Field(
        default=(),
        max_length=8,
        description="client-custody vaults: the client share sealed to each current signer's sealing key",
    )
    sealed_cmek: tuple[SealedSecret, ...] = Field(
        default=(),
        max_length=8,
        description="vaults with a customer-managed key: that key, sealed to each current signer's sealing key",
    )
    unattested_signer_accepted: bool = Field(
        default=False,
        description="a sealed secret in this intent went to a signer with no verified attestation "
        "(tee=none), accepted with WARDEN_ALLOW_UNATTESTED_SIGNER=1: recorded so the ledger shows it",
    )
    created_at: UtcDatetime
    expires_at: UtcDatetime | None = Field(
        default=None, description="refused from this instant on; it can only shorten the deployment's window"
    )
    signature: str = Field(default="", description="Ed25519 signature by the agent over signing_bytes(), hex")

    _chain = field_validator("chain")(classmethod(lambda cls, v: _known_chain(v)))

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "allOf": [
                {
                    "if": {"properties": {"intent_type": {"const": "personal_sign"}}, "required": ["intent_type"]},
                    "then": {"required": ["message"]},
                },
                {
                    "if": {"properties": {"intent_type": {"const": "typed_data"}}, "required": ["intent_type"]},
                    "then": {"required": ["typed_data"]},
                },
                {
                    "if": {"properties": {"intent_type": {"const": "transaction"}}},
                    "then": {"required": ["to", "value"]},
                },
            ]
        },
    )

    @model_validator(mode="after")
    def _kind_fields(self) -> "TransactionIntent":
        if self.intent_type != "transaction":
            return self._message_fields()
        if self.to is None:
            raise ValueError("to is required for a transaction (contract creation is not supported)")
        if self.value is None:
            raise ValueError('value is required for a transaction: a decimal string in the native unit such as "0.05"')
        if self.message is not None or self.typed_data is not None:
            raise ValueError("message and typed_data are for intent_type personal_sign and typed_data")
        if self.tx_type in (0, 1) and (self.max_fee_per_gas is not None or self.max_priority_fee_per_gas is not None):
            raise ValueError(
                f"tx_type {self.tx_type} pays gas_price; max_fee_per_gas/max_priority_fee_per_gas are for tx_type 2-4"
            )
        if self.tx_type >= 2 and self.gas_price is not None:
            raise ValueError(
                f"tx_type {self.tx_type} pays max_fee_per_gas + max_priority_fee_per_gas; gas_price is for tx_type 0/1"
            )
        if self.tx_type == 0 and self.access_list:
            raise ValueError("tx_type 0 has no access_list; use tx_type 1 or 2")
        if (
            self.max_fee_per_gas is not None
            and self.max_priority_fee_per_gas is not None
            and self.max_priority_fee_per_gas > self.max_fee_per_gas
        ):
            raise ValueError("max_priority_fee_per_gas must be <= max_fee_per_gas")
        self._blob_fields()
        if self.tx_type == 4 and not self.authorization_list:
            raise ValueError("tx_type 4 (EIP-7702) needs an authorization_list with one authorization")
        if self.tx_type != 4 and self.authorization_list:
            raise ValueError("authorization_list is for tx_type 4 (EIP-7702) only")
        return self

    def _blob_fields(self) -> None:
        if self.tx_type != 3:
            if self.max_fee_per_blob_gas is not None or self.blob_versioned_hashes or self.blobs:
                raise ValueError("max_fee_per_blob_gas, blob_versioned_hashes and blobs are for tx_type 3 (EIP-4844)")
            return
        if self.max_fee_per_blob_gas is None:
            raise ValueError("tx_type 3 (EIP-4844) needs max_fee_per_blob_gas")
        if not self.blob_versioned_hashes:
            raise ValueError(f"tx_type 3 (EIP-4844) needs 1 to {MAX_BLOBS_PER_TX} blob_versioned_hashes")
        for index, versioned in enumerate(self.blob_versioned_hashes):
            if len(versioned) != 66 or not versioned.startswith("0x01"):
                raise ValueError(
                    f"blob_versioned_hashes[{index}] must be 32 bytes starting with the KZG version "
                    f"byte 0x01, got {versioned[:80]!r}"
                )
        if len(set(self.blob_versioned_hashes)) != len(self.blob_versioned_hashes):
            raise ValueError("blob_versioned_hashes has the same hash twice")
        if self.blobs and len(self.blobs) != len(self.blob_versioned_hashes):
            raise ValueError(
                f"{len(self.blobs)} blobs for {len(self.blob_versioned_hashes)} blob_versioned_hashes; "
                "send one blob per hash, in the same order"
            )
        for index, blob in enumerate(self.blobs):
            if len(blob) != 2 + 2 * BYTES_PER_BLOB:
                raise ValueError(
                    f"blobs[{index}] is {(len(blob) - 2) // 2} bytes; a blob is exactly {BYTES_PER_BLOB} bytes"
                )
        if self.broadcast and not self.blobs:
            raise ValueError(
                "a blob transaction is broadcast with its blobs: add blobs, or leave broadcast off to "
                "sign it only (with the versioned hashes)"
            )

    def _message_fields(self) -> "TransactionIntent":
        wanted = "message" if self.intent_type == "personal_sign" else "typed_data"
        unwanted = "typed_data" if wanted == "message" else "message"
        if getattr(self, wanted) is None:
            raise ValueError(f"intent_type {self.intent_type} needs {wanted}")
        if getattr(self, unwanted) is not None:
            raise ValueError(f"{unwanted} is not part of an intent_type {self.intent_type} intent")
        if self.message is not None and len(self.message) > 2 + 2 * MAX_MESSAGE_BYTES:
            raise ValueError(f"message is {(len(self.message) - 2) // 2} bytes; at most {MAX_MESSAGE_BYTES} are signed")
        # Everything that makes a transaction must be absent, so nobody believes it is signed too.
        defaults = type(self).model_fields
        stray = [name for name in _TRANSACTION_ONLY if getattr(self, name) != defaults[name].default]
        if stray:
            raise ValueError(
                f"{', '.join(stray)} belong to a transaction, not to an intent_type {self.intent_type} "
                "intent; leave them out"
            )
        return self

    @property
    def value_wei(self) -> int:
        return 0 if self.value is None else parse_native_amount(self.value)

    @property
    def idempotency_slot(self) -> str | None:
        """Where the worker and the signer remember the first intent that used this agent's
        idempotency key: "agent_id:sha256(key)" (the key itself is never stored)."""
        digest = idempotency_key_sha256(self.idempotency_key)
        return None if digest is None else f"{self.agent_id}:{digest}"

    def type_facts(self) -> dict[str, Any]:
        """For the ledger: what a blob (type 3) or set-code (type 4) transaction commits to besides value."""
        if self.tx_type == 3:
            return {
                "blob_versioned_hashes": list(self.blob_versioned_hashes),
                "max_fee_per_blob_gas": str(self.max_fee_per_blob_gas),
                "carries_blobs": bool(self.blobs),
            }
        if self.tx_type == 4:
            return {
                "delegates": [a.address for a in self.authorization_list],
                "authorization_chain_ids": [a.chain_id for a in self.authorization_list],
            }
        return {}

    def signing_bytes(self) -> bytes:
        """The canonical bytes an agent signs: the normalized record without its
        signature, as orjson with sorted keys. Documented in docs/producing-intents.md so producers in
        other languages can sign too."""
        body = self.model_dump(mode="json", exclude={"signature"})
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

    def digest(self) -> str:
        """SHA-256 of signing_bytes(), hex: what every outcome names, so a client can tell the
        answer to its intent from an answer to another record that reused its id."""
        return hashlib.sha256(self.signing_bytes()).hexdigest()


_TRANSACTION_ONLY = (
    "to",
    "value",
    "data",
    "tx_type",
    "gas_limit",
    "gas_price",
    "max_fee_per_gas",
    "max_priority_fee_per_gas",
    "access_list",
    "nonce",
    "max_fee_per_blob_gas",
    "blob_versioned_hashes",
    "blobs",
    "authorization_list",
    "declared_outflows",
    "simulate_first",
    "broadcast",
)


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
        if not _TYPE_NAME_RE.match(name):
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
    def _known(cls, chain: str) -> str:
        return _known_chain(chain)

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
    agent_public_key: HexData = Field(description="the agent's Ed25519 public key, 32 bytes hex")
    issued_at: UtcDatetime
    admin_key_id: str = ""
    signature: str = Field(default="", description="Ed25519 signature by the admin key over signing_bytes(), hex")

    @field_validator("tx_allowed_chains")
    @classmethod
    def _known_chains(cls, chains: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_known_chain(c) for c in chains)

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
        contracts = [c.contract for c in self.contract_calls]
        if len(set(contracts)) != len(contracts):
            raise ValueError("contract_calls: each contract appears once")
        return self

    def asset(self, chain: str, token: str) -> AssetLimit | None:
        return next((a for a in self.asset_limits if a.chain == chain and a.token == token), None)

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
        return orjson.dumps(self.model_dump(mode="json", exclude={"signature"}), option=orjson.OPT_SORT_KEYS)


class Outcome(Evolving):
    """A record that tells a client something about its intent, signed by the service that
    decided it (a streams worker or a signer, each with its own pinned Ed25519 key) and bound to
    the intent by its digest. See docs/security.md, "Verifying outcomes", for the bytes that are signed."""

    intent_digest: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the intent's signing bytes; for an INVALID_INTENT rejection of a record that "
        "could not be read, SHA-256 of the record's bytes as written",
    )
    signed_by: str = Field(default="", description="the key id of the service that signed this record")
    service_signature: str = Field(default="", description="Ed25519 over service_signing_bytes(), hex")

    def service_signing_bytes(self) -> bytes:
        """The record as it travels (JSON, wire field names) without service_signature, keys sorted."""
        body = self.model_dump(mode="json", by_alias=True, exclude={"service_signature"})
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


class StageVerdict(Record):
    intent_id: str
    stage: Stage
    passed: bool
    code: str
    reason: str
    facts: dict[str, Any] = Field(default_factory=dict)


class IntentRejected(Outcome):
    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {"tee": None}

    intent_id: str
    agent_id: str
    stage: Stage
    code: str
    reason: str
    verdicts: tuple[StageVerdict, ...] = ()
    decided_at: UtcDatetime
    tee: str | None = Field(default=None, description="a signer's refusal: where that signer runs (none or sev-snp)")


class HumanApproval(Record):
    """An admin's decision on an intent that waits for one, signed with a pinned admin key over
    `signing_bytes` and bound to the intent by its digest. The worker acts on it, and the signer
    checks it again itself before it signs anything above a threshold."""

    intent_id: str
    agent_id: str
    intent_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    decision: Literal["approve", "deny"]
    reason: str = Field(default="", max_length=1024)
    decided_at: UtcDatetime
    admin_key_id: str = ""
    signature: str = Field(default="", description="Ed25519 by the admin key over signing_bytes(), hex")

    def signing_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude={"signature"}), option=orjson.OPT_SORT_KEYS)


class IntentParked(Outcome):
    """An intent above a human-approval threshold: it passed every guardrail, its spend is
    reserved, and it waits for an admin's signed decision (`HumanApproval`) until ``expires_at``.
    Not final: an approval, a denial or APPROVAL_EXPIRED follows."""

    intent_id: str
    agent_id: str
    status: Literal["awaiting_approval"] = "awaiting_approval"
    reason: str
    intent: TransactionIntent
    verdicts: tuple[StageVerdict, ...] = ()
    parked_at: UtcDatetime
    expires_at: UtcDatetime


class IntentApproved(Outcome):
    """An intent that passed every guardrail, with the signed policy it passed,
    so the signer can re-verify both without trusting the worker.

    It carries no verdicts: the signer re-runs every check and never reads them, and each stage's
    verdict is on the audit ledger (``stage.passed``, with its code, reason and facts). Left out,
    they were 2.4 KB of a 4.0 KB approval, written again into the worker's decision changelog and
    parsed by the signer, for every intent. A record written before keeps its verdicts and reads
    (and verifies) as it was."""

    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {"human_approval": None, "verdicts": ()}

    intent: TransactionIntent
    policy: AgentPolicy
    verdicts: tuple[StageVerdict, ...] = Field(
        default=(),
        description="no longer written (the ledger's stage.passed events hold each verdict); read in older records",
    )
    approved_at: UtcDatetime
    human_approval: HumanApproval | None = Field(
        default=None, description="the admin's approval, for an intent above a human-approval threshold"
    )

    @property
    def intent_id(self) -> str:
        return self.intent.intent_id


class IntentAbandoned(Outcome):
    """A worker's redelivery task gave up on an intent that still had no outcome after its last
    attempt (on ``warden.intents.abandoned``): the worker decides it NO_OUTCOME unless it decided
    it already. Signed by the worker whose task gave up: a record anybody could write would have
    the worker decide a real intent NO_OUTCOME before it reads it, or take an id an agent has yet
    to use (idempotent ids can be computed)."""

    intent: TransactionIntent
    attempts: int = Field(ge=0, description="how many times the intent was submitted again before it was given up")
    abandoned_at: UtcDatetime

    @property
    def intent_id(self) -> str:
        return self.intent.intent_id


class StageEnvelope(Outcome):
    """The split topology's hand-off: an intent, the policy it is judged under and the verdicts so
    far, on its way to ``stage`` (on ``warden.stage.<stage>``). No client reads it; it is signed by
    the worker that wrote it like an outcome, because the next stage trusts the verdicts and the
    policy it carries: one a topic writer made must decide nothing (`Engine.on_stage`)."""

    stage: Stage
    intent: TransactionIntent
    policy: AgentPolicy
    verdicts: tuple[StageVerdict, ...] = ()
    # The typed results of the stages so far (`rules.judge.Judgement`), for the stages that count them.
    quote: FeeQuote | None = None
    asset_spend: dict[str, Wei] = Field(default_factory=dict)

    @property
    def intent_id(self) -> str:
        return self.intent.intent_id


# The lifecycle of one transaction (signer/lifecycle.py): sign_only, or signed, then broadcast
# (and stuck, with the reason, while it is not being mined), then mined, failed, replaced or dropped.
TxStatus = Literal["sign_only", "signed", "broadcast", "stuck", "mined", "failed", "replaced", "dropped"]
FINAL_TX_STATUSES = frozenset({"sign_only", "mined", "failed", "replaced", "dropped"})


class SignedTransaction(Outcome):
    intent_id: str
    agent_id: str
    chain: str
    chain_id: int
    signed_tx: HexData
    tx_hash: HexData
    from_: Address = Field(alias="from")
    to: Address
    nonce: int
    value_wei: Wei
    tx_type: Literal[0, 1, 2, 3, 4]
    status: TxStatus
    tee: str
    signed_at: UtcDatetime
    max_spend_wei: Wei = Field(description="value + gas_limit x max fee per gas: what the signer reserved")
    block_number: int | None = None
    gas_used: int | None = None
    fee_wei: Wei | None = Field(default=None, description="gas_used x effective gas price, once a receipt exists")
    error: str | None = Field(default=None, description="why it failed, is stuck, was replaced or dropped")
    replaces: tuple[HexData, ...] = Field(
        default=(), description="earlier transactions of this intent at the same nonce, replaced by a fee bump"
    )
    replaced_by: HexData | None = Field(default=None, description="replaced: the transaction mined at its nonce")


class SignedMessage(Outcome):
    """An EIP-191 or EIP-712 signature the signer made for an intent, on ``warden.messages.signed``
    (a topic of its own: its readers never mistake a signature over a message for a transaction)."""

    intent_id: str
    agent_id: str
    kind: Literal["personal_sign", "typed_data"]
    chain: str
    chain_id: int
    from_: Address = Field(alias="from")
    message_hash: HexData = Field(description="what was signed: the EIP-191 hash, or the EIP-712 digest")
    signature: HexData = Field(description="65 bytes: r || s || v, v = 27 or 28 (what eth_sign returns)")
    primary_type: str | None = Field(default=None, description="typed data: its primaryType")
    verifying_contract: Address | None = Field(default=None, description="typed data: the domain's verifyingContract")
    domain_separator: HexData | None = Field(default=None, description="typed data: hashStruct(domain)")
    tee: str
    signed_at: UtcDatetime


Actor = str  # "agent:<id>", "admin:<key id>" or "service:<name>"


class AuditEvent(Record):
    """One fact for the ledger: who (actor) did what (action) to what (resource), when."""

    event_id: str
    actor: Actor
    action: str
    resource: str
    ts: UtcDatetime
    intent_id: str | None = None
    agent_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


# A record on warden.audit.events holds one AuditEvent (a JSON object) or several of one agent's
# (a JSON array of at least one, in the order they happened): a service joins one agent's events of
# what it decided together (a lot of intents, a batch) into one record, not one per event. The
# ledger chains each event on its own, so the chain, the hashes and the proofs are the same.
_AUDIT_EVENTS = TypeAdapter(Annotated[list[AuditEvent], Field(min_length=1)])


def audit_events_of(raw: bytes) -> list[AuditEvent]:
    """The events of one audit record, in order. Raises ValueError (pydantic's, naming the element
    and the field) when it is neither an AuditEvent nor a non-empty JSON array of them."""
    if raw.lstrip()[:1] == b"[":
        return _AUDIT_EVENTS.validate_json(raw)
    return [AuditEvent.from_bytes(raw)]


def audit_record(events: list[bytes]) -> bytes:
    """One audit record of the given events' bytes (each ``AuditEvent.to_bytes()``), no re-encoding."""
    return events[0] if len(events) == 1 else b"[" + b",".join(events) + b"]"


class DeadLetter(Outcome):
    """A record a worker could not read, kept with the reason so nothing is lost. Signed by the
    service that wrote it (a worker or a signer): a dead letter ends the watch for an intent, so
    one anybody could write would let them stop an intent's redelivery."""

    source_topic: str
    partition: int
    offset: int
    key: str | None
    reason: str
    errors: tuple[str, ...] = ()
    payload_b64: str = Field(description="the record's first bytes (at most the size limit), base64")
    payload_sha256: str = Field(description="SHA-256 of the whole record, hex")
    payload_bytes: int | None = Field(default=None, description="the whole record's size")
    received_at: UtcDatetime


def idempotency_key_sha256(key: str | None) -> str | None:
    return None if key is None else hashlib.sha256(key.encode()).hexdigest()


def idempotency_slot_live(first_at_us: int, now_us: int) -> bool:
    """True while the first use of a key (at ``first_at_us``) still answers for it."""
    return now_us - first_at_us < IDEMPOTENCY_TTL_US


def event_id(*parts: str) -> str:
    """Deterministic audit event id: a redelivered record yields the same id, so
    the ledger can skip what it already holds."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


__all__ = [
    "AccessListEntry",
    "AgentPolicy",
    "AssetLimit",
    "AuditEvent",
    "ContractCallRule",
    "DeadLetter",
    "GUARDRAIL_STAGES",
    "HumanApproval",
    "IntentApproved",
    "IntentParked",
    "IntentRejected",
    "Outcome",
    "SCHEMA_VERSION",
    "SealedSecret",
    "SealingKey",
    "SignedMessage",
    "SignedTransaction",
    "Stage",
    "TypedData",
    "guardrail_stages",
    "StageVerdict",
    "TransactionIntent",
    "audit_events_of",
    "audit_record",
    "event_id",
    "datetime",
]
