"""Reading and answering an HTTP 402 challenge (x402): the payment requirements a server asks for,
the one Warden can pay, the EIP-3009 ``TransferWithAuthorization`` that pays it, and the header
that carries the signed authorization back. Pure: no I/O, no clock (``now`` is passed in); the
flow that fetches, has the authorization signed through the pipeline and retries is
`sdk.x402_pay`.

Both versions of the protocol are read as the official x402 SDK writes them:

* v2: the challenge is the base64 JSON of the ``PAYMENT-REQUIRED`` response header
  (``x402Version`` 2, ``accepts`` with ``amount`` and a CAIP-2 ``network`` such as
  ``eip155:8453``); the payment goes in ``PAYMENT-SIGNATURE``, the settlement comes back in
  ``PAYMENT-RESPONSE``;
* v1: the challenge is the JSON body (``x402Version`` 1, ``accepts`` with ``maxAmountRequired``
  and a network name such as ``base``); the payment goes in ``X-PAYMENT``, the settlement comes
  back in ``X-PAYMENT-RESPONSE``.

Warden pays the ``exact`` scheme: on an EVM network of its chain registry with an EIP-3009
authorization only (not Permit2), in a token the agent's policy lists in ``asset_limits``; on a
Solana network (``solana:<genesis>``, as the SDK's SVM scheme names them) with an SPL
``TransferChecked`` whose fee the server's facilitator pays (``extra.feePayer``), in a mint the
policy's ``solana.tokens`` lists. Whom it pays and how much is not decided here: the pipeline
judges the authorization or the transaction like any transfer.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import base58
import orjson
from eth_utils import is_hex_address, to_checksum_address

from evm.constants import EIP712_DOMAIN_FIELDS
from rules.typed_movements import VALUE_SHAPES
from runtime.registry import REGISTRY, ChainRegistry
from schemas.chains import NAMESPACE, Chain, Family, UnknownChain
from schemas.errors import WardenError
from schemas.fields import format_token_amount
from schemas.policy import AgentPolicy, AssetLimit

PAYMENT_REQUIRED_HEADER = "PAYMENT-REQUIRED"
PAYMENT_SIGNATURE_HEADER = "PAYMENT-SIGNATURE"
PAYMENT_RESPONSE_HEADER = "PAYMENT-RESPONSE"
X_PAYMENT_HEADER = "X-PAYMENT"
X_PAYMENT_RESPONSE_HEADER = "X-PAYMENT-RESPONSE"

# The longest an authorization may stay valid: a server asking for more gets a clear refusal
# rather than a payment that anyone holding it could settle for a day.
MAX_TIMEOUT_S = 3600
# The longest memo a Solana payment carries (the SDK's limit).
MAX_MEMO_BYTES = 256
# validAfter is set this far before now, so a server whose clock runs behind still accepts it
# (as the protocol's reference TypeScript client does).
CLOCK_SKEW_S = 600

# The type the judge reads an EIP-3009 transfer by (`rules.typed_movements`), and USDC's domain.
_AUTHORIZATION_FIELDS = [
    {"name": name, "type": kind}
    for name, kind in next(f.shape for f in VALUE_SHAPES if f.primary == "TransferWithAuthorization")
]
_DOMAIN_FIELDS = [
    {"name": name, "type": EIP712_DOMAIN_FIELDS[name]} for name in ("name", "version", "chainId", "verifyingContract")
]


class X402Error(WardenError, ValueError):
    """A 402 answer Warden cannot read or pay: the message names the field, what was wrong and
    what is allowed."""


@dataclass(frozen=True)
class Challenge:
    """A server's 402: its protocol version and what it accepts, as sent."""

    version: int
    accepts: tuple[Mapping[str, Any], ...]
    resource: Any = None  # v2: the resource it describes, echoed in the payment
    extensions: Any = None  # v2: declared extensions, echoed in the payment
    error: str | None = None


@dataclass(frozen=True)
class Requirement:
    """One payable entry of ``accepts``, read: on which Warden chain, in which token, to whom,
    how much (base units), for how long, and the token's EIP-712 domain."""

    index: int
    version: int
    network: str
    chain: str
    chain_id: int
    asset: str
    pay_to: str
    amount: int
    max_timeout_s: int
    token_name: str
    token_version: str
    raw: Mapping[str, Any]

    def amount_text(self, limit: AssetLimit) -> str:
        return f"{format_token_amount(self.amount, limit.decimals)} {limit.label}"


def _shown(value: Any) -> str:
    """A server's value as an error quotes it: its repr, cut short, so that what a server writes
    cannot fill an error message (which a model reads) with text of its own."""
    text = repr(value)
    return text if len(text) <= 48 else text[:45] + "..."


def _json(text: bytes | str, where: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise X402Error(f"{where} is not JSON ({exc}); an x402 server sends a JSON payment-required object") from None


def decode_header(value: str, name: str) -> Any:
    """The JSON a base64 x402 header carries."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise X402Error(f"the {name} header is not base64: the x402 headers carry base64 of a JSON object") from None
    return _json(raw, f"the {name} header")


def encode_header(doc: Mapping[str, Any]) -> str:
    return base64.b64encode(orjson.dumps(doc)).decode()


def read_challenge(headers: Mapping[str, str], body: bytes) -> Challenge:
    """The payment requirements of a 402 response: the ``PAYMENT-REQUIRED`` header (v2) or else
    the JSON body (v1, or v2 from a server that puts it there). ``headers`` is case-insensitive
    (httpx's)."""
    header = headers.get(PAYMENT_REQUIRED_HEADER)
    if header:
        doc, where = decode_header(header, PAYMENT_REQUIRED_HEADER), f"the {PAYMENT_REQUIRED_HEADER} header"
    elif body.strip():
        doc, where = _json(body, "the 402 body"), "the 402 body"
    else:
        raise X402Error(
            f"the 402 response has neither a {PAYMENT_REQUIRED_HEADER} header (x402 v2) nor a JSON body "
            "(x402 v1): it asks for a payment without saying which"
        )
    if not isinstance(doc, dict):
        raise X402Error(f"{where} is a JSON {type(doc).__name__}; x402 sends an object with x402Version and accepts")
    version = doc.get("x402Version")
    if version not in (1, 2):
        raise X402Error(f"{where}: x402Version is {_shown(version)}; allowed: 1 or 2")
    accepts = doc.get("accepts")
    if not isinstance(accepts, list) or not accepts or not all(isinstance(a, dict) for a in accepts):
        raise X402Error(f"{where}: accepts must be a non-empty list of payment requirements, got {_shown(accepts)}")
    error = doc.get("error")
    return Challenge(
        version=version,
        accepts=tuple(accepts),
        resource=doc.get("resource"),
        extensions=doc.get("extensions"),
        error=error if isinstance(error, str) else None,
    )


def _network_chain(network: Any, where: str, registry: ChainRegistry) -> Chain:
    """The network an x402 ``network`` names: a CAIP-2 id (``eip155:8453``, ``solana:<genesis>``,
    as x402 v2 writes them) or a network's name."""
    if not isinstance(network, str) or not 0 < len(network) <= 64:
        raise X402Error(
            f"{where}.network is {_shown(network)}; allowed: a network's CAIP-2 id (eip155:<chain id>, "
            "solana:<genesis>) or its name"
        )
    if ":" in network:
        chain = registry.by_caip2(network)
        if chain is None:
            namespace = network.partition(":")[0]
            family = [c for c in registry.all().values() if c.caip2.startswith(namespace + ":")]
            if not family:
                raise X402Error(
                    f"{where}.network {_shown(network)} is of no chain family Warden pays on; allowed: "
                    f"{', '.join(f'{n}:<reference>' for n in NAMESPACE.values())}"
                )
            raise X402Error(
                f"{where}.network {_shown(network)} is no chain of Warden's registry; allowed: "
                f"{', '.join(f'{c.caip2} ({c.name})' for c in family)} "
                "(admins add one with `warden chains add`, signed by their quorum)"
            )
        return chain
    try:
        return registry.get(network)
    except UnknownChain as exc:
        raise X402Error(f"{where}.network: {exc}") from None


def _address(value: Any, where: str) -> str:
    if not isinstance(value, str) or not is_hex_address(value):
        raise X402Error(f"{where} is {_shown(value)}; allowed: a 0x-prefixed 20-byte EVM address")
    return to_checksum_address(value)


def _base_units(value: Any, where: str) -> int:
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()) or len(value) > 78:
        raise X402Error(
            f"{where} is {_shown(value)}; allowed: the amount in the token's base units as a decimal string"
        )
    amount = int(value)
    if not 0 < amount < 2**256:
        raise X402Error(f"{where} is {value}; allowed: from 1 to 2**256-1 base units")
    return amount


@dataclass(frozen=True)
class SolanaRequirement:
    """One payable entry of ``accepts`` on a Solana network: ``amount`` base units of mint
    ``asset`` to ``pay_to``'s token account, in a transaction ``fee_payer`` (the server's
    facilitator) pays the fee of."""

    index: int
    version: int
    network: str
    chain: str
    asset: str
    pay_to: str
    amount: int
    max_timeout_s: int
    fee_payer: str
    recent_blockhash: str | None
    memo: str | None
    raw: Mapping[str, Any]


def _solana_address(value: Any, where: str) -> str:
    try:
        raw = base58.b58decode(value) if isinstance(value, str) and 32 <= len(value) <= 44 else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise X402Error(f"{where} is {_shown(value)}; allowed: a Solana address (base58 of 32 bytes)")
    return str(value)


def read_requirement(
    challenge: Challenge, index: int, registry: ChainRegistry = REGISTRY
) -> Requirement | SolanaRequirement:
    """Entry ``index`` of ``accepts`` read as an ``exact`` payment: EIP-3009 on an EVM chain, or an
    SPL transfer on a Solana network; X402Error saying which field keeps Warden from paying it."""
    raw = challenge.accepts[index]
    where = f"accepts[{index}]"
    if raw.get("scheme") != "exact":
        raise X402Error(f"{where}.scheme is {_shown(raw.get('scheme'))}; allowed: 'exact'")
    chain = _network_chain(raw.get("network"), where, registry)
    if chain.family is Family.SOLANA:
        return _read_solana(challenge, index, chain)
    if chain.family is not Family.EVM:
        raise X402Error(f"{where}.network {_shown(raw['network'])} is not an EVM chain; Warden pays on EVM chains only")
    extra = raw.get("extra") or {}
    if not isinstance(extra, dict):
        raise X402Error(
            f"{where}.extra is {_shown(extra)}; allowed: an object with the token's EIP-712 name and version"
        )
    method = extra.get("assetTransferMethod", "eip3009")
    if method != "eip3009":
        raise X402Error(
            f"{where}.extra.assetTransferMethod is {_shown(method)}; allowed: 'eip3009' (Warden signs no Permit2)"
        )
    for name in ("name", "version"):
        if not isinstance(extra.get(name), str) or not extra[name]:
            raise X402Error(
                f"{where}.extra.{name} is {_shown(extra.get(name))}; allowed: the token's EIP-712 domain {name}, a string"
            )
    amount_field = "amount" if challenge.version == 2 else "maxAmountRequired"
    timeout = raw.get("maxTimeoutSeconds")
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= MAX_TIMEOUT_S:
        raise X402Error(
            f"{where}.maxTimeoutSeconds is {_shown(timeout)}; allowed: whole seconds from 1 to {MAX_TIMEOUT_S}"
        )
    return Requirement(
        index=index,
        version=challenge.version,
        network=raw["network"],
        chain=chain.name,
        chain_id=chain.chain_id,
        asset=_address(raw.get("asset"), f"{where}.asset"),
        pay_to=_address(raw.get("payTo"), f"{where}.payTo"),
        amount=_base_units(raw.get(amount_field), f"{where}.{amount_field}"),
        max_timeout_s=timeout,
        token_name=extra["name"],
        token_version=extra["version"],
        raw=raw,
    )


def _read_solana(challenge: Challenge, index: int, chain: Chain) -> SolanaRequirement:
    raw = challenge.accepts[index]
    where = f"accepts[{index}]"
    extra = raw.get("extra") or {}
    if not isinstance(extra, dict):
        raise X402Error(f"{where}.extra is {_shown(extra)}; allowed: an object with the facilitator's feePayer")
    amount_field = "amount" if challenge.version == 2 else "maxAmountRequired"
    amount = _base_units(raw.get(amount_field), f"{where}.{amount_field}")
    if amount >= 2**64:
        raise X402Error(f"{where}.{amount_field} is {amount}; allowed: at most 2**64-1 (an SPL amount)")
    timeout = raw.get("maxTimeoutSeconds")
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= MAX_TIMEOUT_S:
        raise X402Error(
            f"{where}.maxTimeoutSeconds is {_shown(timeout)}; allowed: whole seconds from 1 to {MAX_TIMEOUT_S}"
        )
    blockhash, memo = extra.get("recentBlockhash"), extra.get("memo")
    return SolanaRequirement(
        index=index,
        version=challenge.version,
        network=raw["network"],
        chain=chain.name,
        asset=_solana_address(raw.get("asset"), f"{where}.asset"),
        pay_to=_solana_address(raw.get("payTo"), f"{where}.payTo"),
        amount=amount,
        max_timeout_s=timeout,
        fee_payer=_solana_address(extra.get("feePayer"), f"{where}.extra.feePayer"),
        recent_blockhash=None if blockhash is None else _solana_address(blockhash, f"{where}.extra.recentBlockhash"),
        memo=memo if isinstance(memo, str) and len(memo.encode()) <= MAX_MEMO_BYTES else None,
        raw=raw,
    )


def asset_limit(policy: AgentPolicy, requirement: Requirement) -> AssetLimit | None:
    """The policy's rule for the token a requirement asks for, on its chain."""
    return next(
        (
            a
            for a in policy.asset_limits
            if a.chain == requirement.chain and a.token == requirement.asset and a.standard == "erc20"
        ),
        None,
    )


def choose(
    challenge: Challenge, policy: AgentPolicy, registry: ChainRegistry = REGISTRY
) -> Requirement | SolanaRequirement:
    """The first requirement Warden can pay for this agent: readable (`read_requirement`), on a
    chain the policy allows, in a token of its ``asset_limits``. Its payee and amount are left to
    the pipeline to judge. X402Error listing why each entry cannot be paid when none can."""
    reasons = []
    for index in range(len(challenge.accepts)):
        try:
            found = read_requirement(challenge, index, registry)
        except X402Error as exc:
            reasons.append(str(exc))
            continue
        where = f"accepts[{index}]"
        if isinstance(found, SolanaRequirement):
            if found.chain not in policy.tx_allowed_chains:
                reasons.append(
                    f"{where}.network {_shown(found.network)} is chain {found.chain}, which the policy does not "
                    f"allow; allowed: {', '.join(policy.tx_allowed_chains) or 'none'}"
                )
            elif policy.solana is None or policy.solana.token(found.asset) is None:
                listed = [t.mint for t in policy.solana.tokens] if policy.solana else []
                reasons.append(
                    f"{where}.asset {found.asset} on {found.chain} is not a mint of the policy's solana.tokens; "
                    f"allowed: {', '.join(listed) or 'none'}"
                )
            else:
                return found
            continue
        if policy.tx_allowed_chains and found.chain not in policy.tx_allowed_chains:
            reasons.append(
                f"{where}.network {_shown(found.network)} is chain {found.chain}, which the policy does not allow; "
                f"allowed: {', '.join(policy.tx_allowed_chains)}"
            )
        elif asset_limit(policy, found) is None:
            listed = [f"{a.label} {a.token} on {a.chain}" for a in policy.asset_limits if a.standard == "erc20"]
            reasons.append(
                f"{where}.asset {found.asset} on {found.chain} is not a token of the policy's asset_limits; "
                f"allowed: {', '.join(listed) or 'none (the policy lists no ERC-20 token)'}"
            )
        else:
            return found
    raise X402Error("Warden can pay none of the server's payment requirements:\n  " + "\n  ".join(reasons))


def authorization(requirement: Requirement, sender: str, now: datetime, nonce: bytes) -> dict[str, Any]:
    """The EIP-712 ``TransferWithAuthorization`` paying ``requirement`` from ``sender``: valid from
    a little before ``now`` until ``maxTimeoutSeconds`` after it, under a random 32-byte ``nonce``
    (EIP-3009 nonces are one-use and unordered). Numbers are decimal strings, exact in any reader."""
    if len(nonce) != 32:
        raise ValueError(f"an EIP-3009 nonce is 32 bytes, got {len(nonce)}")
    seconds = int(now.timestamp())
    return {
        "types": {"EIP712Domain": _DOMAIN_FIELDS, "TransferWithAuthorization": _AUTHORIZATION_FIELDS},
        "primaryType": "TransferWithAuthorization",
        "domain": {
            "name": requirement.token_name,
            "version": requirement.token_version,
            "chainId": requirement.chain_id,
            "verifyingContract": requirement.asset,
        },
        "message": {
            "from": to_checksum_address(sender),
            "to": requirement.pay_to,
            "value": str(requirement.amount),
            "validAfter": str(max(0, seconds - CLOCK_SKEW_S)),
            "validBefore": str(seconds + requirement.max_timeout_s),
            "nonce": "0x" + nonce.hex(),
        },
    }


def payment_header(
    challenge: Challenge, requirement: Requirement, document: dict[str, Any], signature: str
) -> tuple[str, str]:
    """The request header that pays an EIP-3009 authorization (`paying`)."""
    message = document["message"]
    fields = ("from", "to", "value", "validAfter", "validBefore", "nonce")
    inner = {"authorization": {name: message[name] for name in fields}, "signature": signature}
    return paying(challenge, requirement, inner)


def paying(
    challenge: Challenge, requirement: Requirement | SolanaRequirement, inner: dict[str, Any]
) -> tuple[str, str]:
    """The request header that pays: its name for the challenge's version and its base64 value,
    the payment payload (``inner``: an authorization and its signature; on Solana, the signed
    transaction) as the official SDK's client builds it."""
    doc: dict[str, Any]
    if challenge.version == 1:
        doc = {"x402Version": 1, "scheme": "exact", "network": requirement.network, "payload": inner}
        return X_PAYMENT_HEADER, encode_header(doc)
    doc = {"x402Version": 2, "payload": inner, "accepted": dict(requirement.raw)}
    if challenge.resource is not None:
        doc["resource"] = challenge.resource
    if challenge.extensions:
        doc["extensions"] = challenge.extensions
    return PAYMENT_SIGNATURE_HEADER, encode_header(doc)


def settlement(headers: Mapping[str, str]) -> dict[str, Any] | None:
    """The settlement the server reports (``PAYMENT-RESPONSE``, or v1's ``X-PAYMENT-RESPONSE``),
    decoded; None when it sent none."""
    for name in (PAYMENT_RESPONSE_HEADER, X_PAYMENT_RESPONSE_HEADER):
        value = headers.get(name)
        if value:
            doc = decode_header(value, name)
            if not isinstance(doc, dict):
                raise X402Error(f"the {name} header is a JSON {type(doc).__name__}; x402 sends an object")
            return doc
    return None
