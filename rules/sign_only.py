"""Sign-only transactions: what their bytes can still spend, and when they no longer can.

A transaction Warden signs without broadcasting it (``broadcast`` false) can land on any day: an
EVM one does not expire and the signer hands out consecutive nonces; a Bitcoin one is valid for as
long as the outputs it spends are unspent (and a lock time can keep any Bitcoin payment, sent or
not, out of a block for days). So its spend is held in the rolling windows from signing
(`rules.window`, ``held``) until the chain settles it at a final block: an EVM one's nonce taken,
a Bitcoin payment mined, conflicted (another transaction spent one of its inputs) or cancelled.
The policy bounds what all of them together may spend (``max_sign_only_outstanding`` in wei, at
the daily-limit stage; ``bitcoin.max_sign_only_outstanding_sats``, at the bitcoin stage) and how
long one stays usable (``sign_only_ttl_s``, every family: then the signer cancels it). A Solana
transaction needs neither: its recent blockhash expires it within about two minutes. Pure: the
chain facts and ``now`` come in as arguments.
"""

from __future__ import annotations

from enum import StrEnum

from rules.verdicts import verdict
from schemas.codes import Code
from schemas.fields import format_native_amount
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from schemas.stages import Stage

# The pseudo asset key under which a caller's ``spent`` answers what the agent's sign-only
# transactions not yet landed can spend, in wei (`rules.judge.Context.spent`); of an asset's
# window (a Bitcoin network's): `outstanding_key`.
OUTSTANDING = "sign_only_outstanding"
# A cancellation is a plain transfer of nothing to the sender itself.
CANCEL_GAS = 21_000


def is_sign_only(intent: TransactionIntent) -> bool:
    """An EVM transaction handed to the agent to broadcast: held until its nonce is taken."""
    return intent.intent_type == "transaction" and not intent.broadcast


def held(intent: TransactionIntent) -> bool:
    """Whether an approved intent's spend is held in the windows whatever its age (`rules.window`):
    an EVM sign-only transaction's, until its nonce is taken; a Bitcoin payment's, sent or not,
    until it is mined, conflicted or cancelled at a final block (its bytes spend for as long as its
    inputs are unspent, and a lock time can keep them from a block for days)."""
    return is_sign_only(intent) or intent.intent_type == "bitcoin_psbt"


def outstanding_key(asset: str) -> str:
    """The pseudo asset key of what the held reservations of ``asset``'s window add up to."""
    return f"{OUTSTANDING}:{asset}"


def outstanding_asset(key: str) -> str | None:
    """The asset of an `outstanding_key`, or None for another key."""
    prefix = OUTSTANDING + ":"
    return key[len(prefix) :] if key.startswith(prefix) else None


def check_outstanding(
    intent: TransactionIntent, policy: AgentPolicy, outstanding_wei: int, fee: FeeQuote
) -> StageVerdict | None:
    """The refusal of a sign-only intent whose spend, with what the agent's sign-only transactions
    not yet landed can spend, passes ``max_sign_only_outstanding``; None when it fits or no bound
    applies."""
    bound = policy.max_sign_only_outstanding
    if bound is None or not is_sign_only(intent):
        return None
    spend = fee.spend_wei(intent)
    if outstanding_wei + spend <= bound:
        return None
    return verdict(
        intent,
        Stage.DAILY_LIMIT,
        False,
        Code.SIGN_ONLY_OUTSTANDING_EXCEEDED,
        f"{format_native_amount(outstanding_wei)} is held by sign-only transactions not yet landed; "
        f"{format_native_amount(spend)} more ({fee.describe(intent)}) would pass max_sign_only_outstanding "
        f"({bound} wei). Broadcast them, or have an admin cancel one (`warden txs cancel`)",
        outstanding_wei=str(outstanding_wei),
        bound_wei=str(bound),
        spend_wei=str(spend),
    )


# A sign-only transaction is compared with the chain every 2 s for its first 10 minutes (when an
# agent that broadcasts its bytes does so), then every 30 s: each look costs a call to the node
# per address, and the spend stays held meanwhile, so a later look only releases it later.
LOOK_EVERY_US = (2_000_000, 30_000_000)
LOOK_OFTEN_FOR_US = 600_000_000


def look_every_us(age_us: int) -> int:
    """How long after a look at a sign-only transaction of age ``age_us`` the next one comes."""
    return LOOK_EVERY_US[0] if age_us < LOOK_OFTEN_FOR_US else LOOK_EVERY_US[1]


def ttl_expired(signed_at_us: int, ttl_s: int | None, now_us: int) -> bool:
    """Whether a sign-only transaction signed at ``signed_at_us`` is past its policy's TTL at ``now_us``."""
    return ttl_s is not None and signed_at_us <= ttl_signed_by_us(ttl_s, now_us)


def why_cancel(asked: str | None, signed_at_us: int, policy: AgentPolicy | None, now_us: int) -> str | None:
    """Why a sign-only transaction still open is cancelled now: who asked (``asked``), or the
    policy's TTL, passed at ``now_us`` since it was signed at ``signed_at_us``; None: it is not."""
    ttl_s = None if policy is None else policy.sign_only_ttl_s
    if asked is None and ttl_expired(signed_at_us, ttl_s, now_us):
        return f"cancelled by the signer: the policy's sign_only_ttl_s ({ttl_s} s) passed before it landed"
    return asked


def ttl_signed_by_us(ttl_s: int, now_us: int) -> int:
    """The moment at or before which a sign-only transaction signed is past a TTL of ``ttl_s`` at ``now_us``."""
    return now_us - ttl_s * 1_000_000


class Fate(StrEnum):
    """What became of a sign-only transaction's nonce, at the chain's final block."""

    OPEN = "open"  # not taken: the bytes can still land
    LANDED = "landed"  # taken by the transaction itself
    CANCELLED = "cancelled"  # taken by the signer's cancellation
    TAKEN = "taken"  # taken by a transaction this record does not hold


def fate(nonce: int, final_count: int, landed_at: int | None, cancelled_at: int | None, final_block: int) -> Fate:
    """The nonce's fate from the chain: the sender's transaction count at the final block, and the
    block of the transaction's receipt and of its cancellation's (None: none). A receipt above the
    final block decides nothing yet: a reorg can still move it."""
    if final_count <= nonce:
        return Fate.OPEN
    if landed_at is not None and landed_at <= final_block:
        return Fate.LANDED
    if cancelled_at is not None and cancelled_at <= final_block:
        return Fate.CANCELLED
    if landed_at is not None or cancelled_at is not None:
        return Fate.OPEN  # taken at a final block by a receipt not final yet: cannot be; asked again
    return Fate.TAKEN


# A Bitcoin cancellation pays the fee of the payment it cancels, and this many satoshis a virtual
# byte of its own more: a node takes it in place of the payment (BIP-125 asks for the relay fee, 1
# sat/vB, over what it replaces), and a miner prefers it.
CANCEL_SAT_VB = 2


def bitcoin_cancel_fee(payment_fee: int, vsize: int) -> int:
    """The fee of a Bitcoin cancellation of ``vsize`` virtual bytes, of a payment that pays
    ``payment_fee``: more than the payment's (so a node holding the payment takes the cancellation
    in its place, BIP-125), whose rate is then above the payment's too (the cancellation is no
    larger: one output to the agent, and some of the payment's inputs)."""
    return payment_fee + CANCEL_SAT_VB * vsize


def cancel_fees(fee_per_gas: int, priority_fee_per_gas: int | None, market_fee_per_gas: int) -> tuple[int, int | None]:
    """The fee per gas (and tip, for a type-2 original) of a cancellation: at least 10 % over
    each of the original's fees (rounded up, and at least 1 wei more), as nodes require of a
    replacement, and at least the market's now. No ceiling: a cancellation must be able to
    replace what it cancels, and its fee is counted as the intent's spend."""
    fee = max(-(-fee_per_gas * 11 // 10), fee_per_gas + 1, market_fee_per_gas)
    if priority_fee_per_gas is None:
        return fee, None
    tip = max(-(-priority_fee_per_gas * 11 // 10), priority_fee_per_gas + 1)
    return max(fee, tip), tip
