"""What the HTTP API's schemathesis run adds to its generator (loaded through SCHEMATHESIS_HOOKS):
integers written as JSON integers. JSON Schema 2020-12, OpenAPI 3.1's, counts 21000.0 the integer
21000 and has no keyword to say otherwise, so schemathesis also writes an integer field as a whole
float; the API takes an integer only as written without a fraction and refuses 21000.0 with a 400
naming the field (docs/http-api.md; BAD_BODIES in tests/http_support.py hold the cases)."""

from __future__ import annotations

from typing import Any

import schemathesis


def as_integers(value: Any) -> Any:
    """``value`` with every whole float in it written as the integer it is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: as_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_integers(item) for item in value]
    return value


@schemathesis.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    return as_integers(body)
