"""Every approved intent ends with exactly one outcome at the signer, whatever fails inside it.

An exception in the signer that was logged and skipped would leave the intent with no outcome,
the worker's reservation never released, and the signer's state half written. These tests drive
that failure for real (a nonce SQLite cannot store) through the whole stack, and inject
failures at two points of the in-process signer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.local import LocalStack
from rules import fees
from runtime.admins import Admins
from runtime.clock import to_us
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.auth import public_key_hex, sign_policy
from schemas.codes import Code
from schemas.emit import Source
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentApproved, IntentRejected, SignedTransaction
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from sdk.client import Client, Outcome, new_intent, wait_outcomes
from signer.agent_state import AgentState
from signer.custody.keys import KeyStore
from signer.service import Signed, Signer
from signer.state import SignerState
from tests.custody_support import ADMIN, make_vaults
from tests.support import DEST, make_agent, read_topic


def outcomes_of(records: dict[str, list[bytes]], intent_id: str) -> list[IntentRejected | SignedTransaction]:
    found: list[IntentRejected | SignedTransaction] = []
    found += [r for r in map(IntentRejected.from_bytes, records[topics.INTENTS_REJECTED]) if r.intent_id == intent_id]
    found += [s for s in map(SignedTransaction.from_bytes, records[topics.TXS_SIGNED]) if s.intent_id == intent_id]
    return found


def test_an_agent_cannot_wedge_its_nonce_line_and_the_refusal_frees_its_reservation(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """An intent naming nonce 1000, were it signed, would leave every later intent of the agent
    (1001, 1002, ...) stuck behind the gap for ever. A nonce may be named only to replace a
    transaction this signer signed at it: anything else is refused, and the refusal (a signer's,
    signed) releases what the worker reserved."""
    settings = stack.settings
    agent = f"agent-nonce-{os.urandom(3).hex()}"
    key, _, _ = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1", tx_daily_limit_eth="1"))
    start = run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED)))
    poison = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.6", nonce=1000)
    huge = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0", nonce=2**63)

    async def submit(*intents: TransactionIntent) -> dict[str, Outcome]:
        async with Client(settings) as client:
            for intent in intents:
                await client.submit(intent)
            await client.flush()
        return await wait_outcomes(settings, intents, 60, start)

    outcomes = run(submit(poison, huge))
    for intent in (poison, huge):
        rejected = outcomes[intent.intent_id]
        assert isinstance(rejected, IntentRejected)
        assert (rejected.stage, rejected.code) == (Stage.SIGNING, Code.NONCE_NOT_ALLOWED)
        assert f"nonce {intent.nonce} is not one this signer signed at" in rejected.reason
    rejected = outcomes[poison.intent_id]

    # The 0.6 (plus fee) reserved at approval was released by the signer's rejection: another 0.6
    # passes the 1 ETH rolling limit only because of that. The worker reads rejections on
    # their own topic, so give it a moment to apply the release first.
    run(asyncio.sleep(2))
    honest = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.6")
    signed = run(submit(honest))[honest.intent_id]
    assert isinstance(signed, SignedTransaction) and signed.status == "sign_only"
    assert signed.nonce == 0  # no gap: the refused intents took no nonce

    records = {t: run(read_topic(settings, t, start=start)) for t in (topics.INTENTS_REJECTED, topics.TXS_SIGNED)}
    assert outcomes_of(records, poison.intent_id) == [rejected]


class Rig:
    """An in-process signer on a standard vault, the session stack's Anvil as its chain."""

    def __init__(self, tmp: Path, rpc_url: str) -> None:
        self.rpc_url = rpc_url
        self.keys = KeyStore(make_vaults(tmp), mode="standard")
        self.agent = "agent-inject"
        self.address = self.keys.provision(self.agent, "ethereum", ADMIN).address
        self.admin_key, self.agent_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        self.rpc: JsonRpc | None = None
        self.state = SignerState(tmp / "signer" / "state.db")
        self.signer = Signer(
            self.state,
            self.keys,
            Admins.with_threshold({"test-admin": public_key_hex(self.admin_key)}, 1),
            node_for=lambda chain: self._rpc(),
            service_key=("signer-test", Ed25519PrivateKey.generate()),
        )
        self.policy = sign_policy(
            AgentPolicy(
                agent_id=self.agent,
                version=1,
                tx_allowed_chains=("anvil",),
                tx_to_allowlist=(DEST,),
                tx_max_value_eth="1",
                tx_daily_limit_eth="10",
                agent_public_key=public_key_hex(self.agent_key),
                issued_at=datetime.now(timezone.utc),
            ),
            self.admin_key,
            "test-admin",
        )
        self.offset = 0

    def _rpc(self) -> JsonRpc:
        assert self.rpc is not None, "the node is asked for before the chain is up"
        return self.rpc

    def handle(self, intent: TransactionIntent) -> Signed:
        async def go() -> Signed:
            self.rpc = JsonRpc(self.rpc_url, timeout_s=120)
            try:
                await self.rpc.call("anvil_setBalance", self.address, hex(10 * 10**18))
                now = datetime.now(timezone.utc)
                approved = IntentApproved(intent=intent, policy=self.policy, verdicts=(), approved_at=now)
                self.offset += 1
                source = Source(topics.INTENTS_APPROVED, 0, self.offset, self.agent.encode())
                result = await self.signer.handle(approved.to_bytes(), source, now)
                self.state.commit()
                return result
            finally:
                await self.rpc.close()

        return asyncio.run(go())


@pytest.mark.parametrize("where", ["before signing: the node call", "after signing: the state write"])
def test_an_injected_signer_failure_is_one_final_rejection_with_no_state_left(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    rig = Rig(tmp_path, stack.settings.rpc_url)
    intent = new_intent(rig.agent_key, agent_id=rig.agent, chain="anvil", to=DEST, value="0.5")

    def fail(*args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError("injected")

    with monkeypatch.context() as patch:
        if where.startswith("before"):
            patch.setattr(fees, "quote", fail)
        else:
            real = AgentState.record_signed

            def write_then_fail(self: AgentState, **fields: Any) -> None:
                real(self, **fields)  # the signed row and the nonce are written, then it fails
                fail()

            patch.setattr(AgentState, "record_signed", write_then_fail)
        emits, to_broadcast = rig.handle(intent)

    assert to_broadcast is None
    (emit,) = [e for e in emits if e.topic in (topics.INTENTS_REJECTED, topics.TXS_SIGNED)]
    assert emit.topic == topics.INTENTS_REJECTED
    rejected = IntentRejected.from_bytes(emit.value)
    assert (rejected.intent_id, rejected.stage, rejected.code) == (intent.intent_id, Stage.SIGNING, Code.SIGNER_ERROR)
    assert "RuntimeError" in rejected.reason
    # Nothing of the intent stays behind: no signed row, no nonce taken, no spend counted.
    assert rig.state.agent(rig.agent).signed_record(intent.intent_id) is None
    assert rig.state.agent(rig.agent).last_nonce("anvil", rig.address) is None
    assert rig.state.agent(rig.agent).spend_entries(to_us(datetime.now(timezone.utc))) == {}
    # Redelivered once the fault is gone: the same answer, never a signature after a rejection.
    again, _ = rig.handle(intent)
    assert [(e.topic, e.value) for e in again] == [(topics.INTENTS_REJECTED, emit.value)]
    # The signer itself still works.
    fresh = new_intent(rig.agent_key, agent_id=rig.agent, chain="anvil", to=DEST, value="0.5")
    (signed,) = [SignedTransaction.from_bytes(e.value) for e in rig.handle(fresh)[0] if e.topic == topics.TXS_SIGNED]
    assert signed.nonce >= 0 and rig.state.agent(rig.agent).last_nonce("anvil", rig.address) == signed.nonce
