"""What the signer does with a quorum-signed vault event whose vault it does not hold, without a
stack (`signer.vault_reader`). An admin's file log holds what the admin proposed too, so a key
change the quorum approved can rest on a vault whose creation is still only a proposal: the
signer refuses it, with why, and never holds a vault without its custody mode. Events of one
change arrive in any order (each has a partition of its own) and are applied once their vault is."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.admins import VaultChange
from schemas.auth import sign_vault_change, vault_change_headers
from signer.custody import CustodyError, Vaults
from signer.custody.events import VaultEvent
from signer.vault_reader import Settled, VaultReader
from tests.custody_support import ADMIN, dev_root

ORG, VAULT, PATH = "default", "keys", "agents/treasury/ethereum"
ADMIN_KEY = Ed25519PrivateKey.generate()


def headers(*events: VaultEvent) -> list[tuple[str, bytes]]:
    """The headers each event of one change carries on warden.vault."""
    change = VaultChange.of([(e.key, e.to_bytes()) for e in events], datetime(2026, 11, 27, tzinfo=UTC))
    return vault_change_headers(sign_vault_change(change, ADMIN_KEY, "a"))


@pytest.fixture
def made(tmp_path: Path) -> tuple[Path, list[VaultEvent], list[VaultEvent]]:
    """An admin's CLI over its own log: the vault created (one change, the proposal), then a key
    written into it (another change, the one approved)."""
    written: list[VaultEvent] = []
    cli = Vaults(dev_root(tmp_path), written.append)
    cli.create_vault(ORG, VAULT, actor=ADMIN)
    created = list(written)
    cli.write_secret(ORG, VAULT, PATH, b"k" * 32, "private_key", actor=ADMIN)
    return tmp_path, created, written[len(created) :]


def signer_side(tmp_path: Path) -> tuple[Vaults, VaultReader]:
    vaults = Vaults(dev_root(tmp_path), lambda event: None)
    return vaults, VaultReader(vaults.book)


def read(reader: VaultReader, event: VaultEvent, change_headers: list[tuple[str, bytes]]) -> list[Settled]:
    return reader.read(event.key, event, event.to_bytes(), change_headers)


def test_a_key_change_on_a_vault_whose_creation_is_only_proposed_is_refused_with_why(
    made: tuple[Path, list[VaultEvent], list[VaultEvent]],
) -> None:
    tmp_path, _, key_change = made
    vaults, reader = signer_side(tmp_path)
    assert reader.caught_up() == []  # read live, the history of the topic behind
    (secret,) = key_change
    ((item, why),) = read(reader, secret, headers(secret))
    assert item == secret.key
    assert f"vault {VAULT!r} of org {ORG!r} was never created here" in str(why)
    assert "its creation may still be a proposal" in str(why) and "not applied" in str(why)
    assert not vaults.has_vault(ORG, VAULT)


def test_the_events_of_one_change_are_applied_in_any_order_once_their_vault_is(
    made: tuple[Path, list[VaultEvent], list[VaultEvent]],
) -> None:
    tmp_path, created, key_change = made
    vaults, reader = signer_side(tmp_path)
    everything = (*created, *key_change)
    together = headers(*everything)
    backwards = list(reversed(everything))  # the secret first, the vault's creation last
    assert read(reader, backwards[0], together) == []
    assert read(reader, backwards[1], together) == []
    settled = read(reader, backwards[2], together)
    assert [(item, why) for item, why in settled] == [(e.key, None) for e in backwards[::-1]]
    with vaults.open_secret(ORG, VAULT, PATH, actor=ADMIN) as key:
        assert key == bytearray(b"k" * 32)


def test_a_change_read_whole_without_its_vault_refuses_what_waited(
    made: tuple[Path, list[VaultEvent], list[VaultEvent]],
) -> None:
    tmp_path, created, key_change = made
    vaults, reader = signer_side(tmp_path)
    vault_created, mode = created
    assert reader.caught_up() == []
    # The mode and the key as one change, the vault's creation left out of it.
    together = headers(mode, *key_change)
    assert read(reader, key_change[0], together) == []
    settled = read(reader, mode, together)
    assert [item for item, _ in settled] == [mode.key, key_change[0].key]
    assert all("was never created here" in str(why) for _, why in settled)
    assert not vaults.has_vault(ORG, VAULT)
    # The creation, approved later, and then the key again: applied.
    assert read(reader, vault_created, headers(vault_created)) == [(vault_created.key, None)]
    assert read(reader, mode, headers(mode)) == [(mode.key, None)]
    assert read(reader, key_change[0], headers(*key_change)) == [(key_change[0].key, None)]


def test_a_restarted_signer_applies_a_key_read_before_the_earlier_change_that_created_its_vault(
    made: tuple[Path, list[VaultEvent], list[VaultEvent]],
) -> None:
    """The partitions' histories come in any order: a key provisioned by a later change, read
    whole before the change that created its vault, waits for the end of the topic, and is
    applied once the creation is read (a signer that refused it had no key after a restart)."""
    tmp_path, created, key_change = made
    vaults, reader = signer_side(tmp_path)
    creation, keyed = headers(*created), headers(*key_change)
    assert read(reader, key_change[0], keyed) == []
    assert read(reader, created[1], creation) == []
    settled = read(reader, created[0], creation)
    assert [(item, why) for item, why in settled] == [(e.key, None) for e in (created[0], created[1], key_change[0])]
    assert reader.caught_up() == []
    with vaults.open_secret(ORG, VAULT, PATH, actor=ADMIN) as key:
        assert key == bytearray(b"k" * 32)


def test_events_without_a_change_wait_for_the_end_of_the_history_then_are_settled_at_once(
    made: tuple[Path, list[VaultEvent], list[VaultEvent]],
) -> None:
    """Events one admin signed alone, from before quorums: only a topic's history holds them, in
    any order too. They wait for their vault until the topic was read to its end."""
    tmp_path, created, key_change = made
    vaults, reader = signer_side(tmp_path)
    assert read(reader, key_change[0], []) == []
    assert read(reader, created[1], []) == []
    assert read(reader, created[0], []) == [(e.key, None) for e in (created[0], created[1], key_change[0])]
    with vaults.open_secret(ORG, VAULT, PATH, actor=ADMIN) as key:
        assert key == bytearray(b"k" * 32)

    _, reader = signer_side(tmp_path)
    assert read(reader, key_change[0], []) == []
    ((item, why),) = reader.caught_up()
    assert item == key_change[0].key and "was never created here" in str(why)
    ((_, why_live),) = read(reader, key_change[0], [])  # read live, after the history: at once
    assert "was never created here" in str(why_live)


def test_a_secret_in_a_vault_with_no_mode_is_a_custody_error_not_an_assertion(
    made: tuple[Path, list[VaultEvent], list[VaultEvent]],
) -> None:
    """What a home's file log may hold (the approved key without the proposed creation): reading
    the key says why, as a custody error the signer turns into a refusal."""
    tmp_path, _, key_change = made
    vaults = Vaults(dev_root(tmp_path), lambda event: None)
    vaults.apply(key_change[0])
    with (
        pytest.raises(CustodyError, match="has no custody mode yet"),
        vaults.open_secret(ORG, VAULT, PATH, actor=ADMIN),
    ):
        pass
