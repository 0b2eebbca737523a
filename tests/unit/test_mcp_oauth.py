"""Access tokens from an authorization server for `warden mcp --http` (`gateway.mcp_server.oauth`): the
verifier asks a real introspection endpoint (tests/oauth_support.py, in this process) and accepts a
token only if it is active, unexpired, for this resource and grants the required scopes; anything
else, an unreachable or garbled authorization server included, is refused and the reason logged
without the token. tests/stack/test_mcp_http_oauth.py drives the server over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp.server.auth.provider import AccessToken

from gateway.mcp_server.auth import SecretFileUnusable
from gateway.mcp_server.oauth import (
    ClientCredentials,
    IntrospectionTokenVerifier,
    OAuthMisconfigured,
    accepted,
    checked_url,
    introspection_credentials,
    oauth_auth_settings,
)
from runtime.config import Settings
from tests.oauth_support import NOT_AN_OBJECT, NOT_JSON, authorization_server

RESOURCE = "http://127.0.0.1:8765/mcp"
NOW = 1_800_000_000
GOOD = {
    "active": True,
    "aud": RESOURCE,
    "exp": NOW + 600,
    "scope": "warden:agent openid",
    "client_id": "agent-app",
    "sub": "user-7",
    "iss": "https://as.example",
}


def _decide(answer: object) -> str | AccessToken:
    return accepted(answer, resource=RESOURCE, now=NOW)


def test_an_active_token_for_this_resource_is_accepted_without_the_token() -> None:
    access = _decide(GOOD)
    assert not isinstance(access, str), access
    assert access.token == "redacted" and access.resource == RESOURCE
    assert access.scopes == ["warden:agent", "openid"] and access.expires_at == NOW + 600
    assert (access.client_id, access.subject, access.claims) == ("agent-app", "user-7", {"iss": "https://as.example"})


@pytest.mark.parametrize(
    "aud",
    [["https://other.example/mcp", RESOURCE], [RESOURCE]],
    ids=["list-with-this-resource", "list-of-one"],
)
def test_an_audience_list_naming_this_resource_is_accepted(aud: list[str]) -> None:
    assert not isinstance(_decide(GOOD | {"aud": aud}), str)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"active": False}, "not active"),
        ({"active": "true"}, "not active"),
        ({"aud": "https://other.example/mcp"}, "does not name this server"),
        ({"aud": ["https://other.example/mcp"]}, "does not name this server"),
        ({"aud": RESOURCE + "/"}, "does not name this server"),
        ({"aud": "http://127.0.0.1:8765"}, "does not name this server"),
        ({"aud": None}, "no audience"),
        ({"aud": [1]}, "no audience"),
        ({"exp": NOW}, "expired"),
        ({"exp": NOW - 1}, "expired"),
        ({"exp": NOW - 0.5}, "expired"),
        ({"exp": "never"}, "not a number of seconds"),
        ({"exp": True}, "not a number of seconds"),
        ({"exp": float("nan")}, "not a number of seconds"),
        ({"exp": float("inf")}, "not a number of seconds"),
        ({"nbf": NOW + 60}, "not valid yet"),
        ({"nbf": float("nan")}, "not valid yet"),
        ({"scope": ["warden:agent"]}, "not a space-separated string"),
    ],
    ids=repr,
)
def test_a_token_is_refused_with_the_reason(change: dict[str, Any], reason: str) -> None:
    answer = {key: value for key, value in (GOOD | change).items() if value is not None}
    decision = _decide(answer)
    assert isinstance(decision, str) and reason in decision


def test_the_granted_scopes_are_kept_for_the_sdk_to_check() -> None:
    # The SDK's middleware refuses a token without a required scope with 403 insufficient_scope
    # (tests/stack/test_mcp_http.py); the verifier reports what the token grants.
    narrowed = _decide(GOOD | {"scope": "openid"})
    assert not isinstance(narrowed, str) and narrowed.scopes == ["openid"], narrowed
    unscoped = _decide({key: value for key, value in GOOD.items() if key != "scope"})
    assert not isinstance(unscoped, str) and unscoped.scopes == [], unscoped


@pytest.mark.parametrize("answer", [[GOOD], "active", None], ids=repr)
def test_an_answer_that_is_not_an_object_is_refused(answer: object) -> None:
    assert _decide(answer) == "the introspection response is not a JSON object"


def _verify(
    endpoint: str, token: str, credentials: ClientCredentials | None = None, clock: Callable[[], float] = lambda: NOW
) -> AccessToken | None:
    verifier = IntrospectionTokenVerifier(endpoint, RESOURCE, credentials, clock=clock)
    return asyncio.run(verifier.verify_token(token))


def test_the_verifier_asks_the_endpoint_and_logs_a_refusal_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    tokens = {"tok-good": GOOD, "tok-other": GOOD | {"aud": "https://other.example/mcp"}}
    with authorization_server(tokens) as server, caplog.at_level(logging.WARNING, "gateway.mcp_server.oauth"):
        good = _verify(server.introspection_endpoint, "tok-good")
        assert good is not None and good.resource == RESOURCE
        assert _verify(server.introspection_endpoint, "tok-other") is None
        assert _verify(server.introspection_endpoint, "tok-unknown") is None
        # The server's clock decides: the same token, later, has expired.
        assert _verify(server.introspection_endpoint, "tok-good", clock=lambda: NOW + 600) is None
    assert server.asked == ["tok-good", "tok-other", "tok-unknown", "tok-good"]
    logged = caplog.text
    assert "does not name this server" in logged and "not active" in logged and "expired" in logged
    assert "tok-" not in logged


@pytest.mark.parametrize(("token", "reason"), [(NOT_JSON, "did not answer JSON"), (NOT_AN_OBJECT, "not a JSON object")])
def test_an_authorization_server_answering_garbage_is_refused(
    caplog: pytest.LogCaptureFixture, token: str, reason: str
) -> None:
    with authorization_server({}) as server, caplog.at_level(logging.WARNING, "gateway.mcp_server.oauth"):
        assert _verify(server.introspection_endpoint, token) is None
    assert reason in caplog.text


def test_an_authorization_server_that_cannot_be_reached_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with caplog.at_level(logging.WARNING, "gateway.mcp_server.oauth"):
        assert _verify(f"http://127.0.0.1:{port}/introspect", "tok-good") is None
    assert "could not be reached" in caplog.text


def test_client_credentials_are_sent_and_a_refused_client_is_a_refused_token(caplog: pytest.LogCaptureFixture) -> None:
    with authorization_server({"tok-good": GOOD}, client=("warden-mcp", "s3cret")) as server:
        assert _verify(server.introspection_endpoint, "tok-good", ClientCredentials("warden-mcp", "s3cret"))
        with caplog.at_level(logging.WARNING, "gateway.mcp_server.oauth"):
            assert _verify(server.introspection_endpoint, "tok-good", ClientCredentials("warden-mcp", "wrong")) is None
            assert _verify(server.introspection_endpoint, "tok-good") is None
    assert server.refused_clients == 2 and "answered HTTP 401" in caplog.text
    assert "s3cret" not in repr(ClientCredentials("warden-mcp", "s3cret"))


@pytest.mark.parametrize(
    "url",
    ["http://as.example/introspect", "http://10.0.0.5/introspect", "ftp://127.0.0.1/x", "https:///x", "as.example"],
)
def test_an_endpoint_in_the_clear_off_this_host_is_refused_at_start(url: str) -> None:
    with pytest.raises(OAuthMisconfigured, match="must be an https:// URL"):
        IntrospectionTokenVerifier(url, RESOURCE)


@pytest.mark.parametrize(
    "url", ["https://as.example/introspect", "http://127.0.0.1:9000/i", "http://[::1]:9000/i", "http://localhost/i"]
)
def test_https_or_loopback_endpoints_are_allowed(url: str) -> None:
    assert checked_url("--introspection-endpoint", url) == url


def test_the_auth_settings_name_the_issuer_the_resource_and_the_scopes() -> None:
    settings = oauth_auth_settings("https://as.example/realms/warden", RESOURCE, ["warden:agent"])
    assert str(settings.issuer_url) == "https://as.example/realms/warden"
    assert str(settings.resource_server_url) == RESOURCE and settings.validate_token_resource is True
    assert settings.required_scopes == ["warden:agent"]
    with pytest.raises(OAuthMisconfigured, match="--auth-issuer"):
        oauth_auth_settings("http://as.example", RESOURCE, [])


def test_client_credentials_come_from_the_settings_both_or_neither(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    settings = Settings()
    none = dataclasses.replace(settings, mcp_introspection_client_id=None, mcp_introspection_secret_file=None)
    assert introspection_credentials(none) is None
    both = dataclasses.replace(
        none, mcp_introspection_client_id="warden-mcp", mcp_introspection_secret_file=str(secret)
    )
    assert introspection_credentials(both) == ClientCredentials("warden-mcp", "s3cret")
    with pytest.raises(OAuthMisconfigured, match="WARDEN_MCP_INTROSPECTION_SECRET_FILE is not set"):
        introspection_credentials(dataclasses.replace(both, mcp_introspection_secret_file=None))
    with pytest.raises(OAuthMisconfigured, match="WARDEN_MCP_INTROSPECTION_CLIENT_ID is not set"):
        introspection_credentials(dataclasses.replace(both, mcp_introspection_client_id=None))
    secret.write_text("\n")
    with pytest.raises(SecretFileUnusable, match="is empty"):
        introspection_credentials(both)
