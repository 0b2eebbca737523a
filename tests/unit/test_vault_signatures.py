"""Vault event signatures are bound to the event and to the vault context."""

from __future__ import annotations

from runtime.trust import LOCAL_ADMIN_ID, PinnedAuditKeys
from schemas.auth import VaultEventSigner, vault_event_forgery
from sdk.admin import load_or_create_admin_key


def test_vault_signatures_are_bound_to_the_event_and_to_the_vault_context(tmp_path, monkeypatch):
    """What the signer checks, without a stack: the admin's vault signature over these very bytes,
    by a pinned key, in the vault's headers."""
    monkeypatch.setenv("WARDEN_HOME", str(tmp_path))
    from runtime.config import load

    settings = load()
    admin = load_or_create_admin_key(settings.home)
    keys = PinnedAuditKeys(settings)
    value = b'{"type":"secret.deactivated"}'
    headers = VaultEventSigner(LOCAL_ADMIN_ID, admin).headers(value)
    assert vault_event_forgery(value, headers, keys) is None
    assert (
        vault_event_forgery(value + b" ", headers, keys)
        == "the signature does not verify against admin key 'local-admin'"
    )
    assert vault_event_forgery(
        value, [(n, b"worker:" + v) if n == "warden-vault-by" else (n, v) for n, v in headers], keys
    ).startswith("warden-vault-by b'worker:admin:")
    assert (
        vault_event_forgery(value, VaultEventSigner("someone", admin).headers(value), keys)
        == "warden-vault-by admin:someone is not a pinned admin key"
    )
    assert vault_event_forgery(value, headers[:1], keys).startswith("unsigned")
