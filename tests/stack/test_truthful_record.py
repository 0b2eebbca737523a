"""What Warden says about an intent is about that intent: a keyless topic writer's forged copy
that reuses a real intent's id gets its own refusal, which never stands for the real intent in a
receipt, a ledger view or the ledger itself."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import clickhouse_connect
import orjson
from aiokafka import TopicPartition
from clickhouse_connect.driver.client import Client as LedgerClient

from infra.stack.local import LocalStack
from runtime.config import Settings
from runtime.kafka import end_offsets
from schemas.actions import AuditAction
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentParked, IntentRejected, SignedTransaction
from sdk.client import OUTCOME_TOPICS, Client, Outcome, new_intent, wait_outcomes
from tests.support import make_agent, warden
from tests.token_support import ALICE

T = TypeVar("T")


def _forged_copy(intent: TransactionIntent) -> TransactionIntent:
    """What a writer with no key can make of a real intent: its id and agent, another value, no
    valid signature."""
    return intent.model_copy(update={"value": "0.9", "signature": "00" * 64})


def _ledger(settings: Settings) -> LedgerClient:
    host, _, port = settings.ledger_http.rpartition(":")
    return clickhouse_connect.get_client(host=host, port=int(port))


def _until(check: Callable[[], T | Literal[False] | None], what: str, timeout_s: float = 120) -> T:
    """``check()``'s first truthy answer, asked every half second until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.5)


def _outcome_events(client: LedgerClient, intent_id: str) -> Sequence[Sequence[Any]]:
    return client.query(
        "SELECT action, JSONExtractString(details, 'intent_digest'), JSONExtractString(details, 'code'), event_id "
        f"FROM audit_log WHERE intent_id = '{intent_id}' AND action IN ('intent.rejected', 'tx.mined', 'tx.final') "
        "ORDER BY seq"
    ).result_rows


def _statuses(client: LedgerClient, intent_id: str, agent_id: str) -> dict[str, Sequence[Any]]:
    """intent_status's rows of one intent id and agent: digest -> (final_status, failed_code)."""
    rows = client.query(
        "SELECT intent_digest, final_status, failed_code FROM intent_status "
        f"WHERE intent_id = '{intent_id}' AND agent_id = '{agent_id}'"
    ).result_rows
    return {row[0]: row[1:] for row in rows}


def test_a_forged_copys_refusal_is_no_receipt_or_status_of_the_mined_intent(
    stack: LocalStack, run: Callable[..., Any], tmp_path: Path
) -> None:
    """Case 1: intent I is mined; a forged copy under I's id is refused INTENT_ID_REUSED (a true
    event about another record). `warden txs show I --proof` still proves I's own outcome, the
    receipt checks for I's digest and not for the copy's, and intent_status keeps the two apart."""
    settings = stack.settings
    agent = f"truth-{os.urandom(3).hex()}"

    async def scenario() -> tuple[TransactionIntent, TransactionIntent, Outcome, Outcome]:
        key, _, _ = await make_agent(settings, agent, tx_to_allowlist=(ALICE,))
        intent = new_intent(key, agent_id=agent, chain="anvil", to=ALICE, value="0.001", broadcast=True)
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:
            await client.submit(intent)
        mined = (await wait_outcomes(settings, [intent], 90, start))[intent.intent_id]
        forged = _forged_copy(intent)
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:
            await client.submit(forged)
        refused = (await wait_outcomes(settings, [forged], 90, start))[forged.intent_id]
        return intent, forged, mined, refused

    intent, forged, mined, refused = run(scenario())
    assert isinstance(mined, SignedTransaction) and mined.status == "mined", mined
    assert isinstance(refused, IntentRejected) and refused.code == Code.INTENT_ID_REUSED, refused
    assert refused.intent_digest == forged.digest() != intent.digest()

    ledger = _ledger(settings)
    events = _until(
        lambda: (
            (rows := _outcome_events(ledger, intent.intent_id))
            and {r[0] for r in rows} >= {AuditAction.INTENT_REJECTED, AuditAction.TX_MINED}
            and rows
        ),
        "the mined intent's and the copy's outcomes on the ledger",
    )
    digests = {action: digest for action, digest, _, _ in events}
    assert digests[AuditAction.TX_MINED] == intent.digest() and digests[AuditAction.INTENT_REJECTED] == forged.digest()

    statuses = _statuses(ledger, intent.intent_id, agent)
    assert statuses[intent.digest()][0] == "mined", statuses
    assert statuses[forged.digest()] == ("rejected", Code.INTENT_ID_REUSED), statuses

    def shown() -> dict[str, Any] | None:
        done = warden(settings, "txs", "show", intent.intent_id, "--agent", agent, "--proof", "--json")
        return orjson.loads(done.stdout) if done.returncode == 0 else None

    row = _until(shown, "a receipt for the mined intent (a checkpoint covering its outcome)")
    receipt = tmp_path / "receipt.txt"
    receipt.write_text(row["receipt"])
    log_key = warden(settings, "audit", "log-key", "--json")
    assert log_key.returncode == 0, log_key.stderr
    vkey = orjson.loads(log_key.stdout)["vkey"]

    def check(digest: str) -> tuple[int, dict[str, Any]]:
        done = warden(
            settings,
            *("audit", "check-receipt", str(receipt), "--log-key", vkey, "--json"),
            *("--intent-id", intent.intent_id, "--agent", agent, "--intent-digest", digest),
        )
        return done.returncode, orjson.loads(done.stdout)

    code, checked = check(intent.digest())
    assert code == 0 and checked["ok"], checked
    assert checked["about"] == {"intent_id": intent.intent_id, "agent_id": agent, "intent_digest": intent.digest()}
    code, checked = check(forged.digest())
    assert code == 1 and not checked["ok"] and "not" in checked["reason"], checked


def test_a_forged_copy_does_not_take_the_place_of_an_admins_denial_on_the_ledger(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """Case 2: intent I waits for an admin; a forged copy under I's id is refused INTENT_ID_REUSED;
    the admin denies I. The client is told APPROVAL_DENIED, and the ledger holds that denial too,
    beside the copy's refusal: two decisions, two event ids, two intent_status rows."""
    settings = stack.settings
    agent = f"truth-park-{os.urandom(3).hex()}"

    async def scenario() -> tuple[TransactionIntent, TransactionIntent, Outcome, Outcome, dict[TopicPartition, int]]:
        key, _, _ = await make_agent(settings, agent, tx_to_allowlist=(ALICE,), approval_threshold_eth="0.1")
        intent = new_intent(key, agent_id=agent, chain="anvil", to=ALICE, value="0.5", broadcast=True)
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:
            await client.submit(intent)
        parked = (await wait_outcomes(settings, [intent], 90, start, final=False))[intent.intent_id]
        forged = _forged_copy(intent)
        async with Client(settings) as client:
            await client.submit(forged)
        refused = (await wait_outcomes(settings, [forged], 90, start))[forged.intent_id]
        return intent, forged, parked, refused, start

    intent, forged, parked, refused, start = run(scenario())
    assert isinstance(parked, IntentParked), parked
    assert isinstance(refused, IntentRejected) and refused.code == Code.INTENT_ID_REUSED, refused
    denied = warden(settings, "approvals", "deny", intent.intent_id, "--reason", "not ordered")
    assert denied.returncode == 0, denied.stderr
    outcome = run(wait_outcomes(settings, [intent], 90, start))[intent.intent_id]
    assert isinstance(outcome, IntentRejected) and outcome.code == Code.APPROVAL_DENIED, outcome

    ledger = _ledger(settings)
    rejections = _until(
        lambda: (
            (rows := [r for r in _outcome_events(ledger, intent.intent_id) if r[0] == AuditAction.INTENT_REJECTED])
            and len(rows) >= 2
            and rows
        ),
        "both refusals on the ledger: the copy's and the admin's denial",
    )
    by_code = {code: (digest, event_id) for _, digest, code, event_id in rejections}
    assert set(by_code) == {Code.INTENT_ID_REUSED, Code.APPROVAL_DENIED}, rejections
    assert by_code[Code.APPROVAL_DENIED][0] == intent.digest() and by_code[Code.INTENT_ID_REUSED][0] == forged.digest()
    assert by_code[Code.APPROVAL_DENIED][1] != by_code[Code.INTENT_ID_REUSED][1]
    statuses = _statuses(ledger, intent.intent_id, agent)
    assert statuses == {
        intent.digest(): ("rejected", Code.APPROVAL_DENIED),
        forged.digest(): ("rejected", Code.INTENT_ID_REUSED),
    }, statuses
