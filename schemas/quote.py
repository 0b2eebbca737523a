"""A fee quote: the gas and fees a transaction for an intent would be signed with.

The fee stage makes it (`rules.fees.quote`), the cap and the rolling limit count it, the worker
reserves what it says at approval, and in the split topology it travels to the next stage typed
in the stage envelope (`StageEnvelope.quote`), never parsed back from a verdict's audit facts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from schemas.fields import Wei, format_native_amount

if TYPE_CHECKING:
    from schemas.intent import TransactionIntent


class FeeQuote(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    gas_limit: int
    fee_per_gas: Wei  # max_fee_per_gas (types 2-4) or gas_price (types 0/1): the most one unit of gas costs
    priority_fee_per_gas: Wei | None = None  # types 2-4 only
    base_fee_per_gas: Wei | None = None  # the node's latest base fee, when it was asked (for explanations)
    blob_fee_wei: Wei = 0  # type 3: blob count × GAS_PER_BLOB × max_fee_per_blob_gas

    @property
    def max_fee_wei(self) -> int:
        return self.gas_limit * self.fee_per_gas + self.blob_fee_wei

    def spend_wei(self, intent: TransactionIntent) -> int:
        return intent.value_wei + self.max_fee_wei

    def fees(self, tx_type: int) -> dict[str, int]:
        if tx_type in (0, 1):
            return {"gas_price": self.fee_per_gas}
        return {"max_fee_per_gas": self.fee_per_gas, "max_priority_fee_per_gas": self.priority_fee_per_gas or 0}

    def facts(self, intent: TransactionIntent) -> dict[str, str | int | None]:
        """What the fee stage's verdict tells an auditor (text; nothing reads it back)."""
        return {
            "gas_limit": self.gas_limit,
            "fee_per_gas_wei": str(self.fee_per_gas),
            "priority_fee_per_gas_wei": None if self.priority_fee_per_gas is None else str(self.priority_fee_per_gas),
            "base_fee_per_gas_wei": None if self.base_fee_per_gas is None else str(self.base_fee_per_gas),
            "blob_fee_wei": str(self.blob_fee_wei),
            "max_fee_wei": str(self.max_fee_wei),
            "value_wei": str(intent.value_wei),
            "spend_wei": str(self.spend_wei(intent)),
        }

    def describe(self, intent: TransactionIntent) -> str:
        blobs = f" + blob gas {format_native_amount(self.blob_fee_wei)}" if self.blob_fee_wei else ""
        return (
            f"value {intent.value} + worst-case fee {format_native_amount(self.max_fee_wei)} "
            f"(gas {self.gas_limit} x {self.fee_per_gas} wei{blobs})"
        )
