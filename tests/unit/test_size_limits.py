"""The record size limits of the broker, the worker and the signer are configured together."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import producer as new_producer
from schemas import topics
from schemas.emit import Source, dead_letter
from schemas.outcomes import DeadLetter
from streams.topology import build_worker


@pytest.mark.parametrize("limit", [65_536, 1_048_576, 4 * 1_048_576])
def test_size_limits_are_configured_together(limit: int, tmp_path: Path) -> None:
    """Whatever WARDEN_MAX_RECORD_BYTES says, the dead letter of a record twice that size (it
    carries the first ``limit`` bytes, base64, with the digest and size of the whole) fits in
    what every Warden producer may send and every consumer fetches: dead-lettering never raises
    MessageSizeTooLargeError, which would take the worker down."""
    settings = dataclasses.replace(Settings(home=tmp_path), max_record_bytes=limit)
    oversize = os.urandom(2 * limit)
    source = Source(topics.INTENTS_SUBMITTED, 0, 7, b"agent-" + b"k" * 200)
    emits = dead_letter(
        "service:streams",
        oversize,
        source,
        utcnow(),
        "record too large " * 20,
        tuple("e" * 200 for _ in range(5)),
        limit,
    )
    # 1 KiB for the record's key, headers and batch framing.
    assert max(len(e.value) + len(e.key) for e in emits) + 1024 <= settings.max_message_bytes
    letter = DeadLetter.from_bytes(emits[0].value)
    assert letter.payload_bytes == 2 * limit and base64.b64decode(letter.payload_b64) == oversize[:limit]
    assert letter.payload_sha256 == hashlib.sha256(oversize).hexdigest()

    async def limits() -> tuple[int, int, int]:
        worker = build_worker(settings)  # constructed only: nothing connects
        return (
            new_producer(settings)._max_request_size,
            worker.producer._max_request_size,
            worker.consumer._max_partition_fetch_bytes,
        )

    assert asyncio.run(limits()) == (settings.max_message_bytes,) * 3
