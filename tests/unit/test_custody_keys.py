"""Signing keys: provision, rotate, deactivate, list, open (wiped), resolve the signing path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from schemas.actions import AuditAction
from schemas.audit import AuditEvent
from schemas.emit import Emit
from signer import chain_keys
from signer.custody import Conflict, CustodyError, InvalidKey, NotFound, PermissionDenied, key_forms
from signer.custody.keys import KeyStore, ProvisionedKey, agent_key_path
from tests.custody_support import ADMIN, SIGNER, T0, make_vaults


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(make_vaults(tmp_path))


def test_provision_every_chain(store: KeyStore) -> None:
    for chain in chain_keys.KEY_CHAINS:
        key = store.provision("agent-7", chain, ADMIN, now=T0)
        assert key.path == f"agents/agent-7/chains/{chain}/private_key"
        assert key.version == 1 and key.agent_id == "agent-7" and key.chain == chain
        with store.open_private_key(key.path, now=T0) as private_key:
            public = chain_keys.public_key(chain, private_key)
            assert public.hex() == key.public_key_hex
            assert chain_keys.address(chain, public) == key.address
    listed = store.list_keys(ADMIN, agent_id="agent-7")
    assert sorted(k.chain for k in listed) == sorted(chain_keys.KEY_CHAINS)
    assert all(k.active and k.development for k in listed)


def test_provision_twice_rotate_deactivate(store: KeyStore) -> None:
    first = store.provision("a1", "ethereum", ADMIN, now=T0)
    with pytest.raises(Conflict, match="keys rotate"):
        store.provision("a1", "ethereum", ADMIN, now=T0)
    second = store.rotate("a1", "ethereum", ADMIN, now=T0 + 10)
    assert second.version == 2 and second.address != first.address
    with store.open_private_key(first.path, now=T0) as key:  # newest active version by default
        assert chain_keys.address("ethereum", chain_keys.public_key("ethereum", key)) == second.address
    with store.open_private_key(first.path, version=1, now=T0) as key:  # older version still usable by number
        assert chain_keys.address("ethereum", chain_keys.public_key("ethereum", key)) == first.address
    assert store.deactivate("a1", "ethereum", ADMIN, version=1, now=T0) == [1]
    assert [(k.version, k.active) for k in store.list_keys(ADMIN, agent_id="a1")] == [(1, False), (2, True)]
    assert store.deactivate("a1", "ethereum", ADMIN, now=T0) == [2]
    with pytest.raises(NotFound), store.open_private_key(first.path, now=T0):
        pass
    with pytest.raises(NotFound, match="keys provision"):
        store.rotate("a1", "ethereum", ADMIN, now=T0)
    assert store.provision("a1", "ethereum", ADMIN, now=T0).version == 3


def test_agents_are_refused_every_key_operation(store: KeyStore) -> None:
    store.provision("a1", "ethereum", ADMIN, now=T0)
    calls: dict[str, Callable[[], object]] = {
        "provision": lambda: store.provision("a1", "solana", "agent:a1", now=T0),
        "rotate": lambda: store.rotate("a1", "ethereum", "agent:a1", now=T0),
        "deactivate": lambda: store.deactivate("a1", "ethereum", "agent:a1", now=T0),
        "list": lambda: store.list_keys("agent:a1"),
    }
    for action, call in calls.items():
        with pytest.raises(PermissionDenied) as exc:
            call()
        assert f"`warden keys {action}` is for admins only" in str(exc.value)
        assert "agents never manage or read signing keys" in str(exc.value)
    # Reading a key: refused, with the Intents API reason by default...
    with (
        pytest.raises(PermissionDenied, match="Intents API enabled") as exc,
        store.open_private_key(agent_key_path("a1", "ethereum"), actor="agent:a1", now=T0),
    ):
        pass
    assert exc.value.audit is not None
    assert AuditEvent.from_bytes(exc.value.audit.value).action == AuditAction.SECRET_READ_REFUSED
    # ...and even for an agent without the Intents API.
    store.vaults.secrets.intents_api_enabled = lambda agent: False
    with (
        pytest.raises(PermissionDenied),
        store.open_private_key(agent_key_path("a1", "ethereum"), actor="agent:a1", now=T0),
    ):
        pass


def test_open_private_key_wipes_on_exit_and_on_error(store: KeyStore) -> None:
    key = store.provision("a1", "bitcoin", ADMIN, now=T0)
    with store.open_private_key(key.path, now=T0) as private_key:
        held = private_key
        assert any(held)
    assert held == bytearray(32)
    with pytest.raises(RuntimeError), store.open_private_key(key.path, now=T0) as private_key:
        held = private_key
        raise RuntimeError("signing failed")
    assert held == bytearray(32)


def test_unknown_chain_and_bad_agent(store: KeyStore) -> None:
    with pytest.raises(CustodyError, match="unknown key chain"):
        store.provision("a1", "dogecoin", ADMIN, now=T0)
    with pytest.raises(CustodyError, match="bad agent id"):
        store.provision("../a1", "ethereum", ADMIN, now=T0)


def test_resolve_signing_path(store: KeyStore) -> None:
    with pytest.raises(NotFound, match="warden keys provision --agent a1 --chain ethereum"):
        store.resolve_signing_path("a1", "base")
    store.provision_signer("ethereum", ADMIN, now=T0)
    assert store.resolve_signing_path("a1", "base") == "keys/ethereum-signer"
    store.provision("a1", "ethereum", ADMIN, now=T0)
    # Network aliases map to the key chain: every EVM network uses the ethereum key.
    for network in ("ethereum", "base", "sepolia", "arbitrum", "anvil"):
        assert store.resolve_signing_path("a1", network) == "agents/a1/chains/ethereum/private_key"
    # Only the allowed prefixes.
    assert store.resolve_signing_path("a1", "base", allowed_prefixes=("keys/",)) == "keys/ethereum-signer"
    with pytest.raises(NotFound):
        store.resolve_signing_path("a1", "base", allowed_prefixes=("vaults/",))
    # Non-EVM chains name themselves.
    store.provision("a1", "solana", ADMIN, now=T0)
    assert store.resolve_signing_path("a1", "solana") == "agents/a1/chains/solana/private_key"
    with pytest.raises(CustodyError, match="no signing keys for chain 'dogecoin'"):
        store.resolve_signing_path("a1", "dogecoin")


def test_resolve_requested_path(store: KeyStore) -> None:
    own = "agents/a1/chains/ethereum/private_key"
    assert store.resolve_signing_path("a1", "base", own) == own
    assert store.resolve_signing_path("a1", "base", "keys/ethereum-signer") == "keys/ethereum-signer"
    refusals = {
        "agents/a2/chains/ethereum/private_key": "another agent's key",
        "agents/a1/chains/bitcoin/private_key": "holds a bitcoin key",
        "keys/solana-signer": "holds a solana key",
        "vaults/stolen": "outside the allowed prefixes",
    }
    for path, message in refusals.items():
        with pytest.raises(PermissionDenied, match=message):
            store.resolve_signing_path("a1", "base", path)
    with pytest.raises(PermissionDenied, match="outside the allowed prefixes"):
        store.resolve_signing_path("a1", "base", own, allowed_prefixes=("keys/",))
    with pytest.raises(CustodyError, match="bad secret path"):
        store.resolve_signing_path("a1", "base", "agents/a1/../a2/chains/ethereum/private_key")


def test_no_repr_str_or_error_carries_key_material(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit: list[Emit] = []
    vaults = make_vaults(tmp_path, audit=audit.append)
    store = KeyStore(vaults)
    provisioned = store.provision("a1", "ethereum", ADMIN, now=T0)
    with store.open_private_key(provisioned.path, now=T0) as private_key:
        forms = key_forms(private_key)
    texts = [
        repr(vaults),
        str(vaults),
        repr(store),
        repr(provisioned),
        repr(vaults.primary),
        repr(store.list_keys(ADMIN)),
        repr(audit),
    ]
    texts += [repr(e) for e in vaults.book.log.poll()]
    state = vaults.book.state("default", "__agent-keys")
    texts += [repr(state), repr(list(vaults.keks._cache.values()))]
    errors = []
    for call in (
        lambda: vaults.read_secret("default", "__agent-keys", provisioned.path, actor="agent:a1", now=T0),
        lambda: store.resolve_signing_path("a2", "base", provisioned.path),
        lambda: store.provision("a1", "ethereum", ADMIN, now=T0),
    ):
        with pytest.raises(Exception) as exc:
            call()
        errors.append(exc.value)
    # A corrupted ciphertext: the one opaque error.
    secret = state.secrets[provisioned.path][1]
    vaults.apply(secret.model_copy(update={"version": 9, "event_id": "x"}))
    with pytest.raises(InvalidKey) as exc:
        vaults.read_secret("default", "__agent-keys", provisioned.path, 9, actor=SIGNER, now=T0)
    errors.append(exc.value)
    texts += [repr(e) for e in errors] + [str(e) for e in errors]
    captured = capsys.readouterr()
    texts += [captured.out, captured.err]
    texts.append((tmp_path / "vault" / "events.jsonl").read_text())
    blob = "\n".join(texts).encode()
    for form in forms:
        assert form not in blob
    assert isinstance(provisioned, ProvisionedKey)


def test_keys_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`warden keys` end to end through the real CLI (no broker here: it says the custody
    events were not published, and the vault's file log still holds them)."""
    import json

    from infra.cli import main
    from infra.stack.local import free_port

    monkeypatch.setenv("WARDEN_HOME", str(tmp_path))
    monkeypatch.setenv("WARDEN_ALLOW_DEV_ROOT", "1")
    monkeypatch.setenv("WARDEN_BROKER", f"127.0.0.1:{free_port()}")

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, err = run("keys", "provision", "--agent", "a1", "--chain", "ethereum", "--json")
    assert code == 0 and json.loads(out)["path"] == "agents/a1/chains/ethereum/private_key"
    assert "not published" in err
    code, _, err = run("keys", "provision", "--agent", "a1", "--chain", "tron", "--actor", "agent:a1")
    assert code == 3 and "refused" in err and "admins only" in err
    assert run("keys", "rotate", "--agent", "a1", "--chain", "ethereum")[0] == 0
    code, out, _ = run("keys", "deactivate", "--agent", "a1", "--chain", "ethereum", "--version", "1", "--json")
    assert code == 0 and json.loads(out)["deactivated_versions"] == [1]
    code, out, _ = run("keys", "list", "--agent", "a1", "--json")
    assert [(k["version"], k["active"]) for k in json.loads(out)] == [(1, False), (2, True)]
    code, out, _ = run("keys", "provision-signer", "--chain", "ethereum", "--json")
    assert code == 0 and json.loads(out)["path"] == "keys/ethereum-signer"
    code, _, err = run("keys", "provision", "--agent", "a1", "--chain", "dogecoin")
    assert code == 2 and "neither a key chain nor a network" in err
    assert "ethereum, bitcoin, solana, xrp, cardano, tron" in err
    # A network's name is its family's key chain: anvil's key is the ethereum one.
    code, out, err = run("keys", "provision", "--agent", "a3", "--chain", "anvil", "--json")
    assert code == 0 and json.loads(out)["path"] == "agents/a3/chains/ethereum/private_key"
    assert "anvil signs with the ethereum key chain" in err
    assert run("keys", "provision", "--chain", "tron")[0] == 2
    # Another process (the signer) sees what the CLI did, through the shared log.
    from runtime.config import load
    from signer.custody import Vaults

    signer_store = KeyStore(Vaults.from_settings(load()))
    assert signer_store.resolve_signing_path("a1", "base") == "agents/a1/chains/ethereum/private_key"
    assert signer_store.resolve_signing_path("a2", "base") == "keys/ethereum-signer"


def test_hygiene_key_forms() -> None:
    import base64

    from signer.custody import find_leaks

    key = bytes(range(250, 256)) + bytes(26)
    forms = key_forms(key)
    assert forms[0] == key and len(forms) == len(set(forms))
    assert key.hex().encode() in forms and key.hex().upper().encode() in forms
    assert b"0x" + key.hex().encode() in forms
    assert base64.b64encode(key) in forms and base64.urlsafe_b64encode(key).rstrip(b"=") in forms
    assert find_leaks(f"log line key=0x{key.hex()} end", key) == ["hex", "0xhex"]
    assert find_leaks("nothing here", key) == []
