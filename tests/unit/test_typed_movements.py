"""Typed data, deny by default (rules/typed_movements.py, guardrails.check_typed_data and
check_assets): each family Warden reads becomes movements judged like calldata, a family's fields
under another name are still read, a type that carries an address and an amount and is not read
is refused, and only a (contract, type) pair the policy names signs as moving nothing.

The documents (tests/typed_data_support.py) are each encoded by eth-account too, the project's
independent EIP-712 oracle, so each is one a real wallet would sign. Pure: no broker, no node."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import pytest

from rules import typed_movements
from rules.assets import check_assets
from rules.guardrails import check_typed_data
from rules.judge import approval_needed
from schemas.chains import BUILTIN_BY_NAME
from schemas.codes import Code
from schemas.fields import MAX_UINT256
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy, AssetLimit, Eip712DomainRule, Eip712NoValueType
from schemas.typed_data import EIP712_VALUE_TYPES
from tests.typed_data_support import (
    AGENT,
    ALICE,
    COW,
    MAIL,
    MALLORY,
    NFT,
    ONE_INCH,
    OTHER,
    PERMIT2,
    REACTOR,
    SEAPORT,
    TOKEN,
    UNIT,
    ZERO,
    authorization,
    cow,
    document,
    item,
    mail,
    one_inch,
    seaport,
    uniswapx,
)

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
ANVIL_ID = BUILTIN_BY_NAME["anvil"].chain_id  # the intents' chain, which the documents' domains name


def policy(**overrides: Any) -> AgentPolicy:
    domains = tuple(Eip712DomainRule(verifying_contract=c) for c in (TOKEN, PERMIT2, SEAPORT, COW, ONE_INCH))
    return AgentPolicy(
        **{
            "agent_id": "agent-1",
            "version": 1,
            "agent_public_key": "0x" + "11" * 32,
            "issued_at": T0,
            "tx_to_allowlist": (ALICE, PERMIT2, REACTOR, SEAPORT, COW, ONE_INCH),
            "asset_limits": (
                AssetLimit(chain="anvil", token=TOKEN, symbol="WUSD", decimals=6, max_per_tx="100", daily_limit="250"),
                AssetLimit(chain="anvil", token=NFT, standard="erc721", decimals=0, max_per_tx="1"),
            ),
            "eip712_domain_allowlist": domains,
            "sender_address": AGENT,
            **overrides,
        }
    )


def typed_intent(doc: dict[str, Any]) -> TransactionIntent:
    return TransactionIntent(
        intent_id="i-1", agent_id="agent-1", chain="anvil", intent_type="typed_data", typed_data=doc, created_at=T0
    )


def judge(doc: dict[str, Any], p: AgentPolicy | None = None, spent: int = 0) -> tuple[Code, StageVerdict]:
    """The code of the first stage that refuses (typed_data, then assets), or the assets verdict."""
    intent = typed_intent(doc)
    p = p or policy()
    first = check_typed_data(intent, p, ANVIL_ID)
    if not first.passed:
        return first.code, first
    verdict = check_assets(intent, p, lambda asset: spent)
    return verdict.code, verdict


@pytest.mark.parametrize("primary", ["TransferWithAuthorization", "ReceiveWithAuthorization"])
def test_an_eip3009_authorization_is_a_transfer_under_the_assets_rules(primary: str) -> None:
    ok, verdict = judge(authorization(ALICE, 40 * UNIT, primary))
    assert ok == Code.ASSETS_WITHIN_POLICY and verdict.facts["asset_spend"] == {f"anvil:{TOKEN}": str(40 * UNIT)}
    assert verdict.facts["movements"][0]["kind"] == "transfer" and verdict.facts["movements"][0]["to"] == ALICE
    # The route the attack took: 90 times the cap, to an address the policy never listed.
    assert judge(authorization(MALLORY, 9_000 * UNIT, primary))[0] == Code.RECIPIENT_NOT_ALLOWLISTED
    assert judge(authorization(ALICE, 9_000 * UNIT, primary))[0] == Code.ASSET_OVER_CAP
    assert judge(authorization(ALICE, 40 * UNIT, primary), spent=220 * UNIT)[0] == Code.ASSET_DAILY_LIMIT_EXCEEDED
    # The default policy never covers a value-moving type: its domain must be allowlisted.
    assert (
        judge(authorization(ALICE, 1, primary), policy(eip712_domain_allowlist=(), eip712_default_policy="allow"))[0]
        == Code.EIP712_SPEND_AUTHORIZATION_REFUSED
    )
    # On a token the policy does not hold, it is refused, not signed unread.
    assert (
        judge(
            authorization(ALICE, 1, primary, contract=OTHER),
            policy(eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=OTHER),)),
        )[0]
        == Code.ASSET_NOT_IN_POLICY
    )


def test_an_authorization_that_needs_human_approval_says_so() -> None:
    assets = (AssetLimit(chain="anvil", token=TOKEN, decimals=6, max_per_tx="100", approval_threshold="10"),)
    _, verdict = judge(authorization(ALICE, 40 * UNIT), policy(asset_limits=assets))
    spend = {k: int(v) for k, v in verdict.facts["asset_spend"].items()}
    why = approval_needed(typed_intent(authorization(ALICE, 40 * UNIT)), policy(asset_limits=assets), spend)
    assert why is not None and "approval threshold" in why


def test_a_permits_fields_under_another_name_are_still_a_permit() -> None:
    renamed = document(
        "Allowance",
        {"Allowance": "address owner,address spender,uint256 value,uint256 nonce,uint256 deadline"},
        {"owner": AGENT, "spender": ALICE, "value": str(MAX_UINT256), "nonce": 0, "deadline": 2**40},
        TOKEN,
    )
    code, verdict = judge(renamed)
    assert code == Code.UNLIMITED_APPROVAL_REFUSED and "Permit" in verdict.reason
    # Not on an allowlisted domain: refused as a spend authorization, whatever the default says.
    elsewhere = copy.deepcopy(renamed)
    elsewhere["domain"]["verifyingContract"] = MAIL
    assert judge(elsewhere, policy(eip712_default_policy="allow"))[0] == Code.EIP712_SPEND_AUTHORIZATION_REFUSED


def test_a_value_name_with_other_fields_is_refused_as_unreadable() -> None:
    odd = authorization(ALICE, 1)
    odd["types"]["TransferWithAuthorization"][2] = {"name": "amount", "type": "uint256"}
    odd["message"]["amount"] = odd["message"].pop("value")
    assert judge(odd)[0] == Code.TYPED_DATA_UNREADABLE


def test_a_type_that_carries_an_address_and_an_amount_is_refused_unread_even_with_default_allow() -> None:
    payment = document(
        "Payment", {"Payment": "address to,uint256 amount"}, {"to": MALLORY, "amount": str(10**30)}, MAIL
    )
    for p in (
        policy(),
        policy(eip712_default_policy="allow"),
        policy(eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=MAIL),)),
    ):
        code, verdict = judge(payment, p)
        assert code == Code.EIP712_TYPE_NOT_UNDERSTOOD and "eip712_no_value_types" in verdict.reason
    # Nested: the address in one struct, the amount in another, is the same shape.
    nested = document(
        "Note",
        {"Note": "Who who,Sum sum", "Who": "address wallet", "Sum": "uint128 value"},
        {"who": {"wallet": MALLORY}, "sum": {"value": 5}},
        MAIL,
    )
    assert judge(nested, policy(eip712_default_policy="allow"))[0] == Code.EIP712_TYPE_NOT_UNDERSTOOD


def test_the_spec_mail_signs_only_when_the_policy_names_it_as_moving_nothing() -> None:
    assert judge(mail())[0] == Code.EIP712_TYPE_NOT_NAMED
    assert (
        judge(mail(), policy(eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=MAIL),)))[0]
        == Code.EIP712_TYPE_NOT_NAMED
    )
    named = policy(eip712_no_value_types=(Eip712NoValueType(verifying_contract=MAIL, primary_type="Mail"),))
    code, verdict = judge(mail(), named)
    assert code == Code.ASSETS_WITHIN_POLICY and verdict.facts["movements"] == []
    assert check_typed_data(typed_intent(mail()), named, ANVIL_ID).code == Code.EIP712_NO_VALUE_TYPE
    # The pair is exact: another type on that contract, or the same type on another, is not named.
    other_chain = policy(
        eip712_no_value_types=(Eip712NoValueType(verifying_contract=MAIL, primary_type="Mail", chain_id=1),)
    )
    assert judge(mail(), other_chain)[0] == Code.EIP712_TYPE_NOT_NAMED
    assert (
        judge(
            mail(), policy(eip712_no_value_types=(Eip712NoValueType(verifying_contract=MAIL, primary_type="Letter"),))
        )[0]
        == Code.EIP712_TYPE_NOT_NAMED
    )


def test_default_allow_never_covers_a_token_the_policy_holds() -> None:
    on_token = mail()
    on_token["domain"]["verifyingContract"] = TOKEN
    assert judge(on_token, policy(eip712_default_policy="allow"))[0] == Code.EIP712_TYPE_NOT_NAMED
    assert judge(mail(), policy(eip712_default_policy="allow"))[0] == Code.ASSETS_WITHIN_POLICY


@pytest.mark.parametrize("name", sorted(EIP712_VALUE_TYPES))
def test_a_value_type_cannot_be_named_as_moving_nothing(name: str) -> None:
    with pytest.raises(ValueError, match="judged by what it moves"):
        Eip712NoValueType(verifying_contract=TOKEN, primary_type=name)


def test_a_policy_without_no_value_types_signs_the_same_bytes_as_before() -> None:
    assert b"eip712_no_value_types" not in policy().signing_bytes()
    named = policy(eip712_no_value_types=(Eip712NoValueType(verifying_contract=MAIL, primary_type="Mail"),))
    assert b"eip712_no_value_types" in named.signing_bytes()


# --- Permit2 and UniswapX --------------------------------------------------------------------------


def test_a_uniswapx_order_is_its_input_and_pays_its_swapper() -> None:
    code, verdict = judge(uniswapx(50 * UNIT, AGENT))
    assert code == Code.ASSETS_WITHIN_POLICY and verdict.facts["asset_spend"] == {f"anvil:{TOKEN}": str(50 * UNIT)}
    assert judge(uniswapx(150 * UNIT, AGENT))[0] == Code.UNLIMITED_APPROVAL_REFUSED
    code, verdict = judge(uniswapx(50 * UNIT, MALLORY))
    assert code == Code.PROCEEDS_NOT_ALLOWLISTED and MALLORY in verdict.reason
    assert judge(uniswapx(50 * UNIT, ALICE))[0] == Code.ASSETS_WITHIN_POLICY  # an allowlisted recipient


def test_permit2_batch_forms_count_every_token() -> None:
    batch = document(
        "PermitBatchTransferFrom",
        {
            "PermitBatchTransferFrom": "TokenPermissions[] permitted,address spender,uint256 nonce,uint256 deadline",
            "TokenPermissions": "address token,uint256 amount",
        },
        {
            "permitted": [{"token": TOKEN, "amount": 60 * UNIT}, {"token": TOKEN, "amount": 50 * UNIT}],
            "spender": REACTOR,
            "nonce": 0,
            "deadline": 2**40,
        },
        PERMIT2,
        name="Permit2",
    )
    assert judge(batch)[0] == Code.ASSET_OVER_CAP  # 110 of a 100 cap, across two entries


# --- orders ----------------------------------------------------------------------------------------


def test_a_seaport_order_gives_every_offer_item_to_whoever_fills_it() -> None:
    code, verdict = judge(seaport([item(1, TOKEN, 30 * UNIT), item(2, NFT, 1, identifier=9)]))
    assert code == Code.ASSETS_WITHIN_POLICY
    assert verdict.facts["asset_spend"] == {f"anvil:{TOKEN}": str(30 * UNIT), f"anvil:{NFT}": "1"}
    assert judge(seaport([item(1, TOKEN, 300 * UNIT)]))[0] == Code.ASSET_OVER_CAP
    assert judge(seaport([item(1, OTHER, 1)]))[0] == Code.ASSET_NOT_IN_POLICY
    assert judge(seaport([item(0, ZERO, 1)]))[0] == Code.TYPED_DATA_UNREADABLE  # native offers: refused
    assert judge(seaport([item(1, TOKEN, 1)], recipient=MALLORY))[0] == Code.PROCEEDS_NOT_ALLOWLISTED
    # The marketplace is who the offer goes to, so it must be allowlisted like any recipient.
    assert judge(seaport([item(1, TOKEN, 1)]), policy(tx_to_allowlist=(ALICE,)))[0] == Code.RECIPIENT_NOT_ALLOWLISTED


def test_a_cow_order_sells_its_amount_and_fee_and_pays_its_owner() -> None:
    code, verdict = judge(cow(60 * UNIT, 5 * UNIT))
    assert code == Code.ASSETS_WITHIN_POLICY and verdict.facts["asset_spend"] == {f"anvil:{TOKEN}": str(65 * UNIT)}
    assert judge(cow(99 * UNIT, 2 * UNIT))[0] == Code.ASSET_OVER_CAP  # the fee counts too
    assert judge(cow(1, 0, receiver=MALLORY))[0] == Code.PROCEEDS_NOT_ALLOWLISTED
    assert judge(cow(1, 0, receiver=AGENT))[0] == Code.ASSETS_WITHIN_POLICY  # the policy's own sender


def test_a_1inch_order_sells_its_making_amount() -> None:
    code, verdict = judge(one_inch(20 * UNIT))
    assert code == Code.ASSETS_WITHIN_POLICY and verdict.facts["asset_spend"] == {f"anvil:{TOKEN}": str(20 * UNIT)}
    assert judge(one_inch(200 * UNIT))[0] == Code.ASSET_OVER_CAP
    assert judge(one_inch(1, receiver=MALLORY))[0] == Code.PROCEEDS_NOT_ALLOWLISTED
    # An address word with bits above 160 is not an address Warden will guess at.
    assert judge(one_inch(1, asset_word=(1 << 200) | int(TOKEN, 16)))[0] == Code.TYPED_DATA_UNREADABLE


def test_every_family_is_a_shape_eth_account_hashes() -> None:
    # The shapes above come from the protocols' own type strings; eth-account hashing each test
    # document (in `document`) shows they are well formed, and each one is read as its family.
    docs = [authorization(ALICE, 1), uniswapx(1, AGENT), seaport([item(1, TOKEN, 1)]), cow(1, 0), one_inch(1)]

    def label(doc: dict[str, Any]) -> str:
        typed = typed_intent(doc).typed_data
        assert typed is not None
        shape = typed_movements.value_shape_of(typed)
        assert shape is not None, doc
        return shape.label

    labels = [label(d) for d in docs]
    assert labels == [
        "EIP-3009 TransferWithAuthorization",
        "Permit2 PermitWitnessTransferFrom",
        "Seaport OrderComponents",
        "CoW Protocol GPv2Order",
        "1inch limit Order",
    ]
