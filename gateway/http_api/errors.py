"""Every answer of the HTTP API other than success: `Refused`, one JSON shape with its `Code`
(`ERROR_CODES` for the errors the API answers by itself; a refusal names its rule's code)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import (
    ValidationError,
)

from gateway.http_api.answers import (
    ErrorResponse,
    FieldProblem,
)
from schemas.codes import Code
from schemas.errors import WardenError, explain
from schemas.outcomes import (
    IntentRejected,
)

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
    "no_rpc": Code.NO_RPC,
    "node_unavailable": Code.CHAIN_RPC_FAILED,
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
        response = json_answer(self.status, self.document(), self.headers)
        if self.close:
            response.force_close()
        return response


def json_answer(status: int, doc: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json", headers=headers)


def invalid_body(exc: ValidationError, what: str, status: int = 422, tag: str | None = None) -> Refused:
    """A body refused by pydantic: 400 when it is not what the OpenAPI document allows (the request
    models are the document), 422 when it is but a rule the document cannot state refuses it (the
    intent built from it: a priority fee over the maximum fee, bytes that do not parse). ``tag``:
    the kind a tagged body named, which pydantic puts before each field's name and the answer does not."""
    lines = [_named(line.removeprefix(f"{tag}.") if tag else line) for line in explain(exc)]
    problems = [FieldProblem(field=line.partition(": ")[0], problem=line.partition(": ")[2]) for line in lines]
    return Refused(status, "invalid_request", f"{what}: " + "; ".join(lines), fields=problems)


def _named(line: str) -> str:
    """``line`` of `explain`, a rule between fields (pydantic's "record") named by the field its
    message starts with (`fees_of_type`)."""
    where, _, problem = line.partition(": ")
    named, _, rest = problem.partition(": ")
    return f"{named}: {rest}" if where == "record" and rest and named.isidentifier() else line


def rejection(outcome: IntentRejected) -> Refused:
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
