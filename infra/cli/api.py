"""``warden api``: the Intents API over HTTP (`sdk.http_api`), on loopback by default (WARDEN_API_HTTP).
`warden up` runs the same as a supervised service (``python -m sdk.http_api``)."""

from __future__ import annotations

import argparse

from sdk import http_api


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    p.set_defaults(handler=http_api.run)
    http_api.add_arguments(p)
