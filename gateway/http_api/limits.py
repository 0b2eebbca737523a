"""What keeps a client from costing the HTTP API without bound: the Idempotency-Key of a
transaction request, rate limits per agent and per address, failed token attempts."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.http_api.errors import Refused
from schemas.codes import Code

# How long the Intents API's idempotency promise lasts: a key seen within it gets the first answer.
IDEMPOTENCY_WINDOW_S = 24 * 3600


IDEMPOTENCY_KEYS_PER_AGENT = 10_000


@dataclass
class _Remembered:
    fingerprint: str
    at: float
    answer: tuple[int, bytes] | None = None  # None while the first request is in progress


@dataclass
class Idempotency:
    """The Intents API's Idempotency-Key for POST .../transactions: the first request 201, a completed
    duplicate 200 with its answer, one in progress 409, the key with another body 422. The
    pipeline enforces the key too (the worker and the signer answer a reused key with the first
    intent's outcome, and refuse it with another body), across restarts of this server."""

    window_s: float = IDEMPOTENCY_WINDOW_S
    # At most this many keys per agent: past it the agent's oldest is forgotten (the pipeline
    # still answers a reused key with the first intent's outcome), so no agent can grow the
    # server's memory without bound by sending new keys.
    per_agent: int = IDEMPOTENCY_KEYS_PER_AGENT
    # Per agent, its keys oldest first (a dict keeps insertion order): expiry and the cap drop
    # from the front, so a request costs the same however many keys are held.
    seen: dict[str, dict[str, _Remembered]] = field(default_factory=dict)

    def begin(self, agent_id: str, key: str, fingerprint: str, now_s: float) -> tuple[int, bytes] | None:
        held = self.seen.setdefault(agent_id, {})
        for old, remembered in list(held.items()):
            if now_s - remembered.at <= self.window_s and len(held) < self.per_agent:
                break
            if remembered.answer is None and now_s - remembered.at <= self.window_s:
                break  # in progress: its request finishes it
            del held[old]
        found = held.get(key)
        if found is None:
            held[key] = _Remembered(fingerprint, now_s)
            return None
        if found.fingerprint != fingerprint:
            raise Refused(
                422,
                "idempotency_key_reused",
                f"Idempotency-Key {key!r} was used with another request body; send a new key for a new request",
                code=Code.IDEMPOTENCY_KEY_REUSED,
            )
        if found.answer is None:
            raise Refused(
                409,
                "in_progress",
                f"a request with Idempotency-Key {key!r} is in progress; retry later",
                headers={"Retry-After": "1"},
            )
        return found.answer

    def finish(self, agent_id: str, key: str, answer: tuple[int, bytes] | None) -> None:
        """The answer to replay, or None to forget the key (a request that was not answered)."""
        held = self.seen.get(agent_id, {})
        if answer is None:
            held.pop(key, None)
        elif key in held:
            held[key].answer = answer


@dataclass
class RateLimit:
    """Requests per key (an agent, a client address): a bucket of ``burst`` that refills at ``per_s``."""

    per_s: float
    burst: float
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    # Past this many keys, the buckets that refilled are forgotten (a full bucket is the default):
    # keys a client names (agent ids, addresses) cannot grow the server's memory without bound.
    max_keys: int = 100_000

    def _tokens(self, key: str, now_s: float) -> float:
        tokens, at = self.buckets.get(key, (self.burst, now_s))
        return min(self.burst, tokens + max(0.0, now_s - at) * self.per_s)

    def wait(self, key: str, now_s: float) -> float:
        """0 if ``key`` has a request left, else the seconds until it has; nothing is taken."""
        tokens = self._tokens(key, now_s)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.per_s

    def take(self, key: str, now_s: float) -> float:
        """0 if the request may go (and it is counted), else the seconds until it may."""
        tokens = self._tokens(key, now_s)
        if len(self.buckets) >= self.max_keys and key not in self.buckets:
            self.buckets = {k: v for k, v in self.buckets.items() if self._tokens(k, now_s) < self.burst}
        if tokens < 1:
            self.buckets[key] = (tokens, now_s)
            return (1 - tokens) / self.per_s
        self.buckets[key] = (tokens - 1, now_s)
        return 0.0


@dataclass
class FailedAttempts:
    """Failed `POST /v1/auth/agent-token` attempts, counted by the client's address and by the
    credentials presented (the agent named and the key given, as one digest): past either budget,
    a wrong key is answered 429 rather than 401, with how long to wait. The key is checked before
    this is asked, so a valid key is never refused here: a stranger who names an agent and fails
    spends only their own address's and their own keys' budgets, never the agent's. (A key is 256
    random bits: the limit is what a client that keeps failing costs, not a guess's chance.)"""

    by_source: RateLimit = field(default_factory=lambda: RateLimit(per_s=0.5, burst=30))
    by_key: RateLimit = field(default_factory=lambda: RateLimit(per_s=0.2, burst=10))

    def failed(self, address: str, presented: str, now_s: float) -> float:
        """Count a failed attempt from ``address`` with the credentials whose digest is
        ``presented``: 0 while both are within their budgets, else the seconds until both are."""
        return max(self.by_source.take(address, now_s), self.by_key.take(presented, now_s))
