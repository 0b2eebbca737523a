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

import orjson
import pytest
from eth_abi import decode as abi_decode

from infra import contracts
from infra.demo import permit_typed_data
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from schemas.fields import MAX_UINT256
from schemas.models import Eip712DomainRule, IntentRejected, SignedMessage, SignedTransaction
from sdk.client import OUTCOME_TOPICS, Client, new_intent, new_typed_data_intent, wait_outcomes
from tests.signer_support import LoneSigner
from tests.support import make_agent

DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # Anvil's first unlocked dev account
ANVIL_ID = 31337
UNIT = 10**6  # the test tokens have 6 decimals
ALICE = "0x00000000000000000000000000000000000A11cE"
MALLORY = "0x000000000000000000000000000000000000bad1"
COLLECTOR = "0x000000000000000000000000000000000000C011"


async def _deploy(settings) -> dict[str, str]:
    node = JsonRpc(settings.rpc_url_for("anvil"))
    try:
        return {
            "token": await contracts.deploy(node, "WardenToken", "Warden USD", "WUSD", 6, sender=DEPLOYER),
            "greedy": await contracts.deploy(node, "GreedyToken", "Greedy", "GRD", 6, COLLECTOR, sender=DEPLOYER),
            "router": await contracts.deploy(node, "PullRouter", sender=DEPLOYER),
        }
    finally:
        await node.close()


async def _mint(settings, token: str, to: str, units: int) -> None:
    node = JsonRpc(settings.rpc_url_for("anvil"))
    try:
        await contracts.send(node, DEPLOYER, token, contracts.calldata("mint(address,uint256)", to, units))
    finally:
        await node.close()


async def _balance_of(settings, token: str, who: str) -> int:
    node = JsonRpc(settings.rpc_url_for("anvil"))
    try:
        return abi_decode(
            ["uint256"], await contracts.call(node, token, contracts.calldata("balanceOf(address)", who))
        )[0]
    finally:
        await node.close()


async def _submit(settings, intents, timeout_s=60.0):
    start = await end_offsets(settings, OUTCOME_TOPICS)
    async with Client(settings) as client:
        await asyncio.gather(*(client.submit(i) for i in intents))
    return await wait_outcomes(settings, intents, timeout_s, start)


@pytest.fixture(scope="module")
def deployed(stack):
    return asyncio.run(_deploy(stack.settings))


def _assets(deployed, **limits) -> tuple[dict, ...]:
    token = {"chain": "anvil", "token": deployed["token"], "symbol": "WUSD", "decimals": 6, **limits}
    greedy = {"chain": "anvil", "token": deployed["greedy"], "symbol": "GRD", "decimals": 6, "max_per_tx": "100"}
    return token, greedy


def test_token_routes_through_the_pipeline(stack, run, deployed):
    """Each route a compromised agent would take to move tokens, through worker and signer."""
    settings = stack.settings
    token, greedy, router = deployed["token"], deployed["greedy"], deployed["router"]
    agent = f"tok-{os.urandom(3).hex()}"

    async def scenario():
        key, address, _ = await make_agent(
            settings,
            agent,
            tx_to_allowlist=(token, greedy, router, ALICE),
            asset_limits=_assets(deployed, max_per_tx="50", daily_limit="500"),
            eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=token, chain_id=ANVIL_ID),),
            contract_calls=({"contract": router, "selectors": ("pull(address,uint256)", "pullMore(address,uint256)")},),
        )
        await _mint(settings, token, address, 1_000 * UNIT)
        await _mint(settings, greedy, address, 1_000 * UNIT)

        def tx(to, data, **fields):
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
        balances = {who: await _balance_of(settings, token, who) for who in (address, ALICE, router, MALLORY)}
        greedy_left = await _balance_of(settings, greedy, address)
        return intents, first, (approve, second), (pull, pull_more, third), balances, greedy_left, address

    intents, first, (approve, second), (pull, pull_more, third), balances, greedy_left, address = run(scenario())
    got = {name: first[i.intent_id] for name, i in intents.items()}
    assert isinstance(got["transfer"], SignedTransaction) and got["transfer"].status == "mined", got["transfer"]
    refused = {name: (o.stage, o.code) for name, o in got.items() if isinstance(o, IntentRejected)}
    assert refused == {
        "to-mallory": ("assets", "RECIPIENT_NOT_ALLOWLISTED"),
        "unlimited-approve": ("assets", "UNLIMITED_APPROVAL_REFUSED"),
        "unknown-call": ("assets", "CALLDATA_NOT_ALLOWED"),
        "greedy": ("simulation", "SIMULATION_MISMATCH"),
        "permit-over": ("assets", "UNLIMITED_APPROVAL_REFUSED"),
    }
    # The simulation saw the greedy token take 10 for a transfer of 5, and said so.
    facts = next(v.facts for v in got["greedy"].verdicts if v.stage == "simulation")
    assert {c["asset"]: c["out"] for c in facts["balance_changes"]} == {deployed["greedy"]: str(10 * UNIT)}
    assert facts["declared_out"] == {deployed["greedy"]: str(5 * UNIT)}
    assert second[approve.intent_id].status == "mined"
    assert third[pull.intent_id].status == "mined", third[pull.intent_id]
    assert (third[pull_more.intent_id].stage, third[pull_more.intent_id].code) == ("simulation", "SIMULATION_MISMATCH")
    # On chain: alice got 10, the router 20; nothing reached mallory; the greedy token took nothing.
    assert balances == {address: 970 * UNIT, ALICE: 10 * UNIT, deployed["router"]: 20 * UNIT, MALLORY: 0}
    assert greedy_left == 1_000 * UNIT


def test_a_hundred_concurrent_token_transfers_never_pass_the_daily_limit(stack, run, deployed):
    """100 transfers of 1 WUSD at once against a 25 WUSD rolling limit: exactly 25 are mined, the
    rest refused, and the recipient's balanceOf on Anvil says 25."""
    settings = stack.settings
    token = deployed["token"]
    agent = f"tok-burst-{os.urandom(3).hex()}"
    recipient = "0x" + os.urandom(20).hex()

    async def scenario():
        key, address, _ = await make_agent(
            settings, agent, tx_to_allowlist=(token, recipient), asset_limits=_assets(deployed, daily_limit="25")
        )
        await _mint(settings, token, address, 1_000 * UNIT)
        data = contracts.calldata("transfer(address,uint256)", recipient, 1 * UNIT)
        intents = [
            new_intent(key, agent_id=agent, chain="anvil", to=token, value="0", data=data, broadcast=True)
            for _ in range(100)
        ]
        outcomes = await _submit(settings, intents, timeout_s=180.0)
        return intents, outcomes, await _balance_of(settings, token, recipient)

    intents, outcomes, received = run(scenario())
    assert len(outcomes) == 100
    mined = [o for o in outcomes.values() if isinstance(o, SignedTransaction)]
    refused = [o for o in outcomes.values() if isinstance(o, IntentRejected)]
    assert {o.status for o in mined} == {"mined"} and len(mined) == 25
    assert {(o.stage, o.code) for o in refused} == {("assets", "ASSET_DAILY_LIMIT_EXCEEDED")} and len(refused) == 75
    assert received == 25 * UNIT


# --- the signer alone -----------------------------------------------------------------------------


@pytest.fixture
def lone(tmp_path, stack, deployed):
    return LoneSigner(tmp_path, stack.settings.rpc_url_for("anvil"))


def test_the_signer_applies_the_asset_rules_itself(lone, run, deployed, stack):
    token, greedy = deployed["token"], deployed["greedy"]
    lone.set_policy(
        tx_to_allowlist=(token, greedy, ALICE), asset_limits=_assets(deployed, daily_limit="3"), require_simulation=True
    )
    run(_mint(stack.settings, greedy, lone.address, 100 * UNIT))
    run(_mint(stack.settings, token, lone.address, 100 * UNIT))
    run(_fund(stack.settings, lone.address))

    def handle(to, data, **fields):
        outcome, audits, _ = run(lone.handle(lone.intent(to=to, value="0", data=data, **fields)))
        return outcome

    refused = {
        "to-mallory": handle(token, contracts.calldata("transfer(address,uint256)", MALLORY, 1)),
        "unlimited": handle(token, contracts.calldata("approve(address,uint256)", ALICE, MAX_UINT256)),
        "unknown": handle(token, contracts.calldata("mint(address,uint256)", ALICE, 1)),
        "greedy": handle(greedy, contracts.calldata("transfer(address,uint256)", ALICE, 1 * UNIT)),
    }
    assert {name: o.code for name, o in refused.items()} == {
        "to-mallory": "RECIPIENT_NOT_ALLOWLISTED",
        "unlimited": "UNLIMITED_APPROVAL_REFUSED",
        "unknown": "CALLDATA_NOT_ALLOWED",
        "greedy": "SIMULATION_MISMATCH",
    }
    assert all(isinstance(o, IntentRejected) and o.stage == "signing" for o in refused.values())
    # Its own per-asset record: three transfers of 1 WUSD are signed, the fourth is not.
    one = contracts.calldata("transfer(address,uint256)", ALICE, 1 * UNIT)
    signed = [handle(token, one) for _ in range(3)]
    assert all(isinstance(o, SignedTransaction) for o in signed), signed
    fourth = handle(token, one)
    assert isinstance(fourth, IntentRejected) and fourth.code == "ASSET_DAILY_LIMIT_EXCEEDED"
    # A Permit counts against the same record.
    lone.set_policy(
        tx_to_allowlist=(token, ALICE),
        asset_limits=_assets(deployed, daily_limit="3.5"),
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
    assert isinstance(over, IntentRejected) and over.code == "ASSET_DAILY_LIMIT_EXCEEDED"
    permit["message"]["value"] = UNIT // 2
    fits, _, _ = run(lone.handle(lone.intent(new_typed_data_intent, typed_data=permit)))
    assert isinstance(fits, SignedMessage), fits


async def _fund(settings, address: str) -> None:
    node = JsonRpc(settings.rpc_url_for("anvil"))
    try:
        await node.call("anvil_setBalance", address, hex(10**20))
    finally:
        await node.close()


# --- human approval above a threshold -----------------------------------------------------------


def test_above_the_threshold_an_admin_decides_through_the_cli(stack, run, deployed):
    """Three intents above the threshold are parked; `warden approvals` lists them, one is
    approved and mined, one denied; another agent's waits past its approval_timeout_s and expires."""
    from tests.support import warden

    settings = stack.settings
    token = deployed["token"]
    agent, hasty = f"appr-{os.urandom(3).hex()}", f"appr-hasty-{os.urandom(3).hex()}"

    async def scenario():
        key, address, _ = await make_agent(
            settings,
            agent,
            tx_to_allowlist=(token, ALICE),
            approval_threshold_eth="0.1",
            asset_limits=_assets(deployed, approval_threshold="5"),
        )
        hasty_key, _, _ = await make_agent(
            settings, hasty, tx_to_allowlist=(ALICE,), approval_threshold_eth="0.1", approval_timeout_s=2
        )
        await _mint(settings, token, address, 100 * UNIT)
        ask = dict(agent_id=agent, chain="anvil", broadcast=True)
        intents = {
            "small": new_intent(key, to=ALICE, value="0.05", **ask),
            "big": new_intent(key, to=ALICE, value="0.5", **ask),
            "denied": new_intent(key, to=ALICE, value="0.2", **ask),
            "tokens": new_intent(
                key, to=token, value="0", data=contracts.calldata("transfer(address,uint256)", ALICE, 6 * UNIT), **ask
            ),
            "expires": new_intent(hasty_key, agent_id=hasty, chain="anvil", to=ALICE, value="0.5", broadcast=True),
        }
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:
            for intent in intents.values():
                await client.submit(intent)
        first = await wait_outcomes(settings, intents.values(), 30, start, final=False)
        return intents, first, start, address

    intents, first, start, address = run(scenario())
    assert isinstance(first[intents["small"].intent_id], SignedTransaction)  # below: no wait
    for name in ("big", "denied", "tokens", "expires"):
        assert type(first[intents[name].intent_id]).__name__ == "IntentParked", name
    listed = warden(settings, "approvals", "list", "--agent", agent, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["intent_id"]: row for row in orjson.loads(listed.stdout)["awaiting_approval"]}
    assert set(rows) == {intents[n].intent_id for n in ("big", "denied", "tokens")}
    assert "above the approval threshold of 0.1" in rows[intents["big"].intent_id]["reason"]
    assert "WUSD's approval threshold of 5 WUSD" in rows[intents["tokens"].intent_id]["reason"]

    approved = warden(settings, "approvals", "approve", intents["big"].intent_id, "--reason", "invoice 7", "--json")
    assert approved.returncode == 0, approved.stderr
    denied = warden(settings, "approvals", "deny", intents["denied"].intent_id, "--reason", "unknown vendor")
    assert denied.returncode == 0, denied.stderr
    assert "APPROVAL_DENIED" in denied.stdout and "unknown vendor" in denied.stdout
    approved_tokens = warden(settings, "approvals", "approve", intents["tokens"].intent_id)
    assert approved_tokens.returncode == 0, approved_tokens.stderr

    final = run(wait_outcomes(settings, intents.values(), 30, start))
    assert final[intents["big"].intent_id].status == "mined"
    assert final[intents["tokens"].intent_id].status == "mined"
    assert (final[intents["denied"].intent_id].stage, final[intents["denied"].intent_id].code) == (
        "approval",
        "APPROVAL_DENIED",
    )
    assert (final[intents["expires"].intent_id].stage, final[intents["expires"].intent_id].code) == (
        "approval",
        "APPROVAL_EXPIRED",
    )
    assert run(_balance_of(settings, token, ALICE)) >= 6 * UNIT
    # Decided ones are no longer listed, and a decision on them is refused by the CLI.
    again = warden(settings, "approvals", "list", "--agent", agent, "--json")
    assert orjson.loads(again.stdout)["awaiting_approval"] == []
    late = warden(settings, "approvals", "approve", intents["denied"].intent_id)
    assert late.returncode == 1 and "no intent" in late.stderr


def test_the_signer_requires_the_admins_approval_itself(lone, run):
    """Above the threshold of the signer's own policy, an approved record without a valid admin
    approval is refused; with one, it is signed even though the intent waited past its freshness."""
    from datetime import datetime, timedelta, timezone

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from schemas import topics
    from schemas.auth import sign_human_approval
    from schemas.emit import Source
    from schemas.models import HumanApproval, IntentApproved

    lone.set_policy(tx_to_allowlist=(ALICE,), approval_threshold_eth="0.1")
    run(_fund_rpc(lone.rpc_url, lone.address))
    now = datetime.now(timezone.utc)

    def waited():  # a new intent each time: the signer's first answer for an id is its last
        return lone.intent(to=ALICE, value="0.5", now=now - timedelta(minutes=30))

    def handle(intent, approval):
        async def go():
            lone.node = JsonRpc(lone.rpc_url)
            try:
                record = IntentApproved(
                    intent=intent, policy=lone.policy, verdicts=(), approved_at=now, human_approval=approval
                )
                lone.offset += 1
                emits, _ = await lone.signer.handle(
                    record.to_bytes(), Source(topics.INTENTS_APPROVED, 0, lone.offset, lone.agent.encode()), now
                )
                lone.state.commit()
                (outcome,) = [e for e in emits if e.topic in (topics.INTENTS_REJECTED, topics.TXS_SIGNED)]
                return outcome.topic, outcome.value
            finally:
                await lone.node.close()

        return run(go())

    def approval(intent, key=None, **fields):
        base = dict(
            intent_id=intent.intent_id,
            agent_id=lone.agent,
            intent_digest=intent.digest(),
            decision="approve",
            decided_at=now,
        )
        return sign_human_approval(HumanApproval(**{**base, **fields}), key or lone.admin_key, "test-admin")

    # Without a valid approval the intent is what it is: 30 minutes old, stale.
    for make in (
        lambda i: None,
        lambda i: approval(i, key=Ed25519PrivateKey.generate()),
        lambda i: approval(i, decision="deny"),
        lambda i: approval(i, intent_digest="00" * 32),
        lambda i: approval(i, decided_at=now - timedelta(hours=1)),
    ):
        intent = waited()
        topic, raw = handle(intent, make(intent))
        assert topic == topics.INTENTS_REJECTED and IntentRejected.from_bytes(raw).code == "INTENT_EXPIRED"
    # A fresh intent above the threshold without an approval: refused for that reason.
    outcome, _, _ = run(lone.handle(lone.intent(to=ALICE, value="0.5")))
    assert isinstance(outcome, IntentRejected) and outcome.code == "HUMAN_APPROVAL_REQUIRED"
    # The admin's approval of another intent does not carry over.
    other, intent = waited(), waited()
    topic, raw = handle(intent, approval(other))
    assert topic == topics.INTENTS_REJECTED
    intent = waited()
    topic, raw = handle(intent, approval(intent))
    assert topic == topics.TXS_SIGNED, raw


async def _fund_rpc(url: str, address: str) -> None:
    node = JsonRpc(url)
    try:
        await node.call("anvil_setBalance", address, hex(10**20))
    finally:
        await node.close()


def test_an_admin_sets_token_rules_from_the_cli(stack, run, deployed, tmp_path):
    """`warden agents create --fields FILE` carries the policy fields no flag covers; a wrong one
    is refused by name before anything is published."""
    from tests.support import warden

    settings = stack.settings
    agent = f"tok-cli-{os.urandom(3).hex()}"
    rules = tmp_path / "rules.json"
    rules.write_bytes(
        orjson.dumps(
            {
                "asset_limits": [
                    {
                        "chain": "anvil",
                        "token": deployed["token"],
                        "symbol": "WUSD",
                        "decimals": 6,
                        "max_per_tx": "25",
                        "approval_threshold": "10",
                    }
                ],
                "contract_calls": [{"contract": deployed["router"], "selectors": ["pull(address,uint256)"]}],
            }
        )
    )
    created = warden(
        settings,
        "agents",
        "create",
        "--agent",
        agent,
        "--chains",
        "anvil",
        "--allowlist",
        f"{deployed['token']},{ALICE}",
        "--fields",
        str(rules),
        "--approval-threshold",
        "0.5",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    shown = orjson.loads(warden(settings, "agents", "show", "--agent", agent, "--json").stdout)
    assert shown["asset_limits"][0]["max_per_tx"] == "25" and shown["approval_threshold_eth"] == "0.5"
    assert shown["contract_calls"][0]["selectors"] == ["0x" + contracts.selector("pull(address,uint256)").hex()]
    # Shown as signed: a field at its default is left out of the document, and reads as the default.
    from schemas.models import AgentPolicy

    assert "block_unlimited_approvals" not in shown and AgentPolicy.model_validate(shown).block_unlimited_approvals
    rules.write_bytes(
        orjson.dumps(
            {"asset_limits": [{"chain": "anvil", "token": deployed["token"], "decimals": 6, "max_per_tx": "0.0000001"}]}
        )
    )
    bad = warden(settings, "agents", "update", "--agent", agent, "--fields", str(rules))
    assert bad.returncode == 2 and "max_per_tx" in bad.stderr and "at most 6" in bad.stderr


def test_nft_routes_through_the_pipeline(stack, run):
    """An ERC-721 transfer within its limit is mined; one over the per-intent count, and an
    operator for every token who is not allowlisted by name, are refused."""
    settings = stack.settings
    agent = f"nft-{os.urandom(3).hex()}"

    async def scenario():
        node = JsonRpc(settings.rpc_url_for("anvil"))
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
        node = JsonRpc(settings.rpc_url_for("anvil"))
        try:
            for token_id in (1, 2):
                await contracts.send(
                    node, DEPLOYER, nft, contracts.calldata("mint(address,uint256)", address, token_id)
                )
        finally:
            await node.close()

        def tx(data):
            return new_intent(key, agent_id=agent, chain="anvil", to=nft, value="0", data=data, broadcast=True)

        intents = {
            "first": tx(contracts.calldata("safeTransferFrom(address,address,uint256)", address, ALICE, 1)),
            "second": tx(contracts.calldata("transferFrom(address,address,uint256)", address, ALICE, 2)),
            "operator": tx(contracts.calldata("setApprovalForAll(address,bool)", MALLORY, True)),
        }
        outcomes = await _submit(settings, list(intents.values()))
        node = JsonRpc(settings.rpc_url_for("anvil"))
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
    assert (got["second"].stage, got["second"].code) == ("assets", "ASSET_DAILY_LIMIT_EXCEEDED")
    assert (got["operator"].stage, got["operator"].code) == ("assets", "OPERATOR_NOT_ALLOWLISTED")
    assert [o.lower() for o in owners] == [ALICE.lower(), address.lower()]
