"""The guardrails: one function per stage, each deciding one thing about an intent.

A guardrail takes the intent and the state it needs (the agent's policy, the
intent's fee quote, the spend already in the window, ``now``, the EIP-155 id of
its chain in the networks the caller holds in force) and returns a
``StageVerdict``. None of them knows about Kafka; the topology module moves
records between them. Order and meaning: freshness (at intake), chain
restriction, address allowlist, fee ceiling (``rules.fees``), per-tx cap and
rolling 24 h limit (both on spend: value + worst-case fee), simulation; a set-code
transaction adds its delegation, and messages and typed data have their own stage
instead of the transaction ones (`rules.stage_table`). An empty
allowlist allows any address; a null cap, limit or ceiling means none.
The streams worker runs them to explain early; the signer runs every one again
with its own state, so nothing the worker says is needed for safety.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rules import typed_movements
from rules.verdicts import verdict
from schemas.amounts import UINT256, first_out_of_range
from schemas.codes import Code
from schemas.fields import format_native_amount
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from schemas.stages import Stage
from schemas.typed_data import TypedData


def check_chain(intent: TransactionIntent, policy: AgentPolicy) -> StageVerdict:
    allowed = policy.tx_allowed_chains
    if not allowed or intent.chain in allowed:
        return verdict(intent, Stage.CHAIN, True, Code.CHAIN_ALLOWED, f"{intent.chain} is allowed", chain=intent.chain)
    return verdict(
        intent,
        Stage.CHAIN,
        False,
        Code.CHAIN_NOT_ALLOWED,
        f"chain {intent.chain!r} is not in this agent's allowed chains ({', '.join(allowed)})",
        chain=intent.chain,
        allowed=list(allowed),
    )


def check_allowlist(intent: TransactionIntent, policy: AgentPolicy) -> StageVerdict:
    allowlist = policy.tx_to_allowlist
    # Addresses are EIP-55 normalized by the schema, so string equality is address equality.
    # (Only transactions reach this stage; the schema requires their `to`.)
    if not allowlist or intent.to in allowlist:
        return verdict(intent, Stage.ALLOWLIST, True, Code.RECIPIENT_ALLOWED, f"{intent.to} is allowed", to=intent.to)
    return verdict(
        intent,
        Stage.ALLOWLIST,
        False,
        Code.RECIPIENT_NOT_ALLOWLISTED,
        f"recipient {intent.to} is not on this agent's allowlist ({len(allowlist)} addresses)",
        to=intent.to,
    )


def check_message(intent: TransactionIntent, policy: AgentPolicy) -> StageVerdict:
    """EIP-191 personal_sign: off unless the policy turns it on, and bounded in size."""
    size = (len(intent.message or "0x") - 2) // 2
    facts = dict(kind="personal_sign", message_bytes=size, max_bytes=policy.message_max_bytes)
    if not policy.message_signing_enabled:
        return verdict(
            intent,
            Stage.MESSAGE,
            False,
            Code.MESSAGE_SIGNING_DISABLED,
            f"personal_sign is off for agent {intent.agent_id!r}; an admin turns it on with "
            "message_signing_enabled in the policy",
            **facts,
        )
    if size > policy.message_max_bytes:
        return verdict(
            intent,
            Stage.MESSAGE,
            False,
            Code.MESSAGE_TOO_LARGE,
            f"the message is {size} bytes; this agent's policy signs at most {policy.message_max_bytes} "
            "(message_max_bytes)",
            **facts,
        )
    return verdict(intent, Stage.MESSAGE, True, Code.MESSAGE_ALLOWED, f"personal_sign of {size} bytes allowed", **facts)


def check_typed_data(intent: TransactionIntent, policy: AgentPolicy, chain_id: int) -> StageVerdict:
    """EIP-712, deny by default: a document is signed only when Warden reads what it moves
    (`rules.typed_movements`; its domain must then be on eip712_domain_allowlist, and the assets
    stage judges the movements) or the policy names its (verifying contract, primary type) as
    moving nothing. ``eip712_default_policy: allow`` covers the rest only where it carries no
    address-and-amount and its domain is not a token of asset_limits. ``chain_id``: the EIP-155
    id of the intent's chain in the networks the caller holds in force (`rules.judge.Context`)."""
    typed = intent.typed_data
    assert typed is not None  # the schema requires it for this kind
    contract, primary = typed.verifying_contract, typed.primaryType
    facts = dict(
        kind="typed_data",
        primary_type=primary,
        verifying_contract=contract,
        domain_chain_id=typed.chain_id,
        domain_name=typed.domain.get("name"),
        chain_id=chain_id,
    )

    def refuse(code: Code, reason: str) -> StageVerdict:
        return verdict(intent, Stage.TYPED_DATA, False, code, reason, **facts)

    if typed.chain_id is not None and typed.chain_id != chain_id:
        return refuse(
            Code.EIP712_CHAIN_MISMATCH,
            f"the typed data's domain is for chain id {typed.chain_id}, the intent "
            f"for {intent.chain} ({chain_id}); a signature for another chain is not "
            "made here",
        )
    where = f"verifying contract {contract}" if contract else "a domain without a verifyingContract"
    if typed_movements.reads_as_value(typed):
        return _value_moving_verdict(intent, policy, typed, where, facts)
    if any(rule.matches(typed) for rule in policy.eip712_no_value_types):
        return verdict(
            intent,
            Stage.TYPED_DATA,
            True,
            Code.EIP712_NO_VALUE_TYPE,
            f"{primary} on {contract} is named by the policy as moving no value",
            **facts,
        )
    return _unread_type_verdict(intent, policy, typed, where, facts)


def _value_moving_verdict(
    intent: TransactionIntent, policy: AgentPolicy, typed: TypedData, where: str, facts: Mapping[str, Any]
) -> StageVerdict:
    """A type Warden reads as a movement: signed only for a domain on eip712_domain_allowlist
    (the assets stage then judges what it moves); the default policy never covers it."""
    contract, primary = typed.verifying_contract, typed.primaryType
    if not any(rule.matches(typed) for rule in policy.eip712_domain_allowlist):
        return verdict(
            intent,
            Stage.TYPED_DATA,
            False,
            Code.EIP712_SPEND_AUTHORIZATION_REFUSED,
            (
                f"{primary} moves or authorizes moving this account's tokens, and {where} is not on the policy's "
                "eip712_domain_allowlist; an admin allowlists the contract to allow it (the default policy does not "
                "apply to value-moving types)"
            ),
            **facts,
        )
    return verdict(
        intent,
        Stage.TYPED_DATA,
        True,
        Code.EIP712_DOMAIN_ALLOWED,
        f"{primary} for allowlisted domain {contract}; what it moves is judged next",
        **facts,
    )


def _unread_type_verdict(
    intent: TransactionIntent, policy: AgentPolicy, typed: TypedData, where: str, facts: Mapping[str, Any]
) -> StageVerdict:
    """A type Warden does not read and the policy does not name: refused if it carries an address
    and an amount, else allowed only by ``eip712_default_policy: allow`` outside the asset tokens."""
    contract, primary = typed.verifying_contract, typed.primaryType
    name_it = (
        f'if it moves no value (a login, a vote), an admin names {{"verifying_contract": "{contract}", '
        f'"primary_type": "{primary}"}} in eip712_no_value_types'
    )
    if typed_movements.carries_value(typed):
        return verdict(
            intent,
            Stage.TYPED_DATA,
            False,
            Code.EIP712_TYPE_NOT_UNDERSTOOD,
            (
                f"{primary} on {where} carries an address and an amount, and Warden does not read it as a movement, so "
                f"it could move value unseen; it is not signed. Use a type Warden reads (Permit, Permit2, EIP-3009, "
                f"Seaport, CoW, UniswapX, 1inch), or {name_it}"
            ),
            **facts,
        )
    asset_domain = contract is not None and policy.asset(intent.chain, contract) is not None
    if policy.eip712_default_policy == "allow" and not asset_domain:
        return verdict(
            intent,
            Stage.TYPED_DATA,
            True,
            Code.EIP712_DEFAULT_ALLOW,
            f"{primary} carries no address-and-amount and the policy's default is allow",
            **facts,
        )
    why = (
        f"{contract} is a token of this policy's asset_limits, whose other types the default never covers"
        if asset_domain and policy.eip712_default_policy == "allow"
        else "the default policy is deny"
    )
    return verdict(
        intent,
        Stage.TYPED_DATA,
        False,
        Code.EIP712_TYPE_NOT_NAMED,
        (
            f"{primary} on {where} is not a type Warden reads as a movement nor one the policy names as moving no value, "
            f"and {why}; {name_it}"
        ),
        **facts,
    )


def check_delegation(intent: TransactionIntent, policy: AgentPolicy, chain_id: int) -> StageVerdict:
    """EIP-7702: each authorization hands the agent's account to a contract's code, so only an
    allowlisted delegate, and only on the intent's own chain unless the policy allows chain id 0.
    ``chain_id``: the EIP-155 id of the intent's chain in the networks the caller holds in force
    (`rules.judge.Context`)."""
    delegates = [a.address for a in intent.authorization_list]
    facts = dict(delegates=delegates, chain_ids=[a.chain_id for a in intent.authorization_list])
    for auth in intent.authorization_list:
        if auth.address not in policy.eip7702_delegate_allowlist:
            listed = len(policy.eip7702_delegate_allowlist)
            return verdict(
                intent,
                Stage.DELEGATION,
                False,
                Code.EIP7702_DELEGATE_NOT_ALLOWLISTED,
                f"delegating the account to {auth.address} is not allowed: it is not on the policy's "
                f"eip7702_delegate_allowlist ({listed} contracts)",
                **facts,
            )
        if auth.chain_id == 0 and not policy.eip7702_allow_any_chain:
            return verdict(
                intent,
                Stage.DELEGATION,
                False,
                Code.EIP7702_ANY_CHAIN_REFUSED,
                "an authorization with chain_id 0 is valid on every chain; name the chain id "
                f"{chain_id}, or an admin sets eip7702_allow_any_chain",
                **facts,
            )
        if auth.chain_id not in (0, chain_id):
            return verdict(
                intent,
                Stage.DELEGATION,
                False,
                Code.EIP7702_CHAIN_MISMATCH,
                f"the authorization is for chain id {auth.chain_id}, the intent for {intent.chain} ({chain_id})",
                **facts,
            )
    return verdict(
        intent,
        Stage.DELEGATION,
        True,
        Code.EIP7702_DELEGATE_ALLOWED,
        f"delegation to {', '.join(delegates)} allowed",
        **facts,
    )


def check_value_cap(intent: TransactionIntent, policy: AgentPolicy, fee: FeeQuote) -> StageVerdict:
    """Spend (value + worst-case fee) within the uint256 a transaction's cost is reckoned in, then
    within the per-transaction cap."""
    cap = policy.max_value_wei
    spend = fee.spend_wei(intent)
    facts = dict(fee.facts(intent), cap_wei=None if cap is None else str(cap))
    found = first_out_of_range(UINT256, [("the spend in wei (value + worst-case fee)", spend)])
    if found is not None:
        return verdict(
            intent, Stage.VALUE_CAP, False, Code.AMOUNT_OUT_OF_RANGE, str(found.problem), **facts, **found.facts()
        )
    if cap is None or spend <= cap:
        return verdict(
            intent,
            Stage.VALUE_CAP,
            True,
            Code.VALUE_WITHIN_CAP,
            "spend (value + worst-case fee) within the per-transaction cap",
            **facts,
        )
    return verdict(
        intent,
        Stage.VALUE_CAP,
        False,
        Code.VALUE_OVER_CAP,
        f"spend {format_native_amount(spend)} ({fee.describe(intent)}) exceeds the per-transaction cap of "
        f"{policy.tx_max_value_eth}",
        **facts,
    )


def check_daily_limit(intent: TransactionIntent, policy: AgentPolicy, spent_wei: int, fee: FeeQuote) -> StageVerdict:
    limit = policy.daily_limit_wei
    spend = fee.spend_wei(intent)
    facts = dict(fee.facts(intent), spent_wei=str(spent_wei), limit_wei=None if limit is None else str(limit))
    if limit is None or spent_wei + spend <= limit:
        return verdict(
            intent, Stage.DAILY_LIMIT, True, Code.WITHIN_DAILY_LIMIT, "within the rolling 24 h limit", **facts
        )
    return verdict(
        intent,
        Stage.DAILY_LIMIT,
        False,
        Code.DAILY_LIMIT_EXCEEDED,
        f"{format_native_amount(spent_wei)} already spent in the last 24 h; {format_native_amount(spend)} more "
        f"({fee.describe(intent)}) would exceed the rolling limit of {policy.tx_daily_limit_eth}",
        **facts,
    )


def over_approval_threshold(intent: TransactionIntent, policy: AgentPolicy) -> str | None:
    """Why a transaction that passed every stage still waits for a human, or None: its value is
    above the policy's approval_threshold_eth."""
    threshold = policy.approval_threshold_wei
    if threshold is not None and (intent.value_wei or 0) > threshold:
        return (
            f"value {format_native_amount(intent.value_wei)} is above the approval threshold of "
            f"{policy.approval_threshold_eth}"
        )
    return None
