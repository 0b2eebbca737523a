"""What the Bitcoin stack tests share (tests/stack/test_bitcoin_holds.py, test_bitcoin_pipeline.py):
an agent made with the plain commands (`plain_agent`), commands run at the same moment
(`at_once`), a PSBT written with embit, an independent writer (`embit_psbt`); and an in-process
signer for one agent's payments, driven against the stack's btcd as `signer.main` drives it
(`BtcHarness`): its key from custody, its coins paid by the stack's regtest funder, its PSBTs
written by `btc.payments`, and every record it publishes collected and its signature checked.
The clock is an argument, so a test asks what counts a day later without waiting a day."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from embit import ec, script
from embit.networks import NETWORKS
from embit.psbt import PSBT
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from btc import payments, signing, wallet
from infra.cli import fund
from infra.stack.local import REPO
from rules import bitcoin as bitcoin_rules
from runtime import bitcoin
from runtime.admins import Admins
from runtime.clock import to_us, utcnow
from runtime.config import Settings, child_environment
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.auth import public_key_hex
from schemas.emit import Emit, Source
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentApproved, IntentRejected, SignedBitcoinTransaction
from schemas.policy import BitcoinPolicy
from sdk.client import new_intent
from signer.custody.keys import KeyStore
from signer.service import Signer
from signer.state import SignerState
from streams.engine import Engine
from tests.custody_support import ADMIN, make_vaults
from tests.engine_support import StaticKeys
from tests.support import warden
from tests.tracker_support import Published

CHAIN = "bitcoin-regtest"
ASSET = bitcoin_rules.asset_key(CHAIN)
REGTEST = NETWORKS["regtest"]
T = TypeVar("T")


def stranger() -> tuple[str, bytes]:
    """A fresh regtest P2WPKH address nobody here holds the key of, and its script."""
    out = script.p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key())
    return out.address(REGTEST), out.data


def cli_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def at_once(settings: Settings, *commands: Sequence[str]) -> list[subprocess.CompletedProcess[str]]:
    """Each ``warden`` command started at the same moment (as `tests.support.warden` runs one),
    each run to its end."""
    env = child_environment(settings) | {"PYTHONPATH": str(REPO)}
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "infra.cli", *argv],
            env=env,
            cwd=str(REPO),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in commands
    ]
    done = []
    for process, argv in zip(started, commands, strict=True):
        out, err = process.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(argv, process.returncode, out, err))
    return done


@dataclass(frozen=True)
class PlainAgent:
    agent_id: str
    public_key: str
    address: str  # its P2WPKH address on regtest, where `warden fund` pays
    bob: str
    bob_script: bytes


def plain_agent(settings: Settings, prefix: str, coins: Sequence[str], *options: str) -> PlainAgent:
    """An agent made with the plain commands: its Bitcoin key, one coin from the node per value
    of ``coins`` (BTC), and a policy on regtest paying bob, with the plain ``options``
    (``--max-value``, ``--daily-limit``)."""
    agent = f"{prefix}-{os.urandom(3).hex()}"
    key = cli_json(warden(settings, "keys", "provision", "--agent", agent, "--chain", "bitcoin", "--json"))
    for value in coins:
        cli_json(warden(settings, "fund", "--agent", agent, "--chain", CHAIN, "--value", value, "--json"))
    bob, bob_script = stranger()
    created = warden(settings, "agents", "create", "--agent", agent, "--chains", CHAIN, "--allowlist", bob, *options)
    assert created.returncode == 0, created.stderr
    public_key = key["public_key_hex"]
    return PlainAgent(agent, public_key, key["networks"][CHAIN][0], bob, bob_script)


def shown(settings: Settings, agent: str, intent_id: str, until: Callable[[Any], bool], what: str) -> Any:
    """The intent's Bitcoin record as `warden txs show` prints it, once ``until`` holds of it."""
    deadline = time.monotonic() + 90
    while True:
        done = warden(settings, "txs", "show", intent_id, "--agent", agent, "--include-signed-tx", "--json")
        record = orjson.loads(done.stdout) if done.returncode == 0 else None
        if record is not None and until(record):
            return record
        assert time.monotonic() < deadline, f"{what}: {record}"
        time.sleep(1)


def embit_psbt(coins: Sequence[bitcoin.Utxo], outputs: Sequence[tuple[bytes, int]], locktime: int = 0) -> bytes:
    """A PSBT spending ``coins`` to ``outputs`` (script, satoshis), every input replaceable, written by embit."""
    tx = Transaction(
        version=2,
        locktime=locktime,
        vin=[TransactionInput(bytes.fromhex(c.txid), c.vout, sequence=0xFFFFFFFD) for c in coins],
        vout=[TransactionOutput(amount, script.Script(spk)) for spk, amount in outputs],
    )
    psbt = PSBT(tx)
    for scope, coin in zip(psbt.inputs, coins, strict=True):
        scope.witness_utxo = TransactionOutput(coin.amount, script.Script(coin.script))
    written: bytes = psbt.serialize()
    return written


class BtcHarness(Published):
    """An in-process signer for one agent with a Bitcoin key of its own, paying bob, on the node
    at ``rpc_url``; ``bitcoin_fields`` and ``policy_fields`` go into its policy."""

    def __init__(
        self,
        tmp: Path,
        settings: Settings,
        bitcoin_fields: dict[str, Any] | None = None,
        **policy_fields: Any,
    ):
        self.settings = settings
        self.node = JsonRpc(settings.rpc_url_for(CHAIN), timeout_s=60)
        store = KeyStore(make_vaults(tmp), mode="standard")
        self.agent = f"btc-holds-{os.urandom(3).hex()}"
        provisioned = store.provision(self.agent, "bitcoin", ADMIN)
        self.store, self.key_version = store, (provisioned.path, provisioned.version)
        self.public_key = provisioned.public_key_hex
        self.own = wallet.own_scripts(bytes.fromhex(self.public_key))
        self.address = wallet.addresses(bytes.fromhex(self.public_key), "regtest")[0]
        self.bob, self.bob_script = stranger()
        section = BitcoinPolicy(public_key=self.public_key, allowlist=(self.bob,), **(bitcoin_fields or {}))
        self.policy = self.keys_and_policy(self.agent, tx_allowed_chains=(CHAIN,), bitcoin=section, **policy_fields)
        self.state = SignerState(tmp / f"{self.agent}.db")
        self.signer = Signer(
            self.state,
            store,
            Admins.with_threshold({"test-admin": public_key_hex(self.admin_key)}, 1),
            node_for=lambda chain: self.node,
            service_key=("signer-test", self.service_key),
        )
        self.published: list[Emit] = []
        self.offset = 0

    async def fund(self, sats: int) -> list[bitcoin.Utxo]:
        """``sats`` paid to the agent by the stack's funder, in a block: the agent's coins then."""
        await fund.fund(self.settings, CHAIN, self.address, sats)
        return await self.coins()

    async def two_coins(self, sats: int) -> tuple[bitcoin.Utxo, bitcoin.Utxo]:
        """Two coins of ``sats`` each paid to the agent, in a block."""
        await self.fund(sats)
        first, second = sorted(await self.fund(sats), key=lambda c: (c.txid, c.vout))
        return first, second

    async def coins(self) -> list[bitcoin.Utxo]:
        return [u for u in await bitcoin.unspent(self.node, self.address) if u.confirmations >= 1]

    def psbt(self, coins: Sequence[bitcoin.Utxo], sats: int) -> bytes:
        """A payment of ``sats`` to bob from ``coins``, change back to the agent (`btc.payments`)."""
        spent = [payments.Coin(c.txid, c.vout, c.amount, c.script) for c in coins]
        return payments.payment(spent, self.bob_script, sats, self.own, 2)

    async def pay(
        self, now: datetime, psbt: bytes | TransactionIntent, broadcast: bool = False
    ) -> tuple[SignedBitcoinTransaction | IntentRejected, SignedBitcoinTransaction | None]:
        """An intent paying ``psbt`` (or the intent itself, one the worker judged) approved and
        handled by the signer at ``now``, its state committed (as the signer's loop does before it
        sends anything): its outcome, and the record to send when it asks for broadcast."""
        intent = psbt if isinstance(psbt, TransactionIntent) else self.intent(now, psbt, broadcast)
        approved = IntentApproved(intent=intent, policy=self.policy, verdicts=(), approved_at=now)
        self.offset += 1
        source = Source(topics.INTENTS_APPROVED, 0, self.offset, self.agent.encode())
        emits, to_send = await self.signer.handle(approved.to_bytes(), source, now)
        self.state.commit()
        self.published += emits
        (outcome,) = [e for e in emits if e.topic in (topics.BITCOIN_SIGNED, topics.INTENTS_REJECTED)]
        if outcome.topic == topics.INTENTS_REJECTED:
            return IntentRejected.from_bytes(outcome.value), None
        assert to_send is None or isinstance(to_send, SignedBitcoinTransaction)
        return SignedBitcoinTransaction.from_bytes(outcome.value), to_send

    def signed_elsewhere(self, psbt: bytes) -> bytes:
        """``psbt`` signed with the agent's key outside this signer (a restored backup of the key,
        or a stolen one, would): the network transaction."""
        with self.store.open_private_key(*self.key_version) as seed:
            return signing.sign(psbt, seed).raw

    def intent(self, now: datetime, psbt: bytes, broadcast: bool = False) -> TransactionIntent:
        return new_intent(
            self.agent_key,
            agent_id=self.agent,
            chain=CHAIN,
            intent_type="bitcoin_psbt",
            bitcoin_psbt=base64.b64encode(psbt).decode(),
            broadcast=broadcast,
            now=now,
        )

    def worker(self) -> Engine:
        """A streams worker's engine (no broker) judging on this node, under this agent's policy,
        that believes this signer's records."""
        admins = Admins.with_threshold({"test-admin": public_key_hex(self.admin_key)}, 1)
        pinned = StaticKeys(signer={"signer-test": public_key_hex(self.service_key)})
        engine = Engine(
            admins=admins,
            node_for=lambda chain: self.node,
            policies={},
            decisions={},
            idempotency={},
            service_key=("streams-test", Ed25519PrivateKey.generate()),
            service_keys=pinned,
            max_record_bytes=1 << 20,
        )
        self.offset += 1
        engine.on_policy(self.policy.to_bytes(), Source(topics.POLICIES, 0, self.offset, self.agent.encode()), utcnow())
        return engine

    async def judged(self, engine: Engine, now: datetime, intent: TransactionIntent) -> tuple[str, str]:
        """The worker's decision on ``intent`` at ``now``: ("approved", "") or (stage, code)."""
        self.offset += 1
        source = Source(topics.INTENTS_SUBMITTED, 0, self.offset, self.agent.encode())
        emits = await engine.on_intent(intent.to_bytes(), source, now)
        for emit in emits:
            if emit.topic == topics.INTENTS_APPROVED:
                return "approved", ""
            if emit.topic == topics.INTENTS_REJECTED:
                rejected = IntentRejected.from_bytes(emit.value)
                return rejected.stage, rejected.code
        raise AssertionError(f"no decision: {[e.topic for e in emits]}")

    def told(self, engine: Engine, record: SignedBitcoinTransaction, now: datetime) -> None:
        """The worker reads the signer's record from warden.bitcoin.signed at ``now``."""
        engine.on_bitcoin_signed(record.to_bytes(), now)

    async def emit(self, emits: list[Emit]) -> None:
        self.published += emits

    async def watch(self, now: datetime) -> None:
        """One look of the signer's sign-only watch at ``now``, as `signer.main` runs it."""
        self.published += await self.signer.sign_only.look_all(self.state.open_sign_only(), now)
        self.state.commit()

    def counted(self, now: datetime) -> int:
        """What the signer's record counts of the agent's BTC at ``now``, satoshis."""
        return self.state.agent(self.agent).asset_spent(ASSET, to_us(now))

    def records(self, intent_id: str) -> list[SignedBitcoinTransaction]:
        return self.records_on(topics.BITCOIN_SIGNED, SignedBitcoinTransaction, intent_id)

    async def until(self, what: str, look: Callable[[], Awaitable[T | None]], timeout_s: float = 60) -> T:
        """``look()`` again every half second until it answers something: that answer."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            found = await look()
            if found is not None:
                return found
            assert asyncio.get_running_loop().time() < deadline, f"{what}: not within {timeout_s:.0f} s"
            await asyncio.sleep(0.5)


def with_harness(
    tmp: Path, settings: Settings, scenario: Callable[[BtcHarness], Awaitable[T]], **harness_args: Any
) -> tuple[BtcHarness, T]:
    """Run ``scenario(harness)`` on a new harness; its node closed afterwards, whatever happened."""

    async def run() -> tuple[BtcHarness, T]:
        h = BtcHarness(tmp, settings, **harness_args)
        try:
            return h, await scenario(h)
        finally:
            await h.node.close()

    return asyncio.run(run())
