"""``warden submit``, ``warden sign`` and ``warden tail``: intents in, outcomes out.

``warden sign tx`` is ``warden submit``; ``warden sign message`` (EIP-191) and ``warden sign
typed-data`` (EIP-712, from a JSON file) ask for a signature over a message instead. ``warden
submit --raw FILE`` publishes a file's bytes as they are (a producer's own JSON) and shows the
answer the same way."""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from infra.cli.output import add_json_flag, fail, note, print_json
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.kafka import end_offsets, follow
from runtime.registry import REGISTRY
from runtime.trust import PinnedServiceKeys
from schemas import topics
from schemas.auth import outcome_forgery
from schemas.chains import Family, UnknownChain
from schemas.codes import Code
from schemas.errors import explain
from schemas.intent import AuthorizationRequest, TransactionIntent
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
from schemas.typed_data import TypedData
from sdk.client import (
    OUTCOME_TOPICS,
    Client,
    Outcome,
    RawSubmission,
    blob_fields,
    load_or_create_agent_key,
    new_intent,
    policy_in_force,
    read_outcome,
    wait_outcomes,
)
from sdk.transfers import claimed_inputs, transfer_fields
from svm import messages as solana_messages


def _kind_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The intent's fields for what `warden sign` (or `warden submit`) was asked to sign."""
    kind = getattr(args, "kind", "tx")
    if kind == "message":
        if (args.text is None) == (args.hex is None):
            raise ValueError("give the message as --text (signed as UTF-8) or --hex (bytes), one of them")
        raw = args.text.encode() if args.text is not None else bytes.fromhex(args.hex.removeprefix("0x"))
        return {"intent_type": "personal_sign", "message": "0x" + raw.hex()}
    if kind == "typed-data":
        if args.file is None:
            raise ValueError("give the EIP-712 document with --file (the eth_signTypedData_v4 JSON)")
        with open(args.file, "rb") as fh:
            return {"intent_type": "typed_data", "typed_data": TypedData.model_validate_json(fh.read())}
    if kind == "solana-message":
        return _solana_message_fields(args)
    if getattr(args, "solana_tx", None) is not None:
        return _solana_fields(args)
    if getattr(args, "bitcoin_psbt", None) is not None:
        return _bitcoin_fields(args)
    if args.to is None or args.value is None:
        raise ValueError(
            "a transaction needs --to and --value (a Solana transaction: --solana-tx FILE; a Bitcoin PSBT: "
            "--bitcoin-psbt FILE)"
        )
    fields = {
        k: v
        for k, v in dict(
            to=args.to,
            value=args.value,
            tx_type=args.tx_type,
            data=args.data,
            gas_limit=args.gas_limit,
            gas_price=args.gas_price,
            max_fee_per_gas=args.max_fee_per_gas,
            max_priority_fee_per_gas=args.max_priority_fee_per_gas,
            max_fee_per_blob_gas=args.max_fee_per_blob_gas,
            simulate_first=args.simulate,
            broadcast=args.broadcast,
            nonce=args.nonce,
            signing_key_path=args.key_path,
        ).items()
        if v is not None
    }
    if args.blob_file:
        blobs = []
        for path in args.blob_file:
            with open(path, "rb") as fh:
                blobs.append(fh.read())
        fields.update(blob_fields(blobs))
    if args.delegate is not None:
        fields["tx_type"] = 4
        chain_id = args.authorization_chain_id
        if chain_id is None:
            chain_id = REGISTRY.get(args.chain).chain_id
        fields["authorization_list"] = (AuthorizationRequest(chain_id=chain_id, address=args.delegate),)
    return fields


def _is_plain_transfer(args: argparse.Namespace) -> bool:
    """``--to`` on a network whose family is not EVM's: its plain transfer (an EVM network's
    intent carries ``to`` and ``value`` as they are)."""
    written = getattr(args, "solana_tx", None) is not None or getattr(args, "bitcoin_psbt", None) is not None
    if getattr(args, "kind", "tx") != "tx" or args.to is None or written:
        return False
    try:
        return REGISTRY.get(args.chain).family is not Family.EVM
    except UnknownChain:
        return False  # the intent's own check names it


async def _plain_transfer(
    settings: Settings, args: argparse.Namespace, taken: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """``--to ADDRESS --value V`` on a Solana or Bitcoin network: a transfer of V in its currency
    from the agent's address its policy in force names, with ``--broadcast`` and ``--simulate``;
    ``taken``: Bitcoin outputs to leave out (`sdk.transfers.claimed_inputs`)."""
    evm = [f"--{n.replace('_', '-')}" for n in _EVM_ONLY if n not in ("to", "value") and getattr(args, n, None)]
    if evm:
        raise ValueError(f"{', '.join(evm)} describe an EVM transaction; on {args.chain} --to and --value are all")
    if args.value is None:
        raise ValueError("a transfer needs --to and --value (a decimal in the network's currency, e.g. 0.25)")
    policy = await policy_in_force(settings, args.agent)
    fields = await transfer_fields(settings, args.chain, policy, args.to, args.value, taken)
    if args.broadcast:
        fields["broadcast"] = True
    if args.simulate:
        fields["simulate_first"] = True
    return fields


def _solana_fields(args: argparse.Namespace) -> dict[str, Any]:
    """``--solana-tx FILE``: a Solana transaction's wire bytes, in the file as they are or as
    base64 text (``-``: standard input)."""
    evm = [f"--{n.replace('_', '-')}" for n in _EVM_ONLY if getattr(args, n, None) is not None]
    if evm:
        raise ValueError(f"{', '.join(evm)} describe an EVM transaction; a Solana transaction says everything itself")
    raw = _file_bytes(args.solana_tx)
    fields: dict[str, Any] = {"intent_type": "solana_transaction", "solana_transaction": base64.b64encode(raw).decode()}
    if args.broadcast:
        fields["broadcast"] = True
    if args.simulate:
        fields["simulate_first"] = True
    return fields


def _bitcoin_fields(args: argparse.Namespace) -> dict[str, Any]:
    """``--bitcoin-psbt FILE``: a PSBT (BIP-174), in the file as its bytes or as base64 text
    (``-``: standard input)."""
    evm = [f"--{n.replace('_', '-')}" for n in _EVM_ONLY if getattr(args, n, None) is not None]
    if args.simulate:
        evm.append("--simulate")
    if evm:
        raise ValueError(f"{', '.join(evm)} describe an EVM transaction; a PSBT says everything itself")
    raw = _file_bytes(args.bitcoin_psbt)
    fields: dict[str, Any] = {"intent_type": "bitcoin_psbt", "bitcoin_psbt": base64.b64encode(raw).decode()}
    if args.broadcast:
        fields["broadcast"] = True
    return fields


def _file_bytes(path: str) -> bytes:
    """A file's bytes (``-``: standard input), decoded when the file holds base64 text."""
    raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    try:
        text = raw.strip().decode("ascii")
        return base64.b64decode(text, validate=True) if text else raw
    except (UnicodeDecodeError, binascii.Error):
        return raw  # not base64 text: the bytes themselves


def _solana_message_fields(args: argparse.Namespace) -> dict[str, Any]:
    """``warden sign solana-message``: ``--text`` written as an off-chain message naming each
    ``--signatory`` (the agent's Solana address among them) for ``--application-domain``, or
    ``--file``: a message's bytes built elsewhere, as they are or as base64 text."""
    if (args.text is None) == (args.file is None):
        raise ValueError("give the message as --text (with --signatory) or --file (its bytes), one of them")
    if args.file is not None:
        raw = _file_bytes(args.file)
    else:
        if not args.signatory:
            raise ValueError("--text needs --signatory ADDRESS: the agent's Solana address (and any co-signer's)")
        try:
            raw = solana_messages.encode(args.text, args.signatory, args.message_version, args.application_domain)
        except ValueError as exc:  # MessageError, or an address that is not base58 of 32 bytes
            raise ValueError(f"the message cannot be written: {exc}") from None
    return {"intent_type": "solana_message", "solana_message": base64.b64encode(raw).decode()}


_EVM_ONLY = (
    "to",
    "value",
    "data",
    "tx_type",
    "max_fee_per_blob_gas",
    "blob_file",
    "delegate",
    "gas_limit",
    "gas_price",
    "max_fee_per_gas",
    "max_priority_fee_per_gas",
    "nonce",
)


# What builds an intent here: none of it applies to a file sent as it is (``--raw``).
_INTENT_OPTIONS = (
    "chain",
    "to",
    "value",
    "data",
    "solana_tx",
    "bitcoin_psbt",
    "tx_type",
    "max_fee_per_blob_gas",
    "blob_file",
    "delegate",
    "authorization_chain_id",
    "gas_limit",
    "gas_price",
    "max_fee_per_gas",
    "max_priority_fee_per_gas",
    "expires_in",
    "nonce",
    "key_path",
    "idempotency_key",
    "simulate",
    "broadcast",
    "client_share_file",
    "cmek_file",
)


# How many times a plain payment refused BITCOIN_INPUT_CLAIMED is written again from other coins.
_WRITTEN_AGAIN = 3


def cmd_submit(args: argparse.Namespace) -> int:
    settings = load()
    if getattr(args, "raw", None) is not None:
        return _submit_raw(args, settings)
    if args.chain is None:
        return fail(f"warden {args.command}", "--chain is required (or send a JSON file as it is: --raw FILE)", 2)
    try:
        fields = asyncio.run(_plain_transfer(settings, args)) if _is_plain_transfer(args) else _kind_fields(args)
    except ValidationError as exc:
        return fail(f"warden {args.command}", "the intent is invalid:\n  " + "\n  ".join(explain(exc)), 2)
    except (ValueError, OSError) as exc:
        return fail(f"warden {args.command}", exc, 2)
    if args.expires_in is not None:
        fields["expires_at"] = utcnow() + timedelta(seconds=args.expires_in)

    async def run(fields: dict[str, Any]) -> tuple[TransactionIntent, Outcome | None]:
        key = load_or_create_agent_key(settings.home, args.agent)
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:
            share = None
            if args.client_share_file is not None:
                # The custody helpers (and the vaults' code): only with --client-share-file or --cmek-file
                from infra.cli.custody import read_client_share_text

                share = await client.client_share(read_client_share_text(args.client_share_file))
            cmek = None if args.cmek_file is None else await client.cmek(_read_cmek_text(args.cmek_file))
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
        if not args.wait:
            return intent, None
        forged: list[tuple[str, str]] = []
        outcomes = await wait_outcomes(settings, [intent], args.timeout, start, forged=forged)
        for intent_id, why in forged:
            print(f"FORGED outcome for {intent_id} ignored: {why}", file=sys.stderr)
        return intent, outcomes.get(intent.intent_id)

    async def paid() -> tuple[TransactionIntent, Outcome | None]:
        """A plain payment refused because another open payment of the agent spends its coins
        (written at the same moment from the same coins) is written again from other coins."""
        intent, outcome = await run(fields)
        taken: frozenset[str] = frozenset()
        for _ in range(_WRITTEN_AGAIN):
            more = claimed_inputs(outcome) - taken
            if not more or not _is_plain_transfer(args) or args.idempotency_key is not None:
                break
            taken |= more
            note(
                f"{intent.intent_id} refused {Code.BITCOIN_INPUT_CLAIMED}: another open payment of the agent spends "
                f"{', '.join(sorted(more))}; written again from other coins"
            )
            again = await _plain_transfer(settings, args, taken)
            intent, outcome = await run(
                {**again, **({"expires_at": fields["expires_at"]} if "expires_at" in fields else {})}
            )
        return intent, outcome

    try:
        intent, outcome = asyncio.run(paid())
    except ValidationError as exc:
        return fail(f"warden {args.command}", "the intent is invalid:\n  " + "\n  ".join(explain(exc)), 2)
    except (SealingRefused, ValueError, OSError) as exc:
        return fail(f"warden {args.command}", exc, 2)
    return _report(args, {"intent": intent.model_dump(mode="json")}, f"submitted {intent.intent_id}", outcome)


def _submit_raw(args: argparse.Namespace, settings: Settings) -> int:
    """``warden submit --raw FILE``: the file's bytes published exactly as they are, keyed by
    ``--agent``, with no validation here; then the worker's answer, as for any intent. A record
    the worker cannot read gets an INVALID_INTENT rejection bound to the SHA-256 of these bytes."""
    command = f"warden {args.command}"
    given = [f"--{name.replace('_', '-')}" for name in _INTENT_OPTIONS if getattr(args, name) is not None]
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

    async def run() -> tuple[RawSubmission, Outcome | None]:
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:
            submission = await client.submit_raw(args.agent, raw)
        if not args.wait:
            return submission, None
        forged: list[tuple[str, str]] = []
        outcomes = await wait_outcomes(settings, [submission], args.timeout, start, forged=forged)
        for intent_id, why in forged:
            print(f"FORGED outcome for {intent_id} ignored: {why}", file=sys.stderr)
        return submission, outcomes.get(submission.intent_id)

    try:
        submission, outcome = asyncio.run(run())
    except (ValueError, OSError) as exc:
        return fail(command, exc, 2)
    sent = {**dataclasses.asdict(submission), "bytes": len(raw)}
    return _report(
        args,
        {"submission": sent},
        (
            f"submitted {submission.intent_id} as it is ({len(raw)} bytes, sha256 {submission.digest}) for agent "
            f"{submission.agent_id}"
        ),
        outcome,
    )


def _report(args: argparse.Namespace, submitted: dict[str, Any], line: str, outcome: Outcome | None) -> int:
    """What was submitted and its outcome: a JSON document (``submitted`` and the outcome) or
    lines for people. Exit code 1 for a rejection."""
    if args.json:
        print_json(
            {**submitted, "outcome": None if outcome is None else outcome.model_dump(mode="json", by_alias=True)}
        )
    else:
        print(line)
        if outcome is not None:
            print(_describe_outcome(outcome))
            if isinstance(outcome, SignedSolanaTransaction) and outcome.status == "sign_only":
                # Sign only: the caller sends these bytes itself (`warden tail` keeps one line a record).
                print(f"  signed transaction (base64): {outcome.signed_tx}")
            if isinstance(outcome, SignedBitcoinTransaction) and outcome.status == "sign_only":
                print(f"  signed transaction (hex): {outcome.signed_tx}")
        elif args.wait:
            print(f"no outcome within {args.timeout} s: is the stack up (`warden up`)?")
    return 1 if isinstance(outcome, IntentRejected) else 0


def _read_cmek_text(path: str) -> str:
    """A customer-managed key file (32 raw bytes or base64 text) as base64 text for the SDK."""
    from infra.cli.custody import UsageError, read_cmek  # custody: only with --cmek-file

    try:
        key = read_cmek(path, "--cmek-file")
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    try:
        return base64.b64encode(key).decode()
    finally:
        key[:] = bytes(len(key))


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
