"""The pure parts of holding a Bitcoin payment until its fate is final: which intent claims an
output (`rules.bitcoin.claims_refused`), the bound on what sign-only payments hold together
(`outstanding_refused`), when one is cancelled (`rules.sign_only.why_cancel`) and at what fee, and
the worker's windows keeping each payment's outputs while it holds them (`streams.windows`,
`streams.decision`). The stack's tests are tests/stack/test_bitcoin_holds.py."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rules import bitcoin, sign_only
from runtime.clock import to_us
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.policy import AgentPolicy, BitcoinPolicy
from schemas.stages import Stage
from sdk.client import new_intent
from streams.decision import Decision
from streams.windows import Windows
from tests.btc_support import K_HEX, OTHER, OWN, Spend, funding, psbt

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
KEY = Ed25519PrivateKey.generate()
ASSET = bitcoin.asset_key("bitcoin-regtest")


def _intent(broadcast: bool = False, salt: int = 0) -> TransactionIntent:
    spent = funding((1_000_000, OWN.p2wpkh), (500_000, OWN.p2wpkh), salt=salt)
    raw = psbt([Spend(spent, 0), Spend(spent, 1)], [(300_000, OTHER.p2wpkh), (1_199_000, OWN.p2wpkh)])
    return new_intent(
        KEY,
        agent_id="a1",
        chain="bitcoin-regtest",
        intent_type="bitcoin_psbt",
        bitcoin_psbt=base64.b64encode(raw).decode(),
        broadcast=broadcast,
        now=NOW,
    )


def _policy(**fields: object) -> AgentPolicy:
    section = BitcoinPolicy(public_key=K_HEX, **fields)
    return AgentPolicy(agent_id="a1", version=1, agent_public_key="0x" + "00" * 32, issued_at=NOW, bitcoin=section)


def test_an_output_another_open_intent_spends_is_refused_naming_each_output_and_intent() -> None:
    intent = _intent()
    first, second = bitcoin.inputs_of(intent)
    claims = {second: "i-other"}
    refused = bitcoin.claims_refused(intent, lambda outpoint: claims.get(outpoint))
    assert refused is not None and (refused.stage, refused.code) == (Stage.BITCOIN, Code.BITCOIN_INPUT_CLAIMED)
    assert refused.facts == {"claimed": {second: "i-other"}} and "i-other" in refused.reason
    assert first not in refused.reason
    assert bitcoin.claims_refused(intent, lambda outpoint: None) is None
    assert bitcoin.claims_refused(intent, None) is None  # a replay holds no claims


def test_sign_only_payments_are_bounded_together_sent_ones_are_not() -> None:
    policy = _policy(max_sign_only_outstanding_sats="1000")
    held = {sign_only.outstanding_key(ASSET): 700}
    refused = bitcoin.outstanding_refused(_intent(), policy, 301, lambda key: held.get(key, 0))
    assert refused is not None and refused.code == Code.SIGN_ONLY_OUTSTANDING_EXCEEDED
    assert bitcoin.outstanding_refused(_intent(), policy, 300, lambda key: held.get(key, 0)) is None
    assert bitcoin.outstanding_refused(_intent(broadcast=True), policy, 10**6, lambda key: held.get(key, 0)) is None
    assert sign_only.outstanding_asset(sign_only.outstanding_key(ASSET)) == ASSET
    assert sign_only.outstanding_asset(ASSET) is None


def test_a_sign_only_transaction_is_cancelled_when_asked_or_past_its_ttl() -> None:
    policy = AgentPolicy(agent_id="a1", version=1, agent_public_key="0x" + "00" * 32, issued_at=NOW, sign_only_ttl_s=60)
    signed_at = to_us(NOW)
    assert sign_only.why_cancel(None, signed_at, policy, signed_at + 59_000_000) is None
    assert "sign_only_ttl_s (60 s)" in (sign_only.why_cancel(None, signed_at, policy, signed_at + 60_000_000) or "")
    assert sign_only.why_cancel("by admin a", signed_at, None, signed_at) == "by admin a"
    assert sign_only.bitcoin_cancel_fee(282, 110) == 282 + 2 * 110


def test_the_worker_keeps_a_payments_outputs_while_it_holds_it_and_rebuilds_them() -> None:
    intent, other = _intent(), _intent(salt=1)
    outputs = bitcoin.inputs_of(intent)
    decision = Decision(
        agent_id="a1",
        outcome="approved",
        at_us=to_us(NOW),
        topic="t",
        record=b"",
        digest="d",
        assets={ASSET: 301_000},
        held=True,
        claims=outputs,
    )
    assert Decision.from_stored(decision.to_stored()) == decision
    windows = Windows()
    windows.rebuild({intent.intent_id: decision})
    assert windows.claimed_by("a1", outputs[0], other.intent_id) == intent.intent_id
    assert windows.claimed_by("a1", outputs[0], intent.intent_id) is None  # its own
    assert windows.claimed_by("a2", outputs[0], other.intent_id) is None  # another agent's outputs are its own
    windows.land("a1", intent.intent_id, to_us(NOW), 301_000, {ASSET: 301_000})
    assert windows.claimed_by("a1", outputs[0], other.intent_id) is None
