"""Issue 14's throughput rule, held: one parse and one signature verification per process per
intent. The streams worker's engine reads each submitted record into one TransactionIntent and
checks the agent's Ed25519 signature once, however many stages judge it; the signer reads each
approval once (the intent and its policy inside it come with it) and checks the agent's
signature once. A second parse or check slipped into a stage would cost every intent, and
fails here.

One exception, by design: the worker process's redelivery watch (streams/redelivery.py) reads
each submitted record again (~14 µs here) to learn its intent and agent ids. It exists to
catch the records the engine never saw, so it cannot take the engine's parse.

Parses are counted at pydantic's two entry points (``model_validate`` and
``model_validate_json``, which every ``from_bytes`` goes through); verifications at
``schemas.auth._verify``, which every Ed25519 check of an intent, policy or approval calls.
The signer signs on the session stack's Anvil (its nonces), as in production.
"""

from __future__ import annotations

import asyncio
import collections
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

import schemas.auth
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.auth import public_key_hex, sign_policy
from schemas.emit import Source
from schemas.models import AgentPolicy, IntentApproved, SignedTransaction
from sdk.client import new_intent
from signer.custody.keys import KeyStore
from signer.service import Signer
from signer.state import SignerState
from tests.custody_support import ADMIN, make_vaults
from tests.engine_support import T0, World, on

INTENTS = 5
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
AGENT = "agent-work-per-intent"


def counting(patch: pytest.MonkeyPatch) -> collections.Counter:
    """Counts, while ``patch`` holds: parses per model class, and Ed25519 verifications by message."""
    calls: collections.Counter = collections.Counter()

    def counted_parse(entry: str) -> classmethod:
        parse = getattr(BaseModel, entry).__func__

        def counting_parse(cls, *args, **kwargs):
            calls[f"parse {cls.__name__}"] += 1
            return parse(cls, *args, **kwargs)

        return classmethod(counting_parse)

    verify = schemas.auth._verify

    def counting_verify(public_key_hex_: str, signature_hex: str, message: bytes) -> bool:
        calls[f"verify {message}"] += 1
        return verify(public_key_hex_, signature_hex, message)

    for entry in ("model_validate", "model_validate_json"):
        patch.setattr(BaseModel, entry, counted_parse(entry))
    patch.setattr(schemas.auth, "_verify", counting_verify)
    return calls


def test_the_worker_parses_and_verifies_each_intent_once():
    world = World()
    world.publish(world.policy())
    # The first intent under a policy reads the policy out of the worker's table (then held by
    # its bytes): a cost per policy, not per intent.
    world.submit(world.intent(value="0"))
    intents = [world.intent(value="0.01", now=T0 + timedelta(seconds=i)) for i in range(INTENTS)]
    raws = [intent.to_bytes() for intent in intents]
    with pytest.MonkeyPatch.context() as patch:
        calls = counting(patch)
        approved = []
        for i, raw in enumerate(raws):
            emits = world.submit(raw, now=T0 + timedelta(seconds=i))
            approved += on(emits, topics.INTENTS_APPROVED)
    assert len(approved) == INTENTS  # every intent went through every stage
    assert calls == collections.Counter(
        {"parse TransactionIntent": INTENTS, **{f"verify {intent.signing_bytes()}": 1 for intent in intents}}
    ), calls


def test_the_signer_parses_and_verifies_each_approval_once(stack, tmp_path):
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

    async def sign(calls: collections.Counter) -> list[bytes]:
        node = JsonRpc(stack.settings.rpc_url_for("anvil"))
        try:
            signer = Signer(
                state,
                store,
                {"test-admin": public_key_hex(admin_key)},
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
        {"parse IntentApproved": INTENTS, **{f"verify {intent.signing_bytes()}": 1 for intent in intents}}
    ), calls
