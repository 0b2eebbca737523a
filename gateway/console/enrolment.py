"""Enrolling a passkey: a one-time link for one admin, the registration options a page hands to
``navigator.credentials.create``, and the registration checked with py_webauthn.

Enrolment pins nothing. What it gives is the admin key string (``passkey:<credential id>:<COSE
key>``), its fingerprint and the command that proposes the admin set with it; the admin set
changes only when the quorum signs that proposal, with the admin's own signature among them when
the admin already has a key.

The link's token is an HMAC of the admin's id and an expiry under a key kept in the home
(``$WARDEN_HOME/console/enrol.key``, mode 0600), which `warden console enrol` uses to mint it and
the console to check it: nothing passes between them but the link. The console takes each token
once, and keeps the tokens taken in the home beside that key (`UsedLinks`), so a restart makes
no link used before good again."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from webauthn import generate_registration_options, options_to_json, verify_registration_response
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from schemas.admins import Action
from schemas.errors import Problem
from schemas.passkeys import PasskeyKey, RelyingParty, b64url, from_b64url, passkey_fingerprint

TOKEN_TTL = timedelta(minutes=10)
# ES256 (P-256) and EdDSA (Ed25519): what passkeys sign with, and what the verifiers take.
ALGORITHMS = [COSEAlgorithmIdentifier.ECDSA_SHA_256, COSEAlgorithmIdentifier.EDDSA]


def enrol_key_file(home: Path) -> Path:
    return home / "console" / "enrol.key"


def enrol_key(home: Path) -> bytes:
    """The key enrolment links are made with: made on first use, readable by its owner only."""
    path = enrol_key_file(home)
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


def _mac(key: bytes, payload: str) -> str:
    return b64url(hmac.new(key, b"warden console enrol\x00" + payload.encode(), hashlib.sha256).digest())


def enrol_token(key: bytes, admin_id: str, now: datetime, ttl: timedelta = TOKEN_TTL) -> str:
    payload = f"{admin_id}.{int((now + ttl).timestamp())}"
    return f"{b64url(payload.encode())}.{_mac(key, payload)}"


@dataclass(frozen=True)
class EnrolTicket:
    admin_id: str
    expires_at: int  # Unix seconds


def read_enrol_token(key: bytes, token: str, now: datetime) -> EnrolTicket | Problem:
    """Whom ``token`` lets enrol a passkey, and until when; or why it does not."""
    encoded, _, mac = token.partition(".")
    try:
        payload = from_b64url(encoded).decode()
        admin_id, _, expires = payload.rpartition(".")
        expires_at = int(expires)
    except (ValueError, UnicodeDecodeError):
        return Problem("this enrolment link is not one `warden console enrol` made; ask for a new one")
    if not admin_id or not hmac.compare_digest(mac.encode(), _mac(key, payload).encode()):
        return Problem("this enrolment link is not one `warden console enrol` made; ask for a new one")
    if now.timestamp() > expires_at:
        return Problem("this enrolment link has expired (links last 10 minutes); ask for a new one")
    return EnrolTicket(admin_id, expires_at)


class UsedLinks:
    """The enrolment links used, kept in ``$WARDEN_HOME/console/enrol.used`` (mode 0600): a line per
    link, the SHA-256 of its token (the token itself would enrol nobody more, but is nobody's to
    read) and when the link expires. A link is forgotten once it has expired: it is refused for
    that anyway, so the file holds at most the links of the last 10 minutes."""

    def __init__(self, home: Path) -> None:
        self.path = home / "console" / "enrol.used"

    @staticmethod
    def _digest(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def _lines(self) -> dict[str, int]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        used = {}
        for line in text.splitlines():
            digest, _, expires = line.partition(" ")
            if expires.isdigit():
                used[digest] = int(expires)
        return used

    def __contains__(self, token: str) -> bool:
        return self._digest(token) in self._lines()

    def add(self, token: str, expires_at: int, now: datetime) -> None:
        """``token``, expiring at ``expires_at`` (Unix seconds), used; written before the answer
        that says so (an error here is the console's 500: the link is not told done)."""
        kept = {d: e for d, e in self._lines().items() if e >= now.timestamp()}
        kept[self._digest(token)] = expires_at
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = self.path.with_suffix(".tmp")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("".join(f"{d} {e}\n" for d, e in kept.items()))
            out.flush()
            os.fsync(out.fileno())
        os.replace(fresh, self.path)


def registration_options(admin_id: str, party: RelyingParty, challenge: bytes) -> str:
    """The options for ``navigator.credentials.create`` (JSON, binary fields base64url)."""
    options = generate_registration_options(
        rp_id=party.rp_id,
        rp_name="Warden",
        user_name=admin_id,
        user_id=hashlib.sha256(admin_id.encode()).digest(),
        challenge=challenge,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.REQUIRED
        ),
        supported_pub_key_algs=ALGORITHMS,
    )
    return options_to_json(options)


@dataclass(frozen=True)
class Enrolled:
    """A registered passkey, as an admin set pins it."""

    admin_id: str
    key: str  # passkey:<credential id>:<COSE key>

    @property
    def fingerprint(self) -> str:
        return passkey_fingerprint(self.key)


def registration_problem(credential: str, challenge: bytes, party: RelyingParty, admin_id: str) -> Enrolled | Problem:
    """The passkey ``credential`` (the JSON the page made of what ``navigator.credentials.create``
    returned) registered over ``challenge`` for ``party``, with the user verified; or why not."""
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=party.rp_id,
            expected_origin=list(party.origins),
            require_user_verification=True,
            supported_pub_key_algs=ALGORITHMS,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        return Problem(f"the passkey's registration does not verify: {str(exc)[:200]}")
    return Enrolled(admin_id, PasskeyKey(verified.credential_id, verified.credential_public_key).text())


def pin_command(enrolled: Enrolled, admins: Mapping[str, str], thresholds: Mapping[Action, int]) -> str:
    """The command that proposes the admin set in force with ``enrolled`` pinned for its admin
    (added, or in place of their key) and the same thresholds. A change of an admin's key needs
    that admin's own signature with the key in force, so the admin whose key changes runs it
    (``WARDEN_ADMIN_ID=<them>``); a new admin's is run by any admin in force, as themselves."""
    keys = {**admins, enrolled.admin_id: enrolled.key}
    quorum = ",".join(f"{action}={m}" for action, m in thresholds.items())
    who = f"WARDEN_ADMIN_ID={shlex.quote(enrolled.admin_id)} " if enrolled.admin_id in admins else ""
    pairs = ",".join(f"{admin}={key}" for admin, key in keys.items())
    return f"{who}warden admins propose --admins {shlex.quote(pairs)} --quorum {shlex.quote(quorum)}"
