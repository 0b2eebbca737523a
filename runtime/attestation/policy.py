"""What a verifier requires of a signer's SEV-SNP report, from configuration.

One policy serves both verifiers: a client deciding whether to seal a secret to a signer, and
the key release of a vault that requires attestation. With no measurement allowlist nothing is
accepted: a report that verifies against AMD's chain proves only that *some* guest ran on an
AMD chip, and without an expected measurement that guest could be anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from runtime.attestation.verify import PRODUCTS, Expectations, Tcb, Verification, verify_report
from runtime.config import AttestationSettings
from schemas.errors import WardenError


class PolicyError(WardenError, ValueError):
    """The attestation settings do not parse; the message names the variable."""


@dataclass(frozen=True)
class AttestationPolicy:
    product: str = "milan"
    measurements: tuple[bytes, ...] = ()
    minimum_tcb: Tcb = Tcb(0, 0, 0, 0)
    allow_debug: bool = False
    allow_smt: bool = True
    allow_migration_agent: bool = False
    max_age_s: int = 3600
    # (ASK, ARK) to verify against instead of the roots shipped for ``product``: a test chain.
    # Configuration never sets it; only code that builds its own chip does.
    chain: tuple[x509.Certificate, x509.Certificate] | None = None

    @classmethod
    def from_settings(cls, settings: AttestationSettings) -> "AttestationPolicy":
        if settings.product not in PRODUCTS:
            raise PolicyError(f"WARDEN_ATTESTATION_PRODUCT is {settings.product!r}; one of {', '.join(PRODUCTS)}")
        measurements = []
        for text in settings.measurements:
            try:
                value = bytes.fromhex(text.removeprefix("0x"))
            except ValueError:
                value = b""
            if len(value) != 48:
                raise PolicyError(
                    f"WARDEN_ATTESTATION_MEASUREMENTS: {text!r} is not 48 bytes of hex (96 digits); "
                    "`warden attest measure` prints one"
                )
            measurements.append(value)
        try:
            parts = [int(p) for p in settings.minimum_tcb.split(",")]
            if len(parts) not in (4, 5):
                raise ValueError
            minimum = Tcb(parts[0], parts[1], parts[2], parts[3], fmc=parts[4] if len(parts) == 5 else None)
        except ValueError:
            raise PolicyError(
                f"WARDEN_ATTESTATION_MINIMUM_TCB is {settings.minimum_tcb!r}; expected "
                "BOOTLOADER,TEE,SNP,MICROCODE[,FMC], e.g. 3,0,8,115"
            ) from None
        return cls(
            product=settings.product,
            measurements=tuple(measurements),
            minimum_tcb=minimum,
            allow_debug=settings.allow_debug,
            allow_smt=not settings.refuse_smt,
            allow_migration_agent=settings.allow_migration_agent,
            max_age_s=settings.max_age_s,
        )

    def verify(
        self, report: bytes, vcek_der: bytes, report_data: bytes, issued_at: datetime, now: datetime
    ) -> Verification:
        """Every check of ``verify_report`` under this policy, and one more: an allowlist exists."""
        result = verify_report(
            report,
            vcek_der,
            Expectations(
                product=self.product,
                measurements=self.measurements,
                minimum_tcb=self.minimum_tcb,
                allow_debug=self.allow_debug,
                allow_smt=self.allow_smt,
                allow_migration_agent=self.allow_migration_agent,
                report_data=report_data,
                nonce_issued_at=issued_at,
                nonce_max_age_s=self.max_age_s,
                now=now,
            ),
            chain=self.chain,
        )
        if not self.measurements:
            result.add(
                "measurement.allowlist",
                False,
                "no launch measurement is allowed: configure "
                "WARDEN_ATTESTATION_MEASUREMENTS with the measurement of the signer image you run "
                "(`warden attest measure`)",
            )
        return result


def failures(result: Verification) -> list[str]:
    """Each failed check as "name: detail", for error messages and audit records."""
    return [f"{c.name}: {c.detail}" for c in result.failures] or ([] if result.ok else ["no check ran"])
