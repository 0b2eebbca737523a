"""`warden tail` shows what anyone wrote to the outcome and dead-letter topics for what it is.

Anyone who can write to a topic can put any bytes there. A tail that decoded every record that
is not an outcome as JSON, and every dead letter without checking it, would end at one record of
junk (for good with `--from-beginning`), and let anyone show an operator a dead letter. Each is
shown as FORGED, with why, and the tail goes on.
"""

from __future__ import annotations

import base64
import hashlib
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.local import LocalStack
from runtime.clock import utcnow
from runtime.config import child_environment
from runtime.kafka import end_offsets
from runtime.trust import LOCAL_ADMIN_ID
from schemas import topics
from schemas.auth import sign_outcome
from schemas.outcomes import DeadLetter, SignedTransaction
from sdk.client import OUTCOME_TOPICS, Client, new_intent, wait_outcomes
from tests.support import make_agent, tail_json, warden

DEST = "0x000000000000000000000000000000000000dEaD"


def test_tail_shows_junk_and_forged_dead_letters_as_forged_and_goes_on(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    marker = os.urandom(6).hex()
    agent = f"agent-tail-{marker}"
    key, _, _ = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
    junk = b"\xff\xfe not JSON " + marker.encode()
    not_an_outcome = orjson.dumps({"note": f"JSON, but no outcome {marker}"})
    fake_letter = sign_outcome(
        DeadLetter(
            source_topic=topics.INTENTS_SUBMITTED,
            partition=0,
            offset=0,
            key=agent,
            reason=f"forged {marker}",
            payload_b64="",
            payload_sha256="00" * 32,
            payload_bytes=0,
            received_at=utcnow(),
        ),
        Ed25519PrivateKey.generate(),
        "streams-0",
    )
    unreadable_intent = f"an intent nobody can read {marker}".encode()
    real = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.01")
    start = run(end_offsets(settings, OUTCOME_TOPICS))

    async def write() -> None:
        async with Client(settings) as client:
            await client.send(topics.TXS_SIGNED, agent, junk)
            await client.send(topics.INTENTS_REJECTED, agent, not_an_outcome)
            await client.send(topics.DLQ, agent, fake_letter.to_bytes())
            await client.send(topics.INTENTS_SUBMITTED, agent, unreadable_intent)  # the worker dead-letters it
            await client.submit(real)
            await client.flush()

    run(write())
    outcome = run(wait_outcomes(settings, [real], 60, start))[real.intent_id]
    assert isinstance(outcome, SignedTransaction)
    env = child_environment(settings)

    def of(lines: list[dict[str, Any]], digest: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        return [
            line
            for line in lines
            if isinstance(line["record"], dict)
            and all(line["record"].get(name) == value for name, value in fields.items())
            and (digest is None or line["record"].get("payload_sha256") == digest)
        ]

    def shown(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        return {
            "junk": of(lines, hashlib.sha256(junk).hexdigest()),
            "not an outcome": of(lines, note=f"JSON, but no outcome {marker}"),
            "fake letter": of(lines, reason=f"forged {marker}"),
            "real letter": of(
                lines, hashlib.sha256(unreadable_intent).hexdigest(), source_topic=topics.INTENTS_SUBMITTED
            ),
            "real outcome": of(lines, intent_id=real.intent_id),
        }

    lines = tail_json(env, lambda lines: all(shown(lines).values()), "--dlq")
    found = shown(lines)
    assert all(found.values()), {name: len(v) for name, v in found.items()}
    [junk_line] = found["junk"]
    assert junk_line["topic"] == topics.TXS_SIGNED and junk_line["authentic"] is False
    assert junk_line["forged"] == "not an outcome record"
    assert base64.b64decode(junk_line["record"]["payload_b64"]) == junk
    assert junk_line["record"]["payload_bytes"] == len(junk)
    [line] = found["not an outcome"]
    assert line["authentic"] is False and line["forged"] == "not an outcome record"
    [line] = found["fake letter"]
    assert line["topic"] == topics.DLQ and line["authentic"] is False
    assert "does not verify" in line["forged"], line["forged"]
    [line] = found["real letter"]
    assert line["topic"] == topics.DLQ and line["authentic"] is True and line["forged"] is None
    assert any(line["authentic"] and line["topic"] == topics.TXS_SIGNED for line in found["real outcome"])

    # Without --json too: the junk does not stop the tail reaching the real outcome and the fake letter.
    signed = f"SIGNED {real.intent_id} "
    fake = f"FORGED ? on {topics.DLQ}: the service signature does not verify against worker key 'streams-0'"
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "tail", "--from-beginning", "--dlq"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    text: list[str] = []
    try:
        assert proc.stdout is not None
        for row in proc.stdout:
            text.append(row.rstrip("\n"))
            if any(r.startswith(signed) for r in text) and fake in text:
                break
    finally:
        proc.terminate()
        proc.wait(30)
    assert any(row.startswith(signed) for row in text) and fake in text, text[-5:]
    # One line a record, the real dead letter's multi-line validation report included.
    assert all(row.startswith(("SIGNED ", "REJECTED ", "FORGED ", "DLQ ", "PARKED ")) for row in text), [
        row for row in text if not row.startswith(("SIGNED ", "REJECTED ", "FORGED ", "DLQ ", "PARKED "))
    ][:3]


def _lines(proc: subprocess.Popen[str]) -> Callable[[], str]:
    """Each next line ``proc`` prints, as it prints it (up to 90 s for one)."""
    assert proc.stdout is not None
    out, rows = proc.stdout, queue.Queue[str]()

    def read() -> None:
        for row in out:
            rows.put(row.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lambda: rows.get(timeout=90)


def test_submit_says_at_once_what_it_published_and_that_it_parked_then_what_the_admins_decided(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """`warden submit` on an intent that parks used to print nothing, not even the intent's id,
    for the whole --timeout. It prints the id once it is published and PARKED, with who may
    approve, as soon as the worker parks it, while it goes on waiting: the admin's approval and
    the signature that follows end it (exit 0). With --json it prints one document, the intent
    still parked when --timeout runs out (exit 4). `warden tail` shows the parked intent too."""
    settings = stack.settings
    agent = f"agent-parked-{os.urandom(3).hex()}"
    run(
        make_agent(
            settings,
            agent,
            tx_to_allowlist=(DEST,),
            tx_max_value_eth="1",
            approval_threshold_eth="0.001",
            approval_timeout_s=600,
        )
    )
    env = child_environment(settings)
    submit = [sys.executable, "-m", "infra.cli", "submit", "--agent", agent, "--chain", "anvil", "--to", DEST]
    proc = subprocess.Popen(
        [*submit, "--value", "0.01", "--timeout", "180"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _lines(proc)
        published = line()
        assert published.startswith("submitted ") and proc.poll() is None, published
        intent_id = published.split()[1]
        parked = line()
        assert parked.startswith(f"PARKED {intent_id} until ") and proc.poll() is None, parked
        assert f"`warden approvals approve|deny {intent_id}`" in parked, parked
        who = line()
        assert "waiting for 1 of the admins of set v" in who and LOCAL_ADMIN_ID in who, who
        approved = warden(settings, "approvals", "approve", intent_id)
        assert approved.returncode == 0, approved.stderr
        assert line().startswith(f"SIGNED {intent_id} sign_only "), "the submit printed no signature"
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)

    waited = subprocess.run(
        [*submit, "--value", "0.02", "--timeout", "5", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert waited.returncode == 4, waited.stderr
    doc = orjson.loads(waited.stdout)
    assert (doc["ended"], doc["outcome"]["intent_id"], doc["approvers"]["needed"]) == (
        "parked",
        doc["intent"]["intent_id"],
        1,
    ), doc
    _tail_shows_parked(env, doc["intent"]["intent_id"])


def _tail_shows_parked(env: dict[str, str], intent_id: str) -> None:
    """`warden tail --from-beginning` shows ``intent_id`` as parked."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "tail", "--from-beginning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for row in proc.stdout:
            if row.startswith(f"PARKED {intent_id} "):
                break
        else:
            raise AssertionError(f"the tail ended (exit status {proc.wait(30)}) before showing the parked intent")
    finally:
        proc.terminate()
        proc.wait(30)
