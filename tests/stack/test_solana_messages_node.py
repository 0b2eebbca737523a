"""Solana off-chain messages against the Solana Foundation's own library
(`@solana/offchain-messages`, run by Node: tests/node/offchain_message.mjs), and through the
whole pipeline on the real stack: what Warden writes and reads is the library's format byte for
byte, and what the signer signs the library verifies, bound to the intent, with a receipt."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from mcp import ClientSession
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from infra.stack.local import LocalStack
from infra.stack.provision import Agent, provision_solana_agent
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import end_offsets
from schemas import topics
from schemas.actions import AuditAction
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentApproved, IntentRejected, SignedSolanaMessage
from schemas.stages import Stage
from sdk.client import Client, Outcome, new_solana_message_intent, wait_outcomes
from sdk.records import ReceiptUnavailable, outcome_receipt
from svm import messages
from svm.messages import Format
from tests.support import warden, warden_mcp

CHAIN = "solana-local"
NODE_SCRIPT = Path(__file__).resolve().parents[1] / "node" / "offchain_message.mjs"


def oracle(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["node", str(NODE_SCRIPT)], input=json.dumps(cases), capture_output=True, text=True, timeout=120, check=True
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def keys(n: int) -> list[str]:
    return [str(Keypair().pubkey()) for _ in range(n)]


CASES = [
    dict(version=0, format=0, text="Sign in to example.com", signatories=1),
    dict(version=0, format=1, text="Paiement reçu: 12 € — merci", signatories=2),
    dict(version=0, format=2, text="x" * 3000, signatories=1),
    dict(version=1, text="ünïcödé, version 1", signatories=3),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"v{c['version']}-f{c.get('format')}")
def test_warden_writes_and_reads_the_librarys_bytes(case: dict[str, Any]) -> None:
    signatories = keys(case["signatories"])
    domain = str(Keypair().pubkey()) if case["version"] == 0 else None
    ours = messages.encode(
        case["text"], signatories, case["version"], domain, Format(case["format"]) if case["version"] == 0 else None
    )
    (theirs,) = oracle(
        [
            {
                "encode": {
                    "version": case["version"],
                    "application_domain": domain,
                    "format": case.get("format"),
                    "signatories": signatories,
                    "text": case["text"],
                }
            }
        ]
    )
    assert theirs["ok"], theirs
    assert base64.b64decode(theirs["bytes_b64"]) == ours
    read = messages.read(base64.b64decode(theirs["bytes_b64"]))
    assert (read.text, read.application_domain, sorted(read.signatories)) == (case["text"], domain, sorted(signatories))


def test_what_the_library_refuses_warden_refuses_too() -> None:
    """Bytes each side must refuse: a wrong length, ASCII format with other text, unsorted v1
    signatories, an unknown version. The library throws on each, and `svm.messages.read` too."""
    me = Keypair().pubkey()
    good = messages.encode("hello", [str(me)])
    a, b = sorted([bytes(Keypair().pubkey()) for _ in range(2)])
    bad = {
        "length": good[:-2] + b"lo!",
        "ascii": good.replace(b"hello", "héllo".encode()[:5]),
        "unsorted": messages.SIGNING_DOMAIN + b"\x01\x02" + b + a + b"hi",
        "version": messages.SIGNING_DOMAIN + b"\x07" + good[17:],
    }
    answers = oracle(
        [{"verify": {"bytes_b64": base64.b64encode(raw).decode(), "signatures": {}}} for raw in bad.values()]
    )
    for (name, raw), answer in zip(bad.items(), answers, strict=True):
        assert not answer["ok"], (name, answer)
        with pytest.raises(messages.MessageError):
            messages.read(raw)


def _agent(settings: Settings, run: Callable[..., Any], **policy: Any) -> Agent:
    agent: Agent = run(provision_solana_agent(settings, f"solmsg-{uuid.uuid4().hex[:8]}", fund_lamports=0, **policy))
    return agent


def _outcomes(
    settings: Settings, run: Callable[..., Any], intents: list[TransactionIntent], timeout_s: float = 120
) -> dict[str, Outcome]:
    start = run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.SOLANA_MESSAGES_SIGNED)))

    async def go() -> dict[str, Outcome]:
        async with Client(settings) as client:
            for intent in intents:
                await client.submit(intent)
        return await wait_outcomes(settings, intents, timeout_s, start)

    outcomes: dict[str, Outcome] = run(go())
    return outcomes


def test_an_off_chain_message_is_signed_bound_to_its_intent_and_the_library_verifies_it(
    stack: LocalStack, run: Callable[..., Any], tmp_path: Path
) -> None:
    settings = stack.settings
    app = str(Keypair().pubkey())
    agent = _agent(settings, run, message_signing_enabled=True, message_application_domains=(app,))
    cosigner = str(Keypair().pubkey())
    intent = new_solana_message_intent(
        agent.intent_key,
        agent_id=agent.agent_id,
        chain=CHAIN,
        text="I, this agent, accept order 42",
        signatories=[agent.address, cosigner],
        application_domain=app,
    )
    (outcome,) = _outcomes(settings, run, [intent]).values()
    assert isinstance(outcome, SignedSolanaMessage), outcome
    assert (outcome.from_, outcome.intent_digest, outcome.application_domain) == (agent.address, intent.digest(), app)
    assert base64.b64decode(outcome.message) == intent.solana_message_bytes  # exactly what the agent asked
    # The library verifies the agent's signature over the bytes (the co-signer's slot stays empty:
    # it reports that one missing, and nothing about the agent's).
    (checked,) = oracle([{"verify": {"bytes_b64": outcome.message, "signatures": {agent.address: outcome.signature}}}])
    assert not checked["ok"] and cosigner in checked["why"] and agent.address not in checked["why"], checked
    alone = new_solana_message_intent(
        agent.intent_key,
        agent_id=agent.agent_id,
        chain=CHAIN,
        text="only me",
        signatories=[agent.address],
        application_domain=app,
    )
    (signed,) = _outcomes(settings, run, [alone]).values()
    assert isinstance(signed, SignedSolanaMessage), signed
    (checked,) = oracle([{"verify": {"bytes_b64": signed.message, "signatures": {agent.address: signed.signature}}}])
    assert checked["ok"] and checked["message"]["text"] == "only me", checked
    forged = base64.b64encode(messages.encode("only me!", [agent.address], 0, app)).decode()
    (checked,) = oracle([{"verify": {"bytes_b64": forged, "signatures": {agent.address: signed.signature}}}])
    assert not checked["ok"], checked  # the signature is over those bytes and no others

    # The ledger's receipt proves this outcome, for this intent's digest.
    deadline = time.monotonic() + 180
    while True:
        try:
            receipt = run(outcome_receipt(settings, alone.intent_id, agent.agent_id, alone.digest()))
            break
        except ReceiptUnavailable as exc:
            assert time.monotonic() < deadline, str(exc)
            time.sleep(1)
    path = tmp_path / "receipt.txt"
    path.write_text(receipt)
    vkey = orjson.loads(warden(settings, "audit", "log-key", "--json").stdout)["vkey"]
    done = warden(
        settings,
        *("audit", "check-receipt", str(path), "--log-key", vkey, "--json"),
        *("--intent-id", alone.intent_id, "--agent", agent.agent_id, "--intent-digest", alone.digest()),
    )
    checked = orjson.loads(done.stdout)
    assert done.returncode == 0 and checked["ok"], checked
    (extra,) = [line.split(" ", 1)[1] for line in receipt.splitlines() if line.startswith("extra ")]
    assert orjson.loads(base64.b64decode(extra))["action"] == AuditAction.SOLANA_MESSAGE_SIGNED


def test_what_the_policy_does_not_allow_is_refused_by_the_worker_and_by_the_signer(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """By the worker: message signing off, a message not naming the agent, one for another
    application, one too long. Written straight to the approved topic by a writer with no key:
    the signer judges again with its own key's address and refuses the same; nothing is signed."""
    settings = stack.settings
    app, other_app = str(Keypair().pubkey()), str(Keypair().pubkey())
    off = _agent(settings, run)
    on = _agent(settings, run, message_signing_enabled=True, message_application_domains=(app,), message_max_bytes=64)

    def message(
        agent: Agent, text: str = "hello", signatories: list[str] | None = None, domain: str | None = app
    ) -> TransactionIntent:
        return new_solana_message_intent(
            agent.intent_key,
            agent_id=agent.agent_id,
            chain=CHAIN,
            text=text,
            signatories=signatories or [agent.address],
            application_domain=domain,
        )

    cases = {
        Code.SOLANA_MESSAGE_SIGNING_OFF: message(off),
        Code.SOLANA_MESSAGE_AGENT_NOT_SIGNATORY: message(on, signatories=keys(1)),
        Code.SOLANA_MESSAGE_DOMAIN_NOT_ALLOWED: message(on, domain=other_app),
        Code.SOLANA_MESSAGE_TOO_LONG: message(on, text="a" * 65),
    }
    outcomes = _outcomes(settings, run, list(cases.values()))
    for code, intent in cases.items():
        outcome = outcomes[intent.intent_id]
        assert isinstance(outcome, IntentRejected), (code, outcome)
        assert (outcome.stage, outcome.code) == (Stage.SOLANA_MESSAGE, code), outcome

    copied: dict[Code, tuple[Agent, dict[str, Any]]] = {
        Code.SOLANA_MESSAGE_SIGNING_OFF: (off, {}),
        Code.SOLANA_MESSAGE_DOMAIN_NOT_ALLOWED: (on, {"domain": other_app}),
    }
    copies = {code: message(intent_agent, **kw) for code, (intent_agent, kw) in copied.items()}
    start = run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.SOLANA_MESSAGES_SIGNED)))

    async def approve_directly() -> dict[str, Outcome]:
        async with Client(settings) as client:
            for intent in copies.values():
                policy = off.policy if intent.agent_id == off.agent_id else on.policy
                approved = IntentApproved(
                    intent=intent, policy=policy, verdicts=(), approved_at=utcnow(), intent_digest=intent.digest()
                )
                await client.send(topics.INTENTS_APPROVED, intent.agent_id, approved.to_bytes())
            await client.flush()
        return await wait_outcomes(settings, list(copies.values()), 120, start)

    outcomes = run(approve_directly())
    for code, intent in copies.items():
        outcome = outcomes[intent.intent_id]
        assert isinstance(outcome, IntentRejected) and (outcome.stage, outcome.code) == (Stage.SIGNING, code), outcome


def test_warden_sign_and_an_mcp_client_have_a_message_signed_and_one_refused(
    stack: LocalStack, run: Callable[..., Any], tmp_path: Path
) -> None:
    """`warden sign solana-message` (text and signatories, or a file of bytes), and a real MCP
    client session with `warden mcp` for the agent: sign_solana_message, whose signatories default
    to the agent's own address; a message for an application the policy does not list is refused."""
    settings = stack.settings
    app = str(Keypair().pubkey())
    agent = _agent(settings, run, message_signing_enabled=True, message_application_domains=(app,))
    done = warden(
        settings,
        *("sign", "solana-message", "--agent", agent.agent_id, "--chain", CHAIN, "--timeout", "90"),
        *("--text", "hello from the CLI", "--signatory", agent.address, "--application-domain", app),
    )
    assert done.returncode == 0, done.stderr
    (line,) = [row for row in done.stdout.splitlines() if row.startswith("SIGNED ")]
    assert f" solana_message v0 for {app} " in line and f"by {agent.address}" in line, line
    raw = messages.encode("hello from the CLI", [agent.address], 0, app)
    signature = line.split(" signature ", 1)[1].split(" ")[0]
    assert Signature.from_string(signature).verify(Pubkey.from_string(agent.address), raw)
    path = tmp_path / "message.bin"
    path.write_bytes(messages.encode("for another app", [agent.address], 0, str(Keypair().pubkey())))
    done = warden(
        settings, "sign", "solana-message", "--agent", agent.agent_id, "--chain", CHAIN, "--file", str(path), "--json"
    )
    refused = orjson.loads(done.stdout)["outcome"]
    assert (done.returncode, refused["code"]) == (1, Code.SOLANA_MESSAGE_DOMAIN_NOT_ALLOWED), done.stdout

    async def calls() -> tuple[CallToolResult, CallToolResult]:
        with open(tmp_path / "mcp.log", "w") as errlog:
            server = warden_mcp(settings, agent.agent_id)
            async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()

                async def call(**arguments: Any) -> CallToolResult:
                    return await session.call_tool("sign_solana_message", arguments, read_timeout_seconds=150)

                return (
                    await call(chain=CHAIN, text="hello over MCP", application_domain=app),
                    await call(chain=CHAIN, text="hello over MCP"),
                )

    signed, no = run(calls())
    got = signed.structured_content
    assert (got["status"], got["kind"], got["from"]) == ("signed", "solana_message", agent.address), signed.content
    assert base64.b64decode(got["message"]) == messages.encode("hello over MCP", [agent.address], 0, app)
    assert Signature.from_string(got["signature"]).verify(
        Pubkey.from_string(agent.address), base64.b64decode(got["message"])
    )
    no = no.structured_content
    assert (no["status"], no["refusal"]["code"]) == ("refused", Code.SOLANA_MESSAGE_DOMAIN_NOT_ALLOWED), no
