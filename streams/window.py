"""The rolling 24 h spend rule, written once: the streams worker and the signer both use it.

Sliding, not tumbling: at the moment of decision the spend that counts is every
reservation made in the 86,400 s before ``now``, that is ``now - 24 h < at <= now``
(a spend exactly 24 h old has left the window). Entries are keyed by intent id,
so re-applying a reservation after a redelivery is a no-op, and released when
signing fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOW_SECONDS = 86_400
WINDOW_US = WINDOW_SECONDS * 1_000_000


def window_start_us(now_us: int) -> int:
    """The window's open lower bound: only spends strictly after this instant count at ``now_us``."""
    return now_us - WINDOW_US


def in_window(at_us: int, now_us: int) -> bool:
    return window_start_us(now_us) < at_us <= now_us


@dataclass
class SpendWindow:
    # intent_id → (reserved at, µs since epoch; value in wei). Integers only: no float ever touches money.
    entries: dict[str, tuple[int, int]] = field(default_factory=dict)

    def spent(self, now_us: int) -> int:
        return sum(wei for at, wei in self.entries.values() if in_window(at, now_us))

    def reserve(self, intent_id: str, now_us: int, value_wei: int) -> None:
        self.prune(now_us)
        self.entries.setdefault(intent_id, (now_us, value_wei))

    def release(self, intent_id: str) -> bool:
        return self.entries.pop(intent_id, None) is not None

    def prune(self, now_us: int) -> None:
        # Entries older than the window can never count again; dropping them keeps the state small.
        stale = [i for i, (at, _) in self.entries.items() if at <= window_start_us(now_us)]
        for intent_id in stale:
            del self.entries[intent_id]
