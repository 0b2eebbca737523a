"""`warden policy what-if` on the real stack: an agent's intents decided by the pipeline and
recorded by the ledger, then replayed from the ledger under a tightened daily limit and under a
widened allowlist. Each change it reports is checked against what was recorded. And intents a
keyless topic writer put under an agent's name, refused by the worker for their signature, are not
replayed as if the agent had sent them."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.local import LocalStack
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import end_offsets
from schemas import topics
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentRejected, SignedTransaction
from schemas.stages import Stage
from sdk.client import OUTCOME_TOPICS, Client, Outcome, new_intent, wait_outcomes
from sdk.what_if import SIGNATURE_INVALID, read_ledger
from tests.support import make_agent, warden

GWEI = 10**9
A, B, C = ("0x" + os.urandom(20).hex() for _ in range(3))


def _pay(
    settings: Settings, run: Callable[..., Any], key: Ed25519PrivateKey, agent: str, to: str, value: str
) -> tuple[TransactionIntent, IntentRejected | SignedTransaction]:
    intent = new_intent(
        key,
        agent_id=agent,
        chain="anvil",
        to=to,
        value=value,
        tx_type=2,
        gas_limit=21_000,
        max_fee_per_gas=20 * GWEI,
        max_priority_fee_per_gas=1 * GWEI,
        broadcast=True,
    )

    async def go() -> Outcome:
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:
            await (await client.submit(intent))
        return (await wait_outcomes(settings, [intent], 90, start, final=True))[intent.intent_id]

    outcome = run(go())
    assert isinstance(outcome, (IntentRejected, SignedTransaction)), outcome
    return intent, outcome


def test_what_if_replays_the_ledger_under_a_tightened_limit_and_a_widened_allowlist(
    stack: LocalStack, run: Callable[..., Any], tmp_path: Path
) -> None:
    settings = stack.settings
    agent = f"what-if-{os.urandom(3).hex()}"
    key, _, _ = run(make_agent(settings, agent, tx_to_allowlist=(A, B), tx_daily_limit_eth="1"))
    script = [(A, "0.3"), (B, "0.3"), (C, "0.2"), (A, "0.3"), (A, "0.2")]
    sent = [_pay(settings, run, key, agent, to, value) for to, value in script]
    kinds = [o.status if isinstance(o, SignedTransaction) else f"{o.stage}:{o.code}" for _, o in sent]
    assert kinds == [
        "mined",
        "mined",
        "allowlist:RECIPIENT_NOT_ALLOWLISTED",
        "mined",
        "daily_limit:DAILY_LIMIT_EXCEEDED",
    ]
    ids = [intent.intent_id for intent, _ in sent]

    deadline = time.monotonic() + 120  # the ledger appends behind the pipeline
    while len(read_ledger(settings, agent, utcnow().replace(year=2000)).recorded) < 5 and time.monotonic() < deadline:
        time.sleep(1)

    def what_if(fields: dict[str, Any]) -> dict[str, Any]:
        path = tmp_path / f"policy-{len(fields)}-{os.urandom(2).hex()}.json"
        path.write_text(json.dumps(fields))
        done = warden(settings, "policy", "what-if", "--agent", agent, "--policy", str(path), "--since", "1d", "--json")
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        return report

    # A daily limit of 0.5: the second and fourth payments, approved then, would be refused.
    tight = what_if({"tx_daily_limit_eth": "0.5"})
    assert tight["totals"]["intents"] == 5 and tight["totals"]["approved_then"] == 3
    changed = {c["intent_id"]: c for c in tight["changes"]}
    assert set(changed) == {ids[1], ids[3]}
    for c in changed.values():
        assert (c["was"], c["would_be"], c["deciding_stage"], c["deciding_code"]) == (
            "approved",
            "refused",
            "daily_limit",
            Code.DAILY_LIMIT_EXCEEDED,
        )
    assert tight["totals"]["moved"]["native"] == str(9 * 10**17)
    assert tight["totals"]["would_have_moved"]["native"] == str(3 * 10**17)

    # C allowlisted: the refused payment to C would pass (its simulation never ran: reported as
    # not judged), and the fourth, approved then, would then exceed the 1 ETH limit.
    wide = what_if({"tx_to_allowlist": [A, B, C]})
    changed = {c["intent_id"]: c for c in wide["changes"]}
    assert set(changed) == {ids[2], ids[3]}
    to_c = changed[ids[2]]
    assert (to_c["was"], to_c["was_code"], to_c["would_be"]) == ("refused", Code.RECIPIENT_NOT_ALLOWLISTED, "approved")
    assert to_c["not_judged"] == ["simulation"]
    fourth = changed[ids[3]]
    assert (fourth["was"], fourth["would_be"], fourth["deciding_code"]) == (
        "approved",
        "refused",
        Code.DAILY_LIMIT_EXCEEDED,
    )
    assert wide["totals"]["would_have_moved"]["native"] == str(8 * 10**17)

    # Readable by a person too.
    path = tmp_path / "tight.json"
    path.write_text(json.dumps({"tx_daily_limit_eth": "0.5"}))
    text = warden(settings, "policy", "what-if", "--agent", agent, "--policy", str(path), "--since", "1d")
    assert text.returncode == 0 and "5 intents of" in text.stdout and "2 would change" in text.stdout, text.stdout
    assert isinstance(sent[2][1], IntentRejected)

    # A policy change through the CLI, with the what-if first.
    updated = warden(
        settings, "agents", "update", "--agent", agent, "--daily-limit", "0.5", "--what-if", "1d", "--json"
    )
    assert updated.returncode == 0, updated.stderr
    doc = json.loads(updated.stdout)
    assert doc["tx_daily_limit_eth"] == "0.5" and {c["intent_id"] for c in doc["what_if"]["changes"]} == {
        ids[1],
        ids[3],
    }


def test_intents_a_keyless_writer_put_under_an_agents_name_are_skipped_not_replayed(
    stack: LocalStack, run: Callable[..., Any], tmp_path: Path
) -> None:
    """Case 3: 0.1 mined; 0.9 more in two intents for the agent that a writer with no key made (a
    zeroed signature, and one by a key that is not the agent's), refused AGENT_SIGNATURE_INVALID.
    What-if under the agent's unchanged policy: nothing flips, 0.1 moved and would have moved,
    and the two are counted as skipped for their signature; the rows read were checked first."""
    settings = stack.settings
    agent = f"what-if-forged-{os.urandom(3).hex()}"
    key, _, _ = run(make_agent(settings, agent, tx_to_allowlist=(A,), tx_daily_limit_eth="1"))
    paid, outcome = _pay(settings, run, key, agent, A, "0.1")
    assert isinstance(outcome, SignedTransaction) and outcome.status == "mined", outcome

    fees: dict[str, Any] = dict(
        tx_type=2, gas_limit=21_000, max_fee_per_gas=20 * GWEI, max_priority_fee_per_gas=1 * GWEI
    )
    zeroed = new_intent(key, agent_id=agent, chain="anvil", to=A, value="0.5", **fees)
    zeroed = zeroed.model_copy(update={"signature": "00" * 64})
    stranger = new_intent(Ed25519PrivateKey.generate(), agent_id=agent, chain="anvil", to=A, value="0.4", **fees)

    async def forge() -> dict[str, Outcome]:
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:  # a producer, nothing more: no agent key
            for intent in (zeroed, stranger):
                await client.send(topics.INTENTS_SUBMITTED, agent, intent.to_bytes())
            await client.flush()
        return await wait_outcomes(settings, [zeroed, stranger], 90, start)

    refused = run(forge())
    assert {(o.stage, o.code) for o in refused.values()} == {(Stage.INTAKE, Code.AGENT_SIGNATURE_INVALID)}, refused

    deadline = time.monotonic() + 120  # the ledger appends behind the pipeline
    while time.monotonic() < deadline:
        read = read_ledger(settings, agent, utcnow().replace(year=2000))
        if read.recorded and read.skipped.get(SIGNATURE_INVALID) == 2:
            break
        time.sleep(1)
    assert [r.intent.intent_id for r in read.recorded] == [paid.intent_id] and read.skipped == {SIGNATURE_INVALID: 2}

    unchanged = tmp_path / "unchanged.json"
    unchanged.write_text("{}")
    asked = ("policy", "what-if", "--agent", agent, "--policy", str(unchanged), "--since", "1d")
    done = warden(settings, *asked, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["changes"] == [] and doc["skipped"] == {SIGNATURE_INVALID: 2}, doc
    assert doc["totals"]["moved"] == doc["totals"]["would_have_moved"] == {"native": str(10**17)}
    assert (doc["totals"]["intents"], doc["totals"]["approved_now"], doc["totals"]["skipped"]) == (1, 1, 2)
    check = doc["ledger_check"]
    assert check["checked"] and check["rows_read"] > 0 and check["not_checked"] == 0, check
    assert check["under_checkpoint"] + check["chain_only"] == check["rows_read"]

    text = warden(settings, *asked)
    assert text.returncode == 0, text.stderr
    assert "0 would change" in text.stdout and "skipped 2: signature does not verify (2)" in text.stdout, text.stdout
    assert "checked against the hash chains and signed checkpoints" in text.stdout

    # Unchecked when asked, and said so.
    unchecked = warden(settings, *asked, "--no-verify")
    assert unchecked.returncode == 0 and "ledger: NOT checked (--no-verify)" in unchecked.stdout, unchecked.stdout
    assert json.loads(warden(settings, *asked, "--no-verify", "--json").stdout)["ledger_check"] == {
        "checked": False,
        "reason": "--no-verify",
    }
