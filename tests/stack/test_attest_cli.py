"""`warden attest verify` and `warden signer attest` in a child process, as an operator runs them:
each check printed, any failure fails."""

from __future__ import annotations

from pathlib import Path

from infra.stack.local import LocalStack
from runtime.attestation.verify import report_data_binding
from runtime.config import Settings
from tests.attestation_support import TESTDATA


def test_warden_attest_verify_prints_each_check_and_fails_on_any() -> None:
    import subprocess
    import sys

    import orjson

    repo = Path(__file__).resolve().parents[2]
    args = [
        sys.executable,
        "-m",
        "infra.cli",
        "attest",
        "verify",
        "--report",
        str(TESTDATA / "attestation.bin"),
        "--vcek",
        str(TESTDATA / "vcek.der"),
    ]
    strict = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=60)
    assert strict.returncode == 1 and "FAIL policy" in strict.stdout and "debug is allowed" in strict.stdout
    assert strict.stderr == ""
    lenient = subprocess.run(args + ["--allow-debug", "--json"], cwd=repo, capture_output=True, text=True, timeout=60)
    doc = orjson.loads(lenient.stdout)
    assert lenient.returncode == 0 and doc["ok"] and doc["report"]["version"] == 2
    wrong = subprocess.run(
        args + ["--allow-debug", "--expect-measurement", "00" * 48],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 1 and "FAIL measurement" in wrong.stdout


def test_warden_signer_attest_binds_the_running_signers_keys_and_says_tee_none(stack: LocalStack) -> None:
    import orjson

    from tests.support import warden

    done = warden(stack.settings, "signer", "attest", "--nonce", "ab" * 32, "--json")
    doc = orjson.loads(done.stdout)
    assert done.returncode == 1, done.stderr  # no evidence: nothing verified
    assert (doc["tee"], doc["announced_tee"], doc["report"], doc["verified"]) == ("none", "none", None, False)
    expected = report_data_binding(
        doc["signer_id"],
        bytes.fromhex(_announced_key(stack.settings, doc["signer_id"])),
        bytes.fromhex(doc["service_key"][2:]),
        bytes.fromhex("ab" * 32),
    )
    assert doc["report_data"] == expected.hex()
    human = warden(stack.settings, "signer", "attest")
    assert "tee=none" in human.stdout and "WARDEN_ALLOW_UNATTESTED_SIGNER" in human.stdout


def _announced_key(settings: Settings, signer_id: str) -> str:
    import asyncio

    from sdk.client import sealing_keys

    (key,) = [k for k in asyncio.run(sealing_keys(settings)) if k.signer_id == signer_id]
    return key.public_key[2:]
