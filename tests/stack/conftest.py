"""The stack tests: each starts processes (Tansu, Anvil, Warden's services, a CLI or a script in a
subprocess). Every test collected under tests/stack is marked ``stack``, so that
``pytest -m "not stack"`` runs the unit tests alone and starts nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    # This hook sees every collected item, not only this directory's: mark by path.
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.stack)
