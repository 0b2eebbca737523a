"""A witnessed ledger on the real stack: the sink (in-process, real Tansu, real chDB) sends each
checkpoint to two `warden witness run` processes; every event's receipt then carries both
cosignatures, and Go's reference code (the `tlogcheck` oracle) accepts it. A sink operator who
signs a history that does not extend the last one, or replays an old checkpoint, gets no
cosignature; a witness killed and restarted still cosigns only what extends what it had stored."""

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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.cli import main
from infra.stack.local import free_port
from ledger.cosigning import log_key
from ledger.keys import load_or_create_signing_key
from ledger.merkle import consistency_path, leaf_hash, tree_hash
from ledger.note import Note, NoteCheckpoint, NoteKey, Signature, sign
from ledger.proof import build_receipt
from ledger.receipt import Policy, Receipt, check
from ledger.schema import AUDIT_CHECKPOINTS, AUDIT_LOG, AUDIT_NOTE_SIGNATURES
from ledger.sink import SinkOptions, run_sink
from ledger.store import ChdbStore, chain_leaves, sql_string, store_path
from ledger.witness import request_body
from runtime.config import LedgerSettings, Settings
from schemas.actions import AuditAction
from schemas.audit import AuditEvent
from tests.ledger_support import (
    REPO,
    WitnessProcess,
    broker_alone,
    count_via_endpoint,
    pipeline_events,
    produce,
    published_checkpoints,
)
from tests.oracle import build_tlogcheck

LOG_NAME = "warden.test/audit"


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with broker_alone() as address:
        yield address


def test_receipts_carry_both_cosignatures_and_witnesses_refuse_a_fork_and_a_replay(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    ledger_key = load_or_create_signing_key(home)
    vkey = log_key(LOG_NAME, ledger_key)
    witnesses = [WitnessProcess(f"witness.test/w{i}", tmp_path / f"w{i}", vkey.vkey) for i in (1, 2)]
    for w in witnesses:
        w.start()
    settings = dataclasses.replace(
        Settings(),
        home=home,
        broker=broker,
        clickhouse_url=None,
        ledger_http=f"127.0.0.1:{free_port()}",
        ledger=LedgerSettings(
            log_name=LOG_NAME, witnesses=",".join(f"{w.url}={w.key.vkey}" for w in witnesses), witness_quorum=2
        ),
    )
    events = pipeline_events(240, agents=4)
    try:
        asyncio.run(_sink_takes(settings, [events[:120]]))
        # A witness killed and started again on its state: it goes on from what it stored. The
        # second sink's checkpoints reach both with consistency proofs from what they hold.
        witnesses[0].kill()
        witnesses[0].start()
        asyncio.run(_sink_takes(settings, [events[120:]]))

        event_id, receipt, chain, leaves = _a_stored_receipt(settings, vkey, witnesses)
        policy = Policy(vkey, tuple(w.key for w in witnesses), quorum=2)
        assert check(Receipt.parse(receipt.text), policy).size > receipt.index

        monkeypatch.setenv("WARDEN_HOME", str(home))
        monkeypatch.setenv("WARDEN_LEDGER_LOG_NAME", LOG_NAME)
        monkeypatch.setenv("WARDEN_LEDGER_HTTP", f"127.0.0.1:{free_port()}")  # no sink serves: chDB directly
        _auditor_checks_the_receipt(tmp_path, event_id, receipt, chain, vkey, witnesses)

        # What the checkpoints topic carries: each checkpoint's note, cosigned.
        notes = asyncio.run(_published_notes(broker))
        cosigned_notes = {NoteCheckpoint.parse(n.text) for n in notes if len(n.signatures) == 3}
        # Every checkpoint went out cosigned by both (a restarted sink re-publishes its last ones signed by itself).
        assert notes and cosigned_notes == {NoteCheckpoint.parse(n.text) for n in notes}, [
            len(n.signatures) for n in notes
        ]

        _witnesses_refuse_a_fork_and_a_replay(broker, receipt, leaves, ledger_key, witnesses)
        _verify_names_a_forged_note_signature(settings, chain, vkey, capsys)
    finally:
        for w in witnesses:
            w.stop()


async def _sink_takes(settings: Settings, batches: list[list[AuditEvent]]) -> None:
    """Run the sink while each batch of events is produced, until the ledger holds them all and
    the tail is checkpointed and witnessed; then stop it."""
    stop = asyncio.Event()
    options = SinkOptions(checkpoint_every=40, checkpoint_interval=timedelta(seconds=1), batch_max=64)
    task = asyncio.create_task(run_sink(settings, stop, options=options))
    total = 0
    for batch in batches:
        await produce(settings, [(e.agent_id, e.to_bytes()) for e in batch])
        total += len(batch)
        deadline = time.monotonic() + 60
        while await asyncio.to_thread(count_via_endpoint, settings) < total:
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.3)
        await asyncio.sleep(2.5)  # past the checkpoint interval: the tail is checkpointed and witnessed
    stop.set()
    await task


def _a_stored_receipt(
    settings: Settings, vkey: NoteKey, witnesses: list[WitnessProcess]
) -> tuple[str, Receipt, int, list[bytes]]:
    """Check that the store holds both witnesses' cosignatures and the log's own signature on each
    checkpoint; then one event's id, its receipt, its chain and the chain's leaves."""
    store = ChdbStore(store_path(settings), read_only=True)
    try:
        # Both witnesses cosigned; the log's own signature line is each checkpoint's.
        signers = store.arrow(f"SELECT DISTINCT signer FROM {AUDIT_NOTE_SIGNATURES}").column("signer").to_pylist()
        assert sorted(signers) == sorted(w.key.vkey for w in witnesses)
        logs = store.arrow(f"SELECT DISTINCT signature FROM {AUDIT_CHECKPOINTS}").column("signature").to_pylist()
        assert logs and {Signature.from_line(line).key_id for line in logs} == {vkey.key_id}
        event = store.arrow(f"SELECT event_id, chain, seq FROM {AUDIT_LOG} ORDER BY chain, seq LIMIT 1 OFFSET 7")
        event_id = event.column("event_id")[0].as_py()
        receipt = build_receipt(store, event_id, LOG_NAME)
        chain = event.column("chain")[0].as_py()
        leaves = chain_leaves(store, chain, 10**9)
    finally:
        store.close()
    return event_id, receipt, chain, leaves


def _auditor_checks_the_receipt(
    tmp_path: Path, event_id: str, receipt: Receipt, chain: int, vkey: NoteKey, witnesses: list[WitnessProcess]
) -> None:
    """The auditor's commands: the receipt printed, checked offline with the keys alone, accepted
    by Go's reference code too, and refused once its event is altered."""
    printed = tmp_path / "event.tlog-proof"
    out = subprocess.run(
        [sys.executable, "-m", "infra.cli", "audit", "receipt", event_id],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    printed.write_text(out.stdout)
    witness_args = [a for w in witnesses for a in ("--witness", w.key.vkey)]
    assert main(["audit", "check-receipt", str(printed), "--log-key", vkey.vkey, *witness_args, "--quorum", "2"]) == 0
    # Go's reference code accepts the same receipt.
    tlogcheck = build_tlogcheck(tmp_path)
    row = Receipt.parse(out.stdout).event
    go_witnesses = [a for w in witnesses for a in ("-witness", w.key.vkey)]
    go = subprocess.run(
        [str(tlogcheck), "proof", "-log", vkey.vkey, *go_witnesses, "-quorum", "2", "-leaf", row["integrity_hash"]],
        input=out.stdout,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert go.returncode == 0 and go.stdout.startswith(f"ok {LOG_NAME}/{chain}"), go.stdout
    # The event altered in the receipt: refused.
    altered = Receipt(
        receipt.index, receipt.path, receipt.checkpoint, orjson.dumps({**row, "action": AuditAction.TX_SIGNED})
    ).text
    printed.write_text(altered)
    assert main(["audit", "check-receipt", str(printed), "--log-key", vkey.vkey, *witness_args, "--quorum", "2"]) == 1


def _witnesses_refuse_a_fork_and_a_replay(
    broker: str,
    receipt: Receipt,
    leaves: list[bytes],
    ledger_key: Ed25519PrivateKey,
    witnesses: list[WitnessProcess],
) -> None:
    """The operator makes the ledger's key sign a history that does not extend the one the
    witnesses saw (the chain's last leaf swapped, then grown from there), and replays the first
    checkpoint cosigned: no witness cosigns any of them."""
    cosigned = NoteCheckpoint.parse(receipt.checkpoint.text)
    size = len(leaves)
    forged_leaves = leaves[: size - 1] + [leaf_hash(b"forged" * 6)]
    assert cosigned.size == size  # the receipt's checkpoint is the chain's newest

    def signed_note(leaves_: list[bytes]) -> Note:
        text = NoteCheckpoint(cosigned.origin, len(leaves_), tree_hash(leaves_)).text
        return Note(text, (sign(text, LOG_NAME, ledger_key),))

    grown = forged_leaves + [leaf_hash(bytes([i]) * 32) for i in range(3)]
    for w in witnesses:
        status, said = w.post(request_body(size, [], signed_note(forged_leaves)))
        assert status == 409 and "fork" in said, (status, said)
        # Grown from the forged history: no proof from what the witness holds can verify.
        status, said = w.post(request_body(size, consistency_path(grown, size), signed_note(grown)))
        assert status == 422 and "extends" in said, (status, said)
    # A replay of the first checkpoint it cosigned: refused, naming the size it holds.
    first = asyncio.run(_published_notes(broker))[0]
    first_cp = NoteCheckpoint.parse(first.text)
    status, said = witnesses[1].post(request_body(0, [], Note(first.text, first.signatures[:1])))
    assert status == 409 and int(said) >= first_cp.size, (status, said)


def _verify_names_a_forged_note_signature(
    settings: Settings, chain: int, vkey: NoteKey, capsys: pytest.CaptureFixture[str]
) -> None:
    """The note signature of a stored checkpoint replaced by one the log's key did not sign (an
    operator editing what receipts carry): `warden audit verify` names the checkpoint."""
    assert main(["audit", "verify", "--json"]) == 0
    store = ChdbStore(store_path(settings))
    try:
        seq = store.arrow(f"SELECT max(seq) AS s FROM {AUDIT_CHECKPOINTS} WHERE chain = {chain}").column("s")[0]
        bogus = Signature(LOG_NAME, vkey.key_id, bytes(64))
        store.execute(
            f"ALTER TABLE {AUDIT_CHECKPOINTS} UPDATE signature = {sql_string(bogus.line)} "
            f"WHERE chain = {chain} AND seq = {seq.as_py()} SETTINGS mutations_sync = 2"
        )
    finally:
        store.close()
    capsys.readouterr()
    assert main(["audit", "verify", "--json"]) == 1
    problems = orjson.loads(capsys.readouterr().out)["problems"]
    assert [(p["chain"], p["kind"]) for p in problems] == [(chain, "forged_checkpoint")], problems
    assert "note signature" in problems[0]["reason"], problems


async def _published_notes(broker: str) -> list[Note]:
    bodies = await published_checkpoints(broker)
    return [Note.parse(body["note"]) for body in bodies]
