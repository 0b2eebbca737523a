"""Reading the answers to what a client submitted: the outcome topics, each outcome read from its
record, and `wait_outcomes`, which believes only authentic outcomes (signed by a pinned key of the
service allowed to say them, and bound to the very intent or bytes submitted).

`RawSubmission` names a record published as it is the way the worker will name its answer. The
names are also importable from `sdk.client`, the SDK's one import surface.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import TopicPartition
from pydantic import ValidationError

from runtime.attestation import announcement
from runtime.attestation.policy import AttestationPolicy
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import follow
from runtime.registry import REGISTRY
from runtime.trust import PinnedServiceKeys
from schemas import topics
from schemas.auth import (
    ServiceKeys,
    outcome_forgery,
)
from schemas.errors import Problem
from schemas.intake import Unreadable, read_intent, unreadable_answer
from schemas.intent import TransactionIntent
from schemas.outcomes import (
    FINAL_TX_STATUSES,
    IntentParked,
    IntentRejected,
    SignedBitcoinTransaction,
    SignedMessage,
    SignedSolanaMessage,
    SignedSolanaTransaction,
    SignedTransaction,
    bound_to_bytes,
)
from sdk.signers import sealing_keys


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
    intent = read_intent(raw, max_bytes, REGISTRY)
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


Outcome = (
    IntentRejected
    | SignedTransaction
    | SignedMessage
    | SignedSolanaTransaction
    | SignedSolanaMessage
    | SignedBitcoinTransaction
    | IntentParked
)
# Where a client reads the answer to its intent: a refusal, a signed transaction, a signed message,
# a signed Solana transaction, a signed Solana off-chain message or a signed Bitcoin transaction;
# or that it waits for an admin.
OUTCOME_TOPICS = (
    topics.INTENTS_REJECTED,
    topics.TXS_SIGNED,
    topics.MESSAGES_SIGNED,
    topics.SOLANA_SIGNED,
    topics.SOLANA_MESSAGES_SIGNED,
    topics.BITCOIN_SIGNED,
    topics.INTENTS_AWAITING_APPROVAL,
)
_OUTCOME_MODELS: dict[str, type[Outcome]] = {
    topics.INTENTS_REJECTED: IntentRejected,
    topics.TXS_SIGNED: SignedTransaction,
    topics.MESSAGES_SIGNED: SignedMessage,
    topics.SOLANA_SIGNED: SignedSolanaTransaction,
    topics.SOLANA_MESSAGES_SIGNED: SignedSolanaMessage,
    topics.BITCOIN_SIGNED: SignedBitcoinTransaction,
    topics.INTENTS_AWAITING_APPROVAL: IntentParked,
}


def is_final(outcome: Outcome) -> bool:
    """A refusal and a signed message are final; a transaction once its status is; an intent
    awaiting an admin's approval is not."""
    if isinstance(outcome, IntentParked):
        return False
    if isinstance(outcome, SignedSolanaTransaction | SignedBitcoinTransaction):
        return outcome.final
    return not isinstance(outcome, SignedTransaction) or outcome.status in FINAL_TX_STATUSES


def at_final_block(outcome: Outcome) -> bool:
    """`is_final`, and for a transaction its record is final: what the chain decided is at a block
    no reorg can replace (until then a reorg can move it, or take it out and send it again)."""
    return is_final(outcome) and (not isinstance(outcome, SignedTransaction) or outcome.final)


def supersedes(outcome: Outcome, previous: Outcome | None) -> bool:
    """Whether ``outcome``, read after ``previous`` for the same intent, is the newer word: a final
    answer is kept, unless a transaction's record says a block left the chain since (`reorgs`: a
    node that lost blocks it had finalized)."""
    if previous is None or not at_final_block(previous):
        return True
    return (
        isinstance(outcome, SignedTransaction)
        and isinstance(previous, SignedTransaction)
        and outcome.reorgs > previous.reorgs
    )


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


def outcome_problem(outcome: Outcome, awaited: Awaited, keys: ServiceKeys) -> Problem | None:
    """None when ``outcome`` is the authentic answer to what was submitted, else why not
    (`schemas.auth.outcome_forgery` with the digest it must carry). An INVALID_INTENT or
    AGENT_SIGNATURE_INVALID rejection must carry the SHA-256 of the bytes this client sent
    (`schemas.outcomes.bound_to_bytes`), every other outcome the intent's digest: so neither a
    record a topic writer made of an intent's signing bytes, nor one the worker read
    differently, nor a copy of this intent under a bad signature answers for it."""
    expected = awaited.wire_digest if bound_to_bytes(outcome) else awaited.intent_digest
    if expected is None:
        return Problem(
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
    until_final_block: bool = False,
    service_keys: ServiceKeys | None = None,
) -> dict[str, Outcome]:
    """Wait until each intent (a `TransactionIntent` sent by `Client.submit`, or the
    `RawSubmission` `Client.submit_raw` returned) has a rejection or a signed transaction (with
    ``final``: a final status, `schemas.outcomes.FINAL_TX_STATUSES`: mined, failed, replaced or
    dropped for broadcast ones; with ``until_final_block``: that status at a block the chain has
    finalized, `SignedTransaction.final`, which a reorg can no longer change). Keyed by intent id.

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
    wanted = at_final_block if until_final_block else is_final if final else None
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
                    forged.append((outcome.intent_id, str(why)))
            else:
                if supersedes(outcome, outcomes.get(outcome.intent_id)):
                    outcomes[outcome.intent_id] = outcome
        done = all(i in outcomes and (wanted is None or wanted(outcomes[i])) for i in awaited)
        if time.monotonic() > deadline or (done and forged is None):
            break
        draining = done
    return outcomes
