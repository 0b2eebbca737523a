"""Bitcoin sign-only payments followed until their bytes can no longer spend, and cancelled when asked.

The signer hands out the signed bytes of a sign-only payment (an intent with ``broadcast``
false); they stay valid for as long as the outputs they spend are unspent, so what they can spend
stays held in the agent's windows (`rules.window`) until the node shows, at a final block:

- the payment itself mined: ``mined``, final; what it spends counts from the moment the signer saw
  it final, as an ordinary spend;
- the signer's cancellation mined: ``cancelled``, final; the cancellation's fee counts, nothing else;
- another transaction spending one of its inputs: ``conflicted``, final; nothing counts.

Anything else changes nothing: a node that cannot be read, or that knows none of its inputs (a new
chain, a node still syncing, `signer.bitcoin_tracking.inputs_elsewhere`), leaves the spend held.

A cancellation is asked for as for an EVM one (`signer.sign_only`: an admin's signed denial, or the
policy's ``sign_only_ttl_s``). The signer writes a transaction spending the payment's largest input
(more when one does not pay the fee) back to the agent's own P2WPKH address, with a fee over the
payment's (`rules.sign_only.bitcoin_cancel_fee`, so a node holding the payment takes it instead,
BIP-125), judges it with the judge every payment passes (`rules.bitcoin.judge`: the agent's own
inputs, the policy's fee ceilings), signs it with the key version that signed the payment, records
it (its fee held, if more than the payment's spend), makes that durable, sends it, and reports the
intent ``cancelled``; it sends it again at each look until it is final.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from btc import payments, wallet
from btc import psbt as psbts
from rules import bitcoin as bitcoin_rules
from rules import sign_only
from runtime import bitcoin
from runtime.clock import to_us
from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas.codes import Code
from schemas.emit import Emit
from schemas.intent import TransactionIntent
from schemas.outcomes import SignedBitcoinTransaction
from signer.agent_state import AgentState
from signer.bitcoin_tracking import inputs_elsewhere
from signer.open_sign_only import SignOnlyRow
from signer.outcomes import SigningRefused

if TYPE_CHECKING:
    from signer.sign_only import SignOnly


class BitcoinSignOnly:
    """The Bitcoin half of the sign-only watch ``watch`` (`signer.sign_only.SignOnly`: the agent
    state, each network's node, the outcomes it reports through, the signing of cancellations,
    the policies in force, ``persist``, and the report of a cancellation that cannot be signed),
    with each network's final depth (``confirmations``)."""

    def __init__(self, watch: SignOnly, confirmations: Callable[[str], int]):
        self.state = watch.state
        self.node_for = watch.node_for
        self.outcomes = watch.outcomes
        self.signing = watch.signing
        self.policies = watch.policies
        self.persist = watch.persist
        self.unable = watch.cannot
        self.confirmations = confirmations

    async def look(self, row: SignOnlyRow, now: datetime) -> list[Emit]:
        """One open sign-only payment compared with the node: what to publish when its fate is
        final (then it is closed) or it was cancelled now; nothing while it is open. RpcError /
        RpcUnavailable pass through: the spend stays held."""
        agent = self.state.agent(row.agent_id)
        raw = agent.bitcoin_record(row.intent_id)
        if raw is None:  # written in the same scope as the row (`Outcomes.bitcoin_signed`)
            raise RuntimeError(f"sign-only payment {row.intent_id} has no signed record")
        signed = SignedBitcoinTransaction.from_bytes(raw)
        cancel = None if row.cancel is None else SignedBitcoinTransaction.from_bytes(row.cancel)
        node = self.node_for(signed.chain)
        depth = self.confirmations(signed.chain)
        own = await bitcoin.transaction(node, signed.txid)
        if own is not None and own.confirmations - 1 >= depth:
            update = {"status": "mined", "block_hash": own.block_hash, "confirmations": own.confirmations}
            return self._closed(agent, signed, update, int(signed.spend.get(bitcoin_rules.BTC, "0")), now)
        inputs = await inputs_elsewhere(node, signed) if own is None else None
        if inputs is not None and inputs.taken is not None and inputs.taken_final(depth):
            outpoint, spender = inputs.taken
            if cancel is not None and spender.txid == cancel.txid:
                return self._cancelled(agent, signed, cancel, spender.confirmations, now)
            update = {
                "status": "conflicted",
                "error": f"another transaction ({spender.txid}) spent {outpoint}, an output it spends: it can never "
                "be mined, and nothing it held is counted",
            }
            return self._closed(agent, signed, update, None, now)
        if cancel is None:
            asked = sign_only.why_cancel(row.cancel_by, row.at_us, self.policies.current(row.agent_id), to_us(now))
            return [] if asked is None else await self._cancel(agent, signed, asked, node, now)
        await _send(node, cancel)  # at each look until it is final: a node that holds it already ignores it
        return []

    def _closed(
        self,
        agent: AgentState,
        signed: SignedBitcoinTransaction,
        update: Mapping[str, object],
        took: int | None,
        now: datetime,
    ) -> list[Emit]:
        """Its fate is final: the record final, and the spend what the chain took (``took``
        satoshis, counted from now; None: nothing)."""
        agent.bitcoin_closed(signed.intent_id, to_us(now), bitcoin_rules.asset_key(signed.chain), took)
        emits, _ = self.outcomes.bitcoin_status(signed, {**update, "final": True}, now)
        return emits

    def _cancelled(
        self,
        agent: AgentState,
        signed: SignedBitcoinTransaction,
        cancel: SignedBitcoinTransaction,
        confirmations: int,
        now: datetime,
    ) -> list[Emit]:
        """The cancellation is final: the record tells the cancellation (its txid, bytes, inputs,
        fee), and only its fee counts."""
        fee = cancel.fee_sats
        update = {
            "status": "cancelled",
            "txid": cancel.txid,
            "signed_tx": cancel.signed_tx,
            "inputs": cancel.inputs,
            "spend": {bitcoin_rules.BTC: str(fee)},
            "fee_sats": fee,
            "vsize": cancel.vsize,
            "confirmations": confirmations,
            "error": f"{cancel.error}; its cancellation {cancel.txid} is final, so payment {signed.txid} can never "
            "be mined",
        }
        return self._closed(agent, signed, update, fee, now)

    async def _cancel(
        self, agent: AgentState, signed: SignedBitcoinTransaction, by: str, node: Node, now: datetime
    ) -> list[Emit]:
        """Write, judge and sign the cancellation, record it (its fee held if more than what the
        payment holds), make it durable, send it, and report the intent cancelled."""
        try:
            intent, path, version = self.signing.kept_key(agent.tx_context(signed.intent_id))
            psbt = await self._judged_cancellation(intent, signed, node, now)
            tx = self.signing.bitcoin_replacement(intent, psbt, path, version)
        except SigningRefused as refused:
            return self.unable(signed, by, refused.reason, now)
        written = psbts.read(psbt)
        fee = written.fee() or 0
        cancel = self.outcomes.signed(
            signed.model_copy(
                update={
                    "txid": tx.txid,
                    "signed_tx": tx.raw.hex(),
                    "inputs": tuple(f"{i.txid}:{i.vout}" for i in written.inputs),
                    "spend": {bitcoin_rules.BTC: str(fee)},
                    "fee_sats": fee,
                    "vsize": tx.vsize,
                    "status": "cancelled",
                    "error": by,
                    "signed_at": now,
                }
            )
        )
        await agent.file.scope_closed()  # an intent's savepoint must not be made durable with it
        agent.record_replacement(
            intent_id=signed.intent_id,
            tx_hash=cancel.txid,
            record=cancel.to_bytes(),
            now_us=to_us(now),
            spend_wei=0,
            assets={bitcoin_rules.asset_key(signed.chain): cancel.fee_sats},
        )
        agent.cancel_sign_only(signed.intent_id, cancel.to_bytes())
        await self.persist(signed.agent_id)  # durable before the chain can see it
        not_sent = await _send(node, cancel)
        said = f"{by}; its cancellation {cancel.txid} spends {', '.join(cancel.inputs)} back to the agent"
        error = said if not_sent is None else f"{said}; the node refused it for now ({not_sent}): sent again"
        emits, _ = self.outcomes.bitcoin_status(signed, {"status": "cancelled", "final": False, "error": error}, now)
        return emits

    async def _judged_cancellation(
        self, intent: TransactionIntent, signed: SignedBitcoinTransaction, node: Node, now: datetime
    ) -> bytes:
        """The cancellation's PSBT (`btc.payments.cancellation`), once the judge passes it under
        the policy in force, with what the agent spent besides this payment; SigningRefused
        otherwise (its code and reason)."""
        policy = self.policies.current(signed.agent_id)
        if policy is None or policy.bitcoin is None:
            raise SigningRefused(Code.BITCOIN_PSBT_INVALID, "the agent's policy in force has no bitcoin section")
        original = psbts.read(intent.bitcoin_psbt_bytes)
        coins = [payments.Coin(i.txid, i.vout, i.amount or 0, i.script or b"") for i in original.inputs]
        own = wallet.own_scripts(bytes.fromhex(signed.public_key))
        try:
            psbt = payments.cancellation(coins, own, lambda vsize: sign_only.bitcoin_cancel_fee(signed.fee_sats, vsize))
        except payments.PaymentImpossible as exc:
            raise SigningRefused(Code.BITCOIN_PSBT_INVALID, str(exc)) from None
        written = psbts.read(psbt)
        asset = bitcoin_rules.asset_key(signed.chain)
        spent = self.state.agent(signed.agent_id).asset_spent(asset, to_us(now), excluding=signed.intent_id)
        try:
            held = await bitcoin_rules.held_by(node, written)
        except (RpcError, RpcUnavailable) as exc:
            raise SigningRefused(
                Code.BITCOIN_PSBT_INVALID, f"the node could not be asked for its inputs ({exc})"
            ) from None
        judged = bitcoin_rules.judge(
            written,
            public_key=signed.public_key,
            chain=signed.chain,
            allowed_chains=policy.tx_allowed_chains,
            policy=policy.bitcoin,
            held=held,
            spent=spent,
        )
        if not judged.passed:
            raise SigningRefused(judged.code, f"the judge refuses its cancellation: {judged.code}: {judged.reason}")
        return psbt


async def _send(node: Node, signed: SignedBitcoinTransaction) -> str | None:
    """The bytes to the node; None if it took them (or holds them already), else why not."""
    try:
        await bitcoin.send_raw(node, bytes.fromhex(signed.signed_tx))
    except RpcError as exc:
        return exc.message
    except RpcUnavailable as exc:
        return str(exc)
    return None
