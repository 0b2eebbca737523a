"""`schemas` holds no state that changes at run time: the admin set in force, the books
that read versioned admin records and the networks in force live in `runtime` and are handed to
what uses them. A pydantic validator that read a process-wide registry fed by a Kafka reader would
judge the same bytes differently from one moment to the next, and nothing would say which
registry it read."""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel

import schemas

SCHEMAS = Path(schemas.__file__).parent
# What moved to runtime: none of these may come back under schemas.
MOVED = {
    "REGISTRY": "runtime.registry",
    "ChainRegistry": "runtime.registry",
    "Admins": "runtime.admins",
    "VersionBook": "runtime.admins",
    "AdminSetBook": "runtime.admins",
    "ChainSetBook": "runtime.chains",
}
# Classes of schemas that are neither records, frozen dataclasses, enums, errors nor protocols,
# and why each holds nothing that changes once it is made.
SET_ONCE = {
    "schemas.auth.AuditSigner": "a writer's audit key and name, set when it is made and never changed",
    "schemas.record.WireJsonSchema": "pydantic's JSON Schema writer, made afresh for each schema it writes and "
    "dropped after it: nothing it holds outlives one call",
}


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f"schemas.{m.name}") for m in pkgutil.iter_modules([str(SCHEMAS)])]


def _own_classes(module: ModuleType) -> list[type]:
    return [c for c in vars(module).values() if inspect.isclass(c) and c.__module__ == module.__name__]


def _immutable_kind(cls: type) -> bool:
    if issubclass(cls, BaseModel):
        return bool(cls.model_config.get("frozen"))
    if dataclasses.is_dataclass(cls):
        params = getattr(cls, "__dataclass_params__", None)
        return bool(params is not None and params.frozen)
    return issubclass(cls, (enum.Enum, BaseException)) or bool(getattr(cls, "_is_protocol", False))


def test_no_module_of_schemas_exposes_what_moved_to_runtime() -> None:
    exposed = [
        f"schemas.{m.__name__.rpartition('.')[2]}.{name} (it lives in {MOVED[name]})"
        for m in _modules()
        for name in MOVED
        if hasattr(m, name)
    ]
    assert not exposed, f"state that changes at run time belongs in runtime, handed to what uses it: {exposed}"


def test_every_class_of_schemas_is_immutable_once_made() -> None:
    mutable = [
        f"{m.__name__}.{c.__name__}"
        for m in _modules()
        for c in _own_classes(m)
        if not _immutable_kind(c) and f"{m.__name__}.{c.__name__}" not in SET_ONCE
    ]
    assert not mutable, (
        f"a class of schemas whose instances can change (a registry, a book, an admin set in force): {mutable}; "
        "make it a frozen record or dataclass, or move it to runtime and pass it in where it is used"
    )


def test_no_module_of_schemas_holds_an_instance_of_a_mutable_class_of_warden() -> None:
    held = [
        f"{m.__name__}.{name}: {type(value).__module__}.{type(value).__name__}"
        for m in _modules()
        for name, value in vars(m).items()
        if not inspect.isclass(value)
        and type(value).__module__.partition(".")[0] in {"schemas", "runtime", "rules", "sdk", "signer", "streams"}
        and not _immutable_kind(type(value))
    ]
    assert not held, f"module-level state in schemas: {held}"


def test_no_function_of_schemas_rebinds_module_state() -> None:
    rebinding = [
        f"{path.relative_to(SCHEMAS.parent)}:{node.lineno}"
        for path in sorted(SCHEMAS.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Global | ast.Nonlocal)
    ]
    assert not rebinding, f"a function of schemas changes module state: {rebinding}"
