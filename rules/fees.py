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

from evm.constants import GAS_PER_BLOB, PER_AUTHORIZATION_GAS
from rules.simulation import call_object, decode_revert
from rules.verdicts import verdict
from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas.amounts import UINT256, AmountOutOfRange, first_out_of_range
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from schemas.stages import Stage

GAS_HEADROOM_NUM, GAS_HEADROOM_DEN = 6, 5  # 20 % over the estimate: state can move before inclusion


async def quote(intent: TransactionIntent, sender: str | None, node: Node, ceiling: int | None) -> FeeQuote:
    """Price an intent: its own gas and fees where it names them, the node's suggestion where not.

    A type-2 max fee the node suggests is 2 × base fee + tip (room for the base fee to double);
    with a ceiling it is lowered to the ceiling when base fee + tip still fits under it, so the
    transaction can be included now without ever paying more than the ceiling. Raises RpcError
    / RpcUnavailable when the node cannot answer, `AmountOutOfRange` for a fee past uint256."""
    gas = intent.gas_limit
    if gas is None:
        estimate = int(await node.call("eth_estimateGas", call_object(intent, sender), "pending"), 16)
        # The call object carries no authorization list: each authorization's intrinsic gas is added.
        estimate += PER_AUTHORIZATION_GAS * len(intent.authorization_list)
        gas = estimate * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN
    blob_fee = len(intent.blob_versioned_hashes) * GAS_PER_BLOB * (intent.max_fee_per_blob_gas or 0)
    if intent.tx_type in (0, 1):
        price = intent.gas_price if intent.gas_price is not None else int(await node.call("eth_gasPrice"), 16)
        return _priced(gas, price)
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
    return _priced(gas, max_fee, min(priority, max_fee), base, blob_fee)


def _priced(
    gas: int, fee_per_gas: int, priority: int | None = None, base: int | None = None, blob_fee: int = 0
) -> FeeQuote:
    """The quote of these numbers, each fee a uint256 as a transaction's fields and cost are, or
    `AmountOutOfRange`: a node's suggestion is anyone's to move, and an intent's blob fee cap times
    its blobs' gas can pass what any account holds."""
    named = {"the fee per gas": fee_per_gas, "the priority fee per gas": priority, "the base fee per gas": base}
    fees = [(f"{what} in wei", n) for what, n in named.items() if n is not None]
    found = first_out_of_range(
        UINT256, [*fees, ("the blob gas fee in wei (blobs x 131072 x max_fee_per_blob_gas)", blob_fee)]
    )
    if found is not None:
        raise AmountOutOfRange(found)
    return FeeQuote(
        gas_limit=gas,
        fee_per_gas=fee_per_gas,
        priority_fee_per_gas=priority,
        base_fee_per_gas=base,
        blob_fee_wei=blob_fee,
    )


def named_quote(intent: TransactionIntent) -> FeeQuote | None:
    """The quote of an intent that names its gas limit and every fee itself: `quote` without a
    node. None when `quote` would ask the node for any of them."""
    if intent.gas_limit is None:
        return None
    blob_fee = len(intent.blob_versioned_hashes) * GAS_PER_BLOB * (intent.max_fee_per_blob_gas or 0)
    if intent.tx_type in (0, 1):
        return None if intent.gas_price is None else _priced(intent.gas_limit, intent.gas_price)
    if intent.max_fee_per_gas is None or intent.max_priority_fee_per_gas is None:
        return None
    return _priced(
        intent.gas_limit,
        intent.max_fee_per_gas,
        min(intent.max_priority_fee_per_gas, intent.max_fee_per_gas),
        blob_fee=blob_fee,
    )


def check_fee(intent: TransactionIntent, policy: AgentPolicy, fee: FeeQuote) -> StageVerdict:
    ceiling = policy.tx_max_fee_per_gas
    facts = dict(fee.facts(intent), ceiling_wei=None if ceiling is None else str(ceiling))
    if ceiling is None or fee.fee_per_gas <= ceiling:
        return verdict(
            intent,
            Stage.FEE,
            True,
            Code.FEE_WITHIN_CEILING,
            f"fee {fee.fee_per_gas} wei per gas" + ("" if ceiling is None else f" <= ceiling {ceiling}"),
            **facts,
        )
    named_by_intent = intent.gas_price is not None or intent.max_fee_per_gas is not None
    named = "the intent's" if named_by_intent else "the node's suggested"
    base = "" if fee.base_fee_per_gas is None else f" (base fee now {fee.base_fee_per_gas} wei)"
    return verdict(
        intent,
        Stage.FEE,
        False,
        Code.FEE_OVER_CEILING,
        f"{named} fee of {fee.fee_per_gas} wei per gas{base} exceeds this agent's ceiling of {ceiling} "
        f"wei per gas (tx_max_fee_per_gas); not signed and not paid. Retry when fees fall, or ask an "
        "admin to raise the ceiling",
        **facts,
    )


async def check_price(
    intent: TransactionIntent, policy: AgentPolicy, node: Node, sender: str | None
) -> tuple[StageVerdict, FeeQuote | None]:
    """The fee stage: price the intent on ``node`` as ``sender`` and hold it to the ceiling.
    Returns the verdict and the quote (None when the node could not price it: fail closed)."""
    try:
        fee = await quote(intent, sender, node, policy.tx_max_fee_per_gas)
    except RpcError as exc:
        reason = decode_revert(exc.data) if exc.data else exc.message
        return verdict(
            intent,
            Stage.FEE,
            False,
            Code.GAS_ESTIMATE_FAILED,
            f"the node could not estimate gas for this intent: {reason}; set gas_limit or fix the call",
            rpc_method=exc.method,
        ), None
    except RpcUnavailable as exc:
        # Fail closed: an intent whose cost is unknown is not approved.
        return verdict(intent, Stage.FEE, False, Code.FEE_QUOTE_UNAVAILABLE, str(exc)), None
    except AmountOutOfRange as exc:
        return verdict(intent, Stage.FEE, False, Code.AMOUNT_OUT_OF_RANGE, str(exc), **exc.found.facts()), None
    return check_fee(intent, policy, fee), fee
