"""Intake and admission: what the streams worker takes in and whether it believes it.

Policies (only an admin-signed, newer one replaces the one in force); submitted intents (read,
on their agent's partition, not yet decided, admitted by the judge under the policy in force,
their idempotency key free); and the records only a streams worker writes (stage envelopes,
abandoned intents), believed only when a pinned worker signed them. No Kafka here: bytes in,
`Emit`s out.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, MutableMapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from btc.psbt import read as read_psbt
from rules import judge
from runtime.admins import Admins
from runtime.registry import ChainRegistry
from runtime.trust import KeysNow
from schemas import topics
from schemas.actions import AuditAction
from schemas.auth import (
    ServiceKeys,
    outcome_forgery,
)
from schemas.codes import Code
from schemas.emit import Emit, IntentRef, Source, intent_audit
from schemas.emit import audit as _audit
from schemas.errors import explain
from schemas.intake import Unreadable, read_intent, unreadable_answer
from schemas.intent import TransactionIntent, idempotency_key_sha256
from schemas.outcomes import IntentOverdue, IntentRejected, StageEnvelope, StageVerdict
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from streams.decide import SERVICE, Decider
from streams.replays import Replays
from svm.messages import read as read_solana_message
from svm.transactions import read as read_solana

# The records only a streams worker writes, each carrying the intent it is about (`Admission._from_a_worker`).
WorkerRecordT = TypeVar("WorkerRecordT", StageEnvelope, IntentOverdue)


class Admission:
    """``policies``: agent_id → the newest admin-signed policy (JSON text). ``home_partition``:
    the partition an agent's records land in, when they come from a partitioned topic (None: not
    checked, as when one engine fed by hand holds every agent)."""

    def __init__(
        self,
        decider: Decider,
        replays: Replays,
        admins: Admins,
        service_keys: ServiceKeys,
        policies: MutableMapping[str, Any],
        max_record_bytes: int,
        max_age_us: int,
        home_partition: Callable[[str], int] | None,
        chains: ChainRegistry,
    ):
        self.decider = decider
        self.replays = replays
        self.admins = admins
        self.service_keys = service_keys
        self.policies = policies
        self.max_record_bytes = max_record_bytes
        self.max_age_us = max_age_us
        self.home_partition = home_partition
        self.chains = chains

    # -- policies -------------------------------------------------------------------------------

    def on_policy(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        try:
            policy = AgentPolicy.model_validate_json(raw or b"", context=self.chains.context)
        except ValidationError as exc:
            return self.decider.dead_letter(
                raw, source, now, f"invalid AgentPolicy: {'; '.join(explain(exc))}", explain(exc)
            )
        agent = policy.agent_id
        signers, problem = self.admins.quorum(policy, "policy")
        if problem is not None:
            why = "policy is unsigned" if not policy.signature else str(problem)
            return [
                _audit(
                    SERVICE,
                    AuditAction.POLICY_REFUSED,
                    f"policy:{agent}",
                    now,
                    agent,
                    str(policy.version),
                    policy.signature[:16],
                    agent_id=agent,
                    version=policy.version,
                    reason=why + "; ignored",
                    **({} if problem.code is None else {"code": problem.code}),
                )
            ]
        raw_current = self.policies.get(agent)
        current = policy_of(raw_current) if raw_current else None
        if current is not None and current.version >= policy.version:
            if current.signature == policy.signature:
                return []  # a redelivery of the policy in force
            return [
                _audit(
                    SERVICE,
                    AuditAction.POLICY_REFUSED,
                    f"policy:{agent}",
                    now,
                    agent,
                    str(policy.version),
                    policy.signature[:16],
                    agent_id=agent,
                    version=policy.version,
                    reason=f"version {policy.version} is not newer than the policy in force; ignored",
                )
            ]
        self.policies[agent] = policy.to_bytes().decode()
        return [
            _audit(
                f"admin:{policy.admin_key_id}",
                AuditAction.POLICY_UPDATED,
                f"policy:{agent}",
                now,
                agent,
                str(policy.version),
                agent_id=agent,
                version=policy.version,
                approved_by=signers,
                policy=policy.model_dump(mode="json", exclude={"signature", "cosignatures"}),
            )
        ]

    # -- intents --------------------------------------------------------------------------------

    def intake(
        self, raw: bytes | None, source: Source, now: datetime
    ) -> tuple[list[Emit], tuple[TransactionIntent, AgentPolicy] | None]:
        """What intake emitted, and the intent with its policy when the stages are to judge it;
        None when intake answered it already (unreadable, off its partition, decided before,
        refused admission, or an idempotent replay)."""
        intent = read_intent(raw, self.max_record_bytes, self.chains)
        if isinstance(intent, Unreadable):
            return self._unreadable(intent, raw, source, now), None
        off = self.off_partition(intent, raw, source, now)
        if off is not None:
            return off, None
        if intent.intent_id in self.decider.decisions:
            # Redelivered after a crash or re-sent by the producer: the same answer again, never a second one.
            return self.replays.replay(intent, now), None
        out = [
            intent_audit(
                f"agent:{intent.agent_id}",
                AuditAction.INTENT_SUBMITTED,
                IntentRef(intent.agent_id, intent.intent_id, intent.digest()),
                now,
                # The bytes too: a copy under a bad signature has the intent's digest, and its
                # record must not take the real submission's id (the ledger keeps the first of an id).
                bytes_digest(raw),
                chain=intent.chain,
                idempotency_key_sha256=idempotency_key_sha256(intent.idempotency_key),
                **_what(intent),
                # Whole, so `warden policy what-if` can judge it again under another policy.
                intent=recorded_intent(intent),
                # The development opt-in that sealed a secret to an unattested signer, on the ledger.
                **({"unattested_signer_accepted": True} if intent.unattested_signer_accepted else {}),
            )
        ]
        raw_policy = self.policies.get(intent.agent_id)
        policy = policy_of(raw_policy) if raw_policy else None
        if policy is None:
            return out + self._refused_at_intake(
                intent,
                Code.POLICY_MISSING,
                f"no policy for agent {intent.agent_id!r}; an admin creates one with `warden agents create`",
                raw,
                now,
            ), None
        admitted = judge.admit(intent, policy, now, self.max_age_us)
        if not admitted.passed:
            return out + self._refused_at_intake(intent, admitted.code, admitted.reason, raw, now), None
        replay = self.replays.idempotent(intent, policy, now)
        if replay is not None:
            return out + replay, None
        return out, (intent, policy)

    def _refused_at_intake(
        self, intent: TransactionIntent, code: Code, reason: str, raw: bytes | None, now: datetime
    ) -> list[Emit]:
        """Intake's verdict and the rejection of an intent it refused."""
        verdict = StageVerdict.refusing(intent_id=intent.intent_id, stage=Stage.INTAKE, code=code, reason=reason)
        # A forged record must not decide the fate of the real intent with the same id: the
        # intent's digest leaves its signature out, so a copy of a real intent's fields under a
        # bad signature has the real one's digest. Its rejection is bound to the bytes it came
        # in (which the real intent's client does not accept) and not remembered.
        forged = code == Code.AGENT_SIGNATURE_INVALID
        bound_to = bytes_digest(raw) if forged else None
        return [self.decider.verdict_audit(verdict, intent, now, bound_to)] + self.decider.reject(
            intent, verdict, [verdict], now, remember=not forged, bound_to=bound_to
        )

    # -- records only a streams worker writes ---------------------------------------------------

    def stage_envelope(
        self, stage: str, raw: bytes | None, source: Source, now: datetime
    ) -> StageEnvelope | list[Emit]:
        """The envelope on ``stage``'s topic, or the dead letter of one that must decide nothing.

        A stage believes the policy and the verdicts the envelope carries, so only one a pinned
        worker signed is read: anyone who can write to the topic could otherwise choose them, and
        have this worker reject, under its own signature and bound to the real intent's digest, an
        intent it would have signed (seen on the running stack). It must be addressed to this stage
        (one replayed onto a later stage's topic would skip the stages between) and be on its
        agent's partition, as an intent must (``off_partition``)."""
        envelope = self._from_a_worker(StageEnvelope, raw, source, now, "the warden.stage.* topics")
        if isinstance(envelope, list):
            return envelope
        if envelope.stage != stage:
            return self.decider.dead_letter(
                raw,
                source,
                now,
                (
                    f"stage envelope for intent {envelope.intent_id} is addressed to stage {envelope.stage!r}, not to "
                    f"{stage!r} ({source.topic}); not decided"
                ),
            )
        return self.off_partition(envelope.intent, raw, source, now) or envelope

    def on_overdue(self, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """A worker's redelivery watch saw no outcome of an intent after its last attempt
        (`IntentOverdue`). Decided here already (a rejection the watch has not read yet, behind
        a broker that stopped, included): the decision stands and nothing is said. Else it is
        given up (`Decider.abandon`): remembered as ``abandoned``, so a judgement of it still
        waiting for the node publishes nothing (`Replays.decided_meanwhile`) and a late copy of
        the intent is not judged again (`Replays.replay`), and handed to the signer.

        The answer is the signer's, not this worker's: it reads the abandonment (on its
        partitions of warden.intents.abandoned, co-partitioned with warden.intents.approved) and
        has the last word, NO_OUTCOME unless it decided the intent already (`Signer.abandoned`).
        A refusal said here could not hold: the signer judges every approval itself, so a topic
        writer's copy of the given-up intent as an approval would be signed after the client was
        told "will not be signed". The signer alone can make the two agree; this worker alone
        knows what it rejected, so only it gives an intent up.

        Believed only when a pinned worker signed it (`IntentOverdue` says why): anything else
        is dead-lettered and decides nothing. An intent whose agent signature does not verify
        under the policy in force is refused as at intake (AGENT_SIGNATURE_INVALID, bound to its
        bytes, not remembered): a forged intent must not take the id of a real one."""
        overdue = self._from_a_worker(IntentOverdue, raw, source, now, "warden.intents.overdue (its redelivery watch)")
        if isinstance(overdue, list):
            return overdue
        intent = overdue.intent
        off = self.off_partition(intent, raw, source, now)
        if off is not None:
            return off
        if intent.intent_id in self.decider.decisions:
            return []
        raw_policy = self.policies.get(intent.agent_id)
        verdict = None if raw_policy is None else judge.signature_refusal(intent, policy_of(raw_policy))
        if verdict is not None:
            # A copy under a bad signature gets the answer intake gives it, in its words, bound to its bytes.
            bound_to = bytes_digest(intent.to_bytes())
            return [self.decider.verdict_audit(verdict, intent, now, bound_to)] + self.decider.reject(
                intent, verdict, [verdict], now, remember=False, bound_to=bound_to
            )
        return self.decider.abandon(intent, overdue.attempts, now)

    def _from_a_worker(
        self, model: type[WorkerRecordT], raw: bytes | None, source: Source, now: datetime, written_to: str
    ) -> WorkerRecordT | list[Emit]:
        """A record only a streams worker writes (a stage envelope, an abandoned intent), or the
        dead letter of one that no pinned worker signed about the intent it carries: what such a
        record says is acted on, so one a topic writer made must decide nothing."""
        try:
            record = model.model_validate_json(raw or b"")
        except ValidationError as exc:
            return self.decider.dead_letter(
                raw,
                source,
                now,
                (
                    f"invalid {model.__name__}: {'; '.join(explain(exc))}; not decided: only a streams worker "
                    f"writes {written_to}"
                ),
                explain(exc),
            )
        forged = outcome_forgery(record, KeysNow(self.service_keys), record.intent.digest())
        if forged is not None:
            return self.decider.dead_letter(
                raw,
                source,
                now,
                (
                    f"{model.__name__} for intent {record.intent_id} not signed by a pinned worker key ({forged}); not "
                    f"decided: only a streams worker writes {written_to}"
                ),
            )
        return record

    # -- what is decided nowhere ------------------------------------------------------------------

    def _unreadable(self, bad: Unreadable, raw: bytes | None, source: Source, now: datetime) -> list[Emit]:
        """The dead letter and audit event of a record that is no readable intent, and the
        producer's answer: an INVALID_INTENT rejection, signed by this worker, whose reason says
        which field was wrong, what is allowed and what to do next.

        Its ``intent_digest`` is the SHA-256 of the record's bytes as written, which its producer
        recomputes (there is no intent whose digest could be taken). It is published keyed by the
        agent the body names, else by the record's key when that is an identifier, under the
        body's intent id, else "unreadable-" and the digest's first 32 hex digits
        (`schemas.intake.unreadable_answer`). A record that names no agent either way gets no
        rejection: only its dead letter and audit event remain.

        Never remembered in ``decisions``: anyone can write such a record under a real intent's
        id, and bound to these bytes the rejection answers only a client that sent exactly them,
        never the real intent, which is decided as if this record never came."""
        out = self.decider.dead_letter(raw, source, now, bad.reason, bad.errors)
        agent_id, intent_id, digest = unreadable_answer(bad, raw, source.key)
        if agent_id is not None:
            rejected = self.decider.signed(
                IntentRejected(
                    intent_id=intent_id,
                    agent_id=agent_id,
                    stage=Stage.INTAKE,
                    code=Code.INVALID_INTENT,
                    reason=bad.rejection_reason,
                    decided_at=now,
                    intent_digest=digest,
                )
            )
            out.append(Emit(topics.INTENTS_REJECTED, agent_id, rejected.to_bytes()))
        return out

    def off_partition(
        self, intent: TransactionIntent, raw: bytes | None, source: Source, now: datetime
    ) -> list[Emit] | None:
        """A dead letter for an intent that is not on its agent's partition, else None.

        An agent's policy, decisions and window live in the tables of the partition its records
        land in (every record is keyed by agent_id). With two workers, another partition may be
        another worker's, which holds none of them: a copy of a real intent re-keyed there by
        anyone who can write to the topic was decided again (POLICY_MISSING), and that rejection,
        signed and bound to the real intent's digest, could answer for an intent that was signed.
        So such a record is decided nowhere but its own partition, and gets no outcome bound to
        its digest: a dead letter, as the signer does with an approval off its partition."""
        return self.off_home(intent.agent_id, f"intent {intent.intent_id}", raw, source, now)

    def off_home(self, agent_id: str, what: str, raw: bytes | None, source: Source, now: datetime) -> list[Emit] | None:
        """`off_partition` of any record of ``agent_id`` (``what`` names it in the dead letter)."""
        if self.home_partition is None:
            return None
        home = self.home_partition(agent_id)
        if source.partition == home:
            return None
        return self.decider.dead_letter(
            raw,
            source,
            now,
            (
                f"{what} of agent {agent_id!r} is on partition {source.partition} of "
                f"{source.topic}; an agent's records belong on partition {home} (keyed by agent_id with the Java "
                "client's default partitioner, murmur2; librdkafka: partitioner=murmur2_random). Not decided, and "
                "never retried (a dead letter is final): publish it again keyed by its agent id"
            ),
        )


def recorded_intent(intent: TransactionIntent) -> dict[str, Any]:
    """The intent as the ledger keeps it: every field a guardrail reads, signature included; not
    its blobs (up to 768 KB, committed to by their versioned hashes) nor the secrets sealed to the
    signer (nothing on the ledger needs them)."""
    return intent.model_dump(mode="json", by_alias=True, exclude={"blobs", "sealed_client_share", "sealed_cmek"})


def _what(intent: TransactionIntent) -> dict[str, Any]:
    """What an intent asks to sign, for the ledger: the kind and what identifies it."""
    return {"kind": intent.intent_type, **WHAT_BY_KIND[intent.intent_type](intent)}


def _transaction(intent: TransactionIntent) -> dict[str, Any]:
    return {"to": intent.to, "value_wei": str(intent.value_wei), "tx_type": intent.tx_type, **intent.type_facts()}


def _personal_sign(intent: TransactionIntent) -> dict[str, Any]:
    return {"message_bytes": (len(intent.message or "0x") - 2) // 2}


def _typed_data(intent: TransactionIntent) -> dict[str, Any]:
    typed = intent.typed_data
    if typed is None:  # the schema requires it of a typed_data intent
        raise ValueError(f"intent {intent.intent_id} is a typed_data without its document")
    return {
        "primary_type": typed.primaryType,
        "verifying_contract": typed.verifying_contract,
        "domain_chain_id": typed.chain_id,
        "domain_name": typed.domain.get("name"),
    }


def _solana_transaction(intent: TransactionIntent) -> dict[str, Any]:
    tx = read_solana(intent.solana_transaction_bytes)
    return {
        "fee_payer": tx.fee_payer,
        "recent_blockhash": tx.recent_blockhash,
        "programs": sorted({ix.program for ix in tx.instructions}),
    }


def _solana_message(intent: TransactionIntent) -> dict[str, Any]:
    message = read_solana_message(intent.solana_message_bytes)
    return {
        "version": message.version,
        "application_domain": message.application_domain,
        "signatories": list(message.signatories),
        "content_bytes": message.content_bytes,
        "message_sha256": hashlib.sha256(intent.solana_message_bytes).hexdigest(),
    }


def _bitcoin_psbt(intent: TransactionIntent) -> dict[str, Any]:
    psbt = read_psbt(intent.bitcoin_psbt_bytes)
    return {
        "txid": psbt.txid,
        "inputs": [f"{i.txid}:{i.vout}" for i in psbt.inputs],
        "outputs": [{"script": o.script.hex(), "amount_sats": o.amount} for o in psbt.outputs],
        "fee_sats": psbt.fee(),
        "signals_rbf": psbt.signals_rbf,
    }


# What the ledger keeps of each kind of intent (`schemas.families.FORMS` lists each family's kinds).
WHAT_BY_KIND: dict[str, Callable[[TransactionIntent], dict[str, Any]]] = {
    "transaction": _transaction,
    "personal_sign": _personal_sign,
    "typed_data": _typed_data,
    "solana_transaction": _solana_transaction,
    "solana_message": _solana_message,
    "bitcoin_psbt": _bitcoin_psbt,
}


@functools.lru_cache(maxsize=4096)
def policy_of(raw: str) -> AgentPolicy:
    """The policy table holds JSON text; parse each distinct policy once, not once per intent."""
    return AgentPolicy.model_validate_json(raw)


def bytes_digest(raw: bytes | None) -> str:
    """The SHA-256 of a record's bytes as written, hex: what a refusal is bound to when it must
    answer for those bytes only (`sdk.client.outcome_problem` expects it for these codes)."""
    return hashlib.sha256(raw or b"").hexdigest()
