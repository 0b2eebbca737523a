"""The agent's transactions as the HTTP API answers them: every family's (an EVM transaction, a
Solana transaction, a Bitcoin payment), each in its family's shape and named by ``family``, and the
refusals. `GET /v1/agents/{id}/transactions` lists them and `GET .../transactions/{tx_id}` finds
one through `sdk.transaction_lookups`, as the MCP server's lookups do (only what a pinned key of the
service allowed to say it signed); here each gets the API's ``id`` and a refusal its ``detail``,
``code`` and ``stage``."""

from __future__ import annotations

from typing import Any

from schemas.outcomes import SignedTransaction
from sdk import transaction_lookups
from sdk.records import AgentRecords
from sdk.transaction_results import AnyTransaction, Transaction


def view(found: AnyTransaction) -> dict[str, Any]:
    """A transaction of any family (or a refusal) as the API answers it: ``signed_tx`` only where
    ``found`` holds it; a refusal names no family, as the refusal's record names no network."""
    doc = found.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(found, Transaction) and found.refusal is not None:
        doc.update(detail=found.refusal.reason, code=found.refusal.code, stage=found.refusal.stage)
    return {"id": found.intent_id, **doc}


def listed(found: AgentRecords, include_signed_tx: bool) -> list[dict[str, Any]]:
    """Every transaction of every family and every refusal in ``found``, newest first."""
    return [view(each.result) for each in transaction_lookups.listed(found, include_signed_tx)]


def looked_up(
    found: AgentRecords, history: dict[str, list[SignedTransaction]], tx_id: str, include_signed_tx: bool
) -> dict[str, Any] | None:
    """The transaction ``tx_id`` names in ``found``, by its id (the intent's) or its hash on chain,
    an EVM one with its status history; else the refusal of the intent of that id; None when
    there is neither."""
    each = transaction_lookups.looked_up(found, history, tx_id, include_signed_tx)
    return None if each is None else view(each.result)
