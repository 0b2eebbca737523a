"""Custody core: the development root, the envelope, event-sourced vaults, access rules."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from runtime.config import Settings
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent
from schemas.emit import Emit
from signer.custody import (
    Conflict,
    CustodyError,
    DevRootRefused,
    FileEventLog,
    InvalidKey,
    LocalDevRoot,
    NotFound,
    PermissionDenied,
    Vaults,
    parse_event,
    root_from_settings,
)
from signer.custody.events import ModeSet, SecretVersionWritten, VaultCreated, VaultEvent
from signer.custody.names import prefix_covers
from tests.custody_support import ADMIN, SIGNER, T0, CountingRoot, dev_root, make_vaults


def test_dev_root_refuses_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(DevRootRefused) as exc:
        LocalDevRoot(tmp_path / "root.key", False)
    assert "WARDEN_ALLOW_DEV_ROOT=1" in str(exc.value)
    assert "development only" in str(exc.value)
    assert not (tmp_path / "root.key").exists()


def test_dev_root_key_file_warning_and_marker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = LocalDevRoot(tmp_path / "keys" / "root.key", True)
    assert "LOCAL DEVELOPMENT root of trust" in capsys.readouterr().err
    # Once per key file and process: opening it again says nothing new, another file warns again.
    LocalDevRoot(tmp_path / "keys" / ".." / "keys" / "root.key", True)
    assert capsys.readouterr().err == ""
    LocalDevRoot(tmp_path / "other" / "root.key", True)
    assert "LOCAL DEVELOPMENT root of trust" in capsys.readouterr().err
    key_file = tmp_path / "keys" / "root.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.stat().st_size == 32
    wrapped = root.wrap(b"k" * 32, b"slot-1")
    assert wrapped.startswith(b"dev:")
    assert root.unwrap(wrapped, b"slot-1") == bytearray(b"k" * 32)
    # The same file is the same root: another process unwraps it.
    again = LocalDevRoot(key_file, True)
    assert again.unwrap(wrapped, b"slot-1") == bytearray(b"k" * 32)


def test_processes_starting_at_once_share_one_whole_dev_root_key(tmp_path: Path) -> None:
    """Two signers started together on a new home: each either makes the key or reads the one the
    other made, never a file half written (one read 0 bytes and stopped, on the stack)."""
    import threading

    for attempt in range(20):
        path = tmp_path / f"home-{attempt}" / "root.key"
        ready = threading.Barrier(8)
        roots: list[LocalDevRoot] = []
        errors: list[Exception] = []

        def start() -> None:
            ready.wait()
            try:
                roots.append(LocalDevRoot(path, True))
            except Exception as exc:  # noqa: BLE001 - what a starter got is the assertion
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(roots) == 8
        wrapped = roots[0].wrap(b"k" * 32, b"slot")
        assert all(r.unwrap(wrapped, b"slot") == bytearray(b"k" * 32) for r in roots)
        assert sorted(p.name for p in path.parent.iterdir()) == ["root.key"]  # no scratch file left


@pytest.mark.parametrize("tamper", ["aad", "flip", "strip-marker", "truncate", "other-root"])
def test_dev_root_fails_closed_with_one_error(tmp_path: Path, tamper: str) -> None:
    root = dev_root(tmp_path)
    wrapped = root.wrap(b"secret-kek-bytes" * 2, b"slot-1")
    aad = b"slot-1"
    if tamper == "aad":
        aad = b"slot-2"
    elif tamper == "flip":
        wrapped = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    elif tamper == "strip-marker":
        wrapped = wrapped[4:]
    elif tamper == "truncate":
        wrapped = wrapped[:10]
    else:
        root = dev_root(tmp_path, "other")
    with pytest.raises(InvalidKey) as exc:
        root.unwrap(wrapped, aad)
    assert str(exc.value) == "custody: authentication failed"
    assert exc.value.__cause__ is None and (exc.value.__context__ is None or exc.value.__suppress_context__)


def test_dev_root_refuses_a_readable_key_file(tmp_path: Path) -> None:
    dev_root(tmp_path)
    key_file = tmp_path / "keys" / "local-dev.key"
    key_file.chmod(0o644)
    with pytest.raises(CustodyError, match="chmod 600"):
        dev_root(tmp_path)


def test_root_from_settings(tmp_path: Path) -> None:
    with pytest.raises(DevRootRefused):
        root_from_settings(Settings(home=tmp_path, root_provider="local-dev", allow_dev_root=False))
    root = root_from_settings(Settings(home=tmp_path, root_provider="local-dev", allow_dev_root=True))
    assert isinstance(root, LocalDevRoot) and root.path == tmp_path / "keys" / "dev-root.key"
    with pytest.raises(CustodyError, match="unknown root provider"):
        root_from_settings(Settings(home=tmp_path, root_provider="vault-9000"))


# ---- vaults ------------------------------------------------------------------


def test_write_read_versions_and_deactivate(tmp_path: Path) -> None:
    vaults = make_vaults(tmp_path)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    assert vaults.write_secret("acme", "ops", "db/password", b"one", "password", actor=ADMIN, now=T0) == 1
    assert vaults.write_secret("acme", "ops", "db/password", b"two", "password", actor=ADMIN, now=T0) == 2
    with vaults.open_secret("acme", "ops", "db/password", actor=SIGNER, now=T0) as value:
        assert value == bytearray(b"two")
    with vaults.open_secret("acme", "ops", "db/password", 1, actor=SIGNER, now=T0) as value:
        assert value == bytearray(b"one")
    assert vaults.deactivate("acme", "ops", "db/password", 2, actor=ADMIN, now=T0) == [2]
    with vaults.open_secret("acme", "ops", "db/password", actor=SIGNER, now=T0) as value:
        assert value == bytearray(b"one")  # newest *active* version
    with pytest.raises(NotFound, match="deactivated"):
        vaults.read_secret("acme", "ops", "db/password", 2, actor=SIGNER, now=T0)
    infos = vaults.list_secrets("acme", "ops", actor=ADMIN)
    assert [(i.path, i.version, i.active) for i in infos] == [("db/password", 1, True), ("db/password", 2, False)]
    with pytest.raises(NotFound):
        vaults.read_secret("acme", "ops", "db/missing", actor=SIGNER, now=T0)
    with pytest.raises(NotFound):
        vaults.read_secret("acme", "nope", "db/password", actor=SIGNER, now=T0)


def test_events_hold_ciphertext_only_and_are_marked_development(tmp_path: Path) -> None:
    vaults = make_vaults(tmp_path)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    secret = os.urandom(32)
    vaults.write_secret("acme", "ops", "k", secret, "api_key", actor=ADMIN, now=T0)
    log = (tmp_path / "vault" / "events.jsonl").read_bytes()
    for form in (secret, secret.hex().encode(), base64.b64encode(secret)):
        assert form not in log
    events = [parse_event(line) for line in log.splitlines()]
    assert [type(e) for e in events] == [VaultCreated, ModeSet, SecretVersionWritten]
    mode = events[1]
    assert isinstance(mode, ModeSet) and mode.development
    assert base64.b64decode(mode.slots[0].wrapped).startswith(b"dev:")
    assert isinstance(events[2], SecretVersionWritten) and events[2].development
    assert [e.key for e in events] == ["vault:acme/ops", "mode:acme/ops", "secret:acme/ops/k@1"]
    assert parse_event(events[2].to_bytes()) == events[2]


def _moved(event: SecretVersionWritten, **update: Any) -> SecretVersionWritten:
    return event.model_copy(update={"event_id": "moved", **update})


@pytest.mark.parametrize("slot", ["path", "version", "vault", "org", "type"])
def test_ciphertext_moved_to_another_slot_does_not_decrypt(tmp_path: Path, slot: str) -> None:
    vaults = make_vaults(tmp_path)
    for org, vault in (("acme", "ops"), ("acme", "other"), ("evil", "ops")):
        vaults.create_vault(org, vault, actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "a", b"secret-a", "api_key", actor=ADMIN, now=T0)
    events = [parse_event(line) for line in (tmp_path / "vault" / "events.jsonl").read_bytes().splitlines()]
    original = next(e for e in events if isinstance(e, SecretVersionWritten))
    moved = {
        "path": _moved(original, path="b"),
        "version": _moved(original, version=2),
        "vault": _moved(original, vault="other"),
        "org": _moved(original, org="evil"),
        "type": _moved(original, path="c", secret_type="password"),
    }[slot]
    if slot == "type":
        # Same slot, different declared type: also bound.
        moved = _moved(original, secret_type="password")
        fresh = Vaults(vaults.primary, lambda e: None)
        fresh.replay(e for e in events if not isinstance(e, SecretVersionWritten))
        fresh.apply(moved)
        target = fresh
    else:
        vaults.apply(moved)
        target = vaults
    with pytest.raises(InvalidKey):
        target.read_secret(moved.org, moved.vault, moved.path, moved.version, actor=SIGNER, now=T0)


def test_wrapped_kek_moved_to_another_vault_does_not_unwrap(tmp_path: Path) -> None:
    vaults = make_vaults(tmp_path)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    vaults.create_vault("acme", "other", actor=ADMIN, mode=None, now=T0)
    events = [parse_event(line) for line in (tmp_path / "vault" / "events.jsonl").read_bytes().splitlines()]
    mode = next(e for e in events if isinstance(e, ModeSet))
    vaults.apply(mode.model_copy(update={"vault": "other", "event_id": "stolen"}))
    with pytest.raises(InvalidKey):
        vaults.write_secret("acme", "other", "x", b"v", "api_key", actor=ADMIN, now=T0)


def test_apply_is_idempotent_and_replay_rebuilds_state(tmp_path: Path) -> None:
    vaults = make_vaults(tmp_path)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "k", b"v1", "token", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "k", b"v2", "token", actor=ADMIN, now=T0)
    vaults.grant("acme", "ops", "bot", "k", actor=ADMIN, now=T0)
    vaults.deactivate("acme", "ops", "k", 1, actor=ADMIN, now=T0)
    events = [parse_event(line) for line in (tmp_path / "vault" / "events.jsonl").read_bytes().splitlines()]
    assert vaults.replay(events) == 0  # everything already applied
    # A Kafka consumer replays the (compacted, reordered) topic into a fresh state.
    published: list[VaultEvent] = []
    fresh = Vaults(vaults.primary, published.append)
    assert fresh.replay(reversed([e.to_bytes() for e in events])) > 0
    assert fresh.replay(events) == 0
    with fresh.open_secret("acme", "ops", "k", actor=SIGNER, now=T0) as value:
        assert value == bytearray(b"v2")
    with pytest.raises(NotFound):
        fresh.read_secret("acme", "ops", "k", 1, actor=SIGNER, now=T0)
    # A different value claiming a taken version is ignored: first writer wins.
    clash = next(e for e in events if isinstance(e, SecretVersionWritten) and e.version == 2)
    assert not fresh.apply(clash.model_copy(update={"ciphertext": clash.ciphertext[::-1], "wrap_seq": 9}))
    assert published == []


def test_callback_publish_for_kafka(tmp_path: Path) -> None:
    published: list[VaultEvent] = []
    vaults = Vaults(dev_root(tmp_path), published.append)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "k", b"v", "token", actor=ADMIN, now=T0)
    assert [type(e) for e in published] == [VaultCreated, ModeSet, SecretVersionWritten]
    assert all(isinstance(e.key, str) and e.key for e in published)


def test_kek_cache_ttl_and_eviction(tmp_path: Path) -> None:
    root = CountingRoot(dev_root(tmp_path))
    vaults = make_vaults(tmp_path, roots=root, kek_ttl=60)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "k", b"v", "token", actor=ADMIN, now=T0)
    assert root.unwraps == 1
    for t in (T0 + 1, T0 + 30, T0 + 59.9):
        vaults.read_secret("acme", "ops", "k", actor=SIGNER, now=t)
    assert root.unwraps == 1  # warm
    vaults.read_secret("acme", "ops", "k", actor=SIGNER, now=T0 + 60)
    assert root.unwraps == 2  # expired at exactly the TTL, unwrapped again
    assert vaults.evict(T0 + 60 + 59) == 0
    assert vaults.evict(T0 + 60 + 60) == 1
    vaults.read_secret("acme", "ops", "k", actor=SIGNER, now=T0 + 200)
    assert vaults.evict(everything=True) == 1
    assert root.unwraps == 3


def test_kek_never_persisted(tmp_path: Path) -> None:
    vaults = make_vaults(tmp_path)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "k", b"v", "token", actor=ADMIN, now=T0)
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert files == {"keys/local-dev.key", "vault/events.jsonl", "vault/events.jsonl.lock"}


def test_file_log_skips_partial_lines(tmp_path: Path) -> None:
    log = FileEventLog(tmp_path / "events.jsonl")
    vaults = Vaults(dev_root(tmp_path), log)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    with open(tmp_path / "events.jsonl", "ab") as f:
        f.write(b'{"type": "vault.created", "half')  # a writer died mid-line
    reader = FileEventLog(tmp_path / "events.jsonl")
    assert [type(e) for e in reader.poll()] == [VaultCreated, ModeSet]
    assert reader.poll() == []


def test_mode_and_vault_are_set_once(tmp_path: Path) -> None:
    vaults = make_vaults(tmp_path)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    with pytest.raises(Conflict, match="immutable"):
        vaults.set_mode("acme", "ops", "standard", actor=ADMIN, now=T0)
    with pytest.raises(Conflict, match="already exists"):
        vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)


def test_names_paths_and_sizes_are_checked(tmp_path: Path) -> None:
    vaults = make_vaults(tmp_path)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    banana: Any = "banana"  # not a secret type, on purpose
    for bad in ("", "/abs", "a//b", "a/../b", "a/./b", "trailing/", "sp ace"):
        with pytest.raises(CustodyError, match="bad secret path"):
            vaults.write_secret("acme", "ops", bad, b"v", "token", actor=ADMIN, now=T0)
    with pytest.raises(CustodyError, match="unknown secret type"):
        vaults.write_secret("acme", "ops", "k", b"v", banana, actor=ADMIN, now=T0)
    with pytest.raises(CustodyError, match="1..65536 bytes"):
        vaults.write_secret("acme", "ops", "k", b"", "token", actor=ADMIN, now=T0)
    with pytest.raises(CustodyError, match="bad vault name"):
        vaults.create_vault("acme", "a/b", actor=ADMIN, now=T0)


def test_prefix_covers_on_segment_boundaries() -> None:
    assert prefix_covers("keys/", "keys/ethereum-signer")
    assert prefix_covers("keys", "keys/ethereum-signer")
    assert prefix_covers("keys/eth", "keys/eth/x")
    assert not prefix_covers("keys/eth", "keys/ethereum-signer")
    assert not prefix_covers("agents/a", "agents/ab/chains/ethereum/private_key")
    assert prefix_covers("", "anything")


# ---- who may do what ----------------------------------------------------------


def test_agents_and_unknown_actors_cannot_administer(tmp_path: Path) -> None:
    vaults = make_vaults(tmp_path)
    with pytest.raises(PermissionDenied, match="admins only"):
        vaults.create_vault("acme", "ops", actor="agent:bot", now=T0)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    for call in (
        lambda: vaults.write_secret("acme", "ops", "k", b"v", "token", actor="agent:bot", now=T0),
        lambda: vaults.grant("acme", "ops", "bot", "", actor="agent:bot", now=T0),
        lambda: vaults.deactivate("acme", "ops", "k", actor="service:signer", now=T0),
        lambda: vaults.set_cmek("acme", "ops", bytes(32), actor="agent:bot", now=T0),
        lambda: vaults.list_secrets("acme", "ops", actor="agent:bot"),
    ):
        with pytest.raises(PermissionDenied):
            call()
    with pytest.raises(PermissionDenied, match="unknown actor"):
        vaults.read_secret("acme", "ops", "k", actor="root", now=T0)


def test_intents_agent_reading_key_material_is_refused_and_audited(tmp_path: Path) -> None:
    audit: list[Emit] = []
    enabled = {"bot": True, "batch": False}
    vaults = make_vaults(tmp_path, intents_api_enabled=lambda agent: enabled.get(agent, True), audit=audit.append)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    vaults.write_secret(
        "acme", "ops", "ssh/deploy", b"-----BEGIN OPENSSH PRIVATE KEY-----", "ssh_key", actor=ADMIN, now=T0
    )
    vaults.write_secret("acme", "ops", "wallet/hot", os.urandom(32), "private_key", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "api/openai", b"sk-123", "api_key", actor=ADMIN, now=T0)
    for agent in ("bot", "batch", "unknown"):
        vaults.grant("acme", "ops", agent, "", actor=ADMIN, now=T0)

    for path in ("ssh/deploy", "wallet/hot"):
        audit.clear()
        with pytest.raises(PermissionDenied) as exc:
            vaults.read_secret("acme", "ops", path, actor="agent:bot", now=T0)
        assert exc.value.status == 403
        assert "Intents API enabled" in str(exc.value) and "may not read" in str(exc.value)
        assert audit == [exc.value.audit]
        assert exc.value.audit is not None
        assert exc.value.audit.topic == topics.AUDIT_EVENTS
        record = AuditEvent.from_bytes(exc.value.audit.value)
        assert record.actor == "agent:bot" and record.action == AuditAction.SECRET_READ_REFUSED
        assert record.resource == f"vault:acme/ops/{path}@1"
        assert record.agent_id == "bot"
    # An agent whose policy the vault does not know is treated as intents-enabled (fail closed).
    with pytest.raises(PermissionDenied):
        vaults.read_secret("acme", "ops", "wallet/hot", actor="agent:unknown", now=T0)
    # Intents-enabled agents may still read what is not key material, when granted.
    with vaults.open_secret("acme", "ops", "api/openai", actor="agent:bot", now=T0) as value:
        assert value == bytearray(b"sk-123")
    # An agent without the Intents API reads granted key material.
    with vaults.open_secret("acme", "ops", "ssh/deploy", actor="agent:batch", now=T0) as value:
        assert value.startswith(b"-----BEGIN")


def test_agent_reads_need_a_grant_covering_the_path(tmp_path: Path) -> None:
    audit: list[Emit] = []
    vaults = make_vaults(tmp_path, audit=audit.append)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "team-a/token", b"a", "token", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "team-b/token", b"b", "token", actor=ADMIN, now=T0)
    vaults.grant("acme", "ops", "bot", "team-a/", actor=ADMIN, now=T0)
    assert vaults.read_secret("acme", "ops", "team-a/token", actor="agent:bot", now=T0) == bytearray(b"a")
    with pytest.raises(PermissionDenied, match="no grant") as exc:
        vaults.read_secret("acme", "ops", "team-b/token", actor="agent:bot", now=T0)
    assert exc.value.audit is not None
    assert AuditEvent.from_bytes(exc.value.audit.value).details["reason"] == "no_grant"
    vaults.revoke("acme", "ops", "bot", "team-a/", actor=ADMIN, now=T0)
    with pytest.raises(PermissionDenied):
        vaults.read_secret("acme", "ops", "team-a/token", actor="agent:bot", now=T0)


def test_a_cmek_rewrap_keeps_each_version_s_author_and_time(tmp_path: Path) -> None:
    vaults = make_vaults(tmp_path)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "db/password", b"hunter2", "password", actor=ADMIN, now=T0)
    vaults.set_cmek("acme", "ops", bytes(range(32)), actor="admin:rotator", now=T0 + 3600)
    (info,) = vaults.list_secrets("acme", "ops", actor=ADMIN)
    assert info.created_by == ADMIN and info.created_at.timestamp() == T0
    assert vaults.read_secret("acme", "ops", "db/password", actor=SIGNER, now=T0 + 3601) == b"hunter2"


def test_audit_records_and_events_have_ids_derived_from_what_they_record(tmp_path: Path) -> None:
    audit: list[Emit] = []
    vaults = make_vaults(tmp_path, audit=audit.append)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "k", b"v", "token", actor=ADMIN, now=T0)
    events = [parse_event(line) for line in (tmp_path / "vault" / "events.jsonl").read_bytes().splitlines()]
    assert [e.event_id for e in events] == [type(e).new(**e.model_dump(exclude={"event_id"})).event_id for e in events]
    audit.clear()
    for t in (T0, T0, T0 + 1):
        vaults.read_secret("acme", "ops", "k", actor=SIGNER, now=t)
    ids = [AuditEvent.from_bytes(record.value).event_id for record in audit]
    # The same read at the same instant is the same fact; another instant is another.
    assert ids[0] == ids[1] != ids[2]


def test_signing_keys_are_never_revealed_not_even_to_admins(tmp_path: Path) -> None:
    audit: list[Emit] = []
    vaults = make_vaults(tmp_path, audit=audit.append)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "api/openai", b"sk-123", "api_key", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "wallet/hot", os.urandom(32), "private_key", actor=ADMIN, now=T0)
    with vaults.reveal("acme", "ops", "api/openai", actor=ADMIN, now=T0) as (info, value):
        assert (info.version, info.secret_type, value) == (1, "api_key", bytearray(b"sk-123"))
    audit.clear()
    for actor in (ADMIN, SIGNER):
        with (
            pytest.raises(PermissionDenied, match="never shows signing keys") as exc,
            vaults.reveal("acme", "ops", "wallet/hot", actor=actor, now=T0),
        ):
            pass
        assert exc.value.audit is not None
        assert AuditEvent.from_bytes(exc.value.audit.value).details == {
            "reason": "cli_never_shows_key_material",
            "secret_type": "private_key",
        }
    # Refused before decrypting: nothing was read.
    assert [AuditEvent.from_bytes(r.value).action for r in audit] == [AuditAction.SECRET_READ_REFUSED] * 2
