"""A partition's open sign-only transactions, kept in memory for the sign-only watch
(`signer.sign_only.SignOnly.look_all`) and indexed by what can change each one's fate in a pass.

`SignerState.open_sign_only` loads it from the `sign_only` table once, then follows every write
that opens, closes, asks to cancel or signs a cancellation (and a replay of them); a rollback drops
it and the next pass reads it again. A pass then touches only:

- per (chain, address) with open rows, due by the schedule of its youngest row
  (`rules.sign_only.look_every_us`): one read of its transaction count, and the rows whose nonce
  is below it (`taken`);
- the rows with a cancellation asked or signed (`cancels`);
- per agent, the rows signed at or before a moment (`signed_by`: those past the policy's TTL);
- each Bitcoin row when it is due (`bitcoin`: by the schedule of its own age; a Bitcoin payment
  has no nonce, so each is asked about by itself, `signer.bitcoin_sign_only`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson


class SignOnlyRow(NamedTuple):
    """A sign-only transaction whose bytes can still land: its intent, agent, when it was signed
    (µs), its cancellation's signed record once one is signed, and who asked to cancel it."""

    intent_id: str
    agent_id: str
    at_us: int
    cancel: bytes | None
    cancel_by: str | None


# Where an open transaction's nonce is: (chain, sender address, nonce).
Where = tuple[str, str, int]


@dataclass
class Address:
    """One (chain, address)'s open rows, by nonce, and when the watch asks its count next (µs)."""

    nonces: list[tuple[int, str]] = field(default_factory=list)
    newest_at_us: int = 0
    next_us: int = 0  # 0: at the next pass (a row new to it is looked at at once)


def where_of(record: bytes | None) -> Where | None:
    """(chain, sender, nonce) from a signed transaction's record (compact JSON); None without them."""
    if record is None:
        return None
    try:
        fields = orjson.loads(record)
        chain, sender, nonce = fields["chain"], fields["from"], fields["nonce"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(chain, str) or not isinstance(sender, str) or not isinstance(nonce, int):
        return None
    return chain, sender, nonce


class OpenSignOnly:
    """The open rows (as `SignerState.sign_only_open` reads them) and three indexes of them."""

    def __init__(self) -> None:
        self.rows: dict[str, SignOnlyRow] = {}
        self.where: dict[str, Where | None] = {}
        self.addresses: dict[tuple[str, str], Address] = {}
        self.unplaced: set[str] = set()  # EVM rows whose record names no nonce: `look` says what is wrong
        self.bitcoin: dict[str, int] = {}  # Bitcoin rows → when the watch looks at each next (µs; 0: at once)
        self.cancels: set[str] = set()  # rows with a cancellation asked or signed
        self._by_agent: dict[str, list[tuple[int, str]]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def put(self, row: SignOnlyRow, where: Where | None, bitcoin: bool = False) -> None:
        """An open row as the table holds it now (new, or its cancellation asked or signed);
        ``bitcoin``: a Bitcoin payment's (its record is in the bitcoin table)."""
        new = row.intent_id not in self.rows
        next_us = self.bitcoin.get(row.intent_id, 0)
        if not new:
            self.drop(row.intent_id)
        self.rows[row.intent_id] = row
        self.where[row.intent_id] = where
        bisect.insort(self._by_agent.setdefault(row.agent_id, []), (row.at_us, row.intent_id))
        if row.cancel is not None or row.cancel_by is not None:
            self.cancels.add(row.intent_id)
        if bitcoin:
            self.bitcoin[row.intent_id] = next_us
            return
        if where is None:
            self.unplaced.add(row.intent_id)
            return
        address = self.addresses.setdefault((where[0], where[1]), Address())
        bisect.insort(address.nonces, (where[2], row.intent_id))
        address.newest_at_us = max(address.newest_at_us, row.at_us)
        if new:  # looked at at the next pass, as a row new to the watch is
            address.next_us = 0

    def drop(self, intent_id: str) -> None:
        """A row no longer open (closed, or gone with a rollback)."""
        row = self.rows.pop(intent_id, None)
        if row is None:
            return
        where = self.where.pop(intent_id)
        self.cancels.discard(intent_id)
        self.unplaced.discard(intent_id)
        self.bitcoin.pop(intent_id, None)
        _remove(self._by_agent, row.agent_id, (row.at_us, intent_id))
        if where is None:
            return
        key = (where[0], where[1])
        address = self.addresses[key]
        _discard(address.nonces, (where[2], intent_id))
        if not address.nonces:
            del self.addresses[key]
        elif row.at_us == address.newest_at_us:  # rare: the youngest closes before the others
            address.newest_at_us = max(self.rows[i].at_us for _, i in address.nonces)

    def taken(self, key: tuple[str, str], count: int) -> list[str]:
        """The address's rows whose nonce is below its transaction count ``count``: taken."""
        address = self.addresses.get(key)
        if address is None:
            return []
        return [intent_id for _, intent_id in address.nonces[: bisect.bisect_left(address.nonces, (count, ""))]]

    def signed_by(self, agent_id: str, at_us: int) -> list[str]:
        """The agent's open rows signed at or before ``at_us``, oldest first."""
        rows = self._by_agent.get(agent_id, [])
        return [intent_id for _, intent_id in rows[: bisect.bisect_right(rows, (at_us, "\U0010ffff"))]]

    def agents(self) -> list[str]:
        return list(self._by_agent)


def _discard(rows: list[tuple[int, str]], item: tuple[int, str]) -> None:
    at = bisect.bisect_left(rows, item)
    if at < len(rows) and rows[at] == item:
        del rows[at]


def _remove(lists: dict[str, list[tuple[int, str]]], key: str, item: tuple[int, str]) -> None:
    rows = lists.get(key)
    if rows is None:
        return
    _discard(rows, item)
    if not rows:
        del lists[key]
