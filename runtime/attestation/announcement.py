"""A signer's sealing-key announcement, attested; and how a client checks one.

On SEV-SNP the signer asks the firmware for a report whose report_data binds its id, its X25519
sealing key, its Ed25519 service key (the one that signs its outcomes) and a nonce derived from
the announcement's time. A broadcast announcement has no verifier to hand it a nonce, so the
time is the nonce: a verifier recomputes it from ``announced_at`` and refuses an announcement
older than the policy's ``max_age_s``, and the signer re-announces before that. (A verifier that
wants its own nonce asks `warden signer attest --nonce`; key release always uses its own.)

Anyone can write to ``warden.signer.sealing``. A substituted key cannot carry a report binding
it: the report is signed by the chip, and report_data names the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime

from runtime.attestation import evidence as evidence_
from runtime.attestation.policy import AttestationPolicy, failures
from runtime.attestation.verify import Verification, parse_report, report_data_binding
from schemas.auth import Role, ServiceKeys
from schemas.sealing_key import AttestationEvidence, SealingKey

ANNOUNCEMENT_DOMAIN = b"warden-sev-snp-announcement-v1"


def announcement_nonce(signer_id: str, announced_at: datetime) -> bytes:
    """The nonce of an announcement: its signer and its time, hashed (32 bytes)."""
    return hashlib.sha256(
        b"\0".join((ANNOUNCEMENT_DOMAIN, signer_id.encode(), announced_at.isoformat().encode()))
    ).digest()


def attest(
    signer_id: str,
    sealing_public: bytes,
    service_public: bytes,
    announced_at: datetime,
    *,
    product: str,
    vcek_file: str | None,
    obtain: Callable[[bytes], evidence_.Evidence] = evidence_.obtain,
) -> tuple[AttestationEvidence | None, str]:
    """This signer's evidence for an announcement at ``announced_at``: (evidence, how it was
    obtained), or (None, why there is none)."""
    nonce = announcement_nonce(signer_id, announced_at)
    found = obtain(report_data_binding(signer_id, sealing_public, service_public, nonce))
    if found.report is None:
        return None, found.source
    report = parse_report(found.report)
    vcek = evidence_.vcek_of(found, vcek_file)
    return AttestationEvidence(
        report=base64.b64encode(found.report).decode(),
        vcek=base64.b64encode(vcek).decode() if vcek else None,
        vcek_url=evidence_.vcek_url(report, product),
        product=product,
        service_key_id=signer_id,
        service_public_key="0x" + service_public.hex(),
        nonce="0x" + nonce.hex(),
    ), found.source


def check(
    key: SealingKey, policy: AttestationPolicy, now: datetime, pinned_service_key: str | None = None
) -> Verification:
    """Every check of an attested announcement: the report under ``policy``, report_data binding
    this very key, the signer's service key and the announcement's nonce, and (when the reader
    pins one) that service key being the pinned one."""
    result = Verification(None)
    found = key.attestation
    if found is None:
        result.add("evidence", False, f"signer {key.signer_id} announces tee={key.tee} but carries no report")
        return result
    if found.product != policy.product:
        result.add(
            "product",
            False,
            f"the report is from a {found.product} chip; this client expects "
            f"{policy.product} (WARDEN_ATTESTATION_PRODUCT)",
        )
        return result
    if found.vcek is None:
        result.add(
            "vcek",
            False,
            f"the announcement carries no VCEK; it is at {found.vcek_url}: the signer's host "
            "should provide it (certificate table or WARDEN_SEV_VCEK)",
        )
        return result
    try:
        report, vcek = base64.b64decode(found.report, validate=True), base64.b64decode(found.vcek, validate=True)
    except (binascii.Error, ValueError):
        result.add("evidence", False, "the report or VCEK is not base64")
        return result
    expected_nonce = announcement_nonce(key.signer_id, key.announced_at)
    if found.nonce != "0x" + expected_nonce.hex() or found.service_key_id != key.signer_id:
        result.add("nonce", False, "the evidence's nonce or service key id is not this announcement's")
        return result
    binding = report_data_binding(
        key.signer_id, bytes.fromhex(key.public_key[2:]), bytes.fromhex(found.service_public_key[2:]), expected_nonce
    )
    result = policy.verify(report, vcek, binding, key.announced_at, now)
    if pinned_service_key is not None:
        result.add(
            "service_key",
            pinned_service_key == found.service_public_key,
            f"the report binds service key {found.service_public_key[:18]}…; this client pins "
            f"{pinned_service_key[:18]}… for {key.signer_id}",
        )
    return result


def problems(
    key: SealingKey, policy: AttestationPolicy | None, now: datetime, pinned_service_key: str | None = None
) -> list[str]:
    """Why a client must not trust this attested announcement (empty: it may)."""
    if policy is None:
        return ["this client has no attestation policy to verify the report against"]
    return failures(check(key, policy, now, pinned_service_key))


class AttestedServiceKeys:
    """Outcome-signing keys, with attested signers held to the key their report binds.

    A signer that announced a verified report signs outcomes with the service key bound in that
    report, and only with it: if the reader also pins a key for that signer, the two must agree.
    A signer that claims a TEE but whose report does not verify has no key at all here, so its
    outcomes are not believed. Signers announcing ``tee=none`` keep the pinned keys."""

    def __init__(
        self, pinned: ServiceKeys, announcements: Sequence[SealingKey], policy: AttestationPolicy | None, now: datetime
    ):
        self._pinned = pinned
        self.bound: dict[str, str] = {}
        self.refused: dict[str, list[str]] = {}
        for key in announcements:
            if key.tee == "none":
                continue
            why = problems(key, policy, now)
            if why:
                self.refused[key.signer_id] = why
            else:
                assert key.attestation is not None
                self.bound[key.signer_id] = key.attestation.service_public_key

    def key(self, role: Role, key_id: str) -> str | None:
        if role == "signer":
            if key_id in self.refused:
                return None
            if key_id in self.bound:
                pinned = self._pinned.key(role, key_id)
                return self.bound[key_id] if pinned in (None, self.bound[key_id]) else None
        return self._pinned.key(role, key_id)
