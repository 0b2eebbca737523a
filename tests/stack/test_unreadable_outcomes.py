"""A record the streams worker cannot read is answered where its producer looks: an INVALID_INTENT
rejection signed by the worker, keyed by the agent, bound to the SHA-256 of the bytes written,
which the SDK (`Client.submit_raw`, `wait_outcomes`), `warden submit --raw` and `warden txs`
show. On the session stack."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from infra.stack.local import LocalStack
from runtime.kafka import end_offsets
from schemas.codes import Code
from schemas.outcomes import IntentRejected
from schemas.stages import Stage
from sdk.client import OUTCOME_TOPICS, Client, new_intent, wait_outcomes
from sdk.outcomes import Outcome, RawSubmission
from tests.support import make_agent, warden

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
BAD_CHECKSUM = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # DEST with one letter's case flipped
SAYS = f"to: bad EIP-55 checksum in {BAD_CHECKSUM!r}; expected {DEST!r}"


def test_an_unreadable_record_is_answered_to_its_producer_sdk_and_cli(
    stack: LocalStack, run: Callable[..., Any], tmp_path: Path
) -> None:
    settings = stack.settings
    agent = f"agent-raw-{os.urandom(3).hex()}"
    key, _, _ = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))

    def broken(intent_id: str) -> bytes:
        """An intent the agent signed, its recipient's checksum broken after: no worker reads it."""
        doc = orjson.loads(
            new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.01", intent_id=intent_id).to_bytes()
        )
        return orjson.dumps({**doc, "to": BAD_CHECKSUM})

    checksum = broken(f"i-raw-{os.urandom(4).hex()}")
    not_json = b'{"intent_id": "i-cut-' + os.urandom(4).hex().encode() + b'", "agent_id": '
    # An intent this client built with a field its worker reads differently (written unchecked):
    # `Client.submit` sends it, and its answer is bound to the bytes sent.
    unread = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.01").model_copy(
        update={"to": BAD_CHECKSUM}
    )

    async def scenario() -> tuple[list[RawSubmission], dict[str, Outcome], list[tuple[str, str]]]:
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:
            sent = [await client.submit_raw(agent, raw) for raw in (checksum, not_json)]
            await (await client.submit(unread))
        forged: list[tuple[str, str]] = []
        outcomes = await wait_outcomes(settings, [*sent, unread], 60, start, forged=forged)
        return sent, outcomes, forged

    (by_checksum, by_json), outcomes, forged = run(scenario())
    assert forged == []
    digest = hashlib.sha256(checksum).hexdigest()
    assert (by_checksum.agent_id, by_checksum.intent_id, by_checksum.digest) == (
        agent,
        orjson.loads(checksum)["intent_id"],
        digest,
    )
    rejected = outcomes[by_checksum.intent_id]
    assert isinstance(rejected, IntentRejected)
    assert (rejected.stage, rejected.code, rejected.intent_digest, rejected.agent_id) == (
        Stage.INTAKE,
        Code.INVALID_INTENT,
        digest,
        agent,
    )
    assert SAYS in rejected.reason and "sign the intent again and submit it" in rejected.reason
    cut = outcomes[by_json.intent_id]  # named by its key and its digest: the body names nothing readable
    assert by_json.intent_id == "unreadable-" + hashlib.sha256(not_json).hexdigest()[:32]
    assert (cut.code, cut.intent_digest, cut.agent_id) == (Code.INVALID_INTENT, by_json.digest, agent)
    assert cut.reason.startswith("not valid JSON: ")
    other = outcomes[unread.intent_id]
    assert (other.code, other.intent_digest) == (Code.INVALID_INTENT, hashlib.sha256(unread.to_bytes()).hexdigest())

    # `warden submit --raw`: the file's bytes as they are, and the answer like any other.
    path = tmp_path / "intent.json"
    path.write_bytes(broken(f"i-cli-{os.urandom(4).hex()}"))
    intent_id = orjson.loads(path.read_bytes())["intent_id"]
    shown = warden(settings, "submit", "--raw", str(path), "--agent", agent, "--timeout", "60")
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert shown.stdout.startswith(f"submitted {intent_id} as it is ("), shown.stdout
    assert f"REJECTED {intent_id} at intake: INVALID_INTENT: invalid TransactionIntent: {SAYS}" in shown.stdout
    path.write_bytes(broken(f"i-cli-{os.urandom(4).hex()}"))
    doc = orjson.loads(
        warden(settings, "submit", "--raw", str(path), "--agent", agent, "--timeout", "60", "--json").stdout
    )
    sent = path.read_bytes()
    assert doc["submission"]["digest"] == doc["outcome"]["intent_digest"] == hashlib.sha256(sent).hexdigest()
    assert (doc["outcome"]["code"], doc["submission"]["bytes"]) == (Code.INVALID_INTENT, len(sent))
    refused = warden(settings, "submit", "--raw", str(path), "--agent", agent, "--to", DEST)
    assert refused.returncode == 2 and "--raw sends the file as it is, so --to cannot change it" in refused.stderr

    # `warden txs` lists them with their reasons.
    listed = warden(settings, "txs", "list", "--agent", agent)
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.startswith(by_checksum.intent_id))
    assert f"rejected  at intake: INVALID_INTENT: invalid TransactionIntent: {SAYS}" in line
    assert "0 transaction(s) of" in listed.stdout and "5 intent(s) rejected" in listed.stdout, listed.stdout
    rows = orjson.loads(warden(settings, "txs", "list", "--agent", agent, "--json").stdout)["rejected"]
    assert {r["intent_id"]: (r["code"], r["intent_digest"]) for r in rows}[by_json.intent_id] == (
        Code.INVALID_INTENT,
        by_json.digest,
    )
    one = warden(settings, "txs", "show", by_checksum.intent_id, "--agent", agent)
    assert one.returncode == 0 and SAYS in one.stdout and digest in one.stdout, one.stdout + one.stderr
