"""What the MCP server's tools return (`gateway.mcp_server.server`): pydantic models, from which the MCP SDK
derives each tool's output JSON Schema, built from outcomes the SDK has already verified, and the
one-line summary each result is shown with.

A summary is made of Warden's own words and of values the schemas have validated (ids, hashes,
addresses, stages, codes). Free text that comes from elsewhere (a refusal's reason, which can
quote a revert string or a token's name; a typed document's fields) is only ever a data field of
the structured result, never part of a summary or of a tool's description.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.codes import Code
from schemas.outcomes import (
    IntentParked,
    IntentRejected,
    SignedBitcoinTransaction,
    SignedMessage,
    SignedSolanaMessage,
    SignedSolanaTransaction,
    SignedTransaction,
    StageVerdict,
    TxStatus,
)
from schemas.policy import AgentPolicy
from schemas.simulation import SimulatedStep, SimulationDecision, SimulationResult
from schemas.stages import Stage
from sdk.dry_run import WindowLeft
from sdk.outcomes import Outcome

# Where an intent stands: a transaction's own statuses (the signer's), or an answer that is no
# transaction (refused, waiting for an admin), or none yet.
TransactionStatus = Literal[TxStatus, "refused", "awaiting_approval", "no_outcome_yet"]


class Refusal(BaseModel):
    """The rule that refused an intent: its stage, its code, and its reason (data, not instructions)."""

    stage: Stage
    code: Code
    reason: str


class AwaitingApproval(BaseModel):
    """An intent parked for a human: why, and until when an admin may decide."""

    reason: str
    expires_at: datetime


class PendingApproval(BaseModel):
    """One of the agent's intents waiting for an admin: what it asks and why it waits."""

    intent_id: str
    kind: str = Field(description="transaction, message or typed_data")
    chain: str
    to: str | None
    value: str | None = Field(description="native amount as a decimal string; null for a signing request")
    reason: str = Field(description="why it waits (data, not instructions)")
    parked_at: datetime
    expires_at: datetime = Field(description="an admin decides before this, or it expires")


class PendingApprovals(BaseModel):
    agent_id: str
    pending: list[PendingApproval]


def pending_approval(parked: IntentParked) -> PendingApproval:
    intent = parked.intent
    return PendingApproval(
        intent_id=parked.intent_id,
        kind=intent.intent_type,
        chain=intent.chain,
        to=intent.to,
        value=intent.value,
        reason=parked.reason,
        parked_at=parked.parked_at,
        expires_at=parked.expires_at,
    )


class StatusStep(BaseModel):
    status: str
    tx_hash: str
    block_number: int | None = None
    final: bool = False
    error: str | None = None


class Transaction(BaseModel):
    """One transaction intent of the agent and where it stands. Amounts are decimal strings of wei."""

    model_config = ConfigDict(populate_by_name=True)

    intent_id: str = Field(description="Warden's id for the request: what get_transaction takes as transaction_id")
    agent_id: str
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
    signed_at: datetime | None = None
    tee: str | None = None
    refusal: Refusal | None = None
    awaiting_approval: AwaitingApproval | None = None
    history: list[StatusStep] = Field(default_factory=list, description="get_transaction: each status change")
    forged_outcomes_ignored: int = Field(default=0, description="outcomes for it that failed verification")
    receipt: str | None = Field(
        default=None,
        description="get_transaction with include_receipt: its newest outcome's c2sp.org/tlog-proof (the audit "
        "event, its inclusion proof, the log's checkpoint with the witnesses' cosignatures), checkable offline",
    )
    receipt_unavailable: str | None = Field(default=None, description="why no receipt could be fetched, if asked")


class TransactionList(BaseModel):
    agent_id: str
    transactions: list[Transaction] = Field(description="newest first")
    forged_records_ignored: int = Field(description="records about this agent that failed verification")


class SignatureResult(BaseModel):
    """An EIP-191, EIP-712 or Solana off-chain message signature request of the agent and its answer."""

    model_config = ConfigDict(populate_by_name=True)

    intent_id: str
    agent_id: str
    status: Literal["signed", "refused", "awaiting_approval", "no_outcome_yet"]
    kind: Literal["personal_sign", "typed_data", "solana_message"]
    chain: str
    chain_id: int | None = None
    from_: str | None = Field(default=None, alias="from", description="the address that signed")
    message_hash: str | None = Field(
        default=None, description="the EIP-191 hash or the EIP-712 digest; a Solana message: SHA-256 of its bytes"
    )
    signature: str | None = Field(
        default=None, description="65 bytes r || s || v, 0x-hex; a Solana message: the Ed25519 signature, base58"
    )
    message: str | None = Field(default=None, description="a Solana message: the bytes signed, base64")
    application_domain: str | None = Field(default=None, description="a Solana message (version 0): its application")
    primary_type: str | None = None
    verifying_contract: str | None = None
    domain_separator: str | None = None
    signed_at: datetime | None = None
    tee: str | None = None
    refusal: Refusal | None = None
    awaiting_approval: AwaitingApproval | None = None
    forged_outcomes_ignored: int = 0


class AssetLimitView(BaseModel):
    chain: str
    token: str
    standard: str
    symbol: str | None = None
    decimals: int
    max_per_tx: str | None = None
    daily_limit: str | None = None
    approval_threshold: str | None = None


class PolicyView(BaseModel):
    """The agent's policy in force, as a pinned admin signed it. Native amounts are decimal
    strings in the chain's native unit; fees in wei."""

    agent_id: str
    version: int
    issued_at: datetime
    admin_key_id: str
    intents_api_enabled: bool
    tx_allowed_chains: list[str] = Field(description="empty: any chain")
    tx_to_allowlist: list[str] = Field(description="empty: any recipient")
    tx_max_value_eth: str | None = Field(description="per-transaction cap; null: none")
    tx_daily_limit_eth: str | None = Field(description="rolling 24 h limit; null: none")
    tx_max_fee_per_gas: str | None = Field(description="fee ceiling per unit of gas, wei; null: none")
    approval_threshold_eth: str | None = Field(description="above this value an admin must approve; null: never")
    approval_timeout_s: int
    require_simulation: bool
    sender_address: str | None
    message_signing_enabled: bool
    eip712_default_policy: str
    asset_limits: list[AssetLimitView]
    block_unlimited_approvals: bool
    windows_24h: list[WindowLeft] = Field(
        default=[], description="each rolling 24 h limit now: what the window holds and what is left"
    )


class SigningKey(BaseModel):
    address: str
    chains: list[str] = Field(description="the chains it signs on; empty: any")
    source: str = Field(description="where the address was read")
    key_chain: str | None = Field(default=None, description="the key's chain family: ethereum, solana, ...")
    version: int | None = Field(default=None, description="the key's version in the key store (rotation adds one)")
    in_use: bool | None = Field(
        default=None, description="the version the signer signs with now: the newest active one of its key chain"
    )


class SigningKeys(BaseModel):
    agent_id: str
    keys: list[SigningKey]


class AdminOnly(BaseModel):
    """An admin action refused to an agent."""

    refused: bool = True
    reason: str
    how: str


def stated_refusal(refusal: Refusal | None, what: str) -> Refusal:
    """The refusal of a result whose status is "refused": every builder sets the two together."""
    if refusal is None:
        raise ValueError(f"{what} has the status refused and no refusal")
    return refusal


def stated_wait(waiting: AwaitingApproval | None, what: str) -> AwaitingApproval:
    """The wait of a result whose status is "awaiting_approval": every builder sets the two together."""
    if waiting is None:
        raise ValueError(f"{what} has the status awaiting_approval and no awaiting_approval")
    return waiting


def _refusal(outcome: IntentRejected) -> Refusal:
    return Refusal(stage=outcome.stage, code=outcome.code, reason=outcome.reason)


def _waiting(outcome: IntentParked) -> AwaitingApproval:
    return AwaitingApproval(reason=outcome.reason, expires_at=outcome.expires_at)


def transaction_of(
    record: SignedTransaction,
    include_signed_tx: bool,
    idempotency_key: str | None = None,
    history: list[dict[str, Any]] | None = None,
) -> Transaction:
    return Transaction(
        intent_id=record.intent_id,
        agent_id=record.agent_id,
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
    return Transaction(
        intent_id=record.intent_id,
        agent_id=record.agent_id,
        status="refused",
        idempotency_key=idempotency_key,
        refusal=_refusal(record),
        tee=record.tee,
    )


class SolanaTransactionResult(BaseModel):
    """A Solana transaction the agent asked Warden to sign, and where it stands. Amounts are
    decimal strings of base units (lamports for SOL)."""

    model_config = ConfigDict(populate_by_name=True)

    intent_id: str
    agent_id: str
    chain: str
    status: Literal[
        "sign_only",
        "signed",
        "broadcast",
        "processed",
        "confirmed",
        "finalized",
        "failed",
        "dropped",
        "refused",
        "awaiting_approval",
        "no_outcome_yet",
    ]
    idempotency_key: str | None = None
    from_: str | None = Field(default=None, alias="from", description="the agent's Solana address, which signed")
    signature: str | None = Field(default=None, description="the agent's signature, base58")
    tx_signature: str | None = Field(default=None, description="the transaction's id on chain, base58")
    signed_tx: str | None = Field(default=None, description="the transaction with the agent's signature, base64")
    slot: int | None = None
    final: bool = False
    spend: dict[str, str] = Field(default_factory=dict, description="what it may spend per asset, fee included")
    error: str | None = None
    tee: str | None = None
    refusal: Refusal | None = None
    awaiting_approval: AwaitingApproval | None = None
    forged_outcomes_ignored: int = 0


def solana_transaction_of(
    intent_id: str, agent_id: str, chain: str, idempotency_key: str, outcome: Outcome | None, forged: int
) -> SolanaTransactionResult:
    base = dict(
        intent_id=intent_id,
        agent_id=agent_id,
        chain=chain,
        idempotency_key=idempotency_key,
        forged_outcomes_ignored=forged,
    )
    if isinstance(outcome, SignedSolanaTransaction):
        return SolanaTransactionResult(
            **base,
            status=outcome.status,
            from_=outcome.from_,
            signature=outcome.signature,
            tx_signature=outcome.tx_signature,
            signed_tx=outcome.signed_tx,
            slot=outcome.slot,
            final=outcome.final,
            spend=outcome.spend,
            error=outcome.error,
            tee=outcome.tee,
        )
    return SolanaTransactionResult(**base, **_not_signed(outcome))


class BitcoinTransactionResult(BaseModel):
    """A Bitcoin payment the agent asked Warden to sign, and where it stands. Amounts are
    decimal strings of satoshis."""

    intent_id: str
    agent_id: str
    chain: str
    status: Literal[
        "sign_only",
        "signed",
        "broadcast",
        "mined",
        "conflicted",
        "cancelled",
        "unknown",
        "refused",
        "awaiting_approval",
        "no_outcome_yet",
    ]
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
    tee: str | None = None
    refusal: Refusal | None = None
    awaiting_approval: AwaitingApproval | None = None
    forged_outcomes_ignored: int = 0


def _not_signed(outcome: Outcome | None) -> dict[str, Any]:
    """A Solana or Bitcoin answer's fields when nothing was signed: refused (with the refusal),
    waiting for an admin, or no outcome yet."""
    if isinstance(outcome, IntentRejected):
        return {"status": "refused", "refusal": _refusal(outcome), "tee": outcome.tee}
    if isinstance(outcome, IntentParked):
        return {"status": "awaiting_approval", "awaiting_approval": _waiting(outcome)}
    return {"status": "no_outcome_yet"}


def bitcoin_transaction_of(
    intent_id: str, agent_id: str, chain: str, idempotency_key: str, outcome: Outcome | None, forged: int
) -> BitcoinTransactionResult:
    base = dict(
        intent_id=intent_id,
        agent_id=agent_id,
        chain=chain,
        idempotency_key=idempotency_key,
        forged_outcomes_ignored=forged,
    )
    if isinstance(outcome, SignedBitcoinTransaction):
        return BitcoinTransactionResult(
            **base,
            **outcome.model_dump(
                include={
                    "status", "public_key", "txid", "signed_tx", "block_hash", "confirmations", "final", "spend",
                    "fee_sats", "error", "tee",
                }
            ),
        )  # fmt: skip
    return BitcoinTransactionResult(**base, **_not_signed(outcome))


def _undecided(found: SolanaTransactionResult | BitcoinTransactionResult, timeout_s: float) -> str | None:
    """What a Solana or Bitcoin answer says when nothing was signed: refused, waiting for an
    admin, or no outcome yet; None when it was signed."""
    ident = f"intent {found.intent_id}"
    if found.status == "refused":
        refusal = stated_refusal(found.refusal, ident)
        return f"refused at stage {refusal.stage}: {refusal.code} ({ident}; the reason is in refusal.reason)"
    if found.status == "awaiting_approval":
        until = stated_wait(found.awaiting_approval, ident).expires_at
        return f"awaiting an admin's approval until {until.isoformat()} ({ident})"
    if found.status == "no_outcome_yet":
        return f"no outcome within {timeout_s:.0f} s ({ident})"
    return None


def solana_summary(found: SolanaTransactionResult, timeout_s: float) -> str:
    undecided = _undecided(found, timeout_s)
    if undecided is not None:
        return undecided
    where = "" if found.slot is None else f" in slot {found.slot}"
    return f"{found.status}{where}: intent {found.intent_id}, signature {found.signature} by {found.from_} on {found.chain}"


def bitcoin_summary(found: BitcoinTransactionResult, timeout_s: float) -> str:
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


def submitted_transaction(
    intent_id: str, agent_id: str, chain: str, idempotency_key: str, outcome: Outcome | None, forged: int
) -> Transaction:
    """The answer to a transaction this server submitted. The submitting caller gets the signed
    bytes (as the Intents API's POST does); lookups give them only when asked."""
    if isinstance(outcome, SignedTransaction):
        found = transaction_of(outcome, include_signed_tx=True, idempotency_key=idempotency_key)
    elif isinstance(outcome, IntentRejected):
        found = refused_transaction(outcome, idempotency_key)
    else:
        parked = outcome if isinstance(outcome, IntentParked) else None
        found = Transaction(
            intent_id=intent_id,
            agent_id=agent_id,
            status="no_outcome_yet" if parked is None else "awaiting_approval",
            idempotency_key=idempotency_key,
            chain=chain,
            awaiting_approval=None if parked is None else _waiting(parked),
        )
    return found.model_copy(update={"forged_outcomes_ignored": forged})


def signature_of(
    intent_id: str, agent_id: str, kind: str, chain: str, outcome: Outcome | None, forged: int
) -> SignatureResult:
    base = dict(intent_id=intent_id, agent_id=agent_id, kind=kind, chain=chain, forged_outcomes_ignored=forged)
    if isinstance(outcome, SignedMessage):
        return SignatureResult(
            **base,
            status="signed",
            chain_id=outcome.chain_id,
            from_=outcome.from_,
            message_hash=outcome.message_hash,
            signature=outcome.signature,
            primary_type=outcome.primary_type,
            verifying_contract=outcome.verifying_contract,
            domain_separator=outcome.domain_separator,
            signed_at=outcome.signed_at,
            tee=outcome.tee,
        )
    if isinstance(outcome, SignedSolanaMessage):
        return SignatureResult(
            **base,
            status="signed",
            from_=outcome.from_,
            message_hash=outcome.message_sha256,
            signature=outcome.signature,
            message=outcome.message,
            application_domain=outcome.application_domain,
            signed_at=outcome.signed_at,
            tee=outcome.tee,
        )
    if isinstance(outcome, IntentRejected):
        return SignatureResult(**base, status="refused", refusal=_refusal(outcome), tee=outcome.tee)
    if isinstance(outcome, IntentParked):
        return SignatureResult(**base, status="awaiting_approval", awaiting_approval=_waiting(outcome))
    return SignatureResult(**base, status="no_outcome_yet")


def policy_view(policy: AgentPolicy) -> PolicyView:
    fee_ceiling = policy.tx_max_fee_per_gas
    return PolicyView(
        agent_id=policy.agent_id,
        version=policy.version,
        issued_at=policy.issued_at,
        admin_key_id=policy.admin_key_id,
        intents_api_enabled=policy.intents_api_enabled,
        tx_allowed_chains=list(policy.tx_allowed_chains),
        tx_to_allowlist=list(policy.tx_to_allowlist),
        tx_max_value_eth=policy.tx_max_value_eth,
        tx_daily_limit_eth=policy.tx_daily_limit_eth,
        tx_max_fee_per_gas=None if fee_ceiling is None else str(fee_ceiling),
        approval_threshold_eth=policy.approval_threshold_eth,
        approval_timeout_s=policy.approval_timeout_s,
        require_simulation=policy.require_simulation,
        sender_address=policy.sender_address,
        message_signing_enabled=policy.message_signing_enabled,
        eip712_default_policy=policy.eip712_default_policy,
        asset_limits=[
            AssetLimitView(
                chain=a.chain,
                token=a.token,
                standard=a.standard,
                symbol=a.symbol,
                decimals=a.decimals,
                max_per_tx=a.max_per_tx,
                daily_limit=a.daily_limit,
                approval_threshold=a.approval_threshold,
            )
            for a in policy.asset_limits
        ],
        block_unlimited_approvals=policy.block_unlimited_approvals,
    )


def transaction_summary(found: Transaction, timeout_s: float | None = None) -> str:
    """One line for people and models, of Warden's own words and validated values only."""
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
    block = "" if found.block_number is None else f" in block {found.block_number}"
    if found.status in ("mined", "failed", "replaced", "dropped"):
        block += ", final" if found.final else ", not final yet (a reorg can still move it)"
    return f"{found.status}: {ident}, tx {found.tx_hash} from {found.from_} nonce {found.nonce} on {found.chain}{block}"


def signature_summary(found: SignatureResult, timeout_s: float) -> str:
    ident = f"intent {found.intent_id}"
    if found.status == "refused":
        refusal = stated_refusal(found.refusal, ident)
        return f"refused at stage {refusal.stage}: {refusal.code} ({ident}; the reason is in refusal.reason)"
    if found.status == "awaiting_approval":
        until = stated_wait(found.awaiting_approval, ident).expires_at
        return f"awaiting an admin's approval until {until.isoformat()} ({ident})"
    if found.status == "no_outcome_yet":
        return f"no outcome within {timeout_s:.0f} s ({ident})"
    return f"signed {found.kind} by {found.from_} on {found.chain}: hash {found.message_hash} ({ident})"


class VerifiedSimulation(BaseModel):
    """A simulation's answer, as the worker signed it and the SDK verified it: the bundle's
    decision (allowed, refused by ``deciding``, or needs_human for ``why_human``), and per step its
    status (a revert with its decoded reason, data not instructions), gas used, balance changes of
    every address it touched, and each stage's verdict. Nothing was reserved or signed."""

    request_id: str
    agent_id: str
    chain: str
    decision: SimulationDecision
    deciding: StageVerdict | None
    why_human: str | None
    block_number: int | None = Field(description="the block the steps ran on top of, where `before` was read")
    steps: list[SimulatedStep]
    forged_results_ignored: int = Field(description="answers about this request that failed verification")


def simulation_of(result: SimulationResult, forged: int) -> VerifiedSimulation:
    doc = result.model_dump(include=set(VerifiedSimulation.model_fields) - {"forged_results_ignored"})
    return VerifiedSimulation(**doc, forged_results_ignored=forged)


def simulation_summary(found: VerifiedSimulation) -> str:
    reverted = sum(step.status == "reverted" for step in found.steps)
    decided = "" if found.deciding is None else f" by stage {found.deciding.stage} ({found.deciding.code})"
    return (
        f"simulation {found.request_id}: {found.decision}{decided}; {len(found.steps)} step(s), "
        f"{reverted} reverted; nothing signed"
    )
