"""Failed logins, counted per client address: after `LIMIT` within `WINDOW`, that address's next
attempts are answered at once, checked against nothing and recorded once, until the oldest of
them is `WINDOW` old. A passkey cannot be guessed, but each attempt costs a signature check and an
audit event; without a bound, anyone who reaches the console could spend both without end. Time
is an argument; the addresses held are bounded (`CAPACITY`, the least recently failed dropped
first)."""

from __future__ import annotations

from collections import OrderedDict, deque
from datetime import datetime, timedelta

LIMIT = 5
WINDOW = timedelta(minutes=5)
CAPACITY = 10_000


class LoginThrottle:
    def __init__(self, limit: int = LIMIT, window: timedelta = WINDOW, capacity: int = CAPACITY):
        self.limit, self.window, self.capacity = limit, window, capacity
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()

    def _recent(self, client: str, now: datetime) -> deque[datetime]:
        failures = self._failures.get(client, deque())
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        return failures

    def locked_until(self, client: str, now: datetime) -> datetime | None:
        """When ``client`` may try again, while it has failed `limit` times within the window."""
        failures = self._recent(client, now)
        if not failures:
            self._failures.pop(client, None)
        return failures[0] + self.window if len(failures) >= self.limit else None

    def failed(self, client: str, now: datetime) -> datetime | None:
        """Count a failed login of ``client``: when it is the one that locks the address out, the
        moment the lockout ends (the first of the failures `window` old); else None."""
        failures = self._recent(client, now)
        failures.append(now)
        self._failures[client] = failures
        self._failures.move_to_end(client)
        while len(self._failures) > self.capacity:
            self._failures.popitem(last=False)
        return failures[0] + self.window if len(failures) == self.limit else None

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def __len__(self) -> int:
        return len(self._failures)
