"""warden.admin.proposals read one record at a time: each proposal with the signatures that count
towards its quorum under the admin set in force, and what a record that is not one signature of a
proposal is. No Kafka here: bytes in, what each record is out.

Anyone who can write to the topic can put anything there, so nothing on it is believed: a record
counts as an admin's signature only when its ``proposal_id`` is the digest of its document's
signing bytes and the signature verifies over those bytes with the key the admin set in force pins
for that admin. `sdk.quorum` lists and signs proposals with this book; the streams worker records
each signature, and each record that is not one, on the ledger (`proposal_event`), so that
"a proposal awaits your signature" is an audit event a webhook can carry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from runtime.admins import Admins
from schemas import topics
from schemas.actions import AuditAction
from schemas.admins import Action, AdminProposal, AdminSet, AdminSignature, VaultChange, digest_of, key_changes
from schemas.auth import AdminSigned, raw_record_id
from schemas.chain_set import ChainSet
from schemas.emit import Emit, audit
from schemas.errors import WardenError
from schemas.outcomes import HumanApproval
from schemas.policy import AgentPolicy

__all__ = [
    "RECORDS",
    "Gathered",
    "NotWhatWasShown",
    "ProposalBook",
    "ProposalRead",
    "gather",
    "proposal_event",
    "proposal_record",
]

# Each action that gathers signatures on warden.admin.proposals: the record it signs, and where
# the whole record goes once enough admins signed.
RECORDS: dict[str, tuple[type[AdminSigned], str]] = {
    "policy": (AgentPolicy, topics.POLICIES),
    "approval": (HumanApproval, topics.APPROVALS),
    "admins": (AdminSet, topics.ADMINS),
    "chains": (ChainSet, topics.CHAINS),
    "keys": (VaultChange, topics.VAULT),
}
_SIGNATURES = {"signature", "cosignatures"}
# How long a proposal past its expiry is still held: a late signature of it is then still told
# apart from one of a proposal never seen.
KEPT_AFTER_EXPIRY = timedelta(days=1)
# How many refusals an open proposal keeps to show (`Gathered.refused`): each is recorded on the
# ledger whatever the count, and a topic writer's flood must not grow a reader's memory.
REFUSALS_KEPT = 20


class NotWhatWasShown(WardenError, ValueError):
    """An admin asked to sign a proposal whose bytes are not the ones named by the digest they
    were shown: nothing is signed."""


def proposal_record(
    record: AdminSigned, action: Action, admin_id: str, signature: str, now: datetime, expires_at: datetime
) -> AdminProposal:
    """One admin's signature on ``record``, as a record for warden.admin.proposals."""
    return AdminProposal(
        proposal_id=digest_of(record.signing_bytes()),
        action=action,
        document=record.model_dump(mode="json", exclude=_SIGNATURES),
        admin_key_id=admin_id,
        signature=signature,
        proposed_at=now,
        expires_at=expires_at,
    )


@dataclass
class Gathered:
    """One proposal as the topic holds it: the record, the signatures that count under the admin
    set in force, the ones that do not (and why), and how many are needed. ``in_force``: the
    admin keys in force it was gathered under (id → key), which an admin set's key changes are
    judged against."""

    proposal_id: str
    action: Action
    record: AdminSigned
    expires_at: datetime
    needed: int
    signatures: dict[str, str] = field(default_factory=dict)  # admin key id → signature, valid only
    refused: list[str] = field(default_factory=list)
    in_force: dict[str, str] = field(default_factory=dict)

    @property
    def signers(self) -> list[str]:
        return list(self.signatures)

    @property
    def keys_changed(self) -> list[str]:
        """The admins in force whose key this admin set changes (none for another record)."""
        return key_changes(self.in_force, self.record) if isinstance(self.record, AdminSet) else []

    @property
    def own_signatures_missing(self) -> list[str]:
        """The admins of `keys_changed` whose own signature, with the key in force, is not here."""
        return [key_id for key_id in self.keys_changed if key_id not in self.signatures]

    @property
    def complete(self) -> bool:
        """Enough signatures for the services to take the record: the quorum's, and the own
        signature of each admin whose key an admin set changes."""
        return len(self.signatures) >= self.needed and not self.own_signatures_missing

    @property
    def awaiting(self) -> int:
        """How many more admins must sign before the record is `complete`: short of the quorum, or
        the admins whose own signature a key change still needs, whichever is more."""
        return max(self.needed - len(self.signatures), len(self.own_signatures_missing))

    @property
    def agent_id(self) -> str | None:
        """The agent the proposal is about (a policy's, a human approval's); None for the others."""
        return self.record.agent_id if isinstance(self.record, AgentPolicy | HumanApproval) else None

    def assembled(self) -> AdminSigned:
        """The whole record: the proposer's signature in ``signature``, the others' in ``cosignatures``."""
        proposer = self.record.admin_key_id
        others = tuple(AdminSignature(admin_key_id=k, signature=s) for k, s in self.signatures.items() if k != proposer)
        return self.record.model_copy(update={"signature": self.signatures.get(proposer, ""), "cosignatures": others})

    def with_signature(
        self, admin_key: Ed25519PrivateKey, admin_id: str, now: datetime, digest: str | None = None
    ) -> AdminProposal:
        """This admin's signature on the proposal, as a record for warden.admin.proposals. With
        ``digest`` (the one the admin was shown), only if the bytes signed are the ones it names."""
        message = self.record.signing_bytes()
        if digest is not None and digest_of(message) != digest.lower():
            raise NotWhatWasShown(
                f"proposal {self.proposal_id[:16]} is not what you were shown: the bytes to sign have the digest "
                f"{digest_of(message)}, not {digest.lower()}; nothing was signed. `warden approvals show "
                f"{self.proposal_id[:16]}` prints the change those bytes make; compare it again"
            )
        return self.signed_by(admin_id, admin_key.sign(message).hex(), now)

    def signed_by(self, admin_id: str, signature: str, now: datetime) -> AdminProposal:
        """``admin_id``'s ``signature`` over the proposal's record, made elsewhere (a passkey's
        assertion the console relays), as a record for warden.admin.proposals."""
        return proposal_record(self.record, self.action, admin_id, signature, now, self.expires_at)


@dataclass(frozen=True)
class ProposalRead:
    """What one record of warden.admin.proposals is: an admin's signature that counts towards
    ``gathered`` (``why`` None), or not one, and why. ``record_id``: the SHA-256 of its bytes."""

    record_id: str
    gathered: Gathered | None
    admin_id: str | None
    why: str | None
    claimed: str | None = None  # the proposal id a refused record names, when no counted signature opened it

    @property
    def counted(self) -> bool:
        return self.why is None


class ProposalBook:
    """The proposals on warden.admin.proposals, read in order: each record `read` counted towards
    its proposal or refused. A proposal is opened by the first signature that counts, whose expiry
    is the proposal's; it is dropped `KEPT_AFTER_EXPIRY` after it (`forget_expired`)."""

    def __init__(self, admins: Admins):
        self.admins = admins
        self.proposals: dict[str, Gathered] = {}

    def read(self, raw: bytes) -> ProposalRead:
        record_id = raw_record_id(raw)
        try:
            proposal = AdminProposal.model_validate_json(raw)
        except ValidationError as exc:
            return ProposalRead(record_id, None, None, f"not an AdminProposal ({str(exc)[:300]})")
        try:
            record = RECORDS[proposal.action][0].model_validate(proposal.document)
        except ValidationError as exc:
            why = f"its document is not a valid {proposal.action} record ({str(exc)[:300]})"
            return ProposalRead(record_id, None, proposal.admin_key_id, why)
        message = record.signing_bytes()
        if digest_of(message) != proposal.proposal_id:
            why = f"its proposal_id {proposal.proposal_id[:16]} is not the digest of its document ({digest_of(message)[:16]})"
            return ProposalRead(record_id, None, proposal.admin_key_id, why)
        gathered = self.proposals.get(proposal.proposal_id)
        problem = self.admins.signature_problem(proposal.admin_key_id, proposal.signature, message)
        if problem is not None:
            if gathered is not None and len(gathered.refused) < REFUSALS_KEPT:
                gathered.refused.append(str(problem))
            return ProposalRead(record_id, gathered, proposal.admin_key_id, str(problem), proposal.proposal_id)
        if gathered is None:
            # Opened by a counted signature only: a topic writer's record that came first does not
            # set the proposal's expiry, nor list it.
            gathered = self.proposals[proposal.proposal_id] = Gathered(
                proposal.proposal_id,
                proposal.action,
                record,
                proposal.expires_at,
                self.admins.threshold(proposal.action),
                in_force=dict(self.admins.keys),
            )
        public = self.admins.key(proposal.admin_key_id)
        if not any(self.admins.key(k) == public for k in gathered.signatures):  # an admin counts once
            gathered.signatures[proposal.admin_key_id] = proposal.signature
        return ProposalRead(record_id, gathered, proposal.admin_key_id, None)

    def open(self, now: datetime) -> dict[str, Gathered]:
        """The proposals not expired at ``now``."""
        return {pid: g for pid, g in self.proposals.items() if g.expires_at > now}

    def forget_expired(self, now: datetime) -> None:
        for pid in [pid for pid, g in self.proposals.items() if g.expires_at + KEPT_AFTER_EXPIRY <= now]:
            del self.proposals[pid]


def gather(raw_records: list[bytes], admins: Admins, now: datetime) -> dict[str, Gathered]:
    """The open proposals among ``raw_records`` (warden.admin.proposals, in order): each with the
    signatures that verify, of distinct pinned admins, over its record's bytes. Expired ones are
    left out."""
    book = ProposalBook(admins)
    for raw in raw_records:
        book.read(raw)
    return book.open(now)


def proposal_event(actor: str, read: ProposalRead, now: datetime) -> Emit:
    """The ledger's record of one record of warden.admin.proposals: ``proposal.signed`` (an admin's
    signature counted: who has signed, how many are needed and how many more are awaited) or
    ``proposal.refused`` (why it counts for nothing). Its id names the record's bytes and not the
    worker, so every worker that reads the record, and a worker reading it again after a restart,
    records one event."""
    gathered = read.gathered
    about = {"proposal_id": read.claimed} if gathered is None else _about(gathered, now)
    resource = f"proposal:{gathered.proposal_id}" if gathered is not None else f"record:{read.record_id}"
    agent_id = gathered.agent_id if gathered is not None else None
    action = AuditAction.PROPOSAL_SIGNED if read.counted else AuditAction.PROPOSAL_REFUSED
    why = {} if read.counted else {"reason": read.why}
    return audit(
        actor,
        action,
        resource,
        now,
        read.record_id,
        agent_id=agent_id,
        admin_key_id=read.admin_id,
        record_id=read.record_id,
        **why,
        **about,
    )


def _about(gathered: Gathered, now: datetime) -> dict[str, Any]:
    return {
        "proposal_id": gathered.proposal_id,
        "proposal_action": gathered.action,
        "signed_by": sorted(gathered.signatures),
        "needed": gathered.needed,
        "awaiting": gathered.awaiting,
        "own_signatures_missing": gathered.own_signatures_missing,
        "expires_at": gathered.expires_at.isoformat(),
        "expired": gathered.expires_at <= now,
    }
