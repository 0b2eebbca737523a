"""Google Cloud KMS as a root of trust (google-cloud-kms).

``wrap`` is Cloud KMS Encrypt under a symmetric CryptoKey with the caller's
associated data as ``additional_authenticated_data``, so KMS refuses a wrapped
KEK presented for another slot. Requests and replies carry CRC32C checksums,
checked both ways as Google recommends, so a corrupted reply is an error and
never a wrong key.

``api_endpoint`` points the client elsewhere (a regional or private endpoint);
``insecure=True`` opens a plaintext gRPC channel and is only for a local test
server (see CUSTODY.md for what is verified only that way).
"""

from __future__ import annotations

from typing import Any

from signer.custody._crc32c import crc32c
from signer.custody.errors import InvalidKey, ProviderUnavailable
from signer.custody.hygiene import guard_client_logs


class GcpKmsRoot:
    development = False

    def __init__(
        self,
        key_name: str,
        *,
        api_endpoint: str | None = None,
        insecure: bool = False,
        name: str = "gcp-kms",
        timeout: float = 10.0,
        credentials: Any = None,
    ):
        from google.cloud import kms

        guard_client_logs()
        self.name = name
        self.key_name = key_name
        self.timeout = timeout
        if insecure:
            import grpc
            from google.cloud.kms_v1.services.key_management_service.transports import (
                KeyManagementServiceGrpcTransport,
            )

            if not api_endpoint:
                raise ValueError("insecure=True needs an api_endpoint (a local test server)")
            transport = KeyManagementServiceGrpcTransport(
                channel=grpc.insecure_channel(api_endpoint), host=api_endpoint
            )
            self._client = kms.KeyManagementServiceClient(transport=transport)
        else:
            options = {"api_endpoint": api_endpoint} if api_endpoint else None
            self._client = kms.KeyManagementServiceClient(credentials=credentials, client_options=options)
        self._retry = self._make_retry(timeout)

    @staticmethod
    def _make_retry(timeout: float) -> Any:
        from google.api_core import retry as retries

        # Transient errors are retried, but never past the caller's timeout:
        # a 2-of-3 read should move on to the next provider, not wait a minute.
        return retries.Retry(
            initial=0.1, maximum=1.0, multiplier=2.0, timeout=timeout, predicate=retries.if_transient_error
        )

    def __repr__(self) -> str:
        return f"GcpKmsRoot(name={self.name!r}, key_name={self.key_name!r})"

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        request = {
            "name": self.key_name,
            "plaintext": bytes(plaintext),
            "additional_authenticated_data": aad,
            "plaintext_crc32c": crc32c(plaintext),
            "additional_authenticated_data_crc32c": crc32c(aad),
        }
        try:
            reply = self._client.encrypt(request=request, retry=self._retry, timeout=self.timeout)
        except Exception as exc:
            raise self._unavailable(exc) from None
        if not (
            reply.verified_plaintext_crc32c
            and reply.verified_additional_authenticated_data_crc32c
            and reply.ciphertext_crc32c == crc32c(reply.ciphertext)
            and reply.name.startswith(self.key_name)
        ):
            raise ProviderUnavailable(f"Cloud KMS ({self.name}) reply failed its integrity checks")
        return bytes(reply.ciphertext)

    def unwrap(self, ciphertext: bytes, aad: bytes) -> bytearray:
        from google.api_core import exceptions

        request = {
            "name": self.key_name,
            "ciphertext": ciphertext,
            "additional_authenticated_data": aad,
            "ciphertext_crc32c": crc32c(ciphertext),
            "additional_authenticated_data_crc32c": crc32c(aad),
        }
        try:
            reply = self._client.decrypt(request=request, retry=self._retry, timeout=self.timeout)
        except exceptions.InvalidArgument:
            # Cloud KMS answers a ciphertext it cannot authenticate with INVALID_ARGUMENT.
            raise InvalidKey() from None
        except Exception as exc:
            raise self._unavailable(exc) from None
        out = bytearray(reply.plaintext)
        if reply.plaintext_crc32c != crc32c(out):
            out[:] = bytes(len(out))
            raise ProviderUnavailable(f"Cloud KMS ({self.name}) reply failed its integrity checks")
        return out

    def _unavailable(self, exc: Exception) -> ProviderUnavailable:
        return ProviderUnavailable(f"Cloud KMS ({self.name}, {self.key_name}) failed: {type(exc).__name__}")
