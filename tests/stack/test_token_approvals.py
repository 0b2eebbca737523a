"""Token movements above an approval threshold, on the real stack with real contracts: an admin
decides through the CLI, the signer requires the admin's approval itself, a passkey admin decides
with a WebAuthn assertion that holds for that decision alone, and an admin sets token rules from
the CLI."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition

from infra import contracts
from infra.stack.local import LocalStack
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from schemas.audit import AuditEvent
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentRejected, SignedTransaction
from schemas.stages import Stage
from sdk.client import OUTCOME_TOPICS, Client, new_intent, wait_outcomes
from sdk.outcomes import Outcome
from tests.passkey_support import SoftPasskey
from tests.signer_support import LoneSigner
from tests.support import make_agent
from tests.token_support import ALICE, UNIT, balance_of, mint_tokens, token_assets


def test_above_the_threshold_an_admin_decides_through_the_cli(
    stack: LocalStack, run: Callable[..., Any], deployed: dict[str, str]
) -> None:
    """Three intents above the threshold are parked; `warden approvals` lists them, one is
    approved and mined, one denied; another agent's waits past its approval_timeout_s and expires."""
    from tests.support import warden

    settings = stack.settings
    token = deployed["token"]
    agent, hasty = f"appr-{os.urandom(3).hex()}", f"appr-hasty-{os.urandom(3).hex()}"

    async def scenario() -> tuple[dict[str, TransactionIntent], dict[str, Outcome], dict[TopicPartition, int], str]:
        key, address, _ = await make_agent(
            settings,
            agent,
            tx_to_allowlist=(token, ALICE),
            approval_threshold_eth="0.1",
            asset_limits=token_assets(deployed, approval_threshold="5"),
        )
        hasty_key, _, _ = await make_agent(
            settings, hasty, tx_to_allowlist=(ALICE,), approval_threshold_eth="0.1", approval_timeout_s=2
        )
        await mint_tokens(settings, token, address, 100 * UNIT)
        ask: dict[str, Any] = dict(agent_id=agent, chain="anvil", broadcast=True)
        intents = {
            "small": new_intent(key, to=ALICE, value="0.05", **ask),
            "big": new_intent(key, to=ALICE, value="0.5", **ask),
            "denied": new_intent(key, to=ALICE, value="0.2", **ask),
            "tokens": new_intent(
                key, to=token, value="0", data=contracts.calldata("transfer(address,uint256)", ALICE, 6 * UNIT), **ask
            ),
            "expires": new_intent(hasty_key, agent_id=hasty, chain="anvil", to=ALICE, value="0.5", broadcast=True),
        }
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:
            for intent in intents.values():
                await client.submit(intent)
        first = await wait_outcomes(settings, intents.values(), 30, start, final=False)
        return intents, first, start, address

    intents, first, start, address = run(scenario())
    assert isinstance(first[intents["small"].intent_id], SignedTransaction)  # below: no wait
    for name in ("big", "denied", "tokens"):
        assert type(first[intents[name].intent_id]).__name__ == "IntentParked", name
    # Parked for 2 s: on a busy machine its expiry (APPROVAL_EXPIRED, said only of a parked intent)
    # may be written before the first read, which then keeps the later outcome.
    hasty_first = first[intents["expires"].intent_id]
    assert type(hasty_first).__name__ == "IntentParked" or getattr(hasty_first, "code", None) == Code.APPROVAL_EXPIRED
    listed = warden(settings, "approvals", "list", "--agent", agent, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["intent_id"]: row for row in orjson.loads(listed.stdout)["awaiting_approval"]}
    assert set(rows) == {intents[n].intent_id for n in ("big", "denied", "tokens")}
    assert "above the approval threshold of 0.1" in rows[intents["big"].intent_id]["reason"]
    assert "WUSD's approval threshold of 5 WUSD" in rows[intents["tokens"].intent_id]["reason"]

    approved = warden(settings, "approvals", "approve", intents["big"].intent_id, "--reason", "invoice 7", "--json")
    assert approved.returncode == 0, approved.stderr
    denied = warden(settings, "approvals", "deny", intents["denied"].intent_id, "--reason", "unknown vendor")
    assert denied.returncode == 0, denied.stderr
    assert Code.APPROVAL_DENIED in denied.stdout and "unknown vendor" in denied.stdout
    approved_tokens = warden(settings, "approvals", "approve", intents["tokens"].intent_id)
    assert approved_tokens.returncode == 0, approved_tokens.stderr

    final = run(wait_outcomes(settings, intents.values(), 30, start))
    assert final[intents["big"].intent_id].status == "mined"
    assert final[intents["tokens"].intent_id].status == "mined"
    assert (final[intents["denied"].intent_id].stage, final[intents["denied"].intent_id].code) == (
        Stage.APPROVAL,
        Code.APPROVAL_DENIED,
    )
    assert (final[intents["expires"].intent_id].stage, final[intents["expires"].intent_id].code) == (
        Stage.APPROVAL,
        Code.APPROVAL_EXPIRED,
    )
    assert run(balance_of(settings, token, ALICE)) >= 6 * UNIT
    # Decided ones are no longer listed, and a decision on them is refused by the CLI.
    again = warden(settings, "approvals", "list", "--agent", agent, "--json")
    assert orjson.loads(again.stdout)["awaiting_approval"] == []
    late = warden(settings, "approvals", "approve", intents["denied"].intent_id)
    assert late.returncode == 1 and "no intent" in late.stderr


def test_a_passkey_admins_assertion_approves_one_intent_and_relayed_to_another_is_refused(
    stack: LocalStack, stack_passkey: SoftPasskey, run: Callable[..., Any]
) -> None:
    """The stack pins a passkey admin (a software passkey, making assertions as the console's
    page would). Its assertion over the approval of one parked intent releases it, and it is mined.
    The same assertion relayed in an approval of another parked intent, and an assertion over a
    third's approval made in a frame on another site's page (crossOrigin: true), are refused by the
    worker, and, written straight to warden.intents.approved, by the signer: PASSKEY_ASSERTION_INVALID."""
    from runtime.clock import utcnow
    from schemas import topics
    from schemas.actions import AuditAction
    from schemas.audit import audit_events_of
    from schemas.outcomes import HumanApproval, IntentApproved
    from tests.passkey_support import PASSKEY_ADMIN, passkey_signed
    from tests.support import read_topic

    settings, agent = stack.settings, f"passkey-{os.urandom(3).hex()}"

    def approval(intent: TransactionIntent, **signed: Any) -> HumanApproval:
        return HumanApproval(
            intent_id=intent.intent_id,
            agent_id=agent,
            intent_digest=intent.digest(),
            decision="approve",
            decided_at=utcnow(),
            **signed,
        )

    async def scenario() -> tuple[list[TransactionIntent], Outcome, dict[str, Outcome], list[AuditEvent]]:
        key, _, policy = await make_agent(settings, agent, tx_to_allowlist=(ALICE,), approval_threshold_eth="0.1")
        one, two, three = (
            new_intent(key, agent_id=agent, chain="anvil", to=ALICE, value=v, broadcast=True)
            for v in ("0.3", "0.4", "0.5")
        )
        start = await end_offsets(settings, (*OUTCOME_TOPICS, topics.AUDIT_EVENTS))
        async with Client(settings) as client:
            for intent in (one, two, three):
                await client.submit(intent)
            parked = await wait_outcomes(settings, [one, two, three], 60, start, final=False)
            assert {type(o).__name__ for o in parked.values()} == {"IntentParked"}, parked
            approved = passkey_signed(approval(one), stack_passkey, PASSKEY_ADMIN)
            relayed = approval(two, admin_key_id=PASSKEY_ADMIN, signature=approved.signature)
            framed = passkey_signed(approval(three), stack_passkey, PASSKEY_ADMIN, framed_by="https://evil.example")
            for decision in (approved, relayed, framed):
                await client.send(topics.APPROVALS, agent, decision.to_bytes())
            mined = (await wait_outcomes(settings, [one], 90, start))[one.intent_id]
            # Past the worker, straight to the signer, with the relayed and the framed assertions.
            for intent, decision in ((two, relayed), (three, framed)):
                straight = IntentApproved(intent=intent, policy=policy, approved_at=utcnow(), human_approval=decision)
                await client.send(topics.INTENTS_APPROVED, agent, straight.to_bytes())
            refused = await wait_outcomes(settings, [two, three], 60, start)
        events = [e for v in await read_topic(settings, topics.AUDIT_EVENTS, start=start) for e in audit_events_of(v)]
        return [two, three], mined, refused, events

    intents, mined, refused, events = run(scenario())
    assert isinstance(mined, SignedTransaction) and mined.status == "mined", mined
    for intent, why in zip(intents, ("the passkey's assertion does not verify", "crossOrigin: true"), strict=True):
        said = [e for e in events if e.intent_id == intent.intent_id]
        by_worker = [e for e in said if e.action == AuditAction.APPROVAL_REFUSED]
        assert len(by_worker) == 1, (why, [e.action for e in said])
        assert by_worker[0].details["code"] == Code.PASSKEY_ASSERTION_INVALID, by_worker[0].details
        assert why in by_worker[0].details["reason"], by_worker[0].details
        by_signer = refused[intent.intent_id]
        assert isinstance(by_signer, IntentRejected), by_signer
        assert (by_signer.stage, by_signer.code) == (Stage.SIGNING, Code.PASSKEY_ASSERTION_INVALID), by_signer


def test_the_signer_requires_the_admins_approval_itself(lone: LoneSigner, run: Callable[..., Any]) -> None:
    """Above the threshold of the signer's own policy, an approved record without a valid admin
    approval is refused; with one, it is signed even though the intent waited past its freshness."""
    from datetime import datetime, timedelta, timezone

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from schemas import topics
    from schemas.auth import sign_human_approval
    from schemas.emit import Source
    from schemas.outcomes import HumanApproval, IntentApproved

    lone.set_policy(tx_to_allowlist=(ALICE,), approval_threshold_eth="0.1")
    run(_fund_rpc(lone.rpc_url, lone.address))
    now = datetime.now(timezone.utc)

    def waited() -> TransactionIntent:  # a new intent each time: the signer's first answer for an id is its last
        return lone.intent(to=ALICE, value="0.5", now=now - timedelta(minutes=30))

    def handle(intent: TransactionIntent, approval: HumanApproval | None) -> tuple[str, bytes]:
        async def go() -> tuple[str, bytes]:
            lone.node = JsonRpc(lone.rpc_url, timeout_s=120)
            try:
                record = IntentApproved(
                    intent=intent, policy=lone.policy, verdicts=(), approved_at=now, human_approval=approval
                )
                lone.offset += 1
                emits, _ = await lone.signer.handle(
                    record.to_bytes(), Source(topics.INTENTS_APPROVED, 0, lone.offset, lone.agent.encode()), now
                )
                lone.state.commit()
                (outcome,) = [e for e in emits if e.topic in (topics.INTENTS_REJECTED, topics.TXS_SIGNED)]
                return outcome.topic, outcome.value
            finally:
                await lone.node.close()

        result: tuple[str, bytes] = run(go())
        return result

    def approval(intent: TransactionIntent, key: Ed25519PrivateKey | None = None, **fields: Any) -> HumanApproval:
        base = dict(
            intent_id=intent.intent_id,
            agent_id=lone.agent,
            intent_digest=intent.digest(),
            decision="approve",
            decided_at=now,
        )
        return sign_human_approval(HumanApproval(**{**base, **fields}), key or lone.admin_key, "test-admin")

    # Without a valid approval the intent is what it is: 30 minutes old, stale.
    for make in (
        lambda i: None,
        lambda i: approval(i, key=Ed25519PrivateKey.generate()),
        lambda i: approval(i, decision="deny"),
        lambda i: approval(i, intent_digest="00" * 32),
        lambda i: approval(i, decided_at=now - timedelta(hours=1)),
    ):
        intent = waited()
        topic, raw = handle(intent, make(intent))
        assert topic == topics.INTENTS_REJECTED and IntentRejected.from_bytes(raw).code == Code.INTENT_EXPIRED
    # A fresh intent above the threshold without an approval: refused for that reason.
    outcome, _, _ = run(lone.handle(lone.intent(to=ALICE, value="0.5")))
    assert isinstance(outcome, IntentRejected) and outcome.code == Code.HUMAN_APPROVAL_REQUIRED
    # The admin's approval of another intent does not carry over.
    other, intent = waited(), waited()
    topic, raw = handle(intent, approval(other))
    assert topic == topics.INTENTS_REJECTED
    intent = waited()
    topic, raw = handle(intent, approval(intent))
    assert topic == topics.TXS_SIGNED, raw


async def _fund_rpc(url: str, address: str) -> None:
    node = JsonRpc(url, timeout_s=120)
    try:
        await node.call("anvil_setBalance", address, hex(10**20))
    finally:
        await node.close()


def test_an_admin_sets_token_rules_from_the_cli(
    stack: LocalStack, run: Callable[..., Any], deployed: dict[str, str], tmp_path: Path
) -> None:
    """`warden agents create --fields FILE` carries the policy fields no flag covers; a wrong one
    is refused by name before anything is published."""
    from tests.support import warden

    settings = stack.settings
    agent = f"tok-cli-{os.urandom(3).hex()}"
    rules = tmp_path / "rules.json"
    rules.write_bytes(
        orjson.dumps(
            {
                "asset_limits": [
                    {
                        "chain": "anvil",
                        "token": deployed["token"],
                        "symbol": "WUSD",
                        "decimals": 6,
                        "max_per_tx": "25",
                        "approval_threshold": "10",
                    }
                ],
                "contract_calls": [{"contract": deployed["router"], "selectors": ["pull(address,uint256)"]}],
            }
        )
    )
    created = warden(
        settings,
        "agents",
        "create",
        "--agent",
        agent,
        "--chains",
        "anvil",
        "--allowlist",
        f"{deployed['token']},{ALICE}",
        "--fields",
        str(rules),
        "--approval-threshold",
        "0.5",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    shown = orjson.loads(warden(settings, "agents", "show", "--agent", agent, "--json").stdout)
    assert shown["asset_limits"][0]["max_per_tx"] == "25" and shown["approval_threshold_eth"] == "0.5"
    assert shown["contract_calls"][0]["selectors"] == ["0x" + contracts.selector("pull(address,uint256)").hex()]
    # Shown as signed: a field at its default is left out of the document, and reads as the default.
    from schemas.policy import AgentPolicy

    assert "block_unlimited_approvals" not in shown and AgentPolicy.model_validate(shown).block_unlimited_approvals
    rules.write_bytes(
        orjson.dumps(
            {"asset_limits": [{"chain": "anvil", "token": deployed["token"], "decimals": 6, "max_per_tx": "0.0000001"}]}
        )
    )
    bad = warden(settings, "agents", "update", "--agent", agent, "--fields", str(rules))
    assert bad.returncode == 2 and "max_per_tx" in bad.stderr and "at most 6" in bad.stderr
