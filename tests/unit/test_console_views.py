"""The analysts' and auditors' pages, read from a real chDB ledger built in-process (no broker, no
sink): each intent's status (parked, refused with its stage and code, mined and final), refusals per
code per day, spend per day against the policy's daily limits, the ledger's verification state
with the witnesses' cosignatures, and receipts checked as `warden audit check-receipt` checks them
(a tampered one fails the inclusion check; an unknown log key, the log's). And the SVG charts: a
bar per day to scale, the limit across, classes instead of style, every text escaped."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NoReturn

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.console import analyst, auditor
from gateway.console.charts import PLOT_HEIGHT, Series, bar_chart, bar_height
from gateway.console.data import LedgerSource, status_of
from ledger.cosigning import log_key, store_signatures
from ledger.keys import SigningKeyError
from ledger.note import COSIGNATURE_V1, NoteKey, cosign
from ledger.proof import build_receipt
from ledger.receipt import Policy
from ledger.schema import AUDIT_LOG
from ledger.store import ChdbStore, StoreError, sql_string
from ledger.verify import load_checkpoints
from rules.movements import NATIVE
from rules.prices import USD
from rules.solana import SOL
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, event_id
from schemas.codes import Code
from schemas.errors import WardenError
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from tests.ledger_support import LOG_NAME, T0, build_ledger

TODAY = T0.date()
KEY = Ed25519PrivateKey.generate()
LOG = log_key(LOG_NAME, KEY)
WITNESS_KEY = Ed25519PrivateKey.generate()
WITNESS = NoteKey.of("witness.test/w1", COSIGNATURE_V1, WITNESS_KEY)
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
TOKEN = "0x" + "ab" * 20
MINED_WEI = 10**16
FEE_WEI = 21_000 * 10**9


class Events:
    """Audit events in the services' own vocabulary, one intent at a time."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def add(self, agent: str, intent: str, action: AuditAction, days_ago: int, **details: Any) -> AuditEvent:
        event = AuditEvent(
            event_id=event_id(intent, action, str(len(self.events))),
            actor="service:signer" if action.startswith("tx.") else "service:streams",
            action=action,
            resource=f"intent:{intent}",
            ts=T0 - timedelta(days=days_ago) + timedelta(seconds=len(self.events)),
            intent_id=intent,
            agent_id=agent,
            details={"intent_digest": f"{intent}-digest".encode().hex(), **details},
        )
        self.events.append(event)
        return event

    def submitted(self, agent: str, intent: str, days_ago: int, value_wei: int) -> None:
        self.add(
            agent,
            intent,
            AuditAction.INTENT_SUBMITTED,
            days_ago,
            chain="anvil",
            kind="transaction",
            to=DEST,
            value_wei=str(value_wei),
        )

    def signed(self, agent: str, intent: str, days_ago: int, value_wei: int, assets: dict[str, int]) -> None:
        self.add(agent, intent, AuditAction.INTENT_APPROVED, days_ago)
        self.add(
            agent,
            intent,
            AuditAction.TX_SIGNED,
            days_ago,
            chain="anvil",
            tx_hash="0x" + intent.encode().hex().rjust(64, "0"),
            value_wei=str(value_wei),
            max_spend_wei=str(value_wei + FEE_WEI),
            status="signed",
            asset_spend={key: str(units) for key, units in assets.items()},
        )


def _scenario() -> tuple[list[AuditEvent], AuditEvent]:
    """Agent 1: a transaction mined and final two days ago (with a token and its USD price), one
    refused at the allowlist yesterday, one parked today, one the signer refused today. Agent 2:
    one signed today. Returns the events and the mined one's tx.final event."""
    e = Events()
    e.submitted("agent-1", "i-mined", 2, MINED_WEI)
    e.signed("agent-1", "i-mined", 2, MINED_WEI, {_token_key(): 5 * 10**6, USD: 42_000_000})
    e.add("agent-1", "i-mined", AuditAction.TX_BROADCAST, 2, status="broadcast", final=False)
    e.add("agent-1", "i-mined", AuditAction.TX_MINED, 2, status="mined", final=False, block_number=7)
    final = e.add("agent-1", "i-mined", AuditAction.TX_FINAL, 2, status="mined", final=True, block_number=7)
    e.submitted("agent-1", "i-refused", 1, 2 * 10**16)
    e.add(
        "agent-1",
        "i-refused",
        AuditAction.INTENT_REJECTED,
        1,
        stage=Stage.ALLOWLIST,
        code=Code.RECIPIENT_NOT_ALLOWLISTED,
        reason="<b>0xdead</b> is not on the allowlist",
    )
    e.submitted("agent-1", "i-parked", 0, 3 * 10**17)
    e.add("agent-1", "i-parked", AuditAction.INTENT_PARKED, 0, reason="over the approval threshold")
    e.submitted("agent-1", "i-signer", 0, 10**15)
    e.add("agent-1", "i-signer", AuditAction.INTENT_APPROVED, 0)
    e.add("agent-1", "i-signer", AuditAction.TX_SIGN_FAILED, 0, code=Code.SIGNING_KEY_UNAVAILABLE, reason="no key")
    e.add(
        "agent-1", "i-solana", AuditAction.SOLANA_SIGNED, 0, chain="solana-local", status="signed", spend={SOL: "15000"}
    )
    e.submitted("agent-2", "i-other", 0, 10**16)
    e.signed("agent-2", "i-other", 0, 10**16, {})
    e.submitted("agent-2", "i-waiting", 0, 10**16)
    e.submitted("agent-1", "i-mined", 0, MINED_WEI)  # a copy sent again today: the intent stays mined
    return e.events, final


def _policy(agent: str) -> AgentPolicy:
    return AgentPolicy.model_validate(
        {
            "agent_id": agent,
            "version": 3,
            "agent_public_key": "0x" + "11" * 32,
            "issued_at": T0.isoformat(),
            "tx_daily_limit_eth": "0.05",
            "usd_daily_limit": "40",
            "asset_limits": [{"chain": "anvil", "token": TOKEN, "symbol": "TKN", "decimals": 6, "daily_limit": "10"}],
            "solana": {"address": "11111111111111111111111111111111", "daily_limit_lamports": 10**9},
        }
    )


def _token_key() -> str:
    """The token's name in spend records (its address EIP-55 checksummed), as the services write it."""
    return _policy("agent-1").asset_limits[0].key


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChdbStore, AuditEvent]]:
    """The scenario's ledger, a checkpoint every 3 rows of a chain, each cosigned by the witness;
    the mined intent's final event and its receipt."""
    store = ChdbStore(tmp_path_factory.mktemp("ledger") / "clickhouse")
    store.ensure_schema()
    events, final = _scenario()
    build_ledger(store, events, KEY, checkpoint_every=3)
    for cp, _ in load_checkpoints(store):
        store_signatures(
            store, cp, [(WITNESS, cosign(cp.text(LOG_NAME), WITNESS.name, WITNESS_KEY, 1_764_000_000))], cp.ts
        )
    yield store, final
    store.close()


async def _policies(agents: Sequence[str]) -> dict[str, AgentPolicy | None]:
    """The policies in force: agent-1's, and none found for any other."""
    return {agent: _policy(agent) if agent == "agent-1" else None for agent in agents}


def _source(
    store: ChdbStore,
    witnesses: tuple[NoteKey, ...] = (WITNESS,),
    quorum: int = 1,
    log: NoteKey = LOG,
) -> LedgerSource:
    return LedgerSource(lambda: contextlib.nullcontext(store), _policies, Policy(log, tuple(witnesses), quorum))


def test_each_intent_shows_where_it_stands(ledger: tuple[ChdbStore, AuditEvent], run: Callable[..., Any]) -> None:
    store, _ = ledger
    found = {t.intent_id: t for t in run(_source(store).transactions())}
    assert {i: (t.status, t.final) for i, t in found.items()} == {
        "i-mined": ("mined", True),
        "i-refused": ("refused", False),
        "i-parked": ("parked", False),
        "i-signer": ("refused", False),
        "i-other": ("signed", False),
        "i-solana": ("signed", False),
        "i-waiting": ("submitted", False),
    }
    assert (found["i-refused"].stage, found["i-refused"].code) == (Stage.ALLOWLIST, Code.RECIPIENT_NOT_ALLOWLISTED)
    assert (found["i-signer"].stage, found["i-signer"].code) == (Stage.SIGNING, Code.SIGNING_KEY_UNAVAILABLE)
    mined = found["i-mined"]
    assert (mined.value_wei, mined.block_number, mined.chain, mined.to) == (MINED_WEI, 7, "anvil", DEST)
    assert [t.intent_id for t in run(_source(store).transactions("agent-2"))] == ["i-waiting", "i-other"]
    assert run(_source(store).agents()) == ["agent-1", "agent-2"]

    html = analyst.transactions_table(list(found.values()))
    assert "&lt;b&gt;0xdead&lt;/b&gt;" in html and "<b>" not in html  # every value escaped
    assert f"{MINED_WEI} wei (0.01 ETH)" in html and "mined, final" in html and "signed_tx" not in html
    assert status_of(AuditAction.TX_REPLACED, "replaced") == "replaced"


def test_refusals_are_counted_per_code_per_day(ledger: tuple[ChdbStore, AuditEvent], run: Callable[..., Any]) -> None:
    store, _ = ledger
    found = run(_source(store).refusals(TODAY, days=3))
    assert found.days == (TODAY - timedelta(days=2), TODAY - timedelta(days=1), TODAY)
    assert found.counts == {
        (Code.RECIPIENT_NOT_ALLOWLISTED, Stage.ALLOWLIST): (0, 1, 0),
        (Code.SIGNING_KEY_UNAVAILABLE, Stage.SIGNING): (0, 0, 1),
    }
    html = analyst.refusals_body(found)
    assert html.count('<rect class="bar') == 2 and Code.RECIPIENT_NOT_ALLOWLISTED in html
    # A window with none says so.
    assert "No refusal" in analyst.refusals_body(run(_source(store).refusals(TODAY - timedelta(days=5), days=2)))


def test_spend_per_day_against_the_daily_limits_in_force(
    ledger: tuple[ChdbStore, AuditEvent], run: Callable[..., Any]
) -> None:
    store, _ = ledger
    (agent,) = run(_source(store).spend("agent-1", TODAY, days=3))
    assert agent.policy_version == 3 and agent.days[-1] == TODAY
    by_key = {s.asset.key: s for s in agent.assets}
    assert by_key[NATIVE].per_day == (MINED_WEI + FEE_WEI, 0, 0)
    assert by_key[NATIVE].asset.daily_limit == 5 * 10**16
    assert by_key[USD].per_day == (42_000_000, 0, 0) and by_key[USD].asset.daily_limit == 40_000_000
    token = by_key[_token_key()]
    assert token.per_day == (5 * 10**6, 0, 0) and token.asset.daily_limit == 10 * 10**6
    assert token.asset.amount(5 * 10**6) == "5000000 base units of TKN (5 TKN)"
    assert by_key[SOL].per_day == (0, 0, 15_000) and by_key[SOL].asset.daily_limit == 10**9
    assert by_key[SOL].asset.amount(15_000) == "15000 lamports (0.000015 SOL)"
    html = analyst.spend_section(agent)
    assert "42000000 millionths of a dollar ($42)" in html and "over the limit" in html  # $42 against $40
    assert html.count('<rect class="bar') == 4 and html.count('<line class="limit"') == 4
    # Every agent, one with no policy found: what it spent, no limit.
    other = {a.agent_id: a for a in run(_source(store).spend(today=TODAY, days=3))}["agent-2"]
    assert other.policy_version is None
    assert [(s.asset.key, s.per_day, s.asset.daily_limit) for s in other.assets] == [
        (NATIVE, (0, 0, 10**16 + FEE_WEI), None)
    ]


def test_the_ledger_verifies_with_its_cosigned_checkpoints(
    ledger: tuple[ChdbStore, AuditEvent], run: Callable[..., Any]
) -> None:
    store, _ = ledger
    state = run(_source(store).ledger())
    assert state.report.ok and state.report.rows == len(_scenario()[0])
    assert state.checkpoints and all(
        [(c.signer, c.pinned, c.problem) for c in row.cosignatures] == [(WITNESS.name, True, None)]
        for row in state.checkpoints
    )
    html = auditor.ledger_body(state, _source(store))
    assert 'data-ok="true"' in html and f"{WITNESS.name}: verifies" in html
    # A witness not pinned here: its lines are listed, not checked.
    unpinned = run(_source(store, witnesses=(), quorum=0).ledger())
    assert {(c.signer, c.pinned) for row in unpinned.checkpoints for c in row.cosignatures} == {(WITNESS.vkey, False)}
    assert unpinned.report.unchecked_cosignatures > 0


def test_a_tampered_row_fails_verification(ledger: tuple[ChdbStore, AuditEvent], run: Callable[..., Any]) -> None:
    store, _ = ledger
    actor = store.arrow(f"SELECT actor FROM {AUDIT_LOG} WHERE chain = 1 AND seq = 1").to_pylist()[0]["actor"]

    def set_actor(to: str) -> None:
        store.execute(
            f"ALTER TABLE {AUDIT_LOG} UPDATE actor = {sql_string(to)} WHERE chain = 1 AND seq = 1 "
            "SETTINGS mutations_sync = 1"
        )

    set_actor("service:forger")
    try:
        state = run(_source(store).ledger())
    finally:
        set_actor(actor)
    assert not state.report.ok and [(p.chain, p.seq, p.kind) for p in state.report.problems] == [(1, 1, "modified")]
    assert 'data-ok="false"' in auditor.ledger_body(state, _source(store))
    assert run(_source(store).ledger()).report.ok


def _receipt_text(store: ChdbStore, event: AuditEvent) -> str:
    return build_receipt(store, event.event_id, LOG_NAME).text


def _tampered(text: str) -> str:
    """The receipt with its audit row's action changed: the row no longer hashes to the leaf."""
    lines = text.split("\n")
    row = orjson.loads(base64.b64decode(lines[1].removeprefix("extra ")))
    row["action"] = AuditAction.TX_FAILED
    lines[1] = "extra " + base64.b64encode(orjson.dumps(row)).decode()
    return "\n".join(lines)


def test_a_receipt_holds_and_a_tampered_one_fails_its_inclusion_check(ledger: tuple[ChdbStore, AuditEvent]) -> None:
    store, final = ledger
    text = _receipt_text(store, final)
    # As a browser's form sends it, CRLF-terminated, and pasted without its last newline.
    checked = _source(store).check_receipt(text.replace("\n", "\r\n").rstrip())
    assert checked.event is not None and checked.about is not None, checked
    assert checked.ok and checked.event["event_id"] == final.event_id and checked.about[0] == "i-mined"
    assert [f.problem for f in checked.findings] == [None] * 5
    html = auditor.receipt_body(checked)
    assert 'data-ok="true"' in html and 'data-ok="false"' not in html

    # Named as the intent it must be about: it is; and it is not agent-2's.
    digest = "i-mined-digest".encode().hex()
    about = _source(store).check_receipt(text, ("i-mined", "agent-1", digest))
    assert about.ok and len(about.findings) == 6
    other = _source(store).check_receipt(text, ("i-mined", "agent-2", digest))
    assert not other.ok and [f.problem is None for f in other.findings] == [True] * 5 + [False]

    tampered = _source(store).check_receipt(_tampered(text))
    assert not tampered.ok
    failing = [f.check for f in tampered.findings if f.problem is not None]
    assert failing == [f"the inclusion proof leads from the audit row to the root of {_size(text)} leaves"]
    assert "FAILS" in auditor.receipt_body(tampered)


def test_a_receipt_under_another_log_key_or_short_of_the_quorum_fails(ledger: tuple[ChdbStore, AuditEvent]) -> None:
    store, final = ledger
    text = _receipt_text(store, final)
    stranger = log_key(LOG_NAME, Ed25519PrivateKey.generate())
    checked = _source(store, log=stranger).check_receipt(text)
    assert [f.problem is None for f in checked.findings] == [False, True, True, True, True]
    # Quorum 2 of the one pinned witness cannot be met: Policy refuses it; two pinned, one cosigned.
    other = NoteKey.of("witness.test/w2", COSIGNATURE_V1, Ed25519PrivateKey.generate())
    short = _source(store, witnesses=(WITNESS, other), quorum=2).check_receipt(text)
    assert [f.problem is None for f in short.findings] == [True, False, True, True, True]
    assert _source(store).check_receipt("not a receipt").unreadable


def _size(text: str) -> int:
    return int(text.split("\n\n", 1)[1].split("\n")[1])


def test_a_bar_per_day_to_scale_with_the_limit_across_and_no_style() -> None:
    days = [date(2026, 11, d) for d in (1, 2, 3, 4)]
    svg = bar_chart("spend <x>", days, [Series("native <y>", [0, 50, 100, 200])], lambda n: f"{n} wei", limit=100)
    bars = re.findall(r'<rect class="bar ([^"]*)" x="\d+" y="(\d+)" width="\d+" height="(\d+)">', svg)
    assert [int(h) for _, _, h in bars] == [PLOT_HEIGHT // 4, PLOT_HEIGHT // 2, PLOT_HEIGHT]
    assert [cls.endswith("over") for cls, _, _ in bars] == [False, False, True]
    limit = re.search(r'<line class="limit" x1="0" y1="(\d+)"', svg)
    assert limit is not None, svg
    limit_y = int(limit.group(1))
    assert limit_y == int(bars[1][1])  # the limit's line at the top of the bar that reaches it
    assert "style=" not in svg and "<x>" not in svg and "&lt;y&gt;" in svg
    assert bar_height(1, 10**30) == 0 and bar_height(5, 0) == 0
    stacked = bar_chart("t", days[:1], [Series("a", [1]), Series("b", [3])], str)
    assert [int(h) for h in re.findall(r'height="(\d+)"><title>', stacked)] == [PLOT_HEIGHT // 4, PLOT_HEIGHT * 3 // 4]
    with pytest.raises(ValueError, match="one value per day"):
        bar_chart("t", days, [Series("a", [1])], str)


def test_a_ledger_that_cannot_be_read_is_said_so_and_the_ledger_key_is_read_when_needed(
    run: Callable[..., Any], tmp_path: Path
) -> None:
    def no_store() -> NoReturn:
        raise StoreError("no ledger at /nowhere and no ledger endpoint; start the pipeline (warden up)")

    def app_of(source: LedgerSource) -> web.Application:
        app = web.Application()
        analyst.add_routes(app, source)
        auditor.add_routes(app, source)
        return app

    down = app_of(LedgerSource(no_store, _policies, Policy(LOG)))
    response = run(analyst.transactions_page(make_mocked_request("GET", "/transactions", app=down)))
    assert response.status == 503 and "no ledger at /nowhere" in response.text
    # Before the sink first ran, this host has no ledger key: the console starts, and says so when asked.
    keyless = LedgerSource.from_settings(dataclasses.replace(Settings(), home=tmp_path))
    with pytest.raises(SigningKeyError, match="no ledger key"):
        keyless.policy  # noqa: B018 - reading it is the test
    response = run(auditor.ledger_page(make_mocked_request("GET", "/ledger", app=app_of(keyless))))
    assert response.status == 503 and "no ledger key" in response.text
    # Both sets of pages read one source.
    with pytest.raises(WardenError, match="one LedgerSource"):
        auditor.add_routes(down, keyless)
