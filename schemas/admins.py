"""The admins and their quorum: who may act as an admin, and how many of them must agree.

An admin action takes effect only with ``m`` valid signatures of distinct pinned admins over the
same canonical bytes (the record's ``signing_bytes``): the proposer's in the record's
``admin_key_id`` and ``signature``, the others in ``cosignatures``. A record signed by one admin
is the quorum of a deployment whose threshold is 1 (the embedded stack's), and reads as it did
before quorums existed.

Each action has its own threshold (`ACTIONS`). The deployment pins the first admin set in its
configuration (``WARDEN_ADMIN_KEYS``, ``WARDEN_ADMIN_QUORUM``); a change to it is an `AdminSet`
record on warden.admins, taken only with the quorum of the set in force for ``admins``, so one
admin key can never lower a threshold or remove another admin. A set that pins another key under
an admin id in force is taken only if that admin signed it too, with the key in force
(`own_signature_problem`): a quorum that leaves that admin out cannot swap their key. An admin
who lost their key is removed, and a new admin added under a new id.

An admin's key is an Ed25519 public key (``0x`` and 64 hex digits: the command line's) or a passkey
(``passkey:<credential id>:<COSE public key>``, `schemas.passkeys`: the console's), and its
signature in a record is the matching kind: Ed25519 hex, or the passkey's WebAuthn assertion
(``webauthn:...``), which is why a signature field holds up to `MAX_ASSERTION_CHARS`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal, get_args

import orjson
from pydantic import ConfigDict, Field, field_validator, model_validator

from schemas.errors import Problem
from schemas.fields import UtcDatetime
from schemas.passkeys import MAX_ASSERTION_CHARS, is_passkey, parse_passkey, passkey_fingerprint
from schemas.record import SCHEMA_VERSION, Evolving, Record

Action = Literal["policy", "approval", "keys", "chains", "admins"]
ACTIONS: tuple[Action, ...] = get_args(Action)
ACTION_NAMES: dict[Action, str] = {
    "policy": "a policy change",
    "approval": "the approval of a parked intent",
    "keys": "key provisioning and rotation",
    "chains": "a chain registry change",
    "admins": "a change to the admin set",
}
_KEY_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}\Z")
_PUBLIC_KEY = re.compile(r"^0x[0-9a-f]{64}\Z")
# What an admin's signature field holds, whichever record it is in.
ADMIN_SIGNATURE = (
    "over the record's signing_bytes(): Ed25519, hex, by an Ed25519 admin key; a WebAuthn assertion "
    "(webauthn:<authenticator data>.<client data JSON>.<signature>) whose challenge is their SHA-256, by a passkey"
)


class AdminSignature(Record):
    """One more admin's signature over the same bytes as the record's first signature."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    admin_key_id: str = Field(max_length=64)
    signature: str = Field(max_length=MAX_ASSERTION_CHARS, description=ADMIN_SIGNATURE)


def valid_thresholds(admins: dict[str, str], thresholds: dict[str, int]) -> dict[Action, int]:
    """``thresholds`` checked against ``admins``: every action named once, each between 1 and the
    number of admins, and ``admins`` at least as high as any other (else a change to the set,
    agreed by fewer admins, could lower the others). ValueError says which and why."""
    unknown = sorted(set(thresholds) - set(ACTIONS))
    if unknown:
        raise ValueError(f"unknown action(s) {unknown}; the actions are {', '.join(ACTIONS)}")
    missing = [a for a in ACTIONS if a not in thresholds]
    if missing:
        raise ValueError(f"no threshold for {', '.join(missing)}; every action needs one ({', '.join(ACTIONS)})")
    n = len(admins)
    for action, m in thresholds.items():
        if not isinstance(m, int) or isinstance(m, bool) or not 1 <= m <= max(n, 1):
            raise ValueError(f"{action}: the threshold must be a whole number from 1 to the {n} admins, got {m!r}")
    highest = max(thresholds.values())
    if thresholds["admins"] < highest:
        raise ValueError(
            f"admins: the threshold for changing the admin set ({thresholds['admins']}) must be at least the "
            f"highest other threshold ({highest}); otherwise fewer admins could lower it"
        )
    return {action: thresholds[action] for action in ACTIONS}


def valid_admin_keys(admins: dict[str, str]) -> dict[str, str]:
    """``admins`` (id → public key) checked: each id well formed, each key an Ed25519 key or a
    passkey, and no key pinned under two ids (a passkey counts as its COSE public key, whatever
    credential id it is written with). ValueError says which admin and why."""
    if not admins:
        raise ValueError("names no admin; at least one admin key is needed")
    publics = []
    for key_id, public in admins.items():
        if not _KEY_ID.match(key_id):
            raise ValueError(f"admin key id {key_id[:80]!r}: 1-64 letters, digits, '_', '.', '@' or '-'")
        publics.append(_public_key(key_id, public))
    if len(set(publics)) != len(publics):
        raise ValueError("one public key is pinned under two admin ids; each admin has a key of its own")
    return dict(admins)


def _public_key(key_id: str, public: str) -> bytes:
    """The public key that admin ``key_id`` pins as ``public``, raw; ValueError says what is wrong."""
    if is_passkey(public):
        try:
            return parse_passkey(public).public_key
        except ValueError as exc:
            raise ValueError(f"admin {key_id}: {exc}") from None
    if not _PUBLIC_KEY.match(public):
        raise ValueError(
            f"admin {key_id}: the public key must be 0x and 64 lowercase hex digits (Ed25519), or a passkey "
            f"(passkey:<credential id>:<COSE public key>, unpadded base64url); got {public[:80]!r}"
        )
    return bytes.fromhex(public[2:])


def key_fingerprint(public_key: str) -> str:
    """An admin key as Warden prints it beside the admin's id: the SHA-256 of the raw Ed25519 public
    key (``public_key``, 0x hex) or of a passkey's COSE public key (`passkey_fingerprint`), first 16
    hex digits. Short enough to read aloud and compare, and a swapped key shows as another
    fingerprint."""
    if is_passkey(public_key):
        return passkey_fingerprint(public_key)
    return hashlib.sha256(bytes.fromhex(public_key.removeprefix("0x"))).hexdigest()[:16]


def parse_thresholds(text: str | None, admins: dict[str, str]) -> dict[Action, int]:
    """``WARDEN_ADMIN_QUORUM``: one number for every action ("2"), or per action
    ("policy=2,approval=2,keys=2,chains=2,admins=3"), where an action left out takes the
    highest threshold given. Unset: 1 for every action."""
    text = (text or "1").strip()
    if text.isascii() and text.isdigit():  # ASCII: "²" is a digit int() refuses
        return valid_thresholds(admins, {action: int(text) for action in ACTIONS})
    given: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        action, sep, number = item.partition("=")
        if not sep or not (number.strip().isascii() and number.strip().isdigit()):
            raise ValueError(f"{item!r} is not <action>=<number>; e.g. policy=2,approval=2,admins=3")
        given[action.strip()] = int(number)
    if not given:
        raise ValueError("is empty; give one number or <action>=<number> pairs")
    highest = max(given.values())
    return valid_thresholds(admins, {action: given.get(action, highest) for action in ACTIONS} | given)


class AdminSet(Evolving):
    """A new admin set and its thresholds, version after version. Taken only when newer than the
    set in force, signed by that set's quorum for ``admins`` and by each admin whose key it
    changes, with the key in force (`own_signature_problem`)."""

    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {"cosignatures": ()}

    version: int = Field(ge=1, description="the configured set is version 0")
    admins: dict[str, str] = Field(
        max_length=64,
        description="admin key id → public key: Ed25519, 0x hex; or a passkey, passkey:<credential id>:<COSE key>",
    )
    thresholds: dict[str, int]
    issued_at: UtcDatetime
    admin_key_id: str = ""
    signature: str = Field(
        default="", max_length=MAX_ASSERTION_CHARS, description="the proposing admin's, " + ADMIN_SIGNATURE
    )
    cosignatures: tuple[AdminSignature, ...] = Field(default=(), max_length=64)

    @field_validator("admins")
    @classmethod
    def _keys(cls, admins: dict[str, str]) -> dict[str, str]:
        return valid_admin_keys(admins)

    @model_validator(mode="after")
    def _thresholds(self) -> "AdminSet":
        valid_thresholds(self.admins, self.thresholds)
        return self

    def signing_bytes(self) -> bytes:
        return b"warden.admins\x00" + orjson.dumps(
            self.model_dump(mode="json", exclude={"signature", "cosignatures"}), option=orjson.OPT_SORT_KEYS
        )


def key_changes(in_force: Mapping[str, str], proposed: AdminSet) -> list[str]:
    """The admin ids in force that ``proposed`` keeps under another key, sorted. The pinned key
    strings are compared as they are, whatever kind of key they hold: a new kind of admin key
    needs nothing here."""
    return sorted(key_id for key_id, public in proposed.admins.items() if in_force.get(key_id, public) != public)


def own_signature_problem(
    in_force: Mapping[str, str], proposed: AdminSet, signed_by: Collection[str]
) -> Problem | None:
    """None when every admin whose key ``proposed`` changes (`key_changes` against ``in_force``,
    id → key) is among ``signed_by``: the admins whose signature verifies over the record's bytes
    with the key in force under their id (`schemas.auth.admin_signers` under ``in_force``).
    Otherwise whose key changes, whose signature is missing, and what to do: without this, a rogue
    admin and one co-signer could pin a key they hold under a third admin's id."""
    missing = [key_id for key_id in key_changes(in_force, proposed) if key_id not in signed_by]
    if not missing:
        return None
    who = ", ".join(missing)
    signed = ", ".join(sorted(signed_by)) or "nobody"
    return Problem(
        f"admin set v{proposed.version} changes the key of {who}: an admin's key changes only with that "
        f"admin's own signature, made with the key in force, and it is missing for {who} (signed with the keys "
        f"in force: {signed})",
        f"{who} signs it with their current key (`warden approvals sign`); an admin who lost their key is "
        "removed instead, and a new admin added under a new id",
    )


def digest_of(signing_bytes: bytes) -> str:
    """A proposal's id: what its admins sign, hashed (hex, 64)."""
    return hashlib.sha256(signing_bytes).hexdigest()


class AdminProposal(Evolving):
    """One admin's signature towards a quorum, with the record it signs: ``document`` is that
    record (an `AgentPolicy`, a `HumanApproval` or an `AdminSet`, by ``action``) without its
    signatures, ``signature`` this admin's over the record's signing bytes. The signatures of one
    proposal share its ``proposal_id`` (`digest_of` those bytes); once enough pinned admins
    signed, the whole record goes to its own topic, where the services check the quorum
    themselves. Nothing here is trusted: a reader checks every signature again."""

    proposal_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    action: Action
    document: dict[str, Any]
    admin_key_id: str = Field(max_length=64)
    signature: str = Field(max_length=MAX_ASSERTION_CHARS, description=ADMIN_SIGNATURE)
    proposed_at: UtcDatetime
    expires_at: UtcDatetime


class VaultChangeEvent(Record):
    """One vault event of a `VaultChange`: its record key on warden.vault and its JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    key: str = Field(max_length=300)
    value: str = Field(max_length=200_000)


class VaultChange(Evolving):
    """Vault events (`signer.custody.events`: a key provisioned, rotated or deactivated, a vault
    created, a customer-managed key set) that the quorum for ``keys`` signs as one change. What
    the admins sign is each event's SHA-256 (``event_digests``), so each event on warden.vault
    carries the change without the others' bodies (`schemas.auth.vault_change_headers`); a signer
    applies an event only when its digest is in a change enough pinned admins signed.
    ``events`` (each event's record key and JSON, in order) travels with a proposal so the other
    admins can see what they sign and the last of them can publish it; it is not signed itself,
    its digests are."""

    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {"cosignatures": (), "events": ()}

    event_digests: tuple[str, ...] = Field(min_length=1, max_length=1000)
    issued_at: UtcDatetime
    events: tuple[VaultChangeEvent, ...] = Field(default=(), max_length=1000)
    admin_key_id: str = ""
    signature: str = Field(
        default="", max_length=MAX_ASSERTION_CHARS, description="the proposing admin's, " + ADMIN_SIGNATURE
    )
    cosignatures: tuple[AdminSignature, ...] = Field(default=(), max_length=64)

    @field_validator("event_digests")
    @classmethod
    def _digests(cls, digests: tuple[str, ...]) -> tuple[str, ...]:
        for digest in digests:
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(f"{digest[:80]!r} is not a SHA-256 digest (64 lowercase hex characters)")
        return digests

    @model_validator(mode="after")
    def _events_match(self) -> "VaultChange":
        if self.events and tuple(event_digest(e.value.encode()) for e in self.events) != self.event_digests:
            raise ValueError("events: they are not the events event_digests names, in that order")
        return self

    @classmethod
    def of(cls, events: list[tuple[str, bytes]], issued_at: datetime) -> "VaultChange":
        """The unsigned change of ``events``: each vault event's record key and JSON, as written
        on warden.vault."""
        return cls(
            event_digests=tuple(event_digest(value) for _, value in events),
            issued_at=issued_at,
            events=tuple(VaultChangeEvent(key=key, value=value.decode()) for key, value in events),
        )

    def signing_bytes(self) -> bytes:
        return b"warden.vault.change\x00" + orjson.dumps(
            self.model_dump(mode="json", exclude={"signature", "cosignatures", "events"}), option=orjson.OPT_SORT_KEYS
        )


def event_digest(event: bytes) -> str:
    """A vault event's digest in a `VaultChange`: SHA-256 of its bytes on warden.vault, hex."""
    return hashlib.sha256(event).hexdigest()
