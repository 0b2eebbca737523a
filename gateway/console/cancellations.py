"""An admin's cancellation of a sign-only transaction from the console, as `warden txs cancel` makes
it: a denial (`HumanApproval`, ``deny``) of the intent, bound to its id, its agent and its intent
digest, published on warden.approvals; the signer then takes an EVM transaction's nonce with a
0-value transfer, or spends one of a Bitcoin payment's inputs back to the agent.

The transactions page offers it beside each sign-only EVM or Bitcoin transaction (`cancel_form`).
The console builds the denial for the admin logged in (`build`) only for a transaction the
signer's own records say is that agent's and still ``sign_only`` (`sdk.cancellation`), keeps its
bytes as a draft, and shows them with what they do (`intro`). It relays the passkey's signature
(`relay_cancellation`) only over those bytes, and only while the record is still ``sign_only``
under the same digest; then it waits for the signer's record."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import ValidationError

from gateway.console.data import Transaction
from gateway.console.layout import attr, esc
from gateway.console.relay import Relayed, RelayRefused, _signed_by_passkey, shown_outcome
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.registry import REGISTRY
from schemas.chains import Family
from schemas.outcomes import HumanApproval, SignedBitcoinTransaction
from schemas.passkeys import RelyingParty
from sdk.cancellation import Cancellable, cancellable, cancellation, send_cancellation
from sdk.records import AgentRecords, admins_in_force, agent_transactions

KIND = "cancellation"
# The families whose sign-only transactions the signer can cancel (Solana's end with their blockhash).
CANCELLABLE = (Family.EVM, Family.BITCOIN)
# The longest reason a denial carries (`HumanApproval.reason`).
REASON_MAX = next(m.max_length for m in HumanApproval.model_fields["reason"].metadata if hasattr(m, "max_length"))


class CancelInvalid(ValueError):
    """The form names no transaction the console may build a cancellation of: the text says why."""


def offered(t: Transaction) -> bool:
    """Whether the transactions page offers to cancel ``t``: signed sign-only on an EVM or Bitcoin network."""
    chain = REGISTRY.all().get(t.chain)
    return t.status == "sign_only" and chain is not None and chain.family in CANCELLABLE


def cancel_form(t: Transaction, csrf: str) -> str:
    """The row's form that builds the cancellation of ``t`` (sent by the page's script), with an
    optional reason recorded with the denial."""
    return (
        f'<form class="cancel draft" method="post" action="/transactions/cancel">'
        f'<input type="hidden" name="csrf" value="{attr(csrf)}">'
        f'<input type="hidden" name="agent" value="{attr(t.agent_id)}">'
        f'<input type="hidden" name="intent" value="{attr(t.intent_id)}">'
        f'<input name="reason" maxlength="{REASON_MAX}" placeholder="reason (optional)">'
        '<button>Cancel</button><span class="result"></span></form>'
    )


def _text(sent: dict[str, object], name: str) -> str:
    value = sent.get(name, "")
    if not isinstance(value, str):
        raise CancelInvalid(f"{name}: must be text, got {type(value).__name__}")
    return value


def read_form(sent: dict[str, object]) -> tuple[str, str, str]:
    """(agent, intent, reason) the form sent; CancelInvalid naming the field that is wrong."""
    agent, intent, reason = (_text(sent, name) for name in ("agent", "intent", "reason"))
    if not agent or not intent:
        raise CancelInvalid(f"{'agent' if not agent else 'intent'}: name the transaction's agent and intent id")
    if len(reason) > REASON_MAX:
        raise CancelInvalid(f"reason: at most {REASON_MAX} characters, got {len(reason)}")
    return agent, intent, reason


def what_it_does(record: Cancellable) -> str:
    """What the signer does once it takes the denial, in words."""
    if isinstance(record, SignedBitcoinTransaction):
        return (
            f"The signer spends one of payment {record.txid}'s inputs ({', '.join(record.inputs)}) back to the "
            "agent, through the same judge; once that spend is final, the payment can never land."
        )
    return (
        f"The signer signs a 0-value transfer from {record.from_} to itself at nonce {record.nonce}, with fees "
        f"above the original's, and sends it; once it takes the nonce, transaction {record.tx_hash} can never land."
    )


def intro(record: Cancellable, reason: str) -> str:
    """The signing page's account of the cancellation: which transaction, which agent, the reason."""
    rows = [("agent", record.agent_id), ("intent", record.intent_id), ("chain", record.chain)]
    if isinstance(record, SignedBitcoinTransaction):
        rows += [("txid", record.txid), ("inputs", ", ".join(record.inputs))]
    else:
        rows += [("nonce", str(record.nonce)), ("transaction", record.tx_hash), ("to", record.to)]
    rows += [("intent digest", record.intent_digest or ""), ("reason", reason or "(none given)")]
    table = "".join(f"<tr><th>{esc(name)}</th><td>{esc(value)}</td></tr>" for name, value in rows)
    return f'<table class="cancellation">{table}</table><p class="does">{esc(what_it_does(record))}</p>'


async def build(settings: Settings, admin_id: str, sent: dict[str, object], now: datetime) -> tuple[bytes, str, str]:
    """The unsigned denial ``admin_id`` signs to cancel the transaction the form names, checked
    against the signer's own records: (its signing bytes, the page's title, its `intro`).
    CancelInvalid saying what is wrong."""
    agent_id, intent_id, reason = read_form(sent)
    try:
        record = cancellable(await agent_transactions(settings, agent_id), agent_id, intent_id)
        denial = cancellation(record, admin_id, reason, now)
    except LookupError as exc:
        raise CancelInvalid(str(exc)) from None
    where = f"payment {record.txid}" if isinstance(record, SignedBitcoinTransaction) else f"nonce {record.nonce}"
    return denial.signing_bytes(), f"Cancel {agent_id}'s transaction at {where}", intro(record, reason)


def unsigned_denial(message: bytes, admin_id: str, max_age: timedelta, now: datetime) -> HumanApproval:
    """The unsigned denial ``message`` is, built for ``admin_id`` and younger than ``max_age`` at
    ``now`` (the signer takes none older); RelayRefused otherwise."""
    try:
        denial = HumanApproval.model_validate_json(message)
    except ValidationError as exc:
        raise RelayRefused(f"the bytes are not a cancellation: {str(exc)[:200]}") from None
    if denial.signing_bytes() != message or denial.signature or denial.cosignatures or denial.decision != "deny":
        raise RelayRefused("the bytes are not an unsigned denial's signing bytes as the console shows them")
    if denial.admin_key_id != admin_id:
        raise RelayRefused(f"the cancellation names {denial.admin_key_id!r}, not {admin_id!r}, who is logged in")
    if now - denial.decided_at >= max_age:
        raise RelayRefused(
            f"the cancellation was built at {denial.decided_at.isoformat()}, and the signer takes a denial only "
            f"within {max_age.total_seconds():.0f} s (WARDEN_INTENT_MAX_AGE_S): build it again"
        )
    return denial


def still_open(denial: HumanApproval, found: AgentRecords) -> Cancellable:
    """The transaction ``denial`` cancels, when ``found`` (the signer's records of its agent, read
    now) says it is still ``sign_only`` under the digest the denial names; RelayRefused otherwise."""
    try:
        record = cancellable(found, denial.agent_id, denial.intent_id)
    except LookupError as exc:
        raise RelayRefused(f"nothing was relayed: {exc}") from None
    if record.intent_digest != denial.intent_digest:
        raise RelayRefused(
            f"intent {record.intent_id} is now signed under digest {record.intent_digest}, not the "
            f"{denial.intent_digest} the cancellation names: nothing was relayed"
        )
    return record


async def relay_cancellation(
    settings: Settings, message: bytes, assertion: str, admin_id: str, party: RelyingParty, wait_s: float = 30.0
) -> Relayed:
    """``admin_id``'s denial cancelling a sign-only transaction, whose signing bytes are ``message``,
    signed by ``assertion``: published on warden.approvals once the signer's records say the
    transaction is still ``sign_only`` under the digest it names, and the signer's record waited for."""
    denial = unsigned_denial(message, admin_id, timedelta(seconds=settings.intent_max_age_s), utcnow())
    record = still_open(denial, await agent_transactions(settings, denial.agent_id))
    _signed_by_passkey(await admins_in_force(settings), admin_id, assertion, message, party)
    outcome = await send_cancellation(settings, record, denial.model_copy(update={"signature": assertion}), wait_s)
    status = None if outcome is None else getattr(outcome, "status", None)
    if status == "cancelled":
        what = f"intent {record.intent_id} cancelled"
    elif outcome is None:
        what = f"cancellation relayed; the signer reported nothing within {wait_s:.0f} s (`warden tail` follows it)"
    else:
        what = f"cancellation relayed; the signer reported {status or type(outcome).__name__}"
    return Relayed(what, shown_outcome(outcome))
