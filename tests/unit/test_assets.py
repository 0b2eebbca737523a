"""The asset rules (rules/movements.py, rules.assets.check_assets): what an intent's calldata or
typed data moves, and how the policy's asset_limits, allowlist, block_unlimited_approvals and
contract_calls judge it. Pure: no broker, no node.

Calldata is built here by hand from the published 4-byte selectors and 32-byte words, not with
the eth-abi encoder the decoder uses, so a decoder that misreads an argument fails these tests.
The routes a hostile agent would take (unlimited approvals, other recipients, unknown calls,
non-canonical encodings, look-alike Permits) each have a test that fails without its rule."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any, cast

import pytest

from evm.rpc_results import Log
from rules import movements
from rules.assets import check_assets
from rules.simulation import simulation_needed
from rules.verdicts import simulation_required
from runtime.rpc import Node
from schemas.codes import Code
from schemas.fields import MAX_UINT256
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy, AssetLimit, ContractCallRule

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
NFT = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
MULTI = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
ROUTER = "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"
PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
ALICE = "0x00000000000000000000000000000000000A11cE"
MALLORY = "0x000000000000000000000000000000000000bad1"
AGENT_ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
UNIT = 10**6  # the test token has 6 decimals

# The selectors as EIPs 20, 721 and 1155 publish them.
PUBLISHED = {
    ("erc20", "transfer(address,uint256)"): "0xa9059cbb",
    ("erc20", "transferFrom(address,address,uint256)"): "0x23b872dd",
    ("erc20", "approve(address,uint256)"): "0x095ea7b3",
    ("erc20", "increaseAllowance(address,uint256)"): "0x39509351",
    ("erc721", "transferFrom(address,address,uint256)"): "0x23b872dd",
    ("erc721", "safeTransferFrom(address,address,uint256)"): "0x42842e0e",
    ("erc721", "safeTransferFrom(address,address,uint256,bytes)"): "0xb88d4fde",
    ("erc721", "approve(address,uint256)"): "0x095ea7b3",
    ("erc721", "setApprovalForAll(address,bool)"): "0xa22cb465",
    ("erc1155", "safeTransferFrom(address,address,uint256,uint256,bytes)"): "0xf242432a",
    ("erc1155", "safeBatchTransferFrom(address,address,uint256[],uint256[],bytes)"): "0x2eb2c2d6",
    ("erc1155", "setApprovalForAll(address,bool)"): "0xa22cb465",
}


def word(value: int | str) -> str:
    if isinstance(value, str):  # an address
        return value[2:].lower().rjust(64, "0")
    return f"{value:064x}"


def calldata(selector: str, *words: int | str) -> str:
    return selector + "".join(word(w) for w in words)


def intent(data: str = "0x", to: str = TOKEN, value: str = "0", **fields: Any) -> TransactionIntent:
    return TransactionIntent(
        **{
            "intent_id": "i-1",
            "agent_id": "agent-1",
            "chain": "anvil",
            "to": to,
            "value": value,
            "data": data,
            "created_at": T0,
            **fields,
        }
    )


ASSETS = (
    AssetLimit(chain="anvil", token=TOKEN, symbol="WUSD", decimals=6, max_per_tx="100", daily_limit="250"),
    AssetLimit(chain="anvil", token=NFT, standard="erc721", decimals=0, max_per_tx="2"),
    AssetLimit(chain="anvil", token=MULTI, standard="erc1155", decimals=0, daily_limit="10"),
)


def policy(**fields: Any) -> AgentPolicy:
    return AgentPolicy(
        **{
            "agent_id": "agent-1",
            "version": 1,
            "agent_public_key": "0x" + "11" * 32,
            "issued_at": T0,
            "tx_to_allowlist": (TOKEN, NFT, MULTI, ROUTER, ALICE),
            "asset_limits": ASSETS,
            "sender_address": AGENT_ADDRESS,
            **fields,
        }
    )


def judge(i: TransactionIntent, p: AgentPolicy | None = None, spent: int = 0) -> StageVerdict:
    return check_assets(i, p or policy(), lambda asset: spent)


def test_the_selectors_are_the_published_ones() -> None:
    ours = {(standard, f.signature): f.selector for standard, fs in movements.TOKEN_FUNCTIONS.items() for f in fs}
    assert ours == PUBLISHED


# --- decoding -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, to, expected",
    [
        (calldata("0xa9059cbb", ALICE, 5 * UNIT), TOKEN, ("transfer", None, ALICE, 5 * UNIT, ())),
        (calldata("0x23b872dd", MALLORY, ALICE, 7), TOKEN, ("transfer", MALLORY, ALICE, 7, ())),
        (calldata("0x095ea7b3", ROUTER, 9), TOKEN, ("approval", None, ROUTER, 9, ())),
        (calldata("0x39509351", ROUTER, 3), TOKEN, ("approval", None, ROUTER, 3, ())),
        (calldata("0x23b872dd", AGENT_ADDRESS, ALICE, 77), NFT, ("transfer", AGENT_ADDRESS, ALICE, 1, (77,))),
        (calldata("0x42842e0e", AGENT_ADDRESS, ALICE, 78), NFT, ("transfer", AGENT_ADDRESS, ALICE, 1, (78,))),
        # safeTransferFrom(from, to, id, bytes "hi"): the bytes' offset is 0x80.
        (
            calldata("0xb88d4fde", AGENT_ADDRESS, ALICE, 79, 0x80, 2) + "6869".ljust(64, "0"),
            NFT,
            ("transfer", AGENT_ADDRESS, ALICE, 1, (79,)),
        ),
        (calldata("0x095ea7b3", ROUTER, 80), NFT, ("approval", None, ROUTER, 1, (80,))),
        (calldata("0xa22cb465", ROUTER, 1), NFT, ("operator", None, ROUTER, 1, ())),
        (
            calldata("0xf242432a", AGENT_ADDRESS, ALICE, 4, 6, 0xA0, 0),
            MULTI,
            ("transfer", AGENT_ADDRESS, ALICE, 6, (4,)),
        ),
        # safeBatchTransferFrom(from, to, [1, 2], [3, 4], ""): offsets 0xa0, 0x100, 0x160.
        (
            calldata("0x2eb2c2d6", AGENT_ADDRESS, ALICE, 0xA0, 0x100, 0x160, 2, 1, 2, 2, 3, 4, 0),
            MULTI,
            ("transfer", AGENT_ADDRESS, ALICE, 7, (1, 2)),
        ),
    ],
)
def test_token_calls_decode_to_their_movement(
    data: str,
    to: str,
    expected: tuple[str, str, str, int, tuple[int]]
    | tuple[str, None, str, int, tuple[int]]
    | tuple[str, str, str, int, tuple[int, int]]
    | tuple[str, str, str, int, tuple[()]]
    | tuple[str, None, str, int, tuple[()]],
) -> None:
    reading = movements.movements_of(intent(data, to=to), policy())
    (move,) = reading.movements
    assert (move.kind, move.source, move.to, move.amount, move.token_ids) == expected
    assert move.asset == to and reading.other_call is None


def test_value_and_delegations_are_movements_too() -> None:
    i = intent("0x", to=ALICE, value="0.5", tx_type=4, authorization_list=({"chain_id": 31337, "address": ROUTER},))
    kinds = [(m.kind, m.asset, m.to, m.amount) for m in movements.movements_of(i, policy()).movements]
    assert kinds == [("transfer", "native", ALICE, 5 * 10**17), ("delegation", "account", ROUTER, 0)]


def test_a_non_canonical_encoding_is_refused() -> None:
    good = calldata("0xa9059cbb", ALICE, 5)
    assert judge(intent(good)).passed
    for bad in (
        good + "00" * 32,  # trailing bytes the token would ignore but a reader might not
        good[:-2],  # short
        "0xa9059cbb" + "ff" * 12 + good[34:],
    ):  # dirty high bytes in the address word
        verdict = judge(intent(bad))
        assert (verdict.passed, verdict.code) == (False, Code.CALLDATA_MALFORMED), bad


# --- recipients, caps, the rolling limit ----------------------------------------------------------


def test_a_token_transfer_to_a_non_allowlisted_recipient_is_refused() -> None:
    verdict = judge(intent(calldata("0xa9059cbb", MALLORY, 1)))
    assert (verdict.passed, verdict.code) == (False, Code.RECIPIENT_NOT_ALLOWLISTED)
    assert MALLORY in verdict.reason
    assert judge(intent(calldata("0xa9059cbb", ALICE, 1))).passed


def test_transfer_from_someone_else_still_needs_an_allowlisted_recipient() -> None:
    verdict = judge(intent(calldata("0x23b872dd", ALICE, MALLORY, 1)))
    assert verdict.code == Code.RECIPIENT_NOT_ALLOWLISTED


def test_an_approval_to_a_non_allowlisted_spender_is_refused() -> None:
    verdict = judge(intent(calldata("0x095ea7b3", MALLORY, 1)))
    assert (verdict.passed, verdict.code) == (False, Code.RECIPIENT_NOT_ALLOWLISTED)
    assert "spender" in verdict.reason


def test_the_per_transaction_cap_counts_token_units() -> None:
    assert judge(intent(calldata("0xa9059cbb", ALICE, 100 * UNIT))).passed
    verdict = judge(intent(calldata("0xa9059cbb", ALICE, 100 * UNIT + 1)))
    assert (verdict.passed, verdict.code) == (False, Code.ASSET_OVER_CAP)
    assert "100.000001 WUSD" in verdict.reason and "100 WUSD" in verdict.reason


def test_the_rolling_limit_adds_what_the_window_holds() -> None:
    assert judge(intent(calldata("0xa9059cbb", ALICE, 50 * UNIT)), spent=200 * UNIT).passed
    verdict = judge(intent(calldata("0xa9059cbb", ALICE, 50 * UNIT + 1)), spent=200 * UNIT)
    assert (verdict.passed, verdict.code) == (False, Code.ASSET_DAILY_LIMIT_EXCEEDED)
    assert verdict.facts["asset_spend"] == {f"anvil:{TOKEN}": str(50 * UNIT + 1)}


def test_nfts_count_one_each_and_erc1155_counts_amounts() -> None:
    assert judge(intent(calldata("0x23b872dd", AGENT_ADDRESS, ALICE, 5), to=NFT)).facts["asset_spend"] == {
        f"anvil:{NFT}": "1"
    }
    batch = calldata("0x2eb2c2d6", AGENT_ADDRESS, ALICE, 0xA0, 0x100, 0x160, 2, 1, 2, 2, 3, 4, 0)
    assert judge(intent(batch, to=MULTI), spent=3).passed
    assert judge(intent(batch, to=MULTI), spent=4).code == Code.ASSET_DAILY_LIMIT_EXCEEDED


def test_a_token_not_in_the_policy_is_refused() -> None:
    unknown = "0x1111111111111111111111111111111111111111"
    p = policy(tx_to_allowlist=(unknown, ALICE), contract_calls=(ContractCallRule(contract=unknown, selectors="any"),))
    verdict = judge(intent(calldata("0xa9059cbb", ALICE, 1), to=unknown), p)
    # Even under "any": a token function on a contract that is not a listed asset moves an unlisted token.
    assert (verdict.passed, verdict.code) == (False, Code.ASSET_NOT_IN_POLICY)


def test_an_asset_on_another_chain_does_not_count_here() -> None:
    p = policy(asset_limits=(AssetLimit(chain="base", token=TOKEN, decimals=6),))
    assert judge(intent(calldata("0xa9059cbb", ALICE, 1)), p).code == Code.ASSET_NOT_IN_POLICY


# --- approvals -------------------------------------------------------------------------------------


def test_an_unlimited_approval_is_refused() -> None:
    verdict = judge(intent(calldata("0x095ea7b3", ROUTER, MAX_UINT256)))
    assert (verdict.passed, verdict.code) == (False, Code.UNLIMITED_APPROVAL_REFUSED)
    assert "2**256-1 (unlimited)" in verdict.reason


def test_an_approval_above_the_assets_limit_is_refused_and_one_within_counts_as_spend() -> None:
    verdict = judge(intent(calldata("0x095ea7b3", ROUTER, 100 * UNIT + 1)))
    assert verdict.code == Code.UNLIMITED_APPROVAL_REFUSED
    within = judge(intent(calldata("0x095ea7b3", ROUTER, 100 * UNIT)))
    assert within.passed and within.facts["asset_spend"] == {f"anvil:{TOKEN}": str(100 * UNIT)}
    # It counts against the day like a transfer: the power to take it was handed over.
    assert (
        judge(intent(calldata("0x095ea7b3", ROUTER, 100 * UNIT)), spent=200 * UNIT).code
        == Code.ASSET_DAILY_LIMIT_EXCEEDED
    )


def test_an_asset_without_limits_cannot_be_approved_while_the_block_is_on() -> None:
    p = policy(asset_limits=(AssetLimit(chain="anvil", token=TOKEN, decimals=6),))
    assert judge(intent(calldata("0xa9059cbb", ALICE, 10**30)), p).passed  # no limits: transfers are free
    assert judge(intent(calldata("0x095ea7b3", ROUTER, 1)), p).code == Code.UNLIMITED_APPROVAL_REFUSED
    unblocked = policy(asset_limits=p.asset_limits, block_unlimited_approvals=False)
    verdict = judge(intent(calldata("0x095ea7b3", ROUTER, MAX_UINT256)), unblocked)
    assert verdict.passed and verdict.facts["asset_spend"] == {}  # the admin's choice: not counted


def test_set_approval_for_all_needs_the_operator_allowlisted_by_name() -> None:
    grant = calldata("0xa22cb465", MALLORY, 1)
    assert judge(intent(grant, to=NFT)).code == Code.OPERATOR_NOT_ALLOWLISTED
    # An empty allowlist allows any recipient, but never an operator for all tokens.
    open_policy = policy(tx_to_allowlist=())
    assert judge(intent(grant, to=NFT), open_policy).code == Code.OPERATOR_NOT_ALLOWLISTED
    assert judge(intent(calldata("0xa22cb465", ROUTER, 1), to=NFT)).passed
    assert judge(intent(calldata("0xa22cb465", MALLORY, 0), to=NFT)).passed  # revoking is always allowed


def test_set_approval_for_all_on_an_erc1155_token_is_read_as_an_operator_grant() -> None:
    # Its bool is no list of amounts to pair with token ids, and no reason to refuse it as malformed.
    (move,) = movements.movements_of(intent(calldata("0xa22cb465", ROUTER, 1), to=MULTI), policy()).movements
    assert (move.kind, move.to, move.amount, move.token_ids) == ("operator", ROUTER, 1, ())
    assert judge(intent(calldata("0xa22cb465", ROUTER, 1), to=MULTI)).passed
    assert judge(intent(calldata("0xa22cb465", MALLORY, 1), to=MULTI)).code == Code.OPERATOR_NOT_ALLOWLISTED
    assert judge(intent(calldata("0xa22cb465", MALLORY, 0), to=MULTI)).passed  # revoking is always allowed


# --- other calls ----------------------------------------------------------------------------------


def test_unknown_calldata_needs_its_selector_in_contract_calls() -> None:
    swap = "0x12345678" + word(1)
    verdict = judge(intent(swap, to=ROUTER))
    assert (verdict.passed, verdict.code) == (False, Code.CALLDATA_NOT_ALLOWED)
    assert "0x12345678" in verdict.reason
    listed = policy(contract_calls=(ContractCallRule(contract=ROUTER, selectors=("0x12345678",)),))
    assert judge(intent(swap, to=ROUTER), listed).passed
    assert judge(intent("0x87654321", to=ROUTER), listed).code == Code.CALLDATA_NOT_ALLOWED
    anything = policy(contract_calls=(ContractCallRule(contract=ROUTER, selectors="any"),))
    assert judge(intent("0x87654321", to=ROUTER), anything).passed
    # Calldata shorter than a selector is calldata too.
    assert judge(intent("0x12", to=ROUTER)).code == Code.CALLDATA_NOT_ALLOWED


def test_a_token_contract_is_only_read_for_its_standards_functions() -> None:
    mint = calldata("0x40c10f19", ALICE, 5)  # mint(address,uint256): not a transfer, so contract_calls decides
    assert judge(intent(mint)).code == Code.CALLDATA_NOT_ALLOWED
    allowed = policy(contract_calls=(ContractCallRule(contract=TOKEN, selectors=("mint(address,uint256)",)),))
    # Another function of a token could move it unseen (a multicall of transfers): it is simulated.
    assert judge(intent(mint), allowed).passed and simulation_required(intent(mint), allowed)
    # A rule that waives simulation does not waive it for a token's other functions.
    unsimulated = policy(
        contract_calls=(ContractCallRule(contract=TOKEN, selectors=("mint(address,uint256)",), unsimulated=True),)
    )
    unseen = judge(intent(mint), unsimulated)
    assert (unseen.passed, unseen.code) == (False, Code.CALLDATA_NOT_ALLOWED) and "simulate_first" in unseen.reason
    assert judge(intent(mint, simulate_first=True), unsimulated).passed
    assert judge(intent(mint), policy(contract_calls=unsimulated.contract_calls, require_simulation=True)).passed


def test_a_call_a_contract_rule_allows_is_simulated_unless_the_rule_says_unsimulated() -> None:
    swap = "0x12345678" + word(1)
    listed = policy(contract_calls=(ContractCallRule(contract=ROUTER, selectors=("0x12345678",)),))
    waived = policy(contract_calls=(ContractCallRule(contract=ROUTER, selectors=("0x12345678",), unsimulated=True),))
    assert simulation_required(intent(swap, to=ROUTER), listed)
    assert not simulation_required(intent(swap, to=ROUTER), waived)
    # A token's own transfer is read in full: no simulation needed for it.
    assert not simulation_required(intent(calldata("0xa9059cbb", ALICE, 5)), listed)
    # Value to an address that may have code is asked about (on Anvil: tests/stack/test_routes_and_typed_data.py);
    # where it cannot matter the node is not asked at all (None here: asking would raise).
    plain = intent(to=ROUTER, value="1", gas_limit=21_000)
    no_node = cast(Node, None)
    assert not asyncio.run(simulation_needed(plain, policy(), no_node))
    assert not asyncio.run(simulation_needed(intent(to=ROUTER, value="1"), policy(tx_to_allowlist=()), no_node))
    with pytest.raises(AttributeError):
        asyncio.run(simulation_needed(intent(to=ROUTER, value="1", gas_limit=30_000), policy(), no_node))
    # The rule's new field leaves a rule without it the same bytes, so signed policies still verify.
    assert b"unsimulated" not in listed.contract_calls[0].to_bytes()
    assert b'"unsimulated":true' in waived.contract_calls[0].to_bytes()


def test_contract_call_selectors_accept_signatures_and_refuse_junk() -> None:
    rule = ContractCallRule(contract=ROUTER, selectors=("transfer(address, uint256)", "0xDEADBEEF"))
    assert rule.selectors == ("0xa9059cbb", "0xdeadbeef")
    with pytest.raises(ValueError, match="4 bytes of hex"):
        ContractCallRule(contract=ROUTER, selectors=("0x1234",))


# --- EIP-712 spend authorizations ----------------------------------------------------------------


def typed_intent(typed: dict[str, Any]) -> TransactionIntent:
    return TransactionIntent(
        intent_id="i-1", agent_id="agent-1", chain="anvil", intent_type="typed_data", typed_data=typed, created_at=T0
    )


DOMAIN_TYPES = [
    {"name": "name", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def permit(value: str, spender: str = ROUTER, contract: str = TOKEN) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": DOMAIN_TYPES,
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {"name": "WUSD", "chainId": 31337, "verifyingContract": contract},
        "message": {"owner": AGENT_ADDRESS, "spender": spender, "value": value, "nonce": 0, "deadline": 2**40},
    }


def permit_single(amount: str, token: str = TOKEN) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": DOMAIN_TYPES,
            "PermitSingle": [
                {"name": "details", "type": "PermitDetails"},
                {"name": "spender", "type": "address"},
                {"name": "sigDeadline", "type": "uint256"},
            ],
            "PermitDetails": [
                {"name": "token", "type": "address"},
                {"name": "amount", "type": "uint160"},
                {"name": "expiration", "type": "uint48"},
                {"name": "nonce", "type": "uint48"},
            ],
        },
        "primaryType": "PermitSingle",
        "domain": {"name": "Permit2", "chainId": 31337, "verifyingContract": PERMIT2},
        "message": {
            "details": {"token": token, "amount": amount, "expiration": 2**40, "nonce": 0},
            "spender": ROUTER,
            "sigDeadline": 2**40,
        },
    }


def test_a_permit_within_the_limit_counts_and_one_above_is_refused() -> None:
    ok = judge(typed_intent(permit(str(40 * UNIT))))
    assert ok.passed and ok.facts["asset_spend"] == {f"anvil:{TOKEN}": str(40 * UNIT)}
    assert ok.facts["movements"][0]["via"] == "Permit"
    assert judge(typed_intent(permit(str(101 * UNIT)))).code == Code.UNLIMITED_APPROVAL_REFUSED
    assert judge(typed_intent(permit(hex(MAX_UINT256)))).code == Code.UNLIMITED_APPROVAL_REFUSED
    assert judge(typed_intent(permit(str(40 * UNIT), spender=MALLORY))).code == Code.RECIPIENT_NOT_ALLOWLISTED
    assert judge(typed_intent(permit("1", contract=ROUTER))).code == Code.ASSET_NOT_IN_POLICY


def test_permit2_names_the_token_it_approves() -> None:
    assert judge(typed_intent(permit_single(str(10 * UNIT)))).facts["asset_spend"] == {f"anvil:{TOKEN}": str(10 * UNIT)}
    assert judge(typed_intent(permit_single(str(2**160 - 1)))).code == Code.UNLIMITED_APPROVAL_REFUSED
    assert judge(typed_intent(permit_single("1", token=ALICE))).code == Code.ASSET_NOT_IN_POLICY


def test_a_dai_permit_with_allowed_true_is_unlimited() -> None:
    dai = permit("0")
    dai["types"]["Permit"] = [
        {"name": "holder", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiry", "type": "uint256"},
        {"name": "allowed", "type": "bool"},
    ]
    dai["message"] = {"holder": AGENT_ADDRESS, "spender": ROUTER, "nonce": 0, "expiry": 2**40, "allowed": True}
    assert judge(typed_intent(dai)).code == Code.UNLIMITED_APPROVAL_REFUSED
    dai["message"]["allowed"] = False
    assert judge(typed_intent(dai)).passed


def test_a_look_alike_permit_is_refused_not_guessed() -> None:
    odd = permit("1")
    odd["types"]["Permit"][2] = {"name": "amount", "type": "uint256"}  # "value" renamed: not a real Permit
    odd["message"]["amount"] = odd["message"].pop("value")
    verdict = judge(typed_intent(odd))
    assert (verdict.passed, verdict.code) == (False, Code.TYPED_DATA_UNREADABLE)


def test_declared_outflows_count_against_the_asset() -> None:
    pull = "0x12345678" + word(1)
    p = policy(contract_calls=(ContractCallRule(contract=ROUTER, selectors=("0x12345678",)),))
    verdict = judge(intent(pull, to=ROUTER, declared_outflows=({"token": TOKEN, "amount": str(30 * UNIT)},)), p)
    assert verdict.passed and verdict.facts["asset_spend"] == {f"anvil:{TOKEN}": str(30 * UNIT)}
    assert (
        judge(
            intent(pull, to=ROUTER, declared_outflows=({"token": TOKEN, "amount": str(30 * UNIT)},)),
            p,
            spent=230 * UNIT,
        ).code
        == Code.ASSET_DAILY_LIMIT_EXCEEDED
    )
    unlisted = intent(pull, to=ROUTER, declared_outflows=({"token": ALICE, "amount": "1"},))
    assert judge(unlisted, p).code == Code.ASSET_NOT_IN_POLICY
    assert movements.declared_outflows(movements.movements_of(unlisted, p), AGENT_ADDRESS) == {ALICE: 1}


def test_balance_changes_read_transfer_logs_of_every_standard() -> None:
    me, other = AGENT_ADDRESS, ALICE

    def topic(address: str) -> str:
        return "0x" + word(address)

    logs: list[Log] = [
        {"address": TOKEN, "topics": [movements.TRANSFER_TOPIC, topic(me), topic(other)], "data": "0x" + word(5)},
        {"address": TOKEN, "topics": [movements.TRANSFER_TOPIC, topic(other), topic(me)], "data": "0x" + word(2)},
        {"address": NFT, "topics": [movements.TRANSFER_TOPIC, topic(me), topic(other), "0x" + word(9)], "data": "0x"},
        {
            "address": MULTI,
            "topics": [movements.TRANSFER_SINGLE_TOPIC, topic(ROUTER), topic(me), topic(other)],
            "data": "0x" + word(1) + word(4),
        },
        {
            "address": movements.NATIVE_TRANSFER_ADDRESS,
            "topics": [movements.TRANSFER_TOPIC, topic(me), topic(other)],
            "data": "0x" + word(10**18),
        },
        {"address": TOKEN, "topics": [movements.TRANSFER_TOPIC, topic(other), topic(ROUTER)], "data": "0x" + word(7)},
    ]
    changes = {c.asset: (c.outgoing, c.incoming) for c in movements.balance_changes(logs, me.lower())}
    assert changes == {TOKEN: (5, 2), NFT: (1, 0), MULTI: (4, 0), "native": (10**18, 0)}
