"""Passkeys as admin keys: an admin set pins a passkey beside Ed25519 keys, and a
passkey admin's decision on a parked intent is a WebAuthn assertion the streams worker and the
signer each verify themselves, against the console's relying party. An assertion over any other
bytes, from another origin or relying party, without the user verified, replayed onto another
decision, with a counter value met over other bytes, or malformed, is refused by both, with
PASSKEY_ASSERTION_INVALID; a valid one is taken by both."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from runtime.admins import Admins, SignCounters
from runtime.config import Settings
from runtime.trust import ConsoleOriginError, console_party, pinned_admins
from schemas import topics
from schemas.actions import AuditAction
from schemas.admins import AdminSet, AdminSignature, key_fingerprint, valid_admin_keys
from schemas.auth import public_key_hex, sign_human_approval
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import HumanApproval, IntentApproved, IntentRejected
from schemas.passkeys import MAX_ASSERTION_CHARS, passkey_fingerprint
from schemas.stages import Stage
from tests.engine_support import ADMIN_ID, T0, World, audits, on
from tests.passkey_support import ORIGIN, PARTY, USER_PRESENT, SoftPasskey, passkey_cosigned, passkey_signed
from tests.signer_support import DEST, LoneSigner

PK = "pk-admin"
DECIDED = T0 + timedelta(minutes=1)


# -- the admin set --------------------------------------------------------------------------------


def test_an_admin_set_pins_a_passkey_beside_ed25519_keys_and_prints_its_fingerprint() -> None:
    passkey = SoftPasskey()
    keys = {"ed": "0x" + "11" * 32, PK: passkey.pinned()}
    assert valid_admin_keys(keys) == keys
    assert key_fingerprint(passkey.pinned()) == passkey_fingerprint(passkey.pinned())
    assert key_fingerprint(passkey.pinned()) != key_fingerprint(SoftPasskey().pinned())


@pytest.mark.parametrize(
    "public, said",
    [
        ("passkey:abc", "passkey:<credential id>:<COSE public key>"),
        ("passkey:ab+c:def", "unpadded base64url"),
        ("webauthn:abc", "0x and 64 lowercase hex digits (Ed25519), or a passkey"),
    ],
)
def test_a_malformed_passkey_is_refused_with_what_it_must_be(public: str, said: str) -> None:
    with pytest.raises(ValueError, match="admin pk-admin") as refused:
        valid_admin_keys({PK: public})
    assert said in str(refused.value)


def test_one_passkey_is_pinned_under_one_id_whatever_credential_id_it_is_written_with() -> None:
    passkey = SoftPasskey()
    again = dataclasses.replace(passkey, credential_id=b"another credential")
    with pytest.raises(ValueError, match="one public key is pinned under two admin ids"):
        valid_admin_keys({PK: passkey.pinned(), "pk-again": again.pinned()})


def test_an_admin_signature_field_holds_an_assertion_and_nothing_longer() -> None:
    signed = SoftPasskey().sign(b"bytes")
    assert AdminSignature(admin_key_id=PK, signature=signed).signature == signed
    with pytest.raises(ValueError, match=str(MAX_ASSERTION_CHARS)):
        AdminSignature(admin_key_id=PK, signature="webauthn:" + "a" * MAX_ASSERTION_CHARS)


# -- the relying party ----------------------------------------------------------------------------


def test_the_relying_party_is_the_console_origins_and_the_first_ones_host() -> None:
    assert console_party(Settings(console_origin=None)) is None
    party = console_party(Settings(console_origin="https://console.example.com, https://ops.console.example.com/"))
    assert party is not None and party.rp_id == "console.example.com"
    assert party.origins == ("https://console.example.com", "https://ops.console.example.com")
    wider = console_party(Settings(console_origin="https://console.example.com", console_rp_id="example.com"))
    assert wider is not None and wider.rp_id == "example.com"
    # As a browser writes the origin in its assertion: lower case, no default port.
    written = console_party(Settings(console_origin="HTTPS://Console.Example.com:443/"))
    assert written is not None and written.origins == ("https://console.example.com",)
    loopback = console_party(Settings(console_origin="http://LOCALHOST:80"))
    assert loopback is not None and (loopback.rp_id, loopback.origins) == ("localhost", ("http://localhost",))


@pytest.mark.parametrize(
    "origin, rp_id, said",
    [
        ("https://console.example.com/approvals", None, "is not an origin"),
        ("console.example.com", None, "is not an origin"),
        ("https://admin@console.example.com", None, "is not an origin"),
        ("https://console.example.com:99999", None, "is not an origin"),
        ("ftp://console.example.com", None, "is not an origin"),
        ("https://console.example.com", "other.example", "is not the relying party id"),
        ("http://localhost:8790,https://console.example.com", None, "is not the relying party id"),
    ],
)
def test_a_console_origin_no_browser_would_sign_for_is_refused(origin: str, rp_id: str | None, said: str) -> None:
    with pytest.raises(ConsoleOriginError, match=said):
        console_party(Settings(console_origin=origin, console_rp_id=rp_id))


def test_every_reader_of_the_pinned_admins_holds_the_relying_party(tmp_path: Path) -> None:
    passkey = SoftPasskey()
    settings = Settings(home=tmp_path, admin_keys=f"{PK}={passkey.pinned()}", console_origin=ORIGIN)
    admins = pinned_admins(settings)
    assert admins.party == PARTY and admins.keys == {PK: passkey.pinned()}
    assert admins.signature_problem(PK, passkey.sign(b"bytes"), b"bytes") is None
    # No console origin: the same passkey admin's assertion is not believed.
    unset = pinned_admins(dataclasses.replace(settings, console_origin=None))
    problem = unset.signature_problem(PK, passkey.sign(b"bytes"), b"bytes")
    assert problem is not None and problem.code == Code.PASSKEY_ASSERTION_INVALID
    assert "WARDEN_CONSOLE_ORIGIN" in problem.what


# -- the signature counter ------------------------------------------------------------------------


def test_a_counter_value_over_other_bytes_is_refused_and_the_same_assertion_read_again_passes() -> None:
    passkey = SoftPasskey()
    admins = Admins.with_threshold({PK: passkey.pinned()}, 1, PARTY)
    first = passkey.sign(b"decision one", count=7)
    assert admins.signature_problem(PK, first, b"decision one") is None
    assert admins.signature_problem(PK, first, b"decision one") is None  # the topic read again
    assert admins.signature_problem(PK, passkey.sign(b"decision two", count=8), b"decision two") is None
    assert admins.signature_problem(PK, passkey.sign(b"decision zero", count=6), b"decision zero") is None  # any order
    cloned = admins.signature_problem(PK, passkey.sign(b"decision three", count=7), b"decision three")
    assert cloned is not None and cloned.code == Code.PASSKEY_ASSERTION_INVALID
    assert "signature counter 7 was met before" in cloned.what


def test_a_synced_passkeys_counter_of_zero_says_nothing_and_is_not_kept() -> None:
    counters, passkey = SignCounters(), SoftPasskey().pinned()
    assert counters.counter_problem(passkey, 0, b"a" * 32) is None
    assert counters.counter_problem(passkey, 0, b"b" * 32) is None


def test_an_assertion_refused_before_its_counter_is_checked_leaves_no_counter_behind() -> None:
    """A forged assertion (another device's key, the passkey's credential id) is refused by its
    signature, so its counter value cannot shut out the real passkey's."""
    passkey = SoftPasskey()
    admins = Admins.with_threshold({PK: passkey.pinned()}, 1, PARTY)
    forged = SoftPasskey(credential_id=passkey.credential_id).sign(b"forged", count=3)
    assert admins.signature_problem(PK, forged, b"forged") is not None
    assert admins.signature_problem(PK, passkey.sign(b"real", count=3), b"real") is None


# -- an approval, by the worker and by the signer -------------------------------------------------


def _approval(intent: TransactionIntent, decided_at: datetime, **fields: Any) -> HumanApproval:
    return HumanApproval(
        intent_id=intent.intent_id,
        agent_id=intent.agent_id,
        intent_digest=intent.digest(),
        decision="approve",
        decided_at=decided_at,
        **fields,
    )


def _forgeries(passkey: SoftPasskey, approval: HumanApproval, other: HumanApproval) -> dict[str, HumanApproval]:
    """The passkey admin's approval of ``approval``'s intent, made every wrong way: each is
    ``approval`` with ``PK`` as its admin and a signature the passkey made otherwise. ``other``: an
    approval of another parked intent, which the passkey really signed."""
    signed = passkey_signed(other, passkey, PK)
    mine = approval.model_copy(update={"admin_key_id": PK})

    def made(**how: Any) -> HumanApproval:
        return passkey_signed(approval, passkey, PK, **how)

    return {
        "other bytes": mine.model_copy(update={"signature": passkey.sign(mine.signing_bytes() + b" ")}),
        "another origin": made(origin="https://evil.example"),
        "another relying party": made(rp_id="evil.example"),
        "user not verified": made(flags=USER_PRESENT),
        "replayed from another decision": mine.model_copy(update={"signature": signed.signature}),
        "malformed": mine.model_copy(update={"signature": "ab" * 64}),
        "another device": passkey_signed(approval, SoftPasskey(credential_id=passkey.credential_id), PK),
    }


FORGERIES = list(_forgeries(SoftPasskey(), _approval(World().intent(), T0), _approval(World().intent(), T0)))


def _worker(passkey: SoftPasskey) -> World:
    world = World()
    world.engine = world.new_engine(
        {},
        {},
        admins=Admins.with_threshold({ADMIN_ID: public_key_hex(world.admin_key), PK: passkey.pinned()}, 1, PARTY),
    )
    world.publish(world.policy(approval_threshold_eth="0.4", approval_timeout_s=600))
    return world


def _decided_by_the_worker(world: World, approval: HumanApproval) -> tuple[bool, dict[str, Any]]:
    """Whether the worker released the parked intent on ``approval``, and its audit's details."""
    emits = world.engine.on_human_approval(approval.to_bytes(), world.source(topics.APPROVALS), DECIDED)
    released, events = bool(on(emits, topics.INTENTS_APPROVED)), {e.action: e.details for e in audits(emits)}
    return released, events[AuditAction.INTENT_HUMAN_APPROVED if released else AuditAction.APPROVAL_REFUSED]


@pytest.mark.parametrize("forgery", FORGERIES)
def test_the_worker_refuses_a_passkey_approval_made_any_other_way(forgery: str) -> None:
    passkey = SoftPasskey()
    world = _worker(passkey)
    intent, other = world.intent("0.5"), world.intent("0.6")
    for parked in (intent, other):
        world.submit(parked)
    forged = _forgeries(passkey, _approval(intent, DECIDED), _approval(other, DECIDED))[forgery]
    released, details = _decided_by_the_worker(world, forged)
    assert not released and details["code"] == Code.PASSKEY_ASSERTION_INVALID, details
    assert "pk-admin's passkey" in details["reason"]
    assert world.engine.decisions[intent.intent_id].outcome == "parked"
    # The passkey admin's own approval of it is taken afterwards.
    assert _decided_by_the_worker(world, passkey_signed(_approval(intent, DECIDED), passkey, PK))[0]


def test_the_worker_takes_a_passkey_approval_and_refuses_its_counter_over_another_decision() -> None:
    passkey = SoftPasskey()
    world = _worker(passkey)
    intent, other = world.intent("0.5"), world.intent("0.6")
    for parked in (intent, other):
        world.submit(parked)
    released, details = _decided_by_the_worker(world, passkey_signed(_approval(intent, DECIDED), passkey, PK, count=9))
    assert released and details["approved_by"] == [PK]
    cloned = passkey_signed(_approval(other, DECIDED), passkey, PK, count=9)
    released, details = _decided_by_the_worker(world, cloned)
    assert not released and details["code"] == Code.PASSKEY_ASSERTION_INVALID
    assert "signature counter 9 was met before" in details["reason"]


def test_a_passkey_counts_towards_a_quorum_beside_an_ed25519_key() -> None:
    passkey, world = SoftPasskey(), World()
    admins = Admins.with_threshold({ADMIN_ID: public_key_hex(world.admin_key), PK: passkey.pinned()}, 2, PARTY)
    approval = sign_human_approval(_approval(world.intent(), DECIDED), world.admin_key, ADMIN_ID)
    assert admins.quorum(passkey_cosigned(approval, passkey, PK), "approval") == ([ADMIN_ID, PK], None)
    signers, short = admins.quorum(passkey_cosigned(approval, passkey, PK, origin="https://evil.example"), "approval")
    assert signers == [ADMIN_ID] and short is not None and short.code == Code.PASSKEY_ASSERTION_INVALID
    assert "pk-admin's passkey: the passkey's assertion does not verify" in short.what


def test_a_policy_a_passkey_signed_for_another_origin_is_refused_with_the_passkeys_code() -> None:
    passkey = SoftPasskey()
    world = _worker(passkey)
    policy = passkey_signed(world.policy(version=2), passkey, PK, origin="https://evil.example")
    (event,) = audits(world.publish(policy))
    assert event.action == AuditAction.POLICY_REFUSED and event.details["code"] == Code.PASSKEY_ASSERTION_INVALID
    (taken,) = audits(world.publish(passkey_signed(world.policy(version=3), passkey, PK)))
    assert taken.action == AuditAction.POLICY_UPDATED


def test_an_admin_set_a_passkey_admin_signed_for_another_origin_is_not_adopted() -> None:
    passkey = SoftPasskey()
    admins = Admins.with_threshold({PK: passkey.pinned()}, 1, PARTY)
    proposed = AdminSet(version=1, admins={PK: passkey.pinned()}, thresholds=dict(admins.thresholds), issued_at=T0)
    refused = admins.adopt(passkey_signed(proposed, passkey, PK, rp_id="evil.example"))
    assert refused is not None and refused.code == Code.PASSKEY_ASSERTION_INVALID and admins.version == 0
    assert admins.adopt(passkey_signed(proposed, passkey, PK)) is None and admins.version == 1


def _lone(tmp_path: Path, passkey: SoftPasskey) -> LoneSigner:
    # No node: an approval the signer believes goes on to ask one for the nonce (CHAIN_RPC_FAILED).
    return LoneSigner(
        tmp_path, "http://127.0.0.1:9", passkeys={PK: passkey.pinned()}, party=PARTY, approval_threshold_eth="0.4"
    )


def _signed_by_the_signer(
    lone: LoneSigner, intent: TransactionIntent, approval: HumanApproval | None
) -> IntentRejected:
    outcome, _, _ = asyncio.run(lone.handle(intent, approval))
    assert isinstance(outcome, IntentRejected) and outcome.stage == Stage.SIGNING, outcome
    return outcome


@pytest.mark.parametrize("forgery", FORGERIES)
def test_the_signer_refuses_a_passkey_approval_made_any_other_way(tmp_path: Path, forgery: str) -> None:
    passkey = SoftPasskey()
    lone = _lone(tmp_path, passkey)
    now = datetime.now(timezone.utc)
    intent, other = lone.intent(to=DEST, value="0.5"), lone.intent(to=DEST, value="0.6")
    forged = _forgeries(passkey, _approval(intent, now), _approval(other, now))[forgery]
    refused = _signed_by_the_signer(lone, intent, forged)
    assert refused.code == Code.PASSKEY_ASSERTION_INVALID and "pk-admin's passkey" in refused.reason, refused


def test_the_signer_takes_a_passkey_approval_and_refuses_its_counter_over_another_decision(tmp_path: Path) -> None:
    passkey = SoftPasskey()
    lone = _lone(tmp_path, passkey)
    now = datetime.now(timezone.utc)
    intent, other = lone.intent(to=DEST, value="0.5"), lone.intent(to=DEST, value="0.6")
    unapproved = lone.intent(to=DEST, value="0.7")
    assert _signed_by_the_signer(lone, unapproved, None).code == Code.HUMAN_APPROVAL_REQUIRED  # it needs one
    approved = IntentApproved(
        intent=intent,
        policy=lone.policy,
        approved_at=now,
        human_approval=passkey_signed(_approval(intent, now), passkey, PK, count=4),
    )
    assert lone.signer.judging.human_approval(approved, now) is not None
    # Believed, it goes on to the nonce, on a node this test does not run.
    assert _signed_by_the_signer(lone, intent, approved.human_approval).code == Code.CHAIN_RPC_FAILED
    cloned = passkey_signed(_approval(other, now), passkey, PK, count=4)
    refused = _signed_by_the_signer(lone, other, cloned)
    assert refused.code == Code.PASSKEY_ASSERTION_INVALID and "signature counter 4 was met before" in refused.reason


# -- the command line -----------------------------------------------------------------------------


def test_a_proposal_that_makes_an_admins_key_a_passkey_shows_its_fingerprint_as_a_passkeys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`warden approvals list/show`: an admin whose Ed25519 key becomes a passkey is a changed key,
    old and new fingerprints, the new one marked as a passkey; a passkey admin added shows its own."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from infra.cli.approvals import _print_proposal
    from schemas.admins import ACTIONS, digest_of
    from schemas.auth import sign_admin_set
    from sdk.changes import InForce, change_of

    keys = {name: Ed25519PrivateKey.generate() for name in "ab"}
    in_force = Admins.with_threshold({name: public_key_hex(k) for name, k in keys.items()}, 1, PARTY)
    b_passkey, added = SoftPasskey(), SoftPasskey()
    proposed = AdminSet(
        version=1,
        admins={"a": public_key_hex(keys["a"]), "b": b_passkey.pinned(), PK: added.pinned()},
        thresholds=dict.fromkeys(ACTIONS, 1),
        issued_at=T0,
    )
    proposal = sign_admin_set(proposed, keys["a"], "a")
    digest = digest_of(proposal.signing_bytes())
    change = change_of(proposal, InForce(in_force))
    rows = {row["admin_id"]: row for row in change["admins"]}
    assert rows["b"]["change"] == "key_changed" and rows[PK]["change"] == "added"
    assert rows["b"]["new_key"] == {
        "fingerprint": passkey_fingerprint(b_passkey.pinned()),
        "public_key": b_passkey.pinned(),
    }
    _print_proposal(
        {
            "proposal_id": digest,
            "digest": digest,
            "what": "admin set v1",
            "proposed_by": "a",
            "change": change,
            "signed_by": ["a"],
            "needed": 1,
            "expires_at": "2026-11-22T10:00:00+00:00",
        }
    )
    out = capsys.readouterr().out
    old_b = key_fingerprint(public_key_hex(keys["b"]))
    assert f"{old_b} -> passkey {passkey_fingerprint(b_passkey.pinned())}  KEY CHANGED" in out
    assert f"added {PK} (passkey {passkey_fingerprint(added.pinned())})" in out


def test_admins_propose_takes_a_passkey_and_says_what_a_malformed_one_must_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`warden admins propose --admins`: a passkey is an admin key there; a malformed one is refused
    before anything is signed, saying which admin and what a passkey key is."""
    from infra.cli import admins as cli

    async def in_force(settings: Settings) -> Admins:
        return Admins.with_threshold({"local-admin": "0x" + "11" * 32}, 1)

    monkeypatch.setattr(cli, "admins_in_force", in_force)
    monkeypatch.setenv("WARDEN_HOME", str(tmp_path))
    args = dataclasses.make_dataclass("Args", ["admins", "quorum", "json"])
    assert cli.cmd_propose(args(f"local-admin=0x{'11' * 32},{PK}=passkey:not-a-key", "1", True)) == 1
    said = capsys.readouterr().err
    assert "admin pk-admin" in said and "passkey:<credential id>:<COSE public key>" in said


def test_the_signer_refuses_a_policy_a_passkey_signed_for_another_origin_and_remembers_nothing(tmp_path: Path) -> None:
    """A policy record is anyone's to write: its refusal has the passkey's code and decides nothing
    about the intent, which the signer judges again under the policy in force."""
    passkey = SoftPasskey()
    lone = _lone(tmp_path, passkey)
    intent, good = lone.intent(to=DEST, value="0.01"), lone.policy
    lone.policy = passkey_signed(
        good.model_copy(update={"version": good.version + 1}), passkey, PK, origin="https://evil.example"
    )
    refused = _signed_by_the_signer(lone, intent, None)
    assert refused.code == Code.PASSKEY_ASSERTION_INVALID and "the policy is not signed" in refused.reason
    lone.policy = good
    assert _signed_by_the_signer(lone, intent, None).code == Code.CHAIN_RPC_FAILED  # judged again: on to the node


def test_a_passkey_admin_signs_nothing_with_a_key_file(tmp_path: Path) -> None:
    """`warden approvals sign` as a passkey admin: refused before any key file is made or any
    signature published, saying that a passkey admin signs in the console."""
    from runtime.proposals import Gathered
    from sdk.quorum import NotTheKeyInForce, add_signature

    passkey, world = SoftPasskey(), World()
    approval = _approval(world.intent(), DECIDED)
    gathered = Gathered("ab" * 32, "approval", approval, DECIDED, 1, in_force={PK: passkey.pinned()})
    with pytest.raises(NotTheKeyInForce, match="key in force is a passkey: a passkey admin signs in the web console"):
        asyncio.run(add_signature(Settings(home=tmp_path), gathered, PK, DECIDED))
    assert not (tmp_path / "admin").exists() and gathered.signatures == {}
