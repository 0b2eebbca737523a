"""The one range check for integer fields of the specification's types, raising each module's own
named error, so a bound is written once and checked where the value is made."""

from __future__ import annotations


def check_uint(name: str, value: object, limit: int, limit_text: str, error: type[ValueError]) -> None:
    # ``type(...) is int`` rather than isinstance: ``True`` is an int to Python but never a
    # deliberate nonce or amount, and int subclasses may override arithmetic or formatting.
    if type(value) is not int:
        raise error(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise error(f"{name} must be >= 0")
    if value >= limit:
        raise error(f"{name} must be < {limit_text}")
