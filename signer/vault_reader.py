"""Which key changes read from warden.vault the signer applies, holds back or refuses. No Kafka
here: quorum-signed events in (`signer.main.follow_vault` checks the signatures), verdicts out.

An event rests on its vault: a secret needs the vault's creation and custody mode (its KEK), a
grant or a deactivation the vault's creation. An admin's CLI writes a change over its own file
log, which holds what it proposed too, so a change the quorum approved can rest on a creation
that is still only a proposal: applied as it came, it left the signer a vault with no mode, and
the agent's next intent failed inside custody. So an event whose vault this signer does not
hold is refused, with why, and never applied.

The events of one change land on different partitions (each has a record key of its own) and
are read in any order, and so are the histories of the partitions when the signer starts: a
key can be read before the creation of its vault. An event whose vault is missing waits until
the topic was read to its end (`caught_up`) and, after that, while its own change still has
events unread; it is applied once the vault is (its creation read), and refused once neither
wait holds. An event that came without a change (one admin's signature, from before quorums:
only a topic's history holds them) waits for the end of the topic alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from schemas.admins import VaultChange, digest_of, event_digest
from schemas.auth import VAULT_CHANGE_HEADER
from schemas.errors import Problem
from signer.custody.book import VaultBook
from signer.custody.events import VaultEvent

# Where the events without a change wait: a change's id is a digest, never this.
_HISTORY = "before quorums"

# What a reader is told of each event it settled: the caller's own item for it, and None when it
# was applied or why it was refused.
Settled = tuple[Any, Problem | None]
# An event refused: the caller's item for it, and why.
Refused = tuple[Any, Problem]


@dataclass
class _Waiting:
    item: Any
    event: VaultEvent
    change: str


class VaultReader:
    def __init__(self, book: VaultBook):
        self.book = book
        self._waiting: list[_Waiting] = []
        self._unread: dict[str, set[str]] = {}  # a change (its signed bytes' digest) → its events not read yet
        self.history_read = False

    def read(
        self, item: Any, event: VaultEvent, raw: bytes, headers: Iterable[tuple[str, bytes]] | None
    ) -> list[Settled]:
        """Read ``event`` (its bytes ``raw`` on the topic, with the record's ``headers``), named
        ``item`` by the caller: every event this settles, ``event`` among them unless it waits."""
        change = _change_of(headers)
        change_id = None
        if change is not None:
            change_id = digest_of(change.signing_bytes())
            self._unread.setdefault(change_id, set(change.event_digests)).discard(event_digest(raw))
        why = self.book.unheld(event)
        settled: list[Settled] = []
        if why is None:
            self.book.apply(event)
            settled.append((item, None))
            settled += self._now_held()
        elif not self.history_read or (change_id is not None and self._unread[change_id]):
            self._waiting.append(_Waiting(item, event, change_id or _HISTORY))
        else:
            settled.append((item, _refusal(str(why))))
        if change_id is not None and not self._unread[change_id]:
            del self._unread[change_id]
            if self.history_read:
                settled += self._refuse(lambda w: w.change == change_id)
        return settled

    def caught_up(self) -> list[Refused]:
        """The topic was read to its end: every event still waiting for its vault is refused, but
        those of a change with events still unread. Called once. Until then nothing is refused
        for a missing vault: a restarted signer reads the partitions' histories in any order, so
        a key can come before the creation of its vault, made by an earlier change."""
        self.history_read = True
        return self._refuse(lambda w: w.change == _HISTORY or w.change not in self._unread)

    def _refuse(self, which: Callable[[_Waiting], bool]) -> list[Refused]:
        refused = [w for w in self._waiting if which(w)]
        for each in refused:
            self._waiting.remove(each)
        return [(w.item, _refusal(str(self.book.unheld(w.event) or "its vault is missing"))) for w in refused]

    def _now_held(self) -> list[Settled]:
        """The waiting events whose vault is now held, applied (a mode can free a secret)."""
        settled: list[Settled] = []
        while ready := [w for w in self._waiting if self.book.unheld(w.event) is None]:
            for waiting in ready:
                self._waiting.remove(waiting)
                self.book.apply(waiting.event)
                settled.append((waiting.item, None))
        return settled


def _change_of(headers: Iterable[tuple[str, bytes]] | None) -> VaultChange | None:
    for name, data in headers or ():
        if name == VAULT_CHANGE_HEADER:
            return VaultChange.model_validate_json(data)
    return None


def _refusal(why: str) -> Problem:
    return Problem(
        f"{why}: no key change this signer applied created it (its creation may still be a proposal: "
        "`warden approvals list`); not applied. Once the vault's creation is approved and applied, make "
        "this change again"
    )
