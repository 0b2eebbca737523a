"""The agent's transactions as the HTTP API lists them (`GET /v1/agents/{id}/transactions`) and finds
one (`GET .../transactions/{tx_id}`): every family's signed records (an EVM transaction, a Solana
transaction, a Bitcoin payment), each in its family's shape and named by ``family``, and the
refusals, read as `sdk.records.agent_transactions` reads them (only what a pinned key of the service
allowed to say it signed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.outcomes import IntentRejected, SignedBitcoinTransaction, SignedSolanaTransaction, SignedTransaction
from sdk.mcp_results import (
    BitcoinTransactionResult,
    SolanaTransactionResult,
    Transaction,
    bitcoin_transaction_of,
    refused_transaction,
    solana_transaction_of,
    transaction_of,
)
from sdk.records import AgentRecords, status_history


def evm_view(found: Transaction) -> dict[str, Any]:
    """An EVM transaction (or a refusal) as the API answers it: ``signed_tx`` only where ``found``
    holds it (`transaction_of` leaves it out unless asked); a refusal names no family, as the
    refusal's record names no network."""
    doc = found.model_dump(mode="json", by_alias=True, exclude_none=True)
    if found.refusal is not None:
        doc.update(detail=found.refusal.reason, code=found.refusal.code, stage=found.refusal.stage)
    else:
        doc["family"] = "evm"
    return {"id": found.intent_id, **doc}


def family_view(found: SolanaTransactionResult | BitcoinTransactionResult, key: str | None) -> dict[str, Any]:
    """A Solana transaction or a Bitcoin payment as the API answers it, under the Idempotency-Key
    ``key`` it was asked with (None: none, or not known to a lookup)."""
    doc = found.model_copy(update={"idempotency_key": key}).model_dump(mode="json", by_alias=True, exclude_none=True)
    family = "solana" if isinstance(found, SolanaTransactionResult) else "bitcoin"
    return {"id": found.intent_id, "family": family, **doc}


def _signed_view(record: SignedSolanaTransaction | SignedBitcoinTransaction, include_signed_tx: bool) -> dict[str, Any]:
    """A Solana or Bitcoin record as a lookup shows it: ``signed_tx`` only when asked for."""
    of = solana_transaction_of if isinstance(record, SignedSolanaTransaction) else bitcoin_transaction_of
    found = of(record.intent_id, record.agent_id, record.chain, "", record, 0)
    if not include_signed_tx:
        found = found.model_copy(update={"signed_tx": None})
    return family_view(found, None)


def listed(found: AgentRecords, include_signed_tx: bool) -> list[dict[str, Any]]:
    """Every transaction of every family and every refusal in ``found``, newest first."""
    dated: list[tuple[datetime, dict[str, Any]]] = [
        (r.signed_at, evm_view(transaction_of(r, include_signed_tx))) for r in found.transactions
    ]
    dated += [(r.signed_at, _signed_view(r, include_signed_tx)) for r in found.solana_transactions]
    dated += [(r.signed_at, _signed_view(r, include_signed_tx)) for r in found.bitcoin_transactions]
    dated += [(r.decided_at, evm_view(refused_transaction(r))) for r in found.rejected]
    return [view for _, view in sorted(dated, key=lambda pair: pair[0], reverse=True)]


def looked_up(
    found: AgentRecords, history: dict[str, list[SignedTransaction]], tx_id: str, include_signed_tx: bool
) -> dict[str, Any] | None:
    """The transaction ``tx_id`` names in ``found``: by its id (the intent's), or its hash on chain
    (an EVM transaction's, or one its fee bump replaced; a Solana transaction's signature, or the
    agent's; a Bitcoin payment's txid), an EVM one with its status history; else the refusal of
    the intent of that id; None when there is neither."""
    for record in found.transactions:
        if tx_id in (record.intent_id, record.tx_hash, *record.replaces):
            steps = status_history(history[record.intent_id])
            return evm_view(transaction_of(record, include_signed_tx, history=steps))
    for solana in found.solana_transactions:
        if tx_id in (solana.intent_id, solana.tx_signature, solana.signature):
            return _signed_view(solana, include_signed_tx)
    for bitcoin in found.bitcoin_transactions:
        if tx_id in (bitcoin.intent_id, bitcoin.txid):
            return _signed_view(bitcoin, include_signed_tx)
    refusals: list[IntentRejected] = [r for r in found.rejected if r.intent_id == tx_id]
    return evm_view(refused_transaction(refusals[-1])) if refusals else None
