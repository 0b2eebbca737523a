"""``warden api``: the Intents API over HTTP (`gateway.http_api`), on loopback by default (WARDEN_API_HTTP).
`warden up` runs the same as a supervised service (``python -m gateway.http_api``)."""

from __future__ import annotations

import argparse

from gateway.http_api import main as http_api


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    p.set_defaults(handler=http_api.run)
    http_api.add_arguments(p)
