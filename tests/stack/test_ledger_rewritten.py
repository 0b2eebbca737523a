"""A rewritten ledger, on the stack: the operator of a witnessed ledger, who holds its key, rewrites
a row, recomputes the chain from there and signs the checkpoints and their notes again. Every
hash and every log signature agree; `warden audit verify`, run as a user runs it, still fails and
says "rewritten after witnessing", naming the witness (a real `warden witness run` process that
cosigned through the sink) and, once the operator also deleted the witness's cosignatures, the
receipt a client kept."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from infra.stack.local import free_port
from ledger.cosigning import log_key
from ledger.keys import load_or_create_signing_key
from ledger.schema import AUDIT_CHECKPOINTS, AUDIT_LOG, AUDIT_NOTE_SIGNATURES
from ledger.sink import SinkOptions, run_sink
from ledger.store import ChdbStore, sql_string, store_path
from runtime.config import LedgerSettings, Settings
from tests.ledger_rewrite_support import rewrite_and_resign
from tests.ledger_support import REPO, WitnessProcess, broker_alone, count_via_endpoint, pipeline_events, produce

LOG_NAME = "warden.test/rewritten"


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with broker_alone() as address:
        yield address


def _warden(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A `warden` command in a process of its own, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_verify_says_rewritten_after_witnessing_for_a_rewrite_signed_again_with_the_ledgers_key(
    broker: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    ledger_key = load_or_create_signing_key(home)
    witness = WitnessProcess("witness.test/w1", tmp_path / "w1", log_key(LOG_NAME, ledger_key).vkey)
    witness.start()
    witnesses = f"{witness.url}={witness.key.vkey}"
    settings = dataclasses.replace(
        Settings(),
        home=home,
        broker=broker,
        clickhouse_url=None,
        ledger_http=f"127.0.0.1:{free_port()}",
        ledger=LedgerSettings(log_name=LOG_NAME, witnesses=witnesses, witness_quorum=1),
    )
    events = pipeline_events(160, agents=4)

    async def sink() -> None:
        stop = asyncio.Event()
        options = SinkOptions(checkpoint_every=40, checkpoint_interval=timedelta(seconds=1), batch_max=64)
        task = asyncio.create_task(run_sink(settings, stop, options=options))
        await produce(settings, [(e.agent_id, e.to_bytes()) for e in events])
        deadline = time.monotonic() + 120
        while await asyncio.to_thread(count_via_endpoint, settings) < len(events):
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.3)
        await asyncio.sleep(2.5)  # past the checkpoint interval: the tail is checkpointed and witnessed
        stop.set()
        await task

    # The user's environment: the ledger's home and log name, the sink's witnesses; no sink serves.
    env = {
        **os.environ,
        "WARDEN_HOME": str(home),
        "WARDEN_LEDGER_LOG_NAME": LOG_NAME,
        "WARDEN_LEDGER_HTTP": f"127.0.0.1:{free_port()}",
        "WARDEN_LEDGER_WITNESSES": witnesses,
    }
    unpinned = {k: v for k, v in env.items() if k != "WARDEN_LEDGER_WITNESSES"}
    try:
        asyncio.run(sink())
    finally:
        witness.stop()

    store = ChdbStore(store_path(settings), read_only=True)
    try:
        (row,) = store.arrow(
            f"SELECT chain, event_id FROM {AUDIT_LOG} WHERE seq = 5 ORDER BY chain LIMIT 1"
        ).to_pylist()
        chain = row["chain"]
        # The first checkpoint over the row the operator rewrites: where the witness disagrees first.
        first = store.arrow(
            f"SELECT min(seq) AS first FROM {AUDIT_CHECKPOINTS} WHERE chain = {chain} AND seq >= 20"
        ).to_pylist()[0]["first"]
    finally:
        store.close()
    # A client keeps the receipt of an event, as `warden audit receipt` prints it.
    printed = _warden("audit", "receipt", row["event_id"], env=env)
    assert printed.returncode == 0, printed.stderr
    kept = tmp_path / "kept" / "event.tlog-proof"
    kept.parent.mkdir()
    kept.write_text(printed.stdout)

    intact = _warden("audit", "verify", "--receipt", str(kept), env=env)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "of 1 pinned witness(es) and 1 kept receipt(s) agree" in intact.stdout, intact.stdout

    # The rogue operator: row 20 of the chain rewritten, the chain and checkpoints redone with the key.
    store = ChdbStore(store_path(settings))
    try:
        resigned = rewrite_and_resign(
            store, chain, 20, {"to": "0x" + "66" * 20, "value_wei": "9" * 21}, ledger_key, LOG_NAME
        )
    finally:
        store.close()
    assert resigned >= 1

    # The ledger's own checks cannot tell: every hash and log signature agree.
    alone = _warden("audit", "verify", env=unpinned)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert "were not checked; pin each witness with --witness" in alone.stdout, alone.stdout

    for pinned, args in ((env, ()), (unpinned, ("--witness", witness.key.vkey))):
        caught = _warden("audit", "verify", *args, env=pinned)
        assert caught.returncode == 1, caught.stdout + caught.stderr
        assert "rewritten after witnessing" in caught.stdout and witness.name in caught.stdout, caught.stdout
        assert f"chain {chain} seq {first}: rewritten_after_witnessing" in caught.stdout, caught.stdout
    as_json = _warden("audit", "verify", "--json", env=env)
    assert as_json.returncode == 1
    (problem,) = orjson.loads(as_json.stdout)["problems"]
    assert (problem["chain"], problem["seq"], problem["kind"], problem["witness"]) == (
        chain,
        first,
        "rewritten_after_witnessing",
        witness.name,
    ), problem

    # The operator deletes the witness's cosignatures too: the witness's evidence is gone from the
    # store, and the kept receipt still says what the log showed.
    store = ChdbStore(store_path(settings))
    try:
        store.execute(
            f"ALTER TABLE {AUDIT_NOTE_SIGNATURES} DELETE WHERE chain = {chain} AND seq >= 20 "
            f"AND signer = {sql_string(witness.key.vkey)} SETTINGS mutations_sync = 2"
        )
    finally:
        store.close()
    assert _warden("audit", "verify", env=env).returncode == 0  # the limit docs/known-limits.md names
    for args in (("--receipt", str(kept)), ("--receipts", str(kept.parent))):
        caught = _warden("audit", "verify", *args, env=env)
        assert caught.returncode == 1, caught.stdout + caught.stderr
        assert "rewritten after witnessing" in caught.stdout and str(kept) in caught.stdout, caught.stdout
    as_json = _warden("audit", "verify", "--json", "--receipt", str(kept), env=env)
    (problem,) = orjson.loads(as_json.stdout)["problems"]
    assert (problem["chain"], problem["kind"], problem["receipt"]) == (
        chain,
        "rewritten_after_witnessing",
        str(kept),
    ), problem
