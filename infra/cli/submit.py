"""``warden submit``, ``warden sign`` and ``warden tail``: intents in, outcomes out.

``warden sign tx`` is ``warden submit``; ``warden sign message`` (EIP-191) and ``warden sign
typed-data`` (EIP-712, from a JSON file) ask for a signature over a message instead. ``warden
submit --raw FILE`` publishes a file's bytes as they are (a producer's own JSON) and shows the
answer the same way. What the options make of an intent is `infra.cli.intent_options`.

``submit`` prints the intent's id once it is published, a parked intent's ``PARKED`` line (and
who must approve it) once the worker parks it, then the outcome it waited for. Its exit code says
how it ended (`Ended`)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import sys
import time
from datetime import timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition
from pydantic import ValidationError

from infra.cli.intent_options import INTENT_OPTIONS, intent_fields, is_plain_transfer, read_cmek_text
from infra.cli.output import add_json_flag, fail, note, print_json
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.kafka import end_offsets, follow
from runtime.trust import PinnedServiceKeys
from schemas import topics
from schemas.auth import outcome_forgery
from schemas.codes import Code
from schemas.errors import WardenError, explain
from schemas.intent import TransactionIntent
from schemas.outcomes import (
    DeadLetter,
    IntentParked,
    IntentRejected,
    SignedBitcoinTransaction,
    SignedMessage,
    SignedSolanaMessage,
    SignedSolanaTransaction,
)
from schemas.sealing import SealingRefused
from sdk.client import (
    OUTCOME_TOPICS,
    Client,
    Outcome,
    RawSubmission,
    is_final,
    load_or_create_agent_key,
    new_intent,
    read_outcome,
    wait_outcomes,
)
from sdk.records import admins_in_force
from sdk.transfers import claimed_inputs


class Ended(IntEnum):
    """`warden submit`'s exit code: how the wait for the outcome ended."""

    SIGNED = 0  # signed (or, with --no-wait, published: it waits for nothing)
    REJECTED = 1  # refused, with its stage and code
    NO_OUTCOME = 3  # nothing authentic heard within --timeout
    PARKED = 4  # still waiting for admins when --timeout ran out


# How many times a plain payment refused BITCOIN_INPUT_CLAIMED is written again from other coins.
_WRITTEN_AGAIN = 3


class _Claimed(WardenError):
    """A plain payment refused because another open payment of the agent spends ``outputs`` of its
    coins (both written at once from the same coins): it is written again from other coins."""

    def __init__(self, intent_id: str, outputs: frozenset[str]) -> None:
        super().__init__(f"{intent_id} spends outputs another open payment of the agent spends")
        self.intent_id = intent_id
        self.outputs = outputs


def cmd_submit(args: argparse.Namespace) -> int:
    settings = load()
    if getattr(args, "raw", None) is not None:
        return _submit_raw(args, settings)
    command = f"warden {args.command}"
    if args.chain is None:
        return fail(command, "--chain is required (or send a JSON file as it is: --raw FILE)", 2)
    rewrites = _WRITTEN_AGAIN if is_plain_transfer(args) and args.idempotency_key is None else 0
    taken, written = frozenset[str](), 0
    while True:
        try:
            fields = asyncio.run(intent_fields(settings, args, taken))
        except ValidationError as exc:
            return fail(command, "the intent is invalid:\n  " + "\n  ".join(explain(exc)), 2)
        except (ValueError, OSError) as exc:
            return fail(command, exc, 2)
        if args.expires_in is not None:
            fields["expires_at"] = utcnow() + timedelta(seconds=args.expires_in)
        try:
            return asyncio.run(_submit(settings, args, fields, taken if written < rewrites else None))
        except _Claimed as claimed:
            taken, written = taken | claimed.outputs, written + 1
            note(
                f"{claimed.intent_id} refused {Code.BITCOIN_INPUT_CLAIMED}: another open payment of the agent "
                f"spends {', '.join(sorted(claimed.outputs))}; written again from other coins"
            )
        except ValidationError as exc:
            return fail(command, "the intent is invalid:\n  " + "\n  ".join(explain(exc)), 2)
        except (SealingRefused, ValueError, OSError) as exc:
            return fail(command, exc, 2)


async def _submit(
    settings: Settings, args: argparse.Namespace, fields: dict[str, Any], taken: frozenset[str] | None = None
) -> int:
    """The intent signed with the agent's key and published, then its outcome (`_answer`);
    ``taken``, when the payment may be written again: the outputs it already left out."""
    key = load_or_create_agent_key(settings.home, args.agent)
    start = await end_offsets(settings, OUTCOME_TOPICS)
    async with Client(settings) as client:
        share = None
        if args.client_share_file is not None:
            # The custody helpers (and the vaults' code): only with --client-share-file or --cmek-file
            from infra.cli.custody import read_client_share_text

            share = await client.client_share(read_client_share_text(args.client_share_file))
        cmek = None if args.cmek_file is None else await client.cmek(read_cmek_text(args.cmek_file))
        try:
            intent = new_intent(
                key,
                agent_id=args.agent,
                chain=args.chain,
                idempotency_key=args.idempotency_key,
                client_share=share,
                cmek=cmek,
                **fields,
            )
        finally:
            for held in (share, cmek):
                if held is not None:
                    held.wipe()
        await (await client.submit(intent))
    submitted = {"intent": intent.model_dump(mode="json")}
    return await _answer(settings, args, intent, start, (submitted, f"submitted {intent.intent_id}"), taken)


def _submit_raw(args: argparse.Namespace, settings: Settings) -> int:
    """``warden submit --raw FILE``: the file's bytes published exactly as they are, keyed by
    ``--agent``, with no validation here; then the worker's answer, as for any intent. A record
    the worker cannot read gets an INVALID_INTENT rejection bound to the SHA-256 of these bytes."""
    command = f"warden {args.command}"
    given = [f"--{name.replace('_', '-')}" for name in INTENT_OPTIONS if getattr(args, name) is not None]
    if given:
        return fail(
            command,
            f"--raw sends the file as it is, so {', '.join(given)} cannot change it: leave "
            f"{'them' if len(given) > 1 else 'it'} out",
            2,
        )
    try:
        raw = sys.stdin.buffer.read() if args.raw == "-" else Path(args.raw).read_bytes()
    except OSError as exc:
        return fail(command, exc, 2)

    async def run() -> int:
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:
            submission = await client.submit_raw(args.agent, raw)
        sent = {"submission": {**dataclasses.asdict(submission), "bytes": len(raw)}}
        line = (
            f"submitted {submission.intent_id} as it is ({len(raw)} bytes, sha256 {submission.digest}) for agent "
            f"{submission.agent_id}"
        )
        return await _answer(settings, args, submission, start, (sent, line))

    try:
        return asyncio.run(run())
    except (ValueError, OSError) as exc:
        return fail(command, exc, 2)


async def _answer(
    settings: Settings,
    args: argparse.Namespace,
    awaited: TransactionIntent | RawSubmission,
    start: dict[TopicPartition, int],
    submitted: tuple[dict[str, Any], str],
    taken: frozenset[str] | None = None,
) -> int:
    """What became of ``awaited``, published: its id at once (``submitted``: what ``--json``
    shows of it, and the line for people), the ``PARKED`` line as soon as the worker parks it,
    then the outcome once final or when ``--timeout`` runs out (`_report`). Only outcomes that
    verify count (`wait_outcomes`); a forgery is named on stderr. A plain payment refused for
    coins another open payment spends, beyond ``taken`` (None: it is not written again), raises
    `_Claimed` instead of being reported."""
    doc, line = submitted
    if not args.json:
        print(line, flush=True)
    if not args.wait:
        return _report(args, doc, None, None)
    deadline, forged = time.monotonic() + args.timeout, list[tuple[str, str]]()
    first = (await wait_outcomes(settings, [awaited], args.timeout, start, final=False, forged=forged)).get(
        awaited.intent_id
    )
    approvers = None
    if isinstance(first, IntentParked):
        approvers = await _approvers(settings)
        if not args.json:
            print(_describe_outcome(first), flush=True)
            print(f"  {_approvers_line(approvers)}", flush=True)
    outcome = first
    if first is not None and not is_final(first) and deadline > time.monotonic():
        later = await wait_outcomes(settings, [awaited], deadline - time.monotonic(), start, forged=forged)
        outcome = later.get(awaited.intent_id, first)
    for intent_id, why in dict.fromkeys(forged):
        note(f"FORGED outcome for {intent_id} ignored: {why}")
    if taken is not None and (more := claimed_inputs(outcome) - taken):
        raise _Claimed(awaited.intent_id, more)
    return _report(args, doc, outcome, approvers, shown=first if isinstance(first, IntentParked) else None)


async def _approvers(settings: Settings) -> dict[str, Any]:
    """Who may approve a parked intent: the admin set in force and its threshold for approvals."""
    admins = await admins_in_force(settings)
    return {
        "needed": admins.threshold("approval"),
        "admins": sorted(admins.keys),
        "admin_set_version": admins.version,
    }


def _approvers_line(approvers: dict[str, Any]) -> str:
    return (
        f"waiting for {approvers['needed']} of the admins of set v{approvers['admin_set_version']} "
        f"({', '.join(approvers['admins'])}) to approve: `warden approvals approve|deny`, or a passkey admin "
        "in the console"
    )


def _report(
    args: argparse.Namespace,
    submitted: dict[str, Any],
    outcome: Outcome | None,
    approvers: dict[str, Any] | None,
    shown: IntentParked | None = None,
) -> int:
    """The outcome, as a JSON document (``submitted``, the outcome, how it ended and, for a parked
    intent, who may approve it) or lines for people (``shown``: the parked line already printed);
    how it ended is the exit code (`Ended`)."""
    ended = _ended(args, outcome)
    if args.json:
        dumped = None if outcome is None else outcome.model_dump(mode="json", by_alias=True)
        extra = {} if approvers is None else {"approvers": approvers}
        said = ended.name.lower() if args.wait else "published"
        print_json({**submitted, "outcome": dumped, "ended": said, **extra})
        return ended
    if outcome is None:
        if args.wait:
            note(f"no outcome within {args.timeout:g} s: is the stack up (`warden up`)? `warden txs` follows it")
        return ended
    if shown is None or not isinstance(outcome, IntentParked):  # a parked line is printed once
        print(_describe_outcome(outcome))
    if isinstance(outcome, SignedSolanaTransaction) and outcome.status == "sign_only":
        # Sign only: the caller sends these bytes itself (`warden tail` keeps one line a record).
        print(f"  signed transaction (base64): {outcome.signed_tx}")
    if isinstance(outcome, SignedBitcoinTransaction) and outcome.status == "sign_only":
        print(f"  signed transaction (hex): {outcome.signed_tx}")
    if ended is Ended.PARKED:
        note(f"still parked after {args.timeout:g} s; `warden txs` and `warden tail` follow it")
    return ended


def _ended(args: argparse.Namespace, outcome: Outcome | None) -> Ended:
    if isinstance(outcome, IntentRejected):
        return Ended.REJECTED
    if isinstance(outcome, IntentParked):
        return Ended.PARKED
    return Ended.NO_OUTCOME if outcome is None and args.wait else Ended.SIGNED


def _describe_outcome(outcome: Outcome) -> str:
    if isinstance(outcome, IntentParked):
        return (
            f"PARKED {outcome.intent_id} until {outcome.expires_at.isoformat()}: {outcome.reason}; an admin "
            f"decides with `warden approvals approve|deny {outcome.intent_id}`"
        )
    if isinstance(outcome, IntentRejected):
        return f"REJECTED {outcome.intent_id} at {outcome.stage}: {outcome.code}: {outcome.reason}"
    if isinstance(outcome, SignedMessage):
        typed = f" {outcome.primary_type} for {outcome.verifying_contract}" if outcome.kind == "typed_data" else ""
        return (
            f"SIGNED {outcome.intent_id} {outcome.kind}{typed} hash {outcome.message_hash} by {outcome.from_} "
            f"chain {outcome.chain}({outcome.chain_id}) signature {outcome.signature} tee={outcome.tee}"
        )
    if isinstance(outcome, SignedSolanaMessage):
        domain = f" for {outcome.application_domain}" if outcome.application_domain else ""
        return (
            f"SIGNED {outcome.intent_id} solana_message v{outcome.version}{domain} sha256 {outcome.message_sha256} "
            f"by {outcome.from_} chain {outcome.chain} signature {outcome.signature} tee={outcome.tee}"
        )
    if isinstance(outcome, SignedSolanaTransaction):
        at = f" slot {outcome.slot}" if outcome.slot is not None else ""
        error = f" ({outcome.error})" if outcome.error else ""
        spend = ", ".join(f"{n} {asset}" for asset, n in outcome.spend.items())
        return (
            f"SIGNED {outcome.intent_id} {outcome.status}{at}{error} signature {outcome.signature} by {outcome.from_} "
            f"chain {outcome.chain} spends {spend or 'nothing'} tee={outcome.tee}"
        )
    if isinstance(outcome, SignedBitcoinTransaction):
        block = f" block {outcome.block_hash}" if outcome.block_hash is not None else ""
        final = " final" if outcome.final and outcome.status == "mined" else ""
        error = f" ({outcome.error})" if outcome.error else ""
        spend = ", ".join(f"{n} satoshis" for n in outcome.spend.values())
        return (
            f"SIGNED {outcome.intent_id} {outcome.status}{block}{final}{error} txid {outcome.txid} chain "
            f"{outcome.chain} spends {spend or 'nothing'} (fee {outcome.fee_sats}) tee={outcome.tee}"
        )
    extra = f" block {outcome.block_number}" if outcome.block_number is not None else ""
    error = f" ({outcome.error})" if outcome.error else ""
    return (
        f"SIGNED {outcome.intent_id} {outcome.status}{extra}{error} tx {outcome.tx_hash} from {outcome.from_} "
        f"nonce {outcome.nonce} chain {outcome.chain}({outcome.chain_id}) tee={outcome.tee}"
    )


def _tailed_record(topic: str, value: bytes) -> Outcome | DeadLetter | None:
    """The record as its model, or None when it is not one: anyone can write to these topics,
    and what they write must be shown as such, not stop the tail."""
    if topic != topics.DLQ:
        return read_outcome(topic, value)
    try:
        return DeadLetter.from_bytes(value)
    except ValidationError:
        return None


def _unreadable(value: bytes) -> object:
    """What ``--json`` shows of a record that is no outcome: its JSON, or (not JSON) its size,
    digest and first bytes, named as a dead letter names them."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return {
            "payload_b64": base64.b64encode(value[:256]).decode(),
            "payload_sha256": hashlib.sha256(value).hexdigest(),
            "payload_bytes": len(value),
        }


def cmd_tail(args: argparse.Namespace) -> int:
    """Every outcome as it arrives. Each is checked like the SDK checks it (signed by a pinned key
    of the service allowed to say it); one that is not is shown as FORGED, never as an outcome.
    tail did not submit the intents, so it cannot check digests: a client does that."""
    settings = load()
    keys = PinnedServiceKeys(settings)
    wanted = OUTCOME_TOPICS + ((topics.DLQ,) if args.dlq else ())

    async def run() -> None:
        start = None if args.from_beginning else await end_offsets(settings, wanted)
        async for topic, value in follow(settings, wanted, start):
            if not topic:
                continue
            record = _tailed_record(topic, value)
            if record is None:
                forged: str | None = "not a dead letter" if topic == topics.DLQ else "not an outcome record"
            else:
                problem = outcome_forgery(record, keys)  # dead letters are signed too
                forged = None if problem is None else str(problem)
            if args.json:
                shown = _unreadable(value) if record is None else record.model_dump(mode="json", by_alias=True)
                print_json(
                    {"topic": topic, "authentic": forged is None, "forged": forged, "record": shown}, compact=True
                )
            elif forged is not None:
                intent_id = getattr(record, "intent_id", None) or "?"
                print(f"FORGED {intent_id} on {topic}: {forged}")
            elif isinstance(record, DeadLetter):
                # One line a record: a reason can hold a validator's multi-line report.
                reason = "; ".join(line.strip() for line in record.reason.splitlines() if line.strip())
                print(f"DLQ {record.source_topic}/{record.partition}/{record.offset}: {reason}")
            elif record is not None:  # else it is forged, said above
                print(_describe_outcome(record))
            sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    """The arguments of ``warden tail``, or of ``submit`` and ``sign``, which build an intent the same way."""
    add_json_flag(p)
    if command == "tail":
        _add_tail_arguments(p)
        return
    p.set_defaults(handler=cmd_submit)
    if command == "sign":
        _add_sign_arguments(p)
    _add_destination_arguments(command, p)
    _add_transaction_type_arguments(p)
    _add_delivery_arguments(p)
    _add_custody_arguments(p)


def _add_tail_arguments(p: argparse.ArgumentParser) -> None:
    """``warden tail``: where to start, and whether dead letters show."""
    p.set_defaults(handler=cmd_tail)
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--dlq", action="store_true", help="also show dead letters")


def _add_sign_arguments(p: argparse.ArgumentParser) -> None:
    """``warden sign``: the kind of signature asked for and what is signed."""
    p.add_argument(
        "kind",
        choices=("message", "typed-data", "tx", "solana-message"),
        help="message: EIP-191 personal_sign; typed-data: EIP-712; tx: a transaction (as submit); "
        "solana-message: a Solana off-chain message (--chain solana-local ...)",
    )
    p.add_argument("--text", help="message, solana-message: the text, signed as its UTF-8 bytes")
    p.add_argument("--hex", help="message: the bytes, 0x-hex")
    p.add_argument(
        "--file",
        help="typed-data: the eth_signTypedData_v4 JSON document; solana-message: the message's bytes (or base64)",
    )
    p.add_argument(
        "--signatory",
        action="append",
        help="solana-message: a key that signs the message (repeat): the agent's Solana address among them",
    )
    p.add_argument("--application-domain", help="solana-message: the application (base58, 32 bytes); version 0")
    p.add_argument("--message-version", type=int, choices=(0, 1), default=0, help="solana-message: the header version")


def _add_destination_arguments(command: str, p: argparse.ArgumentParser) -> None:
    """Who asks and what moves where: the agent, submit's --raw bytes, the chain, recipient, value,
    a Solana transaction and calldata."""
    p.add_argument("--agent", required=True)
    if command == "submit":
        p.add_argument(
            "--raw",
            metavar="FILE",
            help=(
                "publish this file's bytes exactly as they are (an intent's JSON written and signed elsewhere; - for "
                "stdin), keyed by --agent, with no validation here, and wait for the answer like any other; a record "
                "the worker cannot read is rejected INVALID_INTENT, bound to the SHA-256 of these bytes. The options "
                "that build an intent do not apply"
            ),
        )
    # With --raw, submit takes none of these; without it, cmd_submit asks for them.
    p.add_argument("--chain", required=command != "submit", help="the intent's chain (submit: required, unless --raw)")
    p.add_argument("--to")
    p.add_argument("--value", help='decimal string in the native unit, e.g. "0.05"')
    if command == "submit":
        p.add_argument(
            "--solana-tx",
            metavar="FILE",
            help="a Solana network (--chain solana-local ...): the transaction's wire bytes, raw or base64, with the "
            "agent's signature slot empty (- for stdin)",
        )
        p.add_argument(
            "--bitcoin-psbt",
            metavar="FILE",
            help="a Bitcoin network (--chain bitcoin-regtest ...): a PSBT (BIP-174) spending the agent's own outputs, "
            "raw or base64 (- for stdin)",
        )
    p.add_argument("--data")


def _add_transaction_type_arguments(p: argparse.ArgumentParser) -> None:
    """The EVM transaction's type and what its type needs: blobs, a delegation, gas and fees."""
    p.add_argument("--tx-type", type=int, choices=(0, 1, 2, 3, 4))
    p.add_argument("--max-fee-per-blob-gas", help="type 3: wei per unit of blob gas")
    p.add_argument(
        "--blob-file",
        action="append",
        help="type 3: a file holding one 131072-byte blob (repeat for more); its versioned hash is computed here",
    )
    p.add_argument("--delegate", help="type 4 (EIP-7702): delegate the agent's account to this contract")
    p.add_argument(
        "--authorization-chain-id",
        type=int,
        default=None,
        help="type 4: the authorization's chain id (default: the intent's chain; 0 = every chain)",
    )
    p.add_argument("--gas-limit", type=int)
    p.add_argument("--gas-price", help="types 0/1: wei per gas (default: the node's suggestion)")
    p.add_argument("--max-fee-per-gas", help="type 2: wei per gas (default: 2 x base fee + tip, under the ceiling)")
    p.add_argument("--max-priority-fee-per-gas", help="type 2: tip in wei per gas (default: the node's suggestion)")


def _add_delivery_arguments(p: argparse.ArgumentParser) -> None:
    """How the intent travels: its expiry, nonce, key path, idempotency key, simulation and
    broadcast, and how long to wait for the answer."""
    p.add_argument(
        "--expires-in",
        type=float,
        help="seconds until the intent expires (it can only shorten the deployment's window, 10 minutes unless set)",
    )
    p.add_argument("--nonce", type=int, help="only to replace a transaction the signer signed at this nonce")
    p.add_argument("--key-path")
    p.add_argument("--idempotency-key")
    p.add_argument("--simulate", action="store_true", default=None)
    p.add_argument("--broadcast", action="store_true", default=None)
    p.add_argument("--no-wait", dest="wait", action="store_false")
    p.add_argument("--timeout", type=float, default=15.0)


def _add_custody_arguments(p: argparse.ArgumentParser) -> None:
    """Key material a custody vault needs to sign: the client share and the customer-managed key."""
    p.add_argument(
        "--client-share-file",
        help="client-custody vaults: file holding the client share (- for stdin); "
        "it is sealed to the signer, never sent in the clear",
    )
    p.add_argument(
        "--cmek-file",
        help="a signing-key vault with a customer-managed key: file holding it (32 raw "
        "bytes or base64); sealed to the signer like the client share",
    )
