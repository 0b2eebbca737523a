"""``warden mcp --agent AGENT_ID``: the MCP server acting for one agent (`sdk.mcp_server`). Over
stdio by default, the transport an MCP client starts a local server with: stdout is the protocol,
so every log line goes to stderr. With ``--http``, over the SDK's streamable HTTP transport on
localhost, every request carrying a bearer token (`sdk.mcp_auth`)."""

from __future__ import annotations

import argparse
import logging
import sys

from infra.cli.output import fail, note
from runtime.config import load
from sdk.mcp_auth import BearerTokenVerifier, TokenUnavailable, auth_settings, resource_url, server_token
from sdk.mcp_server import AgentNotProvisioned, agent_server


def cmd_mcp(args) -> int:
    # Before the server is built: the MCP SDK configures logging only when nothing has, and any
    # handler on stdout would corrupt the stdio protocol.
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    settings = load()
    if not args.http:
        try:
            server = agent_server(settings, args.agent, timeout_s=args.timeout)
        except AgentNotProvisioned as exc:
            return fail("warden mcp", exc, 2)
        server.run("stdio")
        return 0
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
    except (AgentNotProvisioned, TokenUnavailable) as exc:
        return fail("warden mcp", exc, 2)
    # The path only: the token itself never goes into a log.
    note(
        f"warden mcp: agent {args.agent} at {url}; send `Authorization: Bearer <token>` with the token in {token_path}"
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
