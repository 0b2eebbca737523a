"""The launch measurement an SEV-SNP guest of a published image must report, computed with the
``sev-snp-measure`` package (VirTEE; the same computation the firmware does over the pages the
VMM loads: OVMF, its metadata pages, the kernel hashes table when a kernel is given, and the
VMSA of each vCPU). A customer runs it over the image Warden publishes and compares the result
with the measurement the signer's report carries, or puts it in
WARDEN_ATTESTATION_MEASUREMENTS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sevsnpmeasure import guest
from sevsnpmeasure.sev_mode import SevMode
from sevsnpmeasure.vcpu_types import CPU_SIGS
from sevsnpmeasure.vmm_types import VMMType

VCPU_TYPES = tuple(CPU_SIGS)
VMM_TYPES = {"QEMU": VMMType.QEMU, "ec2": VMMType.ec2, "gce": VMMType.gce}


class MeasureError(ValueError):
    """The inputs cannot be measured; the message names the file and what is wrong."""


@dataclass(frozen=True)
class LaunchInputs:
    ovmf: Path
    vcpus: int = 1
    vcpu_type: str = "EPYC-v4"
    vmm_type: str = "QEMU"
    kernel: Path | None = None
    initrd: Path | None = None
    append: str | None = None
    guest_features: int = 0x1


def launch_measurement(inputs: LaunchInputs) -> bytes:
    """The 48-byte SNP launch measurement of a guest started from ``inputs``."""
    for label, path in (("--ovmf", inputs.ovmf), ("--kernel", inputs.kernel), ("--initrd", inputs.initrd)):
        if path is not None and not Path(path).is_file():
            raise MeasureError(f"{label} {path}: no such file")
    if (inputs.initrd is not None or inputs.append is not None) and inputs.kernel is None:
        raise MeasureError("--initrd and --append are measured with a --kernel only")
    if inputs.vcpu_type not in CPU_SIGS:
        raise MeasureError(f"--vcpu-type {inputs.vcpu_type!r} is not one of {', '.join(VCPU_TYPES)}")
    if inputs.vmm_type not in VMM_TYPES:
        raise MeasureError(f"--vmm-type {inputs.vmm_type!r} is not one of {', '.join(VMM_TYPES)}")
    if inputs.vcpus < 1:
        raise MeasureError("--vcpus must be at least 1")
    try:
        digest = guest.calc_launch_digest(
            SevMode.SEV_SNP, inputs.vcpus, CPU_SIGS[inputs.vcpu_type], str(inputs.ovmf),
            str(inputs.kernel) if inputs.kernel else None, str(inputs.initrd) if inputs.initrd else None,
            inputs.append or "", inputs.guest_features, vmm_type=VMM_TYPES[inputs.vmm_type])
    except (ValueError, RuntimeError, AssertionError, KeyError, IndexError) as exc:
        # The package says what it missed in the image (no SEV metadata, no kernel hashes table).
        why = str(exc) or "it has no OVMF footer table with SEV metadata (not an OVMF image?)"
        raise MeasureError(f"--ovmf {inputs.ovmf}: cannot be measured as an SEV-SNP firmware: {why}") from None
    return bytes(digest)
