"""The ledger's tables and analyst views, in SQL that chDB and a ClickHouse server
both run unchanged.

In ``audit_log`` and ``audit_checkpoints`` the column ``chain`` is the ledger
chain (the partition of warden.audit.events an event came from); in the views,
as everywhere else in Warden, ``chain`` is the blockchain a transaction is on.
"""

from __future__ import annotations

from schemas.codes import Code

AUDIT_LOG = "audit_log"
# Each chain's signed checkpoints (`ledger.checkpoint`): what the note says (seq + 1 rows, their
# merkle_root), the row it ends at (head_hash), when it was signed, the log's signature line of
# the note (``signature``: the one place the log's signature is kept, written in the same INSERT
# as the checkpoint) and the Merkle frontier the sink resumes from (not signed).
AUDIT_CHECKPOINTS = "audit_checkpoints"
# The witnesses' cosignature lines of each checkpoint's note (c2sp.org/tlog-cosignature), as they
# answered (`ledger.cosigning`); ``signer`` is the witness's vkey. A receipt is the note's text and
# the log's line (from the checkpoint) and these lines: no key is needed to build one.
AUDIT_NOTE_SIGNATURES = "audit_note_signatures"
# Audit webhooks (`ledger.webhooks`): each endpoint as added and, once removed, its last row
# (``version`` 1); no secret (`ledger.webhook_messages.secret` derives it). ``start`` is the next
# seq of each chain when it was added (JSON): it is owed the events appended after.
WEBHOOK_ENDPOINTS = "webhook_endpoints"
# How far each endpoint's scan of each chain got: every row before ``next_seq`` is owed to it as a
# delivery, or is of an action it did not choose.
WEBHOOK_CURSORS = "webhook_cursors"
# Each event owed to an endpoint and how far its delivery got (`ledger.webhook_schedule.Delivery`):
# the newest row per (endpoint, chain, seq) by ``version`` holds.
WEBHOOK_DELIVERIES = "webhook_deliveries"

# Column order of an audit_log insert: the row as hashed and proven (what an inclusion
# proof carries), then where the sink read the event (not hashed: delivery, not fact).
EVENT_COLUMNS = (
    "chain",
    "seq",
    "event_id",
    "actor",
    "action",
    "resource",
    "ts",
    "intent_id",
    "agent_id",
    "details",
    "prev_hash",
    "integrity_hash",
)
LOG_COLUMNS = EVENT_COLUMNS + (
    "source_partition",
    "source_offset",
    "appended_at",
)

TABLES = (
    f"""
CREATE TABLE IF NOT EXISTS {AUDIT_LOG} (
    chain UInt16,
    seq UInt64,
    event_id String,
    actor String,
    action LowCardinality(String),
    resource String,
    ts DateTime64(6, 'UTC'),
    intent_id String,
    agent_id String,
    details String,
    prev_hash String,
    integrity_hash String,
    source_partition UInt16,
    source_offset Int64,
    appended_at DateTime64(6, 'UTC')
) ENGINE = MergeTree ORDER BY (chain, seq)
""",
    f"""
CREATE TABLE IF NOT EXISTS {AUDIT_CHECKPOINTS} (
    chain UInt16,
    seq UInt64,
    head_hash String,
    merkle_root String,
    ts DateTime64(6, 'UTC'),
    signature String,
    frontier Array(String)
) ENGINE = MergeTree ORDER BY (chain, seq)
""",
    f"""
CREATE TABLE IF NOT EXISTS {WEBHOOK_ENDPOINTS} (
    webhook_id String,
    url String,
    events Array(String),
    added_at DateTime64(6, 'UTC'),
    added_by String,
    start String,
    removed_at Nullable(DateTime64(6, 'UTC')),
    removed_by String,
    version UInt8
) ENGINE = ReplacingMergeTree(version) ORDER BY webhook_id
""",
    f"""
CREATE TABLE IF NOT EXISTS {WEBHOOK_CURSORS} (
    webhook_id String,
    chain UInt16,
    next_seq UInt64
) ENGINE = ReplacingMergeTree(next_seq) ORDER BY (webhook_id, chain)
""",
    f"""
CREATE TABLE IF NOT EXISTS {WEBHOOK_DELIVERIES} (
    webhook_id String,
    chain UInt16,
    seq UInt64,
    event_id String,
    agent_id String,
    owed_since DateTime64(6, 'UTC'),
    next_at DateTime64(6, 'UTC'),
    attempts UInt32,
    state LowCardinality(String),
    last_error String,
    version UInt64,
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(version) ORDER BY (webhook_id, chain, seq)
""",
    f"""
CREATE TABLE IF NOT EXISTS {AUDIT_NOTE_SIGNATURES} (
    chain UInt16,
    seq UInt64,
    signer String,
    line String,
    ts DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree ORDER BY (chain, seq, signer)
""",
)

# The events that say where an intent is: the worker's decisions and an admin's, then what a signer
# reported of what it signed (each transaction status of every family carries it as ``status``).
_LIFECYCLE = (
    "('intent.submitted', 'intent.approved', 'intent.parked', 'intent.human_approved', 'intent.rejected', "
    "'intent.abandoned', 'tx.signed', 'tx.sign_failed', 'tx.broadcast', 'tx.stuck', 'tx.mined', 'tx.failed', "
    "'tx.replaced', 'tx.dropped', 'tx.reorged', 'tx.final', 'tx.cancelled', 'message.signed', 'solana.sign_only', "
    "'solana.signed', 'solana.broadcast', 'solana.processed', 'solana.confirmed', 'solana.finalized', "
    "'solana.failed', 'solana.dropped', 'solana.message_signed', 'bitcoin.sign_only', 'bitcoin.signed', "
    "'bitcoin.broadcast', 'bitcoin.mined', 'bitcoin.final', 'bitcoin.conflicted')"
)
# Where an intent is, by its last lifecycle event: a signer's status as it said it, else the
# decision (an admin's approval is an approval).
_STATUS_OF = (
    "if(JSONExtractString(details, 'status') != '' AND action NOT LIKE 'intent.%', JSONExtractString(details, 'status'), "
    "replaceRegexpOne(replaceOne(action, 'human_approved', 'approved'), '^[a-z]+[.]', ''))"
)

# The events that say a signed transaction's status, each with it in its details.
_TX_STATUS = (
    "('tx.signed', 'tx.broadcast', 'tx.stuck', 'tx.mined', 'tx.failed', 'tx.replaced', 'tx.dropped', "
    "'tx.reorged', 'tx.final')"
)

# What the streams worker reserves in an agent's rolling windows, at approval or at parking (its
# ``intent.approved`` / ``intent.parked``: ``spend_wei``, an EVM transaction's value plus its
# worst-case fee, and ``asset_spend``, each asset's amount by its window's key).
_RESERVES = "action IN ('intent.approved', 'intent.parked') AND actor = 'service:streams'"
# An EVM sign-only transaction's nonce taken at a final block: its held reservation becomes what the
# chain took (or nothing, when another transaction took the nonce).
_LANDED = (
    "(action IN ('tx.mined', 'tx.failed', 'tx.dropped', 'tx.final', 'tx.cancelled') "
    "AND JSONExtractBool(details, 'final') AND JSONExtractString(details, 'status') IN ('mined', 'failed', "
    "'cancelled', 'dropped'))"
)
# A Bitcoin payment's fate at a final block: its held reservation becomes what the chain took from
# then (``mined``: its spend; ``cancelled``: the cancellation's fee), or nothing (``conflicted``).
_SETTLED = (
    "(startsWith(action, 'bitcoin.') AND JSONExtractBool(details, 'final') "
    "AND JSONExtractString(details, 'status') IN ('mined', 'cancelled', 'conflicted'))"
)

VIEWS = (
    # One row per intent record, named by its agent, id and digest (the SHA-256 its outcomes are
    # bound to): where it ended and the guardrails it passed, in order; for an intent parked for
    # admins, where their decision stands. A forged copy that reused an intent's id is another
    # record with another digest: its refusal is its own row, never the intent's.
    f"""
CREATE OR REPLACE VIEW intent_status AS
SELECT
    intent_id,
    agent_id,
    JSONExtractString(details, 'intent_digest') AS intent_digest,
    minIf(ts, action = 'intent.submitted') AS submitted_at,
    max(ts) AS last_event_at,
    argMaxIf({_STATUS_OF}, seq, action IN {_LIFECYCLE}) AS final_status,
    argMaxIf(JSONExtractBool(details, 'final'), seq, action IN {_LIFECYCLE}) AS final,
    arrayMap(x -> x.2, arraySort(groupArrayIf((seq, JSONExtractString(details, 'stage')), action = 'stage.passed')))
        AS stages_passed,
    argMaxIf(JSONExtractString(details, 'stage'), seq, action IN ('stage.failed', 'intent.rejected')) AS failed_stage,
    argMaxIf(JSONExtractString(details, 'code'), seq, action IN ('stage.failed', 'intent.rejected')) AS failed_code,
    minIfOrNull(ts, action = 'intent.parked') AS parked_since,
    multiIf(
        countIf(action = 'intent.parked') = 0, '',
        countIf(action = 'intent.human_approved') > 0, 'approved',
        countIf(action = 'intent.denied') > 0, 'denied',
        failed_code = '{Code.APPROVAL_EXPIRED}', 'expired',
        'awaiting'
    ) AS approval,
    argMaxIf(JSONExtract(details, 'approved_by', 'Array(String)'), seq, action = 'intent.human_approved')
        AS approved_by,
    parseDateTime64BestEffortOrNull(
        argMinIf(JSONExtractString(details, 'expires_at'), seq, action = 'intent.parked'), 6, 'UTC'
    ) AS approval_expires_at,
    count() AS events
FROM {AUDIT_LOG}
WHERE intent_id != ''
GROUP BY agent_id, intent_id, intent_digest
""",
    # Each reservation the streams worker holds in an agent's rolling windows, one row per asset:
    # its window's key (``native``: value plus worst-case fee of the agent's EVM transactions, every
    # EVM network together, in wei; ``<chain>:<token>`` an EVM token's base units; ``<chain>:SOL``
    # lamports, fee included, and ``<chain>:<mint>``; ``<chain>:BTC`` satoshis paid to others and
    # the fee; ``usd`` millionths of a dollar), its amount and the moment it counts from. Released
    # reservations are left out (a denial, an expiry, a signer's refusal, a sign-only transaction
    # whose nonce another took). A sign-only EVM transaction not landed yet is ``held``: it counts
    # whatever its age; once its nonce is taken at a final block it counts what the chain took
    # (fee, and value and assets if it executed) from then.
    f"""
CREATE OR REPLACE VIEW spend_reservations AS
SELECT
    agent_id,
    intent_id,
    intent_digest,
    pair.1 AS asset,
    multiIf(
        asset = 'native', 'wei', asset = 'usd', 'micro_usd', endsWith(asset, ':SOL'), 'lamports',
        endsWith(asset, ':BTC'), 'satoshis', 'base_units'
    ) AS unit,
    endsWith(asset, ':BTC') AS bitcoin,
    multiIf(
        bitcoin, if(NOT settled, pair.2, if(settled_status = 'conflicted', toUInt256(0), settled_sats)),
        NOT landed, pair.2,
        asset = 'native', fee_wei + if(executed, value_wei, toUInt256(0)),
        executed, pair.2,
        toUInt256(0)
    ) AS units,
    multiIf(bitcoin AND settled, settled_at, landed, landed_at, reserved_at) AS counted_from,
    if(bitcoin, NOT settled, sign_only AND NOT landed) AS held
FROM (
    SELECT
        agent_id,
        intent_id,
        JSONExtractString(details, 'intent_digest') AS intent_digest,
        minIf(ts, {_RESERVES}) AS reserved_at,
        argMinIf(details, seq, {_RESERVES}) AS reserved,
        -- Released by the worker's own refusal of a parked intent (denied or expired), or by a
        -- signer's refusal of an approved one.
        countIf(action = 'intent.rejected' AND actor = 'service:streams') > 0
            OR (countIf(action = 'intent.rejected' AND actor = 'service:signer') > 0
                AND countIf(action IN ('intent.approved', 'intent.human_approved')) > 0) AS released,
        countIf(action = 'tx.signed' AND JSONExtractString(details, 'status') = 'sign_only') > 0 AS sign_only,
        -- Only a held (sign-only) transaction's reservation moves when it lands; a broadcast one
        -- stays counted from its approval, as the worker keeps it, whatever the chain did.
        sign_only AND countIf({_LANDED}) > 0 AS landed,
        minIf(ts, {_LANDED}) AS landed_at,
        argMinIf(JSONExtractString(details, 'status'), seq, {_LANDED}) AS landed_status,
        landed_status = 'mined' AS executed,
        toUInt256OrZero(argMinIf(JSONExtractString(details, 'fee_wei'), seq, {_LANDED})) AS fee_wei,
        toUInt256OrZero(argMinIf(JSONExtractString(details, 'value_wei'), seq, action = 'tx.signed')) AS value_wei,
        countIf({_SETTLED}) > 0 AS settled,
        minIf(ts, {_SETTLED}) AS settled_at,
        argMinIf(JSONExtractString(details, 'status'), seq, {_SETTLED}) AS settled_status,
        toUInt256OrZero(argMinIf(JSONExtractString(details, 'spend', 'BTC'), seq, {_SETTLED})) AS settled_sats
    FROM {AUDIT_LOG}
    WHERE intent_id != ''
    GROUP BY agent_id, intent_id, intent_digest
    HAVING countIf({_RESERVES}) > 0 AND NOT released AND NOT (landed AND landed_status = 'dropped')
)
ARRAY JOIN arrayConcat(
    [('native', toUInt256OrZero(JSONExtractString(reserved, 'spend_wei')))],
    arrayMap(kv -> (kv.1, toUInt256OrZero(kv.2)), JSONExtractKeysAndValues(reserved, 'asset_spend', 'String'))
) AS pair
WHERE units > 0
""",
    # Each reservation with the agent's spend of its asset over the 24 h ending at it (millisecond
    # resolution), as the rolling limits count it then; a held one counts here at its signing.
    """
CREATE OR REPLACE VIEW agent_spend_rolling_24h AS
SELECT
    agent_id,
    asset,
    unit,
    counted_from AS ts,
    intent_id,
    units,
    sum(units) OVER (
        PARTITION BY agent_id, asset ORDER BY toUnixTimestamp64Milli(counted_from)
        RANGE BETWEEN 86399999 PRECEDING AND CURRENT ROW
    ) AS spend_24h
FROM spend_reservations
""",
    # What each agent's rolling windows count now, per asset: the reservations of the 24 h ending
    # now, and every held one (the spend the judge measures a new intent against).
    """
CREATE OR REPLACE VIEW agent_spend_24h AS
SELECT
    agent_id,
    asset,
    any(unit) AS unit,
    sum(units) AS spend_24h,
    count() AS intents,
    countIf(held) AS held_intents
FROM spend_reservations
WHERE held OR (counted_from > now64(6) - INTERVAL 1 DAY AND counted_from <= now64(6))
GROUP BY agent_id, asset
""",
    f"""
CREATE OR REPLACE VIEW rejections_by_stage AS
SELECT
    JSONExtractString(details, 'stage') AS stage,
    JSONExtractString(details, 'code') AS code,
    count() AS rejections,
    uniqExact(agent_id) AS agents,
    min(ts) AS first_at,
    max(ts) AS last_at
FROM {AUDIT_LOG}
WHERE action = 'intent.rejected'
GROUP BY stage, code
""",
    # One row per signed transaction with its latest status (what the signer last reported:
    # broadcast, stuck, mined, failed, replaced, dropped; a reorg's tx.reorged too) and whether
    # that status is final (decided at a block the chain finalized).
    f"""
CREATE OR REPLACE VIEW signed_transactions AS
SELECT
    intent_id,
    agent_id,
    intent_digest,
    JSONExtractString(signed, 'chain') AS chain,
    JSONExtractUInt(signed, 'chain_id') AS chain_id,
    JSONExtractString(signed, 'tx_hash') AS tx_hash,
    JSONExtractString(signed, 'from') AS from_address,
    JSONExtractString(signed, 'to') AS to_address,
    JSONExtractUInt(signed, 'nonce') AS nonce,
    toUInt256(JSONExtractString(signed, 'value_wei')) AS value_wei,
    JSONExtractString(last, 'status') AS status,
    JSONExtractBool(last, 'final') AS final,
    JSONExtract(last, 'block_number', 'Nullable(UInt64)') AS block_number,
    JSONExtractString(signed, 'tee') AS tee,
    signed_at
FROM (
    SELECT
        intent_id,
        agent_id,
        JSONExtractString(details, 'intent_digest') AS intent_digest,
        argMaxIf(details, seq, action = 'tx.signed') AS signed,
        argMax(details, seq) AS last,
        minIf(ts, action = 'tx.signed') AS signed_at
    FROM {AUDIT_LOG}
    WHERE action IN {_TX_STATUS}
    GROUP BY agent_id, intent_id, intent_digest
    HAVING countIf(action = 'tx.signed') > 0
)
""",
    # One row per signed message (EIP-191), typed data (EIP-712) or Solana off-chain message: what
    # was signed, and for typed data what it was for (primary type, verifying contract).
    f"""
CREATE OR REPLACE VIEW signed_messages AS
SELECT
    intent_id,
    agent_id,
    ts AS signed_at,
    JSONExtractString(details, 'kind') AS kind,
    JSONExtractString(details, 'chain') AS chain,
    JSONExtractString(details, 'from') AS from_address,
    JSONExtractString(details, 'message_hash') AS message_hash,
    JSONExtractString(details, 'primary_type') AS primary_type,
    JSONExtractString(details, 'verifying_contract') AS verifying_contract,
    JSONExtractString(details, 'tee') AS tee
FROM {AUDIT_LOG}
WHERE action IN ('message.signed', 'solana.message_signed')
""",
    """
CREATE OR REPLACE VIEW signed_by_chain_status AS
SELECT chain, status, count() AS txs, sum(value_wei) AS value_wei, min(signed_at) AS first_at, max(signed_at) AS last_at
FROM signed_transactions
GROUP BY chain, status
""",
)

DDL = TABLES + VIEWS


def _escaped(column: str) -> str:
    return "replaceAll(replaceAll(" + column + ", '%', '%25'), '|', '%7C')"


# The chain encoding of ledger/chain.py, in SQL: ClickHouse recomputes
# every row's hash next to the data, in parallel (tests check both agree).
INTEGRITY_HASH_SQL = (
    "lower(hex(SHA256(concat(prev_hash, '|', "
    + ", '|', ".join(_escaped(c) for c in ("event_id", "actor", "action", "resource"))
    + ", '|', formatDateTime(ts, '%Y-%m-%dT%H:%i:%S.%fZ'), '|', lower(hex(SHA256(details))), '|', "
    + _escaped("intent_id")
    + ", '|', "
    + _escaped("agent_id")
    + "))))"
)

# RFC 9162 leaf hash of a row, as 32 raw bytes.
LEAF_HASH_SQL = "SHA256(concat(char(0), unhex(integrity_hash)))"

# A 64-bit hash of an event id (its first 8 SHA-256 bytes); the sink keeps these in memory to find
# candidate duplicates without a query per event (ledger.SeenIds).
ID_HASH64_SQL = "reinterpretAsUInt64(substring(SHA256(event_id), 1, 8))"
