"""`warden attest measure` and `warden attest verify --chain`.

The measurement is VirTEE's sev-snp-measure computation over Debian's OVMF build (the apt package
`ovmf`, installed by infra/dev.sh): its `/usr/share/ovmf/OVMF.fd` carries the SEV-SNP metadata,
its `OVMF_CODE_4M.fd` none. No published image with a known-good measurement is on this machine,
and the real report in tests/data/sev-snp/ came without its launch inputs (OVMF, vCPUs, kernel),
so its measurement cannot be reproduced here. What is checked: the command gives the answer of
the package's own `sev-snp-measure` executable for the same inputs, every input changes it, and
bad inputs are refused by name. The commands run in-process (`infra.cli.main`) to stay cheap.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from sevsnpmeasure.ovmf import OVMF as Firmware
from sevsnpmeasure.ovmf import SectionType

from infra.cli import main
from runtime.attestation.measure import LaunchInputs, launch_measurement
from tests.attestation_support import OVMF, OVMF_WITHOUT_SEV

REPO = Path(__file__).resolve().parents[2]
TESTDATA = REPO / "tests" / "data" / "sev-snp"
ROOTS = REPO / "runtime" / "attestation" / "roots"
MILAN_4 = ("--vcpus", "4", "--vcpu-type", "EPYC-Milan")


def warden(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def package_cli(*args: str) -> str:
    """What the package's own executable prints for the same inputs."""
    tool = Path(sys.executable).parent / "sev-snp-measure"
    done = subprocess.run([str(tool), "--mode", "snp", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def with_kernel_hashes_page(tmp_path: Path) -> Path:
    """Debian's OVMF with its CPUID page re-declared as the SNP_KERNEL_HASHES page that edk2's
    AmdSevX64 build declares (Debian ships no such build). It boots nothing; it lets a kernel,
    initrd and command line reach the measurement, so that their plumbing is tested."""
    data = bytearray(OVMF.read_bytes())
    offset_from_end = int.from_bytes(Firmware(str(OVMF)).table_item(Firmware.OVMF_SEV_META_DATA_GUID)[:4], "little")
    header = len(data) - offset_from_end
    signature, _, _, count = struct.unpack_from("<4sIII", data, header)
    assert signature == b"ASEV"
    for item in range(header + 16, header + 16 + 12 * count, 12):
        if struct.unpack_from("<I", data, item + 8)[0] == SectionType.CPUID.value:
            struct.pack_into("<I", data, item + 8, SectionType.SNP_KERNEL_HASHES.value)
    firmware = tmp_path / "OVMF.kernel-hashes.fd"
    firmware.write_bytes(data)
    assert Firmware(str(firmware)).has_metadata_section(SectionType.SNP_KERNEL_HASHES)
    return firmware


def test_the_measurement_is_the_packages_answer_and_moves_with_every_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = warden(capsys, "attest", "measure", "--ovmf", str(OVMF), *MILAN_4, "--json")
    assert code == 0
    doc = orjson.loads(out)
    measurement = bytes.fromhex(doc["measurement"])
    assert len(measurement) == 48
    assert doc["measurement"] == package_cli(*MILAN_4, "--ovmf", str(OVMF))
    assert doc["inputs"]["ovmf"]["sha256"] == hashlib.sha256(OVMF.read_bytes()).hexdigest()
    base = LaunchInputs(OVMF, vcpus=4, vcpu_type="EPYC-Milan")
    assert launch_measurement(base) == measurement  # stable
    assert launch_measurement(LaunchInputs(OVMF, vcpus=4, vcpu_sig=0xA00F11)) == measurement  # EPYC-Milan's signature
    changed = {
        launch_measurement(LaunchInputs(OVMF, vcpus=2, vcpu_type="EPYC-Milan")),
        launch_measurement(LaunchInputs(OVMF, vcpus=4, vcpu_type="EPYC-Genoa")),
        launch_measurement(LaunchInputs(OVMF, vcpus=4, vmm_type="ec2")),
        launch_measurement(LaunchInputs(OVMF, vcpus=4, vcpu_type="EPYC-Milan", guest_features=0x21)),
    }
    assert len(changed) == 4 and measurement not in changed
    firmware = bytearray(OVMF.read_bytes())
    firmware[0x1000] ^= 1  # one bit of the firmware volume
    tampered = tmp_path / "ovmf.fd"
    tampered.write_bytes(firmware)
    assert launch_measurement(LaunchInputs(tampered, vcpus=4, vcpu_type="EPYC-Milan")) != measurement
    code, out, err = warden(capsys, "attest", "measure", "--ovmf", str(OVMF), *MILAN_4)
    assert code == 0 and out.strip() == doc["measurement"] and doc["inputs"]["ovmf"]["sha256"] in err


def test_the_kernel_initrd_and_command_line_are_measured(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    firmware = with_kernel_hashes_page(tmp_path)
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.img"
    kernel.write_bytes(b"kernel " * 1000)
    initrd.write_bytes(b"initrd " * 1000)
    boot = ("--ovmf", str(firmware), *MILAN_4, "--kernel", str(kernel), "--initrd", str(initrd))
    code, out, _ = warden(capsys, "attest", "measure", *boot, "--append", "console=ttyS0", "--json")
    doc = orjson.loads(out)
    assert code == 0 and doc["measurement"] == package_cli(*boot, "--append", "console=ttyS0")
    assert doc["inputs"]["kernel"]["sha256"] == hashlib.sha256(kernel.read_bytes()).hexdigest()
    base = LaunchInputs(firmware, vcpus=4, vcpu_type="EPYC-Milan", kernel=kernel, initrd=initrd, append="console=ttyS0")
    other_initrd = tmp_path / "other.img"
    other_initrd.write_bytes(b"initrd!" * 1000)
    changed = {
        launch_measurement(
            LaunchInputs(
                firmware, vcpus=4, vcpu_type="EPYC-Milan", kernel=kernel, initrd=initrd, append="console=ttyS1"
            )
        ),
        launch_measurement(
            LaunchInputs(
                firmware, vcpus=4, vcpu_type="EPYC-Milan", kernel=kernel, initrd=other_initrd, append="console=ttyS0"
            )
        ),
        launch_measurement(
            LaunchInputs(
                firmware, vcpus=4, vcpu_type="EPYC-Milan", kernel=initrd, initrd=initrd, append="console=ttyS0"
            )
        ),
        launch_measurement(LaunchInputs(firmware, vcpus=4, vcpu_type="EPYC-Milan")),
    }
    assert len(changed) == 4 and bytes.fromhex(doc["measurement"]) not in changed
    assert launch_measurement(base).hex() == doc["measurement"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--ovmf", "/nonexistent.fd", *MILAN_4), "--ovmf /nonexistent.fd: no such file"),
        (("--ovmf", __file__, *MILAN_4), f"--ovmf {__file__}: no SEV metadata"),
        (("--ovmf", str(OVMF_WITHOUT_SEV), *MILAN_4), f"--ovmf {OVMF_WITHOUT_SEV}: no SEV metadata"),
        (("--ovmf", str(OVMF), *MILAN_4, "--kernel", __file__), f"--ovmf {OVMF}: no SNP_KERNEL_HASHES page"),
        (("--ovmf", str(OVMF), *MILAN_4, "--kernel", "/nonexistent"), "--kernel /nonexistent: no such file"),
        (("--ovmf", str(OVMF), *MILAN_4, "--append", "console=ttyS0"), "with a --kernel only"),
        (("--ovmf", str(OVMF), "--vcpus", "4", "--vcpu-type", "Pentium"), "--vcpu-type 'Pentium' is not one of"),
        (("--ovmf", str(OVMF), "--vcpus", "4"), "give --vcpu-type"),
        (("--ovmf", str(OVMF), "--vcpus", "0", "--vcpu-type", "EPYC-Milan"), "--vcpus must be at least 1"),
    ],
)
def test_inputs_that_cannot_be_measured_are_refused_by_name(
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, str, str, str, str, str]
    | tuple[str, str, str, str, str, str, str, str]
    | tuple[str, str, str, str],
    expected: str,
) -> None:
    code, out, err = warden(capsys, "attest", "measure", *args)
    assert code == 2 and out == "" and expected in err, err


def test_verify_with_a_given_chain_checks_its_root_against_amds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = (
        "attest",
        "verify",
        "--report",
        str(TESTDATA / "attestation.bin"),
        "--vcek",
        str(TESTDATA / "vcek.der"),
        "--allow-debug",
    )
    code, out, err = warden(capsys, *base, "--chain", str(ROOTS / "milan.pem"), "--json")
    doc = orjson.loads(out)
    assert code == 0 and doc["ok"] and ("chain.root", True) in [(c["name"], c["ok"]) for c in doc["checks"]]
    assert "WARNING: --chain" in err and "REPLACES the AMD roots" in err
    code, out, err = warden(capsys, *base, "--chain", str(ROOTS / "genoa.pem"))
    assert code == 1 and "FAIL chain.root" in out and "NOT AMD's shipped milan ARK" in out
    assert "FAIL chain.vcek" in out and "WARNING" in err
    # --trust-chain accepts another root, not a chain that does not certify the VCEK.
    code, out, _ = warden(capsys, *base, "--chain", str(ROOTS / "genoa.pem"), "--trust-chain")
    assert code == 1 and "ok   chain.root" in out and "FAIL chain.vcek" in out
    one = tmp_path / "one.pem"
    one.write_bytes(b"".join((ROOTS / "milan.pem").read_bytes().partition(b"-----END CERTIFICATE-----\n")[:2]))
    code, _, err = warden(capsys, *base, "--chain", str(one))
    assert code == 2 and f"--chain {one}: expected the ASK then the ARK" in err
    code, _, err = warden(capsys, *base, "--chain", __file__)
    assert code == 2 and f"--chain {__file__}: not PEM certificates" in err
