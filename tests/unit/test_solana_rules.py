"""The Solana guardrails (`rules.solana`) on transactions read by `svm.transactions`, each tried
against the rule it tests and then run on LiteSVM (solders' in-process Solana runtime, the
same SVM surfpool serves): what Warden says a transaction moves is what the runtime moved."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.system_program import AssignParams, assign
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import TransactionMetadata

from rules.solana import SOL, SolanaVerdict, check, judge, mints_named, token_accounts_named
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.policy import AgentPolicy, SolanaPolicy, SolanaProgramRule, SolanaTokenLimit
from sdk import solana as sol
from svm import accounts as token_accounts
from svm import programs, transactions
from svm.accounts import TokenAccount
from svm.mints import Extension, Mint, TransferFee, TransferFeeConfig, TransferHook, extension_name
from svm.mints import read as read_mint
from svm.transactions import TransactionError
from tests import solana_support as support

CHAIN = "solana-local"
DECIMALS = 6


class World:
    """A LiteSVM with an agent holding SOL and 1,000 tokens of a mint, and alice and mallory
    each with a token account of that mint."""

    def __init__(self) -> None:
        self.svm = LiteSVM()
        self.agent, self.alice, self.mallory, self.bank = Keypair(), Keypair(), Keypair(), Keypair()
        for who in (self.agent, self.bank):
            self.svm.airdrop(who.pubkey(), 10 * 10**9)
        self.svm.airdrop(self.alice.pubkey(), 10**9)
        self.mint_key = Keypair()
        self.mint = self.mint_key.pubkey()
        setup = sol.create_mint(self.bank.pubkey(), self.mint, self.bank.pubkey(), DECIMALS)
        for who in (self.agent, self.alice, self.mallory):
            setup.append(sol.create_ata(self.bank.pubkey(), who.pubkey(), self.mint))
        setup.append(sol.mint_to(self.mint, self.ata(self.agent), self.bank.pubkey(), 1_000 * 10**DECIMALS))
        self.run(sol.signed(self.bank, setup, self.svm.latest_blockhash(), self.mint_key))

    def ata(self, who: Keypair) -> Pubkey:
        return sol.ata_address(who.pubkey(), self.mint)

    def run(self, tx: VersionedTransaction) -> TransactionMetadata:
        result = self.svm.send_transaction(tx)
        assert not hasattr(result, "err"), result
        return result

    def unsigned(self, instructions: list[Instruction], legacy: bool = False) -> bytes:
        return sol.unsigned(self.agent.pubkey(), instructions, self.svm.latest_blockhash(), legacy)

    def token_accounts(self, tx: transactions.SolanaTransaction) -> dict[str, TokenAccount]:
        """What a reader of the chain gives the judge: each named token account as held."""
        out = {}
        for address in token_accounts_named(tx):
            account = self.svm.get_account(Pubkey.from_string(address))
            if account is not None:
                out[address] = token_accounts.token_account(address, str(account.owner), bytes(account.data))
        return out

    def policy(self, **changes: Any) -> SolanaPolicy:
        fields = {
            "address": str(self.agent.pubkey()),
            "allowlist": (str(self.alice.pubkey()),),
            "max_lamports_per_tx": 10**9,
            "daily_limit_lamports": 2 * 10**9,
            "max_priority_fee_lamports": 10_000,
            "tokens": (SolanaTokenLimit(mint=str(self.mint), decimals=DECIMALS, max_per_tx=100 * 10**6),),
        }
        return SolanaPolicy(**{**fields, **changes})

    def mints(self, tx: transactions.SolanaTransaction, held: dict[str, TokenAccount]) -> dict[str, Mint]:
        """What a reader of the chain gives the judge: each Token-2022 mint it needs, read whole."""
        out = {}
        for address in mints_named(tx, held):
            account = self.svm.get_account(Pubkey.from_string(address))
            assert account is not None, address
            out[address] = read_mint(address, str(account.owner), bytes(account.data))
        return out

    def judge(
        self,
        raw: bytes,
        policy: SolanaPolicy | None = None,
        spent: dict[str, int] | None = None,
        chains: tuple[str, ...] = (CHAIN,),
    ) -> SolanaVerdict:
        tx = transactions.read(raw)
        held = self.token_accounts(tx)
        return judge(
            tx,
            agent=str(self.agent.pubkey()),
            chain=CHAIN,
            allowed_chains=chains,
            policy=self.policy() if policy is None else policy,
            accounts=held,
            mints=self.mints(tx, held),
            spent=lambda asset: (spent or {}).get(asset, 0),
        )

    def sign_and_run(self, raw: bytes) -> TransactionMetadata:
        signed = transactions.sign(raw, sol.seed_of(self.agent))
        tx = VersionedTransaction.from_bytes(signed)
        assert tx.verify_with_results() == [True] * len(tx.signatures)  # solders checks every signature
        return self.run(tx)

    def lamports(self, who: Keypair) -> int:
        balance = self.svm.get_balance(who.pubkey())
        assert balance is not None, who
        return balance

    def token_balance(self, who: Keypair | Pubkey, mint: Pubkey | None = None, program: Pubkey = sol.TOKEN) -> int:
        owner = who if isinstance(who, Pubkey) else who.pubkey()
        ata = sol.ata_address(owner, mint or self.mint, program)
        account = self.svm.get_account(ata)
        assert account is not None, ata
        return token_accounts.token_account(str(ata), str(account.owner), bytes(account.data)).amount

    def mint_2022(self, **extensions: Any) -> Pubkey:
        """A Token-2022 mint of ``extensions`` (`tests.solana_support.create_mint_2022`), with a
        token account for the agent holding 1,000 tokens, and one each for alice and mallory."""
        mint = Keypair()
        setup = support.create_mint_2022(self.bank.pubkey(), mint.pubkey(), self.bank.pubkey(), DECIMALS, **extensions)
        for who in (self.agent, self.alice, self.mallory):
            setup.append(sol.create_ata(self.bank.pubkey(), who.pubkey(), mint.pubkey(), sol.TOKEN_2022))
        agents = sol.ata_address(self.agent.pubkey(), mint.pubkey(), sol.TOKEN_2022)
        setup.append(sol.mint_to(mint.pubkey(), agents, self.bank.pubkey(), 1_000 * 10**DECIMALS, sol.TOKEN_2022))
        self.run(sol.signed(self.bank, setup, self.svm.latest_blockhash(), mint))
        return mint.pubkey()

    def send_2022(self, mint: Pubkey, to: Keypair, amount: int) -> bytes:
        """The agent's unsigned TransferChecked of ``amount`` of Token-2022 ``mint`` to ``to``."""
        source, destination = (sol.ata_address(k.pubkey(), mint, sol.TOKEN_2022) for k in (self.agent, to))
        ix = sol.token_transfer_checked(
            source, mint, destination, self.agent.pubkey(), amount, DECIMALS, token_program=sol.TOKEN_2022
        )
        return self.unsigned([ix])

    def listing(self, mint: Pubkey, **limits: Any) -> SolanaPolicy:
        """The policy, listing ``mint`` too with ``limits`` (100 tokens a transaction unless given)."""
        token = SolanaTokenLimit(mint=str(mint), decimals=DECIMALS, **{"max_per_tx": 100 * 10**6, **limits})
        return self.policy(tokens=(*self.policy().tokens, token))


@pytest.fixture
def world() -> World:
    return World()


def test_a_sol_transfer_to_alice_is_allowed_and_moves_exactly_what_was_judged_fee_included(world: World) -> None:
    raw = world.unsigned(
        [
            sol.compute_limit(1_000),
            sol.compute_price(2_000),
            sol.sol_transfer(world.agent.pubkey(), world.alice.pubkey(), 12_345),
        ]
    )
    verdict = world.judge(raw)
    assert verdict.passed, verdict
    fee = 5_000 + 2  # one signature, plus 1,000 units at 2,000 micro-lamports
    assert verdict.spend() == {SOL: 12_345 + fee}
    before = (world.lamports(world.agent), world.lamports(world.alice))
    world.sign_and_run(raw)
    after = (world.lamports(world.agent), world.lamports(world.alice))
    # LiteSVM charges the signatures' fee and not the priority fee (surfpool likewise); Agave charges
    # both, the priority part as ceil(limit x price / 10^6) (fee_structure.rs), which Warden counts.
    assert before[0] - after[0] == 12_345 + 5_000
    assert after[1] - before[1] == 12_345


def test_sol_to_mallory_is_refused_naming_her(world: World) -> None:
    raw = world.unsigned([sol.sol_transfer(world.agent.pubkey(), world.mallory.pubkey(), 1)])
    verdict = world.judge(raw)
    assert (verdict.passed, verdict.code) == (False, Code.RECIPIENT_NOT_ALLOWLISTED)
    assert verdict.facts["recipient"] == str(world.mallory.pubkey())
    allowed = world.policy(allowlist=(str(world.alice.pubkey()), str(world.mallory.pubkey())))
    assert world.judge(raw, allowed).passed  # the allowlist is what refused it


@pytest.mark.parametrize("legacy", [False, True], ids=["v0", "legacy"])
def test_an_spl_transfer_to_alices_account_is_judged_as_tokens_to_alice(world: World, legacy: bool) -> None:
    ix = sol.token_transfer_checked(
        world.ata(world.agent), world.mint, world.ata(world.alice), world.agent.pubkey(), 7_000_000, DECIMALS
    )
    raw = world.unsigned([ix], legacy=legacy)
    verdict = world.judge(raw)
    assert verdict.passed, verdict
    assert [(m.asset, m.amount, m.owner) for m in verdict.movements if m.asset != SOL] == [
        (str(world.mint), 7_000_000, str(world.alice.pubkey()))
    ]
    world.sign_and_run(raw)
    assert world.token_balance(world.alice) == 7_000_000


def test_tokens_to_an_account_the_agent_creates_for_mallory_are_refused_by_her_not_the_accounts_address(
    world: World,
) -> None:
    stranger = Keypair()
    ata = sol.ata_address(stranger.pubkey(), world.mint)
    raw = world.unsigned(
        [
            sol.create_ata(world.agent.pubkey(), stranger.pubkey(), world.mint),
            sol.token_transfer(world.ata(world.agent), ata, world.agent.pubkey(), 1),
        ]
    )
    verdict = world.judge(raw, world.policy(allowlist=(str(world.alice.pubkey()), str(ata))))
    # Allowlisting the token account's address does not let tokens reach its owner.
    assert (verdict.passed, verdict.code) == (False, Code.RECIPIENT_NOT_ALLOWLISTED)
    assert verdict.facts["recipient"] == str(stranger.pubkey())
    # An existing account of mallory's, read from the chain, the same.
    raw = world.unsigned(
        [sol.token_transfer(world.ata(world.agent), world.ata(world.mallory), world.agent.pubkey(), 1)]
    )
    assert world.judge(raw).facts["recipient"] == str(world.mallory.pubkey())


def test_the_rent_of_a_token_account_for_mallory_is_value_reaching_her(world: World) -> None:
    raw = world.unsigned([sol.create_ata(world.agent.pubkey(), Keypair().pubkey(), world.mint)])
    assert world.judge(raw).code is Code.RECIPIENT_NOT_ALLOWLISTED


def test_an_unknown_program_is_refused_unless_listed_with_its_discriminator(world: World) -> None:
    program = Keypair().pubkey()
    call = Instruction(program, bytes.fromhex("0102030405060708ff"), [sol.signer(world.agent.pubkey())])
    raw = world.unsigned([call])
    verdict = world.judge(raw)
    assert (verdict.passed, verdict.code) == (False, Code.SOLANA_PROGRAM_NOT_ALLOWED)
    other = world.policy(programs=(SolanaProgramRule(program=str(program), discriminators=("0000000000000000",)),))
    assert world.judge(raw, other).code is Code.SOLANA_PROGRAM_NOT_ALLOWED
    listed = world.policy(programs=(SolanaProgramRule(program=str(program), discriminators=("0102030405060708",)),))
    assert world.judge(raw, listed).passed


def test_a_system_instruction_warden_does_not_read_is_refused_whatever_the_policy_lists(world: World) -> None:
    raw = world.unsigned([assign(AssignParams(pubkey=world.agent.pubkey(), owner=Keypair().pubkey()))])
    anything = world.policy(programs=(SolanaProgramRule(program=programs.SYSTEM, discriminators="any"),))
    verdict = world.judge(raw, anything)
    assert (verdict.passed, verdict.code) == (False, Code.SOLANA_INSTRUCTION_NOT_READ)


def test_the_fee_counts_against_the_cap_to_the_lamport(world: World) -> None:
    raw = world.unsigned([sol.sol_transfer(world.agent.pubkey(), world.alice.pubkey(), 100_000)])
    assert world.judge(raw, world.policy(max_lamports_per_tx=105_000)).passed
    verdict = world.judge(raw, world.policy(max_lamports_per_tx=104_999))
    assert (verdict.code, verdict.facts["amount"]) == (Code.VALUE_OVER_CAP, 105_000)


def test_the_priority_fee_has_a_ceiling(world: World) -> None:
    raw = world.unsigned(
        [
            sol.compute_limit(200_000),
            sol.compute_price(50_001),
            sol.sol_transfer(world.agent.pubkey(), world.alice.pubkey(), 1),
        ]
    )
    verdict = world.judge(raw)  # 200,000 units x 50,001 micro-lamports: 10,001 lamports over 10,000
    assert (verdict.code, verdict.facts["priority_fee_lamports"]) == (Code.SOLANA_PRIORITY_FEE_OVER_CEILING, 10_001)


def test_the_rolling_limit_counts_what_was_spent(world: World) -> None:
    raw = world.unsigned([sol.sol_transfer(world.agent.pubkey(), world.alice.pubkey(), 10**9 - 5_000)])
    assert world.judge(raw, spent={SOL: 10**9}).passed  # exactly the 2 SOL limit
    assert world.judge(raw, spent={SOL: 10**9 + 1}).code is Code.DAILY_LIMIT_EXCEEDED
    mint = str(world.mint)
    tokens = world.policy(tokens=(SolanaTokenLimit(mint=mint, decimals=DECIMALS, daily_limit=10),))
    move = world.unsigned([sol.token_transfer(world.ata(world.agent), world.ata(world.alice), world.agent.pubkey(), 4)])
    assert world.judge(move, tokens, spent={mint: 6}).passed
    assert world.judge(move, tokens, spent={mint: 7}).code is Code.DAILY_LIMIT_EXCEEDED


def test_token_caps_unlisted_mints_and_wrong_decimals(world: World) -> None:
    over = world.unsigned(
        [sol.token_transfer(world.ata(world.agent), world.ata(world.alice), world.agent.pubkey(), 100 * 10**6 + 1)]
    )
    assert world.judge(over).code is Code.VALUE_OVER_CAP
    assert world.judge(over, world.policy(tokens=())).code is Code.SOLANA_TOKEN_NOT_LISTED
    wrong = world.unsigned(
        [
            sol.token_transfer_checked(
                world.ata(world.agent), world.mint, world.ata(world.alice), world.agent.pubkey(), 1, DECIMALS + 1
            )
        ]
    )
    assert world.judge(wrong).code is Code.SOLANA_TOKEN_MISMATCH


def test_approvals_are_capped_and_never_unlimited(world: World) -> None:
    source, agent = world.ata(world.agent), world.agent.pubkey()
    unlimited = world.unsigned([sol.approve(source, world.alice.pubkey(), agent, 2**64 - 1)])
    assert world.judge(unlimited).code is Code.UNLIMITED_APPROVAL
    over = world.unsigned([sol.approve(source, world.alice.pubkey(), agent, 100 * 10**6 + 1)])
    assert world.judge(over).code is Code.VALUE_OVER_CAP
    to_mallory = world.unsigned([sol.approve(source, world.mallory.pubkey(), agent, 1)])
    assert world.judge(to_mallory).code is Code.RECIPIENT_NOT_ALLOWLISTED
    within = world.unsigned([sol.approve(source, world.alice.pubkey(), agent, 5)])
    assert world.judge(within).passed


def test_authority_and_closing_only_to_the_agent(world: World) -> None:
    account, agent = world.ata(world.agent), world.agent.pubkey()
    to_mallory = world.unsigned([sol.set_authority(account, agent, world.mallory.pubkey())])
    assert world.judge(to_mallory).code is Code.SOLANA_AUTHORITY_CHANGE_REFUSED
    cleared = world.unsigned([sol.set_authority(account, agent, None)])
    assert world.judge(cleared).code is Code.SOLANA_AUTHORITY_CHANGE_REFUSED
    assert world.judge(world.unsigned([sol.set_authority(account, agent, agent)])).passed
    close = world.unsigned([sol.close_account(account, world.mallory.pubkey(), agent)])
    assert world.judge(close).code is Code.SOLANA_CLOSE_TO_OTHER_REFUSED


def test_the_chain_and_the_policys_solana_section_are_required(world: World) -> None:
    raw = world.unsigned([sol.sol_transfer(world.agent.pubkey(), world.alice.pubkey(), 1)])
    assert world.judge(raw, chains=("anvil",)).code is Code.CHAIN_NOT_ALLOWED
    tx = transactions.read(raw)
    verdict = judge(
        tx,
        agent=str(world.agent.pubkey()),
        chain=CHAIN,
        allowed_chains=(CHAIN,),
        policy=None,
        accounts={},
        spent=lambda asset: 0,
    )
    assert verdict.code is Code.SOLANA_NOT_ENABLED


def test_a_transaction_the_agent_does_not_sign_is_refused_and_cannot_be_signed(world: World) -> None:
    raw = sol.unsigned(
        world.alice.pubkey(),
        [sol.sol_transfer(world.alice.pubkey(), world.agent.pubkey(), 1)],
        world.svm.latest_blockhash(),
    )
    assert world.judge(raw).code is Code.SOLANA_AGENT_NOT_SIGNER
    with pytest.raises(TransactionError, match="not a signer"):
        transactions.sign(raw, sol.seed_of(world.agent))


def test_a_filled_slot_that_is_not_over_this_message_is_refused_at_signing(world: World) -> None:
    payer = Keypair()
    ix = sol.sol_transfer(world.agent.pubkey(), world.alice.pubkey(), 1)
    honest = sol.unsigned(payer.pubkey(), [ix], world.svm.latest_blockhash())
    tx = VersionedTransaction.from_bytes(honest)
    forged = bytearray(honest)
    forged[1:65] = bytes(payer.sign_message(b"another message"))  # the fee payer's slot, over other bytes
    with pytest.raises(TransactionError, match="not over this message"):
        transactions.sign(bytes(forged), sol.seed_of(world.agent))
    good = bytearray(honest)
    good[1:65] = bytes(payer.sign_message(bytes(transactions.read(honest).message)))
    both = VersionedTransaction.from_bytes(transactions.sign(bytes(good), sol.seed_of(world.agent)))
    assert both.verify_with_results() == [True, True] and tx.message == both.message


def test_bytes_warden_cannot_read_are_refused_with_what_to_do(world: World) -> None:
    for raw, words in [
        (b"", "empty"),
        (b"\x01" + bytes(10), "not a Solana transaction"),
        (bytes(1300), "at most 1232"),
        (world.unsigned([sol.sol_transfer(world.agent.pubkey(), world.alice.pubkey(), 1)]) + b"\x00", "bytes after"),
        (world.unsigned([Instruction(sol.TOKEN, b"", [sol.signer(world.agent.pubkey())])]), "shorter"),
    ]:
        with pytest.raises(TransactionError, match=words):
            transactions.read(raw)


class UnusedNode:
    """A node the stage must not ask: it refuses before reading the chain."""

    async def call(self, method: str, *params: Any) -> Any:
        raise AssertionError(f"the node was asked {method}")


def test_a_policy_with_usd_limits_refuses_solana_spend_it_cannot_price(world: World) -> None:
    """No price is read for Solana assets: a policy that limits USD fails closed on them."""
    raw = world.unsigned([sol.sol_transfer(world.agent.pubkey(), world.alice.pubkey(), 1)])
    intent = TransactionIntent(
        intent_id="i-usd",
        agent_id="a-usd",
        chain=CHAIN,
        intent_type="solana_transaction",
        solana_transaction=base64.b64encode(raw).decode(),
        created_at=datetime.now(timezone.utc),
    )
    policy = AgentPolicy(
        agent_id="a-usd",
        version=1,
        tx_allowed_chains=(CHAIN,),
        usd_daily_limit="100",
        solana=world.policy(),
        agent_public_key="0x" + "00" * 32,
        issued_at=datetime.now(timezone.utc),
    )
    verdict, counted = asyncio.run(check(intent, policy, node=UnusedNode(), spent=lambda key: 0))
    assert (verdict.passed, verdict.code, counted) == (False, Code.PRICE_FEED_UNKNOWN, {})


def test_every_program_warden_reads_is_that_program_on_the_runtime() -> None:
    """Each id of `svm.programs` is an executable program LiteSVM loads (the SVM's own builtins
    and SPL programs): a mistyped id would read no instruction of the real program."""
    runtime = LiteSVM()
    for name in ("SYSTEM", "TOKEN", "TOKEN_2022", "ASSOCIATED_TOKEN", "COMPUTE_BUDGET", "MEMO"):
        account = runtime.get_account(Pubkey.from_string(getattr(programs, name)))
        assert account is not None and account.executable, name


def test_a_solana_network_without_an_rpc_is_refused_at_its_stage_not_a_crash(world: World, tmp_path: Path) -> None:
    """No WARDEN_RPC_URL_SOLANA and no local node: the stage refuses CHAIN_RPC_FAILED, naming
    what to set; nothing falls back to the EVM RPC."""
    from runtime.config import Settings
    from runtime.rpc import Nodes

    settings = Settings(home=tmp_path, rpc_urls={})
    node = Nodes(settings.rpc_url_for).for_chain("solana")
    raw = world.unsigned([sol.sol_transfer(world.agent.pubkey(), world.alice.pubkey(), 1)])
    intent = TransactionIntent(
        intent_id="i-rpc",
        agent_id="a-rpc",
        chain="solana",
        intent_type="solana_transaction",
        solana_transaction=base64.b64encode(raw).decode(),
        created_at=datetime.now(timezone.utc),
    )
    token = world.policy().tokens[0]
    policy = AgentPolicy(
        agent_id="a-rpc",
        version=1,
        tx_allowed_chains=("solana",),
        solana=world.policy(tokens=(token,)),
        agent_public_key="0x" + "00" * 32,
        issued_at=datetime.now(timezone.utc),
    )
    verdict, counted = asyncio.run(check(intent, policy, node=node, spent=lambda key: 0))
    assert (verdict.passed, verdict.code, counted) == (False, Code.CHAIN_RPC_FAILED, {})
    assert "WARDEN_RPC_URL_SOLANA" in verdict.reason


# -- whatever the agent's signature authorizes: multisig owners, Token-2022 extensions ----------


def test_a_multisig_the_agent_signs_for_alone_moves_under_the_agents_caps_windows_and_allowlist(world: World) -> None:
    """A 1-of-2 token multisig of [agent, other] owns 500 tokens: the agent's signature alone
    moves them (LiteSVM runs it), so what it moves is the agent's spend."""
    other, multisig = Keypair(), Keypair()
    owner = multisig.pubkey()
    setup = support.create_multisig(world.bank.pubkey(), owner, 1, [world.agent.pubkey(), other.pubkey()])
    setup += [
        sol.create_ata(world.bank.pubkey(), owner, world.mint),
        sol.mint_to(world.mint, sol.ata_address(owner, world.mint), world.bank.pubkey(), 500 * 10**6),
    ]
    world.run(sol.signed(world.bank, setup, world.svm.latest_blockhash(), multisig))

    agent_alone = (world.agent.pubkey(),)

    def move(amount: int, to: Keypair, signers: tuple[Pubkey, ...] = agent_alone) -> bytes:
        source, destination = sol.ata_address(owner, world.mint), world.ata(to)
        ix = sol.token_transfer_checked(
            source, world.mint, destination, owner, amount, DECIMALS, multisig_signers=list(signers)
        )
        return world.unsigned([ix])

    over = world.judge(move(400 * 10**6, world.alice))
    assert (over.code, over.facts["amount"], over.facts["cap"]) == (Code.VALUE_OVER_CAP, 400 * 10**6, 100 * 10**6)
    assert world.judge(move(1, world.mallory)).code is Code.RECIPIENT_NOT_ALLOWLISTED
    assert world.judge(move(1, world.alice), world.policy(tokens=())).code is Code.SOLANA_TOKEN_NOT_LISTED
    mint = str(world.mint)
    window = world.policy(tokens=(SolanaTokenLimit(mint=mint, decimals=DECIMALS, daily_limit=100 * 10**6),))
    assert (
        world.judge(move(60 * 10**6, world.alice), window, spent={mint: 41 * 10**6}).code is Code.DAILY_LIMIT_EXCEEDED
    )
    within = move(60 * 10**6, world.alice)
    verdict = world.judge(within)
    assert verdict.passed and verdict.spend()[mint] == 60 * 10**6, verdict
    world.sign_and_run(within)  # the agent's signature alone: the runtime moves them
    assert world.token_balance(world.alice) == 60 * 10**6
    # Listed with the other member only, the agent's signature authorizes nothing of the multisig's.
    others = world.judge(move(400 * 10**6, world.alice, signers=(other.pubkey(),)))
    assert others.passed and mint not in others.spend(), others


def test_a_transfer_fee_is_a_movement_to_its_withdraw_authority(world: World) -> None:
    """A listed Token-2022 mint with a 50 % fee withdrawn by mallory: 100 to alice is 50 to alice
    and 50 to mallory, refused by her name; with mallory allowed, both are counted and alice
    receives 50 on the runtime."""
    mint = world.mint_2022(fee=support.Fee(5_000, 10**12, world.mallory.pubkey()))
    raw = world.send_2022(mint, world.alice, 100 * 10**6)
    refused = world.judge(raw, world.listing(mint))
    assert (refused.code, refused.facts["recipient"]) == (Code.RECIPIENT_NOT_ALLOWLISTED, str(world.mallory.pubkey()))
    both = world.listing(mint).model_copy(
        update={"allowlist": (str(world.alice.pubkey()), str(world.mallory.pubkey()))}
    )
    verdict = world.judge(raw, both)
    assert verdict.passed, verdict
    assert [(m.owner, m.amount, m.what) for m in verdict.movements if m.asset == str(mint)] == [
        (str(world.alice.pubkey()), 50 * 10**6, "transfer"),
        (str(world.mallory.pubkey()), 50 * 10**6, "transfer fee"),
    ]
    assert verdict.spend()[str(mint)] == 100 * 10**6  # the cap counts what leaves the agent
    world.sign_and_run(raw)
    assert world.token_balance(world.alice, mint, sol.TOKEN_2022) == 50 * 10**6
    # An approval of the mint lets the delegate's transfers withhold fees for mallory too.
    source = sol.ata_address(world.agent.pubkey(), mint, sol.TOKEN_2022)
    approve = Instruction(
        sol.TOKEN_2022,
        bytes([4]) + (5).to_bytes(8, "little"),
        [sol.w(source), sol.ro(world.alice.pubkey()), sol.signer(world.agent.pubkey(), False)],
    )
    assert world.judge(world.unsigned([approve]), world.listing(mint)).code is Code.RECIPIENT_NOT_ALLOWLISTED


def test_the_worse_of_a_mints_two_fee_settings_is_counted_rounded_up_and_capped() -> None:
    older, newer = TransferFee(0, 10**9, 100), TransferFee(7, 30, 5_000)
    config = TransferFeeConfig(None, "W", older, newer)
    assert older.fee(1) == 1 and older.fee(10_001) == 101  # 1 % of 10,001 is 100.01: rounded up
    assert config.worst_fee(100) == 30  # the newer 50 %, capped at its maximum of 30
    assert config.worst_fee(10**6) == 10**4  # the older 1 %, the newer capped at 30
    assert TransferFee(0, 0, 10_000).fee(5) == 0 and TransferFee(0, 10, 0).fee(5) == 0


def test_a_permanent_delegate_or_a_transfer_hook_is_refused_unless_the_policy_accepts_it(world: World) -> None:
    delegated = world.mint_2022(permanent_delegate=world.mallory.pubkey())
    raw = world.send_2022(delegated, world.alice, 10 * 10**6)
    refused = world.judge(raw, world.listing(delegated))
    assert (refused.code, refused.facts["extension"]) == (Code.SOLANA_MINT_EXTENSION_NOT_ACCEPTED, "permanent_delegate")
    assert world.judge(raw, world.listing(delegated, accepted_extensions=("transfer_hook",))).code is (
        Code.SOLANA_MINT_EXTENSION_NOT_ACCEPTED
    )
    assert world.judge(raw, world.listing(delegated, accepted_extensions=("permanent_delegate",))).passed
    # A hook with no program yet, whose authority may set one at any time: the same.
    hooked = world.mint_2022(transfer_hook=(world.mallory.pubkey(), None))
    raw = world.send_2022(hooked, world.alice, 10 * 10**6)
    assert world.judge(raw, world.listing(hooked)).facts["extension"] == "transfer_hook"
    assert world.judge(raw, world.listing(hooked, accepted_extensions=("transfer_hook",))).passed
    # A hook cleared for good (its authority gave itself up with no program set; Token-2022
    # initializes none such), and a permanent delegate likewise: nothing to accept.
    plain = world.mint_2022()
    raw = world.send_2022(plain, world.alice, 10 * 10**6)
    for cleared in (
        dict(extensions=(Extension.TRANSFER_HOOK,), transfer_hook=TransferHook(None, None)),
        dict(extensions=(Extension.PERMANENT_DELEGATE,), permanent_delegate=None),
    ):
        assert judged_with(world, raw, world.listing(plain), lambda mint: replace(mint, **cleared)).passed


def judged_with(
    world: World, raw: bytes, policy: SolanaPolicy, mint_as: Callable[[Mint], Mint | None]
) -> SolanaVerdict:
    """The judge given each Token-2022 mint as ``mint_as`` makes it from the one on chain (None:
    not read)."""
    tx = transactions.read(raw)
    held = world.token_accounts(tx)
    given = {address: mint_as(mint) for address, mint in world.mints(tx, held).items()}
    return judge(
        tx,
        agent=str(world.agent.pubkey()),
        chain=CHAIN,
        allowed_chains=(CHAIN,),
        policy=policy,
        accounts=held,
        mints={address: mint for address, mint in given.items() if mint is not None},
        spent=lambda asset: 0,
    )


def test_a_token_2022_mint_the_judge_has_not_read_is_refused(world: World) -> None:
    mint = world.mint_2022()
    raw = world.send_2022(mint, world.alice, 1)
    verdict = judged_with(world, raw, world.listing(mint), lambda held: None)
    assert (verdict.code, verdict.facts["account"]) == (Code.SOLANA_ACCOUNT_NOT_RESOLVED, str(mint))
    assert world.judge(raw, world.listing(mint)).passed  # read, a mint without extensions


def _extended_mint(*entries: bytes) -> bytes:
    base = bytearray(82)
    base[44], base[45] = DECIMALS, 1
    return bytes(base) + bytes(165 - 82) + b"\x01" + b"".join(entries)


def _entry(kind: int, value: bytes) -> bytes:
    return kind.to_bytes(2, "little") + len(value).to_bytes(2, "little") + value


def test_mint_extensions_are_read_as_token_2022_lays_them_out() -> None:
    program = programs.TOKEN_2022
    mint = read_mint("M", program, _extended_mint(_entry(3, bytes(32)), _entry(99, b"x"), bytes(4)))
    assert (mint.decimals, mint.extensions) == (DECIMALS, (3, 99))
    assert [extension_name(kind) for kind in mint.extensions] == ["mint_close_authority", "extension_99"]
    for bad, words in [
        (_extended_mint(_entry(3, bytes(32)))[:-1], "runs past"),
        (_extended_mint(_entry(3, b""), _entry(3, b"")), "twice"),
        (_extended_mint(_entry(12, bytes(31))), "not 32"),
        (_extended_mint(b"\x03\x00\x01"), "no length"),
        (bytes(82) + bytes(83) + b"\x02", "not an initialized mint"),
    ]:
        with pytest.raises(token_accounts.AccountError, match=words):
            read_mint("M", program, bad)
    padded = bytearray(_extended_mint())
    padded[100] = 1
    with pytest.raises(token_accounts.AccountError, match="padding or account type"):
        read_mint("M", program, bytes(padded))


def test_accepted_extensions_name_only_what_warden_does_not_read_whole() -> None:
    token = {"mint": str(Keypair().pubkey()), "decimals": DECIMALS}
    accepted = SolanaTokenLimit(**token, accepted_extensions=("permanent_delegate", "extension_99"))
    assert accepted.accepted_extensions == ("permanent_delegate", "extension_99")
    assert "accepted_extensions" not in SolanaTokenLimit(**token).to_bytes().decode()  # left out at its default
    for names, words in [
        (("transfer_fee_config",), "read by Warden whole"),
        (("pausable",), "read by Warden whole"),
        (("permanent delegate",), "not a Token-2022 extension"),
        (("extension_12",), "is permanent_delegate"),
        (("transfer_hook", "transfer_hook"), "once"),
    ]:
        with pytest.raises(ValueError, match=words):
            SolanaTokenLimit(**token, accepted_extensions=names)


def test_the_rent_of_a_token_2022_account_the_agent_creates_is_its_extended_sizes_to_the_lamport(world: World) -> None:
    """The associated token account of a Token-2022 mint is larger than a Token account: the
    account type, ImmutableOwner, and what the mint's extensions require (a fee mint's
    TransferFeeAmount). Warden counts its rent from the mint read whole; the runtime agrees."""
    bob = Keypair()
    policy = world.policy(allowlist=(str(bob.pubkey()),))
    for mint, size in ((world.mint_2022(), 170), (world.mint_2022(fee=support.Fee(100, 10, None)), 182)):
        raw = world.unsigned([sol.create_ata(world.agent.pubkey(), bob.pubkey(), mint, sol.TOKEN_2022)])
        verdict = world.judge(raw, policy)
        assert verdict.passed and verdict.spend() == {SOL: support.rent(size) + 5_000}, verdict
        before = world.lamports(world.agent)
        world.sign_and_run(raw)
        assert before - world.lamports(world.agent) == verdict.spend()[SOL]
        created = world.svm.get_account(sol.ata_address(bob.pubkey(), mint, sol.TOKEN_2022))
        assert created is not None
        assert len(bytes(created.data)) == size
    unread = judged_with(world, raw, policy, lambda mint: None)
    assert unread.code is Code.SOLANA_ACCOUNT_NOT_RESOLVED, unread
