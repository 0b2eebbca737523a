"""Sealed shares on the running stack: the signer signs with the right sealed share only, and a
redelivered signed intent needs no share."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account import Account
from eth_utils import keccak

from infra.stack.local import LocalStack
from runtime.admins import Admins
from runtime.rpc import JsonRpc, Node
from schemas import topics
from schemas.auth import public_key_hex, sign_policy
from schemas.codes import Code
from schemas.emit import Emit, Source
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentApproved, IntentRejected, SignedTransaction
from schemas.policy import AgentPolicy
from schemas.sealing import decode_client_share
from schemas.stages import Stage
from sdk.client import ClientKey, new_intent
from signer.custody.keys import KeyStore
from signer.custody.modes import Mode
from signer.sealing import SealingKeyPair
from signer.service import Signed, Signer
from signer.state import SignerState
from tests.custody_support import ADMIN, dev_root, make_vaults
from tests.sealing_support import AGENT, DEST, NOW, share32


@dataclass
class Rig:
    tmp: Path
    rpc_url: str
    mode: Mode = "2of2_client_custody"
    admin_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    agent_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    offset: int = 0

    def __post_init__(self) -> None:
        # 2of3_client_custody keeps two server shares, each under its own root: two development roots.
        roots = [dev_root(self.tmp, "local-dev"), dev_root(self.tmp, "local-dev-2")]
        self.keys = KeyStore(make_vaults(self.tmp, roots), mode=self.mode)
        provisioned = self.keys.provision(AGENT, "ethereum", ADMIN)
        assert provisioned.client_share is not None  # created a client-custody vault
        assert self.keys.client_custody
        self.address = provisioned.address
        self.share = decode_client_share(provisioned.client_share)
        self.sealing = SealingKeyPair()
        self.rpc: JsonRpc | None = None
        self.signer = Signer(
            SignerState(self.tmp / "signer" / "state.db"),
            self.keys,
            Admins.with_threshold({"test-admin": public_key_hex(self.admin_key)}, 1),
            node_for=self.node,
            service_key=("signer-test", Ed25519PrivateKey.generate()),
            sealing=self.sealing,
        )
        self.policy = sign_policy(
            AgentPolicy(
                agent_id=AGENT,
                version=1,
                tx_allowed_chains=("anvil",),
                tx_to_allowlist=(DEST,),
                tx_max_value_eth="1",
                tx_daily_limit_eth="10",
                agent_public_key=public_key_hex(self.agent_key),
                issued_at=NOW,
            ),
            self.admin_key,
            "test-admin",
        )

    def node(self, chain: str) -> Node:
        assert self.rpc is not None, "the node is asked only while handle_all runs"
        return self.rpc

    def intent(self, intent_id: str, share: bytearray | None, *to: SealingKeyPair) -> TransactionIntent:
        client = None
        if share is not None:
            client = ClientKey(bytearray(share), [p.announcement("signer-1", "none", NOW) for p in to])
        return new_intent(
            self.agent_key,
            agent_id=AGENT,
            chain="anvil",
            to=DEST,
            value="0.01",
            intent_id=intent_id,
            now=datetime.now(timezone.utc),
            client_share=client,
            broadcast=False,
        )

    def handle_all(self, intents: list[TransactionIntent]) -> list[Signed]:
        async def go() -> list[Signed]:
            self.rpc = JsonRpc(self.rpc_url, timeout_s=120)
            try:
                await self.rpc.call("anvil_setBalance", self.address, hex(10 * 10**18))
                results: list[Signed] = []
                for intent in intents:
                    self.offset += 1
                    now = datetime.now(timezone.utc)
                    approved = IntentApproved(intent=intent, policy=self.policy, verdicts=(), approved_at=now)
                    results.append(
                        await self.signer.handle(
                            approved.to_bytes(), Source(topics.INTENTS_APPROVED, 0, self.offset, AGENT.encode()), now
                        )
                    )
                return results
            finally:
                await self.rpc.close()

        return asyncio.run(go())


@pytest.fixture
def rig(stack: LocalStack, tmp_path: Path) -> Rig:
    return Rig(tmp_path, stack.settings.rpc_url)


def signed_of(emits: list[Emit]) -> SignedTransaction:
    assert not [e for e in emits if e.topic == topics.INTENTS_REJECTED]
    (emit,) = [e for e in emits if e.topic == topics.TXS_SIGNED]
    return SignedTransaction.from_bytes(emit.value)


def rejected_of(emits: list[Emit]) -> IntentRejected:
    assert not [e for e in emits if e.topic == topics.TXS_SIGNED]
    (emit,) = [e for e in emits if e.topic == topics.INTENTS_REJECTED]
    return IntentRejected.from_bytes(emit.value)


def assert_signed_by(signed: SignedTransaction, rig: Rig, intent_id: str) -> None:
    assert signed.intent_id == intent_id and signed.status == "sign_only" and signed.chain_id == 31337
    assert signed.from_ == rig.address
    assert Account.recover_transaction(signed.signed_tx) == rig.address
    assert "0x" + keccak(bytes.fromhex(signed.signed_tx[2:])).hex().removeprefix("0x") == signed.tx_hash


@pytest.mark.parametrize("mode", ["2of2_client_custody", "2of3_client_custody"])
def test_the_signer_signs_with_the_right_sealed_share_only(stack: LocalStack, tmp_path: Path, mode: Mode) -> None:
    rig = Rig(tmp_path, stack.settings.rpc_url, mode=mode)
    old = SealingKeyPair()
    ids = {
        name: f"i-seal-{name}-{os.urandom(6).hex()}"
        for name in ("wrong-first", "right", "wrong", "none", "old", "both")
    }
    intents = [
        rig.intent(ids["wrong-first"], share32(), rig.sealing),  # before the address is cached
        rig.intent(ids["right"], rig.share, rig.sealing),
        rig.intent(ids["wrong"], share32(), rig.sealing),  # after: the signing path itself refuses
        rig.intent(ids["none"], None),
        rig.intent(ids["old"], rig.share, old),
        rig.intent(ids["both"], rig.share, old, rig.sealing),
    ]
    results = dict(zip(ids, rig.handle_all(intents), strict=False))
    for name, (_, to_broadcast) in results.items():
        assert to_broadcast is None, name  # sign_only: nothing handed to the chain

    assert_signed_by(signed_of(results["right"][0]), rig, ids["right"])
    assert_signed_by(signed_of(results["both"][0]), rig, ids["both"])
    assert signed_of(results["both"][0]).nonce == signed_of(results["right"][0]).nonce + 1

    invalid = [rejected_of(results[name][0]) for name in ("wrong-first", "wrong", "none")]
    for rejected, name in zip(invalid, ("wrong-first", "wrong", "none"), strict=False):
        assert rejected.intent_id == ids[name] and rejected.agent_id == AGENT
        assert rejected.stage == Stage.SIGNING and rejected.code == Code.CLIENT_SHARE_INVALID
    # One answer for a missing share and a wrong one, before or after the key was first used.
    assert len({r.reason for r in invalid}) == 1
    assert "client share" in invalid[0].reason

    stale = rejected_of(results["old"][0])
    assert stale.stage == Stage.SIGNING and stale.code == Code.CLIENT_SHARE_SEALED_TO_OLD_KEY
    assert rig.sealing.key_id in stale.reason and old.key_id in stale.reason
    assert stale.reason != invalid[0].reason

    for name in ("wrong-first", "wrong", "none", "old"):
        assert rig.signer.state.agent(AGENT).signed_record(ids[name]) is None
    assert rig.signer.state.agent(AGENT).signed_record(ids["right"]) is not None


def test_a_redelivered_signed_intent_needs_no_share_and_a_new_signer_key_refuses_old_envelopes(rig: Rig) -> None:
    intent = rig.intent(f"i-seal-redeliver-{os.urandom(6).hex()}", rig.share, rig.sealing)
    ((first, _), (again, _)) = rig.handle_all([intent, intent])
    assert signed_of(again) == signed_of(first)
    assert_signed_by(signed_of(first), rig, intent.intent_id)

    # The signer restarts: a new sealing key; the same state and vault.
    before = rig.sealing
    rig.sealing = SealingKeyPair()
    rig.signer = Signer(
        rig.signer.state,
        rig.keys,
        rig.signer.admins,
        node_for=rig.node,
        service_key=("signer-test", Ed25519PrivateKey.generate()),
        sealing=rig.sealing,
    )
    to_old = rig.intent(f"i-seal-after-restart-{os.urandom(6).hex()}", rig.share, before)
    to_new = rig.intent(f"i-seal-after-restart-{os.urandom(6).hex()}", rig.share, rig.sealing)
    ((stale, _), (fresh, _), (redelivered, _)) = rig.handle_all([to_old, to_new, intent])
    assert rejected_of(stale).code == Code.CLIENT_SHARE_SEALED_TO_OLD_KEY
    assert_signed_by(signed_of(fresh), rig, to_new.intent_id)
    assert signed_of(fresh).nonce == signed_of(first).nonce + 1
    # Already signed before the restart: the same record again, though its envelope no longer opens.
    assert signed_of(redelivered) == signed_of(first)
