"""The what-if replay (sdk.what_if.replay) without a ledger: recorded intents judged again under
another policy with windows of the replay's own, and the chain never asked; and what is replayed
(sdk.what_if.from_rows): the real streams engine's audit events as the ledger's rows, of which only
intents whose signature verifies under the agent key in force then are believed; and the check of
the rows read against a chDB ledger's chains and signed checkpoints (infra.cli.policy.check_rows).
No processes."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.cli.policy import _checked, check_rows
from infra.stack.local import free_port
from ledger.keys import load_or_create_signing_key
from ledger.schema import AUDIT_LOG
from ledger.store import ChdbStore, store_path
from rules.prices import Price
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.audit import AuditEvent
from schemas.auth import public_key_hex
from schemas.codes import Code
from schemas.emit import Emit
from schemas.intent import SealedSecret, TransactionIntent
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from schemas.stages import Stage
from sdk.client import new_intent
from sdk.what_if import (
    NO_POLICY,
    PARTIAL,
    SIGNATURE_INVALID,
    SUMMARY_ONLY,
    LedgerRead,
    Recorded,
    from_rows,
    replay,
    report,
)
from tests.engine_support import AGENT, World, audits
from tests.ledger_support import build_ledger, chain_of, pipeline_events

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
A, B = "0x" + "aa" * 20, "0x" + "bb" * 20
FEED = "0x" + "cc" * 20
QUOTE = FeeQuote(gas_limit=21_000, fee_per_gas=10**9)


def policy(**fields: Any) -> AgentPolicy:
    return AgentPolicy(
        agent_id="agent-w",
        version=2,
        agent_public_key=public_key_hex(KEY),
        issued_at=T0,
        tx_to_allowlist=(A, B),
        **fields,
    )


def recorded(n: int, to: str, value: str, outcome: str = "approved", **fields: Any) -> Recorded:
    at = T0 + timedelta(minutes=n)
    intent = new_intent(KEY, agent_id="agent-w", chain="anvil", to=to, value=value, now=at)
    return Recorded(intent, at, outcome, quote=fields.pop("quote", QUOTE), **fields)


def test_windows_are_the_replays_own_and_in_order() -> None:
    history = [recorded(0, A, "0.4"), recorded(1, A, "0.4"), recorded(2, B, "0.4")]
    replayed = asyncio.run(replay(history, policy(tx_daily_limit_eth="1"), 600 * 10**6))
    assert [r.outcome for r in replayed] == ["approved", "approved", "refused"]
    assert replayed[2].code == Code.DAILY_LIMIT_EXCEEDED
    doc = report(replayed, "agent-w", T0, policy(), {})
    assert [c["intent_id"] for c in doc["changes"]] == [history[2].intent.intent_id]
    assert doc["totals"]["moved"] == {"native": str(12 * 10**17)}
    assert doc["totals"]["would_have_moved"] == {"native": str(8 * 10**17)}


def test_a_fee_never_quoted_or_a_price_never_read_is_undetermined_not_guessed() -> None:
    never_quoted = recorded(0, A, "0.1", "refused", quote=None)
    replayed = asyncio.run(replay([never_quoted], policy(), 600 * 10**6))
    assert (replayed[0].outcome, replayed[0].stage) == ("undetermined", Stage.FEE)
    usd = policy(usd_daily_limit="1000", price_feeds=({"chain": "anvil", "asset": "native", "feed": FEED},))
    replayed = asyncio.run(replay([recorded(0, A, "0.1")], usd, 600 * 10**6))
    assert (replayed[0].outcome, replayed[0].code) == ("undetermined", Code.PRICE_NOT_RECORDED)


def test_recorded_prices_are_used_and_held_to_the_new_staleness_bound() -> None:
    price = Price(FEED, 7, 3000 * 10**8, 8, int(T0.timestamp()) - 600)
    usd = dict(usd_max_per_tx="200", price_feeds=({"chain": "anvil", "asset": "native", "feed": FEED},))
    one = recorded(1, A, "0.1", prices={"native": price})  # $300 and a fee
    replayed = asyncio.run(replay([one], policy(**usd), 600 * 10**6))
    assert (replayed[0].outcome, replayed[0].code) == ("refused", Code.USD_OVER_CAP)
    replayed = asyncio.run(replay([one], policy(**usd, price_max_age_s=60), 600 * 10**6))
    assert (replayed[0].outcome, replayed[0].code) == ("refused", Code.PRICE_STALE)


# -- what is replayed: only intents whose signature verifies under the key in force then ----------


def _rows(emits: list[Emit], first_seq: int = 0) -> list[tuple[Any, ...]]:
    """The ledger's rows of a worker's audit events, as `read_ledger` reads them (one chain)."""
    return [
        (0, first_seq + n, e.intent_id or "", e.action, e.ts, orjson.dumps(e.details).decode())
        for n, e in enumerate(audits(emits))
    ]


def _ledger(
    world: World, steps: list[tuple[AgentPolicy, int] | tuple[bytes, int]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Each step (a policy, or an intent's bytes, with the minutes after T0 it came in) through the
    real streams engine; its audit events as the ledger's rows: (policy rows, intent rows)."""
    policy_rows: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    for step, minutes in steps:
        now = T0 + timedelta(minutes=minutes)
        if isinstance(step, AgentPolicy):
            policy_rows += _rows(world.publish(step, now), len(policy_rows) + len(rows))
        else:
            rows += _rows(world.submit(step, now), len(policy_rows) + len(rows))
    return policy_rows, rows


def _forged(intent: TransactionIntent, **changes: Any) -> bytes:
    """``intent`` as a keyless topic writer rewrites it: fields changed, its signature zeroed."""
    return intent.model_copy(update={**changes, "signature": "00" * 64}).to_bytes()


def test_intents_whose_signature_never_verified_are_skipped_and_counted() -> None:
    world = World()
    paid = world.intent("0.1", now=T0)
    forged = [world.intent("0.5", now=T0 + timedelta(minutes=1)) for _ in range(2)]
    policy_rows, rows = _ledger(
        world,
        [(world.policy(), 0)]
        + [(_forged(paid, value="0.9"), 0)]  # a forged copy of the real one, before it
        + [(paid.to_bytes(), 0)]
        + [(_forged(f), 1) for f in forged],  # new intents under the agent's name, never signed by it
    )
    kinds = {(r[3], orjson.loads(r[5]).get("code")) for r in rows}
    assert (AuditAction.INTENT_REJECTED, Code.AGENT_SIGNATURE_INVALID) in kinds
    assert (AuditAction.INTENT_APPROVED, None) in kinds
    read = from_rows(policy_rows, rows, T0 - timedelta(days=1))
    assert [r.intent.intent_id for r in read.recorded] == [paid.intent_id]
    assert read.recorded[0].outcome == "approved" and read.recorded[0].intent.value == "0.1"
    assert read.skipped == {SIGNATURE_INVALID: 3}
    assert len(read.rows) == len(policy_rows) + len(rows) and read.oldest == T0

    # The agent's policy unchanged: nothing flips, and what moved is what would have moved.
    unchanged = world.policy(version=2)
    doc = report(asyncio.run(replay(read.recorded, unchanged, 600 * 10**6)), AGENT, T0, unchanged, read.skipped)
    assert doc["changes"] == [] and doc["skipped"] == {SIGNATURE_INVALID: 3}
    assert doc["totals"]["moved"] == doc["totals"]["would_have_moved"] == {"native": str(10**17)}
    assert doc["totals"]["skipped"] == 3 and doc["totals"]["intents"] == 1


def test_the_key_is_the_one_in_force_when_the_intent_was_submitted() -> None:
    world = World()
    old_key, new_key = world.agent_key, Ed25519PrivateKey.generate()
    before = world.intent("0.1", now=T0)  # under the first key, while it was in force
    after_old = world.intent("0.2", now=T0 + timedelta(minutes=5))  # the first key, after it was replaced
    after_new = world.intent("0.3", now=T0 + timedelta(minutes=5), key=new_key)
    policy_rows, rows = _ledger(
        world,
        [
            (world.policy(), 0),
            (before.to_bytes(), 0),
            (world.policy(version=2, agent_public_key=public_key_hex(new_key)), 1),
            (after_old.to_bytes(), 5),
            (after_new.to_bytes(), 5),
        ],
    )
    read = from_rows(policy_rows, rows, T0 - timedelta(days=1))
    assert [r.intent.intent_id for r in read.recorded] == [before.intent_id, after_new.intent_id]
    assert read.skipped == {SIGNATURE_INVALID: 1} and old_key != new_key
    # Read from just after the change (the intents since; every policy, as `read_ledger` reads
    # them): the policy in force at ``since`` is read, and checked, too.
    since = T0 + timedelta(minutes=2)
    recent = [r for r in rows if r[4] >= since]
    later = from_rows(policy_rows, recent, since)
    assert [r.intent.intent_id for r in later.recorded] == [after_new.intent_id]
    assert later.oldest == T0 + timedelta(minutes=1) and sorted(later.rows) == sorted(
        [r[:2] for r in recent] + [policy_rows[-1][:2]]
    )


def test_what_cannot_be_checked_is_skipped_with_its_reason() -> None:
    world = World()
    sealed = world.intent(
        "0.1", now=T0, sealed_client_share=(SealedSecret(key_id="0123456789abcdef", sealed="c2VhbGVk"),)
    )
    plain = world.intent("0.1", now=T0)
    policy_rows, rows = _ledger(world, [(plain.to_bytes(), 0), (world.policy(), 0), (sealed.to_bytes(), 1)])
    read = from_rows(policy_rows, rows, T0 - timedelta(days=1))
    # ``plain`` came before any policy (POLICY_MISSING); ``sealed`` verified, but the ledger keeps
    # it without the secret its signature covers.
    assert read.recorded == [] and read.skipped == {NO_POLICY: 1, PARTIAL: 1}
    summary = [
        r[:5] + (orjson.dumps({"intent_digest": "ab" * 32}).decode(),)
        for r in rows
        if r[3] == AuditAction.INTENT_SUBMITTED
    ]
    assert from_rows(policy_rows, summary, T0 - timedelta(days=1)).skipped == {SUMMARY_ONLY: 2}


# -- the rows read, checked against the ledger's chains and signed checkpoints first ---------------


def _what_was_read(events: list[AuditEvent], chains: set[int], oldest: datetime) -> LedgerRead:
    """A replay's read of ``events`` (as `build_ledger` chains them): every row of ``chains``."""
    seqs: dict[int, int] = {}
    rows = []
    for event in events:
        chain = chain_of(event, 2)
        seqs[chain] = seqs.get(chain, -1) + 1
        if chain in chains:
            rows.append((chain, seqs[chain]))
    return LedgerRead([], {}, rows, oldest)


def test_the_rows_read_are_checked_against_the_chains_and_checkpoints_and_a_rewrite_refuses_the_replay(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    key = load_or_create_signing_key(home)
    settings = dataclasses.replace(Settings(), home=home, clickhouse_url=None, ledger_http=f"127.0.0.1:{free_port()}")
    events = pipeline_events(300, agents=4)
    store = ChdbStore(store_path(settings))
    store.ensure_schema()
    build_ledger(store, events, key, checkpoint_every=40)  # chain 0: 151 rows, the last 31 past a checkpoint
    store.close()
    read = _what_was_read(events, {0}, events[0].ts)

    checked = check_rows(settings, read)
    assert checked["checked"] and checked["chains"] == [0] and checked["rows_read"] == 151
    assert (checked["under_checkpoint"], checked["chain_only"], checked["not_checked"]) == (120, 31, 0)
    assert "120 under a signed checkpoint, 31 newer than the last signed checkpoint" in _checked(checked)
    assert "NOT checked (--no-verify)" in _checked({"checked": False, "reason": "--no-verify"})

    # A row under a checkpoint changed in the store: nothing is replayed.
    store = ChdbStore(store_path(settings))
    store.execute(
        f'ALTER TABLE {AUDIT_LOG} UPDATE details = \'{{"value":"9"}}\' WHERE chain = 0 AND seq = 7 '
        "SETTINGS mutations_sync = 2"
    )
    store.close()
    with pytest.raises(ValueError, match="do not verify .*chain 0 seq 7.*modified.*nothing was replayed"):
        check_rows(settings, read)
