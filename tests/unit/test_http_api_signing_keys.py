"""`GET /v1/agents/{id}/signing-keys` reads the key store's public records (`sdk.signing_keys`), the
events `warden keys provision`, `rotate` and `deactivate` write on warden.vault: here the real key
store writes them (its file log) and the reader takes their bytes as the topic carries them. The
quorum check and the topic are the stack test's (tests/stack/test_http_api.py)."""

from __future__ import annotations

from pathlib import Path

import orjson

from sdk import signing_keys
from sdk.signing_keys import KeyBook, agent_key_prefix, signing_keys_of
from signer.custody import AGENT_KEYS_VAULT
from signer.custody.events import SecretDeactivated, SecretVersionWritten, parse_event
from signer.custody.keys import DEFAULT_ORG, KeyStore, agent_key_path
from tests.custody_support import ADMIN, T0, make_vaults


def test_the_readers_names_are_the_key_stores() -> None:
    assert (signing_keys.AGENT_KEYS_VAULT, signing_keys.KEYS_ORG) == (AGENT_KEYS_VAULT, DEFAULT_ORG)
    assert SecretVersionWritten.model_fields["type"].default == signing_keys.WRITTEN
    assert SecretDeactivated.model_fields["type"].default == signing_keys.DEACTIVATED
    assert agent_key_path("a1", "ethereum").startswith(agent_key_prefix("a1"))
    assert not agent_key_path("a10", "ethereum").startswith(agent_key_prefix("a1"))


def _book(tmp_path: Path, agent_id: str) -> KeyBook:
    """The agent's keys as read from every event the key store wrote, in its topic form."""
    book = KeyBook(agent_id, {}, set())
    for line in (tmp_path / "vault" / "events.jsonl").read_text().splitlines():
        book.read(parse_event(line).to_bytes())
    return book


def test_provision_rotation_and_deactivation_show_as_the_signer_signs(tmp_path: Path) -> None:
    store = KeyStore(make_vaults(tmp_path))
    first = store.provision("a1", "ethereum", ADMIN, now=T0)
    store.provision("a10", "ethereum", ADMIN, now=T0)  # another agent, whose id starts the same
    solana = store.provision("a1", "solana", ADMIN, now=T0)
    provisioned = signing_keys_of(_book(tmp_path, "a1"))
    assert [(k.key_chain, k.address, k.version, k.in_use) for k in provisioned.keys] == [
        ("ethereum", first.address, 1, True),
        ("solana", solana.address, 1, True),
    ]
    assert "anvil" in provisioned.keys[0].chains and "solana-local" in provisioned.keys[1].chains

    second = store.rotate("a1", "ethereum", ADMIN, now=T0 + 10)
    rotated = signing_keys_of(_book(tmp_path, "a1")).keys
    assert [(k.address, k.version, k.in_use) for k in rotated if k.key_chain == "ethereum"] == [
        (second.address, 2, True),
        (first.address, 1, False),  # still active (funds may remain there), not what the signer signs with
    ]

    store.deactivate("a1", "ethereum", ADMIN, version=1, now=T0 + 20)
    store.deactivate("a1", "solana", ADMIN, now=T0 + 20)
    assert [(k.address, k.in_use) for k in signing_keys_of(_book(tmp_path, "a1")).keys] == [(second.address, True)]


def test_records_that_are_not_the_agents_keys_are_left_alone() -> None:
    book = KeyBook("a1", {}, set())
    prefix = agent_key_prefix("a1")
    key = {"org": DEFAULT_ORG, "vault": AGENT_KEYS_VAULT, "path": prefix + "ethereum/private_key", "version": 1}
    public = {"chain": "ethereum", "agent_id": "a1", "address": "0x" + "11" * 20}
    written = {**key, "type": signing_keys.WRITTEN, "secret_type": "private_key", "public": public}
    for doc in (
        {**written, "vault": "other"},
        {**written, "org": "other"},
        {**written, "secret_type": "token"},
        {**written, "public": {**public, "agent_id": "a2"}},
        {**written, "path": "keys/ethereum-signer"},
        {**written, "version": True},
    ):
        book.read(orjson.dumps(doc))
    book.read(b"not json")
    assert book.active() == []
    book.read(orjson.dumps(written))
    assert [v.address for v in book.active()] == [public["address"]]
