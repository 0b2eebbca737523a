"""The signer's own durable record, in SQLite inside the signer's VM.

It is what makes signing exactly-once on an at-least-once bus: the outcome of
each intent (a redelivered intent gets the same signed bytes, or the same
refusal, back: never a second nonce, never a signature after a refusal), the
nonce tracked per (agent, chain, address) and every nonce it signed at (only
those may be named again, to replace), the signer's own rolling spend record
(value + worst-case fee at signing, settled to what the chain took once a
receipt arrives; it does not trust the worker's) and its per-asset record (token units moved or
approved, kept when the transaction executes, settled to nothing when it does not), the newest policy version it
signed under per agent (an older signed policy cannot be replayed), and the
idempotency cache, and each transaction's lifecycle (`signer.lifecycle`): every
transaction signed for an intent (the first and each fee bump, any of which may be
the one mined) and what a replacement needs (the intent and the key version that
signed it). A record is written before the signed transaction is published or
sent, so a crash in between re-publishes and re-sends the same bytes.

The record is owned by the partition of ``warden.intents.approved`` its agents' records land in,
and moves with it (`PartitionedState`): one SQLite file per partition, a cache of that partition's
changelog (`signer.changelog`). Every write is one of the named statements in `WRITES`, and the
writes of a batch are what the signer appends to the changelog before it commits them here and
publishes anything; a new owner replays them in order and holds the same rows.

`SignerState` is the file: its tables, the open batch transaction, each intent's savepoint and the
changelog position. What the signer reads and writes for one agent is `SignerState.agent`
(`signer.agent_state.AgentState`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from rules.window import SpendWindow
from runtime.kafka import partition_of
from schemas import topics
from schemas.emit import Emit
from signer.agent_state import AgentState
from signer.open_sign_only import OpenSignOnly, SignOnlyRow, where_of

_SCHEMA = """
CREATE TABLE IF NOT EXISTS signed (
    intent_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, record BLOB NOT NULL, at_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nonces (
    agent_id TEXT NOT NULL, chain TEXT NOT NULL, address TEXT NOT NULL, last_nonce INTEGER NOT NULL,
    PRIMARY KEY (agent_id, chain, address));
CREATE TABLE IF NOT EXISTS spend (
    intent_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, at_us INTEGER NOT NULL, spend_wei TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS spend_by_agent ON spend (agent_id, at_us);
CREATE TABLE IF NOT EXISTS policy_versions (agent_id TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (slot TEXT PRIMARY KEY, intent_id TEXT NOT NULL, at_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency_requests (intent_id TEXT PRIMARY KEY, request BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS signed_nonces (
    agent_id TEXT NOT NULL, chain TEXT NOT NULL, address TEXT NOT NULL, nonce INTEGER NOT NULL,
    intent_id TEXT NOT NULL, PRIMARY KEY (agent_id, chain, address, nonce, intent_id));
CREATE TABLE IF NOT EXISTS refused (
    intent_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, record BLOB NOT NULL, at_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tx_attempts (
    intent_id TEXT NOT NULL, tx_hash TEXT NOT NULL, record BLOB NOT NULL, at_us INTEGER NOT NULL,
    PRIMARY KEY (intent_id, tx_hash));
CREATE TABLE IF NOT EXISTS idempotent_copies (intent_id TEXT PRIMARY KEY, original_intent_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    intent_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, record BLOB NOT NULL, at_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS solana (
    intent_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, record BLOB NOT NULL, at_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS solana_messages (
    intent_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, record BLOB NOT NULL, at_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bitcoin (
    intent_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, record BLOB NOT NULL, at_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS asset_spend (
    intent_id TEXT NOT NULL, agent_id TEXT NOT NULL, asset TEXT NOT NULL, at_us INTEGER NOT NULL,
    units TEXT NOT NULL, PRIMARY KEY (intent_id, asset));
CREATE INDEX IF NOT EXISTS asset_spend_by_agent ON asset_spend (agent_id, asset, at_us);
CREATE TABLE IF NOT EXISTS tx_context (
    intent_id TEXT PRIMARY KEY, intent BLOB NOT NULL, key_path TEXT NOT NULL, key_version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sign_only (
    intent_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, at_us INTEGER NOT NULL, cancel BLOB, cancel_by TEXT,
    open INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sign_only_open_by_agent ON sign_only (agent_id, open);
-- The open ones, not every one ever signed: what the watch's copy is read from (`open_sign_only`).
CREATE INDEX IF NOT EXISTS sign_only_open_by_at ON sign_only (at_us) WHERE open = 1;
CREATE TABLE IF NOT EXISTS changelog (
    one INTEGER PRIMARY KEY CHECK (one = 0), head INTEGER NOT NULL, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY, intent_id TEXT, topic TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL);
"""
# Every write the record makes, by name: the changelog carries (name, arguments), never SQL, so a
# record can only ever ask a replaying signer for one of these statements. The names are the log's
# vocabulary: add new ones, never rename or drop one (a log written before would stop every restore).
WRITES = {
    "signed": "INSERT OR IGNORE INTO signed VALUES (?, ?, ?, ?)",
    "nonce": "INSERT INTO nonces VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET last_nonce = "
    "max(last_nonce, excluded.last_nonce)",
    "signed_nonce": "INSERT OR IGNORE INTO signed_nonces VALUES (?, ?, ?, ?, ?)",
    "spend": "INSERT OR IGNORE INTO spend VALUES (?, ?, ?, ?)",
    "asset_spend": "INSERT OR IGNORE INTO asset_spend VALUES (?, ?, ?, ?, ?)",
    "policy_version": "INSERT INTO policy_versions VALUES (?, ?) ON CONFLICT DO UPDATE SET version = "
    "max(version, excluded.version)",
    "idempotency": "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?)",
    # What the intent that claimed a slot asked for (`TransactionIntent.request_fields`, JSON).
    "idempotency_request": "INSERT OR IGNORE INTO idempotency_requests VALUES (?, ?)",
    "tx_attempt": "INSERT OR IGNORE INTO tx_attempts VALUES (?, ?, ?, ?)",
    "tx_context": "INSERT OR IGNORE INTO tx_context VALUES (?, ?, ?, ?)",
    "idempotent_copy": "INSERT OR IGNORE INTO idempotent_copies VALUES (?, ?)",
    "message": "INSERT OR IGNORE INTO messages VALUES (?, ?, ?, ?)",
    "refused": "INSERT OR IGNORE INTO refused VALUES (?, ?, ?, ?)",
    "spend_raised": "UPDATE spend SET spend_wei = ? WHERE intent_id = ?",  # to a fee bump's worst case
    "record_replaced": "UPDATE signed SET record = ? WHERE intent_id = ?",
    "spend_settled": "UPDATE spend SET spend_wei = ? WHERE intent_id = ?",  # to what the chain took
    "assets_voided": "UPDATE asset_spend SET units = '0' WHERE intent_id = ?",
    "asset_raised": "UPDATE asset_spend SET units = ? WHERE intent_id = ? AND asset = ?",  # a fee bump's
    "nonce_released": "UPDATE nonces SET last_nonce = ? WHERE agent_id=? AND chain=? AND address=? AND last_nonce=?",
    # A tracker's records, durable before they are published and gone once they were (`SignerState.outbox`).
    "outbox": "INSERT OR IGNORE INTO outbox VALUES (?, ?, ?, ?, ?)",
    "outbox_done": "DELETE FROM outbox WHERE id = ?",
    # A signed Solana transaction (SignedSolanaTransaction), then its newest status.
    "solana": "INSERT OR IGNORE INTO solana VALUES (?, ?, ?, ?)",
    "solana_replaced": "UPDATE solana SET record = ? WHERE intent_id = ?",
    # A signed Solana off-chain message (SignedSolanaMessage).
    "solana_message": "INSERT OR IGNORE INTO solana_messages VALUES (?, ?, ?, ?)",
    # A signed Bitcoin transaction (SignedBitcoinTransaction), then its newest status.
    "bitcoin": "INSERT OR IGNORE INTO bitcoin VALUES (?, ?, ?, ?)",
    "bitcoin_replaced": "UPDATE bitcoin SET record = ? WHERE intent_id = ?",
    # A sign-only transaction, EVM or Bitcoin (open while its bytes can land: its spend is held in
    # the windows, `rules.window`), who asked to cancel it and why, its cancellation once one is
    # signed (the signed record), and its end (kept: the signer never sends its bytes, even after a
    # restart). A Bitcoin payment the signer sends is held too (open 2: its tracker, not the
    # sign-only watch, follows it) until it is mined or conflicted at a final block.
    "sign_only": "INSERT OR IGNORE INTO sign_only VALUES (?, ?, ?, NULL, NULL, 1)",
    "held_sent": "INSERT OR IGNORE INTO sign_only VALUES (?, ?, ?, NULL, NULL, 2)",
    "sign_only_cancel_asked": "UPDATE sign_only SET cancel_by = ? WHERE intent_id = ? AND cancel_by IS NULL",
    "sign_only_cancel": "UPDATE sign_only SET cancel = ? WHERE intent_id = ?",
    "sign_only_closed": "UPDATE sign_only SET open = 0 WHERE intent_id = ? AND agent_id = ?",
    # What a sign-only transaction's landing counts: what the chain took, at the moment it landed.
    "spend_landed": "UPDATE spend SET at_us = ?, spend_wei = ? WHERE intent_id = ?",
    "assets_landed": "UPDATE asset_spend SET at_us = ? WHERE intent_id = ?",
    # A Bitcoin payment cancelled: what its cancellation took (its fee) in place of what it held.
    "asset_settled": "UPDATE asset_spend SET units = ? WHERE intent_id = ? AND asset = ?",
}
Write = tuple[str, tuple[Any, ...]]
# The writes that change an agent's native spend: the copy of it kept in memory follows them.
_SPEND_WRITES = frozenset({"spend", "spend_raised", "spend_settled", "spend_landed"})
# The writes that change an agent's spend of an asset (or of USD): the copies follow them.
_ASSET_WRITES = frozenset({"asset_spend", "asset_raised", "asset_settled", "assets_voided", "assets_landed"})
# The writes that hold a sign-only transaction's spend, and that let it go: every copy follows them.
_HOLD_WRITES = frozenset({"sign_only", "held_sent", "sign_only_closed"})
# The writes that change an open sign-only row: the watch's copy (`SignerState.open_sign_only`)
# follows them, each write's intent id at this position of its arguments.
_SIGN_ONLY_WRITES = {"sign_only": 0, "sign_only_closed": 0, "sign_only_cancel_asked": 1, "sign_only_cancel": 1}
_FOLLOWED = _SPEND_WRITES | _ASSET_WRITES | _HOLD_WRITES | frozenset(_SIGN_ONLY_WRITES)
# Records are compact JSON (orjson), so a field appears exactly as "status":"<name>", "final":true.
# Not final: broadcast and not decided yet, or decided at a block that is not final (a record
# written before finality was recorded has no "final": it is looked at again too).
# A sign-only transaction and its cancellation are followed from the `sign_only` table instead.
_NOT_FINAL = """instr(record, '"final":true') = 0 AND instr(record, '"status":"sign_only"') = 0
    AND instr(record, '"status":"cancelled"') = 0"""


class AgentStates(Protocol):
    """What the signer's parts read and write the record through: one agent's rows (`agent`), and
    the partition an agent's records must arrive on (`partition_of`; None: any). The signer
    process's `PartitionedState` is one (a file per partition), and so is one `SignerState` file
    holding every agent (tests, tools)."""

    def agent(self, agent_id: str) -> AgentState: ...

    def partition_of(self, _agent_id: str) -> int | None: ...


def _outbox_id(emit: Emit) -> str:
    return hashlib.blake2b(emit.topic.encode() + b"\x00" + emit.value, digest_size=16).hexdigest()


class SignerState:
    """One partition's record (or, in a test, all of them): a SQLite file."""

    def __init__(self, path: Path, fsync: bool = True):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db_path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # A partition's file is a cache of its changelog, where every write is before it commits
        # here: a commit lost with the power is read again from the log (its position is lost with
        # it). Only a file that is the record itself waits for the disk at each commit.
        self.db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self.db.executescript(_SCHEMA)
        # Writes from other tasks (a receipt arriving) while one intent's scope is open wait until
        # it closes, so rolling that intent back cannot undo them.
        self._in_scope = False
        # Set when the open scope ends: a fee bump waits on it (`scope_closed`) instead of polling.
        # A new one per scope, so a waiter never sees the event of a scope that ended already.
        self._scope_ended = asyncio.Event()
        self._held = False
        self._deferred: list[Write] = []
        # The writes of the open transaction, in order: what the changelog gets before `commit`.
        self._writes: list[Write] = []
        # Each agent's spend rows of the last 24 h as SpendWindows, by asset (None: native; else an
        # asset's or the USD window's key), kept in step with the tables by every write
        # (`_follow_copies`), so a decision does not read the agent's whole day nor every open
        # sign-only row; and the moment each was read or pruned at (an earlier moment is asked of
        # the table). And each agent's open sign-only intents (`AgentState.held`), followed alike.
        self.spend_windows: dict[str, dict[str | None, tuple[SpendWindow, int]]] = {}
        self.held_intents: dict[str, set[str]] = {}
        # The open sign-only rows, for the watch (`open_sign_only`): read once, then followed alike.
        self._open_sign_only: OpenSignOnly | None = None
        self.written_bytes = 0  # roughly, their size: the signer appends before it grows too big

    def agent(self, agent_id: str) -> AgentState:
        """The agent's rows in this record, read and written without naming the agent again."""
        return AgentState(self, agent_id)

    def partition_of(self, _agent_id: str) -> int | None:
        """The partition an agent's records must arrive on: any, for a record of them all."""
        return None

    def write(self, name: str, args: tuple[Any, ...]) -> None:
        """One named statement (`WRITES`) in the open batch transaction, kept for the changelog."""
        self._begin()
        self.db.execute(WRITES[name], args)
        self._follow_copies(name, args)
        self._writes.append((name, args))
        self.written_bytes += sum(len(a) for a in args if isinstance(a, (bytes, str))) + 16

    @property
    def writes(self) -> list[Write]:
        """What the open transaction wrote, in order, not yet committed."""
        return list(self._writes)

    def replay(self, writes: list[Write]) -> None:
        """Another signer's writes, from the changelog, in the order it made them: the same
        statements on the same rows leave the same record. Not committed here."""
        self._begin()
        for name, args in writes:
            self.db.execute(WRITES[name], args)
            self._follow_copies(name, args)

    def changelog_position(self) -> tuple[int, int]:
        """(offset of the last changelog record applied here, -1 for none; the next offset to read)."""
        row = self.db.execute("SELECT head, next FROM changelog WHERE one = 0").fetchone()
        return (-1, 0) if row is None else (row[0], row[1])

    def set_changelog_position(self, head: int, next_offset: int) -> None:
        """Written in the open transaction, so the rows and how far they go commit together."""
        self._begin()
        self.db.execute("INSERT OR REPLACE INTO changelog VALUES (0, ?, ?)", (head, next_offset))

    def unconfirmed(self) -> list[bytes]:
        """Signed records for the chain that are not final yet (signed, broadcast or stuck; or mined,
        failed, replaced or dropped at a block not final yet): the signer stopped while following
        them. After a restart each is compared with the chain, and followed until final."""
        rows = self.db.execute(f"SELECT record FROM signed WHERE {_NOT_FINAL} ORDER BY at_us")
        return [row[0] for row in rows]

    def solana_open(self) -> list[bytes]:
        """Broadcast Solana transactions not final yet: followed again after a restart."""
        rows = self.db.execute(f"SELECT record FROM solana WHERE {_NOT_FINAL} ORDER BY at_us")
        return [row[0] for row in rows]

    def bitcoin_open(self) -> list[bytes]:
        """Broadcast Bitcoin transactions not final yet: followed again after a restart."""
        rows = self.db.execute(f"SELECT record FROM bitcoin WHERE {_NOT_FINAL} ORDER BY at_us")
        return [row[0] for row in rows]

    def solana_final_since(self, at_us: int) -> list[bytes]:
        """Solana transactions signed since ``at_us`` that are final (sign-only ones included):
        after a restart, each is watched again for copies of its message while they can land."""
        rows = self.db.execute(
            """SELECT record FROM solana WHERE at_us > ? AND instr(record, '"final":true') > 0 ORDER BY at_us""",
            (at_us,),
        )
        return [row[0] for row in rows]

    def final_since(self, at_us: int) -> list[bytes]:
        """Final records of transactions signed since ``at_us`` (sign-only ones aside, landed or not:
        the signer never sends their bytes): after a restart, those the chain may have lost with its
        last blocks are looked for among them."""
        rows = self.db.execute(
            """SELECT record FROM signed WHERE at_us > ? AND instr(record, '"final":true') > 0
            AND instr(record, '"status":"sign_only"') = 0 AND intent_id NOT IN (SELECT intent_id FROM sign_only)
            ORDER BY at_us""",
            (at_us,),
        )
        return [row[0] for row in rows]

    def hold_for_publishing(self, intent_id: str, emits: list[Emit]) -> None:
        """A status change's records (the intent's transaction record and its audit event) in the
        outbox, written with the state change they report (`Outcomes.transition`), so whatever
        append makes the change durable makes them durable too: a signer killed after that append
        and before the publish leaves them to whoever restores the partition (`unpublished`)."""
        for emit in emits:
            record_of = intent_id if emit.topic == topics.TXS_SIGNED else None  # an audit event is no record
            self.write_outside_scope("outbox", (_outbox_id(emit), record_of, emit.topic, emit.key, emit.value))

    def published(self, emits: list[Emit]) -> None:
        """Out of the outbox, on the next append, whenever that is (until then a restore
        publishes them again: the same bytes)."""
        for emit in emits:
            self.write_outside_scope("outbox_done", (_outbox_id(emit),))

    def unpublished(self) -> list[tuple[Emit, bool]]:
        """What the outbox holds, oldest first: (the record, whether to publish it). A status
        change that is no longer its intent's newest record is not published again (a restore
        that found its block gone published the newer one): the topic's newest record of an
        intent is always the signer's. Audit events are history: published whatever came after."""
        rows = self.db.execute(
            """SELECT o.topic, o.key, o.value, o.intent_id IS NULL OR s.record = o.value
            FROM outbox o LEFT JOIN signed s ON s.intent_id = o.intent_id ORDER BY o.rowid"""
        )
        return [(Emit(topic, key, value), bool(current)) for topic, key, value, current in rows]

    def sign_only_open(self) -> list[SignOnlyRow]:
        """Every sign-only transaction whose bytes can still land, oldest first (read through an
        index of the open ones alone: the closed ones, however many, cost nothing here)."""
        rows = self.db.execute(
            "SELECT intent_id, agent_id, at_us, cancel, cancel_by FROM sign_only WHERE open = 1 ORDER BY at_us"
        )
        return [SignOnlyRow(*row) for row in rows]

    def open_sign_only(self) -> OpenSignOnly:
        """The open sign-only rows (`sign_only_open`) kept in memory and indexed for the watch:
        read from the tables the first time (and after a rollback), then followed by the writes."""
        if self._open_sign_only is None:
            copy = OpenSignOnly()
            rows = self.db.execute(
                """SELECT o.intent_id, o.agent_id, o.at_us, o.cancel, o.cancel_by, s.record,
                b.intent_id IS NOT NULL FROM sign_only o LEFT JOIN signed s ON s.intent_id = o.intent_id
                LEFT JOIN bitcoin b ON b.intent_id = o.intent_id WHERE o.open = 1"""
            )
            for *row, record, bitcoin in rows:
                copy.put(SignOnlyRow(*row), where_of(record), bool(bitcoin))
            self._open_sign_only = copy
        return self._open_sign_only

    def _follow_sign_only(self, copy: OpenSignOnly, intent_id: str) -> None:
        row = self.db.execute(
            "SELECT intent_id, agent_id, at_us, cancel, cancel_by FROM sign_only WHERE intent_id = ? AND open = 1",
            (intent_id,),
        ).fetchone()
        if row is None:
            copy.drop(intent_id)
            return
        where = copy.where.get(intent_id) if intent_id in copy.rows else None
        if where is None:
            record = self.db.execute("SELECT record FROM signed WHERE intent_id = ?", (intent_id,)).fetchone()
            where = where_of(None if record is None else record[0])
        bitcoin = self.db.execute("SELECT 1 FROM bitcoin WHERE intent_id = ?", (intent_id,)).fetchone() is not None
        copy.put(SignOnlyRow(*row), where, bitcoin)

    def _follow_copies(self, name: str, args: tuple[Any, ...]) -> None:
        """The copies in memory (`spend_windows`, `held_intents`, `open_sign_only`) after one write:
        each set to what the table now holds for the rows the write touched."""
        if name in _SIGN_ONLY_WRITES and self._open_sign_only is not None:
            self._follow_sign_only(self._open_sign_only, args[_SIGN_ONLY_WRITES[name]])
        if name in _HOLD_WRITES:
            self._follow_hold(args[0], args[1])
        elif name in _SPEND_WRITES and self.spend_windows:
            intent_id = args[0] if name == "spend" else args[2] if name == "spend_landed" else args[1]
            row = self.db.execute(
                "SELECT agent_id, at_us, spend_wei FROM spend WHERE intent_id = ?", (intent_id,)
            ).fetchone()
            if row is not None:
                self._put(row[0], None, intent_id, row[1], int(row[2]))
        elif name in _ASSET_WRITES and self.spend_windows:
            select = "SELECT agent_id, asset, at_us, units FROM asset_spend WHERE intent_id = ?"
            if name in ("asset_spend", "asset_raised", "asset_settled"):  # one asset's row
                intent_id = args[0] if name == "asset_spend" else args[1]
                rows = self.db.execute(select + " AND asset = ?", (intent_id, args[2]))
            else:  # every asset's row of the intent (its id the last argument)
                intent_id = args[-1]
                rows = self.db.execute(select, (intent_id,))
            for agent_id, asset, at_us, units in rows.fetchall():
                self._put(agent_id, asset, intent_id, at_us, int(units))

    def _put(self, agent_id: str, asset: str | None, intent_id: str, at_us: int, wei: int) -> None:
        copy = self.spend_windows.get(agent_id, {}).get(asset)
        if copy is not None:
            copy[0].put(intent_id, at_us, wei)
            if intent_id in self.held_intents.get(agent_id, ()):  # a reservation new to a held intent
                copy[0].hold(intent_id)

    def _follow_hold(self, intent_id: str, agent_id: str) -> None:
        if agent_id not in self.held_intents and agent_id not in self.spend_windows:
            return  # nothing of the agent's is kept
        row = self.db.execute(
            "SELECT open FROM sign_only WHERE intent_id = ? AND agent_id = ?", (intent_id, agent_id)
        ).fetchone()
        is_open = row is not None and row[0] > 0  # the row as it is: a write ignored changes nothing
        held = self.held_intents.get(agent_id)
        if held is not None:
            (held.add if is_open else held.discard)(intent_id)
        for window, _ in self.spend_windows.get(agent_id, {}).values():
            (window.hold if is_open else window.land)(intent_id)

    def forget_copies(self) -> None:
        """The copies in memory (`spend_windows`, `held_intents`, `open_sign_only`) read again from
        the tables as they are."""
        self.spend_windows.clear()
        self.held_intents.clear()
        self._open_sign_only = None

    @contextlib.contextmanager
    def intent_scope(self) -> Iterator[None]:
        """Everything one intent writes, all or nothing: a savepoint inside the open batch
        transaction, rolled back if the block raises, so a failed intent leaves no signed row
        without its nonce and spend (or the other way round)."""
        self._begin()
        self.db.execute("SAVEPOINT intent")
        self._scope_ended = asyncio.Event()
        self._in_scope = True
        written = len(self._writes)
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK TO intent")
            self.db.execute("RELEASE intent")
            if any(name in _FOLLOWED for name, _ in self._writes[written:]):
                self.forget_copies()
            del self._writes[written:]  # rolled back: not for the changelog either
            raise
        else:
            self.db.execute("RELEASE intent")
        finally:
            self._in_scope = False
            deferred, self._deferred = self._deferred, []
            for name, args in deferred:
                self.write(name, args)
            self._scope_ended.set()

    async def scope_closed(self) -> None:
        """Returns once no intent's scope is open here. An intent's scope spans awaits (its node
        calls), so a tracker can run in the middle of one; what it must not do then is make its
        writes durable, which would commit the intent's savepoint with them. Checked again after
        each wake: the next intent may have opened its own scope before this task ran."""
        while self._in_scope:
            await self._scope_ended.wait()

    def write_outside_scope(self, name: str, args: tuple[Any, ...]) -> None:
        """A write from another task than the intent's (a receipt, a refused send): now, or once the
        open scope and the append in flight are over, so neither a rollback nor a commit of what
        was appended takes it by mistake."""
        if self._in_scope or self._held:
            self._deferred.append((name, args))
        else:
            self.write(name, args)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """While the open writes are on their way to the changelog: writes from other tasks (a
        receipt) wait, so what is committed is exactly what was appended."""
        self._held = True
        try:
            yield
        finally:
            self._held = False
            if not self._in_scope:
                deferred, self._deferred = self._deferred, []
                for name, args in deferred:
                    self.write(name, args)

    @property
    def in_scope(self) -> bool:
        return self._in_scope

    @property
    def where(self) -> str:
        return str(self.db_path)

    def _begin(self) -> None:
        # One open transaction per batch of intents: `commit` makes the whole batch durable at once.
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """One fsync for a whole batch of signatures."""
        if self.db.in_transaction:
            self.db.execute("COMMIT")
        self._writes = []
        self.written_bytes = 0

    def rollback(self) -> None:
        """Forget the open transaction: its changelog record did not hold."""
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self._writes = []
        self.forget_copies()
        self.written_bytes = 0

    def close(self) -> None:
        self.db.close()


class PartitionedState:
    """The signer's record as its partitions own it: one `SignerState` file per partition of
    ``warden.intents.approved``, each a cache of that partition's changelog. An agent's state is
    in the partition its records land in, so two agents' rows never share a file, and a partition
    moves to another signer whole."""

    def __init__(self, directory: Path, partitions: int = topics.PARTITIONS):
        self.directory = directory
        self.count = partitions
        self._parts: dict[int, SignerState] = {}

    def partition(self, partition: int) -> SignerState:
        if partition not in self._parts:
            self._parts[partition] = SignerState(self.directory / f"partition-{partition}.db", fsync=False)
        return self._parts[partition]

    def partition_of(self, agent_id: str) -> int:
        return partition_of(agent_id, self.count)

    def agent(self, agent_id: str) -> AgentState:
        """The agent's rows, in the partition its records land in."""
        return self.partition(self.partition_of(agent_id)).agent(agent_id)

    def opened(self) -> list[tuple[int, SignerState]]:
        """(partition, its record) for each partition's file opened so far, in partition order."""
        return sorted(self._parts.items())

    def close(self) -> None:
        for state in self._parts.values():
            state.close()
