"""Validation errors of any record, told the way a producer can act on them."""

from __future__ import annotations

from pydantic import ValidationError


def explain(exc: ValidationError) -> tuple[str, ...]:
    """pydantic errors → "field: what was wrong" lines a producer can act on."""
    lines = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "record"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "is required"
        elif err["type"] == "extra_forbidden":
            message = "is not a field of this record (check the spelling; see `warden schemas export`)"
        lines.append(f"{field}: {message}")
    return tuple(lines)
