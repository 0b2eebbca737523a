"""A passkey in software for tests that cannot use a browser: an ES256 (P-256) key whose COSE
public key is pinned like a device's, making WebAuthn assertions byte for byte as an authenticator
and a browser would (authenticator data, client data JSON, a DER ECDSA signature over the two).
The browser tests use Chromium's virtual authenticator instead; this one lets a unit test vary
every part of an assertion."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from schemas.admins import AdminSignature
from schemas.auth import AdminSignedT
from schemas.passkeys import Assertion, PasskeyKey, RelyingParty, b64url, challenge_of

ORIGIN = "http://localhost:8790"
PASSKEY_ADMIN = "passkey-admin"  # the passkey admin's id where a stack pins one
PARTY = RelyingParty(rp_id="localhost", origins=(ORIGIN,))
USER_PRESENT, USER_VERIFIED = 0x01, 0x04


@dataclass
class SoftPasskey:
    private: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: os.urandom(16))
    counter: int = 0

    def pinned(self) -> str:
        """The admin key string an admin set pins for this passkey."""
        numbers = self.private.public_key().public_numbers()
        cose = {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        return PasskeyKey(self.credential_id, cbor2.dumps(cose)).text()

    def sign(
        self,
        message: bytes,
        *,
        origin: str = ORIGIN,
        rp_id: str = "localhost",
        flags: int = USER_PRESENT | USER_VERIFIED,
        kind: str = "webauthn.get",
        challenge: bytes | None = None,
        count: int | None = None,
        framed_by: str | None = None,
    ) -> str:
        """An assertion over ``message`` (its challenge `challenge_of` it unless ``challenge``), as
        the admin's signature in a record; the counter moves on by one unless ``count`` is given.
        ``framed_by``: made in a frame on that origin's page (``crossOrigin: true``, its
        ``topOrigin``), as a browser makes one for a page that framed the console's."""
        if count is None:
            self.counter += 1
            count = self.counter
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + count.to_bytes(4, "big")
        framing = {"crossOrigin": False} if framed_by is None else {"crossOrigin": True, "topOrigin": framed_by}
        client = json.dumps(
            {"type": kind, "challenge": b64url(challenge or challenge_of(message)), "origin": origin, **framing}
        ).encode()
        signature = self.private.sign(data + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256()))
        return Assertion(data, client, signature).text()


def passkey_signed(record: AdminSignedT, passkey: SoftPasskey, key_id: str, **made: Any) -> AdminSignedT:
    """``record`` signed by the passkey admin ``key_id``, as `schemas.auth`'s signers sign with an
    Ed25519 key: its assertion over the record's signing bytes (``made``: what `SoftPasskey.sign`
    varies)."""
    unsigned = record.model_copy(update={"admin_key_id": key_id, "signature": "", "cosignatures": ()})
    return unsigned.model_copy(update={"signature": passkey.sign(unsigned.signing_bytes(), **made)})


def passkey_cosigned(record: AdminSignedT, passkey: SoftPasskey, key_id: str, **made: Any) -> AdminSignedT:
    """``record`` with one more admin's signature: the passkey admin ``key_id``'s assertion."""
    more = AdminSignature(admin_key_id=key_id, signature=passkey.sign(record.signing_bytes(), **made))
    return record.model_copy(update={"cosignatures": (*record.cosignatures, more)})
