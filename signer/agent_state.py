"""One agent's part of the signer's record: everything the signer reads and writes for an agent.

`SignerState.agent(agent_id)` (or `PartitionedState.agent`, which finds the agent's partition
first) returns an `AgentState`: a view bound to the file the agent's rows are in and to the
agent's id, so no method takes the agent's id again. Rows keyed by an intent id are read by that
id alone, as the record always did: an intent id names one intent whichever agent sent it, and
one reused by another agent must still be found (`Signer.handle` refuses it ``INTENT_ID_REUSED``).

Writes go through the file's named statements (`signer.state.WRITES`), so the changelog sees each
of them; the ones that follow a transaction on the chain (a receipt, a refused send) may come
from a tracker while another intent's scope is open, and wait for it to close
(`SignerState.write_outside_scope`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from rules.window import SpendWindow, counts_at, window_start_us
from schemas import topics
from schemas.intent import idempotency_slot_live

if TYPE_CHECKING:
    from signer.state import SignerState


# The rows of an agent's sign-only transactions whose nonce is not taken yet (its id the parameter):
# joined to the spend rows of the window, whatever their age.
_HELD = "JOIN sign_only o ON o.intent_id = s.intent_id WHERE o.agent_id = ? AND o.open > 0"
# A Bitcoin record whose payment can still spend: not final, or signed only (final for the signer,
# which never sends it, and open until its fate is).
_BITCOIN_OPEN = """instr(record, '"final":true') = 0 OR instr(record, '"status":"sign_only"') > 0"""


def _own(window: SpendWindow, intent_id: str | None, now_us: int) -> int:
    """What ``intent_id``'s own reservation adds to ``window`` at ``now_us`` (a fee bump, or an
    intent judged again, replaces its own)."""
    own = None if intent_id is None else window.get(intent_id)
    if own is None or intent_id is None:
        return 0
    return own[1] if counts_at(own[0], now_us, intent_id in window.held) else 0


class AgentState:
    """One agent's rows in one partition's record (``file``)."""

    def __init__(self, file: SignerState, agent_id: str):
        self.file = file
        self.agent_id = agent_id

    def _one(self, sql: str, args: tuple[object, ...]) -> Any:
        return self.file.db.execute(sql, args).fetchone()

    # --- reads by intent id ---------------------------------------------------------------------------

    def signed_record(self, intent_id: str) -> bytes | None:
        row = self._one("SELECT record FROM signed WHERE intent_id = ?", (intent_id,))
        return None if row is None else row[0]

    def message_record(self, intent_id: str) -> bytes | None:
        row = self._one("SELECT record FROM messages WHERE intent_id = ?", (intent_id,))
        return None if row is None else row[0]

    def solana_record(self, intent_id: str) -> bytes | None:
        row = self._one("SELECT record FROM solana WHERE intent_id = ?", (intent_id,))
        return None if row is None else row[0]

    def solana_message_record(self, intent_id: str) -> bytes | None:
        row = self._one("SELECT record FROM solana_messages WHERE intent_id = ?", (intent_id,))
        return None if row is None else row[0]

    def bitcoin_record(self, intent_id: str) -> bytes | None:
        row = self._one("SELECT record FROM bitcoin WHERE intent_id = ?", (intent_id,))
        return None if row is None else row[0]

    def outcome(self, intent_id: str) -> tuple[str, bytes] | None:
        """The outcome already published for an intent, as (topic, record): its signed
        transaction, message, Solana transaction (its newest status), Solana message or Bitcoin
        transaction (its newest status), or its refusal."""
        signed = self.signed_record(intent_id)
        if signed is not None:
            return topics.TXS_SIGNED, signed
        message = self.message_record(intent_id)
        if message is not None:
            return topics.MESSAGES_SIGNED, message
        solana = self.solana_record(intent_id)
        if solana is not None:
            return topics.SOLANA_SIGNED, solana
        solana_message = self.solana_message_record(intent_id)
        if solana_message is not None:
            return topics.SOLANA_MESSAGES_SIGNED, solana_message
        bitcoin = self.bitcoin_record(intent_id)
        if bitcoin is not None:
            return topics.BITCOIN_SIGNED, bitcoin
        row = self._one("SELECT record FROM refused WHERE intent_id = ?", (intent_id,))
        return None if row is None else (topics.INTENTS_REJECTED, row[0])

    def attempts(self, intent_id: str) -> dict[str, bytes]:
        """Every transaction signed for an intent (tx hash → signed record), oldest first."""
        rows = self.file.db.execute(
            "SELECT tx_hash, record FROM tx_attempts WHERE intent_id = ? ORDER BY at_us, rowid", (intent_id,)
        )
        return dict(rows.fetchall())

    def tx_context(self, intent_id: str) -> tuple[bytes, str, int] | None:
        """(the intent as approved, key path, key version) that signed an intent's transaction."""
        row = self._one("SELECT intent, key_path, key_version FROM tx_context WHERE intent_id = ?", (intent_id,))
        return None if row is None else (row[0], row[1], row[2])

    def original_of(self, intent_id: str) -> str | None:
        """For an intent answered with another's result (same idempotency key): that intent."""
        row = self._one("SELECT original_intent_id FROM idempotent_copies WHERE intent_id = ?", (intent_id,))
        return None if row is None else row[0]

    def spend_of(self, intent_id: str) -> int | None:
        row = self._one("SELECT spend_wei FROM spend WHERE intent_id = ?", (intent_id,))
        return None if row is None else int(row[0])

    def idempotent_original(self, slot: str, now_us: int) -> str | None:
        """The intent that claimed an idempotency slot (the slot names the agent), if it is still live."""
        row = self._one("SELECT intent_id, at_us FROM idempotency WHERE slot = ?", (slot,))
        if row is None or not idempotency_slot_live(row[1], now_us):
            return None
        return str(row[0])

    def idempotency_request(self, intent_id: str) -> dict[str, str] | None:
        """What the intent that claimed an idempotency slot asked for (its `request_fields`), or
        None for one signed before the signer kept it."""
        row = self._one("SELECT request FROM idempotency_requests WHERE intent_id = ?", (intent_id,))
        return None if row is None else orjson.loads(row[0])

    # --- reads by agent -------------------------------------------------------------------------------

    def last_nonce(self, chain: str, address: str) -> int | None:
        row = self._one(
            "SELECT last_nonce FROM nonces WHERE agent_id=? AND chain=? AND address=?", (self.agent_id, chain, address)
        )
        return None if row is None else row[0]

    def signed_at_nonce(self, chain: str, address: str, nonce: int) -> bool:
        if nonce >= 2**63:  # beyond SQLite's INTEGER, so never stored, so never signed at
            return False
        row = self._one(
            "SELECT 1 FROM signed_nonces WHERE agent_id=? AND chain=? AND address=? AND nonce=?",
            (self.agent_id, chain, address, nonce),
        )
        return row is not None

    def intents_at_nonce(self, chain: str, address: str, nonce: int) -> list[str]:
        """The intents this signer signed a transaction for at one nonce of one address."""
        rows = self.file.db.execute(
            "SELECT intent_id FROM signed_nonces WHERE agent_id=? AND chain=? AND address=? AND nonce=?",
            (self.agent_id, chain, address, nonce),
        )
        return [row[0] for row in rows]

    def spend_entries(self, now_us: int) -> dict[str, tuple[int, int]]:
        """The agent's recorded spends that can still count at ``now_us``, as a window's entries
        (intent_id → (at µs, wei)); `rules.window` decides which of them do. Those of sign-only
        transactions not landed yet (`held`) whatever their age."""
        rows = self.file.db.execute(
            f"""SELECT intent_id, at_us, spend_wei FROM spend WHERE agent_id = ? AND at_us > ?
            UNION SELECT s.intent_id, s.at_us, s.spend_wei FROM spend s {_HELD}""",
            (self.agent_id, window_start_us(now_us), self.agent_id),
        )
        return {intent_id: (at_us, int(wei)) for intent_id, at_us, wei in rows}

    def bitcoin_claimed_by(self, outpoint: str, excluding: str) -> str | None:
        """The agent's intent, other than ``excluding``, whose Bitcoin payment spends ``outpoint``
        (``txid:vout``) and is not final (its record ``sign_only``, or its fate not final: mined,
        conflicted or cancelled at a final block), if one is. Records are compact JSON, so an
        input is the quoted string among its ``inputs``."""
        row = self._one(
            f"""SELECT intent_id FROM bitcoin WHERE agent_id = ? AND intent_id != ? AND instr(record, ?) > 0
            AND ({_BITCOIN_OPEN}) LIMIT 1""",
            (self.agent_id, excluding, f'"{outpoint}"'),
        )
        return None if row is None else str(row[0])

    def held(self) -> frozenset[str]:
        """The agent's transactions whose bytes can still land (sign-only ones, and Bitcoin
        payments sent and not final): their spend is held."""
        rows = self.file.db.execute("SELECT intent_id FROM sign_only WHERE agent_id = ? AND open > 0", (self.agent_id,))
        return frozenset(row[0] for row in rows)

    def _window(self, asset: str | None, now_us: int) -> SpendWindow:
        """The agent's window of one asset (None: native) at ``now_us``: the copy kept in memory
        (`SignerState.spend_windows`), read from the table the first time."""
        copies = self.file.spend_windows.setdefault(self.agent_id, {})
        copy = copies.get(asset)
        if copy is not None and now_us < copy[1]:  # a moment before the copy's: the table, as it is
            return self._table_window(asset, now_us)
        window = copy[0] if copy is not None else self._table_window(asset, now_us)
        window.prune(now_us)
        copies[asset] = (window, now_us)
        return window

    def _table_window(self, asset: str | None, now_us: int) -> SpendWindow:
        entries = self.spend_entries(now_us) if asset is None else self.asset_entries(asset, now_us)
        return SpendWindow(entries, self._held_now())

    def _held_now(self) -> set[str]:
        """`held`, from the copy kept in memory (`SignerState.held_intents`), read the first time."""
        held = self.file.held_intents.get(self.agent_id)
        if held is None:
            held = self.file.held_intents[self.agent_id] = set(self.held())
        return held

    def spent(self, now_us: int, excluding: str | None = None) -> int:
        """The agent's native spend in the window at ``now_us`` (`rules.window`), leaving out the
        intent ``excluding`` (a fee bump replaces its own reservation)."""
        window = self._window(None, now_us)
        return window.spent(now_us) - _own(window, excluding, now_us)

    def outstanding(self, now_us: int, excluding: str | None = None, asset: str | None = None) -> int:
        """What the agent's sign-only transactions not landed yet can spend (native, wei; or of
        ``asset``: Bitcoin payments not final, satoshis)."""
        window = self._window(asset, now_us)
        own = _own(window, excluding, now_us) if excluding in window.held else 0
        return window.outstanding(now_us) - own

    def asset_entries(self, asset: str, now_us: int) -> dict[str, tuple[int, int]]:
        """Like `spend_entries`, for one asset (``chain:token``), in the token's base units."""
        rows = self.file.db.execute(
            f"""SELECT intent_id, at_us, units FROM asset_spend WHERE agent_id = ? AND asset = ? AND at_us > ?
            UNION SELECT s.intent_id, s.at_us, s.units FROM asset_spend s {_HELD} AND s.asset = ?""",
            (self.agent_id, asset, window_start_us(now_us), self.agent_id, asset),
        )
        return {intent_id: (at_us, int(units)) for intent_id, at_us, units in rows}

    def asset_spent(self, asset: str, now_us: int, excluding: str | None = None) -> int:
        """Like `spent`, for one asset (``chain:token``; the USD window's key too)."""
        window = self._window(asset, now_us)
        return window.spent(now_us) - _own(window, excluding, now_us)

    def policy_version(self) -> int:
        """The newest policy version this signer signed under for the agent (0: none)."""
        row = self._one("SELECT version FROM policy_versions WHERE agent_id = ?", (self.agent_id,))
        return 0 if row is None else row[0]

    # --- an intent's outcome, inside its scope (`SignerState.intent_scope`) --------------------------

    def record_refused(self, *, intent_id: str, record: bytes, now_us: int) -> None:
        """A refusal is an outcome like a signature: durable at `commit`, before it is published."""
        self.file.write("refused", (intent_id, self.agent_id, record, now_us))

    def record_signed(
        self,
        *,
        intent_id: str,
        record: bytes,
        now_us: int,
        chain: str,
        address: str,
        nonce: int,
        spend_wei: int,
        counts: bool,
        policy_version: int,
        idempotency_slot: str | None,
        request: dict[str, str] | None = None,
        tx_hash: str | None = None,
        context: tuple[bytes, str, int] | None = None,
        copy_of: str | None = None,
        last_nonce: int | None = None,
        assets: dict[str, int] | None = None,
        held: bool = False,
    ) -> None:
        """The signed bytes, the nonce, the spend and the idempotency entry (the slot it claims and
        the ``request`` it claims it for), in the open batch
        transaction: they become durable together at `commit`, which comes before any publish.
        Call it inside `intent_scope`, so they are written together or not at all."""
        write, agent_id = self.file.write, self.agent_id
        write("signed", (intent_id, agent_id, record, now_us))
        write("nonce", (agent_id, chain, address, max(nonce, last_nonce or nonce)))
        write("signed_nonce", (agent_id, chain, address, nonce, intent_id))
        if counts:
            write("spend", (intent_id, agent_id, now_us, str(spend_wei)))
            self._record_assets(intent_id, now_us, assets)
            if held:  # sign-only: its bytes can land any day, so its spend is held until they do
                write("sign_only", (intent_id, agent_id, now_us))
        self._record_signature(intent_id, now_us, policy_version, idempotency_slot, request)
        if tx_hash is not None:
            write("tx_attempt", (intent_id, tx_hash, record, now_us))
        if context is not None:
            write("tx_context", (intent_id, *context))
        if copy_of is not None:
            write("idempotent_copy", (intent_id, copy_of))

    def record_message(
        self,
        *,
        intent_id: str,
        record: bytes,
        now_us: int,
        policy_version: int,
        idempotency_slot: str | None,
        request: dict[str, str] | None = None,
        assets: dict[str, int] | None = None,
        kind: str = "message",
    ) -> None:
        """A signed message (EIP-191 or EIP-712; ``kind`` "solana": a signed Solana transaction;
        "solana_message": a signed Solana off-chain message; "bitcoin": a signed Bitcoin transaction)
        with its idempotency entry and what it authorizes or spends, like `record_signed`: in the
        open batch, inside `intent_scope`, durable before it is published."""
        self.file.write(kind, (intent_id, self.agent_id, record, now_us))
        self._record_assets(intent_id, now_us, assets)
        self._record_signature(intent_id, now_us, policy_version, idempotency_slot, request)

    def replace_solana(self, intent_id: str, record: bytes) -> None:
        """A Solana transaction's newest status (a tracker's, outside any intent's scope)."""
        self.file.write_outside_scope("solana_replaced", (record, intent_id))

    def replace_bitcoin(self, intent_id: str, record: bytes) -> None:
        """A Bitcoin transaction's newest status (a tracker's, outside any intent's scope)."""
        self.file.write_outside_scope("bitcoin_replaced", (record, intent_id))

    def void_assets(self, intent_id: str) -> None:
        """What an intent reserved counts nothing: its transaction can never land (a Solana
        transaction whose blockhash expired, a Bitcoin one whose inputs another spent)."""
        self.file.write_outside_scope("assets_voided", (intent_id,))

    def count_landing(self, intent_id: str, landed: str, now_us: int) -> None:
        """What an intent reserved, counted once more at ``now_us``: a copy of its Solana
        transaction's message (id ``landed``) landed after the one its reservation counts. Kept
        under ``<intent id>/<landed>``, so counting one landing again changes nothing."""
        rows = self.file.db.execute("SELECT asset, units FROM asset_spend WHERE intent_id = ?", (intent_id,))
        for asset, units in rows.fetchall():
            self.file.write_outside_scope("asset_spend", (f"{intent_id}/{landed}", self.agent_id, asset, now_us, units))

    def _record_assets(self, intent_id: str, now_us: int, assets: dict[str, int] | None) -> None:
        for asset, units in (assets or {}).items():
            self.file.write("asset_spend", (intent_id, self.agent_id, asset, now_us, str(units)))

    def _record_signature(
        self,
        intent_id: str,
        now_us: int,
        policy_version: int,
        idempotency_slot: str | None,
        request: dict[str, str] | None,
    ) -> None:
        """What any signature leaves: the policy version it was signed under (an older one cannot be
        replayed) and the idempotency key it claims, with the request it claims it for (a later
        intent under the key gets this one's result only for the same request)."""
        self.file.write("policy_version", (self.agent_id, policy_version))
        if idempotency_slot is not None:
            self.file.write("idempotency", (idempotency_slot, intent_id, now_us))
            if request is not None:  # without it, the slot answers no other intent
                self.file.write("idempotency_request", (intent_id, orjson.dumps(request)))

    # --- what the chain did, from a tracker: outside any intent's scope ------------------------------

    def record_replacement(
        self,
        *,
        intent_id: str,
        tx_hash: str,
        record: bytes,
        now_us: int,
        spend_wei: int,
        assets: dict[str, int] | None = None,
    ) -> None:
        """A fee bump, durable before it is sent: the new transaction among the intent's attempts,
        and the spend reserved raised to its worst case (never lowered: an earlier attempt may
        still be the one mined), and so is what the bump's judgement counted per asset (``assets``:
        the USD window's key among them, the bump priced at its new fee). Not inside an intent's
        scope: the caller makes it durable (commits, or appends it to the changelog) before the bump
        is sent, and that would close it; it waits for the scope with `SignerState.scope_closed`."""
        if self.file.in_scope:
            raise RuntimeError("record_replacement inside an intent scope; wait for it to close")
        self.file.write_outside_scope("tx_attempt", (intent_id, tx_hash, record, now_us))
        reserved = self.spend_of(intent_id)
        if reserved is not None and spend_wei > reserved:  # compared as Python ints: wei passes SQLite's 64 bits
            self.file.write_outside_scope("spend_raised", (str(spend_wei), intent_id))
        for asset, units in (assets or {}).items():
            held = self._one("SELECT units FROM asset_spend WHERE intent_id = ? AND asset = ?", (intent_id, asset))
            if held is None:  # a limit the policy did not have when the intent was signed
                self.file.write_outside_scope("asset_spend", (intent_id, self.agent_id, asset, now_us, str(units)))
            elif units > int(held[0]):
                self.file.write_outside_scope("asset_raised", (str(units), intent_id, asset))

    def replace_record(self, intent_id: str, record: bytes) -> None:
        """After broadcast, the newest status (mined / failed) is what a redelivery re-publishes."""
        self.file.write_outside_scope("record_replaced", (record, intent_id))

    def settle_spend(self, intent_id: str, spent_wei: int, executed: bool) -> None:
        """What the chain took (value if it executed, plus the fee actually paid; nothing if the
        node refused it) replaces the worst case reserved at signing. Token amounts stay counted
        when the transaction executed, and count nothing when it did not."""
        self.file.write_outside_scope("spend_settled", (str(spent_wei), intent_id))
        if not executed:
            self.file.write_outside_scope("assets_voided", (intent_id,))

    def reserve_again(self, intent_id: str, spend_wei: int) -> None:
        """A settled transaction that can be mined again (its node lost the block that held it):
        its worst case counts again, until it is final again."""
        self.file.write_outside_scope("spend_raised", (str(spend_wei), intent_id))

    def ask_cancel(self, intent_id: str, by: str) -> None:
        """Cancel a sign-only transaction (``by``: who asked and why); the signer's watch signs the
        cancellation (`signer.sign_only`). The first request stands."""
        self.file.write_outside_scope("sign_only_cancel_asked", (by, intent_id))

    def sign_only_row(self, intent_id: str) -> tuple[int, bytes | None, str | None] | None:
        """An open sign-only transaction's (signed at µs, cancellation record, who asked to cancel), or None."""
        row = self._one("SELECT at_us, cancel, cancel_by FROM sign_only WHERE intent_id = ? AND open = 1", (intent_id,))
        return None if row is None else (row[0], row[1], row[2])

    def cancel_sign_only(self, intent_id: str, record: bytes) -> None:
        """A sign-only transaction's cancellation (its signed record), among the intent's attempts,
        durable before it is sent; its worst case counted too, if it is more than the original's."""
        self.file.write_outside_scope("sign_only_cancel", (record, intent_id))

    def sign_only_landed(self, intent_id: str, now_us: int, spent_wei: int, executed: bool) -> None:
        """A sign-only transaction's nonce was taken at a final block by a transaction that took
        ``spent_wei`` (its own, or its cancellation's fee; nothing: another's): that counts from
        ``now_us`` on, as an ordinary spend, and its tokens only if it ``executed``."""
        write = self.file.write_outside_scope
        write("spend_landed", (now_us, str(spent_wei), intent_id))
        write("assets_landed", (now_us, intent_id))
        if not executed:
            write("assets_voided", (intent_id,))
        write("sign_only_closed", (intent_id, self.agent_id))

    def hold_bitcoin(self, intent_id: str, now_us: int, sign_only: bool, context: tuple[bytes, str, int]) -> None:
        """A Bitcoin payment's spend held until its fate is final (`rules.sign_only.held`): a
        sign-only one's followed by the sign-only watch (and cancelled when asked, with the key
        version of ``context``: the intent, key path and version), a sent one's by its tracker."""
        write = self.file.write
        write("sign_only" if sign_only else "held_sent", (intent_id, self.agent_id, now_us))
        if sign_only:
            write("tx_context", (intent_id, *context))

    def bitcoin_closed(self, intent_id: str, now_us: int, asset: str, took: int | None) -> None:
        """A Bitcoin payment's fate is final: it, or its cancellation, took ``took`` satoshis, which
        count from ``now_us`` on as an ordinary spend; None: another transaction spent one of its
        inputs, and nothing counts."""
        if took is not None:
            self.file.write_outside_scope("asset_settled", (str(took), intent_id, asset))
        self.sign_only_landed(intent_id, now_us, 0, took is not None)

    def release_nonce(self, chain: str, address: str, nonce: int, last: int | None = None) -> None:
        """The node refused the transaction: its nonce (through ``last``, the highest one it would
        have used) was never used, so the next intent takes it."""
        self.file.write_outside_scope(
            "nonce_released", (nonce - 1, self.agent_id, chain, address, nonce if last is None else last)
        )
