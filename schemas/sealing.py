"""How client-held secrets reach the signer: sealed with HPKE (RFC 9180) to the signer's sealing key.

In the client-custody modes every signature needs the client's share of the vault key, and
the share must never travel in the clear: not on a topic, not in a log. The signer makes an
X25519 key pair in memory when it starts and announces the public half (``SealingKey`` on
``warden.signer.sealing``). A client seals its share to that key, once per intent: the HPKE
``info`` binds the agent, the intent and the sealing key, so a sealed share lifted from one
intent opens for no other, and a share sealed to a signer that has since restarted opens
nowhere. HPKE is cryptography's implementation (base mode, single shot), so producers in
other languages can seal with any RFC 9180 library: suite DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-256-GCM; ``info`` as ``sealing_info`` below; empty AAD. A vault's
customer-managed key (CMEK) travels the same way, under its own label.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable, Iterable, Sequence

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from schemas.auth import announcement_forgery
from schemas.errors import Problem, WardenError
from schemas.intent import SealedSecret
from schemas.sealing_key import SealingKey

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
SUITE_NAME = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM"


class SealingRefused(WardenError):
    """The client will not seal its share to these keys; the message says why and what to do."""


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(b"warden/sealing-key\x00" + public_key).hexdigest()[:16]


# What is sealed, and the label that starts its HPKE info: a sealed CMEK can never open as a share.
PURPOSES = {"client_share": b"warden client share v1", "cmek": b"warden cmek v1"}


def sealing_info(agent_id: str, intent_id: str, key_id_: str, purpose: str = "client_share") -> bytes:
    """HPKE info: the purpose's label, then each part length-prefixed (4-byte big-endian length, UTF-8)."""
    out = bytearray(PURPOSES[purpose])
    for part in (agent_id, intent_id, key_id_):
        raw = part.encode()
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out)


def refusal(
    key: SealingKey,
    *,
    allow_unattested: bool,
    attestation_problems: Callable[[SealingKey], list[str]] | None = None,
    service_key: Callable[[str], str | None] | None = None,
) -> Problem | None:
    """Why a client must not seal to ``key`` (None: it may): an attested key whose report
    ``attestation_problems`` finds something wrong with (``runtime.attestation.announcement.problems``);
    a ``tee=none`` key unless the client says so (the embedded stack does), and then unless the
    signer's pinned service key (``service_key(signer id)``) signed its announcement."""
    if key.key_id != key_id(bytes.fromhex(key.public_key[2:])):
        return Problem(
            f"{key.signer_id}: its announcement names a key id that is not its public key's (a broken or "
            "forged record on warden.signer.sealing)"
        )
    if key.tee == "none":
        if allow_unattested:
            return announcement_forgery(key, None if service_key is None else service_key(key.signer_id))
        return Problem(
            f"{key.signer_id}: runs with tee=none, so no hardware proves its sealing key is the signer's",
            "accept that explicitly (WARDEN_ALLOW_UNATTESTED_SIGNER=1, as on the embedded stack) or run the "
            "signer on SEV-SNP",
        )
    why = (
        ["this client cannot verify attestation reports"] if attestation_problems is None else attestation_problems(key)
    )
    return (
        Problem(f"{key.signer_id} (tee={key.tee}): its attestation does not verify: " + "; ".join(why)) if why else None
    )


def usable_keys(
    keys: Sequence[SealingKey],
    *,
    allow_unattested: bool,
    attestation_problems: Callable[[SealingKey], list[str]] | None = None,
    service_key: Callable[[str], str | None] | None = None,
) -> list[SealingKey]:
    """The keys a client may seal to (``refusal`` says which). Keys that fail are left out; if
    none is left the client refuses, saying why each failed: never a sealed share for a key
    nothing proves."""
    if not keys:
        raise SealingRefused("no signer has announced a sealing key on warden.signer.sealing: is the signer running?")
    why = [
        refusal(
            key, allow_unattested=allow_unattested, attestation_problems=attestation_problems, service_key=service_key
        )
        for key in keys
    ]
    usable = [key for key, reason in zip(keys, why, strict=True) if reason is None]
    if not usable:
        # None of them is usable, so every reason is a refusal.
        refusals = [str(reason) for reason in why if reason is not None]
        raise SealingRefused("no signer's sealing key can be trusted, so nothing was sealed: " + " | ".join(refusals))
    return usable


def newest_per_signer(
    keys: Iterable[SealingKey], accept: Callable[[SealingKey], bool] | None = None
) -> list[SealingKey]:
    """Each signer's newest announcement; with ``accept``, its newest that ``accept`` takes, and
    its newest of all only when it takes none (so a refusal can say why). Anyone can write to
    ``warden.signer.sealing``: a forged announcement dated after the signer's real one, even far
    in the future, must not hide it from a client that can tell the two apart."""
    newest: dict[str, SealingKey] = {}
    accepted: dict[str, SealingKey] = {}

    def keep(held: dict[str, SealingKey], key: SealingKey) -> None:
        known = held.get(key.signer_id)
        if known is None or key.announced_at >= known.announced_at:
            held[key.signer_id] = key

    for key in keys:
        keep(newest, key)
        if accept is not None and accept(key):
            keep(accepted, key)
    return sorted({**newest, **accepted}.values(), key=lambda k: k.signer_id)


def seal_secret(
    secret: bytes | bytearray, keys: Sequence[SealingKey], *, agent_id: str, intent_id: str, purpose: str
) -> tuple[SealedSecret, ...]:
    """One sealed copy per signer key (the client cannot know which signer owns the agent's
    partition). ``keys`` must already be ``usable_keys``."""
    sealed = []
    for key in keys:
        public = X25519PublicKey.from_public_bytes(bytes.fromhex(key.public_key[2:]))
        blob = SUITE.encrypt(secret, public, info=sealing_info(agent_id, intent_id, key.key_id, purpose))
        sealed.append(SealedSecret(key_id=key.key_id, sealed=base64.b64encode(blob).decode()))
    return tuple(sealed)


def seal_client_share(
    client_share: bytes | bytearray, keys: Sequence[SealingKey], *, agent_id: str, intent_id: str
) -> tuple[SealedSecret, ...]:
    return seal_secret(client_share, keys, agent_id=agent_id, intent_id=intent_id, purpose="client_share")


def decode_client_share(text: str) -> bytearray:
    """The base64 share shown when the vault was created → bytes, with a clear error if it is not one."""
    return _decode_32(text, "the client share", "the base64 text shown when the vault was created")


def decode_cmek(text: str) -> bytearray:
    """A customer-managed key given as base64 text → bytes, with a clear error if it is not one."""
    return _decode_32(text, "a customer-managed key", "base64 text of 32 random bytes (AES-256)")


def _decode_32(text: str, what: str, expected: str) -> bytearray:
    try:
        raw = bytearray(base64.b64decode(text.strip(), validate=True))
    except ValueError:
        raise ValueError(f"{what} must be {expected}") from None
    if len(raw) != 32:
        size = len(raw)
        raw[:] = bytes(size)
        raise ValueError(f"{what} is 32 bytes (44 base64 characters); this one is {size} bytes")
    return raw
