"""The JSON Schema export: a valid schema per record, describing each record as it travels."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from schemas.export import RECORDS, export
from schemas.intent import TransactionIntent
from schemas.record import OMIT_WHEN_DEFAULT
from tests.schemas_support import sample_records

NAMES = [
    "TransactionIntent",
    "AgentPolicy",
    "StageVerdict",
    "IntentRejected",
    "IntentApproved",
    "IntentParked",
    "IntentOverdue",
    "IntentAbandoned",
    "HumanApproval",
    "SignedTransaction",
    "SimulationRequest",
    "SimulationResult",
    "StageEnvelope",
    "AuditEvent",
    "DeadLetter",
    "SealingKey",
    "SignedMessage",
    "SignedSolanaTransaction",
    "SignedSolanaMessage",
    "SignedBitcoinTransaction",
    "AdminSet",
    "AdminProposal",
    "ChainSet",
    "VaultChange",
]


def test_export_writes_a_valid_json_schema_per_record(tmp_path: Path) -> None:
    written = export(tmp_path / "schemas")
    assert sorted(p.name for p in written) == sorted(f"{n}.schema.json" for n in NAMES)
    for path in written:
        schema = json.loads(path.read_text())
        assert schema["$id"] == f"https://warden.dev/schemas/v1/{path.name}"
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
    intent = json.loads((tmp_path / "schemas" / "TransactionIntent.schema.json").read_text())
    assert set(intent["required"]) == {"intent_id", "agent_id", "chain", "created_at"}
    transaction = next(
        rule for rule in intent["allOf"] if rule["if"]["properties"]["intent_type"]["const"] == "transaction"
    )
    assert transaction["then"]["required"] == ["to", "value"]
    assert {"type": "string"} in intent["properties"]["value"]["anyOf"]
    signed = json.loads((tmp_path / "schemas" / "SignedTransaction.schema.json").read_text())
    assert "from" in signed["properties"] and "from" in signed["required"]


def _json_types(prop: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    if "$ref" in prop:
        return _json_types(defs[prop["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in prop:
        return set().union(*(_json_types(p, defs) for p in prop["anyOf"]))
    if "type" in prop:
        return {prop["type"]} | ({"number"} if prop["type"] == "integer" else set())
    if "const" in prop:
        return {{str: "string", int: "integer", bool: "boolean"}[type(prop["const"])]}
    return {"string", "integer", "number", "boolean", "array", "object", "null"}


def _wire_type(value: typing.Any) -> str:
    for kind, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (list, "array"),
        (dict, "object"),
        (type(None), "null"),
    ):
        if isinstance(value, kind):
            return name
    raise AssertionError(value)


def test_exported_schemas_describe_the_records_as_they_travel(tmp_path: Path) -> None:
    # A consumer in another language validates what it reads against these files,
    # so each field's declared JSON type must be the type the wire carries.
    export(tmp_path)
    mismatches = []
    for record in sample_records():
        name = type(record).__name__
        schema = json.loads((tmp_path / f"{name}.schema.json").read_text())
        for field, value in orjson.loads(record.to_bytes()).items():
            declared = _json_types(schema["properties"][field], schema.get("$defs", {}))
            if _wire_type(value) not in declared:
                mismatches.append(f"{name}.{field}: wire {_wire_type(value)}, schema {sorted(declared)}")
    assert mismatches == []


def _models(cls: type[BaseModel], found: dict[str, type[BaseModel]]) -> dict[str, type[BaseModel]]:
    """``cls`` and every record its fields can hold, by name (as the schemas' $defs name them)."""
    if cls.__name__ not in found:
        found[cls.__name__] = cls
        for field in cls.model_fields.values():
            pending = [field.annotation]
            while pending:
                annotation = pending.pop()
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    _models(annotation, found)
                pending.extend(typing.get_args(annotation))
    return found


def _exported_properties(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The properties of every record and every record it holds, as the exported schemas give them."""
    export(tmp_path)
    properties = {}
    for record in RECORDS:
        schema = json.loads((tmp_path / f"{record.__name__}.schema.json").read_text())
        properties[record.__name__] = schema["properties"]
        for name, contained in schema.get("$defs", {}).items():
            properties.setdefault(name, contained.get("properties", {}))
    return properties


def _left_out_at_default(model: type[BaseModel]) -> set[str]:
    """The wire names of the fields the record's bytes leave out when every field holds its default
    (the required ones a null): found by writing the record, not by reading how it is declared."""
    required = {name: None for name, field in model.model_fields.items() if field.is_required()}
    written = model.model_construct(**required).model_dump(mode="json", by_alias=True, warnings=False)
    return {field.alias or name for name, field in model.model_fields.items() if (field.alias or name) not in written}


def test_the_schemas_mark_every_field_left_out_of_the_bytes_at_its_default_and_no_other(tmp_path: Path) -> None:
    properties = _exported_properties(tmp_path)
    models: dict[str, type[BaseModel]] = {}
    for record in RECORDS:
        _models(record, models)
    assert set(models) <= set(properties)
    for name, props in properties.items():
        marked = {prop for prop, schema in props.items() if schema.get(OMIT_WHEN_DEFAULT) is True}
        # What is no record (a chain of ChainSet, an enumeration) has no field left out.
        assert marked == (_left_out_at_default(models[name]) if name in models else set()), name
        for prop in marked:  # a producer leaves it out at the default the schema states
            assert "default" in props[prop], (name, prop)


def test_an_intent_signs_without_each_marked_field_at_its_default_and_with_every_other(tmp_path: Path) -> None:
    # The intent's own signing code: what a producer in another language must reproduce.
    intent_properties = _exported_properties(tmp_path)["TransactionIntent"]
    intent = next(r for r in sample_records() if isinstance(r, TransactionIntent))
    for name, field in TransactionIntent.model_fields.items():
        if field.is_required() or name == "signature":  # the signature is never in its own bytes
            continue
        at_default = intent.model_copy(update={name: field.get_default(call_default_factory=True)})
        signed = json.loads(at_default.signing_bytes())
        assert (name not in signed) == bool(intent_properties[name].get(OMIT_WHEN_DEFAULT)), name
