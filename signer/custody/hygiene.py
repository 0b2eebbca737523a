"""Key hygiene: the forms a private key could leak in, for searching logs, topics and tables.

The end-to-end test takes every key it provisioned, asks ``key_forms`` for the
ways it could be spelled, and searches every topic, log line, ClickHouse row and
exception text for each. A leak in any common encoding is found.
"""

from __future__ import annotations

import base64
import logging


def _named_forms(private_key: bytes | bytearray) -> list[tuple[str, bytes]]:
    raw = bytes(private_key)
    hex_lower = raw.hex().encode()
    b64 = base64.b64encode(raw)
    b64url = base64.urlsafe_b64encode(raw)
    return [
        ("raw", raw),
        ("hex", hex_lower),
        ("HEX", hex_lower.upper()),
        ("0xhex", b"0x" + hex_lower),
        ("0xHEX", b"0x" + hex_lower.upper()),
        ("base64", b64),
        ("base64-unpadded", b64.rstrip(b"=")),
        ("base64url", b64url),
        ("base64url-unpadded", b64url.rstrip(b"=")),
    ]


def key_forms(private_key: bytes | bytearray) -> list[bytes]:
    """Raw, hex (lower and upper, with and without 0x), base64 and base64url
    (padded and unpadded) forms of ``private_key``, each as bytes, no duplicates."""
    return list(dict.fromkeys(form for _, form in _named_forms(private_key)))


def find_leaks(haystack: bytes | str, private_key: bytes | bytearray) -> list[str]:
    """Names of the forms of ``private_key`` found in ``haystack`` (empty when clean)."""
    data = haystack.encode() if isinstance(haystack, str) else bytes(haystack)
    return [name for name, form in _named_forms(private_key) if form in data]


# Client-library loggers that, at DEBUG, write request or response bodies, which
# for a root's wrap/unwrap hold KEK material (botocore: "Making request ... with
# params", "Response body"; google-cloud-kms: its gRPC payload logging; azure-core:
# network tracing when a request sets logging_enable).
_BODY_LOGGERS = (
    "botocore.endpoint",
    "botocore.parsers",
    "botocore.awsrequest",
    "google.cloud.kms_v1.services.key_management_service.transports.grpc",
    "google.cloud.kms_v1.services.key_management_service.client",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.core.pipeline.policies._universal",
)


class _NoDebugBodies(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_GUARD = _NoDebugBodies()


def guard_client_logs() -> None:
    """Drop DEBUG records from the client-library loggers that log payloads, so
    turning on debug logging for a deployment cannot write KEK material. Idempotent;
    every cloud root calls it when it is made."""
    for name in _BODY_LOGGERS:
        logger = logging.getLogger(name)
        if _GUARD not in logger.filters:
            logger.addFilter(_GUARD)
