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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import clickhouse_connect
import orjson

from rules import fees, judge, prices
from rules.assets import approval_needed
from rules.movements import NATIVE
from rules.window import SpendWindow
from runtime.clock import to_us
from runtime.config import Settings
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote

_DECISIONS = ("intent.submitted", "stage.passed", "stage.failed", "intent.approved", "intent.parked", "intent.rejected")
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

    def moved(self) -> dict[str, int]:
        """What it moved, if it was approved."""
        return moved(self.intent, self.asset_spend) if self.outcome in ("approved", "parked") else {}


def moved(intent: TransactionIntent, asset_spend) -> dict[str, int]:
    """What an intent moves, per asset: its value in wei (native), the tokens counted (not the
    USD window, which prices the same movements)."""
    out = {NATIVE: intent.value_wei} if intent.value_wei else {}
    return out | {k: v for k, v in asset_spend.items() if k != prices.USD and v}


@dataclass
class Replayed:
    recorded: Recorded
    outcome: str  # approved, parked, refused or undetermined
    stage: str | None
    code: str | None
    reason: str
    moved: dict[str, int]
    not_judged: list[str] = field(default_factory=list)  # stages that needed the chain and never ran

    @property
    def changed(self) -> bool:
        passed = {"approved": True, "parked": True, "refused": False}
        return self.outcome == "undetermined" or passed.get(self.outcome) != passed.get(self.recorded.outcome)


def read_recorded(settings: Settings, agent_id: str, since: datetime) -> list[Recorded]:
    """The agent's intents decided since ``since``, oldest first, from the ledger's SQL endpoint."""
    host, _, port = settings.ledger_http.rpartition(":")
    client = clickhouse_connect.get_client(host=host, port=int(port), connect_timeout=5, compress=False)
    rows = client.query(
        "SELECT intent_id, action, ts, details FROM audit_log WHERE agent_id = {a:String} AND ts >= {s:DateTime64(6)} "
        "AND action IN {actions:Array(String)} ORDER BY ts, chain, seq",
        parameters={"a": agent_id, "s": since, "actions": list(_DECISIONS)},
    ).result_rows
    found: dict[str, Recorded] = {}
    for intent_id, action, ts, raw in rows:
        ts = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)  # the endpoint's DateTime64 is UTC
        details = orjson.loads(raw)
        if action == "intent.submitted":
            whole = details.get("intent")
            if whole is not None and intent_id not in found:  # older rows keep a summary only
                found[intent_id] = Recorded(TransactionIntent.model_validate(whole), ts)
            continue
        recorded = found.get(intent_id)
        if recorded is None:
            continue
        if action in ("stage.passed", "stage.failed"):
            _facts(recorded, details, passed=action == "stage.passed")
        elif action == "intent.approved":
            recorded.outcome = "approved"
        elif action == "intent.parked":
            recorded.outcome = "parked"
        elif action == "intent.rejected" and details.get("stage") != "signing" and recorded.outcome == "undecided":
            recorded.outcome, recorded.stage, recorded.code = "refused", details.get("stage"), details.get("code")
    return [r for r in found.values() if r.outcome != "undecided"]


def _facts(recorded: Recorded, details: dict, passed: bool) -> None:
    """What a stage's verdict recorded of the chain, kept for the replay."""
    stage, facts = details.get("stage"), details.get("facts") or {}
    if stage == "fee" and "gas_limit" in facts:
        recorded.quote = FeeQuote(
            gas_limit=facts["gas_limit"],
            fee_per_gas=int(facts["fee_per_gas_wei"]),
            priority_fee_per_gas=None
            if facts.get("priority_fee_per_gas_wei") is None
            else int(facts["priority_fee_per_gas_wei"]),
            blob_fee_wei=int(facts.get("blob_fee_wei") or 0),
        )
    elif stage == "simulation":
        recorded.simulated = StageVerdict(
            intent_id=recorded.intent.intent_id,
            stage="simulation",
            passed=passed,
            code=details["code"],
            reason=details.get("reason", ""),
            facts=facts,
        )
    elif stage == "usd_limit" and "prices" in facts:
        recorded.prices = {
            p["asset"]: prices.Price(p["feed"], int(p["round_id"]), int(p["answer"]), p["decimals"], p["updated_at"])
            for p in facts["prices"]
        }
    elif stage == "assets" and "asset_spend" in facts:
        recorded.asset_spend = {k: int(v) for k, v in facts["asset_spend"].items()}


class Windows:
    """The replay's own rolling windows, per asset: what the replayed decisions reserved."""

    def __init__(self):
        self._windows: dict[str, SpendWindow] = {}

    def spent(self, at: datetime):
        now_us = to_us(at)
        return lambda asset: self._windows.setdefault(asset, SpendWindow()).spent(now_us)

    def reserve(self, intent_id: str, at: datetime, amounts: dict[str, int]) -> None:
        for asset, amount in amounts.items():
            self._windows.setdefault(asset, SpendWindow()).reserve(intent_id, to_us(at), amount)


async def replay(recorded: list[Recorded], policy: AgentPolicy, max_age_us: int) -> list[Replayed]:
    """Each recorded intent judged again under ``policy``, in order, with the replay's windows."""
    windows, out = Windows(), []
    for r in recorded:
        intent = r.intent
        admitted = judge.admit_recorded(intent, policy, r.at, max_age_us)
        if not admitted.passed:
            out.append(Replayed(r, "refused", "intake", admitted.code, admitted.reason, {}))
            continue
        # Never run for this intent (refused before it): reported as not judged, not guessed at.
        simulated = r.simulated or StageVerdict(
            intent_id=intent.intent_id,
            stage="simulation",
            passed=True,
            code="NOT_RECORDED",
            reason="the simulation never ran for this intent, and a replay never asks today's chain",
        )
        ctx = judge.Context(
            spent=windows.spent(r.at),
            sender=policy.sender_address,
            simulated=simulated,
            now=r.at,
            quote=r.quote or fees.named_quote(intent),
            prices=r.prices if r.prices is not None else {},
        )
        judged = await judge.run_stages(intent, policy, ctx)
        refusal, pending = judged.refusal, judged.next_stage(intent)
        if refusal is not None and refusal.code == "PRICE_NOT_RECORDED":
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
            unjudged = [v.stage for v in judged.verdicts if v.code == "NOT_RECORDED"]
            note = why or "every stage passed" + (
                f" except {', '.join(unjudged)}, not judged: it needs the chain and never ran" if unjudged else ""
            )
            out.append(Replayed(r, outcome, None, None, note, moved(intent, judged.asset_spend), unjudged))
    return out


def _add(total: dict[str, int], amounts: dict[str, int]) -> None:
    for asset, amount in amounts.items():
        total[asset] = total.get(asset, 0) + amount


def report(replayed: list[Replayed], agent_id: str, since: datetime, policy: AgentPolicy) -> dict:
    """The what-if document: every decision that would change, then the totals."""
    moved, would = {}, {}
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
        "totals": {
            "intents": len(replayed),
            "changed": len(changes),
            "undetermined": sum(r.outcome == "undetermined" for r in replayed),
            "approved_then": sum(r.recorded.outcome in ("approved", "parked") for r in replayed),
            "approved_now": sum(r.outcome in ("approved", "parked") for r in replayed),
            "moved": {k: str(v) for k, v in sorted(moved.items())},
            "would_have_moved": {k: str(v) for k, v in sorted(would.items())},
        },
    }


async def what_if(settings: Settings, agent_id: str, policy: AgentPolicy, since: timedelta, now: datetime) -> dict:
    begin = now - since
    recorded = read_recorded(settings, agent_id, begin)
    replayed = await replay(recorded, policy, settings.intent_max_age_s * 1_000_000)
    return report(replayed, agent_id, begin, policy)
