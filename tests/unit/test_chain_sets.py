"""The admins' chain table as a signed record (schemas.chain_set.ChainSet) and what a reader of
warden.chains does with it (runtime.chains.ChainSetBook): taken only when newer than the set in
force and signed by the quorum for ``chains``, held when it comes before its predecessor, checked
as the registry checks a table. No processes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from runtime.admins import Admins, AdminSetBook
from runtime.chains import ChainSetBook
from runtime.proposals import gather
from runtime.registry import ChainRegistry
from schemas.admins import AdminSet, parse_thresholds
from schemas.auth import cosign, public_key_hex, record_id_of, sign_admin_set, sign_chain_set
from schemas.chain_set import ChainSet
from schemas.chains import Chain, UnknownChain
from sdk.quorum import propose, topic_key

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEYS = {name: Ed25519PrivateKey.generate() for name in ("a", "b", "c", "d")}
PINNED = {name: public_key_hex(KEYS[name]) for name in ("a", "b", "c")}
TWO = Chain("anvil-two", 31338, "ETH", "", testnet=True)
THREE = Chain("anvil-three", 31339, "ETH", "", testnet=True)


def two_of_three() -> Admins:
    return Admins(PINNED, parse_thresholds("2", PINNED))


def chain_set(version: int, chains: tuple[Chain, ...], *names: str) -> ChainSet:
    """Version ``version`` of the table ``chains``, signed by ``names`` (the first proposes)."""
    first, *others = names
    record = sign_chain_set(ChainSet(version=version, chains=chains, issued_at=T0), KEYS[first], first)
    for name in others:
        record = cosign(record, KEYS[name], name)
    return record


def book() -> tuple[ChainSetBook, ChainRegistry]:
    registry = ChainRegistry()
    return ChainSetBook(two_of_three(), registry), registry


# -- the record ----------------------------------------------------------------------------------


def test_a_chain_set_signs_its_whole_table_under_a_context_of_its_own() -> None:
    record = chain_set(1, (TWO, dataclasses.replace(ChainRegistry().get("anvil"), confirmations=3)), "a")
    assert record.signing_bytes().startswith(b"warden.chains\x00")
    signed = orjson.loads(record.signing_bytes().removeprefix(b"warden.chains\x00"))
    assert "signature" not in signed and "cosignatures" not in signed and signed["admin_key_id"] == "a"
    assert [c["name"] for c in signed["chains"]] == ["anvil", "anvil-two"]  # by name: one table, one byte string
    assert set(signed["chains"][1]) == {f.name for f in dataclasses.fields(Chain)}
    assert b"cosignatures" not in record.to_bytes()  # left out while empty, like an AdminSet's
    assert ChainSet.from_bytes(record.to_bytes()) == record
    # The same admin's signature over an admin set's bytes is no signature over a chain set.
    admin_set = sign_admin_set(
        AdminSet(version=1, admins=PINNED, thresholds=parse_thresholds("2", PINNED), issued_at=T0), KEYS["b"], "b"
    )
    (by_b,) = cosign(record, KEYS["b"], "b").cosignatures
    borrowed = record.model_copy(update={"cosignatures": (by_b.model_copy(update={"signature": admin_set.signature}),)})
    assert "b's signature does not verify" in str(two_of_three().quorum_problem(borrowed, "chains"))


@pytest.mark.parametrize(
    ("chains", "why"),
    [
        (
            [{"name": "base", "chain_id": 1234, "currency": "ETH", "explorer": "https://basescan.org"}],
            "chain 'base' is built in: only its finality (finalized_tag, confirmations) may change, not chain_id 1234",
        ),
        (
            [{"name": "fakebase", "chain_id": 8453, "currency": "ETH", "explorer": ""}],
            "chain id 8453 is already used by 'base'",
        ),
        (
            [
                {"name": "x1", "chain_id": 777, "currency": "ETH", "explorer": ""},
                {"name": "x2", "chain_id": 777, "currency": "ETH", "explorer": ""},
            ],
            "chain id 777 is already used by 'x1'",
        ),
        ([{"name": "x1", "chain_id": 777, "currency": "ETH", "explorer": ""}] * 2, "chain 'x1' is listed twice"),
        (
            [{"name": "x1", "chain_id": 777, "currency": "ETH", "explorer": "", "confirmations": 0}],
            "confirmations must be at least 1",
        ),
        ([{"name": "x1", "chain_id": 777, "currency": "ETH", "explorer": "", "gas_token": "X"}], "gas_token"),
    ],
)
def test_a_table_is_checked_as_the_registry_checks_it_naming_the_field(
    chains: list[dict[str, str | int]], why: str
) -> None:
    with pytest.raises(ValidationError, match="chains") as info:
        ChainSet.model_validate({"version": 1, "chains": chains, "issued_at": "2026-11-26T12:00:00Z"})
    assert why in str(info.value)


def test_version_0_is_the_built_in_table_and_no_record_claims_it() -> None:
    with pytest.raises(ValidationError, match="version"):
        ChainSet(version=0, chains=(), issued_at=T0)


# -- the book ------------------------------------------------------------------------------------


def test_the_quorum_puts_a_chain_set_in_force() -> None:
    chains, registry = book()
    record = chain_set(1, (TWO,), "a", "c")
    ((what, text, record_id),) = chains.read(record.to_bytes())
    assert what == "adopted" and "chain set v1 in force: anvil-two (31338" in text
    assert record_id == record_id_of(record)
    assert registry.get("anvil-two") == TWO and chains.in_force == record and chains.version == 1


def test_one_signature_short_of_the_quorum_is_refused_and_changes_nothing() -> None:
    chains, registry = book()
    ((what, why, _),) = chains.read(chain_set(1, (TWO,), "a").to_bytes())
    assert what == "refused" and "a chain registry change needs 2 of the 3 pinned admins' signatures" in why
    assert "it has 1 (a)" in why
    with pytest.raises(UnknownChain):
        registry.get("anvil-two")
    assert chains.version == 0


def test_one_admin_signing_twice_counts_once() -> None:
    chains, registry = book()
    ((what, why, _),) = chains.read(chain_set(1, (TWO,), "a", "a").to_bytes())
    assert what == "refused" and "a signed twice (counted once)" in why
    assert registry.admin_table() == ()


def test_a_signature_over_other_bytes_does_not_count() -> None:
    chains, registry = book()
    record = chain_set(1, (TWO,), "a")
    other = chain_set(1, (THREE,), "b")  # b signed another table
    (by_b,) = cosign(record, KEYS["b"], "b").cosignatures
    forged = record.model_copy(update={"cosignatures": (by_b.model_copy(update={"signature": other.signature}),)})
    ((what, why, _),) = chains.read(forged.to_bytes())
    assert what == "refused" and "b's signature does not verify over this record's bytes" in why
    # Nor does a stranger's, nor a signature over the table with another version.
    stranger = cosign(record, KEYS["d"], "d")
    assert "'d' is not a pinned admin" in chains.read(stranger.to_bytes())[0][1]
    v2_by_b = cosign(chain_set(2, (TWO,), "a"), KEYS["b"], "b").cosignatures[0]
    replayed = record.model_copy(update={"cosignatures": (v2_by_b,)})
    assert chains.read(replayed.to_bytes())[0][0] == "refused" and registry.admin_table() == ()


def test_an_older_or_equal_version_is_refused() -> None:
    chains, registry = book()
    chains.read(chain_set(1, (TWO,), "a", "b").to_bytes())
    chains.read(chain_set(2, (TWO, THREE), "b", "c").to_bytes())
    for version in (1, 2):
        ((what, why, _),) = chains.read(chain_set(version, (), "a", "b").to_bytes())
        assert what == "refused" and f"chain set v{version} is not newer than v2, in force" in why
    assert {c.name for c in registry.admin_table()} == {"anvil-two", "anvil-three"}


def test_a_version_that_comes_before_its_predecessor_is_held_until_it_is_in_force() -> None:
    chains, registry = book()
    v3 = chain_set(3, (), "b", "c")
    v2 = chain_set(2, (TWO, THREE), "a", "b")
    assert chains.read(v3.to_bytes()) == [] and chains.read(v2.to_bytes()) == []  # v1 not seen yet
    assert registry.admin_table() == () and chains.version == 0
    settled = chains.read(chain_set(1, (TWO,), "a", "c").to_bytes())
    assert [what for what, _, _ in settled] == ["adopted", "adopted", "adopted"]
    assert chains.version == 3 and registry.admin_table() == ()  # v3 took both out again
    with pytest.raises(UnknownChain):
        registry.get("anvil-two")


def test_a_built_in_network_changed_beyond_its_finality_is_refused() -> None:
    chains, registry = book()
    anvil = ChainRegistry().get("anvil")
    finality = chain_set(1, (dataclasses.replace(anvil, confirmations=5),), "a", "b")
    assert chains.read(finality.to_bytes())[0][0] == "adopted" and registry.get("anvil").confirmations == 5
    # A chain id is more than finality: the record is not a chain set at all, whoever signed it.
    doc = orjson.loads(chain_set(2, (anvil,), "a", "b").to_bytes())
    doc["chains"][0]["chain_id"] = 1
    ((what, why, _),) = chains.read(orjson.dumps(doc))
    assert what == "refused" and "not a valid ChainSet" in why
    assert "chain 'anvil' is built in: only its finality" in why and "chain_id 1 (built in: 31337)" in why
    assert registry.get("anvil").chain_id == 31337 and chains.version == 1


def test_the_quorum_is_the_admin_set_in_force() -> None:
    """The book judges with the admins its reader of warden.admins keeps in force: d, added by a
    set that needs 3 of 4, counts; 2 signatures no longer do."""
    admins = two_of_three()
    chains = ChainSetBook(admins, ChainRegistry())
    with_d = {**PINNED, "d": public_key_hex(KEYS["d"])}
    new_set = AdminSet(version=1, admins=with_d, thresholds=parse_thresholds("3", with_d), issued_at=T0)
    new_set = cosign(sign_admin_set(new_set, KEYS["a"], "a"), KEYS["b"], "b")
    assert AdminSetBook(admins).read(new_set.to_bytes())[0][0] == "adopted"
    ((what, why, _),) = chains.read(chain_set(1, (TWO,), "a", "b").to_bytes())
    assert what == "refused" and "needs 3 of the 4 pinned admins' signatures" in why
    assert chains.read(chain_set(1, (TWO,), "a", "b", "d").to_bytes())[0][0] == "adopted"


# -- proposals -----------------------------------------------------------------------------------


def test_a_chain_set_gathers_signatures_like_any_proposal() -> None:
    admins = two_of_three()
    record = chain_set(1, (TWO,), "a")
    first = propose(record, "chains", T0, timedelta(hours=1))
    gathered = gather([first.to_bytes()], admins, T0)[first.proposal_id]
    assert (
        gathered.signers == ["a"]
        and gathered.needed == 2
        and gathered.record == record.model_copy(update={"signature": ""})
    )
    by_c = gathered.with_signature(KEYS["c"], "c", T0)
    gathered = gather([first.to_bytes(), by_c.to_bytes()], admins, T0)[first.proposal_id]
    assembled = gathered.assembled()
    assert isinstance(assembled, ChainSet), assembled
    assert gathered.complete and admins.quorum_problem(assembled, "chains") is None
    assert topic_key(assembled) == "chains"
    chains, registry = book()
    assert chains.read(assembled.to_bytes())[0][0] == "adopted" and registry.get("anvil-two") == TWO
