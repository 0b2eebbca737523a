"""The signer parses and verifies each approval once, on the session stack."""

from __future__ import annotations

import asyncio
import collections
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.local import LocalStack
from runtime.admins import Admins
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.auth import public_key_hex, sign_policy
from schemas.emit import Source
from schemas.outcomes import IntentApproved, SignedTransaction
from schemas.policy import AgentPolicy
from sdk.client import new_intent
from signer.custody.keys import KeyStore
from signer.service import Signer
from signer.state import SignerState
from tests.custody_support import ADMIN, make_vaults
from tests.engine_support import INTENTS, counting

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
AGENT = "agent-work-per-intent"


def test_the_signer_parses_and_verifies_each_approval_once(stack: LocalStack, tmp_path: Path) -> None:
    store = KeyStore(make_vaults(tmp_path), mode="standard")
    store.provision(AGENT, "ethereum", ADMIN)
    admin_key, agent_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    now = datetime.now(timezone.utc)
    policy = sign_policy(
        AgentPolicy(
            agent_id=AGENT,
            version=1,
            agent_public_key=public_key_hex(agent_key),
            issued_at=now,
            tx_allowed_chains=("anvil",),
            tx_to_allowlist=(DEST,),
            tx_max_value_eth="1",
            tx_daily_limit_eth="1",
        ),
        admin_key,
        "test-admin",
    )

    def approved(value: str) -> IntentApproved:
        intent = new_intent(
            agent_key,
            agent_id=AGENT,
            chain="anvil",
            to=DEST,
            value=value,
            now=now,
            gas_limit=21_000,
            max_fee_per_gas=10**9,
            max_priority_fee_per_gas=0,
        )
        return IntentApproved(intent=intent, policy=policy, verdicts=(), approved_at=now)

    approvals = [approved("0.01") for _ in range(INTENTS)]
    intents = [a.intent for a in approvals]
    state = SignerState(tmp_path / "state.db")

    async def sign(calls: collections.Counter[str]) -> list[bytes]:
        node = JsonRpc(stack.settings.rpc_url_for("anvil"), timeout_s=120)
        try:
            signer = Signer(
                state,
                store,
                Admins.with_threshold({"test-admin": public_key_hex(admin_key)}, 1),
                node_for=lambda chain: node,
                service_key=("signer-test", Ed25519PrivateKey.generate()),
            )
            # The first approval under a policy checks the policy's signature (then the policy is
            # held, and an equal one is not checked again): a cost per policy, not per intent.
            signed = []
            for n, approval in enumerate([approved("0"), *approvals]):
                if n == 1:
                    calls.clear()  # the warm-up approval's own costs are per policy
                emits, _ = await signer.handle(
                    approval.to_bytes(), Source(topics.INTENTS_APPROVED, 0, n, AGENT.encode()), now
                )
                signed += [e.value for e in emits if e.topic == topics.TXS_SIGNED]
            return signed
        finally:
            await node.close()

    with pytest.MonkeyPatch.context() as patch:
        calls = counting(patch)
        signed = asyncio.run(sign(calls))
    state.close()
    assert len(signed) == INTENTS + 1, "every approval was signed"
    assert {SignedTransaction.from_bytes(value).intent_id for value in signed[1:]} == {i.intent_id for i in intents}
    assert calls == collections.Counter(
        {"parse IntentApproved": INTENTS, **{f"verify {intent.signing_bytes()!r}": 1 for intent in intents}}
    ), calls
