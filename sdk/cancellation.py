"""An admin's cancellation of a sign-only transaction whose bytes have not landed, EVM or Bitcoin:
the transaction found among the signer's own records (`cancellable`), the denial bound to it
(`cancellation`, a `HumanApproval` with ``deny``), and the signed denial published on
warden.approvals with the signer's record waited for (`send_cancellation`). `warden txs cancel`
signs the denial with the local admin key; the console relays a passkey's signature over it
(`gateway.console.cancellations`)."""

from __future__ import annotations

from datetime import datetime

from runtime.config import Settings
from runtime.kafka import end_offsets
from schemas import topics
from schemas.outcomes import HumanApproval, SignedBitcoinTransaction, SignedTransaction
from sdk.client import Client
from sdk.outcomes import OUTCOME_TOPICS, Outcome, RawSubmission, wait_outcomes
from sdk.records import AgentRecords

# What the signer can cancel: an EVM transaction (it takes the nonce) or a Bitcoin payment (it
# spends one of the inputs back to the agent).
Cancellable = SignedTransaction | SignedBitcoinTransaction


def cancellable(found: AgentRecords, agent_id: str, wanted: str) -> Cancellable:
    """``agent_id``'s transaction named ``wanted`` (its intent id, an EVM hash or a Bitcoin txid)
    in ``found``, the signer's records of that agent, when it is signed sign-only and its bytes
    have not landed (status ``sign_only``, bound to an intent digest); LookupError saying why not."""
    record: Cancellable | None = next(
        (r for r in found.transactions if wanted in (r.intent_id, r.tx_hash)), None
    ) or next((r for r in found.bitcoin_transactions if wanted in (r.intent_id, r.txid)), None)
    if record is None:
        raise LookupError(
            f"no transaction of agent {agent_id!r} with intent id or hash {wanted!r}; "
            f"`warden txs list --agent {agent_id}` lists them"
        )
    if record.status != "sign_only" or record.intent_digest is None:
        raise LookupError(
            f"intent {record.intent_id} is {record.status}: only a sign-only transaction whose bytes have not "
            "landed can be cancelled"
        )
    return record


def cancellation(record: Cancellable, admin_id: str, reason: str, now: datetime) -> HumanApproval:
    """The unsigned denial ``admin_id`` signs to cancel ``record``: bound to its intent id, its
    agent and its intent digest. ValidationError for a reason over 1,024 characters."""
    return HumanApproval(
        intent_id=record.intent_id,
        agent_id=record.agent_id,
        intent_digest=record.intent_digest or "",
        decision="deny",
        reason=reason,
        decided_at=now,
        admin_key_id=admin_id,
    )


async def send_cancellation(
    settings: Settings, record: Cancellable, denial: HumanApproval, wait_s: float
) -> Outcome | None:
    """``denial`` (signed) published on warden.approvals, and the signer's next record of
    ``record``'s intent within ``wait_s`` (``cancelled`` once the cancellation is signed and
    sent), or None."""
    start = await end_offsets(settings, OUTCOME_TOPICS)
    async with Client(settings) as client:
        await (await client.send(topics.APPROVALS, record.agent_id, denial.to_bytes()))
    awaited = RawSubmission(record.agent_id, record.intent_id, "", record.intent_digest)
    return (await wait_outcomes(settings, [awaited], wait_s, start, final=False)).get(record.intent_id)
