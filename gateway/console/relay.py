"""Relaying an admin's passkey signature: a decision on a parked intent, a cosignature on an
open proposal, an agent's next policy or a request to add or remove an audit webhook, published
where the command line publishes them (`warden approvals approve` and `sign`, `warden agents
create|update`, `warden webhooks add|remove`). The console signs nothing: the record it relays is the one the page showed (its bytes
given back must be exactly the record's signing bytes), and its signature is the assertion the
admin's device made over their SHA-256. The assertion is checked here too, so a mistake is told
at once; the worker and the signer check it again themselves, and only theirs counts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gateway.console.decisions import shown_bytes
from runtime.admins import Admins
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.registry import REGISTRY
from schemas import topics
from schemas.actions import AuditAction
from schemas.errors import WardenError
from schemas.outcomes import HumanApproval, IntentParked
from schemas.passkeys import RelyingParty, assertion_problem
from schemas.policy import AgentPolicy
from schemas.webhooks import WebhookRequest
from sdk.client import OUTCOME_TOPICS, Client, policy_in_force, wait_outcomes
from sdk.pending import open_decisions
from sdk.quorum import propose, publish_proposal, relay_signature
from sdk.records import admins_in_force
from sdk.webhooks import WebhookError
from sdk.webhooks import send as send_webhook_request

# What a page may show of an outcome: never the signed transaction's bytes.
_SHOWN = ("status", "chain", "tx_hash", "nonce", "signature", "code", "stage", "reason")


@dataclass
class Relayed:
    """What relaying did: where the record went, and what followed within the wait."""

    what: str
    outcome: dict[str, Any] | None = None
    proposal_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"what": self.what, "outcome": self.outcome, "proposal_id": self.proposal_id}


class RelayRefused(WardenError):
    """Nothing was relayed: the text says why."""


def _signed_by_passkey(admins: Admins, admin_id: str, assertion: str, message: bytes, party: RelyingParty) -> None:
    key = admins.key(admin_id)
    if key is None:
        raise RelayRefused(f"{admin_id} is no longer a pinned admin")
    problem = assertion_problem(key, assertion, message, party)
    if problem is not None:
        raise problem.error(RelayRefused)


def shown_outcome(outcome: object) -> dict[str, Any] | None:
    if outcome is None or isinstance(outcome, IntentParked):
        return None
    doc = outcome.model_dump(mode="json", by_alias=True)  # type: ignore[attr-defined]  # every Outcome is a model
    return {name: doc[name] for name in _SHOWN if doc.get(name) is not None}


async def relay_decision(
    settings: Settings, shown: str, assertion: str, admin_id: str, party: RelyingParty, wait_s: float = 30.0
) -> Relayed:
    """``admin_id``'s decision, the `HumanApproval` whose signing bytes are ``shown``, signed by
    ``assertion``: published on warden.approvals (an approval the quorum needs more admins for:
    proposed on warden.admin.proposals), and the outcome waited for."""
    message = shown_bytes(shown)
    try:
        record = HumanApproval.model_validate_json(message)
    except ValidationError as exc:
        raise RelayRefused(f"the bytes are not a decision on an intent: {str(exc)[:200]}") from None
    if record.signing_bytes() != message:
        raise RelayRefused("the bytes are not a decision's signing bytes as the console shows them")
    if record.admin_key_id != admin_id:
        raise RelayRefused(f"the decision names {record.admin_key_id!r}, not {admin_id!r}, who is logged in")
    waiting, _, in_force = await open_decisions(settings, utcnow())
    parked = next((p for p in waiting if p.intent_id == record.intent_id), None)
    if parked is None or parked.intent_digest != record.intent_digest:
        raise RelayRefused(f"intent {record.intent_id} is not waiting for a decision (decided or expired)")
    _signed_by_passkey(in_force.admins, admin_id, assertion, message, party)
    signed = record.model_copy(update={"signature": assertion})
    if record.decision == "approve" and in_force.admins.threshold("approval") > 1:
        proposal = propose(signed, "approval", utcnow())
        await publish_proposal(settings, proposal)
        return Relayed("approval proposed: more admins must sign it", proposal_id=proposal.proposal_id)
    start = await end_offsets(settings, OUTCOME_TOPICS)
    async with Client(settings) as client:
        await (await client.send(topics.APPROVALS, record.agent_id, signed.to_bytes()))
    outcomes = await wait_outcomes(settings, [parked.intent], wait_s, start)
    return Relayed(f"{record.decision} relayed", shown_outcome(outcomes.get(record.intent_id)))


async def relay_cosignature(
    settings: Settings, proposal_id: str, shown: str, assertion: str, admin_id: str, party: RelyingParty
) -> Relayed:
    """``admin_id``'s signature (``assertion``) on open proposal ``proposal_id``, whose record's
    signing bytes must be ``shown``: published, and the whole record too if it completes the quorum."""
    _, proposals, in_force = await open_decisions(settings, utcnow())
    gathered = next((g for g in proposals if g.proposal_id == proposal_id), None)
    if gathered is None:
        raise RelayRefused(f"proposal {proposal_id[:16]} is not open (in force, expired or unknown)")
    message = shown_bytes(shown)
    if gathered.record.signing_bytes() != message:
        raise RelayRefused(f"the bytes are not proposal {proposal_id[:16]}'s: reload the page and compare")
    if admin_id in gathered.signatures:
        raise RelayRefused(f"{admin_id} has signed proposal {proposal_id[:16]} already")
    _signed_by_passkey(in_force.admins, admin_id, assertion, message, party)
    published = await relay_signature(settings, gathered, gathered.signed_by(admin_id, assertion, utcnow()))
    done = "quorum reached: published" if published else "signature relayed: waiting for more admins"
    return Relayed(done, proposal_id=proposal_id)


async def relay_policy(
    settings: Settings, message: bytes, assertion: str, admin_id: str, party: RelyingParty, wait_s: float = 30.0
) -> Relayed:
    """``admin_id``'s next policy of an agent, whose signing bytes are ``message``, signed by
    ``assertion``: published on warden.policies as `warden agents create|update` publishes it (a
    policy the quorum needs more admins for: proposed on warden.admin.proposals), and the streams
    worker's verdict waited for."""
    try:
        record = AgentPolicy.model_validate_json(message, context=REGISTRY.context)
    except ValidationError as exc:
        raise RelayRefused(f"the bytes are not a policy: {str(exc)[:200]}") from None
    if record.signing_bytes() != message or record.signature or record.cosignatures:
        raise RelayRefused("the bytes are not an unsigned policy's signing bytes as the console shows them")
    if record.admin_key_id != admin_id:
        raise RelayRefused(f"the policy names {record.admin_key_id!r}, not {admin_id!r}, who is logged in")
    current = await policy_in_force(settings, record.agent_id)
    expected = 1 if current is None else current.version + 1
    if record.version != expected:
        raise RelayRefused(
            f"policy v{record.version} of {record.agent_id} is not the next version (v{expected}): another "
            "policy was put in force since the page was drawn; reload it"
        )
    admins = await admins_in_force(settings)
    _signed_by_passkey(admins, admin_id, assertion, message, party)
    signed = record.model_copy(update={"signature": assertion})
    needed = admins.threshold("policy")
    if needed > 1:
        proposal = propose(signed, "policy", utcnow())
        await publish_proposal(settings, proposal)
        return Relayed(
            f"policy v{record.version} of {record.agent_id} proposed: {needed} admins must sign it",
            proposal_id=proposal.proposal_id,
        )
    async with Client(settings) as client:
        verdict = await client.publish_policy(signed, wait_s=wait_s)
    if verdict == AuditAction.POLICY_REFUSED:
        raise RelayRefused(
            f"policy v{record.version} of {record.agent_id} was published and the streams worker refused it; "
            "see `warden audit query`"
        )
    return Relayed(f"policy v{record.version} of {record.agent_id} is in force")


async def relay_webhook(
    settings: Settings, message: bytes, assertion: str, admin_id: str, party: RelyingParty
) -> dict[str, Any]:
    """``admin_id``'s request to add or remove a webhook, whose signing bytes are ``message``,
    signed by ``assertion``: sent to the ledger as `warden webhooks add|remove` sends it. The
    ledger's answer: for an addition the endpoint's ``id``, its ``url`` and ``events``, and its
    signing ``secret``, shown only now; for a removal its ``id`` and ``removed``."""
    prefix = b"warden.webhooks\x00"
    try:
        record = WebhookRequest.model_validate_json(message.removeprefix(prefix))
    except ValidationError as exc:
        raise RelayRefused(f"the bytes are not a webhook request: {str(exc)[:200]}") from None
    if record.signing_bytes() != message or record.signature:
        raise RelayRefused("the bytes are not an unsigned webhook request's signing bytes as the console shows them")
    if record.admin_key_id != admin_id:
        raise RelayRefused(f"the request names {record.admin_key_id!r}, not {admin_id!r}, who is logged in")
    _signed_by_passkey(await admins_in_force(settings), admin_id, assertion, message, party)
    try:
        return await asyncio.to_thread(
            send_webhook_request, settings, record.model_copy(update={"signature": assertion})
        )
    except WebhookError as exc:
        raise RelayRefused(str(exc)) from None
