"""When each webhook delivery is due, and what an attempt's answer makes of it: pure, time and
the jitter passed in, no I/O.

A delivery is one ledger event owed to one endpoint. Each (endpoint, agent) is a lane whose events
go out in ledger order (chain, seq), one at a time: only the oldest delivery of a lane still
pending is ever sent, so a later event of an agent never reaches an endpoint before an earlier one
was acknowledged (2xx) or given up on. Lanes wait for nothing but their own attempts: one endpoint
has at most a few lanes in flight at once, and its slow answers never hold another's. A failed attempt waits ``first * 2**(n-1)`` times a jitter
factor from 0.5 to 1, at most ``cap`` (and at least what the endpoint's ``Retry-After`` asked,
within the cap); once ``give_up_after`` has passed since the event was owed, a failed attempt gives
it up, and that is recorded (`ledger.webhooks`), never dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

State = Literal["pending", "delivered", "given_up"]


@dataclass(frozen=True)
class Retries:
    first: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(days=3)

    def delay(self, attempts: int, jitter: float, retry_after: timedelta | None = None) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1 for the first), ``jitter`` in [0, 1)."""
        exponent = min(max(attempts - 1, 0), 40)  # 2**40 times any first delay is past any cap
        wait: timedelta = min(self.first * (2**exponent), self.cap) * (0.5 + jitter / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.cap))
        return wait


@dataclass(frozen=True)
class Delivery:
    """One event owed to one endpoint, and how far its delivery got."""

    webhook_id: str
    chain: int
    seq: int
    event_id: str
    agent_id: str
    owed_since: datetime
    next_at: datetime
    attempts: int = 0
    state: State = "pending"
    last_error: str = ""

    @property
    def lane(self) -> tuple[str, str]:
        """What this delivery keeps its order within: its endpoint and its agent."""
        return self.webhook_id, self.agent_id

    @property
    def position(self) -> tuple[int, int]:
        return self.chain, self.seq

    @property
    def version(self) -> int:
        """Grows with every change of this delivery: its stored rows keep the newest."""
        return 2 * self.attempts + (self.state != "pending")


def heads(pending: Iterable[Delivery]) -> dict[tuple[str, str], Delivery]:
    """The oldest pending delivery of each (endpoint, agent): the only one that may be sent."""
    first: dict[tuple[str, str], Delivery] = {}
    for delivery in pending:
        if delivery.state != "pending":
            continue
        held = first.get(delivery.lane)
        if held is None or delivery.position < held.position:
            first[delivery.lane] = delivery
    return first


def to_send(
    pending: Iterable[Delivery], now: datetime, busy: Collection[tuple[str, str]], per_endpoint: int
) -> tuple[list[Delivery], datetime | None]:
    """What to attempt at ``now`` beside the lanes ``busy`` (an attempt in flight, or its outcome
    not yet written): each other lane's head whose time has come, oldest first, at most
    ``per_endpoint`` lanes of one endpoint busy at once; and when the next head of a lane not
    busy comes due (None: none waits). A lane's head held back by its endpoint's limit waits for
    that endpoint's attempts, not for a time."""
    in_flight = Counter(webhook_id for webhook_id, _ in busy)
    chosen: list[Delivery] = []
    later: datetime | None = None
    for delivery in sorted(heads(pending).values(), key=lambda d: (d.next_at, d.position)):
        if delivery.lane in busy or in_flight[delivery.webhook_id] >= per_endpoint:
            continue
        if delivery.next_at > now:
            later = delivery.next_at if later is None else min(later, delivery.next_at)
            continue
        in_flight[delivery.webhook_id] += 1
        chosen.append(delivery)
    return chosen, later


def delivered(delivery: Delivery) -> Delivery:
    """``delivery`` after an attempt the endpoint acknowledged."""
    return replace(delivery, attempts=delivery.attempts + 1, state="delivered", last_error="")


def failed(
    delivery: Delivery,
    now: datetime,
    error: str,
    retries: Retries,
    jitter: float,
    retry_after: timedelta | None = None,
) -> Delivery:
    """``delivery`` after an attempt that failed with ``error``: due again after the backoff, or
    given up once ``retries.give_up_after`` has passed since it was owed."""
    attempts = delivery.attempts + 1
    if now - delivery.owed_since >= retries.give_up_after:
        return replace(delivery, attempts=attempts, state="given_up", last_error=error)
    wait = retries.delay(attempts, jitter, retry_after)
    return replace(delivery, attempts=attempts, next_at=now + wait, last_error=error)


def retry_after(header: str | None) -> timedelta | None:
    """A ``Retry-After`` header's wait when it is a number of seconds; None otherwise (an HTTP
    date is left to the backoff)."""
    if header is None or not header.strip().isascii() or not header.strip().isdigit():
        return None
    return timedelta(seconds=int(header.strip()))
