"""`warden demo` end to end on each custody mode, with the roots chosen by configuration alone.

Real roots: SoftHSM2 through PKCS#11 and AWS KMS on ``moto_server`` (boto3 over HTTP), plus the
local development root where a third provider is needed. Each case runs the demo as a user
would (a subprocess with its own embedded stack), then checks what it printed against the
chain (eth-account recovers every mined transaction to the agent's address) and against the
vault's event log (the mode and the providers holding the KEK). The demos run two at a time
(``DemoRuns``): each is its own process tree on its own ports and home, and most of a demo's
time is waiting (its services joining their consumer groups, blocks), which the other fills.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from eth_account import Account

from infra.stack import demo_script
from infra.stack.kms_servers import MotoServer
from infra.stack.local import REPO, LocalStack, free_ports, listen_ports, ports_between
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.codes import Code
from schemas.stages import Stage
from sdk.client import Outcome, wait_outcomes
from signer.custody.events import ModeSet, SecretVersionWritten, parse_event
from tests.custody_support import SoftHsmToken
from tests.support import worker_ports

CASES = {
    # mode: (primary root, other roots)
    "standard": ("pkcs11", ()),
    "2of3_multi_hsm": ("pkcs11", ("aws-kms", "local-dev")),
    "2of2_client_custody": ("aws-kms", ()),
    "2of3_client_custody": ("pkcs11", ("aws-kms",)),
}


@pytest.fixture(scope="module")
def roots_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment naming a SoftHSM2 token and a moto AWS KMS key, for subprocesses only (this
    process never loads the PKCS#11 module, which reads its configuration once per process)."""
    previous = os.environ.get("SOFTHSM2_CONF")
    token = SoftHsmToken(tmp_path_factory.mktemp("softhsm-pipeline"))
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous
    hsm = {
        "SOFTHSM2_CONF": str(token.conf),
        "WARDEN_PKCS11_MODULE": token.module,
        "WARDEN_PKCS11_TOKEN": token.label,
        "WARDEN_PKCS11_PIN": token.pin,
    }
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from signer.custody.pkcs11_hsm import Pkcs11Root; "
            f"Pkcs11Root.create_key({token.module!r}, {token.label!r}, {token.pin!r})",
        ],
        env={**os.environ, **hsm, "PYTHONPATH": str(REPO)},
        check=True,
        timeout=60,
    )
    moto = MotoServer()
    try:
        yield {
            **hsm,
            "WARDEN_AWS_KMS_KEY_ID": moto.create_key(),
            "WARDEN_AWS_KMS_ENDPOINT": moto.url,
            "WARDEN_AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    finally:
        moto.stop()


# How many demos run at once. Each is ~30 s on a quiet machine, most of it waiting; two at a
# time halve the file's wall time, and the demo's own deadlines stay far from what it needs.
AT_ONCE = 2
DEMO_TIMEOUT_S = 300


class DemoRuns:
    """`warden demo --json --quiet` for each selected mode, each a subprocess with its own home and
    ports, started ``AT_ONCE`` ahead of the test that reads it, in the tests' order."""

    def __init__(self, modes: list[str], roots_env: dict[str, str], base: Path) -> None:
        self.modes, self.roots_env, self.base = modes, roots_env, base
        self.running: dict[str, tuple[subprocess.Popen[bytes], float]] = {}

    def home(self, mode: str) -> Path:
        return self.base / mode / "home"

    def _start(self, mode: str) -> None:
        primary, others = CASES[mode]
        # Each demo picks its ports in a slice of this worker's no other demo picks from: the ports
        # picked here are bound only once its stack is up, and a demo running beside it, picking
        # its own in the same range meanwhile, could take one of them (for its surfpool, say).
        ports = worker_ports(listen_ports(), self.modes.index(mode), len(self.modes))
        broker, rpc, ledger, api = free_ports(4, within=ports_between(ports, listen_ports()))
        env = {
            **os.environ,
            **self.roots_env,
            "WARDEN_HOME": str(self.home(mode)),
            "WARDEN_KEY_MODE": mode,
            "WARDEN_ROOT_PROVIDER": primary,
            "WARDEN_ROOT_PROVIDERS": ",".join(others),
            "WARDEN_LISTEN_PORTS": ports,
            "WARDEN_BROKER": f"127.0.0.1:{broker}",
            "WARDEN_RPC_URL": f"http://127.0.0.1:{rpc}",
            "WARDEN_LEDGER_HTTP": f"127.0.0.1:{ledger}",
            "WARDEN_API_HTTP": f"127.0.0.1:{api}",
            "PYTHONPATH": str(REPO),
            # The default: the demo signs a blob, so its signer loads the KZG setup while it starts.
            "WARDEN_KZG_SETUP_AT_FIRST_BLOB": "0",
        }
        # Files, not pipes: a demo that finishes while the test reads another must not block on a full pipe.
        (self.base / mode).mkdir(parents=True)
        with (self.base / mode / "stdout").open("wb") as out, (self.base / mode / "stderr").open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "infra.cli", "demo", "--json", "--quiet"],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=err,
            )
        self.running[mode] = (proc, time.monotonic())

    def result(self, mode: str) -> tuple[int, bytes, bytes]:
        """The demo's exit code, stdout and stderr, once it has ended (within its own deadline)."""
        index = self.modes.index(mode)
        for ahead in self.modes[index : index + AT_ONCE]:
            if ahead not in self.running:
                self._start(ahead)
        proc, began = self.running[mode]
        try:
            proc.wait(timeout=max(1.0, began + DEMO_TIMEOUT_S - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._stop(proc)
            raise
        return proc.returncode, (self.base / mode / "stdout").read_bytes(), (self.base / mode / "stderr").read_bytes()

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        # SIGINT: the demo stops its stack on the way out (its services run in sessions of their own).
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        for proc, _ in self.running.values():
            self._stop(proc)


@pytest.fixture(scope="module")
def demos(
    request: pytest.FixtureRequest, roots_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoRuns]:
    selected = [
        str(item.callspec.params["mode"])  # a key of CASES
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.module is request.module
        and item.originalname == "test_demo_on_each_custody_mode"
    ]
    runs = DemoRuns(selected, roots_env, tmp_path_factory.mktemp("demos"))
    try:
        yield runs
    finally:
        runs.stop()


@pytest.mark.parametrize("mode", list(CASES))
def test_demo_on_each_custody_mode(mode: str, demos: DemoRuns) -> None:
    primary, others = CASES[mode]
    home = demos.home(mode)
    returncode, stdout, stderr = demos.result(mode)
    assert returncode == 0, stderr.decode()[-3000:] + stdout.decode()[-3000:]
    report = orjson.loads(stdout)

    outcomes = [(r["intent"], r["code"] if r["outcome"] == "rejected" else r["outcome"]) for r in report["intents"]]
    assert outcomes == demo_script.expected_outcomes(Settings(key_mode=mode))
    assert report["all_as_expected"] and report["ledger"]["ok"]
    # The Solana agent's key is in the same custody: signed (client share included) and finalized.
    solana = report["solana_session"]
    assert solana["as_expected"] and [r["status"] for r in solana["intents"]][:2] == ["finalized"] * 2, solana
    assert solana["intents"][-1]["status"] == "signed"  # the off-chain message, in the same custody
    # The Bitcoin agent's key too (its seed in the same vault, the client share sealed alike): paid
    # and final, and the stranger refused by the judge.
    bitcoin = report["bitcoin_session"]
    assert bitcoin["as_expected"] and [(r["status"], r.get("final")) for r in bitcoin["intents"]] == [
        ("mined", True),
        ("rejected", None),
    ], bitcoin
    # x402 on Solana, paid to the official SDK's server: `warden pay` holds no client share, so in
    # the client-custody modes the signer refuses the payment and the payee gets nothing.
    x402 = report["x402_solana_session"]
    paid = "client" not in mode
    assert x402["as_expected"] and x402["alice_received"] == (10_000 if paid else 0), x402
    assert [r.get("code") or r["status"] for r in x402["payments"]] == [
        "paid" if paid else Code.CLIENT_SHARE_INVALID,
        Code.VALUE_OVER_CAP,
    ], x402
    # The main job's witness cosigned the checkpoint over a mined transfer's final outcome.
    receipt = report["receipt"]
    assert receipt["ok"] and receipt["action"] == AuditAction.TX_FINAL and receipt["witness"] == "witness.local/w1", (
        receipt
    )
    mined = [r for r in report["intents"] if r["outcome"] == "mined"]
    assert len(mined) == 9  # five transfers, a blob transaction, a delegation and two token transfers
    for row in mined:
        assert Account.recover_transaction(row["signed_tx"]) == report["address"]
    # The message and the allowlisted Permit are signed with the same custody (client share included).
    signed = [r for r in report["intents"] if r["outcome"] == "signed"]
    assert len(signed) == 2 and {r["from"] for r in signed} == {report["address"]}
    if "client" in mode:
        refused = [r for r in report["intents"] if r["code"] == Code.CLIENT_SHARE_INVALID]
        # A wrong share and no share get the very same answer.
        assert len(refused) == 2 and refused[0]["reason"] == refused[1]["reason"]
        assert {r["stage"] for r in refused} == {Stage.SIGNING}

    events = [orjson.loads(line) for line in (home / "demo" / "vault" / "events.jsonl").read_bytes().splitlines()]
    (mode_set,) = [e for e in events if isinstance(parse_event(e), ModeSet)]
    assert mode_set["mode"] == mode
    assert [s["provider"] for s in mode_set["slots"]] == [primary, *others]
    assert mode_set["development"] is ("local-dev" in others)
    written = [e for e in events if isinstance(parse_event(e), SecretVersionWritten)]
    assert written and all(e["kek_id"] == mode_set["kek_id"] for e in written)


def test_client_share_across_a_signer_restart_and_never_recorded(
    fresh_stack: Callable[..., LocalStack], run: Callable[..., Any]
) -> None:
    """2of2_client_custody on the dev root: a share sealed to a signer that has since restarted
    is refused with its own code (it says what to do), a fresh seal signs, and afterwards neither
    the client share nor the private key is in any topic, log, vault event or ledger row."""
    from base64 import b64decode

    from infra.stack.provision import provision_agent
    from runtime.kafka import end_offsets
    from schemas import topics
    from schemas.outcomes import IntentRejected
    from sdk.client import Client, ClientKey, new_intent, sealing_keys
    from signer.custody.hygiene import find_leaks
    from signer.custody_wiring import keystore_from_settings
    from tests.support import everything_recorded

    stack = fresh_stack(key_mode="2of2_client_custody")
    settings = stack.settings
    agent = run(provision_agent(settings, "cc-agent", tx_to_allowlist=(demo_script.ALICE,)))
    assert agent.client_share is not None

    async def submit(share: ClientKey, value: str) -> Outcome:
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        intent = new_intent(
            agent.intent_key,
            agent_id="cc-agent",
            chain="anvil",
            to=demo_script.ALICE,
            value=value,
            broadcast=True,
            client_share=share,
        )
        async with Client(settings) as client:
            await (await client.submit(intent))
        return (await wait_outcomes(settings, [intent], 120, start))[intent.intent_id]

    async def share_for_current_signer() -> ClientKey:
        async with Client(settings) as client:
            return await client.client_share(agent.client_share)

    before = run(share_for_current_signer())
    first = run(submit(before, "0.1"))
    assert first.status == "mined" and Account.recover_transaction(first.signed_tx) == agent.address

    stack.kill("signer", signal.SIGTERM)
    stack.start_service("signer", "signer.main")
    (announced,) = run(sealing_keys(settings))
    assert announced.key_id not in {k.key_id for k in before.keys}  # a restart makes a new key
    stale = run(submit(before, "0.1"))
    assert isinstance(stale, IntentRejected) and stale.code == Code.CLIENT_SHARE_SEALED_TO_OLD_KEY
    assert announced.key_id in stale.reason
    after = run(share_for_current_signer())
    second = run(submit(after, "0.2"))
    assert second.status == "mined" and second.nonce == first.nonce + 1
    before.wipe()
    after.wipe()

    records, rows, haystack = run(everything_recorded(settings))
    # The search covers this run: both signed transactions as published, and the ledger's rows of
    # both intents (audit events travel several to a record, so records are fewer than events).
    assert records > 30 and rows > 20
    assert all(tx.signed_tx.encode() in haystack and tx.intent_id.encode() in haystack for tx in (first, second))
    share = b64decode(agent.client_share)
    assert find_leaks(haystack, share) == []
    store = keystore_from_settings(settings)
    (key,) = store.list_keys("admin:local-admin", agent_id="cc-agent")
    with store.open_private_key(key.path, key.version, client_share=bytearray(share)) as private_key:
        assert find_leaks(haystack, bytes(private_key)) == []


def test_a_customer_managed_key_on_the_signing_key_vault_travels_sealed_in_each_intent(
    fresh_stack: Callable[..., LocalStack], run: Callable[..., Any]
) -> None:
    """2of2_client_custody plus a CMEK on __agent-keys: each signature needs both client-held keys.
    A missing, wrong or retired CMEK is CMEK_INVALID (checked against the vault's public
    fingerprint); a wrong share with the right CMEK is still CLIENT_SHARE_INVALID; after a
    rotation only the new CMEK signs. Neither CMEK is recorded anywhere."""
    from infra.stack.provision import provision_agent
    from runtime.clock import utcnow
    from runtime.kafka import end_offsets
    from schemas import topics
    from schemas.outcomes import IntentRejected, SignedTransaction
    from sdk.client import Client, new_intent
    from sdk.quorum import publish_custody_change
    from signer.custody import AGENT_KEYS_VAULT
    from signer.custody.hygiene import find_leaks
    from signer.custody_wiring import AuditOutbox, VaultOutbox, keystore_from_settings
    from tests.support import everything_recorded

    stack = fresh_stack(key_mode="2of2_client_custody")
    settings = stack.settings
    agent = run(provision_agent(settings, "cmek-agent", tx_to_allowlist=(demo_script.ALICE,)))
    first_cmek, second_cmek = os.urandom(32), os.urandom(32)

    async def set_cmek(new: bytes, current: bytes | None) -> None:
        audit, events = AuditOutbox(), VaultOutbox()
        vaults = keystore_from_settings(settings, audit=audit, vault_outbox=events).vaults
        if current is not None:
            vaults.load_cmek("default", AGENT_KEYS_VAULT, current)
        vaults.set_cmek("default", AGENT_KEYS_VAULT, new, actor="admin:local-admin")
        done = await publish_custody_change(settings, events.drain() + audit.drain(), utcnow())
        assert done.applied and not done.refused, done

    async def submit(share: str, cmek: bytes | None) -> Outcome:
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        async with Client(settings) as client:
            share_key = await client.client_share(share)
            cmek_key = None if cmek is None else await client.cmek(base64.b64encode(cmek).decode())
            intent = new_intent(
                agent.intent_key,
                agent_id="cmek-agent",
                chain="anvil",
                to=demo_script.ALICE,
                value="0.01",
                broadcast=True,
                client_share=share_key,
                cmek=cmek_key,
            )
            await (await client.submit(intent))
        return (await wait_outcomes(settings, [intent], 120, start))[intent.intent_id]

    def code(outcome: IntentRejected | SignedTransaction) -> str:
        return outcome.code if isinstance(outcome, IntentRejected) else outcome.status

    wrong_share = base64.b64encode(os.urandom(32)).decode()
    run(set_cmek(first_cmek, None))
    assert code(run(submit(agent.client_share, first_cmek))) == "mined"
    assert code(run(submit(agent.client_share, None))) == Code.CMEK_INVALID
    assert code(run(submit(agent.client_share, os.urandom(32)))) == Code.CMEK_INVALID
    assert code(run(submit(wrong_share, first_cmek))) == Code.CLIENT_SHARE_INVALID

    run(set_cmek(second_cmek, first_cmek))
    assert code(run(submit(agent.client_share, first_cmek))) == Code.CMEK_INVALID
    signed = run(submit(agent.client_share, second_cmek))
    assert signed.status == "mined" and Account.recover_transaction(signed.signed_tx) == agent.address

    _, _, haystack = run(everything_recorded(settings))
    for cmek in (first_cmek, second_cmek):
        assert find_leaks(haystack, cmek) == []
