"""The admins' quorum (schemas.admins, runtime.admins.Admins and AdminSetBook, sdk.quorum.gather):
m signatures of distinct pinned admins over the same bytes, per action, and an admin set that
only its own quorum can change. No processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.admins import Admins, AdminSetBook
from runtime.proposals import gather
from schemas.admins import ACTIONS, AdminSet, parse_thresholds
from schemas.auth import cosign, human_approval_valid, public_key_hex, sign_admin_set, sign_policy
from schemas.outcomes import HumanApproval
from schemas.policy import AgentPolicy
from sdk.quorum import propose

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEYS = {name: Ed25519PrivateKey.generate() for name in ("a", "b", "c", "d")}
PINNED = {name: public_key_hex(KEYS[name]) for name in ("a", "b", "c")}


def two_of_three() -> Admins:
    return Admins(PINNED, parse_thresholds("2", PINNED))


def policy(version: int = 1, **fields: Any) -> AgentPolicy:
    return AgentPolicy(
        agent_id="treasury",
        version=version,
        agent_public_key=public_key_hex(KEYS["d"]),
        issued_at=T0,
        **fields,
    )


def signed(record: AgentPolicy, *names: str) -> AgentPolicy:
    first, *others = names
    record = sign_policy(record, KEYS[first], first) if isinstance(record, AgentPolicy) else record
    for name in others:
        record = cosign(record, KEYS[name], name)
    return record


def test_m_distinct_admins_make_a_quorum_and_m_minus_one_do_not() -> None:
    admins = two_of_three()
    assert admins.quorum_problem(signed(policy(), "a", "b"), "policy") is None
    problem = str(admins.quorum_problem(signed(policy(), "a"), "policy"))
    assert (
        problem.startswith("a policy change needs 2 of the 3 pinned admins' signatures") and "it has 1 (a)" in problem
    )


def test_the_same_admin_signing_twice_counts_once() -> None:
    problem = str(two_of_three().quorum_problem(signed(policy(), "a", "a"), "policy"))
    assert "it has 1 (a)" in problem and "a signed twice (counted once)" in problem


def test_one_key_pinned_under_two_ids_counts_once() -> None:
    twice = {**PINNED, "a2": PINNED["a"]}
    with pytest.raises(ValueError, match="pinned under two admin ids"):
        AdminSet(version=1, admins=twice, thresholds=dict.fromkeys(ACTIONS, 2), issued_at=T0)
    admins = Admins(twice, dict.fromkeys(ACTIONS, 2))
    assert "signed twice" in str(admins.quorum_problem(cosign(signed(policy(), "a"), KEYS["a"], "a2"), "policy"))


def test_a_signature_over_other_bytes_or_by_an_unpinned_key_does_not_count() -> None:
    other = sign_policy(policy(tx_max_value_eth="1000"), KEYS["b"], "b")
    borrowed = signed(policy(), "a").model_copy(
        update={
            "cosignatures": (
                cosign(policy(), KEYS["b"], "b").cosignatures[0].model_copy(update={"signature": other.signature}),
            )
        }
    )
    problem = str(two_of_three().quorum_problem(borrowed, "policy"))
    assert "b's signature does not verify over this record's bytes" in problem
    assert "'d' is not a pinned admin" in str(two_of_three().quorum_problem(signed(policy(), "a", "d"), "policy"))


def test_a_changed_field_voids_every_signature() -> None:
    changed = signed(policy(), "a", "b").model_copy(update={"tx_max_value_eth": "1000"})
    assert "it has 0" in str(two_of_three().quorum_problem(changed, "policy"))


def test_an_approval_needs_the_quorum_and_a_denial_one_admin() -> None:
    thresholds = parse_thresholds("approval=2,policy=1", PINNED)
    admins = Admins(PINNED, thresholds)
    assert thresholds["admins"] == 2  # left out: the highest given
    decision = HumanApproval(
        intent_id="i1", agent_id="treasury", intent_digest="0" * 64, decision="approve", decided_at=T0
    )
    from schemas.auth import sign_human_approval

    one = sign_human_approval(decision, KEYS["a"], "a")
    assert not human_approval_valid(one, admins)
    assert human_approval_valid(cosign(one, KEYS["c"], "c"), admins)
    deny = sign_human_approval(decision.model_copy(update={"decision": "deny"}), KEYS["b"], "b")
    assert human_approval_valid(deny, admins)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("4", "from 1 to the 3 admins"),
        ("0", "from 1 to the 3 admins"),
        ("policy=2,admins=1", "must be at least the highest other threshold"),
        ("policy=2,spend=2", "unknown action"),
        ("policy:2", "is not <action>=<number>"),
        # str.isdigit() is true for "²"; int() is not: named, never "invalid literal for int()".
        ("\u00b2", "is not <action>=<number>"),
        ("policy=\u00b2", "is not <action>=<number>"),
    ],
)
def test_thresholds_that_make_no_sense_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_thresholds(text, PINNED)


def admin_set(version: int, keys: dict[str, str], quorum: str, *names: str) -> AdminSet:
    record = sign_admin_set(
        AdminSet(version=version, admins=keys, thresholds=parse_thresholds(quorum, keys), issued_at=T0),
        KEYS[names[0]],
        names[0],
    )
    for name in names[1:]:
        record = cosign(record, KEYS[name], name)
    return record


def test_one_admin_can_neither_remove_another_nor_lower_a_threshold() -> None:
    admins = two_of_three()
    book = AdminSetBook(admins)
    alone = admin_set(1, {"a": PINNED["a"]}, "1", "a")
    ((what, why, _),) = book.read(alone.to_bytes())
    assert what == "refused" and "a change to the admin set needs 2" in why
    assert admins.version == 0 and set(admins.keys) == {"a", "b", "c"}
    assert two_of_three().quorum_problem(signed(policy(), "a"), "policy") is not None


def test_the_quorum_changes_the_set_and_the_new_set_is_what_counts() -> None:
    admins = two_of_three()
    book = AdminSetBook(admins)
    with_d = {**PINNED, "d": public_key_hex(KEYS["d"])}
    v2 = admin_set(2, {"b": PINNED["b"], "d": with_d["d"]}, "2", "b", "d")
    assert book.read(v2.to_bytes()) == []  # v1 not seen yet: held, not judged against v0
    v1 = admin_set(1, with_d, "2", "a", "c")
    settled = book.read(v1.to_bytes())
    assert [what for what, _, _ in settled] == ["adopted", "adopted"]
    assert admins.version == 2 and set(admins.keys) == {"b", "d"}
    assert "'a' is not a pinned admin" in str(admins.quorum_problem(signed(policy(), "a", "b"), "policy"))
    assert admins.quorum_problem(signed(policy(), "d", "b"), "policy") is None
    ((what, why, _),) = book.read(v1.to_bytes())  # a replay of an older set changes nothing
    assert what == "refused" and "not newer" in why and admins.version == 2


def test_gathered_signatures_count_each_pinned_admin_once_and_expire() -> None:
    admins = two_of_three()
    first = propose(sign_policy(policy(), KEYS["a"], "a"), "policy", T0, timedelta(hours=1))
    found = gather([first.to_bytes()], admins, T0)
    gathered = found[first.proposal_id]
    assert gathered.signers == ["a"] and not gathered.complete
    again = gathered.with_signature(KEYS["a"], "a", T0)
    stranger = gathered.with_signature(KEYS["d"], "d", T0)
    forged = gathered.with_signature(KEYS["b"], "b", T0).model_copy(update={"signature": first.signature})
    found = gather([first.to_bytes(), again.to_bytes(), stranger.to_bytes(), forged.to_bytes()], admins, T0)
    gathered = found[first.proposal_id]
    assert gathered.signers == ["a"] and not gathered.complete
    assert any("'d' is not a pinned admin" in r for r in gathered.refused)
    by_b = gathered.with_signature(KEYS["b"], "b", T0)
    gathered = gather([first.to_bytes(), by_b.to_bytes()], admins, T0)[first.proposal_id]
    assert gathered.complete
    assembled = gathered.assembled()
    assert isinstance(assembled, AgentPolicy), assembled
    assert admins.quorum_problem(assembled, "policy") is None
    assert gather([first.to_bytes(), by_b.to_bytes()], admins, T0 + timedelta(hours=1)) == {}


def test_a_proposal_whose_id_does_not_name_its_record_is_left_out() -> None:
    first = propose(sign_policy(policy(), KEYS["a"], "a"), "policy", T0)
    lying = first.model_copy(update={"document": {**first.document, "tx_max_value_eth": "1000"}})
    assert gather([lying.to_bytes()], two_of_three(), T0) == {}


# A change of one admin's key needs that admin's own signature, made with the key in force.


def swapped(
    version: int,
    key_id: str,
    new_key: Ed25519PrivateKey,
    *names: str,
    signed_as: dict[str, Ed25519PrivateKey] | None = None,
) -> AdminSet:
    """Admin set ``version``: the set in force with ``key_id``'s key replaced by ``new_key``,
    signed by ``names`` (each with its key in force, or with ``signed_as[name]``)."""
    keys = {**PINNED, key_id: public_key_hex(new_key)}
    unsigned = AdminSet(version=version, admins=keys, thresholds=parse_thresholds("2", keys), issued_at=T0)
    signing = {**KEYS, **(signed_as or {})}
    record = sign_admin_set(unsigned, signing[names[0]], names[0])
    for name in names[1:]:
        record = cosign(record, signing[name], name)
    return record


def test_two_admins_cannot_swap_a_third_admins_key() -> None:
    admins, rogue_second = two_of_three(), Ed25519PrivateKey.generate()
    problem = admins.adopt(swapped(1, "c", rogue_second, "a", "b"))
    assert problem is not None and admins.version == 0 and admins.keys == PINNED
    assert "changes the key of c" in str(problem) and "it is missing for c" in str(problem)
    assert "(signed with the keys in force: a, b)" in str(problem)
    assert "c signs it with their current key" in str(problem) and "a new admin added under a new id" in str(problem)
    # Nor with a signature under c's id made with the new key (the rogue holds it), nor by three
    # admins when c is not one of them.
    assert admins.adopt(swapped(1, "c", rogue_second, "a", "b", "c", signed_as={"c": rogue_second})) is not None
    assert admins.version == 0
    # Through the book every service reads warden.admins with: refused, with the same reason.
    ((what, why, _),) = AdminSetBook(admins).read(swapped(1, "c", rogue_second, "a", "b").to_bytes())
    assert what == "refused" and "it is missing for c" in why and admins.version == 0


def test_the_admin_whose_key_changes_agrees_with_the_key_in_force() -> None:
    new_c = Ed25519PrivateKey.generate()
    admins = two_of_three()
    assert admins.adopt(swapped(1, "c", new_c, "a", "c")) is None  # c is one of the quorum
    assert admins.version == 1 and admins.key("c") == public_key_hex(new_c)
    # From now on c's key in force is the new one: the old one agrees to nothing.
    newer = Ed25519PrivateKey.generate()
    keys = {**admins.keys, "c": public_key_hex(newer)}
    v2 = AdminSet(version=2, admins=keys, thresholds=parse_thresholds("2", keys), issued_at=T0)
    by_old_c = cosign(cosign(sign_admin_set(v2, KEYS["a"], "a"), KEYS["b"], "b"), KEYS["c"], "c")
    assert "it is missing for c" in str(admins.adopt(by_old_c)) and admins.version == 1
    assert admins.adopt(cosign(sign_admin_set(v2, KEYS["a"], "a"), new_c, "c")) is None and admins.version == 2


def test_an_admin_who_lost_their_key_is_removed_and_another_added_by_the_quorum() -> None:
    admins = two_of_three()
    keys = {"a": PINNED["a"], "b": PINNED["b"], "c2": public_key_hex(KEYS["d"])}
    replaced = admin_set(1, keys, "2", "a", "b")
    assert admins.adopt(replaced) is None and admins.version == 1 and set(admins.keys) == {"a", "b", "c2"}


def test_the_rule_compares_the_pinned_key_strings_whatever_kind_of_key_they_hold() -> None:
    from schemas.admins import key_changes

    # A key string the Ed25519 verification cannot use (another kind of admin key): no signature
    # made with anything verifies under it, so its admin's key changes only through that kind's own check.
    other_kind = {**PINNED, "c": "passkey:" + "ab" * 40}
    admins = Admins(other_kind, parse_thresholds("2", other_kind))
    to_ed25519 = swapped(1, "c", KEYS["d"], "a", "b", "c")
    assert key_changes(other_kind, to_ed25519) == ["c"] and key_changes(PINNED, to_ed25519) == ["c"]
    assert "it is missing for c" in str(admins.adopt(to_ed25519)) and admins.version == 0
    unchanged = admin_set(1, PINNED, "2", "a", "b")
    assert key_changes(PINNED, unchanged) == [] and two_of_three().adopt(unchanged) is None


def test_gathered_signatures_of_a_key_change_wait_for_that_admins_own() -> None:
    admins, new_c = two_of_three(), Ed25519PrivateKey.generate()
    first = propose(swapped(1, "c", new_c, "a"), "admins", T0)
    gathered = gather([first.to_bytes()], admins, T0)[first.proposal_id]
    by_b = gathered.with_signature(KEYS["b"], "b", T0)
    gathered = gather([first.to_bytes(), by_b.to_bytes()], admins, T0)[first.proposal_id]
    assert gathered.signers == ["a", "b"] and gathered.keys_changed == ["c"]
    assert gathered.own_signatures_missing == ["c"] and not gathered.complete
    with_new_key = gathered.with_signature(new_c, "c", T0)  # c's id, the new key: does not count
    gathered = gather([first.to_bytes(), by_b.to_bytes(), with_new_key.to_bytes()], admins, T0)[first.proposal_id]
    assert not gathered.complete and any("c's signature does not verify" in r for r in gathered.refused)
    by_c = gathered.with_signature(KEYS["c"], "c", T0)
    gathered = gather([first.to_bytes(), by_b.to_bytes(), by_c.to_bytes()], admins, T0)[first.proposal_id]
    assert gathered.complete and gathered.own_signatures_missing == []
    assembled = gathered.assembled()
    assert isinstance(assembled, AdminSet), assembled
    assert two_of_three().adopt(assembled) is None


def test_an_admin_whose_key_here_is_not_the_one_in_force_signs_nothing(tmp_path: Path) -> None:
    """c holds another key in this home than the one pinned for c (say, the new one of a key
    change): `add_signature` refuses before anything is published, and says what to do."""
    import asyncio

    from infra.stack.local import local_settings
    from sdk.admin import load_or_create_admin_key
    from sdk.quorum import NotTheKeyInForce, add_signature

    settings = local_settings(tmp_path, broker="127.0.0.1:9")  # nothing listens: nothing may be sent
    new_c = load_or_create_admin_key(tmp_path, "c")  # made here: not the key pinned for c
    first = propose(swapped(1, "c", new_c, "a"), "admins", T0)
    gathered = gather([first.to_bytes()], two_of_three(), T0)[first.proposal_id]
    with pytest.raises(NotTheKeyInForce, match="is not the key the admin set in force pins under c") as refused:
        asyncio.run(add_signature(settings, gathered, "c", T0))
    assert "nothing was signed" in str(refused.value) and "adds a new admin under a new id" in str(refused.value)
    assert gathered.signers == ["a"]
