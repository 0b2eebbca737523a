"""The bearer credential of `warden mcp --http`: the verifier accepts the one token only, bound to
this server's resource URL, and the token file is generated 0600 or read from
WARDEN_MCP_TOKEN_FILE. tests/stack/test_mcp_http.py drives the server over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import stat
from pathlib import Path

import pytest
from mcp.server.auth.provider import AccessToken

from gateway.mcp_server.auth import (
    BearerTokenVerifier,
    SecretFileUnusable,
    auth_settings,
    resource_url,
    server_token,
    token_file,
)
from runtime.config import Settings

TOKEN = "s3cret-token-of-some-length"
URL = "http://127.0.0.1:8765/mcp"


def _verify(token: str) -> AccessToken | None:
    return asyncio.run(BearerTokenVerifier(TOKEN, URL).verify_token(token))


def test_the_right_token_is_accepted_for_this_resource_and_is_not_carried_on() -> None:
    access = _verify(TOKEN)
    assert access is not None and access.resource == URL
    assert TOKEN not in access.model_dump_json()


@pytest.mark.parametrize("token", ["wrong", "", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), " " + TOKEN], ids=repr)
def test_any_other_token_is_refused(token: str) -> None:
    assert _verify(token) is None


def test_an_empty_configured_token_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        BearerTokenVerifier("", URL)


def test_the_auth_settings_name_the_local_server_and_check_the_tokens_resource() -> None:
    settings = auth_settings("127.0.0.1", 8765)
    assert str(settings.resource_server_url) == resource_url("127.0.0.1", 8765) == URL
    assert str(settings.issuer_url) == "http://127.0.0.1:8765"
    assert settings.validate_token_resource is True
    assert resource_url("::1", 9000) == "http://[::1]:9000/mcp"


def test_a_generated_token_is_written_0600_and_replaced_at_each_start(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings(), home=tmp_path / "home", mcp_token_file=None)
    token, path = server_token(settings, "agent-unit")
    assert path == token_file(settings.home, "agent-unit") and path.read_text().strip() == token
    assert len(token) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    again, _ = server_token(settings, "agent-unit")
    assert again != token and path.read_text().strip() == again


def test_a_configured_token_file_is_read_and_an_empty_or_missing_one_refused(tmp_path: Path) -> None:
    given = tmp_path / "token"
    given.write_text(TOKEN + "\n")
    settings = dataclasses.replace(Settings(), home=tmp_path / "home", mcp_token_file=str(given))
    assert server_token(settings, "agent-unit") == (TOKEN, given)
    assert not token_file(settings.home, "agent-unit").exists()
    given.write_text("\n")
    with pytest.raises(SecretFileUnusable, match="is empty"):
        server_token(settings, "agent-unit")
    missing = dataclasses.replace(settings, mcp_token_file=str(tmp_path / "nothing"))
    with pytest.raises(SecretFileUnusable, match="cannot be read"):
        server_token(missing, "agent-unit")
