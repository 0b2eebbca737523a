"""The guardrails on a Bitcoin PSBT (`btc.psbt`): one judge for the streams worker and the signer.

`judge` is a pure function of the PSBT, the agent's public key, its policy, the outputs its inputs
spend as the chain holds them (read by the caller: `runtime.bitcoin.tx_out`) and what the agent
spent in the last 24 h. Deny by default:

- at most `MAX_INPUTS` inputs, each read from the node in one batch (`held_by`): one intent
  cannot hold the node, and the worker behind it, for the time of a thousand lookups;
- every input's and output's satoshis, and the inputs' and the outputs' together, are within
  MAX_MONEY (`schemas.amounts`), as consensus holds them;
- every input spends an output of the agent's own wallet (its key's P2WPKH or P2TR script,
  `btc.wallet`), which the chain holds unspent in a block, with the amount and script the PSBT
  says (the signature commits to them: a PSBT that understates an input would make the fee look
  small); an input of another script is never signed;
- every input asks for the default signature hash only (ALL; DEFAULT on P2TR): a signature under
  NONE, SINGLE or ANYONECANPAY lets someone else change what the transaction pays;
- every output pays at least the dust threshold of its script (`btc.dust`, Bitcoin Core's relay
  rule), and pays the agent's own wallet (change) or an address on the allowlist, written for the
  intent's network; a script with no address (OP_RETURN, bare multisig) is refused;
- the fee (inputs less outputs) is bounded absolutely and per virtual byte of the signed
  transaction (`btc.psbt.vsize` counts the size `btc.signing` signs, and the signer checks the
  rate again on what it signed: `fee_rate_refused`), and counted as spend;
- spend (outputs to others plus the fee) is capped per transaction and per rolling 24 h, and a
  sign-only payment's, with what the agent's payments not yet final can spend, by
  ``max_sign_only_outstanding_sats`` (`rules.sign_only`);
- last, no input spends an output another open intent of the agent spends (approved or parked,
  and its payment not yet mined, conflicted or cancelled at a final block), so no two intents ever
  claim one transaction; the caller says which intent holds an output (``claimed``).

An input spent by a transaction still in the mempool is read as unspent (the node's view without
its mempool), so a replacement (BIP-125, a fee bump) is judged in full like any other intent; once
the node holds the replacement instead (in its mempool or a block), the tracker finds the first
one conflicted and voids its reservation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from btc import addresses, dust, wallet
from btc import psbt as psbts
from rules import sign_only
from runtime import bitcoin as bitcoin_rpc
from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas.amounts import SATOSHIS, first_out_of_range
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy, BitcoinPolicy
from schemas.stages import Stage

BTC = "BTC"
SIGHASH_DEFAULT = 0  # P2TR only (BIP-341): ALL, with a 64-byte signature
SIGHASH_ALL = 1
_ALLOWED_SIGHASH = {False: (None, SIGHASH_ALL), True: (None, SIGHASH_DEFAULT, SIGHASH_ALL)}  # by "is P2TR"
# The most inputs one intent may spend: each is read from the node before the intent is decided,
# and a PSBT of the largest size Warden reads (`btc.psbt.MAX_PSBT_BYTES`) holds about 1,250 of them.
MAX_INPUTS = 500


@dataclass(frozen=True)
class BitcoinVerdict:
    passed: bool
    code: Code
    reason: str
    spend: int = 0  # satoshis: outputs to others plus the fee
    facts: dict[str, Any] = field(default_factory=dict)


def _refuse(code: Code, reason: str, **facts: Any) -> BitcoinVerdict:
    return BitcoinVerdict(False, code, reason, facts=facts)


def judge(
    psbt: psbts.Psbt,
    *,
    public_key: str,
    chain: str,
    allowed_chains: tuple[str, ...],
    policy: BitcoinPolicy | None,
    held: Mapping[tuple[str, int], psbts.Output | None],
    spent: int,
) -> BitcoinVerdict:
    """Whether the agent (its Bitcoin ``public_key``, hex) may sign ``psbt`` on ``chain``.
    ``held``: each input's outpoint → the output the chain holds there, unspent in a block (None:
    none, or spent);
    ``spent``: satoshis the agent spent on ``chain`` in the last 24 h."""
    if chain not in allowed_chains:
        return _refuse(Code.CHAIN_NOT_ALLOWED, f"chain {chain!r} is not in this agent's tx_allowed_chains")
    if policy is None:
        return _refuse(
            Code.BITCOIN_NOT_ENABLED, "the agent's policy has no `bitcoin` section: every Bitcoin intent is refused"
        )
    network = addresses.NETWORK_OF_CHAIN.get(chain)
    if network is None:
        return _refuse(Code.CHAIN_NOT_ALLOWED, f"chain {chain!r}: Warden knows no Bitcoin network by that name")
    if len(psbt.inputs) > MAX_INPUTS:
        return _refuse(
            Code.BITCOIN_TOO_MANY_INPUTS,
            f"it spends {len(psbt.inputs)} inputs; Warden reads at most {MAX_INPUTS} for one intent: pay in "
            "several transactions, or first gather the coins into fewer with payments to the agent's own address",
            inputs=len(psbt.inputs),
            most=MAX_INPUTS,
        )
    refused = _amounts_refused(psbt)
    if refused is not None:
        return refused
    own = wallet.own_scripts(bytes.fromhex(public_key))
    refused = _inputs_refused(psbt, own, held)
    if refused is not None:
        return refused
    paid, refused = _outputs(psbt, own, network, policy)
    if refused is not None:
        return refused
    fee = psbt.fee()
    if fee is None or fee < 0:
        return _refuse(
            Code.BITCOIN_PSBT_INVALID, f"its outputs pay more than its inputs hold (fee {fee}): it cannot be valid"
        )
    vsize = psbts.vsize(psbt, own)
    facts: dict[str, Any] = {"fee_sats": fee, "vsize": vsize, "fee_rate_sat_vb": _rate(fee, vsize), "payments": paid}
    if fee > policy.max_fee_sats:
        return _refuse(
            Code.BITCOIN_FEE_OVER_CEILING,
            f"the fee is {fee} satoshis (inputs less outputs); the policy allows at most {policy.max_fee_sats} "
            "(bitcoin.max_fee_sats)",
            **facts,
        )
    refused = fee_rate_refused(policy, fee, vsize, Code.BITCOIN_FEE_RATE_OVER_CEILING)
    if refused is not None:
        return BitcoinVerdict(False, refused.code, refused.reason, facts=facts)
    spend = sum(amount for _, amount in paid) + fee
    refused = check_limits(policy, spend, spent)
    if refused is not None:
        return refused
    return BitcoinVerdict(
        True, Code.BITCOIN_ALLOWED, "every input is the agent's and every payment allowed", spend, facts
    )


def _amounts_refused(psbt: psbts.Psbt) -> BitcoinVerdict | None:
    """Each input's and output's satoshis, and the inputs' and the outputs' together, within
    MAX_MONEY, as consensus holds them (an input that does not say its amount is refused with the
    inputs)."""
    spent = [
        (f"the satoshis input {i} spends", put.amount) for i, put in enumerate(psbt.inputs) if put.amount is not None
    ]
    paid = [(f"the satoshis output {i} pays", output.amount) for i, output in enumerate(psbt.outputs)]
    together = [
        ("the satoshis the inputs spend together", sum(amount for _, amount in spent)),
        ("the satoshis the outputs pay together", sum(amount for _, amount in paid)),
    ]
    found = first_out_of_range(SATOSHIS, spent + paid + together)
    return None if found is None else _refuse(Code.AMOUNT_OUT_OF_RANGE, str(found.problem), **found.facts())


def _inputs_refused(
    psbt: psbts.Psbt, own: wallet.OwnScripts, held: Mapping[tuple[str, int], psbts.Output | None]
) -> BitcoinVerdict | None:
    for index, spent_input in enumerate(psbt.inputs):
        where = f"input {index} ({spent_input.txid}:{spent_input.vout})"
        if spent_input.script is None or spent_input.amount is None:
            return _refuse(
                Code.BITCOIN_INPUT_UNKNOWN,
                f"{where} does not say the output it spends: add its witness_utxo (amount and script)",
                input=index,
            )
        if not own.owns(spent_input.script):
            return _refuse(
                Code.BITCOIN_INPUT_NOT_OWNED,
                f"{where} spends script {spent_input.script.hex()}, which is not the agent's wallet (its key's "
                "P2WPKH or P2TR script): Warden signs only the agent's own outputs",
                input=index,
            )
        taproot = spent_input.script == own.p2tr
        if spent_input.sighash not in _ALLOWED_SIGHASH[taproot]:
            allowed = "DEFAULT (0) or ALL (1)" if taproot else "ALL (1)"
            return _refuse(
                Code.BITCOIN_SIGHASH_NOT_ALLOWED,
                f"{where} asks for signature hash type {spent_input.sighash}; Warden signs {allowed} only, so nobody "
                "can change what the transaction pays after it is signed",
                input=index,
            )
        chain_holds = held.get((spent_input.txid, spent_input.vout))
        if chain_holds is None:
            return _refuse(
                Code.BITCOIN_INPUT_UNKNOWN,
                f"{where}: the node holds no unspent output there in a block (spent, never made, or not mined yet)",
                input=index,
            )
        if (chain_holds.amount, chain_holds.script) != (spent_input.amount, spent_input.script):
            return _refuse(
                Code.BITCOIN_INPUT_UNKNOWN,
                f"{where}: the PSBT says {spent_input.amount} satoshis to {spent_input.script.hex()}, the chain holds "
                f"{chain_holds.amount} satoshis to {chain_holds.script.hex()}",
                input=index,
            )
    return None


def _outputs(
    psbt: psbts.Psbt, own: wallet.OwnScripts, network: str, policy: BitcoinPolicy
) -> tuple[list[tuple[str, int]], BitcoinVerdict | None]:
    """The payments to others (address, satoshis), or the refusal of the first output not allowed."""
    paid: list[tuple[str, int]] = []
    for index, output in enumerate(psbt.outputs):
        least = dust.threshold(output.script)
        if output.amount < least:
            return paid, _refuse(
                Code.BITCOIN_OUTPUT_DUST,
                f"output {index} pays {output.amount} satoshis, below the dust threshold of {least} for its script "
                f"({output.script.hex()}): the network relays no transaction with an output worth less than "
                "spending it costs (Bitcoin Core's standard relay rule); pay at least that much",
                output=index,
                amount=output.amount,
                least=least,
            )
        if own.owns(output.script):
            continue  # change: it stays in the agent's wallet
        address = addresses.address_of(output.script, network)
        if address is None:
            return paid, _refuse(
                Code.BITCOIN_OUTPUT_NOT_ADDRESS,
                f"output {index} pays script {output.script.hex()}, which is no address (OP_RETURN, bare script): "
                "Warden pays addresses only",
                output=index,
            )
        if address not in policy.allowlist:
            return paid, _refuse(
                Code.RECIPIENT_NOT_ALLOWLISTED,
                f"output {index} pays {output.amount} satoshis to {address}, which is neither the agent's own wallet "
                "nor on its Bitcoin allowlist",
                output=index,
                recipient=address,
            )
        paid.append((address, output.amount))
    return paid, None


def _rate(fee: int, vsize: int) -> int:
    """Satoshis per virtual byte, rounded up."""
    return -(-fee // vsize)


def fee_rate_refused(policy: BitcoinPolicy, fee: int, vsize: int, code: Code) -> BitcoinVerdict | None:
    """``fee`` over ``vsize`` virtual bytes against the policy's ceiling per virtual byte: the
    refusal with ``code``, or None. The judge asks it of the size it counts (`btc.psbt.vsize`), the
    signer of the transaction it signed (`Code.BITCOIN_SIGNED_FEE_RATE_OVER_CEILING`), so that no
    transaction leaves the signer paying more per virtual byte than the policy allows, as the
    network measures it."""
    ceiling = policy.max_fee_rate_sat_vb
    if fee <= ceiling * vsize:
        return None
    return _refuse(
        code,
        f"the fee is {_rate(fee, vsize)} satoshis per virtual byte ({fee} over {vsize} vB signed); the policy allows "
        f"at most {ceiling} (bitcoin.max_fee_rate_sat_vb)",
        fee_sats=fee,
        vsize=vsize,
        fee_rate_sat_vb=_rate(fee, vsize),
    )


def check_limits(policy: BitcoinPolicy, spend: int, spent: int) -> BitcoinVerdict | None:
    """``spend`` against the per-transaction cap and, with ``spent`` before it, the rolling 24 h
    limit: the first refusal, or None."""
    cap, daily = policy.max_sats_per_tx, policy.daily_limit_sats
    if cap is not None and spend > cap:
        return _refuse(
            Code.VALUE_OVER_CAP,
            f"the transaction spends {spend} satoshis (payments to others and the fee); the cap is {cap}",
            amount=spend,
            cap=cap,
        )
    if daily is not None and spent + spend > daily:
        return _refuse(
            Code.DAILY_LIMIT_EXCEEDED,
            f"{spent} satoshis spent in the last 24 h plus {spend} is over the daily limit of {daily}",
            amount=spend,
            spent=spent,
            limit=daily,
        )
    return None


# -- the stage --------------------------------------------------------------------------------


def asset_key(chain: str) -> str:
    """Bitcoin's key in the agent's spend windows: per network."""
    return f"{chain}:{BTC}"


async def held_by(node: Node, psbt: psbts.Psbt) -> dict[tuple[str, int], psbts.Output | None]:
    """The outputs ``psbt``'s inputs spend, as ``node`` holds them in its blocks (its mempool left
    out, so a replacement of a transaction not mined yet reads them unspent), asked in one batch."""
    outpoints = [(spent_input.txid, spent_input.vout) for spent_input in psbt.inputs]
    outs = await bitcoin_rpc.tx_outs(node, outpoints, include_mempool=False)
    return {
        outpoint: None if out is None else psbts.Output(out.script, out.amount)
        for outpoint, out in zip(outpoints, outs, strict=True)
    }


def inputs_of(intent: TransactionIntent) -> tuple[str, ...]:
    """The outputs a bitcoin_psbt intent's PSBT spends, ``txid:vout`` (none for another kind, or a
    PSBT that does not read: it is refused before it holds anything)."""
    if intent.intent_type != "bitcoin_psbt":
        return ()
    try:
        return tuple(f"{i.txid}:{i.vout}" for i in psbts.read(intent.bitcoin_psbt_bytes).inputs)
    except psbts.PsbtInvalid:
        return ()


# Which open intent of the agent, other than the one judged, spends an output (``txid:vout``), if one does.
Claimed = Callable[[str], str | None]


def claims_refused(intent: TransactionIntent, claimed: Claimed | None) -> StageVerdict | None:
    """The refusal of a PSBT that spends an output another open intent of the agent spends
    (``claimed``), naming each such output and that intent; None when none does (or the caller
    holds no claims: a replay of the ledger)."""
    if claimed is None:
        return None
    held = {outpoint: other for outpoint in inputs_of(intent) if (other := claimed(outpoint)) is not None}
    if not held:
        return None
    named = "; ".join(f"{outpoint} by intent {other}" for outpoint, other in held.items())
    return StageVerdict.refusing(
        intent_id=intent.intent_id,
        stage=Stage.BITCOIN,
        code=Code.BITCOIN_INPUT_CLAIMED,
        reason=f"it spends outputs another intent of the agent spends and whose payment is not final: {named}. "
        "One payment, one transaction: spend other outputs, or wait until that payment is mined, conflicted or "
        "cancelled (`warden txs cancel`)",
        facts={"claimed": held},
    )


async def check(
    intent: TransactionIntent,
    policy: AgentPolicy,
    node: Node,
    spent: Callable[[str], int],
    agent: str | None = None,
    claimed: Claimed | None = None,
) -> tuple[StageVerdict, dict[str, int]]:
    """The ``bitcoin`` stage of a bitcoin_psbt intent (`judge`), with its inputs read from ``node``
    (the worker's node and the signer's own alike), then `claims_refused`. ``agent``: the agent's
    public key, hex (the signer's from the key itself; the worker's the policy's
    ``bitcoin.public_key``). Returns the verdict and what it spends per asset key (`asset_key`),
    which the caller reserves."""
    if agent is None:
        agent = policy.bitcoin.public_key if policy.bitcoin is not None else ""
    try:
        psbt = psbts.read(intent.bitcoin_psbt_bytes)
        judged = judge(
            psbt,
            public_key=agent,
            chain=intent.chain,
            allowed_chains=policy.tx_allowed_chains,
            policy=policy.bitcoin,
            # A PSBT of more inputs than are read is refused without asking the node about any.
            held=await held_by(node, psbt) if policy.bitcoin is not None and len(psbt.inputs) <= MAX_INPUTS else {},
            spent=spent(asset_key(intent.chain)),
        )
    except psbts.PsbtInvalid as exc:  # the intent's validation read it: only a hand-made record lands here
        judged = _refuse(Code.BITCOIN_PSBT_INVALID, f"bitcoin_psbt: {exc}")
    except (RpcError, RpcUnavailable) as exc:
        judged = _refuse(
            Code.CHAIN_RPC_FAILED,
            f"the {intent.chain} node could not be asked ({exc}); nothing is signed on a guess: submit it again",
        )
    if judged.passed:
        judged = outstanding_refused(intent, policy, judged.spend, spent) or judged
    if judged.passed and policy.usd_limited:
        # No price source is read for bitcoin: its USD value is unknown, so a USD limit cannot be kept.
        judged = _refuse(
            Code.PRICE_FEED_UNKNOWN,
            "the policy sets USD limits, and Warden reads no price for BTC, so this intent's USD value is unknown; "
            "an admin removes usd_max_per_tx and usd_daily_limit to sign on Bitcoin",
        )
    claimed_refusal = claims_refused(intent, claimed) if judged.passed else None
    if claimed_refusal is not None:  # last: what else the policy refuses it for is said first
        return claimed_refusal, {}
    verdict = StageVerdict.judged(
        intent_id=intent.intent_id,
        stage=Stage.BITCOIN,
        passed=judged.passed,
        code=judged.code,
        reason=judged.reason,
        facts={**judged.facts, **({"spend_sats": judged.spend} if judged.passed else {})},
    )
    return verdict, ({asset_key(intent.chain): judged.spend} if judged.passed else {})


def outstanding_refused(
    intent: TransactionIntent, policy: AgentPolicy, spend: int, spent: Callable[[str], int]
) -> BitcoinVerdict | None:
    """The refusal of a sign-only payment spending ``spend`` whose spend, with what the agent's
    payments not yet final can spend, passes ``bitcoin.max_sign_only_outstanding_sats``; None
    when it fits, no bound applies or the payment is sent (the signer follows it to final)."""
    bound = None if policy.bitcoin is None else policy.bitcoin.max_sign_only_outstanding_sats
    if bound is None or intent.broadcast:
        return None
    outstanding = spent(sign_only.outstanding_key(asset_key(intent.chain)))
    if outstanding + spend <= bound:
        return None
    return _refuse(
        Code.SIGN_ONLY_OUTSTANDING_EXCEEDED,
        f"{outstanding} satoshis are held by payments of the agent not yet final; {spend} more would pass "
        f"bitcoin.max_sign_only_outstanding_sats ({bound}). Broadcast them, or have an admin cancel one "
        "(`warden txs cancel`)",
        outstanding_sats=outstanding,
        bound_sats=bound,
        spend_sats=spend,
    )


def recheck_windows(
    intent: TransactionIntent, policy: AgentPolicy, asset_spend: Mapping[str, int], spent: Callable[[str], int]
) -> StageVerdict | None:
    """The rolling limit of what the ``bitcoin`` stage counted, and the bound on what sign-only
    payments hold, against ``spent`` as it is now."""
    key = asset_key(intent.chain)
    if policy.bitcoin is None or key not in asset_spend:
        return None
    refused = check_limits(policy.bitcoin, asset_spend[key], spent(key))
    refused = refused or outstanding_refused(intent, policy, asset_spend[key], spent)
    if refused is None:
        return None
    return StageVerdict.refusing(
        intent_id=intent.intent_id, stage=Stage.BITCOIN, code=refused.code, reason=refused.reason, facts=refused.facts
    )


def approval_needed(intent: TransactionIntent, policy: AgentPolicy, asset_spend: Mapping[str, int]) -> str | None:
    """Why a Bitcoin intent that passed every guardrail still waits for a human, or None: what it
    spends, fee included, is above the approval threshold."""
    threshold = None if policy.bitcoin is None else policy.bitcoin.approval_threshold_sats
    amount = asset_spend.get(asset_key(intent.chain), 0)
    if threshold is not None and amount > threshold:
        return f"{amount} satoshis is above the approval threshold of {threshold}"
    return None
