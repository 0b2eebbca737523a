"""The guardrail stages' names, as verdicts, refusals and the ledger carry them. Which stages an
intent passes, in which order, and what each does, is one table: `rules.stage_table`."""

from __future__ import annotations

from enum import StrEnum


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
    BITCOIN = "bitcoin"
    APPROVAL = "approval"
    SIGNING = "signing"
