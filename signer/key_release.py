"""Key release bound to attestation: a vault that requires attestation gives its KEK only to a
requester that proves, with an SEV-SNP report, that it is the expected signer image.

Two parties, as in a production key-release service:

- ``KeyRelease`` (the gate) stands in front of the root of trust's unwrap. It hands out
  single-use nonces, and releases a KEK piece only to a request whose report verifies under the
  attestation policy (AMD's chain, the measurement allowlist, TCB, guest policy) and whose
  report_data binds the requester's id, its service key, a fresh X25519 key made for this one
  request, and the gate's nonce. The piece leaves the gate HPKE-sealed to that fresh key (the
  suite of ``schemas.sealing``), so only the attested guest that asked can open it. Every
  release and every refusal is audited; a refusal is ``ATTESTATION_REQUIRED``.
- ``Attester`` (the requester) makes the fresh key, asks the firmware for a report binding it
  with the nonce, sends the request and opens the answer.

In Warden both run in the signer process, around each root unwrap (``Keks``), so what this
enforces here is that a signer without valid evidence (``tee=none``, a forged or mismatched
report, a replayed one) never obtains the key. It cannot protect the key from a host that reads
the process's memory: that needs the gate outside the guest, which is what the KMS-side
attestation conditions of Google Cloud Confidential Space and Azure Secure Key Release are (see
docs/security.md); the request and answer here have the same shape, so the gate can move there.
"""

from __future__ import annotations

import secrets
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from runtime.attestation import evidence as evidence_
from runtime.attestation.policy import AttestationPolicy, failures
from runtime.attestation.verify import parse_report, report_data_binding
from schemas.actions import AuditAction
from schemas.emit import Emit
from schemas.sealing import SUITE
from signer.custody._crypto import wipe
from signer.custody.access import audit_record
from signer.custody.errors import AttestationRequired

RELEASE_LABEL = b"warden key release v1"
NONCE_TTL_S = 60


def release_info(context: bytes) -> bytes:
    """HPKE info of a released piece: the label, then the slot's associated data, length-prefixed."""
    return RELEASE_LABEL + struct.pack(">I", len(context)) + context


@dataclass(frozen=True)
class ReleaseRequest:
    requester: str  # the signer id the report binds
    ephemeral_public: bytes  # X25519, made for this request only
    service_public: bytes  # the requester's Ed25519 service key
    nonce: bytes  # the gate's, from ``KeyRelease.challenge``
    report: bytes | None  # None: the requester has no TEE to ask
    vcek: bytes | None
    source: str  # how the evidence was obtained, or why there is none


class KeyRelease:
    """The gate. ``audit`` receives the record of each release and refusal."""

    def __init__(
        self, policy: AttestationPolicy, audit: Callable[[Emit], None] | None = None, nonce_ttl_s: int = NONCE_TTL_S
    ):
        self.policy = policy
        self._audit = audit or (lambda _record: None)
        self._ttl = timedelta(seconds=nonce_ttl_s)
        self._nonces: dict[bytes, datetime] = {}
        self._lock = threading.Lock()

    def challenge(self, now: datetime) -> bytes:
        """A fresh nonce, good for one request within ``nonce_ttl_s``."""
        nonce = secrets.token_bytes(32)
        with self._lock:
            self._nonces = {n: at for n, at in self._nonces.items() if now - at <= self._ttl}
            self._nonces[nonce] = now
        return nonce

    def release(
        self, request: ReleaseRequest, unwrap: Callable[[], bytearray], resource: str, context: bytes, now: datetime
    ) -> bytes:
        """``unwrap()``'s key material HPKE-sealed to ``request.ephemeral_public``, if the request's
        evidence verifies; else ``AttestationRequired``, audited. ``context`` (the slot's associated
        data) goes into the HPKE info, so a sealed piece opens as no other slot's."""
        with self._lock:
            issued_at = self._nonces.pop(request.nonce, None)  # single use, whatever the outcome
        why = self._refusal(request, issued_at, now)
        actor = f"service:{request.requester}"
        if why:
            record = self._audit_record(
                actor,
                AuditAction.KEY_RELEASE_REFUSED,
                resource,
                now,
                request,
                reason=why,
                code=AttestationRequired.code,
                evidence=request.source,
            )
            raise AttestationRequired(
                f"the vault requires attestation and releases its key only to an attested "
                f"signer; {request.requester}'s request was refused: " + "; ".join(why),
                audit=record,
            )
        report = parse_report(request.report or b"")
        material = unwrap()
        try:
            sealed = SUITE.encrypt(
                bytes(material), X25519PublicKey.from_public_bytes(request.ephemeral_public), info=release_info(context)
            )
        finally:
            wipe(material)
        self._audit_record(
            actor,
            AuditAction.KEY_RELEASED,
            resource,
            now,
            request,
            measurement=report.measurement.hex(),
            chip_id=report.chip_id.hex()[:16],
            evidence=request.source,
        )
        return sealed

    def _refusal(self, request: ReleaseRequest, issued_at: datetime | None, now: datetime) -> list[str]:
        if issued_at is None:
            return ["the nonce is not one this gate issued, or it was used already (a replayed request)"]
        if request.report is None:
            return [f"the requester has no attestation report (tee=none: {request.source})"]
        if request.vcek is None:
            return ["the request carries no VCEK to verify the report with"]
        binding = report_data_binding(
            request.requester, request.ephemeral_public, request.service_public, request.nonce
        )
        return failures(self.policy.verify(request.report, request.vcek, binding, issued_at, now))

    def _audit_record(
        self, actor: str, action: AuditAction, resource: str, now: datetime, request: ReleaseRequest, **details: Any
    ) -> Emit:
        record = audit_record(
            actor,
            action,
            resource,
            now,
            request.requester,
            request.nonce.hex(),
            tee="none" if request.report is None else "sev-snp",
            **details,
        )
        self._audit(record)
        return record


class Attester:
    """This signer asking ``gate`` for key material, with a report from ``obtain``: what ``Keks``
    calls to unwrap a slot of a vault that requires attestation."""

    def __init__(
        self,
        gate: KeyRelease,
        signer_id: str,
        service_public: bytes,
        obtain: Callable[[bytes], evidence_.Evidence] = evidence_.obtain,
        vcek_file: str | None = None,
    ):
        self.gate = gate
        self.signer_id = signer_id
        self.service_public = service_public
        self._obtain = obtain
        self._vcek_file = vcek_file

    def __call__(self, unwrap: Callable[[], bytearray], resource: str, context: bytes, now: datetime) -> bytearray:
        ephemeral = X25519PrivateKey.generate()
        public = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        nonce = self.gate.challenge(now)
        found = self._obtain(report_data_binding(self.signer_id, public, self.service_public, nonce))
        request = ReleaseRequest(
            self.signer_id,
            public,
            self.service_public,
            nonce,
            found.report,
            evidence_.vcek_of(found, self._vcek_file),
            found.source,
        )
        sealed = self.gate.release(request, unwrap, resource, context, now)
        return bytearray(SUITE.decrypt(sealed, ephemeral, info=release_info(context)))
