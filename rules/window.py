"""The rolling 24 h spend rule, written once: the streams worker and the signer both use it.

Sliding, not tumbling: at the moment of decision the spend that counts is every
reservation made in the 86,400 s before ``now``, that is ``now - 24 h < at <= now``
(a spend exactly 24 h old has left the window). Entries are keyed by intent id,
so re-applying a reservation after a redelivery is a no-op, and released when
signing fails.
"""

from __future__ import annotations

import bisect

WINDOW_SECONDS = 86_400
WINDOW_US = WINDOW_SECONDS * 1_000_000


def window_start_us(now_us: int) -> int:
    """The window's open lower bound: only spends strictly after this instant count at ``now_us``."""
    return now_us - WINDOW_US


def in_window(at_us: int, now_us: int) -> bool:
    return window_start_us(now_us) < at_us <= now_us


class SpendWindow:
    """An agent's reservations (intent_id → (reserved at, µs since epoch; value in wei)), and what
    of them counts at a moment. Integers only: no float ever touches money.

    Kept in time order with their total, so `spent` costs what lies outside the window (what
    expired since the last `reserve` pruned, what is younger than the moment asked about: both
    usually nothing), not every reservation of the last 24 h: summing them all made each
    decision cost as much as the agent's day so far."""

    def __init__(self, entries: dict[str, tuple[int, int]] | None = None):
        self.entries: dict[str, tuple[int, int]] = {}
        self._timeline: list[tuple[int, str]] = []  # (at, intent_id), sorted
        self._total = 0  # every entry's wei
        for intent_id, (at, wei) in (entries or {}).items():
            self._add(intent_id, at, wei)

    def _add(self, intent_id: str, at: int, wei: int) -> None:
        self.entries[intent_id] = (at, wei)
        bisect.insort(self._timeline, (at, intent_id))  # an append, when reservations come in time order
        self._total += wei

    def spent(self, now_us: int) -> int:
        """The sum of the reservations made in ``(now - 24 h, now]``."""
        lo = bisect.bisect_right(self._timeline, window_start_us(now_us), key=lambda e: e[0])
        hi = bisect.bisect_right(self._timeline, now_us, key=lambda e: e[0])
        outside = self._timeline[:lo] + self._timeline[hi:]
        return self._total - sum(self.entries[intent_id][1] for _, intent_id in outside)

    def put(self, intent_id: str, at: int, wei: int) -> None:
        """Set one reservation to what a record says it is now (a copy kept in step with one)."""
        self.release(intent_id)
        self._add(intent_id, at, wei)

    def reserve(self, intent_id: str, now_us: int, value_wei: int) -> None:
        self.prune(now_us)
        if intent_id not in self.entries:
            self._add(intent_id, now_us, value_wei)

    def release(self, intent_id: str) -> bool:
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
