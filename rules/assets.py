"""The assets stage: what an intent's calldata or typed data moves of which token, under the
policy's asset rules, and the human-approval threshold on what it moves.

`rules.movements` reads calldata and `rules.typed_movements` EIP-712 documents into movements;
here they are judged: recipients and spenders allowlisted, each token's per-transaction cap and
rolling 24 h limit in its own units, unlimited approvals refused where the policy says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rules import movements, typed_movements
from rules.verdicts import allowlisted, simulation_required, verdict
from schemas.amounts import UINT256, first_out_of_range
from schemas.codes import Code
from schemas.fields import MAX_UINT256, format_token_amount
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy, AssetLimit
from schemas.stages import Stage

# A refusal a step found: its code and reason, which `assess_assets` turns into the verdict.
_Refusal = tuple[Code, str]

_ROLE = {"transfer": "recipient", "approval": "spender", "operator": "operator", "proceeds": "recipient"}


def check_assets(intent: TransactionIntent, policy: AgentPolicy, spent: Callable[[str], int]) -> StageVerdict:
    """The assets stage's verdict (`assess_assets`)."""
    return assess_assets(intent, policy, spent)[0]


def assess_assets(
    intent: TransactionIntent, policy: AgentPolicy, spent: Callable[[str], int]
) -> tuple[StageVerdict, dict[str, int]]:
    """What the calldata or typed data moves, under the policy's asset rules (`rules.movements`).

    Token transfers and approvals go to allowlisted addresses only and count, in the token's
    units, against its per-transaction cap and rolling 24 h limit (``spent(asset key)`` is what
    the window already holds). With ``block_unlimited_approvals`` an approval must fit those
    limits (an asset without any cannot be approved at all) and ``setApprovalForAll(true)`` needs
    its operator on the allowlist by name. Any other calldata needs its contract's selector in
    ``contract_calls``; a token function on a contract that is not a listed asset is refused.
    Returns the verdict and what it counted per asset key (empty unless it passed)."""
    try:
        reading = _read_movements(intent, policy)
    except movements.MalformedOperation as exc:
        return verdict(intent, Stage.ASSETS, False, exc.code, exc.reason), {}
    moved = [m.facts() for m in reading.movements]
    facts: dict[str, Any] = dict(movements=moved)

    def refuse(code: Code, reason: str) -> tuple[StageVerdict, dict[str, int]]:
        return verdict(intent, Stage.ASSETS, False, code, reason, **facts), {}

    refusal = _out_of_range(((f"the amount {m.via} moves of {m.asset}", m.amount) for m in reading.movements), facts)
    if refusal is not None:
        return refuse(*refusal)
    if reading.other_call is not None:
        contract, selector = reading.other_call
        facts.update(contract=contract, selector=selector)
        refusal = _other_call_refusal(intent, policy, contract, selector)
        if refusal is not None:
            return refuse(*refusal)
    totals: dict[str, int] = {}
    for move in reading.movements:
        judged = _judge_movement(intent, policy, move)
        if isinstance(judged, AssetLimit):
            totals[judged.key] = totals.get(judged.key, 0) + move.amount
        elif judged is not None:
            return refuse(*judged)
    facts["asset_spend"] = {key: str(amount) for key, amount in totals.items()}
    refusal = _out_of_range(((f"what the intent moves of {key} together", n) for key, n in totals.items()), facts)
    if refusal is None:
        refusal = _limits_refusal(policy, totals, spent, facts)
    if refusal is not None:
        return refuse(*refusal)
    what = ", ".join(f"{m['via']} {m['amount']}" for m in moved) or "no token movement"
    return verdict(
        intent, Stage.ASSETS, True, Code.ASSETS_WITHIN_POLICY, f"{what} within the asset rules", **facts
    ), totals


def _out_of_range(amounts: Iterable[tuple[str, int]], facts: dict[str, Any]) -> _Refusal | None:
    """The refusal of the first of ``amounts`` (what each is, how much) past the uint256 a token
    amount is, recorded in ``facts``; or None."""
    found = first_out_of_range(UINT256, amounts)
    if found is None:
        return None
    facts.update(found.facts())
    return Code.AMOUNT_OUT_OF_RANGE, str(found.problem)


def _read_movements(intent: TransactionIntent, policy: AgentPolicy) -> movements.Reading:
    """What the intent moves: read from its typed data document, else from its calldata."""
    if intent.intent_type == "typed_data":
        typed = intent.typed_data
        if typed is None:  # the schema requires it for this kind: such an intent was built past validation
            raise ValueError(f"intent {intent.intent_id} is typed_data without its typed_data document")
        moves = typed_movements.read_typed_data(typed)
        return movements.Reading(tuple(moves))
    return movements.movements_of(intent, policy)


def _other_call_refusal(
    intent: TransactionIntent, policy: AgentPolicy, contract: str, selector: str
) -> _Refusal | None:
    """Whether a call no asset rule reads may be made: its selector listed in contract_calls, not
    a token function of an unlisted contract, and on a listed asset only when simulated."""
    if selector in movements.TOKEN_SELECTORS and policy.asset(intent.chain, contract) is None:
        return (
            Code.ASSET_NOT_IN_POLICY,
            (
                f"the calldata calls a token function ({selector}) on {contract}, which is not in this agent's "
                f"asset_limits for {intent.chain}; an admin adds the token (standard, decimals, limits) to move it"
            ),
        )
    rule = policy.calls_to(contract)
    if (
        rule is not None
        and rule.allows(selector)
        and policy.asset(intent.chain, contract) is not None
        and not simulation_required(intent, policy)
    ):
        # Another function of a token the agent holds (a multicall, a permit-and-transfer) can
        # move that token in ways the calldata does not show: only simulation sees it.
        return (
            Code.CALLDATA_NOT_ALLOWED,
            (
                f"{selector} on {contract} is not one of its token functions, and {contract} is an asset of this "
                "policy: such a call could move the token unseen, so it is signed only simulated (set "
                "simulate_first, or require_simulation in the policy)"
            ),
        )
    if rule is None or not rule.allows(selector):
        listed = "no calls" if rule is None else f"selectors {', '.join(rule.selectors)}"
        return (
            Code.CALLDATA_NOT_ALLOWED,
            (
                f"calldata with selector {selector} to {contract} is not allowed: the policy's contract_calls lists "
                f'{listed} for it; an admin adds the selector (or "any") to allow it'
            ),
        )
    return None


def _judge_movement(
    intent: TransactionIntent, policy: AgentPolicy, move: movements.Movement
) -> _Refusal | AssetLimit | None:
    """One movement under the asset rules: its refusal, else the asset whose limits it counts
    against, else None (judged elsewhere, or allowed without counting)."""
    if move.kind == "delegation" or move.asset == movements.NATIVE:
        return None  # the delegation and value stages judge these
    if move.kind == "proceeds":
        return _proceeds_refusal(policy, move)
    asset = policy.asset(intent.chain, move.asset)
    if asset is None or asset.standard != move.standard:
        return (
            Code.ASSET_NOT_IN_POLICY,
            (
                f"{move.via} {_ROLE[move.kind]}s {move.asset}'s tokens, and that contract is not in this agent's "
                f"asset_limits for {intent.chain} as {move.standard}; an admin adds it to allow it"
            ),
        )
    role = _ROLE[move.kind]
    if move.kind == "operator":
        return _operator_refusal(policy, move, asset)
    if not allowlisted(policy, move.to):
        return (
            Code.RECIPIENT_NOT_ALLOWLISTED,
            (
                f"{move.via} makes {move.to} the {role} of {asset_amount(asset, move.amount)}, and {move.to} is not on "
                f"this agent's allowlist ({len(policy.tx_to_allowlist)} addresses); use an allowlisted {role}, or an "
                f"admin adds {move.to} to tx_to_allowlist"
            ),
        )
    if move.kind == "approval":
        if not policy.block_unlimited_approvals:
            return None  # the admin chose unbounded approvals: they are not counted as spend
        refusal = _approval_refusal(move, asset)
        if refusal is not None:
            return refusal
    return asset


def _proceeds_refusal(policy: AgentPolicy, move: movements.Movement) -> _Refusal | None:
    """Whether an order's proceeds go to the agent's own account or an allowlisted one."""
    if move.to != policy.sender_address and not allowlisted(policy, move.to):
        return (
            Code.PROCEEDS_NOT_ALLOWLISTED,
            (
                f"{move.via} pays {move.amount} base units of {move.asset} to {move.to}, which is neither the "
                f"order's own account nor on this agent's allowlist: the agent's tokens would be sold for someone "
                f"else; make the order pay the agent, or an admin allowlists {move.to}"
            ),
        )
    return None


def _operator_refusal(policy: AgentPolicy, move: movements.Movement, asset: AssetLimit) -> _Refusal | None:
    """Whether setApprovalForAll may grant its operator: allowlisted (by name, under block_unlimited_approvals)."""
    if move.amount and policy.block_unlimited_approvals and move.to not in policy.tx_to_allowlist:
        return (
            Code.OPERATOR_NOT_ALLOWLISTED,
            (
                f"setApprovalForAll hands every {asset.label} token to {move.to}, which is not on tx_to_allowlist "
                "by name; with block_unlimited_approvals an operator must be allowlisted"
            ),
        )
    if move.amount and not allowlisted(policy, move.to):
        return (
            Code.RECIPIENT_NOT_ALLOWLISTED,
            f"operator {move.to} is not on this agent's allowlist; an admin adds it to tx_to_allowlist to allow it",
        )
    return None


def _approval_refusal(move: movements.Movement, asset: AssetLimit) -> _Refusal | None:
    """Whether an approval fits the asset's limits (block_unlimited_approvals): an asset without any
    cannot be approved at all."""
    bounds = [b for b in (asset.units("max_per_tx"), asset.units("daily_limit")) if b is not None]
    if not bounds:
        return (
            Code.UNLIMITED_APPROVAL_REFUSED,
            (
                f"{move.via} would let {move.to} take {asset_amount(asset, move.amount)}, and {asset.label} has neither "
                "max_per_tx nor daily_limit to bound an approval (block_unlimited_approvals)"
            ),
        )
    if move.amount > min(bounds):
        return (
            Code.UNLIMITED_APPROVAL_REFUSED,
            (
                f"{move.via} would let {move.to} take {asset_amount(asset, move.amount)}, more than {asset.label}'s "
                f"limit of {asset_amount(asset, min(bounds))} (block_unlimited_approvals); approve only what this "
                "payment needs"
            ),
        )
    return None


def _limits_refusal(
    policy: AgentPolicy, totals: Mapping[str, int], spent: Callable[[str], int], facts: dict[str, Any]
) -> _Refusal | None:
    """Whether each asset's total fits its per-transaction cap and rolling 24 h limit; records in
    ``facts["asset_spent"]`` what the window held for each asset it looked up, refused or not."""
    for key, amount in totals.items():
        asset = next(a for a in policy.asset_limits if a.key == key)
        cap, limit = asset.units("max_per_tx"), asset.units("daily_limit")
        if cap is not None and amount > cap:
            return (
                Code.ASSET_OVER_CAP,
                (
                    f"this intent moves or approves {asset_amount(asset, amount)}, over the per-transaction cap of "
                    f"{asset_amount(asset, cap)}; move less, or an admin raises {asset.label}'s max_per_tx"
                ),
            )
        already = spent(key)
        facts.setdefault("asset_spent", {})[key] = str(already)
        if limit is not None and already + amount > limit:
            return (
                Code.ASSET_DAILY_LIMIT_EXCEEDED,
                (
                    f"{asset_amount(asset, already)} already moved or approved in the last 24 h; "
                    f"{asset_amount(asset, amount)} more would exceed the rolling limit of {asset_amount(asset, limit)}; wait for "
                    "earlier spend to leave the 24 h window"
                ),
            )
    return None


def asset_amount(asset: AssetLimit, units: int) -> str:
    if units == MAX_UINT256:
        return f"2**256-1 (unlimited) {asset.label}"
    return f"{format_token_amount(units, asset.decimals)} {asset.label}"


def over_approval_threshold(
    _intent: TransactionIntent, policy: AgentPolicy, asset_spend: Mapping[str, int]
) -> str | None:
    """Why an intent that passed every stage still waits for a human, or None: what it moves or
    approves of an asset (as this stage counted it) is above that asset's approval_threshold."""
    for asset in policy.asset_limits:
        limit = asset.units("approval_threshold")
        if limit is not None and asset_spend.get(asset.key, 0) > limit:
            return (
                f"{asset_amount(asset, asset_spend[asset.key])} is above {asset.label}'s approval threshold of "
                f"{asset_amount(asset, limit)}"
            )
    return None
