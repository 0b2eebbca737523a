"""The Intents API over HTTP (`warden api`): the seeds' REST shapes, one more producer of signed
intents and one more reader of verified outcomes.

It holds the intent keys of the agents provisioned on its WARDEN_HOME, as `warden mcp` holds one,
and no chain key, no admin key. A request is authenticated by a bearer token from
`POST /v1/auth/agent-token` (`sdk.api_keys`), turned into an intent the agent signs, published on
warden.intents.submitted, and answered with the outcome the SDK verified (a pinned key of the
service allowed to say it, bound to the very intent sent: `sdk.client.submit_and_wait`). So the
API adds nothing to what an agent may do: the worker and the signer judge every intent against
the agent's policy as they judge any other.

Bodies are validated by the same field types the intent uses (`schemas.fields`), so a bad value
is refused here, with the field named, before anything is signed. The OpenAPI document
(`/v1/openapi.json`) is generated from the models below.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema

from runtime.config import Settings
from schemas.chains import REGISTRY
from schemas.errors import explain
from schemas.fields import Address, HexData, Identifier, NativeAmount, Wei
from schemas.outcomes import IntentRejected, SignedTransaction
from sdk import api_keys
from sdk.client import (
    agent_transactions,
    intent_key_file,
    load_or_create_agent_key,
    new_intent,
    status_history,
    submit_and_wait,
)
from sdk.mcp_results import Transaction, refused_transaction, submitted_transaction, transaction_of

_log = logging.getLogger("warden.api")

# A body larger than this is refused (413) before it is read: an intent's fields fit in far less.
MAX_BODY_BYTES = 64 * 1024
# How long the seeds' idempotency promise lasts: a key seen within it gets the first answer.
IDEMPOTENCY_WINDOW_S = 24 * 3600
SIMULATION_FAILED_CODES = frozenset({"SIMULATION_REVERTED"})


class Strict(BaseModel):
    # Unknown fields are refused (a misspelt field is a mistake, not a default), and so are values
    # of the wrong JSON type (a number for a string, a string for a boolean).
    model_config = ConfigDict(extra="forbid", strict=True)


class TokenRequest(Strict):
    agent_id: Identifier
    api_key: str = Field(max_length=256, description="the key `warden agents api-key` showed once")


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="seconds until the token expires")
    expires_at: datetime


class TransactionRequest(Strict):
    """A transaction the agent asks for, as the seeds' Intents API takes it."""

    chain: str = Field(max_length=32, description="a chain name of `GET /v1/chains`")
    to: Address = Field(json_schema_extra={"pattern": "^0x[0-9a-fA-F]{40}$"}, description="EIP-55 or all one case")
    value: NativeAmount = Field(
        description='native amount as a decimal string, e.g. "0.1" (ETH)',
        json_schema_extra={"pattern": "^(0|[1-9][0-9]*)(\\.[0-9]{1,18})?$"},
    )
    data: HexData = Field(default="0x", json_schema_extra={"pattern": "^0x([0-9a-fA-F]{2})*$"})
    signing_key_path: str | None = Field(default=None, max_length=512)
    simulate_first: bool = Field(default=False, description="simulate first; a revert is answered 422, unsigned")
    tx_type: Literal[0, 1, 2, 3, 4] | None = None
    gas_limit: int | None = Field(default=None, ge=21000, le=30_000_000)
    gas_price: Wei | None = None
    max_fee_per_gas: Wei | None = None
    max_priority_fee_per_gas: Wei | None = None
    nonce: int | None = Field(default=None, ge=0, le=2**64 - 2)


class TransactionResponse(Transaction):
    """A transaction of the agent: the seeds' ``id``, ``tx_hash``, ``chain``, ``status``, and the rest
    of what Warden knows of it. ``signed_tx`` only on the first POST, or when asked for."""

    id: str = Field(description="the transaction's id (Warden's intent id)")
    detail: str | None = Field(default=None, description="a refusal's human reason (data, not instructions)")
    code: str | None = Field(default=None, description="a refusal's code")
    stage: str | None = Field(default=None, description="the stage whose rule refused it")


class TransactionListResponse(BaseModel):
    agent_id: str
    transactions: list[TransactionResponse] = Field(description="newest first")
    forged_records_ignored: int


class ChainView(BaseModel):
    name: str
    chain_id: int
    native_currency: str
    explorer_url: str
    testnet: bool


class ChainsResponse(BaseModel):
    chains: list[ChainView]


class FieldProblem(BaseModel):
    field: str
    problem: str


class ErrorResponse(BaseModel):
    """Every error: ``detail`` says what was wrong and what to do; a refusal adds its ``code`` and
    ``stage``, a bad body each ``fields`` entry."""

    error: str
    detail: str
    code: str | None = None
    stage: str | None = None
    id: str | None = Field(default=None, description="the refused transaction's id, to look it up")
    status: str | None = Field(default=None, description="a refused transaction's status: refused or simulation_failed")
    fields: list[FieldProblem] = Field(default_factory=list)


class Refused(Exception):
    """An answer other than success, as (HTTP status, error, detail, extras)."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers, self.extra = status, error, detail, headers or {}, extra

    def response(self) -> web.Response:
        extra = dict(self.extra)
        if "status_word" in extra:
            extra["status"] = extra.pop("status_word")
        body = ErrorResponse(error=self.error, detail=self.detail, **extra)
        return _json(self.status, body.model_dump(mode="json", exclude_none=True), self.headers)


def _json(status: int, doc: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json", headers=headers)


def _invalid(exc: ValidationError, what: str) -> Refused:
    lines = explain(exc)
    problems = [FieldProblem(field=line.partition(": ")[0], problem=line.partition(": ")[2]) for line in lines]
    return Refused(400, "invalid_request", f"{what}: " + "; ".join(lines), fields=problems)


@dataclass
class _Remembered:
    fingerprint: str
    at: float
    answer: tuple[int, bytes] | None = None  # None while the first request is in progress


@dataclass
class Idempotency:
    """The seeds' Idempotency-Key for POST .../transactions: the first request 201, a completed
    duplicate 200 with its answer, one in progress 409, the key with another body 422. The
    pipeline enforces the key too (the worker and the signer answer a reused key with the first
    intent's outcome, and refuse it with another body), across restarts of this server."""

    window_s: float = IDEMPOTENCY_WINDOW_S
    seen: dict[tuple[str, str], _Remembered] = field(default_factory=dict)

    def begin(self, agent_id: str, key: str, fingerprint: str, now_s: float) -> tuple[int, bytes] | None:
        for old in [k for k, r in self.seen.items() if now_s - r.at > self.window_s]:
            del self.seen[old]
        found = self.seen.get((agent_id, key))
        if found is None:
            self.seen[(agent_id, key)] = _Remembered(fingerprint, now_s)
            return None
        if found.fingerprint != fingerprint:
            raise Refused(
                422,
                "idempotency_key_reused",
                f"Idempotency-Key {key!r} was used with another request body; send a new key for a new request",
                code="IDEMPOTENCY_KEY_REUSED",
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
        if answer is None:
            self.seen.pop((agent_id, key), None)
        else:
            self.seen[(agent_id, key)].answer = answer


@dataclass
class RateLimit:
    """Requests per agent: a bucket of ``burst`` that refills at ``per_s``."""

    per_s: float
    burst: float
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, agent_id: str, now_s: float) -> float:
        """0 if the request may go, else the seconds until it may."""
        tokens, at = self.buckets.get(agent_id, (self.burst, now_s))
        tokens = min(self.burst, tokens + (now_s - at) * self.per_s)
        if tokens < 1:
            self.buckets[agent_id] = (tokens, now_s)
            return (1 - tokens) / self.per_s
        self.buckets[agent_id] = (tokens - 1, now_s)
        return 0.0


@dataclass
class ApiService:
    settings: Settings
    now: Callable[[], datetime]
    timeout_s: float = 60.0
    rate: RateLimit = field(default_factory=lambda: RateLimit(per_s=20, burst=40))
    idempotency: Idempotency = field(default_factory=Idempotency)
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
            raise Refused(401, "unauthorized", str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        agent_id = request.match_info["agent_id"]
        if caller.agent_id != agent_id:
            raise Refused(
                403, "forbidden", f"this token is agent {caller.agent_id!r}'s; it cannot act for {agent_id!r}"
            )
        wait_s = self.rate.take(agent_id, time.monotonic())
        if wait_s > 0:
            retry = str(max(1, round(wait_s + 0.5)))
            raise Refused(
                429,
                "rate_limited",
                f"agent {agent_id!r} sent more than {self.rate.per_s:g} requests/s; retry in {retry} s",
                headers={"Retry-After": retry},
            )
        return agent_id

    async def agent_token(self, request: web.Request) -> web.Response:
        body = _model(TokenRequest, await _body(request))
        try:
            record = api_keys.check_api_key(self.settings.home, body.agent_id, body.api_key, self.now())
        except api_keys.CredentialRefused as exc:
            raise Refused(401, "unauthorized", str(exc))
        now = self.now()
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
        doc = await _body(request)
        asked = _model(TransactionRequest, doc)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
            raise Refused(400, "invalid_request", "Idempotency-Key: 1-255 printable characters (a UUID, say)")
        if key is None:
            return _json(*await self._answer(agent_id, asked, None, broadcast))
        fingerprint = hashlib.sha256(
            request.path.encode() + b"\0" + orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        replay = self.idempotency.begin(agent_id, key, fingerprint, time.monotonic())
        if replay is not None:
            return web.Response(status=200, body=replay[1], content_type="application/json")
        answer: tuple[int, bytes] | None = None
        try:
            status, result = await self._answer(agent_id, asked, key, broadcast)
            answer = (status, orjson.dumps(result))
        except Refused as refused:
            if refused.status not in (403, 422):  # an answer about this request, not about its delivery
                raise
            answer = (refused.status, refused.response().body)
            raise
        finally:
            self.idempotency.finish(agent_id, key, answer if answer is not None and answer[0] != 202 else None)
        return web.Response(status=status, body=answer[1], content_type="application/json")

    async def _answer(
        self, agent_id: str, asked: TransactionRequest, key: str | None, broadcast: bool
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
        listed = [_view(t, include) for _, t in sorted(dated, key=lambda pair: pair[0], reverse=True)]
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
            return _json(
                200, _view(transaction_of(record, include, history=status_history(history[record.intent_id])), include)
            )
        refusals = [r for r in found.rejected if r.intent_id == tx_id]
        if refusals:
            return _json(200, _view(refused_transaction(refusals[-1])))
        raise Refused(
            404,
            "not_found",
            f"agent {agent_id!r} has no transaction with id or hash {tx_id!r}; GET /v1/agents/{agent_id}/transactions "
            "lists them (an intent waiting for an admin is not listed yet)",
        )

    async def chains(self, request: web.Request) -> web.Response:
        listed = [
            ChainView(
                name=c.name, chain_id=c.chain_id, native_currency=c.currency, explorer_url=c.explorer, testnet=c.testnet
            )
            for c in REGISTRY.all().values()
        ]
        return _json(200, ChainsResponse(chains=listed).model_dump(mode="json"))

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(200, openapi_document())


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
        status_word=error if status == 422 else "refused",
    )


def _view(found: Transaction, include_signed_tx: bool = True) -> dict:
    doc = found.model_dump(mode="json", by_alias=True, exclude_none=True)
    if not include_signed_tx:
        doc.pop("signed_tx", None)
    if found.refusal is not None:
        doc.update(detail=found.refusal.reason, code=found.refusal.code, stage=found.refusal.stage)
    return {"id": found.intent_id, **doc}


def _flag(request: web.Request, name: str) -> bool:
    given = request.query.get(name, "false")
    if given not in ("true", "false"):
        raise Refused(400, "invalid_request", f"{name}: {given[:40]!r} is not a boolean; give true or false")
    return given == "true"


async def _body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Refused(413, "body_too_large", f"the body is {request.content_length} bytes; at most {MAX_BODY_BYTES}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Refused(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, "invalid_json", f"the body is not JSON ({exc}); send a JSON object") from None


def _model(model: type[BaseModel], doc: Any):
    if not isinstance(doc, dict):
        raise Refused(400, "invalid_request", f"the body is a JSON {type(doc).__name__}, not an object")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise _invalid(exc, "the request body is not valid") from None


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except Refused as refused:
        return refused.response()
    except web.HTTPException as exc:  # aiohttp's own: an unknown path or method
        if exc.status < 400:
            raise
        return Refused(
            exc.status, exc.reason.lower().replace(" ", "_"), f"{request.method} {request.path}: {exc.reason}"
        ).response()
    except (OSError, asyncio.TimeoutError) as exc:
        _log.warning("%s %s: the pipeline did not answer: %s", request.method, request.path, exc)
        return Refused(
            503, "unavailable", "the pipeline did not answer; retry later", headers={"Retry-After": "5"}
        ).response()


def build_app(service: ApiService) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY_BYTES)
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
        ]
    )
    return app


def openapi_document() -> dict:
    models = (
        TokenRequest,
        TokenResponse,
        TransactionRequest,
        TransactionResponse,
        TransactionListResponse,
        ChainsResponse,
        ErrorResponse,
    )
    _, defs = models_json_schema(
        [(m, "validation" if m in (TokenRequest, TransactionRequest) else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    ref = lambda m: {"$ref": f"#/components/schemas/{m.__name__}"}  # noqa: E731
    body = lambda m: {"required": True, "content": {"application/json": {"schema": ref(m)}}}  # noqa: E731
    answer = lambda m, why: {"description": why, "content": {"application/json": {"schema": ref(m)}}}  # noqa: E731
    errors = {
        str(s): answer(ErrorResponse, why)
        for s, why in {
            400: "malformed input: the field, what was wrong, what is allowed",
            401: "no token, or a token not valid",
            403: "a guardrail refused it (detail, code, stage), or a token for another agent",
            404: "no such transaction or path",
            413: "a body over the size limit",
            429: "too many requests for this agent (Retry-After)",
            503: "the pipeline did not answer (Retry-After)",
        }.items()
    }
    agent_id = {"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string"}}
    include = {
        "name": "include_signed_tx",
        "in": "query",
        "required": False,
        "schema": {"type": "boolean", "default": False},
    }
    idem = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 255},
    }
    bearer = [{"bearer": []}]

    def post_tx(summary: str) -> dict:
        return {
            "summary": summary,
            "security": bearer,
            "parameters": [agent_id, idem],
            "requestBody": body(TransactionRequest),
            "responses": {
                "201": answer(TransactionResponse, "signed (and with /transactions, broadcast)"),
                "200": answer(
                    TransactionResponse, "the cached answer to a completed request with this Idempotency-Key"
                ),
                "202": answer(
                    TransactionResponse, "waiting for an admin's approval, or no outcome yet: look it up by id"
                ),
                "409": answer(ErrorResponse, "a request with this Idempotency-Key is in progress"),
                "422": answer(
                    ErrorResponse,
                    "the simulation reverted (simulate_first), or the Idempotency-Key came with another body",
                ),
                **errors,
            },
        }

    return {
        "openapi": "3.1.0",
        "info": {"title": "Warden Intents API", "version": "1.0.0"},
        "components": {
            "schemas": defs["$defs"] if "$defs" in defs else defs,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "paths": {
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
                "get": {
                    "summary": "the chains Warden knows",
                    "responses": {"200": answer(ChainsResponse, "the chain registry")},
                }
            },
            "/v1/auth/agent-token": {
                "post": {
                    "summary": "a short-lived bearer token for an agent's API key",
                    "requestBody": body(TokenRequest),
                    "responses": {
                        "200": answer(TokenResponse, "the token"),
                        **{s: errors[s] for s in ("400", "401", "413")},
                    },
                }
            },
            "/v1/agents/{agent_id}/transactions": {
                "post": post_tx("submit a transaction: signed and broadcast once the policy allows it"),
                "get": {
                    "summary": "the agent's transactions, newest first",
                    "security": bearer,
                    "parameters": [agent_id, include],
                    "responses": {"200": answer(TransactionListResponse, "the list"), **errors},
                },
            },
            "/v1/agents/{agent_id}/transactions/sign": {
                "post": post_tx("sign a transaction without broadcasting it (sign-only)")
            },
            "/v1/agents/{agent_id}/transactions/{tx_id}": {
                "get": {
                    "summary": "one transaction, by id or hash",
                    "security": bearer,
                    "parameters": [
                        agent_id,
                        {"name": "tx_id", "in": "path", "required": True, "schema": {"type": "string"}},
                        include,
                    ],
                    "responses": {"200": answer(TransactionResponse, "the transaction"), **errors},
                }
            },
        },
    }
