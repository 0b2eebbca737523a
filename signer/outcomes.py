"""What the signer says about an intent: refusals, signed records, lifecycle transitions, audit.

Every outcome is signed with the signer's service key and carries the intent's digest: only a
signer-signed refusal releases the worker's reservation, and clients believe nothing else about a
signature. Each is recorded in the agent's state (`signer.agent_state`) before it is published,
so a redelivered intent gets the same bytes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime import metrics, solana
from runtime.clock import to_us
from schemas import topics
from schemas.actions import AuditAction, bitcoin_action, solana_action, tx_action
from schemas.auth import OutcomeT, sign_outcome
from schemas.codes import Code
from schemas.emit import Emit, IntentRef, Source, dead_letter, intent_audit, outcome_with_audit
from schemas.errors import WardenError
from schemas.intent import TransactionIntent
from schemas.outcomes import (
    IntentApproved,
    IntentRejected,
    SignedBitcoinTransaction,
    SignedMessage,
    SignedSolanaMessage,
    SignedSolanaTransaction,
    SignedTransaction,
)
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from signer import lifecycle
from signer.state import AgentStates

SERVICE = "service:signer"

# Refusals of a record nobody can be held to: anyone can write one with a real intent's id.
NOT_ATTRIBUTABLE = frozenset({Code.AGENT_SIGNATURE_INVALID, Code.POLICY_SIGNATURE_INVALID, Code.POLICY_AGENT_MISMATCH})


class SigningRefused(WardenError):
    """Why an intent is not signed: its code and the reason its rejection tells. ``attributable``:
    whether the refusal decides the fate of the intent with this id (recorded, so a redelivery
    gets it again); by default unless its code is one of `NOT_ATTRIBUTABLE`."""

    def __init__(self, code: Code, reason: str, attributable: bool | None = None):
        super().__init__(reason)
        self.code, self.reason = code, reason
        self.attributable = code not in NOT_ATTRIBUTABLE if attributable is None else attributable


@dataclass(frozen=True)
class SigningResult:
    """What signing a transaction intent produced: the record, the policy judged under, and either
    the idempotency slot it claims and the key version that signed it (a new transaction: it
    counts as spend) or the intent whose result it copies (a reused idempotency key)."""

    record: SignedTransaction
    policy: AgentPolicy
    slot: str | None = None
    key: tuple[str, int] | None = None
    copy_of: str | None = None
    last_nonce: int | None = None  # the highest nonce it uses: a self-sponsored EIP-7702 delegation uses two
    assets: dict[str, int] | None = None  # token units it moves or approves, per asset (chain:token)

    @property
    def counts(self) -> bool:
        return self.key is not None


def digest_of(record: bytes) -> str | None:
    """The intent digest an outcome this signer recorded is bound to."""
    digest = orjson.loads(record).get("intent_digest")
    return digest if isinstance(digest, str) else None


class Outcomes:
    """Signs, records and reports each outcome: the state it records in, the service key it
    signs with, and where the signer runs (``tee``), which every record states."""

    def __init__(self, state: AgentStates, service_key: tuple[str, Ed25519PrivateKey], tee: str):
        self.state = state
        self.key_id, self._service_key = service_key
        self.tee = tee

    def signed(self, record: OutcomeT) -> OutcomeT:
        """The record, signed with the signer's service key."""
        return sign_outcome(record, self._service_key, self.key_id)

    def dead_letter(
        self, raw: bytes | None, source: Source, now: datetime, reason: str, errors: tuple[str, ...] = ()
    ) -> list[Emit]:
        """A record the signer cannot process, dead-lettered under its signature."""
        return dead_letter(SERVICE, raw, source, now, reason, errors, sign=self.signed)

    def refuse(
        self, intent: TransactionIntent, refused: SigningRefused, now: datetime, record: bool = True
    ) -> list[Emit]:
        """The intent's one rejection at stage ``signing``; recorded (a redelivery gets it again)
        unless ``record`` is False."""
        rejected = self.signed(
            IntentRejected(
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                stage=Stage.SIGNING,
                code=refused.code,
                reason=refused.reason,
                decided_at=now,
                intent_digest=intent.digest(),
                tee=self.tee,
            )
        )
        raw = rejected.to_bytes()
        metrics.SIGNER_OUTCOMES.labels("refused", refused.code).inc()
        if record:
            self.state.agent(intent.agent_id).record_refused(intent_id=intent.intent_id, record=raw, now_us=to_us(now))
        return outcome_with_audit(
            topics.INTENTS_REJECTED,
            rejected,
            raw,
            SERVICE,
            AuditAction.TX_SIGN_FAILED,
            IntentRef(intent.agent_id, intent.intent_id, rejected.intent_digest),
            now,
            code=refused.code,
            reason=refused.reason,
            tee=self.tee,
        )

    def transaction_signed(
        self, approved: IntentApproved, signing: SigningResult, now: datetime
    ) -> tuple[list[Emit], SignedTransaction]:
        """A signed transaction: signed as an outcome, recorded with its nonce, spend and
        idempotency entry (inside the intent's scope), and reported."""
        intent = approved.intent
        signed = self.signed(signing.record)
        record = signed.to_bytes()
        metrics.SIGNER_OUTCOMES.labels("signed", Code.SIGNED).inc()
        metrics.TXS.labels(signed.status).inc()
        self.state.agent(intent.agent_id).record_signed(
            intent_id=intent.intent_id,
            record=record,
            now_us=to_us(now),
            chain=intent.chain,
            address=signed.from_,
            nonce=signed.nonce,
            spend_wei=signed.max_spend_wei,
            counts=signing.counts,
            policy_version=signing.policy.version,
            idempotency_slot=signing.slot,
            request=intent.request_fields() if signing.slot else None,
            tx_hash=signed.tx_hash if signing.counts else None,
            last_nonce=signing.last_nonce,
            assets=signing.assets,
            context=(intent.to_bytes(), *signing.key) if signing.key else None,
            copy_of=signing.copy_of,
            held=signed.status == "sign_only",
        )
        emits = outcome_with_audit(
            topics.TXS_SIGNED,
            signed,
            record,
            SERVICE,
            AuditAction.TX_SIGNED,
            IntentRef(intent.agent_id, intent.intent_id, signed.intent_digest),
            now,
            chain=intent.chain,
            chain_id=signed.chain_id,
            tx_hash=signed.tx_hash,
            **({"from": signed.from_}),
            to=signed.to,
            nonce=signed.nonce,
            value_wei=str(signed.value_wei),
            max_spend_wei=str(signed.max_spend_wei),
            policy_version=signing.policy.version,
            status=signed.status,
            tee=self.tee,
            kind="transaction",
            tx_type=signed.tx_type,
            asset_spend={k: str(v) for k, v in (signing.assets or {}).items()},
            approved_by=approved.human_approval.admin_key_id if approved.human_approval else None,
            **intent.type_facts(),
        )
        return emits, signed

    def message_signed(
        self,
        intent: TransactionIntent,
        result: SignedMessage,
        policy: AgentPolicy,
        now: datetime,
        slot: str | None,
        assets: dict[str, int] | None,
        copy_of: str | None,
    ) -> list[Emit]:
        """A signed message: signed as an outcome, recorded with its idempotency entry and what it
        authorizes (inside the intent's scope), and reported on warden.messages.signed."""
        signed, record = self._recorded(intent, result, policy, now, slot, assets, "message")
        return outcome_with_audit(
            topics.MESSAGES_SIGNED,
            signed,
            record,
            SERVICE,
            AuditAction.MESSAGE_SIGNED,
            IntentRef(intent.agent_id, intent.intent_id, signed.intent_digest),
            now,
            kind=signed.kind,
            chain=intent.chain,
            chain_id=signed.chain_id,
            **({"from": signed.from_}),
            message_hash=signed.message_hash,
            primary_type=signed.primary_type,
            verifying_contract=signed.verifying_contract,
            domain_separator=signed.domain_separator,
            policy_version=policy.version,
            tee=self.tee,
            idempotent_copy_of=copy_of,
        )

    def solana_signed(
        self,
        intent: TransactionIntent,
        result: SignedSolanaTransaction,
        policy: AgentPolicy,
        now: datetime,
        slot: str | None,
        assets: dict[str, int] | None,
        copy_of: str | None,
    ) -> tuple[list[Emit], SignedSolanaTransaction]:
        """A signed Solana transaction: signed as an outcome, recorded with its idempotency entry
        and what it spends (inside the intent's scope), and reported on warden.solana.signed."""
        signed, record = self._recorded(intent, result, policy, now, slot, assets, "solana")
        return self._solana_outcome(
            AuditAction.SOLANA_SIGNED, signed, record, now, policy_version=policy.version, idempotent_copy_of=copy_of
        ), signed

    def solana_message_signed(
        self,
        intent: TransactionIntent,
        result: SignedSolanaMessage,
        policy: AgentPolicy,
        now: datetime,
        slot: str | None,
        copy_of: str | None,
    ) -> list[Emit]:
        """A signed Solana off-chain message: signed as an outcome, recorded with its idempotency
        entry (inside the intent's scope), and reported on warden.solana.messages.signed."""
        signed, record = self._recorded(intent, result, policy, now, slot, None, "solana_message")
        return outcome_with_audit(
            topics.SOLANA_MESSAGES_SIGNED,
            signed,
            record,
            SERVICE,
            AuditAction.SOLANA_MESSAGE_SIGNED,
            IntentRef(intent.agent_id, intent.intent_id, signed.intent_digest),
            now,
            kind="solana_message",
            chain=intent.chain,
            **({"from": signed.from_}),
            signature=signed.signature,
            message_hash=signed.message_sha256,
            version=signed.version,
            application_domain=signed.application_domain,
            signatories=list(signed.signatories),
            policy_version=policy.version,
            tee=self.tee,
            idempotent_copy_of=copy_of,
        )

    def _recorded(
        self,
        intent: TransactionIntent,
        result: OutcomeT,
        policy: AgentPolicy,
        now: datetime,
        slot: str | None,
        assets: dict[str, int] | None,
        kind: str,
    ) -> tuple[OutcomeT, bytes]:
        """A signature that is not a transaction's (a message's, a Solana transaction's): the
        outcome signed, then recorded with its idempotency entry and what it counts."""
        signed = self.signed(result)
        record = signed.to_bytes()
        metrics.SIGNER_OUTCOMES.labels("signed", Code.SIGNED).inc()
        self.state.agent(intent.agent_id).record_message(
            intent_id=intent.intent_id,
            record=record,
            now_us=to_us(now),
            policy_version=policy.version,
            idempotency_slot=slot,
            request=intent.request_fields() if slot else None,
            assets=assets,
            kind=kind,
        )
        return signed, record

    def solana_status(
        self, signed: SignedSolanaTransaction, update: dict[str, Any], at: datetime
    ) -> tuple[list[Emit], SignedSolanaTransaction]:
        """A broadcast Solana transaction's new status: signed, recorded (a redelivery re-publishes
        the newest), reported on the topic and the ledger as ``solana.<status>``."""
        result = self.signed(signed.model_copy(update=update))
        raw = result.to_bytes()
        self.state.agent(signed.agent_id).replace_solana(signed.intent_id, raw)
        metrics.TXS.labels(result.status).inc()
        return self._solana_outcome(solana_action(result.status), result, raw, at), result

    def solana_landed_again(
        self, signed: SignedSolanaTransaction, copy: solana.Landed, counted: str | None, landings: int, at: datetime
    ) -> Emit:
        """A further landing of a Solana message the agent signed once (`SolanaTracking.count_landings`),
        said loudly: an audit event naming the copy (its id, slot, error), the landing the intent's
        reservation counts and how many landed so far, and ``warden_solana_repeat_landings_total``."""
        metrics.SOLANA_REPEAT_LANDINGS.labels(signed.chain).inc()
        return self._solana_audit(
            AuditAction.SOLANA_LANDED_AGAIN,
            signed,
            at,
            copy.signature,
            counted_signature=counted,
            landed_signature=copy.signature,
            landed_slot=copy.slot,
            landed_error=None if copy.error is None else str(copy.error),
            landings=landings,
        )

    def _solana_audit(
        self, action: AuditAction, signed: SignedSolanaTransaction, at: datetime, *about: str, **more: Any
    ) -> Emit:
        """A Solana transaction's audit event; ``about``: what else tells it apart from another of
        the same status (a copy's id)."""
        ref, id_parts, details = self._solana_event(signed, about, more)
        return intent_audit(SERVICE, action, ref, at, *id_parts, **details)

    def _solana_outcome(
        self, action: AuditAction, signed: SignedSolanaTransaction, record: bytes, at: datetime, **more: Any
    ) -> list[Emit]:
        """A Solana transaction's record (``record``: ``signed``'s bytes) on warden.solana.signed and
        its audit event (`_solana_audit`)."""
        ref, id_parts, details = self._solana_event(signed, (), more)
        return outcome_with_audit(topics.SOLANA_SIGNED, signed, record, SERVICE, action, ref, at, *id_parts, **details)

    def _solana_event(
        self, signed: SignedSolanaTransaction, about: tuple[str, ...], more: dict[str, Any]
    ) -> tuple[IntentRef, tuple[str, ...], dict[str, Any]]:
        """The intent, id parts and details of a Solana transaction's audit event."""
        details = dict(
            chain=signed.chain,
            **{"from": signed.from_},
            signature=signed.signature,
            tx_signature=signed.tx_signature,
            status=signed.status,
            final=signed.final,
            slot=signed.slot,
            spend=signed.spend,
            error=signed.error,
            tee=self.tee,
            **more,
        )
        ref = IntentRef(signed.agent_id, signed.intent_id, signed.intent_digest)
        return ref, (signed.tx_signature or signed.signature, signed.status, signed.error or "", *about), details

    def bitcoin_signed(
        self,
        intent: TransactionIntent,
        result: SignedBitcoinTransaction,
        policy: AgentPolicy,
        now: datetime,
        slot: str | None,
        assets: dict[str, int] | None,
        copy_of: str | None,
        key: tuple[str, int] | None = None,
    ) -> tuple[list[Emit], SignedBitcoinTransaction]:
        """A signed Bitcoin transaction: signed as an outcome, recorded with its idempotency entry
        and what it spends, held until its fate is final (`AgentState.hold_bitcoin`; ``key``: the
        key path and version that signed it), inside the intent's scope, and reported on
        warden.bitcoin.signed."""
        signed, record = self._recorded(intent, result, policy, now, slot, assets, "bitcoin")
        if key is not None:
            self.state.agent(intent.agent_id).hold_bitcoin(
                intent.intent_id, to_us(now), not intent.broadcast, (intent.to_bytes(), *key)
            )
        return self._bitcoin_outcome(
            bitcoin_action(signed.status),
            signed,
            record,
            now,
            policy_version=policy.version,
            idempotent_copy_of=copy_of,
        ), signed

    def bitcoin_status(
        self, signed: SignedBitcoinTransaction, update: dict[str, Any], at: datetime
    ) -> tuple[list[Emit], SignedBitcoinTransaction]:
        """A broadcast Bitcoin transaction's new status: signed, recorded (a redelivery re-publishes
        the newest), reported on the topic and the ledger as ``bitcoin.<status>``."""
        result = self.signed(signed.model_copy(update=update))
        raw = result.to_bytes()
        self.state.agent(signed.agent_id).replace_bitcoin(signed.intent_id, raw)
        metrics.TXS.labels(result.status).inc()
        action = AuditAction.BITCOIN_FINAL if result.final and result.status in ("mined", "cancelled") else None
        return self._bitcoin_outcome(action or bitcoin_action(result.status), result, raw, at), result

    def _bitcoin_outcome(
        self, action: AuditAction, signed: SignedBitcoinTransaction, record: bytes, at: datetime, **more: Any
    ) -> list[Emit]:
        """A Bitcoin transaction's record (``record``: ``signed``'s bytes) on warden.bitcoin.signed
        and its audit event."""
        details = dict(
            chain=signed.chain,
            public_key=signed.public_key,
            txid=signed.txid,
            inputs=list(signed.inputs),
            status=signed.status,
            final=signed.final,
            block_hash=signed.block_hash,
            confirmations=signed.confirmations,
            spend=signed.spend,
            fee_sats=signed.fee_sats,
            error=signed.error,
            tee=self.tee,
            **more,
        )
        ref = IntentRef(signed.agent_id, signed.intent_id, signed.intent_digest)
        id_parts = (signed.txid, signed.status, str(signed.final), signed.block_hash or "", signed.error or "")
        return outcome_with_audit(topics.BITCOIN_SIGNED, signed, record, SERVICE, action, ref, at, *id_parts, **details)

    def transition(
        self,
        signed: SignedTransaction,
        update: dict[str, Any],
        at: datetime,
        action: AuditAction | None = None,
        reopen: bool = False,
    ) -> tuple[list[Emit], SignedTransaction]:
        """One status change of the lifecycle: checked, signed, recorded (a redelivery re-publishes
        the newest) and reported on the topic and the ledger, as ``tx.<status>`` unless ``action``
        names it (``tx.final``: the block is final; ``tx.reorged``: the block left the chain)."""
        # ``reopen``: a final record the chain no longer holds (`Finality.lost`), put right.
        lifecycle.check_transition(signed.status, update["status"], signed.final and not reopen)
        result = self.signed(signed.model_copy(update=update))
        raw = result.to_bytes()
        agent = self.state.agent(signed.agent_id)
        agent.replace_record(signed.intent_id, raw)
        metrics.TXS.labels(result.status).inc()
        emits = outcome_with_audit(
            topics.TXS_SIGNED,
            result,
            raw,
            SERVICE,
            action or tx_action(result.status),
            IntentRef(signed.agent_id, signed.intent_id, signed.intent_digest),
            at,
            result.tx_hash,
            result.status,
            result.error or "",
            *_where(result),
            tx_hash=result.tx_hash,
            nonce=result.nonce,
            status=result.status,
            block_number=result.block_number,
            block_hash=result.block_hash,
            final=result.final,
            gas_used=result.gas_used,
            fee_wei=None if result.fee_wei is None else str(result.fee_wei),
            error=result.error,
            replaces=list(result.replaces),
            replaced_by=result.replaced_by,
            tee=self.tee,
        )
        # With the change, in the same append: published by whoever restores the partition if
        # the signer that made it is killed before it publishes them (`SignerState.unpublished`).
        agent.file.hold_for_publishing(signed.intent_id, emits)
        return emits, result

    def finality_violated(self, signed: SignedTransaction, lost: str, depth: int | None, at: datetime) -> Emit:
        """A final record the chain no longer holds (`Finality._lost`), said loudly: an audit event
        naming the chain, the transaction, the block it was final in and how deep that block was
        when found gone, and ``warden_finality_violations_total``. Held for publishing like a
        status change, since the change that puts the record right comes with it."""
        metrics.FINALITY_VIOLATIONS.labels(signed.chain).inc()
        event = intent_audit(
            SERVICE,
            AuditAction.TX_FINALITY_VIOLATED,
            IntentRef(signed.agent_id, signed.intent_id, signed.intent_digest),
            at,
            signed.tx_hash,
            signed.block_hash or "",
            str(signed.reorgs),
            chain=signed.chain,
            chain_id=signed.chain_id,
            tx_hash=signed.tx_hash,
            nonce=signed.nonce,
            status=signed.status,
            block_number=signed.block_number,
            block_hash=signed.block_hash,
            depth=depth,
            error=lost,
            tee=self.tee,
        )
        self.state.agent(signed.agent_id).file.hold_for_publishing(signed.intent_id, [event])
        return event


def _where(record: SignedTransaction) -> tuple[str, ...]:
    """What tells apart two events of one status: the block it was seen in, and whether that block
    is final (mined at block A, reorged out, mined at block B: three events, none a redelivery)."""
    if record.block_hash is None and not record.final:
        return ()
    return (record.block_hash or "", "final" if record.final else "")
