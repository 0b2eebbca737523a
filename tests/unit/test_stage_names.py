"""The stages are one StrEnum (`schemas.stages.Stage`): records carry the plain name, the JSON
Schemas list every stage for producers in other languages, and a reason names a stage as the
wire spells it."""

import json

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
