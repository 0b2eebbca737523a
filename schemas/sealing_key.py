"""A signer's announcement of its sealing key, and the SEV-SNP evidence that binds it."""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import ConfigDict, Field

from schemas.fields import HexData, Identifier, UtcDatetime
from schemas.record import SCHEMA_VERSION, Record


class AttestationEvidence(Record):
    """An SEV-SNP report and what it binds: its report_data is
    ``runtime.attestation.verify.report_data_binding(signer_id, sealing key, service_public_key,
    nonce)``, and an announcement's nonce is derived from its ``announced_at``
    (``runtime.attestation.announcement.announcement_nonce``), so a verifier recomputes both."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    report: str = Field(max_length=2048, description="the 1184-byte attestation report, base64")
    vcek: str | None = Field(
        default=None,
        max_length=4096,
        description="the chip's VCEK (DER, base64), when the host's certificate table gave it",
    )
    vcek_url: str = Field(max_length=512, description="where AMD's KDS serves this chip's VCEK at this TCB")
    product: Literal["milan", "genoa", "turin"]
    service_key_id: Identifier
    service_public_key: HexData = Field(description="the Ed25519 key that signs this signer's outcomes")
    nonce: HexData


class SealingKey(Record):
    """A signer's announcement of its sealing key: an X25519 public key made in memory when the
    signer starts and never stored. ``tee`` says where the signer runs; on SEV-SNP
    ``attestation`` carries a report binding this key, the signer's service key and a nonce
    derived from ``announced_at``. With ``tee="none"`` no hardware vouches for the key: clients
    refuse it unless told to accept an unattested signer, and then take it only signed by the
    signer's pinned service key (``signed_by``, ``service_signature``, as an outcome is)."""

    signer_id: Identifier
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    public_key: HexData
    suite: Literal["DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM"]
    tee: str
    attestation: AttestationEvidence | None = None
    announced_at: UtcDatetime
    signed_by: str = Field(default="", description="the key id of the signer's service key that signed this")
    service_signature: str = Field(default="", description="Ed25519 over service_signing_bytes(), hex")

    def service_signing_bytes(self) -> bytes:
        """The announcement as it travels without service_signature, keys sorted (as an outcome's)."""
        return orjson.dumps(
            self.model_dump(mode="json", by_alias=True, exclude={"service_signature"}), option=orjson.OPT_SORT_KEYS
        )
