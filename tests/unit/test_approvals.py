"""Human approval above a threshold, in the engine (no broker): an intent above the policy's
approval_threshold_eth or an asset's approval_threshold is parked with its spend reserved, and
only an admin's decision signed with a pinned key ends the wait (approved, with the decision for
the signer to check, or APPROVAL_DENIED); otherwise it expires as APPROVAL_EXPIRED. Each
attacker's route (a forged or re-pointed decision, a late one, a second one) has a test."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.admins import Admins
from runtime.clock import to_us
from schemas import topics
from schemas.actions import AuditAction
from schemas.admins import AdminSet
from schemas.auth import sign_human_approval
from schemas.codes import Code
from schemas.emit import Emit
from schemas.intent import TransactionIntent
from schemas.outcomes import DeadLetter, HumanApproval, IntentApproved, IntentParked
from schemas.stages import Stage
from streams.decision import Decision
from tests.engine_support import ADMIN_ID, AGENT, DEST, T0, World, actions, on, rejected_of

TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ETH = 10**18
NO_ADMINS = Admins({}, {})  # what a change other than an admin set's is shown against: it reads no admin


@pytest.fixture
def world() -> World:
    w = World()
    w.publish(
        w.policy(
            approval_threshold_eth="0.4",
            approval_timeout_s=600,
            tx_to_allowlist=(DEST, TOKEN),
            asset_limits=({"chain": "anvil", "token": TOKEN, "decimals": 6, "approval_threshold": "10"},),
        )
    )
    return w


def decide(
    world: World,
    intent: TransactionIntent,
    decision: str = "approve",
    key: Ed25519PrivateKey | None = None,
    key_id: str = ADMIN_ID,
    at: datetime = T0 + timedelta(minutes=1),
    **fields: Any,
) -> bytes:
    approval = HumanApproval(
        **{
            "intent_id": intent.intent_id,
            "agent_id": AGENT,
            "intent_digest": intent.digest(),
            "decision": decision,
            "decided_at": at,
            **fields,
        }
    )
    return sign_human_approval(approval, key or world.admin_key, key_id).to_bytes()


def send(world: World, raw: bytes, at: datetime = T0 + timedelta(minutes=1)) -> list[Emit]:
    return world.engine.on_human_approval(raw, world.source(topics.APPROVALS), at)


def parked_of(emits: list[Emit]) -> IntentParked:
    (emit,) = on(emits, topics.INTENTS_AWAITING_APPROVAL)
    return IntentParked.from_bytes(emit.value)


def test_below_the_threshold_nothing_waits(world: World) -> None:
    intent = world.intent("0.4")
    assert on(world.submit(intent), topics.INTENTS_APPROVED)


def test_above_the_threshold_the_intent_is_parked_with_its_spend_reserved(world: World) -> None:
    intent = world.intent("0.5")
    emits = world.submit(intent)
    parked = parked_of(emits)
    assert on(emits, topics.INTENTS_APPROVED) == [] and on(emits, topics.INTENTS_REJECTED) == []
    assert (parked.status, parked.intent, parked.expires_at) == (
        "awaiting_approval",
        intent,
        T0 + timedelta(minutes=10),
    )
    assert "above the approval threshold of 0.4" in parked.reason
    assert AuditAction.INTENT_PARKED in actions(emits)
    assert world.spent() == 5 * ETH // 10  # two parked intents can never both pass the limit
    # A redelivery gets the same parked record, not a second decision.
    assert world.submit(intent) == on(emits, topics.INTENTS_AWAITING_APPROVAL)


def test_an_admins_approval_releases_it_to_the_signer_with_the_decision(world: World) -> None:
    intent = world.intent("0.5", broadcast=True)  # a sign-only one's later denial is its cancellation: below
    world.submit(intent)
    emits = send(world, decide(world, intent, reason="invoice 42"))
    (emit,) = on(emits, topics.INTENTS_APPROVED)
    approved = IntentApproved.from_bytes(emit.value)
    assert approved.human_approval is not None
    assert approved.intent == intent and approved.human_approval.reason == "invoice 42"
    assert approved.human_approval.admin_key_id == ADMIN_ID
    assert AuditAction.INTENT_HUMAN_APPROVED in actions(emits)
    assert world.spent() == 5 * ETH // 10  # still reserved: it is on its way to be signed
    # The same decision again (or a second one) changes nothing: the intent is no longer waiting.
    again = send(world, decide(world, intent, "deny"))
    assert actions(again) == [AuditAction.APPROVAL_REFUSED] and on(again, topics.INTENTS_REJECTED) == []


def test_a_denial_of_an_approved_sign_only_intent_is_left_to_the_signer(world: World) -> None:
    intent = world.intent("0.5")
    world.submit(intent)
    send(world, decide(world, intent))
    # Its cancellation: the signer takes the nonce, and its record moves the reservation here.
    assert send(world, decide(world, intent, "deny")) == []
    assert world.spent() == 5 * ETH // 10


def test_a_denial_rejects_it_and_releases_the_reservation(world: World) -> None:
    intent = world.intent("0.5")
    world.submit(intent)
    rejected = rejected_of(send(world, decide(world, intent, "deny", reason="not this vendor")))
    assert (rejected.stage, rejected.code) == (Stage.APPROVAL, Code.APPROVAL_DENIED)
    assert "not this vendor" in rejected.reason
    assert world.spent() == 0


@pytest.mark.parametrize("forge", ["other-key", "unpinned-id", "other-digest", "tampered", "unsigned"])
def test_a_decision_not_from_a_pinned_admin_about_this_intent_changes_nothing(world: World, forge: str) -> None:
    intent = world.intent("0.5")
    world.submit(intent)
    if forge == "other-key":
        raw = decide(world, intent, key=Ed25519PrivateKey.generate())
    elif forge == "unpinned-id":
        raw = decide(world, intent, key_id="someone")
    elif forge == "other-digest":
        raw = decide(world, intent, intent_digest="ab" * 32)
    elif forge == "tampered":
        signed = HumanApproval.from_bytes(decide(world, intent, "deny"))
        raw = signed.model_copy(update={"decision": "approve"}).to_bytes()
    else:
        raw = HumanApproval(
            intent_id=intent.intent_id, agent_id=AGENT, intent_digest=intent.digest(), decision="approve", decided_at=T0
        ).to_bytes()
    emits = send(world, raw)
    assert actions(emits) == [AuditAction.APPROVAL_REFUSED]
    assert on(emits, topics.INTENTS_APPROVED) == [] and on(emits, topics.INTENTS_REJECTED) == []
    assert world.engine.decisions[intent.intent_id].outcome == "parked"
    # The real admin's decision still works afterwards.
    assert on(send(world, decide(world, intent)), topics.INTENTS_APPROVED)


def test_an_unanswered_intent_expires_and_a_late_approval_is_refused(world: World) -> None:
    intent = world.intent("0.5")
    world.submit(intent)
    assert world.engine.expire_parked(T0 + timedelta(minutes=9, seconds=59)) == []
    emits = world.engine.expire_parked(T0 + timedelta(minutes=10))
    rejected = rejected_of(emits)
    assert (rejected.stage, rejected.code) == (Stage.APPROVAL, Code.APPROVAL_EXPIRED)
    assert world.spent(T0 + timedelta(minutes=10)) == 0
    assert world.engine.expire_parked(T0 + timedelta(minutes=11)) == []  # once
    late = send(world, decide(world, intent), at=T0 + timedelta(minutes=11))
    assert actions(late) == [AuditAction.APPROVAL_REFUSED] and on(late, topics.INTENTS_APPROVED) == []


def test_an_approval_arriving_after_the_wait_expires_it_instead(world: World) -> None:
    intent = world.intent("0.5")
    world.submit(intent)
    emits = send(world, decide(world, intent, at=T0 + timedelta(minutes=10)), at=T0 + timedelta(minutes=10))
    assert rejected_of(emits).code == Code.APPROVAL_EXPIRED and on(emits, topics.INTENTS_APPROVED) == []


def test_a_token_amount_above_its_assets_threshold_waits_too(world: World) -> None:
    data = "0xa9059cbb" + DEST[2:].lower().rjust(64, "0") + f"{10 * 10**6 + 1:064x}"
    parked = parked_of(world.submit(world.intent("0", to=TOKEN, data=data, gas_limit=60_000)))
    assert "above" in parked.reason and "approval threshold of 10" in parked.reason


def test_parked_intents_survive_a_restart(world: World) -> None:
    intent = world.intent("0.5")
    world.submit(intent)
    restarted = world.new_engine(dict(world.engine.policies), dict(world.engine.decisions.stored))
    restarted.rebuild()
    assert restarted.windows.of(AGENT).spent(int(T0.timestamp() * 10**6)) == 5 * ETH // 10
    world.engine = restarted
    assert rejected_of(world.engine.expire_parked(T0 + timedelta(minutes=10))).code == Code.APPROVAL_EXPIRED


def test_an_idempotent_retry_of_a_parked_intent_points_at_it(world: World) -> None:
    first = world.intent("0.5", idempotency_key="pay-7")
    world.submit(first)
    retry = world.intent("0.5", idempotency_key="pay-7", intent_id="retry-of-pay-7")
    rejected = rejected_of(world.submit(retry))
    assert rejected.code == Code.IDEMPOTENT_ORIGINAL_AWAITING_APPROVAL and first.intent_id in rejected.reason
    pending = world.engine.decisions[first.intent_id].pending
    assert pending is not None
    assert IntentApproved.from_bytes(pending).intent == first


def test_a_deadline_record_expires_only_what_is_due(world: World) -> None:
    import orjson

    intent = world.intent("0.5")
    world.submit(intent)
    assert world.engine.due_parked(T0 + timedelta(minutes=9)) == []
    reminder = orjson.dumps({"intent_id": intent.intent_id})
    where = world.source(topics.APPROVAL_DEADLINES)
    # Anyone can write a reminder: an early one changes nothing; junk is dead-lettered, and changes nothing.
    assert world.engine.on_deadline(reminder, where, T0 + timedelta(minutes=9)) == []
    for junk in (b"{", orjson.dumps({"intent_id": 7}), orjson.dumps([intent.intent_id]), None):
        emits = world.engine.on_deadline(junk, where, T0 + timedelta(minutes=11))
        assert [e.topic for e in emits] == [topics.DLQ, topics.AUDIT_EVENTS], junk
        assert "not a deadline reminder" in DeadLetter.from_bytes(emits[0].value).reason
    assert world.engine.decisions[intent.intent_id].outcome == "parked"
    assert world.engine.due_parked(T0 + timedelta(minutes=10)) == [(AGENT, intent.intent_id)]
    assert (
        rejected_of(world.engine.on_deadline(reminder, where, T0 + timedelta(minutes=10))).code == Code.APPROVAL_EXPIRED
    )
    assert world.engine.on_deadline(reminder, where, T0 + timedelta(minutes=10)) == []


def test_a_worker_restarts_on_decisions_as_the_untyped_engine_stored_them(world: World) -> None:
    """The decisions table's changelog holds what earlier workers wrote: JSON objects with the keys,
    decimal strings and base64 below, a rejection without ``assets`` and ``counts``. A worker
    restarted on them reads each as a typed decision, rebuilds its windows and parked intents,
    replays their outcomes and ends a parked intent's wait; and it still writes that form."""
    small, big, refused, released = world.intent("0.1"), world.intent("0.5"), world.intent("2"), world.intent("0.2")
    data = "0xa9059cbb" + DEST[2:].lower().rjust(64, "0") + f"{5 * 10**6:064x}"
    token = world.intent("0", to=TOKEN, data=data, gas_limit=60_000)
    for intent in (small, big, refused, released, token):
        world.submit(intent)
    world.engine.on_rejected(world.refusal(released), T0)
    record = {
        i.intent_id: base64.b64encode(world.engine.decisions[i.intent_id].record).decode()
        for i in (small, big, refused, released, token)
    }
    big_pending = world.engine.decisions[big.intent_id].pending
    assert big_pending is not None
    pending = base64.b64encode(big_pending).decode()
    at_us = to_us(T0)

    def approved(
        intent: TransactionIntent, spend_wei: str, assets: dict[str, Any], outcome: str = "approved"
    ) -> dict[str, Any]:
        return {
            "agent_id": AGENT,
            "outcome": outcome,
            "at_us": at_us,
            "spend_wei": spend_wei,
            "assets": assets,
            "counts": True,
            "topic": topics.INTENTS_APPROVED,
            "record": record[intent.intent_id],
            "digest": intent.digest(),
        }

    stored_before = {
        small.intent_id: approved(small, str(ETH // 10), {}),
        token.intent_id: approved(token, "0", {f"anvil:{TOKEN}": str(5 * 10**6)}),
        released.intent_id: approved(released, str(2 * ETH // 10), {}, outcome="released"),
        big.intent_id: {
            "agent_id": AGENT,
            "outcome": "parked",
            "at_us": at_us,
            "spend_wei": str(5 * ETH // 10),
            "assets": {},
            "counts": True,
            "topic": topics.INTENTS_AWAITING_APPROVAL,
            "record": record[big.intent_id],
            "digest": big.digest(),
            "expires_us": at_us + 600 * 10**6,
            "pending": pending,
        },
        refused.intent_id: {
            "agent_id": AGENT,
            "outcome": "rejected",
            "at_us": at_us,
            "spend_wei": "0",
            "topic": topics.INTENTS_REJECTED,
            "record": record[refused.intent_id],
            "digest": refused.digest(),
        },
    }
    # Written the same way now (a rejection also says it holds nothing: no assets, and counts).
    for intent_id, before in stored_before.items():
        assert before.items() <= world.engine.decisions.stored[intent_id].items(), intent_id
    with pytest.raises(ValueError, match="outcome"):
        Decision.from_stored({**stored_before[small.intent_id], "outcome": "maybe"})

    # As the worker's table hands them back after a restore: JSON, not the same objects.
    restarted = world.new_engine(dict(world.engine.policies), orjson.loads(orjson.dumps(stored_before)))
    restarted.rebuild()
    world.engine = restarted
    assert world.spent() == 6 * ETH // 10  # small and big: the released and the rejected hold nothing
    assert restarted.windows.of(AGENT, f"anvil:{TOKEN}").spent(at_us) == 5 * 10**6
    assert restarted.decisions[big.intent_id] == Decision(
        agent_id=AGENT,
        outcome="parked",
        at_us=at_us,
        topic=topics.INTENTS_AWAITING_APPROVAL,
        record=base64.b64decode(record[big.intent_id]),
        digest=big.digest(),
        spend_wei=5 * ETH // 10,
        assets={},
        expires_us=at_us + 600 * 10**6,
        pending=base64.b64decode(pending),
    )
    for intent, topic in ((small, topics.INTENTS_APPROVED), (refused, topics.INTENTS_REJECTED)):
        (again,) = world.submit(intent)
        assert (again.topic, again.value) == (topic, base64.b64decode(record[intent.intent_id]))
    assert world.engine.due_parked(T0 + timedelta(minutes=10)) == [(AGENT, big.intent_id)]
    assert on(send(world, decide(world, big)), topics.INTENTS_APPROVED)
    assert world.engine.decisions[big.intent_id].outcome == "approved"
    world.engine.on_rejected(world.refusal(small), T0)
    assert world.engine.decisions[small.intent_id].outcome == "released"
    assert world.spent() == 5 * ETH // 10


# What an admin is shown before they sign a proposal (`sdk.changes`, `warden approvals list|show`).


def _admin_keys(*names: str) -> dict[str, Ed25519PrivateKey]:
    return {name: Ed25519PrivateKey.generate() for name in names}


def _admins_in_force(keys: dict[str, Ed25519PrivateKey], m: int = 2) -> Admins:
    from schemas.auth import public_key_hex

    return Admins.with_threshold({name: public_key_hex(k) for name, k in keys.items()}, m)


def _swap_proposal(keys: dict[str, Ed25519PrivateKey], rogue_second: Ed25519PrivateKey, **thresholds: Any) -> AdminSet:
    """Case 4: the rogue ``a`` proposes a set in which ``b``'s key is its own second key."""
    from schemas.admins import ACTIONS
    from schemas.auth import public_key_hex, sign_admin_set

    admins = {"a": public_key_hex(keys["a"]), "b": public_key_hex(rogue_second), "c": public_key_hex(keys["c"])}
    proposed = AdminSet(version=1, admins=admins, thresholds={**dict.fromkeys(ACTIONS, 2), **thresholds}, issued_at=T0)
    return sign_admin_set(proposed, keys["a"], "a")


def test_an_admin_set_that_swaps_one_admins_key_shows_that_key_old_and_new() -> None:
    from schemas.admins import key_fingerprint
    from schemas.auth import public_key_hex
    from sdk.changes import InForce, change_of

    keys, second = _admin_keys("a", "b", "c"), Ed25519PrivateKey.generate()
    in_force = _admins_in_force(keys)
    change = change_of(_swap_proposal(keys, second, policy=1), InForce(in_force))
    assert change["kind"] == "admins" and change["version"] == {"old": 0, "new": 1}
    rows = {row["admin_id"]: row for row in change["admins"]}
    assert [rows[n]["change"] for n in "abc"] == ["unchanged", "key_changed", "unchanged"]
    b = rows["b"]
    assert b["old_key"] == {
        "fingerprint": key_fingerprint(public_key_hex(keys["b"])),
        "public_key": public_key_hex(keys["b"]),
    }
    assert b["new_key"]["fingerprint"] == key_fingerprint(public_key_hex(second)) != b["old_key"]["fingerprint"]
    assert len(b["new_key"]["fingerprint"]) == 16
    # Whether b signed it with the key in force: what the services take the change with.
    assert b["own_signature"] is False and "own_signature" not in rows["a"]
    signed_by_b = change_of(_swap_proposal(keys, second, policy=1), InForce(in_force), ["a", "b"])
    assert {row["admin_id"]: row for row in signed_by_b["admins"]}["b"]["own_signature"] is True
    thresholds = {row["action"]: row for row in change["thresholds"]}
    assert thresholds["policy"] == {"action": "policy", "change": "changed", "old": 2, "new": 1}
    assert {a for a, row in thresholds.items() if row["change"] == "unchanged"} == {
        "approval",
        "keys",
        "chains",
        "admins",
    }

    # An admin added, one removed, and an admin in force whose key moves to another id.
    from schemas.admins import ACTIONS

    moved = AdminSet(
        version=1,
        admins={"a": public_key_hex(second), "d": public_key_hex(keys["a"]), "b": public_key_hex(keys["b"])},
        thresholds=dict.fromkeys(ACTIONS, 2),
        issued_at=T0,
    )
    rows = {row["admin_id"]: row for row in change_of(moved, InForce(in_force))["admins"]}
    assert [rows[n]["change"] for n in "abcd"] == ["key_changed", "unchanged", "removed", "added"]
    assert rows["c"]["new_key"] is None and rows["d"]["old_key"] is None
    assert rows["d"]["new_key_in_force_as"] == "a" and "new_key_in_force_as" not in rows["b"]


def test_the_listing_marks_a_swapped_key_and_every_threshold_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    from infra.cli.approvals import _print_proposal
    from schemas.admins import digest_of, key_fingerprint
    from schemas.auth import public_key_hex
    from sdk.changes import InForce, change_of

    keys, second = _admin_keys("a", "b", "c"), Ed25519PrivateKey.generate()
    proposal = _swap_proposal(keys, second, policy=1)
    digest = digest_of(proposal.signing_bytes())
    row = {
        "proposal_id": digest,
        "digest": digest,
        "what": "admin set v1: a, b, c",
        "proposed_by": "a",
        "change": change_of(proposal, InForce(_admins_in_force(keys))),
        "signed_by": ["a"],
        "needed": 2,
        "own_signatures_missing": ["b"],
        "expires_at": "2026-11-22T10:00:00+00:00",
    }
    _print_proposal(row)
    out = capsys.readouterr().out
    old_b, new_b = key_fingerprint(public_key_hex(keys["b"])), key_fingerprint(public_key_hex(second))
    assert f"digest {digest}" in out
    (b_line,) = [line for line in out.splitlines() if line.strip().startswith("! b ")]
    assert f"{old_b} -> {new_b}  KEY CHANGED" in b_line
    a_fp = key_fingerprint(public_key_hex(keys["a"]))
    assert any(line.split() == ["a", a_fp] for line in out.splitlines())  # unchanged, fingerprint shown
    assert "! policy    2 -> 1  changed" in out and "  approval  2" in out
    assert "thresholds, of 3 admins -> of 3" in out
    assert b_line.endswith("needs b's own signature, with the key in force")
    (waits,) = [line for line in out.splitlines() if line.startswith("  needs b's own signature: ")]
    assert "WARDEN_ADMIN_ID=b warden approvals sign" in waits and "removes b and adds a new admin" in waits

    # Once b signed with the key in force: said so, and nothing waits.
    row |= {
        "change": change_of(proposal, InForce(_admins_in_force(keys)), ["a", "b"]),
        "signed_by": ["a", "b"],
        "own_signatures_missing": [],
    }
    _print_proposal(row)
    (b_line,) = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("! b ")]
    assert b_line.endswith("KEY CHANGED: whoever holds the new key signs as b; signed by b with the key in force")


def test_an_admin_removed_and_another_added_is_shown_as_that_not_as_a_key_change(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from schemas.admins import ACTIONS, key_fingerprint
    from schemas.auth import public_key_hex
    from sdk.changes import InForce, change_of
    from sdk.pending import change_lines as _change_lines

    keys, new = _admin_keys("a", "b", "c"), Ed25519PrivateKey.generate()
    replaced = AdminSet(
        version=1,
        admins={"a": public_key_hex(keys["a"]), "b": public_key_hex(keys["b"]), "c2": public_key_hex(new)},
        thresholds=dict.fromkeys(ACTIONS, 2),
        issued_at=T0,
    )
    lines = _change_lines(change_of(replaced, InForce(_admins_in_force(keys)), ["a", "b"]))
    assert f"removed c ({key_fingerprint(public_key_hex(keys['c']))})" in next(ln for ln in lines if "- c " in ln)
    assert f"added c2 ({key_fingerprint(public_key_hex(new))})" in next(ln for ln in lines if "+ c2 " in ln)
    assert not any("KEY CHANGED" in line or "own signature" in line for line in lines)


def test_a_policy_proposal_shows_every_field_it_changes_old_and_new(world: World) -> None:
    from sdk.changes import InForce, change_of
    from sdk.pending import change_lines as _change_lines

    mallory = "0x000000000000000000000000000000000000dEaD"
    v1 = world.policy()
    v2 = world.policy(version=2, tx_max_value_eth="1000", tx_to_allowlist=(DEST, mallory), message_signing_enabled=True)
    change = change_of(v2, InForce(NO_ADMINS, policies={AGENT: v1}))
    fields = {row["field"]: row for row in change["fields"]}
    assert change["version"] == {"old": 1, "new": 2}
    # A field at its default is left out of the record's bytes, and its change is still shown.
    assert set(fields) == {"version", "tx_max_value_eth", "tx_to_allowlist", "message_signing_enabled"}
    assert (fields["tx_max_value_eth"]["old"], fields["tx_max_value_eth"]["new"]) == ("1", "1000")
    assert fields["tx_to_allowlist"]["added"] == [mallory] and fields["tx_to_allowlist"]["removed"] == []
    assert (fields["message_signing_enabled"]["old"], fields["message_signing_enabled"]["new"]) == (False, True)
    lines = _change_lines(change)
    assert '    ! tx_max_value_eth: "1" -> "1000"' in lines and f'        + "{mallory}"' in lines
    assert lines[0] == f"  policy of {AGENT}, v1 in force -> v2:"

    # An agent with no policy yet: every field is new.
    first = change_of(v1, InForce(NO_ADMINS, policies={AGENT: None}))
    assert first["version"]["old"] is None and all(row["old"] is None for row in first["fields"])
    assert {"agent_public_key", "tx_to_allowlist", "tx_max_value_eth"} <= {row["field"] for row in first["fields"]}


def test_an_approval_proposed_shows_the_parked_intent_whole_its_defaults_too(world: World) -> None:
    """An approval under a quorum of more than one admin is shown with the intent it releases: a
    plain transfer leaves ``intent_type`` (and other fields at their defaults) out of its bytes,
    and the change still has every field, which the lines people read name."""
    from sdk.changes import InForce, change_of
    from sdk.pending import change_lines as _change_lines

    intent = world.intent("0.5")
    parked = parked_of(world.submit(intent))
    approval = HumanApproval(
        intent_id=intent.intent_id, agent_id=AGENT, intent_digest=intent.digest(), decision="approve", decided_at=T0
    )
    change = change_of(approval, InForce(NO_ADMINS, parked={intent.intent_id: parked}))
    assert change["intent"]["intent_type"] == "transaction" and change["intent"]["message"] is None
    assert "signature" not in change["intent"]
    lines = _change_lines(change)
    assert '    intent_type: "transaction"' in lines and f'    to: "{DEST}"' in lines and '    value: "0.5"' in lines


def test_a_parked_token_transfer_is_headed_by_the_token_amount_and_its_recipient(world: World) -> None:
    """An ERC-20 transfer() moves no ETH: it is headed by the token's amount in its symbol and
    decimals (the policy's asset_limits entry) and by the recipient in its calldata, not "0 to" the
    token's contract; an approval's change lists the same."""
    from sdk.changes import InForce, change_of
    from sdk.moves import headline, moves_of
    from sdk.pending import change_lines as _change_lines

    policy = world.policy(
        approval_threshold_eth="0.4",
        tx_to_allowlist=(DEST, TOKEN),
        asset_limits=({"chain": "anvil", "token": TOKEN, "symbol": "WUSD", "decimals": 6, "approval_threshold": "10"},),
    )
    data = "0xa9059cbb" + DEST[2:].lower().rjust(64, "0") + f"{12_500_000:064x}"
    parked = parked_of(world.submit(world.intent("0", to=TOKEN, data=data, gas_limit=60_000)))
    moves = moves_of(parked, policy)
    assert headline(moves) == f"12.5 WUSD to {DEST}" and moves[0].units == "12500000 base units"
    # By no policy (the agent has none in force), the call is a call, never a guess at a token.
    assert headline(moves_of(parked, None)).startswith(f"a call to {TOKEN} (selector 0xa9059cbb)")
    approval = HumanApproval(
        intent_id=parked.intent_id,
        agent_id=AGENT,
        intent_digest=parked.intent_digest,
        decision="approve",
        decided_at=T0,
    )
    lines = _change_lines(
        change_of(approval, InForce(NO_ADMINS, policies={AGENT: policy}, parked={parked.intent_id: parked}))
    )
    assert f"    moves: 12.5 WUSD to {DEST} [12500000 base units]" in lines


def test_a_chain_set_and_a_key_change_show_their_entries() -> None:
    from schemas.admins import VaultChange
    from schemas.chain_set import ChainSet
    from schemas.chains import Chain
    from sdk.changes import InForce, change_of
    from sdk.pending import change_lines as _change_lines
    from signer.custody.events import SecretDeactivated

    two = Chain("anvil-two", 31338, "ETH", "", testnet=True)
    v1 = ChainSet(version=1, chains=(two,), issued_at=T0)
    v2 = ChainSet(
        version=2,
        chains=(Chain("anvil", 31337, "ETH", "", testnet=True, finalized_tag=False, confirmations=3),),
        issued_at=T0,
    )
    change = change_of(v2, InForce(NO_ADMINS, chains=v1))
    rows = {row["chain"]: row for row in change["chains"]}
    assert change["version"] == {"old": 1, "new": 2} and rows["anvil-two"]["change"] == "removed"
    anvil = rows["anvil"]
    assert anvil["change"] == "changed"
    # A built-in network's finality, against its built-in self: each field that differs, old and new.
    assert [(f["field"], f["old"], f["new"]) for f in anvil["fields"]] == [
        ("finalized_tag", True, False),
        ("confirmations", 2, 3),
    ]

    # A vault event's type is the vault log's vocabulary, not an audit action (the two share names).
    deactivated = SecretDeactivated.model_fields["type"].default
    event = orjson.dumps({"type": deactivated, "vault": "v", "path": "p", "version": 1, "wrapped_dek": "S3CR"})
    keys = change_of(VaultChange.of([("deactivated:default/v/p@1", event)], T0), InForce(NO_ADMINS))
    (shown,) = keys["events"]
    assert shown["key"] == "deactivated:default/v/p@1" and shown["event"]["path"] == "p"
    assert shown["event"]["wrapped_dek"].startswith("sha256:") and "S3CR" not in orjson.dumps(keys).decode()
    # A change whose proposal leaves its events out (they are not signed, their digests are).
    bare = VaultChange(event_digests=(shown["digest"],), issued_at=T0)
    assert change_of(bare, InForce(NO_ADMINS))["events"] == [{"key": None, "digest": shown["digest"], "event": None}]
    assert "does not carry this event" in _change_lines(change_of(bare, InForce(NO_ADMINS)))[1]


def test_signing_with_a_digest_other_than_the_bytes_signed_is_refused() -> None:
    from runtime.proposals import Gathered, NotWhatWasShown
    from schemas.admins import digest_of

    keys, second = _admin_keys("a", "b", "c"), Ed25519PrivateKey.generate()
    proposal = _swap_proposal(keys, second)
    digest = digest_of(proposal.signing_bytes())
    gathered = Gathered(digest, "admins", proposal, T0 + timedelta(days=1), 2)
    honest = _swap_proposal(keys, Ed25519PrivateKey.generate())  # what b was shown, say
    with pytest.raises(NotWhatWasShown, match="is not what you were shown"):
        gathered.with_signature(keys["b"], "b", T0, digest_of(honest.signing_bytes()))
    signed = gathered.with_signature(keys["b"], "b", T0, digest.upper())
    assert signed.proposal_id == digest
    keys["b"].public_key().verify(bytes.fromhex(signed.signature), proposal.signing_bytes())
