"""The simulation stage: whether an intent must be simulated, and what the simulation shows.

A call an allowlisted contract receives can forward the agent's value or spend its allowances,
so Warden signs only what it can read: the call is run on the node first (``eth_call``, then
``eth_simulateV1`` with transfer tracing), and every asset that leaves the agent must be what
the intent declares and must land at allowlisted addresses. The node is passed in (the worker's
or the signer's own); its failures refuse the intent (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_abi import decode as abi_decode

from evm.rpc_results import CallResult, Log
from rules import movements
from rules.assets import asset_amount
from rules.verdicts import allowlisted, simulation_required, verdict
from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas.codes import Code
from schemas.fields import format_native_amount
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.stages import Stage


async def check_simulation(
    intent: TransactionIntent, policy: AgentPolicy, node: Node, sender: str | None
) -> StageVerdict:
    """The stage: skipped when nothing asks for a simulation, else `simulate` as ``sender``."""
    try:
        needed = await simulation_needed(intent, policy, node)
    except (RpcError, RpcUnavailable) as exc:
        # Fail closed: whether the recipient runs code is unknown, so is where the value lands.
        return verdict(
            intent,
            Stage.SIMULATION,
            False,
            Code.SIMULATION_UNAVAILABLE,
            f"could not tell whether {intent.to} runs code: {exc}",
        )
    if not needed:
        return simulation_skipped(intent)
    return await simulate(intent, sender, node, policy)


# A plain value transfer costs exactly this much gas: with no more, no code at the recipient can
# run a CALL to pass the value on.
TRANSFER_GAS = 21_000


async def simulation_needed(intent: TransactionIntent, policy: AgentPolicy, node: Node) -> bool:
    """`simulation_required`, or value to an address that has code: its ``receive`` can send the
    value on to anyone, which only simulation shows. The node is not asked where that cannot
    matter: an empty allowlist allows any landing, and a transfer with gas for nothing but itself
    (``gas_limit`` 21,000, no access list) runs no code."""
    if simulation_required(intent, policy):
        return True
    if intent.intent_type != "transaction" or not intent.value_wei or not policy.tx_to_allowlist:
        return False
    if intent.gas_limit == TRANSFER_GAS and not intent.access_list and intent.data == "0x":
        return False
    to = movements.transaction_to(intent)
    rule = policy.calls_to(to)
    if rule is not None and rule.unsimulated:
        return False
    return await node.call("eth_getCode", to, "pending") not in ("0x", "0x0")


def decode_revert(data: object) -> str:
    """Solidity revert payload → a readable reason (Error(string), Panic(uint256), or raw bytes)."""
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return "reverted without a reason"
    try:
        payload = bytes.fromhex(data[2:])
        selector, body = payload[:4], payload[4:]
        if selector == bytes.fromhex("08c379a0"):
            return str(abi_decode(["string"], body)[0])  # a decoded string is a str; eth-abi's types say Any
        if selector == bytes.fromhex("4e487b71"):
            return f"panic 0x{abi_decode(['uint256'], body)[0]:02x}"
    except Exception:  # a malformed payload is still a revert; show its bytes rather than fail the stage
        pass
    return f"custom error {data[:74]}"


def revert_reason(outcome: CallResult) -> str:
    """Why a call of an ``eth_simulateV1`` answer reverted: its revert data decoded
    (`decode_revert`) when the node returns it, else the node's message."""
    error = outcome.get("error") or {}
    data = error.get("data") or outcome.get("returnData")
    if isinstance(data, str) and len(data) >= 10:
        return decode_revert(data)
    return str(error.get("message") or "reverted")


def _int(value: object) -> int:
    # A node's quantity ("0x5208"); an absent or malformed one counts as none.
    try:
        return int(str(value), 16)
    except ValueError:
        return 0


def call_object(intent: TransactionIntent, sender: str | None) -> dict[str, Any]:
    """The intent as a JSON-RPC call object; the access list is included because it costs gas."""
    call: dict[str, Any] = {"to": intent.to, "value": hex(intent.value_wei), "data": intent.data}
    if sender:
        call["from"] = sender
    if intent.gas_limit is not None:
        call["gas"] = hex(intent.gas_limit)
    if intent.access_list:
        call["accessList"] = [{"address": e.address, "storageKeys": list(e.storage_keys)} for e in intent.access_list]
    return call


async def simulate(intent: TransactionIntent, sender: str | None, node: Node, policy: AgentPolicy) -> StageVerdict:
    """eth_call then eth_estimateGas at ``pending``: a revert rejects with its decoded reason.
    Then eth_simulateV1 with transfer tracing shows what the call moves: the sender's outgoing
    and incoming native and token amounts. An asset that leaves the sender beyond what the
    calldata declares (`rules.movements`: the value, a transfer's amount) is refused
    SIMULATION_MISMATCH: an allowlisted contract that takes more than the call says."""
    call = call_object(intent, sender)
    try:
        await node.call("eth_call", call, "pending")
        gas = int(await node.call("eth_estimateGas", call, "pending"), 16)
    except RpcError as exc:
        reason = decode_revert(exc.data) if exc.data else exc.message
        return verdict(
            intent,
            Stage.SIMULATION,
            False,
            Code.SIMULATION_REVERTED,
            f"simulation reverted: {reason}",
            revert_reason=reason,
            rpc_method=exc.method,
        )
    except RpcUnavailable as exc:
        # Fail closed: an intent that must be simulated is not approved unsimulated.
        return verdict(intent, Stage.SIMULATION, False, Code.SIMULATION_UNAVAILABLE, str(exc))
    if intent.gas_limit is not None and gas > intent.gas_limit:
        return verdict(
            intent,
            Stage.SIMULATION,
            False,
            Code.GAS_LIMIT_TOO_LOW,
            f"estimated gas {gas} exceeds the intent's gas_limit {intent.gas_limit}",
            estimated_gas=gas,
        )
    if sender is None:
        # The worker without the agent's address: the signer, which always knows it, runs this part.
        return verdict(
            intent,
            Stage.SIMULATION,
            True,
            Code.SIMULATION_OK,
            f"simulation succeeded, estimated gas {gas}; balance changes not traced (the policy names "
            "no sender_address)",
            estimated_gas=gas,
        )
    try:
        result = await node.call(
            "eth_simulateV1",
            {"blockStateCalls": [{"calls": [call]}], "traceTransfers": True, "validation": False},
            "pending",
        )
        outcome = result[0]["calls"][0]
    except RpcError as exc:
        return verdict(
            intent,
            Stage.SIMULATION,
            False,
            Code.SIMULATION_UNAVAILABLE,
            f"the node could not trace the call's transfers (eth_simulateV1: {exc.message}); an intent "
            "that must be simulated is not signed untraced",
            estimated_gas=gas,
        )
    except RpcUnavailable as exc:
        return verdict(intent, Stage.SIMULATION, False, Code.SIMULATION_UNAVAILABLE, str(exc), estimated_gas=gas)
    except (KeyError, IndexError, TypeError):
        return verdict(
            intent,
            Stage.SIMULATION,
            False,
            Code.SIMULATION_UNAVAILABLE,
            "the node's eth_simulateV1 answer has no call result",
            estimated_gas=gas,
        )
    return traced_verdict(intent, policy, sender, outcome, gas)


def traced_verdict(
    intent: TransactionIntent, policy: AgentPolicy, sender: str, outcome: CallResult, gas: int | None
) -> StageVerdict:
    """The simulation stage's verdict on one call as ``eth_simulateV1`` with transfer tracing ran
    it (``outcome``: its call result): a revert with its reason; an asset that leaves ``sender``
    beyond what the intent declares (SIMULATION_MISMATCH); value landing, or an allowance going,
    off the allowlist (SIMULATION_ROUTE_NOT_ALLOWLISTED). ``gas``: the estimate, else the gas the
    call used. The single intent's stage (`simulate`) and a bundle's steps, each traced in the
    bundle's one block (`rules.bundle`), are judged by this one function."""
    if gas is None:
        gas = _int(outcome.get("gasUsed"))
    if outcome.get("status") != "0x1":
        reason = revert_reason(outcome)
        return verdict(
            intent,
            Stage.SIMULATION,
            False,
            Code.SIMULATION_REVERTED,
            f"simulation reverted: {reason}",
            revert_reason=reason,
            rpc_method="eth_simulateV1",
        )
    logs = outcome.get("logs") or []
    changes = movements.balance_changes(logs, sender)
    declared = movements.declared_outflows(movements.movements_of(intent, policy), sender)
    landed = movements.landings(logs, sender)
    facts = dict(
        estimated_gas=gas,
        balance_changes=[c.facts() for c in changes],
        declared_out={asset: str(units) for asset, units in declared.items()},
        landings=[landing.facts() for landing in landed],
    )
    # The first refusal found, checked in this order; a later check runs only when the earlier ones pass.
    refusal = (
        _outflow_refusal(intent, policy, sender, changes, declared)
        or _landing_refusal(intent, policy, sender, landed)
        or _grant_refusal(policy, sender, logs)
    )
    if refusal is not None:
        code, reason = refusal
        return verdict(intent, Stage.SIMULATION, False, code, reason, **facts)
    return verdict(
        intent, Stage.SIMULATION, True, Code.SIMULATION_OK, f"simulation succeeded, estimated gas {gas}", **facts
    )


def _shown(intent: TransactionIntent, policy: AgentPolicy, asset_key: str, units: int) -> str:
    """An amount of ``asset_key`` as a reason states it: in the asset's units where the policy lists it."""
    if asset_key == movements.NATIVE:
        return f"{format_native_amount(units)} (native)"
    asset = policy.asset(intent.chain, asset_key)
    return asset_amount(asset, units) if asset is not None else f"{units} base units of {asset_key}"


def _outflow_refusal(
    intent: TransactionIntent,
    policy: AgentPolicy,
    sender: str,
    changes: list[movements.BalanceChange],
    declared: Mapping[str, int],
) -> tuple[Code, str] | None:
    """Whether any asset leaves ``sender`` beyond what the intent declares (SIMULATION_MISMATCH)."""
    for change in changes:
        if change.outgoing > declared.get(change.asset, 0):
            return (
                Code.SIMULATION_MISMATCH,
                (
                    f"the simulated call takes {_shown(intent, policy, change.asset, change.outgoing)} from {sender}, "
                    f"but the intent declares {_shown(intent, policy, change.asset, declared.get(change.asset, 0))}; "
                    "the contract moves more than the call says, so it is not signed"
                ),
            )
    return None


def _landing_refusal(
    intent: TransactionIntent, policy: AgentPolicy, sender: str, landed: list[movements.Landing]
) -> tuple[Code, str] | None:
    """Whether value sent on from ``sender`` lands anywhere off the allowlist."""
    for landing in landed:
        if not allowlisted(policy, landing.holder):
            return (
                Code.SIMULATION_ROUTE_NOT_ALLOWLISTED,
                (
                    f"the simulated call sends {_shown(intent, policy, landing.asset, landing.amount)} from {sender} on "
                    f"to {landing.holder}, which is not on this agent's allowlist (route: {'; '.join(landing.route)}); "
                    f"value sent through an allowlisted contract is judged by where it lands: an admin allowlists "
                    f"{landing.holder} if it should receive it"
                ),
            )
    return None


def _grant_refusal(policy: AgentPolicy, sender: str, logs: list[Log]) -> tuple[Code, str] | None:
    """Whether the call lets anyone off the allowlist spend ``sender``'s tokens."""
    for token, spender in movements.grants(logs, sender):
        if not allowlisted(policy, spender):
            return (
                Code.SIMULATION_ROUTE_NOT_ALLOWLISTED,
                (
                    f"the simulated call lets {spender} spend {sender}'s {token} tokens, and {spender} is not on this "
                    "agent's allowlist; an allowance set inside a call is judged like one the agent asks for: "
                    f"an admin allowlists {spender} if it should spend them"
                ),
            )
    return None


def simulation_skipped(intent: TransactionIntent) -> StageVerdict:
    return verdict(
        intent,
        Stage.SIMULATION,
        True,
        Code.SIMULATION_NOT_REQUIRED,
        "nothing asks for it: no simulate_first or require_simulation, no contract call, no value to code",
    )
