"""What an agent asks for: ``TransactionIntent`` and the parts only it carries (access lists,
EIP-7702 authorization requests, sealed secrets, declared outflows), with its idempotency and
freshness rules."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import orjson
from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from btc import psbt as bitcoin_psbts
from evm.constants import BYTES_PER_BLOB, MAX_BLOBS_PER_TX, MAX_MESSAGE_BYTES, NONCE_LIMIT
from schemas.chains import Family, chain_named
from schemas.errors import Problem
from schemas.families import FAMILY_OF_KIND, FORMS, wrong_kind
from schemas.fields import (
    Address,
    HexData,
    Identifier,
    NativeAmount,
    UtcDatetime,
    Wei,
    known_chain,
    parse_native_amount,
)
from schemas.record import SCHEMA_VERSION, Evolving, Record
from schemas.typed_data import TypedData
from svm import messages as solana_messages
from svm import transactions

# An idempotency key holds its first intent's result for 24 h (the Intents API's Idempotency-Key TTL).
IDEMPOTENCY_TTL_US = 86_400 * 1_000_000

# What is left out when a later intent under an idempotency key is compared with the first
# (`TransactionIntent.request_fields`): the key's own slot (agent_id, idempotency_key), how the record
# is written (schema_version), and what differs on every submission of one request: its id, when it
# was made and until when it holds, the agent's signature, and the secrets sealed to the signer for
# this one intent (HPKE seals afresh each time, bound to the intent id) with the flag that says where
# they went. Everything else, fees, gas, nonce, simulate_first and broadcast included, is the request.
PER_SUBMISSION_FIELDS = frozenset(
    {
        "agent_id",
        "idempotency_key",
        "schema_version",
        "intent_id",
        "created_at",
        "expires_at",
        "signature",
        "sealed_client_share",
        "sealed_cmek",
        "unattested_signer_accepted",
    }
)

# Freshness: an intent is refused once older than the deployment's window (WARDEN_INTENT_MAX_AGE_S,
# 10 minutes unless set) or when dated further ahead than clocks plausibly drift.
INTENT_MAX_AGE_US = 600 * 1_000_000
INTENT_MAX_FUTURE_US = 120 * 1_000_000

IntentType = Literal[
    "transaction", "personal_sign", "typed_data", "solana_transaction", "solana_message", "bitcoin_psbt"
]

# A Solana transaction's wire bytes, base64: at most 1,232 bytes (svm.transactions).
SOLANA_TRANSACTION_MAX_CHARS = 4 * ((1232 + 2) // 3)
SOLANA_MESSAGE_MAX_CHARS = 4 * ((solana_messages.MAX_MESSAGE_BYTES + 2) // 3)
BITCOIN_PSBT_MAX_CHARS = 4 * ((bitcoin_psbts.MAX_PSBT_BYTES + 2) // 3)


def _base64(text: str | None, error: type[ValueError], what: str) -> bytes:
    try:
        return base64.b64decode(text or "", validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise error(f"not base64: give {what} in standard base64 (with padding)") from None


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
        "solana_transaction": None,
        "solana_message": None,
        "bitcoin_psbt": None,
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
    solana_transaction: str | None = Field(
        default=None,
        max_length=SOLANA_TRANSACTION_MAX_CHARS,
        description="solana_transaction: the transaction's wire bytes, base64, the agent's signature slot empty",
    )
    solana_message: str | None = Field(
        default=None,
        max_length=SOLANA_MESSAGE_MAX_CHARS,
        description="solana_message: a Solana off-chain message's bytes (signing domain, version, ..., content), "
        "base64; the agent's address among its signatories",
    )
    bitcoin_psbt: str | None = Field(
        default=None,
        max_length=BITCOIN_PSBT_MAX_CHARS,
        description="bitcoin_psbt: a PSBT (BIP-174), base64, spending the agent's own P2WPKH or P2TR outputs",
    )
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

    _chain = field_validator("chain")(classmethod(lambda _cls, v, info: known_chain(v, info.context)))

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
                    "if": {
                        "properties": {"intent_type": {"const": "solana_transaction"}},
                        "required": ["intent_type"],
                    },
                    "then": {"required": ["solana_transaction"]},
                },
                {
                    "if": {"properties": {"intent_type": {"const": "solana_message"}}, "required": ["intent_type"]},
                    "then": {"required": ["solana_message"]},
                },
                {
                    "if": {"properties": {"intent_type": {"const": "bitcoin_psbt"}}, "required": ["intent_type"]},
                    "then": {"required": ["bitcoin_psbt"]},
                },
                {
                    "if": {"properties": {"intent_type": {"const": "transaction"}}},
                    "then": {"required": ["to", "value"]},
                },
            ]
        },
    )

    @model_validator(mode="after")
    def _kind_fields(self, info: ValidationInfo) -> "TransactionIntent":
        # The chain's family from the networks in force when the reader handed them (the worker's
        # intake, the signer), else from the built-in table; a network that is not built in, read
        # without them, is taken to be of the family its intent_type says (and judged again by
        # that reader, which knows it).
        chain = chain_named(self.chain, info.context)
        family = chain.family if chain is not None else FAMILY_OF_KIND[self.intent_type]
        if self.intent_type not in FORMS[family].kinds:
            raise ValueError(wrong_kind(self.chain, family, self.intent_type))
        return _FAMILY_FIELDS[family](self)

    def _evm_fields(self) -> "TransactionIntent":
        if self.solana_transaction is not None or self.solana_message is not None or self.bitcoin_psbt is not None:
            raise ValueError(
                "solana_transaction, solana_message and bitcoin_psbt are for the intent_type of the same name only"
            )
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

    def _solana_fields(self) -> "TransactionIntent":
        kind = self.intent_type
        other = "solana_message" if kind == "solana_transaction" else "solana_transaction"
        if getattr(self, kind) is None:
            what = "the transaction's wire bytes" if kind == "solana_transaction" else "the off-chain message's bytes"
            raise ValueError(f"intent_type {kind} needs {kind}: {what}, base64")
        for stray_kind in (other, "bitcoin_psbt"):
            if getattr(self, stray_kind) is not None:
                raise ValueError(f"{stray_kind} is not part of an intent_type {kind} intent")
        try:
            if kind == "solana_transaction":
                transactions.read(self.solana_transaction_bytes)
            else:
                solana_messages.read(self.solana_message_bytes)
        except (transactions.TransactionError, solana_messages.MessageError) as exc:
            raise ValueError(f"{kind}: {exc}") from None
        defaults = type(self).model_fields
        # A message is never sent and simulates nothing; a transaction may be either.
        free = ("simulate_first", "broadcast") if kind == "solana_transaction" else ()
        stray = [
            name
            for name in (*_TRANSACTION_ONLY, "message", "typed_data")
            if name not in free and getattr(self, name) != defaults[name].default
        ]
        if stray:
            raise ValueError(
                f"{', '.join(stray)} belong to an EVM intent, not to a {kind}: the Solana {kind.split('_')[1]} says "
                "everything; leave them out"
            )
        return self

    def _bitcoin_fields(self) -> "TransactionIntent":
        if self.bitcoin_psbt is None:
            raise ValueError("intent_type bitcoin_psbt needs bitcoin_psbt: the PSBT (BIP-174), base64")
        for other in ("solana_transaction", "solana_message"):
            if getattr(self, other) is not None:
                raise ValueError(f"{other} is not part of an intent_type bitcoin_psbt intent")
        try:
            bitcoin_psbts.read(self.bitcoin_psbt_bytes)
        except bitcoin_psbts.PsbtInvalid as exc:
            raise ValueError(f"bitcoin_psbt: {exc}") from None
        defaults = type(self).model_fields
        # The PSBT says everything a payment is; it is sent (broadcast) or signed only.
        stray = [
            name
            for name in (*_TRANSACTION_ONLY, "message", "typed_data", "simulate_first")
            if name != "broadcast" and getattr(self, name) != defaults[name].default
        ]
        if stray:
            raise ValueError(
                f"{', '.join(stray)} belong to an EVM intent, not to a bitcoin_psbt: the PSBT says everything; "
                "leave them out"
            )
        return self

    @property
    def bitcoin_psbt_bytes(self) -> bytes:
        """The PSBT's bytes (`bitcoin_psbt` decoded)."""
        return _base64(self.bitcoin_psbt, bitcoin_psbts.PsbtInvalid, "the PSBT")

    @property
    def solana_message_bytes(self) -> bytes:
        """The Solana off-chain message's bytes (`solana_message` decoded)."""
        return _base64(self.solana_message, solana_messages.MessageError, "the message's bytes")

    @property
    def solana_transaction_bytes(self) -> bytes:
        """The Solana transaction's wire bytes (`solana_transaction` decoded)."""
        return _base64(self.solana_transaction, transactions.TransactionError, "the transaction's wire bytes")

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

    def request_fields(self) -> dict[str, str]:
        """What an idempotency key stands for: a digest of each field of the request as the wire
        writes it, by name, every field but `PER_SUBMISSION_FIELDS`. Two intents under one key are
        the same request when these are equal (`idempotency_conflict` names the fields that
        differ). Digests, not values, so what is kept for 24 h is small whatever the intent holds:
        SHA-256 cut to 128 bits, as no one finds a second value of a field with the same one."""
        body = self.model_dump(mode="json", by_alias=True, exclude=PER_SUBMISSION_FIELDS)  # type: ignore[arg-type]  # IncEx omits frozenset, which pydantic takes
        return {
            name: hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
            for name, value in body.items()
        }

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


def idempotency_key_sha256(key: str | None) -> str | None:
    return None if key is None else hashlib.sha256(key.encode()).hexdigest()


def idempotency_conflict(first_id: str, first: dict[str, str] | None, intent: TransactionIntent) -> Problem | None:
    """Why ``intent`` may not have the result of ``first_id``, the first intent under its
    idempotency key (whose `request_fields` are ``first``: None when they were not kept), or None
    when it is the same request. The worker and the signer refuse it IDEMPOTENCY_KEY_REUSED with
    this reason: one key is one request, and an answer about another payment is never given."""
    if first is None:
        what = "whose request was not kept (it was decided before requests were compared)"
    else:
        later = intent.request_fields()
        differ = sorted(name for name in first.keys() | later.keys() if first.get(name) != later.get(name))
        if not differ:
            return None
        what = f"for a different request: {', '.join(differ)} {'differs' if len(differ) == 1 else 'differ'}"
    return Problem(
        f"idempotency key already used within 24 h by intent {first_id}, {what}",
        "a key names one request: send exactly that request again to get its result, or use a new idempotency key",
    )


def idempotency_slot_live(first_at_us: int, now_us: int) -> bool:
    """True while the first use of a key (at ``first_at_us``) still answers for it."""
    return now_us - first_at_us < IDEMPOTENCY_TTL_US


# How an intent's fields are checked, by the family of its chain (`schemas.families`).
_FAMILY_FIELDS: dict[Family, Callable[[TransactionIntent], TransactionIntent]] = {
    Family.EVM: TransactionIntent._evm_fields,
    Family.SOLANA: TransactionIntent._solana_fields,
    Family.BITCOIN: TransactionIntent._bitcoin_fields,
}
