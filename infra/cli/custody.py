"""What the commands that touch custody share: reading a client share from a file, and
publishing the custody events a change leaves behind."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from infra.cli.output import note
from runtime.config import Settings
from schemas.sealing import decode_client_share
from sdk.client import Client


def read_client_share_text(path: str) -> str:
    """A client share from a file (``-``: standard input), never from the command line, where
    other users of the machine could read it in the process list."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    decode_client_share(text)  # a clear error now rather than an opaque refusal later
    return text.strip()


def publish(settings: Settings, emits) -> None:
    """Custody changes belong on their topics and in the ledger; without a reachable broker,
    say so plainly (the vault's file log under WARDEN_HOME still holds the change)."""
    if not emits:
        return

    async def send_all():
        async with Client(settings) as client:
            await client.send_as_admin(emits)
            await client.flush()

    try:
        asyncio.run(asyncio.wait_for(send_all(), timeout=10))
    except Exception as exc:  # the change is done; its audit record must not vanish silently
        note(
            f"warning: {len(emits)} custody event(s) not published to warden.vault / warden.audit.events "
            f"({exc.__class__.__name__}: broker {settings.broker} unreachable?)"
        )
