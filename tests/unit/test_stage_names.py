"""The stages are one StrEnum (`schemas.stages.Stage`): records carry the plain name, the JSON
Schemas list every stage for producers in other languages, and a reason names a stage as the
wire spells it."""

import ast
import json
import pathlib

from schemas.export import export
from schemas.stages import ALL_GUARDRAIL_STAGES, Stage


def test_the_json_schemas_list_every_stage(tmp_path):
    export(tmp_path)
    for record in ("StageVerdict", "IntentRejected", "StageEnvelope"):
        schema = json.loads((tmp_path / f"{record}.schema.json").read_text())
        assert schema["$defs"]["Stage"]["enum"] == [stage.value for stage in Stage], record


def test_a_stage_is_its_wire_name_in_text_and_in_a_reason():
    assert f"{Stage.DAILY_LIMIT}" == "daily_limit" and f"{Stage.FEE!r}" == "'fee'"
    assert set(ALL_GUARDRAIL_STAGES) < set(Stage)


def test_verdicts_are_made_only_by_their_constructors():
    """`StageVerdict.passing`, `.refusing` (or `.judged`): no module builds one field by field."""
    repo = pathlib.Path(__file__).resolve().parents[2]
    packages = ("evm", "svm", "schemas", "runtime", "rules", "streams", "signer", "ledger", "sdk", "infra")
    by_hand = [
        f"{path.relative_to(repo)}:{node.lineno}"
        for package in packages
        for path in sorted((repo / package).rglob("*.py"))
        if "node_modules" not in path.parts and path != repo / "schemas" / "outcomes.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "StageVerdict"
    ]
    assert not by_hand, f"use StageVerdict.passing or .refusing: {by_hand}"
