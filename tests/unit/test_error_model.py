"""One error model (schemas/errors.py): every error Warden raises on purpose is a WardenError that
says what was wrong and what to do next, and the command line prints it instead of a traceback.
evm and svm, the codecs below the model, raise ValueError subclasses."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import infra.cli
import infra.cli.status
from ledger.store import StoreError
from schemas.errors import WardenError

MODEL = ("schemas", "rules", "runtime", "ledger", "signer", "streams", "sdk", "infra")
CODECS = ("evm", "svm")


def _exception_classes(packages: tuple[str, ...]) -> dict[str, type[BaseException]]:
    found = {}
    for package in packages:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.endswith("__main__"):  # runs the command line on import
                continue
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                    found[f"{info.name}.{name}"] = obj
    return found


def test_every_error_of_the_model_is_a_warden_error():
    classes = _exception_classes(MODEL)
    assert len(classes) > 40  # the walk found them: a broken walk must not pass by finding none
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, WardenError))
    assert outside == [], f"exception classes that do not derive from schemas.errors.WardenError: {outside}"


def test_the_codecs_raise_value_errors_below_the_model():
    classes = _exception_classes(CODECS)
    assert classes
    assert all(issubclass(cls, ValueError) and not issubclass(cls, WardenError) for cls in classes.values())


def test_an_error_carries_what_to_do_next():
    plain = WardenError("the ledger store is unreachable")
    assert str(plain) == "the ledger store is unreachable" and plain.next_step == ""
    told = WardenError("the ledger store is unreachable", "start it with `warden up`")
    assert told.problem == "the ledger store is unreachable" and told.next_step == "start it with `warden up`"
    assert str(told) == "the ledger store is unreachable; start it with `warden up`"

    class Unreachable(WardenError):
        next_step = "check WARDEN_CLICKHOUSE_URL"

    assert str(Unreachable("no answer")) == "no answer; check WARDEN_CLICKHOUSE_URL"
    assert str(Unreachable("no answer", "retry")) == "no answer; retry"


def test_the_command_line_prints_a_warden_error_and_exits_1(monkeypatch, capsys):
    def broken(args):
        raise StoreError("cannot reach the ledger store at 127.0.0.1:9", "start it with `warden up`")

    monkeypatch.setattr(infra.cli.status, "cmd_status", broken)
    assert infra.cli.main(["status"]) == 1
    err = capsys.readouterr().err
    assert err == "warden status: cannot reach the ledger store at 127.0.0.1:9; start it with `warden up`\n"


def test_the_command_line_lets_a_bug_through(monkeypatch):
    """Only errors raised on purpose are told as messages: a bug keeps its traceback."""

    def buggy(args):
        raise KeyError("a bug")

    monkeypatch.setattr(infra.cli.status, "cmd_status", buggy)
    with pytest.raises(KeyError):
        infra.cli.main(["status"])
