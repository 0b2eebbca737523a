"""Root-of-trust providers against real servers on loopback.

AWS KMS: boto3 over HTTP against ``moto_server``. PKCS#11: python-pkcs11 against
SoftHSM2 with a token made in a temp dir. Google Cloud KMS and Azure Key Vault:
the real client libraries (google-cloud-kms over gRPC, azure-keyvault-keys over
HTTPS) against local servers speaking those protocols (infra/stack/kms_servers.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.stack.kms_servers import AWS_TEST_CREDENTIALS, LocalCloudKms, LocalKeyVault, MotoServer
from infra.stack.local import free_port
from runtime.config import Settings
from signer.custody import (
    InvalidKey,
    ProviderUnavailable,
    RootOfTrust,
    Vaults,
    parse_event,
    root_from_settings,
    roots_from_settings,
)
from signer.custody.aws_kms import AwsKmsRoot
from signer.custody.events import ModeSet
from signer.custody.gcp_kms import GcpKmsRoot
from signer.custody.pkcs11_hsm import Pkcs11Root
from tests.custody_support import ADMIN, SIGNER, T0, SoftHsmToken, make_vaults

GCP_KEY = "projects/warden-test/locations/global/keyRings/warden/cryptoKeys/root"
GCP_KEY_2 = "projects/warden-test/locations/global/keyRings/warden/cryptoKeys/root-2"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    token = SoftHsmToken(tmp_path_factory.mktemp("softhsm"))
    Pkcs11Root.create_key(token.module, token.label, token.pin, "warden-root")
    return token


@pytest.fixture(scope="module")
def cloud_kms() -> Iterator[LocalCloudKms]:
    server = LocalCloudKms((GCP_KEY, GCP_KEY_2))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def key_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKeyVault]:
    server = LocalKeyVault(tmp_path_factory.mktemp("kv"))
    yield server
    server.stop()


def make_root(
    provider: str,
    moto: MotoServer,
    softhsm: SoftHsmToken,
    cloud_kms: LocalCloudKms,
    key_vault: LocalKeyVault,
    name: str | None = None,
) -> RootOfTrust:
    if provider == "aws-kms":
        return AwsKmsRoot(moto.create_key(), endpoint_url=moto.url, name=name or provider, **AWS_TEST_CREDENTIALS)
    if provider == "pkcs11":
        return Pkcs11Root(softhsm.module, softhsm.label, softhsm.pin, name=name or provider)
    if provider == "gcp-kms":
        return GcpKmsRoot(GCP_KEY, api_endpoint=cloud_kms.endpoint, insecure=True, name=name or provider)
    return key_vault.root(name or provider)


PROVIDERS = ["aws-kms", "pkcs11", "gcp-kms", "azure-kv"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_wrap_unwrap_binds_associated_data(
    provider: str, moto: MotoServer, softhsm: SoftHsmToken, cloud_kms: LocalCloudKms, key_vault: LocalKeyVault
) -> None:
    root = make_root(provider, moto, softhsm, cloud_kms, key_vault)
    assert root.name == provider and root.development is False
    kek = os.urandom(32)
    wrapped = root.wrap(kek, b"org/vault/slot-1")
    assert kek not in wrapped
    assert root.unwrap(wrapped, b"org/vault/slot-1") == bytearray(kek)
    flipped = bytearray(wrapped)
    flipped[len(flipped) // 2] ^= 0x01
    for ciphertext, aad in (
        (wrapped, b"org/vault/slot-2"),
        (bytes(flipped), b"org/vault/slot-1"),
        (wrapped[:8], b"org/vault/slot-1"),
    ):
        with pytest.raises(InvalidKey) as exc:
            root.unwrap(ciphertext, aad)
        assert str(exc.value) == "custody: authentication failed"
    assert kek.hex() not in repr(root)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_vault_on_each_provider_cold_and_warm(
    provider: str,
    tmp_path: Path,
    moto: MotoServer,
    softhsm: SoftHsmToken,
    cloud_kms: LocalCloudKms,
    key_vault: LocalKeyVault,
) -> None:
    root = make_root(provider, moto, softhsm, cloud_kms, key_vault)
    vaults = make_vaults(tmp_path, roots=root)
    vaults.create_vault("acme", "prod", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "prod", "api/key", b"sk-live-123", "api_key", actor=ADMIN, now=T0)
    mode = next(
        parse_event(line)
        for line in (tmp_path / "vault" / "events.jsonl").read_bytes().splitlines()
        if b"vault.mode_set" in line
    )
    assert isinstance(mode, ModeSet) and mode.development is False and mode.slots[0].provider == provider
    # A new process: cold cache, unwraps through the provider.
    fresh = make_vaults(tmp_path, roots=root)
    with fresh.open_secret("acme", "prod", "api/key", actor=SIGNER, now=T0) as value:
        assert value == bytearray(b"sk-live-123")


def test_a_different_key_of_the_same_provider_cannot_unwrap(moto: MotoServer, cloud_kms: LocalCloudKms) -> None:
    a = AwsKmsRoot(moto.create_key(), endpoint_url=moto.url, **AWS_TEST_CREDENTIALS)
    b = AwsKmsRoot(moto.create_key(), endpoint_url=moto.url, **AWS_TEST_CREDENTIALS)
    # AWS answers IncorrectKeyException (-> InvalidKey); moto answers AccessDeniedException,
    # which the root reports as an outage (it is also what an IAM denial looks like). Closed either way.
    with pytest.raises((InvalidKey, ProviderUnavailable)):
        b.unwrap(a.wrap(b"k" * 32, b"aad"), b"aad")
    g1 = GcpKmsRoot(GCP_KEY, api_endpoint=cloud_kms.endpoint, insecure=True)
    g2 = GcpKmsRoot(GCP_KEY_2, api_endpoint=cloud_kms.endpoint, insecure=True)
    with pytest.raises(InvalidKey):
        g2.unwrap(g1.wrap(b"k" * 32, b"aad"), b"aad")


def test_unreachable_providers_are_outages_not_forgeries(
    moto: MotoServer, softhsm: SoftHsmToken, cloud_kms: LocalCloudKms, key_vault: LocalKeyVault
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    roots: list[RootOfTrust] = [
        AwsKmsRoot(moto.create_key(), endpoint_url=f"http://{dead}", max_attempts=1, **AWS_TEST_CREDENTIALS),
        GcpKmsRoot(GCP_KEY, api_endpoint=dead, insecure=True, timeout=1.0),
    ]
    for root in roots:
        with pytest.raises(ProviderUnavailable):
            root.unwrap(b"\x01" * 64, b"aad")
    with pytest.raises(ProviderUnavailable):
        GcpKmsRoot(
            "projects/x/locations/global/keyRings/r/cryptoKeys/missing", api_endpoint=cloud_kms.endpoint, insecure=True
        ).wrap(b"k" * 32, b"aad")
    with pytest.raises(ProviderUnavailable):
        Pkcs11Root(softhsm.module, "no-such-token", softhsm.pin)


def test_2of3_multi_hsm_across_aws_gcp_and_pkcs11_with_one_down(
    tmp_path: Path, moto: MotoServer, softhsm: SoftHsmToken, cloud_kms: LocalCloudKms, key_vault: LocalKeyVault
) -> None:
    aws = make_root("aws-kms", moto, softhsm, cloud_kms, key_vault)
    assert isinstance(aws, AwsKmsRoot)
    roots = {
        r.name: r
        for r in (
            aws,
            make_root("gcp-kms", moto, softhsm, cloud_kms, key_vault),
            make_root("pkcs11", moto, softhsm, cloud_kms, key_vault),
        )
    }
    vaults = make_vaults(tmp_path, roots=roots)
    vaults.create_vault("acme", "cold", actor=ADMIN, mode="2of3_multi_hsm", now=T0)
    vaults.write_secret("acme", "cold", "treasury", b"cold-key", "private_key", actor=ADMIN, now=T0)
    events = [parse_event(line) for line in (tmp_path / "vault" / "events.jsonl").read_bytes().splitlines()]
    # AWS is unreachable in this process: same key id, dead endpoint.
    dead_aws = AwsKmsRoot(
        aws.key_id, endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1, **AWS_TEST_CREDENTIALS
    )
    reader = Vaults({**roots, "aws-kms": dead_aws}, lambda e: None)
    reader.replay(events)
    with reader.open_secret("acme", "cold", "treasury", actor=SIGNER, now=T0) as value:
        assert value == bytearray(b"cold-key")


def test_2of3_client_custody_across_azure_and_gcp(
    tmp_path: Path, moto: MotoServer, softhsm: SoftHsmToken, cloud_kms: LocalCloudKms, key_vault: LocalKeyVault
) -> None:
    roots = {
        r.name: r
        for r in (
            make_root("azure-kv", moto, softhsm, cloud_kms, key_vault),
            make_root("gcp-kms", moto, softhsm, cloud_kms, key_vault),
        )
    }
    vaults = make_vaults(tmp_path, roots=roots)
    share = vaults.create_vault("acme", "joint", actor=ADMIN, mode="2of3_client_custody", now=T0)
    vaults.write_secret("acme", "joint", "k", b"joint", "ssh_key", actor=ADMIN, client_share=share, now=T0)
    only_azure = make_vaults(tmp_path, roots={"azure-kv": roots["azure-kv"]})
    with only_azure.open_secret("acme", "joint", "k", actor=SIGNER, client_share=share, now=T0) as value:
        assert value == bytearray(b"joint")
    with pytest.raises(InvalidKey):
        only_azure.read_secret("acme", "joint", "k", actor=SIGNER, now=T0)


def test_roots_from_settings_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer, softhsm: SoftHsmToken, cloud_kms: LocalCloudKms
) -> None:
    monkeypatch.setenv("WARDEN_AWS_KMS_KEY_ID", moto.create_key())
    monkeypatch.setenv("WARDEN_AWS_KMS_ENDPOINT", moto.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("WARDEN_GCP_KMS_KEY", GCP_KEY)
    monkeypatch.setenv("WARDEN_GCP_KMS_ENDPOINT", cloud_kms.endpoint)
    monkeypatch.setenv("WARDEN_GCP_KMS_INSECURE", "1")
    monkeypatch.setenv("WARDEN_PKCS11_MODULE", softhsm.module)
    monkeypatch.setenv("WARDEN_PKCS11_TOKEN", softhsm.label)
    monkeypatch.setenv("WARDEN_PKCS11_PIN", softhsm.pin)
    monkeypatch.setenv("WARDEN_ROOT_PROVIDERS", "gcp-kms,pkcs11")
    settings = Settings(home=tmp_path, root_provider="aws-kms")
    roots = roots_from_settings(settings)
    assert list(roots) == ["aws-kms", "gcp-kms", "pkcs11"]
    vaults = Vaults(roots, lambda e: None)
    vaults.create_vault("acme", "v", actor=ADMIN, mode="2of3_multi_hsm", now=T0)
    vaults.write_secret("acme", "v", "k", b"x", "token", actor=ADMIN, now=T0)
    assert vaults.read_secret("acme", "v", "k", actor=SIGNER, now=T0) == bytearray(b"x")
    monkeypatch.delenv("WARDEN_AZURE_KV_KEY_ID", raising=False)
    with pytest.raises(ProviderUnavailable, match="WARDEN_AZURE_KV_KEY_ID"):
        root_from_settings(settings, "azure-kv")


def test_debug_logging_of_client_libraries_never_carries_key_material(
    tmp_path: Path, moto: MotoServer, softhsm: SoftHsmToken, cloud_kms: LocalCloudKms, key_vault: LocalKeyVault
) -> None:
    import base64
    import logging

    from signer.custody import key_forms
    from signer.custody.keks import slot_aad
    from signer.custody.keys import KeyStore

    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Capture(level=logging.DEBUG)
    root_logger = logging.getLogger()
    old_level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.DEBUG)
    try:
        roots = {r.name: r for r in (make_root(p, moto, softhsm, cloud_kms, key_vault) for p in PROVIDERS)}
        secrets = []
        for name, root in roots.items():
            store = KeyStore(make_vaults(tmp_path / name, roots=root))
            key = store.provision("a1", "ethereum", ADMIN, now=T0)
            store.vaults.evict(everything=True)
            with store.open_private_key(key.path, now=T0) as private_key:
                secrets.append(bytes(private_key))
            mode = store.vaults.book.state("default", "__agent-keys").mode
            assert mode is not None
            slot = mode.slots[0]
            kek = root.unwrap(
                base64.b64decode(slot.wrapped),
                slot_aad("default", "__agent-keys", mode.kek_id, mode.mode, slot.x, slot.provider),
            )
            secrets.append(bytes(kek))
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(old_level)
    assert any("botocore" in r or "Response" in r or "request" in r.lower() for r in records)  # logging was on
    blob = "\n".join(records).encode()
    for secret in secrets:
        for form in key_forms(secret):
            assert form not in blob
