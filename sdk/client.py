"""The Python SDK for producers and operators: sign and publish intents and policies, and
watch outcomes on the topics.

An agent runtime holds only its Ed25519 *intent* key (which proves the intent is
the agent's); it never holds a chain key. Local agent keys live under
``$WARDEN_HOME/agents/<agent_id>/`` for the embedded stack.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from evm.blobs import make_sidecar
from runtime.attestation import announcement
from runtime.attestation.policy import AttestationPolicy
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import audit_headers, end_offsets, follow, follow_records
from runtime.kafka import producer as new_producer
from runtime.trust import LOCAL_ADMIN_ID, PinnedAuditKeys, PinnedServiceKeys
from schemas import topics
from schemas.audit import AuditEvent, audit_events_of
from schemas.auth import (
    AuditSigner,
    ServiceKeys,
    VaultEventSigner,
    audit_writer,
    load_or_create_ed25519,
    outcome_forgery,
    sign_human_approval,
    sign_intent,
    sign_policy,
)
from schemas.emit import Emit
from schemas.intake import Unreadable, read_intent, unreadable_answer
from schemas.intent import SealedSecret, TransactionIntent
from schemas.outcomes import (
    FINAL_TX_STATUSES,
    HumanApproval,
    IntentParked,
    IntentRejected,
    SignedMessage,
    SignedTransaction,
    bound_to_bytes,
)
from schemas.policy import AgentPolicy
from schemas.sealing import decode_client_share, decode_cmek, newest_per_signer, refusal, seal_secret, usable_keys
from schemas.sealing_key import SealingKey
from schemas.typed_data import TypedData
from sdk.admin import load_or_create_admin_key


@dataclass(frozen=True)
class RawSubmission:
    """A record published as it is (`Client.submit_raw`), named as the streams worker names its
    answer: the agent it is keyed by, the intent id, ``digest`` (the SHA-256 of the bytes sent:
    what the INVALID_INTENT rejection of a record the worker cannot read is bound to) and
    ``intent_digest`` (the digest of the intent in it, when this client reads one: what every
    other outcome is bound to; None when it reads none)."""

    agent_id: str
    intent_id: str
    digest: str
    intent_digest: str | None = None


def raw_submission(agent_id: str, raw: bytes, max_bytes: int) -> RawSubmission:
    """How the worker will answer ``raw`` published keyed by ``agent_id`` (see `RawSubmission`):
    read here as the worker reads it (`schemas.intake.read_intent`, ``max_bytes`` being its
    record limit, ``max_record_bytes``), named as it names it (`schemas.intake.unreadable_answer`)."""
    intent = read_intent(raw, max_bytes)
    if not isinstance(intent, Unreadable):
        return RawSubmission(intent.agent_id, intent.intent_id, hashlib.sha256(raw).hexdigest(), intent.digest())
    agent, intent_id, digest = unreadable_answer(intent, raw, agent_id)
    if agent is None:
        raise ValueError(
            f"no answer could reach this record: its key {agent_id!r} is not an agent id (1-128 "
            "letters, digits and _.:- starting with a letter or digit) and it names no agent_id "
            "that is one"
        )
    return RawSubmission(agent, intent_id, digest)


def intent_key_file(home: Path, agent_id: str) -> Path:
    return home / "agents" / agent_id / "intent_ed25519.pem"


def load_or_create_agent_key(home: Path, agent_id: str) -> Ed25519PrivateKey:
    return load_or_create_ed25519(intent_key_file(home, agent_id))


def idempotent_intent_id(agent_id: str, idempotency_key: str) -> str:
    """The SDK derives the intent id from the idempotency key, so a retried submit is the same intent."""
    return "i-" + hashlib.sha256(f"{agent_id}\x1f{idempotency_key}".encode()).hexdigest()[:30]


class ClientKey:
    """A client-held key, ready to seal to the current signers: the client share of a
    client-custody vault (``purpose="client_share"``) or a vault's customer-managed key
    (``purpose="cmek"``).

    Held in a bytearray and wiped by ``wipe()`` (or leaving a ``with`` block). Make one with
    ``Client.client_share`` or ``Client.cmek``, which read the signers' sealing keys and refuse
    ones they cannot trust."""

    def __init__(self, secret: bytearray, keys: Sequence[SealingKey], purpose: str = "client_share"):
        self._secret = secret
        self.keys = tuple(keys)
        self.purpose = purpose

    def __repr__(self) -> str:
        return f"ClientKey({self.purpose}, sealed to {[k.key_id for k in self.keys]})"

    def seal(self, agent_id: str, intent_id: str) -> tuple[SealedSecret, ...]:
        return seal_secret(self._secret, self.keys, agent_id=agent_id, intent_id=intent_id, purpose=self.purpose)

    def wipe(self) -> None:
        self._secret[:] = bytes(len(self._secret))

    def __enter__(self) -> "ClientKey":
        return self

    def __exit__(self, *exc) -> None:
        self.wipe()


def new_intent(
    agent_key: Ed25519PrivateKey,
    *,
    agent_id: str,
    chain: str,
    to: str | None = None,
    value: str | None = None,
    idempotency_key: str | None = None,
    intent_id: str | None = None,
    now: datetime | None = None,
    client_share: ClientKey | None = None,
    cmek: ClientKey | None = None,
    **fields,
) -> TransactionIntent:
    """A signed intent (a transaction unless ``intent_type`` says otherwise; see
    `new_message_intent` and `new_typed_data_intent`). ``client_share`` (client-custody vaults)
    and ``cmek`` (vaults with a customer-managed key) are sealed into the intent before the agent
    signs it, so the signature covers them too."""
    if intent_id is None:
        intent_id = idempotent_intent_id(agent_id, idempotency_key) if idempotency_key else "i-" + uuid.uuid4().hex
    if client_share is not None:
        fields["sealed_client_share"] = client_share.seal(agent_id, intent_id)
    if cmek is not None:
        fields["sealed_cmek"] = cmek.seal(agent_id, intent_id)
    if any(key.tee == "none" for sealed in (client_share, cmek) if sealed is not None for key in sealed.keys):
        # The development opt-in let a secret go to a signer nothing attests: the intent says so.
        fields["unattested_signer_accepted"] = True
    intent = TransactionIntent(
        intent_id=intent_id,
        agent_id=agent_id,
        idempotency_key=idempotency_key,
        chain=chain,
        to=to,
        value=value,
        created_at=now or utcnow(),
        **fields,
    )
    return sign_intent(intent, agent_key)


def new_message_intent(
    agent_key: Ed25519PrivateKey, *, agent_id: str, chain: str, message: bytes | str, **fields
) -> TransactionIntent:
    """An EIP-191 personal_sign intent; a ``str`` message is signed as its UTF-8 bytes."""
    raw = message.encode() if isinstance(message, str) else message
    return new_intent(
        agent_key, agent_id=agent_id, chain=chain, intent_type="personal_sign", message="0x" + raw.hex(), **fields
    )


def new_typed_data_intent(
    agent_key: Ed25519PrivateKey, *, agent_id: str, chain: str, typed_data: dict, **fields
) -> TransactionIntent:
    """An EIP-712 intent over ``typed_data`` (the eth_signTypedData_v4 JSON document)."""
    return new_intent(
        agent_key,
        agent_id=agent_id,
        chain=chain,
        intent_type="typed_data",
        typed_data=TypedData.model_validate(typed_data),
        **fields,
    )


def blob_fields(blobs: Sequence[bytes]) -> dict:
    """The fields of a blob transaction (type 3) that carries its blobs: the blobs and their
    KZG versioned hashes, computed here the way the signer checks them."""
    sidecar = make_sidecar(tuple(blobs))
    return {
        "tx_type": 3,
        "blobs": tuple("0x" + b.hex() for b in blobs),
        "blob_versioned_hashes": tuple("0x" + h.hex() for h in sidecar.versioned_hashes),
    }


def signed_policy(settings: Settings, **fields) -> AgentPolicy:
    admin = load_or_create_admin_key(settings.home)
    policy = AgentPolicy(issued_at=utcnow(), **fields)
    return sign_policy(policy, admin, LOCAL_ADMIN_ID)


def admin_audit_signer(settings: Settings) -> AuditSigner:
    """The local admin key (the one that signs policies), as the signer of audit records."""
    return AuditSigner("admin", LOCAL_ADMIN_ID, load_or_create_admin_key(settings.home))


def human_decision(settings: Settings, parked: IntentParked, decision: str, reason: str = "") -> HumanApproval:
    """An admin's decision on a parked intent, signed with the local admin key (the one that
    signs policies) and bound to the intent's digest."""
    admin = load_or_create_admin_key(settings.home)
    return sign_human_approval(
        HumanApproval(
            intent_id=parked.intent_id,
            agent_id=parked.agent_id,
            intent_digest=parked.intent_digest,
            decision=decision,
            reason=reason,
            decided_at=utcnow(),
        ),
        admin,
        LOCAL_ADMIN_ID,
    )


class Client:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> "Client":
        self._producer = new_producer(self.settings)
        try:
            await self._producer.start()
        except BaseException:  # whatever stops the start (cancellation too), do not leak the producer's tasks
            await self._producer.stop()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self._producer.stop()

    async def send(self, topic: str, key: str, value: bytes) -> asyncio.Future:
        return await self._producer.send(topic, value, key=key.encode())

    async def send_as_admin(self, emits: list[Emit]) -> list[asyncio.Future]:
        """What an admin's command left behind (custody's audit records and vault events), each
        signed with the local admin key: the ledger believes no unsigned audit record, and a signer
        applies no unsigned vault event (`schemas.auth.vault_event_forgery`)."""
        key = load_or_create_admin_key(self.settings.home)
        audit_signer, vault_signer = AuditSigner("admin", LOCAL_ADMIN_ID, key), VaultEventSigner(LOCAL_ADMIN_ID, key)

        def headers(emit: Emit) -> list[tuple[str, bytes]] | None:
            return vault_signer.headers(emit.value) if emit.topic == topics.VAULT else audit_headers(emit, audit_signer)

        return [await self._producer.send(e.topic, e.value, key=e.key.encode(), headers=headers(e)) for e in emits]

    async def submit(self, intent: TransactionIntent) -> asyncio.Future:
        return await self.send(topics.INTENTS_SUBMITTED, intent.agent_id, intent.to_bytes())

    async def submit_raw(self, agent_id: str, raw: bytes) -> RawSubmission:
        """Publish ``raw`` exactly as it is, keyed by ``agent_id``, with no validation here (a
        producer that writes its intents' JSON itself), once the broker holds it. Returns how the
        worker will name its answer, for `wait_outcomes` (`raw_submission`); ValueError, before
        anything is sent, when no answer could be addressed: ``agent_id`` is no identifier and the
        record names no agent of its own."""
        submission = raw_submission(agent_id, raw, self.settings.max_record_bytes)
        await (await self.send(topics.INTENTS_SUBMITTED, agent_id, raw))
        return submission

    async def publish_policy(self, policy: AgentPolicy, wait_s: float | None = 30.0) -> str | None:
        """Publish, then (unless ``wait_s`` is None) wait until the worker applied or refused it."""
        start = await end_offsets(self.settings, (topics.AUDIT_EVENTS,)) if wait_s is not None else None
        await (await self.send(topics.POLICIES, policy.agent_id, policy.to_bytes()))
        if wait_s is None:
            return None
        return await wait_policy_applied(self.settings, policy, wait_s, start)

    async def decide(self, parked: IntentParked, decision: str, reason: str = "") -> HumanApproval:
        """Publish an admin's signed decision (``approve`` or ``deny``) on a parked intent."""
        approval = human_decision(self.settings, parked, decision, reason)
        await (await self.send(topics.APPROVALS, parked.agent_id, approval.to_bytes()))
        return approval

    async def flush(self) -> None:
        await self._producer.flush()

    async def client_share(self, share: str, timeout_s: float = 10.0) -> ClientKey:
        """The base64 client share shown when the vault was created, bound to the sealing keys of
        the signers running now. Raises ``SealingRefused`` (why, and what to do) when there are
        none or they cannot be trusted, ``ValueError`` when ``share`` is not a client share."""
        return ClientKey(decode_client_share(share), await self._sealing_keys(timeout_s), "client_share")

    async def cmek(self, key: str, timeout_s: float = 10.0) -> ClientKey:
        """A vault's customer-managed key (base64 text of its 32 bytes), bound to the sealing keys
        of the signers running now; errors as ``client_share``."""
        return ClientKey(decode_cmek(key), await self._sealing_keys(timeout_s), "cmek")

    async def _sealing_keys(self, timeout_s: float) -> list[SealingKey]:
        """The announced keys this client may seal to: attested ones whose report verifies under
        the configured attestation policy and binds the signer's pinned service key, and
        ``tee=none`` ones only with WARDEN_ALLOW_UNATTESTED_SIGNER=1 and signed by the signer's
        pinned service key (``schemas.sealing.refusal``); of each signer's, the newest that passes."""
        now, allow = utcnow(), self.settings.allow_unattested_signer
        policy = AttestationPolicy.from_settings(self.settings.attestation)
        pinned = PinnedServiceKeys(self.settings)

        def problems(key: SealingKey) -> list[str]:
            return announcement.problems(key, policy, now, pinned.key("signer", key.signer_id))

        def service_key(signer_id: str) -> str | None:
            return pinned.key("signer", signer_id)

        announced = await sealing_keys(
            self.settings,
            timeout_s,
            accept=lambda key: (
                refusal(key, allow_unattested=allow, attestation_problems=problems, service_key=service_key) is None
            ),
        )
        return usable_keys(announced, allow_unattested=allow, attestation_problems=problems, service_key=service_key)


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


async def wait_policy_applied(
    settings: Settings, policy: AgentPolicy, timeout_s: float, start: dict[TopicPartition, int] | None = None
) -> str:
    """Wait for the worker's verdict on a published policy: "policy.updated" or "policy.refused"."""
    deadline = time.monotonic() + timeout_s
    workers = PinnedAuditKeys(settings)
    async for record in follow_records(settings, (topics.AUDIT_EVENTS,), start, keys=(policy.agent_id,)):
        # Only a pinned worker's verdict counts: a topic writer's "policy.updated" must not tell an
        # admin that a policy the worker refused is in force.
        if record is not None and audit_writer(record.value, record.headers, workers) == ("worker", None):
            for event in _audit_events(record.value):
                if (
                    event.agent_id == policy.agent_id
                    and event.action in ("policy.updated", "policy.refused")
                    and event.details.get("version") == policy.version
                ):
                    return event.action
        if time.monotonic() > deadline:
            break
    raise TimeoutError(
        f"the streams worker did not apply policy v{policy.version} of {policy.agent_id} "
        f"within {timeout_s:.0f} s: is it running (`warden up`)?"
    )


def _audit_events(value: bytes) -> list[AuditEvent]:
    # Anyone who can write to the topic can write junk there; the ledger records it, a reader skips it.
    try:
        return audit_events_of(value)
    except ValueError:
        return []


Outcome = IntentRejected | SignedTransaction | SignedMessage
# Where a client reads the answer to its intent: a refusal, a signed transaction or a signed message.
OUTCOME_TOPICS = (topics.INTENTS_REJECTED, topics.TXS_SIGNED, topics.MESSAGES_SIGNED, topics.INTENTS_AWAITING_APPROVAL)
_OUTCOME_MODELS = {
    topics.INTENTS_REJECTED: IntentRejected,
    topics.TXS_SIGNED: SignedTransaction,
    topics.MESSAGES_SIGNED: SignedMessage,
    topics.INTENTS_AWAITING_APPROVAL: IntentParked,
}


def is_final(outcome: Outcome) -> bool:
    """A refusal and a signed message are final; a transaction once its status is; an intent
    awaiting an admin's approval is not."""
    if isinstance(outcome, IntentParked):
        return False
    return not isinstance(outcome, SignedTransaction) or outcome.status in FINAL_TX_STATUSES


def read_outcome(topic: str, raw: bytes) -> Outcome | None:
    """A record from an outcome topic, or None if it is not one (anyone can write there)."""
    model = _OUTCOME_MODELS.get(topic)
    if model is None:
        return None
    try:
        return model.from_bytes(raw)
    except ValidationError:
        return None


async def outcome_keys(settings: Settings) -> ServiceKeys:
    """The keys outcomes must be signed with. A client that verifies attestation (it lists the
    allowed measurements) holds attested signers to the service key their report binds."""
    pinned = PinnedServiceKeys(settings)
    if not settings.attestation.measurements:
        return pinned
    policy, now = AttestationPolicy.from_settings(settings.attestation), utcnow()
    # Each signer's newest announcement whose report verifies: a forged one dated later must not
    # leave the client unable to believe that signer's outcomes.
    announced = await sealing_keys(
        settings, timeout_s=5.0, accept=lambda key: key.tee != "none" and not announcement.problems(key, policy, now)
    )
    return announcement.AttestedServiceKeys(pinned, announced, policy, now)


@dataclass(frozen=True)
class Awaited:
    """What an outcome about one submission must be bound to: ``intent_digest`` (the digest of
    the intent; None when the client read none in what it sent) and ``wire_digest`` (the SHA-256
    of the bytes it sent)."""

    intent_id: str
    agent_id: str
    intent_digest: str | None
    wire_digest: str

    @classmethod
    def of(cls, submitted: TransactionIntent | RawSubmission) -> "Awaited":
        if isinstance(submitted, RawSubmission):
            return cls(submitted.intent_id, submitted.agent_id, submitted.intent_digest, submitted.digest)
        # `Client.submit` sends intent.to_bytes(): these very bytes.
        return cls(
            submitted.intent_id,
            submitted.agent_id,
            submitted.digest(),
            hashlib.sha256(submitted.to_bytes()).hexdigest(),
        )


def outcome_problem(outcome: Outcome, awaited: Awaited, keys: ServiceKeys) -> str | None:
    """None when ``outcome`` is the authentic answer to what was submitted, else why not
    (`schemas.auth.outcome_forgery` with the digest it must carry). An INVALID_INTENT or
    AGENT_SIGNATURE_INVALID rejection must carry the SHA-256 of the bytes this client sent
    (`schemas.outcomes.bound_to_bytes`), every other outcome the intent's digest: so neither a
    record a topic writer made of an intent's signing bytes, nor one the worker read
    differently, nor a copy of this intent under a bad signature answers for it."""
    expected = awaited.wire_digest if bound_to_bytes(outcome) else awaited.intent_digest
    if expected is None:
        return (
            "only an INVALID_INTENT or AGENT_SIGNATURE_INVALID rejection can be about this submission: this client "
            "read no intent in the bytes it sent"
        )
    return outcome_forgery(outcome, keys, expected)


async def wait_outcomes(
    settings: Settings,
    intents: Iterable[TransactionIntent | RawSubmission],
    timeout_s: float,
    start: dict[TopicPartition, int] | None = None,
    final: bool = True,
    forged: list[tuple[str, str]] | None = None,
    service_keys: ServiceKeys | None = None,
) -> dict[str, Outcome]:
    """Wait until each intent (a `TransactionIntent` sent by `Client.submit`, or the
    `RawSubmission` `Client.submit_raw` returned) has a rejection or a signed transaction (with
    ``final``: a final status, `schemas.outcomes.FINAL_TX_STATUSES`: mined, failed, replaced or
    dropped for broadcast ones). Keyed by intent id.

    Only authentic outcomes count: signed by a pinned key of the service allowed to say it (a
    signer for signatures and signing-stage refusals, a worker for the rest) and bound to the
    very intent submitted: by its digest, or, for the INVALID_INTENT rejection of a record the
    worker could not read, by the SHA-256 of the bytes sent (`outcome_problem`). Anything else
    about these intents is skipped, and listed in ``forged`` as (intent id, why) when a list is
    given: then, once the outcomes are complete, the rest of what the broker already holds is
    read too, so a forgery written before the real outcome is listed even when its partition
    comes later in the fetch.

    Only the partitions the intents' agents' records land in are read: the services key every
    outcome by its agent, so the rest of the topics hold only other agents' outcomes (and
    whatever a topic writer put there, which is listed by `warden tail`, not here). A client
    then reads and checks its own agents' share of the traffic, not every agent's."""
    keys = service_keys or await outcome_keys(settings)
    awaited = {a.intent_id: a for a in map(Awaited.of, intents)}
    outcomes: dict[str, Outcome] = {}
    deadline = time.monotonic() + timeout_s
    draining = False
    async for topic, value in follow(
        settings,
        OUTCOME_TOPICS,
        start,
        fetch_max_wait_ms=settings.fetch_wait_ms,
        keys={a.agent_id for a in awaited.values()},
    ):
        if draining and not topic:  # a poll that found nothing: all that was there has been read
            break
        outcome = read_outcome(topic, value) if topic else None
        if outcome is not None and outcome.intent_id in awaited:
            why = outcome_problem(outcome, awaited[outcome.intent_id], keys)
            if why is not None:
                if forged is not None:
                    forged.append((outcome.intent_id, why))
            else:
                previous = outcomes.get(outcome.intent_id)
                if previous is None or not is_final(previous):  # a final answer is never overwritten
                    outcomes[outcome.intent_id] = outcome
        done = all(i in outcomes and (not final or is_final(outcomes[i])) for i in awaited)
        if time.monotonic() > deadline or (done and forged is None):
            break
        draining = done
    return outcomes
