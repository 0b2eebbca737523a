"""The stages are one StrEnum (`schemas.stages.Stage`): records carry the plain name, the JSON
Schemas list every stage for producers in other languages, and a reason names a stage as the
wire spells it; and code compares a stage with its member (`Stage.FEE`), never with a string
literal, so a misspelt stage is an AttributeError and not a branch that never runs."""

import ast
import json
from pathlib import Path

from rules.stage_table import ALL_GUARDRAIL_STAGES
from schemas.export import export
from schemas.stages import Stage
from tests.layers_support import PACKAGES, REPO, sources

NAMES = {stage.value for stage in Stage}
COMPARING = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)


def _holds_a_stage(node: ast.expr) -> bool:
    """`stage`, `rejected.stage`, `failed_stage`, `judged.next_stage(intent)`, `row["stage"]`,
    `details.get("stage")`: an expression whose value is a stage."""
    if isinstance(node, ast.Name):
        return node.id.endswith("stage")
    if isinstance(node, ast.Attribute):
        return node.attr.endswith("stage")
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "stage"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == "stage"
    return isinstance(node, ast.Call) and _holds_a_stage(node.func)


def _spells_a_stage(node: ast.expr) -> bool:
    """``"fee"``, or a tuple, list or set with a stage's name in it."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_spells_a_stage(element) for element in node.elts)
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES


def _spelt_against(held: ast.expr, spelt: ast.expr) -> bool:
    """Whether ``spelt`` spells a stage where ``held`` holds one: ``stage == "fee"``, a tuple's
    element (``(v.stage, v.code) == ("fee", Code.OK)``) or a comprehension's (``[v.stage for v in
    verdicts] == ["chain"]``)."""
    if _holds_a_stage(held):
        return _spells_a_stage(spelt)
    if isinstance(held, (ast.ListComp, ast.SetComp, ast.GeneratorExp)) and isinstance(spelt, (ast.List, ast.Set)):
        return any(_spelt_against(held.elt, element) for element in spelt.elts)
    if isinstance(held, (ast.Tuple, ast.List)) and isinstance(spelt, (ast.Tuple, ast.List)):
        return len(held.elts) == len(spelt.elts) and any(map(_spelt_against, held.elts, spelt.elts))
    return False


def stages_compared_with_literals(tree: ast.AST) -> list[int]:
    """The lines where a stage is compared (==, !=, in, not in) with its name spelt as a literal."""
    return sorted(
        {
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Compare)
            for left, op, right in zip([node.left, *node.comparators], node.ops, node.comparators, strict=False)
            if isinstance(op, COMPARING) and (_spelt_against(left, right) or _spelt_against(right, left))
        }
    )


def test_the_json_schemas_list_every_stage(tmp_path: Path) -> None:
    export(tmp_path)
    for record in ("StageVerdict", "IntentRejected", "StageEnvelope"):
        schema = json.loads((tmp_path / f"{record}.schema.json").read_text())
        assert schema["$defs"]["Stage"]["enum"] == [stage.value for stage in Stage], record


def test_a_stage_is_its_wire_name_in_text_and_in_a_reason() -> None:
    assert f"{Stage.DAILY_LIMIT}" == "daily_limit" and f"{Stage.FEE!r}" == "'fee'"
    assert set(ALL_GUARDRAIL_STAGES) < set(Stage)


def test_verdicts_are_made_only_by_their_constructors() -> None:
    """`StageVerdict.passing`, `.refusing` (or `.judged`): no module builds one field by field."""
    by_hand = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for path in sources()
        if path != REPO / "schemas" / "outcomes.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "StageVerdict"
    ]
    assert not by_hand, f"use StageVerdict.passing or .refusing: {by_hand}"


def test_no_module_compares_a_stage_with_a_string_literal() -> None:
    # The tests too: a test that compares with "fee" still passes after the stage is renamed.
    paths = [path for path in sources((*PACKAGES, "tests")) if path != REPO / "schemas" / "stages.py"]
    assert len(paths) > 200, "Warden's modules were not found where this test looks"
    found = [
        f"{path.relative_to(REPO)}:{line}"
        for path in paths
        for line in stages_compared_with_literals(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert not found, f"compare with the schemas.stages.Stage member instead: {found}"


def test_the_walk_finds_each_way_of_spelling_a_stage() -> None:
    spelt = """
stage == "fee"
rejected.stage != 'signing'
"assets" == failed_stage
stage in ("value_cap", "daily_limit")
v.stage not in {"intake"}
0 < stage == "chain"
(rejected.stage, rejected.code) == ("value_cap", Code.VALUE_OVER_CAP)
[v.stage for v in verdicts] == ["chain", "allowlist"]
{r["stage"] for r in rows} == {"signing"}
judged.next_stage(intent) == "assets"
details.get("stage") != "signing"
"""
    kept = """
stage == Stage.FEE
stage == "not a stage"
stages == ("fee",)
name == "fee"
stage is "fee"
(rejected.code, rejected.stage) == ("value_cap", Stage.FEE)
[v.code for v in verdicts] == ["chain"]
details.get("chain") == "fee"
"""
    assert stages_compared_with_literals(ast.parse(spelt)) == list(range(2, 13))
    assert stages_compared_with_literals(ast.parse(kept)) == []
