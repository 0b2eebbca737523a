"""`warden attest measure` and `warden attest verify --chain`.

The measurement is VirTEE's sev-snp-measure computation over Debian's OVMF build (the apt package
`ovmf`, installed by infra/dev.sh). No published image with a known-good measurement is on this
machine, and the real report in tests/data/sev-snp/ came without its launch inputs, so what is
checked is that the command gives the package's own answer for the same inputs (its
`sev-snp-measure` executable), that every input changes it, and that bad inputs are refused by name.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from signer.attestation.measure import LaunchInputs, MeasureError, launch_measurement

REPO = Path(__file__).resolve().parents[1]
OVMF = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
TESTDATA = REPO / "tests" / "data" / "sev-snp"
ROOTS = REPO / "signer" / "attestation" / "roots"


def warden(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_ovmf_is_installed():
    assert OVMF.is_file(), "infra/dev.sh installs the Debian package ovmf; run it"


def test_the_measurement_is_the_packages_answer_and_moves_with_every_input(tmp_path):
    done = warden("attest", "measure", "--ovmf", str(OVMF), "--vcpus", "4", "--vcpu-type", "EPYC-Milan", "--json")
    assert done.returncode == 0, done.stderr
    doc = orjson.loads(done.stdout)
    assert len(bytes.fromhex(doc["measurement"])) == 48
    tool = shutil.which("sev-snp-measure", path=str(Path(sys.executable).parent))
    reference = subprocess.run([tool, "--mode", "snp", "--vcpus", "4", "--vcpu-type", "EPYC-Milan", "--ovmf",
                                str(OVMF)], capture_output=True, text=True, timeout=60)
    assert reference.stdout.strip() == doc["measurement"]
    base = LaunchInputs(OVMF, vcpus=4, vcpu_type="EPYC-Milan")
    assert launch_measurement(base).hex() == doc["measurement"]
    changed = {launch_measurement(LaunchInputs(OVMF, vcpus=2, vcpu_type="EPYC-Milan")),
               launch_measurement(LaunchInputs(OVMF, vcpus=4, vcpu_type="EPYC-Genoa")),
               launch_measurement(LaunchInputs(OVMF, vcpus=4, vcpu_type="EPYC-Milan", vmm_type="ec2")),
               launch_measurement(LaunchInputs(OVMF, vcpus=4, vcpu_type="EPYC-Milan", guest_features=0x21))}
    assert len(changed) == 4 and launch_measurement(base) not in changed
    firmware = bytearray(OVMF.read_bytes())
    firmware[0x1000] ^= 1  # one bit of the firmware volume
    tampered = tmp_path / "ovmf.fd"
    tampered.write_bytes(firmware)
    assert launch_measurement(LaunchInputs(tampered, vcpus=4, vcpu_type="EPYC-Milan")) != launch_measurement(base)
    human = warden("attest", "measure", "--ovmf", str(OVMF), "--vcpus", "4", "--vcpu-type", "EPYC-Milan")
    assert human.stdout.strip() == doc["measurement"] and "sha256" in human.stderr


@pytest.mark.parametrize("args, expected", [
    (("--ovmf", "/nonexistent.fd"), "--ovmf /nonexistent.fd: no such file"),
    (("--ovmf", __file__), "no OVMF footer table"),
    (("--ovmf", str(OVMF), "--kernel", __file__), "SNP_KERNEL_HASHES"),
    (("--ovmf", str(OVMF), "--append", "console=ttyS0"), "with a --kernel only"),
    (("--ovmf", str(OVMF), "--vcpu-type", "Pentium"), "--vcpu-type 'Pentium' is not one of"),
])
def test_inputs_that_cannot_be_measured_are_refused_by_name(args, expected):
    done = warden("attest", "measure", *args)
    assert done.returncode == 2 and expected in done.stderr, done.stderr
    with pytest.raises(MeasureError):
        launch_measurement(LaunchInputs(Path(args[1]), kernel=Path(args[3]) if "--kernel" in args else None,
                                        append=args[3] if "--append" in args else None,
                                        vcpu_type=args[3] if "--vcpu-type" in args else "EPYC-v4"))


def test_verify_with_a_given_chain_checks_its_root_against_amds(tmp_path):
    base = ("attest", "verify", "--report", str(TESTDATA / "attestation.bin"), "--vcek", str(TESTDATA / "vcek.der"),
            "--allow-debug")
    milan = warden(*base, "--chain", str(ROOTS / "milan.pem"), "--json")
    doc = orjson.loads(milan.stdout)
    assert milan.returncode == 0 and doc["ok"] and ("chain.root", True) in [(c["name"], c["ok"]) for c in doc["checks"]]
    genoa = warden(*base, "--chain", str(ROOTS / "genoa.pem"))
    assert genoa.returncode == 1 and "FAIL chain.root" in genoa.stdout and "FAIL chain.vcek" in genoa.stdout
    assert "replaces the AMD roots" in genoa.stderr
    one = tmp_path / "one.pem"
    one.write_bytes(b"".join((ROOTS / "milan.pem").read_bytes().partition(b"-----END CERTIFICATE-----\n")[:2]))
    broken = warden(*base, "--chain", str(one))
    assert broken.returncode == 2 and "expected the ASK then the ARK" in broken.stderr
