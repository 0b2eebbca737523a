"""Reading a request: its body within the limits (size, time), a model from it, a flag of its
query; what does not read is `Refused` with the field named."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeVar

import orjson
from aiohttp import http_exceptions, web
from pydantic import (
    BaseModel,
    ValidationError,
)

from gateway.http_api.errors import Refused, invalid_body
from runtime.registry import REGISTRY

_log = logging.getLogger("warden.api")
ModelT = TypeVar("ModelT", bound=BaseModel)


# A body larger than this is refused (413) before it is read: an intent's fields fit in far less.
MAX_BODY_BYTES = 64 * 1024


# A URL as sent (its path and query) over this is refused, 414, whichever HTTP parser aiohttp
# runs: its C parser limits the URL, its pure-Python one the whole request line, so the parser is
# given room for the method and the version (`MAX_REQUEST_LINE_BYTES`) and the app checks the URL.
MAX_URL_BYTES = 4096


MAX_REQUEST_LINE_BYTES = MAX_URL_BYTES + 32


# A header line over this is refused by the parser (431). It differs from the request line's limit,
# so that the parser's one error for both says which it was by the limit it names.
MAX_HEADER_BYTES = 8190


# How long a body may take to arrive once its headers have: a client that stalls is answered 408.
BODY_TIMEOUT_S = 30.0


def flag(request: web.Request, name: str) -> bool:
    given = request.query.get(name, "false")
    if given not in ("true", "false"):
        raise Refused(400, "invalid_request", f"{name}: {given[:40]!r} is not a boolean; give true or false")
    return given == "true"


async def read_body(request: web.Request, timeout_s: float) -> Any:
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


def read_model(model: type[ModelT], doc: Any, tagged_by: str | None = None) -> ModelT:
    """``doc`` as ``model``, or 400 naming each field and what was wrong. ``tagged_by``: the field
    whose value picks one of ``model``'s kinds (pydantic names a field of that kind under the
    value, as ``transaction.tx_type``; the answer names the field of the body, ``tx_type``)."""
    if not isinstance(doc, dict):
        raise Refused(400, "invalid_request", f"the body is a JSON {type(doc).__name__}, not an object")
    try:
        return model.model_validate(doc, context=REGISTRY.context)
    except ValidationError as exc:
        tag = doc.get(tagged_by) if tagged_by is not None else None
        raise invalid_body(exc, "the request body is not valid", 400, tag if isinstance(tag, str) else None) from None
