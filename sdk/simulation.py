"""Asking the pipeline what would happen: build and sign a simulation request (one transaction,
or a bundle run in order in one block), and read the worker's answer, believed only when
authentic (signed by a pinned worker key and bound to the very request sent). The names are
importable from `sdk.client`, the SDK's one import surface.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from aiokafka import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import follow
from runtime.registry import REGISTRY
from schemas import topics
from schemas.auth import ServiceKeys, outcome_forgery, sign_simulation_request
from schemas.codes import Code
from schemas.errors import Problem, WardenError
from schemas.intent import TransactionIntent
from schemas.simulation import SimulationRequest, SimulationResult

# The refusals bound to the SHA-256 of the bytes sent rather than to the request's digest: a
# request the worker could not read, and one whose signature does not verify (a copy of a real
# request's fields under a bad signature has the real one's digest).
BOUND_TO_BYTES = frozenset({Code.INVALID_REQUEST, Code.AGENT_SIGNATURE_INVALID})


class SimulationUnanswered(WardenError, TimeoutError):
    """No authentic answer to a simulation request came in time."""


def new_simulation_request(
    agent_key: Ed25519PrivateKey,
    *,
    agent_id: str,
    chain: str,
    steps: Sequence[Mapping[str, Any]],
    request_id: str | None = None,
    now: datetime | None = None,
) -> SimulationRequest:
    """A signed request to simulate ``steps`` in order in one block on ``chain``. Each step holds
    a transaction intent's fields (``to``, ``value``, and optionally ``data``, ``gas_limit``,
    ``declared_outflows``...); its id is the request's with the step's number. Raises pydantic's
    ValidationError naming the step and the field that is wrong."""
    request_id = request_id or "sim-" + uuid.uuid4().hex
    created_at = now or utcnow()
    # Checked against the networks in force as this client knows them, as `sdk.client.new_intent` is.
    intents = tuple(
        TransactionIntent.model_validate(
            dict(intent_id=f"{request_id}.{number}", agent_id=agent_id, chain=chain, created_at=created_at, **step),
            context=REGISTRY.context,
        )
        for number, step in enumerate(steps, start=1)
    )
    request = SimulationRequest.model_validate(
        dict(request_id=request_id, agent_id=agent_id, chain=chain, steps=intents), context=REGISTRY.context
    )
    return sign_simulation_request(request, agent_key)


def simulation_problem(result: SimulationResult, request: SimulationRequest, keys: ServiceKeys) -> Problem | None:
    """None when ``result`` is the authentic answer to ``request`` (sent as ``request.to_bytes()``),
    else why not: `schemas.auth.outcome_forgery` with the digest it must carry."""
    bound_to_bytes = result.deciding is not None and result.deciding.code in BOUND_TO_BYTES
    expected = hashlib.sha256(request.to_bytes()).hexdigest() if bound_to_bytes else request.digest()
    return outcome_forgery(result, keys, expected)


async def wait_simulation(
    settings: Settings,
    request: SimulationRequest,
    keys: ServiceKeys,
    timeout_s: float,
    start: dict[TopicPartition, int] | None = None,
    forged: list[str] | None = None,
) -> SimulationResult:
    """The first authentic answer to ``request`` on ``warden.simulations.results`` (from ``start``).
    Anything else about it is skipped, and why is added to ``forged`` when a list is given.
    Raises `SimulationUnanswered` past ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    async for topic, value in follow(
        settings,
        (topics.SIMULATIONS_RESULTS,),
        start,
        fetch_max_wait_ms=settings.fetch_wait_ms,
        keys={request.agent_id},
    ):
        if topic:
            try:
                result = SimulationResult.from_bytes(value)
            except ValidationError:
                result = None  # anyone can write to the topic: what is no result answers nothing
            if result is not None and result.request_id == request.request_id:
                why = simulation_problem(result, request, keys)
                if why is None:
                    return result
                if forged is not None:
                    forged.append(str(why))
        if time.monotonic() > deadline:
            raise SimulationUnanswered(
                f"no answer to simulation request {request.request_id} within {timeout_s:g} s; is the streams "
                "worker running? `warden status` shows it"
            )
    raise SimulationUnanswered(f"the results topic closed before simulation request {request.request_id} was answered")
