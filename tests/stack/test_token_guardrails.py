"""Token movements under the policy, on the real stack with real contracts (infra/contracts:
Solidity compiled by solc, deployed on Anvil): the worker and the signer read calldata and
Permits, apply the recipient allowlist and the per-asset limits, block unlimited approvals and
unknown calls, and simulation catches a contract that takes more than its call says.

Balances are read from the token's own ``balanceOf`` on Anvil, not from Warden's records. The
signer is also handed approved records straight (as a hostile writer to warden.intents.approved
would) to show each rule holds there on its own."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from eth_abi import decode as abi_decode

from infra import contracts
from infra.stack.demo_script import permit_typed_data
from infra.stack.local import LocalStack
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from schemas.codes import Code
from schemas.fields import MAX_UINT256
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentRejected, SignedMessage, SignedTransaction
from schemas.policy import Eip712DomainRule
from schemas.stages import Stage
from sdk.client import OUTCOME_TOPICS, Client, Outcome, new_intent, new_typed_data_intent, wait_outcomes
from tests.signer_support import LoneSigner
from tests.support import make_agent
from tests.token_support import ALICE, DEPLOYER, UNIT, balance_of, mint_tokens, token_assets

ANVIL_ID = 31337
MALLORY = "0x000000000000000000000000000000000000bad1"


async def _submit(settings: Settings, intents: list[TransactionIntent], timeout_s: float = 60.0) -> dict[str, Outcome]:
    start = await end_offsets(settings, OUTCOME_TOPICS)
    async with Client(settings) as client:
        await asyncio.gather(*(client.submit(i) for i in intents))
    return await wait_outcomes(settings, intents, timeout_s, start)


def test_token_routes_through_the_pipeline(
    stack: LocalStack, run: Callable[..., Any], deployed: dict[str, str]
) -> None:
    """Each route a compromised agent would take to move tokens, through worker and signer."""
    settings = stack.settings
    token, greedy, router = deployed["token"], deployed["greedy"], deployed["router"]
    agent = f"tok-{os.urandom(3).hex()}"

    async def scenario() -> tuple[
        dict[str, TransactionIntent],
        dict[str, Outcome],
        tuple[TransactionIntent, dict[str, Outcome]],
        tuple[TransactionIntent, TransactionIntent, dict[str, Outcome]],
        dict[str, int],
        int,
        str,
    ]:
        key, address, _ = await make_agent(
            settings,
            agent,
            tx_to_allowlist=(token, greedy, router, ALICE),
            asset_limits=token_assets(deployed, max_per_tx="50", daily_limit="500"),
            eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=token, chain_id=ANVIL_ID),),
            contract_calls=({"contract": router, "selectors": ("pull(address,uint256)", "pullMore(address,uint256)")},),
        )
        await mint_tokens(settings, token, address, 1_000 * UNIT)
        await mint_tokens(settings, greedy, address, 1_000 * UNIT)

        def tx(to: str, data: str, **fields: Any) -> TransactionIntent:
            return new_intent(key, agent_id=agent, chain="anvil", to=to, value="0", data=data, broadcast=True, **fields)

        transfer = contracts.calldata("transfer(address,uint256)", ALICE, 10 * UNIT)
        intents = {
            "transfer": tx(token, transfer),
            "to-mallory": tx(token, contracts.calldata("transfer(address,uint256)", MALLORY, 1 * UNIT)),
            "unlimited-approve": tx(token, contracts.calldata("approve(address,uint256)", router, MAX_UINT256)),
            "unknown-call": tx(token, contracts.calldata("mint(address,uint256)", MALLORY, 10**30)),
            "greedy": tx(greedy, contracts.calldata("transfer(address,uint256)", ALICE, 5 * UNIT), simulate_first=True),
            "permit-over": new_typed_data_intent(
                key,
                agent_id=agent,
                chain="anvil",
                typed_data=permit_typed_data(
                    token,
                    ANVIL_ID,
                    owner=address,
                    spender=router,
                    value=51 * UNIT,
                    nonce=0,
                    deadline=2**40,
                    name="Warden USD",
                ),
            ),
        }
        first = await _submit(settings, list(intents.values()))
        # Then the router: approve within the limit, a pull that takes what it declares, and one that takes twice.
        approve = tx(token, contracts.calldata("approve(address,uint256)", router, 40 * UNIT))
        second = await _submit(settings, [approve])
        declared = ({"token": token, "amount": str(20 * UNIT)},)
        pull = tx(
            router,
            contracts.calldata("pull(address,uint256)", token, 20 * UNIT),
            simulate_first=True,
            declared_outflows=declared,
        )
        pull_more = tx(
            router,
            contracts.calldata("pullMore(address,uint256)", token, 10 * UNIT),
            simulate_first=True,
            declared_outflows=({"token": token, "amount": str(10 * UNIT)},),
        )
        third = await _submit(settings, [pull, pull_more])
        balances = {who: await balance_of(settings, token, who) for who in (address, ALICE, router, MALLORY)}
        greedy_left = await balance_of(settings, greedy, address)
        return intents, first, (approve, second), (pull, pull_more, third), balances, greedy_left, address

    intents, first, (approve, second), (pull, pull_more, third), balances, greedy_left, address = run(scenario())
    got = {name: first[i.intent_id] for name, i in intents.items()}
    assert isinstance(got["transfer"], SignedTransaction) and got["transfer"].status == "mined", got["transfer"]
    refused = {name: (o.stage, o.code) for name, o in got.items() if isinstance(o, IntentRejected)}
    assert refused == {
        "to-mallory": ("assets", Code.RECIPIENT_NOT_ALLOWLISTED),
        "unlimited-approve": ("assets", Code.UNLIMITED_APPROVAL_REFUSED),
        "unknown-call": ("assets", Code.CALLDATA_NOT_ALLOWED),
        "greedy": ("simulation", Code.SIMULATION_MISMATCH),
        "permit-over": ("assets", Code.UNLIMITED_APPROVAL_REFUSED),
    }
    # The simulation saw the greedy token take 10 for a transfer of 5, and said so.
    facts = next(v.facts for v in got["greedy"].verdicts if v.stage == Stage.SIMULATION)
    assert {c["asset"]: c["out"] for c in facts["balance_changes"]} == {deployed["greedy"]: str(10 * UNIT)}
    assert facts["declared_out"] == {deployed["greedy"]: str(5 * UNIT)}
    assert second[approve.intent_id].status == "mined"
    assert third[pull.intent_id].status == "mined", third[pull.intent_id]
    assert (third[pull_more.intent_id].stage, third[pull_more.intent_id].code) == (
        Stage.SIMULATION,
        Code.SIMULATION_MISMATCH,
    )
    # On chain: alice got 10, the router 20; nothing reached mallory; the greedy token took nothing.
    assert balances == {address: 970 * UNIT, ALICE: 10 * UNIT, deployed["router"]: 20 * UNIT, MALLORY: 0}
    assert greedy_left == 1_000 * UNIT


def test_a_hundred_concurrent_token_transfers_never_pass_the_daily_limit(
    stack: LocalStack, run: Callable[..., Any], deployed: dict[str, str]
) -> None:
    """100 transfers of 1 WUSD at once against a 25 WUSD rolling limit: exactly 25 are mined, the
    rest refused, and the recipient's balanceOf on Anvil says 25."""
    settings = stack.settings
    token = deployed["token"]
    agent = f"tok-burst-{os.urandom(3).hex()}"
    recipient = "0x" + os.urandom(20).hex()

    async def scenario() -> tuple[list[TransactionIntent], dict[str, Outcome], int]:
        key, address, _ = await make_agent(
            settings, agent, tx_to_allowlist=(token, recipient), asset_limits=token_assets(deployed, daily_limit="25")
        )
        await mint_tokens(settings, token, address, 1_000 * UNIT)
        data = contracts.calldata("transfer(address,uint256)", recipient, 1 * UNIT)
        intents = [
            new_intent(key, agent_id=agent, chain="anvil", to=token, value="0", data=data, broadcast=True)
            for _ in range(100)
        ]
        outcomes = await _submit(settings, intents, timeout_s=180.0)
        return intents, outcomes, await balance_of(settings, token, recipient)

    intents, outcomes, received = run(scenario())
    assert len(outcomes) == 100
    mined = [o for o in outcomes.values() if isinstance(o, SignedTransaction)]
    refused = [o for o in outcomes.values() if isinstance(o, IntentRejected)]
    assert {o.status for o in mined} == {"mined"} and len(mined) == 25
    assert len(refused) == 75
    assert {(o.stage, o.code) for o in refused} == {(Stage.ASSETS, Code.ASSET_DAILY_LIMIT_EXCEEDED)}
    assert received == 25 * UNIT


def test_the_signer_applies_the_asset_rules_itself(
    lone: LoneSigner, run: Callable[..., Any], deployed: dict[str, str], stack: LocalStack
) -> None:
    token, greedy = deployed["token"], deployed["greedy"]
    lone.set_policy(
        tx_to_allowlist=(token, greedy, ALICE),
        asset_limits=token_assets(deployed, daily_limit="3"),
        require_simulation=True,
    )
    run(mint_tokens(stack.settings, greedy, lone.address, 100 * UNIT))
    run(mint_tokens(stack.settings, token, lone.address, 100 * UNIT))
    run(_fund(stack.settings, lone.address))

    def handle(to: str, data: str, **fields: Any) -> Any:  # LoneSigner.handle's outcome
        outcome, audits, _ = run(lone.handle(lone.intent(to=to, value="0", data=data, **fields)))
        return outcome

    refused = {
        "to-mallory": handle(token, contracts.calldata("transfer(address,uint256)", MALLORY, 1)),
        "unlimited": handle(token, contracts.calldata("approve(address,uint256)", ALICE, MAX_UINT256)),
        "unknown": handle(token, contracts.calldata("mint(address,uint256)", ALICE, 1)),
        "greedy": handle(greedy, contracts.calldata("transfer(address,uint256)", ALICE, 1 * UNIT)),
    }
    assert {name: o.code for name, o in refused.items()} == {
        "to-mallory": Code.RECIPIENT_NOT_ALLOWLISTED,
        "unlimited": Code.UNLIMITED_APPROVAL_REFUSED,
        "unknown": Code.CALLDATA_NOT_ALLOWED,
        "greedy": Code.SIMULATION_MISMATCH,
    }
    assert all(isinstance(o, IntentRejected) and o.stage == Stage.SIGNING for o in refused.values())
    # Its own per-asset record: three transfers of 1 WUSD are signed, the fourth is not.
    one = contracts.calldata("transfer(address,uint256)", ALICE, 1 * UNIT)
    signed = [handle(token, one) for _ in range(3)]
    assert all(isinstance(o, SignedTransaction) for o in signed), signed
    fourth = handle(token, one)
    assert isinstance(fourth, IntentRejected) and fourth.code == Code.ASSET_DAILY_LIMIT_EXCEEDED
    # A Permit counts against the same record.
    lone.set_policy(
        tx_to_allowlist=(token, ALICE),
        asset_limits=token_assets(deployed, daily_limit="3.5"),
        eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=token, chain_id=ANVIL_ID),),
    )
    permit = permit_typed_data(
        token,
        ANVIL_ID,
        owner=lone.address,
        spender=ALICE,
        value=UNIT // 2 + 1,
        nonce=0,
        deadline=2**40,
        name="Warden USD",
    )
    over, _, _ = run(lone.handle(lone.intent(new_typed_data_intent, typed_data=permit)))
    assert isinstance(over, IntentRejected) and over.code == Code.ASSET_DAILY_LIMIT_EXCEEDED
    permit["message"]["value"] = UNIT // 2
    fits, _, _ = run(lone.handle(lone.intent(new_typed_data_intent, typed_data=permit)))
    assert isinstance(fits, SignedMessage), fits


async def _fund(settings: Settings, address: str) -> None:
    node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
    try:
        await node.call("anvil_setBalance", address, hex(10**20))
    finally:
        await node.close()


def test_nft_routes_through_the_pipeline(stack: LocalStack, run: Callable[..., Any]) -> None:
    """An ERC-721 transfer within its limit is mined; one over the per-intent count, and an
    operator for every token who is not allowlisted by name, are refused."""
    settings = stack.settings
    agent = f"nft-{os.urandom(3).hex()}"

    async def scenario() -> tuple[dict[str, Outcome], list[str], str]:
        node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
        try:
            nft = await contracts.deploy(node, "WardenNFT", sender=DEPLOYER)
        finally:
            await node.close()
        key, address, _ = await make_agent(
            settings,
            agent,
            tx_to_allowlist=(nft, ALICE),
            asset_limits=({"chain": "anvil", "token": nft, "standard": "erc721", "decimals": 0, "daily_limit": "1"},),
        )
        node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
        try:
            for token_id in (1, 2):
                await contracts.send(
                    node, DEPLOYER, nft, contracts.calldata("mint(address,uint256)", address, token_id)
                )
        finally:
            await node.close()

        def tx(data: str) -> TransactionIntent:
            return new_intent(key, agent_id=agent, chain="anvil", to=nft, value="0", data=data, broadcast=True)

        intents = {
            "first": tx(contracts.calldata("safeTransferFrom(address,address,uint256)", address, ALICE, 1)),
            "second": tx(contracts.calldata("transferFrom(address,address,uint256)", address, ALICE, 2)),
            "operator": tx(contracts.calldata("setApprovalForAll(address,bool)", MALLORY, True)),
        }
        outcomes = await _submit(settings, list(intents.values()))
        node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
        try:
            owners = [
                abi_decode(["address"], await contracts.call(node, nft, contracts.calldata("ownerOf(uint256)", i)))[0]
                for i in (1, 2)
            ]
        finally:
            await node.close()
        return {n: outcomes[i.intent_id] for n, i in intents.items()}, owners, address

    got, owners, address = run(scenario())
    assert got["first"].status == "mined"
    assert (got["second"].stage, got["second"].code) == (Stage.ASSETS, Code.ASSET_DAILY_LIMIT_EXCEEDED)
    assert (got["operator"].stage, got["operator"].code) == (Stage.ASSETS, Code.OPERATOR_NOT_ALLOWLISTED)
    assert [o.lower() for o in owners] == [ALICE.lower(), address.lower()]
