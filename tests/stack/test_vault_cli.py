"""`warden vault` through the real CLI (``infra.cli.main``), against a temporary WARDEN_HOME with
the development root, publishing to the session stack's broker: what the CLI changes and refuses
must reach ``warden.vault`` and ``warden.audit.events``."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from infra.cli import main
from infra.cli.vault_run import INVALID_KEY_HINT
from infra.stack.local import LocalStack
from runtime.config import Settings
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, audit_events_of
from sdk.admin import load_or_create_admin_key
from tests.support import read_topic

OPAQUE = f"custody: authentication failed. {INVALID_KEY_HINT}"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def said(self) -> str:
        """stderr without the development root's standing warning."""
        return "\n".join(line for line in self.err.splitlines() if not line.startswith("WARNING: Warden is using"))

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.out)
        return parsed


class Vault(Protocol):
    """`warden vault ARGV...` run in process, ``stdin`` its standard input."""

    def __call__(self, *argv: str, stdin: bytes | None = None) -> Result: ...


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: LocalStack) -> Path:
    monkeypatch.setenv("WARDEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WARDEN_ALLOW_DEV_ROOT", "1")
    monkeypatch.setenv("WARDEN_BROKER", stack.settings.broker)
    for name in ("WARDEN_ROOT_PROVIDER", "WARDEN_ROOT_PROVIDERS", "WARDEN_KEY_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    # The home's admin key exists before the first command, so the CLI pins it from the start: a
    # vault's creation is published, not proposed, and later changes build on it (a change on a
    # vault whose creation is only proposed is refused: sdk.vault_creation).
    load_or_create_admin_key(tmp_path / "home")
    return tmp_path


@pytest.fixture
def vault(home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Vault:
    """Run `warden vault ...` in process; returns the exit code and what it printed."""

    def run(*argv: str, stdin: bytes | None = None) -> Result:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        try:
            # --wait 0: this home's admin is not one the stack's signer pins, so no signer applies
            # these changes; what is checked here is what reaches the topics.
            code = main(["vault", *argv, "--wait", "0"])
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _audit(stack: LocalStack, vault_name: str) -> list[AuditEvent]:
    records = [e for v in read_topic_sync(stack.settings, topics.AUDIT_EVENTS) for e in audit_events_of(v)]
    return [r for r in records if f"/{vault_name}" in r.resource]


def read_topic_sync(settings: Settings, topic: str) -> list[bytes]:
    import asyncio

    return asyncio.run(read_topic(settings, topic))


def test_standard_round_trip_list_grants_and_refusals(vault: Vault, home: Path, stack: LocalStack) -> None:
    name, agent = _name("svc"), _name("bot")
    secret = b"sk_live_" + uuid.uuid4().hex.encode()
    value_file = _write(home / "value", secret)

    created = vault("create", "--vault", name, "--json")
    assert created.code == 0, created.err
    assert created.json() == {"org": "default", "vault": name, "mode": "standard"}

    put = vault("put", "--vault", name, "--path", "stripe/api_key", "--type", "api_key", "--value-file", value_file)
    assert put.code == 0, put.err
    assert "stripe/api_key" in put.out and "version 1" in put.out
    # A second version from stdin, machine-readable.
    put2 = vault(
        "put",
        "--vault",
        name,
        "--path",
        "stripe/api_key",
        "--type",
        "api_key",
        "--value-file",
        "-",
        "--json",
        stdin=secret + b"-v2",
    )
    assert put2.code == 0 and put2.json()["version"] == 2

    got = vault("get", "--vault", name, "--path", "stripe/api_key")
    assert got.code == 0 and got.out == (secret + b"-v2").decode()
    got1 = vault("get", "--vault", name, "--path", "stripe/api_key", "--version", "1", "--json")
    assert got1.code == 0 and got1.json()["value"] == secret.decode() and got1.json()["version"] == 1

    listed = vault("list", "--vault", name, "--json")
    assert listed.code == 0
    rows = listed.json()["secrets"]
    assert [(r["path"], r["version"], r["secret_type"], r["active"]) for r in rows] == [
        ("stripe/api_key", 1, "api_key", True),
        ("stripe/api_key", 2, "api_key", True),
    ]
    assert all(r["created_by"] == "admin:local-admin" and r["created_at"] for r in rows)
    human = vault("list", "--vault", name)
    assert human.code == 0 and "stripe/api_key" in human.out
    for shown in (listed, human):
        assert b"sk_live_" not in (shown.out + shown.err).encode()

    # An agent without a grant is refused, and the refusal is audited on Kafka.
    refused = vault("get", "--vault", name, "--path", "stripe/api_key", "--actor", f"agent:{agent}")
    assert refused.code == 3
    assert f"agent {agent!r} has no grant" in refused.said and "warden vault grant" in refused.said
    assert "sk_live_" not in refused.out + refused.err

    granted = vault("grant", "--vault", name, "--agent", agent, "--prefix", "stripe")
    assert granted.code == 0, granted.err
    as_agent = vault("get", "--vault", name, "--path", "stripe/api_key", "--actor", f"agent:{agent}")
    assert as_agent.code == 0 and as_agent.out == (secret + b"-v2").decode()

    # Key material: an agent (Intents API on, the default) gets the vault's refusal; an admin the CLI's.
    key_file = _write(home / "key", os.urandom(32))
    assert (
        vault(
            "put", "--vault", name, "--path", "stripe/signing", "--type", "private_key", "--value-file", key_file
        ).code
        == 0
    )
    agent_key = vault("get", "--vault", name, "--path", "stripe/signing", "--actor", f"agent:{agent}")
    assert agent_key.code == 3
    assert "Intents API enabled and may not read private_key secrets" in agent_key.said
    admin_key = vault("get", "--vault", name, "--path", "stripe/signing", "--json")
    assert admin_key.code == 3 and admin_key.out == ""
    assert "never shows signing keys" in admin_key.said

    revoked = vault("revoke", "--vault", name, "--agent", f"agent:{agent}", "--prefix", "stripe")
    assert revoked.code == 0
    assert vault("get", "--vault", name, "--path", "stripe/api_key", "--actor", f"agent:{agent}").code == 3

    deactivated = vault("deactivate", "--vault", name, "--path", "stripe/api_key", "--version", "2", "--json")
    assert deactivated.code == 0 and deactivated.json()["deactivated_versions"] == [2]
    assert vault("get", "--vault", name, "--path", "stripe/api_key").out == secret.decode()
    missing = vault("deactivate", "--vault", name, "--path", "stripe/nothing")
    assert missing.code == 1 and "no secret at 'stripe/nothing'" in missing.said

    audit = _audit(stack, name)
    refusals = [
        (r.actor, r.details.get("reason"), r.resource) for r in audit if r.action == AuditAction.SECRET_READ_REFUSED
    ]
    assert (f"agent:{agent}", "no_grant", f"vault:default/{name}/stripe/api_key") in refusals
    assert (f"agent:{agent}", "intents_api_enabled", f"vault:default/{name}/stripe/signing@1") in refusals
    assert ("admin:local-admin", "cli_never_shows_key_material", f"vault:default/{name}/stripe/signing@1") in refusals
    actions = [r.action for r in audit]
    for action in (
        AuditAction.VAULT_CREATED,
        AuditAction.VAULT_MODE_SET,
        AuditAction.SECRET_WRITTEN,
        AuditAction.SECRET_READ,
        AuditAction.POLICY_GRANTED,
        AuditAction.POLICY_REVOKED,
        AuditAction.SECRET_DEACTIVATED,
    ):
        assert action in actions, action
    vault_keys = {
        json.loads(v)["type"] + " " + json.loads(v)["vault"] for v in read_topic_sync(stack.settings, topics.VAULT)
    }
    assert f"secret.version_written {name}" in vault_keys and f"policy.granted {name}" in vault_keys
    # The topics carry ciphertext and metadata, never the value.
    assert not any(secret in v for v in read_topic_sync(stack.settings, topics.VAULT))


def test_client_custody_share_handling(vault: Vault, home: Path) -> None:
    name = _name("cc")
    share_path = home / "share.txt"
    created = vault(
        "create", "--vault", name, "--mode", "2of2_client_custody", "--client-share-out", str(share_path), "--json"
    )
    assert created.code == 0, created.err
    assert stat.S_IMODE(share_path.stat().st_mode) == 0o600
    share = share_path.read_text().strip()
    assert len(base64.b64decode(share, validate=True)) == 32
    assert share not in created.out + created.err
    assert created.json()["client_share_written_to"] == str(share_path)
    assert "Warden keeps no copy" in created.said

    # The share file is never overwritten, and the refusal comes before any vault is made.
    other = _name("cc")
    again = vault("create", "--vault", other, "--mode", "2of2_client_custody", "--client-share-out", str(share_path))
    assert again.code == 2 and "already exists" in again.said
    assert share_path.read_text().strip() == share
    assert vault("list", "--vault", other).code == 1

    value_file = _write(home / "pw", b"hunter2-" + uuid.uuid4().hex.encode())
    no_share = vault("put", "--vault", name, "--path", "db/password", "--type", "password", "--value-file", value_file)
    assert no_share.code == 2 and "--client-share-file" in no_share.said and "2of2_client_custody" in no_share.said
    put = vault(
        "put",
        "--vault",
        name,
        "--path",
        "db/password",
        "--type",
        "password",
        "--value-file",
        value_file,
        "--client-share-file",
        str(share_path),
    )
    assert put.code == 0, put.err
    got = vault("get", "--vault", name, "--path", "db/password", "--client-share-file", "-", stdin=share.encode())
    assert got.code == 0 and got.out.encode() == (home / "pw").read_bytes()

    # Wrong shares: exit 1 and the one opaque message, the same whatever the share.
    messages = set()
    for attempt in range(2):
        wrong_share = base64.b64encode(os.urandom(32))
        wrong = _write(home / f"wrong{attempt}", wrong_share + b"\n")
        bad = vault("get", "--vault", name, "--path", "db/password", "--client-share-file", wrong)
        assert bad.code == 1 and bad.out == ""
        messages.add(bad.said)
        assert wrong_share.decode() not in bad.err and share not in bad.err
    assert messages == {f"warden vault get: {OPAQUE}"}
    malformed = vault("get", "--vault", name, "--path", "db/password", "--client-share-file", value_file)
    assert malformed.code == 2 and "not a client share" in malformed.said

    # Without --client-share-out the share is shown once on stderr, never in the --json document.
    shown = vault("create", "--vault", other, "--mode", "2of2_client_custody", "--json")
    assert shown.code == 0
    lines = [line for line in shown.err.splitlines() if line.startswith("CLIENT SHARE")]
    assert len(lines) == 1
    other_share = lines[0].rsplit(" ", 1)[1]
    assert other_share not in shown.out and shown.json()["client_share_shown_on"] == "stderr"
    assert "Warden keeps no copy" in shown.said
    assert (
        vault(
            "put",
            "--vault",
            other,
            "--path",
            "x",
            "--type",
            "generic",
            "--value-file",
            value_file,
            "--client-share-file",
            "-",
            stdin=other_share.encode(),
        ).code
        == 0
    )
    # Each vault's share is its own.
    crossed = vault("get", "--vault", other, "--path", "x", "--client-share-file", str(share_path))
    assert crossed.code == 1 and crossed.said == f"warden vault get: {OPAQUE}"


def test_custody_mode_is_set_once(vault: Vault, home: Path) -> None:
    name = _name("late")
    created = vault("create", "--vault", name, "--mode", "none")
    assert created.code == 0 and "no custody mode yet" in created.out
    value_file = _write(home / "v", b"token-value")
    early = vault("put", "--vault", name, "--path", "t", "--type", "token", "--value-file", value_file)
    assert early.code == 1 and "no custody mode yet" in early.said and "warden vault mode" in early.said
    first = vault("mode", "--vault", name, "--mode", "standard", "--json")
    assert first.code == 0 and first.json()["mode"] == "standard"
    second = vault("mode", "--vault", name, "--mode", "2of2_client_custody")
    assert second.code == 1
    assert "already has custody mode 'standard'" in second.said and "immutable" in second.said
    assert vault("list", "--vault", name, "--json").json()["mode"] == "standard"
    twice = vault("create", "--vault", name)
    assert twice.code == 1 and "already exists" in twice.said
    assert vault("put", "--vault", name, "--path", "t", "--type", "token", "--value-file", value_file).code == 0


def test_cmek_set_rotate_and_read(vault: Vault, home: Path) -> None:
    from signer.custody import fingerprint

    name = _name("cmek")
    assert vault("create", "--vault", name).code == 0
    value = b"cert-" + uuid.uuid4().hex.encode()
    value_file = _write(home / "v", value)
    for path in ("tls/a", "tls/b"):
        assert (
            vault("put", "--vault", name, "--path", path, "--type", "certificate", "--value-file", value_file).code == 0
        )

    key1, key2 = os.urandom(32), os.urandom(32)
    key1_file = _write(home / "k1", key1)  # raw bytes
    key2_file = _write(home / "k2", base64.b64encode(key2) + b"\n")  # base64 text
    set1 = vault("cmek", "--vault", name, "--key-file", key1_file)
    assert set1.code == 0, set1.err
    assert fingerprint(key1) in set1.out
    assert "re-wrapped 2/2 secret version(s)" in set1.said
    for form in (key1.hex(), base64.b64encode(key1).decode()):
        assert form not in set1.out + set1.err

    without = vault("get", "--vault", name, "--path", "tls/a")
    assert without.code == 1 and "--cmek-file" in without.said
    with_key = vault("get", "--vault", name, "--path", "tls/a", "--cmek-file", key1_file)
    assert with_key.code == 0 and with_key.out == value.decode()

    unloaded = vault("cmek", "--vault", name, "--key-file", key2_file)
    assert unloaded.code == 1 and "--current-key-file" in unloaded.said
    rotated = vault("cmek", "--vault", name, "--key-file", key2_file, "--current-key-file", key1_file, "--json")
    assert rotated.code == 0, rotated.err
    assert rotated.json()["fingerprint"] == fingerprint(key2)
    assert rotated.json()["previous_fingerprint"] == fingerprint(key1)
    rows = vault("list", "--vault", name, "--json").json()["secrets"]
    assert {r["cmek_fingerprint"] for r in rows} == {fingerprint(key2)}

    retired = vault("get", "--vault", name, "--path", "tls/b", "--cmek-file", key1_file)
    assert retired.code == 1 and retired.said == f"warden vault get: {OPAQUE}"
    out = home / "out.pem"
    fresh = vault("get", "--vault", name, "--path", "tls/b", "--cmek-file", key2_file, "--out", str(out))
    assert fresh.code == 0 and fresh.out == ""
    assert out.read_bytes() == value and stat.S_IMODE(out.stat().st_mode) == 0o600
    clobber = vault("get", "--vault", name, "--path", "tls/b", "--cmek-file", key2_file, "--out", str(out))
    assert clobber.code == 2 and "already exists" in clobber.said


def test_bad_inputs_name_the_problem(vault: Vault, home: Path) -> None:
    name = _name("bad")
    assert vault("create", "--vault", name).code == 0
    value_file = _write(home / "v", b"value")

    missing = vault("put", "--vault", name, "--path", "p", "--type", "token", "--value-file", str(home / "nope"))
    assert missing.code == 2 and f"--value-file {home / 'nope'}: no such file" in missing.said
    empty = vault("put", "--vault", name, "--path", "p", "--type", "token", "--value-file", _write(home / "e", b""))
    assert empty.code == 2 and "empty" in empty.said
    unknown_type = vault("put", "--vault", name, "--path", "p", "--type", "nope", "--value-file", value_file)
    assert unknown_type.code == 2 and "invalid choice: 'nope'" in unknown_type.err
    bad_path = vault("put", "--vault", name, "--path", "a//b", "--type", "token", "--value-file", value_file)
    assert bad_path.code == 1 and "bad secret path 'a//b'" in bad_path.said
    no_vault = vault("put", "--vault", _name("ghost"), "--path", "p", "--type", "token", "--value-file", value_file)
    assert no_vault.code == 1 and "warden vault create" in no_vault.said
    actor = vault("list", "--vault", name, "--actor", "root")
    assert actor.code == 2 and "--actor" in actor.said and "admin:<key id>" in actor.said
    not_admin = vault(
        "put", "--vault", name, "--path", "p", "--type", "token", "--value-file", value_file, "--actor", "agent:x"
    )
    assert not_admin.code == 3 and "admins only" in not_admin.said
    short_key = vault("cmek", "--vault", name, "--key-file", value_file)
    assert short_key.code == 2 and "32 raw bytes" in short_key.said
    two_stdins = vault(
        "put",
        "--vault",
        name,
        "--path",
        "p",
        "--type",
        "token",
        "--value-file",
        "-",
        "--client-share-file",
        "-",
        stdin=b"x",
    )
    assert two_stdins.code == 2 and "standard input" in two_stdins.said
    no_secret = vault("get", "--vault", name, "--path", "p")
    assert no_secret.code == 1 and "no active version of 'p'" in no_secret.said
    signing_vault = vault(
        "put", "--vault", "__agent-keys", "--path", "p", "--type", "token", "--value-file", value_file
    )
    assert signing_vault.code == 2 and "warden keys" in signing_vault.said
    assert vault("list", "--vault", name, "--json").json()["secrets"] == []
