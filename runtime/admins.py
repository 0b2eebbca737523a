"""The admin set in force, as a service reads it: the configured set (`runtime.trust.pinned_admins`)
and every change a quorum of it made since, on warden.admins (`schemas.auth.AdminSetBook`). And
what every reader of such a topic of versioned admin records shares (`follow_book`,
`settled_event`): runtime.chains follows warden.chains the same way."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal

from runtime.config import Settings
from runtime.kafka import follow
from schemas import topics
from schemas.actions import admin_record_action
from schemas.auth import Admins, AdminSetBook, VersionBook
from schemas.emit import Emit, audit

# What a service does with each record a book settled (what, text, record id): its audit record.
OnSettled = Callable[[str, str, str], Awaitable[None] | None]


async def follow_admin_sets(
    settings: Settings,
    admins: Admins,
    caught_up: asyncio.Event,
    on_settled: OnSettled | None = None,
) -> None:
    """Keep ``admins`` (shared with everything that checks admins' signatures) to the newest set
    the quorum agreed on. ``caught_up`` is set once the topic was read to its end: a service checks
    no admin signature before then, so an admin the quorum removed is never counted meanwhile.
    ``on_settled(what, text, record id)``: each adoption or refusal, for the service's audit record."""
    await follow_book(settings, topics.ADMINS, AdminSetBook(admins), caught_up, on_settled)


async def follow_book(
    settings: Settings,
    topic: str,
    book: VersionBook,
    caught_up: asyncio.Event,
    on_settled: OnSettled | None = None,
) -> None:
    """Feed ``book`` every record of ``topic``, from its start and forever; ``caught_up`` set once
    it was read to its end. Each adoption or refusal is logged and handed to ``on_settled``
    (awaited, when it returns an awaitable)."""
    log = logging.getLogger(topic)  # "warden.admins", "warden.chains"
    async for name, value in follow(settings, (topic,), caught_up=caught_up):
        if not name:
            continue
        for what, text, record_id in book.read(value):
            (log.info if what == "adopted" else log.warning)("%s", text)
            if on_settled is not None:
                done = on_settled(what, text, record_id)
                if inspect.isawaitable(done):
                    await done


def settled_event(
    actor: str, subject: Literal["admins", "chains"], what: str, text: str, record_id: str, now: datetime, **service
) -> Emit:
    """The ledger's record of an admin record a service took (``<subject>.changed``) or refused
    (``<subject>.refused``), with why (``reason``) and which record (``record_id``, `record_id_of`).
    ``service``: the one who says it (``signer_id=...``, ``worker_id=...``); its id names that
    service and the record, so reading the topic again after a restart records nothing new."""
    ((_, service_id),) = service.items()
    return audit(
        actor,
        admin_record_action(subject, adopted=what == "adopted"),
        subject,
        now,
        service_id,
        record_id,
        **service,
        reason=text,
        record_id=record_id,
    )
