"""One error model (schemas/errors.py): every error Warden raises on purpose is a WardenError that
says what was wrong and what to do next, and the command line prints it instead of a traceback.
evm and svm, the codecs below the model, raise ValueError subclasses."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import pytest

import infra.cli
import infra.cli.status
from ledger.store import StoreError
from schemas.errors import Problem, WardenError

MODEL = ("schemas", "rules", "runtime", "ledger", "signer", "streams", "sdk", "infra")
CODECS = ("evm", "svm")
# Where a check that judges a record returns a `Problem`, and the names that say a function is one.
CHECKING = ("schemas", "ledger", "sdk", "runtime")
CHECK_SUFFIXES = ("_problem", "_forgery", "_conflict")
CHECK_NAMES = ("check", "check_consistency")
# Checks that answer with more than their problem, in a tuple: (signers, problem), (role, problem).
# Their problem is a `Problem` too, never text in the tuple.
TUPLE_CHECK_SUFFIXES = ("_problem",)
TUPLE_CHECK_NAMES = ("quorum", "verdict", "admit", "audit_writer", "audit_claim")
# Named like a check, but not one: what they return in a tuple is no problem, and they raise theirs.
NOT_CHECKS = {
    # (the statement to run, its FORMAT or None); a query it does not run raises QueryRefused.
    "ledger.endpoint.admit": "tuple[str, str | None]",
}


def _modules(packages: tuple[str, ...]) -> Iterator[types.ModuleType]:
    for package in packages:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not info.name.endswith("__main__"):  # runs the command line on import
                yield importlib.import_module(info.name)


def _exception_classes(packages: tuple[str, ...]) -> dict[str, type[BaseException]]:
    return {
        f"{module.__name__}.{name}": obj
        for module in _modules(packages)
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__
    }


def _functions(module: types.ModuleType) -> Iterator[tuple[str, Callable[..., Any]]]:
    """Every function ``module`` defines, public or private, and every method of its classes
    (protocols included), by qualified name."""
    for name, obj in vars(module).items():
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj
        elif inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if inspect.isfunction(member):
                    yield f"{module.__name__}.{name}.{attr}", member


def _is_check(name: str) -> bool:
    short = name.rsplit(".", 1)[-1]
    return short.endswith(CHECK_SUFFIXES) or short in CHECK_NAMES


def _returns(function: Callable[..., Any]) -> object:
    try:
        return typing.get_type_hints(function).get("return")
    except NameError:  # an annotation names what is imported for type checking only: read the text
        return inspect.get_annotations(function).get("return")


def _is_tuple_check(name: str) -> bool:
    short = name.rsplit(".", 1)[-1]
    return short.endswith(TUPLE_CHECK_SUFFIXES) or short in TUPLE_CHECK_NAMES


def _text_in_a_tuple(hint: object) -> bool:
    """Whether ``hint`` is a tuple carrying ``str | None``, alone or as one answer of a union; or,
    as one answer of a union, a tuple ending in ``str`` ("the claim, or (role, why)")."""
    if isinstance(hint, str):  # an annotation read as text: look for the text in a tuple
        flat = hint.replace(" ", "")
        return "tuple[" in flat and any(t in flat for t in ("str|None", "None|str", "Optional[str]", ",str]"))
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    for answer in typing.get_args(hint) if union else (hint,):
        if typing.get_origin(answer) is tuple:
            parts = typing.get_args(answer)
            if any(_text_or_none(part) for part in parts) or (union and parts[-1:] == (str,)):
                return True
    return False


def _text_or_none(hint: object) -> bool:
    if isinstance(hint, str):
        return hint.replace(" ", "") in ("str|None", "None|str", "Optional[str]")
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and set(typing.get_args(hint)) == {
        str,
        type(None),
    }


def test_a_problem_renders_as_the_error_it_makes() -> None:
    bare, told = Problem("the signature does not verify"), Problem("key reused", "use a new idempotency key")
    assert str(bare) == str(WardenError("the signature does not verify")) == "the signature does not verify"
    assert str(told) == str(WardenError("key reused", "use a new idempotency key"))
    assert str(told) == "key reused; use a new idempotency key" and f"({told})" == f"({told!s})"
    assert told == Problem("key reused", "use a new idempotency key")  # a value: frozen, compared by its fields
    with pytest.raises(AttributeError):
        typing.cast(Any, told).what = "something else"  # frozen

    class Refused(WardenError, ValueError):
        next_step = "ask an admin"

    error = told.error(Refused)
    assert type(error) is Refused and isinstance(error, ValueError)
    assert (error.problem, error.next_step, str(error)) == (told.what, told.next_step, str(told))
    # A problem with no next step of its own takes the class's, as Refused(text) did.
    assert str(bare.error(Refused)) == "the signature does not verify; ask an admin"
    assert type(bare.error()) is WardenError and str(bare.error()) == str(bare)
    with pytest.raises(Refused, match="key reused; use a new"):
        raise told.error(Refused)


def test_every_check_returns_a_problem_not_text() -> None:
    """A check that judges a record (``*_problem``, ``*_forgery``, ``*_conflict``, ``check``,
    ``check_consistency``) returns a `Problem` or None, never bare text. One that answers with more
    than its problem, in a tuple (``quorum``: who signed, and why they are too few; ``audit_writer``,
    ``verdict``, ``audit_claim``: the role, and why the record is not believed; ``admit``; a
    ``*_problem``), carries a `Problem` there, never text."""
    checks = {
        name: _returns(function)
        for module in _modules(CHECKING)
        for name, function in _functions(module)
        if _is_check(name) or _is_tuple_check(name)
    }
    typed = [name for name, hint in checks.items() if hint == Problem | None]
    assert len(typed) >= 12, typed  # the walk found them: a broken walk must not pass by finding none
    assert "schemas.auth.outcome_forgery" in typed and "ledger.proof.check" in typed
    text = sorted(name for name, hint in checks.items() if _is_check(name) and _text_or_none(hint))
    assert text == [], f"checks returning their problem as text instead of schemas.errors.Problem: {text}"

    assert {
        "runtime.admins.Admins.quorum",
        "schemas.auth.AdminQuorum.quorum",
        "schemas.auth.AuditClaim.verdict",
        "schemas.auth.audit_claim",
        "schemas.auth.audit_writer",
        "schemas.auth.vault_event_problem",
    } <= checks.keys()  # the walk found them: a broken walk must not pass by finding none
    for name, hint in NOT_CHECKS.items():  # an exception no longer needed goes
        assert str(checks.get(name)).replace(" ", "") == hint.replace(" ", ""), (name, checks.get(name))
    text = sorted(
        name
        for name, hint in checks.items()
        if _is_tuple_check(name) and name not in NOT_CHECKS and _text_in_a_tuple(hint)
    )
    assert text == [], f"checks carrying their problem as text in a tuple instead of schemas.errors.Problem: {text}"


def test_every_error_of_the_model_is_a_warden_error() -> None:
    classes = _exception_classes(MODEL)
    assert len(classes) > 40  # the walk found them: a broken walk must not pass by finding none
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, WardenError))
    assert outside == [], f"exception classes that do not derive from schemas.errors.WardenError: {outside}"


def test_the_codecs_raise_value_errors_below_the_model() -> None:
    classes = _exception_classes(CODECS)
    assert classes
    assert all(issubclass(cls, ValueError) and not issubclass(cls, WardenError) for cls in classes.values())


def test_an_error_carries_what_to_do_next() -> None:
    plain = WardenError("the ledger store is unreachable")
    assert str(plain) == "the ledger store is unreachable" and plain.next_step == ""
    told = WardenError("the ledger store is unreachable", "start it with `warden up`")
    assert told.problem == "the ledger store is unreachable" and told.next_step == "start it with `warden up`"
    assert str(told) == "the ledger store is unreachable; start it with `warden up`"

    class Unreachable(WardenError):
        next_step = "check WARDEN_CLICKHOUSE_URL"

    assert str(Unreachable("no answer")) == "no answer; check WARDEN_CLICKHOUSE_URL"
    assert str(Unreachable("no answer", "retry")) == "no answer; retry"


def test_the_command_line_prints_a_warden_error_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: argparse.Namespace) -> NoReturn:
        raise StoreError("cannot reach the ledger store at 127.0.0.1:9", "start it with `warden up`")

    monkeypatch.setattr(infra.cli.status, "cmd_status", broken)
    assert infra.cli.main(["status"]) == 1
    err = capsys.readouterr().err
    assert err == "warden status: cannot reach the ledger store at 127.0.0.1:9; start it with `warden up`\n"


def test_the_command_line_lets_a_bug_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only errors raised on purpose are told as messages: a bug keeps its traceback."""

    def buggy(args: argparse.Namespace) -> NoReturn:
        raise KeyError("a bug")

    monkeypatch.setattr(infra.cli.status, "cmd_status", buggy)
    with pytest.raises(KeyError):
        infra.cli.main(["status"])
