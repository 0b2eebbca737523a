"""``warden mcp --agent AGENT_ID``: the MCP server acting for one agent (`gateway.mcp_server.server`). Over
stdio by default, the transport an MCP client starts a local server with: stdout is the protocol,
so every log line goes to stderr. With ``--http``, over the SDK's streamable HTTP transport on
localhost, every request carrying a bearer token: the one generated at start (`gateway.mcp_server.auth`), or
with ``--auth-issuer`` and ``--introspection-endpoint`` an access token from that authorization
server (`gateway.mcp_server.oauth`)."""

from __future__ import annotations

import argparse
import logging
import sys

from gateway.mcp_server.auth import BearerTokenVerifier, SecretFileUnusable, auth_settings, resource_url, server_token
from gateway.mcp_server.oauth import (
    IntrospectionTokenVerifier,
    OAuthMisconfigured,
    introspection_credentials,
    oauth_auth_settings,
)
from gateway.mcp_server.server import AgentNotProvisioned, agent_server
from infra.cli.output import fail, note
from runtime.config import Settings, load


def cmd_mcp(args: argparse.Namespace) -> int:
    # Before the server is built: the MCP SDK configures logging only when nothing has, and any
    # handler on stdout would corrupt the stdio protocol.
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    settings = load()
    oauth = bool(args.auth_issuer or args.introspection_endpoint or args.required_scope)
    if oauth and not args.http:
        return fail("warden mcp", "--auth-issuer, --introspection-endpoint and --required-scope need --http", 2)
    if not args.http:
        try:
            server = agent_server(settings, args.agent, timeout_s=args.timeout)
        except AgentNotProvisioned as exc:
            return fail("warden mcp", exc, 2)
        server.run("stdio")
        return 0
    if oauth:
        return _serve_oauth(settings, args)
    url = resource_url(args.host, args.port)
    try:
        token, token_path = server_token(settings, args.agent)
        server = agent_server(
            settings,
            args.agent,
            timeout_s=args.timeout,
            auth=auth_settings(args.host, args.port),
            token_verifier=BearerTokenVerifier(token, url),
        )
    except (AgentNotProvisioned, SecretFileUnusable) as exc:
        return fail("warden mcp", exc, 2)
    # The path only: the token itself never goes into a log.
    note(
        f"warden mcp: agent {args.agent} at {url}; send `Authorization: Bearer <token>` with the token in {token_path}"
    )
    server.run("streamable-http", host=args.host, port=args.port)
    return 0


def _serve_oauth(settings: Settings, args: argparse.Namespace) -> int:
    """Over HTTP, accepting the access tokens an authorization server issues for this server."""
    if not (args.auth_issuer and args.introspection_endpoint):
        missing = "--introspection-endpoint" if args.auth_issuer else "--auth-issuer"
        return fail(
            "warden mcp",
            f"{missing} is missing: access tokens from an authorization server need both --auth-issuer (the "
            "server clients get tokens from) and --introspection-endpoint (where this server checks them)",
            2,
        )
    url = resource_url(args.host, args.port)
    try:
        verifier = IntrospectionTokenVerifier(args.introspection_endpoint, url, introspection_credentials(settings))
        server = agent_server(
            settings,
            args.agent,
            timeout_s=args.timeout,
            auth=oauth_auth_settings(args.auth_issuer, url, args.required_scope),
            token_verifier=verifier,
        )
    except (AgentNotProvisioned, SecretFileUnusable, OAuthMisconfigured) as exc:
        return fail("warden mcp", exc, 2)
    scopes = f" with scope {' '.join(args.required_scope)}" if args.required_scope else ""
    note(
        f"warden mcp: agent {args.agent} at {url}; accepting access tokens issued by {args.auth_issuer} "
        f"for this URL{scopes}, checked at {args.introspection_endpoint}"
    )
    server.run("streamable-http", host=args.host, port=args.port)
    return 0


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    p.set_defaults(handler=cmd_mcp)
    p.add_argument("--agent", required=True, help="the agent this server acts for (its intent key under WARDEN_HOME)")
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds a tool waits for an outcome; past it, it answers with the intent id to look up later",
    )
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument(
        "--http",
        action="store_true",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio; every request needs "
        "`Authorization: Bearer` with the token in WARDEN_MCP_TOKEN_FILE, or else one generated at start "
        "into $WARDEN_HOME/agents/AGENT/mcp_token (its path is printed on stderr)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind with --http (default 127.0.0.1). Any other address exposes this agent's "
        "signing power to that network, to whoever holds the token; there is no TLS",
    )
    p.add_argument("--port", type=int, default=8765, help="port to bind with --http (default 8765)")
    p.add_argument(
        "--auth-issuer",
        metavar="URL",
        help="with --http, accept access tokens from this OAuth authorization server instead of a local "
        "token (named in /.well-known/oauth-protected-resource/mcp); needs --introspection-endpoint",
    )
    p.add_argument(
        "--introspection-endpoint",
        metavar="URL",
        help="the authorization server's token introspection endpoint (RFC 7662), https unless on a "
        "loopback address; client credentials for it come from WARDEN_MCP_INTROSPECTION_CLIENT_ID and "
        "WARDEN_MCP_INTROSPECTION_SECRET_FILE",
    )
    p.add_argument(
        "--required-scope",
        metavar="SCOPE",
        action="append",
        default=[],
        help="a scope every access token must grant (repeat for several)",
    )
