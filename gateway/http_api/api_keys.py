"""The HTTP API's credentials (`warden api`): an agent's API keys, and the short-lived bearer tokens
`POST /v1/auth/agent-token` trades them for.

An API key is issued by an admin (`warden agents api-key`), shown once, and kept only as its
SHA-256 under ``$WARDEN_HOME/agents/<agent>/api_keys.json``; it can carry an expiry and be revoked.
A token is a JWT (HS256, PyJWT) signed with a secret of this home's (``api/token_secret``, 0600),
naming the agent and the key it came from. Every request re-reads the key's record, so a revoked
or expired key stops its tokens at once, not when they expire.

These credentials only say which agent is asking. They grant nothing the agent's policy does
not: the API signs the agent's intents with its intent key, and the worker and the signer judge
them like any other.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import orjson

from schemas.errors import WardenError

KEY_PREFIX = "wak_"
TOKEN_AUDIENCE = "warden-api"
TOKEN_LIFETIME = timedelta(minutes=15)


class CredentialRefused(WardenError):
    """An API key or token that does not let anyone act for the agent; the message says why and what
    to do, and never repeats the secret."""


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    sha256: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def view(self, now: datetime) -> dict[str, Any]:
        """What a listing shows: never the key, nor its hash."""
        return {
            "key_id": self.key_id,
            "state": self.state(now),
            "created_at": self.created_at.isoformat(),
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


@dataclass(frozen=True)
class Caller:
    """Whom a valid token speaks for."""

    agent_id: str
    key_id: str
    expires_at: datetime


def keys_file(home: Path, agent_id: str) -> Path:
    return home / "agents" / agent_id / "api_keys.json"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _write(path: Path, records: list[ApiKeyRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = [
        {
            "key_id": r.key_id,
            "sha256": r.sha256,
            "created_at": r.created_at.isoformat(),
            "expires_at": None if r.expires_at is None else r.expires_at.isoformat(),
            "revoked_at": None if r.revoked_at is None else r.revoked_at.isoformat(),
        }
        for r in records
    ]
    # Written whole and renamed over the old file: a reader never sees half of it.
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    os.replace(temporary, path)


def api_keys(home: Path, agent_id: str) -> list[ApiKeyRecord]:
    path = keys_file(home, agent_id)
    if not path.exists():
        return []
    return [
        ApiKeyRecord(
            key_id=row["key_id"],
            sha256=row["sha256"],
            created_at=datetime.fromisoformat(row["created_at"]),
            expires_at=_when(row.get("expires_at")),
            revoked_at=_when(row.get("revoked_at")),
        )
        for row in orjson.loads(path.read_bytes())
    ]


def issue_api_key(
    home: Path, agent_id: str, now: datetime, expires_at: datetime | None = None
) -> tuple[str, ApiKeyRecord]:
    """A new API key for ``agent_id``: the key itself (to show once) and the record kept of it."""
    if expires_at is not None and expires_at <= now:
        raise CredentialRefused(f"--expires-at {expires_at.isoformat()} is not in the future; give a later time")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    record = ApiKeyRecord(key_id=key_id, sha256=_digest(secret), created_at=now, expires_at=expires_at)
    _write(keys_file(home, agent_id), [*api_keys(home, agent_id), record])
    return f"{KEY_PREFIX}{key_id}.{secret}", record


def revoke_api_key(home: Path, agent_id: str, key_id: str, now: datetime) -> ApiKeyRecord:
    records = api_keys(home, agent_id)
    found = [r for r in records if r.key_id == key_id]
    if not found:
        known = ", ".join(r.key_id for r in records) or "none"
        raise CredentialRefused(f"agent {agent_id!r} has no API key {key_id!r} (its keys: {known})")
    revoked = found[0] if found[0].revoked_at is not None else ApiKeyRecord(**{**found[0].__dict__, "revoked_at": now})
    _write(keys_file(home, agent_id), [revoked if r.key_id == key_id else r for r in records])
    return revoked


def _active_key(home: Path, agent_id: str, key_id: str, now: datetime) -> ApiKeyRecord:
    for record in api_keys(home, agent_id):
        if record.key_id == key_id:
            state = record.state(now)
            if state != "active":
                raise CredentialRefused(
                    f"API key {key_id} of agent {agent_id!r} is {state}; an admin issues a new one with "
                    f"`warden agents api-key --agent {agent_id}`"
                )
            return record
    raise CredentialRefused(f"agent {agent_id!r} has no API key {key_id!r}")


def check_api_key(home: Path, agent_id: str, api_key: str, now: datetime) -> ApiKeyRecord:
    """The active record ``api_key`` matches for ``agent_id``, or `CredentialRefused`."""
    body = api_key.removeprefix(KEY_PREFIX)
    key_id, _, secret = body.partition(".")
    if not api_key.startswith(KEY_PREFIX) or not key_id or not secret:
        raise CredentialRefused(f"api_key is not a Warden API key (they look like {KEY_PREFIX}<id>.<secret>)")
    record = _active_key(home, agent_id, key_id, now)
    if not hmac.compare_digest(record.sha256, _digest(secret)):
        raise CredentialRefused(f"api_key does not match agent {agent_id!r}'s key {key_id}")
    return record


def token_secret(home: Path) -> bytes:
    """The secret this home's tokens are signed with: created once (0600), read after."""
    path = home / "api" / "token_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
    secret = path.read_bytes()
    if len(secret) < 32:
        raise CredentialRefused(f"{path} holds {len(secret)} bytes, not a token secret: delete it to make a new one")
    return secret


def issue_token(home: Path, record: ApiKeyRecord, agent_id: str, now: datetime) -> tuple[str, datetime]:
    """A bearer token for ``agent_id`` from its key ``record``, and when it expires (at most
    `TOKEN_LIFETIME`, and never after the key does)."""
    expires_at = now + TOKEN_LIFETIME
    if record.expires_at is not None:
        expires_at = min(expires_at, record.expires_at)
    claims = {
        "sub": agent_id,
        "key": record.key_id,
        "aud": TOKEN_AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, token_secret(home), algorithm="HS256"), expires_at


def check_token(home: Path, token: str, now: datetime) -> Caller:
    """Whom ``token`` speaks for, or `CredentialRefused`: bad signature, expired, or its API key
    revoked or expired since."""
    try:
        claims = jwt.decode(
            token,
            token_secret(home),
            algorithms=["HS256"],
            audience=TOKEN_AUDIENCE,
            options={
                "require": ["sub", "key", "exp", "iat"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidTokenError as exc:
        raise CredentialRefused(
            f"the bearer token is not valid ({exc}); get one from POST /v1/auth/agent-token"
        ) from None
    expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=now.tzinfo)
    # Expiry against the `now` given, not the machine's clock read inside PyJWT: time is an argument.
    if now >= expires_at:
        raise CredentialRefused("the bearer token has expired; get a new one from POST /v1/auth/agent-token")
    agent_id, key_id = str(claims["sub"]), str(claims["key"])
    _active_key(home, agent_id, key_id, now)
    return Caller(agent_id=agent_id, key_id=key_id, expires_at=expires_at)


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
