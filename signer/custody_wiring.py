"""How the signer and the CLI open the key store configured for this deployment."""

from __future__ import annotations

from infra.config import Settings


def keystore_from_settings(settings: Settings):
    from signer.custody.keys import KeyStore
    from signer.custody.vault import Vaults

    return KeyStore(Vaults.from_settings(settings))
