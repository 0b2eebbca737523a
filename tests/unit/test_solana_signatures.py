"""Other signers' slots of a Solana transaction checked as Solana's runtime checks them
(`svm.transactions.verifies`: ed25519-dalek's `verify_strict`, through solders), against the
signatures a plain Ed25519 verification accepts and the runtime refuses: an R that is the identity
point, an S not below the group order, and a key of small order. Each is refused by the judge with
its code and by `sign`, and LiteSVM (the runtime surfpool serves) refuses the transaction while it
takes a copy of the same message signed properly."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from rules.solana import judge
from schemas.codes import Code
from schemas.policy import SolanaPolicy
from sdk import solana as sol
from svm import transactions

CHAIN = "solana-local"
# Edwards25519 (RFC 8032 section 5.1): the field, the curve's d, the group order and the base point.
P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P
L = 2**252 + 27742317777372353535851937790883648493
IDENTITY = (1).to_bytes(32, "little")  # the identity point (0, 1), encoded
SMALL_ORDER_KEY = Pubkey.from_bytes(IDENTITY)


def _decode(encoded: bytes) -> tuple[int, int]:
    y = int.from_bytes(encoded, "little") & (2**255 - 1)
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    assert (x * x - x2) % P == 0, "not a point"
    return (P - x if x & 1 != encoded[31] >> 7 else x), y


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P


def _times(n: int, point: tuple[int, int]) -> tuple[int, int]:
    out = (0, 1)
    while n:
        if n & 1:
            out = _add(out, point)
        point, n = _add(point, point), n >> 1
    return out


BASE = _decode((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))


def textbook_verify(key: bytes, signature: bytes, message: bytes) -> bool:
    """The bare verification equation [S]B = R + [k]A, with no check on S's range or on the order
    of R or A: what a lenient Ed25519 verifier computes."""
    r, s = signature[:32], int.from_bytes(signature[32:], "little")
    k = int.from_bytes(hashlib.sha512(r + key + message).digest(), "little") % L
    return _times(s, BASE) == _add(_decode(r), _times(k, _decode(key)))


def plain_verify(key: bytes, signature: bytes, message: bytes) -> bool:
    """What `svm.transactions` checked other slots with before: OpenSSL's Ed25519, through
    cryptography."""
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def identity_r(keypair: Keypair, message: bytes) -> bytes:
    """A signature by ``keypair`` over ``message`` whose R is the identity point: S = k·a, which
    only the key's holder can compute; the runtime refuses it (R of small order)."""
    a = int.from_bytes(hashlib.sha512(bytes(keypair.secret()[:32])).digest()[:32], "little")
    a = (a & ((1 << 254) - 8)) | (1 << 254)
    k = int.from_bytes(hashlib.sha512(IDENTITY + bytes(keypair.pubkey()) + message).digest(), "little") % L
    return IDENTITY + (k * a % L).to_bytes(32, "little")


def non_canonical_s(keypair: Keypair, message: bytes) -> bytes:
    """``keypair``'s own signature with S + L in place of S: the same point [S]B, S not reduced."""
    good = bytes(keypair.sign_message(message))
    return good[:32] + (int.from_bytes(good[32:], "little") + L).to_bytes(32, "little")


class Case:
    """An agent's SOL transfer to alice whose fee payer (``payer``, a keypair or a small-order key)
    has filled its slot."""

    def __init__(self, svm: LiteSVM, payer: Pubkey):
        self.agent, self.alice = Keypair(), Keypair().pubkey()
        svm.airdrop(self.agent.pubkey(), 10**9)
        svm.airdrop(payer, 10**9)
        ix = sol.sol_transfer(self.agent.pubkey(), self.alice, 1_000_000)
        self.raw = sol.unsigned(payer, [ix], svm.latest_blockhash())
        self.message = to_bytes_versioned(VersionedTransaction.from_bytes(self.raw).message)

    def filled(self, payer_signature: bytes) -> bytes:
        return bytes(self.raw[:1]) + payer_signature + bytes(self.raw[65:])

    def judged(self, raw: bytes):
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
def test_a_slot_a_plain_verifier_accepts_and_the_runtime_refuses_is_refused_by_its_code(kind):
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


def test_a_slot_signed_properly_passes_and_the_agents_own_slot_is_not_judged():
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
