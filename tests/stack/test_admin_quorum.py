"""The admins' quorum on the real stack: a deployment pins three admins and needs two for a
policy change, an approval, a key change and a change to the admin set. What one stolen admin key can try
(alone, twice, with another admin's signature over other bytes, straight onto the topics) is
refused by the streams worker and by the signer, each checking for itself; two admins, through
the CLI's proposals, get their way."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.structs import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.local import local_settings, running_stack
from infra.stack.provision import Agent, balance, provision_agent
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.trust import admin_key_file
from schemas import topics
from schemas.actions import AuditAction
from schemas.admins import ACTIONS, AdminProposal, AdminSet, VaultChange
from schemas.audit import audit_events_of
from schemas.auth import (
    cosign,
    public_key_hex,
    sign_admin_set,
    sign_human_approval,
    sign_policy,
    sign_vault_change,
    vault_change_headers,
)
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import HumanApproval, IntentRejected, SignedTransaction
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from sdk.admin import load_or_create_admin_key
from sdk.client import Client, Outcome, new_intent, pending_approvals, wait_outcomes
from sdk.quorum import wait_vault_applied
from signer.custody import AGENT_KEYS_VAULT
from signer.custody.events import SecretDeactivated
from signer.custody_wiring import keystore_from_settings
from tests.passkey_support import ORIGIN
from tests.support import read_topic, warden

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
AGENT = "treasury-quorum"


def _as(settings: Settings, admin_id: str) -> Settings:
    return dataclasses.replace(settings, admin_id=admin_id)


def _cli(settings: Settings, admin_id: str, *args: str) -> dict[str, Any]:
    done = warden(_as(settings, admin_id), *args, "--json")
    assert done.returncode == 0, done.stderr
    said: dict[str, Any] = json.loads(done.stdout)
    return said


# How a test signs the policy it publishes.
Sign = Callable[[AgentPolicy], AgentPolicy]


@dataclasses.dataclass
class Quorum:
    settings: Settings
    keys: dict[str, Ed25519PrivateKey]


@contextlib.contextmanager
def three_admins(home: Path) -> typing.Iterator[Quorum]:
    """A stack whose home is ``home``: admins a, b and c pinned, two of them needed for every action."""
    keys = {name: load_or_create_admin_key(home, name) for name in ("a", "b", "c")}  # made there first
    pinned = ",".join(f"{name}={public_key_hex(key)}" for name, key in keys.items())
    # The console's origin, which the services believe a passkey admin's assertions from.
    settings = local_settings(home, admin_keys=pinned, admin_quorum="2", admin_id="a", console_origin=ORIGIN)
    with running_stack(settings) as stack:
        yield Quorum(stack.settings, keys)


@pytest.fixture(scope="module")
def quorum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quorum]:
    """One stack for this file (`three_admins`)."""
    with three_admins(tmp_path_factory.mktemp("quorum-home")) as made:
        yield made


def test_one_admin_key_changes_nothing_and_two_admins_do(quorum: Quorum, run: typing.Callable[..., Any]) -> None:
    settings, keys = quorum.settings, quorum.keys
    start = run(end_offsets(settings, (topics.AUDIT_EVENTS,)))

    # Two admins sign the first policy: in force. Approvals above 1 ETH wait for admins.
    agent = run(
        provision_agent(settings, AGENT, cosigners=("b",), tx_allowed_chains=("anvil",), approval_threshold_eth="1")
    )
    v1 = agent.policy

    def attempt(step: int, sign: Sign) -> str | None:
        return _publish_policy(settings, run, v1, step, sign)

    # One admin alone; one admin twice; a second admin's signature over other bytes.
    alone = attempt(2, lambda p: sign_policy(p, keys["a"], "a"))
    twice = attempt(3, lambda p: cosign(sign_policy(p, keys["a"], "a"), keys["a"], "a"))
    other = sign_policy(v1.model_copy(update={"version": v1.version + 4}), keys["b"], "b")
    borrowed = attempt(
        4,
        lambda p: sign_policy(p, keys["a"], "a").model_copy(
            update={
                "cosignatures": (
                    cosign(p, keys["b"], "b").cosignatures[0].model_copy(update={"signature": other.signature}),
                )
            }
        ),
    )
    assert [alone, twice, borrowed] == [AuditAction.POLICY_REFUSED] * 3
    # Two distinct admins over the same bytes: in force.
    assert attempt(5, lambda p: cosign(sign_policy(p, keys["a"], "a"), keys["c"], "c")) == AuditAction.POLICY_UPDATED

    intent = _one_approval_parks_and_two_release(settings, keys, agent, run)
    change = _a_policy_change_proposed_and_signed(settings, run)
    _one_admin_cannot_change_the_admin_set(settings, keys, run, attempt)
    _the_ledger_records_each_verdict(settings, start, v1, intent, run)
    _the_ledger_records_each_signature_of_a_proposal(settings, start, change, run)


def _publish_policy(
    settings: Settings, run: typing.Callable[..., Any], v1: AgentPolicy, step: int, sign: Sign
) -> str | None:
    """Policy v1 + ``step``, lifting the value cap, signed by ``sign``: the worker's verdict."""
    policy = sign(v1.model_copy(update={"version": v1.version + step, "tx_max_value_eth": "1000", "cosignatures": ()}))

    async def publish() -> str | None:
        async with Client(settings) as client:
            return await client.publish_policy(policy)

    verdict: str | None = run(publish())
    return verdict


def _one_approval_parks_and_two_release(
    settings: Settings, keys: dict[str, Ed25519PrivateKey], agent: Agent, run: typing.Callable[..., Any]
) -> TransactionIntent:
    """A parked intent: one admin's approval, written straight to the topic, is refused; the CLI
    proposes the approval, a second admin signs it, and the transaction is mined. The intent."""
    intent = new_intent(agent.intent_key, agent_id=AGENT, chain="anvil", to=DEST, value="2", broadcast=True)
    outcome_start = run(end_offsets(settings, (topics.INTENTS_AWAITING_APPROVAL,)))

    async def submit() -> None:
        async with Client(settings) as client:
            await (await client.submit(intent))

    run(submit())
    assert (
        type(run(wait_outcomes(settings, [intent], 60, outcome_start, final=False))[intent.intent_id]).__name__
        == "IntentParked"
    )
    (parked,) = [p for p in run(pending_approvals(settings, utcnow())) if p.intent_id == intent.intent_id]
    lone = sign_human_approval(
        HumanApproval(
            intent_id=parked.intent_id,
            agent_id=AGENT,
            intent_digest=parked.intent_digest,
            decision="approve",
            decided_at=utcnow(),
        ),
        keys["a"],
        "a",
    )

    async def lone_approval() -> None:
        async with Client(settings) as client:
            await (await client.send(topics.APPROVALS, AGENT, lone.to_bytes()))

    run(lone_approval())
    proposed = _cli(settings, "a", "approvals", "approve", intent.intent_id)
    assert proposed["signed_by"] == ["a"] and proposed["needed"] == 2 and proposed["outcome"] is None
    listed = _cli(settings, "b", "approvals", "list")
    (open_,) = [p for p in listed["proposals"] if p["proposal_id"] == proposed["proposal_id"]]
    assert open_["signed_by"] == ["a"] and open_["needed"] == 2 and open_["action"] == "approval"
    assert [p["intent_id"] for p in listed["awaiting_approval"]] == [intent.intent_id]  # the lone one did nothing
    shown = open_["change"]  # the intent it releases, whole
    assert (shown["decision"], shown["intent_digest"]) == ("approve", intent.digest())
    assert (shown["intent"]["to"], shown["intent"]["value"]) == (DEST, "2")
    _people_read_the_approval(settings, "b", proposed["proposal_id"], intent, "1 of 2 signatures (a)")
    before = run(balance(settings, DEST))
    signed = _cli(
        settings, "b", "approvals", "sign", proposed["proposal_id"][:16], "--digest", open_["digest"], "--wait", "90"
    )
    assert signed["published"] and signed["signed_by"] == ["a", "b"]
    assert signed["outcome"]["tx_hash"], signed
    final = run(wait_outcomes(settings, [intent], 120, outcome_start, final=True))[intent.intent_id]
    assert isinstance(final, SignedTransaction) and final.status == "mined", final
    assert run(balance(settings, DEST)) == before + 2 * 10**18
    return intent


def _people_read_the_approval(
    settings: Settings, admin_id: str, proposal_id: str, intent: TransactionIntent, signed: str
) -> None:
    """`warden approvals list` and `show`, as a person reads them (not --json), print the open
    approval with who signed it and the intent it releases, every field of it: a field at its
    default (``intent_type``) is read as any other."""
    for args in (("list",), ("show", proposal_id[:16])):
        people = warden(_as(settings, admin_id), "approvals", *args)
        assert people.returncode == 0, people.stderr
        assert signed in people.stdout and f"approve intent {intent.intent_id} of {intent.agent_id}" in people.stdout
        assert 'intent_type: "transaction"' in people.stdout and f'to: "{intent.to}"' in people.stdout, people.stdout


def _a_policy_change_proposed_and_signed(settings: Settings, run: typing.Callable[..., Any]) -> str:
    """A policy change through the CLI: admin a proposes, c sees it with a's signature and signs.
    Meanwhile a keyless topic writer puts a's signature under b's name on warden.admin.proposals:
    it counts for nothing. The proposal's id."""
    change = _cli(settings, "a", "agents", "update", "--agent", AGENT, "--max-value", "3")
    assert change["signed_by"] == ["a"] and change["needed"] == 2
    (mine,) = [
        AdminProposal.model_validate_json(value)
        for value in run(read_topic(settings, topics.ADMIN_PROPOSALS))
        if orjson.loads(value).get("proposal_id") == change["proposal_id"]
    ]

    async def forge() -> None:
        async with Client(settings) as client:
            forged = mine.model_copy(update={"admin_key_id": "b"})
            await (await client.send(topics.ADMIN_PROPOSALS, mine.proposal_id, forged.to_bytes()))

    run(forge())
    listed = _cli(settings, "c", "approvals", "list", "--agent", AGENT)
    (open_,) = [p for p in listed["proposals"] if p["proposal_id"] == change["proposal_id"]]
    assert open_["action"] == "policy" and open_["signed_by"] == ["a"]
    fields = {row["field"]: (row["old"], row["new"]) for row in open_["change"]["fields"]}
    assert fields["tx_max_value_eth"] == ("1000", "3") and "agent_public_key" not in fields
    assert _cli(settings, "a", "agents", "show", "--agent", AGENT)["tx_max_value_eth"] == "1000"  # v5's, still
    done = _cli(settings, "c", "approvals", "sign", change["proposal_id"][:16])
    assert done["published"] and done["outcome"] == AuditAction.POLICY_UPDATED and done["signed_by"] == ["a", "c"]
    assert _cli(settings, "b", "agents", "show", "--agent", AGENT)["tx_max_value_eth"] == "3"
    assert change["proposal_id"] not in {
        p["proposal_id"] for p in _cli(settings, "b", "approvals", "list")["proposals"]
    }
    proposal_id: str = change["proposal_id"]
    return proposal_id


def _the_ledger_records_each_signature_of_a_proposal(
    settings: Settings, start: dict[TopicPartition, int], proposal_id: str, run: typing.Callable[..., Any]
) -> None:
    """The worker's record of each signature of the policy change (an audit webhook's "a proposal
    awaits your signature"): a's, awaiting one more; the forged one under b's name, refused; c's,
    awaiting none. Every worker reads the topic; the ledger's topic holds one id of each."""
    deadline = time.monotonic() + 60
    while True:
        events = [e for v in run(read_topic(settings, topics.AUDIT_EVENTS, start=start)) for e in audit_events_of(v)]
        about = {
            e.event_id: e
            for e in events
            if e.action in (AuditAction.PROPOSAL_SIGNED, AuditAction.PROPOSAL_REFUSED)
            and e.details.get("proposal_id") == proposal_id
        }
        if len(about) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    said = sorted(
        (e.details["admin_key_id"], e.action, e.details["awaiting"], e.agent_id, tuple(e.details["signed_by"]))
        for e in about.values()
    )
    assert said == [
        ("a", AuditAction.PROPOSAL_SIGNED, 1, AGENT, ("a",)),
        ("b", AuditAction.PROPOSAL_REFUSED, 1, AGENT, ("a",)),
        ("c", AuditAction.PROPOSAL_SIGNED, 0, AGENT, ("a", "c")),
    ], said
    (forged,) = [e for e in about.values() if e.action == AuditAction.PROPOSAL_REFUSED]
    assert "b's signature does not verify" in forged.details["reason"], forged.details


def _one_admin_cannot_change_the_admin_set(
    settings: Settings,
    keys: dict[str, Ed25519PrivateKey],
    run: typing.Callable[..., Any],
    attempt: Callable[[int, Sign], str | None],
) -> None:
    """One admin alone cannot change the admin set: a proposal through the CLI waits for a second
    admin; a set written straight onto warden.admins changes nothing (policy v1 + 7, signed by
    that admin alone, is still refused)."""
    # One admin alone cannot change the admin set: not through the CLI (a proposal)...
    me_alone = f"a={public_key_hex(keys['a'])}"
    proposal = _cli(settings, "a", "admins", "propose", "--admins", me_alone, "--quorum", "1")
    assert proposal["published"] is False and proposal["needed"] == 2
    assert proposal["outcome"] == AuditAction.PROPOSAL_SIGNED, proposal  # the worker counted a's signature
    # An id the set does not hold proposes nothing: no key made, nothing signed or published.
    stranger = warden(_as(settings, "z"), "admins", "propose", "--admins", me_alone, "--quorum", "1")
    assert stranger.returncode == 1 and "z (WARDEN_ADMIN_ID) is not an admin of the set in force" in stranger.stderr
    assert not admin_key_file(settings.home, "z").exists()
    # ... nor straight onto warden.admins: both services keep the set, so one key still signs nothing.
    forged = sign_admin_set(
        AdminSet(
            version=1,
            admins={"a": public_key_hex(keys["a"])},
            thresholds=dict.fromkeys(ACTIONS, 1),
            issued_at=utcnow(),
        ),
        keys["a"],
        "a",
    )

    async def forge_admins() -> None:
        async with Client(settings) as client:
            await (await client.send(topics.ADMINS, "admins", forged.to_bytes()))

    run(forge_admins())
    assert attempt(7, lambda p: sign_policy(p, keys["a"], "a")) == AuditAction.POLICY_REFUSED
    assert _cli(settings, "a", "admins", "show")["version"] == 0


def _the_ledger_records_each_verdict(
    settings: Settings,
    start: dict[TopicPartition, int],
    v1: AgentPolicy,
    intent: TransactionIntent,
    run: typing.Callable[..., Any],
) -> None:
    """What each service recorded, on the ledger's topic: each refusal with its reason, and who
    approved what was let through."""
    events = [e for v in run(read_topic(settings, topics.AUDIT_EVENTS, start=start)) for e in audit_events_of(v)]
    refused = {
        e.details["version"] - v1.version: e.details["reason"]
        for e in events
        if e.action == AuditAction.POLICY_REFUSED and e.agent_id == AGENT
    }
    assert "needs 2 of the 3 pinned admins' signatures" in refused[2] and "it has 1 (a)" in refused[2]
    assert "a signed twice (counted once)" in refused[3]
    assert "b's signature does not verify over this record's bytes" in refused[4]
    assert "it has 1 (a)" in refused[7]
    updated = [e for e in events if e.action == AuditAction.POLICY_UPDATED and e.agent_id == AGENT]
    assert sorted(e.details["version"] - v1.version for e in updated) == [0, 5, 6]
    assert [e.details["approved_by"] for e in updated][1:] == [["a", "c"], ["a", "c"]]
    enforced = sorted(
        e.details["version"] - v1.version
        for e in events
        if e.action == AuditAction.POLICY_ENFORCED and e.agent_id == AGENT
    )
    assert enforced == [0, 5, 6]  # the signer took neither the lone nor the doubled signatures
    assert any(e.action == AuditAction.APPROVAL_REFUSED and "it has 1 (a)" in e.details["reason"] for e in events)
    (approved,) = [
        e for e in events if e.action == AuditAction.INTENT_HUMAN_APPROVED and e.intent_id == intent.intent_id
    ]
    assert approved.details["approved_by"] == ["a", "b"]
    assert any(
        e.action == AuditAction.ADMINS_REFUSED and "a change to the admin set needs 2" in e.details["reason"]
        for e in events
    )


def test_one_admin_key_cannot_change_a_signing_key_and_two_admins_can(
    quorum: Quorum, run: typing.Callable[..., Any]
) -> None:
    """Key changes need two admins too. The signer takes its keys from warden.vault alone (not from
    the home's file log, which any admin's command writes): a deactivation one admin signed,
    written straight to the topic, is refused with its reason on the ledger; `warden keys
    deactivate` by one admin only proposes; once a second admin signs, the signer applies it."""
    settings, keys = quorum.settings, quorum.keys
    agent_id = "treasury-keys"
    agent = run(provision_agent(settings, agent_id, cosigners=("b",), tx_allowed_chains=("anvil",)))
    start = run(end_offsets(settings, (topics.AUDIT_EVENTS,)))

    async def sign_one() -> Outcome:
        intent = new_intent(agent.intent_key, agent_id=agent_id, chain="anvil", to=DEST, value="0.001")
        begin = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        async with Client(settings) as client:
            await (await client.submit(intent))
        return (await wait_outcomes(settings, [intent], 60, begin, final=False))[intent.intent_id]

    # One admin's deactivation, straight onto warden.vault: refused, and the agent is still signed for.
    (key,) = [k for k in keystore_from_settings(settings).list_keys("admin:a", agent_id=agent_id) if k.active]
    deactivation = SecretDeactivated.new(
        org="default", vault=AGENT_KEYS_VAULT, actor="admin:a", ts=utcnow(), path=key.path, version=key.version
    )
    lone = sign_vault_change(VaultChange.of([(deactivation.key, deactivation.to_bytes())], utcnow()), keys["a"], "a")

    async def forge() -> str:
        async with Client(settings) as client:
            assert client._producer is not None
            meta = await (
                await client._producer.send(
                    topics.VAULT,
                    deactivation.to_bytes(),
                    key=deactivation.key.encode(),
                    headers=vault_change_headers(lone),
                )
            )
        return f"record:{meta.topic}/{meta.partition}/{meta.offset}"

    forged = run(forge())
    _, refused = run(wait_vault_applied(settings, {forged}, start, 60))
    assert "key provisioning and rotation needs 2 of the 3" in refused[forged] and "it has 1 (a)" in refused[forged]
    assert isinstance(run(sign_one()), SignedTransaction)

    # The CLI: a alone proposes; the signer still signs with the key.
    done = warden(_as(settings, "a"), "keys", "deactivate", "--agent", agent_id, "--chain", "ethereum", "--json")
    assert done.returncode == 0, done.stderr
    assert "key change proposed" in done.stderr and "1 of 2" in done.stderr, done.stderr
    (proposal,) = [p for p in _cli(settings, "b", "approvals", "list")["proposals"] if p["action"] == "keys"]
    assert proposal["signed_by"] == ["a"] and proposal["needed"] == 2
    assert "secret.deactivated __agent-keys/" in proposal["what"] and agent_id in proposal["what"]
    assert isinstance(run(sign_one()), SignedTransaction)

    # b signs: published, applied by the signer, and the agent's key is gone.
    signed = _cli(settings, "b", "approvals", "sign", proposal["proposal_id"][:16])
    assert signed["published"] and signed["signed_by"] == ["a", "b"], signed
    assert signed["outcome"] == "1 of 1 key events applied by the signer", signed
    outcome = run(sign_one())
    assert isinstance(outcome, IntentRejected) and outcome.code == Code.SIGNING_KEY_UNAVAILABLE, outcome
    events = [e for v in run(read_topic(settings, topics.AUDIT_EVENTS, start=start)) for e in audit_events_of(v)]
    (applied,) = [e for e in events if e.action == AuditAction.VAULT_EVENT_APPLIED]
    assert applied.details["signed_by"] == ["a", "b"]


def test_one_admin_key_cannot_change_the_chain_registry_and_two_admins_can(
    quorum: Quorum, run: typing.Callable[..., Any]
) -> None:
    """The chain registry is a signed record on warden.chains, taken with the quorum for "chains":
    a chain set a alone signs, written straight to the topic, is refused by both services (an
    intent naming its chain is still refused as naming an unknown one); `warden chains add` by a
    only proposes; b's signature publishes it, both services take it, and the worker reads an
    intent on the new chain. A built-in network's finality changes the same way."""
    from runtime.registry import REGISTRY
    from schemas.auth import sign_chain_set
    from schemas.chain_set import ChainSet
    from schemas.chains import Chain
    from sdk.client import OUTCOME_TOPICS
    from sdk.records import chains_in_force, settled_verdicts

    settings, keys = quorum.settings, quorum.keys
    agent_id = "chains-quorum"
    start = run(end_offsets(settings, (topics.AUDIT_EVENTS,)))
    outcome_start = run(end_offsets(settings, OUTCOME_TOPICS))
    agent = run(provision_agent(settings, agent_id, cosigners=("b",), tx_allowed_chains=()))  # any chain
    two = Chain("anvil-two", 31338, "ETH", "", testnet=True)
    before = REGISTRY.admin_table()

    def on_anvil_two() -> Outcome:
        """The worker's (or, past it, the signer's) word on an intent naming anvil-two."""
        intent = new_intent(agent.intent_key, agent_id=agent_id, chain="anvil-two", to=DEST, value="0.01")

        async def submit() -> None:
            async with Client(settings) as client:
                await (await client.submit(intent))

        run(submit())
        said: Outcome = run(wait_outcomes(settings, [intent], 60, outcome_start, final=False))[intent.intent_id]
        return said

    try:
        REGISTRY.adopt((two,))  # this process writes the intents; what matters is what the services know
        # a alone, straight onto warden.chains: refused, and the worker still knows no anvil-two.
        forged = sign_chain_set(ChainSet(version=1, chains=(two,), issued_at=utcnow()), keys["a"], "a")

        async def forge() -> None:
            async with Client(settings) as client:
                await (await client.send(topics.CHAINS, "chains", forged.to_bytes()))

        run(forge())
        lone = run(settled_verdicts(settings, forged, 60, start))
        assert (
            lone.outcome == AuditAction.CHAINS_REFUSED
            and lone.signer.action == lone.worker.action == AuditAction.CHAINS_REFUSED
        )
        assert "a chain registry change needs 2 of the 3 pinned admins' signatures" in lone.signer.details["reason"]
        assert "it has 1 (a)" in lone.signer.details["reason"]
        unknown = on_anvil_two()
        assert isinstance(unknown, IntentRejected), unknown
        assert (unknown.stage, unknown.code) == (Stage.INTAKE, Code.INVALID_INTENT) and "unknown chain 'anvil-two'" in (
            unknown.reason
        ), unknown

        # The CLI: a proposes, b sees it with a's signature and signs; both services take it.
        proposed = _cli(settings, "a", "chains", "add", "--name", "anvil-two", "--chain-id", "31338", "--testnet")
        assert proposed["published"] is False and proposed["needed"] == 2 and proposed["version"] == 1, proposed
        (open_,) = [p for p in _cli(settings, "b", "approvals", "list")["proposals"] if p["action"] == "chains"]
        assert open_["proposal_id"] == proposed["proposal_id"] and open_["signed_by"] == ["a"]
        assert open_["what"].startswith("chain set v1: anvil-two (31338")
        signed = _cli(settings, "b", "approvals", "sign", proposed["proposal_id"][:16], "--wait", "90")
        assert signed["published"] and signed["signed_by"] == ["a", "b"], signed
        assert signed["outcome"] == AuditAction.CHAINS_CHANGED, signed
        assert "chain set v1 in force: anvil-two (31338" in signed["verdicts"]["signer"]["reason"]
        known = on_anvil_two()
        assert not (isinstance(known, IntentRejected) and known.code == Code.INVALID_INTENT), known
        if isinstance(known, SignedTransaction):  # signed for the new chain's id, whatever the node says of it
            assert (known.chain, known.chain_id) == ("anvil-two", 31338), known

        # The built-in anvil's finality, through the same quorum: a proposes, c signs.
        change = _cli(settings, "a", "chains", "finality", "--name", "anvil", "--confirmations", "3")
        assert change["published"] is False and change["version"] == 2, change
        done = _cli(settings, "c", "approvals", "sign", change["proposal_id"][:16], "--wait", "90")
        assert done["outcome"] == AuditAction.CHAINS_CHANGED and done["signed_by"] == ["a", "c"], done
        listed = _cli(settings, "b", "chains", "list")
        assert listed["version"] == 2 and listed["signed_by"] == ["a", "c"] and listed["read_from_broker"]
        in_force = {c["name"]: c for c in listed["chains"]}
        assert in_force["anvil"]["confirmations"] == 3 and in_force["anvil"]["chain_id"] == 31337
        assert (in_force["anvil-two"]["family"], in_force["anvil-two"]["caip2"]) == ("evm", "eip155:31338")
        assert in_force["anvil-two"]["chain_id"] == 31338  # v2 is v1's table with anvil's finality changed
        assert run(chains_in_force(settings)).version == 2
    finally:
        REGISTRY.adopt(before)

    # What the signer recorded, on the ledger's topic: the lone one refused, both quorum ones taken.
    events = [e for v in run(read_topic(settings, topics.AUDIT_EVENTS, start=start)) for e in audit_events_of(v)]
    by_signer = [
        (e.action, e.details["reason"][:12])
        for e in events
        if e.action.startswith("chains.") and "signer_id" in e.details
    ]
    assert by_signer == [
        (AuditAction.CHAINS_REFUSED, "chain set v1"),
        (AuditAction.CHAINS_CHANGED, "chain set v1"),
        (AuditAction.CHAINS_CHANGED, "chain set v2"),
    ]


def _at_a_terminal(settings: Settings, *args: str) -> tuple[int, str]:
    """`warden ARGS` with its stdin and stdout on a pseudo-terminal, as a person runs it: its exit
    code, and what it wrote on either."""
    import os
    import subprocess
    import sys
    import threading

    from infra.stack.local import REPO
    from runtime.config import child_environment

    master, slave = os.openpty()
    env = child_environment(settings) | {"PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", *args], env=env, cwd=str(REPO), stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    out = bytearray()

    def drain() -> None:  # a full terminal buffer would stop the child
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child is gone and its side closed
                return
            if not chunk:
                return
            out.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    code = child.wait(timeout=120)
    reader.join(timeout=10)
    os.close(master)
    return code, out.decode(errors="replace")


def test_an_admin_is_shown_a_swapped_key_before_signing_and_signs_only_what_was_shown(
    quorum: Quorum, run: typing.Callable[..., Any]
) -> None:
    """A key swap shown for what it is: the rogue admin a proposes an admin set in which b's id holds a's own
    second key (and a policy threshold of 1). The honest admin b lists and shows it: the change
    names b's key fingerprint, old and new, as a changed key, and every threshold. b, who reviewed
    another proposal (the set unchanged), signs with that one's digest: refused, nothing signed.
    At a terminal, `sign` without a digest shows the change and signs nothing."""
    from schemas.admins import key_fingerprint

    settings, keys = quorum.settings, quorum.keys
    second = Ed25519PrivateKey.generate()  # the rogue's own second key
    public = {name: public_key_hex(key) for name, key in keys.items()}
    honest = _cli(
        settings, "a", "admins", "propose", "--admins", ",".join(f"{n}={public[n]}" for n in "abc"), "--quorum", "2"
    )
    rogue_set = f"a={public['a']},b={public_key_hex(second)},c={public['c']}"
    quorum_ = "policy=1,approval=2,keys=2,chains=2,admins=2"
    rogue = _cli(settings, "a", "admins", "propose", "--admins", rogue_set, "--quorum", quorum_)
    assert not rogue["published"] and rogue["needed"] == 2 and rogue["own_signatures_missing"] == ["b"]

    # What b is shown: b's key, old and new, and every threshold, in the listing and in `show`.
    listed = {p["proposal_id"]: p for p in _cli(settings, "b", "approvals", "list")["proposals"]}
    shown = _cli(settings, "b", "approvals", "show", rogue["proposal_id"][:16])
    assert listed[rogue["proposal_id"]] == shown
    assert shown["digest"] == rogue["proposal_id"] and shown["proposed_by"] == "a" and shown["signed_by"] == ["a"]
    change = shown["change"]
    assert change["kind"] == "admins" and change["version"] == {"old": 0, "new": 1}
    rows = {row["admin_id"]: row for row in change["admins"]}
    assert [rows[n]["change"] for n in "abc"] == ["unchanged", "key_changed", "unchanged"]
    old_b, new_b = key_fingerprint(public["b"]), key_fingerprint(public_key_hex(second))
    assert (rows["b"]["old_key"]["fingerprint"], rows["b"]["new_key"]["fingerprint"]) == (old_b, new_b)
    assert rows["b"]["new_key"]["public_key"] == public_key_hex(second)
    assert rows["b"]["own_signature"] is False and shown["own_signatures_missing"] == ["b"]
    thresholds = {row["action"]: (row["change"], row["old"], row["new"]) for row in change["thresholds"]}
    assert thresholds == {
        "policy": ("changed", 2, 1),
        **dict.fromkeys(("approval", "keys", "chains", "admins"), ("unchanged", 2, 2)),
    }
    assert {row["change"] for row in listed[honest["proposal_id"]]["change"]["admins"]} == {"unchanged"}
    people = warden(_as(settings, "b"), "approvals", "show", rogue["proposal_id"][:16])
    assert people.returncode == 0, people.stderr
    assert f"{old_b} -> {new_b}  KEY CHANGED" in people.stdout and f"digest {rogue['proposal_id']}" in people.stdout
    assert "needs b's own signature, with the key in force" in people.stdout
    assert "policy    2 -> 1  changed" in people.stdout

    # b reviewed the honest proposal; handed the rogue one's id, b signs with the digest b saw: refused.
    stale = warden(
        _as(settings, "b"),
        "approvals",
        "sign",
        rogue["proposal_id"][:16],
        "--digest",
        listed[honest["proposal_id"]]["digest"],
        "--json",
    )
    assert stale.returncode != 0 and "is not what you were shown" in stale.stderr, stale.stderr
    assert "nothing was signed" in stale.stderr
    # At a terminal, no digest: the change is shown, nothing signed.
    code, said = _at_a_terminal(_as(settings, "b"), "approvals", "sign", rogue["proposal_id"][:16])
    assert code == 2 and "KEY CHANGED" in said and f"--digest {rogue['proposal_id']}" in said, said
    after = {p["proposal_id"]: p for p in _cli(settings, "c", "approvals", "list")["proposals"]}
    assert after[rogue["proposal_id"]]["signed_by"] == ["a"]
    # c, inattentive, signs it anyway: two of two, but b's key changes and b has not signed, so
    # nothing is published.
    careless = _cli(settings, "c", "approvals", "sign", rogue["proposal_id"][:16], "--digest", rogue["proposal_id"])
    assert careless["signed_by"] == ["a", "c"] and careless["own_signatures_missing"] == ["b"], careless
    assert not careless["published"] and careless["outcome"] is None
    assert _cli(settings, "c", "admins", "show")["version"] == 0


def test_a_rogue_admin_and_one_cosigner_cannot_swap_a_third_admins_key(
    quorum: Quorum, run: typing.Callable[..., Any]
) -> None:
    """An admin's key changes only with that admin's own signature: the rogue admin a and the
    co-signer b pin a key a holds under c's id, straight
    onto warden.admins: the signer and the streams worker each refuse it (c did not sign with
    the key in force), on the ledger, and the set in force stays. The same change with c's own
    signature is taken by both. c's new key is the fixture's from here on."""
    from sdk.records import SettledVerdicts, admins_in_force, settled_verdicts

    settings, keys = quorum.settings, quorum.keys
    before = run(admins_in_force(settings))
    new_c = Ed25519PrivateKey.generate()
    pinned = {**before.keys, "c": public_key_hex(new_c)}
    swap = AdminSet(version=before.version + 1, admins=pinned, thresholds=before.thresholds, issued_at=utcnow())
    rogue = cosign(sign_admin_set(swap, keys["a"], "a"), keys["b"], "b")

    def published(record: AdminSet) -> SettledVerdicts:
        async def publish() -> SettledVerdicts:
            start = await end_offsets(settings, (topics.AUDIT_EVENTS,))
            async with Client(settings) as client:
                await (await client.send(topics.ADMINS, "admins", record.to_bytes()))
            return await settled_verdicts(settings, record, 60, start)

        verdicts: SettledVerdicts = run(publish())
        return verdicts

    refused = published(rogue)
    assert refused.outcome == AuditAction.ADMINS_REFUSED, refused.as_dict()
    for said in refused.as_dict().values():
        assert said is not None and said["action"] == AuditAction.ADMINS_REFUSED, refused.as_dict()
        assert "changes the key of c" in said["reason"] and "it is missing for c" in said["reason"], said
    assert run(admins_in_force(settings)).keys == before.keys

    taken = published(cosign(rogue, keys["c"], "c"))
    assert taken.outcome == AuditAction.ADMINS_CHANGED, taken.as_dict()
    after = run(admins_in_force(settings))
    assert after.version == before.version + 1 and after.key("c") == public_key_hex(new_c)
    keys["c"] = new_c


@pytest.fixture
def own_quorum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quorum]:
    """A stack of the test's own, admins a, b and c pinned, two needed: no agent and no
    signing-key vault yet (`three_admins`)."""
    with three_admins(tmp_path_factory.mktemp("own-quorum-home")) as made:
        yield made


def test_a_key_change_built_on_a_vault_still_proposed_is_refused_by_the_cli_and_the_signer(
    own_quorum: Quorum, run: typing.Callable[..., Any]
) -> None:
    """A change built on a proposal not yet in force: a proposes the shared signer key (its change
    creates the signing-key vault), then an agent's key is built over a's file log, which holds
    that vault already, and approved. Applied without the vault, the key would fail the agent's
    next intent inside custody (SIGNER_ERROR). The CLI builds no change on the proposed vault;
    a change built anyway (the SDK, over the same file log) is refused by the signer, with why on
    the ledger; and the agent's intent is refused for want of a key. Once b approves the vault,
    a's key command proposes as usual."""
    from runtime.rpc import JsonRpc
    from sdk.client import load_or_create_agent_key, signed_policy
    from sdk.quorum import publish_custody_change
    from signer.custody_wiring import AuditOutbox, VaultOutbox

    settings, keys = own_quorum.settings, own_quorum.keys
    agent_id = "treasury-no-vault"
    proposed = warden(_as(settings, "a"), "keys", "provision-signer", "--chain", "ethereum", "--json")
    assert proposed.returncode == 0 and "key change proposed" in proposed.stderr, proposed.stderr
    (creation,) = [p for p in _cli(settings, "b", "approvals", "list")["proposals"] if p["action"] == "keys"]

    # The CLI: nothing built on a vault whose creation waits for a second admin.
    built = warden(_as(settings, "a"), "keys", "provision", "--agent", agent_id, "--chain", "ethereum")
    assert built.returncode == 1, built.stderr
    assert "is created in this home's file log" in built.stderr and "waits in a proposal" in built.stderr
    assert len([p for p in _cli(settings, "b", "approvals", "list")["proposals"] if p["action"] == "keys"]) == 1

    # A change built anyway over the same file log, signed by a and b: the signer refuses it.
    custody_audit, vault_events = AuditOutbox(), VaultOutbox()
    store = keystore_from_settings(settings, audit=custody_audit, vault_outbox=vault_events)
    key = store.provision(agent_id, "ethereum", actor="admin:a")
    change = run(publish_custody_change(settings, vault_events.drain() + custody_audit.drain(), utcnow(), ("b",)))
    assert change.published and change.signed_by == ["a", "b"] and not change.applied, change
    assert change.refused and all(
        "was never created here" in why and "its creation may still be a proposal" in why
        for why in change.refused.values()
    ), change.refused

    # The agent's intent: refused for want of a key it could sign with, never a custody assert.
    intent_key = load_or_create_agent_key(settings.home, agent_id)
    policy = cosign(
        signed_policy(
            settings,
            agent_id=agent_id,
            version=1,
            tx_allowed_chains=("anvil",),
            agent_public_key=public_key_hex(intent_key),
            sender_address=key.address,
        ),
        keys["b"],
        "b",
    )

    async def fund_and_submit() -> Outcome:
        node = JsonRpc(settings.rpc_url_for("anvil"))
        try:
            await node.call("anvil_setBalance", key.address, hex(10**18))
        finally:
            await node.close()
        async with Client(settings) as client:
            assert await client.publish_policy(policy) == AuditAction.POLICY_UPDATED
        intent = new_intent(intent_key, agent_id=agent_id, chain="anvil", to=DEST, value="0.001")
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        async with Client(settings) as client:
            await (await client.submit(intent))
        return (await wait_outcomes(settings, [intent], 90, start, final=False))[intent.intent_id]

    outcome = run(fund_and_submit())
    assert isinstance(outcome, IntentRejected) and outcome.code == Code.SIGNING_KEY_UNAVAILABLE, outcome

    # b approves the vault's creation: the signer holds it, and a's key command proposes again.
    signed = _cli(settings, "b", "approvals", "sign", creation["proposal_id"][:16])
    assert signed["published"] and signed["signed_by"] == ["a", "b"], signed
    again = warden(_as(settings, "a"), "keys", "provision", "--agent", "treasury-after", "--chain", "ethereum")
    assert again.returncode == 0 and "key change proposed" in again.stderr, again.stderr


def test_after_an_admin_is_removed_clients_read_the_policy_the_worker_holds(
    quorum: Quorum, run: typing.Callable[..., Any]
) -> None:
    """The policy in force is the one the worker holds: policy v2 is signed by a and c; then the
    quorum removes c. The worker holds v2 (it took it under the set in force then); a client that
    judged every policy under today's set would show v1, and `agents update` build a "v2" the
    worker refuses as not newer. Clients read the policy the worker holds, and update builds v3. A policy c signs after its
    removal (with a) is one the worker refuses: clients do not take it for the one in force.

    On the module's stack, after every test that needs a, b and c in force."""
    from schemas.policy import AgentPolicy

    settings, keys = quorum.settings, quorum.keys
    agent = "treasury-admins-changed"
    fields = dict(
        agent_id=agent,
        agent_public_key=public_key_hex(Ed25519PrivateKey.generate()),
        tx_allowed_chains=("anvil",),
        tx_to_allowlist=(DEST,),
    )

    def published(version: int, *signers: str, **more: Any) -> str | None:
        first, *others = signers
        policy = sign_policy(AgentPolicy(version=version, issued_at=utcnow(), **fields, **more), keys[first], first)
        for name in others:
            policy = cosign(policy, keys[name], name)

        async def publish() -> str | None:
            async with Client(settings) as client:
                return await client.publish_policy(policy)

        verdict: str | None = run(publish())
        return verdict

    assert published(1, "a", "b", tx_max_value_eth="1") == AuditAction.POLICY_UPDATED
    assert published(2, "a", "c", tx_max_value_eth="2") == AuditAction.POLICY_UPDATED
    # The quorum removes c: a proposes, b signs.
    ab = f"a={public_key_hex(keys['a'])},b={public_key_hex(keys['b'])}"
    proposal = _cli(settings, "a", "admins", "propose", "--admins", ab, "--quorum", "2")
    removed = _cli(settings, "b", "approvals", "sign", proposal["proposal_id"][:16])
    assert removed["published"] and removed["outcome"] == AuditAction.ADMINS_CHANGED, removed
    assert _cli(settings, "a", "admins", "show")["version"] == proposal["version"]

    shown = _cli(settings, "a", "agents", "show", "--agent", agent)
    assert (shown["version"], shown["tx_max_value_eth"]) == (2, "2"), shown
    change = _cli(settings, "a", "agents", "update", "--agent", agent, "--daily-limit", "5")
    done = _cli(settings, "b", "approvals", "sign", change["proposal_id"][:16])
    assert done["published"] and done["outcome"] == AuditAction.POLICY_UPDATED, done
    shown = _cli(settings, "b", "agents", "show", "--agent", agent)
    assert (shown["version"], shown["tx_max_value_eth"], shown["tx_daily_limit_eth"]) == (3, "2", "5"), shown

    # c, removed, signs v4 with a: the worker judges it under the set in force and refuses it.
    assert published(4, "a", "c", tx_max_value_eth="1000") == AuditAction.POLICY_REFUSED
    shown = _cli(settings, "b", "agents", "show", "--agent", agent)
    assert (shown["version"], shown["tx_max_value_eth"]) == (3, "2"), shown


def test_an_approval_that_needs_three_admins_a_passkey_among_them(
    quorum: Quorum, run: typing.Callable[..., Any]
) -> None:
    """The quorum for approvals raised to three and a passkey admin p added (a software passkey,
    its assertions made as the console's page makes them; the module's last test: the admin set
    changes). a proposes the approval of a parked
    intent with the CLI; b reads it in `warden approvals list` and `show`; p cosigns it through the
    console's relay; two of three publish nothing; b's signature completes it, and the worker and
    the signer, each checking the three signatures, have it mined."""
    from gateway.console.decisions import shown_text
    from gateway.console.relay import relay_cosignature
    from sdk.pending import open_decisions
    from sdk.records import admins_in_force
    from tests.passkey_support import PARTY, SoftPasskey

    settings, passkey = quorum.settings, SoftPasskey()
    agent = run(
        provision_agent(
            settings, "treasury-three", cosigners=("b",), tx_allowed_chains=("anvil",), approval_threshold_eth="1"
        )
    )
    pairs = ",".join(f"{n}={k}" for n, k in {**run(admins_in_force(settings)).keys, "p": passkey.pinned()}.items())
    # Under the set in force (two sign an admin set); the new set's own threshold is at least every other's.
    three = "policy=2,approval=3,keys=2,chains=2,admins=3"
    proposal = _cli(settings, "a", "admins", "propose", "--admins", pairs, "--quorum", three)
    added = _cli(settings, "b", "approvals", "sign", proposal["proposal_id"][:16], "--wait", "60")
    assert added["published"] and added["outcome"] == AuditAction.ADMINS_CHANGED, added

    intent = new_intent(agent.intent_key, agent_id=agent.agent_id, chain="anvil", to=DEST, value="2", broadcast=True)
    start = run(end_offsets(settings, (topics.INTENTS_AWAITING_APPROVAL, topics.TXS_SIGNED)))
    run(_submit(settings, intent))
    parked = run(wait_outcomes(settings, [intent], 60, start, final=False))[intent.intent_id]
    assert type(parked).__name__ == "IntentParked", parked
    proposed = _cli(settings, "a", "approvals", "approve", intent.intent_id)
    assert proposed["needed"] == 3 and proposed["signed_by"] == ["a"], proposed

    async def passkey_cosigns() -> str:
        _, proposals, _ = await open_decisions(settings, utcnow())
        (gathered,) = [g for g in proposals if g.proposal_id == proposed["proposal_id"]]
        message = gathered.record.signing_bytes()
        done = await relay_cosignature(
            settings, gathered.proposal_id, shown_text(message), passkey.sign(message), "p", PARTY
        )
        return done.what

    assert run(passkey_cosigns()) == "signature relayed: waiting for more admins"
    _people_read_the_approval(settings, "b", proposed["proposal_id"], intent, "2 of 3 signatures (a, p)")
    # A proposal's id is the digest of the bytes its admins sign.
    digest = proposed["proposal_id"]
    signed = _cli(settings, "b", "approvals", "sign", digest[:16], "--digest", digest, "--wait", "90")
    assert signed["published"] and sorted(signed["signed_by"]) == ["a", "b", "p"], signed
    mined = run(wait_outcomes(settings, [intent], 120, start, final=True))[intent.intent_id]
    assert isinstance(mined, SignedTransaction) and mined.status == "mined", mined


async def _submit(settings: Settings, intent: TransactionIntent) -> None:
    async with Client(settings) as client:
        await (await client.submit(intent))
