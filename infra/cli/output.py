"""How every ``warden`` command speaks: JSON documents on stdout, messages for people on stderr."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def print_json(doc: Any, *, compact: bool = False) -> None:
    """``doc`` as one JSON document on stdout: indented, or on one line (``compact``)."""
    option = 0 if compact else orjson.OPT_INDENT_2
    sys.stdout.write(orjson.dumps(doc, option=option, default=str).decode() + "\n")


def note(message: str) -> None:
    """One line on stderr: progress, a warning, an error."""
    print(message, file=sys.stderr, flush=True)


def fail(command: str, message: object, code: int = 1) -> int:
    """Say on stderr why ``command`` failed; returns its exit code."""
    note(f"{command}: {message}")
    return code
