"""`sdk.records.outcome_receipt` before it asks the ledger: an outcome that names no intent
digest (written before outcomes carried one; pinned services' records of then still verify) has
no receipt, and saying so is `ReceiptUnavailable`, which `warden txs show --proof` and the MCP
server's get_transaction report. tests/unit/test_ledger_endpoint.py serves real receipts."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from runtime.config import Settings
from sdk.records import ReceiptUnavailable, outcome_receipt


def test_an_outcome_without_an_intent_digest_has_no_receipt_and_says_so(tmp_path: Path) -> None:
    # Nothing listens on this address: the answer must come before any request.
    settings = dataclasses.replace(Settings(), home=tmp_path / "home", ledger_http="127.0.0.1:9")
    # It once reached aiohttp, whose query builder raised TypeError on the None, past every caller's
    # `except ReceiptUnavailable`: the MCP tool failed instead of setting receipt_unavailable.
    with pytest.raises(ReceiptUnavailable, match="names no intent_digest"):
        asyncio.run(outcome_receipt(settings, "i-1", "agent-1", None))
