"""Ed25519 signatures on intents (by agents), policies (by admins), outcomes (by services) and
audit records (by whoever wrote them); and the admins' signatures, Ed25519 or a passkey's WebAuthn
assertion (`schemas.passkeys`) by the kind of key each admin pinned.

Write access to a topic must not let anyone act as an agent, an admin or a
Warden service: the streams worker and the signer check agents' and admins'
signatures themselves, and clients check the services' signatures on every
outcome they are shown.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, TypeVar, get_args

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from schemas.admins import Action, AdminSet, AdminSignature, VaultChange, event_digest
from schemas.chain_set import ChainSet
from schemas.codes import Code
from schemas.errors import Problem
from schemas.intent import TransactionIntent
from schemas.outcomes import (
    DeadLetter,
    HumanApproval,
    IntentRejected,
    Outcome,
    SignedBitcoinTransaction,
    SignedMessage,
    SignedSolanaMessage,
    SignedSolanaTransaction,
    SignedTransaction,
)
from schemas.passkeys import RelyingParty, assertion_problem, challenge_of, is_passkey, parse_assertion
from schemas.policy import AgentPolicy
from schemas.record import Record
from schemas.sealing_key import SealingKey
from schemas.simulation import SimulationRequest
from schemas.stages import Stage

Role = Literal["worker", "signer", "supervisor"]
OutcomeT = TypeVar("OutcomeT", bound=Outcome)


def read_ed25519(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file, or ValueError naming the file if it holds another kind."""
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 key: move it aside to have one made")
    return key


def load_or_create_ed25519(path: Path) -> Ed25519PrivateKey:
    """A local Ed25519 identity key (PKCS#8 PEM, mode 0600), created on first use.

    The file appears whole or not at all: the key is written to a file of its own and linked into
    place, so a process reading it meanwhile (a worker pinning the admin key at start) never sees
    half a key, and of two processes creating it at once both end with the one that was linked."""
    if path.exists():
        return read_ed25519(path)
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(draft, path)  # never replaces a key: one already there wins
        except FileExistsError:
            return read_ed25519(path)
    finally:
        draft.unlink(missing_ok=True)
    return key


def public_key_hex(private_key: Ed25519PrivateKey) -> str:
    return "0x" + private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def sign_intent(intent: TransactionIntent, agent_key: Ed25519PrivateKey) -> TransactionIntent:
    return intent.model_copy(update={"signature": agent_key.sign(intent.signing_bytes()).hex()})


def sign_simulation_request(request: SimulationRequest, agent_key: Ed25519PrivateKey) -> SimulationRequest:
    """The agent's signature over a simulation request: over its own bytes, which start with a
    context no intent's do, so it is never a signature over an intent."""
    return request.model_copy(update={"signature": agent_key.sign(request.signing_bytes()).hex()})


def sign_policy(policy: AgentPolicy, admin_key: Ed25519PrivateKey, admin_key_id: str) -> AgentPolicy:
    """``policy`` proposed and signed by one admin (the proposer); `cosign` adds the others."""
    return _admin_signed(policy, admin_key, admin_key_id)


def sign_human_approval(approval: HumanApproval, admin_key: Ed25519PrivateKey, admin_key_id: str) -> HumanApproval:
    return _admin_signed(approval, admin_key, admin_key_id)


def sign_admin_set(admin_set: AdminSet, admin_key: Ed25519PrivateKey, admin_key_id: str) -> AdminSet:
    return _admin_signed(admin_set, admin_key, admin_key_id)


def sign_chain_set(chain_set: ChainSet, admin_key: Ed25519PrivateKey, admin_key_id: str) -> ChainSet:
    return _admin_signed(chain_set, admin_key, admin_key_id)


def ed25519_valid(public: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public``'s Ed25519 signature of ``message``: every verification
    on the intents' path (agents, admins, services) and the ledger's of every audit record.

    Verified by libsodium, not OpenSSL as the signing is: ~39 us per verification on this
    machine against OpenSSL's ~58, and each intent is verified by the worker, the signer and its
    client. Both are RFC 8032 Ed25519; libsodium is the stricter (it also refuses small-order
    keys and non-canonical encodings, which no honest signer produces)."""
    # Lengths checked first: libsodium reads 32 bytes of key and 64 of signature, whatever it is handed.
    if len(public) != 32 or len(signature) != 64:
        return False
    try:
        crypto_sign_open(signature + message, public)
    except BadSignatureError:
        return False
    return True


def _verify(public_key_hex_: str, signature_hex: str, message: bytes) -> bool:
    try:
        public, signature = bytes.fromhex(public_key_hex_.removeprefix("0x")), bytes.fromhex(signature_hex)
    except ValueError:
        return False
    return ed25519_valid(public, signature, message)


def intent_signature_valid(intent: TransactionIntent, policy: AgentPolicy) -> bool:
    return bool(intent.signature) and _verify(policy.agent_public_key, intent.signature, intent.signing_bytes())


def simulation_request_signature_valid(request: SimulationRequest, policy: AgentPolicy) -> bool:
    return bool(request.signature) and _verify(policy.agent_public_key, request.signature, request.signing_bytes())


AdminSignedT = TypeVar("AdminSignedT", AgentPolicy, HumanApproval, AdminSet, VaultChange, ChainSet)
# A record the admins sign, one of the types `AdminSignedT` ranges over, when which one is known
# only once it is read (a proposal's record, `runtime.proposals`).
AdminSigned = AgentPolicy | HumanApproval | AdminSet | VaultChange | ChainSet


def _admin_signed(record: AdminSignedT, admin_key: Ed25519PrivateKey, admin_key_id: str) -> AdminSignedT:
    unsigned = record.model_copy(update={"admin_key_id": admin_key_id, "signature": "", "cosignatures": ()})
    return unsigned.model_copy(update={"signature": admin_key.sign(unsigned.signing_bytes()).hex()})


def cosign(record: AdminSignedT, admin_key: Ed25519PrivateKey, admin_key_id: str) -> AdminSignedT:
    """``record`` with one more admin's signature over the same bytes as the proposer's."""
    more = AdminSignature(admin_key_id=admin_key_id, signature=admin_key.sign(record.signing_bytes()).hex())
    return record.model_copy(update={"cosignatures": (*record.cosignatures, more)})


def admin_signatures(record: AdminSignedT) -> list[tuple[str, str]]:
    """(admin key id, signature hex) of everyone who signed ``record``, the proposer first."""
    return [(record.admin_key_id, record.signature), *((c.admin_key_id, c.signature) for c in record.cosignatures)]


class AdminQuorum(Protocol):
    """The admin set in force, as a check of admins' signatures asks it (`runtime.admins.Admins`,
    which a service keeps to warden.admins): who counts towards a record's quorum for ``action``
    (or for ``needed`` signatures), and why the record falls short, None when it does not."""

    def quorum(
        self, record: AdminSignedT, action: Action, needed: int | None = None
    ) -> tuple[list[str], Problem | None]: ...

    def quorum_problem(self, record: AdminSignedT, action: Action, needed: int | None = None) -> Problem | None: ...


class SignCounts(Protocol):
    """What a reader remembers of passkeys' signature counters (`runtime.admins.SignCounters`)."""

    def counter_problem(self, passkey: str, count: int, digest: bytes) -> Problem | None:
        """None when the pinned ``passkey``'s counter value ``count``, in an assertion that verified
        over the message of SHA-256 ``digest``, may be believed (and it is remembered); else why not."""
        ...


def admin_signature_problem(
    keys: Mapping[str, str],
    key_id: str,
    signature: str,
    message: bytes,
    party: RelyingParty | None = None,
    counts: SignCounts | None = None,
) -> Problem | None:
    """None when admin ``key_id``, pinned in ``keys`` (id → public key), made ``signature`` over
    ``message``; else why not. By the pinned key's kind: an Ed25519 key's signature is checked as
    ever; a passkey's assertion by `assertion_problem` for the relying party ``party`` (None: no
    passkey is believed) and then its signature counter by ``counts``, and its problem carries
    the code PASSKEY_ASSERTION_INVALID."""
    public = keys.get(key_id)
    if public is None:
        return Problem(f"{key_id[:64]!r} is not a pinned admin")
    if is_passkey(public):
        return _passkey_problem(key_id, public, signature, message, party, counts)
    if not signature or not _verify(public, signature, message):
        return Problem(f"{key_id}'s signature does not verify over this record's bytes")
    return None


def _passkey_problem(
    key_id: str, public: str, signature: str, message: bytes, party: RelyingParty | None, counts: SignCounts | None
) -> Problem | None:
    problem = assertion_problem(public, signature, message, party)
    if problem is None and counts is not None:
        problem = counts.counter_problem(public, parse_assertion(signature).sign_count, challenge_of(message))
    if problem is None:
        return None
    return Problem(f"{key_id}'s passkey: {problem}", code=Code.PASSKEY_ASSERTION_INVALID)


def admin_signers(
    record: AdminSignedT,
    keys: Mapping[str, str],
    party: RelyingParty | None = None,
    counts: SignCounts | None = None,
) -> tuple[list[str], list[Problem]]:
    """Who counts towards ``record``'s quorum among the admins pinned in ``keys`` (id → public
    key): distinct admins whose signature verifies over its bytes (`admin_signature_problem`,
    with ``party`` and ``counts``); and why each other signature does not."""
    message, counted, seen_keys, problems = record.signing_bytes(), [], set(), []
    for key_id, signature in admin_signatures(record):
        problem = admin_signature_problem(keys, key_id, signature, message, party, counts)
        if problem is None and keys[key_id] in seen_keys:
            problem = Problem(f"{key_id} signed twice (counted once)")
        if problem is None:
            seen_keys.add(keys[key_id])
            counted.append(key_id)
        else:
            problems.append(problem)
    return counted, problems


def record_id_of(record: AdminSet | ChainSet) -> str:
    """How the ledger names an admin record a service took or refused: the SHA-256 of its bytes."""
    return raw_record_id(record.to_bytes())


def raw_record_id(raw: bytes) -> str:
    """`record_id_of` the bytes ``raw``, whatever they hold: how the ledger names a record refused
    as unreadable."""
    return hashlib.sha256(raw).hexdigest()


def policy_signature_valid(policy: AgentPolicy, admins: AdminQuorum) -> bool:
    """True only if the quorum of pinned admins for a policy change signed ``policy``."""
    return admins.quorum_problem(policy, "policy") is None


def human_approval_problem(approval: HumanApproval, admins: AdminQuorum) -> Problem | None:
    """None when enough pinned admins signed the decision: the quorum for ``approve``, one for
    ``deny`` (a refusal moves nothing; any admin may stop an intent); otherwise why not."""
    return admins.quorum_problem(approval, "approval", None if approval.decision == "approve" else 1)


def human_approval_valid(approval: HumanApproval, admins: AdminQuorum) -> bool:
    return human_approval_problem(approval, admins) is None


# -- outcomes ------------------------------------------------------------------------------------


class ServiceKeys(Protocol):
    """The services' public keys a reader pins (runtime.trust loads them from configuration)."""

    def key(self, role: Role, key_id: str) -> str | None: ...


def sign_outcome(record: OutcomeT, service_key: Ed25519PrivateKey, key_id: str) -> OutcomeT:
    return _service_signed(record, service_key, key_id)


# What a service signs with its key: its outcomes and its sealing-key announcements (records with
# signed_by and service_signature). Bound to Record, their common base: a bound that is a union would
# make model_copy return the union instead of the record's own type.
ServiceSignedT = TypeVar("ServiceSignedT", bound=Record)


def _service_signed(record: ServiceSignedT, service_key: Ed25519PrivateKey, key_id: str) -> ServiceSignedT:
    # The signing bytes of the record as it will be with signed_by set (see service_signing_bytes),
    # built from one dump: copying the model twice costs more than the signature itself.
    body = record.model_dump(mode="json", by_alias=True, exclude={"service_signature"})
    body["signed_by"] = key_id
    signature = service_key.sign(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hex()
    return record.model_copy(update={"signed_by": key_id, "service_signature": signature})


# -- sealing-key announcements -------------------------------------------------------------------


def sign_announcement(announced: SealingKey, service_key: Ed25519PrivateKey, key_id: str) -> SealingKey:
    """A signer's sealing-key announcement signed with its service key, as its outcomes are."""
    return _service_signed(announced, service_key, key_id)


def announcement_forgery(announced: SealingKey, pinned_public: str | None) -> Problem | None:
    """None when the signer's pinned service key (``pinned_public``) signed ``announced``; else
    why a client must not seal to it. What ties a ``tee=none`` key to its signer: without it,
    anyone who can write to warden.signer.sealing could announce a key under a signer's name
    and collect the client shares sealed to it."""
    if pinned_public is None:
        return Problem(
            f"{announced.signer_id}: runs with tee=none and no service key is pinned for it, so nothing "
            "ties this sealing key to it",
            "pin it (WARDEN_SIGNER_KEYS, or its key file under $WARDEN_HOME/services/signer)",
        )
    if (
        not announced.service_signature
        or announced.signed_by != announced.signer_id
        or not _verify(pinned_public, announced.service_signature, announced.service_signing_bytes())
    ):
        return Problem(
            f"{announced.signer_id}: runs with tee=none and its announcement is not signed by its pinned "
            "service key (a forged record on warden.signer.sealing?)"
        )
    return None


def outcome_roles(record: Outcome) -> tuple[Role, ...]:
    """Who may say this: only a signer speaks of signatures and of refusals at stage "signing"
    (which release the worker's reservation); the workers speak of every other decision; either
    dead-letters a record it cannot process."""
    if isinstance(
        record,
        (SignedTransaction, SignedMessage, SignedSolanaTransaction, SignedSolanaMessage, SignedBitcoinTransaction),
    ):
        return ("signer",)
    if isinstance(record, IntentRejected) and record.stage == Stage.SIGNING:
        return ("signer",)
    if isinstance(record, DeadLetter):
        return ("worker", "signer")
    return ("worker",)


def outcome_forgery(record: Outcome, keys: ServiceKeys, intent_digest: str | None = None) -> Problem | None:
    """None when ``record`` is signed by a pinned key of the service allowed to say it and (when
    ``intent_digest`` is given) is about exactly that intent; otherwise why it must not be believed."""
    roles = outcome_roles(record)
    role, public = " or ".join(roles), None
    for candidate in roles:
        public = keys.key(candidate, record.signed_by)
        if public is not None:
            role = candidate
            break
    if public is None:
        return Problem(f"signed_by {record.signed_by!r} is not a pinned {role} key")
    if not record.service_signature or not _verify(public, record.service_signature, record.service_signing_bytes()):
        return Problem(f"the service signature does not verify against {role} key {record.signed_by!r}")
    if intent_digest is not None and record.intent_digest != intent_digest:
        return Problem("it is about another intent with the same id (intent_digest differs)")
    return None


# -- audit records -------------------------------------------------------------------------------

# Whoever writes a record to warden.audit.events signs it, in two Kafka headers: who ("<role>:<key
# id>") and the Ed25519 signature of the record's bytes. The ledger sink appends the events of a
# record only when the signature verifies against a key it pins for that role, and only when no
# event claims to be another service; anything else takes its place in the chain as the ledger's
# own record of a forgery (`ledger.batch.decode`). Without this, anyone who can write to the
# topic could add "service:signer tx.signed" for something never signed.
AUDIT_BY_HEADER = "warden-audit-by"
AUDIT_SIGNATURE_HEADER = "warden-audit-signature"
AuditRole = Literal["worker", "signer", "supervisor", "ledger", "admin"]
AUDIT_ROLES: tuple[AuditRole, ...] = get_args(AuditRole)
# The one "service:" actor each role may claim; admins claim none.
SERVICE_ACTORS: dict[str, str] = {
    "worker": "service:streams",
    "signer": "service:signer",
    "supervisor": "service:supervisor",
    "ledger": "service:ledger",
}
_AUDIT_CONTEXT = b"warden.audit.events\x00"  # a signature over an audit record is no signature over anything else


class AuditSigner:
    """Signs the audit records one writer puts on warden.audit.events (`headers`)."""

    def __init__(self, role: AuditRole, key_id: str, key: Ed25519PrivateKey):
        self.by = f"{role}:{key_id}".encode()
        self._key = key

    def headers(self, value: bytes) -> list[tuple[str, bytes]]:
        return [(AUDIT_BY_HEADER, self.by), (AUDIT_SIGNATURE_HEADER, self._key.sign(_AUDIT_CONTEXT + value))]


class AuditKeys(Protocol):
    """The audit writers' public keys a reader pins (``runtime.trust.PinnedAuditKeys``)."""

    def audit_key(self, role: str, key_id: str) -> str | None: ...


@dataclass(frozen=True)
class AuditClaim:
    """Who a record's headers say wrote it, and what must prove it: ``signature``, by ``public``
    (the key pinned for ``role`` and ``key_id``), over the record's bytes."""

    role: str
    key_id: str
    public: bytes
    signature: bytes

    def verdict(self, valid: bool) -> tuple[str, Problem | None]:
        """`audit_writer`'s answer once the signature was checked (``valid``)."""
        if valid:
            return self.role, None
        return self.role, Problem(f"the signature does not verify against {self.role} key {self.key_id[:100]!r}")


def audit_claim(headers: Iterable[tuple[str, bytes]] | None, keys: AuditKeys) -> AuditClaim | tuple[str, Problem]:
    """The claim a record's ``headers`` make, to be proved by `audit_signature_valid`; or, when
    they make none a pinned key could prove, `audit_writer`'s verdict (role or "", why the
    record must not be believed). ``headers``: the record's Kafka headers, as (name, bytes) pairs."""
    found = {name: data for name, data in headers or () if name in (AUDIT_BY_HEADER, AUDIT_SIGNATURE_HEADER)}
    by, signature = found.get(AUDIT_BY_HEADER), found.get(AUDIT_SIGNATURE_HEADER)
    if by is None or signature is None:
        return "", Problem(
            f"unsigned: the record has no {AUDIT_BY_HEADER} and {AUDIT_SIGNATURE_HEADER} headers; "
            "only Warden's services and pinned admins write audit records"
        )
    role, _, key_id = by.decode(errors="replace").partition(":")
    if role not in AUDIT_ROLES or not key_id:
        return "", Problem(
            f"{AUDIT_BY_HEADER} {by[:100]!r} is not <role>:<key id> with a role of {', '.join(AUDIT_ROLES)}"
        )
    public = keys.audit_key(role, key_id)
    if public is None:
        return role, Problem(f"{AUDIT_BY_HEADER} {role}:{key_id[:100]} is not a pinned {role} key")
    try:
        public_bytes = bytes.fromhex(public.removeprefix("0x"))
    except ValueError:
        public_bytes = b""  # no key at all: no signature verifies against it
    return AuditClaim(role, key_id, public_bytes, signature)


def audit_signature_valid(public: bytes, signature: bytes, value: bytes) -> bool:
    """Whether ``signature`` is ``public``'s Ed25519 signature of the audit record ``value``."""
    return ed25519_valid(public, signature, _AUDIT_CONTEXT + value)


def audit_signatures_valid(checks: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """`audit_signature_valid` of each (public, signature, value): what the ledger's checking
    processes run (`ledger.checks`)."""
    return [audit_signature_valid(public, signature, value) for public, signature, value in checks]


def audit_writer(
    value: bytes, headers: Iterable[tuple[str, bytes]] | None, keys: AuditKeys
) -> tuple[str, Problem | None]:
    """(role, None) when ``value`` carries a valid signature of a pinned key of ``role``; otherwise
    (role or "", why it must not be believed). ``headers``: the record's Kafka headers, as
    (name, bytes) pairs."""
    claim = audit_claim(headers, keys)
    if not isinstance(claim, AuditClaim):
        return claim
    return claim.verdict(audit_signature_valid(claim.public, claim.signature, value))


# -- vault events --------------------------------------------------------------------------------

# An admin's command (`warden vault`, `warden keys`, provisioning) writes vault events to its home's
# file log and publishes them on warden.vault as one `VaultChange` the quorum for ``keys`` signed:
# each event carries the change (its digest among the signed ones) in a header of its own. A signer
# takes vault events only from the topic and applies only those a quorum of pinned admins signed.
# Without this, one admin key (or anyone who can write to the topic) could deactivate an agent's
# key, name a customer-managed key nobody holds or require an attestation the signer cannot give,
# and every signer replaying the topic would stop signing for good.
VAULT_CHANGE_HEADER = "warden-vault-change"


def sign_vault_change(change: VaultChange, admin_key: Ed25519PrivateKey, admin_key_id: str) -> VaultChange:
    return _admin_signed(change, admin_key, admin_key_id)


def vault_change_headers(change: VaultChange) -> list[tuple[str, bytes]]:
    """The headers each of ``change``'s events carries on warden.vault: the change, signatures
    and digests, without the events' bodies."""
    return [(VAULT_CHANGE_HEADER, change.model_copy(update={"events": ()}).to_bytes())]


def vault_event_problem(
    value: bytes, headers: Iterable[tuple[str, bytes]] | None, admins: AdminQuorum
) -> tuple[list[str], Problem | None]:
    """Who signed the vault event ``value`` (distinct pinned admins of ``admins``, the set in
    force), and None when they are the quorum for ``keys``; otherwise why it must not be applied.
    ``headers``: the record's Kafka headers, as (name, bytes) pairs."""
    found = next((data for name, data in headers or () if name == VAULT_CHANGE_HEADER), None)
    if found is None:
        return [], Problem(
            f"unsigned: the record has no {VAULT_CHANGE_HEADER} header; only the admins' commands "
            "(warden vault, warden keys, warden approvals sign) write vault events"
        )
    try:
        change = VaultChange.model_validate_json(found)
    except ValueError as exc:
        return [], Problem(f"{VAULT_CHANGE_HEADER} is not a vault change: {str(exc)[:200]}")
    if event_digest(value) not in change.event_digests:
        return [], Problem(f"the event is not one of the {len(change.event_digests)} its {VAULT_CHANGE_HEADER} names")
    return admins.quorum(change, "keys")


_SERVICES = frozenset(SERVICE_ACTORS.values())


def claimed_service(role: str, actors: Iterable[str]) -> Problem | None:
    """None when no actor in ``actors`` is one of Warden's services other than ``role``'s own;
    otherwise why the record must not be believed (a worker's key does not make it the signer)."""
    own = SERVICE_ACTORS.get(role)
    for actor in actors:
        if actor in _SERVICES and actor != own:
            return Problem(f"an event claims actor {actor!r}, which a {role} key may not write as")
    return None
