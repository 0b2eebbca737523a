"""Building Solana transactions for Warden: instructions of the System, SPL Token and
associated-token-account programs and the compute budget, from the programs' documented layouts
(written apart from `svm.instructions`, which reads them), and `unsigned`, the wire bytes an agent
hands Warden in a solana_transaction intent (every signature slot empty).

Each builder returns a solders `Instruction`. `create_mint` and `mint_to` are for a local node
(the demo, tests): an agent's policy never allows minting."""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import VersionedTransaction

# What a builder raises for an amount past the u64 the runtime holds, re-exported for its callers.
from schemas.amounts import U64, checked
from schemas.amounts import AmountOutOfRange as AmountOutOfRange
from svm import programs

TOKEN = Pubkey.from_string(programs.TOKEN)
TOKEN_2022 = Pubkey.from_string(programs.TOKEN_2022)
ATA = Pubkey.from_string(programs.ASSOCIATED_TOKEN)
SYSTEM = Pubkey.from_string(programs.SYSTEM)
MINT_RENT = 1_461_600  # rent-exempt balance of an 82-byte mint


def _u64(amount: int, what: str) -> int:
    """``amount``, which the runtime reads as a u64; `AmountOutOfRange` naming ``what`` it is
    otherwise, so no instruction is written with an amount that wraps or does not encode."""
    return checked(U64, amount, f"an amount of {what}")


def _u64_bytes(amount: int, what: str = "a token's base units") -> bytes:
    return struct.pack("<Q", _u64(amount, what))


def w(key: Pubkey) -> AccountMeta:
    return AccountMeta(key, is_signer=False, is_writable=True)


def ro(key: Pubkey) -> AccountMeta:
    return AccountMeta(key, is_signer=False, is_writable=False)


def signer(key: Pubkey, writable: bool = True) -> AccountMeta:
    return AccountMeta(key, is_signer=True, is_writable=writable)


def sol_transfer(source: Pubkey, to: Pubkey, lamports: int) -> Instruction:
    return transfer(TransferParams(from_pubkey=source, to_pubkey=to, lamports=_u64(lamports, "lamports")))


def ata_address(owner: Pubkey, mint: Pubkey, token_program: Pubkey = TOKEN) -> Pubkey:
    return Pubkey.find_program_address([bytes(owner), bytes(token_program), bytes(mint)], ATA)[0]


def create_ata(payer: Pubkey, owner: Pubkey, mint: Pubkey, token_program: Pubkey = TOKEN) -> Instruction:
    accounts = [
        signer(payer),
        w(ata_address(owner, mint, token_program)),
        ro(owner),
        ro(mint),
        ro(SYSTEM),
        ro(token_program),
    ]
    return Instruction(ATA, bytes([1]), accounts)  # CreateIdempotent


def create_mint(payer: Pubkey, mint: Pubkey, authority: Pubkey, decimals: int) -> list[Instruction]:
    return [
        create_account(
            CreateAccountParams(from_pubkey=payer, to_pubkey=mint, lamports=MINT_RENT, space=82, owner=TOKEN)
        ),
        # InitializeMint2 { decimals, mint_authority, freeze_authority: None }
        Instruction(TOKEN, bytes([20, decimals]) + bytes(authority) + b"\x00", [w(mint)]),
    ]


def mint_to(
    mint: Pubkey, account: Pubkey, authority: Pubkey, amount: int, token_program: Pubkey = TOKEN
) -> Instruction:
    return Instruction(token_program, bytes([7]) + _u64_bytes(amount), [w(mint), w(account), signer(authority, False)])


def token_transfer(source: Pubkey, destination: Pubkey, authority: Pubkey, amount: int) -> Instruction:
    return Instruction(TOKEN, bytes([3]) + _u64_bytes(amount), [w(source), w(destination), signer(authority, False)])


def token_transfer_checked(
    source: Pubkey,
    mint: Pubkey,
    destination: Pubkey,
    authority: Pubkey,
    amount: int,
    decimals: int,
    token_program: Pubkey = TOKEN,
    multisig_signers: Sequence[Pubkey] = (),
) -> Instruction:
    """TransferChecked. With ``multisig_signers``, ``authority`` is a token multisig account
    (which signs nothing itself) and they sign for it, listed after it."""
    owner = signer(authority, False) if not multisig_signers else ro(authority)
    return Instruction(
        token_program,
        bytes([12]) + _u64_bytes(amount) + struct.pack("<B", decimals),
        [w(source), ro(mint), w(destination), owner, *(signer(key, False) for key in multisig_signers)],
    )


def approve(source: Pubkey, delegate: Pubkey, owner: Pubkey, amount: int) -> Instruction:
    return Instruction(TOKEN, bytes([4]) + _u64_bytes(amount), [w(source), ro(delegate), signer(owner, False)])


def set_authority(account: Pubkey, current: Pubkey, new: Pubkey | None, kind: int = 2) -> Instruction:
    option = b"\x01" + bytes(new) if new is not None else b"\x00"
    return Instruction(TOKEN, bytes([6, kind]) + option, [w(account), signer(current, False)])


def close_account(account: Pubkey, destination: Pubkey, owner: Pubkey) -> Instruction:
    return Instruction(TOKEN, bytes([9]), [w(account), w(destination), signer(owner, False)])


def compute_limit(units: int) -> Instruction:
    return Instruction(Pubkey.from_string(programs.COMPUTE_BUDGET), bytes([2]) + struct.pack("<I", units), [])


def compute_price(micro_lamports: int) -> Instruction:
    price = _u64_bytes(micro_lamports, "micro-lamports per compute unit")
    return Instruction(Pubkey.from_string(programs.COMPUTE_BUDGET), bytes([3]) + price, [])


def memo(text: bytes) -> Instruction:
    """A memo (the Memo program), naming no account."""
    return Instruction(Pubkey.from_string(programs.MEMO), text, [])


def decode(text: str, field: str = "transaction") -> bytes:
    """A transaction's wire bytes (or a message's, ``field`` naming it) from the base64 an agent
    sent; ValueError saying so otherwise (base64's own error, or characters outside ASCII)."""
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError(f"{field}: not base64; give the bytes in standard base64") from None


def unsigned(payer: Pubkey, instructions: list[Instruction], blockhash: Hash, legacy: bool = False) -> bytes:
    """The wire bytes of a transaction with every signature slot empty."""
    message: Message | MessageV0
    if legacy:
        message = Message.new_with_blockhash(instructions, payer, blockhash)
    else:
        message = MessageV0.try_compile(payer, instructions, [], blockhash)
    slots = [Signature.default()] * message.header.num_required_signatures
    return bytes(VersionedTransaction.populate(message, slots))


def signed(payer: Keypair, instructions: list[Instruction], blockhash: Hash, *others: Keypair) -> VersionedTransaction:
    """A transaction signed by keypairs held here (a local node's bank, in the demo and tests)."""
    return VersionedTransaction(MessageV0.try_compile(payer.pubkey(), instructions, [], blockhash), [payer, *others])


def seed_of(keypair: Keypair) -> bytearray:
    """A keypair's 32-byte Ed25519 seed, as custody holds a Solana key."""
    return bytearray(bytes(keypair)[:32])
