"""The integer type each chain family holds an amount in, and the one refusal of an amount, or a
sum of amounts, that leaves it.

A chain holds an amount in a fixed-width integer: an EVM value, fee or token amount in a uint256;
a Solana amount of lamports or of a token's base units in a u64; a Bitcoin amount of satoshis in an
int64 that consensus bounds by MAX_MONEY (21,000,000 BTC), one output and a transaction's outputs
or inputs together alike. Warden reads and adds amounts as Python integers, which have no bound,
so each family's judge holds every amount it reads, and every sum it counts of one asset (what a
transaction spends of it, value plus worst-case fee), to its type before anything compares it with
a cap or a limit: what the chain cannot hold is refused `Code.AMOUNT_OUT_OF_RANGE`, never judged
as a number the chain would read otherwise (wrapped, saturated or refused by the node after
Warden signed it).

A rolling window adds the spend of many transactions, no one of which leaves its type: its total
is compared with a limit and stored as text, never written on a chain, and is not held to one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from btc.psbt import MAX_MONEY
from schemas.codes import Code
from schemas.errors import Problem, WardenError
from schemas.fields import MAX_UINT256


@dataclass(frozen=True)
class AmountType:
    """An integer type a chain holds amounts in: ``name`` as the chain's documents spell it, and
    the most it holds (the least is 0)."""

    name: str
    most: int

    def holds(self, amount: int) -> bool:
        return 0 <= amount <= self.most


UINT256 = AmountType("uint256", MAX_UINT256)
U64 = AmountType("u64", 2**64 - 1)
SATOSHIS = AmountType("MAX_MONEY", MAX_MONEY)


@dataclass(frozen=True)
class OutOfRange:
    """An amount (``what`` it is, in words a reason reads) outside ``kind``."""

    what: str
    amount: int
    kind: AmountType

    @property
    def problem(self) -> Problem:
        return Problem(
            f"{self.what} is {self.amount}, outside the {self.kind.name} the chain holds it in (0 to {self.kind.most}): "
            "no transaction can carry it, so Warden signs nothing for it",
            "write every amount, and every sum of one asset a transaction moves, within that range",
            Code.AMOUNT_OUT_OF_RANGE,
        )

    def facts(self) -> dict[str, str]:
        """What a refusal's facts say of it: the amount and the bound as decimal text (a JSON
        reader elsewhere holds integers to 2**53 at best), and the type's name."""
        return {"amount_of": self.what, "amount": str(self.amount), "type": self.kind.name, "most": str(self.kind.most)}


class AmountOutOfRange(WardenError, ValueError):
    """An amount that the chain's type cannot hold, given to a builder of a transaction or a fee:
    the message names the amount, the type and its bound; ``found`` says it as a refusal's facts."""

    def __init__(self, found: OutOfRange) -> None:
        problem = found.problem
        super().__init__(problem.what, problem.next_step)
        self.found = found


def first_out_of_range(kind: AmountType, amounts: Iterable[tuple[str, int]]) -> OutOfRange | None:
    """The first of ``amounts`` (what each is, and how much) that ``kind`` does not hold, or None."""
    for what, amount in amounts:
        if not kind.holds(amount):
            return OutOfRange(what, amount, kind)
    return None


def checked(kind: AmountType, amount: int, what: str) -> int:
    """``amount``, when ``kind`` holds it; else `AmountOutOfRange` naming ``what`` it is. For a
    builder of a transaction, which must never write an amount the chain would read otherwise."""
    found = first_out_of_range(kind, [(what, amount)])
    if found is not None:
        raise AmountOutOfRange(found)
    return amount
