"""The HTTP API's OpenAPI 3.1 document (`/v1/openapi.json`): its schemas generated from the
models the handlers validate and answer with, its paths listed here."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.http_api.answers import (
    BitcoinTransactionResponse,
    ChainsResponse,
    ErrorResponse,
    SignResponse,
    SimulationResponse,
    SolanaTransactionResponse,
    TokenResponse,
    TransactionListResponse,
    TransactionResponse,
    TransferResponse,
)
from gateway.http_api.bodies import BODY_TIMEOUT_S, MAX_HEADER_BYTES, MAX_URL_BYTES
from gateway.http_api.models import (
    ADDRESS_DESCRIPTION,
    ADDRESS_PATTERN,
    BYTES32_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    IDENTIFIER_PATTERN,
    BundleRequest,
    SignRequest,
    SimulateRequest,
    SolanaRequest,
    TokenRequest,
    TransferRequest,
)
from sdk.mcp_results import (
    SigningKeys,
)


def openapi_text() -> str:
    # The standard library's JSON: some bounds (a uint64's) are past what orjson writes.
    return json.dumps(openapi_document(), indent=2) + "\n"


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
    "UrlTooLong": (414, f"a URL (its path and query, as sent) over {MAX_URL_BYTES} bytes"),
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


REQUESTS = (TokenRequest, TransferRequest, SignRequest, SolanaRequest, SimulateRequest, BundleRequest)


# The intent's own records a request carries (`schemas.intent`), whose fields validate more than
# their JSON Schema says: the document says it, as the request models do for theirs.
RECORD_PATTERNS: dict[str, dict[str, dict[str, Any]]] = {
    "AccessListEntry": {
        "address": {"pattern": ADDRESS_PATTERN, "description": ADDRESS_DESCRIPTION},
        "storage_keys": {"items": {"type": "string", "pattern": BYTES32_PATTERN}},
    },
}


ANSWERS = (
    TokenResponse,
    TransactionResponse,
    TransferResponse,
    TransactionListResponse,
    SignResponse,
    SolanaTransactionResponse,
    BitcoinTransactionResponse,
    SimulationResponse,
    SigningKeys,
    ChainsResponse,
    ErrorResponse,
)


def openapi_document() -> dict[str, Any]:
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


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    """A reference to ``model``'s schema in the document's components."""
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _path_param(name: str, **schema: Any) -> dict[str, Any]:
    """A parameter taken from the path, as ``{name}`` in it; ``schema`` adds to its string's schema."""
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", **schema}}


def _include_param() -> dict[str, Any]:
    """The query parameter that asks for the signed transaction's bytes in the answer."""
    return {"name": "include_signed_tx", "in": "query", "required": False, "schema": {"type": "boolean"}}


def _idempotency_param() -> dict[str, Any]:
    """The header that makes a signing request safe to send again."""
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN, "maxLength": 255},
    }


def _operation(
    summary: str,
    answers: dict[int, tuple[type[BaseModel], str]],
    request: type[BaseModel] | None = None,
    params: tuple[dict[str, Any], ...] = (),
    agent: bool = True,
    errors: tuple[str, ...] = ERRORS,
) -> dict[str, Any]:
    """One operation: its answers (status: (model, why)) and ``errors`` (names of ERROR_RESPONSES),
    its request body's model, its parameters; an agent's operation takes the agent's bearer token
    and ``agent_id`` from the path."""
    responses = {
        str(status): {"description": why, "content": {"application/json": {"schema": _ref(model)}}}
        for status, (model, why) in answers.items()
    }
    responses.update({str(ERROR_RESPONSES[name][0]): {"$ref": f"#/components/responses/{name}"} for name in errors})
    doc: dict[str, Any] = {"summary": summary, "responses": responses}
    if agent:
        doc["security"] = [{"bearer": []}]
        doc["parameters"] = [_path_param("agent_id", pattern=IDENTIFIER_PATTERN, maxLength=128), *params]
    elif params:
        doc["parameters"] = list(params)
    if request is not None:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(request)}}}
    return doc


def _signing(summary: str, request: type[BaseModel], answer: type[BaseModel]) -> dict[str, Any]:
    """An operation that asks for a signature: answered ``answer`` once signed, or as SIGNED says,
    and idempotent under an Idempotency-Key."""
    answers = {201: (answer, "signed"), **{s: (m or answer, why) for s, (m, why) in SIGNED.items()}}
    return _operation(summary, answers, request, (_idempotency_param(),))


def _admins_only(summary: str, *params: dict[str, Any]) -> dict[str, Any]:
    """An agent's operation only an admin may do: an agent's token gets the errors alone."""
    return _operation(summary, {}, None, params)


def _public_paths() -> dict[str, Any]:
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


def _transaction_paths() -> dict[str, Any]:
    """An agent's transactions: submit, list, sign only, simulate one or a bundle, look one up."""
    return {
        f"{_AGENT}/transactions": {
            "post": _signing(
                "submit a transaction (on a Solana network: a transfer of SOL; on a Bitcoin network: a payment of BTC): signed and broadcast once the policy "
                "allows it",
                TransferRequest,
                TransferResponse,
            ),
            "get": _operation(
                "the agent's transactions, newest first",
                {200: (TransactionListResponse, "the list")},
                params=(_include_param(),),
            ),
        },
        f"{_AGENT}/transactions/sign": {
            "post": _signing(
                "sign a transaction (on a Solana network: a transfer of SOL; on a Bitcoin network: a payment of BTC), not broadcast (sign-only)",
                TransferRequest,
                TransferResponse,
            )
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
                "one transaction, by its id or its hash on chain (a Solana signature, a Bitcoin txid)",
                {200: (TransferResponse, "the transaction, in its family's shape")},
                params=(_path_param("tx_id"), _include_param()),
            )
        },
    }


def _signing_paths() -> dict[str, Any]:
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


def _signing_key_paths() -> dict[str, Any]:
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
