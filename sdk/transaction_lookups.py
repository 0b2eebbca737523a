"""The agent's transactions of every family as its lookups show them: each EVM transaction, Solana
transaction and Bitcoin payment in `agent_transactions`' records, in its family's result
(`sdk.transaction_results`), and each refusal, listed newest first and found by the intent's id or
by its hash on chain. The MCP server's `list_transactions` and `get_transaction` and the HTTP API's
`GET .../transactions` read them through here, so both say the same of every family."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.outcomes import IntentRejected, SignedBitcoinTransaction, SignedSolanaTransaction, SignedTransaction
from sdk.records import AgentRecords, status_history
from sdk.transaction_results import (
    AnyTransaction,
    bitcoin_transaction_of,
    refused_transaction,
    solana_transaction_of,
    transaction_of,
)

SignedRecord = SignedTransaction | SignedSolanaTransaction | SignedBitcoinTransaction


@dataclass(frozen=True)
class Found:
    """One transaction of the agent's: ``result`` as it is shown, ``record`` the verified record it
    was read from (its newest), ``at`` when it was signed or refused."""

    result: AnyTransaction
    record: SignedRecord | IntentRejected
    at: datetime


def _signed(
    record: SignedRecord, include_signed_tx: bool, history: dict[str, list[SignedTransaction]] | None = None
) -> Found:
    """A signed record of any family as a lookup shows it: ``signed_tx`` only when asked for; an EVM
    transaction with its status history when ``history`` holds its records."""
    if isinstance(record, SignedTransaction):
        steps = None if history is None else status_history(history[record.intent_id])
        result: AnyTransaction = transaction_of(record, include_signed_tx, history=steps)
    else:
        of = solana_transaction_of if isinstance(record, SignedSolanaTransaction) else bitcoin_transaction_of
        result = of(record.intent_id, record.agent_id, record.chain, None, record, 0)
        if not include_signed_tx:
            result = result.model_copy(update={"signed_tx": None})
    return Found(result, record, record.signed_at)


def _every_signed(found: AgentRecords) -> list[SignedRecord]:
    return [*found.transactions, *found.solana_transactions, *found.bitcoin_transactions]


def listed(found: AgentRecords, include_signed_tx: bool) -> list[Found]:
    """Every transaction of every family and every refusal in ``found``, newest first."""
    every = [_signed(record, include_signed_tx) for record in _every_signed(found)]
    every += [Found(refused_transaction(r), r, r.decided_at) for r in found.rejected]
    return sorted(every, key=lambda each: each.at, reverse=True)


def _names(record: SignedRecord) -> tuple[str | None, ...]:
    """What names ``record``: its intent's id, and its hash on chain (an EVM transaction's, or one
    its fee bump replaced; a Solana transaction's signature, or the agent's; a Bitcoin txid)."""
    if isinstance(record, SignedTransaction):
        return (record.intent_id, record.tx_hash, *record.replaces)
    if isinstance(record, SignedSolanaTransaction):
        return (record.intent_id, record.tx_signature, record.signature)
    return (record.intent_id, record.txid)


def looked_up(
    found: AgentRecords, history: dict[str, list[SignedTransaction]], tx_id: str, include_signed_tx: bool
) -> Found | None:
    """The transaction ``tx_id`` names in ``found`` (by its intent's id or its hash on chain), an
    EVM one with its status history from ``history`` (as `agent_transactions` fills it); else the
    refusal of the intent of that id; None when there is neither."""
    for record in _every_signed(found):
        if tx_id in _names(record):
            return _signed(record, include_signed_tx, history)
    refusals = [r for r in found.rejected if r.intent_id == tx_id]
    return Found(refused_transaction(refusals[-1]), refusals[-1], refusals[-1].decided_at) if refusals else None
