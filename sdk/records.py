"""What the services said about one agent, read back from the topics: its policy in force (the
newest a pinned admin signed) and its transactions and rejections (each signed by a pinned key of
the service allowed to say it), and the intents still waiting for an admin. `warden agents show`,
`warden txs`, `warden approvals list` and the MCP server read them the same way, through here.
And the admins' records in force as a client believes them: the admin set, the chain set
(`chains_in_force`, `learn_chains`) and what the services said of a chain set published."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
from aiokafka import TopicPartition

from runtime.admins import Admins, AdminSetBook
from runtime.chains import ChainSetBook
from runtime.config import Settings
from runtime.kafka import follow, follow_records, read_to_quiet
from runtime.registry import REGISTRY, ChainRegistry
from runtime.trust import PinnedAuditKeys, PinnedServiceKeys, pinned_admins
from runtime.trust import admins_in_force as admins_in_force  # the SDK's name for it too
from schemas import topics
from schemas.actions import AuditAction, admin_record_action
from schemas.admins import AdminSet
from schemas.audit import AuditEvent, readable_audit_events
from schemas.auth import audit_writer, outcome_forgery, policy_signature_valid, record_id_of
from schemas.chain_set import ChainSet
from schemas.errors import Problem, WardenError
from schemas.outcomes import (
    IntentApproved,
    IntentParked,
    IntentRejected,
    SignedBitcoinTransaction,
    SignedSolanaTransaction,
    SignedTransaction,
)
from schemas.policy import AgentPolicy
from sdk.outcomes import Outcome, read_outcome

_log = logging.getLogger("warden.chains")


@dataclass
class AgentRecords:
    """What the services said about an agent's intents: the newest authentic signed-transaction
    record per intent (oldest first), EVM's, Solana's and Bitcoin's, every authentic rejection (oldest first,
    each once), and how many records about the agent were left out as forged."""

    transactions: list[SignedTransaction]
    rejected: list[IntentRejected]
    forged: int
    solana_transactions: list[SignedSolanaTransaction] = field(default_factory=list)
    bitcoin_transactions: list[SignedBitcoinTransaction] = field(default_factory=list)


async def agent_transactions(
    settings: Settings, agent_id: str, idle_polls: int = 5, history: dict[str, list[SignedTransaction]] | None = None
) -> AgentRecords:
    """The signed transactions and rejections of ``agent_id`` (`AgentRecords`), read from
    ``warden.txs.signed``, ``warden.solana.signed``, ``warden.bitcoin.signed`` and ``warden.intents.rejected`` from the start. Per intent, the newest
    status the signer reported (a final one wins over signed, broadcast and stuck). With
    ``history``, every authentic transaction record per intent id is added to it, in topic order.

    Records are read as `warden tail` reads them: signed by a pinned key of the service allowed
    to say them. The reader submitted nothing, so it cannot check digests: a rejection bound to a
    record's bytes (INVALID_INTENT, for a record the worker could not read) is listed with that
    digest, and only a client that sent those bytes takes it as its answer."""
    keys = PinnedServiceKeys(settings)
    newest: dict[str, SignedTransaction] = {}
    solana: dict[str, SignedSolanaTransaction] = {}
    bitcoin: dict[str, SignedBitcoinTransaction] = {}
    rejected: dict[tuple[Any, ...], IntentRejected] = {}
    forged = 0
    read = (topics.TXS_SIGNED, topics.SOLANA_SIGNED, topics.BITCOIN_SIGNED, topics.INTENTS_REJECTED)
    kinds = (SignedTransaction, SignedSolanaTransaction, SignedBitcoinTransaction, IntentRejected)
    async for topic, value in read_to_quiet(settings, read, idle_polls):
        record = read_outcome(topic, value)
        if not isinstance(record, kinds) or record.agent_id != agent_id:
            continue
        if outcome_forgery(record, keys) is not None:
            forged += 1
            continue
        if isinstance(record, SignedSolanaTransaction | SignedBitcoinTransaction):
            # In order per intent (one partition): the newest, but never a redelivered earlier
            # record over a final one. A sign-only one is followed on (mined, conflicted or
            # cancelled): any later record is newer.
            by_intent: dict[str, Any] = solana if isinstance(record, SignedSolanaTransaction) else bitcoin
            held = by_intent.get(record.intent_id)
            if held is None or not held.final or record.final or held.status == "sign_only":
                by_intent[record.intent_id] = record
            continue
        if isinstance(record, IntentRejected):
            # A redelivered record is rejected again, at another time: the same rejection.
            rejected.setdefault(
                (record.intent_id, record.intent_digest, record.stage, record.code, record.reason), record
            )
            continue
        if history is not None:
            history.setdefault(record.intent_id, []).append(record)
        known = newest.get(record.intent_id)
        # Records of one intent arrive in order (one partition): the newest wins, but a final one
        # (sign_only, or decided at a final block) is replaced only by one that says a block left
        # the chain since (a node that lost its last blocks), never by a redelivered earlier one.
        # A sign-only one is followed on (landed, dropped or cancelled): any later record is newer.
        if (
            known is None
            or not known.final
            or known.status == "sign_only"
            or record.final
            or record.reorgs > known.reorgs
        ):
            newest[record.intent_id] = record
    return AgentRecords(
        sorted(newest.values(), key=lambda r: (r.signed_at, r.nonce)),
        sorted(rejected.values(), key=lambda r: r.decided_at),
        forged,
        sorted(solana.values(), key=lambda r: r.signed_at),
        sorted(bitcoin.values(), key=lambda r: r.signed_at),
    )


# A Bitcoin payment whose fate is decided: its outputs are spent, or can no longer be by it.
_BITCOIN_CLOSED = frozenset({"mined", "conflicted", "cancelled"})


async def open_bitcoin_inputs(settings: Settings, agent_id: str, chain: str) -> frozenset[str]:
    """The outputs (``txid:vout``) the agent's Bitcoin payments on ``chain`` spend while their
    fate is open (signed only, or sent and not yet mined, conflicted or cancelled at a final
    block), read from ``warden.bitcoin.signed`` (the agent's partition, to its end; records signed
    by a pinned signer key): a payment written now spends none of them, as the judge refuses one
    that does (BITCOIN_INPUT_CLAIMED)."""
    keys = PinnedServiceKeys(settings)
    newest: dict[str, SignedBitcoinTransaction] = {}
    read = asyncio.Event()
    async for topic, value in follow(settings, (topics.BITCOIN_SIGNED,), caught_up=read, keys=(agent_id,)):
        record = read_outcome(topic, value) if topic else None
        if isinstance(record, SignedBitcoinTransaction) and (record.agent_id, record.chain) == (agent_id, chain):
            known = newest.get(record.intent_id)
            closed = known is not None and known.final and known.status in _BITCOIN_CLOSED
            if not closed and outcome_forgery(record, keys) is None:
                newest[record.intent_id] = record
        if read.is_set():
            break
    return frozenset(
        outpoint
        for record in newest.values()
        if not (record.final and record.status in _BITCOIN_CLOSED)
        for outpoint in record.inputs
    )


def status_history(records: list[SignedTransaction]) -> list[dict[str, Any]]:
    """Each status change of one transaction once, in order, as {status, tx_hash, block_number,
    final, error}: moved by a reorg or made final is a change; a redelivery re-publishes the
    newest record, which is not."""
    steps: list[dict[str, Any]] = []
    for record in records:
        step = {
            "status": record.status,
            "tx_hash": record.tx_hash,
            "block_number": record.block_number,
            "final": record.final,
            "error": record.error,
        }
        if not steps or steps[-1] != step:
            steps.append(step)
    return steps


class _AdminHistory(AdminSetBook):
    """warden.admins read as `AdminSetBook` reads it, keeping each set a newer one replaced."""

    def __init__(self, admins: Admins):
        super().__init__(admins)
        self.superseded: list[Admins] = []

    def _take(self, proposed: AdminSet) -> tuple[str, str, str]:
        before = Admins(self.admins.keys, self.admins.thresholds, self.admins.version, self.admins.party)
        settled = super()._take(proposed)
        if settled[0] == "adopted":
            self.superseded.append(before)
        return settled


async def _admin_records(
    settings: Settings,
    more: tuple[str, ...],
    idle_polls: int,
    registry: ChainRegistry,
    superseded: list[Admins] | None = None,
) -> tuple[Admins, ChainSet | None, list[bytes]]:
    """One pass over warden.admins, warden.chains and ``more``: the admin set in force, the chain
    set in force (signed by its quorum for ``chains``; put in force in ``registry`` too, so that
    records naming an added chain read) and the values of ``more``, in order, to be judged now
    that both are known. The chain sets are judged once every admin set is known, as a service
    judges them once it read warden.admins to its end. ``superseded``: filled with each admin set
    that was in force before the one in force, oldest first (the configured one first)."""
    admins = pinned_admins(settings)
    admin_book, chain_sets, values = _AdminHistory(admins), [], []
    async for topic, value in read_to_quiet(settings, (topics.ADMINS, topics.CHAINS, *more), idle_polls):
        if topic == topics.ADMINS:
            admin_book.read(value)
        elif topic == topics.CHAINS:
            chain_sets.append(value)
        else:
            values.append(value)
    if superseded is not None:
        superseded.extend(admin_book.superseded)
    chain_book = ChainSetBook(admins, ChainRegistry())  # ``registry`` changes once, to the newest
    for value in chain_sets:
        chain_book.read(value)
    registry.adopt(() if chain_book.in_force is None else chain_book.in_force.chains)
    return admins, chain_book.in_force, values


async def chains_in_force(
    settings: Settings, registry: ChainRegistry = REGISTRY, idle_polls: int = 2
) -> ChainSet | None:
    """The chain set in force, put in force in ``registry`` (the process's, by default): the
    newest version on warden.chains that the quorum for ``chains`` of the admin set in force
    signed (`runtime.chains.ChainSetBook`), read with warden.admins in one pass; None when there is
    none (the built-in networks alone)."""
    return (await _admin_records(settings, (), idle_polls, registry))[1]


def learn_chains(settings: Settings, registry: ChainRegistry = REGISTRY, timeout_s: float = 15.0) -> None:
    """``registry`` set to the chains in force now (`chains_in_force`), read in a thread of its
    own so that a lookup under a running event loop can wait for it: what a client process hands
    `ChainRegistry.when_unknown` (the command line does, for `warden mcp` and `warden pay` too). A
    broker that does not answer within ``timeout_s`` leaves the registry as it was; the name
    stays unknown and the warning says why."""

    def read() -> None:
        asyncio.run(asyncio.wait_for(chains_in_force(settings, registry), timeout_s))

    with ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(read).result()
        except Exception as exc:  # noqa: BLE001 - a lookup that cannot learn says "unknown chain", with the allowed ones
            _log.warning("could not read the chains in force from %s at %s: %s", topics.CHAINS, settings.broker, exc)


@dataclass
class SettledVerdicts:
    """What the services said of one admin set or chain set (``subject``): the signer's and a
    streams worker's ``<subject>.changed`` or ``<subject>.refused`` audit event (None: not heard
    within the wait)."""

    subject: Literal["admins", "chains"]
    signer: AuditEvent | None = None
    worker: AuditEvent | None = None

    @property
    def outcome(self) -> str | None:
        """ "chains.changed" once both took it, "chains.refused" when either refused it, else None
        ("admins.*" for an admin set)."""
        heard = [e.action for e in (self.signer, self.worker) if e is not None]
        refused = admin_record_action(self.subject, adopted=False)
        if refused in heard:
            return refused
        return admin_record_action(self.subject, adopted=True) if len(heard) == 2 else None

    def as_dict(self) -> dict[str, dict[str, Any] | None]:
        return {
            role: None if event is None else {"action": event.action, "reason": event.details.get("reason")}
            for role, event in (("signer", self.signer), ("worker", self.worker))
        }


async def settled_verdicts(
    settings: Settings, record: AdminSet | ChainSet, timeout_s: float, start: dict[TopicPartition, int] | None = None
) -> SettledVerdicts:
    """Wait, up to ``timeout_s``, for the signer's and a streams worker's verdict on the admin set
    or chain set ``record`` (by its id, `record_id_of`), on warden.audit.events from ``start``.
    Only a pinned service's audit record counts: a topic writer's "chains.changed" must not tell
    an admin that a chain set the services refused is in force."""
    subject: Literal["admins", "chains"] = "admins" if isinstance(record, AdminSet) else "chains"
    wanted, keys, verdicts = record_id_of(record), PinnedAuditKeys(settings), SettledVerdicts(subject)
    actions = {admin_record_action(subject, adopted=True), admin_record_action(subject, adopted=False)}
    deadline = time.monotonic() + timeout_s
    # The services record it under no agent: in the partition of the empty key.
    async for found in follow_records(
        settings, (topics.AUDIT_EVENTS,), start, fetch_max_wait_ms=settings.fetch_wait_ms, keys=("",)
    ):
        if found is not None:  # None: no record within the poll
            role, why = audit_writer(found.value, found.headers, keys)
            if why is None and role in ("signer", "worker") and getattr(verdicts, role) is None:
                for event in readable_audit_events(found.value):
                    if event.action in actions and event.details.get("record_id") == wanted:
                        setattr(verdicts, role, event)
        if (verdicts.signer is not None and verdicts.worker is not None) or time.monotonic() > deadline:
            break
    return verdicts


async def policy_in_force(settings: Settings, agent_id: str, idle_polls: int = 3) -> AgentPolicy | None:
    """The agent's policy in force, the one the streams worker holds, or None when there is none.
    The worker judges each policy under the admin set in force when it reads it and keeps the
    newest it took, so after an admin-set change that is the newest version whose signatures made
    the quorum then: signed by the set in force now, or by one it replaced. A policy only a
    replaced set signed may also have been written after the change, by the admins it removed (a
    stolen key, the reason to remove one), and the worker refused it; so such a policy counts
    only when the worker's own signed record says it took it (`_taken_by_worker`). The policies,
    the admin sets and the chain sets are read in one pass (`_admin_records`): the policies are
    judged once every admin set is known, and read once the chains the admins added are (a policy
    may name one)."""
    return (await policies_in_force(settings, (agent_id,), idle_polls))[agent_id]


async def policies_in_force(
    settings: Settings, agent_ids: Iterable[str], idle_polls: int = 3
) -> dict[str, AgentPolicy | None]:
    """`policy_in_force` of each of ``agent_ids``, the topics read once for all of them."""
    superseded: list[Admins] = []
    admins, _, values = await _admin_records(settings, (topics.POLICIES,), idle_polls, REGISTRY, superseded)
    policies = []
    for value in values:
        try:
            policies.append(AgentPolicy.from_bytes(value))
        except ValueError:
            continue
    return {
        agent_id: await _in_force(
            settings, agent_id, [p for p in policies if p.agent_id == agent_id], admins, superseded, idle_polls
        )
        for agent_id in agent_ids
    }


async def _in_force(
    settings: Settings,
    agent_id: str,
    candidates: list[AgentPolicy],
    admins: Admins,
    superseded: list[Admins],
    idle_polls: int,
) -> AgentPolicy | None:
    """The policy in force among ``candidates``, the policies of ``agent_id`` read (`policy_in_force`)."""
    newest = None
    for policy in candidates:
        # Only what the worker puts in force: anyone can write to the topic, and `warden agents
        # update` signs the fields it finds here, so a forged policy believed here would come
        # back admin-signed.
        if (newest is None or policy.version > newest.version) and policy_signature_valid(policy, admins):
            newest = policy
    before = [
        policy
        for policy in candidates
        if (newest is None or policy.version > newest.version)
        and not policy_signature_valid(policy, admins)
        and any(policy_signature_valid(policy, replaced) for replaced in superseded)
    ]
    if before:
        taken = await _taken_by_worker(settings, agent_id, idle_polls)
        for policy in sorted(before, key=lambda p: p.version, reverse=True):
            if policy.model_dump(mode="json", exclude={"signature", "cosignatures"}) in taken.get(policy.version, []):
                return policy
    return newest


async def _taken_by_worker(settings: Settings, agent_id: str, idle_polls: int) -> dict[int, list[dict[str, Any]]]:
    """The policies of ``agent_id`` a streams worker recorded taking (``policy.updated``, signed by
    a pinned worker key; a topic writer's record counts for nothing), by version: their fields as
    the record gives them (all but the signatures)."""
    keys = PinnedAuditKeys(settings)
    taken: dict[int, list[dict[str, Any]]] = {}
    idle = 0
    async for found in follow_records(settings, (topics.AUDIT_EVENTS,), keys=(agent_id,)):
        if found is None:
            idle += 1
            if idle >= idle_polls:
                break
            continue
        idle = 0
        if audit_writer(found.value, found.headers, keys) != ("worker", None):
            continue
        for event in readable_audit_events(found.value):
            if event.action == AuditAction.POLICY_UPDATED and event.agent_id == agent_id:
                version, fields = event.details.get("version"), event.details.get("policy")
                # A record without them names no policy taken (it could never match one).
                if isinstance(version, int) and isinstance(fields, dict):
                    taken.setdefault(version, []).append(fields)
    return taken


_DECIDED = (topics.INTENTS_APPROVED, topics.INTENTS_REJECTED)


async def pending_approvals(settings: Settings, now: datetime, idle_polls: int = 5) -> list[IntentParked]:
    """The parked intents no authentic approval or rejection has ended yet, oldest first. One
    whose wait has passed is left out too: the worker is expiring it."""
    keys = PinnedServiceKeys(settings)
    parked: dict[str, IntentParked] = {}
    # (intent id, digest): a record about another intent with the same id (a variant, a record the
    # worker could not read) ends no wait.
    decided: set[tuple[str, str | None]] = set()
    async for topic, value in read_to_quiet(settings, (topics.INTENTS_AWAITING_APPROVAL, *_DECIDED), idle_polls):
        record: IntentApproved | Outcome | None
        if topic == topics.INTENTS_APPROVED:
            try:
                record = IntentApproved.from_bytes(value)
            except ValueError:
                continue
        else:
            record = read_outcome(topic, value)
        if record is None or outcome_forgery(record, keys) is not None:
            continue
        if isinstance(record, IntentParked):
            parked.setdefault(record.intent_id, record)
        else:
            decided.add((record.intent_id, record.intent_digest))
    waiting = [p for p in parked.values() if (p.intent_id, p.intent_digest) not in decided and p.expires_at > now]
    return sorted(waiting, key=lambda p: p.parked_at)


class ReceiptUnavailable(WardenError, RuntimeError):
    """No receipt could be fetched: the message says why (not in the ledger yet, no ledger endpoint)."""


async def outcome_receipt(settings: Settings, intent_id: str, agent_id: str, intent_digest: str | None) -> str:
    """The newest outcome's receipt of the intent of ``agent_id`` with ``intent_digest``, from the
    ledger's endpoint: a c2sp.org/tlog-proof (its audit event, inclusion proof and the witnesses'
    cosigned checkpoint) that an auditor checks offline with `warden audit check-receipt` and the
    log's and witnesses' keys alone. A receipt whose event is about another record is refused.
    ``intent_digest`` None: an outcome written before outcomes named one, which no receipt binds."""
    if intent_digest is None:
        raise ReceiptUnavailable(
            f"the outcome of intent {intent_id} names no intent_digest (it was written before outcomes carried "
            "one), so no receipt can be bound to its intent"
        )
    import aiohttp  # here, not at the top: only a receipt needs an HTTP client, most commands never load it

    url = f"http://{settings.ledger_http}/receipt"
    params = {"intent_id": intent_id, "agent_id": agent_id, "intent_digest": intent_digest}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
            session.get(url, params=params) as response,
        ):
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ReceiptUnavailable(
            f"the ledger's endpoint at {url} did not answer ({exc}); is the ledger sink running "
            "(`warden status`)? With a ClickHouse server, `warden audit receipt EVENT_ID` builds one"
        ) from None
    if response.status != 200:
        raise ReceiptUnavailable(text.strip())
    about = receipt_subject(text)
    if about != (intent_id, agent_id, intent_digest):
        raise ReceiptUnavailable(
            f"the ledger's endpoint answered with a receipt about (intent, agent, digest) {about}, not "
            f"{(intent_id, agent_id, intent_digest)}; `warden audit check-receipt --intent-id ...` says more"
        )
    return text


def subject_problem(text: str, expected: tuple[str, str, str]) -> Problem | None:
    """Why the receipt ``text`` is no receipt for the intent ``expected`` (intent id, agent, intent
    digest), or None: its event is about another record. A refusal of a forged copy that reused
    the intent's id is a true event in the log, and no receipt for the intent."""
    about = receipt_subject(text)
    if about != expected:
        return Problem(f"the receipt's event is about (intent, agent, digest) {about}, not {expected}")
    return None


def receipt_subject(text: str) -> tuple[Any, ...] | None:
    """(intent_id, agent_id, intent_digest) of the audit row a receipt's ``extra`` line carries
    (`ledger.receipt`), or None when it carries none readable. Whether the row is in the log is
    `warden audit check-receipt`'s to say; this only says what the row is about."""
    for line in text.split("\n\n", 1)[0].split("\n"):
        if line.startswith("extra "):
            try:
                row = orjson.loads(base64.b64decode(line.removeprefix("extra "), validate=True))
                details = orjson.loads(row["details"])
                return row["intent_id"], row["agent_id"], details.get("intent_digest")
            except (ValueError, KeyError, TypeError, AttributeError):
                return None
    return None
