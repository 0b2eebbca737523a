"""Where this signer runs, as evidence: an SEV-SNP attestation report through Linux's configfs-tsm
interface (kernel 6.7 and later), or ``tee=none`` and why.

configfs-tsm (Documentation/ABI/testing/configfs-tsm): make a directory under
``/sys/kernel/config/tsm/report``, write the 64 bytes of report_data to ``inblob``, read the
report from ``outblob`` and the certificate table from ``auxblob`` (when the host provides it),
check ``generation`` moved by exactly one (no other writer raced us), remove the directory. The
``provider`` file names the TEE: ``sev_guest`` on SEV-SNP. The older ``/dev/sev-guest``
SNP_GET_REPORT ioctl is not used: configfs-tsm is the kernel's stable interface for it.
"""

from __future__ import annotations

import os
import secrets
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from runtime.attestation.verify import AttestationReport, Tcb

TSM_REPORT = Path("/sys/kernel/config/tsm/report")


@dataclass(frozen=True)
class Evidence:
    tee: str  # "sev-snp" or "none"
    report: bytes | None
    certificates: bytes | None  # the host's certificate table (auxblob), if it provides one
    source: str  # how it was obtained, or why there is none


def obtain(report_data: bytes, root: Path = TSM_REPORT) -> Evidence:
    """A report binding ``report_data`` (64 bytes), or ``tee=none`` with the reason."""
    if len(report_data) != 64:
        raise ValueError(f"report_data is 64 bytes, got {len(report_data)}")
    if not root.is_dir():
        return Evidence(
            "none",
            None,
            None,
            f"no configfs-tsm report interface at {root}: not a confidential VM (or a kernel before 6.7)",
        )
    entry = root / f"warden-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        entry.mkdir()
    except OSError as exc:
        return Evidence("none", None, None, f"cannot open a report request under {root}: {exc}")
    try:
        provider = (entry / "provider").read_text().strip()
        if provider != "sev_guest":
            return Evidence("none", None, None, f"the TEE provider is {provider!r}, not SEV-SNP (sev_guest)")
        before = int((entry / "generation").read_text())
        (entry / "inblob").write_bytes(report_data)
        report = (entry / "outblob").read_bytes()
        aux = entry / "auxblob"
        certificates = aux.read_bytes() if aux.exists() else b""
        after = int((entry / "generation").read_text())
        if after != before + 1:
            raise RuntimeError(f"another writer changed the report request ({before} → {after}); ask again")
        return Evidence("sev-snp", report, certificates or None, f"configfs-tsm ({entry.name})")
    finally:
        entry.rmdir()


# The GHCB certificate table: 24-byte entries (GUID as EFI stores it, offset, length from the
# table's start), ended by an all-zero entry. AMD's SEV-SNP firmware ABI names these GUIDs.
VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
VLEK_GUID = uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")
ASK_GUID = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")


def certificate_table(table: bytes) -> dict[uuid.UUID, bytes]:
    """The certificates of a host-provided table, by GUID. A malformed table is a ValueError."""
    found: dict[uuid.UUID, bytes] = {}
    for at in range(0, len(table) - 23, 24):
        raw_guid = table[at : at + 16]
        offset, length = struct.unpack_from("<II", table, at + 16)
        if raw_guid == bytes(16) and offset == 0 and length == 0:
            return found
        if offset + length > len(table):
            raise ValueError(f"certificate table entry {at // 24} points past the table's {len(table)} bytes")
        found[uuid.UUID(bytes_le=raw_guid)] = table[offset : offset + length]
    raise ValueError("the certificate table has no terminating all-zero entry")


def vcek_of(found: Evidence, vcek_file: str | None = None) -> bytes | None:
    """The certificate that signed ``found.report``: the VCEK (or a cloud's VLEK) from the host's
    certificate table, else the DER file an operator fetched from AMD's KDS, else None."""
    if found.certificates:
        table = certificate_table(found.certificates)
        vcek = table.get(VCEK_GUID) or table.get(VLEK_GUID)
        if vcek:
            return vcek
    return Path(vcek_file).read_bytes() if vcek_file else None


def vcek_url(report: AttestationReport, product: str) -> str:
    """Where AMD's Key Distribution Service serves the VCEK of the chip and TCB that signed ``report``."""
    tcb = Tcb.decode(report.reported_tcb, product)
    hwid = report.chip_id[:8] if product == "turin" else report.chip_id
    query = f"blSPL={tcb.bootloader}&teeSPL={tcb.tee}&snpSPL={tcb.snp}&ucodeSPL={tcb.microcode}"
    if tcb.fmc is not None:
        query = f"fmcSPL={tcb.fmc}&" + query
    return f"https://kdsintf.amd.com/vcek/v1/{product.capitalize()}/{hwid.hex()}?{query}"
