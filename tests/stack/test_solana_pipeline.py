"""Solana intents through the whole pipeline on the real stack (Tansu, the streams worker, the
signer with custody, the ledger) and a real Solana node (surfpool): signed only what the policy
allows, bound to the intent, the agent's signature checked by solders and the transaction
accepted and finalized by the node; refused otherwise, by the worker and, written straight to the
approved topic, by the signer."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mcp import ClientSession
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from infra.stack.local import LocalStack
from infra.stack.provision import Agent, provision_solana_agent
from runtime import solana
from runtime.clock import to_us, utcnow
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.metrics import metrics_file
from runtime.rpc import JsonRpc, Node
from schemas import topics
from schemas.actions import AuditAction
from schemas.amounts import U64
from schemas.auth import sign_outcome
from schemas.codes import Code
from schemas.emit import Emit
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentApproved, IntentParked, IntentRejected, SignedSolanaTransaction
from schemas.policy import AgentPolicy, SolanaTokenLimit
from schemas.stages import Stage
from sdk import solana as sol
from sdk.client import Client, Outcome, new_solana_intent, wait_outcomes
from signer.outcomes import Outcomes
from signer.solana_tracking import SolanaTracking
from signer.state import SignerState
from svm import transactions
from tests import solana_support as support
from tests.solana_signatures_support import identity_r, resigned
from tests.support import sample, warden, warden_mcp

CHAIN = "solana-local"
FEE = 5_000  # one signature, no priority fee

T = TypeVar("T")


async def _rpc(settings: Settings, work: Callable[[JsonRpc], Awaitable[T]]) -> T:
    node = JsonRpc(settings.rpc_url_for(CHAIN), timeout_s=60)
    try:
        return await work(node)
    finally:
        await node.close()


def blockhash(settings: Settings, run: Callable[..., Any]) -> Hash:
    return Hash.from_string(run(_rpc(settings, solana.latest_blockhash)))


def lamports(settings: Settings, run: Callable[..., Any], address: str, commitment: str = "confirmed") -> int:
    balance: int = run(_rpc(settings, lambda node: solana.balance(node, address, commitment)))
    return balance


def funded(settings: Settings, run: Callable[..., Any]) -> Keypair:
    """A key outside Warden holding 1 SOL: a fee payer (an x402 facilitator, a third party)."""
    payer = Keypair()
    run(_rpc(settings, lambda node: node.call("requestAirdrop", str(payer.pubkey()), 10**9)))
    deadline = time.monotonic() + 60
    while lamports(settings, run, str(payer.pubkey()), "processed") == 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return payer


def audit_rows(
    settings: Settings,
    intent_id: str,
    done: Callable[[list[tuple[str, dict[str, Any]]]], bool],
    timeout_s: float = 120,
) -> list[tuple[str, dict[str, Any]]]:
    """The intent's audit events in the ledger, (action, details) in order, once ``done`` holds of them."""
    host, _, port = settings.ledger_http.rpartition(":")
    ledger = clickhouse_connect.get_client(host=host, port=int(port))
    deadline = time.monotonic() + timeout_s
    while True:
        rows = ledger.query(
            "SELECT action, details FROM audit_log WHERE intent_id = {i:String} ORDER BY ts, seq",
            parameters={"i": intent_id},
        ).result_rows
        found = [(action, orjson.loads(details)) for action, details in rows]
        if done(found):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.5)


def agent_with(settings: Settings, run: Callable[..., Any], **policy: Any) -> Agent:
    agent: Agent = run(provision_solana_agent(settings, f"sol-{uuid.uuid4().hex[:8]}", **policy))
    assert lamports(settings, run, agent.address, "processed") == 10 * 10**9  # the airdrop landed
    return agent


def intent_for(agent: Agent, raw: bytes, **fields: Any) -> TransactionIntent:
    return new_solana_intent(agent.intent_key, agent_id=agent.agent_id, chain=CHAIN, transaction=raw, **fields)


def outcomes_of(
    settings: Settings,
    run: Callable[..., Any],
    intents: list[TransactionIntent],
    timeout_s: float = 120,
    approved: tuple[TransactionIntent, ...] = (),
    policy: AgentPolicy | None = None,
) -> dict[str, Outcome]:
    """The outcomes of ``intents`` submitted, and of ``approved`` written straight to
    warden.intents.approved under ``policy`` (as a topic writer with no key can)."""
    start = run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.SOLANA_SIGNED)))

    async def go() -> dict[str, Outcome]:
        async with Client(settings) as client:
            for intent in intents:
                await client.submit(intent)
            for intent in approved:
                record = IntentApproved(
                    intent=intent, policy=policy, verdicts=(), approved_at=utcnow(), intent_digest=intent.digest()
                )
                await client.send(topics.INTENTS_APPROVED, intent.agent_id, record.to_bytes())
            await client.flush()
        return await wait_outcomes(settings, [*intents, *approved], timeout_s, start)

    outcomes: dict[str, Outcome] = run(go())
    return outcomes


def land(
    settings: Settings, run: Callable[..., Any], payer: Keypair, instructions: list[Instruction], *others: Keypair
) -> None:
    """Set the chain up: ``instructions`` signed by keypairs held here, confirmed."""

    async def go(node: Node) -> None:
        recent = Hash.from_string(await solana.latest_blockhash(node))
        signature = await solana.send(node, bytes(sol.signed(payer, instructions, recent, *others)))
        assert (await solana.landed(node, signature, "confirmed", 60)).error is None

    run(_rpc(settings, go))


def bank(settings: Settings, run: Callable[..., Any]) -> Keypair:
    """A funded keypair that sets the chain up (mints, multisigs, accounts)."""
    payer = Keypair()
    run(_rpc(settings, lambda node: node.call("requestAirdrop", str(payer.pubkey()), 10 * 10**9)))
    deadline = time.monotonic() + 60
    while lamports(settings, run, str(payer.pubkey())) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return payer


def token_balance(settings: Settings, run: Callable[..., Any], account: Pubkey) -> int:
    reply = run(_rpc(settings, lambda node: node.call("getTokenAccountBalance", str(account))))
    return int(reply["value"]["amount"])


def approved_straight(
    settings: Settings, run: Callable[..., Any], agent: Agent, intents: list[TransactionIntent]
) -> dict[str, Outcome]:
    """The intents approved by a topic writer with no key, written straight to the signer's
    topic under the agent's policy: the signer's outcomes."""
    return outcomes_of(settings, run, [], approved=tuple(intents), policy=agent.policy)


def send_and_wait_finalized(settings: Settings, run: Callable[..., Any], signed_tx: str) -> solana.Status:
    raw = base64.b64decode(signed_tx)

    async def go(node: Node) -> solana.Status:
        return await solana.landed(node, await solana.send(node, raw), "finalized", 120)

    status: solana.Status = run(_rpc(settings, go))
    return status


def broadcast_record(
    tmp_path: Path, signed_tx: bytes, agent: str, payer: str, spend: int
) -> tuple[SignedSolanaTransaction, SignerState, int]:
    """A broadcast Solana transaction (``payer`` pays its fee) as the signer records it, with its
    reservation of ``spend`` lamports, in a signer record of the test's own: (the record, that
    record's file, when it was reserved)."""
    tx = transactions.read(signed_tx)
    record = SignedSolanaTransaction(
        intent_id=f"i-{uuid.uuid4().hex[:8]}",
        agent_id=f"a-{uuid.uuid4().hex[:8]}",
        chain=CHAIN,
        **{"from": agent},
        signature=tx.signature_of(agent),
        tx_signature=tx.signature_of(payer),
        signed_tx=base64.b64encode(signed_tx).decode(),
        recent_blockhash=tx.recent_blockhash,
        spend={"SOL": str(spend)},
        status="broadcast",
        tee="none",
        signed_at=utcnow(),
    )
    state = SignerState(tmp_path / "state.db", fsync=False)
    now_us = to_us(utcnow())
    state.agent(record.agent_id).record_message(
        intent_id=record.intent_id,
        record=record.to_bytes(),
        now_us=now_us,
        policy_version=1,
        idempotency_slot=None,
        assets={f"{CHAIN}:SOL": spend},
        kind="solana",
    )
    return record, state, now_us


def test_sol_to_alice_is_signed_bound_to_the_intent_and_the_node_finalizes_it(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    alice = Keypair().pubkey()
    agent = agent_with(settings, run, allowlist=(str(alice),), max_lamports_per_tx=2 * 10**9)
    me = Pubkey.from_string(agent.address)
    raw = sol.unsigned(me, [sol.sol_transfer(me, alice, 1_500_000)], blockhash(settings, run))
    intent = intent_for(agent, raw)
    (outcome,) = outcomes_of(settings, run, [intent]).values()
    assert isinstance(outcome, SignedSolanaTransaction), outcome
    assert (outcome.status, outcome.final, outcome.from_) == ("sign_only", True, agent.address)
    assert outcome.intent_digest == intent.digest() and outcome.spend == {"SOL": str(1_500_000 + FEE)}
    signed = VersionedTransaction.from_bytes(base64.b64decode(outcome.signed_tx))
    assert signed.verify_with_results() == [True]  # solders checks the agent's signature
    assert signed.message == VersionedTransaction.from_bytes(raw).message  # exactly what the agent asked
    assert str(signed.signatures[0]) == outcome.signature == outcome.tx_signature
    status = send_and_wait_finalized(settings, run, outcome.signed_tx)  # sign only: the agent sends it
    assert status.error is None
    assert lamports(settings, run, str(alice), "finalized") == 1_500_000
    # The ledger holds every step, the signature with the intent's digest.
    host, _, port = settings.ledger_http.rpartition(":")
    ledger = clickhouse_connect.get_client(host=host, port=int(port))
    wanted = [
        AuditAction.INTENT_SUBMITTED,
        AuditAction.STAGE_PASSED,
        AuditAction.STAGE_PASSED,
        AuditAction.INTENT_APPROVED,
        AuditAction.SOLANA_SIGNED,
    ]
    deadline = time.monotonic() + 120
    while True:
        rows = ledger.query(
            "SELECT action, details FROM audit_log WHERE intent_id = {i:String} ORDER BY ts, seq",
            parameters={"i": intent.intent_id},
        ).result_rows
        if [a for a, _ in rows] == wanted:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.5)
    details = orjson.loads(rows[-1][1])
    assert (details["intent_digest"], details["signature"], details["from"]) == (
        intent.digest(),
        outcome.signature,
        agent.address,
    )


def test_warden_submit_signs_a_solana_file_and_prints_one_line_and_the_bytes_to_send(
    stack: LocalStack, run: Callable[..., Any], tmp_path: Path
) -> None:
    settings = stack.settings
    alice = Keypair().pubkey()
    agent = agent_with(settings, run, allowlist=(str(alice),), max_lamports_per_tx=2 * 10**9)
    me = Pubkey.from_string(agent.address)
    raw = sol.unsigned(me, [sol.sol_transfer(me, alice, 1_000_000)], blockhash(settings, run))
    path = tmp_path / "transfer.b64"
    path.write_text(base64.b64encode(raw).decode())
    done = warden(
        settings, "submit", "--agent", agent.agent_id, "--chain", CHAIN, "--solana-tx", str(path), "--timeout", "90"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].startswith("SIGNED ") and " sign_only " in lines[1] and f"by {agent.address}" in lines[1], lines
    assert lines[2].startswith("  signed transaction (base64): "), lines
    signed = VersionedTransaction.from_bytes(base64.b64decode(lines[2].split(": ", 1)[1]))
    assert signed.verify_with_results() == [True] and signed.message == VersionedTransaction.from_bytes(raw).message


def test_what_the_policy_does_not_allow_is_refused_by_the_worker(stack: LocalStack, run: Callable[..., Any]) -> None:
    settings = stack.settings
    alice, mallory, program = Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey()
    agent = agent_with(settings, run, allowlist=(str(alice),), max_lamports_per_tx=1_000_000)
    me = Pubkey.from_string(agent.address)
    recent = blockhash(settings, run)
    cases = {
        Code.RECIPIENT_NOT_ALLOWLISTED: [sol.sol_transfer(me, mallory, 1_000)],
        Code.SOLANA_PROGRAM_NOT_ALLOWED: [Instruction(program, b"\x01" * 8, [sol.signer(me)])],
        Code.VALUE_OVER_CAP: [sol.sol_transfer(me, alice, 1_000_000 - FEE + 1)],
        Code.SOLANA_PRIORITY_FEE_OVER_CEILING: [sol.compute_price(1), sol.sol_transfer(me, alice, 1_000)],
        # 18446744073.709551615 SOL: u64::MAX lamports, the fee on top past what the runtime holds.
        Code.AMOUNT_OUT_OF_RANGE: [sol.sol_transfer(me, alice, U64.most)],
    }
    intents = {code: intent_for(agent, sol.unsigned(me, ixs, recent)) for code, ixs in cases.items()}
    outcomes = outcomes_of(settings, run, list(intents.values()))
    for code, intent in intents.items():
        outcome = outcomes[intent.intent_id]
        assert isinstance(outcome, IntentRejected), (code, outcome)
        assert (outcome.stage, outcome.code) == (Stage.SOLANA, code), outcome


def test_fifty_concurrent_intents_spend_exactly_the_daily_limit(stack: LocalStack, run: Callable[..., Any]) -> None:
    settings = stack.settings
    alice = Keypair().pubkey()
    each = 1_000_000 + FEE
    agent = agent_with(settings, run, allowlist=(str(alice),), daily_limit_lamports=10 * each)
    me = Pubkey.from_string(agent.address)
    recent = blockhash(settings, run)
    intents = [
        intent_for(
            agent, sol.unsigned(me, [sol.sol_transfer(me, alice, 1_000_000), sol.compute_limit(1000 + n)], recent)
        )
        for n in range(50)
    ]
    outcomes = outcomes_of(settings, run, intents, timeout_s=300).values()
    signed = [o for o in outcomes if isinstance(o, SignedSolanaTransaction)]
    refused = [o.code for o in outcomes if isinstance(o, IntentRejected)]
    assert len(signed) == 10 and refused == [Code.DAILY_LIMIT_EXCEEDED] * 40, (len(signed), refused)


def test_the_signer_judges_an_approval_written_straight_to_its_topic(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """A topic writer with no key approves, itself, SOL to mallory, SOL above the admins'
    threshold and u64::MAX lamports (the fee on top past the runtime's u64): the signer re-runs the
    judge with its own state and node, requires the admins' approval itself, and refuses all three,
    each with a signed refusal; nothing is signed."""
    settings = stack.settings
    alice, mallory = Keypair().pubkey(), Keypair().pubkey()
    agent = agent_with(settings, run, allowlist=(str(alice),), approval_threshold_lamports=1_500_000)
    me = Pubkey.from_string(agent.address)
    recent = blockhash(settings, run)
    to_mallory = intent_for(agent, sol.unsigned(me, [sol.sol_transfer(me, mallory, 1_000_000)], recent))
    unapproved = intent_for(agent, sol.unsigned(me, [sol.sol_transfer(me, alice, 2_000_000)], recent))
    past_u64 = intent_for(agent, sol.unsigned(me, [sol.sol_transfer(me, alice, U64.most)], recent))
    outcomes = approved_straight(settings, run, agent, [to_mallory, unapproved, past_u64])
    for intent, code in (
        (to_mallory, Code.RECIPIENT_NOT_ALLOWLISTED),
        (unapproved, Code.HUMAN_APPROVAL_REQUIRED),
        (past_u64, Code.AMOUNT_OUT_OF_RANGE),
    ):
        outcome = outcomes[intent.intent_id]
        assert isinstance(outcome, IntentRejected) and (outcome.stage, outcome.code) == (Stage.SIGNING, code), outcome


def test_a_broadcast_transfer_is_sent_and_followed_to_finalized_with_every_step_on_the_ledger(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    alice = Keypair().pubkey()
    agent = agent_with(settings, run, allowlist=(str(alice),))
    me = Pubkey.from_string(agent.address)
    raw = sol.unsigned(me, [sol.sol_transfer(me, alice, 2_000_000)], blockhash(settings, run))
    intent = intent_for(agent, raw, broadcast=True)
    (outcome,) = outcomes_of(settings, run, [intent]).values()  # waits for a final status
    assert isinstance(outcome, SignedSolanaTransaction), outcome
    assert (outcome.status, outcome.final, outcome.error) == ("finalized", True, None), outcome
    assert outcome.slot is not None and outcome.intent_digest == intent.digest()
    assert lamports(settings, run, str(alice), "finalized") == 2_000_000
    tx_signature = outcome.tx_signature
    assert tx_signature is not None
    (status,) = run(_rpc(settings, lambda node: solana.statuses(node, [tx_signature])))
    assert (status.commitment, status.slot) == ("finalized", outcome.slot)  # what the node says too
    host, _, port = settings.ledger_http.rpartition(":")
    ledger = clickhouse_connect.get_client(host=host, port=int(port))
    deadline = time.monotonic() + 120
    while True:
        actions = [
            a
            for (a,) in ledger.query(
                "SELECT action FROM audit_log WHERE intent_id = {i:String} ORDER BY ts, seq",
                parameters={"i": intent.intent_id},
            ).result_rows
        ]
        if actions and actions[-1] == AuditAction.SOLANA_FINALIZED:
            break
        assert time.monotonic() < deadline, actions
        time.sleep(0.5)
    assert actions[:5] == [
        AuditAction.INTENT_SUBMITTED,
        AuditAction.STAGE_PASSED,
        AuditAction.STAGE_PASSED,
        AuditAction.INTENT_APPROVED,
        AuditAction.SOLANA_SIGNED,
    ]
    assert AuditAction.SOLANA_BROADCAST in actions


def test_broadcast_needs_every_signature_and_sign_only_fills_the_agents_slot_alone(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """A transaction another fee payer must sign too (an x402 facilitator's): signed only, the
    agent's slot filled and the payer's left for the payer; broadcast is refused by the signer."""
    settings = stack.settings
    alice, payer = Keypair().pubkey(), funded(settings, run)
    agent = agent_with(settings, run, allowlist=(str(alice),), max_lamports_per_tx=1_000_000)
    me = Pubkey.from_string(agent.address)
    raw = sol.unsigned(payer.pubkey(), [sol.sol_transfer(me, alice, 1_000_000)], blockhash(settings, run))
    sign_only, broadcast = intent_for(agent, raw), intent_for(agent, raw, broadcast=True)
    outcomes = outcomes_of(settings, run, [sign_only, broadcast])
    refused = outcomes[broadcast.intent_id]
    assert isinstance(refused, IntentRejected), refused
    assert (refused.stage, refused.code) == (Stage.SIGNING, Code.SOLANA_SIGNATURES_MISSING), refused
    signed = outcomes[sign_only.intent_id]
    assert isinstance(signed, SignedSolanaTransaction) and signed.tx_signature is None, signed
    assert signed.spend == {"SOL": "1000000"}  # the payer pays the fee: not the agent's spend
    tx = VersionedTransaction.from_bytes(base64.b64decode(signed.signed_tx))
    assert tx.verify_with_results() == [False, True]  # the payer's slot is the payer's to fill
    # The payer signs its slot, and the node takes what both signed.
    both = VersionedTransaction.populate(
        tx.message, [payer.sign_message(to_bytes_versioned(tx.message)), tx.signatures[1]]
    )
    assert send_and_wait_finalized(settings, run, base64.b64encode(bytes(both)).decode()).error is None
    assert lamports(settings, run, str(alice), "finalized") == 1_000_000


class CopyLandedFirst:
    """Warden signed a transfer whose fee payer's slot was valid; before its bytes land, the fee
    payer signs the same message again and lands that copy, which carries the agent's signature.
    The signer's tracker, on the real node and a record of its own, follows the copy."""

    def __init__(self, settings: Settings, run: Callable[..., Any], tmp_path: Path, recent: Hash) -> None:
        self.settings, self.run = settings, run
        alice, payer, agent = Keypair().pubkey(), funded(settings, run), funded(settings, run)
        raw = sol.unsigned(payer.pubkey(), [sol.sol_transfer(agent.pubkey(), alice, 1_000_000)], recent)
        message = transactions.read(raw).message
        signed_tx = transactions.sign(raw[:1] + bytes(payer.sign_message(message)) + raw[65:], sol.seed_of(agent))
        self.record, state, self.now_us = broadcast_record(
            tmp_path / "copied", signed_tx, str(agent.pubkey()), str(payer.pubkey()), 1_000_000
        )
        self.kept = state.agent(self.record.agent_id)
        held = VersionedTransaction.from_bytes(signed_tx)
        self.copy = VersionedTransaction.populate(held.message, [resigned(payer, message), held.signatures[1]])
        self.tracking = SolanaTracking(
            state, _no_node, Outcomes(state, ("signer-test", Ed25519PrivateKey.generate()), "none")
        )

    def tracked(self, work: Callable[[SolanaTracking], Awaitable[T]]) -> T:
        async def go() -> T:
            node = JsonRpc(self.settings.rpc_url_for(CHAIN), timeout_s=60)
            self.tracking.node_for = lambda chain: node
            try:
                return await work(self.tracking)
            finally:
                await node.close()

        result: T = self.run(go())
        return result

    def land_then_look(self) -> SignedSolanaTransaction:
        """The copy landed (finalized), then the record as signed looked at: it follows the copy."""
        landed = send_and_wait_finalized(self.settings, self.run, base64.b64encode(bytes(self.copy)).decode())
        assert landed.error is None and str(self.copy.signatures[0]) != self.record.tx_signature
        looked = self.tracked(lambda tracking: tracking.look(self.record, utcnow()))
        assert looked is not None
        emits, followed = looked
        assert (followed.status, followed.final, followed.slot) == ("finalized", True, landed.slot), followed
        assert followed.tx_signature == str(self.copy.signatures[0])
        assert base64.b64decode(followed.signed_tx) == bytes(self.copy)
        assert self.kept.solana_record(self.record.intent_id) == emits[0].value
        return followed

    def look_once_expired(self, followed: SignedSolanaTransaction) -> None:
        """Its blockhash expired: looked at again from the record as signed, what landed, never
        dropped; one landing, counted once; the reservation kept."""
        looked = self.tracked(lambda tracking: tracking.look(self.record, utcnow()))
        assert looked is not None
        _, again = looked
        assert (again.status, again.tx_signature) == ("finalized", followed.tx_signature), again
        assert self.tracked(lambda tracking: tracking.count_landings(followed, utcnow())) == ([], False)
        entries = self.kept.asset_entries(f"{CHAIN}:SOL", self.now_us)
        assert entries == {self.record.intent_id: (self.now_us, 1_000_000)}


def test_an_expired_blockhash_is_refused_before_signing_and_a_signed_one_that_never_landed_is_dropped(
    stack: LocalStack, run: Callable[..., Any], tmp_path: Path
) -> None:
    """A blockhash lives ~150 blocks (~30 s on the local node). An intent whose blockhash expired is
    refused by the worker's simulation; a transaction signed while it was valid but never landed
    is reported dropped by the signer's tracker, final, its reservation released, and not sent.
    One whose message landed in a copy the fee payer signed again is never dropped
    (`CopyLandedFirst`)."""
    settings = stack.settings
    alice = Keypair().pubkey()
    agent = agent_with(settings, run, allowlist=(str(alice),))
    me = Pubkey.from_string(agent.address)
    old = blockhash(settings, run)
    raw = sol.unsigned(me, [sol.sol_transfer(me, alice, 1_000_000)], old)
    copied = CopyLandedFirst(settings, run, tmp_path, old)
    followed = copied.land_then_look()

    def valid() -> dict[str, Any]:
        reply: dict[str, Any] = run(
            _rpc(settings, lambda n: n.call("isBlockhashValid", str(old), {"commitment": "processed"}))
        )
        return reply

    deadline = time.monotonic() + 180
    while valid()["value"] or run(_rpc(settings, lambda node: solana.blockhash_valid(node, str(old), "finalized"))):
        assert time.monotonic() < deadline
        time.sleep(1)
    copied.look_once_expired(followed)
    (outcome,) = outcomes_of(settings, run, [intent_for(agent, raw, broadcast=True)]).values()
    assert isinstance(outcome, IntentRejected) and outcome.code == Code.SIMULATION_FAILED, outcome
    assert "Blockhash" in outcome.reason, outcome.reason
    # What the signer's tracker says of bytes signed while the blockhash was valid, never sent.
    payer = Keypair()
    never_sent = transactions.sign(
        sol.unsigned(payer.pubkey(), [sol.sol_transfer(payer.pubkey(), alice, 1)], old), bytearray(payer.secret()[:32])
    )
    record, state, now_us = broadcast_record(tmp_path, never_sent, str(payer.pubkey()), str(payer.pubkey()), 1 + FEE)
    outcomes = Outcomes(state, ("signer-test", Ed25519PrivateKey.generate()), "none")
    kept = state.agent(record.agent_id)
    assert kept.asset_entries(f"{CHAIN}:SOL", now_us) == {record.intent_id: (now_us, 1 + FEE)}

    async def look() -> tuple[list[Emit], SignedSolanaTransaction] | None:
        node = JsonRpc(settings.rpc_url_for(CHAIN), timeout_s=60)
        try:
            return await SolanaTracking(state, lambda chain: node, outcomes).look(record, utcnow())
        finally:
            await node.close()

    emits, dropped = run(look())
    assert (dropped.status, dropped.final, dropped.slot) == ("dropped", True, None), dropped
    assert "blockhash expired" in dropped.error
    assert [e.topic for e in emits] == [topics.SOLANA_SIGNED, topics.AUDIT_EVENTS]
    assert kept.asset_entries(f"{CHAIN}:SOL", now_us) == {record.intent_id: (now_us, 0)}  # released
    assert kept.solana_record(record.intent_id) == emits[0].value
    never_landed = record.tx_signature
    assert never_landed is not None
    assert run(_rpc(settings, lambda node: solana.statuses(node, [never_landed]))) == [None]


def test_a_forged_solana_outcome_on_the_topic_is_not_believed(stack: LocalStack, run: Callable[..., Any]) -> None:
    """A topic writer with no pinned key says the intent was finalized, before the signer speaks:
    the client skips it, names it forged, and takes the signer's answer."""
    settings = stack.settings
    alice = Keypair().pubkey()
    agent = agent_with(settings, run, allowlist=(str(alice),))
    me = Pubkey.from_string(agent.address)
    intent = intent_for(agent, sol.unsigned(me, [sol.sol_transfer(me, alice, 1_000_000)], blockhash(settings, run)))
    lie = SignedSolanaTransaction(
        intent_id=intent.intent_id,
        agent_id=intent.agent_id,
        chain=CHAIN,
        **{"from": agent.address},
        signature="1" * 64,
        signed_tx=intent.solana_transaction,
        recent_blockhash="1" * 32,
        status="finalized",
        final=True,
        tee="none",
        signed_at=utcnow(),
        intent_digest=intent.digest(),
    )
    start = run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.SOLANA_SIGNED)))
    forged: list[tuple[str, str]] = []

    async def go() -> dict[str, Outcome]:
        async with Client(settings) as client:
            forgery = sign_outcome(lie, Ed25519PrivateKey.generate(), "signer-0").to_bytes()
            await (await client.send(topics.SOLANA_SIGNED, intent.agent_id, forgery))
            await client.submit(intent)
        return await wait_outcomes(settings, [intent], 120, start, forged=forged)

    (outcome,) = run(go()).values()
    assert isinstance(outcome, SignedSolanaTransaction) and outcome.status == "sign_only", outcome
    assert [intent_id for intent_id, _ in forged] == [intent.intent_id], forged


def test_an_mcp_client_has_a_solana_transaction_signed_and_finalized_and_one_refused(
    stack: LocalStack, run: Callable[..., Any], tmp_path: Path
) -> None:
    """A real MCP client session with `warden mcp` for the agent: submit_solana_transaction."""
    settings = stack.settings
    alice, mallory = Keypair().pubkey(), Keypair().pubkey()
    agent = agent_with(settings, run, allowlist=(str(alice),))
    me = Pubkey.from_string(agent.address)
    recent = blockhash(settings, run)
    good = base64.b64encode(sol.unsigned(me, [sol.sol_transfer(me, alice, 1_000_000)], recent)).decode()
    bad = base64.b64encode(sol.unsigned(me, [sol.sol_transfer(me, mallory, 1_000_000)], recent)).decode()

    async def calls() -> tuple[set[str], CallToolResult, CallToolResult, CallToolResult]:
        with open(tmp_path / "mcp.log", "w") as errlog:
            server = warden_mcp(settings, agent.agent_id)
            async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                tools = {tool.name for tool in (await session.list_tools()).tools}

                async def call(**arguments: Any) -> CallToolResult:
                    return await session.call_tool("submit_solana_transaction", arguments, read_timeout_seconds=150)

                return (
                    tools,
                    await call(chain=CHAIN, transaction=good),
                    await call(chain=CHAIN, transaction=bad, broadcast=False),
                    await call(chain=CHAIN, transaction="not base64!"),
                )

    tools, finalized, refused, invalid = run(calls())
    assert "submit_solana_transaction" in tools
    done = finalized.structured_content
    assert (done["status"], done["final"], done["from"]) == ("finalized", True, agent.address), finalized.content
    assert lamports(settings, run, str(alice), "finalized") == 1_000_000
    no = refused.structured_content
    assert (no["status"], no["refusal"]["stage"], no["refusal"]["code"]) == (
        "refused",
        Stage.SOLANA,
        Code.RECIPIENT_NOT_ALLOWLISTED,
    ), refused.content
    assert invalid.is_error and "not base64" in invalid.content[0].text


def test_above_its_approval_threshold_a_solana_intent_waits_for_an_admin_who_is_shown_its_instructions(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    alice = Keypair().pubkey()
    agent = agent_with(settings, run, allowlist=(str(alice),), approval_threshold_lamports=1_000_000)
    me = Pubkey.from_string(agent.address)
    recent = blockhash(settings, run)
    small, big, denied = (
        intent_for(agent, sol.unsigned(me, [sol.sol_transfer(me, alice, lamports)], recent))
        for lamports in (950_000, 2_000_000, 3_000_000)  # each above what a new account must hold (rent)
    )
    start = run(
        end_offsets(settings, (topics.INTENTS_REJECTED, topics.SOLANA_SIGNED, topics.INTENTS_AWAITING_APPROVAL))
    )

    async def submit() -> dict[str, Outcome]:
        async with Client(settings) as client:
            for intent in (small, big, denied):
                await client.submit(intent)
        return await wait_outcomes(settings, [small, big, denied], 120, start, final=False)

    first = run(submit())
    assert isinstance(first[small.intent_id], SignedSolanaTransaction)  # below the threshold: no wait
    assert isinstance(first[big.intent_id], IntentParked) and isinstance(first[denied.intent_id], IntentParked)
    # Approved first: the transaction's blockhash lives about a minute, which a busy machine's CLI
    # calls could spend before the signer checks it; the listing is read from the one still parked.
    assert warden(settings, "approvals", "approve", big.intent_id).returncode == 0
    listed = warden(settings, "approvals", "list", "--agent", agent.agent_id, "--json")
    rows = {row["intent_id"]: row for row in orjson.loads(listed.stdout)["awaiting_approval"]}
    assert set(rows) == {denied.intent_id}, rows
    assert "3005000 lamports is above the approval threshold of 1000000" in rows[denied.intent_id]["reason"]
    shown = rows[denied.intent_id]["instructions"]
    assert f"0: sol_transfer 3000000 from {agent.address} to {alice}" in shown[1], shown
    assert warden(settings, "approvals", "deny", denied.intent_id, "--reason", "no").returncode == 0
    final = run(wait_outcomes(settings, [big, denied], 120, start))
    assert isinstance(final[big.intent_id], SignedSolanaTransaction) and final[big.intent_id].status == "sign_only"
    assert (final[denied.intent_id].stage, final[denied.intent_id].code) == (Stage.APPROVAL, Code.APPROVAL_DENIED)


def test_a_multisig_the_agent_signs_for_alone_moves_only_within_the_agents_limits(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """A multisig token account: a token account owned by a 1-of-2 multisig of [agent, other] holds 500
    TKN, and the agent's signature alone moves them. 400 to alice against a 100 cap is refused by
    the worker and by the signer, and nothing moves; 60 is signed and lands; the window counts it,
    so 60 more is over the daily 100; mallory is refused by her name. Two TransferChecked of u64::MAX
    in one transaction move more together than the token program holds: a signed refusal by the
    worker and by the signer, not a dead letter."""
    settings, payer = stack.settings, bank(stack.settings, run)
    alice, mallory, other, multisig, mint = Keypair(), Keypair(), Keypair(), Keypair(), Keypair()
    limit = SolanaTokenLimit(mint=str(mint.pubkey()), decimals=6, max_per_tx=100 * 10**6, daily_limit=100 * 10**6)
    agent = agent_with(settings, run, allowlist=(str(alice.pubkey()),), tokens=(limit,))
    me, owner = Pubkey.from_string(agent.address), multisig.pubkey()
    setup = sol.create_mint(payer.pubkey(), mint.pubkey(), payer.pubkey(), 6)
    setup += support.create_multisig(payer.pubkey(), owner, 1, [me, other.pubkey()])
    setup += [sol.create_ata(payer.pubkey(), who, mint.pubkey()) for who in (owner, alice.pubkey(), mallory.pubkey())]
    held = sol.ata_address(owner, mint.pubkey())
    setup.append(sol.mint_to(mint.pubkey(), held, payer.pubkey(), 500 * 10**6))
    land(settings, run, payer, setup, mint, multisig)
    recent = blockhash(settings, run)

    def move(amount: int, to: Keypair) -> TransactionIntent:
        destination = sol.ata_address(to.pubkey(), mint.pubkey())
        ix = sol.token_transfer_checked(held, mint.pubkey(), destination, owner, amount, 6, multisig_signers=[me])
        return intent_for(agent, sol.unsigned(me, [ix], recent))

    def twice_u64_max() -> TransactionIntent:
        """Two TransferChecked of u64::MAX: together past what the token program holds."""
        destination = sol.ata_address(alice.pubkey(), mint.pubkey())
        ix = sol.token_transfer_checked(held, mint.pubkey(), destination, owner, U64.most, 6, multisig_signers=[me])
        return intent_for(agent, sol.unsigned(me, [ix, ix], recent))

    over, within, again, to_mallory, past_u64 = (
        move(400 * 10**6, alice),
        move(60 * 10**6, alice),
        move(60 * 10**6, alice),
        (move(10**6, mallory)),
        twice_u64_max(),
    )
    outcomes = outcomes_of(settings, run, [over, within, again, to_mallory, past_u64])
    for intent, code in (
        (over, Code.VALUE_OVER_CAP),
        (again, Code.DAILY_LIMIT_EXCEEDED),
        (to_mallory, Code.RECIPIENT_NOT_ALLOWLISTED),
        (past_u64, Code.AMOUNT_OUT_OF_RANGE),
    ):
        refused = outcomes[intent.intent_id]
        assert isinstance(refused, IntentRejected) and (refused.stage, refused.code) == (Stage.SOLANA, code), refused
    straight = [move(400 * 10**6, alice), twice_u64_max()]
    by_signer = approved_straight(settings, run, agent, straight)
    for intent, code in zip(straight, (Code.VALUE_OVER_CAP, Code.AMOUNT_OUT_OF_RANGE), strict=True):
        refused = by_signer[intent.intent_id]
        assert isinstance(refused, IntentRejected), refused
        assert (refused.stage, refused.code) == (Stage.SIGNING, code), refused
    assert token_balance(settings, run, held) == 500 * 10**6  # nothing moved
    signed = outcomes[within.intent_id]
    assert isinstance(signed, SignedSolanaTransaction), signed
    assert signed.spend == {"SOL": str(FEE), str(mint.pubkey()): str(60 * 10**6)}
    assert send_and_wait_finalized(settings, run, signed.signed_tx).error is None
    assert token_balance(settings, run, held) == 440 * 10**6
    assert token_balance(settings, run, sol.ata_address(alice.pubkey(), mint.pubkey())) == 60 * 10**6


def test_token_2022_fees_and_permanent_delegates_are_judged_by_the_worker_and_the_signer(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """Token-2022 extensions, on the node's Token-2022: listed mints, each with 1,000 tokens of the
    agent's. A 50 % transfer fee withdrawn by mallory: 100 to alice is 50 to mallory, refused. The
    same fee withdrawn by an allowlisted treasury: signed, and alice receives 50. A permanent
    delegate: refused unless the policy accepts it for that mint. The signer refuses the same
    itself."""
    settings, payer = stack.settings, bank(stack.settings, run)
    alice, mallory, treasury = Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey()
    mints = {name: Keypair() for name in ("fee_to_mallory", "fee_to_treasury", "delegated", "delegated_accepted")}
    extensions: dict[str, dict[str, Any]] = {
        "fee_to_mallory": {"fee": support.Fee(5_000, 10**12, mallory)},
        "fee_to_treasury": {"fee": support.Fee(5_000, 10**12, treasury)},
        "delegated": {"permanent_delegate": mallory},
        "delegated_accepted": {"permanent_delegate": mallory},
    }
    accepted = {"delegated_accepted": ("permanent_delegate",)}
    tokens = tuple(
        SolanaTokenLimit(
            mint=str(key.pubkey()), decimals=6, max_per_tx=100 * 10**6, accepted_extensions=accepted.get(name, ())
        )
        for name, key in mints.items()
    )
    agent = agent_with(settings, run, allowlist=(str(alice), str(treasury)), tokens=tokens)
    me, program = Pubkey.from_string(agent.address), sol.TOKEN_2022
    for name, key in mints.items():
        mint = key.pubkey()
        setup = support.create_mint_2022(payer.pubkey(), mint, payer.pubkey(), 6, **extensions[name])
        setup += [sol.create_ata(payer.pubkey(), who, mint, program) for who in (me, alice)]
        setup.append(sol.mint_to(mint, sol.ata_address(me, mint, program), payer.pubkey(), 1_000 * 10**6, program))
        land(settings, run, payer, setup, key)
    recent = blockhash(settings, run)

    def hundred_to_alice(name: str) -> TransactionIntent:
        mint = mints[name].pubkey()
        source, destination = sol.ata_address(me, mint, program), sol.ata_address(alice, mint, program)
        ix = sol.token_transfer_checked(source, mint, destination, me, 100 * 10**6, 6, token_program=program)
        return intent_for(agent, sol.unsigned(me, [ix], recent))

    intents = {name: hundred_to_alice(name) for name in mints}
    refusals = {"fee_to_mallory": Code.RECIPIENT_NOT_ALLOWLISTED, "delegated": Code.SOLANA_MINT_EXTENSION_NOT_ACCEPTED}
    outcomes = outcomes_of(settings, run, list(intents.values()))
    straight = {name: hundred_to_alice(name) for name in refusals}  # the same bytes, never seen by the worker
    by_signer = approved_straight(settings, run, agent, list(straight.values()))
    for name, code in refusals.items():
        for stage, refused in (
            (Stage.SOLANA, outcomes[intents[name].intent_id]),
            (Stage.SIGNING, by_signer[straight[name].intent_id]),
        ):
            assert isinstance(refused, IntentRejected), (name, refused)
            assert (refused.stage, refused.code) == (stage, code), (name, refused)
    to_mallory = outcomes[intents["fee_to_mallory"].intent_id]
    assert isinstance(to_mallory, IntentRejected) and str(mallory) in to_mallory.reason  # the fee's withdraw authority
    for name in ("fee_to_treasury", "delegated_accepted"):
        signed = outcomes[intents[name].intent_id]
        assert isinstance(signed, SignedSolanaTransaction), (name, signed)
        assert send_and_wait_finalized(settings, run, signed.signed_tx).error is None
    received = {
        name: token_balance(settings, run, sol.ata_address(alice, key.pubkey(), program)) for name, key in mints.items()
    }
    assert received == {
        "fee_to_mallory": 0,
        "fee_to_treasury": 50 * 10**6,
        "delegated": 0,
        "delegated_accepted": 100 * 10**6,
    }


def test_a_fee_payer_slot_the_runtime_refuses_is_refused_by_the_worker_and_by_the_signer(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """The fee payer fills its slot with a signature whose R is the identity point: OpenSSL's
    Ed25519 accepts it, Solana's runtime does not, so the transaction could never land under that
    id while a copy signed properly could. Refused by the worker and, approved straight on its
    topic, by the signer, SOLANA_SIGNATURE_INVALID; nothing is signed."""
    settings = stack.settings
    alice, payer = Keypair().pubkey(), funded(settings, run)
    agent = agent_with(settings, run, allowlist=(str(alice),))
    me = Pubkey.from_string(agent.address)
    raw = sol.unsigned(payer.pubkey(), [sol.sol_transfer(me, alice, 1_000_000)], blockhash(settings, run))
    bad = raw[:1] + identity_r(payer, transactions.read(raw).message) + raw[65:]
    judged, approved = intent_for(agent, bad, broadcast=True), intent_for(agent, bad, broadcast=True)
    outcomes = outcomes_of(settings, run, [judged], approved=(approved,), policy=agent.policy)
    for intent, stage in ((judged, Stage.SOLANA), (approved, Stage.SIGNING)):
        outcome = outcomes[intent.intent_id]
        assert isinstance(outcome, IntentRejected), outcome
        assert (outcome.stage, outcome.code) == (stage, Code.SOLANA_SIGNATURE_INVALID), outcome


def test_each_landing_of_one_signed_message_counts_against_the_agent_and_is_said_loudly(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """A sign-only transfer another key pays for (an x402 facilitator's): the fee payer sends it
    with four different signatures of its own, and surfpool lands all four. The signer counts
    each landing (its record holds four times the amount: an intent the worker's window lets
    through is refused by the signer, DAILY_LIMIT_EXCEEDED), and records each landing after the
    first as solana.landed_again, with warden_solana_repeat_landings_total."""
    settings = stack.settings
    alice, payer = Keypair().pubkey(), funded(settings, run)
    agent = agent_with(settings, run, allowlist=(str(alice),), daily_limit_lamports=4_500_000)
    me = Pubkey.from_string(agent.address)
    intent = intent_for(
        agent, sol.unsigned(payer.pubkey(), [sol.sol_transfer(me, alice, 1_000_000)], blockhash(settings, run))
    )
    (outcome,) = outcomes_of(settings, run, [intent]).values()
    assert isinstance(outcome, SignedSolanaTransaction) and outcome.spend == {"SOL": "1000000"}, outcome
    signed = VersionedTransaction.from_bytes(base64.b64decode(outcome.signed_tx))
    message = to_bytes_versioned(signed.message)
    copies = [
        VersionedTransaction.populate(signed.message, [payer_signature, signed.signatures[1]])
        for payer_signature in [payer.sign_message(message), *(resigned(payer, message) for _ in range(3))]
    ]

    async def land(node: Node) -> tuple[list[str], list[solana.Status]]:
        ids = [await solana.send(node, bytes(copy)) for copy in copies]
        return ids, [await solana.landed(node, i, "confirmed", 120) for i in ids]

    ids, statuses = run(_rpc(settings, land))
    assert [s.error for s in statuses] == [None] * 4 and len(set(ids)) == 4
    assert lamports(settings, run, str(alice)) == 4_000_000  # one message, four transfers
    rows = audit_rows(
        settings,
        intent.intent_id,
        lambda found: sum(action == AuditAction.SOLANA_LANDED_AGAIN for action, _ in found) == 3,
    )
    again = [details for action, details in rows if action == AuditAction.SOLANA_LANDED_AGAIN]
    counted = {d["counted_signature"] for d in again}
    assert len(counted) == 1 and counted <= set(ids), again
    assert {d["landed_signature"] for d in again} == set(ids) - counted
    assert all(d["landed_error"] is None and d["signature"] == outcome.signature for d in again), again
    url = metrics_file(settings, "signer").read_text().strip()
    assert sample(url, "warden_solana_repeat_landings_total", chain=CHAIN) >= 3
    more = intent_for(agent, sol.unsigned(me, [sol.sol_transfer(me, alice, 1_000_000)], blockhash(settings, run)))
    (refused,) = outcomes_of(settings, run, [more]).values()
    assert isinstance(refused, IntentRejected), refused
    assert (refused.stage, refused.code) == (Stage.SIGNING, Code.DAILY_LIMIT_EXCEEDED), refused


def _no_node(chain: str) -> Node:
    raise AssertionError(f"this tracker asks no node ({chain})")
