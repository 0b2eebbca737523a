"""One clock and one time form.

A point in time is an aware UTC ``datetime`` wherever it travels: every function
that decides something takes it as ``now`` (never reads a clock itself), and
records carry it as RFC 3339. Where time is stored or compared in bulk (rolling
windows, the signer's state) it is integer microseconds since the epoch,
converted by ``to_us`` only. Only the process edges (the Kafka loops, the CLI)
call ``utcnow``. Waiting for something with a timeout is a duration, not a
point in time, and uses ``time.monotonic``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

Clock = Callable[[], datetime]

US_PER_SECOND = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_us(now: datetime) -> int:
    """Microseconds since the epoch, exactly (no float on the way)."""
    return (now - EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    """The inverse of `to_us`, exactly."""
    return EPOCH + us * _ONE_US
