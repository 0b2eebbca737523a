"""What the MCP server's tools return (`gateway.mcp_server.server`): pydantic models, from which the MCP SDK
derives each tool's output JSON Schema, built from outcomes the SDK has already verified, and the
one-line summary each result is shown with. A transaction of any family is `sdk.transaction_results`'.

A summary is made of Warden's own words and of values the schemas have validated (ids, hashes,
addresses, stages, codes). Free text that comes from elsewhere (a refusal's reason, which can
quote a revert string or a token's name; a typed document's fields) is only ever a data field of
the structured result, never part of a summary or of a tool's description.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.codes import Code
from schemas.outcomes import (
    IntentParked,
    IntentRejected,
    SignedMessage,
    SignedSolanaMessage,
    StageVerdict,
)
from schemas.policy import AgentPolicy
from schemas.simulation import SimulatedStep, SimulationDecision, SimulationResult
from schemas.stages import Stage
from sdk.dry_run import WindowLeft
from sdk.outcomes import Outcome


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


def refusal_of(outcome: IntentRejected) -> Refusal:
    """The refusal a rejection states."""
    return Refusal(stage=outcome.stage, code=outcome.code, reason=outcome.reason)


def wait_of(outcome: IntentParked) -> AwaitingApproval:
    """Why a parked intent waits, and until when."""
    return AwaitingApproval(reason=outcome.reason, expires_at=outcome.expires_at)


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
        return SignatureResult(**base, status="refused", refusal=refusal_of(outcome), tee=outcome.tee)
    if isinstance(outcome, IntentParked):
        return SignatureResult(**base, status="awaiting_approval", awaiting_approval=wait_of(outcome))
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
