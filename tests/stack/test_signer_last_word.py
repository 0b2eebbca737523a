"""The signer is the last word: every attack of the issue of that name, tried on the real stack.

A compromised agent, a compromised streams worker, or anyone who can write to a topic may delay
or drop work, but must never get a signature outside the agent's policy, and a client must never
be told something untrue about its intent. Each test below reproduces one attack the way it was
first carried out (submits through the worker, and records written straight to
``warden.intents.approved`` or ``warden.intents.rejected``, which skip the worker) and checks
the refusal, and where money could move, the sender's balance on Anvil.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from aiokafka.structs import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.demo import _revert_runtime
from infra.stack.local import LocalStack
from runtime.clock import utcnow
from runtime.config import Settings, child_environment
from runtime.kafka import end_offsets, partition_of
from runtime.rpc import JsonRpc
from runtime.trust import service_key
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import audit_events_of
from schemas.auth import sign_outcome
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentParked, IntentRejected, SignedTransaction
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from sdk.client import OUTCOME_TOPICS, Client, Outcome, new_intent, signed_policy, wait_outcomes
from streams.redelivery import overdue_record
from tests.support import balance, direct_approvals, fresh_agent, make_agent, read_topic, submitted, tail_json

ETH, GWEI = 10**18, 10**9
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
OTHER = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"


def outcomes_start(settings: Settings, run: Callable[..., Any]) -> dict[TopicPartition, int]:
    start: dict[TopicPartition, int] = run(
        end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED, topics.AUDIT_EVENTS))
    )
    return start


def codes(outcomes: dict[str, Any], intents: list[TransactionIntent]) -> list[str]:
    return [o.code if isinstance(o, IntentRejected) else o.status for o in (outcomes[i.intent_id] for i in intents)]


# --- 1. fees are spend --------------------------------------------------------------------------


def test_fee_drain_through_the_worker_and_straight_to_the_signer_moves_nothing(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """Value 0, fees of 1e15-2e15 wei per gas (and gas_price 1e30), against a 0.1 ETH cap and
    limit: the wallet went from 100 ETH to 16 ETH. Now refused by the worker and, written
    straight to the approved topic, by the signer; the balance on Anvil does not move."""
    settings = stack.settings
    agent = fresh_agent("agent-drain")
    key, address, policy = run(
        make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="0.1", tx_daily_limit_eth="0.1")
    )
    before = run(balance(settings, address))
    start = outcomes_start(settings, run)

    def drain(fee: int, **fields: Any) -> TransactionIntent:
        fields = fields or dict(max_fee_per_gas=fee, max_priority_fee_per_gas=fee)
        return new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0", broadcast=True, **fields)

    via_worker = [drain(fee) for fee in (10**15, 15 * 10**14, 2 * 10**15)]
    via_topic = [drain(fee) for fee in (10**15, 15 * 10**14, 2 * 10**15)]
    legacy = drain(0, tx_type=0, gas_price=10**30)
    run(submitted(settings, *via_worker))
    run(direct_approvals(settings, *[(i, policy) for i in via_topic + [legacy]]))
    outcomes = run(wait_outcomes(settings, via_worker + via_topic + [legacy], 60, start))

    for intent in via_worker:
        rejected = outcomes[intent.intent_id]
        assert (rejected.stage, rejected.code) == (Stage.VALUE_CAP, Code.VALUE_OVER_CAP)
        assert "worst-case fee" in rejected.reason and "cap of 0.1" in rejected.reason
    for intent in via_topic + [legacy]:
        rejected = outcomes[intent.intent_id]
        assert (rejected.stage, rejected.code) == (Stage.SIGNING, Code.VALUE_OVER_CAP), rejected
    assert run(balance(settings, address)) == before


def test_fees_count_against_the_rolling_limit_and_the_drain_is_bounded_by_it(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """Every intent fits the cap; together their worst-case fees exceed the 24 h limit. The
    sender loses at most the limit, measured on the chain."""
    settings = stack.settings
    agent = fresh_agent("agent-feelimit")
    limit = 10**16  # 0.01 ETH
    key, address, policy = run(
        make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="0.01", tx_daily_limit_eth="0.01")
    )
    before = run(balance(settings, address))
    start = outcomes_start(settings, run)
    fee = 100 * GWEI  # 21,000 gas x 100 gwei = 0.0021 ETH worst case each: four fit in 0.01, not five
    intents = [
        new_intent(
            key,
            agent_id=agent,
            chain="anvil",
            to=DEST,
            value="0",
            broadcast=True,
            gas_limit=21_000,
            max_fee_per_gas=fee,
            max_priority_fee_per_gas=fee,
        )
        for _ in range(6)
    ]
    run(submitted(settings, *intents[:3]))
    run(direct_approvals(settings, *[(i, policy) for i in intents[3:]]))  # skipping the worker's window
    outcomes = run(wait_outcomes(settings, intents, 90, start))
    mined = [o for o in outcomes.values() if isinstance(o, SignedTransaction) and o.status == "mined"]
    refused = [o for o in outcomes.values() if isinstance(o, IntentRejected)]
    assert len(outcomes) == 6 and {r.code for r in refused} == {Code.DAILY_LIMIT_EXCEEDED}, codes(outcomes, intents)
    assert 1 <= len(mined) <= 4
    spent = before - run(balance(settings, address))
    fees = [o.fee_wei for o in mined if o.fee_wei is not None]
    assert len(fees) == len(mined) and spent == sum(fees) and 0 < spent <= limit
    assert all(o.max_spend_wei == 21_000 * fee for o in mined)


def test_an_inflated_node_fee_suggestion_is_refused_at_the_ceiling_never_paid(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """After a fee spike the node suggested ~2e15 wei per gas and an honest agent paid ~42 ETH in
    fees for a 0.01 ETH transfer. With a ceiling the intent is refused FEE_OVER_CEILING; without
    one, the worst-case fee is spend and the cap refuses it. Nothing is paid either way."""
    settings = stack.settings
    ceiling_agent, capped_agent = fresh_agent("agent-ceiling"), fresh_agent("agent-capped")
    key_a, address_a, policy_a = run(
        make_agent(
            settings, ceiling_agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1", tx_max_fee_per_gas=100 * GWEI
        )
    )
    key_b, address_b, policy_b = run(make_agent(settings, capped_agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
    balances = {a: run(balance(settings, a)) for a in (address_a, address_b)}

    async def spike(base_fee: int | None) -> int:
        node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
        try:
            latest = int((await node.call("eth_getBlockByNumber", "latest", False))["baseFeePerGas"], 16)
            await node.call("anvil_setNextBlockBaseFeePerGas", hex(base_fee if base_fee is not None else latest))
            await node.call("evm_mine")
            return latest
        finally:
            await node.close()

    normal = run(spike(2 * 10**15))
    try:
        start = outcomes_start(settings, run)
        via_worker = [
            new_intent(key_a, agent_id=ceiling_agent, chain="anvil", to=DEST, value="0.01", broadcast=True),
            new_intent(key_b, agent_id=capped_agent, chain="anvil", to=DEST, value="0.01", broadcast=True),
        ]
        via_topic = [
            new_intent(key_a, agent_id=ceiling_agent, chain="anvil", to=DEST, value="0.01", broadcast=True),
            new_intent(key_b, agent_id=capped_agent, chain="anvil", to=DEST, value="0.01", broadcast=True),
        ]
        run(submitted(settings, *via_worker))
        run(direct_approvals(settings, (via_topic[0], policy_a), (via_topic[1], policy_b)))
        outcomes = run(wait_outcomes(settings, via_worker + via_topic, 60, start))
    finally:
        run(spike(normal))
    assert [(o.stage, o.code) for o in (outcomes[i.intent_id] for i in via_worker)] == [
        (Stage.FEE, Code.FEE_OVER_CEILING),
        (Stage.VALUE_CAP, Code.VALUE_OVER_CAP),
    ]
    assert [(o.stage, o.code) for o in (outcomes[i.intent_id] for i in via_topic)] == [
        (Stage.SIGNING, Code.FEE_OVER_CEILING),
        (Stage.SIGNING, Code.VALUE_OVER_CAP),
    ]
    ceiling = outcomes[via_worker[0].intent_id].reason
    # The spike's base fee, or what is left of it: the chain's 1 s blocks lower it an eighth each.
    named = re.search(r"base fee now (\d+) wei", ceiling)
    assert "the node's suggested fee of" in ceiling and named, ceiling
    assert 100 * GWEI < int(named.group(1)) <= 2 * 10**15, ceiling
    assert "ceiling of 100000000000 wei per gas" in ceiling
    assert {a: run(balance(settings, a)) for a in balances} == balances

    # Once fees are back to normal the same agent's transfer goes through, paying normal fees.
    start = outcomes_start(settings, run)
    again = new_intent(key_a, agent_id=ceiling_agent, chain="anvil", to=DEST, value="0.01", broadcast=True)
    run(submitted(settings, again))
    mined = run(wait_outcomes(settings, [again], 60, start))[again.intent_id]
    assert isinstance(mined, SignedTransaction) and mined.status == "mined", mined
    assert mined.fee_wei is not None and mined.fee_wei < 21_000 * 100 * GWEI


# --- 2. the signer knows the current policy ----------------------------------------------------


def test_a_revoked_policy_is_refused_by_the_signer_within_one_second(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """After a revocation, an approval under the old policy with a valid agent signature, written
    straight to the approved topic, must not be signed. The signer holds the newest policy itself:
    one second after the revocation is published, such approvals are refused."""
    settings = stack.settings
    agent = fresh_agent("agent-revoked")
    key, address, v1 = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
    before = run(balance(settings, address))
    revoked = signed_policy(
        settings,
        **{
            **v1.model_dump(exclude={"signature", "admin_key_id", "issued_at"}),
            "version": v1.version + 1,
            "intents_api_enabled": False,
        },
    )
    start = outcomes_start(settings, run)

    async def revoke() -> float:
        async with Client(settings) as client:
            await (await client.send(topics.POLICIES, agent, revoked.to_bytes()))
        return time.time()

    published_at = run(revoke())
    run(asyncio.sleep(1.0))
    replayed = [new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.1", broadcast=True) for _ in range(2)]
    run(direct_approvals(settings, *[(i, v1) for i in replayed]))
    outcomes = run(wait_outcomes(settings, replayed, 120, start))
    for intent in replayed:
        assert (outcomes[intent.intent_id].stage, outcomes[intent.intent_id].code) == (
            Stage.SIGNING,
            Code.POLICY_SUPERSEDED,
        )
        assert f"policy is now v{revoked.version}" in outcomes[intent.intent_id].reason
    assert run(balance(settings, address)) == before

    # The signer's own record of when the revocation took hold, on the ledger's topic.
    audits = [e for v in run(read_topic(settings, topics.AUDIT_EVENTS, start=start)) for e in audit_events_of(v)]
    # (v1's own enforcement may land after `start` too: the worker can apply a policy before the signer does.)
    (enforced,) = [
        a
        for a in audits
        if a.action == AuditAction.POLICY_ENFORCED and a.agent_id == agent and a.details["version"] == revoked.version
    ]
    assert enforced.details["intents_api_enabled"] is False
    delay = enforced.ts.timestamp() - published_at
    print(f"\nrevocation in force at the signer {delay * 1000:.0f} ms after it was published")
    assert delay < 1.0


def test_a_recipient_removed_from_the_allowlist_stays_removed_at_the_signer(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    agent = fresh_agent("agent-narrowed")
    key, address, v1 = run(make_agent(settings, agent, tx_to_allowlist=(DEST, OTHER), tx_max_value_eth="1"))
    narrowed = signed_policy(
        settings,
        **{
            **v1.model_dump(exclude={"signature", "admin_key_id", "issued_at"}),
            "version": v1.version + 1,
            "tx_to_allowlist": (DEST,),
        },
    )
    run(_publish(settings, narrowed))
    start = outcomes_start(settings, run)
    old_policy = new_intent(key, agent_id=agent, chain="anvil", to=OTHER, value="0.1", broadcast=True)
    current_policy = new_intent(key, agent_id=agent, chain="anvil", to=OTHER, value="0.1", broadcast=True)
    run(direct_approvals(settings, (old_policy, v1), (current_policy, narrowed)))
    outcomes = run(wait_outcomes(settings, [old_policy, current_policy], 120, start))
    assert outcomes[old_policy.intent_id].code == Code.POLICY_SUPERSEDED
    assert outcomes[current_policy.intent_id].code == Code.RECIPIENT_NOT_ALLOWLISTED
    assert outcomes[current_policy.intent_id].stage == Stage.SIGNING


async def _publish(settings: Settings, policy: AgentPolicy) -> None:
    async with Client(settings) as client:
        assert await client.publish_policy(policy) == AuditAction.POLICY_UPDATED
    await asyncio.sleep(1.0)  # the signer follows warden.policies on its own, within a second


# --- 3. the signer simulates itself ------------------------------------------------------------


def test_require_simulation_holds_at_the_signer_for_an_approval_written_to_the_topic(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    agent = fresh_agent("agent-mustsim")
    paused = "0x" + os.urandom(20).hex()

    async def install() -> None:
        node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
        try:
            await node.call("anvil_setCode", paused, _revert_runtime("always reverts"))
        finally:
            await node.close()

    run(install())
    from eth_utils import to_checksum_address

    paused = to_checksum_address(paused)
    key, address, policy = run(
        make_agent(
            settings,
            agent,
            tx_to_allowlist=(paused,),
            tx_max_value_eth="1",
            require_simulation=True,
            contract_calls=({"contract": paused, "selectors": ("deposit()",)},),
        )
    )
    before = run(balance(settings, address))
    start = outcomes_start(settings, run)
    call = new_intent(
        key, agent_id=agent, chain="anvil", to=paused, value="0", data="0xd0e30db0", gas_limit=100_000, broadcast=True
    )
    run(direct_approvals(settings, (call, policy)))
    rejected = run(wait_outcomes(settings, [call], 120, start))[call.intent_id]
    assert (rejected.stage, rejected.code) == (Stage.SIGNING, Code.SIMULATION_REVERTED)
    assert "always reverts" in rejected.reason
    assert run(balance(settings, address)) == before


# --- 4. nonces are the signer's ----------------------------------------------------------------


def one_signed(
    settings: Settings, run: Callable[..., Any], prefix: str, value: str
) -> tuple[str, Ed25519PrivateKey, AgentPolicy, dict[TopicPartition, int], TransactionIntent]:
    """A fresh agent (1 ETH cap and 24 h limit) whose first intent, for ``value``, is signed."""
    agent = fresh_agent(prefix)
    key, _, policy = run(
        make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1", tx_daily_limit_eth="1")
    )
    start = outcomes_start(settings, run)
    first = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value=value)
    run(submitted(settings, first))
    signed = run(wait_outcomes(settings, [first], 120, start))[first.intent_id]
    assert isinstance(signed, SignedTransaction) and signed.nonce == 0
    return agent, key, policy, start, first


def test_a_nonce_may_be_named_only_to_replace_what_this_signer_signed(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    agent, key, policy, start, first = one_signed(settings, run, "agent-replace", "0.1")
    replacement = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.1", nonce=0)
    gap = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.1", nonce=1000)
    run(direct_approvals(settings, (gap, policy)))
    run(submitted(settings, replacement))
    outcomes = run(wait_outcomes(settings, [replacement, gap], 120, start))
    assert isinstance(outcomes[replacement.intent_id], SignedTransaction)
    assert outcomes[replacement.intent_id].nonce == 0
    assert outcomes[gap.intent_id].code == Code.NONCE_NOT_ALLOWED


# --- 5. outcomes cannot be forged --------------------------------------------------------------


def test_a_forged_rejection_written_first_does_not_answer_for_the_real_intent(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """A record with the real intent's id and a bad signature, written before the real one, used
    to make the SDK report REJECTED for an intent that was then mined: a client that retries on
    that answer pays twice. Both forgeries are tried: a fake rejection on the rejected topic,
    and a fake intent (bad agent signature) that the worker rejects under the same id."""
    settings = stack.settings
    agent = fresh_agent("agent-forged")
    key, address, policy = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
    real = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.05", broadcast=True)
    impostor = new_intent(
        Ed25519PrivateKey.generate(), agent_id=agent, chain="anvil", to=DEST, value="0.05", intent_id=real.intent_id
    )
    fake = IntentRejected(
        intent_id=real.intent_id,
        agent_id=agent,
        stage="value_cap",
        code=Code.VALUE_OVER_CAP,
        reason="forged",
        decided_at=utcnow(),
        intent_digest=real.digest(),
        signed_by="streams-0",
        service_signature="00" * 64,
    )
    fake_signer = sign_outcome(fake.model_copy(update={"stage": "signing"}), Ed25519PrivateKey.generate(), "signer-0")
    fake_parked = sign_outcome(
        IntentParked(
            intent_id=real.intent_id,
            agent_id=agent,
            reason="forged",
            intent=real,
            parked_at=utcnow(),
            expires_at=utcnow() + timedelta(hours=1),
            intent_digest=real.digest(),
        ),
        Ed25519PrivateKey.generate(),
        "streams-0",
    )
    # The fakes go to every partition of two outcome topics (a topic writer picks any key). None
    # may answer for the real intent. The client reads only its agent's partitions, so it lists
    # the fakes there (whichever order its consumer reads the topics in) and never reads the
    # rest; `warden tail`, which reads everything, shows them all below.
    keys = {partition_of(key): key for key in (f"{agent}-{n}" for n in range(256))}
    assert len(keys) == topics.PARTITIONS
    start = run(end_offsets(settings, OUTCOME_TOPICS))

    async def attack() -> None:
        async with Client(settings) as client:
            for key in keys.values():
                await client.send(topics.INTENTS_REJECTED, key, fake.to_bytes())
                await client.send(topics.INTENTS_REJECTED, key, fake_signer.to_bytes())
                await client.send(topics.INTENTS_AWAITING_APPROVAL, key, fake_parked.to_bytes())
            await client.submit(impostor)
            await client.flush()
            await asyncio.sleep(1.0)  # the impostor is decided first
            await client.submit(real)
            await client.flush()

    run(attack())
    outcome = run(wait_outcomes(settings, [real], 60, start))[real.intent_id]
    assert isinstance(outcome, SignedTransaction) and outcome.status == "mined", outcome

    # Read again now that the real outcome is on the topic before the first fetch: the
    # forgeries on partitions the consumer happens to read after it are listed too, and so is
    # a copy of the outcome with a bad signature written behind it in its own partition.
    async def copy_after() -> None:
        async with Client(settings) as client:
            copy = outcome.model_copy(update={"service_signature": "00" * 64})
            await client.send(topics.TXS_SIGNED, agent, copy.to_bytes())
            await client.flush()

    run(copy_after())
    forged: list[tuple[str, str]] = []
    again = run(wait_outcomes(settings, [real], 60, start, forged=forged))[real.intent_id]
    assert again == outcome
    reasons = [why for intent_id, why in forged if intent_id == real.intent_id]
    # The three fakes in the agent's partitions and the copy; the fakes on the other partitions
    # are not read (a client reading every partition would list 3 * len(keys) + 1).
    assert sum("does not verify" in why for why in reasons) == 3 + 1
    assert any("intent_digest differs" in why for why in reasons)  # the worker's rejection of the impostor

    # `warden tail` shows the fakes as FORGED, never as outcomes.
    def shown(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        mine = [
            line
            for line in lines
            if isinstance(line["record"], dict) and line["record"].get("intent_id") == real.intent_id
        ]
        return mine, [line for line in mine if line["record"].get("reason") == "forged"]

    def enough(lines: list[dict[str, Any]]) -> bool:
        mine, fakes = shown(lines)
        return len(fakes) >= 3 * len(keys) and any(
            line["authentic"] and line["topic"] == topics.TXS_SIGNED for line in mine
        )

    lines = tail_json(child_environment(settings), enough)
    mine, fakes = shown(lines)
    assert len(fakes) == 3 * len(keys) and all(line["authentic"] is False for line in fakes)
    assert any(line["authentic"] and line["topic"] == topics.TXS_SIGNED for line in mine)


def test_a_forged_signing_rejection_does_not_release_the_workers_reservation(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """Forged signing-stage rejections on warden.intents.rejected must not release the worker's
    reservations, or an agent could spend past its limit at the worker."""
    settings = stack.settings
    agent, key, policy, start, first = one_signed(settings, run, "agent-release", "0.9")
    release = sign_outcome(
        IntentRejected(
            intent_id=first.intent_id,
            agent_id=agent,
            stage="signing",
            code=Code.SIGNER_ERROR,
            reason="forged release",
            decided_at=utcnow(),
            intent_digest=first.digest(),
        ),
        Ed25519PrivateKey.generate(),
        "signer-0",
    )

    async def forge() -> None:
        async with Client(settings) as client:
            await (await client.send(topics.INTENTS_REJECTED, agent, release.to_bytes()))
        await asyncio.sleep(2.0)

    run(forge())
    second = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.5")
    run(submitted(settings, second))
    rejected = run(wait_outcomes(settings, [second], 120, start))[second.intent_id]
    assert (rejected.stage, rejected.code) == (Stage.DAILY_LIMIT, Code.DAILY_LIMIT_EXCEEDED)
    audits = [e for v in run(read_topic(settings, topics.AUDIT_EVENTS, start=start)) for e in audit_events_of(v)]
    assert any(a.action == AuditAction.OUTCOME_FORGED and a.intent_id == first.intent_id for a in audits)


# --- 6. freshness -----------------------------------------------------------------------------


def test_intents_from_2001_and_2100_are_refused_by_the_worker_and_by_the_signer(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    agent = fresh_agent("agent-stale")
    key, address, policy = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
    start = outcomes_start(settings, run)
    old, future = datetime(2001, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc)
    made = [
        new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.1", now=when)
        for when in (old, future, old, future)
    ]
    expired = new_intent(
        key, agent_id=agent, chain="anvil", to=DEST, value="0.1", expires_at=utcnow() - timedelta(seconds=1)
    )
    run(submitted(settings, made[0], made[1], expired))
    run(direct_approvals(settings, (made[2], policy), (made[3], policy)))
    outcomes = run(wait_outcomes(settings, made + [expired], 120, start))
    assert [(outcomes[i.intent_id].stage, outcomes[i.intent_id].code) for i in made + [expired]] == [
        (Stage.INTAKE, Code.INTENT_EXPIRED),
        (Stage.INTAKE, Code.INTENT_FROM_THE_FUTURE),
        (Stage.SIGNING, Code.INTENT_EXPIRED),
        (Stage.SIGNING, Code.INTENT_FROM_THE_FUTURE),
        (Stage.INTAKE, Code.INTENT_EXPIRED),
    ]


# --- 7. an intent given up ----------------------------------------------------------------------


def _given_up(settings: Settings, intent: TransactionIntent) -> bytes:
    """What the worker's redelivery watch writes after its last attempt (`overdue_record`, signed
    with the worker's key), on which the worker gives an intent it did not decide up: done here
    by hand, as in tests/stack/test_terminal_outcomes.py. tests/stack/test_node_outage.py has the
    watch give intents up with the node stopped."""
    return overdue_record(intent.to_bytes(), settings.max_record_bytes, 3, utcnow(), service_key(settings, "worker"))


def _answers(
    settings: Settings, run: Callable[..., Any], intent: TransactionIntent, start: dict[TopicPartition, int]
) -> tuple[set[bytes], list[bytes]]:
    """(the distinct refusals of ``intent`` on warden.intents.rejected, its records on warden.txs.signed)."""
    refusals = {
        raw
        for raw in run(read_topic(settings, topics.INTENTS_REJECTED, start=start))
        if IntentRejected.from_bytes(raw).intent_id == intent.intent_id
    }
    signed = [
        raw
        for raw in run(read_topic(settings, topics.TXS_SIGNED, start=start))
        if SignedTransaction.from_bytes(raw).intent_id == intent.intent_id
    ]
    return refusals, signed


def test_an_intent_given_up_is_never_signed_whoever_copies_it_into_an_approval(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """A given-up intent copied into an approval: the signer judges every approval itself, so a
    keyless topic writer who copies the given-up intent (agent-signed, fresh, within policy) into
    an IntentApproved would have it signed and mined, were the worker's refusal the only one, and a
    client that obeyed "submit a new intent" would pay twice. The signer has the last word on a
    given-up intent: its NO_OUTCOME is the one outcome, and every approval of it gets that again."""
    settings = stack.settings
    agent = fresh_agent("agent-givenup")
    key, address, policy = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
    lost = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.1", broadcast=True)
    before = run(balance(settings, address))
    start = outcomes_start(settings, run)

    async def give_up() -> dict[str, Outcome]:
        async with Client(settings) as client:
            await (await client.send(topics.INTENTS_OVERDUE, agent, _given_up(settings, lost)))
        return await wait_outcomes(settings, [lost], 120, start)

    told = run(give_up())[lost.intent_id]
    assert isinstance(told, IntentRejected) and told.code == Code.NO_OUTCOME, told
    # The attack: the given-up intent, copied into approvals written straight past the worker, and
    # the lost record itself turning up at the worker after all.
    run(direct_approvals(settings, (lost, policy), (lost, policy)))
    run(submitted(settings, lost))
    run(asyncio.sleep(8))
    refusals, signed = _answers(settings, run, lost, start)
    assert signed == [], [SignedTransaction.from_bytes(raw).status for raw in signed]
    assert run(balance(settings, address)) == before
    assert refusals == {told.to_bytes()}, [IntentRejected.from_bytes(raw).code for raw in refusals]
    # The signer's word, which it keeps: not the worker's.
    assert (told.stage, told.signed_by) == (Stage.SIGNING, service_key(settings, "signer")[0]), told
    assert "will not sign" in told.reason, told.reason


def test_an_intent_the_signer_signed_before_its_give_up_keeps_its_one_signature(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """The other order at the signer: an approval of the intent first (signed, mined), then the
    worker's give-up. The give-up gets the signature again, never a NO_OUTCOME beside it."""
    settings = stack.settings
    agent = fresh_agent("agent-signedfirst")
    key, _, policy = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
    intent = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.1", broadcast=True)
    start = outcomes_start(settings, run)
    run(direct_approvals(settings, (intent, policy)))
    first = run(wait_outcomes(settings, [intent], 120, start))[intent.intent_id]
    assert isinstance(first, SignedTransaction), first
    run(asyncio.sleep(3))  # its status changes (mined) published before the give-up
    given_up = run(end_offsets(settings, (topics.TXS_SIGNED,)))

    async def give_up() -> None:
        async with Client(settings) as client:
            await (await client.send(topics.INTENTS_OVERDUE, agent, _given_up(settings, intent)))
        await asyncio.sleep(8)

    run(give_up())
    refusals, signed = _answers(settings, run, intent, start)
    assert refusals == set(), [IntentRejected.from_bytes(raw).code for raw in refusals]
    assert {SignedTransaction.from_bytes(raw).tx_hash for raw in signed} == {first.tx_hash}
    # The give-up is answered with that signature again: the newest record of its one transaction.
    _, again = _answers(settings, run, intent, given_up)
    assert again, "the give-up was not answered"
