"""What a Bitcoin transaction pays and how much of the node one intent may ask for, on the real stack
and its regtest node (btcd), with PSBTs written here with embit: a fee at exactly the policy's
ceiling per virtual byte pays no more than that ceiling on the transaction the node holds, by the
node's own count of its size; an output below the dust threshold is refused by the worker and by
the signer; a PSBT of more inputs than Warden reads for one intent is refused without asking the
node about them, by the worker and by the signer, while another agent's payment is decided."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest
from embit import ec, script
from embit.networks import NETWORKS
from embit.psbt import PSBT
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from btc import psbt as psbts
from btc import wallet
from infra.cli.fund import fund
from infra.stack.local import LocalStack
from infra.stack.provision import Agent, provision_bitcoin_agent
from rules.bitcoin import MAX_INPUTS
from runtime import bitcoin
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentApproved, IntentRejected, SignedBitcoinTransaction
from schemas.stages import Stage
from sdk.client import Client, new_intent
from sdk.outcomes import OUTCOME_TOPICS, Outcome, wait_outcomes

CHAIN = "bitcoin-regtest"
CEILING = 2  # sat/vB: the policy's max_fee_rate_sat_vb, and the rate every PSBT here pays at most
Run = Callable[[Coroutine[Any, Any, Any]], Any]


def _stranger() -> tuple[str, bytes]:
    """A fresh regtest P2WPKH address nobody here holds the key of, and its script."""
    out = script.p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key())
    return out.address(NETWORKS["regtest"]), out.data


def _psbt(inputs: Sequence[tuple[str, int, int, bytes]], outputs: Sequence[tuple[bytes, int]]) -> bytes:
    """A PSBT spending ``inputs`` (txid, vout, satoshis, script) into ``outputs`` (script, satoshis)."""
    tx = Transaction(
        version=2,
        vin=[TransactionInput(bytes.fromhex(txid), vout, sequence=0xFFFFFFFD) for txid, vout, _, _ in inputs],
        vout=[TransactionOutput(amount, script.Script(spk)) for spk, amount in outputs],
    )
    psbt = PSBT(tx)
    for scope, (_, _, amount, spk) in zip(psbt.inputs, inputs, strict=True):
        scope.witness_utxo = TransactionOutput(amount, script.Script(spk))
    return bytes(psbt.serialize())


def _at_the_ceiling(
    coins: Sequence[bitcoin.Utxo], outputs: Sequence[tuple[bytes, int]], rest: bytes, own: wallet.OwnScripts
) -> bytes:
    """A PSBT spending ``coins`` into ``outputs`` and what is left to ``rest``, less a fee of exactly
    `CEILING` times the virtual size the judge counts (`btc.psbt.vsize`): the largest fee the
    policy allows."""
    inputs = [(c.txid, c.vout, c.amount, c.script) for c in coins]
    size = psbts.vsize(psbts.read(_psbt(inputs, [*outputs, (rest, 0)])), own)
    left = sum(c.amount for c in coins) - sum(amount for _, amount in outputs) - CEILING * size
    return _psbt(inputs, [*outputs, (rest, left)])


def _nowhere(own: wallet.OwnScripts, count: int, to: bytes) -> bytes:
    """A PSBT of ``count`` inputs of the agent's script at outpoints no transaction ever made."""
    inputs = [(os.urandom(32).hex(), 0, 10_000, own.p2wpkh) for _ in range(count)]
    return _psbt(inputs, [(to, count * 10_000 - 100_000)])


def _own(agent: Agent) -> wallet.OwnScripts:
    assert agent.policy.bitcoin is not None
    return wallet.own_scripts(bytes.fromhex(agent.policy.bitcoin.public_key))


def _intent(agent: Agent, raw: bytes, broadcast: bool = True) -> TransactionIntent:
    return new_intent(
        agent.intent_key,
        agent_id=agent.agent_id,
        chain=CHAIN,
        intent_type="bitcoin_psbt",
        bitcoin_psbt=base64.b64encode(raw).decode(),
        broadcast=broadcast,
    )


async def _decided(
    settings: Settings, intents: Sequence[TransactionIntent], approved: Sequence[tuple[Agent, TransactionIntent]] = ()
) -> dict[str, Outcome]:
    """Each intent submitted, and each of ``approved`` written straight to warden.intents.approved
    (as a writer of that topic could, with no worker's say), in that order: their outcomes, final."""
    start = await end_offsets(settings, OUTCOME_TOPICS)
    async with Client(settings) as client:
        for intent in intents:
            await client.submit(intent)
        for agent, intent in approved:
            forged = IntentApproved(
                intent=intent, policy=agent.policy, verdicts=(), approved_at=utcnow(), intent_digest=intent.digest()
            )
            await client.send(topics.INTENTS_APPROVED, intent.agent_id, forged.to_bytes())
        await client.flush()
    every = [*intents, *(intent for _, intent in approved)]
    return await wait_outcomes(settings, every, 180, start)


async def _node_vsize(settings: Settings, txid: str) -> int:
    """The virtual size the node gives the transaction it holds (btcd's `getrawtransaction`)."""
    node = JsonRpc(settings.rpc_url_for(CHAIN), timeout_s=30)
    try:
        answer = await node.call("getrawtransaction", txid, 1)
    finally:
        await node.close()
    return int(answer["vsize"])


async def _coins(settings: Settings, address: str) -> list[bitcoin.Utxo]:
    node = JsonRpc(settings.rpc_url_for(CHAIN), timeout_s=30)
    try:
        return await bitcoin.unspent(node, address)
    finally:
        await node.close()


@pytest.fixture(scope="module")
def payer(stack: LocalStack) -> tuple[Agent, str, bytes]:
    """An agent paying bob (the address and script returned beside it) at most `CEILING` sat/vB,
    with 0.1 BTC from the node's funder."""
    bob, bob_script = _stranger()
    agent: Agent = asyncio.run(
        provision_bitcoin_agent(
            stack.settings, f"btc-fees-{os.urandom(3).hex()}", allowlist=(bob,), max_fee_rate_sat_vb=CEILING
        )
    )
    asyncio.run(fund(stack.settings, CHAIN, agent.address, 10_000_000))
    return agent, bob, bob_script


def test_a_fee_at_the_ceiling_pays_no_more_per_virtual_byte_than_the_ceiling_on_the_node(
    stack: LocalStack, run: Run, payer: tuple[Agent, str, bytes]
) -> None:
    """The agent splits its coin into 40 of its own at the ceiling, then pays all 40 to bob at the
    ceiling. The judge counts each signature's bytes before it exists; the node counts the
    transaction it holds, and that count says what the fee per virtual byte was."""
    settings = stack.settings
    agent, _, bob_script = payer
    own = _own(agent)
    split = _intent(
        agent, _at_the_ceiling(run(_coins(settings, agent.address)), [(own.p2wpkh, 200_000)] * 40, own.p2wpkh, own)
    )
    (signed,) = run(_decided(settings, [split])).values()
    assert isinstance(signed, SignedBitcoinTransaction) and signed.status == "mined", signed
    coins = [c for c in run(_coins(settings, agent.address)) if c.txid == signed.txid and c.amount == 200_000]
    assert len(coins) == 40, coins
    paid = _intent(agent, _at_the_ceiling(coins, [], bob_script, own))
    (outcome,) = run(_decided(settings, [paid])).values()
    for done in (signed, outcome):
        if isinstance(done, IntentRejected):  # the signer's own count found it over: refused, nothing sent
            assert (done.stage, done.code) == (Stage.SIGNING, Code.BITCOIN_SIGNED_FEE_RATE_OVER_CEILING), done
            continue
        assert isinstance(done, SignedBitcoinTransaction) and done.status == "mined", done
        on_the_node = run(_node_vsize(settings, done.txid))
        assert done.fee_sats <= CEILING * on_the_node, (done.fee_sats, on_the_node)
        assert done.vsize == on_the_node  # the size signed, as the judge counted it, is the node's
    assert isinstance(outcome, SignedBitcoinTransaction)  # it is at the ceiling, not above: it is signed


def test_more_inputs_than_are_read_are_refused_by_the_worker_and_the_signer_while_a_payment_is_decided(
    stack: LocalStack, run: Run, payer: tuple[Agent, str, bytes]
) -> None:
    """One agent sends two PSBTs of 1,250 inputs that exist nowhere (a PSBT of 100,000 bytes holds
    that many), one of `MAX_INPUTS` (read from the node in one batch) and, straight to the signer,
    one more of 1,250; another agent pays bob, submitted last."""
    settings = stack.settings
    agent, _, bob_script = payer
    own = _own(agent)
    hoarder: Agent = run(provision_bitcoin_agent(settings, f"btc-many-{os.urandom(3).hex()}"))
    theirs = _own(hoarder)
    big = [_intent(hoarder, _nowhere(theirs, 1_250, theirs.p2tr)) for _ in range(2)]
    batch = _intent(hoarder, _nowhere(theirs, MAX_INPUTS, theirs.p2tr))
    payment = _intent(
        agent, _at_the_ceiling(run(_coins(settings, agent.address)), [(bob_script, 1_000_000)], own.p2wpkh, own)
    )
    signer_only = _intent(hoarder, _nowhere(theirs, 1_250, theirs.p2tr))
    outcomes = run(_decided(settings, [*big, batch, payment], [(hoarder, signer_only)]))
    assert _refusals(outcomes) == {
        big[0].intent_id: (Stage.BITCOIN, Code.BITCOIN_TOO_MANY_INPUTS),
        big[1].intent_id: (Stage.BITCOIN, Code.BITCOIN_TOO_MANY_INPUTS),
        batch.intent_id: (Stage.BITCOIN, Code.BITCOIN_INPUT_UNKNOWN),
        signer_only.intent_id: (Stage.SIGNING, Code.BITCOIN_TOO_MANY_INPUTS),
    }
    done = outcomes.get(payment.intent_id)
    assert isinstance(done, SignedBitcoinTransaction) and done.status == "mined", done


def test_an_output_below_the_dust_threshold_is_refused_by_the_worker_and_the_signer(
    stack: LocalStack, run: Run, payer: tuple[Agent, str, bytes]
) -> None:
    """1 satoshi to bob, through the worker; 293 (a satoshi below P2WPKH's threshold), straight to
    the signer. Nothing is signed: the node would not relay either."""
    settings = stack.settings
    agent, _, bob_script = payer
    own = _own(agent)
    coins = run(_coins(settings, agent.address))
    one = _intent(agent, _at_the_ceiling(coins, [(bob_script, 1)], own.p2wpkh, own))
    below = _intent(agent, _at_the_ceiling(coins, [(bob_script, 293)], own.p2wpkh, own), broadcast=False)
    outcomes = run(_decided(settings, [one], [(agent, below)]))
    assert _refusals(outcomes) == {
        one.intent_id: (Stage.BITCOIN, Code.BITCOIN_OUTPUT_DUST),
        below.intent_id: (Stage.SIGNING, Code.BITCOIN_OUTPUT_DUST),
    }


def _refusals(outcomes: dict[str, Outcome]) -> dict[str, tuple[str, str]]:
    """Each refusal's (stage, code), by intent id."""
    return {i: (o.stage, o.code) for i, o in outcomes.items() if isinstance(o, IntentRejected)}
