"""Whether a vault in this home's file log is in force where the signers read it: what an admin's
custody command asks before it builds a key change on the vault.

An admin's file log (``$WARDEN_HOME/vault/events.jsonl``) holds a change as soon as the admin made
it, proposed or not. Under a quorum for ``keys``, a vault's creation can still be a proposal when
the same admin writes a key into it; that key change, approved, would rest on a vault no signer
holds (the signer refuses it: `signer.vault_reader`). So the command refuses to build it and says
what waits for which signature.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaError

from runtime.config import Settings
from runtime.kafka import follow_records
from schemas import topics
from schemas.admins import event_digest
from schemas.auth import vault_event_problem
from sdk.records import admins_in_force


async def unpublished_vault_events(settings: Settings, events: list[tuple[str, bytes]]) -> list[str]:
    """The record keys of ``events`` (record key, bytes) that warden.vault does not hold as
    written, signed by the quorum for ``keys`` of the admin set in force: what no signer applied.
    The partitions of those keys are read until caught up (`runtime.kafka.follow_records`: past
    the ends the broker listed, and quiet)."""
    admins = await admins_in_force(settings)
    wanted = {key: event_digest(value) for key, value in events}
    found: set[str] = set()
    caught_up = asyncio.Event()
    async for record in follow_records(settings, (topics.VAULT,), caught_up=caught_up, keys=tuple(wanted)):
        if caught_up.is_set():
            break
        if record is None:
            continue
        key = (record.key or b"").decode(errors="replace")
        if (
            wanted.get(key) == event_digest(record.value or b"")
            and vault_event_problem(record.value, record.headers, admins)[1] is None
        ):
            found.add(key)
    return [key for key in wanted if key not in found]


def vault_creation_pending(
    settings: Settings,
    vaults: Any,  # signer.custody.Vaults, this home's file log: the SDK imports no service
    org: str,
    vault: str,
) -> str | None:
    """Why no key change may be built on ``vault`` of ``vaults`` (this home's file log) yet: the log
    holds its creation, but warden.vault does not, signed by the admins' quorum. None when its
    creation is in force, or when the log does not hold the vault (the change then creates it). A
    broker that cannot be reached answers None: nothing built then is published either, and the
    command says so (`infra.cli.custody.publish`)."""
    if not vaults.has_vault(org, vault):
        return None
    state = vaults.book.state(org, vault)
    creation = [(e.key, e.to_bytes()) for e in (state.created, state.mode) if e is not None]
    try:
        missing = asyncio.run(asyncio.wait_for(unpublished_vault_events(settings, creation), 30))
    except (KafkaError, OSError, TimeoutError):
        return None
    if not missing:
        return None
    return (
        f"vault {vault!r} of org {org!r} is created in this home's file log ({', '.join(missing)}) but not on "
        f"{topics.VAULT} signed by the admins' quorum for keys: its creation waits in a proposal (`warden "
        "approvals list`; another admin signs it with `warden approvals sign ID`), or the proposal expired. "
        "Nothing is built on it until a signer holds it"
    )
