"""Access tokens from an OAuth authorization server for `warden mcp --http`: a `TokenVerifier` that
asks the server's token introspection endpoint (RFC 7662) about each bearer token and accepts it
only for this MCP server, as the MCP authorization rules ask of a resource server.

A token is accepted only if the authorization server says it is `active`, it has not expired by
this server's clock, its audience (`aud`, the RFC 8707 resource indicator the client asked for)
names this server's resource URL exactly. Anything else, including an authorization server that
cannot be reached or answers something that is not an introspection response, refuses the request
(the SDK's 401); the reason is logged, the token never. A token without a required scope is
refused by the SDK's own middleware with 403 ``insufficient_scope`` naming the scope, as the MCP
authorization rules ask, so that a client can ask its authorization server for it.
The token goes nowhere but the introspection endpoint: the `AccessToken` kept on the request
carries a placeholder, and the server reaches Kafka and the chain with its own settings.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from gateway.mcp_server.auth import read_secret_file
from runtime.config import Settings
from schemas.errors import WardenError

logger = logging.getLogger(__name__)

# Long enough for an authorization server under load; a request waits this long at most.
INTROSPECTION_TIMEOUT_S = 10.0


class OAuthMisconfigured(WardenError):
    """The authorization server options or settings cannot be used: the message says which and why."""


@dataclass(frozen=True)
class ClientCredentials:
    """How this server authenticates to the introspection endpoint (HTTP Basic, RFC 6749 2.3.1)."""

    client_id: str
    secret: str = field(repr=False)


def checked_url(name: str, url: str) -> str:
    """``url`` if it is https, or http to a loopback address (where nothing crosses a network);
    else `OAuthMisconfigured` naming the option."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url
    raise OAuthMisconfigured(
        f"{name} {url!r} must be an https:// URL (or http:// to a loopback address such as 127.0.0.1): "
        f"tokens and their answers must not cross a network in the clear"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def introspection_credentials(settings: Settings) -> ClientCredentials | None:
    """The client credentials for the introspection call, from WARDEN_MCP_INTROSPECTION_CLIENT_ID and
    the secret in WARDEN_MCP_INTROSPECTION_SECRET_FILE: both or neither."""
    client_id, secret_file = settings.mcp_introspection_client_id, settings.mcp_introspection_secret_file
    if client_id is None and secret_file is None:
        return None
    if client_id is None or secret_file is None:
        missing = (
            "WARDEN_MCP_INTROSPECTION_SECRET_FILE" if secret_file is None else "WARDEN_MCP_INTROSPECTION_CLIENT_ID"
        )
        raise OAuthMisconfigured(
            f"{missing} is not set: the introspection call authenticates with a client id and a secret "
            f"file together; set both, or neither if the authorization server needs no client credentials"
        )
    secret = read_secret_file(
        "WARDEN_MCP_INTROSPECTION_SECRET_FILE",
        Path(secret_file),
        "write into it the client secret the authorization server issued for this server",
    )
    return ClientCredentials(client_id, secret)


def accepted(answer: object, *, resource: str, now: float) -> AccessToken | str:
    """The decision on an introspection response: the `AccessToken` to keep on the request (without
    the token), or the reason it is refused."""
    if not isinstance(answer, dict):
        return "the introspection response is not a JSON object"
    if answer.get("active") is not True:
        return "the token is not active"
    exp = answer.get("exp")
    if exp is not None:
        # A NumericDate (RFC 7519) may have a fraction; a bool is not one, though Python calls it an int.
        if not isinstance(exp, int | float) or isinstance(exp, bool) or not math.isfinite(exp):
            return f"the token's exp is not a number of seconds ({type(exp).__name__})"
        if exp <= now:
            return "the token has expired"
    nbf = answer.get("nbf")
    if nbf is not None and (
        not isinstance(nbf, int | float) or isinstance(nbf, bool) or not math.isfinite(nbf) or nbf > now
    ):
        return "the token is not valid yet (nbf)"
    aud = answer.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        return "the token has no audience (aud): it is not bound to any resource"
    if resource not in audiences:
        return f"the token's audience {audiences!r} does not name this server ({resource})"
    scope = answer.get("scope", "")
    if not isinstance(scope, str):
        return "the token's scope is not a space-separated string"
    granted = scope.split()  # the SDK checks the required ones against these (403 insufficient_scope)
    client_id, sub, iss = answer.get("client_id"), answer.get("sub"), answer.get("iss")
    return AccessToken(
        token="redacted",
        client_id=client_id if isinstance(client_id, str) and client_id else "unknown",
        scopes=granted,
        expires_at=None if exp is None else int(exp),
        resource=resource,
        subject=sub if isinstance(sub, str) else None,
        # The issuer, with the client and subject, names the principal a session is bound to.
        claims={"iss": iss} if isinstance(iss, str) else None,
    )


class IntrospectionTokenVerifier:
    """A `TokenVerifier` that introspects each token at the authorization server (RFC 7662)."""

    def __init__(
        self,
        introspection_endpoint: str,
        resource: str,
        credentials: ClientCredentials | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.endpoint = checked_url("--introspection-endpoint", introspection_endpoint)
        self.resource = resource
        self._auth = httpx2.BasicAuth(credentials.client_id, credentials.secret) if credentials else None
        self._clock = clock

    async def verify_token(self, token: str) -> AccessToken | None:
        decision = await self._decide(token)
        if isinstance(decision, str):
            logger.warning("bearer token refused: %s", decision)
            return None
        return decision

    async def _decide(self, token: str) -> AccessToken | str:
        if not token:
            return "the bearer token is empty"
        try:
            # A client per call: no connection outlives the request that needed it.
            # The client credentials (if any) on the client: post() takes no None for "none".
            async with httpx2.AsyncClient(
                timeout=INTROSPECTION_TIMEOUT_S, follow_redirects=False, auth=self._auth
            ) as http:
                response = await http.post(self.endpoint, data={"token": token})
        except httpx2.HTTPError as exc:
            return f"the introspection endpoint {self.endpoint} could not be reached ({type(exc).__name__})"
        if response.status_code != 200:
            # The body is not logged: an authorization server may echo what it was sent.
            return f"the introspection endpoint answered HTTP {response.status_code}"
        try:
            answer = response.json()
        except ValueError:
            return "the introspection endpoint did not answer JSON"
        return accepted(answer, resource=self.resource, now=self._clock())


def oauth_auth_settings(issuer: str, resource: str, required_scopes: Sequence[str]) -> AuthSettings:
    """The SDK's resource-server settings: its protected resource metadata names ``issuer`` as the
    authorization server and ``required_scopes`` as the scopes to ask for; the SDK also refuses a
    token the verifier reports for another resource (401), or one without a required scope (403)."""
    return AuthSettings(
        issuer_url=checked_url("--auth-issuer", issuer),
        resource_server_url=resource,
        required_scopes=list(required_scopes) or None,
        validate_token_resource=True,
    )
