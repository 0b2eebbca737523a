"""``warden api``: the Intents API over HTTP (`sdk.http_api`), on loopback by default."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from infra.cli.output import note
from runtime.clock import utcnow
from runtime.config import load
from sdk.http_api import ApiService, RateLimit, build_app


def cmd_api(args) -> int:
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    settings = load()
    host, _, port = (args.listen or settings.api_http).rpartition(":")
    service = ApiService(
        settings, now=utcnow, timeout_s=args.timeout, rate=RateLimit(per_s=args.rate, burst=2 * args.rate)
    )
    note(f"warden api: the Intents API at http://{host}:{port}/v1 (OpenAPI: /v1/openapi.json)")
    web.run_app(build_app(service), host=host.strip("[]"), port=int(port), print=None, access_log=None)
    return 0


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    p.set_defaults(handler=cmd_api)
    p.add_argument("--listen", metavar="HOST:PORT", help="where to listen (default: WARDEN_API_HTTP, 127.0.0.1:8780)")
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds a request waits for its outcome before 202 (default 60)"
    )
    p.add_argument("--rate", type=float, default=20.0, help="requests per second per agent, before 429 (default 20)")
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
