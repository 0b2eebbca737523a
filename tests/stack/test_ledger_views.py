"""The analyst views say what the judge counts, on the real stack's ledger: `agent_spend_24h` holds,
per asset, what the streams worker's rolling windows hold (an EVM transaction's value and its
worst-case fee, a parked intent's reservation, nothing of a denied one; Solana's lamports with the
fee; Bitcoin's satoshis paid to others with the fee), checked against the figure the judge itself
measured a refused intent against; `intent_status` shows a parked intent as parked, with where the
admins' decision stands."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client as LedgerClient
from embit import ec, script
from embit.networks import NETWORKS
from solders.keypair import Keypair

from infra.cli.fund import fund
from infra.stack.local import LocalStack
from infra.stack.provision import provision_agent, provision_bitcoin_agent, provision_solana_agent
from runtime.config import Settings
from runtime.kafka import end_offsets
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentParked, IntentRejected
from sdk.client import OUTCOME_TOPICS, Client, Outcome, new_intent, wait_outcomes
from sdk.transfers import transfer_fields
from tests.support import warden

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
ETH = 10**18


def _ledger(settings: Settings) -> LedgerClient:
    host, _, port = settings.ledger_http.rpartition(":")
    return clickhouse_connect.get_client(host=host, port=int(port))


def _submitted(settings: Settings, run: Callable[..., Any], intent: TransactionIntent) -> Outcome:
    """``intent`` published, and its first outcome (a parked intent's is its parking)."""

    async def go() -> Outcome:
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:
            await (await client.submit(intent))
        return (await wait_outcomes(settings, [intent], 90, start, final=False))[intent.intent_id]

    outcome: Outcome = run(go())
    return outcome


def _transfer(settings: Settings, run: Callable[..., Any], agent: Any, chain: str, to: str, value: str) -> Outcome:
    """A plain transfer of ``value`` to ``to`` on ``chain``, written as `warden submit --to --value` writes it."""
    fields = run(transfer_fields(settings, chain, agent.policy, to, value))
    return _submitted(settings, run, new_intent(agent.intent_key, agent_id=agent.agent_id, chain=chain, **fields))


def _judged_spent(refused: Outcome, fact: str) -> int:
    """What the judge counted as spent in the last 24 h when it refused ``refused`` at a limit."""
    assert isinstance(refused, IntentRejected) and refused.code == Code.DAILY_LIMIT_EXCEEDED, refused
    return int(refused.verdicts[-1].facts[fact])


def _view_spend(ledger: LedgerClient, refused: Outcome, asset: str) -> int:
    """``agent_spend_24h``'s spend of ``asset`` for ``refused``'s agent, once the ledger holds the
    refusal (and so everything the worker decided for the agent before it)."""
    deadline = time.monotonic() + 120
    while not ledger.query(
        f"SELECT count() FROM audit_log WHERE intent_id = '{refused.intent_id}' AND action = 'intent.rejected'"
    ).result_rows[0][0]:
        assert time.monotonic() < deadline, f"the ledger never held the refusal of {refused.intent_id}"
        time.sleep(0.5)
    rows = ledger.query(
        f"SELECT spend_24h FROM agent_spend_24h WHERE agent_id = '{refused.agent_id}' AND asset = '{asset}'"
    ).result_rows
    return int(rows[0][0]) if rows else 0


def _status(ledger: LedgerClient, intent_id: str) -> tuple[Any, ...]:
    rows = ledger.query(
        "SELECT final_status, approval, approval_expires_at IS NOT NULL, failed_code FROM intent_status "
        f"WHERE intent_id = '{intent_id}'"
    ).result_rows
    assert len(rows) == 1, rows
    return tuple(rows[0])


def test_spend_and_status_views_count_what_the_judge_counts_for_every_family(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    ledger = _ledger(settings)
    suffix = os.urandom(3).hex()

    # EVM: a signed transfer and a parked one both count, each its value and worst-case fee.
    evm = run(
        provision_agent(
            settings,
            f"views-evm-{suffix}",
            tx_to_allowlist=(DEST,),
            tx_max_value_eth="1",
            tx_daily_limit_eth="0.1",
            approval_threshold_eth="0.03",
            approval_timeout_s=600,
        )
    )

    def evm_intent(value: str) -> Outcome:
        return _submitted(
            settings, run, new_intent(evm.intent_key, agent_id=evm.agent_id, chain="anvil", to=DEST, value=value)
        )

    signed, parked = evm_intent("0.02"), evm_intent("0.05")
    assert isinstance(parked, IntentParked), parked
    assert not isinstance(signed, IntentRejected | IntentParked), signed
    over = evm_intent("0.05")
    judged = _judged_spent(over, "spent_wei")
    assert judged > 7 * ETH // 100  # the fees count too
    assert _view_spend(ledger, over, "native") == judged
    assert _status(ledger, parked.intent_id) == ("parked", "awaiting", True, "")

    # The parked one denied: its reservation is released, by the worker and in the view.
    denied = warden(settings, "approvals", "deny", parked.intent_id, "--json")
    assert denied.returncode == 0, denied.stderr
    after = evm_intent("0.09")
    judged = _judged_spent(after, "spent_wei")
    assert 2 * ETH // 100 < judged < 3 * ETH // 100
    assert _view_spend(ledger, after, "native") == judged
    assert _status(ledger, parked.intent_id) == ("rejected", "denied", True, Code.APPROVAL_DENIED)

    # Solana: lamports, the fee included, under the network's SOL key.
    alice = str(Keypair().pubkey())
    sol = run(
        provision_solana_agent(
            settings, f"views-sol-{suffix}", allowlist=(alice,), max_lamports_per_tx=10**9, daily_limit_lamports=10**9
        )
    )
    assert not isinstance(_transfer(settings, run, sol, "solana-local", alice, "0.6"), IntentRejected)
    over = _transfer(settings, run, sol, "solana-local", alice, "0.5")
    judged = _judged_spent(over, "spent")
    assert judged > 6 * 10**8  # the fee counts too
    assert _view_spend(ledger, over, "solana-local:SOL") == judged

    # Bitcoin: satoshis paid to others and the fee, under the network's BTC key; two coins, so the
    # second payment has one of its own to spend.
    bob = script.p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key()).address(NETWORKS["regtest"])
    btc = run(
        provision_bitcoin_agent(
            settings, f"views-btc-{suffix}", allowlist=(bob,), max_sats_per_tx=10**8, daily_limit_sats=6 * 10**7
        )
    )
    for _ in range(2):
        run(fund(settings, "bitcoin-regtest", btc.address, 5 * 10**7))
    assert not isinstance(_transfer(settings, run, btc, "bitcoin-regtest", bob, "0.3"), IntentRejected)
    over = _transfer(settings, run, btc, "bitcoin-regtest", bob, "0.35")
    judged = _judged_spent(over, "spent")
    assert judged > 3 * 10**7  # the fee counts too
    assert _view_spend(ledger, over, "bitcoin-regtest:BTC") == judged
