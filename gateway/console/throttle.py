"""Failed logins, counted per client address: after `LIMIT` within `WINDOW`, that address's next
attempts are answered at once, checked against nothing, until the oldest of them is `WINDOW` old;
the first attempt refused in each lockout is the one recorded. A passkey cannot be guessed, but
each attempt costs a signature check and an audit event; without a bound, anyone who reaches the
console could spend both without end. Time is an argument; the addresses held are bounded: one
whose last failure is `WINDOW` old is dropped, and beyond `CAPACITY` the least recently failed."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

LIMIT = 5
WINDOW = timedelta(minutes=5)
CAPACITY = 10_000


@dataclass(frozen=True)
class Lockout:
    until: datetime  # when the address may try again
    first: bool  # the first attempt refused in this lockout: the one to record


@dataclass
class _Address:
    failures: deque[datetime] = field(default_factory=deque)
    # The end of the lockout whose first refused attempt was recorded.
    recorded_until: datetime | None = None


class LoginThrottle:
    def __init__(self, limit: int = LIMIT, window: timedelta = WINDOW, capacity: int = CAPACITY):
        self.limit, self.window, self.capacity = limit, window, capacity
        # Least recently failed first: what ages out or is dropped first is at the front.
        self._addresses: OrderedDict[str, _Address] = OrderedDict()

    def _recent(self, client: str, now: datetime) -> _Address:
        address = self._addresses.get(client) or _Address()
        while address.failures and now - address.failures[0] >= self.window:
            address.failures.popleft()
        return address

    def locked_until(self, client: str, now: datetime) -> datetime | None:
        """When ``client`` may try again, while it has failed `limit` times within the window."""
        failures = self._recent(client, now).failures
        if not failures:
            self._addresses.pop(client, None)
        return failures[0] + self.window if len(failures) >= self.limit else None

    def held(self, client: str, now: datetime) -> Lockout | None:
        """The lockout ``client`` is in, if any; ``first`` is True for the first attempt it refuses."""
        until = self.locked_until(client, now)
        if until is None:
            return None
        address = self._addresses[client]
        first, address.recorded_until = address.recorded_until != until, until
        return Lockout(until, first)

    def failed(self, client: str, now: datetime) -> datetime | None:
        """Count a failed login of ``client``: when it may try again, if this one locks it out."""
        self._forget_aged(now)
        address = self._recent(client, now)
        address.failures.append(now)
        self._addresses[client] = address
        self._addresses.move_to_end(client)
        while len(self._addresses) > self.capacity:
            self._addresses.popitem(last=False)
        return address.failures[0] + self.window if len(address.failures) == self.limit else None

    def _forget_aged(self, now: datetime) -> None:
        while self._addresses:
            oldest = next(iter(self._addresses.values()))
            if oldest.failures and now - oldest.failures[-1] < self.window:
                return
            self._addresses.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._addresses.pop(client, None)

    def __len__(self) -> int:
        return len(self._addresses)
