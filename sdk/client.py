"""The Python SDK for producers and operators: sign and publish intents and policies, and
watch outcomes on the topics.

An agent runtime holds only its Ed25519 *intent* key (which proves the intent is
the agent's); it never holds a chain key. Local agent keys live under
``$WARDEN_HOME/agents/<agent_id>/`` for the embedded stack.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evm.blobs import make_sidecar
from runtime.attestation import announcement
from runtime.attestation.policy import AttestationPolicy
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import audit_headers, end_offsets, follow_records
from runtime.kafka import producer as new_producer
from runtime.registry import REGISTRY
from runtime.trust import PinnedAuditKeys, PinnedServiceKeys
from schemas import topics
from schemas.actions import AuditAction
from schemas.admins import VaultChange
from schemas.amounts import AmountOutOfRange
from schemas.audit import readable_audit_events
from schemas.auth import (
    AuditSigner,
    audit_writer,
    load_or_create_ed25519,
    sign_human_approval,
    sign_intent,
    sign_policy,
    vault_change_headers,
)
from schemas.emit import Emit
from schemas.intent import SealedSecret, TransactionIntent
from schemas.outcomes import (
    HumanApproval,
    IntentParked,
    SignedBitcoinTransaction,
    SignedSolanaTransaction,
    SignedTransaction,
)
from schemas.policy import AgentPolicy
from schemas.sealing import decode_client_share, decode_cmek, refusal, seal_secret, usable_keys
from schemas.sealing_key import SealingKey
from schemas.simulation import SimulationRequest, SimulationResult
from schemas.typed_data import TypedData
from sdk.admin import load_or_create_admin_key
from sdk.outcome_hub import OutcomeHub
from sdk.outcomes import (
    OUTCOME_TOPICS,
    Awaited,
    Outcome,
    RawSubmission,
    is_final,
    outcome_keys,
    outcome_problem,
    raw_submission,
    read_outcome,
    wait_outcomes,
)
from sdk.records import AgentRecords, agent_transactions, pending_approvals, policy_in_force, status_history
from sdk.signers import sealing_keys
from sdk.simulation import SimulationUnanswered, new_simulation_request, simulation_problem, wait_simulation
from svm import messages as solana_messages

if TYPE_CHECKING:
    from sdk import dry_run

# The SDK's one import surface: what builds, signs and submits (here), what reads the outcomes
# (`sdk.outcomes`), an agent's policy and transactions (`sdk.records`), the signers'
# announcements (`sdk.signers`) and simulation requests (`sdk.simulation`).
__all__ = [
    "OUTCOME_TOPICS",
    "AgentRecords",
    "AmountOutOfRange",
    "Awaited",
    "Client",
    "ClientKey",
    "Outcome",
    "RawSubmission",
    "SimulationUnanswered",
    "admin_audit_signer",
    "agent_transactions",
    "blob_fields",
    "human_decision",
    "intent_key_file",
    "is_final",
    "load_or_create_agent_key",
    "new_intent",
    "new_message_intent",
    "new_simulation_request",
    "new_solana_intent",
    "new_solana_message_intent",
    "new_typed_data_intent",
    "outcome_keys",
    "outcome_problem",
    "pending_approvals",
    "policy_in_force",
    "raw_submission",
    "read_outcome",
    "sealing_keys",
    "signed_policy",
    "simulation_problem",
    "status_history",
    "submit_and_wait",
    "wait_outcomes",
    "wait_policy_applied",
    "wait_simulation",
]


def intent_key_file(home: Path, agent_id: str) -> Path:
    return home / "agents" / agent_id / "intent_ed25519.pem"


def load_or_create_agent_key(home: Path, agent_id: str) -> Ed25519PrivateKey:
    return load_or_create_ed25519(intent_key_file(home, agent_id))


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

    def __exit__(self, *exc: Any) -> None:
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
    **fields: Any,
) -> TransactionIntent:
    """A signed intent (a transaction unless ``intent_type`` says otherwise; see
    `new_message_intent` and `new_typed_data_intent`). ``client_share`` (client-custody vaults)
    and ``cmek`` (vaults with a customer-managed key) are sealed into the intent before the agent
    signs it, so the signature covers them too."""
    # A new id for every intent, idempotency key or not: the key is what makes a retry safe (the
    # worker and the signer answer a reused key with the first intent's result). An id derived
    # from the key made a rebuilt retry (a new created_at) a different intent under a decided id,
    # refused INTENT_ID_REUSED while the original was signed.
    intent_id = intent_id or "i-" + uuid.uuid4().hex
    if client_share is not None:
        fields["sealed_client_share"] = client_share.seal(agent_id, intent_id)
    if cmek is not None:
        fields["sealed_cmek"] = cmek.seal(agent_id, intent_id)
    if any(key.tee == "none" for sealed in (client_share, cmek) if sealed is not None for key in sealed.keys):
        # The development opt-in let a secret go to a signer nothing attests: the intent says so.
        fields["unattested_signer_accepted"] = True
    # Checked against the networks in force as this client knows them (learned from warden.chains
    # when it meets a name it does not know): an unknown chain is refused here, before anything is sent.
    intent = TransactionIntent.model_validate(
        dict(
            intent_id=intent_id,
            agent_id=agent_id,
            idempotency_key=idempotency_key,
            chain=chain,
            to=to,
            value=value,
            created_at=now or utcnow(),
            **fields,
        ),
        context=REGISTRY.context,
    )
    return sign_intent(intent, agent_key)


def new_message_intent(
    agent_key: Ed25519PrivateKey, *, agent_id: str, chain: str, message: bytes | str, **fields: Any
) -> TransactionIntent:
    """An EIP-191 personal_sign intent; a ``str`` message is signed as its UTF-8 bytes."""
    raw = message.encode() if isinstance(message, str) else message
    return new_intent(
        agent_key, agent_id=agent_id, chain=chain, intent_type="personal_sign", message="0x" + raw.hex(), **fields
    )


def new_solana_intent(
    agent_key: Ed25519PrivateKey, *, agent_id: str, chain: str, transaction: bytes, **fields: Any
) -> TransactionIntent:
    """A Solana transaction intent: ``transaction`` is its wire bytes with the agent's signature
    slot empty (solders' ``bytes(VersionedTransaction)``, web3.js' ``serialize({requireAllSignatures:
    false})``). The signer puts the agent's signature in that slot and changes nothing else."""
    return new_intent(
        agent_key,
        agent_id=agent_id,
        chain=chain,
        intent_type="solana_transaction",
        solana_transaction=base64.b64encode(transaction).decode(),
        **fields,
    )


def new_solana_message_intent(
    agent_key: Ed25519PrivateKey,
    *,
    agent_id: str,
    chain: str,
    text: str | None = None,
    signatories: Sequence[str] = (),
    application_domain: str | None = None,
    version: int = 0,
    message: bytes | None = None,
    **fields: Any,
) -> TransactionIntent:
    """A Solana off-chain message intent: ``message``, the message's bytes as built elsewhere
    (`@solana/offchain-messages`), or ``text`` written here as a version ``version`` message for
    ``application_domain`` naming ``signatories`` (the agent's Solana address among them)."""
    if message is not None and text is None:
        raw = message
    elif text is not None and message is None:
        # A tuple: encode() takes a list or a tuple of the signatories, and only reads them.
        raw = solana_messages.encode(text, tuple(signatories), version, application_domain)
    else:
        raise ValueError("give the message's bytes (message) or its text (text), not both")
    return new_intent(
        agent_key,
        agent_id=agent_id,
        chain=chain,
        intent_type="solana_message",
        solana_message=base64.b64encode(raw).decode(),
        **fields,
    )


def new_typed_data_intent(
    agent_key: Ed25519PrivateKey, *, agent_id: str, chain: str, typed_data: dict[str, Any], **fields: Any
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


def blob_fields(blobs: Sequence[bytes]) -> dict[str, Any]:
    """The fields of a blob transaction (type 3) that carries its blobs: the blobs and their
    KZG versioned hashes, computed here the way the signer checks them."""
    sidecar = make_sidecar(tuple(blobs))
    return {
        "tx_type": 3,
        "blobs": tuple("0x" + b.hex() for b in blobs),
        "blob_versioned_hashes": tuple("0x" + h.hex() for h in sidecar.versioned_hashes),
    }


def signed_policy(settings: Settings, **fields: Any) -> AgentPolicy:
    admin = load_or_create_admin_key(settings.home, settings.admin_id)
    policy = AgentPolicy.model_validate(dict(issued_at=utcnow(), **fields), context=REGISTRY.context)
    return sign_policy(policy, admin, settings.admin_id)


def admin_audit_signer(settings: Settings) -> AuditSigner:
    """This admin's key (``WARDEN_ADMIN_ID``, the one that signs policies), as the signer of audit records."""
    return AuditSigner("admin", settings.admin_id, load_or_create_admin_key(settings.home, settings.admin_id))


def human_decision(
    settings: Settings,
    parked: IntentParked | SignedTransaction | SignedBitcoinTransaction,
    decision: str,
    reason: str = "",
) -> HumanApproval:
    """An admin's decision on a parked intent (or, ``deny``, on one signed sign-only: its
    cancellation), signed with the local admin key (the one that signs policies) and bound to the
    intent's digest."""
    admin = load_or_create_admin_key(settings.home, settings.admin_id)
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
        settings.admin_id,
    )


class Client:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._hub: OutcomeHub | None = None  # made by the first `submit_and_wait`
        self._hub_started = asyncio.Lock()

    async def __aenter__(self) -> "Client":
        producer = self._producer = new_producer(self.settings)
        try:
            await producer.start()
        except BaseException:  # whatever stops the start (cancellation too), do not leak the producer's tasks
            await producer.stop()
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._hub is not None:
            await self._hub.stop()
        await self._started().stop()

    async def submit_and_wait(self, intent: TransactionIntent, timeout_s: float = 60.0) -> tuple[Outcome | None, int]:
        """Submit ``intent`` and wait, up to ``timeout_s``, for its first verified outcome (a
        transaction to broadcast: once broadcast), else the newest verified one or None; with how
        many records about it failed verification. One reader of the outcome topics serves every
        call on this client (`sdk.outcome_hub`): an agent that waits on each of its intents pays
        for a consumer once, not at every intent."""
        async with self._hub_started:
            if self._hub is None:
                self._started()
                hub = OutcomeHub(self.settings, self)
                await hub.start()
                self._hub = hub
        return await self._hub.submit_and_wait(self.settings, intent, timeout_s)

    def _started(self) -> AIOKafkaProducer:
        """The producer, which exists once the client is entered."""
        if self._producer is None:
            raise RuntimeError("the client is not started: use it as `async with Client(settings) as client:`")
        return self._producer

    async def send(self, topic: str, key: str, value: bytes) -> asyncio.Future[Any]:
        sent: asyncio.Future[Any] = await self._started().send(topic, value, key=key.encode())
        return sent

    async def send_as_admin(self, emits: list[Emit], change: VaultChange | None = None) -> list[asyncio.Future[Any]]:
        """What an admin's command left behind: custody's audit records, each signed with the
        local admin key (the ledger believes no unsigned audit record), and its vault events,
        each carrying ``change``, the `VaultChange` of them the admins signed (a signer applies
        only what the quorum for ``keys`` signed: `schemas.auth.vault_event_problem`)."""
        admin_id = self.settings.admin_id
        audit_signer = AuditSigner("admin", admin_id, load_or_create_admin_key(self.settings.home, admin_id))
        vault_headers = vault_change_headers(change) if change is not None else None
        if vault_headers is None and any(e.topic == topics.VAULT for e in emits):
            raise ValueError("vault events go out only with the VaultChange of them the admins signed")

        def headers(emit: Emit) -> list[tuple[str, bytes]] | None:
            return vault_headers if emit.topic == topics.VAULT else audit_headers(emit, audit_signer)

        producer = self._started()
        return [await producer.send(e.topic, e.value, key=e.key.encode(), headers=headers(e)) for e in emits]

    async def submit(self, intent: TransactionIntent) -> asyncio.Future[Any]:
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

    async def simulate(
        self,
        agent_key: Ed25519PrivateKey,
        *,
        agent_id: str,
        chain: str,
        to: str,
        value: str,
        timeout_s: float = 60.0,
        **fields: Any,
    ) -> SimulationResult:
        """Simulate one transaction (``data``, ``gas_limit`` and the other intent fields as keywords)
        and judge it against the agent's policy in force: `simulate_bundle` of one step."""
        step = {"to": to, "value": value, **fields}
        return await self.simulate_bundle(agent_key, agent_id=agent_id, chain=chain, steps=[step], timeout_s=timeout_s)

    async def simulate_bundle(
        self,
        agent_key: Ed25519PrivateKey,
        *,
        agent_id: str,
        chain: str,
        steps: Sequence[dict[str, Any]],
        timeout_s: float = 60.0,
    ) -> SimulationResult:
        """Simulate ``steps`` (each a transaction intent's fields) in order in one block, each
        judged by the worker against the agent's policy and rolling windows with the earlier
        steps' spend counted; nothing is reserved or signed. Returns the worker's verified
        answer (`sdk.simulation.wait_simulation`); raises `SimulationUnanswered` past
        ``timeout_s``, ValidationError (naming the step and field) for a step that is wrong."""
        request = new_simulation_request(agent_key, agent_id=agent_id, chain=chain, steps=steps)
        return await self.simulate_request(request, timeout_s)

    async def simulate_request(
        self, request: SimulationRequest, timeout_s: float = 60.0, forged: list[str] | None = None
    ) -> SimulationResult:
        """Publish a signed simulation request and wait for its verified answer."""
        keys = await outcome_keys(self.settings)
        start = await end_offsets(self.settings, (topics.SIMULATIONS_RESULTS,))
        await (await self.send(topics.SIMULATIONS_REQUESTED, request.agent_id, request.to_bytes()))
        return await wait_simulation(self.settings, request, keys, timeout_s, start, forged)

    async def check_policy(self, intent: TransactionIntent) -> dry_run.PolicyCheck:
        """The dry run (`sdk.dry_run.check_policy`): what the pipeline would decide about
        ``intent`` now, nothing published."""
        from sdk import dry_run  # the judge and the rules: only a dry run needs them, not every client

        return await dry_run.check_policy(self.settings, intent)

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
        await self._started().flush()

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


async def submit_and_wait(
    settings: Settings, intent: TransactionIntent, timeout_s: float, final: bool = False
) -> tuple[Outcome | None, int]:
    """Submit ``intent`` and wait, up to ``timeout_s``, for its verified outcome: the first one,
    or with ``final`` a broadcast transaction's final status. An intent parked for an admin is
    answered at once. Returns the outcome (None when none came in time) and how many outcomes
    about it failed verification."""
    deadline = time.monotonic() + timeout_s
    start = await end_offsets(settings, OUTCOME_TOPICS)
    async with Client(settings) as client:
        await (await client.submit(intent))
    forged: list[tuple[str, str]] = []
    outcomes = await wait_outcomes(settings, [intent], timeout_s, start, final=False, forged=forged)
    outcome = outcomes.get(intent.intent_id)
    followed = SignedTransaction | SignedSolanaTransaction | SignedBitcoinTransaction
    if final and isinstance(outcome, followed) and not is_final(outcome):
        remaining = deadline - time.monotonic()
        if remaining > 0:
            later = await wait_outcomes(settings, [intent], remaining, start, forged=forged)
            outcome = later.get(intent.intent_id, outcome)
    return outcome, len(set(forged))


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
            for event in readable_audit_events(record.value):
                if (
                    event.agent_id == policy.agent_id
                    and event.action in (AuditAction.POLICY_UPDATED, AuditAction.POLICY_REFUSED)
                    and event.details.get("version") == policy.version
                ):
                    return event.action
        if time.monotonic() > deadline:
            break
    raise TimeoutError(
        f"the streams worker did not apply policy v{policy.version} of {policy.agent_id} "
        f"within {timeout_s:.0f} s: is it running (`warden up`)?"
    )
