"""Who the ledger believes an audit record from: a record on warden.audit.events counts only
when a pinned key of its writer's role signed its bytes, and no event in it claims to be another
of Warden's services (`schemas.auth.audit_writer`, `claimed_service`, `runtime.trust.PinnedAuditKeys`,
`ledger.batch.decode`). The same rules on the real broker: tests/stack/test_ledger_sink.py."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.batch import decode
from ledger.keys import ledger_key_id
from runtime.config import Settings
from runtime.trust import LOCAL_ADMIN_ID, PinnedAuditKeys, audit_signer
from schemas.actions import AuditAction
from schemas.audit import audit_record
from schemas.auth import (
    AUDIT_BY_HEADER,
    AUDIT_SIGNATURE_HEADER,
    AuditSigner,
    audit_signature_valid,
    audit_writer,
    claimed_service,
    public_key_hex,
)
from schemas.emit import audit
from sdk.admin import load_or_create_admin_key
from sdk.client import admin_audit_signer

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return dataclasses.replace(Settings(), home=tmp_path / "home")


@pytest.fixture
def ledger_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def keys(settings: Settings, ledger_key: Ed25519PrivateKey) -> PinnedAuditKeys:
    public = public_key_hex(ledger_key)
    return PinnedAuditKeys(settings, ledger_key_id(public), public)


def _event(actor: str, action: AuditAction = AuditAction.TX_SIGNED) -> bytes:
    return audit(actor, action, "intent:i-1", NOW, "i-1", actor, intent_id="i-1", agent_id="a-1").value


def test_each_writer_is_believed_under_its_own_pinned_key(
    settings: Settings, keys: PinnedAuditKeys, ledger_key: Ed25519PrivateKey
) -> None:
    worker, signer = audit_signer(settings, "worker"), audit_signer(settings, "signer")
    supervisor, admin = audit_signer(settings, "supervisor"), admin_audit_signer(settings)
    ledger = AuditSigner("ledger", ledger_key_id(public_key_hex(ledger_key)), ledger_key)
    for writer, actor, role in (
        (worker, "service:streams", "worker"),
        (signer, "service:signer", "signer"),
        (supervisor, "service:supervisor", "supervisor"),
        (admin, f"admin:{LOCAL_ADMIN_ID}", "admin"),
        (ledger, "service:ledger", "ledger"),
    ):
        value = _event(actor)
        assert audit_writer(value, writer.headers(value), keys) == (role, None)
        rows = decode(0, 7, value, writer.headers(value), 65_536, NOW, keys)
        assert [(row.actor, row.action) for row in rows] == [(actor, AuditAction.TX_SIGNED)]


def test_a_key_written_after_the_reader_started_is_believed_at_once(settings: Settings, keys: PinnedAuditKeys) -> None:
    """The sink decides a record once, for good: a service (or admin) whose key file appeared a
    moment ago must not be taken for a forger."""
    value = _event("service:streams")
    assert keys.audit_key("worker", settings.worker_id) is None
    worker = audit_signer(settings, "worker")  # the worker starts after the sink
    assert audit_writer(value, worker.headers(value), keys) == ("worker", None)
    admin_value = _event("admin:local-admin", AuditAction.VAULT_CREATED)
    assert keys.audit_key("admin", LOCAL_ADMIN_ID) is None
    load_or_create_admin_key(settings.home)
    assert audit_writer(admin_value, admin_audit_signer(settings).headers(admin_value), keys) == ("admin", None)


def test_what_a_topic_writer_without_a_pinned_key_can_send_is_not_believed(
    settings: Settings, keys: PinnedAuditKeys
) -> None:
    worker = audit_signer(settings, "worker")
    value = _event("service:signer")
    good = worker.headers(value)
    stranger = AuditSigner("worker", settings.worker_id, Ed25519PrivateKey.generate())
    bare_signature = [
        (AUDIT_BY_HEADER, good[0][1]),  # the worker's key over the bytes alone, without the context
        (AUDIT_SIGNATURE_HEADER, Ed25519PrivateKey.generate().sign(value)),
    ]
    cases = {
        "no headers": ([], "unsigned: the record has no warden-audit-by and warden-audit-signature headers"),
        "no signature": ([good[0]], "unsigned: "),
        "no role": ([(AUDIT_BY_HEADER, b"streams-0"), good[1]], "warden-audit-by b'streams-0' is not <role>:<key id>"),
        "unknown role": ([(AUDIT_BY_HEADER, b"auditor:x"), good[1]], "is not <role>:<key id> with a role of"),
        "unpinned id": (
            [(AUDIT_BY_HEADER, b"worker:nobody"), good[1]],
            "warden-audit-by worker:nobody is not a pinned worker key",
        ),
        "another key under the worker's id": (
            stranger.headers(value),
            "the signature does not verify against worker key",
        ),
        "the signature of other bytes": (worker.headers(value + b" "), "the signature does not verify"),
        "a signature without the audit context": (bare_signature, "the signature does not verify"),
        "a signature that is no signature": ([good[0], (AUDIT_SIGNATURE_HEADER, b"\x00" * 3)], "does not verify"),
        "the worker's key passed off as the signer's": (
            [(AUDIT_BY_HEADER, f"signer:{settings.worker_id}".encode()), good[1]],
            "is not a pinned signer key",
        ),
    }
    for name, (headers, why) in cases.items():
        role, reason = audit_writer(value, headers, keys)
        assert reason is not None and why in str(reason), (name, reason)
        rows = decode(0, 7, value, headers, 65_536, NOW, keys)
        assert [(row.actor, row.action) for row in rows] == [("service:ledger", AuditAction.DLQ_RECORDED)], name
        details = orjson.loads(rows[0].details)
        assert details["reason"] == f"not believed: {reason!s}", name  # the text, never the Problem object
        assert details["payload_sha256"] and details["payload_b64"], name


def test_a_pinned_writer_speaks_only_as_itself_among_wardens_services(
    settings: Settings, keys: PinnedAuditKeys
) -> None:
    """The worker's key makes it the worker: its record may name agents and admins (it verified
    their signatures) but not the signer, the ledger or the supervisor."""
    assert claimed_service("worker", ["agent:a-1", "service:streams", "admin:local-admin"]) is None
    assert claimed_service("signer", ["service:signer", "service:signer-0"]) is None  # a key release's requester
    assert claimed_service("admin", ["admin:local-admin", "service:admin-cli"]) is None
    assert str(claimed_service("worker", ["service:streams", "service:signer"])) == (
        "an event claims actor 'service:signer', which a worker key may not write as"
    )
    assert claimed_service("admin", ["service:streams"]) is not None
    assert claimed_service("signer", ["service:ledger"]) is not None
    worker = audit_signer(settings, "worker")
    value = audit_record([_event("service:streams", AuditAction.INTENT_APPROVED), _event("service:signer")])
    rows = decode(3, 9, value, worker.headers(value), 65_536, NOW, keys)
    assert [(row.actor, row.action) for row in rows] == [("service:ledger", AuditAction.DLQ_RECORDED)]
    assert orjson.loads(rows[0].details)["reason"] == (
        "not believed: an event claims actor 'service:signer', which a worker key may not write as"
    )
    signer = audit_signer(settings, "signer")
    value = _event("service:signer")
    assert [row.actor for row in decode(3, 10, value, signer.headers(value), 65_536, NOW, keys)] == ["service:signer"]


def test_a_key_file_caught_mid_write_is_not_pinned(settings: Settings, keys: PinnedAuditKeys) -> None:
    """A reader can meet a service's .pub while it is being rewritten: were it to pin the empty text
    as the key, it would refuse every later record of that service. A reader pins only what looks
    like a key, and a service replaces the file whole, only when it changed."""
    folder = settings.home / "services" / "worker"
    folder.mkdir(parents=True)
    (folder / f"{settings.worker_id}.pub").write_text("")  # the moment between truncate and write
    assert keys.audit_key("worker", settings.worker_id) is None
    (folder / f"{settings.worker_id}.pub").write_text("0x12")
    assert keys.audit_key("worker", settings.worker_id) is None
    worker = audit_signer(settings, "worker")
    value = _event("service:streams")
    assert audit_writer(value, worker.headers(value), keys) == ("worker", None)
    written = (folder / f"{settings.worker_id}.pub").stat()
    audit_signer(settings, "worker")  # a restart of the same service
    again = (folder / f"{settings.worker_id}.pub").stat()
    assert (again.st_ino, again.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert not list(folder.glob("*.tmp"))


def test_a_key_created_by_several_writers_at_once_is_one_key_and_never_read_half_written(tmp_path: Path) -> None:
    """The first admin command, a worker pinning the admin key at start and a second admin command
    can all meet an admin key that does not exist yet: every one must end with the same key, and
    a reader must never see the file half-written (as it would, were it written in place)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from schemas.auth import load_or_create_ed25519

    for attempt in range(20):
        path = tmp_path / f"attempt-{attempt}" / "admin.pem"
        seen: list[bytes] = []
        start = threading.Barrier(9)
        done = threading.Event()

        def watch() -> None:
            start.wait()
            while not done.is_set():
                if path.exists():
                    seen.append(path.read_bytes())

        def create() -> str:
            start.wait()
            return public_key_hex(load_or_create_ed25519(path))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with ThreadPoolExecutor(8) as pool:
                keys = set(pool.map(lambda _: create(), range(8)))
        finally:
            done.set()
            watcher.join()
        assert len(keys) == 1, keys
        assert keys == {public_key_hex(load_or_create_ed25519(path))}
        assert all(
            text.startswith(b"-----BEGIN PRIVATE KEY-----") and text.rstrip().endswith(b"-----END PRIVATE KEY-----")
            for text in seen
        ), "a reader saw the key half-written"
        assert [p.name for p in path.parent.iterdir()] == ["admin.pem"]  # no draft left behind


def test_signatures_made_by_openssl_verify_in_libsodium_and_odd_lengths_are_refused() -> None:
    key = Ed25519PrivateKey.generate()
    signer = AuditSigner("worker", "w", key)
    value = b'{"event_id":"e"}'
    signature = signer.headers(value)[1][1]
    public = bytes.fromhex(public_key_hex(key)[2:])
    assert audit_signature_valid(public, signature, value)
    assert not audit_signature_valid(public, signature, value + b" ")
    assert not audit_signature_valid(public[:31], signature, value)  # libsodium would read past it
    assert not audit_signature_valid(public + b"\x00", signature, value)
    assert not audit_signature_valid(public, signature + b"\x00", value)
    assert not audit_signature_valid(public, signature[:63], value)
    assert not audit_signature_valid(bytes(32), signature, value)  # a small-order key
