"""AWS KMS as a root of trust (boto3).

``wrap`` is KMS Encrypt under a symmetric KMS key; the caller's associated data
goes in as the encryption context (its SHA-256, since context values are
strings and end up in CloudTrail), so KMS itself refuses to decrypt a wrapped
KEK presented for another slot. The key never leaves KMS.

botocore returns plaintext as immutable ``bytes``: it is copied into a
``bytearray`` at once and the ``bytes`` dropped; that copy is the one the
library forces on us.
"""

from __future__ import annotations

import hashlib
from typing import Any

from signer.custody.errors import InvalidKey, ProviderUnavailable
from signer.custody.hygiene import guard_client_logs

# KMS's own verdicts on a ciphertext: all mean "not yours", so all are InvalidKey.
_AUTH_CODES = frozenset({"InvalidCiphertextException", "IncorrectKeyException", "InvalidKeyUsageException"})


class AwsKmsRoot:
    development = False

    def __init__(
        self,
        key_id: str,
        *,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        name: str = "aws-kms",
        client: Any = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_attempts: int = 3,
        **client_kwargs: Any,
    ):
        import boto3  # type: ignore[import-untyped]  # boto3 ships no types (no py.typed; boto3-stubs not installed)
        from botocore.config import Config

        guard_client_logs()
        self.name = name
        self.key_id = key_id
        self._client = client or boto3.client(
            "kms",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": max_attempts, "mode": "standard"},
            ),
            **client_kwargs,
        )

    def __repr__(self) -> str:
        return f"AwsKmsRoot(name={self.name!r}, key_id={self.key_id!r})"

    @staticmethod
    def _context(aad: bytes) -> dict[str, str]:
        return {"warden-aad-sha256": hashlib.sha256(aad).hexdigest()}

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        try:
            reply = self._client.encrypt(
                KeyId=self.key_id, Plaintext=bytes(plaintext), EncryptionContext=self._context(aad)
            )
        except Exception as exc:
            raise self._unavailable(exc) from None
        return bytes(reply["CiphertextBlob"])

    def unwrap(self, ciphertext: bytes, aad: bytes) -> bytearray:
        from botocore.exceptions import ClientError

        try:
            reply = self._client.decrypt(
                KeyId=self.key_id, CiphertextBlob=ciphertext, EncryptionContext=self._context(aad)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _AUTH_CODES:
                raise InvalidKey() from None
            raise self._unavailable(exc) from None
        except Exception as exc:
            raise self._unavailable(exc) from None
        plaintext = reply.pop("Plaintext")
        out = bytearray(plaintext)
        del plaintext
        return out

    def _unavailable(self, exc: Exception) -> ProviderUnavailable:
        from botocore.exceptions import ClientError

        detail = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else type(exc).__name__
        return ProviderUnavailable(f"AWS KMS ({self.name}, key {self.key_id}) failed: {detail}")
