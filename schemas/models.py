"""The records Warden puts on Kafka: pydantic v2 models, orjson on the wire.

Every record carries ``schema_version`` so a reader can refuse what it does not
understand instead of misreading it. Models are frozen and refuse unknown
fields: a typo in a producer's field name is an error, not a silent default.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.chains import REGISTRY, UnknownChain
from schemas.fields import Address, HexData, Identifier, NativeAmount, UtcDatetime, Wei, parse_native_amount

SCHEMA_VERSION = 1

# EIP-2681: a nonce is below 2**64 - 1 (the largest value is reserved, so nonce + 1 still fits).
NONCE_LIMIT = 2**64 - 1

# An idempotency key holds its first intent's result for 24 h (the seeds' Idempotency-Key TTL).
IDEMPOTENCY_TTL_US = 86_400 * 1_000_000

# Freshness: an intent is refused once older than the deployment's window (WARDEN_INTENT_MAX_AGE_S,
# 10 minutes unless set) or when dated further ahead than clocks plausibly drift.
INTENT_MAX_AGE_US = 600 * 1_000_000
INTENT_MAX_FUTURE_US = 120 * 1_000_000

Stage = Literal["intake", "chain", "allowlist", "simulation", "fee", "value_cap", "daily_limit", "signing"]
# "fee" comes before the cap and the limit: they count spend (value + worst-case fee), which it
# prices. Simulation comes before "fee", so a call that reverts is told as a revert, not as a
# gas estimate that failed.
GUARDRAIL_STAGES: tuple[Stage, ...] = ("chain", "allowlist", "simulation", "fee", "value_cap", "daily_limit")


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_version: Literal[1] = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", by_alias=True))

    @classmethod
    def from_bytes(cls, raw: bytes):
        return cls.model_validate_json(raw)


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


class SealedSecret(Record):
    """A client-held secret (the vault's client share, or its customer-managed key), sealed with
    HPKE to one signer's sealing key and bound to one intent."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    key_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="the sealing key it was sealed to")
    sealed: str = Field(max_length=512, description="HPKE encapsulated key followed by ciphertext, base64")


class SealingKey(Record):
    """A signer's announcement of its sealing key: an X25519 public key made in memory when the
    signer starts and never stored. ``tee`` says where the signer runs; ``attestation`` (on
    SEV-SNP) would bind the key into the report. With ``tee="none"`` nothing proves the key is the
    signer's, and clients refuse it unless told to accept an unattested signer."""

    signer_id: Identifier
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    public_key: HexData
    suite: Literal["DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM"]
    tee: str
    attestation: str | None = None
    announced_at: UtcDatetime


class TransactionIntent(Record):
    """What an agent asks for: move ``value`` to ``to`` on ``chain``, signed by the agent."""

    intent_id: Identifier
    agent_id: Identifier
    idempotency_key: str | None = Field(default=None, max_length=255)
    chain: str
    to: Address
    value: NativeAmount
    data: HexData = "0x"
    tx_type: Literal[0, 1, 2] = 2
    gas_limit: int | None = Field(default=None, ge=21000, le=30_000_000)
    gas_price: Wei | None = None
    max_fee_per_gas: Wei | None = None
    max_priority_fee_per_gas: Wei | None = None
    access_list: tuple[AccessListEntry, ...] = ()
    nonce: int | None = Field(default=None, ge=0, lt=NONCE_LIMIT)
    signing_key_path: str | None = Field(default=None, max_length=512)
    simulate_first: bool = False
    broadcast: bool = False
    sealed_client_share: tuple[SealedSecret, ...] = Field(
        default=(), max_length=8,
        description="client-custody vaults: the client share sealed to each current signer's sealing key")
    sealed_cmek: tuple[SealedSecret, ...] = Field(
        default=(), max_length=8,
        description="vaults with a customer-managed key: that key, sealed to each current signer's sealing key")
    created_at: UtcDatetime
    expires_at: UtcDatetime | None = Field(
        default=None, description="refused from this instant on; it can only shorten the deployment's window")
    signature: str = Field(default="", description="Ed25519 signature by the agent over signing_bytes(), hex")

    _chain = field_validator("chain")(classmethod(lambda cls, v: _known_chain(v)))

    @model_validator(mode="after")
    def _fees_match_type(self) -> "TransactionIntent":
        if self.tx_type in (0, 1) and (self.max_fee_per_gas is not None or self.max_priority_fee_per_gas is not None):
            raise ValueError(
                f"tx_type {self.tx_type} pays gas_price; max_fee_per_gas/max_priority_fee_per_gas are for tx_type 2"
            )
        if self.tx_type == 2 and self.gas_price is not None:
            raise ValueError("tx_type 2 pays max_fee_per_gas + max_priority_fee_per_gas; gas_price is for tx_type 0/1")
        if self.tx_type == 0 and self.access_list:
            raise ValueError("tx_type 0 has no access_list; use tx_type 1 or 2")
        if (
            self.max_fee_per_gas is not None
            and self.max_priority_fee_per_gas is not None
            and self.max_priority_fee_per_gas > self.max_fee_per_gas
        ):
            raise ValueError("max_priority_fee_per_gas must be <= max_fee_per_gas")
        return self

    @property
    def value_wei(self) -> int:
        return parse_native_amount(self.value)

    @property
    def idempotency_slot(self) -> str | None:
        """Where the worker and the signer remember the first intent that used this agent's
        idempotency key: "agent_id:sha256(key)" (the key itself is never stored)."""
        digest = idempotency_key_sha256(self.idempotency_key)
        return None if digest is None else f"{self.agent_id}:{digest}"

    def signing_bytes(self) -> bytes:
        """The canonical bytes an agent signs: the normalized record without its
        signature, as orjson with sorted keys. Documented in README so producers in
        other languages can sign too."""
        body = self.model_dump(mode="json", exclude={"signature"})
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

    def digest(self) -> str:
        """SHA-256 of signing_bytes(), hex: what every outcome names, so a client can tell the
        answer to its intent from an answer to another record that reused its id."""
        return hashlib.sha256(self.signing_bytes()).hexdigest()


class AgentPolicy(Record):
    """An agent's guardrails, versioned and signed by an admin key."""

    agent_id: Identifier
    version: int = Field(ge=1)
    intents_api_enabled: bool = True
    tx_allowed_chains: tuple[str, ...] = ()
    tx_to_allowlist: tuple[Address, ...] = ()
    tx_max_value_eth: NativeAmount | None = None
    tx_daily_limit_eth: NativeAmount | None = None
    tx_max_fee_per_gas: Wei | None = Field(
        default=None, description="the most this agent pays per unit of gas (max_fee_per_gas, or gas_price), wei")
    require_simulation: bool = False
    sender_address: Address | None = Field(
        default=None, description="the agent's EVM signing address, so simulation runs as the real sender")
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
            raise ValueError(f"must be a 32-byte Ed25519 public key (0x + 64 hex digits), got {len(key) - 2} hex digits")
        return key

    @property
    def max_value_wei(self) -> int | None:
        return None if self.tx_max_value_eth is None else parse_native_amount(self.tx_max_value_eth)

    @property
    def daily_limit_wei(self) -> int | None:
        return None if self.tx_daily_limit_eth is None else parse_native_amount(self.tx_daily_limit_eth)

    def signing_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude={"signature"}), option=orjson.OPT_SORT_KEYS)


class Outcome(Record):
    """A record that tells a client something about its intent, signed by the service that
    decided it (a streams worker or a signer, each with its own pinned Ed25519 key) and bound to
    the intent by its digest. See README "Verifying outcomes" for the bytes that are signed."""

    intent_digest: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the intent's signing bytes; null only for an intent that could not be read")
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
    intent_id: str
    agent_id: str
    stage: Stage
    code: str
    reason: str
    verdicts: tuple[StageVerdict, ...] = ()
    decided_at: UtcDatetime


class IntentApproved(Outcome):
    """An intent that passed every guardrail, with the signed policy it passed,
    so the signer can re-verify both without trusting the worker."""

    intent: TransactionIntent
    policy: AgentPolicy
    verdicts: tuple[StageVerdict, ...]
    approved_at: UtcDatetime

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
    tx_type: Literal[0, 1, 2]
    status: TxStatus
    tee: str
    signed_at: UtcDatetime
    max_spend_wei: Wei = Field(description="value + gas_limit x max fee per gas: what the signer reserved")
    block_number: int | None = None
    gas_used: int | None = None
    fee_wei: Wei | None = Field(default=None, description="gas_used x effective gas price, once a receipt exists")
    error: str | None = Field(default=None, description="why it failed, is stuck, was replaced or dropped")
    replaces: tuple[HexData, ...] = Field(
        default=(), description="earlier transactions of this intent at the same nonce, replaced by a fee bump")
    replaced_by: HexData | None = Field(default=None, description="replaced: the transaction mined at its nonce")


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
    "AuditEvent",
    "DeadLetter",
    "GUARDRAIL_STAGES",
    "IntentApproved",
    "IntentRejected",
    "Outcome",
    "SCHEMA_VERSION",
    "SealedSecret",
    "SealingKey",
    "SignedTransaction",
    "Stage",
    "StageVerdict",
    "TransactionIntent",
    "event_id",
    "datetime",
]
