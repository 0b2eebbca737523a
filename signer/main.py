"""The signer process: its own consumer group on ``warden.intents.approved`` and, partition for
partition with it, ``warden.intents.abandoned`` (the intents the workers gave up, on which the
signer has the last word).

Offsets are committed only after everything a batch produced is acknowledged
by the broker (at most once a second while intents flow: `Offsets`), and the
signer's state records each signature before it is published (appended to the
partition's changelog, checked to hold, then committed to the local file:
`runtime.owner`), so a SIGKILL anywhere re-publishes the same bytes and never
signs twice, and another signer taking the partition over starts from the same
record.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evm import blobs
from runtime import metrics
from runtime.admins import Admins, follow_admin_sets, settled_event
from runtime.attestation.announcement import attest
from runtime.chains import follow_chain_sets
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.kafka import client_options, follow, follow_records, publish
from runtime.kafka import service_producer as new_producer
from runtime.owner import FLUSH_BYTES, Offsets, PartitionOwner
from runtime.readiness import mark_ready
from runtime.registry import REGISTRY
from runtime.rpc import Nodes
from runtime.trust import PinnedServiceKeys, pinned_admins, service_key
from schemas import topics
from schemas.actions import AuditAction
from schemas.auth import AuditSigner, public_key_hex, sign_announcement, vault_event_problem
from schemas.emit import Emit, Source, audit
from schemas.sealing_key import SealingKey
from signer import sign_only
from signer.changelog import SIGNER_LOG
from signer.custody.events import parse_event
from signer.custody.keys import KeyStore
from signer.custody_wiring import AuditOutbox, keystore_from_settings
from signer.policies import PolicyBook
from signer.sealing import SealingKeyPair
from signer.service import SERVICE, Followed, Signer
from signer.state import PartitionedState
from signer.vault_reader import VaultReader

log = logging.getLogger("warden.signer")

# While intents flow, offsets are committed at most this often, and at once when a poll finds
# nothing. A commit is a broker round trip that the next batch waited for (one per batch, nearly
# one per intent at 100/s), and committing later loses nothing: the changelog, not the offset, is
# what prevents a second signature. A signer that starts from an older offset reads approvals it
# signed already and publishes the same bytes again, as after a SIGKILL between publish and commit.
COMMIT_EVERY_S = 1.0


async def run_signer(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """The signer process: wires its parts, then runs its loops until ``stop``: following the
    policies and the vault, re-announcing its sealing key, signing batches, tracking broadcasts."""
    stop = stop or asyncio.Event()
    nodes = Nodes(settings.rpc_url_for)
    custody_audit = AuditOutbox()
    service = service_key(settings, "signer")
    audit_signer = AuditSigner("signer", *service)
    keystore = _keystore(settings, custody_audit, service)
    sealing = SealingKeyPair()
    admins = pinned_admins(settings)
    policies = PolicyBook(admins)
    tee, announced = announce(settings, sealing, service, utcnow())
    _refuse_legacy_state(settings)
    states = PartitionedState(settings.signer_state_dir)
    owner: PartitionOwner | None = None
    keys = PinnedServiceKeys(settings)

    async def persist(_agent_id: str) -> None:
        if owner is None:  # set below, before the consumer reads anything that could need a persist
            raise RuntimeError("a signature was to be made durable before the partition owner started")
        async with owner.batch:
            await owner.flush()

    signer = _signer(settings, states, keystore, admins, nodes, service, tee, sealing, policies, persist, keys)
    # The admin and chain followers' tasks are held here for the process's life: the event loop
    # keeps only a weak reference to a task.
    admin_task, chain_task, vault_task, vault_known, policy_task, policies_known = await _follow_control_topics(
        settings, admins, keystore, policies, custody_audit, tee
    )
    if tee == "none":
        log.warning("signer runs with tee=none: no attestation; every signed record says so")
    consumer = _consumer(settings)
    offsets = Offsets(consumer, COMMIT_EVERY_S, time.monotonic())
    producer = new_producer(settings)
    await producer.start()
    await consumer.start()
    trackers = Trackers(signer, states, producer, settings.max_record_bytes, audit_signer)
    owner = _partition_owner(settings, states, producer, service, keys, trackers, offsets)
    trackers.owner = owner
    await owner.start()
    # The worker's abandonments too: the signer has the last word on an intent given up
    # (`Signer.abandoned`), and decides it with the approvals of the same partition, in one state.
    # And the admins' denials: one of an intent signed sign-only cancels its transaction (`signer.sign_only`).
    consumer.subscribe(list(topics.CONSUMER_GROUPS["signer"][1]), listener=owner)
    await _announce_sealing(settings, producer, sealing, announced, tee)
    reannounce_task = asyncio.create_task(reannounce(settings, sealing, service, producer)) if tee != "none" else None
    batches = Batches(
        signer, owner, consumer, producer, settings.max_record_bytes, audit_signer, custody_audit, trackers
    )
    await _ready_once_caught_up(settings, policies, policy_task, policies_known, vault_task, vault_known)
    # Loaded while the consumer joins its group (seconds Tansu holds it), not at the first blob,
    # where the load would stop this loop with every batch behind it; unless the settings say
    # this signer is one of many short-lived ones, most of which never see a blob.
    setup_task = None if settings.kzg_setup_at_first_blob else asyncio.create_task(_load_trusted_setup())
    try:
        await _sign_until_stopped(stop, consumer, owner, offsets, batches, trackers, signer)
    finally:
        await _stop(reannounce_task, vault_task, policy_task, trackers, setup_task, consumer, owner, producer, nodes)


def _keystore(settings: Settings, custody_audit: AuditOutbox, service: tuple[str, Ed25519PrivateKey]) -> KeyStore:
    """The signer's key store: the keys warden.vault holds, released to this signer by its service key."""
    service_public = bytes.fromhex(public_key_hex(service[1])[2:])
    return keystore_from_settings(
        settings, audit=custody_audit, requester=(settings.signer_id, service_public), from_topic=True
    )


def _refuse_legacy_state(settings: Settings) -> None:
    """Refuse to start over a signer record from before partition-owned state."""
    legacy = settings.home / "signer" / "state.db"
    if legacy.exists():
        raise RuntimeError(
            f"{legacy} is a signer record from before partition-owned state; it is not on "
            f"{topics.SIGNER_CHANGELOG}, so no signer could restore it. Not starting: move it aside "
            "(a fresh chain) or run the release that wrote it until its transactions are final"
        )


def _signer(
    settings: Settings,
    states: PartitionedState,
    keystore: KeyStore,
    admins: Admins,
    nodes: Nodes,
    service: tuple[str, Ed25519PrivateKey],
    tee: str,
    sealing: SealingKeyPair,
    policies: PolicyBook,
    persist: Callable[[str], Awaitable[None]],
    keys: PinnedServiceKeys,
) -> Signer:
    """The signing service, with this process's keys and the settings' limits on intents and fee bumps."""
    return Signer(
        states,
        keystore,
        admins,
        nodes.for_chain,
        service_key=service,
        tee=tee,
        sealing=sealing,
        policies=policies,
        max_age_us=settings.intent_max_age_s * 1_000_000,
        replace_after_us=int(settings.tx_replace_after_s * 1_000_000),
        max_bumps=settings.tx_max_bumps,
        persist=persist,
        service_keys=keys,
    )


async def _follow_control_topics(
    settings: Settings, admins: Admins, keystore: KeyStore, policies: PolicyBook, custody_audit: AuditOutbox, tee: str
) -> tuple[asyncio.Task[Any], asyncio.Task[Any], asyncio.Task[Any], asyncio.Event, asyncio.Task[Any], asyncio.Event]:
    """Follow the admin sets, the vault, the chain sets and the policies, the admins' and the chains'
    read to their end: the four tasks, and the events set when the vault and the policies are."""
    # The admin set in force is known before any admin's signature is checked: a policy signed by
    # an admin a quorum added since the configured set must not be refused as unsigned.
    admins_known = asyncio.Event()
    admin_task = asyncio.create_task(
        follow_admin_sets(settings, admins, admins_known, _audit_settled(settings, custody_audit))
    )
    await _caught_up(admins_known, admin_task, topics.ADMINS)
    # Key changes name no network: read beside the chains and the policies, not after them.
    vault_known = asyncio.Event()
    vault_task = asyncio.create_task(follow_vault(settings, keystore, admins, vault_known, custody_audit))
    # The chains the admins' quorum added are known before any record that may name one is read
    # (policies, approved intents, restored transactions): from warden.chains, never from a file.
    chains_known = asyncio.Event()
    chain_task = asyncio.create_task(
        follow_chain_sets(settings, admins, REGISTRY, chains_known, _audit_settled(settings, custody_audit, "chains"))
    )
    await _caught_up(chains_known, chain_task, topics.CHAINS)
    policies_known = asyncio.Event()
    policy_task = asyncio.create_task(follow_policies(settings, policies, policies_known, custody_audit, tee))
    return admin_task, chain_task, vault_task, vault_known, policy_task, policies_known


def _partition_owner(
    settings: Settings,
    states: PartitionedState,
    producer: AIOKafkaProducer,
    service: tuple[str, Ed25519PrivateKey],
    keys: PinnedServiceKeys,
    trackers: Trackers,
    offsets: Offsets,
) -> PartitionOwner:
    """The owner of the assigned partitions' state: restores their trackers, drops them when
    revoked, and commits the finished offsets before they are."""
    return PartitionOwner(
        settings,
        states,
        producer,
        service,
        lambda writer: keys.key_now("signer", writer),
        on_restored=trackers.restored,
        on_revoked=trackers.revoked,
        on_revoking=lambda: offsets.commit(time.monotonic()),
        topic=topics.SIGNER_CHANGELOG,
        log_format=SIGNER_LOG,
    )


async def _announce_sealing(
    settings: Settings, producer: AIOKafkaProducer, sealing: SealingKeyPair, announced: SealingKey, tee: str
) -> None:
    """Publish this process's sealing key and wait until the broker has it."""
    # Clients seal client shares to this process's key; announced before the first intent is read.
    await (await producer.send(topics.SIGNER_SEALING, announced.to_bytes(), key=settings.signer_id.encode()))
    log.info(
        "sealing key %s announced on %s as %s (tee=%s)", sealing.key_id, topics.SIGNER_SEALING, settings.signer_id, tee
    )


async def _ready_once_caught_up(
    settings: Settings,
    policies: PolicyBook,
    policy_task: asyncio.Task[Any],
    policies_known: asyncio.Event,
    vault_task: asyncio.Task[Any],
    vault_known: asyncio.Event,
) -> None:
    """Wait until the policies and the vault are read to their end, then serve metrics and mark the process ready."""
    # Nothing is signed before every policy and every key change already published is known here.
    await _caught_up(policies_known, policy_task, topics.POLICIES)
    await _caught_up(vault_known, vault_task, topics.VAULT)
    log.info("read %s to the end: %d agents' policies in force", topics.POLICIES, len(policies))
    metrics.serve(settings, settings.signer_process)
    mark_ready(settings, settings.signer_process)


async def _sign_until_stopped(
    stop: asyncio.Event,
    consumer: AIOKafkaConsumer,
    owner: PartitionOwner,
    offsets: Offsets,
    batches: Batches,
    trackers: Trackers,
    signer: Signer,
) -> None:
    """Sign the batches the consumer reads until ``stop``, then commit what finished."""
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=200)
        async with owner.batch:
            try:
                await batches.one(batch)
            except BaseException:
                offsets.broken = True
                raise
            await offsets.after_batch(sum(len(records) for records in batch.values()), time.monotonic())
        metrics.SIGNER_QUEUE.set(len(trackers.pending) - signer.tracking.watching_final)
        metrics.CONSUMER_LAG.labels("signer").set(await _lag(consumer))
    async with owner.batch:  # a clean stop: what finished is committed
        await offsets.commit(time.monotonic())


async def _stop(
    reannounce_task: asyncio.Task[Any] | None,
    vault_task: asyncio.Task[Any],
    policy_task: asyncio.Task[Any],
    trackers: Trackers,
    setup_task: asyncio.Task[Any] | None,
    consumer: AIOKafkaConsumer,
    owner: PartitionOwner,
    producer: AIOKafkaProducer,
    nodes: Nodes,
) -> None:
    """Cancel the signer's tasks, then stop the consumer, the partition owner, the producer and
    the nodes, in that order."""
    if reannounce_task is not None:
        reannounce_task.cancel()
    vault_task.cancel()
    policy_task.cancel()
    trackers.cancel_all()
    if setup_task is not None:
        setup_task.cancel()
    await consumer.stop()
    await owner.stop()
    await producer.stop()
    await nodes.close()


async def _load_trusted_setup() -> None:
    try:
        await asyncio.to_thread(blobs.load_trusted_setup)
    except Exception as exc:  # the first blob transaction meets the same error, with its intent
        log.error("the KZG trusted setup did not load (%s): blob transactions cannot be signed", exc)


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    # A static member (the signer id is its group.instance.id): restarted after a crash, it takes
    # its own place and partitions back at once, instead of the group first being rebalanced onto
    # the dead member and then again when its session runs out (~20 s on Tansu, now ~8). The cost:
    # a stopped signer does not leave the group, so one removed for good hands its partitions over
    # only when its session expires, and Tansu holds each static join and sync ~3 s.
    return AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        group_id="warden-signer",
        group_instance_id=settings.signer_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10_000,
        # Partition p of warden.intents.abandoned goes with partition p of warden.intents.approved
        # (the same count, keyed by agent): the one signer holding that agent's state reads both,
        # so an abandonment and an approval of one intent are decided in order, one of them first.
        # The default (round robin) could hand them to two signers, each deciding on its own.
        partition_assignment_strategy=(RangePartitionAssignor,),
        heartbeat_interval_ms=1_000,
        max_poll_records=500,
        max_partition_fetch_bytes=settings.max_message_bytes,
        fetch_max_wait_ms=settings.fetch_wait_ms,
        **client_options(settings),
    )


async def _caught_up(known: asyncio.Event, task: asyncio.Task[Any], topic: str) -> None:
    """Until ``task`` read ``topic`` to its end (``known``); raises why, if it stopped first."""
    done = asyncio.create_task(known.wait())
    await asyncio.wait({done, task}, return_when=asyncio.FIRST_COMPLETED)
    if not known.is_set():
        done.cancel()
        task.result()  # raises why the topic could not be read
        raise RuntimeError(f"{topic} ended before the signer caught up")


def _audit_settled(
    settings: Settings, custody_audit: AuditOutbox, subject: Literal["admins", "chains"] = "admins"
) -> Callable[[str, str, str], None]:
    """The ledger's record of each admin set (``subject`` "chains": chain set) this signer took or refused."""

    def record(what: str, text: str, record_id: str) -> None:
        custody_audit(settled_event(SERVICE, subject, what, text, record_id, utcnow(), signer_id=settings.signer_id))

    return record


async def follow_policies(
    settings: Settings, policies: PolicyBook, caught_up: asyncio.Event, custody_audit: AuditOutbox, tee: str
) -> None:
    """The signer's own view of every policy: a revocation holds here even if no worker passes it on."""
    # A revocation must hold here promptly: this reader waits on the broker like a client does.
    async for topic, value in follow(
        settings, (topics.POLICIES,), caught_up=caught_up, fetch_max_wait_ms=settings.fetch_wait_ms
    ):
        if topic:
            adopted = policies.read(value)
            if adopted is not None:
                log.info("policy v%d of %s in force at the signer", adopted.version, adopted.agent_id)
                # On the ledger too: when a revocation took hold at the signer is an auditor's question.
                now = utcnow()
                custody_audit(
                    audit(
                        SERVICE,
                        AuditAction.POLICY_ENFORCED,
                        f"policy:{adopted.agent_id}",
                        now,
                        adopted.agent_id,
                        str(adopted.version),
                        settings.signer_id,
                        agent_id=adopted.agent_id,
                        version=adopted.version,
                        intents_api_enabled=adopted.intents_api_enabled,
                        signer_id=settings.signer_id,
                        tee=tee,
                    )
                )


async def follow_vault(
    settings: Settings, keystore: KeyStore, admins: Admins, caught_up: asyncio.Event, custody_audit: AuditOutbox
) -> None:
    """Vaults are event-sourced: the signer's keys are what warden.vault holds, nothing else. An
    event is applied only when the admins' quorum for ``keys`` signed it; the ledger records each
    one applied (and by whom) or refused (and why). ``caught_up``: the topic was read to its end."""
    # An event resting on a vault this signer does not hold (its creation still a proposal) is refused.
    reader = VaultReader(keystore.vaults.book)
    # A key deactivated must hold here promptly: this reader waits on the broker like a client does.
    async for record in follow_records(
        settings, (topics.VAULT,), caught_up=caught_up, fetch_max_wait_ms=settings.fetch_wait_ms
    ):
        if caught_up.is_set() and not reader.history_read:
            for (event_record, _), refusal in reader.caught_up():
                custody_audit(refused_vault_event(event_record, str(refusal), utcnow()))
        if record is None:
            continue
        signed_by, problem = vault_event_problem(record.value, record.headers, admins)
        if problem is not None:
            custody_audit(refused_vault_event(record, str(problem), utcnow()))
            continue
        try:
            settled = reader.read((record, signed_by), parse_event(record.value), record.value, record.headers)
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop later key updates from arriving
            log.exception("unreadable vault event on %s; ignored", topics.VAULT)
            custody_audit(refused_vault_event(record, f"not a vault event this signer can apply ({exc})", utcnow()))
            continue
        for (event_record, by), why in settled:
            if why is None:
                custody_audit(applied_vault_event(settings, event_record, by, utcnow()))
            else:
                custody_audit(refused_vault_event(event_record, str(why), utcnow()))


async def reannounce(
    settings: Settings, sealing: SealingKeyPair, service: tuple[str, Ed25519PrivateKey], producer: AIOKafkaProducer
) -> None:
    """Clients believe an attested announcement for max_age_s: a fresh report well before that."""
    while True:
        await asyncio.sleep(settings.attestation.max_age_s / 2)
        _, again = announce(settings, sealing, service, utcnow())
        await (await producer.send(topics.SIGNER_SEALING, again.to_bytes(), key=settings.signer_id.encode()))


class Trackers:
    """Each broadcast transaction's tracker task, by the partition its agent is in: a partition
    restored here tracks what was still open in it, a partition revoked stops its trackers (its
    new owner tracks them from the record)."""

    def __init__(
        self,
        signer: Signer,
        states: PartitionedState,
        producer: AIOKafkaProducer,
        max_record_bytes: int,
        audit_signer: AuditSigner,
    ):
        self.signer = signer
        self.states = states
        self.producer = producer
        self.max_record_bytes = max_record_bytes
        self.audit_signer = audit_signer
        self.pending: dict[asyncio.Task[Any], int] = {}  # each transaction's tracker → its agent's partition
        self.watches: dict[int, asyncio.Task[Any]] = {}  # each owned partition's sign-only watch
        self.owner: PartitionOwner | None = None  # set once it exists: the owner calls `restored`

    async def emit(self, emits: list[Emit], partition: int) -> None:
        """A tracker's status change, on its partition's changelog and holding there before it is
        published: a signer killed between the two would leave the next owner a record older than
        what clients were told (a block that left the chain not counted in ``reorgs``, a final
        record it would follow again). What it publishes is appended with it (the outbox), so a
        signer killed after the append leaves the next owner that to publish: the newest record
        an intent has is never only in the state. Trackers that change together share one append."""
        if not emits:
            return
        async with self._owner().batch:
            await self._durable_then_published(emits, partition)

    def _owner(self) -> PartitionOwner:
        if self.owner is None:  # set before anything is tracked: the owner's restore starts the trackers
            raise RuntimeError("a tracker reported before the signer's partition owner was set")
        return self.owner

    async def _durable_then_published(self, emits: list[Emit], partition: int) -> None:
        """Holding the batch: the state change and its outbox appended, then published."""
        await self._owner().flush()
        await self._publish(emits)
        self.states.partition(partition).published(emits)

    async def _publish(self, emits: list[Emit]) -> None:
        await asyncio.gather(*await publish(self.producer, emits, self.max_record_bytes, self.audit_signer))

    def track(self, signed: Followed) -> None:
        partition = self.states.partition_of(signed.agent_id)

        def emit(emits: list[Emit]) -> Awaitable[None]:
            return self.emit(emits, partition)

        task = asyncio.create_task(self.signer.follow(signed, utcnow, emit))
        self.pending[task] = partition
        task.add_done_callback(lambda done: self.pending.pop(done, None))

    async def restored(self, partition: int) -> None:
        """Transactions signed for this partition's agents (here or by the signer that had it) that
        are not final yet, compared with the chain by their family's tracker before the partition's
        next intent is signed (the caller holds the batch; `Signer.resume`), then each followed
        until final. A chain that cannot be asked stops the signer: nothing is signed on a stale
        record."""
        state = self.states.partition(partition)

        async def durable(emits: list[Emit]) -> None:  # the caller holds the batch
            await self._durable_then_published(emits, partition)

        try:
            for signed in await self.signer.resume(state, utcnow, durable):
                self.track(signed)
        except RuntimeError as exc:
            raise RuntimeError(f"partition {partition}: {exc}") from exc
        # What the last owner appended and may not have published (killed in between): its
        # intents' newest records and their audit events, the same bytes again.
        outbox = state.unpublished()
        await self._publish([emit for emit, current in outbox if current])
        state.published([emit for emit, _ in outbox])
        watch = self.watches.pop(partition, None)
        if watch is not None:
            watch.cancel()
        self.watches[partition] = asyncio.create_task(self.watch_sign_only(partition))

    async def watch_sign_only(self, partition: int) -> None:
        """The partition's open sign-only transactions compared with the chain, every
        `sign_only.WATCH_EVERY_S`, for as long as this signer owns it (`signer.sign_only`). A
        node that does not answer changes nothing: the spend stays held."""
        state = self.states.partition(partition)
        while True:
            await asyncio.sleep(sign_only.WATCH_EVERY_S)
            open_rows = state.open_sign_only()  # read from the table the first time, then followed
            if not open_rows:
                continue
            try:
                emits = await self.signer.sign_only.look_all(open_rows, utcnow())
            except Exception:  # noqa: BLE001 - the watch goes on; what it did not finish stays held, looked at again
                log.exception("partition %d: the sign-only watch failed; its transactions stay held", partition)
                continue
            await self.emit(emits, partition)

    def revoked(self, partition: int) -> None:
        for task, owned_by in list(self.pending.items()):
            if owned_by == partition:  # its new owner tracks it from the record
                task.cancel()
        watch = self.watches.pop(partition, None)
        if watch is not None:
            watch.cancel()

    def cancel_all(self) -> None:
        for task in [*self.pending, *self.watches.values()]:
            task.cancel()


class Batches:
    """One batch of approved records at a time: each handled by the signer, its writes on the
    changelog and holding there before anything of it is published, and each broadcast sent
    (and its tracker started) before the next intent is signed."""

    def __init__(
        self,
        signer: Signer,
        owner: PartitionOwner,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        max_record_bytes: int,
        audit_signer: AuditSigner,
        custody_audit: AuditOutbox,
        trackers: Trackers,
    ):
        self.signer = signer
        self.owner = owner
        self.consumer = consumer
        self.producer = producer
        self.max_record_bytes = max_record_bytes
        self.audit_signer = audit_signer
        self.custody_audit = custody_audit
        self.trackers = trackers

    async def _publish(self, emits: list[Emit]) -> list[asyncio.Future[Any]]:
        return await publish(self.producer, emits, self.max_record_bytes, self.audit_signer)

    async def one(self, batch: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        """Call it holding the owner's batch lock."""
        owner, signer = self.owner, self.signer
        if owner.failure is not None:  # a rebalance could not restore or append: never sign on it
            raise owner.failure
        acks: list[asyncio.Future[Any]] = []
        unpublished: list[Emit] = []
        sent_changes: list[tuple[str, list[Emit]]] = []  # (agent, a send's status change): out of the outbox once acked
        watched: list[Followed] = []
        assigned = self.consumer.assignment()
        for tp, messages in batch.items():
            if tp not in assigned:  # revoked since the fetch: its new owner reads these
                continue
            await owner.restore(tp.partition)  # at once if the rebalance restored it already
            for msg in messages:
                source = Source(msg.topic, msg.partition, msg.offset, msg.key)
                try:
                    if msg.topic == topics.APPROVALS:  # an admin's denial: a sign-only transaction's cancellation
                        emits, to_broadcast = signer.sign_only.cancel_requested(msg.value, source, utcnow()), None
                    else:
                        handle = signer.abandoned if msg.topic == topics.INTENTS_ABANDONED else signer.handle
                        emits, to_broadcast = await handle(msg.value, source, utcnow())
                except Exception as exc:  # noqa: BLE001 - the last net: handle() already turns signing failures into refusals
                    # Fail closed and keep going: not signed, and recorded in the DLQ, never only logged.
                    log.exception("signer failed on %s; not signed, dead-lettered", source.resource)
                    emits, to_broadcast = (
                        signer.dead_letter(
                            msg.value,
                            source,
                            utcnow(),
                            f"the signer could not process this record ({exc.__class__.__name__}); not signed",
                        ),
                        None,
                    )
                unpublished += emits
                if to_broadcast is not None and signer.followed_unsent(to_broadcast):
                    watched.append(to_broadcast)  # followed once it is published, never sent
                elif to_broadcast is not None:
                    # Durable before the chain sees it: a crash after sending must find the
                    # record and re-publish these bytes, never sign the intent again.
                    await owner.flush()
                    acks += await self._publish(unpublished)
                    sent_emits, sent = await signer.send(to_broadcast, utcnow())
                    sent_changes.append((to_broadcast.agent_id, sent_emits))
                    unpublished = []
                    if sent is not None:
                        # `broadcast` goes out before its record is on the changelog (a kill in
                        # between: the next owner sends the same bytes, and says broadcast again).
                        # Queued before its tracker can queue a later status: the topic keeps the order.
                        acks += await self._publish(sent_emits)
                        self.trackers.track(sent)
                    else:  # refused by the node, so final: published once it is on the changelog
                        unpublished += sent_emits
                elif owner.pending_bytes() > FLUSH_BYTES:  # one changelog record stays small
                    await owner.flush()
        # On the changelog, and holding there, before anything of the batch is published.
        await owner.flush()
        acks += await self._publish(unpublished + self.custody_audit.drain())
        if acks:
            await asyncio.gather(*acks)
        for agent_id, emits in sent_changes:
            signer.state.agent(agent_id).file.published(emits)
        for signed in watched:
            self.trackers.track(signed)


def applied_vault_event(
    settings: Settings, record: ConsumerRecord[Any, Any], signed_by: list[str], now: datetime
) -> Emit:
    """The signer's audit record of a vault event it applied: where it was on the topic, its
    digest (never its contents) and the admins whose signatures made the quorum. Its id names the
    signer and the record, so reading the topic again after a restart records nothing new."""
    resource = f"record:{record.topic}/{record.partition}/{record.offset}"
    return audit(
        SERVICE,
        AuditAction.VAULT_EVENT_APPLIED,
        resource,
        now,
        settings.signer_id,
        resource,
        signer_id=settings.signer_id,
        signed_by=signed_by,
        payload_sha256=hashlib.sha256(record.value or b"").hexdigest(),
    )


def refused_vault_event(record: ConsumerRecord[Any, Any], why: str, now: datetime) -> Emit:
    """The signer's audit record of a vault event it did not apply: where it was on the topic,
    what it was (its digest and size, never its contents) and why."""
    resource = f"record:{record.topic}/{record.partition}/{record.offset}"
    log.warning("vault event %s not applied: %s", resource, why)
    return audit(
        SERVICE,
        AuditAction.VAULT_EVENT_REFUSED,
        resource,
        now,
        resource,
        reason=why,
        payload_sha256=hashlib.sha256(record.value or b"").hexdigest(),
        payload_bytes=len(record.value or b""),
    )


def announce(
    settings: Settings, sealing: SealingKeyPair, service: tuple[str, Ed25519PrivateKey], now: datetime
) -> tuple[str, SealingKey]:
    """Where this signer runs and its sealing-key announcement, signed with its service key
    (``service``: key id, private key): attested with an SEV-SNP report binding the sealing key
    and the service key when the guest gives one (WARDEN_TEE=auto or sev-snp), else ``tee=none``,
    where the signature is what ties the key to this signer. WARDEN_TEE=sev-snp without a report
    does not start."""
    tee, announced = _announcement(settings, sealing, bytes.fromhex(public_key_hex(service[1])[2:]), now)
    return tee, sign_announcement(announced, service[1], service[0])


def _announcement(
    settings: Settings, sealing: SealingKeyPair, service_public: bytes, now: datetime
) -> tuple[str, SealingKey]:
    if settings.tee == "none":
        return "none", sealing.announcement(settings.signer_id, "none", now)
    evidence, how = attest(
        settings.signer_id,
        sealing.public_key,
        service_public,
        now,
        product=settings.attestation.product,
        vcek_file=settings.attestation.vcek_file,
    )
    if evidence is None:
        if settings.tee == "sev-snp":
            raise RuntimeError(f"WARDEN_TEE=sev-snp but this machine gives no attestation report: {how}")
        log.info("no SEV-SNP attestation here: %s", how)
        return "none", sealing.announcement(settings.signer_id, "none", now)
    log.info("SEV-SNP report obtained via %s; it binds sealing key %s and the service key", how, sealing.key_id)
    return "sev-snp", sealing.announcement(settings.signer_id, "sev-snp", now, evidence)


async def _lag(consumer: AIOKafkaConsumer) -> int:
    """Records past the consumer's position, from the high watermarks its fetches brought back."""
    lag = 0
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is not None:
            lag += max(0, highwater - await consumer.position(tp))
    return lag


def _log_tasks() -> None:
    for task in asyncio.all_tasks():
        where: list[str] = []
        awaiting: object = task.get_coro()
        while awaiting is not None:  # down the chain of awaits: where each task waits, innermost last
            frame = getattr(awaiting, "cr_frame", None) or getattr(awaiting, "ag_frame", None)
            if frame is not None:
                where.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
            awaiting = getattr(awaiting, "cr_await", None) or getattr(awaiting, "ag_await", None)
        log.warning("task %s:\n%s", task.get_name(), "\n".join(where))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s signer %(levelname)s %(message)s")
    stop = asyncio.Event()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # `kill -USR1 <pid>`: every task's stack in the log, for a signer that seems stuck.
        loop.add_signal_handler(signal.SIGUSR1, _log_tasks)
        await run_signer(load(), stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
