"""Other signers' slots of a Solana transaction checked as Solana's runtime checks them
(`svm.transactions.verifies`: ed25519-dalek's `verify_strict`, through solders), against the
signatures a plain Ed25519 verification accepts and the runtime refuses: an R that is the identity
point, an S not below the group order, and a key of small order. Each is refused by the judge with
its code and by `sign`, and LiteSVM (the runtime surfpool serves) refuses the transaction while it
takes a copy of the same message signed properly."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path

import pytest
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from rules.solana import SolanaVerdict, judge
from runtime.clock import to_us
from schemas.codes import Code
from schemas.outcomes import SignedSolanaTransaction
from schemas.policy import SolanaPolicy
from sdk import solana as sol
from signer import solana_tracking
from signer.state import SignerState
from svm import transactions
from tests.solana_signatures_support import (
    IDENTITY,
    identity_r,
    non_canonical_s,
    plain_verify,
    resigned,
    textbook_verify,
)

CHAIN = "solana-local"
SMALL_ORDER_KEY = Pubkey.from_bytes(IDENTITY)


class Case:
    """An agent's SOL transfer to alice whose fee payer (``payer``, a keypair or a small-order key)
    has filled its slot."""

    def __init__(self, svm: LiteSVM, payer: Pubkey) -> None:
        self.agent, self.alice = Keypair(), Keypair().pubkey()
        svm.airdrop(self.agent.pubkey(), 10**9)
        svm.airdrop(payer, 10**9)
        ix = sol.sol_transfer(self.agent.pubkey(), self.alice, 1_000_000)
        self.raw = sol.unsigned(payer, [ix], svm.latest_blockhash())
        self.message = to_bytes_versioned(VersionedTransaction.from_bytes(self.raw).message)

    def filled(self, payer_signature: bytes) -> bytes:
        return bytes(self.raw[:1]) + payer_signature + bytes(self.raw[65:])

    def judged(self, raw: bytes) -> SolanaVerdict:
        policy = SolanaPolicy(address=str(self.agent.pubkey()), allowlist=(str(self.alice),))
        tx = transactions.read(raw)
        agent = str(self.agent.pubkey())
        return judge(
            tx, agent=agent, chain=CHAIN, allowed_chains=(CHAIN,), policy=policy, accounts={}, spent=lambda _: 0
        )

    def both_signed(self, payer_signature: bytes) -> VersionedTransaction:
        tx = VersionedTransaction.from_bytes(self.raw)
        agent = self.agent.sign_message(self.message)
        return VersionedTransaction.populate(tx.message, [Signature.from_bytes(payer_signature), agent])


@pytest.mark.parametrize("kind", ["identity R", "S not below the group order", "small-order key"])
def test_a_slot_a_plain_verifier_accepts_and_the_runtime_refuses_is_refused_by_its_code(kind: str) -> None:
    svm = LiteSVM()
    payer = Keypair()
    case = Case(svm, SMALL_ORDER_KEY if kind == "small-order key" else payer.pubkey())
    key = bytes(SMALL_ORDER_KEY if kind == "small-order key" else payer.pubkey())
    if kind == "identity R":
        bad = identity_r(payer, case.message)
        assert plain_verify(key, bad, case.message)  # what Warden checked with before
    elif kind == "S not below the group order":
        bad = non_canonical_s(payer, case.message)
        assert textbook_verify(key, bad, case.message)  # the equation holds: [S + L]B = [S]B
        assert not plain_verify(key, bad, case.message)  # OpenSSL checks S's range; dalek's verify_strict too
    else:
        bad = IDENTITY + bytes(32)  # R the identity, S = 0: [0]B = R + [k]A for every message
        assert plain_verify(key, bad, case.message) and plain_verify(key, bad, b"any other message")
    assert textbook_verify(key, bad, case.message)
    assert not transactions.verifies(Pubkey.from_bytes(key), bad, case.message)
    raw = case.filled(bad)
    tx = transactions.read(raw)
    assert tx.unverified == (str(Pubkey.from_bytes(key)),)
    verdict = case.judged(raw)
    assert (verdict.passed, verdict.code) == (False, Code.SOLANA_SIGNATURE_INVALID), verdict
    with pytest.raises(transactions.SignatureInvalid):
        transactions.sign(raw, sol.seed_of(case.agent))
    # The runtime refuses the transaction that slot makes; a proper signature of the same message lands.
    assert hasattr(svm.send_transaction(case.both_signed(bad)), "err")
    if kind != "small-order key":  # nobody can sign for a key of small order
        assert not hasattr(svm.send_transaction(case.both_signed(bytes(payer.sign_message(case.message)))), "err")
        assert svm.get_balance(case.alice) == 1_000_000


def test_a_slot_signed_properly_passes_and_the_agents_own_slot_is_not_judged() -> None:
    svm = LiteSVM()
    payer = Keypair()
    case = Case(svm, payer.pubkey())
    raw = case.filled(bytes(payer.sign_message(case.message)))
    assert transactions.read(raw).unverified == ()
    assert case.judged(raw).passed
    # The agent's own slot holding anything is no refusal: Warden writes its signature over it.
    theirs = bytearray(raw)
    theirs[65:129] = identity_r(case.agent, case.message)
    assert transactions.read(bytes(theirs)).unverified == (str(case.agent.pubkey()),)
    assert case.judged(bytes(theirs)).passed
    signed = VersionedTransaction.from_bytes(transactions.sign(bytes(theirs), sol.seed_of(case.agent)))
    assert signed.verify_with_results() == [True, True]


def test_a_copy_signed_again_by_the_fee_payer_is_valid_has_another_id_and_carries_the_agents_signature() -> None:
    svm = LiteSVM()
    payer = Keypair()
    case = Case(svm, payer.pubkey())
    signed = case.both_signed(bytes(payer.sign_message(case.message)))
    again = resigned(payer, case.message)
    assert again != signed.signatures[0] and transactions.verifies(payer.pubkey(), bytes(again), case.message)
    copy = VersionedTransaction.populate(signed.message, [again, signed.signatures[1]])
    agent, mine = str(case.agent.pubkey()), bytes(signed.signatures[1])
    assert transactions.carries(bytes(copy), case.message, agent, mine)
    assert not transactions.carries(bytes(copy), case.message, agent, bytes(identity_r(case.agent, case.message)))
    assert not transactions.carries(bytes(copy), case.message + b"\x00", agent, mine)  # another message
    # The runtime surfpool serves takes both: one message, two landings.
    for tx in (signed, copy):
        assert not hasattr(svm.send_transaction(tx), "err")
    assert svm.get_balance(case.alice) == 2_000_000


def test_a_restored_signer_watches_again_the_recent_final_ones_another_key_pays_for(tmp_path: Path) -> None:
    """After a restart the signer watches again, for copies of their message, the final Solana
    transactions of the last minutes (`SignerState.solana_final_since`) whose fee another key
    pays (`copies_possible`); one the agent pays for has one id and is not watched."""
    svm, payer = LiteSVM(), Keypair()
    case = Case(svm, payer.pubkey())
    agent = str(case.agent.pubkey())
    mine = sol.unsigned(
        case.agent.pubkey(), [sol.sol_transfer(case.agent.pubkey(), case.alice, 1)], svm.latest_blockhash()
    )
    state = SignerState(tmp_path / "state.db", fsync=False)
    now = datetime.now(timezone.utc)
    records = {}
    for name, raw, at_us in (("theirs", case.raw, to_us(now)), ("mine", mine, to_us(now)), ("old", case.raw, 0)):
        signed = transactions.sign(raw, sol.seed_of(case.agent))
        record = SignedSolanaTransaction(
            intent_id=name,
            agent_id="a",
            chain=CHAIN,
            **{"from": agent},
            signature=transactions.read(signed).signature_of(agent),
            signed_tx=base64.b64encode(signed).decode(),
            recent_blockhash=str(svm.latest_blockhash()),
            status="sign_only",
            final=True,
            tee="none",
            signed_at=now,
        )
        records[name] = record
        state.agent("a").record_message(
            intent_id=name,
            record=record.to_bytes(),
            now_us=at_us,
            policy_version=1,
            idempotency_slot=None,
            kind="solana",
        )
    since = to_us(now) - solana_tracking.COPIES_WATCH_US
    restored = [SignedSolanaTransaction.from_bytes(raw) for raw in state.solana_final_since(since)]
    assert [r.intent_id for r in restored] == ["theirs", "mine"]
    assert [r.intent_id for r in restored if solana_tracking.copies_possible(r)] == ["theirs"]
