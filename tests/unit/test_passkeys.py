"""`schemas.passkeys.assertion_problem`: a passkey's assertion signs a record's bytes only when its
challenge is their SHA-256, it was made for the console's relying party and origin, as a
`webauthn.get`, with the user present and verified, by the pinned key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from schemas.passkeys import (
    Assertion,
    RelyingParty,
    assertion_problem,
    parse_assertion,
    parse_passkey,
    passkey_fingerprint,
)
from tests.passkey_support import PARTY, USER_PRESENT, USER_VERIFIED, SoftPasskey

MESSAGE = b"warden.approval\x00{...the bytes the page showed...}"


def test_an_assertion_over_the_bytes_verifies() -> None:
    passkey = SoftPasskey()
    assert assertion_problem(passkey.pinned(), passkey.sign(MESSAGE), MESSAGE, PARTY) is None


@pytest.mark.parametrize(
    "made, why",
    [
        (lambda p: p.sign(MESSAGE + b" "), "challenge"),  # over other bytes
        (lambda p: p.sign(MESSAGE, origin="https://evil.example"), "origin"),
        (lambda p: p.sign(MESSAGE, rp_id="evil.example"), "RP ID"),
        (lambda p: p.sign(MESSAGE, flags=USER_PRESENT), "verif"),
        (lambda p: p.sign(MESSAGE, flags=USER_VERIFIED), "present"),
        (lambda p: p.sign(MESSAGE, kind="webauthn.create"), "type"),
        (lambda p: SoftPasskey(credential_id=p.credential_id).sign(MESSAGE), "signature"),  # another device
    ],
)
def test_anything_else_is_refused(made: Callable[..., Any], why: str) -> None:
    passkey = SoftPasskey()
    problem = assertion_problem(passkey.pinned(), made(passkey), MESSAGE, PARTY)
    assert problem is not None and why.lower() in str(problem).lower(), problem


def test_no_console_origin_believes_no_passkey() -> None:
    passkey = SoftPasskey()
    problem = assertion_problem(passkey.pinned(), passkey.sign(MESSAGE), MESSAGE, None)
    assert problem is not None and "WARDEN_CONSOLE_ORIGIN" in str(problem)


def test_another_origin_of_the_party_is_believed_only_when_listed() -> None:
    passkey = SoftPasskey()
    signed = passkey.sign(MESSAGE, origin="http://127.0.0.1:8790")
    assert assertion_problem(passkey.pinned(), signed, MESSAGE, PARTY) is not None
    both = RelyingParty("localhost", (*PARTY.origins, "http://127.0.0.1:8790"))
    assert assertion_problem(passkey.pinned(), signed, MESSAGE, both) is None


@pytest.mark.parametrize(
    "key, signature",
    [
        ("0x" + "11" * 32, None),  # an Ed25519 key is not a passkey
        ("passkey:abc", None),
        ("passkey:" + "a" * 4000 + ":b", None),
        (None, "webauthn:a.b"),
        (None, "0x" + "ab" * 64),
        (None, "webauthn:AAAA.AAAA.AAAA"),  # well formed, nothing inside
    ],
)
def test_malformed_keys_and_assertions_are_problems_not_exceptions(key: str | None, signature: str | None) -> None:
    passkey = SoftPasskey()
    problem = assertion_problem(key or passkey.pinned(), signature or passkey.sign(MESSAGE), MESSAGE, PARTY)
    assert problem is not None


def test_the_forms_round_trip_and_the_counter_is_read() -> None:
    passkey = SoftPasskey(counter=41)
    assertion = parse_assertion(passkey.sign(MESSAGE))
    assert assertion.sign_count == 42 and isinstance(assertion, Assertion)
    assert parse_assertion(assertion.text()) == assertion
    pinned = parse_passkey(passkey.pinned())
    assert pinned.credential_id == passkey.credential_id and pinned.text() == passkey.pinned()
    assert len(passkey_fingerprint(passkey.pinned())) == 16
    with pytest.raises(ValueError, match="passkey:<credential id>:<COSE public key>"):
        parse_passkey("passkey:!!:??")
