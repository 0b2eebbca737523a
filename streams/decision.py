"""What the streams worker remembers of each intent it decided: a typed `Decision`, and
`Decisions`, the typed view over the mapping that stores them (the worker's table, `streams.state`;
a dict in tests).

The table keeps each decision as a JSON object (it is what its changelog holds, and what a
restarted worker reads back), in the one form `Decision.to_stored` writes and
`Decision.from_stored` reads: integers of wei as decimal strings, records as base64. A
decision is remembered so that a redelivered intent gets the same answer, not a second one,
and so that the rolling windows and the parked intents can be rebuilt from decisions alone.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, overload

Outcome = Literal["approved", "parked", "rejected", "released", "abandoned"]
"""``released``: approved, then refused by a signer, so its reservation no longer counts.
``abandoned``: given up, undecided, when the redelivery watch found it overdue; the signer has the
last word on it (NO_OUTCOME, unless it decided it already), and it holds nothing."""

_OUTCOMES = frozenset(get_args(Outcome))
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome already emitted for one intent, and what it reserved.

    ``record`` is the signed outcome as published on ``topic``, replayed as is; ``digest`` the
    digest of the intent it is about (a different intent under the same id is not that intent).
    ``spend_wei`` and ``assets`` (per asset key, in the asset's units) are what it holds in the
    agent's windows while ``counts`` (an idempotent replay of an approval counts nothing).
    A parked decision also holds when its wait for an admin ends (``expires_us``) and
    ``pending``, the approval it becomes if an admin says so (kept once approved). An approved
    EVM sign-only transaction is ``held`` (counted whatever its age) until the signer reports its
    nonce taken, and so is every approved Bitcoin payment until the signer reports its fate final
    (mined, conflicted or cancelled); then it counts what the chain took from ``landed_us``. A
    Bitcoin payment's ``claims`` are the outputs its PSBT spends (``txid:vout``), which no other
    intent of the agent may spend while it reserves."""

    agent_id: str
    outcome: Outcome
    at_us: int
    topic: str
    record: bytes
    digest: str
    spend_wei: int = 0
    assets: Mapping[str, int] = field(default_factory=dict)
    counts: bool = True
    expires_us: int | None = None
    pending: bytes | None = None
    held: bool = False
    landed_us: int | None = None
    claims: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.outcome not in _OUTCOMES:
            raise ValueError(f"a decision's outcome is one of {sorted(_OUTCOMES)}, not {self.outcome!r}")

    def waiting(self) -> tuple[int, bytes]:
        """A parked decision's wait for an admin: (when it ends, µs; the approval it becomes).
        `Decider._park` writes both with every parked decision; one without them is no parked one."""
        if self.expires_us is None or self.pending is None:
            raise ValueError(
                f"a decision {self.outcome} at {self.at_us} holds no wait for an admin (expires_us, pending)"
            )
        return self.expires_us, self.pending

    @property
    def reserves(self) -> bool:
        """Whether its spend is held in the agent's windows."""
        return self.outcome in ("approved", "parked") and self.counts

    def to_stored(self) -> dict[str, Any]:
        """The JSON object the table stores (``expires_us`` and ``pending`` only when set)."""
        stored = {
            "agent_id": self.agent_id,
            "outcome": self.outcome,
            "at_us": self.at_us,
            "spend_wei": str(self.spend_wei),
            "assets": {key: str(units) for key, units in self.assets.items()},
            "counts": self.counts,
            "topic": self.topic,
            "record": base64.b64encode(self.record).decode(),
            "digest": self.digest,
        }
        if self.expires_us is not None:
            stored["expires_us"] = self.expires_us
        if self.pending is not None:
            stored["pending"] = base64.b64encode(self.pending).decode()
        if self.held:
            stored["held"] = True
        if self.landed_us is not None:
            stored["landed_us"] = self.landed_us
        if self.claims:
            stored["claims"] = list(self.claims)
        return stored

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Decision:
        """A decision as the table stores it. A rejection leaves ``assets`` and ``counts`` out
        (it holds nothing), and only a parked decision, or one approved by an admin, holds
        ``expires_us`` and ``pending``."""
        pending = stored.get("pending")
        return cls(
            agent_id=stored["agent_id"],
            outcome=stored["outcome"],
            at_us=int(stored["at_us"]),
            topic=stored["topic"],
            record=base64.b64decode(stored["record"]),
            digest=stored["digest"],
            spend_wei=int(stored.get("spend_wei", 0)),
            assets={key: int(units) for key, units in stored.get("assets", {}).items()},
            counts=bool(stored.get("counts", True)),
            expires_us=None if stored.get("expires_us") is None else int(stored["expires_us"]),
            pending=None if pending is None else base64.b64decode(pending),
            held=bool(stored.get("held", False)),
            landed_us=None if stored.get("landed_us") is None else int(stored["landed_us"]),
            claims=tuple(stored.get("claims", ())),
        )


class Decisions(MutableMapping[str, Decision]):
    """intent_id → its `Decision`, read from and written to ``stored`` in the stored form."""

    def __init__(self, stored: MutableMapping[str, Any]):
        self.stored = stored

    def __getitem__(self, intent_id: str) -> Decision:
        return Decision.from_stored(self.stored[intent_id])

    # Mapping.get's overloads, over the stored form: a stored None is no decision either.
    @overload
    def get(self, intent_id: str, /) -> Decision | None: ...

    @overload
    def get(self, intent_id: str, default: Decision, /) -> Decision: ...

    @overload
    def get(self, intent_id: str, default: _T, /) -> Decision | _T: ...

    def get(self, intent_id: str, default: object = None) -> object:
        stored = self.stored.get(intent_id)
        return default if stored is None else Decision.from_stored(stored)

    def __setitem__(self, intent_id: str, decision: Decision) -> None:
        self.stored[intent_id] = decision.to_stored()

    def __delitem__(self, intent_id: str) -> None:
        del self.stored[intent_id]

    def __contains__(self, intent_id: object) -> bool:
        return intent_id in self.stored

    def __iter__(self) -> Iterator[str]:
        return iter(self.stored)

    def __len__(self) -> int:
        return len(self.stored)
