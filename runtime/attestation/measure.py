"""The launch measurement an SEV-SNP guest of a published image must report, computed with the
``sev-snp-measure`` package (VirTEE; the same computation the firmware does over the pages the
VMM loads: OVMF, its SEV metadata pages, the kernel hashes page when a kernel is given, and the
VMSA of each vCPU). A customer runs it over the image Warden publishes and compares the result
with the measurement the signer's report carries, or puts it in
WARDEN_ATTESTATION_MEASUREMENTS.

The names mirror the package's own command line (``--vcpus``, ``--vcpu-type``, ``--vcpu-sig``,
``--vmm-type``, ``--guest-features``), so its documentation applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sevsnpmeasure import guest
from sevsnpmeasure.ovmf import OVMF, SectionType
from sevsnpmeasure.sev_mode import SevMode
from sevsnpmeasure.vcpu_types import CPU_SIGS
from sevsnpmeasure.vmm_types import VMMType

from schemas.errors import WardenError

VCPU_TYPES = tuple(CPU_SIGS)
VMM_TYPES = {"QEMU": VMMType.QEMU, "ec2": VMMType.ec2, "gce": VMMType.gce}


class MeasureError(WardenError, ValueError):
    """The inputs cannot be measured; the message names the input and what is wrong."""


@dataclass(frozen=True)
class LaunchInputs:
    ovmf: Path
    vcpus: int
    vcpu_type: str | None = None  # QEMU's -cpu model; or
    vcpu_sig: int | None = None  # the CPUID signature it presents
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
    if inputs.vcpus < 1:
        raise MeasureError("--vcpus must be at least 1")
    if inputs.vmm_type not in VMM_TYPES:
        raise MeasureError(f"--vmm-type {inputs.vmm_type!r} is not one of {', '.join(VMM_TYPES)}")
    vcpu_sig = _vcpu_signature(inputs)
    _check_firmware(inputs.ovmf, wants_kernel_hashes=inputs.kernel is not None)
    try:
        digest = guest.calc_launch_digest(
            SevMode.SEV_SNP,
            inputs.vcpus,
            vcpu_sig,
            str(inputs.ovmf),
            str(inputs.kernel) if inputs.kernel else None,
            str(inputs.initrd) if inputs.initrd else None,
            inputs.append or "",
            inputs.guest_features,
            vmm_type=VMM_TYPES[inputs.vmm_type],
        )
    except OSError as exc:
        raise MeasureError(f"{exc.filename}: cannot be read: {exc.strerror}") from None
    except (ValueError, RuntimeError) as exc:
        # What the checks above do not foresee, e.g. a metadata section of a type the package does not know.
        raise MeasureError(f"--ovmf {inputs.ovmf}: sev-snp-measure cannot measure it: {exc}") from None
    return bytes(digest)


def _vcpu_signature(inputs: LaunchInputs) -> int:
    """The CPUID signature QEMU puts in each VMSA's RDX. EC2 and GCE put a fixed one there, so
    for them neither option matters; for QEMU a guessed default would give a wrong measurement."""
    if inputs.vcpu_type is not None and inputs.vcpu_sig is not None:
        raise MeasureError("give --vcpu-type or --vcpu-sig, not both")
    if inputs.vcpu_type is not None:
        if inputs.vcpu_type not in CPU_SIGS:
            raise MeasureError(f"--vcpu-type {inputs.vcpu_type!r} is not one of {', '.join(VCPU_TYPES)}")
        signature: int = CPU_SIGS[inputs.vcpu_type]
        return signature
    if inputs.vcpu_sig is not None:
        return inputs.vcpu_sig
    if inputs.vmm_type == "QEMU":
        raise MeasureError(
            "--vmm-type QEMU measures the vCPU signature: give --vcpu-type (the -cpu model the "
            "guest was started with, e.g. EPYC-Milan) or --vcpu-sig"
        )
    return 0


def _check_firmware(path: Path, *, wants_kernel_hashes: bool) -> None:
    """Refuse a file the package would measure anyway: without SEV metadata it computes a digest
    that no SNP guest can report, since such a firmware does not boot under SEV-SNP."""
    try:
        firmware = OVMF(str(path))
    except OSError as exc:
        raise MeasureError(f"--ovmf {path}: cannot be read: {exc.strerror}") from None
    except (ValueError, RuntimeError) as exc:
        raise MeasureError(
            f"--ovmf {path}: its OVMF footer table or SEV metadata is malformed ({exc}); is it an OVMF image?"
        ) from None
    if not firmware.metadata_items():
        raise MeasureError(
            f"--ovmf {path}: no SEV metadata in its footer table, so no SEV-SNP guest boots it: not "
            "an OVMF image, or one built without SEV-SNP support (Debian's OVMF_CODE_4M.fd has none; "
            "its /usr/share/ovmf/OVMF.fd has)"
        )
    if wants_kernel_hashes and not firmware.has_metadata_section(SectionType.SNP_KERNEL_HASHES):
        raise MeasureError(
            f"--ovmf {path}: no SNP_KERNEL_HASHES page in its SEV metadata, so it does not measure "
            "a --kernel: measure the firmware alone (no --kernel, --initrd, --append) or use an OVMF "
            "built from edk2's OvmfPkg/AmdSev (AmdSevX64.dsc)"
        )
