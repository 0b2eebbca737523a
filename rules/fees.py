"""What an intent can cost: its spend is its value plus the worst-case fee.

The fee a transaction pays is at most ``gas_limit × max_fee_per_gas`` (types 2 to 4) or
``gas_limit × gas_price`` (types 0/1), plus, for a blob transaction (type 3),
``blob count × 131072 × max_fee_per_blob_gas``, so that is what the per-transaction cap
and the rolling 24 h limit count, and what is reserved at approval. Fees the
intent does not name come from the node; a node's suggestion is not trusted to
be sane (anyone who fills blocks moves it), so the policy's fee ceiling
(``tx_max_fee_per_gas``) bounds it and the spend limits bound the rest.

Written once: the streams worker prices an intent to explain a rejection early,
and the signer prices it again, with its own node, and signs exactly the gas
and fees it checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from evm.constants import GAS_PER_BLOB, PER_AUTHORIZATION_GAS
from rules.guardrails import call_object, verdict
from runtime.rpc import Node
from schemas.fields import format_native_amount
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy

GAS_HEADROOM_NUM, GAS_HEADROOM_DEN = 6, 5  # 20 % over the estimate: state can move before inclusion


@dataclass(frozen=True)
class FeeQuote:
    """The gas and fees a transaction for an intent would be signed with."""

    gas_limit: int
    fee_per_gas: int  # max_fee_per_gas (type 2) or gas_price (types 0/1): the most one unit of gas costs
    priority_fee_per_gas: int | None = None  # type 2 only
    base_fee_per_gas: int | None = None  # the node's latest base fee, when it was asked (for explanations)
    blob_fee_wei: int = 0  # type 3: blob count × GAS_PER_BLOB × max_fee_per_blob_gas

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

    @classmethod
    def from_facts(cls, facts: dict) -> "FeeQuote":
        """The quote a fee stage recorded in its verdict (split topology: the next stage reads it)."""

        def wei(name: str) -> int | None:
            return None if facts.get(name) is None else int(facts[name])

        return cls(
            int(facts["gas_limit"]),
            int(facts["fee_per_gas_wei"]),
            wei("priority_fee_per_gas_wei"),
            wei("base_fee_per_gas_wei"),
            int(facts.get("blob_fee_wei") or 0),
        )

    def describe(self, intent: TransactionIntent) -> str:
        blobs = f" + blob gas {format_native_amount(self.blob_fee_wei)}" if self.blob_fee_wei else ""
        return (
            f"value {intent.value} + worst-case fee {format_native_amount(self.max_fee_wei)} "
            f"(gas {self.gas_limit} x {self.fee_per_gas} wei{blobs})"
        )


async def quote(intent: TransactionIntent, sender: str | None, node: Node, ceiling: int | None) -> FeeQuote:
    """Price an intent: its own gas and fees where it names them, the node's suggestion where not.

    A type-2 max fee the node suggests is 2 × base fee + tip (room for the base fee to double);
    with a ceiling it is lowered to the ceiling when base fee + tip still fits under it, so the
    transaction can be included now without ever paying more than the ceiling. Raises RpcError
    / RpcUnavailable when the node cannot answer."""
    gas = intent.gas_limit
    if gas is None:
        estimate = int(await node.call("eth_estimateGas", call_object(intent, sender), "pending"), 16)
        # The call object carries no authorization list: each authorization's intrinsic gas is added.
        estimate += PER_AUTHORIZATION_GAS * len(intent.authorization_list)
        gas = estimate * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN
    blob_fee = len(intent.blob_versioned_hashes) * GAS_PER_BLOB * (intent.max_fee_per_blob_gas or 0)
    if intent.tx_type in (0, 1):
        price = intent.gas_price if intent.gas_price is not None else int(await node.call("eth_gasPrice"), 16)
        return FeeQuote(gas, price)
    priority = intent.max_priority_fee_per_gas
    if priority is None:
        priority = int(await node.call("eth_maxPriorityFeePerGas"), 16)
    base = None
    max_fee = intent.max_fee_per_gas
    if max_fee is None:
        block = await node.call("eth_getBlockByNumber", "latest", False)
        base = int(block["baseFeePerGas"], 16)
        max_fee = 2 * base + priority
        if ceiling is not None and base + priority <= ceiling:
            max_fee = min(max_fee, ceiling)
    return FeeQuote(gas, max_fee, min(priority, max_fee), base, blob_fee)


def check_fee(intent: TransactionIntent, policy: AgentPolicy, fee: FeeQuote) -> StageVerdict:
    ceiling = policy.tx_max_fee_per_gas
    facts = dict(fee.facts(intent), ceiling_wei=None if ceiling is None else str(ceiling))
    if ceiling is None or fee.fee_per_gas <= ceiling:
        return verdict(
            intent,
            "fee",
            True,
            "FEE_WITHIN_CEILING",
            f"fee {fee.fee_per_gas} wei per gas" + ("" if ceiling is None else f" <= ceiling {ceiling}"),
            **facts,
        )
    named_by_intent = intent.gas_price is not None or intent.max_fee_per_gas is not None
    named = "the intent's" if named_by_intent else "the node's suggested"
    base = "" if fee.base_fee_per_gas is None else f" (base fee now {fee.base_fee_per_gas} wei)"
    return verdict(
        intent,
        "fee",
        False,
        "FEE_OVER_CEILING",
        f"{named} fee of {fee.fee_per_gas} wei per gas{base} exceeds this agent's ceiling of {ceiling} "
        f"wei per gas (tx_max_fee_per_gas); not signed and not paid. Retry when fees fall, or ask an "
        "admin to raise the ceiling",
        **facts,
    )
