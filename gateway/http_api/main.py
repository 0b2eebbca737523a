"""The HTTP API's process: `warden api`, and `python -m gateway.http_api` (how `warden up` runs it)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from aiokafka.errors import KafkaError

from gateway.http_api.app import serve
from gateway.http_api.limits import RateLimit
from gateway.http_api.openapi import openapi_text
from gateway.http_api.service import ApiService
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.trust import PinnedServiceKeys
from schemas.auth import Role

_log = logging.getLogger("warden.api")


# How long a start waits for the services' key files in its home when no key is configured: under
# `warden up` the API starts beside the streams worker and the signer, which make theirs as they start.
KEYS_WAIT_S = 60.0
# The roles whose outcomes the API verifies, by the variable that pins their keys, and their name.
_PINNED: dict[str, tuple[Role, str]] = {
    "WARDEN_WORKER_KEYS": ("worker", "the streams workers"),
    "WARDEN_SIGNER_KEYS": ("signer", "the signers"),
}


def unpinned(settings: Settings, wait_s: float) -> list[str]:
    """The variables of the roles this API pins no key of (none configured, no key file in its
    home), after waiting up to ``wait_s`` for their key files; [] once it pins a key of each."""
    keys = PinnedServiceKeys(settings)
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        missing = [variable for variable, (role, _) in _PINNED.items() if not keys.pins_any(role)]
        if not missing or time.monotonic() >= deadline:
            return missing
        if not said:
            _log.info("waiting up to %.0f s for the services' keys under %s/services", wait_s, settings.home)
            said = True
        time.sleep(0.25)


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
    missing = unpinned(settings, KEYS_WAIT_S)
    if missing:
        _log.error(
            "the API pins no key of %s, so it would believe no outcome and answer every request no_outcome_yet: "
            "set %s (key_id=<public key hex>,...: docker-compose.yml's `keys` service prints them), or run it "
            "with the home of the services, whose $WARDEN_HOME/services/<role>/*.pub it reads (%s)",
            " nor of ".join(_PINNED[variable][1] for variable in missing),
            " and ".join(missing),
            settings.home,
        )
        return 1
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
