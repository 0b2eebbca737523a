"""Solana off-chain messages (`svm.messages`) and their guardrail (`rules.solana.judge_message`):
read strictly, never bare bytes, signed only by a named signatory, off unless the policy turns it
on. (The same bytes against the Solana Foundation's own library: tests/stack/test_solana_messages_node.py.)"""

from __future__ import annotations

import base64
import struct
from datetime import datetime, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from solders.hash import Hash
from solders.keypair import Keypair
from solders.signature import Signature

from rules.solana import SolanaVerdict, check_message, judge_message
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.policy import AgentPolicy, SolanaPolicy
from schemas.stages import Stage
from sdk import solana as sol
from sdk.client import new_solana_message_intent
from svm import messages
from svm.messages import Format, MessageError

CHAIN = "solana-local"
# Fixed keys, so the parameters (and their ids) are the same in every test process.
AGENT = Keypair.from_seed(bytes([1]) * 32)
ME = str(AGENT.pubkey())
OTHER = str(Keypair.from_seed(bytes([2]) * 32).pubkey())
APP = str(Keypair.from_seed(bytes([3]) * 32).pubkey())


def seed(keypair: Keypair) -> bytes:
    return bytes(keypair)[:32]


@given(
    text=st.text(min_size=1, max_size=300).filter(lambda t: len(t.encode()) <= 1232),
    version=st.sampled_from([0, 1]),
    others=st.integers(0, 3),
)
def test_what_encode_writes_read_gives_back(text: str, version: int, others: int) -> None:
    signatories = [ME, *(str(Keypair().pubkey()) for _ in range(others))]
    raw = messages.encode(text, signatories, version, APP if version == 0 else None)
    read = messages.read(raw)
    assert (read.version, read.text, read.raw) == (version, text, raw)
    assert sorted(read.signatories) == sorted(signatories)
    assert read.application_domain == (APP if version == 0 else None)
    if version == 0:  # the smallest format that holds the text
        ascii_only = all(0x20 <= ord(c) <= 0x7E for c in text)
        assert read.format is (Format.RESTRICTED_ASCII if ascii_only else Format.UTF8_1232)


def test_a_long_message_is_format_2_and_one_past_65535_bytes_cannot_be_written() -> None:
    assert messages.read(messages.encode("a" * 5000, [ME])).format is Format.UTF8_65535
    with pytest.raises(MessageError, match="at most 65535"):
        messages.encode("a" * 65536, [ME], form=Format.UTF8_65535)


def _v0(body: bytes, form: int = 0, signatories: list[bytes] | None = None, length: int | None = None) -> bytes:
    keys = signatories if signatories is not None else [bytes(AGENT.pubkey())]
    return (
        messages.SIGNING_DOMAIN
        + bytes([0])
        + bytes(32)
        + bytes([form, len(keys)])
        + b"".join(keys)
        + struct.pack("<H", len(body) if length is None else length)
        + body
    )


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "signing domain"),
        (b"hello", "signing domain"),
        (messages.SIGNING_DOMAIN, "version byte"),
        (messages.SIGNING_DOMAIN + b"\x02", "version 2 is not one Warden reads"),
        (_v0(b"hi", form=3), "format 3 is not a message format"),
        (_v0(b"hi", length=3), "says 3 bytes, and 2 follow"),
        (_v0(b"hi") + b"!", "says 2 bytes, and 3 follow"),  # nothing after the content is signed
        (_v0(b""), "empty"),
        (_v0("héllo".encode(), form=0), "printable ASCII"),
        (_v0(b"tab\there", form=0), "printable ASCII"),
        (_v0(b"\xff\xfe", form=1), "not UTF-8"),
        (_v0(b"a" * 1233, form=1), "format 1 holds at most 1232"),
        (_v0(b"hi", signatories=[]), "no signatory"),
        (_v0(b"hi", signatories=[bytes(AGENT.pubkey())] * 2), "named twice"),
        (messages.SIGNING_DOMAIN + b"\x01\x02" + b"\x09" * 32 + b"\x01" * 32 + b"hi", "sorted"),
        (messages.SIGNING_DOMAIN + b"\x01\x01" + bytes(AGENT.pubkey()), "empty"),
        (messages.SIGNING_DOMAIN + b"\x01\x03" + b"\x01" * 40, "3 signatories"),
    ],
)
def test_a_malformed_message_is_refused_naming_what_is_wrong(raw: bytes, why: str) -> None:
    with pytest.raises(MessageError, match=why):
        messages.read(raw)


def test_a_transaction_s_message_is_never_read_as_an_off_chain_message() -> None:
    """Bare bytes are refused: a transaction's message cannot start with 0xff, so nothing Warden
    signs as a message can be replayed as a signature over a transaction."""
    alice = Keypair().pubkey()
    tx = sol.unsigned(AGENT.pubkey(), [sol.sol_transfer(AGENT.pubkey(), alice, 1)], Hash.default())
    message_bytes = tx[1 + 64 :]  # after the signature count and the one empty slot
    with pytest.raises(MessageError, match="never bare bytes"):
        messages.read(message_bytes)
    with pytest.raises(MessageError, match="never bare bytes"):
        messages.sign(message_bytes, seed(AGENT))


def test_the_signature_is_over_every_byte_of_the_message_and_only_a_signatory_signs() -> None:
    raw = messages.encode("log in to example.com at 12:00", [ME, OTHER], 0, APP)
    signature = Signature.from_bytes(messages.sign(raw, seed(AGENT)))
    assert signature.verify(AGENT.pubkey(), raw)
    assert not signature.verify(AGENT.pubkey(), raw[:-1] + b"1")
    with pytest.raises(MessageError, match="is not one of the message's signatories"):
        messages.sign(messages.encode("hi", [OTHER]), seed(AGENT))


def _policy(**solana: Any) -> AgentPolicy:
    return AgentPolicy(
        agent_id="a-msg",
        version=1,
        tx_allowed_chains=(CHAIN,),
        solana=SolanaPolicy(address=ME, **solana),
        agent_public_key="0x" + "00" * 32,
        issued_at=datetime.now(timezone.utc),
    )


def _judged(raw: bytes, policy: AgentPolicy, chain: str = CHAIN) -> SolanaVerdict:
    return judge_message(
        messages.read(raw), agent=ME, chain=chain, allowed_chains=policy.tx_allowed_chains, policy=policy.solana
    )


def test_message_signing_is_off_until_the_policy_turns_it_on() -> None:
    raw = messages.encode("hello", [ME])
    assert _judged(raw, _policy()).code is Code.SOLANA_MESSAGE_SIGNING_OFF
    assert _judged(raw, _policy(message_signing_enabled=True)).code is Code.SOLANA_MESSAGE_ALLOWED


@pytest.mark.parametrize(
    ("raw", "policy", "code"),
    [
        (messages.encode("a" * 33, [ME]), dict(message_max_bytes=32), Code.SOLANA_MESSAGE_TOO_LONG),
        (messages.encode("a" * 32, [ME]), dict(message_max_bytes=32), Code.SOLANA_MESSAGE_ALLOWED),
        (messages.encode("hi", [OTHER]), {}, Code.SOLANA_MESSAGE_AGENT_NOT_SIGNATORY),
        (messages.encode("hi", [ME], 0, OTHER), dict(message_application_domains=(APP,)), "domain"),
        (messages.encode("hi", [ME], 1), dict(message_application_domains=(APP,)), "domain"),
        (messages.encode("hi", [ME], 0, APP), dict(message_application_domains=(APP,)), Code.SOLANA_MESSAGE_ALLOWED),
    ],
)
def test_each_rule_of_the_policy_decides(raw: bytes, policy: dict[str, tuple[str] | int], code: str | Code) -> None:
    verdict = _judged(raw, _policy(message_signing_enabled=True, **policy))
    want = Code.SOLANA_MESSAGE_DOMAIN_NOT_ALLOWED if code == "domain" else code
    assert verdict.code is want, verdict.reason
    assert verdict.passed is (want is Code.SOLANA_MESSAGE_ALLOWED)


def test_a_chain_the_policy_does_not_allow_and_a_policy_without_solana_are_refused() -> None:
    raw = messages.encode("hi", [ME])
    assert _judged(raw, _policy(message_signing_enabled=True), "solana").code is Code.CHAIN_NOT_ALLOWED
    no_solana = _policy().model_copy(update={"solana": None})
    assert _judged(raw, no_solana).code is Code.SOLANA_NOT_ENABLED


def test_the_stage_judges_as_the_signer_s_key_when_it_is_given() -> None:
    """The worker judges as the policy's address; the signer as its key's own address, so a key
    that is not the policy's is refused there even when the policy would allow the message."""
    key = Ed25519PrivateKey.generate()
    intent = new_solana_message_intent(key, agent_id="a-msg", chain=CHAIN, text="hi", signatories=[ME])
    policy = _policy(message_signing_enabled=True)
    assert check_message(intent, policy).passed
    verdict = check_message(intent, policy, agent=OTHER)
    assert (verdict.passed, verdict.code, verdict.stage) == (
        False,
        Code.SOLANA_MESSAGE_AGENT_NOT_SIGNATORY,
        Stage.SOLANA_MESSAGE,
    )


def test_an_intent_carries_the_message_bytes_and_nothing_of_a_transaction() -> None:
    key = Ed25519PrivateKey.generate()
    raw = messages.encode("hi", [ME])
    intent = new_solana_message_intent(key, agent_id="a-msg", chain=CHAIN, message=raw)
    assert intent.solana_message is not None
    assert intent.solana_message_bytes == raw and base64.b64decode(intent.solana_message) == raw
    with pytest.raises(ValidationError, match="broadcast belong to an EVM intent"):
        new_solana_message_intent(key, agent_id="a-msg", chain=CHAIN, message=raw, broadcast=True)
    with pytest.raises(ValidationError, match="solana_transaction is not part of an intent_type solana_message"):
        new_solana_message_intent(key, agent_id="a-msg", chain=CHAIN, message=raw, solana_transaction="AA==")
    for text in ("é!", "AA="):
        with pytest.raises(ValidationError, match="solana_message: not base64"):
            TransactionIntent.model_validate({**intent.model_dump(mode="json"), "solana_message": text})
