"""The admin set in force, as a service reads it: the configured set (`runtime.trust.pinned_admins`)
and every change a quorum of it made since, on warden.admins (`schemas.auth.AdminSetBook`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from runtime.config import Settings
from runtime.kafka import follow
from schemas import topics
from schemas.auth import Admins, AdminSetBook

log = logging.getLogger("warden.admins")


async def follow_admin_sets(
    settings: Settings,
    admins: Admins,
    caught_up: asyncio.Event,
    on_settled: Callable[[str, str, str], None] | None = None,
) -> None:
    """Keep ``admins`` (shared with everything that checks admins' signatures) to the newest set
    the quorum agreed on. ``caught_up`` is set once the topic was read to its end: a service checks
    no admin signature before then, so an admin the quorum removed is never counted meanwhile.
    ``on_settled(what, text, record id)``: each adoption or refusal, for the service's audit record."""
    book = AdminSetBook(admins)
    async for topic, value in follow(settings, (topics.ADMINS,), caught_up=caught_up):
        if not topic:
            continue
        for what, text, record_id in book.read(value):
            (log.info if what == "adopted" else log.warning)("%s", text)
            if on_settled is not None:
                on_settled(what, text, record_id)
