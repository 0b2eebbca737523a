"""The Solana guardrails and signing against a real local Solana node (surfpool, started by the
local stack as `warden up` starts it): token accounts read over RPC for the judge, the agent's
signature put in by `svm.transactions.sign` with its custody key's seed, the node accepting the
transaction and finalizing it, and balances read back."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from infra.stack.local import LocalStack, local_settings
from rules.solana import SOL, SolanaCode, judge, token_accounts_named
from runtime import solana
from runtime.rpc import JsonRpc
from schemas.policy import SolanaPolicy, SolanaTokenLimit
from signer.chain_keys import address, public_key
from svm import transactions
from tests import solana_support as sol

CHAIN = "solana-local"
DECIMALS = 6


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    stack = LocalStack(local_settings(tmp_path_factory.mktemp("home")))
    stack.start(parts=("solana",))
    try:
        described = {p["name"]: p for p in stack.describe()}
        assert described["solana"]["address"].startswith("http://127.0.0.1:"), described
        yield stack.settings.solana_rpc_url(CHAIN)
    finally:
        stack.stop()
    assert not stack.settings.surfpool_info.exists()  # stopped: nobody is told of a node that is gone


def run(coro):
    return asyncio.run(coro)


async def _call(url: str, method: str, *params):
    rpc = JsonRpc(url, timeout_s=60)
    try:
        return await rpc.call(method, *params)
    finally:
        await rpc.close()


async def _with(url: str, work):
    rpc = JsonRpc(url, timeout_s=60)
    try:
        return await work(rpc)
    finally:
        await rpc.close()


def blockhash(url: str) -> Hash:
    return Hash.from_string(run(_with(url, solana.latest_blockhash)).blockhash)


def send_and_wait(url: str, raw: bytes, commitment: str = "finalized") -> solana.Status:
    """Send signed bytes and wait (generously) until the node says ``commitment``."""
    signature = run(_with(url, lambda rpc: solana.send(rpc, raw)))
    deadline = time.monotonic() + 120
    while True:
        (status,) = run(_with(url, lambda rpc: solana.statuses(rpc, [signature])))
        if status is not None and status.error is not None:
            return status
        if status is not None and solana.COMMITMENTS.index(status.commitment) >= solana.COMMITMENTS.index(commitment):
            return status
        assert time.monotonic() < deadline, (signature, status)
        time.sleep(0.3)


def airdrop(url: str, to: Pubkey, lamports: int) -> None:
    signature = run(_call(url, "requestAirdrop", str(to), lamports))
    deadline = time.monotonic() + 60
    while run(_with(url, lambda rpc: solana.statuses(rpc, [signature])))[0] is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)


class Agent:
    """An agent whose Solana key is derived as Warden's custody derives it (`signer.chain_keys`)."""

    def __init__(self):
        self.seed = bytearray(Keypair().secret()[:32])
        self.address = address("solana", public_key("solana", bytearray(self.seed)))
        self.pubkey = Pubkey.from_string(self.address)


@pytest.fixture(scope="module")
def world(node):
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
        allowlist=(str(alice.pubkey()),),
        max_lamports_per_tx=10**9,
        tokens=(SolanaTokenLimit(mint=str(mint.pubkey()), decimals=DECIMALS, max_per_tx=100 * 10**6),),
    )
    return {"agent": agent, "alice": alice, "mallory": mallory, "mint": mint.pubkey(), "policy": policy}


def warden(url: str, world, raw: bytes):
    """What Warden does with an agent's unsigned transaction: read it, resolve the token accounts
    it names from the node, judge it; signed only when it passed."""
    tx = transactions.read(raw)
    accounts = run(_with(url, lambda rpc: solana.token_accounts(rpc, token_accounts_named(tx))))
    verdict = judge(
        tx,
        agent=world["agent"].address,
        chain=CHAIN,
        allowed_chains=(CHAIN,),
        policy=world["policy"],
        accounts=accounts,
        spent={},
    )
    return verdict, (transactions.sign(raw, world["agent"].seed) if verdict.passed else None)


def token_balance(url: str, account: Pubkey) -> int:
    return int(run(_call(url, "getTokenAccountBalance", str(account)))["value"]["amount"])


def test_sol_to_alice_is_signed_accepted_and_finalized_on_the_node(node, world):
    agent, alice = world["agent"], world["alice"].pubkey()
    raw = sol.unsigned(agent.pubkey, [sol.sol_transfer(agent.pubkey, alice, 1_000_000)], blockhash(node))
    before = run(_with(node, lambda rpc: solana.balance(rpc, str(alice))))
    verdict, signed = warden(node, world, raw)
    assert verdict.passed and verdict.spend() == {SOL: 1_005_000}, verdict
    assert VersionedTransaction.from_bytes(signed).verify_with_results() == [True]
    status = send_and_wait(node, signed)
    assert (status.error, status.commitment) == (None, "finalized")
    assert run(_with(node, lambda rpc: solana.balance(rpc, str(alice), "finalized"))) - before == 1_000_000


def test_spl_to_alice_moves_and_spl_to_mallory_is_refused_by_her_owner_name(node, world):
    agent, mint = world["agent"], world["mint"]
    source = sol.ata_address(agent.pubkey, mint)
    to_alice = sol.ata_address(world["alice"].pubkey(), mint)
    raw = sol.unsigned(
        agent.pubkey,
        [sol.token_transfer_checked(source, mint, to_alice, agent.pubkey, 3_000_000, DECIMALS)],
        blockhash(node),
    )
    verdict, signed = warden(node, world, raw)
    assert verdict.passed, verdict
    assert send_and_wait(node, signed, "confirmed").error is None
    assert token_balance(node, to_alice) == 3_000_000
    # Mallory's existing account, resolved on the node: refused by her name, nothing signed.
    to_mallory = sol.ata_address(world["mallory"].pubkey(), mint)
    raw = sol.unsigned(agent.pubkey, [sol.token_transfer(source, to_mallory, agent.pubkey, 1)], blockhash(node))
    verdict, signed = warden(node, world, raw)
    assert (verdict.code, verdict.facts["recipient"], signed) == (
        SolanaCode.RECIPIENT_NOT_ALLOWLISTED,
        str(world["mallory"].pubkey()),
        None,
    )


def test_an_account_the_node_does_not_hold_is_not_resolved_and_refused(node, world):
    agent, mint = world["agent"], world["mint"]
    nowhere = Keypair().pubkey()  # no account: whose tokens it would receive is unknown
    raw = sol.unsigned(
        agent.pubkey,
        [sol.token_transfer(sol.ata_address(agent.pubkey, mint), nowhere, agent.pubkey, 1)],
        blockhash(node),
    )
    verdict, signed = warden(node, world, raw)
    assert (verdict.code, signed) == (SolanaCode.ACCOUNT_NOT_RESOLVED, None)


def test_the_node_refuses_bytes_changed_after_signing(node, world):
    """The signature covers the message: a byte changed after Warden signed (the amount) makes
    the node refuse the transaction, so what is sent is what was judged or nothing."""
    agent, alice = world["agent"], world["alice"].pubkey()
    raw = sol.unsigned(agent.pubkey, [sol.sol_transfer(agent.pubkey, alice, 1_000)], blockhash(node))
    _, signed = warden(node, world, raw)
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
