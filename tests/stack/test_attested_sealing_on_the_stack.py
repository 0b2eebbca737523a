"""Attested sealing keys on the running stack: the SDK refuses a substituted or junk announcement on
the sealing topic, and a signer without evidence never gets the key of an attested vault."""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest

from infra.stack.local import LocalStack
from runtime.attestation.announcement import announcement_nonce
from runtime.trust import service_key_file
from schemas.auth import load_or_create_ed25519, sign_announcement
from schemas.codes import Code
from schemas.outcomes import IntentRejected
from schemas.sealing import SealingRefused
from schemas.sealing_key import SealingKey
from schemas.stages import Stage
from signer.sealing import SealingKeyPair


def test_the_sdk_refuses_a_sealing_key_substituted_on_the_topic(stack: LocalStack, run: Callable[..., Any]) -> None:
    """A hostile writer of warden.signer.sealing announces its own key for the signer, carrying
    AMD's real report (genuine chip, genuine chain), after the signer's own announcement. A client
    that verifies attestation and accepts that report's measurement never seals to it, for
    report_data alone: it seals to the signer's real key when it accepts that one, and refuses
    when it accepts neither; a client without the development opt-in refuses a substituted
    tee=none key too."""
    import subprocess
    import sys

    from infra.stack.local import REPO
    from runtime.attestation.verify import parse_report
    from runtime.clock import utcnow
    from runtime.config import AttestationSettings, Settings, child_environment
    from runtime.trust import PinnedServiceKeys
    from schemas import topics
    from schemas.sealing_key import AttestationEvidence
    from sdk.client import Client, ClientKey, sealing_keys
    from tests.attestation_support import TESTDATA

    settings = stack.settings
    (honest,) = run(sealing_keys(settings))
    raw, vcek = (TESTDATA / "attestation.bin").read_bytes(), (TESTDATA / "vcek.der").read_bytes()
    real = parse_report(raw)
    verifying = dataclasses.replace(
        settings, attestation=AttestationSettings(measurements=(real.measurement.hex(),), allow_debug=True)
    )  # the real report is a debug guest's
    share = base64.b64encode(bytes(range(32))).decode()

    async def publish(announced: SealingKey) -> None:
        async with Client(settings) as client:
            await (await client.send(topics.SIGNER_SEALING, announced.signer_id, announced.to_bytes()))

    async def seal(as_settings: Settings) -> ClientKey:
        async with Client(as_settings) as client:
            return await client.client_share(share)

    attacker = SealingKeyPair()
    at = utcnow()
    forged = attacker.announcement(
        honest.signer_id,
        "sev-snp",
        at,
        AttestationEvidence(
            report=base64.b64encode(raw).decode(),
            vcek=base64.b64encode(vcek).decode(),
            vcek_url="https://x",
            product="milan",
            service_key_id=honest.signer_id,
            service_public_key=PinnedServiceKeys(settings).key("signer", honest.signer_id),
            nonce="0x" + announcement_nonce(honest.signer_id, at).hex(),
        ),
    )
    try:
        run(publish(forged))
        (seen,) = run(sealing_keys(settings))
        assert seen.key_id == attacker.key_id  # the substitution is the newest on the topic
        # A client that accepts this signer's real (tee=none) key seals to it: the forgery, dated
        # after it, does not hide it (were it to hide it, a forgery dated in the future would for good).
        for as_settings in (settings, verifying):
            sealed = run(seal(as_settings))
            assert [k.key_id for k in sealed.keys] == [honest.key_id]
            sealed.wipe()
        # A client that accepts neither: refused, for the forgery's own fault. Verifying, with the
        # real report's measurement allowed: only report_data fails.
        strict = dataclasses.replace(verifying, allow_unattested_signer=False)
        with pytest.raises(SealingRefused) as refused:
            run(seal(strict))
        why = str(refused.value)
        assert "report_data: " in why and "signer-0 (tee=sev-snp)" in why
        assert not any(f"{name}:" in why for name in ("chain.vcek", "signature", "measurement", "policy", "tcb"))
        # Not verifying (no allowlist): refused as well, for that.
        with pytest.raises(SealingRefused, match="measurement.allowlist"):
            run(seal(dataclasses.replace(settings, allow_unattested_signer=False)))
        # The same refusal through the CLI a person would use; nothing is submitted.
        env = child_environment(strict) | {"PYTHONPATH": str(REPO)}
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "infra.cli",
                "submit",
                "--agent",
                "nobody",
                "--chain",
                "anvil",
                "--to",
                "0x" + "00" * 20,
                "--value",
                "0",
                "--client-share-file",
                "-",
            ],
            input=share,
            text=True,
            capture_output=True,
            cwd=REPO,
            timeout=60,
            env=env,
        )
        assert cli.returncode == 2 and "report_data: " in cli.stderr, cli.stderr

        # A tee=none substitute, dated after the signer's real key: refused without the opt-in,
        # and with it sealed around, since only the signer's pinned service key ties a tee=none
        # key to the signer (taken, it would get every share).
        run(publish(attacker.announcement(honest.signer_id, "none", utcnow())))
        unopted = dataclasses.replace(settings, allow_unattested_signer=False)
        with pytest.raises(SealingRefused, match="WARDEN_ALLOW_UNATTESTED_SIGNER"):
            run(seal(unopted))
        (seen,) = run(sealing_keys(settings))
        assert seen.key_id == attacker.key_id and seen.tee == "none"  # the newest on the topic
        sealed = run(seal(settings))
        assert [k.key_id for k in sealed.keys] == [honest.key_id]
        sealed.wipe()
    finally:
        # The signer's real key, newest again: re-signed with the signer's own service key.
        service = load_or_create_ed25519(service_key_file(settings.home, "signer", honest.signer_id))
        run(publish(sign_announcement(honest.model_copy(update={"announced_at": utcnow()}), service, honest.signer_id)))
    (restored,) = run(sealing_keys(settings))
    assert restored.key_id == honest.key_id


def test_junk_on_the_sealing_topic_announces_nothing_and_stops_no_client(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """What is no announcement (any bytes, under any key) is skipped: raised out of every client's
    read of the sealing keys, one record would stop client custody for good (the topic is
    compacted: it is never deleted), reported by `warden submit` as an invalid intent."""
    import os

    from schemas import topics
    from sdk.client import Client, ClientKey, sealing_keys

    settings = stack.settings
    (honest,) = run(sealing_keys(settings))

    async def write_junk() -> None:
        async with Client(settings) as client:
            await client.send(topics.SIGNER_SEALING, f"junk-{os.urandom(3).hex()}", b"\x00 not an announcement")
            await client.send(topics.SIGNER_SEALING, honest.signer_id, b'{"signer_id": "signer-0"}')
            await client.flush()

    async def seal() -> ClientKey:
        async with Client(settings) as client:
            return await client.client_share(base64.b64encode(bytes(range(32))).decode())

    run(write_junk())
    assert run(sealing_keys(settings)) == [honest]
    sealed = run(seal())
    sealed.wipe()


def test_a_signer_without_evidence_never_gets_the_key_of_an_attested_vault(
    fresh_stack: Callable[..., LocalStack], run: Callable[..., Any]
) -> None:
    """The signing-key vault is made to require attestation while the stack runs. The signer
    (tee=none here: no SEV-SNP) signed a moment before with the KEK cached; from then on every
    intent is refused ATTESTATION_REQUIRED at the signing stage, each refusal is on the audit
    ledger with the reason, the admin's CLI cannot write a key into the vault either, and the
    requirement cannot be lifted."""
    import subprocess
    import sys

    import clickhouse_connect

    from infra.stack import demo_script
    from infra.stack.local import REPO
    from infra.stack.provision import provision_agent
    from runtime.config import child_environment
    from runtime.kafka import end_offsets
    from schemas import topics
    from schemas.intent import TransactionIntent
    from schemas.outcomes import SignedTransaction
    from sdk.client import Client, Outcome, new_intent, wait_outcomes

    stack = fresh_stack()
    settings = stack.settings
    agent = run(provision_agent(settings, "att-agent", tx_to_allowlist=(demo_script.ALICE,)))

    async def submit() -> tuple[TransactionIntent, Outcome]:
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        intent = new_intent(agent.intent_key, agent_id="att-agent", chain="anvil", to=demo_script.ALICE, value="0.01")
        async with Client(settings) as client:
            await (await client.submit(intent))
        return intent, (await wait_outcomes(settings, [intent], 120, start))[intent.intent_id]

    _, signed = run(submit())
    assert isinstance(signed, SignedTransaction) and signed.tee == "none"

    env = child_environment(settings) | {"PYTHONPATH": str(REPO)}

    def warden(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "infra.cli", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
        )

    required = warden("vault", "require-attestation", "--vault", "__agent-keys", "--json")
    assert required.returncode == 0 and '"changed":true' in required.stdout.replace(" ", ""), required.stderr
    refused_ids = []
    for _ in range(2):
        intent, refused = run(submit())
        assert isinstance(refused, IntentRejected), refused
        assert (refused.stage, refused.code, refused.tee) == (Stage.SIGNING, Code.ATTESTATION_REQUIRED, "none")
        assert "no attestation report (tee=none" in refused.reason
        refused_ids.append(intent.intent_id)
    again = warden("vault", "require-attestation", "--vault", "__agent-keys")
    assert again.returncode == 0 and "already requires attestation" in again.stdout
    provision = warden("keys", "provision", "--agent", "att-agent-2", "--chain", "ethereum")
    assert provision.returncode == 3 and "requires attestation" in provision.stderr, provision.stderr

    host, _, port = settings.ledger_http.rpartition(":")
    ledger = clickhouse_connect.get_client(host=host, port=int(port))
    deadline = time.monotonic() + 60
    while True:
        rows = ledger.query("SELECT actor, details FROM audit_log WHERE action = 'key.release_refused'").result_rows
        if len(rows) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(1)
    actors = sorted(actor for actor, _ in rows)
    # Both intents' refusals by the signer, and the CLI's refused write.
    assert actors.count(f"service:{settings.signer_id}") >= 2 and "service:admin-cli" in actors, rows
    assert all(Code.ATTESTATION_REQUIRED in details and '"tee":"none"' in details for _, details in rows)
