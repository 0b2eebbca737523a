"""What the analysts', auditors' and admins' agents and webhooks pages show, read where Warden
already keeps it.

The ledger (`ledger.store.open_reader`: a ClickHouse server, the sink's read-only endpoint, or the
chDB directory, as `warden audit` reads it) holds every event the services signed and the ledger
believed: each intent's way (parked, refused with its stage and code, approved, signed, broadcast,
mined, final), what the signer signed and counted as spend, every refusal, each policy version the
streams worker put in force, the checkpoints and the witnesses' cosignatures, and the audit
webhooks with their deliveries. The topics hold each agent's policy in force (`sdk.records`), whose
limits the spend is drawn against. The ledger's state is what `warden audit verify` says
(`ledger.verify`), and a receipt is checked as `warden audit check-receipt` checks it
(`ledger.receipt.findings`), under the log's and the witnesses' keys this host pins.

`LedgerSource` does the reading; the functions beside it shape rows into what a page shows and do
no I/O, so the tests feed them rows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import orjson

from ledger.checkpoint import Checkpoint
from ledger.cosigning import parse_witnesses
from ledger.keys import local_public_key
from ledger.note import ED25519, NoteError, NoteKey
from ledger.receipt import Finding, Policy, Receipt, findings
from ledger.schema import AUDIT_CHECKPOINTS, AUDIT_LOG, AUDIT_NOTE_SIGNATURES
from ledger.store import Store, open_reader, sql_string
from ledger.verify import VerifyReport, not_believed, source_changes, verify
from ledger.webhook_store import summaries
from ledger.witnessed import cosignature_disagreement
from rules.movements import NATIVE
from rules.prices import USD, format_usd
from rules.solana import SOL
from runtime.clock import utcnow
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.errors import Problem
from schemas.fields import format_token_amount
from schemas.policy import USD_DECIMALS, AgentPolicy, parse_usd
from schemas.stages import Stage
from sdk.records import policies_in_force, receipt_subject, subject_problem

DAYS = 14  # the days a chart covers, today's included
TRANSACTIONS = 500  # the newest intents the transactions page lists
CHECKPOINTS = 10  # the newest checkpoints of each chain the ledger page lists

# The events that move an intent along its way, each saying where it is now.
_WAY = (
    AuditAction.INTENT_SUBMITTED,
    AuditAction.INTENT_PARKED,
    AuditAction.INTENT_APPROVED,
    AuditAction.INTENT_HUMAN_APPROVED,
    AuditAction.INTENT_REJECTED,
    AuditAction.INTENT_ABANDONED,
    AuditAction.TX_SIGN_FAILED,
    AuditAction.TX_SIGN_ONLY,
    AuditAction.TX_SIGNED,
    AuditAction.TX_BROADCAST,
    AuditAction.TX_STUCK,
    AuditAction.TX_MINED,
    AuditAction.TX_FAILED,
    AuditAction.TX_REPLACED,
    AuditAction.TX_DROPPED,
    AuditAction.TX_FINAL,
    AuditAction.TX_REORGED,
    AuditAction.TX_FINALITY_VIOLATED,
    AuditAction.TX_CANCELLED,
    AuditAction.MESSAGE_SIGNED,
    AuditAction.SOLANA_SIGN_ONLY,
    AuditAction.SOLANA_SIGNED,
    AuditAction.SOLANA_BROADCAST,
    AuditAction.SOLANA_PROCESSED,
    AuditAction.SOLANA_CONFIRMED,
    AuditAction.SOLANA_FINALIZED,
    AuditAction.SOLANA_FAILED,
    AuditAction.SOLANA_DROPPED,
    AuditAction.SOLANA_MESSAGE_SIGNED,
    AuditAction.BITCOIN_SIGN_ONLY,
    AuditAction.BITCOIN_SIGNED,
    AuditAction.BITCOIN_BROADCAST,
    AuditAction.BITCOIN_MINED,
    AuditAction.BITCOIN_FINAL,
    AuditAction.BITCOIN_CONFLICTED,
)
# What the signer signed, counting its spend: EVM transactions, and Solana's (sign-only too).
_SIGNED = (AuditAction.TX_SIGNED, AuditAction.SOLANA_SIGNED, AuditAction.SOLANA_SIGN_ONLY)
SOL_DECIMALS = 9
# The refusals: the worker's (any stage) and the signer's (stage ``signing``).
_REFUSALS = (AuditAction.INTENT_REJECTED, AuditAction.TX_SIGN_FAILED)
_LABELS = {
    AuditAction.INTENT_SUBMITTED: "submitted",
    AuditAction.INTENT_PARKED: "parked",
    AuditAction.INTENT_APPROVED: "approved",
    AuditAction.INTENT_HUMAN_APPROVED: "approved",
    AuditAction.INTENT_REJECTED: "refused",
    AuditAction.TX_SIGN_FAILED: "refused",
    AuditAction.INTENT_ABANDONED: "abandoned",
    AuditAction.MESSAGE_SIGNED: "signed",
    AuditAction.SOLANA_MESSAGE_SIGNED: "signed",
    AuditAction.TX_FINALITY_VIOLATED: "finality violated",
}


def _listed(actions: Iterable[str]) -> str:
    return "(" + ", ".join(sql_string(a) for a in actions) + ")"


# ---- transactions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Transaction:
    """One intent of one agent (its digest tells it from a forged copy under the same id) and
    where it is now."""

    agent_id: str
    intent_id: str
    intent_digest: str
    status: str  # parked, refused, approved, signed, broadcast, mined, ...
    final: bool
    stage: str  # a refusal's
    code: str
    reason: str
    chain: str
    to: str
    value_wei: int | None
    tx_hash: str
    block_number: int | None
    first_at: datetime
    last_at: datetime


def status_of(action: str, status: str) -> str:
    """The word for where an intent is, from its newest event: the event's own name for the
    intent's steps, the transaction's status for the signer's."""
    try:
        label = _LABELS.get(AuditAction(action))
    except ValueError:  # an action this reader does not know: its own name says it
        label = None
    return label or status or action.partition(".")[2]


def transaction(row: Mapping[str, Any]) -> Transaction:
    """A `Transaction` from a row of `LedgerSource.transactions`' query."""
    refused_by_signer = row["last_action"] == AuditAction.TX_SIGN_FAILED
    action = row["last_action"] or AuditAction.INTENT_SUBMITTED  # nothing after its submission yet
    return Transaction(
        agent_id=row["agent_id"],
        intent_id=row["intent_id"],
        intent_digest=row["intent_digest"],
        status=status_of(action, row["last_status"]),
        final=bool(row["last_final"]),
        stage=Stage.SIGNING if refused_by_signer else row["last_stage"],
        code=row["last_code"],
        reason=row["last_reason"],
        chain=row["asked_chain"],
        to=row["asked_to"],
        value_wei=int(row["asked_value_wei"]) if row["asked_value_wei"].isdigit() else None,
        tx_hash=row["last_tx_hash"],
        block_number=row["last_block_number"],
        first_at=row["first_at"],
        last_at=row["last_at"],
    )


def _transactions_sql(agent: str | None, limit: int) -> str:
    """Per intent (agent, id, digest), its newest event after its submission, which says where
    it stands: a copy submitted again later (past the worker's memory of it, refused at intake
    and bound to its own bytes) says nothing about where the intent stands."""
    by_agent = "" if agent is None else f"AND agent_id = {sql_string(agent)}"
    submitted = sql_string(AuditAction.INTENT_SUBMITTED)
    signer = _listed(a for a in _WAY if a.startswith(("tx.", "solana.")))
    return f"""
SELECT agent_id, intent_id, JSONExtractString(details, 'intent_digest') AS intent_digest,
    min(ts) AS first_at, max(ts) AS last_at,
    argMaxIf(action, seq, action != {submitted}) AS last_action,
    argMaxIf(JSONExtractString(details, 'status'), seq, action != {submitted}) AS last_status,
    argMaxIf(JSONExtractBool(details, 'final'), seq, action != {submitted}) AS last_final,
    argMaxIf(JSONExtractString(details, 'stage'), seq, action != {submitted}) AS last_stage,
    argMaxIf(JSONExtractString(details, 'code'), seq, action != {submitted}) AS last_code,
    argMaxIf(JSONExtractString(details, 'reason'), seq, action != {submitted}) AS last_reason,
    argMaxIf(JSONExtractString(details, 'chain'), seq, action = {submitted}) AS asked_chain,
    argMaxIf(JSONExtractString(details, 'to'), seq, action = {submitted}) AS asked_to,
    argMaxIf(JSONExtractString(details, 'value_wei'), seq, action = {submitted}) AS asked_value_wei,
    argMaxIf(JSONExtractString(details, 'tx_hash'), seq, action IN {signer}) AS last_tx_hash,
    argMaxIf(JSONExtract(details, 'block_number', 'Nullable(UInt64)'), seq, action IN {signer}) AS last_block_number
FROM {AUDIT_LOG}
WHERE intent_id != '' AND action IN {_listed(_WAY)} {by_agent}
GROUP BY agent_id, intent_id, intent_digest
ORDER BY last_at DESC, intent_id
LIMIT {int(limit)}"""


# ---- refusals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusals:
    """Refusals per code and stage, per day: ``counts[(code, stage)]`` has a number per day."""

    days: tuple[date, ...]
    counts: dict[tuple[str, ...], tuple[int, ...]]  # (code, stage): a count per day

    @property
    def total(self) -> int:
        return sum(sum(per_day) for per_day in self.counts.values())


def days_to(today: date, days: int = DAYS) -> tuple[date, ...]:
    """The ``days`` days that end with ``today``, oldest first."""
    return tuple(today - timedelta(days=n) for n in range(days - 1, -1, -1))


def per_day(
    rows: Iterable[Mapping[str, Any]], days: Sequence[date], key: tuple[str, ...], amount: str
) -> dict[tuple[str, ...], list[int]]:
    """The sums of column ``amount`` per ``key`` columns, a sum per day of ``days`` (a row's
    ``day``); rows of other days are left out."""
    index = {day: i for i, day in enumerate(days)}
    sums: dict[tuple[str, ...], list[int]] = {}
    for row in rows:
        i = index.get(row["day"])
        if i is not None:
            sums.setdefault(tuple(row[k] for k in key), [0] * len(days))[i] += int(row[amount])
    return sums


def refusals(rows: Iterable[Mapping[str, Any]], days: Sequence[date]) -> Refusals:
    """`Refusals` from rows of (day, code, stage, refusals); days outside ``days`` are left out."""
    counts = per_day(rows, days, ("code", "stage"), "refusals")
    return Refusals(tuple(days), {key: tuple(per_day) for key, per_day in sorted(counts.items())})


def _refusals_sql(since: date) -> str:
    signer = sql_string(AuditAction.TX_SIGN_FAILED)
    return f"""
SELECT toDate(ts) AS day, JSONExtractString(details, 'code') AS code,
    if(action = {signer}, {sql_string(Stage.SIGNING)}, JSONExtractString(details, 'stage')) AS stage,
    count() AS refusals
FROM {AUDIT_LOG}
WHERE action IN {_listed(_REFUSALS)} AND ts >= toDateTime64({sql_string(since.isoformat())}, 6, 'UTC')
GROUP BY day, code, stage
ORDER BY day, code, stage"""


# ---- spend ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Asset:
    """An asset spend is counted in: its key in spend records (``native``, ``chain:token``,
    ``usd``), its name, its decimals (None: unknown) and the daily limit in force, in base units."""

    key: str
    name: str
    unit: str  # what a base unit is called
    decimals: int | None
    daily_limit: int | None

    def amount(self, units: int) -> str:
        """``units`` exactly, in base units, with the asset named, and in its decimals when known."""
        if self.key == USD:
            return f"{units} {self.unit} ({format_usd(units)})"
        decimal = "" if self.decimals is None else f" ({format_token_amount(units, self.decimals)} {self.name})"
        return f"{units} {self.unit}{decimal}"


@dataclass(frozen=True)
class AssetSpend:
    asset: Asset
    per_day: tuple[int, ...]


@dataclass(frozen=True)
class AgentSpend:
    """One agent's spend per day, per asset, against the daily limits of its policy in force
    (``policy_version`` None: the reader found none)."""

    agent_id: str
    policy_version: int | None
    days: tuple[date, ...]
    assets: tuple[AssetSpend, ...]


def assets_of(policy: AgentPolicy | None) -> list[Asset]:
    """The assets ``policy`` limits per day: native (wei), USD (millionths of a dollar), each of
    ``asset_limits`` (the token's base units), and on Solana SOL (lamports) and each mint."""
    if policy is None:
        return []
    assets = [Asset(NATIVE, "native", "wei", 18, policy.daily_limit_wei)]
    if policy.usd_daily_limit is not None:
        assets.append(Asset(USD, "USD", "millionths of a dollar", USD_DECIMALS, parse_usd(policy.usd_daily_limit)))
    for limit in policy.asset_limits:
        assets.append(
            Asset(limit.key, limit.label, f"base units of {limit.label}", limit.decimals, limit.units("daily_limit"))
        )
    if policy.solana is not None:
        assets.append(Asset(SOL, "SOL", "lamports", SOL_DECIMALS, policy.solana.daily_limit_lamports))
        for token in policy.solana.tokens:
            label = token.symbol or token.mint
            assets.append(Asset(token.mint, label, f"base units of {label}", token.decimals, token.daily_limit))
    return assets


def spend(
    rows: Iterable[Mapping[str, Any]], policies: Mapping[str, AgentPolicy | None], days: Sequence[date]
) -> list[AgentSpend]:
    """`AgentSpend` per agent of ``policies``, from rows of (agent_id, day, asset, units): each
    asset the policy limits, and each other asset the agent spent (no limit, decimals unknown
    unless native)."""
    spent = per_day(rows, days, ("agent_id", "asset"), "units")
    shaped = []
    for agent_id, policy in sorted(policies.items()):
        assets = assets_of(policy)
        known = {a.key for a in assets}
        for (agent, key), _ in sorted(spent.items()):
            if agent == agent_id and key not in known:
                native = key == NATIVE
                assets.append(Asset(key, key, "wei" if native else "base units", 18 if native else None, None))
        shaped.append(
            AgentSpend(
                agent_id,
                None if policy is None else policy.version,
                tuple(days),
                tuple(AssetSpend(a, tuple(spent.get((agent_id, a.key), [0] * len(days)))) for a in assets),
            )
        )
    return shaped


def _spend_sql(agent: str | None, since: date) -> str:
    """Per agent, day and asset, what the signer counted when it signed: an EVM transaction's
    value and worst-case fee (wei) and ``asset_spend`` (tokens, USD), a Solana transaction's
    ``spend`` (SOL in lamports, fee included, and each mint)."""
    where = f"ts >= toDateTime64({sql_string(since.isoformat())}, 6, 'UTC')" + (
        "" if agent is None else f" AND agent_id = {sql_string(agent)}"
    )
    evm = (
        f"arrayConcat([({sql_string(NATIVE)}, JSONExtractString(details, 'max_spend_wei'))], "
        "JSONExtractKeysAndValues(details, 'asset_spend', 'String'))"
    )
    solana = "JSONExtractKeysAndValues(details, 'spend', 'String')"
    return f"""
SELECT agent_id, day, asset, toString(sum(toUInt256OrZero(units))) AS units
FROM (
    SELECT agent_id, toDate(ts) AS day,
        arrayJoin(if(action = {sql_string(AuditAction.TX_SIGNED)}, {evm}, {solana})) AS spent,
        spent.1 AS asset, spent.2 AS units
    FROM {AUDIT_LOG}
    WHERE action IN {_listed(_SIGNED)} AND {where}
)
GROUP BY agent_id, day, asset
ORDER BY agent_id, day, asset"""


# ---- the ledger's state ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cosignature:
    """One stored cosignature line of a checkpoint: who signed it (a pinned witness's name, or
    the key of one not pinned here) and, for a pinned witness, whether it verifies over the
    checkpoint stored now (``problem`` None) or why not."""

    signer: str
    pinned: bool
    problem: Problem | None = None


@dataclass(frozen=True)
class CheckpointRow:
    checkpoint: Checkpoint
    cosignatures: tuple[Cosignature, ...]


@dataclass
class LedgerState:
    """What `warden audit verify` says of the ledger, and its newest checkpoints with their
    cosignatures."""

    report: VerifyReport
    source_changes: list[dict[str, Any]]
    not_believed: int
    checkpoints: list[CheckpointRow] = field(default_factory=list)


def cosignatures(
    checkpoints: Sequence[Checkpoint],
    lines: Iterable[Mapping[str, Any]],
    witnesses: Sequence[NoteKey],
    log_name: str,
) -> list[CheckpointRow]:
    """Each checkpoint with the cosignature lines stored for it (rows of chain, seq, signer vkey,
    line), each pinned witness's checked over that checkpoint as `warden audit verify` checks it."""
    pinned = {w.vkey: w for w in witnesses}
    by_checkpoint: dict[tuple[int, int], list[Cosignature]] = {}
    stored = {(cp.chain, cp.seq): cp for cp in checkpoints}
    for row in lines:
        cp = stored.get((row["chain"], row["seq"]))
        if cp is None:
            continue
        witness = pinned.get(row["signer"])
        found = (
            Cosignature(row["signer"], False)
            if witness is None
            else Cosignature(witness.name, True, cosignature_disagreement([cp], row["line"], witness, log_name))
        )
        by_checkpoint.setdefault((cp.chain, cp.seq), []).append(found)
    return [CheckpointRow(cp, tuple(by_checkpoint.get((cp.chain, cp.seq), ()))) for cp in checkpoints]


# ---- receipts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptCheck:
    """A pasted receipt checked: each check and what it found (`ledger.receipt.findings`), the
    event it proves and what that event is about; ``unreadable`` when it is no receipt at all."""

    findings: tuple[Finding, ...] = ()
    event: Mapping[str, Any] | None = None
    about: tuple[str, str, str] | None = None
    unreadable: str | None = None

    @property
    def ok(self) -> bool:
        return self.unreadable is None and all(f.problem is None for f in self.findings)


def check_receipt(text: str, policy: Policy, expected: tuple[str, str, str] | None = None) -> ReceiptCheck:
    """``text`` (a receipt as `warden audit receipt` prints it) checked under ``policy``; with
    ``expected`` (intent id, agent, intent digest), also that its event is about that intent."""
    # A browser's form sends lines CRLF-terminated, and a paste may lose the last line's newline.
    text = text.replace("\r\n", "\n").strip() + "\n"
    try:
        receipt = Receipt.parse(text)
    except NoteError as exc:
        return ReceiptCheck(unreadable=str(exc))
    try:
        event: Mapping[str, Any] | None = receipt.event
    except NoteError:
        event = None
    found = findings(receipt, policy)
    if expected is not None:
        intent_id, agent_id, digest = expected
        found.append(
            Finding(
                f"its event is about intent {intent_id} of agent {agent_id} with digest {digest}",
                subject_problem(text, expected),
            )
        )
    return ReceiptCheck(tuple(found), event, receipt_subject(text))


# ---- policy versions ------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyVersion:
    """One version of an agent's policy as the streams worker recorded putting it in force
    (``policy.updated``): when, who proposed it, whose signatures made its quorum, and its fields
    (all but the signatures)."""

    agent_id: str
    version: int
    at: datetime
    proposed_by: str
    approved_by: tuple[str, ...]
    fields: dict[str, Any]


def policy_versions(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[PolicyVersion]]:
    """Each agent's policy versions, oldest first, from rows of (agent_id, ts, actor, details) in
    ledger order; a version recorded twice (a redelivery, a worker restored) is listed once, as
    first recorded, and a row without a version or fields names none."""
    versions: dict[str, dict[int, PolicyVersion]] = {}
    for row in rows:
        details = orjson.loads(row["details"]) if isinstance(row["details"], str) else row["details"]
        version, fields = details.get("version"), details.get("policy")
        if not isinstance(version, int) or not isinstance(fields, dict):
            continue
        approved = details.get("approved_by")
        versions.setdefault(row["agent_id"], {}).setdefault(
            version,
            PolicyVersion(
                row["agent_id"],
                version,
                row["ts"],
                str(row["actor"]).removeprefix("admin:"),
                tuple(str(a) for a in approved) if isinstance(approved, list) else (),
                fields,
            ),
        )
    return {agent: [by[v] for v in sorted(by)] for agent, by in sorted(versions.items())}


_POLICY_HISTORY_SQL = f"""
SELECT agent_id, ts, actor, details FROM {AUDIT_LOG}
WHERE action = {sql_string(AuditAction.POLICY_UPDATED)} AND agent_id != ''
ORDER BY chain, seq"""


# ---- the reader -----------------------------------------------------------------------------

Reader = Callable[[], AbstractContextManager[Store]]
Policies = Callable[[Sequence[str]], Awaitable[Mapping[str, AgentPolicy | None]]]


class LedgerSource:
    """What the pages read: the ledger through ``reader`` (a fresh store for each question,
    closed after it), the policies in force through ``policies``, and the keys a receipt and the
    checkpoints are checked under (``keys``: the log's vkey, the pinned witnesses, the quorum; a
    `Policy`, or what makes one the first time it is needed, such as this host's ledger key, which
    the sink creates when it first starts). Reads run in threads: a page waits for them, the
    server does not."""

    def __init__(self, reader: Reader, policies: Policies, keys: Policy | Callable[[], Policy]) -> None:
        self._reader = reader
        self._policies = policies
        self._keys = keys
        self._verifying = asyncio.Lock()  # one verification at a time: it reads the whole ledger

    @property
    def policy(self) -> Policy:
        """The keys receipts and checkpoints are checked under; `WardenError` when they cannot be
        read (no ledger key on this host yet)."""
        if not isinstance(self._keys, Policy):
            self._keys = self._keys()
        return self._keys

    @classmethod
    def from_settings(cls, settings: Settings, log: NoteKey | None = None) -> LedgerSource:
        """The ledger as `warden audit` reads it, the policies from the topics, and the keys
        `warden audit verify` pins by default: ``log`` (else this host's ledger key under
        WARDEN_LEDGER_LOG_NAME, read when first needed) and the witnesses of
        WARDEN_LEDGER_WITNESSES, of which WARDEN_LEDGER_WITNESS_QUORUM must have cosigned a receipt."""
        witnesses = tuple(w.key for w in parse_witnesses(settings.ledger.witnesses))

        def keys() -> Policy:
            key = log or NoteKey(settings.ledger.log_name, ED25519, local_public_key(settings.home))
            return Policy(key, witnesses, settings.ledger.witness_quorum)

        async def policies(agents: Sequence[str]) -> Mapping[str, AgentPolicy | None]:
            return await policies_in_force(settings, agents)

        return cls(lambda: contextlib.closing(open_reader(settings)), policies, keys)

    async def _rows(self, sql: str) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with self._reader() as store:
                rows: list[dict[str, Any]] = store.arrow(sql).to_pylist()
                return rows

        return await asyncio.to_thread(read)

    async def transactions(self, agent: str | None = None, limit: int = TRANSACTIONS) -> list[Transaction]:
        """The newest ``limit`` intents (of ``agent``, or of every agent), newest first."""
        return [transaction(row) for row in await self._rows(_transactions_sql(agent, limit))]

    async def agents(self) -> list[str]:
        """Every agent the ledger names an intent of."""
        rows = await self._rows(f"SELECT DISTINCT agent_id FROM {AUDIT_LOG} WHERE intent_id != '' AND agent_id != ''")
        return sorted(row["agent_id"] for row in rows)

    async def refusals(self, today: date | None = None, days: int = DAYS) -> Refusals:
        window = days_to(today or utcnow().date(), days)
        return refusals(await self._rows(_refusals_sql(window[0])), window)

    async def spend(self, agent: str | None = None, today: date | None = None, days: int = DAYS) -> list[AgentSpend]:
        """Each agent's (or ``agent``'s) spend per day against its policy in force: what the
        signer signed, counted as its rolling windows count it when it signs (`_spend_sql`)."""
        window = days_to(today or utcnow().date(), days)
        agents = [agent] if agent is not None else await self.agents()
        rows = await self._rows(_spend_sql(agent, window[0]))
        return spend(rows, await self._policies(agents), window)

    async def policies(self, agents: Sequence[str]) -> Mapping[str, AgentPolicy | None]:
        """The policies in force of ``agents`` (None: the agent has none)."""
        return await self._policies(agents)

    async def policy_history(self) -> dict[str, list[PolicyVersion]]:
        """Every agent's policy versions the ledger holds, oldest first (`policy_versions`)."""
        return policy_versions(await self._rows(_POLICY_HISTORY_SQL))

    async def webhooks(self) -> list[dict[str, Any]]:
        """The audit webhooks in force with their deliveries counted, as `warden webhooks list` reads them."""

        def read() -> list[dict[str, Any]]:
            with self._reader() as store:
                return summaries(store)

        return await asyncio.to_thread(read)

    async def ledger(self) -> LedgerState:
        """What `warden audit verify` says now, with the pinned witnesses, and each chain's
        newest checkpoints with their cosignatures."""
        log, witnesses = self.policy.log, self.policy.witnesses

        def read() -> LedgerState:
            with self._reader() as store:
                report = verify(store, log.public, log_name=log.name, witnesses=witnesses)
                state = LedgerState(report, source_changes(store), not_believed(store))
                newest = [
                    Checkpoint.from_row(row)
                    for chain in report.chains
                    for row in store.arrow(
                        f"SELECT chain, seq, head_hash, merkle_root, ts, signature FROM {AUDIT_CHECKPOINTS} "
                        f"WHERE chain = {chain.chain} ORDER BY seq DESC, signature LIMIT {CHECKPOINTS}"
                    ).to_pylist()
                ]
                if newest:
                    wanted = " OR ".join(f"(chain = {cp.chain} AND seq = {cp.seq})" for cp in newest)
                    lines = store.arrow(
                        f"SELECT chain, seq, signer, line FROM {AUDIT_NOTE_SIGNATURES} WHERE {wanted} "
                        "ORDER BY chain, seq, signer"
                    ).to_pylist()
                    state.checkpoints = cosignatures(newest, lines, witnesses, log.name)
                return state

        async with self._verifying:
            return await asyncio.to_thread(read)

    def check_receipt(self, text: str, expected: tuple[str, str, str] | None = None) -> ReceiptCheck:
        return check_receipt(text, self.policy, expected)
