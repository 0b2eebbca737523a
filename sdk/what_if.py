"""What a policy would have done: an agent's recorded intents, replayed from the audit ledger in
order through the one judge (`rules.judge`) under another policy, with rolling windows of the
replay's own.

The ledger keeps each intent whole (its ``intent.submitted`` event) and every stage's verdict with
its facts. A stage that needs the chain is never asked today's chain: the fee stage uses the quote
recorded at the time (or the fees the intent names itself), the simulation stage the verdict
recorded at the time, the USD stage the prices recorded at the time. Where nothing was recorded
(the intent was refused before that stage ran) the replay does not guess: a simulation that never
ran is reported as not judged beside the decision of the other stages; a fee never quoted (and
not named by the intent) or a price never read makes the decision undetermined, with the stage.

Only what was judged is replayed. Intake records an intent before it checks its signature, so
anyone who can write to the intents topic can put an intent on the ledger under any agent's name:
each recorded intent is replayed only when its agent's Ed25519 signature verifies under the key
of the policy in force when it was submitted (the newest ``policy.updated`` before it). Whatever
is not replayed is counted, per reason, in the report's ``skipped``. Checking the rows read
against the ledger's hash chains and signed checkpoints is the caller's (the SDK imports no
service): `infra.cli.policy` does it before the replay, with ``LedgerRead.rows``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import clickhouse_connect
import orjson
from clickhouse_connect.driver.exceptions import ClickHouseError
from pydantic import ValidationError

from rules import fees, judge, prices
from rules.judge import approval_needed
from rules.movements import NATIVE
from rules.window import SpendWindow
from runtime.clock import to_us
from runtime.config import Settings
from runtime.registry import REGISTRY
from schemas.actions import AuditAction
from schemas.auth import intent_signature_valid
from schemas.chains import ChainLookup
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from schemas.stages import Stage

_DECISIONS = (
    AuditAction.INTENT_SUBMITTED,
    AuditAction.STAGE_PASSED,
    AuditAction.STAGE_FAILED,
    AuditAction.INTENT_APPROVED,
    AuditAction.INTENT_PARKED,
    AuditAction.INTENT_REJECTED,
)
_SINCE = re.compile(r"^(\d+)([dh])$")


def parse_since(text: str) -> timedelta:
    """``30d`` or ``12h``."""
    found = _SINCE.match(text.strip())
    if found is None:
        raise ValueError(f"--since {text!r}: a number of days or hours, such as 30d or 12h")
    number, unit = int(found.group(1)), found.group(2)
    return timedelta(days=number) if unit == "d" else timedelta(hours=number)


@dataclass
class Recorded:
    """One intent as the ledger holds it: the intent, when it was decided, what was decided, and
    the chain's facts its stages recorded."""

    intent: TransactionIntent
    at: datetime
    outcome: str = "undecided"  # approved, parked or refused: the streams worker's decision
    stage: str | None = None
    code: str | None = None
    quote: FeeQuote | None = None
    simulated: StageVerdict | None = None
    prices: dict[str, prices.Price] | None = None
    asset_spend: dict[str, int] = field(default_factory=dict)
    digest: str = ""  # the intent's digest (SHA-256 of its signing bytes), which its decisions name

    def moved(self) -> dict[str, int]:
        """What it moved, if it was approved."""
        return moved(self.intent, self.asset_spend) if self.outcome in ("approved", "parked") else {}


def moved(intent: TransactionIntent, asset_spend: Mapping[str, int]) -> dict[str, int]:
    """What an intent moves, per asset: its value in wei (native), the tokens counted (not the
    USD window, which prices the same movements)."""
    out = {NATIVE: intent.value_wei} if intent.value_wei else {}
    return out | {k: v for k, v in asset_spend.items() if k != prices.USD and v}


@dataclass
class Replayed:
    recorded: Recorded
    outcome: str  # approved, parked, refused or undetermined
    stage: Stage | None
    code: str | None
    reason: str
    moved: dict[str, int]
    not_judged: list[Stage] = field(default_factory=list)  # stages that needed the chain and never ran

    @property
    def changed(self) -> bool:
        passed = {"approved": True, "parked": True, "refused": False}
        return self.outcome == "undetermined" or passed.get(self.outcome) != passed.get(self.recorded.outcome)


# Why a recorded intent is not replayed: the report's ``skipped``, counted per reason.
SIGNATURE_INVALID = "signature does not verify"
NO_POLICY = "no policy in force on the ledger when it was submitted, so no key to check its signature"
PARTIAL = "its signature cannot be checked: the ledger keeps it without its blobs or sealed secrets"
SUMMARY_ONLY = "the ledger keeps a summary only (recorded before intents were kept whole)"
UNREADABLE = "not a readable intent"
UNDECIDED = "no decision of the streams worker recorded for it (yet)"


@dataclass
class LedgerRead:
    """What a replay read of the ledger: the intents to judge again, oldest first; how many it
    will not judge, per reason; and every row it read, as (ledger chain, seq), to be checked
    against the chains and checkpoints before anything read is believed."""

    recorded: list[Recorded]
    skipped: dict[str, int]
    rows: list[tuple[int, int]]
    oldest: datetime | None  # the time of the oldest row read


def read_ledger(settings: Settings, agent_id: str, since: datetime) -> LedgerRead:
    """The agent's intents decided since ``since`` whose signature verifies under the agent key
    in force when each was submitted, from the ledger's SQL endpoint."""
    host, _, port = settings.ledger_http.rpartition(":")
    columns = "SELECT chain, seq, intent_id, action, ts, details FROM audit_log WHERE agent_id = {a:String}"
    try:
        client = clickhouse_connect.get_client(host=host, port=int(port), connect_timeout=5, compress=False)
        # Every policy: the one in force at ``since`` may be older than it.
        policy_rows = client.query(
            columns + " AND action = 'policy.updated' ORDER BY ts, chain, seq", parameters={"a": agent_id}
        ).result_rows
        rows = client.query(
            columns + " AND ts >= {s:DateTime64(6)} AND action IN {actions:Array(String)} ORDER BY ts, chain, seq",
            parameters={"a": agent_id, "s": since, "actions": list(_DECISIONS)},
        ).result_rows
    except ClickHouseError as exc:
        raise ValueError(
            f"cannot read the ledger at http://{settings.ledger_http} ({exc}); start the pipeline (warden up) or set "
            "WARDEN_LEDGER_HTTP to the ledger's endpoint"
        ) from None
    return from_rows(policy_rows, rows, since)


# A ledger row as the query reads it: (chain, seq, intent_id, action, ts, details JSON).
LedgerRow = Sequence[Any]


def from_rows(policy_rows: Iterable[LedgerRow], rows: Sequence[LedgerRow], since: datetime) -> LedgerRead:
    """`read_ledger` of the rows it read: (chain, seq, intent_id, action, ts, details) each, the
    agent's ``policy.updated`` events (all of them) and its intents' events since ``since``."""
    policies = _policies(policy_rows, since)
    read = LedgerRead(
        [],
        {},
        [(chain, seq) for chain, seq, *_ in rows] + [(p.chain, p.seq) for p in policies],
        min([_utc(row[4]) for row in rows] + [p.at for p in policies], default=None),
    )
    found: dict[tuple[str, str], Recorded] = {}  # by (intent id, digest): a forged copy is another record
    first: dict[str, Recorded] = {}  # by intent id, for decisions recorded before they named the digest
    for chain, seq, intent_id, action, ts, raw in rows:
        details = orjson.loads(raw)
        if action == AuditAction.INTENT_SUBMITTED:
            believed = _believed(details, (_utc(ts), chain, seq), policies)
            if isinstance(believed, str):  # why it is not
                read.skipped[believed] = read.skipped.get(believed, 0) + 1
            elif (intent_id, believed.digest) not in found:
                found[intent_id, believed.digest] = believed
                first.setdefault(intent_id, believed)
            continue
        digest = details.get("intent_digest")
        recorded = first.get(intent_id) if digest is None else found.get((intent_id, digest))
        if recorded is None:  # a decision about a record not replayed (a forged copy's refusal names its bytes)
            continue
        if action in (AuditAction.STAGE_PASSED, AuditAction.STAGE_FAILED):
            _facts(recorded, details, passed=action == AuditAction.STAGE_PASSED)
        elif action == AuditAction.INTENT_APPROVED:
            recorded.outcome = "approved"
        elif action == AuditAction.INTENT_PARKED:
            recorded.outcome = "parked"
        elif (
            action == AuditAction.INTENT_REJECTED
            and details.get("stage") != Stage.SIGNING
            and recorded.outcome == "undecided"
        ):
            recorded.outcome, recorded.stage, recorded.code = "refused", details.get("stage"), details.get("code")
    for recorded in found.values():
        if recorded.outcome == "undecided":
            read.skipped[UNDECIDED] = read.skipped.get(UNDECIDED, 0) + 1
        else:
            read.recorded.append(recorded)
    return read


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)  # the endpoint's DateTime64 is UTC


@dataclass(frozen=True)
class _Adopted:
    """A policy as the worker adopted it: its ``policy.updated`` row (chain, seq, time)."""

    chain: int
    seq: int
    at: datetime
    policy: AgentPolicy


def _policies(rows: Iterable[LedgerRow], since: datetime) -> list[_Adopted]:
    """The agent's policies as the worker adopted them (``policy.updated``, whole), oldest first:
    the one in force at ``since`` and every later one."""
    adopted = []
    for chain, seq, _, _, ts, raw in rows:
        whole = orjson.loads(raw).get("policy")
        if whole is not None:  # older rows name the version only
            adopted.append(_Adopted(chain, seq, _utc(ts), AgentPolicy.model_validate(whole)))
    before = [p for p in adopted if p.at < since]
    return before[-1:] + [p for p in adopted if p.at >= since]


def _believed(details: dict[str, Any], where: tuple[datetime, int, int], policies: list[_Adopted]) -> Recorded | str:
    """The recorded intent of an ``intent.submitted`` event (its row's time, chain and seq), or why
    it is not to be believed (one of the reasons above)."""
    at, chain, seq = where
    whole = details.get("intent")
    if whole is None:
        return SUMMARY_ONLY
    try:
        intent = TransactionIntent.model_validate(whole)
    except ValidationError:
        return UNREADABLE
    # Adopted before it: earlier, or in the same microsecond and earlier on the same chain.
    in_force = [p.policy for p in policies if p.at < at or (p.at == at and p.chain == chain and p.seq < seq)]
    if not in_force:
        return NO_POLICY
    digest = intent.digest()
    if details.get("intent_digest", digest) != digest:
        # Signed with the parts the ledger leaves out: the signature covers bytes no longer kept.
        return PARTIAL
    if not intent_signature_valid(intent, max(in_force, key=lambda p: p.version)):
        return SIGNATURE_INVALID
    return Recorded(intent, at, digest=digest)


def _facts(recorded: Recorded, details: dict[str, Any], passed: bool) -> None:
    """What a stage's verdict recorded of the chain, kept for the replay."""
    stage, facts = details.get("stage"), details.get("facts") or {}
    if stage == Stage.FEE and "gas_limit" in facts:
        recorded.quote = FeeQuote(
            gas_limit=facts["gas_limit"],
            fee_per_gas=int(facts["fee_per_gas_wei"]),
            priority_fee_per_gas=None
            if facts.get("priority_fee_per_gas_wei") is None
            else int(facts["priority_fee_per_gas_wei"]),
            blob_fee_wei=int(facts.get("blob_fee_wei") or 0),
        )
    elif stage == Stage.SIMULATION:
        recorded.simulated = StageVerdict.judged(
            intent_id=recorded.intent.intent_id,
            stage=Stage.SIMULATION,
            passed=passed,
            code=details["code"],
            reason=details.get("reason", ""),
            facts=facts,
        )
    elif stage == Stage.USD_LIMIT and "prices" in facts:
        recorded.prices = {
            p["asset"]: prices.Price(p["feed"], int(p["round_id"]), int(p["answer"]), p["decimals"], p["updated_at"])
            for p in facts["prices"]
        }
    elif stage == Stage.ASSETS and "asset_spend" in facts:
        recorded.asset_spend = {k: int(v) for k, v in facts["asset_spend"].items()}


class ReplayWindows:
    """The replay's own rolling windows, per asset: what the replayed decisions reserved."""

    def __init__(self) -> None:
        self._windows: dict[str, SpendWindow] = {}

    def spent(self, at: datetime) -> Callable[[str], int]:
        now_us = to_us(at)
        return lambda asset: self._windows.setdefault(asset, SpendWindow()).spent(now_us)

    def reserve(self, intent_id: str, at: datetime, amounts: dict[str, int]) -> None:
        for asset, amount in amounts.items():
            self._windows.setdefault(asset, SpendWindow()).reserve(intent_id, to_us(at), amount)


async def replay(
    recorded: list[Recorded], policy: AgentPolicy, max_age_us: int, chains: ChainLookup = REGISTRY
) -> list[Replayed]:
    """Each recorded intent judged again under ``policy``, in order, with the replay's windows,
    its chain looked up in ``chains``: the networks in force this process knows."""
    windows, out = ReplayWindows(), []
    for r in recorded:
        intent = r.intent
        admitted = judge.admit_recorded(intent, policy, r.at, max_age_us)
        if not admitted.passed:
            out.append(Replayed(r, "refused", Stage.INTAKE, admitted.code, admitted.reason, {}))
            continue
        # Never run for this intent (refused before it): reported as not judged, not guessed at.
        simulated = r.simulated or StageVerdict.passing(
            intent_id=intent.intent_id,
            stage=Stage.SIMULATION,
            code=Code.NOT_RECORDED,
            reason="the simulation never ran for this intent, and a replay never asks today's chain",
        )
        ctx = judge.Context(
            spent=windows.spent(r.at),
            sender=policy.sender_address,
            simulated=simulated,
            now=r.at,
            quote=r.quote or fees.named_quote(intent),
            prices=r.prices if r.prices is not None else {},
            chains=chains,
        )
        judged = await judge.run_stages(intent, policy, ctx)
        refusal, pending = judged.refusal, judged.next_stage(intent)
        if refusal is not None and refusal.code == Code.PRICE_NOT_RECORDED:
            out.append(Replayed(r, "undetermined", refusal.stage, refusal.code, refusal.reason, {}))
        elif refusal is not None:
            out.append(Replayed(r, "refused", refusal.stage, refusal.code, refusal.reason, {}))
        elif pending is not None:
            reason = f"stage {pending} needs the chain, and nothing of it was recorded for this intent (it never ran)"
            out.append(Replayed(r, "undetermined", pending, None, reason, {}))
        else:
            spend = {NATIVE: judged.spend_wei(intent)} | dict(judged.asset_spend)
            windows.reserve(intent.intent_id, r.at, {k: v for k, v in spend.items() if v})
            why = approval_needed(intent, policy, dict(judged.asset_spend))
            outcome = "approved" if why is None else "parked"
            unjudged = [v.stage for v in judged.verdicts if v.code == Code.NOT_RECORDED]
            note = why or "every stage passed" + (
                f" except {', '.join(unjudged)}, not judged: it needs the chain and never ran" if unjudged else ""
            )
            out.append(Replayed(r, outcome, None, None, note, moved(intent, judged.asset_spend), unjudged))
    return out


def _add(total: dict[str, int], amounts: dict[str, int]) -> None:
    for asset, amount in amounts.items():
        total[asset] = total.get(asset, 0) + amount


def report(
    replayed: list[Replayed], agent_id: str, since: datetime, policy: AgentPolicy, skipped: dict[str, int]
) -> dict[str, Any]:
    """The what-if document: every decision that would change, then the totals, and the recorded
    intents not replayed (``skipped``), per reason."""
    moved: dict[str, int] = {}
    would: dict[str, int] = {}
    for r in replayed:
        _add(moved, r.recorded.moved())
        _add(would, r.moved)
    changes = [
        {
            "intent_id": r.recorded.intent.intent_id,
            "at": r.recorded.at.isoformat(),
            "to": r.recorded.intent.to,
            "value": r.recorded.intent.value,
            "was": r.recorded.outcome,
            "was_stage": r.recorded.stage,
            "was_code": r.recorded.code,
            "would_be": r.outcome,
            "deciding_stage": r.stage,
            "deciding_code": r.code,
            "reason": r.reason,
            "not_judged": r.not_judged,
        }
        for r in replayed
        if r.changed
    ]
    return {
        "agent_id": agent_id,
        "since": since.isoformat(),
        "policy_version": policy.version,
        "changes": changes,
        "skipped": dict(sorted(skipped.items())),
        "totals": {
            "intents": len(replayed),
            "skipped": sum(skipped.values()),
            "changed": len(changes),
            "undetermined": sum(r.outcome == "undetermined" for r in replayed),
            "approved_then": sum(r.recorded.outcome in ("approved", "parked") for r in replayed),
            "approved_now": sum(r.outcome in ("approved", "parked") for r in replayed),
            "moved": {k: str(v) for k, v in sorted(moved.items())},
            "would_have_moved": {k: str(v) for k, v in sorted(would.items())},
        },
    }


async def what_if(
    read: LedgerRead, agent_id: str, policy: AgentPolicy, since: datetime, max_age_us: int
) -> dict[str, Any]:
    """The report of ``read``'s intents replayed under ``policy``."""
    return report(await replay(read.recorded, policy, max_age_us), agent_id, since, policy, read.skipped)
