"""SEV-SNP test material: the real report's directory and a test chip (its own ARK, ASK and VCEK)
that signs reports a test shapes."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from runtime.attestation.verify import POLICY_RESERVED_ONE, REPORT_SIZE, SIGNED_SIZE, Tcb

TESTDATA = Path(__file__).resolve().parent / "data" / "sev-snp"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str, issuer: str, key: Any, signer: Any, extensions: Sequence[x509.ExtensionType] = ()
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(signer, hashes.SHA384(), rsa_padding=PSS)


def _amd_extensions(tcb: Tcb, chip_id: bytes) -> list[x509.UnrecognizedExtension]:
    """What AMD's KDS puts in a VCEK: its TCB as DER integers, and the chip's hwID."""
    oid = "1.3.6.1.4.1.3704.1."
    values = {"3.1": tcb.bootloader, "3.2": tcb.tee, "3.3": tcb.snp, "3.8": tcb.microcode}
    out = [x509.UnrecognizedExtension(x509.ObjectIdentifier(oid + k), bytes([0x02, 1, v])) for k, v in values.items()]
    return out + [x509.UnrecognizedExtension(x509.ObjectIdentifier(oid + "4"), chip_id)]


TCB = Tcb(3, 0, 8, 115)
CHIP_ID = bytes(range(64))


class Chip:
    """A test ARK → ASK → VCEK chain and a VCEK that signs reports like the firmware."""

    def __init__(self, tcb: Tcb = TCB, chip_id: bytes = CHIP_ID):
        self.ark_key = rsa.generate_private_key(65537, 2048)
        self.ask_key = rsa.generate_private_key(65537, 2048)
        self.vcek_key = ec.generate_private_key(ec.SECP384R1())
        self.ark = _cert("ARK-Test", "ARK-Test", self.ark_key, self.ark_key)
        self.ask = _cert("SEV-Test", "ARK-Test", self.ask_key, self.ark_key)
        self.vcek = self.vcek_at(tcb, chip_id)

    def vcek_at(self, tcb: Tcb, chip_id: bytes = CHIP_ID) -> x509.Certificate:
        return _cert("SEV-VCEK", "SEV-Test", self.vcek_key, self.ask_key, _amd_extensions(tcb, chip_id))

    @property
    def chain(self) -> tuple[x509.Certificate, x509.Certificate]:
        return self.ask, self.ark

    def vcek_der(self, vcek: x509.Certificate | None = None) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return (vcek or self.vcek).public_bytes(Encoding.DER)

    def report(
        self,
        *,
        version: int = 5,
        policy: int = POLICY_RESERVED_ONE,
        tcb: Tcb = TCB,
        measurement: bytes = b"\x11" * 48,
        report_data: bytes = b"\0" * 64,
        chip_id: bytes = CHIP_ID,
    ) -> bytes:
        raw = bytearray(REPORT_SIZE)
        struct.pack_into("<IIQ", raw, 0, version, 1, policy)
        struct.pack_into("<IIQQI", raw, 0x30, 0, 1, 0, 0, 0)
        raw[0x50:0x90] = report_data
        raw[0x90:0xC0] = measurement
        packed = bytearray(8)
        packed[0], packed[1], packed[6], packed[7] = tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode
        raw[0x180:0x188] = packed
        raw[0x1A0:0x1E0] = chip_id
        r, s = decode_dss_signature(self.vcek_key.sign(bytes(raw[:SIGNED_SIZE]), ec.ECDSA(hashes.SHA384())))
        raw[0x2A0 : 0x2A0 + 72] = r.to_bytes(72, "little")
        raw[0x2E8 : 0x2E8 + 72] = s.to_bytes(72, "little")
        return bytes(raw)


OVMF = Path("/usr/share/ovmf/OVMF.fd")
OVMF_WITHOUT_SEV = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
