"""What `warden submit` and `warden sign` make of their options: the fields of the intent they
sign. An EVM transaction's fields as given; a plain transfer ``--to --value`` on another family's
network as that family writes one (`sdk.transfers`); a Solana transaction or a PSBT from a file;
a message, typed data or a Solana off-chain message for `warden sign`."""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
from pathlib import Path
from typing import Any

from runtime.config import Settings
from runtime.registry import REGISTRY
from schemas.chains import Family, UnknownChain
from schemas.intent import AuthorizationRequest
from schemas.typed_data import TypedData
from sdk.client import blob_fields, policy_in_force
from sdk.transfers import transfer_fields
from svm import messages as solana_messages


async def intent_fields(
    settings: Settings, args: argparse.Namespace, taken: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The fields of the intent ``args`` ask for (ValueError, or pydantic's ValidationError,
    naming what is wrong); ``taken``: Bitcoin outputs a plain payment leaves out
    (`sdk.transfers.claimed_inputs`)."""
    return await _plain_transfer(settings, args, taken) if is_plain_transfer(args) else _kind_fields(args)


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


def is_plain_transfer(args: argparse.Namespace) -> bool:
    """``--to`` on a network whose family is not EVM's: its plain transfer (an EVM network's
    intent carries ``to`` and ``value`` as they are)."""
    written = getattr(args, "solana_tx", None) is not None or getattr(args, "bitcoin_psbt", None) is not None
    if getattr(args, "kind", "tx") != "tx" or args.to is None or written:
        return False
    try:
        return REGISTRY.get(args.chain).family is not Family.EVM
    except UnknownChain:
        return False  # the intent's own check names it


async def _plain_transfer(settings: Settings, args: argparse.Namespace, taken: frozenset[str]) -> dict[str, Any]:
    """``--to ADDRESS --value V`` on a Solana or Bitcoin network: a transfer of V in its currency
    from the agent's address its policy in force names, with ``--broadcast`` and ``--simulate``;
    ``taken``: Bitcoin outputs to leave out."""
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
INTENT_OPTIONS = (
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


def read_cmek_text(path: str) -> str:
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
