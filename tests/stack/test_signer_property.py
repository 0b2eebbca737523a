"""Property: the signer never signs what the pure guardrails would reject.

Hypothesis draws policies (chains, allowlist, cap, 24 h limit, fee ceiling, revoked or not),
intents (chain, recipient, value, type, gas and fees named or left to the node) and the spend
already in the signer's window, and hands each approval straight to an in-process signer (as a
hostile writer to ``warden.intents.approved`` would: no worker looked at it) whose chain is the
session stack's Anvil. Whenever a transaction comes out, it is decoded with ``rlp`` (not with
Warden's own code) and every pure guardrail is run on what was really signed: its recipient,
value, gas limit and fee per gas, against the window as it stood. Each must pass.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import rlp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_utils import big_endian_to_int, to_checksum_address
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from infra.stack.local import LocalStack
from rules import guardrails
from rules.fees import check_fee
from runtime.admins import Admins
from runtime.clock import to_us
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.auth import public_key_hex, sign_policy
from schemas.codes import Code
from schemas.emit import Source
from schemas.fields import format_native_amount
from schemas.outcomes import IntentApproved, IntentRejected, SignedTransaction
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from schemas.stages import Stage
from sdk.client import new_intent
from signer.custody.keys import KeyStore
from signer.service import Signed, Signer
from signer.state import SignerState
from tests.custody_support import ADMIN, make_vaults

ETH, GWEI = 10**18, 10**9
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
OTHER = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
THIRD = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"
AGENT = "agent-property"

wei_amount = st.integers(min_value=0, max_value=3 * ETH)
fee_per_gas = st.integers(min_value=0, max_value=300 * GWEI)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], int]:
    policy: dict[str, Any] = dict(
        intents_api_enabled=draw(st.sampled_from([True] * 9 + [False])),
        tx_allowed_chains=tuple(draw(st.lists(st.sampled_from(["anvil", "base"]), unique=True, max_size=2))),
        tx_to_allowlist=tuple(draw(st.lists(st.sampled_from([DEST, OTHER]), unique=True, max_size=2))),
        tx_max_value_eth=draw(st.none() | wei_amount.map(format_native_amount)),
        tx_daily_limit_eth=draw(st.none() | wei_amount.map(format_native_amount)),
        tx_max_fee_per_gas=draw(st.none() | fee_per_gas),
    )
    tx_type = draw(st.sampled_from([0, 1, 2]))
    intent: dict[str, Any] = dict(
        chain=draw(st.sampled_from(["anvil", "base"])),
        to=draw(st.sampled_from([DEST, OTHER, THIRD])),
        value=format_native_amount(draw(wei_amount)),
        tx_type=tx_type,
        gas_limit=draw(st.none() | st.integers(min_value=21_000, max_value=60_000)),
    )
    if tx_type == 2:
        max_fee = draw(st.none() | fee_per_gas)
        intent["max_fee_per_gas"] = max_fee
        intent["max_priority_fee_per_gas"] = draw(
            st.none() | st.integers(0, max_fee if max_fee is not None else 300 * GWEI)
        )
    else:
        intent["gas_price"] = draw(st.none() | fee_per_gas)
    spent = draw(st.integers(min_value=0, max_value=3 * ETH))
    return policy, {k: v for k, v in intent.items() if v is not None}, spent


def decode_signed(raw_hex: str) -> dict[str, Any]:
    """Recipient, value, gas and fee per gas of a signed transaction, read with rlp alone."""
    raw = bytes.fromhex(raw_hex[2:])
    if raw[0] >= 0xC0:  # legacy: [nonce, gas_price, gas, to, value, data, v, r, s]
        fields, fee_index, gas_index = rlp.decode(raw), 1, 2
    elif raw[0] == 1:  # [chain_id, nonce, gas_price, gas, to, value, data, access_list, y, r, s]
        fields, fee_index, gas_index = rlp.decode(raw[1:]), 2, 3
    else:  # [chain_id, nonce, tip, max_fee, gas, to, value, data, access_list, y, r, s]
        fields, fee_index, gas_index = rlp.decode(raw[1:]), 3, 4
    return {
        "fee_per_gas": big_endian_to_int(fields[fee_index]),
        "gas": big_endian_to_int(fields[gas_index]),
        "to": to_checksum_address(fields[gas_index + 1]),
        "value": big_endian_to_int(fields[gas_index + 2]),
    }


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, KeyStore]:
    tmp = tmp_path_factory.mktemp("property-signer")
    store = KeyStore(make_vaults(tmp), mode="standard")
    store.provision(AGENT, "ethereum", ADMIN)
    return tmp, store


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_the_signer_never_signs_what_the_pure_guardrails_reject(
    stack: LocalStack, keys: tuple[Path, KeyStore], scenario: tuple[dict[str, Any], dict[str, Any], int]
) -> None:
    policy_fields, intent_fields, spent = scenario
    tmp, store = keys
    admin_key, agent_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    now = datetime.now(timezone.utc)
    policy = sign_policy(
        AgentPolicy(
            agent_id=AGENT, version=1, agent_public_key=public_key_hex(agent_key), issued_at=now, **policy_fields
        ),
        admin_key,
        "test-admin",
    )
    intent = new_intent(agent_key, agent_id=AGENT, now=now, **intent_fields)
    state = SignerState(tmp / f"state-{next(_numbers)}.db")
    if spent:
        state.db.execute("INSERT INTO spend VALUES (?, ?, ?, ?)", ("i-earlier", AGENT, to_us(now) - 1, str(spent)))

    async def sign() -> Signed:
        node = JsonRpc(stack.settings.rpc_url_for("anvil"), timeout_s=120)
        try:
            signer = Signer(
                state,
                store,
                Admins.with_threshold({"test-admin": public_key_hex(admin_key)}, 1),
                node_for=lambda chain: node,
                service_key=("signer-test", Ed25519PrivateKey.generate()),
            )
            approved = IntentApproved(intent=intent, policy=policy, verdicts=(), approved_at=now)
            source = Source(topics.INTENTS_APPROVED, 0, 1, AGENT.encode())
            return await signer.handle(approved.to_bytes(), source, now)
        finally:
            await node.close()

    emits, _ = asyncio.run(sign())
    state.close()
    (outcome,) = [e for e in emits if e.topic in (topics.TXS_SIGNED, topics.INTENTS_REJECTED)]
    if outcome.topic == topics.INTENTS_REJECTED:
        rejected = IntentRejected.from_bytes(outcome.value)
        event(f"refused {rejected.code}")
        assert rejected.stage == Stage.SIGNING and rejected.code != Code.SIGNER_ERROR, rejected.reason
        return
    signed = SignedTransaction.from_bytes(outcome.value)
    event("signed")
    tx = decode_signed(signed.signed_tx)
    assert (tx["to"], tx["value"]) == (intent.to, intent.value_wei)
    quote = FeeQuote(gas_limit=tx["gas"], fee_per_gas=tx["fee_per_gas"])
    assert policy.intents_api_enabled
    for verdict in (
        guardrails.check_chain(intent, policy),
        guardrails.check_allowlist(intent, policy),
        check_fee(intent, policy, quote),
        guardrails.check_value_cap(intent, policy, quote),
        guardrails.check_daily_limit(intent, policy, spent, quote),
    ):
        assert verdict.passed, f"signed although {verdict.stage} says {verdict.code}: {verdict.reason}"
    assert signed.max_spend_wei == intent.value_wei + tx["gas"] * tx["fee_per_gas"]


_numbers = itertools.count()
