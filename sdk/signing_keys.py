"""The addresses an agent's keys sign from, read from the key store the signer reads: warden.vault.

`warden keys provision` and `warden keys rotate` write each version of an agent's key as a
``secret.version_written`` event on warden.vault, its address and public key beside the
ciphertext as public metadata, and `warden keys deactivate` a ``secret.deactivated`` event per
version. The signer applies only the events the admins' quorum for ``keys`` signed; so does this
reader (`schemas.auth.vault_event_problem`), so a topic writer cannot make it show an address the
signer would not sign from. Nothing here opens a key: only the public metadata is read.

The signer signs an intent with the newest active version of the agent's key for the network's
key chain (`signer.custody.keys.KeyStore.resolve_signing_path`); older versions stay active, and
readable by version, until an admin deactivates them (funds may remain at their addresses).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson

from runtime.config import Settings
from runtime.kafka import follow_records
from runtime.registry import REGISTRY
from schemas import topics
from schemas.auth import vault_event_problem
from sdk.mcp_results import SigningKey, SigningKeys
from sdk.records import admins_in_force

# Where the signer keeps agents' keys (`signer.custody.access.AGENT_KEYS_VAULT` in the org
# `signer.custody.keys.DEFAULT_ORG`, at `agent_key_path`): the SDK imports no service, and
# tests/unit/test_http_api_signing_keys.py holds the two to the same values.
AGENT_KEYS_VAULT = "__agent-keys"
KEYS_ORG = "default"
WRITTEN = "secret.version_written"
DEACTIVATED = "secret.deactivated"


def agent_key_prefix(agent_id: str) -> str:
    """The start of the vault path of every key of ``agent_id`` (``agents/<id>/chains/<chain>/private_key``)."""
    return f"agents/{agent_id}/chains/"


@dataclass(frozen=True)
class KeyVersion:
    """One version of one of the agent's keys, as its ``secret.version_written`` event states it."""

    chain: str
    path: str
    version: int
    address: str


@dataclass
class KeyBook:
    """The agent's key versions read so far, and the versions deactivated."""

    agent_id: str
    written: dict[tuple[str, int], KeyVersion]
    deactivated: set[tuple[str, int]]

    def read(self, value: bytes) -> None:
        """Take one vault event's bytes (already known to be quorum-signed): a version of one of the
        agent's keys, or its deactivation; anything else is left alone."""
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict) or (event.get("org"), event.get("vault")) != (KEYS_ORG, AGENT_KEYS_VAULT):
            return
        path, version = event.get("path"), event.get("version")
        if not isinstance(path, str) or not path.startswith(agent_key_prefix(self.agent_id)):
            return
        if not isinstance(version, int) or isinstance(version, bool):
            return
        if event.get("type") == DEACTIVATED:
            self.deactivated.add((path, version))
            return
        public = event.get("public")
        if event.get("type") != WRITTEN or event.get("secret_type") != "private_key" or not isinstance(public, dict):
            return
        chain, address = public.get("chain"), public.get("address")
        if isinstance(chain, str) and isinstance(address, str) and public.get("agent_id") == self.agent_id:
            self.written[(path, version)] = KeyVersion(chain, path, version, address)

    def active(self) -> list[KeyVersion]:
        """The versions not deactivated, by chain, newest first."""
        kept = [v for key, v in self.written.items() if key not in self.deactivated]
        return sorted(kept, key=lambda v: (v.chain, -v.version))


def networks_of(key_chain: str) -> list[str]:
    """The networks in force that sign with a key of ``key_chain`` (every EVM network: ethereum)."""
    return sorted(name for name, chain in REGISTRY.all().items() if chain.key_chain == key_chain)


def signing_keys_of(book: KeyBook) -> SigningKeys:
    """What `GET /v1/agents/{id}/signing-keys` answers from ``book``: each active version, the
    newest of each chain ``in_use`` (what the signer signs with)."""
    keys, seen = [], set()
    for version in book.active():
        keys.append(
            SigningKey(
                address=version.address,
                chains=networks_of(version.chain),
                source=f"the key store: {version.path} version {version.version}",
                key_chain=version.chain,
                version=version.version,
                in_use=version.chain not in seen,
            )
        )
        seen.add(version.chain)
    return SigningKeys(agent_id=book.agent_id, keys=keys)


async def agent_signing_keys(settings: Settings, agent_id: str) -> SigningKeys:
    """The agent's keys as the signer holds them: warden.vault read to its end, each event believed
    only when the admins' quorum for ``keys`` of the admin set in force signed it."""
    admins = await admins_in_force(settings)
    book = KeyBook(agent_id, {}, set())
    caught_up = asyncio.Event()
    async for record in follow_records(settings, (topics.VAULT,), caught_up=caught_up):
        # The record key names the slot (``secret:<org>/<vault>/<path>@<version>``): most are
        # another agent's, and those are not worth checking a signature for.
        if (
            record is not None
            and record.value is not None
            and agent_key_prefix(agent_id) in (record.key or b"").decode(errors="replace")
            and vault_event_problem(record.value, record.headers, admins)[1] is None
        ):
            book.read(record.value)
        if caught_up.is_set():
            break
    return signing_keys_of(book)
