"""What the signers announce on ``warden.signer.sealing``: each signer's sealing key, which a
client seals its keys to and, with attestation, holds the signer's outcomes to."""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import ValidationError

from runtime.config import Settings
from runtime.kafka import follow
from schemas import topics
from schemas.sealing import newest_per_signer
from schemas.sealing_key import SealingKey


async def sealing_keys(
    settings: Settings, timeout_s: float = 10.0, accept: Callable[[SealingKey], bool] | None = None
) -> list[SealingKey]:
    """Each signer's sealing key from ``warden.signer.sealing``: its newest, or with ``accept``
    its newest that ``accept`` takes (``schemas.sealing.newest_per_signer``). Read from the
    start until the topic goes quiet (at least one announcement seen) or ``timeout_s`` passes."""
    announced: list[SealingKey] = []
    deadline = time.monotonic() + timeout_s
    async for topic, value in follow(settings, (topics.SIGNER_SEALING,)):
        if topic:
            try:
                announced.append(SealingKey.from_bytes(value))
            except ValidationError:
                continue  # anyone can write here: what is no announcement announces nothing
        elif announced or time.monotonic() > deadline:
            break
    return newest_per_signer(announced, accept)
