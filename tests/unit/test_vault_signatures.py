"""What a signer checks before it applies a vault event from warden.vault, without a stack: the
event is one of a `VaultChange` whose digests the quorum of pinned admins for ``keys`` signed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from runtime.admins import Admins
from runtime.proposals import gather
from schemas.admins import VaultChange, parse_thresholds
from schemas.auth import cosign, public_key_hex, sign_vault_change, vault_change_headers, vault_event_problem
from schemas.errors import Problem
from sdk.quorum import propose

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEYS = {name: Ed25519PrivateKey.generate() for name in ("a", "b", "c", "d")}
PINNED = {name: public_key_hex(KEYS[name]) for name in ("a", "b", "c")}
EVENTS = [("secret:default/__agent-keys/agents/x/ethereum", b'{"type":"secret.deactivated","n":1}'), ("k2", b"{}")]


def admins(keys: str = "2") -> Admins:
    return Admins(PINNED, parse_thresholds(f"policy={keys},approval={keys},keys={keys},chains={keys},admins=3", PINNED))


def change(*names: str, events: list[tuple[str, bytes]] = EVENTS) -> VaultChange:
    first, *others = names
    signed = sign_vault_change(VaultChange.of(events, T0), KEYS[first], first)
    for name in others:
        signed = cosign(signed, KEYS[name], name)
    return signed


def test_an_event_of_a_change_two_admins_signed_is_applied_and_one_admin_is_not_enough() -> None:
    value = EVENTS[0][1]
    assert vault_event_problem(value, vault_change_headers(change("a", "b")), admins()) == (["a", "b"], None)
    counted, problem = vault_event_problem(value, vault_change_headers(change("a")), admins())
    assert counted == ["a"]
    assert str(problem).startswith("key provisioning and rotation needs 2 of the 3 pinned admins' signatures")
    assert "it has 1 (a)" in str(problem)
    # Where one admin is the quorum (the embedded stack's), one signature is enough.
    assert vault_event_problem(value, vault_change_headers(change("a")), admins("1")) == (["a"], None)


def test_the_same_admin_twice_a_stranger_and_another_event_count_for_nothing() -> None:
    value = EVENTS[0][1]
    assert "a signed twice (counted once)" in str(
        vault_event_problem(value, vault_change_headers(change("a", "a")), admins())[1]
    )
    assert "'d' is not a pinned admin" in str(
        vault_event_problem(value, vault_change_headers(change("a", "d")), admins())[1]
    )
    other = change("a", "b", events=[("k", b'{"type":"secret.deactivated","n":2}')])
    assert vault_event_problem(value, vault_change_headers(other), admins()) == (
        [],
        Problem("the event is not one of the 1 its warden-vault-change names"),
    )
    # b's signature lifted from a change of other events does not verify over this one's bytes.
    lifted = change("a").model_copy(update={"cosignatures": other.cosignatures})
    counted, problem = vault_event_problem(value, vault_change_headers(lifted), admins())
    assert counted == ["a"] and "b's signature does not verify over this record's bytes" in str(problem)


def test_an_event_without_a_change_is_refused_whoever_signed_it() -> None:
    value = EVENTS[0][1]
    unsigned = vault_event_problem(value, [], admins("1"))[1]
    assert str(unsigned).startswith("unsigned: the record has no warden-vault-change")
    # One admin's signature in headers of another name (the format before quorums) counts for
    # nothing, even where one admin is the quorum: the only vault path is the signed change.
    single = [("warden-vault-by", b"admin:a"), ("warden-vault-signature", KEYS["a"].sign(b"warden.vault\x00" + value))]
    counted, problem = vault_event_problem(value, single, admins("1"))
    assert counted == [] and str(problem).startswith("unsigned: the record has no warden-vault-change")


def test_a_change_names_its_events_exactly_and_travels_as_a_proposal() -> None:
    unsigned = VaultChange.of(EVENTS, T0)
    with pytest.raises(ValidationError, match="they are not the events event_digests names"):
        VaultChange.model_validate(
            {**unsigned.model_dump(mode="json"), "event_digests": list(reversed(unsigned.event_digests))}
        )
    # The header carries digests and signatures, not the events' bodies.
    (header,) = vault_change_headers(change("a", "b"))
    assert EVENTS[0][1] not in header[1] and VaultChange.model_validate_json(header[1]).events == ()
    # Gathered from proposals: two admins' signatures make it complete; the events come with it.
    first = propose(change("a"), "keys", T0)
    gathered = gather([first.to_bytes()], admins(), T0)[first.proposal_id]
    assert not gathered.complete and gathered.needed == 2
    second = gathered.with_signature(KEYS["c"], "c", T0)
    gathered = gather([first.to_bytes(), second.to_bytes()], admins(), T0)[first.proposal_id]
    whole = gathered.assembled()
    assert isinstance(whole, VaultChange)
    assert gathered.complete and [(e.key, e.value.encode()) for e in whole.events] == EVENTS
    assert vault_event_problem(EVENTS[1][1], vault_change_headers(whole), admins()) == (["a", "c"], None)
