"""`agent_spend_24h` holds what the streams worker's windows hold now, as `rules.sign_only.held`
and `streams.decide` count it: a Bitcoin payment, sent or sign-only, whatever its age until its
fate is final; then what the chain took from that moment (``mined``: its spend; ``cancelled``:
the cancellation's fee), or nothing (``conflicted``); an EVM broadcast transaction the node lost
(``dropped``) stays counted as its worst case, as the worker keeps it. Driven on a chDB ledger
built of the audit events the services write."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from ledger.store import ChdbStore
from runtime.clock import utcnow
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, event_id
from tests.ledger_support import chdb_ledger, intent_digest_of

CHAIN = "bitcoin-regtest"
BTC_KEY = f"{CHAIN}:BTC"


class _Events:
    """The audit events of a few intents, each its own agent, written as the services write them."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def add(self, agent: str, actor: str, action: AuditAction, at: datetime, **details: Any) -> None:
        intent = f"intent-{agent}"
        self.events.append(
            AuditEvent(
                event_id=event_id(intent, f"{action}-{len(self.events)}"),
                actor=actor,
                action=action,
                resource=f"intent:{intent}",
                ts=at,
                intent_id=intent,
                agent_id=agent,
                details={"intent_digest": intent_digest_of(intent), **details},
            )
        )

    def bitcoin(
        self, agent: str, approved_at: datetime, sats: int, *fates: tuple[AuditAction, datetime, str, int]
    ) -> None:
        """A Bitcoin payment reserved at ``approved_at`` for ``sats``, then the signer's records of it."""
        self.add(
            agent,
            "service:streams",
            AuditAction.INTENT_APPROVED,
            approved_at,
            chain=CHAIN,
            spend_wei="0",
            asset_spend={BTC_KEY: str(sats)},
        )
        for action, at, status, spend in fates:
            final = action in (AuditAction.BITCOIN_FINAL, AuditAction.BITCOIN_CONFLICTED)
            self.add(
                agent, "service:signer", action, at, chain=CHAIN, status=status, final=final, spend={"BTC": str(spend)}
            )


@pytest.fixture(scope="module")
def spend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], tuple[int, int]]]:
    now = utcnow()
    day, hour = timedelta(days=1), timedelta(hours=1)
    e = _Events()
    e.bitcoin(
        "sign-only-2d-0", now - 2 * day, 70_000, (AuditAction.BITCOIN_SIGN_ONLY, now - 2 * day, "sign_only", 70_000)
    )
    e.bitcoin("sent-not-final-2d-1", now - 2 * day, 50_000, (AuditAction.BITCOIN_MINED, now - 2 * day, "mined", 50_000))
    e.bitcoin(
        "conflicted-1h-2",
        now - 2 * hour,
        40_000,
        (AuditAction.BITCOIN_SIGN_ONLY, now - 2 * hour, "sign_only", 40_000),
        (AuditAction.BITCOIN_CONFLICTED, now - hour, "conflicted", 40_000),
    )
    e.bitcoin(
        "mined-final-1h-3",
        now - 3 * day,
        30_000,
        (AuditAction.BITCOIN_SIGN_ONLY, now - 3 * day, "sign_only", 30_000),
        (AuditAction.BITCOIN_FINAL, now - hour, "mined", 30_000),
    )
    e.bitcoin(
        "cancelled-1h-4",
        now - 3 * day,
        20_000,
        (AuditAction.BITCOIN_SIGN_ONLY, now - 3 * day, "sign_only", 20_000),
        (AuditAction.BITCOIN_CANCELLED, now - 2 * hour, "cancelled", 300),
        (AuditAction.BITCOIN_FINAL, now - hour, "cancelled", 300),
    )
    e.bitcoin("mined-final-2d-5", now - 3 * day, 10_000, (AuditAction.BITCOIN_FINAL, now - 2 * day, "mined", 10_000))
    wei = 10**15
    e.add(
        "evm-dropped-6",
        "service:streams",
        AuditAction.INTENT_APPROVED,
        now - hour,
        chain="anvil",
        spend_wei=str(wei),
        asset_spend={},
    )
    e.add(
        "evm-dropped-6",
        "service:signer",
        AuditAction.TX_SIGNED,
        now - hour,
        chain="anvil",
        status="broadcast",
        value_wei="0",
    )
    e.add(
        "evm-dropped-6",
        "service:signer",
        AuditAction.TX_DROPPED,
        now - hour / 2,
        chain="anvil",
        status="dropped",
        final=True,
        fee_wei="0",
    )
    with chdb_ledger(tmp_path_factory.mktemp("ledger"), sorted(e.events, key=lambda ev: ev.ts)) as store:
        yield _agent_spend(store)


def _agent_spend(store: ChdbStore) -> dict[tuple[str, str], tuple[int, int]]:
    rows = store.arrow(
        "SELECT agent_id, asset, toString(spend_24h) AS spend, held_intents FROM agent_spend_24h"
    ).to_pylist()
    return {(r["agent_id"], r["asset"]): (int(r["spend"]), int(r["held_intents"])) for r in rows}


def test_a_bitcoin_payment_not_final_counts_whatever_its_age(spend: dict[tuple[str, str], tuple[int, int]]) -> None:
    assert spend.get(("sign-only-2d-0", BTC_KEY)) == (70_000, 1), spend
    assert spend.get(("sent-not-final-2d-1", BTC_KEY)) == (50_000, 1), spend


def test_a_final_bitcoin_payment_counts_what_the_chain_took_from_then(
    spend: dict[tuple[str, str], tuple[int, int]],
) -> None:
    assert spend.get(("mined-final-1h-3", BTC_KEY)) == (30_000, 0), spend
    assert spend.get(("cancelled-1h-4", BTC_KEY)) == (300, 0), spend
    assert ("mined-final-2d-5", BTC_KEY) not in spend, spend  # final two days ago: out of the window
    assert ("conflicted-1h-2", BTC_KEY) not in spend, spend  # its bytes can never spend


def test_an_evm_transaction_the_node_lost_stays_counted(spend: dict[tuple[str, str], tuple[int, int]]) -> None:
    assert spend.get(("evm-dropped-6", "native")) == (10**15, 0), spend
