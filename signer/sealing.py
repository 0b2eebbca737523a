"""The signer's sealing key: the private half of what clients seal their shares to.

Made in memory when the signer starts and never written anywhere, so a share sealed to it
opens only inside this process; a restart makes a new key and announces it. See
``schemas.sealing`` for the client side and the wire format.
"""

from __future__ import annotations

import base64
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from schemas.errors import WardenError
from schemas.intent import SealedSecret, TransactionIntent
from schemas.sealing import SUITE, SUITE_NAME, key_id, sealing_info
from schemas.sealing_key import AttestationEvidence, SealingKey
from signer.custody.errors import InvalidKey


class NotSealedHere(WardenError):
    """The intent carries sealed shares, but none for this signer's current key."""


class SealingKeyPair:
    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()
        self.public_key = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id(self.public_key)

    def __repr__(self) -> str:
        return f"SealingKeyPair(key_id={self.key_id!r})"

    def announcement(
        self, signer_id: str, tee: str, now: datetime, attestation: AttestationEvidence | None = None
    ) -> SealingKey:
        return SealingKey(
            signer_id=signer_id,
            key_id=self.key_id,
            public_key="0x" + self.public_key.hex(),
            suite=SUITE_NAME,
            tee=tee,
            attestation=attestation,
            announced_at=now,
        )

    def open_client_share(self, intent: TransactionIntent) -> bytearray:
        """The client share sealed to this key for this intent. No sealed share at all, or one that
        does not open, is ``InvalidKey``: the same opaque failure as a wrong share. Shares sealed
        only to other keys are ``NotSealedHere`` (the client sealed to a signer that restarted)."""
        return self._open(intent.sealed_client_share, intent, "client_share")

    def open_cmek(self, intent: TransactionIntent) -> bytearray:
        """The vault's customer-managed key sealed to this key for this intent; failures as above."""
        return self._open(intent.sealed_cmek, intent, "cmek")

    def _open(self, copies: tuple[SealedSecret, ...], intent: TransactionIntent, purpose: str) -> bytearray:
        if not copies:
            raise InvalidKey()
        mine = [s for s in copies if s.key_id == self.key_id]
        if not mine:
            raise NotSealedHere(
                f"the intent's shares are sealed to other keys, none to this signer's current key {self.key_id}",
                "submit it again: the client seals to the key the signer announces on warden.signer.sealing",
            )
        info = sealing_info(intent.agent_id, intent.intent_id, self.key_id, purpose)
        for sealed in mine:  # the first that opens: a broken copy beside a good one does not spoil it
            try:
                blob = base64.b64decode(sealed.sealed, validate=True)
                # cryptography's HPKE returns immutable bytes; the bytearray copy is what gets wiped.
                return bytearray(SUITE.decrypt(blob, self._private, info=info))
            except Exception:  # bad base64, a tampered or misbound envelope: all the same "no"
                continue
        raise InvalidKey()
