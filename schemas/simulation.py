"""Simulation as a request: what an agent asks (`SimulationRequest`: one transaction, or a bundle of
up to `MAX_BUNDLE_STEPS` run in order in one block) and what the worker answers
(`SimulationResult`: each step's status, gas and balance changes, and every stage's verdict).

A request is signed by the agent's Ed25519 key like an intent, but over bytes of its own
(`SimulationRequest.signing_bytes` starts with a context string): a signature over a simulation
is no signature over an intent, so nothing in a request can be submitted as one, and its steps
carry no signature of their own. The result is an outcome like any other (signed by the worker,
bound to the request by its digest) and is never a reason to sign anything.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import orjson
from pydantic import Field, field_validator, model_validator

from schemas.fields import Address, Identifier, UtcDatetime, evm_chain
from schemas.intent import TransactionIntent
from schemas.outcomes import Outcome, StageVerdict
from schemas.record import Record

MAX_BUNDLE_STEPS = 8
# What an agent's signature over a request covers before the request itself (`signing_bytes`).
SIMULATION_CONTEXT = b"warden.simulation\x00"


class SimulationRequest(Record):
    """One transaction, or a bundle of them, to simulate in order in one block on ``chain`` and
    judge against the agent's policy in force, with nothing reserved and nothing signed. Each
    step is a transaction intent of this agent on this chain, unsigned: the request's
    ``signature`` covers them all."""

    request_id: Identifier
    agent_id: Identifier
    chain: str
    steps: tuple[TransactionIntent, ...] = Field(min_length=1, max_length=MAX_BUNDLE_STEPS)
    signature: str = Field(default="", description="Ed25519 by the agent over signing_bytes(), hex")

    _chain = field_validator("chain")(classmethod(lambda _cls, v, info: evm_chain(v, info.context)))

    @model_validator(mode="after")
    def _steps_of_this_request(self) -> "SimulationRequest":
        seen: set[str] = set()
        for index, step in enumerate(self.steps):
            where = f"steps[{index}] ({step.intent_id})"
            if step.intent_type != "transaction":
                raise ValueError(f"{where} is a {step.intent_type}; only transactions are simulated")
            if step.agent_id != self.agent_id:
                raise ValueError(f"{where} is agent {step.agent_id!r}'s; every step must be agent {self.agent_id!r}'s")
            if step.chain != self.chain:
                raise ValueError(f"{where} is on {step.chain}; a bundle runs in one block of one chain ({self.chain})")
            if step.signature:
                raise ValueError(
                    f"{where} carries a signature; a step is unsigned (the request's signature covers it), so "
                    "no step of a simulation can be submitted as an intent"
                )
            if step.intent_id in seen:
                raise ValueError(f"{where} repeats an intent_id; each step needs its own")
            seen.add(step.intent_id)
        return self

    def signing_bytes(self) -> bytes:
        """What the agent signs: `SIMULATION_CONTEXT`, then the request without its signature as
        orjson with sorted keys."""
        body = self.model_dump(mode="json", exclude={"signature"})
        return SIMULATION_CONTEXT + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

    def digest(self) -> str:
        """SHA-256 of signing_bytes(), hex: what the result is bound to (its ``intent_digest``)."""
        return hashlib.sha256(self.signing_bytes()).hexdigest()


class BalanceRow(Record):
    """One row of a step's balance-change table: one address's balance of one asset across the
    step, as decimal strings in the asset's unit (``decimals`` of them). ``token`` is ``native``
    or the token contract. ``before`` and ``after`` are None for a token with no
    ``balanceOf(address)`` (ERC-1155); ``change`` is always known (from the transfer trace) and
    leaves out the gas fee, which the fee stage prices."""

    address: Address
    token: str
    decimals: int
    before: str | None
    after: str | None
    change: str


class SimulatedStep(Record):
    """One step of a simulation: how the call ran in the bundle's block (``success`` or
    ``reverted``, with the decoded reason), the gas it used, the balance changes of every address
    it touched, and the verdict of each stage judged for it, in order (``not_judged``: the stages
    after a refusal)."""

    intent_id: str
    to: Address
    value: str
    status: Literal["success", "reverted"]
    revert_reason: str | None = None
    gas_used: int
    balance_changes: tuple[BalanceRow, ...] = ()
    verdicts: tuple[StageVerdict, ...] = ()
    not_judged: tuple[str, ...] = ()


SimulationDecision = Literal["allowed", "refused", "needs_human"]


class SimulationResult(Outcome):
    """The worker's answer to a `SimulationRequest`, on ``warden.simulations.results``, signed by
    the worker and bound to the request by ``intent_digest`` (the request's digest; for a request
    whose agent signature does not verify, or one that could not be read, the SHA-256 of the
    record's bytes as written). ``decision`` is the bundle's: allowed, refused (``deciding`` is
    the first refusing verdict) or needs_human (``why_human``). ``block_number``: the block the
    simulation ran on top of, where ``before`` balances were read."""

    request_id: str
    agent_id: str
    chain: str
    decision: SimulationDecision
    deciding: StageVerdict | None = None
    why_human: str | None = None
    block_number: int | None = None
    steps: tuple[SimulatedStep, ...] = ()
    simulated_at: UtcDatetime

    @property
    def intent_id(self) -> str:
        return self.request_id
