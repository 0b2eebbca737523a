"""The TypeScript usage the docs show is the one `tsc` checks: every ```ts block of the pages
below is, verbatim, the part of sdk/typescript/test/usage.ts between its markers
(tests/stack/test_typescript_client.py type-checks that file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
USAGE = REPO / "sdk" / "typescript" / "test" / "usage.ts"
PAGES = ("README.md", "docs/http-api.md", "sdk/typescript/README.md")


def _usage() -> str:
    text = USAGE.read_text()
    found = re.search(r"^// usage: begin\n(.*?)^// usage: end\n", text, re.MULTILINE | re.DOTALL)
    assert found, f"{USAGE} lost its '// usage: begin' and '// usage: end' markers"
    return found.group(1)


@pytest.mark.parametrize("page", PAGES)
def test_each_typescript_block_of_the_docs_is_the_type_checked_usage(page: str) -> None:
    blocks = re.findall(r"^```ts\n(.*?)^```\n", (REPO / page).read_text(), re.MULTILINE | re.DOTALL)
    assert blocks, f"{page} shows no ```ts block"
    usage = _usage()
    for block in blocks:
        assert block == usage, (
            f"{page}: a ```ts block differs from {USAGE.relative_to(REPO)}'s usage; copy it from there"
        )
