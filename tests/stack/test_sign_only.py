"""EVM sign-only transactions stay counted until their bytes can no longer spend.

The bytes of a sign-only transaction do not expire and the signer hands out consecutive nonces,
so an agent could sign its daily limit every day, keep the bytes, and broadcast several days'
worth at once. Here an in-process signer (as `signer.main` runs it) on a private Anvil signs under
a clock moved ahead a day at a time: what it signed sign-only is held in its window until the
chain's final block shows the nonce taken, then counts from its landing; a cancellation (an
admin's signed denial, or the policy's TTL) takes the nonce with a 0-value transfer, after which
the original bytes can never land and their spend has left the window.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.clock import to_us, utcnow
from runtime.rpc import JsonRpc, RpcError
from schemas import topics
from schemas.actions import AuditAction
from schemas.auth import sign_human_approval
from schemas.codes import Code
from schemas.emit import Emit, Source
from schemas.outcomes import HumanApproval, IntentRejected, SignedTransaction
from schemas.stages import Stage
from tests.tracker_support import Harness, on_chain, private_chain

DAY = timedelta(hours=24)
ETH = 10**18


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with private_chain(tmp_path_factory.mktemp("sign-only-chain")) as rpc_url:
        yield rpc_url


async def settle(h: Harness, now: datetime) -> None:
    """Two blocks on top (final on this chain), then the signer's watch looks at ``now`` (a
    minute after its last look, which it waits for: `rules.sign_only.look_every_us`)."""
    await h.node.call("anvil_mine", "0x2")
    await h.watch_sign_only(now)


def refused(outcome: SignedTransaction | IntentRejected) -> tuple[str, str]:
    assert isinstance(outcome, IntentRejected), outcome
    return outcome.stage, outcome.code


def test_a_days_sign_only_spend_holds_until_it_lands_then_counts_from_its_landing(chain: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> SignedTransaction:
        day0 = utcnow()
        first = await h.sign_only(day0, value="0.009")
        assert isinstance(first, SignedTransaction) and first.status == "sign_only"
        # A day and an hour later, the first day's bytes are still unspent, so still counted.
        day1 = day0 + DAY + timedelta(hours=1)
        assert refused(await h.sign_only(day1, value="0.009")) == (Stage.SIGNING, Code.DAILY_LIMIT_EXCEEDED)
        await h.watch_sign_only(day1)  # nothing landed: nothing changes
        assert h.state.agent(h.agent).outstanding(to_us(day1)) == first.max_spend_wei
        # The agent broadcasts the first day's bytes now: they count from the moment they landed.
        await h.node.call("eth_sendRawTransaction", first.signed_tx)
        landing = day1 + timedelta(minutes=1)
        await settle(h, landing)
        landed = h.records(first.intent_id)[-1]
        assert (landed.status, landed.final) == ("mined", True)
        agent = h.state.agent(h.agent)
        assert agent.outstanding(to_us(landing)) == 0
        assert landed.fee_wei is not None
        assert agent.spent(to_us(landing)) == first.value_wei + landed.fee_wei
        assert refused(await h.sign_only(landing + timedelta(hours=23), value="0.009")) == (
            Stage.SIGNING,
            Code.DAILY_LIMIT_EXCEEDED,
        )
        second = await h.sign_only(landing + DAY, value="0.009")
        assert isinstance(second, SignedTransaction) and second.status == "sign_only"
        return first

    h, first = on_chain(tmp_path, chain, scenario, automining=True, tx_daily_limit_eth="0.01")
    assert AuditAction.TX_MINED in h.audit_actions(first.intent_id)


def test_sign_only_spend_outstanding_is_bounded_by_the_policy(chain: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> tuple[SignedTransaction, SignedTransaction | IntentRejected]:
        now = utcnow()
        first = await h.sign_only(now, value="0.001")
        assert isinstance(first, SignedTransaction)
        return first, await h.sign_only(now, value="0.001")

    h, (first, second) = on_chain(tmp_path, chain, scenario, automining=True, max_sign_only_outstanding=15 * 10**14)
    assert refused(second) == (Stage.SIGNING, Code.SIGN_ONLY_OUTSTANDING_EXCEEDED)


def deny(h: Harness, signed: SignedTransaction, now: datetime, key: Ed25519PrivateKey | None = None) -> list[Emit]:
    """An admin's signed denial of ``signed``'s intent (``key``: another than the pinned admin's),
    handed to the signer as it reads warden.approvals: what it publishes."""
    denial = sign_human_approval(
        HumanApproval(
            intent_id=signed.intent_id,
            agent_id=h.agent,
            intent_digest=signed.intent_digest,
            decision="deny",
            reason="bytes leaked",
            decided_at=now,
        ),
        key or h.admin_key,
        "test-admin",
    )
    h.offset += 1
    emits = h.signer.sign_only.cancel_requested(
        denial.to_bytes(), Source(topics.APPROVALS, 0, h.offset, h.agent.encode()), now
    )
    h.published += emits
    return emits


def test_an_admins_cancellation_takes_the_nonce_and_the_original_bytes_never_land(chain: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> tuple[SignedTransaction, int, int]:
        now = utcnow()
        original = await h.sign_only(now, value="0.009")
        assert isinstance(original, SignedTransaction)
        # A denial no pinned admin signed is audited and cancels nothing.
        assert deny(h, original, now, key=Ed25519PrivateKey.generate())
        await h.watch_sign_only(now)
        assert h.audit_actions(original.intent_id)[-1] == AuditAction.TX_CANCEL_REFUSED
        assert h.records(original.intent_id)[-1].status == "sign_only"
        assert deny(h, original, now) == []
        await h.watch_sign_only(now)  # signed, recorded and sent (mined at once here)
        cancelling = h.records(original.intent_id)[-1]
        assert (cancelling.status, cancelling.final) == ("cancelled", False)
        assert h.state.agent(h.agent).outstanding(to_us(now)) > 0  # held until the cancellation is final
        now += timedelta(minutes=1)
        await settle(h, now)
        with pytest.raises(RpcError, match="nonce too low"):
            await h.node.call("eth_sendRawTransaction", original.signed_tx)
        agent = h.state.agent(h.agent)
        return original, agent.outstanding(to_us(now)), agent.spent(to_us(now))

    h, (original, outstanding, spent) = on_chain(tmp_path, chain, scenario, automining=True)
    final = h.records(original.intent_id)[-1]
    assert (final.status, final.final, final.replaces) == ("cancelled", True, (original.tx_hash,))
    assert final.to == final.from_ and final.value_wei == 0 and final.nonce == original.nonce
    assert outstanding == 0 and spent == final.fee_wei  # the cancellation's fee, not the 0.009
    assert h.audit_actions(original.intent_id)[-2:] == [AuditAction.TX_CANCELLED, AuditAction.TX_FINAL]


def test_the_policys_ttl_cancels_a_sign_only_transaction_not_landed_in_time(chain: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> tuple[SignedTransaction | IntentRejected, str]:
        now = utcnow()
        original = await h.sign_only(now)
        await h.watch_sign_only(now + timedelta(seconds=59))
        before = h.records(original.intent_id)[-1].status
        await h.watch_sign_only(now + timedelta(seconds=60))
        await settle(h, now + timedelta(minutes=2))
        return original, before

    h, (original, before) = on_chain(tmp_path, chain, scenario, automining=True, sign_only_ttl_s=60)
    final = h.records(original.intent_id)[-1]
    assert before == "sign_only" and (final.status, final.final) == ("cancelled", True)
    assert "sign_only_ttl_s" in (final.error or "")


def test_while_the_chain_cannot_be_read_the_spend_stays_counted(chain: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> tuple[SignedTransaction, int, int]:
        now = utcnow()
        signed = await h.sign_only(now, value="0.009")
        assert isinstance(signed, SignedTransaction), signed
        await h.node.call("eth_sendRawTransaction", signed.signed_tx)
        await h.node.call("anvil_mine", "0x2")
        reachable, down = h.signer.sign_only.node_for, JsonRpc("http://127.0.0.1:9", timeout_s=2)  # nothing listens
        h.signer.sign_only.node_for = lambda chain: down
        await h.watch_sign_only(now)
        held = h.state.agent(h.agent).outstanding(to_us(now))
        h.signer.sign_only.node_for = reachable
        await down.close()
        await settle(h, now + timedelta(minutes=1))
        return signed, held, h.state.agent(h.agent).outstanding(to_us(now + timedelta(minutes=1)))

    h, (signed, held, after) = on_chain(tmp_path, chain, scenario, automining=True)
    assert held == signed.max_spend_wei and after == 0
    assert h.records(signed.intent_id)[-1].status == "mined"
