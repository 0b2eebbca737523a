"""The admins' chain table in force, as a service reads it: every `ChainSet` on warden.chains that
the quorum for ``chains`` of the admin set in force signed (`ChainSetBook`), laid over the built-in
networks of the process's registry (`runtime.registry.REGISTRY`, handed in). The services take
chains from nowhere else: no file of their home changes what they sign."""

from __future__ import annotations

import asyncio

from runtime.admins import Admins, OnSettled, VersionBook, follow_book
from runtime.config import Settings
from runtime.registry import ChainRegistry
from schemas import topics
from schemas.auth import record_id_of
from schemas.chain_set import ChainSet


class ChainSetBook(VersionBook[ChainSet]):
    """warden.chains: a `ChainSet` put in force in ``registry`` (`ChainRegistry.adopt`) only when
    newer than the one in force and signed by the quorum for ``chains`` of ``admins`` (the admin
    set in force, shared with its reader of warden.admins); held or refused otherwise."""

    kind = ChainSet

    def __init__(self, admins: Admins, registry: ChainRegistry):
        super().__init__()
        self.admins, self.registry = admins, registry
        self.in_force: ChainSet | None = None  # None: the built-in table alone (version 0)

    @property
    def version(self) -> int:
        return 0 if self.in_force is None else self.in_force.version

    def _take(self, proposed: ChainSet) -> tuple[str, str, str]:
        record_id = record_id_of(proposed)
        if proposed.version <= self.version:
            return "refused", f"chain set v{proposed.version} is not newer than v{self.version}, in force", record_id
        problem = self.admins.quorum_problem(proposed, "chains")
        if problem is not None:
            return "refused", f"chain set v{proposed.version} refused: {problem}", record_id
        self.registry.adopt(proposed.chains)
        self.in_force = proposed
        return "adopted", f"chain set v{proposed.version} in force: {proposed.summary()}", record_id


async def follow_chain_sets(
    settings: Settings,
    admins: Admins,
    registry: ChainRegistry,
    caught_up: asyncio.Event,
    on_settled: OnSettled | None = None,
) -> None:
    """Keep ``registry``'s admin table (the process's, `runtime.registry.REGISTRY`) to the newest
    chain set the admins' quorum signed. Start it once the admin set in force is known
    (`runtime.admins`, ``admins`` shared with it): a chain set is judged by the admins in force
    when it is read. ``caught_up`` is set once the topic was read to its end: a service reads no
    intent, policy or approval before then, so a record naming a chain the admins added is never
    refused as naming an unknown one, and one they removed is never taken. ``on_settled(what,
    text, record id)``: each adoption or refusal, for the service's audit record."""
    await follow_book(settings, topics.CHAINS, ChainSetBook(admins, registry), caught_up, on_settled)
