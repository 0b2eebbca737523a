"""The Solana guardrails and signing against a real local Solana node (surfpool, started by the
local stack as `warden up` starts it): token accounts read over RPC for the judge, the agent's
signature put in by `svm.transactions.sign` with its custody key's seed, the node accepting the
transaction and finalizing it, and balances read back."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypedDict, TypeVar

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from infra.stack.local import LocalStack, listen_ports, local_settings
from rules.solana import SOL, SolanaVerdict, balance_changes, judge, judge_simulation, token_accounts_named
from runtime import solana
from runtime.rpc import JsonRpc
from schemas.codes import Code
from schemas.policy import SolanaPolicy, SolanaTokenLimit
from sdk import solana as sol
from signer.chain_keys import address, public_key
from svm import transactions

CHAIN = "solana-local"
DECIMALS = 6

T = TypeVar("T")


@pytest.fixture(scope="module")
def solana_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, range]]:
    """The stack's surfpool, started with WARDEN_LISTEN_PORTS narrowed to the last 200 ports of
    this process's range, and that range."""
    ports = listen_ports()
    narrowed = range(ports.stop - 200, ports.stop)
    stack = LocalStack(local_settings(tmp_path_factory.mktemp("home")))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WARDEN_LISTEN_PORTS", f"{narrowed.start}-{narrowed.stop - 1}")
        stack.start(parts=("solana",))
    try:
        yield stack, narrowed
    finally:
        stack.stop()
    assert not stack.settings.surfpool_info.exists()  # stopped: nobody is told of a node that is gone


@pytest.fixture(scope="module")
def node(solana_stack: tuple[LocalStack, range]) -> str:
    stack, _ = solana_stack
    described = {p["name"]: p for p in stack.describe()}
    assert described["solana"]["address"].startswith("http://127.0.0.1:"), described
    return stack.settings.solana_rpc_url(CHAIN)


def test_surfpool_serves_its_rpc_and_websocket_on_ports_of_the_stack_range(
    solana_stack: tuple[LocalStack, range], node: str
) -> None:
    stack, narrowed = solana_stack
    info = json.loads(stack.settings.surfpool_info.read_text())
    ports = {name: urllib.parse.urlsplit(info[name]).port for name in ("rpc", "ws")}
    assert all(port in narrowed for port in ports.values()), (ports, narrowed)
    assert run(_call(node, "getHealth")) == "ok"
    # The websocket answers its upgrade on its port: the handshake of RFC 6455.
    with socket.create_connection(("127.0.0.1", ports["ws"]), timeout=10) as ws:
        ws.sendall(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert ws.recv(1024).startswith(b"HTTP/1.1 101"), "no websocket upgrade"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _call(url: str, method: str, *params: Any) -> Any:
    rpc = JsonRpc(url, timeout_s=60)
    try:
        return await rpc.call(method, *params)
    finally:
        await rpc.close()


async def _with(url: str, work: Callable[[JsonRpc], Awaitable[T]]) -> T:
    rpc = JsonRpc(url, timeout_s=60)
    try:
        return await work(rpc)
    finally:
        await rpc.close()


def blockhash(url: str) -> Hash:
    return Hash.from_string(run(_with(url, solana.latest_blockhash)))


def send_and_wait(url: str, raw: bytes, commitment: str = "finalized") -> solana.Status:
    """Send signed bytes and wait (generously) until the node says ``commitment``."""

    async def go(rpc: JsonRpc) -> solana.Status:
        return await solana.landed(rpc, await solana.send(rpc, raw), commitment, 120)

    return run(_with(url, go))


def airdrop(url: str, to: Pubkey, lamports: int) -> None:
    async def go(rpc: JsonRpc) -> None:
        await solana.landed(rpc, await rpc.call("requestAirdrop", str(to), lamports), "processed", 60)

    run(_with(url, go))


class Agent:
    """An agent whose Solana key is derived as Warden's custody derives it (`signer.chain_keys`)."""

    def __init__(self) -> None:
        self.seed = bytearray(Keypair().secret()[:32])
        self.address = address("solana", public_key("solana", bytearray(self.seed)))
        self.pubkey = Pubkey.from_string(self.address)


class World(TypedDict):
    """The module's agent, its policy, the mint it holds tokens of, and two people it may pay."""

    agent: Agent
    alice: Keypair
    mallory: Keypair
    mint: Pubkey
    policy: SolanaPolicy


@pytest.fixture(scope="module")
def world(node: str) -> World:
    agent, alice, mallory, bank, mint = Agent(), Keypair(), Keypair(), Keypair(), Keypair()
    for who in (agent.pubkey, bank.pubkey()):
        airdrop(node, who, 5 * 10**9)
    setup = sol.create_mint(bank.pubkey(), mint.pubkey(), bank.pubkey(), DECIMALS)
    for who in (agent.pubkey, alice.pubkey(), mallory.pubkey()):
        setup.append(sol.create_ata(bank.pubkey(), who, mint.pubkey()))
    setup.append(
        sol.mint_to(mint.pubkey(), sol.ata_address(agent.pubkey, mint.pubkey()), bank.pubkey(), 1_000 * 10**DECIMALS)
    )
    status = send_and_wait(node, bytes(sol.signed(bank, setup, blockhash(node), mint)), "confirmed")
    assert status.error is None, status
    policy = SolanaPolicy(
        address=agent.address,
        allowlist=(str(alice.pubkey()),),
        max_lamports_per_tx=10**9,
        tokens=(SolanaTokenLimit(mint=str(mint.pubkey()), decimals=DECIMALS, max_per_tx=100 * 10**6),),
    )
    return {"agent": agent, "alice": alice, "mallory": mallory, "mint": mint.pubkey(), "policy": policy}


def judged(url: str, world: World, raw: bytes, **options: Any) -> SolanaVerdict:
    """Warden's reading of an agent's unsigned transaction: the token accounts it names resolved
    from the node, then judged."""
    tx = transactions.read(raw)
    accounts = run(_with(url, lambda rpc: solana.token_accounts(rpc, token_accounts_named(tx))))
    return judge(
        tx,
        agent=world["agent"].address,
        chain=CHAIN,
        allowed_chains=(CHAIN,),
        policy=world["policy"],
        accounts=accounts,
        spent=lambda asset: 0,
        **options,
    )


def warden(url: str, world: World, raw: bytes) -> tuple[SolanaVerdict, bytes | None]:
    """What Warden does with an agent's unsigned transaction: judged; signed only when it passed."""
    verdict = judged(url, world, raw)
    return verdict, (transactions.sign(raw, world["agent"].seed) if verdict.passed else None)


def token_balance(url: str, account: Pubkey) -> int:
    return int(run(_call(url, "getTokenAccountBalance", str(account)))["value"]["amount"])


def test_sol_to_alice_is_signed_accepted_and_finalized_on_the_node(node: str, world: World) -> None:
    agent, alice = world["agent"], world["alice"].pubkey()
    raw = sol.unsigned(agent.pubkey, [sol.sol_transfer(agent.pubkey, alice, 1_000_000)], blockhash(node))
    before = run(_with(node, lambda rpc: solana.balance(rpc, str(alice))))
    verdict, signed = warden(node, world, raw)
    assert verdict.passed and verdict.spend() == {SOL: 1_005_000}, verdict
    assert signed is not None
    assert VersionedTransaction.from_bytes(signed).verify_with_results() == [True]
    status = send_and_wait(node, signed)
    assert (status.error, status.commitment) == (None, "finalized")
    assert run(_with(node, lambda rpc: solana.balance(rpc, str(alice), "finalized"))) - before == 1_000_000


def test_spl_to_alice_moves_and_spl_to_mallory_is_refused_by_her_owner_name(node: str, world: World) -> None:
    agent, mint = world["agent"], world["mint"]
    source = sol.ata_address(agent.pubkey, mint)
    to_alice = sol.ata_address(world["alice"].pubkey(), mint)
    raw = sol.unsigned(
        agent.pubkey,
        [sol.token_transfer_checked(source, mint, to_alice, agent.pubkey, 3_000_000, DECIMALS)],
        blockhash(node),
    )
    verdict, signed = warden(node, world, raw)
    assert verdict.passed and signed is not None, verdict
    assert send_and_wait(node, signed, "confirmed").error is None
    assert token_balance(node, to_alice) == 3_000_000
    # Mallory's existing account, resolved on the node: refused by her name, nothing signed.
    to_mallory = sol.ata_address(world["mallory"].pubkey(), mint)
    raw = sol.unsigned(agent.pubkey, [sol.token_transfer(source, to_mallory, agent.pubkey, 1)], blockhash(node))
    verdict, signed = warden(node, world, raw)
    assert (verdict.code, verdict.facts["recipient"], signed) == (
        Code.RECIPIENT_NOT_ALLOWLISTED,
        str(world["mallory"].pubkey()),
        None,
    )


def test_an_account_the_node_does_not_hold_is_not_resolved_and_refused(node: str, world: World) -> None:
    agent, mint = world["agent"], world["mint"]
    nowhere = Keypair().pubkey()  # no account: whose tokens it would receive is unknown
    raw = sol.unsigned(
        agent.pubkey,
        [sol.token_transfer(sol.ata_address(agent.pubkey, mint), nowhere, agent.pubkey, 1)],
        blockhash(node),
    )
    verdict, signed = warden(node, world, raw)
    assert (verdict.code, signed) == (Code.SOLANA_ACCOUNT_NOT_RESOLVED, None)


def test_the_node_refuses_bytes_changed_after_signing(node: str, world: World) -> None:
    """The signature covers the message: a byte changed after Warden signed (the amount) makes
    the node refuse the transaction, so what is sent is what was judged or nothing."""
    agent, alice = world["agent"], world["alice"].pubkey()
    raw = sol.unsigned(agent.pubkey, [sol.sol_transfer(agent.pubkey, alice, 1_000)], blockhash(node))
    _, signed = warden(node, world, raw)
    assert signed is not None
    tampered = bytearray(signed)
    amount_at = bytes(tampered).rindex((1_000).to_bytes(8, "little"))
    tampered[amount_at : amount_at + 8] = (900_000_000).to_bytes(8, "little")
    with pytest.raises(Exception, match="(?i)signature"):
        run(
            _call(
                node,
                "sendTransaction",
                base64.b64encode(bytes(tampered)).decode(),
                {"encoding": "base64", "skipPreflight": False},
            )
        )


def simulate(
    url: str,
    world: World,
    raw: bytes,
    declared: SolanaVerdict | None = None,
    **options: Any,
) -> tuple[SolanaVerdict, dict[tuple[str, str], int]]:
    """`warden`'s reading, then the node's simulation of the same bytes judged against it."""
    tx = transactions.read(raw)
    if declared is None:
        declared = judged(url, world, raw, **options)
        assert declared.passed, declared
    seen = run(_with(url, lambda rpc: solana.simulate(rpc, raw, tx.writable)))
    changes = balance_changes(seen.before, seen.after)
    verdict = judge_simulation(
        changes, seen.error, agent=world["agent"].address, policy=world["policy"], declared=declared, logs=seen.logs
    )
    return verdict, {(c.owner, c.asset): c.delta for c in changes}


def test_simulation_sees_sol_and_tokens_land_where_the_instructions_said(node: str, world: World) -> None:
    agent, alice, mint = world["agent"], world["alice"].pubkey(), world["mint"]
    raw = sol.unsigned(agent.pubkey, [sol.sol_transfer(agent.pubkey, alice, 1_000_000)], blockhash(node))
    verdict, changes = simulate(node, world, raw)
    assert verdict.code is Code.SIMULATION_ROUTES_ALLOWED, verdict
    assert changes == {(agent.address, SOL): -1_005_000, (str(alice), SOL): 1_000_000}  # the fee too
    source, to_alice = sol.ata_address(agent.pubkey, mint), sol.ata_address(alice, mint)
    raw = sol.unsigned(agent.pubkey, [sol.token_transfer(source, to_alice, agent.pubkey, 42)], blockhash(node))
    verdict, changes = simulate(node, world, raw)
    assert verdict.passed and changes[(str(alice), str(mint))] == 42 and changes[(agent.address, str(mint))] == -42


def test_sol_moved_by_another_programs_inner_call_is_seen_and_refused_by_its_route(node: str, world: World) -> None:
    """The associated-token-account program pays a new account's rent from the payer through an
    inner call to the System program: for an account of mallory's, SOL reaches her. Judged as if
    the instructions had declared nothing (a program call the judge cannot read), the simulation
    alone names the route."""
    agent, stranger = world["agent"], Keypair().pubkey()
    raw = sol.unsigned(agent.pubkey, [sol.create_ata(agent.pubkey, stranger, world["mint"])], blockhash(node))
    nothing = SolanaVerdict(True, Code.SOLANA_ALLOWED, "declared nothing")
    verdict, _ = simulate(node, world, raw, declared=nothing)
    assert verdict.code is Code.SIMULATION_ROUTE_NOT_ALLOWLISTED, verdict
    assert verdict.facts["route"]["owner"] == str(stranger)
    assert verdict.facts["route"] == {
        "account": str(sol.ata_address(stranger, world["mint"])),
        "owner": str(stranger),
        "asset": SOL,
        "amount": 2_039_280,
    }


def test_the_agent_losing_more_than_declared_is_refused_and_the_rent_warden_counts_is_the_nodes(
    node: str, world: World
) -> None:
    agent, bob = world["agent"], Keypair().pubkey()
    with_bob: World = {**world, "policy": world["policy"].model_copy(update={"allowlist": (str(bob),)})}
    raw = sol.unsigned(agent.pubkey, [sol.create_ata(agent.pubkey, bob, world["mint"])], blockhash(node))
    # Counted with Warden's rent: the simulation agrees to the lamport.
    verdict, changes = simulate(node, with_bob, raw)
    assert verdict.passed, verdict
    assert -changes[(agent.address, SOL)] == verdict.spend()[SOL] == 2_039_280 + 5_000
    # A judge that under-counts the rent is caught by what the node did.
    verdict, _ = simulate(node, with_bob, raw, token_account_rent=0)
    assert verdict.code is Code.SIMULATION_MOVES_MORE_THAN_DECLARED, verdict
    assert verdict.facts["simulated"] - verdict.facts["declared"] == 2_039_280


def test_a_transaction_that_would_fail_is_refused_with_the_nodes_logs(node: str, world: World) -> None:
    alice = world["alice"].pubkey()
    poor: World = {**world, "agent": Agent()}  # an agent with no lamports: the runtime refuses
    raw = sol.unsigned(poor["agent"].pubkey, [sol.sol_transfer(poor["agent"].pubkey, alice, 1)], blockhash(node))
    verdict, _ = simulate(node, poor, raw, declared=SolanaVerdict(True, Code.SOLANA_ALLOWED, ""))
    assert verdict.code is Code.SIMULATION_FAILED and verdict.facts["error"], verdict
