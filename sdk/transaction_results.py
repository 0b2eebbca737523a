"""What Warden says about one of the agent's transactions, in its family's shape: an EVM transaction
(`Transaction`), a Solana transaction (`SolanaTransactionResult`) or a Bitcoin payment
(`BitcoinTransactionResult`), each named by ``family``, built from outcomes the SDK has already
verified, and the one-line summary each is shown with. The MCP server's transaction tools and
lookups answer with them (the MCP SDK derives their output JSON Schemas from these models), and the
HTTP API's transaction answers extend them.

As in `sdk.mcp_results`, a summary is made of Warden's own words and of values the schemas have
validated (ids, hashes, addresses, stages, codes); free text from elsewhere (a refusal's reason, a
node's error) is only ever a data field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel

from schemas.outcomes import (
    BitcoinStatus,
    IntentParked,
    IntentRejected,
    SignedBitcoinTransaction,
    SignedSolanaTransaction,
    SignedTransaction,
    SolanaStatus,
    TxStatus,
)
from sdk.mcp_results import AwaitingApproval, Refusal, refusal_of, stated_refusal, stated_wait, wait_of
from sdk.outcomes import Outcome

# Where an intent stands: a transaction's own statuses (the signer's, per family), or an answer that
# is no transaction (refused, waiting for an admin), or none yet.
TransactionStatus = Literal[TxStatus, "refused", "awaiting_approval", "no_outcome_yet"]
SolanaResultStatus = Literal[SolanaStatus, "refused", "awaiting_approval", "no_outcome_yet"]
BitcoinResultStatus = Literal[BitcoinStatus, "refused", "awaiting_approval", "no_outcome_yet"]
AnyStatus = Literal[TransactionStatus, SolanaResultStatus, BitcoinResultStatus]

SignedAt = Annotated[datetime | None, Field(description="when the signer signed it")]
ForgedIgnored = Annotated[int, Field(description="outcomes for it that failed verification")]
Receipt = Annotated[
    str | None,
    Field(
        description="get_transaction with include_receipt: its newest outcome's c2sp.org/tlog-proof (the audit "
        "event, its inclusion proof, the log's checkpoint with the witnesses' cosignatures), checkable offline"
    ),
]
ReceiptUnavailable = Annotated[str | None, Field(description="why no receipt could be fetched, if asked")]


class StatusStep(BaseModel):
    status: str
    tx_hash: str
    block_number: int | None = None
    final: bool = False
    error: str | None = None


class Transaction(BaseModel):
    """One transaction intent of the agent and where it stands: an EVM transaction, or a refusal of
    any family (whose record names no network). Amounts are decimal strings of wei."""

    model_config = ConfigDict(populate_by_name=True)

    intent_id: str = Field(description="Warden's id for the request: what get_transaction takes as transaction_id")
    agent_id: str
    family: Literal["evm", None] = Field(
        default=None, description="evm; none on a refusal, whose record names no network"
    )
    status: TransactionStatus
    idempotency_key: str | None = Field(default=None, description="known to the call that submitted it")
    chain: str | None = None
    chain_id: int | None = None
    tx_type: int | None = None
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    value_wei: str | None = None
    nonce: int | None = None
    tx_hash: str | None = None
    signed_tx: str | None = Field(default=None, description="the raw signed transaction, only when asked for")
    block_number: int | None = None
    final: bool = Field(
        default=False,
        description="mined/failed/replaced/dropped at a block the chain finalized: a reorg can no longer change it",
    )
    gas_used: int | None = None
    fee_wei: str | None = None
    max_spend_wei: str | None = None
    error: str | None = Field(default=None, description="why it failed, is stuck, was replaced or dropped")
    replaces: list[str] = Field(default_factory=list, description="hashes of the transactions a fee bump replaced")
    replaced_by: str | None = None
    signed_at: SignedAt = None
    tee: str | None = None
    refusal: Refusal | None = None
    awaiting_approval: AwaitingApproval | None = None
    history: list[StatusStep] = Field(default_factory=list, description="get_transaction: each status change")
    forged_outcomes_ignored: ForgedIgnored = 0
    receipt: Receipt = None
    receipt_unavailable: ReceiptUnavailable = None


class SolanaTransactionResult(BaseModel):
    """A Solana transaction the agent asked Warden to sign, and where it stands. Amounts are
    decimal strings of base units (lamports for SOL)."""

    model_config = ConfigDict(populate_by_name=True)

    intent_id: str
    agent_id: str
    family: Literal["solana"] = "solana"
    chain: str
    status: SolanaResultStatus
    idempotency_key: str | None = None
    from_: str | None = Field(default=None, alias="from", description="the agent's Solana address, which signed")
    signature: str | None = Field(default=None, description="the agent's signature, base58")
    tx_signature: str | None = Field(default=None, description="the transaction's id on chain, base58")
    signed_tx: str | None = Field(default=None, description="the transaction with the agent's signature, base64")
    slot: int | None = None
    final: bool = False
    spend: dict[str, str] = Field(default_factory=dict, description="what it may spend per asset, fee included")
    error: str | None = None
    signed_at: SignedAt = None
    tee: str | None = None
    refusal: Refusal | None = None
    awaiting_approval: AwaitingApproval | None = None
    forged_outcomes_ignored: ForgedIgnored = 0
    receipt: Receipt = None
    receipt_unavailable: ReceiptUnavailable = None


class BitcoinTransactionResult(BaseModel):
    """A Bitcoin payment the agent asked Warden to sign, and where it stands. Amounts are
    decimal strings of satoshis."""

    intent_id: str
    agent_id: str
    family: Literal["bitcoin"] = "bitcoin"
    chain: str
    status: BitcoinResultStatus
    idempotency_key: str | None = None
    public_key: str | None = Field(default=None, description="the agent's Bitcoin public key, which signed")
    txid: str | None = Field(default=None, description="the transaction's id, hex")
    signed_tx: str | None = Field(default=None, description="the signed network transaction, hex")
    block_hash: str | None = None
    confirmations: int = 0
    final: bool = False
    spend: dict[str, str] = Field(default_factory=dict, description="what it spends (BTC), satoshis, fee included")
    fee_sats: int | None = None
    error: str | None = None
    signed_at: SignedAt = None
    tee: str | None = None
    refusal: Refusal | None = None
    awaiting_approval: AwaitingApproval | None = None
    forged_outcomes_ignored: ForgedIgnored = 0
    receipt: Receipt = None
    receipt_unavailable: ReceiptUnavailable = None


FamilyResult = TypeVar("FamilyResult", "SolanaTransactionResult", "BitcoinTransactionResult")
# One of the agent's transactions, of any family: Python's view, and the wire's (told apart by ``family``).
AnyTransaction = Transaction | SolanaTransactionResult | BitcoinTransactionResult
FamilyTransaction = Annotated[AnyTransaction, Field(discriminator="family")]


class OneTransaction(RootModel[FamilyTransaction]):
    """One of the agent's transactions in its family's shape, told apart by ``family``: ``evm`` (or
    null: a refusal, whose record names no network), ``solana`` or ``bitcoin``."""

    # An MCP tool's output schema is an object; each shape of the union is one.
    model_config = ConfigDict(json_schema_extra={"type": "object"})


class TransactionList(BaseModel):
    agent_id: str
    transactions: list[FamilyTransaction] = Field(
        description="newest first: every family's transactions, each in its family's shape named by `family`, and "
        "the refusals"
    )
    forged_records_ignored: int = Field(description="records about this agent that failed verification")


def transaction_of(
    record: SignedTransaction,
    include_signed_tx: bool,
    idempotency_key: str | None = None,
    history: list[dict[str, Any]] | None = None,
) -> Transaction:
    return Transaction(
        intent_id=record.intent_id,
        agent_id=record.agent_id,
        family="evm",
        status=record.status,
        idempotency_key=idempotency_key,
        chain=record.chain,
        chain_id=record.chain_id,
        tx_type=record.tx_type,
        from_=record.from_,
        to=record.to,
        value_wei=str(record.value_wei),
        nonce=record.nonce,
        tx_hash=record.tx_hash,
        signed_tx=record.signed_tx if include_signed_tx else None,
        block_number=record.block_number,
        final=record.final,
        gas_used=record.gas_used,
        fee_wei=None if record.fee_wei is None else str(record.fee_wei),
        max_spend_wei=str(record.max_spend_wei),
        error=record.error,
        replaces=list(record.replaces),
        replaced_by=record.replaced_by,
        signed_at=record.signed_at,
        tee=record.tee,
        history=[StatusStep(**step) for step in history or ()],
    )


def refused_transaction(record: IntentRejected, idempotency_key: str | None = None) -> Transaction:
    """A refusal: its record names no network, so the result names no family."""
    return Transaction(
        intent_id=record.intent_id,
        agent_id=record.agent_id,
        status="refused",
        idempotency_key=idempotency_key,
        refusal=refusal_of(record),
        tee=record.tee,
    )


def submitted_transaction(
    intent_id: str, agent_id: str, chain: str, idempotency_key: str | None, outcome: Outcome | None, forged: int
) -> Transaction:
    """The answer to an EVM transaction this server submitted, refused or not (the caller knows
    its family). The submitting caller gets the signed bytes (as the Intents API's POST does);
    lookups give them only when asked."""
    if isinstance(outcome, SignedTransaction):
        found = transaction_of(outcome, include_signed_tx=True, idempotency_key=idempotency_key)
    elif isinstance(outcome, IntentRejected):
        found = refused_transaction(outcome, idempotency_key).model_copy(update={"family": "evm"})
    else:
        parked = outcome if isinstance(outcome, IntentParked) else None
        found = Transaction(
            intent_id=intent_id,
            agent_id=agent_id,
            family="evm",
            status="no_outcome_yet" if parked is None else "awaiting_approval",
            idempotency_key=idempotency_key,
            chain=chain,
            awaiting_approval=None if parked is None else wait_of(parked),
        )
    return found.model_copy(update={"forged_outcomes_ignored": forged})


def _not_signed(outcome: Outcome | None) -> dict[str, Any]:
    """A Solana or Bitcoin answer's fields when nothing was signed: refused (with the refusal),
    waiting for an admin, or no outcome yet."""
    if isinstance(outcome, IntentRejected):
        return {"status": "refused", "refusal": refusal_of(outcome), "tee": outcome.tee}
    if isinstance(outcome, IntentParked):
        return {"status": "awaiting_approval", "awaiting_approval": wait_of(outcome)}
    return {"status": "no_outcome_yet"}


def _family_result(
    shape: type[FamilyResult],
    intent_id: str,
    agent_id: str,
    chain: str,
    idempotency_key: str | None,
    outcome: Outcome | None,
    forged: int,
) -> FamilyResult:
    """A Solana or Bitcoin answer: from its signed record, every field the record and ``shape``
    share; else refused, waiting for an admin, or no outcome yet."""
    signed = SignedSolanaTransaction if shape is SolanaTransactionResult else SignedBitcoinTransaction
    base: dict[str, Any] = dict(
        intent_id=intent_id,
        agent_id=agent_id,
        chain=chain,
        idempotency_key=idempotency_key,
        forged_outcomes_ignored=forged,
    )
    if isinstance(outcome, signed):
        shared = (set(shape.model_fields) & set(signed.model_fields)) - set(base)
        return shape(**base, **outcome.model_dump(include=shared))
    return shape(**base, **_not_signed(outcome))


def solana_transaction_of(
    intent_id: str, agent_id: str, chain: str, idempotency_key: str | None, outcome: Outcome | None, forged: int
) -> SolanaTransactionResult:
    return _family_result(SolanaTransactionResult, intent_id, agent_id, chain, idempotency_key, outcome, forged)


def bitcoin_transaction_of(
    intent_id: str, agent_id: str, chain: str, idempotency_key: str | None, outcome: Outcome | None, forged: int
) -> BitcoinTransactionResult:
    return _family_result(BitcoinTransactionResult, intent_id, agent_id, chain, idempotency_key, outcome, forged)


def _undecided(found: AnyTransaction, timeout_s: float | None) -> str | None:
    """What an answer says when nothing was signed: refused, waiting for an admin, or no outcome
    yet (within ``timeout_s``, when a call waited); None when it was signed."""
    ident = f"intent {found.intent_id}"
    if found.status == "refused":
        refusal = stated_refusal(found.refusal, ident)
        return f"refused at stage {refusal.stage}: {refusal.code} ({ident}; the reason is in refusal.reason)"
    if found.status == "awaiting_approval":
        until = stated_wait(found.awaiting_approval, ident).expires_at
        return (
            f"awaiting an admin's approval until {until.isoformat()} ({ident}); look it up later with get_transaction"
        )
    if found.status == "no_outcome_yet":
        waited = "" if timeout_s is None else f" within {timeout_s:.0f} s"
        return (
            f"no outcome{waited} ({ident}): look it up later with get_transaction(transaction_id={found.intent_id!r})"
        )
    return None


def transaction_summary(found: Transaction, timeout_s: float | None = None) -> str:
    """One line for people and models, of Warden's own words and validated values only."""
    undecided = _undecided(found, timeout_s)
    if undecided is not None:
        return undecided
    block = "" if found.block_number is None else f" in block {found.block_number}"
    if found.status in ("mined", "failed", "replaced", "dropped"):
        block += ", final" if found.final else ", not final yet (a reorg can still move it)"
    return (
        f"{found.status}: intent {found.intent_id}, tx {found.tx_hash} from {found.from_} nonce {found.nonce} "
        f"on {found.chain}{block}"
    )


def solana_summary(found: SolanaTransactionResult, timeout_s: float | None = None) -> str:
    undecided = _undecided(found, timeout_s)
    if undecided is not None:
        return undecided
    where = "" if found.slot is None else f" in slot {found.slot}"
    return f"{found.status}{where}: intent {found.intent_id}, signature {found.signature} by {found.from_} on {found.chain}"


def bitcoin_summary(found: BitcoinTransactionResult, timeout_s: float | None = None) -> str:
    undecided = _undecided(found, timeout_s)
    if undecided is not None:
        return undecided
    where = (
        ""
        if found.block_hash is None
        else f" in block {found.block_hash} ({'final' if found.final else 'not final yet'})"
    )
    return (
        f"{found.status}{where}: intent {found.intent_id}, txid {found.txid} on {found.chain}, spends "
        f"{found.spend.get('BTC', '0')} satoshis, fee included ({found.fee_sats})"
    )


def summary_of(found: AnyTransaction) -> str:
    """The one line of a transaction of any family, as a lookup shows it."""
    if isinstance(found, SolanaTransactionResult):
        return solana_summary(found)
    if isinstance(found, BitcoinTransactionResult):
        return bitcoin_summary(found)
    return transaction_summary(found)
