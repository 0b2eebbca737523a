"""``warden mcp --agent AGENT_ID``: the MCP server acting for one agent (`sdk.mcp_server`), over
stdio, the transport an MCP client starts a local server with. stdout is the protocol: every log
line goes to stderr."""

from __future__ import annotations

import argparse
import logging
import sys

from infra.cli.output import fail
from runtime.config import load
from sdk.mcp_server import AgentNotProvisioned, agent_server


def cmd_mcp(args) -> int:
    # Before the server is built: the MCP SDK configures logging only when nothing has, and any
    # handler on stdout would corrupt the protocol.
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    settings = load()
    try:
        server = agent_server(settings, args.agent, timeout_s=args.timeout)
    except AgentNotProvisioned as exc:
        return fail("warden mcp", exc, 2)
    server.run("stdio")
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
