"""The console's sessions, kept in memory: a random id in an HttpOnly, SameSite=Strict cookie and a
random token the pages send back with every change (CSRF). A session ends 15 minutes after its
last request, 8 hours after it began, or at logout; a restart of the console ends them all. Time
is an argument (``now``), as everywhere a rule depends on it."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

IDLE = timedelta(minutes=15)
LIFETIME = timedelta(hours=8)
# How long a login's challenge may be answered, and how many sessions the console holds at most
# (each page view without a cookie makes one: the oldest go first).
CHALLENGE_TTL = timedelta(minutes=2)
MAX_SESSIONS = 10_000


@dataclass
class Session:
    """One browser's session: anonymous (the login page) until a passkey admin logs in."""

    id: str
    csrf: str
    started_at: datetime
    seen_at: datetime
    admin_id: str | None = None
    # The bytes a login assertion signs (their SHA-256 is the challenge) and when they were given.
    login_message: bytes | None = None
    login_asked_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return now - self.seen_at > IDLE or now - self.started_at > LIFETIME

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())

    def login_challenge(self, now: datetime) -> bytes:
        """New random bytes for a login assertion to sign, replacing any earlier ones."""
        self.login_message = b"warden console login\x00" + secrets.token_bytes(32)
        self.login_asked_at = now
        return self.login_message

    def take_login_message(self, now: datetime) -> bytes | None:
        """The login bytes given last, once (a second answer finds none), if still fresh."""
        message, asked = self.login_message, self.login_asked_at
        self.login_message = self.login_asked_at = None
        if message is None or asked is None or now - asked > CHALLENGE_TTL:
            return None
        return message


class Sessions:
    """Every live session by id."""

    def __init__(self, limit: int = MAX_SESSIONS) -> None:
        self._by_id: dict[str, Session] = {}
        self._limit = limit

    def new(self, now: datetime, admin_id: str | None = None) -> Session:
        if len(self._by_id) >= self._limit:
            self.sweep(now)
        while len(self._by_id) >= self._limit:  # still full: the oldest anonymous go first, then any
            anonymous = [s for s in self._by_id.values() if s.admin_id is None] or list(self._by_id.values())
            del self._by_id[min(anonymous, key=lambda s: s.seen_at).id]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now, admin_id)
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None, now: datetime) -> Session | None:
        """The live session ``session_id`` names, its idle time restarted; None when there is none
        (unknown, ended or expired: an expired one is dropped)."""
        session = self._by_id.get(session_id or "")
        if session is None:
            return None
        if session.expired(now):
            del self._by_id[session.id]
            return None
        session.seen_at = now
        return session

    def log_in(self, anonymous: Session, admin_id: str, now: datetime) -> Session:
        """A new session for ``admin_id``, with a new id and token; the anonymous one ends (an id
        someone planted before the login is worth nothing after it)."""
        self.end(anonymous.id)
        return self.new(now, admin_id)

    def end(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)

    def sweep(self, now: datetime) -> None:
        for session in [s for s in self._by_id.values() if s.expired(now)]:
            del self._by_id[session.id]

    def __len__(self) -> int:
        return len(self._by_id)
