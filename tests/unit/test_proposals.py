"""warden.admin.proposals as the streams worker records it (`runtime.proposals`): each record an
admin's signature counted towards its proposal, with how many more are awaited, or refused with
why. Anyone can write to the topic, so the event says "admin X signed" only when X's signature
verifies over the proposal's bytes with the key in force. No processes; time is an argument."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.admins import Admins
from runtime.proposals import KEPT_AFTER_EXPIRY, ProposalBook, ProposalRead, proposal_event
from schemas.actions import AuditAction
from schemas.admins import ACTIONS, AdminProposal, AdminSet, parse_thresholds
from schemas.auth import public_key_hex, sign_admin_set, sign_policy
from schemas.policy import AgentPolicy
from sdk.quorum import propose

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KEYS = {name: Ed25519PrivateKey.generate() for name in ("a", "b", "c", "mallory")}
PINNED = {name: public_key_hex(KEYS[name]) for name in ("a", "b", "c")}


def book() -> ProposalBook:
    return ProposalBook(Admins(PINNED, parse_thresholds("2", PINNED)))


def policy(**fields: Any) -> AgentPolicy:
    return AgentPolicy(
        agent_id="treasury", version=2, agent_public_key=public_key_hex(KEYS["mallory"]), issued_at=T0, **fields
    )


def first(admin: str = "a", record: AgentPolicy | None = None) -> AdminProposal:
    """``admin``'s proposal of ``record`` (a policy by default), as the first record of its proposal."""
    return propose(sign_policy(record or policy(), KEYS[admin], admin), "policy", T0)


def event(read: ProposalRead, now: datetime = T0) -> dict[str, Any]:
    said: dict[str, Any] = orjson.loads(proposal_event("streams", read, now).value)
    return said


def test_an_admin_s_signature_is_counted_and_the_event_says_how_many_more_are_awaited() -> None:
    proposals = book()
    proposal = first()
    read = proposals.read(proposal.to_bytes())
    signed = event(read)
    assert read.counted and signed["action"] == AuditAction.PROPOSAL_SIGNED
    assert signed["agent_id"] == "treasury" and signed["resource"] == f"proposal:{proposal.proposal_id}"
    details = signed["details"]
    assert (details["admin_key_id"], details["signed_by"], details["needed"], details["awaiting"]) == ("a", ["a"], 2, 1)
    assert details["proposal_action"] == "policy" and details["expired"] is False

    second = proposals.proposals[proposal.proposal_id].with_signature(KEYS["b"], "b", T0)
    done = event(proposals.read(second.to_bytes()))["details"]
    assert (done["signed_by"], done["awaiting"]) == (["a", "b"], 0)


def test_the_same_admin_twice_counts_once() -> None:
    proposals = book()
    proposal = first()
    proposals.read(proposal.to_bytes())
    again = proposals.read(proposals.proposals[proposal.proposal_id].with_signature(KEYS["a"], "a", T0).to_bytes())
    assert event(again)["details"]["awaiting"] == 1


def test_a_signature_that_does_not_verify_is_refused_and_not_counted() -> None:
    proposals = book()
    proposal = first()
    proposals.read(proposal.to_bytes())
    # b's signature over other bytes, carried under b's name: a keyless writer's copy.
    other = sign_policy(policy(tx_max_value_eth="1000"), KEYS["b"], "b")
    forged = proposal.model_copy(update={"admin_key_id": "b", "signature": other.signature})
    refused = event(proposals.read(forged.to_bytes()))
    assert refused["action"] == AuditAction.PROPOSAL_REFUSED
    assert "does not verify" in refused["details"]["reason"] and refused["details"]["awaiting"] == 1
    assert proposals.proposals[proposal.proposal_id].signers == ["a"]


def test_an_admin_not_pinned_is_refused_and_opens_no_proposal() -> None:
    proposals = book()
    proposal = first("mallory")
    refused = event(proposals.read(proposal.to_bytes()))
    assert refused["action"] == AuditAction.PROPOSAL_REFUSED
    assert "'mallory' is not a pinned admin" in refused["details"]["reason"]
    assert refused["details"]["proposal_id"] == proposal.proposal_id and refused["agent_id"] is None
    assert proposals.proposals == {}


def test_a_record_that_came_first_without_a_counted_signature_sets_nothing_of_the_proposal() -> None:
    # A topic writer copies a's coming proposal with a past expiry under b's name, before a publishes it.
    proposals = book()
    proposal = first()
    early = proposal.model_copy(update={"admin_key_id": "b", "expires_at": T0 - timedelta(hours=1)})
    assert not proposals.read(early.to_bytes()).counted
    proposals.read(proposal.to_bytes())
    assert proposals.open(T0)[proposal.proposal_id].expires_at == proposal.expires_at


def test_an_open_proposal_keeps_a_bounded_number_of_refusals() -> None:
    from runtime.proposals import REFUSALS_KEPT

    proposals = book()
    proposal = first()
    proposals.read(proposal.to_bytes())
    forged = proposal.model_copy(update={"admin_key_id": "b"})
    for _ in range(REFUSALS_KEPT + 30):
        assert event(proposals.read(forged.to_bytes()))["action"] == AuditAction.PROPOSAL_REFUSED
    assert len(proposals.proposals[proposal.proposal_id].refused) == REFUSALS_KEPT


def test_a_proposal_id_that_does_not_name_its_document_is_refused() -> None:
    proposal = first()
    # a's real signature, with the document swapped for a looser policy under the same id.
    swapped = proposal.model_copy(update={"document": {**proposal.document, "tx_max_value_eth": "1000"}})
    refused = event(book().read(swapped.to_bytes()))
    assert refused["action"] == AuditAction.PROPOSAL_REFUSED
    assert "is not the digest of its document" in refused["details"]["reason"]
    assert refused["resource"].startswith("record:") and refused["agent_id"] is None


def test_bytes_that_are_not_a_proposal_are_refused_with_why() -> None:
    for raw, why in ((b"\xff not json", "not an AdminProposal"), (b'{"action": "policy"}', "not an AdminProposal")):
        refused = event(book().read(raw))
        assert refused["action"] == AuditAction.PROPOSAL_REFUSED and why in refused["details"]["reason"]
    bad_document = first().model_copy(update={"document": {"agent_id": "treasury"}})
    assert "is not a valid policy record" in event(book().read(bad_document.to_bytes()))["details"]["reason"]


def test_a_key_change_awaits_the_own_signature_of_the_admin_whose_key_it_changes() -> None:
    # a and b are the quorum, but the set changes c's key: it awaits c, with the key in force.
    changed = AdminSet(
        version=1,
        admins={**PINNED, "c": public_key_hex(KEYS["mallory"])},
        thresholds=dict.fromkeys(ACTIONS, 2),
        issued_at=T0,
    )
    proposals = book()
    proposal = propose(sign_admin_set(changed, KEYS["a"], "a"), "admins", T0)
    proposals.read(proposal.to_bytes())
    both = proposals.read(proposals.proposals[proposal.proposal_id].with_signature(KEYS["b"], "b", T0).to_bytes())
    details = event(both)["details"]
    assert (details["awaiting"], details["own_signatures_missing"]) == (1, ["c"])
    assert event(both)["agent_id"] is None


def test_the_event_s_id_names_the_record_not_the_time_or_the_reader() -> None:
    # Every worker reads the whole topic, and again after a restart: one event on the ledger for each record.
    raw = first().to_bytes()
    once, later = (
        event(book().read(raw)),
        event(book().read(raw), T0 + timedelta(hours=30)),
    )
    assert once["event_id"] == later["event_id"] and later["details"]["expired"] is True
    other = event(book().read(first("b").to_bytes()))
    assert other["event_id"] != once["event_id"]


def test_a_proposal_is_forgotten_a_day_after_it_expires() -> None:
    proposals = book()
    proposal = first()
    proposals.read(proposal.to_bytes())
    proposals.forget_expired(proposal.expires_at + KEPT_AFTER_EXPIRY - timedelta(seconds=1))
    assert proposal.proposal_id in proposals.proposals and not proposals.open(proposal.expires_at)
    proposals.forget_expired(proposal.expires_at + KEPT_AFTER_EXPIRY)
    assert proposals.proposals == {}
