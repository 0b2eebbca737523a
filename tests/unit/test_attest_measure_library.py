"""The SEV-SNP launch measurement as a library: Debian's OVMF is here, the library refuses what the
command refuses, and malformed options are usage errors."""

from __future__ import annotations

import pytest

from infra.cli import main
from runtime.attestation.measure import LaunchInputs, MeasureError, launch_measurement
from tests.attestation_support import OVMF, OVMF_WITHOUT_SEV


def test_debians_ovmf_is_installed() -> None:
    assert OVMF.is_file() and OVMF_WITHOUT_SEV.is_file(), "infra/dev.sh installs the Debian package ovmf; run it"


def test_the_library_refuses_the_same_inputs() -> None:
    with pytest.raises(MeasureError, match="no SEV metadata"):
        launch_measurement(LaunchInputs(OVMF_WITHOUT_SEV, vcpus=1, vcpu_type="EPYC-v4"))
    with pytest.raises(MeasureError, match="not both"):
        launch_measurement(LaunchInputs(OVMF, vcpus=1, vcpu_type="EPYC-v4", vcpu_sig=0x800F12))


@pytest.mark.parametrize(
    "args",
    [
        ("--vcpu-type", "EPYC-Milan", "--vcpu-sig", "0xa00f11"),
        ("--vcpu-type", "EPYC-Milan", "--guest-features", "zz"),
        ("--vcpu-type", "EPYC-Milan", "--vmm-type", "xen"),
    ],
)
def test_malformed_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str], args: tuple[str, str, str, str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["attest", "measure", "--ovmf", str(OVMF), "--vcpus", "1", *args])
    assert exited.value.code == 2
