"""Trusting a signer by its SEV-SNP report: clients sealing to it, outcomes signed by it, and the
key release of vaults that require attestation.

A real chip cannot attest on demand here, so the attested side is a test chip (tests/
attestation_support.py's ``Chip``: its own ARK → ASK → VCEK, signing reports as the firmware does)
given to the verifier as its chain; every refusal below is what the verifier says of that chip's
reports when something about them is wrong. The same verifier accepts AMD's real report
(test_attestation.py). The end-to-end cases on the embedded stack are in
tests/stack/test_attested_sealing_on_the_stack.py.
"""

from __future__ import annotations

import base64
import dataclasses
import struct
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.attestation import evidence
from runtime.attestation.announcement import AttestedServiceKeys, announcement_nonce, attest, problems
from runtime.attestation.policy import AttestationPolicy, PolicyError
from runtime.attestation.verify import report_data_binding
from schemas.actions import AuditAction
from schemas.auth import Role, ServiceKeys, outcome_forgery, public_key_hex, sign_announcement, sign_outcome
from schemas.codes import Code
from schemas.emit import Emit
from schemas.outcomes import IntentRejected
from schemas.sealing import SealingRefused, key_id, newest_per_signer, refusal, usable_keys
from schemas.sealing_key import SealingKey
from signer.custody import AttestationRequired, FileEventLog, LocalDevRoot, PermissionDenied, Vaults
from signer.key_release import Attester, KeyRelease, ReleaseRequest
from signer.sealing import SealingKeyPair
from tests.attestation_support import TCB, Chip

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
MEASUREMENT = b"\x11" * 48  # what Chip.report puts in by default
ADMIN = "admin:local-admin"
# How a signer obtains its report (`evidence.obtain`), and a vault to open with one (`attested_vault`).
Obtain = Callable[[bytes], evidence.Evidence]
AttestedVault = tuple[Vaults, Callable[[Obtain, AttestationPolicy], Vaults], Callable[[Vaults], bytes], list[Emit]]


@pytest.fixture(scope="module")
def chip() -> Chip:
    return Chip()


def table(*entries: tuple[Any, ...]) -> bytes:
    """A GHCB certificate table holding ``entries`` (GUID, DER)."""
    header = bytearray()
    body = bytearray()
    start = 24 * (len(entries) + 1)
    for guid, der in entries:
        header += guid.bytes_le + struct.pack("<II", start + len(body), len(der))
        body += der
    return bytes(header + bytes(24) + body)


def chip_evidence(chip: Chip, **report_fields: Any) -> Obtain:
    """An ``obtain`` as configfs-tsm gives it on this (test) chip: the report and the host's table."""

    def obtain(report_data: bytes) -> evidence.Evidence:
        return evidence.Evidence(
            "sev-snp",
            chip.report(report_data=report_data, **report_fields),
            table((evidence.VCEK_GUID, chip.vcek_der())),
            "test chip",
        )

    return obtain


def no_tee(report_data: bytes) -> evidence.Evidence:
    return evidence.obtain(report_data, root=evidence.TSM_REPORT.parent / "warden-no-such-tsm")


def policy_for(chip: Chip, **changes: Any) -> AttestationPolicy:
    return dataclasses.replace(
        AttestationPolicy(measurements=(MEASUREMENT,), minimum_tcb=TCB, chain=chip.chain), **changes
    )


SERVICE = Ed25519PrivateKey.generate()
SERVICE_PUBLIC = bytes.fromhex(public_key_hex(SERVICE)[2:])


def attested_announcement(
    chip: Chip, signer_id: str = "signer-0", at: datetime = NOW, **report_fields: Any
) -> SealingKey:
    pair = SealingKeyPair()
    found, how = attest(
        signer_id,
        pair.public_key,
        SERVICE_PUBLIC,
        at,
        product="milan",
        vcek_file=None,
        obtain=chip_evidence(chip, **report_fields),
    )
    assert found is not None and how == "test chip"
    return pair.announcement(signer_id, "sev-snp", at, found)


# --- the signer's announcement, and what a client makes of it --------------------------------------


def test_an_attested_announcement_verifies_and_binds_the_sealing_and_service_keys(chip: Chip) -> None:
    announced = attested_announcement(chip)
    assert announced.attestation is not None
    assert announced.attestation.vcek == base64.b64encode(chip.vcek_der()).decode()  # from the host's table
    assert announced.attestation.nonce == "0x" + announcement_nonce("signer-0", NOW).hex()
    assert problems(announced, policy_for(chip), NOW + timedelta(minutes=5), public_key_hex(SERVICE)) == []
    # The wire form round-trips: what a client reads off the topic verifies the same.
    assert problems(SealingKey.from_bytes(announced.to_bytes()), policy_for(chip), NOW) == []


def _substituted(announced: SealingKey) -> SealingKey:
    """What a hostile writer of warden.signer.sealing can make: its own key, the signer's report."""
    attacker = SealingKeyPair()
    return announced.model_copy(
        update={"public_key": "0x" + attacker.public_key.hex(), "key_id": key_id(attacker.public_key)}
    )


@pytest.mark.parametrize(
    "case, expected",
    [
        ("substituted sealing key", "report_data"),
        ("stale announcement", "freshness"),
        ("re-dated announcement", "nonce"),
        ("another signer's report", "report_data"),
        ("no measurement allowlist", "measurement.allowlist"),
        ("measurement not allowed", "measurement"),
        ("pinned service key differs", "service_key"),
        ("no VCEK", "vcek"),
        ("another processor generation", "product"),
        ("claims a TEE without a report", "evidence"),
        ("another chain", "chain.vcek"),
    ],
)
def test_a_client_refuses_each_announcement_that_does_not_prove_itself(chip: Chip, case: str, expected: str) -> None:
    announced, policy, now, pinned = attested_announcement(chip), policy_for(chip), NOW, None
    if case == "substituted sealing key":
        announced = _substituted(announced)
    elif case == "stale announcement":
        now = NOW + timedelta(seconds=policy.max_age_s + 1)
    elif case == "re-dated announcement":  # replaying an old report under a fresh date
        announced = announced.model_copy(update={"announced_at": NOW + timedelta(minutes=50)})
    elif case == "another signer's report":
        assert announced.attestation is not None
        announced = announced.model_copy(
            update={
                "signer_id": "signer-1",
                "attestation": announced.attestation.model_copy(
                    update={"service_key_id": "signer-1", "nonce": "0x" + announcement_nonce("signer-1", NOW).hex()}
                ),
            }
        )
    elif case == "no measurement allowlist":
        policy = dataclasses.replace(policy, measurements=())
    elif case == "measurement not allowed":
        policy = dataclasses.replace(policy, measurements=(b"\x22" * 48,))
    elif case == "pinned service key differs":
        pinned = public_key_hex(Ed25519PrivateKey.generate())
    elif case == "no VCEK":
        assert announced.attestation is not None
        announced = announced.model_copy(
            update={"attestation": announced.attestation.model_copy(update={"vcek": None})}
        )
    elif case == "another processor generation":
        policy = dataclasses.replace(policy, product="genoa")
    elif case == "claims a TEE without a report":
        announced = announced.model_copy(update={"attestation": None})
    elif case == "another chain":
        policy = dataclasses.replace(policy, chain=Chip().chain)
    why = problems(announced, policy, now, pinned)
    assert why and all(w.startswith(expected + ":") for w in why), why
    if case == "no VCEK":
        assert "https://kdsintf.amd.com/vcek/v1/Milan/" in why[0]  # where to fetch it


def test_usable_keys_seals_only_to_signers_that_prove_themselves(chip: Chip) -> None:
    honest = attested_announcement(chip, "signer-a")
    dev_key = Ed25519PrivateKey.generate()
    dev = sign_announcement(SealingKeyPair().announcement("signer-dev", "none", NOW), dev_key, "signer-dev")
    pinned = {"signer-dev": public_key_hex(dev_key)}.get
    check = lambda key: problems(key, policy_for(chip), NOW)  # noqa: E731
    assert usable_keys([honest, dev], allow_unattested=False, attestation_problems=check, service_key=pinned) == [
        honest
    ]
    assert usable_keys([honest, dev], allow_unattested=True, attestation_problems=check, service_key=pinned) == [
        honest,
        dev,
    ]
    # Given only a substitution for the signer (nothing else verifies): nothing is left.
    with pytest.raises(SealingRefused) as refused:
        usable_keys([_substituted(honest)], allow_unattested=True, attestation_problems=check)
    assert "signer-a (tee=sev-snp)" in str(refused.value) and "report_data" in str(refused.value)
    # A record whose key id is not its key's is left out too.
    broken = honest.model_copy(update={"key_id": "0" * 16})
    with pytest.raises(SealingRefused, match="key id that is not"):
        usable_keys([broken], allow_unattested=True, attestation_problems=check)


def test_outcomes_of_an_attested_signer_verify_only_with_the_service_key_its_report_binds(chip: Chip) -> None:
    class Pinned:
        def __init__(self, keys: dict[tuple[str, str], str]) -> None:
            self.keys = keys

        def key(self, role: Role, key_id: str) -> str | None:
            return self.keys.get((role, key_id))

    honest = attested_announcement(chip, "signer-a")
    liar = _substituted(attested_announcement(chip, "signer-b"))
    other = Ed25519PrivateKey.generate()
    rejected = IntentRejected(
        intent_id="i-1",
        agent_id="a",
        stage="signing",
        code=Code.SIGNER_ERROR,
        reason="r",
        decided_at=NOW,
        intent_digest="ab" * 32,
    )

    def believed(keys: ServiceKeys, signed_with: Ed25519PrivateKey, signer_id: str) -> bool:
        return outcome_forgery(sign_outcome(rejected, signed_with, signer_id), keys, "ab" * 32) is None

    unpinned = AttestedServiceKeys(Pinned({}), [honest, liar], policy_for(chip), NOW)
    assert believed(unpinned, SERVICE, "signer-a")  # the bound key, though nobody pinned it
    assert not believed(unpinned, other, "signer-a")
    assert not believed(unpinned, SERVICE, "signer-b") and "report_data" in unpinned.refused["signer-b"][0]
    # A pinned key that is not the bound one: neither is believed for that signer.
    pinned = AttestedServiceKeys(
        Pinned({("signer", "signer-a"): public_key_hex(other)}), [honest], policy_for(chip), NOW
    )
    assert not believed(pinned, SERVICE, "signer-a") and not believed(pinned, other, "signer-a")
    # Signers announcing tee=none keep their pinned keys.
    dev = SealingKeyPair().announcement("signer-dev", "none", NOW)
    plain = AttestedServiceKeys(Pinned({("signer", "signer-dev"): public_key_hex(other)}), [dev], None, NOW)
    assert believed(plain, other, "signer-dev")


def test_a_forged_announcement_dated_later_does_not_hide_the_signers_real_one(chip: Chip) -> None:
    """Clients kept each signer's newest announcement and then judged it: a forgery dated a year
    ahead (anyone can write to warden.signer.sealing) hid the signer's real key until then.
    Sealing was refused, and an attested client believed none of that signer's outcomes, so
    its intents were signed and their client was never told."""
    honest = attested_announcement(chip, "signer-a")
    forged = _substituted(honest).model_copy(update={"announced_at": NOW + timedelta(days=365)})
    attested = lambda key: key.tee != "none" and not problems(key, policy_for(chip), NOW)  # noqa: E731
    assert newest_per_signer([honest, forged]) == [forged]  # the newest on the topic
    assert newest_per_signer([honest, forged], attested) == [honest]
    assert newest_per_signer([forged, honest], attested) == [honest]  # whichever order it is read in
    assert newest_per_signer([forged], attested) == [forged]  # none verifies: the newest says why it fails
    # Outcome keys from it believe the signer's real service key.
    nobody = type("Pinned", (), {"key": lambda self, role, key_id: None})()
    rejected = IntentRejected(
        intent_id="i-1",
        agent_id="a",
        stage="signing",
        code=Code.SIGNER_ERROR,
        reason="r",
        decided_at=NOW,
        intent_digest="ab" * 32,
    )
    outcome = sign_outcome(rejected, SERVICE, "signer-a")
    keys = AttestedServiceKeys(nobody, newest_per_signer([honest, forged], attested), policy_for(chip), NOW)
    assert outcome_forgery(outcome, keys, "ab" * 32) is None
    shadowed = AttestedServiceKeys(nobody, newest_per_signer([honest, forged]), policy_for(chip), NOW)
    assert outcome_forgery(outcome, shadowed, "ab" * 32) is not None  # what the old choice did
    # Sealing to it: the real key.
    check = lambda key: problems(key, policy_for(chip), NOW)  # noqa: E731
    sealable = lambda key: refusal(key, allow_unattested=False, attestation_problems=check) is None  # noqa: E731
    assert usable_keys(
        newest_per_signer([honest, forged], sealable), allow_unattested=False, attestation_problems=check
    ) == [honest]


def test_the_attestation_policy_reads_its_settings_and_names_a_bad_one() -> None:
    from runtime.config import AttestationSettings

    policy = AttestationPolicy.from_settings(
        AttestationSettings(
            measurements=("11" * 48,), product="genoa", minimum_tcb="3,0,8,115", refuse_smt=True, max_age_s=60
        )
    )
    assert (policy.measurements, policy.product, policy.minimum_tcb, policy.allow_smt) == (
        (MEASUREMENT,),
        "genoa",
        TCB,
        False,
    )
    for bad, variable in (
        (dict(measurements=("11" * 47,)), "WARDEN_ATTESTATION_MEASUREMENTS"),
        (dict(minimum_tcb="3,0,8"), "WARDEN_ATTESTATION_MINIMUM_TCB"),
        (dict(product="rome"), "WARDEN_ATTESTATION_PRODUCT"),
    ):
        with pytest.raises(PolicyError, match=variable):
            AttestationPolicy.from_settings(AttestationSettings(**bad))


def test_the_certificate_table_is_read_by_guid_and_a_broken_one_refused(chip: Chip) -> None:
    der = chip.vcek_der()
    read = evidence.certificate_table(table((evidence.ASK_GUID, b"ask"), (evidence.VCEK_GUID, der)))
    assert read == {evidence.ASK_GUID: b"ask", evidence.VCEK_GUID: der}
    with pytest.raises(ValueError, match="terminating"):
        evidence.certificate_table(evidence.VCEK_GUID.bytes_le + struct.pack("<II", 0, 0))
    broken = bytearray(table((evidence.VCEK_GUID, der)))
    struct.pack_into("<I", broken, 20, 10**6)
    with pytest.raises(ValueError, match="past the table"):
        evidence.certificate_table(bytes(broken))


# --- key release of vaults that require attestation ------------------------------------------------


@pytest.fixture
def attested_vault(
    tmp_path: Path,
) -> AttestedVault:
    """A vault with one secret, written before it required attestation, and a way to open it
    as a requester with the given evidence."""
    root = LocalDevRoot(tmp_path / "root.key", allow=True)
    audit: list[Emit] = []
    writer = Vaults(root, FileEventLog(tmp_path / "events.jsonl"), clock=lambda: NOW.timestamp())
    writer.create_vault("default", "keys", actor=ADMIN)
    writer.write_secret("default", "keys", "agents/a/private_key", bytearray(b"k" * 32), "private_key", actor=ADMIN)

    def opener(obtain: Obtain, policy: AttestationPolicy) -> Vaults:
        gate = KeyRelease(policy, audit.append)
        return Vaults(
            root,
            FileEventLog(tmp_path / "events.jsonl"),
            clock=lambda: NOW.timestamp(),
            release=Attester(gate, "signer-0", SERVICE_PUBLIC, obtain),
            audit=audit.append,
        )

    def read(vaults: Vaults) -> bytes:
        return bytes(vaults.read_secret("default", "keys", "agents/a/private_key", actor="service:signer"))

    return writer, opener, read, audit


def _actions(audit: list[Emit]) -> list[tuple[str, dict[str, Any]]]:
    import orjson

    return [(e["action"], e["details"]) for e in (orjson.loads(r.value) for r in audit)]


def test_an_attested_vault_releases_its_key_only_to_a_verified_report(
    chip: Chip, attested_vault: AttestedVault
) -> None:
    writer, opener, read, audit = attested_vault
    signer = opener(chip_evidence(chip), policy_for(chip))
    unattested = opener(no_tee, policy_for(chip))
    assert read(unattested) == b"k" * 32  # before the vault requires attestation, the KEK is cached now
    assert writer.require_attestation("default", "keys", actor=ADMIN) is True
    assert writer.require_attestation("default", "keys", actor=ADMIN) is False  # once; there is no unset
    with pytest.raises(PermissionDenied, match="admins only"):
        writer.require_attestation("default", "keys", actor="agent:a")

    # The signer without a TEE: refused, though it had the KEK cached a moment ago; audited.
    audit.clear()
    with pytest.raises(AttestationRequired, match="no attestation report"):
        read(unattested)
    ((action, details),) = [a for a in _actions(audit) if a[0].startswith("key.")]
    assert action == AuditAction.KEY_RELEASE_REFUSED and details["code"] == Code.ATTESTATION_REQUIRED
    # Nor can anything else outside the guest (the admin's CLI) write to it.
    with pytest.raises(AttestationRequired):
        writer.write_secret("default", "keys", "agents/b/private_key", bytearray(32), "private_key", actor=ADMIN)

    # The attested signer: released, sealed to its one-request key, opened, audited.
    audit.clear()
    assert read(signer) == b"k" * 32
    ((action, details),) = [a for a in _actions(audit) if a[0].startswith("key.")]
    assert action == AuditAction.KEY_RELEASED and details["measurement"] == MEASUREMENT.hex()


@pytest.mark.parametrize(
    "case, expected",
    [
        ("forged chain", "chain.vcek"),
        ("measurement not allowed", "measurement"),
        ("debug guest", "policy"),
        ("no allowlist", "measurement.allowlist"),
    ],
)
def test_a_report_that_does_not_verify_gets_no_key(
    chip: Chip,
    attested_vault: AttestedVault,
    case: str,
    expected: str,
) -> None:
    writer, opener, read, audit = attested_vault
    writer.require_attestation("default", "keys", actor=ADMIN)
    obtain, policy = chip_evidence(chip), policy_for(chip)
    if case == "forged chain":
        obtain = chip_evidence(Chip())  # a chip of someone else's making: signs well, chains to no trusted root
    elif case == "measurement not allowed":
        obtain = chip_evidence(chip, measurement=b"\x22" * 48)
    elif case == "debug guest":
        from runtime.attestation.verify import POLICY_DEBUG, POLICY_RESERVED_ONE

        obtain = chip_evidence(chip, policy=POLICY_RESERVED_ONE | POLICY_DEBUG)
    elif case == "no allowlist":
        policy = dataclasses.replace(policy, measurements=())
    with pytest.raises(AttestationRequired) as refused:
        read(opener(obtain, policy))
    assert f"{expected}:" in str(refused.value)
    assert [a for a, _ in _actions(audit) if a.startswith("key.")] == [AuditAction.KEY_RELEASE_REFUSED]


def test_the_gate_refuses_a_replayed_nonce_and_a_report_for_another_key(chip: Chip) -> None:
    gate = KeyRelease(policy_for(chip))
    piece = lambda: bytearray(b"p" * 32)  # noqa: E731
    attacker_key = SealingKeyPair().public_key  # where the attacker wants the piece sealed
    honest_key = SealingKeyPair().public_key
    nonce = gate.challenge(NOW)
    report = chip.report(report_data=report_data_binding("signer-0", honest_key, SERVICE_PUBLIC, nonce))
    # A genuine, fresh report of the signer, presented with the attacker's key: it binds another key.
    swapped = ReleaseRequest("signer-0", attacker_key, SERVICE_PUBLIC, nonce, report, chip.vcek_der(), "stolen")
    with pytest.raises(AttestationRequired, match="report_data:"):
        gate.release(swapped, piece, "vault:default/keys", b"ctx", NOW)
    # The nonce went with that attempt: the honest request with it now is a replay.
    honest = ReleaseRequest("signer-0", honest_key, SERVICE_PUBLIC, nonce, report, chip.vcek_der(), "chip")
    with pytest.raises(AttestationRequired, match="replayed"):
        gate.release(honest, piece, "vault:default/keys", b"ctx", NOW)
    # A nonce older than the gate keeps them is as unknown as a made-up one.
    late = gate.challenge(NOW)
    report = chip.report(report_data=report_data_binding("signer-0", honest_key, SERVICE_PUBLIC, late))
    gate.challenge(NOW + timedelta(seconds=120))  # sweeps expired nonces
    with pytest.raises(AttestationRequired, match="replayed"):
        gate.release(
            ReleaseRequest("signer-0", honest_key, SERVICE_PUBLIC, late, report, chip.vcek_der(), "chip"),
            piece,
            "vault:default/keys",
            b"ctx",
            NOW + timedelta(seconds=120),
        )
