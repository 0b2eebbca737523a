"""The lifecycle of a signed transaction: one state machine per (chain, address, nonce).

::

    sign_only ──► mined / failed       the intent did not ask to broadcast (final), and its
      │    └────► dropped              bytes landed at a final block (someone broadcast them), or
      └──► cancelled ──► cancelled     another transaction took its nonce; or the signer cancelled
                   (final)             it (`signer.sign_only`), final once the replacement is
    signed ──► broadcast ──► mined     a receipt, executed
      │          │  ▲   └──► failed    a receipt, reverted; or the node refused it (final at once)
      │          ▼  │ fee bump
      │        stuck ──► replaced      another transaction this signer signed at the nonce was mined
      └──────────────────► dropped     the nonce is used and no transaction of the intent is in a
                                       block: what used it is not known (a block the node lost,
                                       or a transaction this signer never signed); its worst
                                       case stays counted

Mined, failed, replaced and dropped are what the chain said at some block: the record is
``final`` once that block is (`signer.finality`). Until then a reorg can move the transaction to
another block (the same or another of those four, re-reported) or take it out of the chain: back
to broadcast, the same bytes sent again. A final record never changes again, unless the chain
gives up the block it was final in (finality violated: a reorg deeper than the chain's finality, a
node restarted from older state): it is then reopened, reported (``tx.finality_violated``) and put
right as for a reorg. For that it is still compared with the chain for ``FINAL_WATCH_US`` after it
became final (`signer.finality`).

A fee bump signs the same intent again at the same nonce with higher fees; the new
transaction's record lists the hashes it ``replaces`` (any of them may still be the one that
is mined: the tracker asks for each one's receipt). ``stuck`` says why a transaction is not
being mined and what the signer will not do about it (a bump over the policy's fee ceiling or
spend limits, a nonce gap it cannot fill); it is reported, never silently waited on, and the
transaction is still tracked.

Every status change is a signer-signed record on ``warden.txs.signed`` and an audit event.
What the tracker does next is decided here from what the chain said and the time, with no
I/O (`next_step`, `bumped_fees`), and what a record says of it (`dropped_reason`, `gap_reason`);
`signer.service.Signer.track` does the asking and signing.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.clock import US_PER_SECOND
from schemas.errors import WardenError
from schemas.outcomes import SignedTransaction

# The statuses with an outcome are schemas.outcomes.FINAL_TX_STATUSES; these are the others.
OPEN = ("signed", "broadcast", "stuck")
# What the chain said at some block: final once that block is.
DECIDED = ("mined", "failed", "replaced", "dropped")
# From any open status a transaction may move to any of these; "signed" and "sign_only" are
# only ever where a record starts.
_MOVES = frozenset({"broadcast", "stuck", "mined", "failed", "replaced", "dropped"})
# Decided at a block that is not final yet: re-decided at another block, or out of the chain.
_REORG_MOVES = frozenset({"broadcast", "mined", "failed", "replaced", "dropped"})
# A sign-only transaction is followed from its own table (`signer.sign_only`), only ever to what
# the chain's final block holds: final as it is, or cancelled until the cancellation is final.
_SIGN_ONLY_MOVES = frozenset({"mined", "failed", "dropped", "cancelled"})
# Nodes accept a replacement at the same nonce only when its fees are at least 10 % higher
# (geth's default price bump); 12.5 % leaves room for rounding on both fees.
BUMP_NUM, BUMP_DEN = 9, 8
# How long a final record is still compared with the chain (`Tracking.keep`; a restarted signer
# looks again at the final records of this last while too). A chain that gives up a final block
# gives up a recent one: an hour is hundreds of blocks past any finality the registry names.
FINAL_WATCH_US = 3600 * US_PER_SECOND


def final_watch_wait_us(now_us: int, until_us: int, recheck_us: int) -> int | None:
    """How long a watched final record waits for its next look (a reorg the block watch sees
    wakes it sooner), or None once its watch is over: one look per reorg and per ``recheck_us``,
    however many blocks come."""
    if now_us >= until_us:
        return None
    return min(recheck_us, until_us - now_us)


class IllegalTransition(WardenError, ValueError):
    pass


def check_transition(current: str, new: str, final: bool = False) -> None:
    """Raise IllegalTransition unless a transaction in ``current`` (``final`` or not) may move to
    ``new``: a final record never changes (a final mined transaction is never reported failed or
    reorged later); a decided one that is not final may be decided again or sent again."""
    if current == "sign_only" or (current == "cancelled" and not final):
        if new not in _SIGN_ONLY_MOVES:
            raise IllegalTransition(f"a transaction in status {current!r} cannot become {new!r}")
        return
    if final:
        raise IllegalTransition(f"a final transaction ({current}) cannot become {new!r}")
    allowed = _MOVES if current in OPEN else _REORG_MOVES if current in DECIDED else frozenset()
    if new not in allowed:
        raise IllegalTransition(f"a transaction in status {current!r} cannot become {new!r}")


@dataclass(frozen=True)
class Wait:
    """Nothing to do yet: sent less than the replacement delay ago, or the nonce passed it less
    than ``NONCE_SETTLE_US`` ago. Until ``until_us`` only a new chain nonce (a block) can change
    that, so the tracker need not look again before a block or that time."""

    until_us: int


@dataclass(frozen=True)
class NonceUsed:
    """The chain's next nonce is past this one and none of this transaction's hashes has a
    receipt: another transaction took the nonce (replaced, or dropped)."""


@dataclass(frozen=True)
class Gap:
    """Nonces below this one are not used yet: it cannot be mined until they are."""

    missing: range


@dataclass(frozen=True)
class Bump:
    """Next in line and not mined within the replacement delay: sign it again with higher fees."""


@dataclass(frozen=True)
class Stuck:
    reason: str


Step = Wait | NonceUsed | Gap | Bump | Stuck


# A node can count a mined transaction in the sender's nonce a moment before it serves the
# receipt (seen on Anvil under load): the nonce must stay passed this long, with no receipt
# for any of the intent's transactions, before the transaction is called replaced or dropped.
NONCE_SETTLE_US = 3_000_000


def next_step(
    nonce: int,
    chain_next_nonce: int,
    sent_at_us: int,
    now_us: int,
    bumps: int,
    replace_after_us: int,
    max_bumps: int,
    nonce_passed_at_us: int | None = None,
) -> Step:
    """What to do about a transaction at ``nonce`` that has no receipt, given the sender's next
    nonce on chain (``eth_getTransactionCount(latest)``), when it was last sent, and since when
    the chain's nonce has been past it (None: not seen so yet)."""
    if chain_next_nonce > nonce:
        passed_at_us = now_us if nonce_passed_at_us is None else nonce_passed_at_us
        if now_us - passed_at_us < NONCE_SETTLE_US:
            return Wait(passed_at_us + NONCE_SETTLE_US)
        return NonceUsed()
    if now_us - sent_at_us < replace_after_us:
        return Wait(sent_at_us + replace_after_us)
    if chain_next_nonce < nonce:
        return Gap(range(chain_next_nonce, nonce))
    if bumps >= max_bumps:
        waited_s = (now_us - sent_at_us) // 1_000_000
        return Stuck(
            f"not mined {waited_s} s after it was last sent, and its fees were already raised {bumps} "
            f"time(s) (WARDEN_TX_MAX_BUMPS={max_bumps}); it is still tracked. Replace it with an intent "
            "naming this nonce and higher fees, or wait for fees to fall"
        )
    return Bump()


class BumpRefused(WardenError):
    """A replacement the policy does not allow; the reason says which bound and by how much."""


def bumped_fees(
    tx_type: int, fee_per_gas: int, priority_fee_per_gas: int | None, market_fee_per_gas: int, ceiling: int | None
) -> tuple[int, int | None]:
    """The fee per gas (and tip, for type 2) of a replacement for a transaction paying
    ``fee_per_gas`` (max fee or gas price): at least 12.5 % more, and for type 2 at least
    2 × base fee + tip (``market_fee_per_gas`` is the latest base fee for type 2, the node's
    gas price for types 0/1), but never over the policy's ceiling. Raises BumpRefused when
    even the smallest bump a node accepts would pass the ceiling."""
    least = -(-fee_per_gas * BUMP_NUM // BUMP_DEN)
    least = max(least, fee_per_gas + 1)
    tip = None
    if tx_type == 2:
        tip = -(-(priority_fee_per_gas or 0) * BUMP_NUM // BUMP_DEN)
        wanted = max(least, 2 * market_fee_per_gas + tip)
    else:
        wanted = max(least, market_fee_per_gas)
    if ceiling is not None:
        if least > ceiling:
            raise BumpRefused(
                f"a replacement would need at least {least} wei per gas (12.5 % over the "
                f"{fee_per_gas} it pays), over this agent's ceiling of {ceiling} wei per gas "
                "(tx_max_fee_per_gas)"
            )
        wanted = min(wanted, ceiling)
    if tip is not None:
        tip = min(tip, wanted)
    return wanted, tip


def dropped_reason(signed: SignedTransaction) -> str:
    """What is known of a transaction whose nonce the chain used with none of its intent's
    transactions in a block: not who used the nonce. A node that lost the block holding it (a
    power loss: Anvil saves its state once a second) still counts the nonce, and the spend, in the
    sender's account."""
    before = (
        f"; it was in a block before ({signed.reorgs} time(s) taken out of the chain since)" if signed.reorgs else ""
    )
    return (
        f"nonce {signed.nonce} of {signed.from_} on {signed.chain} is used, and no transaction this signer signed "
        f"for intent {signed.intent_id} is in a block on the chain{before}: it can no longer be mined. What used the "
        "nonce is not known here: a block that held this transaction which the node lost, or a transaction this "
        "signer did not sign. What it would have spent stays counted at its worst case, for 24 h from its signing; "
        "if it shows up in a block, it is reported mined there. If the address is used outside Warden, stop that: "
        "it races the signer's nonces"
    )


def gap_reason(signed: SignedTransaction, chain_next_nonce: int, unfilled: list[int], sign_only: list[str]) -> str:
    """Why a transaction behind unused nonces (``unfilled``, none held by a transaction this signer
    can send) cannot be mined; ``sign_only``: intents whose sign-only bytes hold some of them."""
    held_by_client = (
        f" Sign-only transaction(s) of intent(s) {', '.join(sign_only[:5])} hold some of them: broadcast those."
        if sign_only
        else ""
    )
    return (
        f"nonce gap: the chain's next nonce for {signed.from_} on {signed.chain} is {chain_next_nonce}, this "
        f"transaction has {signed.nonce}, and nonce(s) {_ranges(unfilled)} have no pending transaction this "
        f"signer can send, so it cannot be mined until they are used.{held_by_client} The signer signs only "
        "what an intent asks for: it does not fill the gap by itself"
    )


def _ranges(nonces: list[int]) -> str:
    return ", ".join(str(n) for n in nonces[:10]) + (f" and {len(nonces) - 10} more" if len(nonces) > 10 else "")
