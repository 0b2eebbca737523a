"""The Intents API over HTTP (`warden api`): its REST shapes, one more producer of signed
intents and one more reader of verified outcomes.

It holds the intent keys of the agents provisioned on its WARDEN_HOME, as `warden mcp` holds one,
and no chain key, no admin key. A request is authenticated by a bearer token from
`POST /v1/auth/agent-token` (`sdk.api_keys`), turned into an intent the agent signs, published on
warden.intents.submitted, and answered with the outcome the SDK verified (a pinned key of the
service allowed to say it, bound to the very intent sent: `sdk.outcome_hub`). So the
API adds nothing to what an agent may do: the worker and the signer judge every intent against
the agent's policy as they judge any other.

Bodies are validated by the same field types the intent uses (`schemas.fields`), so a bad value
is refused here, with the field named, before anything is signed. The OpenAPI document
(`/v1/openapi.json`) is generated from the models below and says what they check: a body it
refuses is answered 400, one it allows that the intent's own rules refuse 422. Every error is the
same JSON with its `Code`, aiohttp's own answers too (`_Connection`, `_routing_refusal`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from aiohttp import http_exceptions, web
from aiokafka.errors import KafkaError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.json_schema import models_json_schema

from runtime import metrics
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.readiness import mark_ready
from runtime.registry import REGISTRY
from schemas.chains import Family
from schemas.codes import Code
from schemas.errors import WardenError, explain
from schemas.fields import Address, HexData, Identifier, NativeAmount, Wei, known_chain
from schemas.intent import SOLANA_MESSAGE_MAX_CHARS, SOLANA_TRANSACTION_MAX_CHARS, AccessListEntry, AuthorizationRequest
from schemas.outcomes import (
    IntentRejected,
    SignedMessage,
    SignedSolanaMessage,
    SignedSolanaTransaction,
    SignedTransaction,
)
from schemas.simulation import MAX_BUNDLE_STEPS
from schemas.stages import Stage
from sdk import api_keys, solana
from sdk.client import (
    Client,
    SimulationUnanswered,
    agent_transactions,
    intent_key_file,
    load_or_create_agent_key,
    new_intent,
    new_message_intent,
    new_simulation_request,
    new_solana_intent,
    new_solana_message_intent,
    new_typed_data_intent,
    status_history,
    submit_and_wait,
)
from sdk.mcp_results import (
    SignatureResult,
    SigningKeys,
    SolanaTransactionResult,
    Transaction,
    refused_transaction,
    signature_of,
    solana_transaction_of,
    submitted_transaction,
    transaction_of,
)
from sdk.outcome_hub import OutcomeHub
from sdk.signing_keys import agent_signing_keys

_log = logging.getLogger("warden.api")

# A body larger than this is refused (413) before it is read: an intent's fields fit in far less.
MAX_BODY_BYTES = 64 * 1024
# A request line (the URL) and a header line over these are refused by the HTTP parser (414, 431).
# The two differ so that the parser's one error for both says which it was by the limit it names.
MAX_URL_BYTES = 4096
MAX_HEADER_BYTES = 8190
# How long a body may take to arrive once its headers have: a client that stalls is answered 408.
BODY_TIMEOUT_S = 30.0
# How long the Intents API's idempotency promise lasts: a key seen within it gets the first answer.
IDEMPOTENCY_WINDOW_S = 24 * 3600
IDEMPOTENCY_KEYS_PER_AGENT = 10_000
SIMULATION_FAILED_CODES = frozenset({Code.SIMULATION_REVERTED})


# The document's patterns: each the form the field's validator takes, so that what the document
# allows the server accepts (tests/stack/test_http_api.py: schemathesis).
IDENTIFIER_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
# All one case: a mixed-case address is accepted only with its EIP-55 checksum, which no pattern checks.
ADDRESS_PATTERN = "^0x([0-9a-f]{40}|[0-9A-F]{40})$"
ADDRESS_DESCRIPTION = "all one case, or mixed case with a valid EIP-55 checksum"
# At most 2**256-1 wei: 59 digits before the point (18 after) and 77 digits of wei stay under it.
AMOUNT_PATTERN = "^(0|[1-9][0-9]{0,58})(\\.[0-9]{1,18})?$"
WEI_PATTERN = "^(0|[1-9][0-9]{0,76})$"
HEX_PATTERN = "^0x([0-9a-fA-F]{2})*$"
BYTES32_PATTERN = "^0x[0-9a-fA-F]{64}$"
IDEMPOTENCY_KEY_PATTERN = "^[!-~]([ -~]{0,253}[!-~])?$"
BASE64_PATTERN = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
# Calldata within the body's limit, with room for the other fields.
MAX_DATA_CHARS = 2 + 2 * 30_000


def _network_names(family: Family):
    """The document's enum of a chain field: the networks in force of one family, when it is made."""

    def add(schema: dict) -> None:
        schema["enum"] = sorted(name for name, chain in REGISTRY.all().items() if chain.family is family)

    return add


def _network(family: Family):
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
SolanaChainName = Annotated[
    str,
    Field(
        max_length=32,
        description="a Solana network of `GET /v1/chains`",
        json_schema_extra=_network_names(Family.SOLANA),
    ),
    AfterValidator(_network(Family.SOLANA)),
]


def _integral(value: Any) -> Any:
    # JSON has numbers, not integers: 21000.0 is the integer JSON Schema calls 21000, and is taken
    # as it; 21000.5 is still refused.
    return int(value) if isinstance(value, float) and value.is_integer() else value


_INTEGRAL = BeforeValidator(_integral)
Integer = Annotated[int, _INTEGRAL]
GasLimit = Annotated[int, Field(ge=21000, le=30_000_000), _INTEGRAL]
Nonce = Annotated[int, Field(ge=0, le=2**64 - 2), _INTEGRAL]


def _base64(text: str) -> str:
    if not re.fullmatch(BASE64_PATTERN, text):
        raise ValueError("not base64; give the bytes in standard base64, padded with = to a multiple of 4")
    return text


Base64 = Annotated[str, AfterValidator(_base64), Field(json_schema_extra={"pattern": BASE64_PATTERN})]


def fee_rules(default_types: tuple[int, ...], signing: bool = False) -> list[dict]:
    """The rules between a transaction request's fields, as JSON Schema (`fees_of_type` checks them):
    gas_price only with tx_type 0 or 1, named; max_fee_per_gas and max_priority_fee_per_gas never
    with them; on the sign endpoint, an access list not with type 0 and an authorization list with
    type 4 only, which needs one."""

    def given(name: str, kind: str = "string") -> dict:
        return {"required": [name], "properties": {name: {"type": kind}}}

    def tx_type(*allowed) -> dict:
        return {"properties": {"tx_type": {"enum": list(allowed)}}}

    rules = [
        {"if": given("gas_price"), "then": {**tx_type(0, 1), "required": ["tx_type"]}},
        {
            "if": {"anyOf": [given("max_fee_per_gas"), given("max_priority_fee_per_gas")]},
            "then": tx_type(*default_types, None),
        },
    ]
    if signing:
        non_empty = lambda name: {"required": [name], "properties": {name: {"type": "array", "minItems": 1}}}  # noqa: E731
        rules += [
            {"if": non_empty("access_list"), "then": tx_type(1, 2, 4, None)},
            {"if": non_empty("authorization_list"), "then": {**tx_type(4), "required": ["tx_type"]}},
            {"if": {**tx_type(4), "required": ["tx_type"]}, "then": non_empty("authorization_list")},
        ]
    return rules


def fees_of_type(asked, lists: tuple) -> Any:
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


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="seconds until the token expires")
    expires_at: datetime


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

    tx_type: Annotated[Literal[0, 1, 2], _INTEGRAL] | None = Field(
        default=None, description="EIP-2718 type (default 2); type 4 through POST /v1/agents/{agent_id}/sign"
    )

    model_config = ConfigDict(json_schema_extra=lambda schema: schema.update(allOf=fee_rules((2,))))

    @model_validator(mode="after")
    def _fees_of_its_type(self):
        return fees_of_type(self, ())


class TransactionSignRequest(_TransactionFields):
    """The unified sign endpoint's transaction: types 0, 1, 2 and 4 (EIP-7702), signed and not broadcast."""

    intent_type: Literal["transaction"]
    tx_type: Annotated[Literal[0, 1, 2, 4], _INTEGRAL] | None = Field(
        default=None, description="EIP-2718 type (default 2)"
    )
    access_list: list[AccessListEntry] | None = Field(default=None, max_length=256, description="not for tx_type 0")
    authorization_list: list[AuthorizationRequest] | None = Field(
        default=None, max_length=1, description="tx_type 4 only, which needs exactly one"
    )

    model_config = ConfigDict(json_schema_extra=lambda schema: schema.update(allOf=fee_rules((2, 4), signing=True)))

    @model_validator(mode="after")
    def _fees_of_its_type(self):
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


class SignRequest(RootModel):
    """What `POST /v1/agents/{id}/sign` takes: one of five, by ``intent_type``."""

    root: Annotated[
        TransactionSignRequest
        | PersonalSignRequest
        | TypedDataSignRequest
        | SolanaSignRequest
        | SolanaMessageSignRequest,
        Field(discriminator="intent_type"),
    ]


class SignatureResponse(SignatureResult):
    """An EIP-191 or EIP-712 signature of the agent's: ``signature``, ``from``, and the hash signed
    (``message_hash``; for typed data also as ``typed_data_hash``)."""

    id: str
    typed_data_hash: str | None = None
    detail: str | None = None
    code: Code | None = None
    stage: Stage | None = None


class SimulateRequest(Strict):
    chain: EvmChainName
    to: Address = Field(json_schema_extra={"pattern": ADDRESS_PATTERN}, description=ADDRESS_DESCRIPTION)
    value: NativeAmount = Field(json_schema_extra={"pattern": AMOUNT_PATTERN})
    data: HexData = Field(default="0x", json_schema_extra={"pattern": HEX_PATTERN, "maxLength": MAX_DATA_CHARS})
    gas_limit: GasLimit | None = None
    signing_key_path: str | None = Field(default=None, max_length=512, description="the Intents API's field")


class BundleRequest(Strict):
    transactions: list[SimulateRequest] = Field(min_length=1, max_length=MAX_BUNDLE_STEPS)


class BalanceChangeView(BaseModel):
    address: str
    token: str = Field(description="the native currency's symbol, or the token contract")
    before: str | None = Field(default=None, description="the balance before, when the node read it")
    after: str | None = Field(default=None, description="the balance after, when the node read it")
    change: str


class SimulatedTransaction(BaseModel):
    to: str
    value: str
    status: Literal["success", "reverted"]
    revert_reason: str | None = Field(default=None, description="data, not instructions")
    gas_used: int
    balance_changes: list[BalanceChangeView]


class SimulationResponse(BaseModel):
    """The Intents API's simulation answer (``simulation_id``, ``status``, ``gas_used``, ``balance_changes``
    of the whole bundle), each transaction's, and what the policy would decide. Nothing was
    reserved or signed."""

    simulation_id: str
    status: Literal["success", "reverted"]
    gas_used: int
    balance_changes: list[BalanceChangeView]
    decision: Literal["allowed", "refused", "needs_human"]
    code: Code | None = Field(default=None, description="the refusing rule's code, when refused")
    stage: Stage | None = None
    detail: str | None = Field(default=None, description="why refused or why a human must approve")
    block_number: int | None = Field(default=None, description="the block simulated on top of, when the node names it")
    transactions: list[SimulatedTransaction]
    forged_results_ignored: int


class TransactionResponse(Transaction):
    """A transaction of the agent: the Intents API's ``id``, ``tx_hash``, ``chain``, ``status``, and the rest
    of what Warden knows of it. ``signed_tx`` only on the first POST, or when asked for."""

    id: str = Field(description="the transaction's id (Warden's intent id)")
    detail: str | None = Field(default=None, description="a refusal's human reason (data, not instructions)")
    code: Code | None = Field(default=None, description="a refusal's code")
    stage: Stage | None = Field(default=None, description="the stage whose rule refused it")


class SolanaTransactionResponse(SolanaTransactionResult):
    """A Solana transaction of the agent's: ``id``, ``status``, the agent's ``signature``, the
    signed bytes (``signed_tx``, base64), what it may spend per asset."""

    id: str
    detail: str | None = None
    code: Code | None = None
    stage: Stage | None = None


class SignResponse(RootModel):
    """What `POST /v1/agents/{id}/sign` answers: a transaction for ``intent_type: transaction``, a
    Solana transaction for ``solana_transaction``, a signature for the others."""

    root: TransactionResponse | SolanaTransactionResponse | SignatureResponse


class TransactionListResponse(BaseModel):
    agent_id: str
    transactions: list[TransactionResponse] = Field(description="newest first")
    forged_records_ignored: int


class ChainView(BaseModel):
    name: str
    family: Family = Field(description="the chain family: its transaction format, address form and kind of key")
    caip2: str = Field(description="the network's CAIP-2 id, which names networks of every family alike")
    chain_id: int = Field(
        description="an EVM network's EIP-155 chain id; another family's network: a number of Warden's"
    )
    native_currency: str
    explorer_url: str
    testnet: bool


class ChainsResponse(BaseModel):
    chains: list[ChainView]


class FieldProblem(BaseModel):
    field: str
    problem: str


class ErrorResponse(BaseModel):
    """Every error: ``code`` says what went wrong, for programs (a refusal's rule, or the API's own
    reason), ``detail`` what was wrong and what to do, for people; a refusal adds its ``stage``, a
    bad body each ``fields`` entry."""

    error: str = Field(description="the kind of error, one word (invalid_request, refused, ...)")
    detail: str
    code: Code | None = Field(
        default=None,
        description="a refusal's rule, or why the API answered as it did: every error the server answers has one",
    )
    stage: Stage | None = None
    id: str | None = Field(default=None, description="the refused transaction's id, to look it up")
    status: str | None = Field(
        default=None,
        description="a refused transaction's status: refused, simulation_failed, or failed (the node refused it)",
    )
    fields: list[FieldProblem] = Field(default_factory=list)


# The code of each kind of error the API answers by itself; a refusal names its rule's code instead.
ERROR_CODES = {
    "invalid_request": Code.INVALID_REQUEST,
    "invalid_json": Code.BODY_NOT_JSON,
    "body_too_large": Code.BODY_TOO_LARGE,
    "body_incomplete": Code.BODY_INCOMPLETE,
    "body_timeout": Code.BODY_TIMEOUT,
    "url_too_long": Code.URL_TOO_LONG,
    "headers_too_large": Code.HEADERS_TOO_LARGE,
    "malformed_http": Code.HTTP_MALFORMED,
    "unauthorized": Code.CREDENTIALS_REFUSED,
    "forbidden": Code.TOKEN_AGENT_MISMATCH,
    "admins_only": Code.ADMINS_ONLY,
    "not_provisioned": Code.AGENT_NOT_PROVISIONED,
    "not_found": Code.PATH_NOT_FOUND,
    "method_not_allowed": Code.METHOD_NOT_ALLOWED,
    "in_progress": Code.REQUEST_IN_PROGRESS,
    "rate_limited": Code.RATE_LIMITED,
    "too_many_failed_attempts": Code.TOO_MANY_FAILED_ATTEMPTS,
    "broadcast_refused": Code.BROADCAST_REFUSED,
    "unavailable": Code.PIPELINE_UNAVAILABLE,
    "internal_error": Code.API_INTERNAL_ERROR,
}


class Refused(WardenError):
    """An answer other than success, as (HTTP status, error, detail, extras); its ``code`` is the
    error's own (`ERROR_CODES`) unless given."""

    def __init__(
        self,
        http_status: int,
        error: str,
        detail: str,
        headers: dict[str, str] | None = None,
        close: bool = False,
        **extra: Any,
    ):
        super().__init__(detail)
        if "code" not in extra:
            extra["code"] = ERROR_CODES[error]
        # Closing the connection after the answer: what is left of the request on it cannot be read.
        self.close = close
        self.status, self.error, self.detail, self.headers, self.extra = (
            http_status,
            error,
            detail,
            headers or {},
            extra,
        )

    def document(self) -> dict[str, Any]:
        body = ErrorResponse(error=self.error, detail=self.detail, **self.extra)
        return body.model_dump(mode="json", exclude_none=True)

    def response(self) -> web.Response:
        response = _json(self.status, self.document(), self.headers)
        if self.close:
            response.force_close()
        return response


def _json(status: int, doc: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json", headers=headers)


def _invalid(exc: ValidationError, what: str, status: int = 422) -> Refused:
    """A body refused by pydantic: 400 when it is not what the OpenAPI document allows (the request
    models are the document), 422 when it is but a rule the document cannot state refuses it (the
    intent built from it: a priority fee over the maximum fee, bytes that do not parse)."""
    lines = [_named(line) for line in explain(exc)]
    problems = [FieldProblem(field=line.partition(": ")[0], problem=line.partition(": ")[2]) for line in lines]
    return Refused(status, "invalid_request", f"{what}: " + "; ".join(lines), fields=problems)


def _named(line: str) -> str:
    """``line`` of `explain`, a rule between fields (pydantic's "record") named by the field its
    message starts with (`fees_of_type`)."""
    where, _, problem = line.partition(": ")
    named, _, rest = problem.partition(": ")
    return f"{named}: {rest}" if where == "record" and rest and named.isidentifier() else line


@dataclass
class _Remembered:
    fingerprint: str
    at: float
    answer: tuple[int, bytes] | None = None  # None while the first request is in progress


@dataclass
class Idempotency:
    """The Intents API's Idempotency-Key for POST .../transactions: the first request 201, a completed
    duplicate 200 with its answer, one in progress 409, the key with another body 422. The
    pipeline enforces the key too (the worker and the signer answer a reused key with the first
    intent's outcome, and refuse it with another body), across restarts of this server."""

    window_s: float = IDEMPOTENCY_WINDOW_S
    # At most this many keys per agent: past it the agent's oldest is forgotten (the pipeline
    # still answers a reused key with the first intent's outcome), so no agent can grow the
    # server's memory without bound by sending new keys.
    per_agent: int = IDEMPOTENCY_KEYS_PER_AGENT
    # Per agent, its keys oldest first (a dict keeps insertion order): expiry and the cap drop
    # from the front, so a request costs the same however many keys are held.
    seen: dict[str, dict[str, _Remembered]] = field(default_factory=dict)

    def begin(self, agent_id: str, key: str, fingerprint: str, now_s: float) -> tuple[int, bytes] | None:
        held = self.seen.setdefault(agent_id, {})
        for old, remembered in list(held.items()):
            if now_s - remembered.at <= self.window_s and len(held) < self.per_agent:
                break
            if remembered.answer is None and now_s - remembered.at <= self.window_s:
                break  # in progress: its request finishes it
            del held[old]
        found = held.get(key)
        if found is None:
            held[key] = _Remembered(fingerprint, now_s)
            return None
        if found.fingerprint != fingerprint:
            raise Refused(
                422,
                "idempotency_key_reused",
                f"Idempotency-Key {key!r} was used with another request body; send a new key for a new request",
                code=Code.IDEMPOTENCY_KEY_REUSED,
            )
        if found.answer is None:
            raise Refused(
                409,
                "in_progress",
                f"a request with Idempotency-Key {key!r} is in progress; retry later",
                headers={"Retry-After": "1"},
            )
        return found.answer

    def finish(self, agent_id: str, key: str, answer: tuple[int, bytes] | None) -> None:
        """The answer to replay, or None to forget the key (a request that was not answered)."""
        held = self.seen.get(agent_id, {})
        if answer is None:
            held.pop(key, None)
        elif key in held:
            held[key].answer = answer


@dataclass
class RateLimit:
    """Requests per key (an agent, a client address): a bucket of ``burst`` that refills at ``per_s``."""

    per_s: float
    burst: float
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    # Past this many keys, the buckets that refilled are forgotten (a full bucket is the default):
    # keys a client names (agent ids, addresses) cannot grow the server's memory without bound.
    max_keys: int = 100_000

    def _tokens(self, key: str, now_s: float) -> float:
        tokens, at = self.buckets.get(key, (self.burst, now_s))
        return min(self.burst, tokens + max(0.0, now_s - at) * self.per_s)

    def wait(self, key: str, now_s: float) -> float:
        """0 if ``key`` has a request left, else the seconds until it has; nothing is taken."""
        tokens = self._tokens(key, now_s)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.per_s

    def take(self, key: str, now_s: float) -> float:
        """0 if the request may go (and it is counted), else the seconds until it may."""
        tokens = self._tokens(key, now_s)
        if len(self.buckets) >= self.max_keys and key not in self.buckets:
            self.buckets = {k: v for k, v in self.buckets.items() if self._tokens(k, now_s) < self.burst}
        if tokens < 1:
            self.buckets[key] = (tokens, now_s)
            return (1 - tokens) / self.per_s
        self.buckets[key] = (tokens - 1, now_s)
        return 0.0


@dataclass
class FailedAttempts:
    """Failed `POST /v1/auth/agent-token` attempts, limited by the agent named and by the client's
    address: past either, the endpoint answers 429 before it looks at the key, so guessing keys
    costs time as well as luck. A request with the right key counts nothing, so an agent that
    does not fail is never limited by its own use; one an attacker has named waits at most
    ``Retry-After`` seconds."""

    by_agent: RateLimit = field(default_factory=lambda: RateLimit(per_s=0.2, burst=10))
    by_address: RateLimit = field(default_factory=lambda: RateLimit(per_s=0.5, burst=30))

    def wait(self, agent_id: str, address: str, now_s: float) -> float:
        """0 if an attempt for ``agent_id`` from ``address`` may be checked, else the seconds to wait."""
        return max(self.by_agent.wait(agent_id, now_s), self.by_address.wait(address, now_s))

    def failed(self, agent_id: str, address: str, now_s: float) -> None:
        self.by_agent.take(agent_id, now_s)
        self.by_address.take(address, now_s)


@dataclass
class ApiService:
    settings: Settings
    now: Callable[[], datetime]
    timeout_s: float = 60.0
    body_timeout_s: float = BODY_TIMEOUT_S
    rate: RateLimit = field(default_factory=lambda: RateLimit(per_s=20, burst=40))
    idempotency: Idempotency = field(default_factory=Idempotency)
    token_attempts: FailedAttempts = field(default_factory=FailedAttempts)
    submit: Callable[..., Awaitable] = submit_and_wait

    # -- credentials -------------------------------------------------------------------------

    def caller(self, request: web.Request) -> str:
        """The agent the bearer token speaks for, which must be the agent the path names."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(
                401,
                "unauthorized",
                "send `Authorization: Bearer <token>`; get a token from POST /v1/auth/agent-token",
                headers={"WWW-Authenticate": 'Bearer realm="warden"'},
            )
        try:
            caller = api_keys.check_token(self.settings.home, token.strip(), self.now())
        except api_keys.CredentialRefused as exc:
            raise Refused(
                401, "unauthorized", str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from None
        agent_id = request.match_info["agent_id"]
        if caller.agent_id != agent_id:
            raise Refused(
                403, "forbidden", f"this token is agent {caller.agent_id!r}'s; it cannot act for {agent_id!r}"
            )
        wait_s = self.rate.take(agent_id, time.monotonic())
        if wait_s > 0:
            raise _limited("rate_limited", f"agent {agent_id!r} sent more than {self.rate.per_s:g} requests/s", wait_s)
        return agent_id

    async def agent_token(self, request: web.Request) -> web.Response:
        body = _model(TokenRequest, await _body(request, self.body_timeout_s))
        now = self.now()
        address = request.remote or "unknown"
        wait_s = self.token_attempts.wait(body.agent_id, address, now.timestamp())
        if wait_s > 0:
            why = f"too many failed attempts for agent {body.agent_id!r} or from this address"
            raise _limited("too_many_failed_attempts", why, wait_s)
        try:
            record = api_keys.check_api_key(self.settings.home, body.agent_id, body.api_key, now)
        except api_keys.CredentialRefused as exc:
            self.token_attempts.failed(body.agent_id, address, now.timestamp())
            raise Refused(401, "unauthorized", str(exc)) from None
        token, expires_at = api_keys.issue_token(self.settings.home, record, body.agent_id, now)
        answer = TokenResponse(
            access_token=token, expires_in=int((expires_at - now).total_seconds()), expires_at=expires_at
        )
        return _json(200, answer.model_dump(mode="json"))

    # -- transactions ------------------------------------------------------------------------

    async def submit_transaction(self, request: web.Request) -> web.Response:
        return await self._transaction(request, broadcast=True)

    async def sign_transaction(self, request: web.Request) -> web.Response:
        return await self._transaction(request, broadcast=False)

    async def _transaction(self, request: web.Request, broadcast: bool) -> web.Response:
        agent_id = self.caller(request)
        doc = await _body(request, self.body_timeout_s)
        asked = _model(TransactionRequest, doc)
        return await self._idempotent(request, agent_id, doc, lambda key: self._answer(agent_id, asked, key, broadcast))

    async def sign(self, request: web.Request) -> web.Response:
        """The unified sign endpoint: personal_sign, typed_data, or a transaction of any type."""
        agent_id = self.caller(request)
        doc = await _body(request, self.body_timeout_s)
        asked = _model(SignRequest, doc).root
        if isinstance(asked, TransactionSignRequest):
            work = lambda key: self._answer(agent_id, asked, key, broadcast=False)  # noqa: E731
        elif isinstance(asked, SolanaSignRequest):
            work = lambda key: self._solana(agent_id, asked, key, broadcast=False)  # noqa: E731
        else:
            work = lambda key: self._signature(agent_id, asked, key)  # noqa: E731
        return await self._idempotent(request, agent_id, doc, work)

    async def submit_solana(self, request: web.Request) -> web.Response:
        """A Solana transaction signed and sent once the policy allows it; answered once sent."""
        agent_id = self.caller(request)
        doc = await _body(request, self.body_timeout_s)
        asked = _model(SolanaRequest, doc)
        return await self._idempotent(request, agent_id, doc, lambda key: self._solana(agent_id, asked, key, True))

    async def _solana(self, agent_id: str, asked: SolanaRequest, key: str | None, broadcast: bool) -> tuple[int, dict]:
        agent_key = self._agent_key(agent_id)
        try:
            raw = solana.decode(asked.transaction)
        except ValueError as exc:
            raise Refused(422, "invalid_request", str(exc)) from None
        try:
            intent = new_solana_intent(
                agent_key,
                agent_id=agent_id,
                chain=asked.chain,
                transaction=raw,
                broadcast=broadcast,
                idempotency_key=key,
            )
        except ValidationError as exc:
            raise _invalid(exc, "the request is not a valid Solana transaction") from None
        outcome, forged = await self.submit(self.settings, intent, self.timeout_s, False)
        found = solana_transaction_of(intent.intent_id, agent_id, asked.chain, key or "", outcome, forged)
        doc = {"id": intent.intent_id, **found.model_dump(mode="json", by_alias=True, exclude_none=True)}
        if isinstance(outcome, IntentRejected):
            raise _refused(outcome)
        return (201 if isinstance(outcome, SignedSolanaTransaction) else 202), doc

    async def _idempotent(self, request: web.Request, agent_id: str, doc: Any, work) -> web.Response:
        """``work(key)``'s answer, under the request's Idempotency-Key when it has one."""
        key = request.headers.get("Idempotency-Key")
        if key is not None and not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
            raise Refused(
                400,
                "invalid_request",
                "Idempotency-Key: 1-255 printable ASCII characters, not starting or ending with a space (a UUID, say)",
            )
        if key is None:
            return _json(*await work(None))
        fingerprint = hashlib.sha256(
            request.path.encode() + b"\0" + orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        replay = self.idempotency.begin(agent_id, key, fingerprint, time.monotonic())
        if replay is not None:
            # The Intents API's 200 for a completed duplicate; a refusal is replayed as the refusal it was.
            status = 200 if replay[0] < 300 else replay[0]
            return web.Response(status=status, body=replay[1], content_type="application/json")
        answer: tuple[int, bytes] | None = None
        try:
            status, result = await work(key)
            answer = (status, orjson.dumps(result))
        except Refused as refused:
            if refused.status not in (403, 422):  # an answer about this request, not about its delivery
                raise
            answer = (refused.status, orjson.dumps(refused.document()))  # the bytes response() sends
            raise
        finally:
            # A 202 (parked, or no outcome yet) is not final: a retry asks the pipeline again,
            # which answers a reused key with the first intent's outcome.
            self.idempotency.finish(agent_id, key, answer if answer is not None and answer[0] != 202 else None)
        return web.Response(status=status, body=answer[1], content_type="application/json")

    async def _signature(self, agent_id: str, asked, key: str | None) -> tuple[int, dict]:
        agent_key = self._agent_key(agent_id)
        try:
            if isinstance(asked, PersonalSignRequest):
                intent = new_message_intent(
                    agent_key, agent_id=agent_id, chain=asked.chain, message=asked.message, idempotency_key=key
                )
            elif isinstance(asked, SolanaMessageSignRequest):
                intent = new_solana_message_intent(
                    agent_key,
                    agent_id=agent_id,
                    chain=asked.chain,
                    message=solana.decode(asked.message, "message"),
                    idempotency_key=key,
                )
            else:
                intent = new_typed_data_intent(
                    agent_key,
                    agent_id=agent_id,
                    chain=asked.chain,
                    typed_data=with_domain_type(asked.typed_data),
                    idempotency_key=key,
                )
        except ValidationError as exc:
            raise _invalid(exc, f"the request is not a valid {asked.intent_type} request") from None
        except ValueError as exc:  # a message that is not base64 (sdk.solana.decode)
            raise Refused(422, "invalid_request", str(exc)) from None
        outcome, forged = await self.submit(self.settings, intent, self.timeout_s, False)
        found = signature_of(intent.intent_id, agent_id, asked.intent_type, asked.chain, outcome, forged)
        doc = {"id": intent.intent_id, **found.model_dump(mode="json", by_alias=True, exclude_none=True)}
        if asked.intent_type == "typed_data" and found.message_hash is not None:
            doc["typed_data_hash"] = found.message_hash
        if isinstance(outcome, IntentRejected):
            raise _refused(outcome)
        return (201 if isinstance(outcome, SignedMessage | SignedSolanaMessage) else 202), doc

    # -- simulation --------------------------------------------------------------------------

    async def simulate(self, request: web.Request) -> web.Response:
        agent_id = self.caller(request)
        asked = _model(SimulateRequest, await _body(request, self.body_timeout_s))
        return _json(200, await self._simulate(agent_id, asked.chain, [asked]))

    async def simulate_bundle(self, request: web.Request) -> web.Response:
        agent_id = self.caller(request)
        asked = _model(BundleRequest, await _body(request, self.body_timeout_s))
        chains = {step.chain for step in asked.transactions}
        if len(chains) != 1:
            raise Refused(
                422,
                "invalid_request",
                f"transactions: a bundle runs on one chain; these name {sorted(chains)}",
                fields=[FieldProblem(field="transactions", problem="every transaction must name the same chain")],
            )
        return _json(200, await self._simulate(agent_id, chains.pop(), asked.transactions))

    async def _simulate(self, agent_id: str, chain: str, steps: list[SimulateRequest]) -> dict:
        agent_key = self._agent_key(agent_id)
        given = [step.model_dump(exclude_none=True, exclude={"chain", "signing_key_path"}) for step in steps]
        try:
            simulation = new_simulation_request(agent_key, agent_id=agent_id, chain=chain, steps=given)
        except ValidationError as exc:
            raise _invalid(exc, "the request is not a valid simulation") from None
        forged: list[str] = []
        try:
            async with Client(self.settings) as client:
                result = await client.simulate_request(simulation, self.timeout_s, forged)
        except SimulationUnanswered as exc:
            raise Refused(503, "unavailable", f"{exc}; retry later", headers={"Retry-After": "5"}) from None
        currency = REGISTRY.get(chain).currency
        token = lambda t: currency if t == "native" else t  # noqa: E731
        done = [
            SimulatedTransaction(
                to=step.to,
                value=step.value,
                status=step.status,
                revert_reason=step.revert_reason,
                gas_used=step.gas_used,
                balance_changes=[
                    BalanceChangeView(
                        address=r.address, token=token(r.token), before=r.before, after=r.after, change=r.change
                    )
                    for r in step.balance_changes
                ],
            )
            for step in result.steps
        ]
        deciding = result.deciding
        answer = SimulationResponse(
            simulation_id=result.intent_id,
            status="reverted" if any(t.status == "reverted" for t in done) else "success",
            gas_used=sum(t.gas_used for t in done),
            balance_changes=[row for t in done for row in t.balance_changes],
            decision=result.decision,
            code=None if deciding is None else deciding.code,
            stage=None if deciding is None else deciding.stage,
            detail=result.why_human if deciding is None else deciding.reason,
            block_number=result.block_number,
            transactions=done,
            forged_results_ignored=len(set(forged)),
        )
        return answer.model_dump(mode="json", exclude_none=True)

    # -- signing keys ------------------------------------------------------------------------

    async def signing_keys(self, request: web.Request) -> web.Response:
        """The addresses of the agent's keys in the key store the signer reads (never a key)."""
        agent_id = self.caller(request)
        found = await agent_signing_keys(self.settings, agent_id)
        return _json(200, found.model_dump(mode="json", exclude_none=True))

    async def admins_only(self, request: web.Request) -> web.Response:
        """Provision, rotate, deactivate: an admin's acts, under the admins' quorum. An agent's
        token is refused; this API holds no admin key and takes no admin credential."""
        agent_id = self.caller(request)
        chain = request.match_info.get("chain", "<chain>")
        verb = {"POST": "provision", "DELETE": "deactivate"}[request.method]
        if request.path.endswith("/rotate"):
            verb = "rotate"
        raise Refused(
            403,
            "admins_only",
            f"only admins {verb} signing keys, under the admins' quorum; an agent's token cannot. An admin runs "
            f"`warden keys {verb} --agent {agent_id} --chain {chain}`",
        )

    async def _answer(
        self, agent_id: str, asked: TransactionRequest | TransactionSignRequest, key: str | None, broadcast: bool
    ) -> tuple[int, dict]:
        agent_key = self._agent_key(agent_id)
        fields = asked.model_dump(exclude_none=True, exclude={"chain", "to", "value"})
        try:
            intent = new_intent(
                agent_key,
                agent_id=agent_id,
                idempotency_key=key,
                chain=asked.chain,
                to=asked.to,
                value=asked.value,
                broadcast=broadcast,
                **fields,
            )
        except ValidationError as exc:
            raise _invalid(exc, "the request is not a valid transaction") from None
        outcome, forged = await self.submit(self.settings, intent, self.timeout_s, False)
        found = submitted_transaction(intent.intent_id, agent_id, asked.chain, key or "", outcome, forged)
        if key is None:
            found.idempotency_key = None
        if isinstance(outcome, IntentRejected):
            reverted = outcome.code in SIMULATION_FAILED_CODES
            raise _refusal(found, 422 if reverted else 403, "simulation_failed" if reverted else "refused")
        if isinstance(outcome, SignedTransaction) and refused_by_node(outcome):
            raise Refused(
                422,
                "broadcast_refused",
                f"{outcome.error or 'the node refused the transaction'}; nothing was sent, its nonce is free again: "
                "fix what the node names (the sender's balance, the fee) and send a new request",
                id=intent.intent_id,
                status=outcome.status,
            )
        status = 201 if isinstance(outcome, SignedTransaction) else 202
        return status, _view(found)

    def _agent_key(self, agent_id: str):
        if not intent_key_file(self.settings.home, agent_id).exists():
            raise Refused(
                403,
                "not_provisioned",
                f"agent {agent_id!r} has no intent key on this API's WARDEN_HOME; an admin runs "
                f"`warden agents create --agent {agent_id} ...` here",
            )
        return load_or_create_agent_key(self.settings.home, agent_id)

    async def list_transactions(self, request: web.Request) -> web.Response:
        agent_id = self.caller(request)
        include = _flag(request, "include_signed_tx")
        found = await agent_transactions(self.settings, agent_id)
        dated = [(r.signed_at, transaction_of(r, include)) for r in found.transactions]
        dated += [(r.decided_at, refused_transaction(r)) for r in found.rejected]
        listed = [_view(t) for _, t in sorted(dated, key=lambda pair: pair[0], reverse=True)]
        return _json(200, {"agent_id": agent_id, "transactions": listed, "forged_records_ignored": found.forged})

    async def get_transaction(self, request: web.Request) -> web.Response:
        agent_id = self.caller(request)
        include = _flag(request, "include_signed_tx")
        tx_id = request.match_info["tx_id"]
        history: dict[str, list[SignedTransaction]] = {}
        found = await agent_transactions(self.settings, agent_id, history=history)
        wanted = [r for r in found.transactions if tx_id in (r.intent_id, r.tx_hash, *r.replaces)]
        if wanted:
            record = wanted[0]
            return _json(200, _view(transaction_of(record, include, history=status_history(history[record.intent_id]))))
        refusals = [r for r in found.rejected if r.intent_id == tx_id]
        if refusals:
            return _json(200, _view(refused_transaction(refusals[-1])))
        raise Refused(
            404,
            "not_found",
            f"agent {agent_id!r} has no transaction with id or hash {tx_id!r}; GET /v1/agents/{agent_id}/transactions "
            "lists them (an intent waiting for an admin is not listed yet)",
            code=Code.TRANSACTION_NOT_FOUND,
        )

    async def chains(self, _request: web.Request) -> web.Response:
        listed = [
            ChainView(
                name=c.name,
                family=c.family,
                caip2=c.caip2,
                chain_id=c.chain_id,
                native_currency=c.currency,
                explorer_url=c.explorer,
                testnet=c.testnet,
            )
            for c in REGISTRY.all().values()
        ]
        return _json(200, ChainsResponse(chains=listed).model_dump(mode="json"))

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.Response(status=200, text=openapi_text(), content_type="application/json")


def _limited(error: str, why: str, wait_s: float) -> Refused:
    """A 429 for a wait of ``wait_s``: Retry-After in whole seconds, at least 1, never short."""
    retry = str(max(1, math.ceil(wait_s)))
    return Refused(429, error, f"{why}; retry in {retry} s", headers={"Retry-After": retry})


def refused_by_node(outcome: SignedTransaction) -> bool:
    """Whether the chain's node refused ``outcome`` when it was sent: failed in no block. A
    transaction that ran and failed is in a block (its fee was paid): that is an outcome, not an
    error of the request."""
    return outcome.status == "failed" and outcome.block_number is None


def _refusal(found: Transaction, status: int, error: str) -> Refused:
    refusal = found.refusal
    assert refusal is not None  # a refused transaction carries its refusal
    return Refused(
        status,
        error,
        refusal.reason,
        code=refusal.code,
        stage=refusal.stage,
        id=found.intent_id,
        status=error if status == 422 else "refused",
    )


# EIP-712's domain fields, in the order the standard gives them.
DOMAIN_FIELDS = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
)


def with_domain_type(typed_data: dict[str, Any]) -> dict[str, Any]:
    """``typed_data`` with its ``EIP712Domain`` type declared: as given, or derived from the fields
    its domain has, in EIP-712's order, as viem and ethers derive it (the Intents API's requests leave
    it out). The signature covers the same domain either way."""
    types, domain = typed_data.get("types"), typed_data.get("domain")
    if not isinstance(types, dict) or "EIP712Domain" in types or not isinstance(domain, dict):
        return typed_data
    declared = [{"name": name, "type": kind} for name, kind in DOMAIN_FIELDS if name in domain]
    return {**typed_data, "types": {"EIP712Domain": declared, **types}}


def _view(found: Transaction) -> dict:
    """A transaction as the API answers it: ``signed_tx`` only where ``found`` holds it
    (`transaction_of` leaves it out unless asked)."""
    doc = found.model_dump(mode="json", by_alias=True, exclude_none=True)
    if found.refusal is not None:
        doc.update(detail=found.refusal.reason, code=found.refusal.code, stage=found.refusal.stage)
    return {"id": found.intent_id, **doc}


def _flag(request: web.Request, name: str) -> bool:
    given = request.query.get(name, "false")
    if given not in ("true", "false"):
        raise Refused(400, "invalid_request", f"{name}: {given[:40]!r} is not a boolean; give true or false")
    return given == "true"


async def _body(request: web.Request, timeout_s: float) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Refused(413, "body_too_large", f"the body is {request.content_length} bytes; at most {MAX_BODY_BYTES}")
    try:
        raw = await asyncio.wait_for(request.read(), timeout_s)
    except web.HTTPRequestEntityTooLarge:
        raise Refused(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes") from None
    except TimeoutError:
        _log.info(
            "%s %s from %s: the body did not arrive in %g s", request.method, request.path, request.remote, timeout_s
        )
        raise Refused(
            408, "body_timeout", f"the body did not arrive within {timeout_s:g} s; send it whole", close=True
        ) from None
    except (ConnectionError, http_exceptions.HttpProcessingError) as exc:
        # The client went away, or closed its side, before the whole body came: its mistake, not
        # the pipeline's (whatever is answered, no one may be left to read it).
        _log.info("%s %s from %s: the body was cut short (%s)", request.method, request.path, request.remote, exc)
        raise Refused(
            400, "body_incomplete", "the body ended before the length its headers gave; send it whole", close=True
        ) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, "invalid_json", f"the body is not JSON ({exc}); send a JSON object") from None


def _model(model: type[BaseModel], doc: Any):
    if not isinstance(doc, dict):
        raise Refused(400, "invalid_request", f"the body is a JSON {type(doc).__name__}, not an object")
    try:
        return model.model_validate(doc, context=REGISTRY.context)
    except ValidationError as exc:
        raise _invalid(exc, "the request body is not valid", 400) from None


@web.middleware
async def _measured(request: web.Request, handler):
    """Counted and timed by route (the path's pattern, never its ids) and status."""
    began = time.perf_counter()
    response = await handler(request)
    resource = request.match_info.route.resource
    route = f"{request.method} {resource.canonical if resource is not None else 'unknown'}"
    metrics.API_REQUESTS.labels(route, str(response.status)).inc()
    metrics.API_SECONDS.labels(route).observe(time.perf_counter() - began)
    return response


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except Refused as refused:
        return refused.response()
    except web.HTTPException as exc:  # aiohttp's own: an unknown path or method
        if exc.status < 400:
            raise
        return _routing_refusal(request, exc).response()
    except (OSError, TimeoutError) as exc:
        _log.warning("%s %s: the pipeline did not answer: %s", request.method, request.path, exc)
        return Refused(
            503, "unavailable", "the pipeline did not answer; retry later", headers={"Retry-After": "5"}
        ).response()
    except Exception:  # a bug of ours: logged whole, answered without a traceback
        _log.exception("%s %s failed", request.method, request.path)
        return Refused(500, "internal_error", "the API failed on this request; its log says why").response()


def _routing_refusal(request: web.Request, exc: web.HTTPException) -> Refused:
    """aiohttp's answer for a path or method no route has, as the API's JSON error (405 keeps its
    ``Allow``)."""
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return Refused(
            405,
            "method_not_allowed",
            f"{request.method} is not a method of {request.path}; it takes {allowed.replace(',', ', ')}",
            headers={"Allow": allowed},
        )
    if exc.status == 404:
        return Refused(
            404, "not_found", f"{request.method} {request.path}: no such path; /v1/openapi.json lists the API's paths"
        )
    return Refused(exc.status, "malformed_http", f"{request.method} {request.path}: {exc.reason}")


def _refused(outcome: IntentRejected) -> Refused:
    """A signature's refusal, answered 403 with the rule that decided it."""
    return Refused(
        403,
        "refused",
        outcome.reason,
        code=outcome.code,
        stage=outcome.stage,
        id=outcome.intent_id,
        status="refused",
    )


def build_app(service: ApiService) -> web.Application:
    app = web.Application(
        middlewares=[_measured, _errors],
        client_max_size=MAX_BODY_BYTES,
        handler_args={"max_line_size": MAX_URL_BYTES, "max_field_size": MAX_HEADER_BYTES},
    )
    agent = "/v1/agents/{agent_id}"
    app.add_routes(
        [
            web.get("/v1/openapi.json", service.openapi),
            web.get("/v1/chains", service.chains),
            web.post("/v1/auth/agent-token", service.agent_token),
            web.post(f"{agent}/transactions", service.submit_transaction),
            web.post(f"{agent}/transactions/sign", service.sign_transaction),
            web.get(f"{agent}/transactions", service.list_transactions),
            web.get(f"{agent}/transactions/{{tx_id}}", service.get_transaction),
            web.post(f"{agent}/transactions/simulate", service.simulate),
            web.post(f"{agent}/transactions/simulate-bundle", service.simulate_bundle),
            web.post(f"{agent}/sign", service.sign),
            web.post(f"{agent}/solana/transactions", service.submit_solana),
            web.get(f"{agent}/signing-keys", service.signing_keys),
            web.post(f"{agent}/signing-keys", service.admins_only),
            web.post(f"{agent}/signing-keys/{{chain}}/rotate", service.admins_only),
            web.delete(f"{agent}/signing-keys/{{chain}}", service.admins_only),
        ]
    )
    return app


class _Connection(web.RequestHandler):
    """aiohttp's handler of one connection, whose own answers (what its HTTP parser refuses: a URL
    or a header over the limit, a body framed two ways, bytes that are not HTTP) are the API's JSON
    errors with their code, like every other answer, instead of aiohttp's text."""

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None, message: str | None = None):
        if request.writer.output_size > 0:  # as aiohttp's: an answer begun cannot become an error
            raise ConnectionError("the response has begun; no error can follow it")
        refused = _protocol_refusal(status, exc, message)
        if refused.status >= 500:
            _log.error("a request from %s failed in aiohttp", request.remote, exc_info=exc)
        else:  # the client's mistake, not the API's: no traceback
            _log.info("refused a request from %s (%d): %s", request.remote, refused.status, refused.detail)
        metrics.API_REQUESTS.labels("unparsed", str(refused.status)).inc()
        response = refused.response()
        response.force_close()
        return response


def _protocol_refusal(status: int, exc: BaseException | None, message: str | None) -> Refused:
    """What aiohttp's parser refused (``exc``, ``status`` and ``message`` as it gives them), as the
    API's error."""
    if isinstance(exc, http_exceptions.LineTooLong):
        if exc.args[1] == MAX_URL_BYTES:
            return Refused(414, "url_too_long", f"the request line (method and URL) is over {MAX_URL_BYTES} bytes")
        return Refused(431, "headers_too_large", f"a header is over {MAX_HEADER_BYTES} bytes")
    if status >= 500:
        return Refused(500, "internal_error", "the API failed on this request; its log says why")
    why = message or (exc.message if isinstance(exc, http_exceptions.HttpProcessingError) else None) or "bad request"
    return Refused(
        status if 400 <= status < 500 else 400,
        "malformed_http",
        f"the request is not HTTP/1.1 this server reads ({why.splitlines()[0][:200]}); send one request line, "
        "headers, and a body framed by Content-Length or chunked, not both",
    )


class _Server(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """`web.AppRunner` whose connections are `_Connection`s: the API's errors, the parser's too."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


async def serve(service: ApiService, listen: str) -> None:
    """Serve the API at ``listen`` (host:port) until cancelled, submitting through one
    `OutcomeHub`; the ready file says it listens."""
    host, _, port = listen.rpartition(":")
    metrics.serve(service.settings, "api")
    hub = OutcomeHub(service.settings)
    service.submit = hub.submit_and_wait
    runner = ApiRunner(build_app(service), access_log=None)
    try:
        await hub.start()
        await runner.setup()
        await web.TCPSite(runner, host.strip("[]"), int(port)).start()
        mark_ready(service.settings, "api")
        # On stderr whatever the log level: where to send requests is what a person starting it needs.
        print(
            f"warden api: the Intents API at http://{listen}/v1 (OpenAPI: /v1/openapi.json)",
            file=sys.stderr,
            flush=True,
        )
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await hub.stop()


def add_arguments(parser) -> None:
    """`warden api`'s options, the same for `python -m sdk.http_api` (how `warden up` runs it)."""
    parser.add_argument("--listen", metavar="HOST:PORT", help="where to listen (default: WARDEN_API_HTTP)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds a request waits for its outcome before 202 (default 60)"
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="requests per second per agent before 429 (default 20)"
    )
    parser.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument(
        "--openapi", action="store_true", help="print the OpenAPI document and exit (what clients are generated from)"
    )


def openapi_text() -> str:
    # The standard library's JSON: some bounds (a uint64's) are past what orjson writes.
    return json.dumps(openapi_document(), indent=2) + "\n"


def run(args) -> int:
    if args.openapi:
        sys.stdout.write(openapi_text())
        return 0
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.timeout <= 0 or args.rate <= 0:
        _log.error("--timeout and --rate must be positive")
        return 2
    settings = load()
    listen = args.listen or settings.api_http
    service = ApiService(
        settings, now=utcnow, timeout_s=args.timeout, rate=RateLimit(per_s=args.rate, burst=2 * args.rate)
    )
    try:
        asyncio.run(serve(service, listen))
    except KeyboardInterrupt:
        pass
    except KafkaError as exc:
        _log.error(
            "cannot reach the broker at %s (%s): start the stack (`warden up`) or set WARDEN_BROKER",
            settings.broker,
            exc,
        )
        return 1
    except OSError as exc:
        _log.error(
            "cannot serve the API at %s (%s): free the port, or choose another with --listen or WARDEN_API_HTTP",
            listen,
            exc.strerror or exc,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="warden api", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


# Every error answer of the document, once (its components' responses), by name: (status, why).
ERROR_RESPONSES = {
    "BadRequest": (
        400,
        "malformed input (the field, what was wrong, what is allowed), a body cut short, or bytes that are not HTTP",
    ),
    "Unauthorized": (401, "no token, or a token not valid (expired, revoked, forged)"),
    "Forbidden": (403, "a guardrail refused it (detail, code, stage), a token for another agent, or an admin's act"),
    "NotFound": (404, "no such transaction or path"),
    "BodyTimeout": (408, f"the body did not arrive within {BODY_TIMEOUT_S:g} s"),
    "BodyTooLarge": (413, "a body over the size limit"),
    "UrlTooLong": (414, f"a request line (the URL) over {MAX_URL_BYTES} bytes"),
    "RateLimited": (429, "too many requests for this agent (Retry-After)"),
    "TooManyFailedAttempts": (429, "too many failed attempts for the agent or from the address (Retry-After)"),
    "HeadersTooLarge": (431, f"a header over {MAX_HEADER_BYTES} bytes"),
    "Unprocessable": (422, "what this document allows, refused by a rule it cannot state (INVALID_REQUEST)"),
    "Unavailable": (503, "the pipeline did not answer (Retry-After)"),
}
# What every agent's operation may answer besides its own answers.
ERRORS = tuple(name for name in ERROR_RESPONSES if name not in ("TooManyFailedAttempts", "Unprocessable"))
# A simulation's: a body the simulation's own rules refuse too (a bundle over two chains).
SIMULATION_ERRORS = (*ERRORS, "Unprocessable")
# The token exchange's: no token to check, and failed attempts limited.
TOKEN_ERRORS = (
    "BadRequest",
    "Unauthorized",
    "BodyTimeout",
    "BodyTooLarge",
    "UrlTooLong",
    "TooManyFailedAttempts",
    "HeadersTooLarge",
)
SIGNED = {
    200: (None, "the cached answer to a completed request with this Idempotency-Key"),
    202: (None, "waiting for an admin's approval, or no outcome yet: look it up by id"),
    409: (ErrorResponse, "a request with this Idempotency-Key is in progress (Retry-After)"),
    422: (
        ErrorResponse,
        "the simulation reverted (simulate_first), the node refused the broadcast (BROADCAST_REFUSED), the "
        "Idempotency-Key came with another body, or a rule this document cannot state refused it (INVALID_REQUEST)",
    ),
}
REQUESTS = (TokenRequest, TransactionRequest, SignRequest, SolanaRequest, SimulateRequest, BundleRequest)
# The intent's own records a request carries (`schemas.intent`), whose fields validate more than
# their JSON Schema says: the document says it, as the request models do for theirs.
RECORD_PATTERNS: dict[str, dict[str, dict[str, Any]]] = {
    "AccessListEntry": {
        "address": {"pattern": ADDRESS_PATTERN, "description": ADDRESS_DESCRIPTION},
        "storage_keys": {"items": {"type": "string", "pattern": BYTES32_PATTERN}},
    },
    "AuthorizationRequest": {"address": {"pattern": ADDRESS_PATTERN, "description": ADDRESS_DESCRIPTION}},
}
ANSWERS = (
    TokenResponse,
    TransactionResponse,
    TransactionListResponse,
    SignResponse,
    SolanaTransactionResponse,
    SimulationResponse,
    SigningKeys,
    ChainsResponse,
    ErrorResponse,
)


def openapi_document() -> dict:
    """The OpenAPI 3.1 document of `build_app`'s routes, its schemas generated from the models the
    handlers validate and answer with."""
    _, defs = models_json_schema(
        [(m, "validation") for m in REQUESTS] + [(m, "serialization") for m in ANSWERS],
        ref_template="#/components/schemas/{model}",
    )
    schemas = defs.get("$defs", {})
    for name, fields in RECORD_PATTERNS.items():
        for field_name, extra in fields.items():
            schemas[name]["properties"][field_name].update(extra)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Warden Intents API", "version": "1.0.0"},
        "components": {
            "schemas": schemas,
            "responses": {
                name: {"description": why, "content": {"application/json": {"schema": _ref(ErrorResponse)}}}
                for name, (_, why) in ERROR_RESPONSES.items()
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "paths": {**_public_paths(), **_transaction_paths(), **_signing_paths(), **_signing_key_paths()},
    }


_AGENT = "/v1/agents/{agent_id}"  # the prefix of every path that acts for one agent


def _ref(model) -> dict:
    """A reference to ``model``'s schema in the document's components."""
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _path_param(name: str, **schema) -> dict:
    """A parameter taken from the path, as ``{name}`` in it; ``schema`` adds to its string's schema."""
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", **schema}}


def _include_param() -> dict:
    """The query parameter that asks for the signed transaction's bytes in the answer."""
    return {"name": "include_signed_tx", "in": "query", "required": False, "schema": {"type": "boolean"}}


def _idempotency_param() -> dict:
    """The header that makes a signing request safe to send again."""
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN, "maxLength": 255},
    }


def _operation(summary, answers: dict, request=None, params=(), agent=True, errors=ERRORS) -> dict:
    """One operation: its answers (status: (model, why)) and ``errors`` (names of ERROR_RESPONSES),
    its request body's model, its parameters; an agent's operation takes the agent's bearer token
    and ``agent_id`` from the path."""
    responses = {
        str(status): {"description": why, "content": {"application/json": {"schema": _ref(model)}}}
        for status, (model, why) in answers.items()
    }
    responses.update({str(ERROR_RESPONSES[name][0]): {"$ref": f"#/components/responses/{name}"} for name in errors})
    doc: dict = {"summary": summary, "responses": responses}
    if agent:
        doc["security"] = [{"bearer": []}]
        doc["parameters"] = [_path_param("agent_id", pattern=IDENTIFIER_PATTERN, maxLength=128), *params]
    elif params:
        doc["parameters"] = list(params)
    if request is not None:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(request)}}}
    return doc


def _signing(summary: str, request, answer) -> dict:
    """An operation that asks for a signature: answered ``answer`` once signed, or as SIGNED says,
    and idempotent under an Idempotency-Key."""
    answers = {201: (answer, "signed"), **{s: (m or answer, why) for s, (m, why) in SIGNED.items()}}
    return _operation(summary, answers, request, (_idempotency_param(),))


def _admins_only(summary: str, *params) -> dict:
    """An agent's operation only an admin may do: an agent's token gets the errors alone."""
    return _operation(summary, {}, None, params)


def _public_paths() -> dict:
    """The paths that act for no agent: this document, the chains, and the token exchange."""
    return {
        "/v1/openapi.json": {
            "get": {
                "summary": "this document",
                "responses": {
                    "200": {
                        "description": "the OpenAPI document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/v1/chains": {
            "get": _operation(
                "the chains Warden knows", {200: (ChainsResponse, "the registry")}, agent=False, errors=()
            )
        },
        "/v1/auth/agent-token": {
            "post": _operation(
                "a short-lived bearer token for an agent's API key",
                {200: (TokenResponse, "the token")},
                TokenRequest,
                agent=False,
                errors=TOKEN_ERRORS,
            )
        },
    }


def _transaction_paths() -> dict:
    """An agent's transactions: submit, list, sign only, simulate one or a bundle, look one up."""
    return {
        f"{_AGENT}/transactions": {
            "post": _signing(
                "submit a transaction: signed and broadcast once the policy allows it",
                TransactionRequest,
                TransactionResponse,
            ),
            "get": _operation(
                "the agent's transactions, newest first",
                {200: (TransactionListResponse, "the list")},
                params=(_include_param(),),
            ),
        },
        f"{_AGENT}/transactions/sign": {
            "post": _signing("sign a transaction, not broadcast (sign-only)", TransactionRequest, TransactionResponse)
        },
        f"{_AGENT}/transactions/simulate": {
            "post": _operation(
                "simulate a transaction: nothing reserved or signed",
                {200: (SimulationResponse, "the simulation")},
                SimulateRequest,
                errors=SIMULATION_ERRORS,
            )
        },
        f"{_AGENT}/transactions/simulate-bundle": {
            "post": _operation(
                "simulate transactions in order in one block",
                {200: (SimulationResponse, "the simulation")},
                BundleRequest,
                errors=SIMULATION_ERRORS,
            )
        },
        f"{_AGENT}/transactions/{{tx_id}}": {
            "get": _operation(
                "one transaction, by id or hash",
                {200: (TransactionResponse, "the transaction")},
                params=(_path_param("tx_id"), _include_param()),
            )
        },
    }


def _signing_paths() -> dict:
    """The other signatures an agent asks for: a message, typed data or a transaction, and a
    Solana transaction."""
    return {
        f"{_AGENT}/sign": {
            "post": _signing(
                "sign a message (EIP-191), typed data (EIP-712), a transaction or a Solana transaction",
                SignRequest,
                SignResponse,
            )
        },
        f"{_AGENT}/solana/transactions": {
            "post": _signing(
                "submit a Solana transaction: signed in the agent's slot and sent once the policy allows it",
                SolanaRequest,
                SolanaTransactionResponse,
            )
        },
    }


def _signing_key_paths() -> dict:
    """The agent's signing keys: their addresses for the agent; provision, rotate and deactivate
    for admins only."""
    return {
        f"{_AGENT}/signing-keys": {
            "get": _operation(
                "the addresses the agent's transactions are signed from",
                {200: (SigningKeys, "the keys' addresses")},
            ),
            "post": _admins_only("provision a signing key: admins only (403 for an agent's token)"),
        },
        f"{_AGENT}/signing-keys/{{chain}}/rotate": {
            "post": _admins_only("rotate a signing key: admins only", _path_param("chain"))
        },
        f"{_AGENT}/signing-keys/{{chain}}": {
            "delete": _admins_only("deactivate a signing key: admins only", _path_param("chain"))
        },
    }


if __name__ == "__main__":
    sys.exit(main())
