"""The admins' chain table in force, as a service reads it: every `ChainSet` on warden.chains that
the quorum for ``chains`` of the admin set in force signed (`schemas.auth.ChainSetBook`), laid
over the built-in networks of the process's registry (`schemas.chains.REGISTRY`). The services
take chains from nowhere else: no file of their home changes what they sign."""

from __future__ import annotations

import asyncio

from runtime.admins import OnSettled, follow_book
from runtime.config import Settings
from schemas import topics
from schemas.auth import Admins, ChainSetBook
from schemas.chains import REGISTRY, ChainRegistry


async def follow_chain_sets(
    settings: Settings,
    admins: Admins,
    caught_up: asyncio.Event,
    on_settled: OnSettled | None = None,
    registry: ChainRegistry = REGISTRY,
) -> None:
    """Keep ``registry``'s admin table to the newest chain set the admins' quorum signed. Start it
    once the admin set in force is known (`runtime.admins`, ``admins`` shared with it): a chain set
    is judged by the admins in force when it is read. ``caught_up`` is set once the topic was read
    to its end: a service reads no intent, policy or approval before then, so a record naming a
    chain the admins added is never refused as naming an unknown one, and one they removed is
    never taken. ``on_settled(what, text, record id)``: each adoption or refusal, for the
    service's audit record."""
    await follow_book(settings, topics.CHAINS, ChainSetBook(admins, registry), caught_up, on_settled)
