"""The rolling 24 h spend window of one agent.

Sliding, not tumbling: at the moment of decision the spend that counts is every
reservation made in the 86,400 s before ``now`` (a spend exactly 24 h old has
left the window). Entries are keyed by intent id, so re-applying a reservation
after a redelivery is a no-op, and released when signing fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOW_SECONDS = 86_400
_WINDOW_US = WINDOW_SECONDS * 1_000_000


@dataclass
class SpendWindow:
    # intent_id → (reserved at, µs since epoch; value in wei). Integers only: no float ever touches money.
    entries: dict[str, tuple[int, int]] = field(default_factory=dict)

    def spent(self, now_us: int) -> int:
        return sum(wei for at, wei in self.entries.values() if now_us - _WINDOW_US < at <= now_us)

    def reserve(self, intent_id: str, now_us: int, value_wei: int) -> None:
        self.prune(now_us)
        self.entries.setdefault(intent_id, (now_us, value_wei))

    def release(self, intent_id: str) -> bool:
        return self.entries.pop(intent_id, None) is not None

    def holds(self, intent_id: str) -> bool:
        return intent_id in self.entries

    def prune(self, now_us: int) -> None:
        # Entries older than the window can never count again; dropping them keeps the state small.
        stale = [i for i, (at, _) in self.entries.items() if at <= now_us - _WINDOW_US]
        for intent_id in stale:
            del self.entries[intent_id]

    def to_json(self) -> dict:
        return {i: [at, str(wei)] for i, (at, wei) in self.entries.items()}

    @classmethod
    def from_json(cls, raw: dict) -> "SpendWindow":
        return cls({i: (int(at), int(wei)) for i, (at, wei) in raw.items()})
