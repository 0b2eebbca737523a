"""A serialized Solana transaction (legacy or v0) read as Warden judges it, and signed.

An agent hands Warden the transaction's wire bytes with its own signature slot empty (all zeros):
as `solana-web3.js`' `serialize({requireAllSignatures: false})` and solders' `VersionedTransaction`
write it, and as an x402 client receives a transfer whose fee payer is the facilitator.
`read` decodes it with solders and each instruction with `svm.instructions`; `sign` puts the
agent's Ed25519 signature over the message into the agent's slot and nothing else changes.

Every other signature is checked as Solana's runtime checks it (`verifies`): ed25519-dalek's
`verify_strict`, which refuses what a plain Ed25519 verification accepts, a non-canonical S and an R
or a key of small order. A slot the runtime would refuse makes a transaction that can never land
under that slot's id, while a copy with the slot signed again can.

Address lookup tables are refused: the accounts they load are not in the bytes, and Warden signs
only what it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from svm import programs
from svm.instructions import Instruction, InstructionError, Kind, decode

# The largest transaction the network carries (a packet's payload).
MAX_TRANSACTION_BYTES = 1232
_EMPTY_SIGNATURE = bytes(64)


class TransactionError(ValueError):
    pass


class SignatureInvalid(TransactionError):
    """A signature in another signer's slot that Solana's runtime would refuse."""


def verifies(signer: str | Pubkey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``signer``'s over ``message`` as Solana's runtime verifies it:
    solders' `Signature.verify`, the Rust SDK's own check (ed25519-dalek's `verify_strict`:
    S canonical, below the group order; neither R nor the key of small order; R as computed)."""
    key = signer if isinstance(signer, Pubkey) else Pubkey.from_string(signer)
    return len(signature) == 64 and Signature.from_bytes(signature).verify(key, message)


@dataclass(frozen=True)
class SolanaTransaction:
    """What a transaction says. ``signers``: the accounts whose signatures it needs, the fee
    payer first; ``signatures``: those present, by signer (an empty slot is absent)."""

    version: Literal["legacy", 0]
    fee_payer: str
    signers: tuple[str, ...]
    writable: frozenset[str]
    recent_blockhash: str
    account_keys: tuple[str, ...]
    instructions: tuple[Instruction, ...]
    signatures: dict[str, bytes]
    message: bytes  # the bytes every signature is over
    # The signers whose signature is present and does not verify over ``message`` (`verifies`).
    unverified: tuple[str, ...] = ()

    @property
    def compute_unit_limit(self) -> int:
        """The limit the transaction sets, else the runtime's default for its instructions."""
        for ix in self.instructions:
            if ix.kind is Kind.COMPUTE_UNIT_LIMIT:
                return min(int(ix.amount or 0), programs.MAX_COMPUTE_UNITS)
        counted = sum(1 for ix in self.instructions if ix.program != programs.COMPUTE_BUDGET)
        return min(counted * programs.DEFAULT_UNITS_PER_INSTRUCTION, programs.MAX_COMPUTE_UNITS)

    @property
    def compute_unit_price(self) -> int:
        """Micro-lamports per compute unit (the priority fee's rate); 0 when unset."""
        for ix in self.instructions:
            if ix.kind is Kind.COMPUTE_UNIT_PRICE:
                return int(ix.amount or 0)
        return 0

    @property
    def priority_fee_lamports(self) -> int:
        # Rounded up in integers, as the runtime does: a float holds 53 bits, and a u64 price at the
        # most compute units is 85 bits of micro-lamports.
        return -(-self.compute_unit_limit * self.compute_unit_price // programs.MICRO_LAMPORTS_PER_LAMPORT)

    @property
    def fee_lamports(self) -> int:
        """The most the fee payer pays: every signature's base fee plus the priority fee at the
        compute-unit limit (the runtime charges the limit, not what was used)."""
        return len(self.signers) * programs.LAMPORTS_PER_SIGNATURE + self.priority_fee_lamports

    def signature_of(self, signer: str) -> str:
        """The base58 signature the transaction carries for ``signer`` (the fee payer's is the
        transaction's id on chain)."""
        return str(Signature.from_bytes(self.signatures[signer]))


def read(raw: bytes) -> SolanaTransaction:
    """The wire bytes of a transaction → `SolanaTransaction`, or `TransactionError` saying what
    is wrong with them."""
    if not isinstance(raw, bytes | bytearray) or not raw:
        raise TransactionError("the transaction is empty: give its wire bytes (base64)")
    if len(raw) > MAX_TRANSACTION_BYTES:
        raise TransactionError(
            f"the transaction is {len(raw)} bytes; the network carries at most {MAX_TRANSACTION_BYTES}"
        )
    try:
        tx = VersionedTransaction.from_bytes(bytes(raw))
    except Exception as exc:  # noqa: BLE001 - solders raises its own error types for each malformation
        raise TransactionError(
            f"not a Solana transaction's wire bytes ({exc}): serialize it with its signature slots, "
            "e.g. web3.js serialize({requireAllSignatures: false})"
        ) from None
    message = tx.message
    if bytes(tx) != bytes(raw):
        raise TransactionError("the transaction has bytes after its message: send exactly one serialized transaction")
    version: Literal["legacy", 0] = 0 if isinstance(message, MessageV0) else "legacy"
    if isinstance(message, MessageV0) and message.address_table_lookups:
        raise TransactionError(
            "the transaction loads accounts from address lookup tables; Warden reads only the accounts the "
            "message lists: compile it without lookup tables"
        )
    keys = tuple(str(k) for k in message.account_keys)
    header = message.header
    required = header.num_required_signatures
    if required < 1 or required > len(keys) or len(tx.signatures) != required:
        raise TransactionError(
            f"the message needs {required} signature(s) but the transaction has {len(tx.signatures)} slots"
        )
    if len(set(keys)) != len(keys):
        raise TransactionError("the message lists an account twice")
    signers = keys[:required]
    # The header's counts: signers first (the read-only ones last among them), then the others.
    writable = frozenset(
        keys[: required - header.num_readonly_signed_accounts]
        + keys[required : len(keys) - header.num_readonly_unsigned_accounts]
    )
    instructions = []
    for index, compiled in enumerate(message.instructions):
        if compiled.program_id_index >= len(keys) or any(a >= len(keys) for a in bytes(compiled.accounts)):
            raise TransactionError(f"instruction {index} names an account the message does not list")
        program = keys[compiled.program_id_index]
        accounts = tuple(keys[a] for a in bytes(compiled.accounts))
        try:
            instructions.append(decode(index, program, accounts, bytes(compiled.data)))
        except InstructionError as exc:
            raise TransactionError(str(exc)) from None
    for kind in (Kind.COMPUTE_UNIT_LIMIT, Kind.COMPUTE_UNIT_PRICE):
        if sum(1 for ix in instructions if ix.kind is kind) > 1:
            raise TransactionError(f"the transaction sets its {kind.value.replace('_', ' ')} twice")
    signatures = {
        signer: bytes(sig) for signer, sig in zip(signers, tx.signatures, strict=True) if bytes(sig) != _EMPTY_SIGNATURE
    }
    message_bytes = to_bytes_versioned(message)
    return SolanaTransaction(
        version=version,
        fee_payer=keys[0],
        signers=signers,
        writable=writable,
        recent_blockhash=str(message.recent_blockhash),
        account_keys=keys,
        instructions=tuple(instructions),
        signatures=signatures,
        message=message_bytes,
        unverified=tuple(s for s, sig in signatures.items() if not verifies(s, sig, message_bytes)),
    )


def sign(raw: bytes, seed: bytearray | bytes) -> bytes:
    """``raw`` with the signature of the key whose 32-byte Ed25519 seed is ``seed`` in that key's
    slot; the caller wipes ``seed``. Refused when the key is not one of the transaction's signers,
    or when a signature already in the transaction does not verify over its message (a slot
    filled for another message)."""
    tx = VersionedTransaction.from_bytes(bytes(raw))
    key = Ed25519PrivateKey.from_private_bytes(bytes(seed))
    public = key.public_key().public_bytes_raw()
    keys = list(tx.message.account_keys)[: tx.message.header.num_required_signatures]
    mine = Pubkey.from_bytes(public)
    if mine not in keys:
        raise TransactionError(f"{mine} is not a signer of this transaction: it cannot sign it")
    message = to_bytes_versioned(tx.message)
    signatures = list(tx.signatures)
    for signer, signature in zip(keys, signatures, strict=True):
        if bytes(signature) != _EMPTY_SIGNATURE and signer != mine and not verifies(signer, bytes(signature), message):
            raise SignatureInvalid(
                f"the signature in {signer}'s slot is not over this message as Solana's runtime verifies "
                "it (strict Ed25519): the network would refuse the transaction"
            )
    signatures[keys.index(mine)] = Signature.from_bytes(key.sign(message))
    return bytes(VersionedTransaction.populate(tx.message, signatures))


def carries(raw: bytes, message: bytes, signer: str, signature: bytes) -> bool:
    """Whether the wire bytes ``raw`` are a transaction over ``message`` with ``signature`` in
    ``signer``'s slot, whatever its other slots hold: a copy of a transaction Warden signed."""
    try:
        tx = VersionedTransaction.from_bytes(raw)
    except Exception:  # noqa: BLE001 - solders raises its own error types for each malformation
        return False
    keys = [str(key) for key in tx.message.account_keys[: tx.message.header.num_required_signatures]]
    if to_bytes_versioned(tx.message) != message or signer not in keys:
        return False
    return bytes(tx.signatures[keys.index(signer)]) == signature


def describe(tx: SolanaTransaction) -> list[str]:
    """Each instruction as a line for a person (an admin deciding on it): what it is, how much,
    from where to where, and its program."""
    lines = []
    for ix in tx.instructions:
        parts = [f"{ix.index}: {ix.kind.value}"]
        if ix.amount is not None:
            parts.append(str(ix.amount))
        if ix.mint is not None:
            parts.append(f"of mint {ix.mint}")
        if ix.source is not None:
            parts.append(f"from {ix.source}")
        if ix.destination is not None:
            parts.append(f"to {ix.destination}")
        if ix.new_authority is not None:
            parts.append(f"new authority {ix.new_authority}")
        if ix.kind in (Kind.PROGRAM_CALL, Kind.UNREAD):
            parts.append(f"discriminator {ix.discriminator or 'none'}")
        parts.append(f"(program {ix.program})")
        lines.append(" ".join(parts))
    return [f"fee payer {tx.fee_payer}, signers {', '.join(tx.signers)}, blockhash {tx.recent_blockhash}", *lines]
