"""Azure Key Vault (or Managed HSM) as a root of trust (azure-keyvault-keys).

Key Vault's wrapKey/unwrapKey take no associated data, so each wrap draws a
fresh 256-bit transport key T, has Key Vault wrap T (RSA-OAEP-256 by default)
and seals the plaintext under T with AES-256-GCM and the caller's associated
data. Unwrapping needs Key Vault to unwrap T and then the associated data to
match: a wrapped KEK presented for another slot fails like any forgery.

Envelope: version 0x01 ‖ len(wrapped T) (2 bytes, big-endian) ‖ wrapped T ‖ nonce ‖ ciphertext ‖ tag.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from signer.custody._crypto import KEY_BYTES, open_key, seal_key, wipe
from signer.custody.errors import InvalidKey, ProviderUnavailable
from signer.custody.hygiene import guard_client_logs

_VERSION = b"\x01"


class AzureKeyVaultRoot:
    development = False

    def __init__(
        self,
        key_id: str,
        credential: Any = None,
        *,
        algorithm: str = "RSA-OAEP-256",
        name: str = "azure-kv",
        **client_kwargs: Any,
    ):
        from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm

        if credential is None:
            from azure.identity import DefaultAzureCredential  # only needed against real Azure

            credential = DefaultAzureCredential()
        guard_client_logs()
        self.name = name
        self.key_id = key_id
        self._algorithm = KeyWrapAlgorithm(algorithm)
        client_kwargs.setdefault("retry_total", 2)
        client_kwargs.setdefault("connection_timeout", 5)
        self._client = CryptographyClient(key_id, credential, **client_kwargs)

    def __repr__(self) -> str:
        return f"AzureKeyVaultRoot(name={self.name!r}, key_id={self.key_id!r})"

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        transport = bytearray(os.urandom(KEY_BYTES))
        try:
            try:
                wrapped = self._client.wrap_key(self._algorithm, bytes(transport)).encrypted_key
            except Exception as exc:
                raise self._unavailable(exc) from None
            sealed = seal_key(transport, plaintext, aad)
        finally:
            wipe(transport)
        return _VERSION + struct.pack(">H", len(wrapped)) + wrapped + sealed

    def unwrap(self, ciphertext: bytes, aad: bytes) -> bytearray:
        from azure.core.exceptions import HttpResponseError

        if len(ciphertext) < 3 or ciphertext[:1] != _VERSION:
            raise InvalidKey()
        (length,) = struct.unpack(">H", ciphertext[1:3])
        wrapped, sealed = ciphertext[3 : 3 + length], ciphertext[3 + length :]
        if len(wrapped) != length:
            raise InvalidKey()
        try:
            result = self._client.unwrap_key(self._algorithm, wrapped)
        except HttpResponseError as exc:
            # Key Vault answers a wrapped key it cannot unwrap with 400 Bad Request.
            if exc.status_code == 400:
                raise InvalidKey() from None
            raise self._unavailable(exc) from None
        except Exception as exc:
            raise self._unavailable(exc) from None
        transport = bytearray(result.key)
        del result
        try:
            if len(transport) != KEY_BYTES:
                raise InvalidKey()
            return open_key(transport, sealed, aad)
        finally:
            wipe(transport)

    def _unavailable(self, exc: Exception) -> ProviderUnavailable:
        status = getattr(exc, "status_code", None)
        detail = f"HTTP {status}" if status else type(exc).__name__
        return ProviderUnavailable(f"Azure Key Vault ({self.name}, {self.key_id}) failed: {detail}")
