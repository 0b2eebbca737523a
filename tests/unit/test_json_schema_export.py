"""The JSON Schema export: a valid schema per record, describing each record as it travels."""

from __future__ import annotations

import json

import orjson

from schemas.export import export
from tests.schemas_support import sample_records

NAMES = [
    "TransactionIntent",
    "AgentPolicy",
    "StageVerdict",
    "IntentRejected",
    "IntentApproved",
    "IntentParked",
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
    "AdminSet",
    "AdminProposal",
    "ChainSet",
    "VaultChange",
]


def test_export_writes_a_valid_json_schema_per_record(tmp_path):
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


def _json_types(prop: dict, defs: dict) -> set[str]:
    if "$ref" in prop:
        return _json_types(defs[prop["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in prop:
        return set().union(*(_json_types(p, defs) for p in prop["anyOf"]))
    if "type" in prop:
        return {prop["type"]} | ({"number"} if prop["type"] == "integer" else set())
    if "const" in prop:
        return {{str: "string", int: "integer", bool: "boolean"}[type(prop["const"])]}
    return {"string", "integer", "number", "boolean", "array", "object", "null"}


def _wire_type(value) -> str:
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


def test_exported_schemas_describe_the_records_as_they_travel(tmp_path):
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
