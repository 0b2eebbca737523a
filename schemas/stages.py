"""The guardrail stages an intent passes, named and in order: each kind of signature has its own."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from schemas.intent import TransactionIntent


class Stage(StrEnum):
    """A guardrail stage's name, as verdicts, refusals and the ledger carry it."""

    def __repr__(self) -> str:
        # Reasons name a stage with !r, for people: 'fee', as the wire spells it, not <Stage.FEE: 'fee'>.
        return repr(self.value)

    INTAKE = "intake"
    CHAIN = "chain"
    ALLOWLIST = "allowlist"
    DELEGATION = "delegation"
    ASSETS = "assets"
    SIMULATION = "simulation"
    FEE = "fee"
    VALUE_CAP = "value_cap"
    DAILY_LIMIT = "daily_limit"
    USD_LIMIT = "usd_limit"
    MESSAGE = "message"
    TYPED_DATA = "typed_data"
    SOLANA = "solana"
    SOLANA_MESSAGE = "solana_message"
    APPROVAL = "approval"
    SIGNING = "signing"


# "fee" comes before the cap and the limit: they count spend (value + worst-case fee), which it
# prices. Simulation comes before "fee", so a call that reverts is told as a revert, not as a
# gas estimate that failed.
# "assets" judges what the calldata does (token transfers and approvals, other contract calls)
# before anything runs it, and simulation then checks the chain moves no more than that.
GUARDRAIL_STAGES: tuple[Stage, ...] = (
    Stage.CHAIN,
    Stage.ALLOWLIST,
    Stage.ASSETS,
    Stage.SIMULATION,
    Stage.FEE,
    Stage.VALUE_CAP,
    Stage.DAILY_LIMIT,
    Stage.USD_LIMIT,
)
# A set-code transaction (type 4) also hands the account to its delegates: checked before it is priced.
SET_CODE_STAGES: tuple[Stage, ...] = (
    Stage.CHAIN,
    Stage.ALLOWLIST,
    Stage.DELEGATION,
    Stage.ASSETS,
    Stage.SIMULATION,
    Stage.FEE,
    Stage.VALUE_CAP,
    Stage.DAILY_LIMIT,
    Stage.USD_LIMIT,
)
# "usd_limit" prices everything an intent moves (native spend, fee included, and each asset) by the
# policy's price feeds, so it comes after every stage that counts what moves.
# Messages move no native value by themselves, so they have no fee or spend stages; what they may
# authorize is their stage's business (an EIP-712 Permit is refused unless its contract is allowlisted).
MESSAGE_STAGES: tuple[Stage, ...] = (Stage.CHAIN, Stage.MESSAGE)
# Typed data's "assets" stage counts what a Permit authorizes against the token's limits.
TYPED_DATA_STAGES: tuple[Stage, ...] = (Stage.CHAIN, Stage.TYPED_DATA, Stage.ASSETS, Stage.USD_LIMIT)
# A Solana transaction: its instructions read and judged, then the node's simulation of it, in one
# stage (`rules.solana`): its cap, limits and fee are counted from the instructions, per asset.
SOLANA_STAGES: tuple[Stage, ...] = (Stage.CHAIN, Stage.SOLANA)
# A Solana off-chain message: read, and judged by the policy alone (it moves nothing).
SOLANA_MESSAGE_STAGES: tuple[Stage, ...] = (Stage.CHAIN, Stage.SOLANA_MESSAGE)
ALL_GUARDRAIL_STAGES: tuple[Stage, ...] = (
    Stage.CHAIN,
    Stage.ALLOWLIST,
    Stage.DELEGATION,
    Stage.ASSETS,
    Stage.SIMULATION,
    Stage.FEE,
    Stage.VALUE_CAP,
    Stage.DAILY_LIMIT,
    Stage.USD_LIMIT,
    Stage.MESSAGE,
    Stage.TYPED_DATA,
    Stage.SOLANA,
    Stage.SOLANA_MESSAGE,
)


def guardrail_stages(intent: "TransactionIntent") -> tuple[Stage, ...]:
    """The stages an intent passes, in order: each kind of signature has its own guardrails."""
    if intent.intent_type == "personal_sign":
        return MESSAGE_STAGES
    if intent.intent_type == "typed_data":
        return TYPED_DATA_STAGES
    if intent.intent_type == "solana_transaction":
        return SOLANA_STAGES
    if intent.intent_type == "solana_message":
        return SOLANA_MESSAGE_STAGES
    return SET_CODE_STAGES if intent.tx_type == 4 else GUARDRAIL_STAGES
