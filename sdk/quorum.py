"""Admin actions that need more than one admin: proposals, the signatures gathered for them on
warden.admin.proposals, and the whole record once enough pinned admins signed.

An admin proposes (`propose`): the record, signed by them, is written as an `AdminProposal`.
Every other admin sees it with who signed so far (`open_proposals`, `warden approvals list`)
and adds their own signature (`endorse`, `warden approvals sign`). The signature that completes
the quorum also publishes the assembled record (`assembled`) on its own topic, where the streams
worker and the signer check the quorum again, each for itself. An admin set that changes an
admin's key is complete only once that admin signed it too, with the key in force
(`schemas.admins.own_signature_problem`), as the services require: until then it waits, and the
listing says for whom. A proposal expires: after ``expires_at`` nobody adds to it and it is no
longer listed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiokafka import TopicPartition

from runtime.admins import Admins
from runtime.config import Settings
from runtime.kafka import end_offsets, follow_records, read_to_quiet
from runtime.proposals import RECORDS, Gathered, gather, proposal_record
from runtime.trust import PinnedAuditKeys, admin_key_file
from schemas import topics
from schemas.actions import AuditAction
from schemas.admins import (
    Action,
    AdminProposal,
    AdminSet,
    VaultChange,
    own_signature_problem,
)
from schemas.audit import readable_audit_events
from schemas.auth import AdminSigned, AdminSignedT, admin_signature_problem, audit_writer, cosign, sign_vault_change
from schemas.chain_set import ChainSet
from schemas.emit import Emit
from schemas.errors import Problem, WardenError
from schemas.passkeys import is_passkey
from sdk.admin import load_or_create_admin_key
from sdk.client import Client
from sdk.records import admins_in_force

PROPOSAL_TTL = timedelta(hours=24)


def topic_key(record: AdminSigned) -> str:
    if isinstance(record, ChainSet):
        return "chains"
    if isinstance(record, VaultChange):  # publish_record publishes its events, each under its own key
        raise ValueError("a VaultChange has no key of its own on a topic: each of its events has one")
    return "admins" if isinstance(record, AdminSet) else record.agent_id


def propose(record: AdminSignedT, action: Action, now: datetime, ttl: timedelta = PROPOSAL_TTL) -> AdminProposal:
    """The proposer's signature on ``record`` (signed by them with `sign_policy` and the like)."""
    return proposal_record(record, action, record.admin_key_id, record.signature, now, now + ttl)


class NotTheKeyInForce(WardenError, ValueError):
    """An admin's key in this home is not the one the admin set in force pins under their id: a
    signature with it would count for nothing, so nothing is signed."""


async def open_proposals(settings: Settings, admins: Admins, now: datetime) -> dict[str, Gathered]:
    """`gather` over everything on warden.admin.proposals."""
    raw = [value async for _, value in read_to_quiet(settings, (topics.ADMIN_PROPOSALS,), 2)]
    return gather(raw, admins, now)


async def publish_proposal(settings: Settings, proposal: AdminProposal) -> None:
    async with Client(settings) as client:
        await (await client.send(topics.ADMIN_PROPOSALS, proposal.proposal_id, proposal.to_bytes()))


async def publish_or_propose(
    settings: Settings,
    action: Action,
    signed: AdminSignedT,
    needed: int,
    now: datetime,
    in_force: Admins | None = None,
) -> AdminProposal | None:
    """``signed`` (by this admin alone) published on its own topic when one admin is the quorum for
    ``action`` (``needed``, of the admin set in force) and, for an admin set, it changes no other
    admin's key (`own_signature_problem` under ``in_force``, read when not given); else proposed,
    for the other admins to sign (`warden approvals sign`). The proposal, or None when the record
    was published."""
    if needed == 1 and await _own_signatures_problem(settings, signed, in_force) is None:
        await publish_record(settings, action, signed)
        return None
    proposal = propose(signed, action, now)
    await publish_proposal(settings, proposal)
    return proposal


async def _own_signatures_problem(settings: Settings, record: AdminSigned, in_force: Admins | None) -> Problem | None:
    """`own_signature_problem` of ``record``'s signatures, when it is an admin set."""
    if not isinstance(record, AdminSet):
        return None
    admins = await admins_in_force(settings) if in_force is None else in_force
    return own_signature_problem(admins.keys, record, admins.signers(record)[0])


async def publish_record(settings: Settings, action: Action, record: AdminSigned) -> list[str]:
    """The whole record, signed by enough admins, on its own topic (a `VaultChange`: each of its
    events, carrying the change). Where each landed: ``record:<topic>/<partition>/<offset>``."""
    async with Client(settings) as client:
        if isinstance(record, VaultChange):
            emits = [Emit(topics.VAULT, e.key, e.value.encode()) for e in record.events]
            metas = await asyncio.gather(*await client.send_as_admin(emits, record))
        else:
            metas = [await (await client.send(RECORDS[action][1], topic_key(record), record.to_bytes()))]
    return [f"record:{m.topic}/{m.partition}/{m.offset}" for m in metas]


@dataclass
class CustodyChange:
    """What publishing an admin's custody change did: its vault events published (and which of
    them a signer applied) or proposed to the other admins."""

    signed_by: list[str]
    needed: int
    proposal_id: str | None = None  # set when it waits for more admins' signatures
    applied: dict[str, list[str]] = field(default_factory=dict)  # record → signers that applied it
    refused: dict[str, str] = field(default_factory=dict)  # record → why a signer refused it

    @property
    def published(self) -> bool:
        return self.proposal_id is None


async def publish_custody_change(
    settings: Settings, emits: list[Emit], now: datetime, cosigners: tuple[str, ...] = (), wait_s: float = 30.0
) -> CustodyChange:
    """An admin's custody command's output: its audit records, and its vault events as one
    `VaultChange` signed by ``settings.admin_id`` (and by ``cosigners``, admins whose keys are in
    this home). Published on warden.vault when that is the quorum for ``keys`` of the admin set in
    force, then waited for (up to ``wait_s``) until a signer applied or refused each event; else
    proposed on warden.admin.proposals for the other admins (`warden approvals sign`)."""
    vault = [e for e in emits if e.topic == topics.VAULT]
    others = [e for e in emits if e.topic != topics.VAULT]
    if not vault:
        async with Client(settings) as client:
            await asyncio.gather(*await client.send_as_admin(others))
        return CustodyChange([], 0)
    admins = await admins_in_force(settings)
    change = sign_vault_change(
        VaultChange.of([(e.key, e.value) for e in vault], now),
        load_or_create_admin_key(settings.home, settings.admin_id),
        settings.admin_id,
    )
    for admin_id in cosigners:
        change = cosign(change, load_or_create_admin_key(settings.home, admin_id), admin_id)
    signed_by, short = admins.quorum(change, "keys")
    done = CustodyChange(signed_by, admins.threshold("keys"))
    if short is not None:
        proposal = propose(change, "keys", now)
        done.proposal_id = proposal.proposal_id
        async with Client(settings) as client:
            await asyncio.gather(*await client.send_as_admin(others))
            await (await client.send(topics.ADMIN_PROPOSALS, proposal.proposal_id, proposal.to_bytes()))
        return done
    start = await end_offsets(settings, (topics.AUDIT_EVENTS,)) if wait_s > 0 else None
    async with Client(settings) as client:
        metas = await asyncio.gather(*await client.send_as_admin(vault + others, change))
    if wait_s > 0:
        records = {f"record:{m.topic}/{m.partition}/{m.offset}" for m in metas[: len(vault)]}
        done.applied, done.refused = await wait_vault_applied(settings, records, start, wait_s)
    return done


async def wait_vault_applied(
    settings: Settings, records: set[str], start: dict[TopicPartition, int] | None, wait_s: float
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Until a signer applied or refused each of ``records`` (``record:warden.vault/P/O``) or
    ``wait_s`` passed: the signers that applied each, and why one was refused. The signer takes
    key changes only from the topic, so an intent signed before that would not see the change."""
    applied: dict[str, list[str]] = {}
    refused: dict[str, str] = {}
    deadline, keys = time.monotonic() + wait_s, PinnedAuditKeys(settings)
    # The signer records them under no agent: in the partition of the empty key.
    async for found in follow_records(
        settings, (topics.AUDIT_EVENTS,), start, fetch_max_wait_ms=settings.fetch_wait_ms, keys=("",)
    ):
        # Only a pinned signer's record counts: a topic writer's "vault.event_applied" must not
        # tell an admin that a key change no signer took is in force.
        if found is not None and audit_writer(found.value, found.headers, keys) == ("signer", None):
            for event in readable_audit_events(found.value):
                if event.resource in records and event.action == AuditAction.VAULT_EVENT_APPLIED:
                    applied.setdefault(event.resource, []).append(event.details.get("signer_id", ""))
                elif event.resource in records and event.action == AuditAction.VAULT_EVENT_REFUSED:
                    refused[event.resource] = event.details.get("reason", "")
        if records <= applied.keys() | refused.keys() or time.monotonic() > deadline:
            break
    return applied, refused


async def add_signature(
    settings: Settings, gathered: Gathered, admin_id: str, now: datetime, digest: str | None = None
) -> list[str]:
    """Sign ``gathered`` as ``admin_id`` (its key under $WARDEN_HOME/admin) and publish the
    signature; when it completes the quorum, publish the whole record on its own topic too.
    With ``digest``, only if it is the digest of the bytes signed (else `NotWhatWasShown`).
    Where the record landed (`publish_record`); empty while more signatures are needed."""
    if is_passkey(gathered.in_force.get(admin_id, "")):
        raise NotTheKeyInForce(
            f"{admin_id}'s key in force is a passkey: a passkey admin signs in the web console, with the passkey, "
            "not with a key file here; nothing was signed"
        )
    key = load_or_create_admin_key(settings.home, admin_id)
    proposal = gathered.with_signature(key, admin_id, now, digest)
    # A signature no service counts is refused here, where the admin can still act on it: the
    # key in this home must be the one in force under their id (for a change of their own key
    # above all, which only that key agrees to).
    wrong = admin_signature_problem(gathered.in_force, admin_id, proposal.signature, gathered.record.signing_bytes())
    if gathered.in_force and wrong is not None:
        raise NotTheKeyInForce(
            f"{admin_id}'s key in {admin_key_file(settings.home, admin_id)} is not the key the admin set in force pins under "
            f"{admin_id} ({wrong}); nothing was signed",
            f"sign with the key in force (`warden admins show` prints it); if {admin_id} lost it, the quorum "
            f"removes {admin_id} and adds a new admin under a new id",
        )
    return await relay_signature(settings, gathered, proposal)


async def relay_signature(settings: Settings, gathered: Gathered, proposal: AdminProposal) -> list[str]:
    """Publish one admin's signature on ``gathered`` (``proposal``); when it completes the quorum,
    the whole record on its own topic too (`publish_record`). Where the record landed; empty
    while more signatures are needed."""
    await publish_proposal(settings, proposal)
    gathered.signatures[proposal.admin_key_id] = proposal.signature
    if not gathered.complete:
        return []
    return await publish_record(settings, gathered.action, gathered.assembled())
