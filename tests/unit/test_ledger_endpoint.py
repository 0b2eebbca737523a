"""The sink's ClickHouse-compatible endpoint, driven by clickhouse-connect, and
the ``warden audit`` commands through it (and straight on chDB)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import orjson
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.cli import main
from infra.stack.local import free_port
from ledger.cosigning import log_key
from ledger.endpoint import Endpoint
from ledger.keys import load_or_create_signing_key
from ledger.store import ChdbStore, store_path
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.stages import Stage
from tests.ledger_support import LOG_NAME, build_ledger, chain_of, intent_digest_of, pipeline_events

EVENTS = pipeline_events(400)
INTENTS = {e.intent_id for e in EVENTS}
REJECTED = {e.intent_id for e in EVENTS if e.action == AuditAction.INTENT_REJECTED}
SIGNED = [e for e in EVENTS if e.action == AuditAction.TX_SIGNED]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    home = tmp_path_factory.mktemp("home")
    key = load_or_create_signing_key(home)
    store = ChdbStore(store_path(Settings(home=home)))
    store.ensure_schema()
    build_ledger(store, EVENTS, key, checkpoint_every=40)
    address = f"127.0.0.1:{free_port()}"
    loop = asyncio.new_event_loop()
    endpoint = Endpoint(store, "127.0.0.1", int(address.rsplit(":", 1)[1]))
    loop.run_until_complete(endpoint.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield home, address
    asyncio.run_coroutine_threadsafe(endpoint.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    store.close()


@pytest.fixture
def client(served: tuple[Path, str]) -> Iterator[Client]:
    _, address = served
    client = clickhouse_connect.get_client(host="127.0.0.1", port=int(address.rsplit(":", 1)[1]))
    yield client
    client.close()


@pytest.fixture
def env(served: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    home, address = served
    monkeypatch.setenv("WARDEN_HOME", str(home))
    monkeypatch.setenv("WARDEN_LEDGER_HTTP", address)
    monkeypatch.delenv("WARDEN_CLICKHOUSE_URL", raising=False)
    return home


def test_clickhouse_connect_reads_rows_arrow_and_dataframes(client: Client) -> None:
    assert client.command("SELECT count() FROM audit_log") == 400
    result = client.query("SELECT chain, seq, event_id, ts FROM audit_log WHERE chain = 1 ORDER BY seq LIMIT 3")
    assert [r[1] for r in result.result_rows] == [0, 1, 2]
    table = client.query_arrow("SELECT action, count() AS n FROM audit_log GROUP BY action ORDER BY action")
    counts = dict(zip(table.column("action").to_pylist(), table.column("n").to_pylist(), strict=False))
    assert counts[AuditAction.INTENT_SUBMITTED] == len(INTENTS) and counts[AuditAction.TX_SIGNED] == len(SIGNED)
    frame = client.query_df("SELECT * FROM rejections_by_stage")
    assert frame.to_dict("records")[0]["stage"] == Stage.VALUE_CAP


def test_analyst_views_answer_the_documented_questions(client: Client) -> None:
    rows = client.query("SELECT final_status, count() FROM intent_status GROUP BY final_status").result_rows
    statuses = {row[0]: row[1] for row in rows}  # final status: how many
    # Where each intent is: a signer's status as it said it (these are signed, sign-only), else the
    # worker's decision.
    last = {
        e.intent_id: e.details["status"] if e.action == AuditAction.TX_SIGNED else e.action.split(".", 1)[1]
        for e in EVENTS
        if e.action
        in (
            AuditAction.INTENT_SUBMITTED,
            AuditAction.INTENT_APPROVED,
            AuditAction.INTENT_REJECTED,
            AuditAction.TX_SIGNED,
        )
    }
    expected: dict[str, int] = {}
    for status in last.values():
        expected[status] = expected.get(status, 0) + 1
    assert statuses == expected and expected["rejected"] == len(REJECTED)
    stages = client.query(
        "SELECT stages_passed, failed_stage FROM intent_status WHERE intent_id = 'intent-4'"
    ).result_rows
    assert stages == [([Stage.CHAIN], Stage.VALUE_CAP)]
    spend = client.query(
        "SELECT max(spend_24h) FROM agent_spend_rolling_24h WHERE agent_id = 'agent-0' AND asset = 'native'"
    ).result_rows[0][0]
    assert spend == 10**16 * sum(1 for e in SIGNED if e.agent_id == "agent-0")
    by_status = client.query("SELECT chain, status, txs FROM signed_by_chain_status").result_rows
    assert by_status == [("base", "sign_only", len(SIGNED))]


def test_writes_file_reads_and_multi_statements_are_refused(client: Client) -> None:
    with pytest.raises(DatabaseError, match="read-only"):
        client.command("INSERT INTO audit_log (chain, seq) VALUES (0, 999)")
    with pytest.raises(DatabaseError, match="read-only"):
        client.command("DROP TABLE audit_log")
    with pytest.raises(DatabaseError, match="does not serve file"):
        client.query("SELECT file('ledger/checkpoint_ed25519.pem')")
    with pytest.raises(DatabaseError, match="Multi-statements"):
        client.query("SELECT 1; SELECT 2")
    assert client.command("SELECT count() FROM audit_log") == 400


def test_cli_verify_query_export_and_proofs_through_the_endpoint(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["audit", "verify", "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["ok"] and report["rows_checked"] == 400

    assert main(["audit", "query", "SELECT count() FROM intent_status", "--format", "TSV"]) == 0
    assert capsys.readouterr().out == f"{len(INTENTS)}\n"
    assert main(["audit", "query", "ALTER TABLE audit_log DELETE WHERE 1"]) == 2
    assert "read-only" in capsys.readouterr().err

    assert main(["audit", "export", "--format", "json", "--chain", "0"]) == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (
        len(rows) == sum(1 for e in EVENTS if chain_of(e, 2) == 0)
        and rows[0]["ts"].endswith("Z")
        and {"prev_hash", "integrity_hash"} <= set(rows[0])
    )
    assert main(["audit", "export", "--format", "csv", "--since", "2026-11-21T10:01:00Z"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('"chain","seq","event_id"') and 1 < len(lines) < 400

    assert main(["audit", "prove", EVENTS[10].event_id]) == 0
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(capsys.readouterr().out)
    assert main(["audit", "check-proof", str(proof_file)]) == 0
    assert capsys.readouterr().out.startswith("OK")
    assert main(["audit", "pubkey"]) == 0
    other = log_key(LOG_NAME, Ed25519PrivateKey.generate()).vkey
    capsys.readouterr()
    assert main(["audit", "check-proof", str(proof_file), "--log-key", other, "--json"]) == 1
    assert orjson.loads(capsys.readouterr().out)["ok"] is False


def test_cli_opens_chdb_directly_when_no_sink_serves(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARDEN_LEDGER_HTTP", f"127.0.0.1:{free_port()}")
    assert main(["audit", "query", "SELECT count() FROM audit_log", "--format", "TSV"]) == 0
    assert capsys.readouterr().out == "400\n"
    assert main(["audit", "query", "INSERT INTO audit_log (chain) VALUES (9)"]) == 2
    assert "read-only" in capsys.readouterr().err
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("OK: 2 chain(s), 400 rows")


def test_server_side_query_parameters_are_bound(client: Client) -> None:
    total = client.query("SELECT count() FROM audit_log").result_rows[0][0]
    some = client.query("SELECT event_id FROM audit_log ORDER BY chain, seq LIMIT 1").result_rows[0][0]
    rows = client.query("SELECT count() FROM audit_log WHERE event_id = {e:String}", parameters={"e": some})
    assert rows.result_rows[0][0] == 1 < total
    hostile = client.query(
        "SELECT count() FROM audit_log WHERE event_id = {e:String}", parameters={"e": "x' OR '1'='1"}
    )
    assert hostile.result_rows[0][0] == 0


def test_the_endpoint_serves_receipts_and_each_chains_newest_note(served: tuple[Path, str]) -> None:
    """`GET /receipt?intent_id=` (its newest outcome), `?event_id=`, and `GET /checkpoint?chain=`:
    what `warden txs show --proof`, the SDK and witnesses or monitors fetch. The receipt checks
    with the ledger's key alone; a wrong request says what to ask."""
    import urllib.error
    import urllib.request

    from ledger.keys import local_public_key
    from ledger.note import ED25519, Note, NoteCheckpoint, NoteKey, verified_by
    from ledger.receipt import Policy, Receipt, check
    from tests.ledger_support import LOG_NAME

    home, address = served

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{address}{path}", timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    key = NoteKey(LOG_NAME, ED25519, local_public_key(home))
    signed = SIGNED[3]
    assert signed.intent_id is not None
    digest = intent_digest_of(signed.intent_id)
    status, text = get(f"/receipt?intent_id={signed.intent_id}&agent_id={signed.agent_id}&intent_digest={digest}")
    assert status == 200, text
    receipt = Receipt.parse(text)
    assert receipt.event["intent_id"] == signed.intent_id and receipt.event["action"] == AuditAction.TX_SIGNED
    check(receipt, Policy(key))
    status, text = get(f"/receipt?event_id={signed.event_id}")
    assert status == 200 and Receipt.parse(text).event["event_id"] == signed.event_id
    status, text = get("/checkpoint?chain=1")
    note = Note.parse(text)
    assert status == 200 and list(verified_by(note, [key])) == [key]
    assert NoteCheckpoint.parse(note.text).origin == f"{LOG_NAME}/1"
    assert get(f"/receipt?intent_id=i-nowhere&agent_id={signed.agent_id}&intent_digest={digest}")[0] == 404
    # Never by the id alone: another agent, or another digest (a forged copy's), has no outcome here.
    assert get(f"/receipt?intent_id={signed.intent_id}&agent_id=agent-x&intent_digest={digest}")[0] == 404
    assert get(f"/receipt?intent_id={signed.intent_id}&agent_id={signed.agent_id}&intent_digest={'0' * 64}")[0] == 404
    assert get(f"/receipt?intent_id={signed.intent_id}")[0] == 400
    assert get("/receipt")[0] == 400 and get("/checkpoint?chain=x")[0] == 400
