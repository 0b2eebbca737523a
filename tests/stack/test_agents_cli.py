"""`warden agents show|update` believe only the policy a pinned admin signed.

`update` signs the fields of the policy it finds on `warden.policies` with the admin key. It used
to take the newest version on the topic whoever wrote it: a topic writer's unsigned policy (which
the worker refuses) came back from the admin's next `update` signed, with the writer's allowlist
and caps in it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.local import LocalStack
from runtime.clock import utcnow
from runtime.kafka import end_offsets
from runtime.trust import LOCAL_ADMIN_ID, admin_key_file
from schemas import topics
from schemas.actions import AuditAction
from schemas.auth import AuditSigner, public_key_hex, sign_policy
from schemas.codes import Code
from schemas.emit import audit
from schemas.outcomes import IntentRejected
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from sdk.client import (
    Client,
    Outcome,
    load_or_create_agent_key,
    new_intent,
    signed_policy,
    submit_and_wait,
    wait_outcomes,
    wait_policy_applied,
)
from tests.support import warden

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
ATTACKER = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
PAYEE = "0x00000000000000000000000000000000000A11cE"


def test_show_and_update_ignore_a_policy_no_pinned_admin_signed(stack: LocalStack, run: Callable[..., Any]) -> None:
    settings = stack.settings
    agent = f"agent-cli-{os.urandom(3).hex()}"
    created = warden(
        settings,
        "agents",
        "create",
        "--agent",
        agent,
        "--chains",
        "anvil",
        "--allowlist",
        DEST,
        "--max-value",
        "0.1",
        "--daily-limit",
        "1",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    agent_key = load_or_create_agent_key(settings.home, agent)
    wide_open = dict(
        agent_id=agent,
        agent_public_key=public_key_hex(agent_key),
        tx_allowed_chains=("anvil",),
        tx_to_allowlist=(DEST, ATTACKER),
        tx_max_value_eth="1000",
        issued_at=utcnow(),
    )
    unsigned = AgentPolicy(version=99, **wide_open)
    # Named as the local admin, signed with a key nobody pinned.
    rogue = sign_policy(AgentPolicy(version=98, **wide_open), Ed25519PrivateKey.generate(), LOCAL_ADMIN_ID)

    async def forge() -> None:
        async with Client(settings) as client:
            await client.send(topics.POLICIES, agent, unsigned.to_bytes())
            await client.send(topics.POLICIES, agent, rogue.to_bytes())
            await client.flush()

    run(forge())
    shown = warden(settings, "agents", "show", "--agent", agent, "--json")
    assert shown.returncode == 0, shown.stderr
    doc = orjson.loads(shown.stdout)
    assert (doc["version"], doc["tx_to_allowlist"], doc["tx_max_value_eth"]) == (1, [DEST], "0.1"), doc

    updated = warden(settings, "agents", "update", "--agent", agent, "--daily-limit", "2", "--json")
    assert updated.returncode == 0, updated.stderr
    doc = orjson.loads(updated.stdout)
    assert (doc["version"], doc["tx_to_allowlist"], doc["tx_max_value_eth"], doc["tx_daily_limit_eth"]) == (
        2,
        [DEST],
        "0.1",
        "2",
    ), doc

    # And the worker holds the admin's version 2: the writer's recipient is still refused.
    intent = new_intent(agent_key, agent_id=agent, chain="anvil", to=ATTACKER, value="0.05")

    async def submit() -> dict[str, Outcome]:
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        async with Client(settings) as client:
            await (await client.submit(intent))
        return await wait_outcomes(settings, [intent], 60, start)

    outcome = run(submit())[intent.intent_id]
    assert isinstance(outcome, IntentRejected) and outcome.stage == Stage.ALLOWLIST, outcome


def test_a_forged_policy_verdict_does_not_tell_the_admin_a_refused_policy_is_in_force(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """The admin's `publish_policy` waits for the worker's verdict on warden.audit.events. A topic
    writer's "policy.updated" for the same version, written first, unsigned or signed with a key
    no one pins, must not answer for the worker, which refuses the (stale) policy."""
    settings = stack.settings
    agent = f"agent-verdict-{os.urandom(3).hex()}"
    created = warden(
        settings,
        "agents",
        "create",
        "--agent",
        agent,
        "--chains",
        "anvil",
        "--allowlist",
        DEST,
        "--max-value",
        "0.1",
        "--daily-limit",
        "1",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    assert warden(settings, "agents", "update", "--agent", agent, "--daily-limit", "2").returncode == 0
    current = orjson.loads(warden(settings, "agents", "show", "--agent", agent, "--json").stdout)
    assert current["version"] == 2
    stale = signed_policy(
        settings,
        **{
            **{k: v for k, v in current.items() if k not in ("version", "issued_at", "admin_key_id", "signature")},
            "version": 1,
            "tx_to_allowlist": (DEST, ATTACKER),
        },
    )
    lie = audit(
        "service:streams",
        AuditAction.POLICY_UPDATED,
        f"policy:{agent}",
        utcnow(),
        agent,
        "forged",
        agent_id=agent,
        version=stale.version,
    ).value
    stranger = AuditSigner("worker", settings.worker_id, Ed25519PrivateKey.generate())

    async def publish() -> str:
        start = await end_offsets(settings, (topics.AUDIT_EVENTS,))
        async with Client(settings) as client:
            assert client._producer is not None
            await client._producer.send(topics.AUDIT_EVENTS, lie, key=agent.encode())
            await client._producer.send(topics.AUDIT_EVENTS, lie, key=agent.encode(), headers=stranger.headers(lie))
            await client.flush()
            await (await client.send(topics.POLICIES, agent, stale.to_bytes()))
        return await wait_policy_applied(settings, stale, 30, start)

    assert run(publish()) == AuditAction.POLICY_REFUSED


def test_update_keeps_the_agents_intent_key_and_public_key_registers_another(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """An agent that holds its own intent key (not this home's key file for it): an admin's
    `agents update --allowlist` once put this home's key file in the policy instead, and every
    intent the agent signed was then refused AGENT_SIGNATURE_INVALID. The key in force stays;
    `--public-key` registers another one, explicitly."""
    settings = stack.settings
    agent = f"agent-own-key-{os.urandom(3).hex()}"
    own, later = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    created = warden(
        settings, "agents", "create", "--agent", agent, "--chains", "anvil", "--allowlist", DEST,
        "--public-key", public_key_hex(own), "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert orjson.loads(created.stdout)["agent_public_key"] == public_key_hex(own)

    def refusal(key: Ed25519PrivateKey) -> IntentRejected:
        """The worker's word on an intent to a recipient off the allowlist, signed with ``key``."""
        intent = new_intent(key, agent_id=agent, chain="anvil", to=ATTACKER, value="0.01")
        outcome, _ = run(submit_and_wait(settings, intent, 60))
        assert isinstance(outcome, IntentRejected), outcome
        return outcome

    updated = warden(settings, "agents", "update", "--agent", agent, "--allowlist", f"{DEST},{PAYEE}", "--json")
    assert updated.returncode == 0, updated.stderr
    assert orjson.loads(updated.stdout)["agent_public_key"] == public_key_hex(own)
    # Judged past intake: the agent's signature verified under the key in force.
    judged = refusal(own)
    assert (judged.stage, judged.code) == (Stage.ALLOWLIST, Code.RECIPIENT_NOT_ALLOWLISTED), judged

    moved = warden(settings, "agents", "update", "--agent", agent, "--public-key", public_key_hex(later), "--json")
    assert moved.returncode == 0, moved.stderr
    shown = orjson.loads(warden(settings, "agents", "show", "--agent", agent, "--json").stdout)
    assert shown["agent_public_key"] == public_key_hex(later) and shown["version"] == 3
    assert refusal(own).code == Code.AGENT_SIGNATURE_INVALID
    assert refusal(later).code == Code.RECIPIENT_NOT_ALLOWLISTED

    bad = warden(settings, "agents", "update", "--agent", agent, "--public-key", "0x1234")
    assert bad.returncode == 2 and "agent_public_key" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_admins_propose_reports_what_the_services_said_and_signs_nothing_for_a_stranger(stack: LocalStack) -> None:
    """`warden admins propose` as an id the admin set in force does not hold used to make a key for
    it, sign, print "signed and published" and exit 0, while both services refused the set
    (`admins.refused`). It signs nothing, makes no key and publishes nothing; an admin in force
    whose set is published hears both services' verdict and exits 0 only once they took it."""
    settings = stack.settings
    shown = orjson.loads(warden(settings, "admins", "show", "--json").stdout)
    stranger = f"stranger-{os.urandom(3).hex()}"
    their_key = public_key_hex(Ed25519PrivateKey.generate())  # the key they would be pinned with
    pairs = ",".join(f"{admin}={key}" for admin, key in {**shown["admins"], stranger: their_key}.items())
    quorum = ",".join(f"{action}={m}" for action, m in shown["thresholds"].items())

    refused = warden(
        dataclasses.replace(settings, admin_id=stranger), "admins", "propose", "--admins", pairs, "--quorum", quorum
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert f"{stranger} (WARDEN_ADMIN_ID) is not an admin of the set in force" in refused.stderr, refused.stderr
    assert "nothing was signed or published" in refused.stderr and not refused.stdout, refused
    assert not admin_key_file(settings.home, stranger).exists()

    # The set in force again, as its own next version: both services take it.
    same = ",".join(f"{admin}={key}" for admin, key in shown["admins"].items())
    taken = warden(settings, "admins", "propose", "--admins", same, "--quorum", quorum, "--json")
    assert taken.returncode == 0, taken.stderr
    said = orjson.loads(taken.stdout)
    assert said["published"] and said["outcome"] == AuditAction.ADMINS_CHANGED, said
    assert {role: v["action"] for role, v in said["verdicts"].items()} == dict.fromkeys(
        ("signer", "worker"), AuditAction.ADMINS_CHANGED
    )
    after = orjson.loads(warden(settings, "admins", "show", "--json").stdout)
    assert (after["version"], after["admins"]) == (shown["version"] + 1, shown["admins"]), after
