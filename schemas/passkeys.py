"""Passkeys (WebAuthn) as admin keys: how a passkey is pinned in an admin set, how its signature
(an assertion) travels in a record, and the check of one assertion over a record's bytes.

A pinned passkey is ``passkey:<credential id>:<COSE public key>`` (both unpadded base64url), beside
the Ed25519 keys (``0x`` and 64 hex digits) the command line uses. A passkey admin's signature is
``webauthn:<authenticator data>.<client data JSON>.<signature>`` (unpadded base64url each): what
the browser's ``navigator.credentials.get`` returned, relayed unchanged. It signs a record when its
challenge is the SHA-256 of exactly the record's signing bytes (`challenge_of`), which the verifier
computes itself from the record it holds: the page that asked for it, the server that relayed it,
and anything in between choose none of the bytes it approves.

The check (`assertion_problem`) is py_webauthn's (`webauthn.verify_authentication_response`): the
signature over the authenticator data and the client data's hash, the relying party's id hash, the
origin, the type ``webauthn.get``, the challenge, and the user-present and user-verified flags;
then that it was made on the console's page itself, not in a frame of another site's
(`framed_problem`). Pure: a function of what it is handed, no I/O and no clock."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass

from schemas.errors import Problem

PASSKEY_PREFIX = "passkey:"
ASSERTION_PREFIX = "webauthn:"
_B64URL = r"[A-Za-z0-9_-]+"
_PASSKEY = re.compile(rf"^passkey:({_B64URL}):({_B64URL})\Z")
_ASSERTION = re.compile(rf"^webauthn:({_B64URL})\.({_B64URL})\.({_B64URL})\Z")
# A credential id is at most 1023 bytes (WebAuthn Level 3, 6.1); a COSE key of the algorithms an
# authenticator uses is far below 1 KiB.
MAX_PASSKEY_CHARS = 3_000
MAX_ASSERTION_CHARS = 4_000


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class PasskeyKey:
    """A passkey pinned as an admin key: its credential id and COSE public key (raw bytes)."""

    credential_id: bytes
    public_key: bytes

    def text(self) -> str:
        return f"{PASSKEY_PREFIX}{b64url(self.credential_id)}:{b64url(self.public_key)}"


def is_passkey(key: str) -> bool:
    return key.startswith(PASSKEY_PREFIX)


def parse_passkey(key: str) -> PasskeyKey:
    """``key`` (``passkey:<credential id>:<COSE public key>``) read; ValueError says what is wrong."""
    match = _PASSKEY.match(key) if len(key) <= MAX_PASSKEY_CHARS else None
    if match is None:
        raise ValueError(
            f"a passkey is passkey:<credential id>:<COSE public key>, each unpadded base64url, at most "
            f"{MAX_PASSKEY_CHARS} characters in all; got {key[:80]!r}"
        )
    return PasskeyKey(from_b64url(match[1]), from_b64url(match[2]))


def passkey_fingerprint(key: str) -> str:
    """A pinned passkey as Warden prints it: the SHA-256 of its COSE public key, first 16 hex digits."""
    return hashlib.sha256(parse_passkey(key).public_key).hexdigest()[:16]


@dataclass(frozen=True)
class Assertion:
    """What ``navigator.credentials.get`` returned for one passkey (raw bytes)."""

    authenticator_data: bytes
    client_data_json: bytes
    signature: bytes

    def text(self) -> str:
        parts = (self.authenticator_data, self.client_data_json, self.signature)
        return ASSERTION_PREFIX + ".".join(b64url(part) for part in parts)

    @property
    def sign_count(self) -> int:
        """The authenticator's signature counter (authenticator data bytes 33-36; 0 when short)."""
        return int.from_bytes(self.authenticator_data[33:37], "big") if len(self.authenticator_data) >= 37 else 0


def parse_assertion(signature: str) -> Assertion:
    """``signature`` (``webauthn:<authenticator data>.<client data JSON>.<signature>``) read;
    ValueError says what is wrong."""
    match = _ASSERTION.match(signature) if len(signature) <= MAX_ASSERTION_CHARS else None
    if match is None:
        raise ValueError(
            "a passkey's signature is webauthn:<authenticator data>.<client data JSON>.<signature>, each "
            f"unpadded base64url, at most {MAX_ASSERTION_CHARS} characters in all"
        )
    return Assertion(from_b64url(match[1]), from_b64url(match[2]), from_b64url(match[3]))


def challenge_of(message: bytes) -> bytes:
    """The challenge a passkey signs to sign ``message`` (a record's signing bytes): its SHA-256."""
    return hashlib.sha256(message).digest()


@dataclass(frozen=True)
class RelyingParty:
    """Whom passkey assertions are made for: the relying party id (the console's host name) and the
    origins a page that asks for one may have (the console's address)."""

    rp_id: str
    origins: tuple[str, ...]


def assertion_problem(key: str, signature: str, message: bytes, party: RelyingParty | None) -> Problem | None:
    """None when the passkey pinned as ``key`` made the assertion ``signature`` over ``message`` for
    ``party``, with the user present and verified; otherwise why not. ``party`` None: this process
    was given no console origin (``WARDEN_CONSOLE_ORIGIN``), so it believes no passkey."""
    if party is None:
        return Problem("a passkey's signature, and this process was given no console origin (WARDEN_CONSOLE_ORIGIN)")
    # Imported here: every admin record's module reads this one, and most readers never meet a passkey.
    from webauthn import verify_authentication_response
    from webauthn.helpers.exceptions import WebAuthnException
    from webauthn.helpers.structs import AuthenticationCredential, AuthenticatorAssertionResponse

    try:
        passkey, assertion = parse_passkey(key), parse_assertion(signature)
    except ValueError as exc:
        return Problem(str(exc))
    credential = AuthenticationCredential(
        id=b64url(passkey.credential_id),
        raw_id=passkey.credential_id,
        response=AuthenticatorAssertionResponse(
            client_data_json=assertion.client_data_json,
            authenticator_data=assertion.authenticator_data,
            signature=assertion.signature,
        ),
    )
    try:
        verify_authentication_response(
            credential=credential,
            expected_challenge=challenge_of(message),
            expected_rp_id=party.rp_id,
            expected_origin=list(party.origins),
            credential_public_key=passkey.public_key,
            # The counter is checked by the reader that keeps the counters it has seen
            # (`runtime.admins`), not here: 0 lets any value through this check.
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:  # malformed inside: no traceback
        return Problem(f"the passkey's assertion does not verify: {str(exc)[:200]}")
    return framed_problem(assertion.client_data_json)


def framed_problem(client_data_json: bytes) -> Problem | None:
    """Why an assertion made inside a frame on another site's page is no admin's signature: its
    client data says ``crossOrigin: true`` (or names a ``topOrigin``). The console's pages cannot be
    framed (``frame-ancestors 'none'``), so such an assertion was asked for by a page the admin
    did not open as the console; py_webauthn does not check this."""
    try:
        client = json.loads(client_data_json)
    except ValueError:
        return Problem("the passkey's client data is not JSON")
    if not isinstance(client, dict):
        return Problem("the passkey's client data is not a JSON object")
    if client.get("crossOrigin", False) is not False or "topOrigin" in client:
        top = str(client.get("topOrigin", "another site"))[:100]
        return Problem(
            f"the passkey's assertion was made in a frame on a page of {top} (crossOrigin: true), not on the "
            "console's own page: an admin signs on the console's pages only"
        )
    return None
