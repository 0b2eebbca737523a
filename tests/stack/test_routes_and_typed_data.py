"""Value that leaves under another name, or through an allowlisted contract to anyone, on the real
stack with real contracts compiled from infra/contracts (an EIP-3009 token, a forwarder, a
multicall) on Anvil.

The attacks as they were found: an EIP-3009 ``TransferWithAuthorization`` on an allowlisted token
domain for 90 times the cap to an address the policy never listed; a forwarder and a multicall,
each allowlisted with a ``contract_calls`` entry, that pass the agent's approved tokens and its
native value on to that address. Each is refused by the pipeline and, handed straight to the
signer as a hostile topic writer would, by the signer alone; the balances on Anvil show nothing
arrived. A signature Warden does make (within policy) is executed on-chain by a third party, so a
refused one is known to have been worth refusing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.messages import encode_typed_data

from infra import contracts
from infra.stack.demo_script import transfer_authorization
from infra.stack.local import LocalStack
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentRejected, SignedMessage, SignedTransaction
from schemas.policy import Eip712DomainRule
from schemas.stages import Stage
from sdk.client import OUTCOME_TOPICS, Client, Outcome, new_intent, new_typed_data_intent, wait_outcomes
from tests.signer_support import LoneSigner
from tests.support import make_agent
from tests.token_support import on_anvil
from tests.typed_data_support import (
    COW,
    MAIL,
    ONE_INCH,
    PERMIT2,
    REACTOR,
    SEAPORT,
    cow,
    document,
    item,
    mail,
    one_inch,
    seaport,
    uniswapx,
)
from tests.typed_data_support import TOKEN as UNIT_TOKEN

DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # Anvil's first unlocked dev account
ANVIL_ID = 31337
UNIT = 10**6
ALICE = "0x00000000000000000000000000000000000A11cE"


def authorization(
    token: str, holder: str, to: str, value: int, primary: str = "TransferWithAuthorization"
) -> dict[str, Any]:
    return transfer_authorization(
        token, ANVIL_ID, holder=holder, to=to, value=value, name="Warden Auth", primary=primary
    )


def aggregate(*calls: tuple[str, int, str]) -> str:
    return contracts.calldata(
        "aggregate((address,uint256,bytes)[])",
        [(target, value, bytes.fromhex(data[2:])) for target, value, data in calls],
    )


async def _balances(settings: Settings, token: str, *holders: str) -> dict[str, tuple[int, int]]:
    async def read(node: JsonRpc) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for who in holders:
            units = abi_decode(
                ["uint256"], await contracts.call(node, token, contracts.calldata("balanceOf(address)", who))
            )[0]
            out[who] = (units, int(await node.call("eth_getBalance", who, "latest"), 16))
        return out

    return await on_anvil(settings, read)


@pytest.fixture(scope="module")
def deployed(stack: LocalStack) -> dict[str, str]:
    mallory = "0x" + os.urandom(20).hex()  # a fresh address: any token or wei it holds came from here

    async def deploy(node: JsonRpc) -> dict[str, str]:
        return {
            "token": await contracts.deploy(node, "AuthToken", "Warden Auth", "WAUTH", 6, sender=DEPLOYER),
            "forwarder": await contracts.deploy(node, "Forwarder", mallory, sender=DEPLOYER),
            "multicall": await contracts.deploy(node, "Multicall", sender=DEPLOYER),
        }

    out = asyncio.run(on_anvil(stack.settings, deploy))
    from eth_utils import to_checksum_address

    return {**out, "mallory": to_checksum_address(mallory)}


def _policy_fields(deployed: dict[str, str]) -> dict[str, Any]:
    token, forwarder, multicall = deployed["token"], deployed["forwarder"], deployed["multicall"]
    return dict(
        tx_to_allowlist=(token, forwarder, multicall, ALICE),
        tx_max_value_eth="1",
        asset_limits=(
            {
                "chain": "anvil",
                "token": token,
                "symbol": "WAUTH",
                "decimals": 6,
                "max_per_tx": "50",
                "daily_limit": "500",
            },
        ),
        # What an admin does to let one small Permit through: the token's domain allowlisted.
        eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=token, chain_id=ANVIL_ID),),
        contract_calls=(
            {
                "contract": forwarder,
                "selectors": (
                    "forward(address,address,uint256)",
                    "forwardVia(address,address,uint256)",
                    "forwardValue(address)",
                ),
            },
            {"contract": multicall, "selectors": ("aggregate((address,uint256,bytes)[])",)},
        ),
    )


async def _submit(settings: Settings, intents: list[TransactionIntent], timeout_s: float = 90.0) -> dict[str, Outcome]:
    start = await end_offsets(settings, OUTCOME_TOPICS)
    async with Client(settings) as client:
        await asyncio.gather(*(client.submit(i) for i in intents))
    return await wait_outcomes(settings, intents, timeout_s, start)


def test_typed_data_and_routes_move_nothing_outside_the_policy(
    stack: LocalStack, run: Callable[..., Any], deployed: dict[str, str]
) -> None:
    settings = stack.settings
    token, forwarder, multicall, mallory = (
        deployed["token"],
        deployed["forwarder"],
        deployed["multicall"],
        deployed["mallory"],
    )
    agent = f"routes-{os.urandom(3).hex()}"

    async def scenario() -> tuple[
        str,
        dict[str, TransactionIntent],
        dict[str, Outcome],
        dict[str, TransactionIntent],
        dict[str, Outcome],
        dict[str, tuple[int, int]],
    ]:
        key, address, _ = await make_agent(settings, agent, **_policy_fields(deployed))
        await on_anvil(
            settings,
            lambda node: contracts.send(
                node, DEPLOYER, token, contracts.calldata("mint(address,uint256)", address, 1_000 * UNIT)
            ),
        )

        def tx(to: str, data: str = "0x", value: str = "0", **fields: Any) -> TransactionIntent:
            return new_intent(
                key, agent_id=agent, chain="anvil", to=to, value=value, data=data, broadcast=True, **fields
            )

        # What the call takes, declared as the attacker would, so that only where it lands is left to judge.
        takes: dict[str, Any] = dict(declared_outflows=({"token": token, "amount": str(20 * UNIT)},))

        def typed(document: dict[str, Any]) -> TransactionIntent:
            return new_typed_data_intent(key, agent_id=agent, chain="anvil", typed_data=document)

        signatures = {
            "authorization-to-mallory": typed(authorization(token, address, mallory, 4_500 * UNIT)),
            "authorization-over-cap": typed(authorization(token, address, ALICE, 4_500 * UNIT)),
            "receive-to-mallory": typed(authorization(token, address, mallory, 10 * UNIT, "ReceiveWithAuthorization")),
            "authorization-ok": typed(authorization(token, address, ALICE, 10 * UNIT)),
            "approve-forwarder": tx(token, contracts.calldata("approve(address,uint256)", forwarder, 40 * UNIT)),
            "approve-multicall": tx(token, contracts.calldata("approve(address,uint256)", multicall, 40 * UNIT)),
        }
        first = await _submit(settings, list(signatures.values()))
        pull = contracts.calldata("transferFrom(address,address,uint256)", address, mallory, 20 * UNIT)
        routes = {
            "forward-tokens": tx(
                forwarder, contracts.calldata("forward(address,address,uint256)", token, mallory, 20 * UNIT), **takes
            ),
            "forward-via": tx(
                forwarder, contracts.calldata("forwardVia(address,address,uint256)", token, mallory, 20 * UNIT), **takes
            ),
            "multicall-tokens": tx(multicall, aggregate((token, 0, pull)), **takes),
            "forward-value": tx(forwarder, contracts.calldata("forwardValue(address)", mallory), value="0.01"),
            "plain-value-to-forwarder": tx(forwarder, value="0.01"),
            "multicall-value": tx(multicall, aggregate((mallory, 10**16, "0x")), value="0.01"),
            "forward-to-alice": tx(
                forwarder, contracts.calldata("forward(address,address,uint256)", token, ALICE, 20 * UNIT), **takes
            ),
            "value-to-alice": tx(forwarder, contracts.calldata("forwardValue(address)", ALICE), value="0.01"),
        }
        second = await _submit(settings, list(routes.values()))
        # A relayer, not the agent, executes the one authorization Warden signed.
        signed = first[signatures["authorization-ok"].intent_id]
        assert isinstance(signed, SignedMessage), signed
        typed_data = signatures["authorization-ok"].typed_data
        assert typed_data is not None
        message = typed_data.message
        signature = bytes.fromhex(signed.signature[2:])
        relay = (
            contracts.calldata(
                "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
                message["from"],
                message["to"],
                int(message["value"]),
                int(message["validAfter"]),
                int(message["validBefore"]),
                bytes.fromhex(message["nonce"][2:]),
                signature[64],
                signature[:32],
                signature[32:64],
            )
            if isinstance(signed, SignedMessage)
            else None
        )
        if relay is not None:
            await on_anvil(settings, lambda node: contracts.send(node, DEPLOYER, token, relay))
        balances = await _balances(settings, token, address, ALICE, mallory)
        return address, signatures, first, routes, second, balances

    address, signatures, first, routes, second, balances = run(scenario())
    got = {name: first[i.intent_id] for name, i in signatures.items()}
    got.update({name: second[i.intent_id] for name, i in routes.items()})
    refused = {name: (o.stage, o.code) for name, o in got.items() if isinstance(o, IntentRejected)}
    route = ("simulation", Code.SIMULATION_ROUTE_NOT_ALLOWLISTED)
    assert refused == {
        "authorization-to-mallory": ("assets", Code.RECIPIENT_NOT_ALLOWLISTED),
        "authorization-over-cap": ("assets", Code.ASSET_OVER_CAP),
        "receive-to-mallory": ("assets", Code.RECIPIENT_NOT_ALLOWLISTED),
        "forward-tokens": route,
        "forward-via": route,
        "multicall-tokens": route,
        "forward-value": route,
        "plain-value-to-forwarder": route,
        "multicall-value": route,
    }, {n: o.reason for n, o in got.items() if isinstance(o, IntentRejected)}
    for name in ("forward-tokens", "forward-via", "multicall-tokens", "forward-value", "plain-value-to-forwarder"):
        assert mallory in got[name].reason and "route" in got[name].reason, got[name].reason
    assert isinstance(got["authorization-ok"], SignedMessage)
    recovered = Account.recover_message(
        encode_typed_data(full_message=signatures["authorization-ok"].typed_data.as_document()),
        signature=bytes.fromhex(got["authorization-ok"].signature[2:]),
    )
    assert recovered == address
    for name in ("approve-forwarder", "approve-multicall", "forward-to-alice", "value-to-alice"):
        assert isinstance(got[name], SignedTransaction) and got[name].status == "mined", (name, got[name])
    # On chain: alice got the relayed 10 and the forwarded 20; nothing, token or wei, reached mallory.
    assert balances[mallory] == (0, 0)
    assert balances[ALICE][0] == 30 * UNIT and balances[address][0] == 970 * UNIT


# --- the signer alone -----------------------------------------------------------------------------


@pytest.fixture
def lone(tmp_path: Path, stack: LocalStack, deployed: dict[str, str]) -> LoneSigner:
    signer = LoneSigner(tmp_path, stack.settings.rpc_url_for("anvil"))
    signer.set_policy(**_policy_fields(deployed))
    return signer


def test_the_signer_refuses_each_route_itself(
    lone: LoneSigner, run: Callable[..., Any], stack: LocalStack, deployed: dict[str, str]
) -> None:
    """Approved records written straight to the signer's topic: its own typed-data reading and its
    own simulation refuse what the worker would have; the one within policy it signs."""
    token, forwarder, mallory = deployed["token"], deployed["forwarder"], deployed["mallory"]

    async def prepare(node: JsonRpc) -> None:
        await node.call("anvil_setBalance", lone.address, hex(10**20))
        await contracts.send(
            node, DEPLOYER, token, contracts.calldata("mint(address,uint256)", lone.address, 100 * UNIT)
        )
        await node.call("anvil_impersonateAccount", lone.address)
        await contracts.send(
            node, lone.address, token, contracts.calldata("approve(address,uint256)", forwarder, 40 * UNIT)
        )

    run(on_anvil(stack.settings, prepare))

    takes = ({"token": token, "amount": str(20 * UNIT)},)

    def handle(
        make: Callable[..., TransactionIntent] = new_intent, **fields: Any
    ) -> IntentRejected | SignedTransaction | SignedMessage:
        outcome: IntentRejected | SignedTransaction | SignedMessage
        outcome, _, _ = run(lone.handle(lone.intent(make, **fields)))
        return outcome

    outcomes = {
        "authorization-to-mallory": handle(
            new_typed_data_intent, typed_data=authorization(token, lone.address, mallory, 4_500 * UNIT)
        ),
        "forward-tokens": handle(
            to=forwarder,
            value="0",
            data=contracts.calldata("forward(address,address,uint256)", token, mallory, 20 * UNIT),
            declared_outflows=takes,
        ),
        "plain-value-to-forwarder": handle(to=forwarder, value="0.01"),
        "forward-to-alice": handle(
            to=forwarder,
            value="0",
            data=contracts.calldata("forward(address,address,uint256)", token, ALICE, 20 * UNIT),
            declared_outflows=takes,
        ),
    }
    refused = {name: o.code for name, o in outcomes.items() if isinstance(o, IntentRejected)}
    assert refused == {
        "authorization-to-mallory": Code.RECIPIENT_NOT_ALLOWLISTED,
        "forward-tokens": Code.SIMULATION_ROUTE_NOT_ALLOWLISTED,
        "plain-value-to-forwarder": Code.SIMULATION_ROUTE_NOT_ALLOWLISTED,
    }, outcomes
    assert all(o.stage == Stage.SIGNING for o in outcomes.values() if isinstance(o, IntentRejected))
    assert isinstance(outcomes["forward-to-alice"], SignedTransaction)


# --- every typed-data family, through the pipeline -------------------------------------------------


def test_each_typed_data_family_is_read_and_judged_on_the_stack(
    stack: LocalStack, run: Callable[..., Any], deployed: dict[str, str]
) -> None:
    """One hostile document per family Warden reads, under domains the admin allowlisted, and the
    spec's Mail before and after the admin names it as moving nothing: each refused for what it
    moves (or signed once named), by the worker and then the signer."""
    settings = stack.settings
    agent = f"families-{os.urandom(3).hex()}"
    domains = tuple(Eip712DomainRule(verifying_contract=c) for c in (UNIT_TOKEN, PERMIT2, SEAPORT, COW, ONE_INCH))
    fields: dict[str, Any] = dict(
        tx_to_allowlist=(ALICE, PERMIT2, REACTOR, SEAPORT, COW, ONE_INCH),
        eip712_domain_allowlist=domains,
        asset_limits=({"chain": "anvil", "token": UNIT_TOKEN, "decimals": 6, "max_per_tx": "100"},),
    )
    dai = document(
        "Permit",
        {"Permit": "address holder,address spender,uint256 nonce,uint256 expiry,bool allowed"},
        {"holder": ALICE, "spender": ALICE, "nonce": 0, "expiry": 2**40, "allowed": True},
        UNIT_TOKEN,
        name="Dai",
    )
    documents = {
        "dai-permit-unlimited": dai,
        "uniswapx-pays-mallory": uniswapx(50 * UNIT, deployed["mallory"]),
        "seaport-over-cap": seaport([item(1, UNIT_TOKEN, 300 * UNIT)]),
        "cow-pays-mallory": cow(1, 0, receiver=deployed["mallory"]),
        "one-inch-over-cap": one_inch(200 * UNIT),
        "mail-unnamed": mail(),
    }

    async def scenario() -> tuple[
        str, dict[str, TransactionIntent], dict[str, Outcome], TransactionIntent, dict[str, Outcome]
    ]:
        key, address, _ = await make_agent(settings, agent, **fields)
        intents = {
            name: new_typed_data_intent(key, agent_id=agent, chain="anvil", typed_data=doc)
            for name, doc in documents.items()
        }
        first = await _submit(settings, list(intents.values()))
        # The admin names the Mail as moving nothing: the policy's next version.
        await make_agent(
            settings, agent, eip712_no_value_types=({"verifying_contract": MAIL, "primary_type": "Mail"},), **fields
        )
        named = new_typed_data_intent(key, agent_id=agent, chain="anvil", typed_data=mail())
        second = await _submit(settings, [named])
        return address, intents, first, named, second

    address, intents, first, named, second = run(scenario())
    got = {name: (first[i.intent_id].stage, first[i.intent_id].code) for name, i in intents.items()}
    assert got == {
        "dai-permit-unlimited": ("assets", Code.UNLIMITED_APPROVAL_REFUSED),
        "uniswapx-pays-mallory": ("assets", Code.PROCEEDS_NOT_ALLOWLISTED),
        "seaport-over-cap": ("assets", Code.ASSET_OVER_CAP),
        "cow-pays-mallory": ("assets", Code.PROCEEDS_NOT_ALLOWLISTED),
        "one-inch-over-cap": ("assets", Code.ASSET_OVER_CAP),
        "mail-unnamed": ("typed_data", Code.EIP712_TYPE_NOT_NAMED),
    }
    signed = second[named.intent_id]
    assert isinstance(signed, SignedMessage) and signed.primary_type == "Mail", signed
    assert (
        Account.recover_message(encode_typed_data(full_message=mail()), signature=bytes.fromhex(signed.signature[2:]))
        == address
    )
