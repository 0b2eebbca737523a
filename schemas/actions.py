"""Every audit event's action, in one place: what the ledger records, its views select and
analysts query. A service names an action by its member (`AuditAction.POLICY_UPDATED`); the
value (``"policy.updated"``) is what the event carries on the wire and in the ledger.

An action is ``<subject>.<what happened>``. The transaction and Solana statuses each have their
action (``tx.mined``, ``solana.finalized``): `tx_action` and `solana_action` name them from a
status, and refuse a status that has none."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AuditAction", "admin_record_action", "solana_action", "tx_action"]


class AuditAction(StrEnum):
    # An intent's way through the worker.
    INTENT_SUBMITTED = "intent.submitted"
    STAGE_PASSED = "stage.passed"
    STAGE_FAILED = "stage.failed"
    INTENT_APPROVED = "intent.approved"
    INTENT_REJECTED = "intent.rejected"
    INTENT_PARKED = "intent.parked"
    INTENT_HUMAN_APPROVED = "intent.human_approved"
    INTENT_DENIED = "intent.denied"
    INTENT_ABANDONED = "intent.abandoned"
    INTENT_JUDGEMENT_DISCARDED = "intent.judgement_discarded"
    APPROVAL_REFUSED = "approval.refused"
    OUTCOME_FORGED = "outcome.forged"
    SIMULATION_REQUESTED = "simulation.requested"
    SIMULATION_DECIDED = "simulation.decided"
    DLQ_RECORDED = "dlq.recorded"
    # Admin-signed records: policies, the admin set, the chain table.
    POLICY_UPDATED = "policy.updated"
    POLICY_REFUSED = "policy.refused"
    POLICY_ENFORCED = "policy.enforced"
    ADMINS_CHANGED = "admins.changed"
    ADMINS_REFUSED = "admins.refused"
    CHAINS_CHANGED = "chains.changed"
    CHAINS_REFUSED = "chains.refused"
    # The signer: what it signed, and each transaction's status after.
    TX_SIGN_ONLY = "tx.sign_only"
    TX_SIGNED = "tx.signed"
    TX_BROADCAST = "tx.broadcast"
    TX_STUCK = "tx.stuck"
    TX_MINED = "tx.mined"
    TX_FAILED = "tx.failed"
    TX_REPLACED = "tx.replaced"
    TX_DROPPED = "tx.dropped"
    TX_SIGN_FAILED = "tx.sign_failed"
    TX_FEE_BUMPED = "tx.fee_bumped"
    TX_BUMP_REFUSED = "tx.bump_refused"
    TX_FINAL = "tx.final"
    TX_REORGED = "tx.reorged"
    TX_FINALITY_VIOLATED = "tx.finality_violated"
    TX_CANCELLED = "tx.cancelled"
    TX_CANCEL_REFUSED = "tx.cancel_refused"
    MESSAGE_SIGNED = "message.signed"
    SOLANA_SIGN_ONLY = "solana.sign_only"
    SOLANA_SIGNED = "solana.signed"
    SOLANA_BROADCAST = "solana.broadcast"
    SOLANA_PROCESSED = "solana.processed"
    SOLANA_CONFIRMED = "solana.confirmed"
    SOLANA_FINALIZED = "solana.finalized"
    SOLANA_FAILED = "solana.failed"
    SOLANA_DROPPED = "solana.dropped"
    SOLANA_LANDED_AGAIN = "solana.landed_again"
    SOLANA_MESSAGE_SIGNED = "solana.message_signed"
    BITCOIN_SIGN_ONLY = "bitcoin.sign_only"
    BITCOIN_SIGNED = "bitcoin.signed"
    BITCOIN_BROADCAST = "bitcoin.broadcast"
    BITCOIN_MINED = "bitcoin.mined"
    BITCOIN_FINAL = "bitcoin.final"
    BITCOIN_CONFLICTED = "bitcoin.conflicted"
    BITCOIN_UNKNOWN = "bitcoin.unknown"
    BITCOIN_CANCELLED = "bitcoin.cancelled"
    # Custody: vaults, secrets, grants, keys released to a signer.
    VAULT_CREATED = "vault.created"
    VAULT_MODE_SET = "vault.mode_set"
    VAULT_ATTESTATION_REQUIRED = "vault.attestation_required"
    VAULT_CMEK_SET = "vault.cmek_set"
    VAULT_EVENT_APPLIED = "vault.event_applied"
    VAULT_EVENT_REFUSED = "vault.event_refused"
    SECRET_WRITTEN = "secret.written"
    SECRET_VERSION_WRITTEN = "secret.version_written"
    SECRET_DEACTIVATED = "secret.deactivated"
    SECRET_READ = "secret.read"
    SECRET_READ_REFUSED = "secret.read_refused"
    POLICY_GRANTED = "policy.granted"
    POLICY_REVOKED = "policy.revoked"
    KEY_RELEASED = "key.released"
    KEY_RELEASE_REFUSED = "key.release_refused"
    # The platform itself.
    LEDGER_SOURCE_CHANGED = "ledger.source_changed"
    LEDGER_OFFSETS_UNREAD = "ledger.offsets_unread"
    COMPONENT_RESTARTED = "component.restarted"
    # The console: what people did in it (a decision itself is the admin's record, judged by the
    # worker and the signer; these say the console relayed it, or refused to).
    CONSOLE_LOGGED_IN = "console.logged_in"
    CONSOLE_LOGIN_REFUSED = "console.login_refused"
    CONSOLE_LOGGED_OUT = "console.logged_out"
    CONSOLE_PASSKEY_REGISTERED = "console.passkey_registered"
    CONSOLE_DECISION_RELAYED = "console.decision_relayed"
    CONSOLE_SIGNATURE_RELAYED = "console.signature_relayed"
    CONSOLE_POLICY_RELAYED = "console.policy_relayed"
    CONSOLE_WEBHOOK_RELAYED = "console.webhook_relayed"
    CONSOLE_CANCELLATION_RELAYED = "console.cancellation_relayed"
    CONSOLE_RELAY_REFUSED = "console.relay_refused"
    # Audit webhooks: an endpoint added or removed by an admin, an event given up on after its retries.
    WEBHOOK_ADDED = "webhook.added"
    WEBHOOK_REMOVED = "webhook.removed"
    WEBHOOK_GAVE_UP = "webhook.gave_up"
    # warden.admin.proposals, read by the streams worker: an admin's signature counted towards a
    # proposal's quorum (with how many more are awaited), or a record there that counts for nothing.
    PROPOSAL_SIGNED = "proposal.signed"
    PROPOSAL_REFUSED = "proposal.refused"


def tx_action(status: str) -> AuditAction:
    """The action of a transaction's status (``mined`` → ``tx.mined``)."""
    return _named("tx", status)


def solana_action(status: str) -> AuditAction:
    """The action of a Solana transaction's status (``finalized`` → ``solana.finalized``)."""
    return _named("solana", status)


def bitcoin_action(status: str) -> AuditAction:
    """The action of a Bitcoin transaction's status (``mined`` → ``bitcoin.mined``)."""
    return _named("bitcoin", status)


def admin_record_action(subject: str, adopted: bool) -> AuditAction:
    """``admins.changed`` or ``chains.refused``: a versioned admin record taken or refused."""
    return _named(subject, "changed" if adopted else "refused")


def _named(subject: str, what: str) -> AuditAction:
    try:
        return AuditAction(f"{subject}.{what}")
    except ValueError:
        raise ValueError(f"{subject}.{what} is not an audit action; add it to schemas.actions.AuditAction") from None
