"""The HTTP API's process: `warden api`, and `python -m gateway.http_api` (how `warden up` runs it)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiokafka.errors import KafkaError

from gateway.http_api.app import serve
from gateway.http_api.limits import RateLimit
from gateway.http_api.openapi import openapi_text
from gateway.http_api.service import ApiService
from runtime.clock import utcnow
from runtime.config import load

_log = logging.getLogger("warden.api")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`warden api`'s options, the same for `python -m gateway.http_api` (how `warden up` runs it)."""
    parser.add_argument("--listen", metavar="HOST:PORT", help="where to listen (default: WARDEN_API_HTTP)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds a request waits for its outcome before 202 (default 60)"
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="requests per second per agent before 429 (default 20)"
    )
    parser.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument(
        "--openapi", action="store_true", help="print the OpenAPI document and exit (what clients are generated from)"
    )


def run(args: argparse.Namespace) -> int:
    if args.openapi:
        sys.stdout.write(openapi_text())
        return 0
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.timeout <= 0 or args.rate <= 0:
        _log.error("--timeout and --rate must be positive")
        return 2
    settings = load()
    listen = args.listen or settings.api_http
    service = ApiService(
        settings, now=utcnow, timeout_s=args.timeout, rate=RateLimit(per_s=args.rate, burst=2 * args.rate)
    )
    try:
        asyncio.run(serve(service, listen))
    except KeyboardInterrupt:
        pass
    except KafkaError as exc:
        _log.error(
            "cannot reach the broker at %s (%s): start the stack (`warden up`) or set WARDEN_BROKER",
            settings.broker,
            exc,
        )
        return 1
    except OSError as exc:
        _log.error(
            "cannot serve the API at %s (%s): free the port, or choose another with --listen or WARDEN_API_HTTP",
            listen,
            exc.strerror or exc,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="warden api", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
