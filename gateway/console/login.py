"""Logging in with a passkey: the options a page hands to ``navigator.credentials.get`` (a fresh
challenge, the credentials of the passkey admins in force) and the assertion checked against the
admin set in force, as the worker and the signer check an admin's signature
(`schemas.passkeys.assertion_problem`: the signature, the relying party, the origin, the
challenge, user presence and verification). No passwords: an admin whose key is not a passkey
logs in nowhere here; they decide with `warden approvals`."""

from __future__ import annotations

import json
from collections.abc import Mapping

from schemas.errors import Problem
from schemas.passkeys import (
    RelyingParty,
    assertion_problem,
    b64url,
    challenge_of,
    is_passkey,
    parse_assertion,
    parse_passkey,
)


def passkey_admins(keys: Mapping[str, str]) -> dict[str, str]:
    """Admin id → credential id (base64url) of each admin whose pinned key is a passkey."""
    found = {}
    for admin_id, key in keys.items():
        if is_passkey(key):
            try:
                found[admin_id] = b64url(parse_passkey(key).credential_id)
            except ValueError:
                continue  # not a passkey anyone can log in with
    return found


def request_options(party: RelyingParty, message: bytes, credential_ids: list[str]) -> str:
    """The options for ``navigator.credentials.get`` over ``message`` (its SHA-256 the challenge)."""
    return json.dumps(
        {
            "challenge": b64url(challenge_of(message)),
            "rpId": party.rp_id,
            "allowCredentials": [{"type": "public-key", "id": c} for c in credential_ids],
            "userVerification": "required",
            "timeout": 120_000,
        }
    )


class Counters:
    """The newest signature counter seen of each passkey: an assertion whose counter does not move
    on is a copy, or from a cloned device. An authenticator that keeps no counter says 0 every
    time; one that said more than 0 keeps one, and its counter never goes back to 0 (WebAuthn,
    6.1.1): a 0 after it is a clone's."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def problem(self, key: str, assertion: str) -> Problem | None:
        count = parse_assertion(assertion).sign_count
        last = self._seen.get(key, 0)
        if count != 0 and count <= last:
            return Problem(f"the passkey's signature counter is {count}, not past {last}: a replayed assertion")
        if count == 0 and last != 0:
            return Problem(
                f"the passkey's signature counter is 0 after {last}: an authenticator that counts never goes "
                "back to 0, so this one is a clone"
            )
        return None

    def saw(self, key: str, assertion: str) -> None:
        self._seen[key] = max(self._seen.get(key, 0), parse_assertion(assertion).sign_count)


def logged_in(
    keys: Mapping[str, str],
    credential_id: str,
    assertion: str,
    message: bytes,
    party: RelyingParty,
    counters: Counters,
) -> str | Problem:
    """The admin whose pinned passkey (credential ``credential_id``, base64url) made ``assertion``
    over ``message`` for ``party``; or why nobody logs in."""
    admins = {c: admin_id for admin_id, c in passkey_admins(keys).items()}
    admin_id = admins.get(credential_id)
    if admin_id is None:
        return Problem("this passkey is not pinned for any admin in force; enrol it and have the quorum pin it")
    key = keys[admin_id]
    try:
        problem = assertion_problem(key, assertion, message, party) or counters.problem(key, assertion)
    except ValueError as exc:
        problem = Problem(str(exc))
    if problem is not None:
        return problem
    counters.saw(key, assertion)
    return admin_id
