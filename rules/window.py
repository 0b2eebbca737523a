"""The rolling 24 h spend rule, written once: the streams worker and the signer both use it.

Sliding, not tumbling: at the moment of decision the spend that counts is every
reservation made in the 86,400 s before ``now``, that is ``now - 24 h < at <= now``
(a spend exactly 24 h old has left the window). Entries are keyed by intent id,
so re-applying a reservation after a redelivery is a no-op, and released when
signing fails.

An EVM transaction signed but not broadcast by Warden (sign-only) does not expire: its bytes can
land on any day. Its reservation is *held*: it counts at every moment from its signing on,
whatever its age, until its nonce is taken on chain (then it counts at the moment it landed, an
ordinary reservation again; or nothing, if another transaction took the nonce) or it is cancelled.
"""

from __future__ import annotations

import bisect
from collections.abc import Set as AbstractSet

WINDOW_SECONDS = 86_400
WINDOW_US = WINDOW_SECONDS * 1_000_000


def window_start_us(now_us: int) -> int:
    """The window's open lower bound: only spends strictly after this instant count at ``now_us``."""
    return now_us - WINDOW_US


def in_window(at_us: int, now_us: int) -> bool:
    return window_start_us(now_us) < at_us <= now_us


def counts_at(at_us: int, now_us: int, held: bool) -> bool:
    """Whether a reservation made at ``at_us`` counts at ``now_us``: a held one (sign-only bytes
    not yet landed) from its signing on, whatever its age; any other while it is in the window."""
    return at_us <= now_us if held else in_window(at_us, now_us)


class SpendWindow:
    """An agent's reservations (intent_id → (reserved at, µs since epoch; value in wei)), and what
    of them counts at a moment. Integers only: no float ever touches money.

    Kept in time order with their total, so `spent` costs what lies outside the window (what
    expired since the last `reserve` pruned, what is younger than the moment asked about: both
    usually nothing), not every reservation of the last 24 h: summing them all made each
    decision cost as much as the agent's day so far.

    ``held`` names the entries that count whatever their age (`counts_at`): sign-only bytes not
    yet landed. They are kept apart from the timeline, so pruning never drops one."""

    def __init__(self, entries: dict[str, tuple[int, int]] | None = None, held: AbstractSet[str] = frozenset()):
        self.entries: dict[str, tuple[int, int]] = {}
        self.held: dict[str, tuple[int, int]] = {}  # intent_id → (at, wei): counted from `at` on
        # Their total, and the latest moment one was made at: a moment after it counts them all.
        self._held_total = 0
        self._held_latest = 0
        self._timeline: list[tuple[int, str]] = []  # (at, intent_id), sorted
        self._total = 0  # every timed entry's wei
        for intent_id, (at, wei) in (entries or {}).items():
            if intent_id in held:
                self._hold(intent_id, at, wei)
            else:
                self._add(intent_id, at, wei)

    def _hold(self, intent_id: str, at: int, wei: int) -> None:
        self.held[intent_id] = (at, wei)
        self._held_total += wei
        self._held_latest = max(self._held_latest, at)

    def _add(self, intent_id: str, at: int, wei: int) -> None:
        self.entries[intent_id] = (at, wei)
        bisect.insort(self._timeline, (at, intent_id))  # an append, when reservations come in time order
        self._total += wei

    def spent(self, now_us: int) -> int:
        """The sum of the reservations made in ``(now - 24 h, now]``, and of the held ones made by ``now``."""
        lo = bisect.bisect_right(self._timeline, window_start_us(now_us), key=lambda e: e[0])
        hi = bisect.bisect_right(self._timeline, now_us, key=lambda e: e[0])
        outside = self._timeline[:lo] + self._timeline[hi:]
        return self._total - sum(self.entries[intent_id][1] for _, intent_id in outside) + self.outstanding(now_us)

    def outstanding(self, now_us: int) -> int:
        """The sum of the held reservations made by ``now``: what sign-only bytes not yet landed can spend."""
        if now_us >= self._held_latest:  # the usual question: now, after every one was made
            return self._held_total
        return sum(wei for at, wei in self.held.values() if at <= now_us)

    @property
    def reservations(self) -> dict[str, tuple[int, int]]:
        """Every reservation, held or not: intent_id → (at, wei)."""
        return {**self.entries, **self.held}

    def get(self, intent_id: str) -> tuple[int, int] | None:
        """One reservation, held or not: (at, wei)."""
        return self.entries.get(intent_id) or self.held.get(intent_id)

    def put(self, intent_id: str, at: int, wei: int) -> None:
        """Set one reservation to what a record says it is now (a copy kept in step with one),
        held if it was."""
        held = intent_id in self.held
        self.release(intent_id)
        if held:
            self._hold(intent_id, at, wei)
        else:
            self._add(intent_id, at, wei)

    def reserve(self, intent_id: str, now_us: int, value_wei: int, held: bool = False) -> None:
        self.prune(now_us)
        if self.get(intent_id) is None:
            if held:
                self._hold(intent_id, now_us, value_wei)
            else:
                self._add(intent_id, now_us, value_wei)

    def hold(self, intent_id: str) -> None:
        """A reservation counts whatever its age from now on (its transaction is sign-only)."""
        entry = self.entries.get(intent_id)
        if entry is not None:
            self.release(intent_id)
            self._hold(intent_id, *entry)

    def land(self, intent_id: str) -> None:
        """A held reservation is an ordinary one of its moment from now on (its nonce was taken)."""
        entry = self.held.get(intent_id)
        if entry is not None:
            self.release(intent_id)
            self._add(intent_id, *entry)

    def release(self, intent_id: str) -> bool:
        held = self.held.pop(intent_id, None)
        if held is not None:
            self._held_total -= held[1]  # the latest moment stays: a bound, not the exact latest
            return True
        entry = self.entries.pop(intent_id, None)
        if entry is None:
            return False
        at, wei = entry
        del self._timeline[bisect.bisect_left(self._timeline, (at, intent_id))]
        self._total -= wei
        return True

    def prune(self, now_us: int) -> None:
        # Entries older than the window can never count again; dropping them keeps the state small.
        stale = bisect.bisect_right(self._timeline, window_start_us(now_us), key=lambda e: e[0])
        for _, intent_id in self._timeline[:stale]:
            self._total -= self.entries.pop(intent_id)[1]
        del self._timeline[:stale]
