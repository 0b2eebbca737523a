"""Warden's one error model.

Every error Warden raises on purpose is a `WardenError`: its message says what was wrong, and
``next_step`` what to do about it (the command to run, the setting to change, the field to fix),
as the command line and the rejection reasons phrase it. A check that judges a record returns
its problem as a `Problem` (None when there is none) and raises nothing: its caller puts
``str(problem)`` where text goes (it reads as the error would), or raises
``problem.error(SomeError)``. Reading, parsing, storing and calling out raise a `WardenError`
subclass. A caller catches the subclass it can act on; the command line catches the root and
prints it, never a traceback.

``evm`` and ``svm`` sit below this model: they are codecs, and raise `ValueError` subclasses
naming the field, which the layers above turn into a refusal or a `WardenError` where they read.
Pydantic's validation errors are told field by field by `explain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the root error is imported by every layer, the CLI's --help included: no pydantic at run time
    from pydantic import ValidationError

    from schemas.codes import Code


class WardenError(Exception):
    """The root of Warden's errors. ``problem``: what was wrong; ``next_step``: what to do next,
    when the problem does not already say it (a subclass may give its kind's as a class attribute)."""

    next_step: str = ""

    def __init__(self, problem: str, next_step: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        if next_step is not None:
            self.next_step = next_step

    def __str__(self) -> str:
        return f"{self.problem}; {self.next_step}" if self.next_step else self.problem


@dataclass(frozen=True)
class Problem:
    """What a check found wrong with a record: ``what`` was wrong and, when it does not already
    say it, ``next_step``. It renders as a `WardenError` does, so the text a caller puts in a
    reason, an audit detail or a report is ``str(problem)``; never the object itself. ``code``:
    the refusal code (a `schemas.codes.Code`) of a problem that has one of its own, which a
    caller that reports a code reports instead of its general one (a passkey's assertion that
    does not verify: PASSKEY_ASSERTION_INVALID); None for the others."""

    what: str
    next_step: str = ""
    code: Code | None = None

    def __str__(self) -> str:
        return f"{self.what}; {self.next_step}" if self.next_step else self.what

    def error(self, cls: type[WardenError] = WardenError) -> WardenError:
        """The ``cls`` to raise for this problem: its next step, or else the class's own."""
        return cls(self.what, self.next_step or None)


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
