"""The signer's own durable record, in SQLite inside the signer's VM.

It is what makes signing exactly-once on an at-least-once bus: the outcome of
each intent (a redelivered intent gets the same signed bytes, or the same
refusal, back: never a second nonce, never a signature after a refusal), the
nonce tracked per (agent, chain, address) and every nonce it signed at (only
those may be named again, to replace), the signer's own rolling spend record
(value + worst-case fee at signing, settled to what the chain took once a
receipt arrives; it does not trust the worker's), the newest policy version it
signed under per agent (an older signed policy cannot be replayed), and the
idempotency cache. A record is written before the signed transaction is
published, so a crash in between re-publishes the same bytes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from schemas import topics
from schemas.models import idempotency_slot_live
from streams.window import window_start_us

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
CREATE TABLE IF NOT EXISTS signed_nonces (
    agent_id TEXT NOT NULL, chain TEXT NOT NULL, address TEXT NOT NULL, nonce INTEGER NOT NULL,
    intent_id TEXT NOT NULL, PRIMARY KEY (agent_id, chain, address, nonce, intent_id));
CREATE TABLE IF NOT EXISTS refused (
    intent_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, record BLOB NOT NULL, at_us INTEGER NOT NULL);
"""



class SignerState:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        # Writes from other tasks (a receipt arriving) while one intent's scope is open wait until
        # it closes, so rolling that intent back cannot undo them.
        self._in_scope = False
        self._deferred: list[tuple[str, tuple]] = []

    def signed_record(self, intent_id: str) -> bytes | None:
        row = self.db.execute("SELECT record FROM signed WHERE intent_id = ?", (intent_id,)).fetchone()
        return None if row is None else row[0]

    def unconfirmed(self) -> list[bytes]:
        """Signed records handed to the chain whose receipt was never recorded (the signer stopped
        while waiting for it): after a restart they are sent again and tracked to a receipt."""
        # Records are compact JSON (orjson): the status appears exactly as "status":"broadcast".
        rows = self.db.execute("SELECT record FROM signed WHERE instr(record, ?) > 0 ORDER BY at_us",
                               (b'"status":"broadcast"',))
        return [row[0] for row in rows]

    def outcome(self, intent_id: str) -> tuple[str, bytes] | None:
        """The outcome already published for an intent, as (topic, record): its signed
        transaction, or its refusal."""
        signed = self.signed_record(intent_id)
        if signed is not None:
            return topics.TXS_SIGNED, signed
        row = self.db.execute("SELECT record FROM refused WHERE intent_id = ?", (intent_id,)).fetchone()
        return None if row is None else (topics.INTENTS_REJECTED, row[0])

    def record_refused(self, *, intent_id: str, agent_id: str, record: bytes, now_us: int) -> None:
        """A refusal is an outcome like a signature: durable at `commit`, before it is published."""
        self._begin()
        self.db.execute("INSERT OR IGNORE INTO refused VALUES (?, ?, ?, ?)", (intent_id, agent_id, record, now_us))

    def last_nonce(self, agent_id: str, chain: str, address: str) -> int | None:
        row = self.db.execute("SELECT last_nonce FROM nonces WHERE agent_id=? AND chain=? AND address=?",
                              (agent_id, chain, address)).fetchone()
        return None if row is None else row[0]

    def signed_at_nonce(self, agent_id: str, chain: str, address: str, nonce: int) -> bool:
        if nonce >= 2**63:  # beyond SQLite's INTEGER, so never stored, so never signed at
            return False
        row = self.db.execute("SELECT 1 FROM signed_nonces WHERE agent_id=? AND chain=? AND address=? AND nonce=?",
                              (agent_id, chain, address, nonce)).fetchone()
        return row is not None

    def spend_entries(self, agent_id: str, now_us: int) -> dict[str, tuple[int, int]]:
        """The agent's recorded spends that can still count at ``now_us``, as a window's entries
        (intent_id → (at µs, wei)); `streams.window` decides which of them do."""
        rows = self.db.execute("SELECT intent_id, at_us, spend_wei FROM spend WHERE agent_id = ? AND at_us > ?",
                               (agent_id, window_start_us(now_us)))
        return {intent_id: (at_us, int(wei)) for intent_id, at_us, wei in rows}

    def policy_version(self, agent_id: str) -> int:
        row = self.db.execute("SELECT version FROM policy_versions WHERE agent_id = ?", (agent_id,)).fetchone()
        return 0 if row is None else row[0]

    def idempotent_original(self, slot: str, now_us: int) -> str | None:
        row = self.db.execute("SELECT intent_id, at_us FROM idempotency WHERE slot = ?", (slot,)).fetchone()
        if row is None or not idempotency_slot_live(row[1], now_us):
            return None
        return row[0]

    @contextlib.contextmanager
    def intent_scope(self) -> Iterator[None]:
        """Everything one intent writes, all or nothing: a savepoint inside the open batch
        transaction, rolled back if the block raises, so a failed intent leaves no signed row
        without its nonce and spend (or the other way round)."""
        self._begin()
        self.db.execute("SAVEPOINT intent")
        self._in_scope = True
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK TO intent")
            self.db.execute("RELEASE intent")
            raise
        else:
            self.db.execute("RELEASE intent")
        finally:
            self._in_scope = False
            deferred, self._deferred = self._deferred, []
            for sql, args in deferred:
                self.db.execute(sql, args)

    def _outside_scope(self, sql: str, args: tuple) -> None:
        if self._in_scope:
            self._deferred.append((sql, args))
        else:
            self.db.execute(sql, args)

    def record_signed(self, *, intent_id: str, agent_id: str, record: bytes, now_us: int, chain: str,
                      address: str, nonce: int, spend_wei: int, counts: bool, policy_version: int,
                      idempotency_slot: str | None) -> None:
        """The signed bytes, the nonce, the spend and the idempotency entry, in the open batch
        transaction: they become durable together at `commit`, which comes before any publish.
        Call it inside `intent_scope`, so they are written together or not at all."""
        self._begin()
        self.db.execute("INSERT OR IGNORE INTO signed VALUES (?, ?, ?, ?)", (intent_id, agent_id, record, now_us))
        self.db.execute(
            "INSERT INTO nonces VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET last_nonce = "
            "max(last_nonce, excluded.last_nonce)", (agent_id, chain, address, nonce))
        self.db.execute("INSERT OR IGNORE INTO signed_nonces VALUES (?, ?, ?, ?, ?)",
                        (agent_id, chain, address, nonce, intent_id))
        if counts:
            self.db.execute("INSERT OR IGNORE INTO spend VALUES (?, ?, ?, ?)",
                            (intent_id, agent_id, now_us, str(spend_wei)))
        self.db.execute("INSERT INTO policy_versions VALUES (?, ?) ON CONFLICT DO UPDATE SET version = "
                        "max(version, excluded.version)", (agent_id, policy_version))
        if idempotency_slot is not None:
            self.db.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?)",
                            (idempotency_slot, intent_id, now_us))

    def _begin(self) -> None:
        # One open transaction per batch of intents: `commit` makes the whole batch durable at once.
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """One fsync for a whole batch of signatures."""
        if self.db.in_transaction:
            self.db.execute("COMMIT")

    def replace_record(self, intent_id: str, record: bytes) -> None:
        """After broadcast, the newest status (mined / failed) is what a redelivery re-publishes."""
        self._outside_scope("UPDATE signed SET record = ? WHERE intent_id = ?", (record, intent_id))

    def settle_spend(self, intent_id: str, spent_wei: int) -> None:
        """What the chain took (value if it executed, plus the fee actually paid; nothing if the
        node refused it) replaces the worst case reserved at signing."""
        self._outside_scope("UPDATE spend SET spend_wei = ? WHERE intent_id = ?", (str(spent_wei), intent_id))

    def release_nonce(self, agent_id: str, chain: str, address: str, nonce: int) -> None:
        """The node refused the transaction: its nonce was never used, so the next intent takes it."""
        self._outside_scope(
            "UPDATE nonces SET last_nonce = ? WHERE agent_id=? AND chain=? AND address=? AND last_nonce=?",
            (nonce - 1, agent_id, chain, address, nonce))

    def close(self) -> None:
        self.db.close()
