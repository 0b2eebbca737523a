"""docs/wire-formats.md read as the wire tests read it: its fenced blocks by marker, and the page's example seed."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "wire-formats.md"


def page_text() -> str:
    return PAGE.read_text(encoding="utf-8")


def block_after(marker: str) -> str:
    """The first fenced block after a marker."""
    text = page_text()
    start = text.index(f"<!-- wire:{marker} -->")
    opening = text.index("```", start)
    body = text.index("\n", opening) + 1
    return text[body : text.index("```", body)].strip()


def json_default(value) -> object:
    return json.loads(orjson.dumps(value))


EXAMPLE_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"  # RFC 8032, test 1
CHECKSUMMED = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"  # EIP-55 already: kept
