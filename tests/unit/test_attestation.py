"""SEV-SNP report verification (runtime/attestation/verify.py).

The real report in shared/testdata (a Milan VM's, signed by its VCEK, chained to AMD's Milan
ARK) is checked as published; every single-byte change to its signed region must fail. The
negative cases a real chip cannot produce on demand are built with a test key chain of our own
(ARK and ASK with RSASSA-PSS, a P-384 VCEK, as AMD's are), each failing with its named check."""

from __future__ import annotations

import struct
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from runtime.attestation.verify import (
    POLICY_DEBUG,
    POLICY_RESERVED_ONE,
    REPORT_SIZE,
    SIGNED_SIZE,
    Expectations,
    Tcb,
    Verification,
    amd_chain,
    parse_report,
    report_data_binding,
    verify_report,
)
from tests.attestation_support import NOW, TCB, TESTDATA, Chip


@pytest.fixture(scope="module")
def real() -> tuple[bytes, bytes]:
    return (TESTDATA / "attestation.bin").read_bytes(), (TESTDATA / "vcek.der").read_bytes()


def failed(result: Verification) -> set[str]:
    return {c.name for c in result.failures}


def test_the_real_milan_report_verifies_with_its_vcek_and_amds_chain(real: tuple[bytes, bytes]) -> None:
    raw, vcek = real
    result = verify_report(raw, vcek, Expectations(product="milan", allow_debug=True, now=NOW))
    assert result.ok, result.failures
    assert [c.name for c in result.checks] == [
        "parse",
        "chain.ark",
        "chain.ask",
        "chain.vcek",
        "signature",
        "vcek_binding",
        "policy",
        "tcb",
        "measurement",
    ]
    report = result.report
    assert report is not None
    assert (report.version, report.vmpl, report.signing_key) == (2, 0, "vcek")
    assert Tcb.decode(report.reported_tcb, "milan") == Tcb(bootloader=2, tee=0, snp=5, microcode=68)
    # That VM was launched with debug allowed: by default that alone is refused, by name.
    strict = verify_report(raw, vcek, Expectations(product="milan", now=NOW))
    assert failed(strict) == {"policy"} and "debug" in strict.failures[0].detail


def test_every_single_byte_change_to_the_signed_region_fails(real: tuple[bytes, bytes]) -> None:
    raw, vcek = real
    expect = Expectations(product="milan", allow_debug=True, now=NOW)
    for offset in range(SIGNED_SIZE):
        changed = bytearray(raw)
        changed[offset] ^= 0x01
        result = verify_report(bytes(changed), vcek, expect)
        assert not result.ok, f"a change at 0x{offset:03x} went unnoticed"
        assert failed(result) & {"parse", "signature"}, (offset, result.failures)


def test_another_generations_root_does_not_vouch_for_a_milan_vcek(real: tuple[bytes, bytes]) -> None:
    raw, vcek = real
    for product in ("genoa", "turin"):
        result = verify_report(raw, vcek, Expectations(product=product, allow_debug=True, now=NOW))
        assert "chain.vcek" in failed(result), product


def test_a_vcek_signed_with_ed25519_fails_its_chain_check_instead_of_raising(real: tuple[bytes, bytes]) -> None:
    # A certificate signed with Ed25519 names no hash algorithm; handed to the ASK's RSA key as
    # None, it raised TypeError out of verify_report instead of failing chain.vcek.
    raw, _ = real
    ask, _ = amd_chain("milan")
    key = Ed25519PrivateKey.generate()
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SEV-VCEK")]))
        .issuer_name(ask.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, None)
    )
    result = verify_report(
        raw, forged.public_bytes(Encoding.DER), Expectations(product="milan", allow_debug=True, now=NOW)
    )
    assert {"chain.vcek", "signature"} <= failed(result)
    assert "names no hash algorithm" in next(c.detail for c in result.failures if c.name == "chain.vcek")


@pytest.mark.parametrize("size", [0, REPORT_SIZE - 1, REPORT_SIZE + 1])
def test_a_report_of_the_wrong_size_is_refused(size: int) -> None:
    result = verify_report(b"\0" * size, b"", Expectations())
    assert failed(result) == {"parse"} and f"got {size}" in result.failures[0].detail


@pytest.fixture(scope="module")
def chip() -> Chip:
    return Chip()


def test_a_test_chip_report_verifies_and_parses_as_version_5(chip: Chip) -> None:
    binding = report_data_binding("signer-0", b"\x01" * 32, b"\x02" * 32, b"nonce")
    result = verify_report(
        chip.report(report_data=binding),
        chip.vcek_der(),
        Expectations(
            measurements=(b"\x11" * 48,),
            minimum_tcb=TCB,
            report_data=binding,
            nonce_issued_at=NOW - timedelta(seconds=30),
            now=NOW,
        ),
        chain=chip.chain,
    )
    assert result.ok, result.failures
    assert [c.name for c in result.checks][-2:] == ["report_data", "freshness"]


@pytest.mark.parametrize(
    "case, expect_failed",
    [
        ("bad signature", "signature"),
        ("wrong chain", "chain.vcek"),
        ("debug policy", "policy"),
        ("migration agent", "policy"),
        ("tcb below minimum", "tcb"),
        ("vcek for another tcb", "vcek_binding"),
        ("another chip's vcek", "vcek_binding"),
        ("unknown measurement", "measurement"),
        ("stale nonce", "freshness"),
        ("report_data not binding the keys", "report_data"),
    ],
)
def test_each_mismatch_fails_with_its_own_check(chip: Chip, case: str, expect_failed: str) -> None:
    binding = report_data_binding("signer-0", b"\x01" * 32, b"\x02" * 32, b"nonce")
    fields: dict[str, Any]
    expect: dict[str, Any]
    fields, expect = (
        {"report_data": binding},
        dict(
            measurements=(b"\x11" * 48,),
            minimum_tcb=Tcb(3, 0, 8, 115),
            report_data=binding,
            nonce_issued_at=NOW - timedelta(seconds=30),
            now=NOW,
        ),
    )
    vcek, chain = chip.vcek_der(), chip.chain
    if case == "debug policy":
        fields["policy"] = POLICY_RESERVED_ONE | POLICY_DEBUG
    elif case == "migration agent":
        fields["policy"] = POLICY_RESERVED_ONE | (1 << 18)
    elif case == "tcb below minimum":
        fields["tcb"] = Tcb(3, 0, 7, 115)
        vcek = chip.vcek_der(chip.vcek_at(Tcb(3, 0, 7, 115)))  # a genuine VCEK for that older TCB
    elif case == "vcek for another tcb":
        vcek = chip.vcek_der(chip.vcek_at(Tcb(3, 0, 9, 115)))
    elif case == "another chip's vcek":
        vcek = chip.vcek_der(chip.vcek_at(TCB, bytes(64)))
    elif case == "unknown measurement":
        fields["measurement"] = b"\x22" * 48
    elif case == "stale nonce":
        expect["nonce_issued_at"] = NOW - timedelta(hours=1)
    elif case == "report_data not binding the keys":
        fields["report_data"] = report_data_binding("signer-0", b"\x09" * 32, b"\x02" * 32, b"nonce")
    elif case == "wrong chain":
        chain = Chip().chain  # another ASK and ARK: this VCEK's issuer signature does not verify
    raw = chip.report(**fields)
    if case == "bad signature":
        raw = raw[:0x2A0] + bytes([raw[0x2A0] ^ 1]) + raw[0x2A1:]
    result = verify_report(raw, vcek, Expectations(**expect), chain=chain)
    assert failed(result) == {expect_failed}, result.failures


def test_parse_refuses_what_it_cannot_read(chip: Chip) -> None:
    raw = bytearray(chip.report())
    struct.pack_into("<I", raw, 0, 4)
    with pytest.raises(ValueError, match="version 4"):
        parse_report(bytes(raw))
    raw = bytearray(chip.report())
    raw[0x2A0 + 60] = 1  # r wider than P-384
    with pytest.raises(ValueError, match="beyond the 48"):
        parse_report(bytes(raw))


def test_without_configfs_tsm_the_evidence_is_tee_none_and_says_why(tmp_path: Path) -> None:
    from runtime.attestation import evidence

    found = evidence.obtain(b"\0" * 64, root=tmp_path / "no-such-tsm")
    assert (found.tee, found.report) == ("none", None) and "not a confidential VM" in found.source
    with pytest.raises(ValueError, match="64 bytes"):
        evidence.obtain(b"\0" * 63, root=tmp_path)
    # This machine is no SEV-SNP guest: the real interface is absent or not SEV's.
    assert evidence.obtain(b"\0" * 64).tee == "none"
