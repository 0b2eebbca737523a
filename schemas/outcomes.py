"""What the services answer about an intent: verdicts, rejections, approvals, parked and abandoned
intents, the split topology's hand-off, signed transactions and messages, dead letters; and an
admin's decision on a parked intent."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, model_validator

from schemas.admins import ADMIN_SIGNATURE, AdminSignature
from schemas.codes import Code
from schemas.fields import Address, HexData, SolanaAddress, UtcDatetime, Wei
from schemas.intent import TransactionIntent
from schemas.passkeys import MAX_ASSERTION_CHARS
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from schemas.record import Evolving, JsonObject, Record
from schemas.stages import Stage


class Outcome(Evolving):
    """A record that tells a client something about its intent, signed by the service that
    decided it (a streams worker or a signer, each with its own pinned Ed25519 key) and bound to
    the intent by its digest. See docs/security.md, "Verifying outcomes", for the bytes that are signed."""

    intent_digest: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the intent's signing bytes; for an INVALID_INTENT rejection of a record that "
        "could not be read, SHA-256 of the record's bytes as written",
    )
    signed_by: str = Field(default="", description="the key id of the service that signed this record")
    service_signature: str = Field(default="", description="Ed25519 over service_signing_bytes(), hex")

    def service_signing_bytes(self) -> bytes:
        """The record as it travels (JSON, wire field names) without service_signature, keys sorted."""
        body = self.model_dump(mode="json", by_alias=True, exclude={"service_signature"})
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


class StageVerdict(Record):
    """One stage's verdict on an intent. Made by `passing` or `refusing` (or `judged`, when whether
    it passed was computed), never field by field, so every verdict is made the same way."""

    intent_id: str
    stage: Stage
    passed: bool
    code: Code
    reason: str
    facts: JsonObject = Field(default_factory=dict)

    @classmethod
    def passing(
        cls, *, intent_id: str, stage: Stage, code: Code, reason: str, facts: dict[str, Any] | None = None
    ) -> StageVerdict:
        return cls(intent_id=intent_id, stage=stage, passed=True, code=code, reason=reason, facts=facts or {})

    @classmethod
    def refusing(
        cls, *, intent_id: str, stage: Stage, code: Code, reason: str, facts: dict[str, Any] | None = None
    ) -> StageVerdict:
        return cls(intent_id=intent_id, stage=stage, passed=False, code=code, reason=reason, facts=facts or {})

    @classmethod
    def judged(
        cls,
        *,
        passed: bool,
        intent_id: str,
        stage: Stage,
        code: Code,
        reason: str,
        facts: dict[str, Any] | None = None,
    ) -> StageVerdict:
        made = cls.passing if passed else cls.refusing
        return made(intent_id=intent_id, stage=stage, code=code, reason=reason, facts=facts)


# The intake refusals that answer for a record's bytes rather than for an intent: their
# ``intent_digest`` is the SHA-256 of the record's bytes as written. A record that could not be
# read names no intent; and the intent's digest leaves its signature out, so a copy of a real
# intent's fields under a bad signature has the real intent's digest and must not answer for it.
BOUND_TO_BYTES = frozenset({Code.INVALID_INTENT, Code.AGENT_SIGNATURE_INVALID})


def bound_to_bytes(record: Outcome) -> bool:
    """Whether ``record`` is an intake refusal bound to the bytes of the record it refuses."""
    return isinstance(record, IntentRejected) and record.stage == Stage.INTAKE and record.code in BOUND_TO_BYTES


class IntentRejected(Outcome):
    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {"tee": None}

    intent_id: str
    agent_id: str
    stage: Stage
    code: Code
    reason: str
    verdicts: tuple[StageVerdict, ...] = ()
    decided_at: UtcDatetime
    tee: str | None = Field(default=None, description="a signer's refusal: where that signer runs (none or sev-snp)")


class HumanApproval(Evolving):
    """An admin's decision on an intent that waits for one, signed over `signing_bytes` by pinned
    admin keys (the proposer's in ``signature``, the others' in ``cosignatures``: an approval
    needs the deployment's quorum for ``approval``, a denial one admin) and bound to the intent
    by its digest. The worker acts on it, and the signer checks it again itself before it signs
    anything above a threshold."""

    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {"cosignatures": ()}

    intent_id: str
    agent_id: str
    intent_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    decision: Literal["approve", "deny"]
    reason: str = Field(default="", max_length=1024)
    decided_at: UtcDatetime
    admin_key_id: str = ""
    signature: str = Field(
        default="", max_length=MAX_ASSERTION_CHARS, description="the proposing admin's, " + ADMIN_SIGNATURE
    )
    cosignatures: tuple[AdminSignature, ...] = Field(default=(), max_length=64)

    def signing_bytes(self) -> bytes:
        return orjson.dumps(
            self.model_dump(mode="json", exclude={"signature", "cosignatures"}), option=orjson.OPT_SORT_KEYS
        )


class IntentParked(Outcome):
    """An intent above a human-approval threshold: it passed every guardrail, its spend is
    reserved, and it waits for an admin's signed decision (`HumanApproval`) until ``expires_at``.
    Not final: an approval, a denial or APPROVAL_EXPIRED follows."""

    intent_id: str
    agent_id: str
    status: Literal["awaiting_approval"] = "awaiting_approval"
    reason: str
    intent: TransactionIntent
    verdicts: tuple[StageVerdict, ...] = ()
    parked_at: UtcDatetime
    expires_at: UtcDatetime


class IntentApproved(Outcome):
    """An intent that passed every guardrail, with the signed policy it passed,
    so the signer can re-verify both without trusting the worker.

    It carries no verdicts: the signer re-runs every check and never reads them, and each stage's
    verdict is on the audit ledger (``stage.passed``, with its code, reason and facts). Left out,
    they were 2.4 KB of a 4.0 KB approval, written again into the worker's decision changelog and
    parsed by the signer, for every intent. A record written before keeps its verdicts and reads
    (and verifies) as it was."""

    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {"human_approval": None, "verdicts": ()}

    intent: TransactionIntent
    policy: AgentPolicy
    verdicts: tuple[StageVerdict, ...] = Field(
        default=(),
        description="no longer written (the ledger's stage.passed events hold each verdict); read in older records",
    )
    approved_at: UtcDatetime
    human_approval: HumanApproval | None = Field(
        default=None, description="the admin's approval, for an intent above a human-approval threshold"
    )

    @property
    def intent_id(self) -> str:
        return self.intent.intent_id

    @property
    def agent_id(self) -> str:
        return self.intent.agent_id


class _UnansweredIntent(Outcome):
    """An intent the redelivery watch found no outcome of after its last attempt."""

    intent: TransactionIntent
    attempts: int = Field(ge=0, description="how many times the intent was submitted again before it was overdue")

    @property
    def intent_id(self) -> str:
        return self.intent.intent_id


class IntentOverdue(_UnansweredIntent):
    """A worker's redelivery watch saw no outcome of an intent after its last attempt (on
    ``warden.intents.overdue``): it asks the worker that owns the intent's partition to give it
    up. Only that worker knows whether it decided the intent already (a rejection the watch has
    not read yet, stuck behind a broker that stopped, is a decision): it gives up only an intent
    it did not decide (`IntentAbandoned`), so the signer's NO_OUTCOME is never a second outcome.
    Signed by the worker whose watch asks: a record anybody could write would take an id an
    agent has yet to use (idempotent ids can be computed). The signer reads none of these."""

    overdue_at: UtcDatetime


class IntentAbandoned(_UnansweredIntent):
    """The worker that owns an intent's partition gave it up, undecided, when its redelivery watch
    asked (`IntentOverdue`; on ``warden.intents.abandoned``): the signer refuses it NO_OUTCOME
    unless it decided it already, and the worker judges it no further. Signed by that worker: a
    record anybody could write would have a real intent refused NO_OUTCOME before it is read."""

    abandoned_at: UtcDatetime


class StageEnvelope(Outcome):
    """The split topology's hand-off: an intent, the policy it is judged under and the verdicts so
    far, on its way to ``stage`` (on ``warden.stage.<stage>``). No client reads it; it is signed by
    the worker that wrote it like an outcome, because the next stage trusts the verdicts and the
    policy it carries: one a topic writer made must decide nothing (`Engine.on_stage`)."""

    stage: Stage
    intent: TransactionIntent
    policy: AgentPolicy
    verdicts: tuple[StageVerdict, ...] = ()
    # The typed results of the stages so far (`rules.judge.Judgement`), for the stages that count them.
    quote: FeeQuote | None = None
    asset_spend: dict[str, Wei] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _quote_of_the_fee_stage(self) -> "StageEnvelope":
        # The cap, the daily and the USD limit count the fee stage's quote: once that stage has
        # passed, the envelope carries its quote, so the stages after it never judge without one.
        if self.quote is None and any(v.stage == Stage.FEE and v.passed for v in self.verdicts):
            raise ValueError("quote: the fee stage has passed, so the envelope carries its quote")
        return self

    @property
    def intent_id(self) -> str:
        return self.intent.intent_id


# The lifecycle of one transaction (signer/lifecycle.py): sign_only, or signed, then broadcast
# (and stuck, with the reason, while it is not being mined), then mined, failed, replaced or dropped.
# Those four are what the chain said at some block: ``final`` says whether that block is final
# (at or below the chain's finalized block, or enough confirmations deep). Until it is, a reorg
# can take the transaction out again (back to broadcast) or move it to another block. A sign-only
# transaction is followed too, until its nonce is taken at a final block: mined or failed (its
# bytes landed), dropped (another transaction took the nonce), or cancelled (the signer's
# replacement at its nonce, a 0-value transfer to itself, took it; not final until that is).
TxStatus = Literal["sign_only", "signed", "broadcast", "stuck", "mined", "failed", "replaced", "dropped", "cancelled"]
FINAL_TX_STATUSES = frozenset({"sign_only", "mined", "failed", "replaced", "dropped", "cancelled"})


class SignedTransaction(Outcome):
    intent_id: str
    agent_id: str
    chain: str
    chain_id: int
    signed_tx: HexData
    tx_hash: HexData
    from_: Address = Field(alias="from")
    to: Address
    nonce: int
    value_wei: Wei
    tx_type: Literal[0, 1, 2, 3, 4]
    status: TxStatus
    tee: str
    signed_at: UtcDatetime
    max_spend_wei: Wei = Field(description="value + gas_limit x max fee per gas: what the signer reserved")
    block_number: int | None = None
    block_hash: HexData | None = Field(default=None, description="the block its receipt was in, when mined or failed")
    final: bool = Field(
        default=False,
        description=(
            "the status can no longer change: sign_only, a refusal by the node, or mined / failed / replaced / "
            "dropped at a block the chain has finalized (or enough confirmations deep)"
        ),
    )
    reorgs: int = Field(
        default=0,
        description=(
            "how many times a block that held it left the chain (a reorg, or a node that lost its last blocks): a "
            "record with more supersedes one with fewer, even a final one"
        ),
    )
    gas_used: int | None = None
    fee_wei: Wei | None = Field(default=None, description="gas_used x effective gas price, once a receipt exists")
    error: str | None = Field(default=None, description="why it failed, is stuck, was replaced or dropped")
    replaces: tuple[HexData, ...] = Field(
        default=(), description="earlier transactions of this intent at the same nonce, replaced by a fee bump"
    )
    replaced_by: HexData | None = Field(default=None, description="replaced: the transaction mined at its nonce")


class SignedMessage(Outcome):
    """An EIP-191 or EIP-712 signature the signer made for an intent, on ``warden.messages.signed``
    (a topic of its own: its readers never mistake a signature over a message for a transaction)."""

    intent_id: str
    agent_id: str
    kind: Literal["personal_sign", "typed_data"]
    chain: str
    chain_id: int
    from_: Address = Field(alias="from")
    message_hash: HexData = Field(description="what was signed: the EIP-191 hash, or the EIP-712 digest")
    signature: HexData = Field(description="65 bytes: r || s || v, v = 27 or 28 (what eth_sign returns)")
    primary_type: str | None = Field(default=None, description="typed data: its primaryType")
    verifying_contract: Address | None = Field(default=None, description="typed data: the domain's verifyingContract")
    domain_separator: HexData | None = Field(default=None, description="typed data: hashStruct(domain)")
    tee: str
    signed_at: UtcDatetime


# A Solana transaction's life: signed only (the agent sends it), or sent and then seen by the node
# at each commitment; failed (it ran and failed: its fee was paid), or dropped (its blockhash
# expired and it never landed: nothing was spent but what is named). Final at finalized, failed,
# dropped and sign_only.
SolanaStatus = Literal["sign_only", "signed", "broadcast", "processed", "confirmed", "finalized", "failed", "dropped"]


class SignedSolanaTransaction(Outcome):
    """A Solana transaction the signer signed for an intent, on ``warden.solana.signed``, and its
    status on the chain when the intent asked for broadcast. ``signed_tx`` holds exactly the
    agent's transaction with the agent's signature in its slot: the bytes the signer sent or, once
    a copy of the same message that its fee payer signed again landed instead, that copy (its
    ``tx_signature`` too)."""

    intent_id: str
    agent_id: str
    chain: str
    from_: SolanaAddress = Field(alias="from", description="the agent's Solana address: the key that signed")
    signature: str = Field(description="the agent's Ed25519 signature, base58")
    tx_signature: str | None = Field(
        default=None,
        description="the transaction's id on chain (its fee payer's signature), base58; none while another fee payer "
        "has not signed",
    )
    signed_tx: str = Field(description="the transaction's wire bytes with the agent's signature, base64")
    recent_blockhash: str
    spend: dict[str, str] = Field(
        default_factory=dict, description="what it may spend, per asset (SOL, or a mint), base units: fee included"
    )
    status: SolanaStatus
    final: bool = False
    slot: int | None = Field(default=None, description="the slot the node holds it in, once it is")
    error: str | None = Field(default=None, description="why it failed or was dropped")
    tee: str
    signed_at: UtcDatetime


# A Bitcoin transaction's life: signed only, or signed then broadcast (in the node's mempool), mined
# (in a block; final once the chain's confirmations are built on it), or conflicted: another
# transaction the node shows spends one of its inputs, so it can never be mined; unknown: the node
# holds neither it nor the transactions whose outputs it spends (its chain is not the one it was
# signed on: a new chain, or a node still syncing), so nothing is decided and its spend stays counted;
# cancelled: a sign-only one whose cancellation (spending one of its inputs back to the agent) the
# signer signed and sent, then, once that is final, the cancellation's record.
BitcoinStatus = Literal["sign_only", "signed", "broadcast", "mined", "conflicted", "cancelled", "unknown"]


class SignedBitcoinTransaction(Outcome):
    """A Bitcoin transaction the signer signed for an intent (its PSBT), on
    ``warden.bitcoin.signed``, and its status on the chain when the intent asked for broadcast.
    ``signed_tx`` is exactly the network transaction: every input signed by the agent's key."""

    intent_id: str
    agent_id: str
    chain: str
    public_key: str = Field(description="the agent's Bitcoin public key (compressed, hex): the key that signed")
    txid: str = Field(description="the transaction's id, hex, as explorers show it")
    signed_tx: str = Field(description="the signed network transaction, hex")
    inputs: tuple[str, ...] = Field(description="the outputs it spends, txid:vout")
    spend: dict[str, str] = Field(
        default_factory=dict, description="what it spends, per asset (BTC), satoshis: outputs to others and the fee"
    )
    fee_sats: int
    vsize: int
    status: BitcoinStatus
    final: bool = False
    block_hash: str | None = Field(default=None, description="the block that holds it, once one does")
    confirmations: int = Field(default=0, description="its block and those on top, as the node last said")
    error: str | None = Field(default=None, description="why the node refused it, or what spent its inputs")
    tee: str
    signed_at: UtcDatetime


class SignedSolanaMessage(Outcome):
    """A Solana off-chain message the signer signed for an intent, on
    ``warden.solana.messages.signed``: ``message`` holds exactly the bytes signed (the agent's
    intent's ``solana_message``), so anyone verifies ``signature`` against ``from`` over them."""

    intent_id: str
    agent_id: str
    chain: str
    from_: SolanaAddress = Field(alias="from", description="the agent's Solana address: the key that signed")
    signature: str = Field(description="the agent's Ed25519 signature over ``message``, base58")
    message: str = Field(description="the off-chain message's bytes, base64: what was signed")
    message_sha256: str = Field(description="SHA-256 of those bytes, hex")
    version: int = Field(description="the message's header version, 0 or 1")
    application_domain: SolanaAddress | None = Field(default=None, description="version 0: the application")
    signatories: tuple[SolanaAddress, ...] = Field(description="every key the message asks to sign it")
    tee: str
    signed_at: UtcDatetime


class DeadLetter(Outcome):
    """A record a worker could not read, kept with the reason so nothing is lost. Signed by the
    service that wrote it (a worker or a signer): a dead letter ends the watch for an intent, so
    one anybody could write would let them stop an intent's redelivery."""

    source_topic: str
    partition: int
    offset: int
    key: str | None
    reason: str
    errors: tuple[str, ...] = ()
    payload_b64: str = Field(description="the record's first bytes (at most the size limit), base64")
    payload_sha256: str = Field(description="SHA-256 of the whole record, hex")
    payload_bytes: int | None = Field(default=None, description="the whole record's size")
    received_at: UtcDatetime
