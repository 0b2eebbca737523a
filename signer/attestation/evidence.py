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
from dataclasses import dataclass
from pathlib import Path

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
        return Evidence("none", None, None, f"no configfs-tsm report interface at {root}: not a confidential VM "
                                            "(or a kernel before 6.7)")
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
