"""Parse and verify an AMD SEV-SNP attestation report.

The layout is AMD's "SEV Secure Nested Paging Firmware ABI Specification" (publication 56860),
table ATTESTATION_REPORT: 1184 bytes, versions 2, 3 and 5 (3 adds the CPUID family, model and
stepping; 5 the mitigation vectors). The firmware signs bytes 0x000..0x29F with ECDSA P-384 over
SHA-384, using the chip's VCEK (or a cloud provider's VLEK); r and s are little-endian, 72 bytes
each, at 0x2A0 and 0x2E8. The VCEK is certified by AMD's ASK and the ASK by the ARK of its
processor generation (RSASSA-PSS, SHA-384); the ARKs of Milan, Genoa and Turin ship in
``roots/`` (AMD's public certificates, as published by AMD's KDS and copied from
google/go-sev-guest, Apache-2.0).

`verify_report` runs every check and returns each with its outcome and reason, so a caller (and
`warden attest verify`) can say exactly what failed; `Verification.ok` is true only if all passed.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.utils import CryptographyDeprecationWarning

from schemas.errors import Problem, WardenError

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0
SUPPORTED_VERSIONS = (2, 3, 5)
ECDSA_P384_SHA384 = 1
CLOCK_SKEW_S = 60
ROOTS = Path(__file__).resolve().parent / "roots"
PRODUCTS = ("milan", "genoa", "turin")

# GUEST_POLICY bits (ABI table "GUEST_POLICY").
POLICY_SMT = 1 << 16
POLICY_RESERVED_ONE = 1 << 17
POLICY_MIGRATE_MA = 1 << 18
POLICY_DEBUG = 1 << 19


class ReportError(WardenError, ValueError):
    """A byte string that is not an attestation report this module reads."""


@dataclass(frozen=True)
class Tcb:
    """A TCB version: the security patch levels of each firmware component. Milan and Genoa pack
    bootloader, TEE, SNP and microcode at bytes 0, 1, 6 and 7; Turin adds FMC at byte 0 and moves
    the others to 1, 2, 3 and 7."""

    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None

    @classmethod
    def decode(cls, raw: int, product: str) -> "Tcb":
        b = raw.to_bytes(8, "little")
        if product == "turin":
            return cls(bootloader=b[1], tee=b[2], snp=b[3], microcode=b[7], fmc=b[0])
        return cls(bootloader=b[0], tee=b[1], snp=b[6], microcode=b[7])

    def at_least(self, minimum: "Tcb") -> bool:
        return (
            self.bootloader >= minimum.bootloader
            and self.tee >= minimum.tee
            and self.snp >= minimum.snp
            and self.microcode >= minimum.microcode
            and (minimum.fmc is None or (self.fmc or 0) >= minimum.fmc)
        )

    def __str__(self) -> str:
        fmc = "" if self.fmc is None else f"fmc {self.fmc}, "
        return f"{fmc}bootloader {self.bootloader}, tee {self.tee}, snp {self.snp}, microcode {self.microcode}"


@dataclass(frozen=True)
class AttestationReport:
    raw: bytes
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: int
    platform_info: int
    flags: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    reported_tcb: int
    chip_id: bytes
    committed_tcb: int
    launch_tcb: int
    cpuid: tuple[int, int, int] | None  # family, model, stepping (version 3 and later)
    signature_r: int
    signature_s: int

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:SIGNED_SIZE]

    @property
    def signing_key(self) -> str:
        return {0: "vcek", 1: "vlek", 7: "none"}.get((self.flags >> 2) & 0b111, "reserved")

    @property
    def debug(self) -> bool:
        return bool(self.policy & POLICY_DEBUG)


def parse_report(raw: bytes) -> AttestationReport:
    """The report's fields, by the ABI's offsets. Refuses a wrong size, an unknown version, an
    unknown signature algorithm and a signature with bytes past the P-384 width."""
    if len(raw) != REPORT_SIZE:
        raise ReportError(f"an SEV-SNP attestation report is {REPORT_SIZE} bytes, got {len(raw)}")
    version, guest_svn, policy = struct.unpack_from("<IIQ", raw, 0x00)
    if version not in SUPPORTED_VERSIONS:
        raise ReportError(f"report version {version} is not one this verifier reads ({SUPPORTED_VERSIONS})")
    vmpl, algo, current_tcb, platform_info, flags = struct.unpack_from("<IIQQI", raw, 0x30)
    if algo != ECDSA_P384_SHA384:
        raise ReportError(f"signature algorithm {algo} is not ECDSA P-384 with SHA-384 (1)")
    r_bytes, s_bytes = raw[0x2A0 : 0x2A0 + 72], raw[0x2E8 : 0x2E8 + 72]
    if any(r_bytes[48:]) or any(s_bytes[48:]):
        raise ReportError("the signature's r or s has bytes beyond the 48 of a P-384 value")
    return AttestationReport(
        raw=raw,
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        family_id=raw[0x10:0x20],
        image_id=raw[0x20:0x30],
        vmpl=vmpl,
        signature_algo=algo,
        current_tcb=current_tcb,
        platform_info=platform_info,
        flags=flags,
        report_data=raw[0x50:0x90],
        measurement=raw[0x90:0xC0],
        host_data=raw[0xC0:0xE0],
        id_key_digest=raw[0xE0:0x110],
        author_key_digest=raw[0x110:0x140],
        report_id=raw[0x140:0x160],
        reported_tcb=struct.unpack_from("<Q", raw, 0x180)[0],
        chip_id=raw[0x1A0:0x1E0],
        committed_tcb=struct.unpack_from("<Q", raw, 0x1E0)[0],
        launch_tcb=struct.unpack_from("<Q", raw, 0x1F0)[0],
        cpuid=(raw[0x188], raw[0x189], raw[0x18A]) if version >= 3 else None,
        signature_r=int.from_bytes(r_bytes[:48], "little"),
        signature_s=int.from_bytes(s_bytes[:48], "little"),
    )


def amd_chain(product: str) -> tuple[x509.Certificate, x509.Certificate]:
    """(ASK, ARK) of a processor generation, as shipped with the project."""
    if product not in PRODUCTS:
        raise ValueError(f"unknown processor generation {product!r}; known: {', '.join(PRODUCTS)}")
    ask, ark = x509.load_pem_x509_certificates((ROOTS / f"{product}.pem").read_bytes())
    return ask, ark


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Expectations:
    """What a verifier requires of a report beyond AMD's signature. Empty allowlists accept any
    measurement; a None nonce skips report_data (then the caller binds it some other way)."""

    product: str = "milan"
    measurements: tuple[bytes, ...] = ()
    minimum_tcb: Tcb = field(default_factory=lambda: Tcb(0, 0, 0, 0))
    allow_debug: bool = False
    allow_smt: bool = True
    allow_migration_agent: bool = False
    report_data: bytes | None = None  # the 64 bytes the report must carry (keys and nonce bound)
    nonce_issued_at: datetime | None = None
    nonce_max_age_s: int = 300
    now: datetime | None = None


@dataclass
class Verification:
    report: AttestationReport | None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok


def verify_report(
    raw: bytes, vcek_der: bytes, expect: Expectations, chain: tuple[x509.Certificate, x509.Certificate] | None = None
) -> Verification:
    """Every check of one report, in order: parse, the chain VCEK → ASK → ARK against the shipped
    root of ``expect.product`` (or ``chain``, for a test chain), the report's signature with the
    VCEK, then guest policy, TCB, measurement, report_data and the nonce's freshness."""
    result = Verification(None)
    try:
        report = parse_report(raw)
    except ReportError as exc:
        result.add("parse", False, str(exc))
        return result
    result.report = report
    result.add("parse", True, f"version {report.version}, VMPL {report.vmpl}, signed by the {report.signing_key}")
    try:
        with warnings.catch_warnings():
            # AMD's KDS issues VCEKs whose serial number RFC 5280 would call negative; they are what they are.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            vcek = x509.load_der_x509_certificate(vcek_der)
    except ValueError as exc:
        result.add("vcek", False, f"the VCEK is not a DER X.509 certificate: {exc}")
        return result
    ask, ark = chain or amd_chain(expect.product)
    _check_chain(result, vcek, ask, ark, expect, given=chain)
    _check_signature(result, report, vcek)
    _check_vcek_binding(result, report, vcek, expect.product)
    _check_policy(result, report, expect)
    reported = Tcb.decode(report.reported_tcb, expect.product)
    result.add("tcb", reported.at_least(expect.minimum_tcb), f"reported TCB {reported}; minimum {expect.minimum_tcb}")
    if expect.measurements:
        known = any(hmac.compare_digest(report.measurement, m) for m in expect.measurements)
        result.add(
            "measurement",
            known,
            f"launch measurement {report.measurement.hex()} "
            + ("is on the allowlist" if known else f"is not one of the {len(expect.measurements)} allowed"),
        )
    else:
        result.add("measurement", True, f"launch measurement {report.measurement.hex()} (no allowlist given)")
    if expect.report_data is not None:
        bound = hmac.compare_digest(report.report_data, expect.report_data)
        result.add(
            "report_data",
            bound,
            "report_data binds the announced keys and nonce"
            if bound
            else f"report_data {report.report_data.hex()[:32]}… is not the expected binding of the announced "
            "keys and nonce",
        )
    if expect.nonce_issued_at is not None:
        age = ((expect.now or datetime.now(expect.nonce_issued_at.tzinfo)) - expect.nonce_issued_at).total_seconds()
        # A minute of clock skew between the attester and this verifier is not staleness.
        result.add(
            "freshness",
            -CLOCK_SKEW_S <= age <= expect.nonce_max_age_s,
            f"the nonce was issued {age:.0f} s ago; at most {expect.nonce_max_age_s} s is accepted",
        )
    return result


def report_data_binding(signer_id: str, sealing_public: bytes, service_public: bytes, nonce: bytes) -> bytes:
    """The 64 bytes a Warden signer puts in report_data: SHA-512 over a domain-separated,
    length-prefixed encoding of its id, its X25519 sealing key, its Ed25519 service key and the
    verifier's nonce."""
    parts = (b"warden-sev-snp-report-data-v1", signer_id.encode(), sealing_public, service_public, nonce)
    return hashlib.sha512(b"".join(len(p).to_bytes(4, "big") + p for p in parts)).digest()


def _check_chain(
    result: Verification,
    vcek: x509.Certificate,
    ask: x509.Certificate,
    ark: x509.Certificate,
    expect: Expectations,
    given: tuple[Any, ...] | None = None,
) -> None:
    now = expect.now or datetime.now().astimezone()
    for name, child, parent in (("ark", ark, ark), ("ask", ask, ark), ("vcek", vcek, ask)):
        problem = _issued_by(child, parent)
        if problem is None and not child.not_valid_before_utc <= now <= child.not_valid_after_utc:
            problem = Problem(
                f"outside its validity ({child.not_valid_before_utc:%Y-%m-%d} to {child.not_valid_after_utc:%Y-%m-%d})"
            )
        what = {
            "ark": f"the {expect.product} ARK is self-signed" if given is None else "the given ARK is self-signed",
            "ask": "the ASK is signed by the ARK",
            "vcek": "the VCEK is signed by the ASK",
        }[name]
        ok = problem is None
        result.add(f"chain.{name}", ok, what if ok else f"{what.replace(' is ', ' is not ', 1)}: {problem}")


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> Problem | None:
    """None when ``parent`` issued ``child`` (its subject is the issuer, its key made the signature);
    otherwise why not."""
    if child.issuer != parent.subject:
        return Problem(f"issuer {child.issuer.rfc4514_string()} is not {parent.subject.rfc4514_string()}")
    key = parent.public_key()
    digest = child.signature_hash_algorithm
    if digest is None:
        # An Ed25519 or Ed448 signature names no hash: no RSA or ECDSA issuer (AMD's are RSA) made it.
        return Problem("its signature names no hash algorithm (Ed25519 or Ed448), not an RSA or ECDSA signature")
    try:
        if isinstance(key, rsa.RSAPublicKey):
            params = child.signature_algorithm_parameters
            pad = params if isinstance(params, padding.PSS) else padding.PKCS1v15()
            key.verify(child.signature, child.tbs_certificate_bytes, pad, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(child.signature, child.tbs_certificate_bytes, ec.ECDSA(digest))
        else:
            return Problem(f"unsupported issuer key {type(key).__name__}")
    except InvalidSignature:
        return Problem("the signature does not verify")
    return None


def _check_signature(result: Verification, report: AttestationReport, vcek: x509.Certificate) -> None:
    key = vcek.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        result.add("signature", False, "the VCEK's key is not ECDSA P-384")
        return
    try:
        key.verify(
            encode_dss_signature(report.signature_r, report.signature_s), report.signed_bytes, ec.ECDSA(hashes.SHA384())
        )
    except InvalidSignature:
        result.add(
            "signature",
            False,
            "the report's signature does not verify with the VCEK: the report was changed, or another chip signed it",
        )
        return
    result.add("signature", True, "the report's signature verifies with the VCEK (ECDSA P-384, SHA-384)")


# The VCEK's extensions (AMD's VCEK certificate specification): the TCB it was derived for, and
# the chip it belongs to. A VCEK is specific to both, so a report must name the same.
_AMD_OID = "1.3.6.1.4.1.3704.1."
_TCB_OIDS = {"bootloader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}
_HWID_OID = "4"


def _vcek_extension(vcek: x509.Certificate, suffix: str) -> bytes | None:
    for extension in vcek.extensions:
        if extension.oid.dotted_string == _AMD_OID + suffix:
            value = extension.value
            # An extension cryptography does not know is an UnrecognizedExtension: its DER value as bytes.
            return value.value if isinstance(value, x509.UnrecognizedExtension) else None
    return None


def _der_small_int(value: bytes) -> int:
    if len(value) < 3 or value[0] != 0x02 or value[1] != len(value) - 2:
        raise ValueError("not a DER INTEGER")
    return int.from_bytes(value[2:], "big", signed=True)


def _check_vcek_binding(result: Verification, report: AttestationReport, vcek: x509.Certificate, product: str) -> None:
    if report.signing_key != "vcek":
        result.add(
            "vcek_binding", False, f"the report is signed by the {report.signing_key}; this verifier takes a VCEK"
        )
        return
    reported = Tcb.decode(report.reported_tcb, product)
    try:
        in_cert = {
            name: _der_small_int(raw)
            for name, suffix in _TCB_OIDS.items()
            if (raw := _vcek_extension(vcek, suffix)) is not None
        }
    except ValueError:
        result.add("vcek_binding", False, "the VCEK's TCB extensions are not DER integers")
        return
    differs = [
        f"{name} {getattr(reported, name)} ≠ {value}"
        for name, value in in_cert.items()
        if getattr(reported, name) is not None and getattr(reported, name) != value
    ]
    if len(in_cert) < 4 or differs:
        result.add(
            "vcek_binding",
            False,
            "the report's reported TCB is not the VCEK's: "
            + ("; ".join(differs) if differs else "the VCEK names no TCB"),
        )
        return
    hwid = _vcek_extension(vcek, _HWID_OID)
    masked = bool(report.flags & 0b10)
    if not masked and (hwid is None or not hmac.compare_digest(hwid, report.chip_id)):
        result.add("vcek_binding", False, "the report's chip id is not the VCEK's hwID: another chip's key")
        return
    result.add(
        "vcek_binding",
        True,
        f"the VCEK is this chip's ({'chip id masked' if masked else 'hwID matches'}) at the reported TCB",
    )


def _check_policy(result: Verification, report: AttestationReport, expect: Expectations) -> None:
    problems = []
    if report.debug and not expect.allow_debug:
        problems.append("debug is allowed (the host can read the guest's memory)")
    if report.policy & POLICY_SMT and not expect.allow_smt:
        problems.append("SMT is allowed")
    if report.policy & POLICY_MIGRATE_MA and not expect.allow_migration_agent:
        problems.append("a migration agent is allowed")
    if not report.policy & POLICY_RESERVED_ONE:
        problems.append("reserved bit 17 is not set")
    result.add(
        "policy",
        not problems,
        f"guest policy 0x{report.policy:x}: " + ("; ".join(problems) if problems else "no debug, as configured"),
    )
