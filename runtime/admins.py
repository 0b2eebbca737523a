"""The admin set in force, as a service reads it: the configured set (`runtime.trust.pinned_admins`)
and every change a quorum of it made since, on warden.admins (`AdminSetBook`), held in one
`Admins` that everything in the process checking admins' signatures shares. And what every reader
of such a topic of versioned admin records shares (`VersionBook`, `follow_book`, `settled_event`):
runtime.chains follows warden.chains the same way.

State that changes at run time, and so not in `schemas`, which keeps the records (`AdminSet`) and
the checks of a signature (`schemas.auth.admin_signers`), each a function of what it is handed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, cast

from runtime.config import Settings
from schemas import topics
from schemas.actions import admin_record_action
from schemas.admins import ACTION_NAMES, ACTIONS, Action, AdminSet, own_signature_problem
from schemas.auth import AdminSignedT, admin_signature_problem, admin_signers, raw_record_id, record_id_of
from schemas.chain_set import ChainSet
from schemas.emit import Emit, audit
from schemas.errors import Problem
from schemas.passkeys import RelyingParty


class SignCounters:
    """The passkeys' signature counters this process has seen (`schemas.auth.SignCounts`), in
    memory: what each nonzero counter value of a credential was over.

    Records reach a reader out of order (from different topics and partitions), so a counter
    that must rise would refuse honest decisions; what holds in any order is that an
    authenticator never gives one counter value to two assertions. A value met again over other
    bytes is a cloned authenticator (or a replayed counter) and is refused; the same assertion
    over the same bytes read again (a topic read twice) is the same decision and passes. A synced
    passkey's counter is always 0, which says nothing and is not kept. A process that restarts
    starts with none seen: the check holds within one process's life."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int], bytes] = {}

    def counter_problem(self, passkey: str, count: int, digest: bytes) -> Problem | None:
        if count == 0:
            return None
        first = self._seen.setdefault((passkey, count), digest)
        if first == digest:
            return None
        return Problem(
            f"its signature counter {count} was met before in an assertion over other bytes: an authenticator "
            "gives each counter value once, so this one is cloned or its assertion replayed"
        )


class Admins:
    """The admin set in force: pinned keys (id → public key: Ed25519 hex, or a passkey), a
    threshold per action and the set's version (0: the configured one); the relying party a
    passkey's assertion must be made for (``party``, from WARDEN_CONSOLE_ORIGIN; None: no passkey
    is believed) and the passkeys' counters seen (`SignCounters`). One object shared by everything
    in a process that checks admins' signatures: `adopt` changes it in place, so all of them see a
    change at once."""

    def __init__(
        self,
        keys: dict[str, str],
        thresholds: dict[Action, int],
        version: int = 0,
        party: RelyingParty | None = None,
    ):
        self.keys, self.thresholds, self.version = dict(keys), dict(thresholds), version
        self.party, self.counters = party, SignCounters()

    @classmethod
    def with_threshold(cls, keys: dict[str, str], m: int, party: RelyingParty | None = None) -> "Admins":
        """``keys`` with the one threshold ``m`` for every action."""
        return cls(keys, dict.fromkeys(ACTIONS, m), party=party)

    def key(self, key_id: str) -> str | None:
        return self.keys.get(key_id)

    def threshold(self, action: Action) -> int:
        return self.thresholds[action]

    def signers(self, record: AdminSignedT) -> tuple[list[str], list[Problem]]:
        """Who counts towards ``record``'s quorum (distinct pinned admins whose signature verifies
        over its bytes), and why each other signature does not."""
        return admin_signers(record, self.keys, self.party, self.counters)

    def signature_problem(self, key_id: str, signature: str, message: bytes) -> Problem | None:
        """None when pinned admin ``key_id`` made ``signature`` over ``message``; else why not."""
        return admin_signature_problem(self.keys, key_id, signature, message, self.party, self.counters)

    def quorum_problem(self, record: AdminSignedT, action: Action, needed: int | None = None) -> Problem | None:
        """None when ``record`` carries the quorum ``action`` needs (or ``needed`` signatures);
        otherwise who signed, who did not count and why, and how many are needed."""
        return self.quorum(record, action, needed)[1]

    def quorum(
        self, record: AdminSignedT, action: Action, needed: int | None = None
    ) -> tuple[list[str], Problem | None]:
        """Who counts towards ``record``'s quorum (`signers`) and `quorum_problem`'s answer, from
        one check of its signatures."""
        needed = self.threshold(action) if needed is None else needed
        counted, problems = self.signers(record)
        if len(counted) >= needed:
            return counted, None
        return counted, Problem(
            f"{ACTION_NAMES[action]} needs {needed} of the {len(self.keys)} pinned admins' signatures over the "
            f"same bytes (admin set v{self.version}); it has {len(counted)}"
            + (f" ({', '.join(counted)})" if counted else "")
            + (f"; not counted: {'; '.join(map(str, problems))}" if problems else ""),
            # Short of its quorum with a passkey's assertion refused: refused for that assertion.
            code=next((p.code for p in problems if p.code is not None), None),
        )

    def adoption_problem(self, proposed: AdminSet) -> Problem | None:
        """None when ``proposed`` may replace this set: it is newer, this set's quorum for
        ``admins`` signed it, and so did each admin whose key it changes, with the key in force
        here (`schemas.admins.own_signature_problem`); otherwise why not."""
        if proposed.version <= self.version:
            return Problem(f"admin set v{proposed.version} is not newer than v{self.version}, in force")
        counted, problem = self.quorum(proposed, "admins")
        return problem or own_signature_problem(self.keys, proposed, counted)

    def adopt(self, proposed: AdminSet) -> Problem | None:
        """Take ``proposed`` as the set in force when it may replace it (`adoption_problem`);
        otherwise why not (nothing changes)."""
        problem = self.adoption_problem(proposed)
        if problem is not None:
            return problem
        # AdminSet's validator (valid_thresholds) refuses any key that is not an Action.
        thresholds = cast(dict[Action, int], dict(proposed.thresholds))
        self.keys, self.thresholds, self.version = dict(proposed.admins), thresholds, proposed.version
        return None


VersionedT = TypeVar("VersionedT", AdminSet, ChainSet)


class VersionBook(ABC, Generic[VersionedT]):
    """What a reader of a topic of versioned admin records (warden.admins, warden.chains) does with
    each: take it, or hold it until the version before it is in force (the topic's records may
    come out of order), or refuse it. No Kafka here: bytes in, what happened out."""

    kind: type[VersionedT]

    def __init__(self) -> None:
        self._waiting: dict[int, VersionedT] = {}

    @property
    @abstractmethod
    def version(self) -> int:
        """The version in force."""

    def read(self, raw: bytes | None) -> list[tuple[str, str, str]]:
        """(what, text, record id) for each record the one read settled: "adopted" and what is
        now in force, or "refused" and why; the record id is the SHA-256 of the record's bytes
        (`record_id_of`), so two refusals of one version stay two on the ledger."""
        try:
            proposed = self.kind.model_validate_json(raw or b"")
        except ValueError as exc:
            return [
                ("refused", f"not a valid {self.kind.__name__} ({str(exc)[:300]}); ignored", raw_record_id(raw or b""))
            ]
        if proposed.version > self.version + 1:
            self._waiting[proposed.version] = proposed  # its predecessor may still be on its way
            return []
        settled = [self._take(proposed)]
        while self.version + 1 in self._waiting:
            settled.append(self._take(self._waiting.pop(self.version + 1)))
        return settled

    @abstractmethod
    def _take(self, proposed: VersionedT) -> tuple[str, str, str]:
        """Put ``proposed`` in force, or refuse it: (what, text, record id)."""


class AdminSetBook(VersionBook[AdminSet]):
    """warden.admins: each `AdminSet` `Admins.adopt`ed, held or refused."""

    kind = AdminSet

    def __init__(self, admins: Admins):
        super().__init__()
        self.admins = admins

    @property
    def version(self) -> int:
        return self.admins.version

    def _take(self, proposed: AdminSet) -> tuple[str, str, str]:
        problem, record_id = self.admins.adopt(proposed), record_id_of(proposed)
        if problem is not None:
            return "refused", f"admin set v{proposed.version} refused: {problem}", record_id
        thresholds = ", ".join(f"{a}={m}" for a, m in self.admins.thresholds.items())
        return (
            "adopted",
            f"admin set v{proposed.version} in force: {', '.join(sorted(self.admins.keys))} ({thresholds})",
            record_id,
        )


# What a service does with each record a book settled (what, text, record id): its audit record.
OnSettled = Callable[[str, str, str], Awaitable[None] | None]
# What a service does with each record of another topic the book's reader reads beside it.
OnRecord = Callable[[bytes], Awaitable[None] | None]


async def follow_admin_sets(
    settings: Settings,
    admins: Admins,
    caught_up: asyncio.Event,
    on_settled: OnSettled | None = None,
    also: Mapping[str, OnRecord] | None = None,
) -> None:
    """Keep ``admins`` (shared with everything that checks admins' signatures) to the newest set
    the quorum agreed on. ``caught_up`` is set once the topic was read to its end: a service checks
    no admin signature before then, so an admin the quorum removed is never counted meanwhile.
    ``on_settled(what, text, record id)``: each adoption or refusal, for the service's audit record.
    ``also``: other topics read by the same reader, their records judged under ``admins`` (`follow_book`)."""
    await follow_book(settings, topics.ADMINS, AdminSetBook(admins), caught_up, on_settled, also)


async def follow_book(
    settings: Settings,
    topic: str,
    book: VersionBook[Any],
    caught_up: asyncio.Event,
    on_settled: OnSettled | None = None,
    also: Mapping[str, OnRecord] | None = None,
) -> None:
    """Feed ``book`` every record of ``topic``, from its start and forever; ``caught_up`` set once
    it was read to its end. Each adoption or refusal is logged and handed to ``on_settled``
    (awaited, when it returns an awaitable). ``also``: topic → what to do with each of its records,
    read by the same reader (one reader fewer for the broker to answer); a record of theirs read
    before ``caught_up`` waits until then, so it is judged under the book as the whole topic makes it."""
    # Kafka here only: `Admins` is what every check of an admin's signature takes, and a command
    # that checks one (through runtime.trust) reads no topic.
    from runtime.kafka import follow

    also = also or {}
    held: list[tuple[str, bytes]] = []
    log = logging.getLogger(topic)  # "warden.admins", "warden.chains"
    async for name, value in follow(settings, (topic, *also), caught_up=caught_up):
        if held and caught_up.is_set():
            for other, raw in held:
                await _done(also[other](raw))
            held.clear()
        if name in also:
            if caught_up.is_set():
                await _done(also[name](value))
            else:
                held.append((name, value))
            continue
        if not name:
            continue
        for what, text, record_id in book.read(value):
            (log.info if what == "adopted" else log.warning)("%s", text)
            if on_settled is not None:
                await _done(on_settled(what, text, record_id))


async def _done(done: Awaitable[None] | None) -> None:
    if inspect.isawaitable(done):
        await done


def settled_event(
    actor: str,
    subject: Literal["admins", "chains"],
    what: str,
    text: str,
    record_id: str,
    now: datetime,
    **service: str,
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
