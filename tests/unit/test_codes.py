"""One vocabulary of codes (`schemas.codes.Code`): every verdict, refusal and outcome names its
code through the enum, never as a string literal, so a typo is an AttributeError at import and
not a code no client matches; the JSON Schemas carry the list for producers in other languages;
and every code the docs name exists."""

from __future__ import annotations

import io
import json
import pathlib
import re
import tokenize
from collections.abc import Iterator

from schemas.codes import Code
from schemas.export import export
from tests.layers_support import PACKAGES, REPO, sources

# The tests too: they compare with the enum, whose values `test_each_code_is_its_own_name` pins.
CODES = {code.value for code in Code}


def _literals(path: pathlib.Path) -> Iterator[tuple[int, str]]:
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type == tokenize.STRING and token.string[:1] in "\"'" and token.string[1:-1] in CODES:
            yield token.start[0], token.string


def test_no_module_spells_a_code_as_a_string_literal() -> None:
    found = [
        f"{path.relative_to(REPO)}:{line}: {text}"
        for path in sources((*PACKAGES, "tests"))
        if path.name != "codes.py" and path != pathlib.Path(__file__).resolve()
        for line, text in _literals(path)
    ]
    assert not found, "use schemas.codes.Code instead of:\n" + "\n".join(found)


def test_each_code_is_its_own_name() -> None:
    assert all(code.name == code.value for code in Code)


def test_the_json_schemas_list_every_code_for_verdicts_and_refusals(tmp_path: pathlib.Path) -> None:
    export(tmp_path)
    for record in ("StageVerdict", "IntentRejected"):
        schema = json.loads((tmp_path / f"{record}.schema.json").read_text())
        assert set(schema["$defs"]["Code"]["enum"]) == CODES, record


def test_every_code_the_docs_name_is_one() -> None:
    # docs/modules.md is the modules' docstrings, written from the code: its constants are not codes.
    text = "".join(p.read_text() for p in sorted((REPO / "docs").glob("*.md")) if p.name != "modules.md")
    named = set(re.findall(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`", text))
    # Upper-case names in the docs that are not codes: settings, constants, a PKCS#11 error.
    others = {
        n for n in named if n.startswith(("WARDEN_", "AWS_", "SOFTHSM2_", "CKR_", "SNP_", "PRICE_MAX_", "FINAL_"))
    }
    assert named - others <= CODES, sorted(named - others - CODES)
