"""The bearer credential of `warden mcp --http`: one random token per server, checked by the MCP
SDK's own resource-server support (a `TokenVerifier` and `AuthSettings`), so a request without it
gets the SDK's 401.

The token is bound to this server's resource URL (the MCP endpoint): the verifier reports that
URL as the token's `resource` and the SDK refuses any token reported for another. The token is a
local credential and goes nowhere else: the server reaches Kafka and the chain with its own
settings, never with what a client sent.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from runtime.config import Settings
from schemas.errors import WardenError

MCP_PATH = "/mcp"
# Who holds a valid token, as far as the SDK's session binding is concerned: there is one client.
CLIENT_ID = "warden-mcp-bearer"


class SecretFileUnusable(WardenError):
    """A setting names a file to hold a secret, and that file is empty or cannot be read."""


def token_file(home: Path, agent_id: str) -> Path:
    """Where `warden mcp --http` writes the token it generates for ``agent_id``."""
    return home / "agents" / agent_id / "mcp_token"


def base_url(host: str, port: int) -> str:
    """The server's origin, e.g. ``http://127.0.0.1:8765`` (an IPv6 host in brackets)."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


def resource_url(host: str, port: int) -> str:
    """The MCP endpoint, which is also the resource a token is bound to."""
    return base_url(host, port) + MCP_PATH


def server_token(settings: Settings, agent_id: str) -> tuple[str, Path]:
    """The token this server accepts and the file it is in: read from WARDEN_MCP_TOKEN_FILE when
    set, else a new random one written (mode 0600) to `token_file`, replacing any earlier one."""
    if settings.mcp_token_file:
        path = Path(settings.mcp_token_file)
        hint = (
            'write a token into it (e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))" '
            f"> {path}`), or unset it to have a token generated"
        )
        return read_secret_file("WARDEN_MCP_TOKEN_FILE", path, hint), path
    path = token_file(settings.home, agent_id)
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start, and set again for a file an earlier run left with other modes.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    return token, path


def read_secret_file(variable: str, path: Path, hint: str) -> str:
    """The secret in the file the setting ``variable`` names, stripped; `SecretFileUnusable` if the
    file cannot be read or holds nothing, with ``hint`` saying what to put there."""
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise SecretFileUnusable(
            f"{variable}={path} cannot be read ({exc.strerror}): make it readable by this process and {hint}"
        ) from None
    if not secret:
        raise SecretFileUnusable(f"{variable}={path} is empty: {hint}")
    return secret


class BearerTokenVerifier:
    """A `TokenVerifier` that accepts exactly one token, for one resource URL."""

    def __init__(self, token: str, resource: str):
        if not token:
            raise ValueError("an empty bearer token would accept anyone: configure a non-empty one")
        self._token = token.encode()
        self.resource = resource

    async def verify_token(self, token: str) -> AccessToken | None:
        # compare_digest: the time taken does not say how much of a guess was right.
        if not hmac.compare_digest(token.encode(), self._token):
            return None
        # The SDK keeps this AccessToken on the request; it carries a placeholder rather than the
        # credential, so nothing downstream can pass the token on.
        return AccessToken(token="redacted", client_id=CLIENT_ID, scopes=[], resource=self.resource)


def auth_settings(host: str, port: int) -> AuthSettings:
    """The SDK's resource-server settings for a server on ``host:port``: its own origin as the
    issuer (there is no separate authorization server: the token is issued locally at start) and
    its MCP endpoint as the resource every accepted token must be bound to."""
    return AuthSettings(
        issuer_url=base_url(host, port),
        resource_server_url=resource_url(host, port),
        validate_token_resource=True,
    )
