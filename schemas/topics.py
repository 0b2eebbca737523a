"""Kafka topic names: the contract between producers, workers, the signer and the ledger.

Every record on these topics is keyed by ``agent_id`` (the audit and DLQ topics
too), so one agent's records stay in one partition and are handled in order.
"""

INTENTS_SUBMITTED = "warden.intents.submitted"
INTENTS_APPROVED = "warden.intents.approved"
INTENTS_REJECTED = "warden.intents.rejected"
# Intents the redelivery watch saw no outcome of after its last attempt (IntentOverdue): the worker
# that owns the partition gives up each one it did not decide, and only that one.
INTENTS_OVERDUE = "warden.intents.overdue"
# Intents that worker gave up (IntentAbandoned): the signer refuses them NO_OUTCOME unless it
# decided them already, so even these end with one true outcome, and none is signed after it was refused.
INTENTS_ABANDONED = "warden.intents.abandoned"
# Intents above a human-approval threshold, parked (IntentParked) until an admin's signed decision
# arrives on warden.approvals (HumanApproval), or they expire.
INTENTS_AWAITING_APPROVAL = "warden.intents.awaiting_approval"
APPROVALS = "warden.approvals"
# The worker's reminders to itself that a parked intent's wait has ended (it checks; nothing is trusted).
APPROVAL_DEADLINES = "warden.approvals.deadlines"
TXS_SIGNED = "warden.txs.signed"
# EIP-191 and EIP-712 signatures (SignedMessage): a topic of their own, so nobody reading signed
# transactions mistakes a signature over a message for one.
MESSAGES_SIGNED = "warden.messages.signed"
# Solana transactions the signer signed (SignedSolanaTransaction), and their status on the chain:
# a topic of their own, as messages have, since no reader of EVM transactions reads them.
SOLANA_SIGNED = "warden.solana.signed"
# Solana off-chain messages the signer signed (SignedSolanaMessage): a topic of their own, as EVM
# messages have, so no reader of Solana transactions ever takes one for a transaction.
SOLANA_MESSAGES_SIGNED = "warden.solana.messages.signed"
# Bitcoin transactions the signer signed (SignedBitcoinTransaction), and their status on the chain;
# the streams worker reads their final statuses (what its windows hold for each payment, and the
# coins it counts as taken, follow them).
BITCOIN_SIGNED = "warden.bitcoin.signed"
# Simulation requests (SimulationRequest, signed by the agent) and the worker's answers
# (SimulationResult): topics of their own, so no reader of intents or approvals, and no signer,
# ever takes a simulation for something to sign.
SIMULATIONS_REQUESTED = "warden.simulations.requested"
SIMULATIONS_RESULTS = "warden.simulations.results"
POLICIES = "warden.policies"
# Changes to the admin set and its thresholds (AdminSet), each signed by the quorum of the set
# before it; every service that checks admins' signatures reads it whole (runtime.admins).
ADMINS = "warden.admins"
# The admins' chain table (ChainSet: the networks they added, built-in ones whose finality they
# changed), each version whole and signed by their quorum for "chains"; the streams worker and the
# signer read it to its end, after warden.admins, before they judge any intent (runtime.chains).
CHAINS = "warden.chains"
# Admins' signatures collected towards a quorum (AdminProposal): one record per signature, until
# enough admins signed and the whole record goes to its own topic (`warden approvals sign`).
ADMIN_PROPOSALS = "warden.admin.proposals"
AUDIT_EVENTS = "warden.audit.events"
AUDIT_CHECKPOINTS = "warden.audit.checkpoints"
DLQ = "warden.dlq"
VAULT = "warden.vault"
# Each signer's current sealing key (HPKE public key): clients seal client shares to it.
SIGNER_SEALING = "warden.signer.sealing"
# The signer's state, partition by partition (signer.changelog): the signer that owns a partition of
# warden.intents.approved appends what it decided there, and a new owner restores it before it signs.
SIGNER_CHANGELOG = "warden.signer.changelog"
# The streams worker's tables, partition by partition (streams.state, in the same form): the worker
# that owns a partition of the input topics appends what it decided there, and a new owner restores it.
STREAMS_CHANGELOG = "warden.streams.changelog"

# Split topology: one topic per stage, so a deployment can scale a stage alone.
STAGE_PREFIX = "warden.stage."

PARTITIONS = 4

COMPACTED = frozenset({POLICIES, VAULT, SIGNER_SEALING})

ALL = (
    INTENTS_SUBMITTED,
    INTENTS_APPROVED,
    INTENTS_REJECTED,
    INTENTS_OVERDUE,
    INTENTS_ABANDONED,
    INTENTS_AWAITING_APPROVAL,
    APPROVALS,
    APPROVAL_DEADLINES,
    TXS_SIGNED,
    MESSAGES_SIGNED,
    SOLANA_SIGNED,
    SOLANA_MESSAGES_SIGNED,
    BITCOIN_SIGNED,
    SIMULATIONS_REQUESTED,
    SIMULATIONS_RESULTS,
    POLICIES,
    ADMINS,
    CHAINS,
    ADMIN_PROPOSALS,
    AUDIT_EVENTS,
    AUDIT_CHECKPOINTS,
    DLQ,
    VAULT,
    SIGNER_SEALING,
    SIGNER_CHANGELOG,
    STREAMS_CHANGELOG,
)


# Each Warden consumer group and the topics it commits offsets on (the streams worker's
# split-topology stage topics are left out: in the fused topology, the default, they carry nothing).
CONSUMER_GROUPS = {
    "streams": (
        "warden-streams",
        (
            INTENTS_SUBMITTED,
            POLICIES,
            INTENTS_REJECTED,
            TXS_SIGNED,
            BITCOIN_SIGNED,
            INTENTS_OVERDUE,
            APPROVALS,
            APPROVAL_DEADLINES,
            SIMULATIONS_REQUESTED,
        ),
    ),
    "signer": ("warden-signer", (INTENTS_APPROVED, INTENTS_ABANDONED, APPROVALS)),
}


def stage_topic(stage: str) -> str:
    return f"{STAGE_PREFIX}{stage}"
