"""Every intent one answer, whatever its numbers: each family's judge given amounts at and past
2**64, 2**128 and 2**256 (and Bitcoin's MAX_MONEY), alone and summed, refuses with a code (an
amount or a sum its chain's type cannot hold: AMOUNT_OUT_OF_RANGE; any other: the policy's cap),
and that refusal is a signed outcome that is written, read back and verified. Pure: the judges
take what the chain holds as arguments, so no node is asked.

Transactions are written as their wire bytes where the wire can carry the amounts (a Solana
instruction's u64, an EVM calldata word, a PSBT output that MAX_MONEY holds) and read back by
Warden's readers; an amount no wire carries is put into the transaction the reader gave, so the
judge's own range check, not the reader's, is what is tried."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from embit import ec, script
from embit.networks import NETWORKS
from embit.psbt import PSBT
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.hash import Hash
from solders.keypair import Keypair

from btc import psbt as psbts
from btc import wallet
from rules import bitcoin, fees, guardrails, solana
from rules.assets import check_assets
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.amounts import SATOSHIS, U64, UINT256, AmountOutOfRange
from schemas.audit import AuditEvent
from schemas.auth import outcome_forgery, public_key_hex, sign_outcome
from schemas.codes import Code
from schemas.fields import format_native_amount
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentRejected, StageVerdict
from schemas.policy import AgentPolicy, AssetLimit, BitcoinPolicy, SolanaPolicy, SolanaTokenLimit
from schemas.stages import Stage
from sdk import solana as sol
from sdk.transfers import TransferInvalid, transfer_fields
from svm import programs, transactions
from svm.accounts import TokenAccount
from tests.engine_support import WORKER_ID, StaticKeys

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
AGENT_ID = "agent-1"
WORKER_KEY = Ed25519PrivateKey.generate()
KEYS = StaticKeys(worker={WORKER_ID: public_key_hex(WORKER_KEY)})
MAX_MONEY = SATOSHIS.most

# At and around each type's bound: int64's, u64's, 2**128, uint256's and MAX_MONEY; and any
# amount from MAX_MONEY to twice uint256's, every one above each family's cap below.
BOUNDS = (2**63, 2**64, 2**128, 2**256, MAX_MONEY + 1)
AMOUNTS = st.one_of(
    st.sampled_from(sorted({bound + step for bound in BOUNDS for step in (-1, 0, 1)})),
    st.integers(min_value=MAX_MONEY, max_value=2**257),
)
PIECES = st.integers(min_value=1, max_value=3)
EXAMPLES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def split(total: int, pieces: int) -> list[int]:
    """``total`` as ``pieces`` amounts, as even as integers go."""
    each, extra = divmod(total, pieces)
    return [each + (1 if n < extra else 0) for n in range(pieces)]


def one_signed_outcome(verdict: StageVerdict) -> IntentRejected:
    """The refusal the worker (or the signer) publishes for ``verdict``: signed, written, read back
    from its bytes, and believed under the pinned key."""
    assert not verdict.passed and isinstance(verdict.code, Code), verdict
    record = IntentRejected(
        intent_id=verdict.intent_id,
        agent_id=AGENT_ID,
        stage=verdict.stage,
        code=verdict.code,
        reason=verdict.reason,
        verdicts=(verdict,),
        decided_at=T0,
        intent_digest="00" * 32,
    )
    read = IntentRejected.from_bytes(sign_outcome(record, WORKER_KEY, WORKER_ID).to_bytes())
    assert outcome_forgery(read, KEYS) is None
    return read


def answered(verdict: StageVerdict, out_of_range: bool, otherwise: Code) -> None:
    """One signed refusal: AMOUNT_OUT_OF_RANGE exactly when the amounts leave their type, else the cap's."""
    refused = one_signed_outcome(verdict)
    assert refused.code == (Code.AMOUNT_OUT_OF_RANGE if out_of_range else otherwise), refused.reason
    if out_of_range:
        facts = refused.verdicts[0].facts
        assert int(facts["amount"]) > int(facts["most"]) and facts["type"] in ("uint256", "u64", "MAX_MONEY"), facts


# -- EVM: the native spend, and ERC-20 amounts ---------------------------------------------------------

TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ALICE = "0x00000000000000000000000000000000000A11cE"
GAS = 21_000


def word(value: int | str) -> str:
    """One 32-byte ABI word: an address or an integer."""
    return value[2:].lower().rjust(64, "0") if isinstance(value, str) else f"{value:064x}"


def evm_policy() -> AgentPolicy:
    return AgentPolicy(
        agent_id=AGENT_ID,
        version=1,
        agent_public_key="0x" + "11" * 32,
        issued_at=T0,
        tx_to_allowlist=(TOKEN, ALICE),
        tx_max_value_eth="0.000001",
        asset_limits=(AssetLimit(chain="anvil", token=TOKEN, symbol="WUSD", decimals=6, max_per_tx="100"),),
    )


def evm_intent(intent_id: str, **fields: Any) -> TransactionIntent:
    """An EVM transaction to alice of no value, naming its gas and fees (1 wei a gas, no tip), with ``fields``."""
    plain = {"to": ALICE, "value": "0", "gas_limit": GAS, "max_fee_per_gas": "1", "max_priority_fee_per_gas": "0"}
    return TransactionIntent(
        intent_id=intent_id, agent_id=AGENT_ID, chain="anvil", created_at=T0, **{**plain, **fields}
    )


@EXAMPLES
@given(total=AMOUNTS)
def test_the_evm_spend_value_plus_worst_case_fee_past_uint256_is_refused(total: int) -> None:
    """The value carries up to uint256 and the worst-case fee the rest (gas x max fee per gas, each
    within its field): past uint256 together, no transaction can be paid."""
    value = min(total, UINT256.most)
    fee_per_gas = -(-(total - value) // GAS)
    intent = evm_intent("i-native", value=format_native_amount(value), max_fee_per_gas=str(fee_per_gas))
    quote = fees.named_quote(intent)
    assert quote is not None
    verdict = guardrails.check_value_cap(intent, evm_policy(), quote)
    assert verdict.stage == Stage.VALUE_CAP
    answered(verdict, not UINT256.holds(quote.spend_wei(intent)), Code.VALUE_OVER_CAP)


class HostileNode:
    """What a node anyone can fill blocks on may answer (a unit test's stand-in, since no local
    node suggests a base fee past 2**255): every suggestion at the top of uint256."""

    async def call(self, method: str, *_params: Any) -> Any:
        top = hex(UINT256.most)
        return {"eth_maxPriorityFeePerGas": top, "eth_getBlockByNumber": {"baseFeePerGas": top}}[method]


def test_a_blob_fee_or_a_node_suggested_fee_past_uint256_is_refused_at_the_fee_stage() -> None:
    """Blobs x 131072 x max_fee_per_blob_gas, each within its field, is past uint256 together; so
    is twice a base fee a node says is 2**256-1. Both refused with a code at the fee stage, where
    they would have raised while the quote was made."""
    blob = evm_intent(
        "i-blob", tx_type=3, blob_versioned_hashes=("0x01" + "00" * 31,), max_fee_per_blob_gas=str(2**255)
    )
    suggested = evm_intent("i-suggested", max_fee_per_gas=None, max_priority_fee_per_gas=None)
    for intent, what in ((blob, "the blob gas fee"), (suggested, "the fee per gas")):
        verdict, quote = asyncio.run(fees.check_price(intent, evm_policy(), HostileNode(), None))
        assert quote is None and verdict.stage == Stage.FEE
        refused = one_signed_outcome(verdict)
        assert (refused.code, refused.verdicts[0].facts["amount_of"].startswith(what)) == (
            Code.AMOUNT_OUT_OF_RANGE,
            True,
        ), refused.reason


def transfer_call(to: str, amount: int) -> str:
    return "0xa9059cbb" + word(to) + word(amount)


@EXAMPLES
@given(total=AMOUNTS, pieces=PIECES)
def test_an_erc20_transfer_and_declared_outflows_past_uint256_together_are_refused(total: int, pieces: int) -> None:
    """transfer() of one part and the rest declared as outflows of the same token, each a uint256 on
    the wire: their sum is what the intent moves of the token."""
    parts = split(total, max(pieces, -(-total // UINT256.most)))
    first, *declared = parts
    intent = evm_intent(
        "i-erc20",
        to=TOKEN,
        data=transfer_call(ALICE, first),
        declared_outflows=tuple({"token": TOKEN, "amount": str(amount)} for amount in declared),
    )
    verdict = check_assets(intent, evm_policy(), lambda _asset: 0)
    assert verdict.stage == Stage.ASSETS
    answered(verdict, not UINT256.holds(total), Code.ASSET_OVER_CAP)


def test_an_erc1155_batch_whose_amounts_pass_uint256_together_is_refused() -> None:
    """safeBatchTransferFrom(agent, alice, [1, 2], [2**256-1, 2], ""): each amount a uint256, the
    two of them together what the batch moves."""
    multi = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
    policy = evm_policy().model_copy(
        update={
            "tx_to_allowlist": (multi, ALICE),
            "asset_limits": (AssetLimit(chain="anvil", token=multi, standard="erc1155", decimals=0, max_per_tx="5"),),
        }
    )
    head: list[int | str] = [ALICE, ALICE, 0xA0, 0x100, 0x160]  # from, to, and where ids, amounts and data start
    data = "0x2eb2c2d6" + "".join(word(w) for w in [*head, 2, 1, 2, 2, UINT256.most, 2, 0])
    intent = evm_intent("i-1155", to=multi, data=data)
    answered(check_assets(intent, policy, lambda _asset: 0), True, Code.ASSET_OVER_CAP)


# -- Solana: SOL and SPL TransferChecked --------------------------------------------------------------

AGENT, BOB, MINT = Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey()
SOURCE, DESTINATION = sol.ata_address(AGENT, MINT), sol.ata_address(BOB, MINT)
HELD = {
    str(SOURCE): TokenAccount(str(SOURCE), str(MINT), str(AGENT), 0, programs.TOKEN),
    str(DESTINATION): TokenAccount(str(DESTINATION), str(MINT), str(BOB), 0, programs.TOKEN),
}
FEE = programs.LAMPORTS_PER_SIGNATURE


def solana_policy() -> SolanaPolicy:
    return SolanaPolicy(
        address=str(AGENT),
        allowlist=(str(BOB),),
        max_lamports_per_tx=10**9,
        tokens=(SolanaTokenLimit(mint=str(MINT), decimals=6, max_per_tx=100 * 10**6),),
    )


def solana_transaction(parts: list[int], build: Any) -> transactions.SolanaTransaction:
    """The agent's transaction of one instruction per part, ``build(amount)`` each, read from its
    wire bytes; a part the wire's u64 cannot carry put into what the reader gave instead."""
    carried = [amount if U64.holds(amount) else 1 for amount in parts]
    tx = transactions.read(sol.unsigned(AGENT, [build(amount) for amount in carried], Hash.default()))
    assert [ix.amount for ix in tx.instructions] == carried
    put = tuple(replace(ix, amount=amount) for ix, amount in zip(tx.instructions, parts, strict=True))
    return replace(tx, instructions=put)


def solana_verdict(tx: transactions.SolanaTransaction) -> StageVerdict:
    judged = solana.judge(
        tx,
        agent=str(AGENT),
        chain="solana-local",
        allowed_chains=("solana-local",),
        policy=solana_policy(),
        accounts=HELD,
        spent=lambda _asset: 0,
    )
    return as_verdict(Stage.SOLANA, judged)


def as_verdict(stage: Stage, judged: solana.SolanaVerdict | bitcoin.BitcoinVerdict) -> StageVerdict:
    """A family's verdict as its stage's, as `rules.solana.check` and `rules.bitcoin.check` make it."""
    return StageVerdict.judged(
        intent_id=f"i-{stage}",
        stage=stage,
        passed=judged.passed,
        code=judged.code,
        reason=judged.reason,
        facts=judged.facts,
    )


@EXAMPLES
@given(total=AMOUNTS, pieces=PIECES)
def test_sol_transfers_past_u64_alone_or_with_the_fee_are_refused(total: int, pieces: int) -> None:
    parts = split(total, pieces)
    tx = solana_transaction(parts, lambda amount: sol.sol_transfer(AGENT, BOB, amount))
    out_of_range = not all(U64.holds(amount) for amount in parts) or not U64.holds(total + FEE)
    answered(solana_verdict(tx), out_of_range, Code.VALUE_OVER_CAP)


@EXAMPLES
@given(total=AMOUNTS, pieces=PIECES)
def test_spl_transfer_checked_past_u64_alone_or_together_is_refused(total: int, pieces: int) -> None:
    parts = split(total, pieces)
    tx = solana_transaction(
        parts, lambda amount: sol.token_transfer_checked(SOURCE, MINT, DESTINATION, AGENT, amount, 6)
    )
    out_of_range = not all(U64.holds(amount) for amount in parts) or not U64.holds(total)
    answered(solana_verdict(tx), out_of_range, Code.VALUE_OVER_CAP)


def test_two_transfer_checked_of_u64_max_and_a_u64_max_sol_transfer_are_refused_by_name() -> None:
    """The cases of issue 84, on their wire bytes: 18446744073.709551615 SOL (u64::MAX lamports, the
    fee on top), and two TransferChecked of u64::MAX."""
    cases = {
        "the lamports the transaction moves together": [sol.sol_transfer(AGENT, BOB, U64.most)],
        f"the base units of {MINT} the transaction moves together": [
            sol.token_transfer_checked(SOURCE, MINT, DESTINATION, AGENT, U64.most, 6) for _ in range(2)
        ],
    }
    for what, instructions in cases.items():
        refused = one_signed_outcome(
            solana_verdict(transactions.read(sol.unsigned(AGENT, instructions, Hash.default())))
        )
        assert refused.code == Code.AMOUNT_OUT_OF_RANGE and refused.verdicts[0].facts["amount_of"].startswith(what)


def test_a_priority_fee_past_u64_is_refused_and_counted_exactly() -> None:
    """A u64 price at the most compute units is a priority fee of 85 bits of micro-lamports: the
    runtime's integer rounding, not a float's, and past u64 in lamports."""
    most = programs.MAX_COMPUTE_UNITS
    ixs = [sol.compute_limit(most), sol.compute_price(U64.most), sol.sol_transfer(AGENT, BOB, 1)]
    tx = transactions.read(sol.unsigned(AGENT, ixs, Hash.default()))
    assert tx.priority_fee_lamports == -(-most * U64.most // 10**6) == 25_825_441_703_193_372_261
    refused = one_signed_outcome(solana_verdict(tx))
    assert (refused.code, refused.verdicts[0].facts["amount_of"]) == (
        Code.AMOUNT_OUT_OF_RANGE,
        "the lamports of the fee",
    )


# -- Bitcoin: PSBT outputs ---------------------------------------------------------------------------

KEY = ec.PrivateKey(bytes.fromhex("11" * 32)).get_public_key().sec()
OWN = wallet.own_scripts(KEY)
PAYEE = script.p2wpkh(ec.PrivateKey(bytes.fromhex("22" * 32)).get_public_key())
PAID_FEE = 1_000


def bitcoin_psbt(parts: list[int]) -> psbts.Psbt:
    """A PSBT of one own input paying ``parts`` to the payee and a 1,000 satoshi fee: its bytes
    read by `btc.psbt.read` while MAX_MONEY holds every amount, else the same PSBT as the reader
    gives it, with the amounts no PSBT it reads carries."""
    spent = sum(parts) + PAID_FEE
    if all(SATOSHIS.holds(amount) for amount in (*parts, spent)):
        tx = Transaction(
            version=2,
            vin=[TransactionInput(b"\x01" * 32, 0, sequence=0xFFFFFFFD)],
            vout=[TransactionOutput(amount, script.Script(PAYEE.data)) for amount in parts],
        )
        psbt = PSBT(tx)
        psbt.inputs[0].witness_utxo = TransactionOutput(spent, script.Script(OWN.p2wpkh))
        return psbts.read(psbt.serialize())
    spend = psbts.Input("01" * 32, 0, 0xFFFFFFFD, spent, OWN.p2wpkh, None, False)
    return psbts.Psbt("00" * 32, 2, 0, (spend,), tuple(psbts.Output(PAYEE.data, amount) for amount in parts))


@EXAMPLES
@given(total=st.one_of(AMOUNTS, st.sampled_from([MAX_MONEY - PAID_FEE + step for step in (-1, 0, 1)])), pieces=PIECES)
def test_psbt_outputs_past_max_money_alone_or_together_are_refused(total: int, pieces: int) -> None:
    parts = split(total, pieces)
    psbt = bitcoin_psbt(parts)
    held = {(i.txid, i.vout): psbts.Output(i.script or b"", i.amount or 0) for i in psbt.inputs}
    policy = BitcoinPolicy(
        public_key=KEY.hex(), allowlist=(PAYEE.address(NETWORKS["regtest"]),), max_sats_per_tx=20_000_000
    )
    judged = bitcoin.judge(
        psbt,
        public_key=KEY.hex(),
        chain="bitcoin-regtest",
        allowed_chains=("bitcoin-regtest",),
        policy=policy,
        held=held,
        spent=0,
    )
    answered(as_verdict(Stage.BITCOIN, judged), not SATOSHIS.holds(total + PAID_FEE), Code.VALUE_OVER_CAP)


# -- what the windows hold, and what records carry ------------------------------------------------------


@EXAMPLES
@given(spent=AMOUNTS)
def test_a_window_that_holds_past_any_type_refuses_with_its_limit_and_the_refusal_is_written(spent: int) -> None:
    """A rolling window adds many transactions' spend and is held to no type: every family's limit
    compares it, and the refusal that names it is written."""
    sol_limits = solana_policy().model_copy(update={"daily_limit_lamports": 10**9})
    sol_refused = solana.check_limits(sol_limits, {solana.SOL: 1}, lambda _asset: spent)
    btc_refused = bitcoin.check_limits(BitcoinPolicy(public_key=KEY.hex(), daily_limit_sats=10**8), 1, spent)
    assert sol_refused is not None and btc_refused is not None
    one_wei = evm_intent("i-window")
    quote = fees.named_quote(one_wei)
    assert quote is not None
    evm_limits = evm_policy().model_copy(update={"tx_daily_limit_eth": "0.000001"})
    for verdict, named in (
        (as_verdict(Stage.SOLANA, sol_refused), "spent"),
        (as_verdict(Stage.BITCOIN, btc_refused), "spent"),
        (guardrails.check_daily_limit(one_wei, evm_limits, spent, quote), "spent_wei"),
    ):
        written = one_signed_outcome(verdict)
        assert written.code == Code.DAILY_LIMIT_EXCEEDED and int(written.verdicts[0].facts[named]) == spent


def test_a_fact_or_a_detail_past_64_bits_is_written_as_its_decimal_text_and_the_rest_unchanged() -> None:
    """orjson writes 64-bit integers and raises on any other: a fact a judge measured past that (a
    sum of u64 amounts) is kept as its decimal text, so the record is written; the others stay."""
    facts: dict[str, Any] = {"amount": 2**64 + FEE, "most": U64.most, "nested": [{"sum": 2**129}, -(2**63) - 1, 5]}
    verdict = StageVerdict.refusing(
        intent_id="i-facts", stage=Stage.SOLANA, code=Code.VALUE_OVER_CAP, reason="over", facts=facts
    )
    read = StageVerdict.from_bytes(verdict.to_bytes())
    assert read.facts == {
        "amount": str(2**64 + FEE),
        "most": U64.most,
        "nested": [{"sum": str(2**129)}, str(-(2**63) - 1), 5],
    }
    assert one_signed_outcome(verdict).verdicts == (read,)
    event = AuditEvent(
        event_id="e", actor="service:test", action=AuditAction.STAGE_FAILED, resource="intent:i", ts=T0, details=facts
    )
    assert AuditEvent.from_bytes(event.to_bytes()).details == read.facts


@pytest.mark.parametrize(
    "build",
    [
        lambda amount: sol.sol_transfer(AGENT, BOB, amount),
        lambda amount: sol.token_transfer_checked(SOURCE, MINT, DESTINATION, AGENT, amount, 6),
        lambda amount: sol.token_transfer(SOURCE, DESTINATION, AGENT, amount),
        lambda amount: sol.approve(SOURCE, BOB, AGENT, amount),
        lambda amount: sol.mint_to(MINT, SOURCE, AGENT, amount),
        sol.compute_price,
    ],
)
def test_the_sdk_builds_no_instruction_with_an_amount_past_u64(build: Any) -> None:
    """Past u64 (or below 0), a builder says which amount and the range instead of wrapping it or
    failing inside the encoder (solders' OverflowError, struct's error): an error Warden's command
    line prints as one line."""
    assert build(U64.most) is not None
    for amount in (U64.most + 1, 2**128, -1):
        with pytest.raises(AmountOutOfRange, match=rf"{amount}, outside the u64 .*\(0 to {U64.most}\)"):
            build(amount)


@pytest.mark.parametrize(
    ("chain", "value", "amount_type"),
    [
        ("solana", "18446744073.709551616", "u64"),
        ("solana-devnet", "340282366920938463463374607431.768211456", "u64"),
        ("bitcoin", "21000000.00000001", "MAX_MONEY"),
    ],
)
def test_a_plain_transfer_past_its_type_is_refused_by_its_value_before_any_node_is_asked(
    tmp_path: Path, chain: str, value: str, amount_type: str
) -> None:
    """`warden submit --to --value` and the HTTP API write a plain transfer here: a value its chain
    cannot hold is told by the field, with no RPC configured for the network and no node asked."""
    settings = dataclasses.replace(Settings(), home=tmp_path, rpc_urls={})
    policy = AgentPolicy(
        agent_id=AGENT_ID,
        version=1,
        agent_public_key="0x" + "11" * 32,
        issued_at=T0,
        solana=solana_policy(),
        bitcoin=BitcoinPolicy(public_key=KEY.hex()),
    )
    to = str(BOB) if chain.startswith("solana") else PAYEE.address(NETWORKS["main"])
    with pytest.raises(TransferInvalid, match=rf"^value: .* outside the {amount_type} "):
        asyncio.run(transfer_fields(settings, chain, policy, to, value))
