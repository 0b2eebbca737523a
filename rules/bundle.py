"""A bundle: transactions simulated in order in one block and judged as one plan, nothing reserved
and nothing signed (what a `schemas.simulation.SimulationRequest` asks for; one transaction is a
bundle of one).

The steps run in one ``eth_simulateV1`` block on top of a pinned block, with transfer tracing, so
a later step sees what the earlier ones did (a swap succeeds because the approval before it
ran). Each step is then judged by the one judge (`rules.judge.run_stages`) with two things only a
bundle knows: its simulation stage's verdict is the trace of its own call in that block
(`rules.simulation.traced_verdict`, through ``Context.simulated``), and the spend of the earlier
steps is added to the rolling windows for the later ones (`with_earlier`). Balances are read
(``eth_getBalance``, ``balanceOf``) at the same pinned block, and each step's changes come from
its transfer trace: one simulation, and before and after agree with it exactly. Like the rest of
the rules, this does no I/O but on the node passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from evm.rpc_results import CallResult
from rules import judge
from rules.fees import GAS_HEADROOM_DEN, GAS_HEADROOM_NUM
from rules.movements import NATIVE, transfers
from rules.simulation import TRANSFER_GAS, call_object, revert_reason, traced_verdict
from runtime.rpc import Node
from schemas.chains import ChainLookup
from schemas.errors import WardenError
from schemas.fields import format_token_amount
from schemas.intent import TransactionIntent
from schemas.policy import AgentPolicy
from schemas.simulation import BalanceRow

MAX_GAS_LIMIT = 30_000_000  # the intent schema's bound on gas_limit
ZERO_ADDRESS = "0x" + "00" * 20  # a mint's source and a burn's destination: no balance to show
_BALANCE_OF = "0x" + function_signature_to_4byte_selector("balanceOf(address)").hex()
_DECIMALS = "0x" + function_signature_to_4byte_selector("decimals()").hex()


class TraceUnreadable(WardenError, ValueError):
    """The node's eth_simulateV1 answer is not one call result per step."""


async def trace(steps: Sequence[TransactionIntent], sender: str, node: Node, block: int) -> list[CallResult]:
    """Each step's call result, the steps run in order in one block on top of ``block``, sent
    from ``sender``, with transfer tracing. Raises RpcError / RpcUnavailable when the node cannot
    answer, TraceUnreadable when its answer does not have one result per step."""
    result = await node.call(
        "eth_simulateV1",
        {
            "blockStateCalls": [{"calls": [call_object(step, sender) for step in steps]}],
            "traceTransfers": True,
            "validation": False,
        },
        hex(block),
    )
    try:
        calls = result[0]["calls"]
    except (KeyError, IndexError, TypeError) as exc:
        raise TraceUnreadable(f"the node's eth_simulateV1 answer has no block of call results ({exc!r})") from None
    if not isinstance(calls, list) or len(calls) != len(steps) or not all(isinstance(c, dict) for c in calls):
        raise TraceUnreadable(
            f"the node's eth_simulateV1 answer does not have one call result for each of {len(steps)}"
        )
    for number, call in enumerate(calls, 1):
        # A later step is priced at the gas it used: an unreadable figure must not price it at nothing.
        try:
            int(call.get("gasUsed"), 16)
        except (TypeError, ValueError):
            raise TraceUnreadable(f"the node's eth_simulateV1 answer has no gasUsed for step {number}") from None
    return calls


def succeeded(outcome: CallResult) -> bool:
    return outcome.get("status") == "0x1"


def gas_used(outcome: CallResult) -> int:
    """The gas a step used (`trace` only returns results whose gasUsed reads)."""
    return int(outcome["gasUsed"], 16)


def reason_of(outcome: CallResult) -> str | None:
    """Why the step reverted, decoded; None when it succeeded."""
    return None if succeeded(outcome) else revert_reason(outcome)


# -- the judge, step after step -------------------------------------------------------------------


def step_spend(step: TransactionIntent, judged: judge.Judgement) -> dict[str, int]:
    """What a judged step adds to the windows of the steps after it, per asset key: its native
    spend (value and worst-case fee, once priced; its value alone before) and the tokens the
    assets stage counted."""
    spend = {NATIVE: judged.spend_wei(step) if judged.quote is not None else step.value_wei}
    for asset, units in judged.asset_spend.items():
        spend[asset] = spend.get(asset, 0) + units
    return spend


def with_earlier(spent: Callable[[str], int], earlier: Mapping[str, int]) -> Callable[[str], int]:
    """The windows a later step is judged against: what they hold, plus the earlier steps' spend."""
    return lambda asset: spent(asset) + earlier.get(asset, 0)


def priced(step: TransactionIntent, outcome: CallResult) -> TransactionIntent:
    """The step the fee stage prices: one that names no gas_limit gets the gas it used in the
    bundle plus the fee stage's headroom, since a later step's gas cannot be estimated alone (it
    may succeed only after the earlier ones)."""
    if step.gas_limit is not None:
        return step
    gas = gas_used(outcome) * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN
    return step.model_copy(update={"gas_limit": min(max(gas, TRANSFER_GAS), MAX_GAS_LIMIT)})


@dataclass(frozen=True)
class JudgedStep:
    step: TransactionIntent
    judged: judge.Judgement


async def judge_steps(
    steps: Sequence[TransactionIntent],
    outcomes: Sequence[CallResult],
    policy: AgentPolicy,
    spent: Callable[[str], int],
    node: Node,
    sender: str,
    now: datetime,
    chains: ChainLookup,
) -> list[JudgedStep]:
    """Every step judged by the one judge, in order: its simulation verdict from its trace in the
    bundle's block, and the spend of the steps before it added to ``spent`` (the agent's windows
    now). Every step is judged, even after one is refused: the agent sees each step's verdicts.
    ``chains``: the networks the caller holds in force (`judge.Context.chains`)."""
    earlier: dict[str, int] = {}
    out = []
    for step, outcome in zip(steps, outcomes, strict=True):
        simulated = traced_verdict(step, policy, sender, outcome, gas_used(outcome))
        ctx = judge.Context(
            spent=with_earlier(spent, earlier), node=node, sender=sender, simulated=simulated, now=now, chains=chains
        )
        judged = await judge.run_stages(priced(step, outcome), policy, ctx)
        out.append(JudgedStep(step, judged))
        for asset, units in step_spend(step, judged).items():
            earlier[asset] = earlier.get(asset, 0) + units
    return out


# -- balances -------------------------------------------------------------------------------------

Holding = tuple[str, str]  # (address, lowercase hex; asset key: "native" or the token contract)


def holdings(outcomes: Sequence[CallResult]) -> list[Holding]:
    """Every (address, asset) the steps' transfers touch, in the order first touched."""
    seen: dict[Holding, None] = {}
    for outcome in outcomes:
        for asset, source, dest, _ in transfers(outcome.get("logs") or []):
            for address in (source, dest):
                if address != ZERO_ADDRESS:
                    seen.setdefault((address, asset), None)
    return list(seen)


def balance_table(
    outcomes: Sequence[CallResult], before: Mapping[Holding, int | None], decimals: Mapping[str, int]
) -> list[list[BalanceRow]]:
    """Each step's balance changes: for every (address, asset) its transfers touch, the balance
    before the step (``before``, read at the bundle's block, plus the earlier steps' changes),
    after it, and the change, as decimal strings in the asset's unit. Pure: the balances and the
    decimals are read by the caller (`read_balances`)."""
    running: dict[Holding, int | None] = dict(before)
    table = []
    for outcome in outcomes:
        net: dict[Holding, int] = {}
        for asset, source, dest, amount in transfers(outcome.get("logs") or []):
            for address, delta in ((source, -amount), (dest, amount)):
                if address != ZERO_ADDRESS:
                    net[(address, asset)] = net.get((address, asset), 0) + delta
        rows = []
        for (address, asset), change in net.items():
            start = running.get((address, asset))
            end = None if start is None else start + change
            running[(address, asset)] = end
            places = decimals.get(asset, 0)
            rows.append(
                BalanceRow(
                    address=to_checksum_address(address),
                    token=asset,
                    decimals=places,
                    before=None if start is None else signed_amount(start, places),
                    after=None if end is None else signed_amount(end, places),
                    change=signed_amount(change, places),
                )
            )
        table.append(rows)
    return table


def signed_amount(units: int, decimals: int) -> str:
    """Base units → a decimal string in the asset's unit, with a minus sign when negative."""
    return ("-" if units < 0 else "") + format_token_amount(abs(units), decimals)


async def read_balances(
    node: Node, block: int, wanted: Sequence[Holding], policy: AgentPolicy, chain: str
) -> tuple[dict[Holding, int | None], dict[str, int]]:
    """The balance of each (address, asset) at ``block`` (None where a token has no
    ``balanceOf(address)``), and each asset's decimals: 18 for native, the policy's for a token it
    lists, else the token's own ``decimals()``, else 0 (base units)."""
    balances: dict[Holding, int | None] = {}
    decimals: dict[str, int] = {NATIVE: 18}
    for address, asset in wanted:
        if asset == NATIVE:
            balances[(address, asset)] = int(await node.call("eth_getBalance", address, hex(block)), 16)
            continue
        balances[(address, asset)] = await _token_call(node, asset, _BALANCE_OF + address[2:].rjust(64, "0"), block)
        if asset not in decimals:
            listed = policy.asset(chain, asset)
            found = listed.decimals if listed is not None else await _token_call(node, asset, _DECIMALS, block)
            decimals[asset] = found if found is not None and 0 <= found <= 77 else 0
    return balances, decimals


async def _token_call(node: Node, token: str, data: str, block: int) -> int | None:
    # A token's answer is outside data: one it cannot give (or gives malformed) is shown as unknown.
    try:
        raw = await node.call("eth_call", {"to": token, "data": data}, hex(block))
        (value,) = abi_decode(["uint256"], bytes.fromhex(raw[2:]))
        return int(value)  # eth-abi decodes a uint256 to an int; its types say Any
    except Exception:  # noqa: BLE001 - any failure of this read leaves the balance unknown, never the step
        return None
