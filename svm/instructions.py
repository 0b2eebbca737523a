"""The instructions Warden reads, decoded from their bytes: System transfers and account
creations, SPL Token (and Token-2022) transfers, approvals, authority changes, closes and burns,
associated token accounts, the compute budget and memos.

An instruction of these programs that is not listed here is `Kind.UNREAD`: it may move value in a
way Warden does not see, so the rules refuse it whatever the policy lists. An instruction of any
other program is `Kind.PROGRAM_CALL`, refused unless the policy lists its program and
discriminator. Layouts are the programs' own (system_instruction.rs, token/instruction.rs,
compute_budget.rs): little-endian integers after a tag (u32 for System, u8 for the others).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum

import base58

from svm import programs


class Kind(StrEnum):
    SOL_TRANSFER = "sol_transfer"  # System Transfer, TransferWithSeed: lamports from source to destination
    CREATE_ACCOUNT = "create_account"  # System CreateAccount(WithSeed): lamports into a new account
    TOKEN_TRANSFER = "token_transfer"  # Transfer, TransferChecked
    TOKEN_APPROVE = "token_approve"  # Approve, ApproveChecked: a delegate may move `amount`
    TOKEN_REVOKE = "token_revoke"
    TOKEN_SET_AUTHORITY = "token_set_authority"
    TOKEN_CLOSE_ACCOUNT = "token_close_account"  # the account's lamports go to `destination`
    TOKEN_BURN = "token_burn"
    TOKEN_INITIALIZE_ACCOUNT = "token_initialize_account"
    TOKEN_SYNC_NATIVE = "token_sync_native"
    CREATE_TOKEN_ACCOUNT = "create_token_account"  # the associated token account program
    COMPUTE_UNIT_LIMIT = "compute_unit_limit"
    COMPUTE_UNIT_PRICE = "compute_unit_price"  # micro-lamports per compute unit
    COMPUTE_BUDGET = "compute_budget"  # heap frame, loaded-data limit: no value moves
    MEMO = "memo"
    UNREAD = "unread"  # an instruction of a program above that Warden does not read
    PROGRAM_CALL = "program_call"  # any other program


@dataclass(frozen=True)
class Instruction:
    """One instruction: its program, what it is, the accounts it names (base58, in order) and
    what Warden read of its data. ``discriminator``: the data's first bytes that say which
    instruction it is (u32 for System, u8 for the token and budget programs, 8 bytes for any
    other program, as Anchor's are), hex."""

    index: int
    program: str
    kind: Kind
    accounts: tuple[str, ...]
    discriminator: str
    amount: int | None = None  # lamports or token base units; compute units; micro-lamports
    source: str | None = None
    destination: str | None = None
    authority: str | None = None  # who signs for `source` (the owner or delegate)
    mint: str | None = None
    decimals: int | None = None
    new_authority: str | None = None  # SetAuthority: None clears it
    authority_type: int | None = None
    owner: str | None = None  # CreateAccount: the program that will own it; ATA / InitializeAccount: the wallet
    # A transfer's, an approval's or a burn's accounts after its authority: when the authority is a
    # token multisig, the signers that sign for it (a transfer hook's accounts follow them too).
    signers: tuple[str, ...] = ()


class InstructionError(ValueError):
    pass


def decode(index: int, program: str, accounts: tuple[str, ...], data: bytes) -> Instruction:
    """``data`` of ``program`` with ``accounts`` → an `Instruction`. Raises `InstructionError`
    for an instruction of a read program whose data or accounts are short: it would fail on
    chain, and Warden does not sign what it cannot read."""
    try:
        if program == programs.SYSTEM:
            return _system(index, accounts, data)
        if program in programs.TOKEN_PROGRAMS:
            return _token(index, program, accounts, data)
        if program == programs.ASSOCIATED_TOKEN:
            return _associated(index, accounts, data)
        if program == programs.COMPUTE_BUDGET:
            return _budget(index, accounts, data)
        if program == programs.MEMO:
            return Instruction(index, program, Kind.MEMO, accounts, "")
    except (struct.error, IndexError) as exc:
        raise InstructionError(
            f"instruction {index} ({program}): its data or accounts are shorter than the instruction needs ({exc})"
        ) from None
    return Instruction(index, program, Kind.PROGRAM_CALL, accounts, data[:8].hex())


def _u64(data: bytes, at: int) -> int:
    value: int = struct.unpack_from("<Q", data, at)[0]  # "<Q" unpacks to one int
    return value


def _pubkey(data: bytes, at: int) -> str:
    raw = data[at : at + 32]
    if len(raw) != 32:
        raise struct.error("a public key needs 32 bytes")
    return base58.b58encode(raw).decode()


def _system(index: int, accounts: tuple[str, ...], data: bytes) -> Instruction:
    (tag,) = struct.unpack_from("<I", data, 0)
    disc = data[:4].hex()
    program = programs.SYSTEM
    if tag == 2:  # Transfer { lamports }: [from, to]
        return Instruction(
            index, program, Kind.SOL_TRANSFER, accounts, disc, _u64(data, 4), accounts[0], accounts[1], accounts[0]
        )
    if tag == 11:  # TransferWithSeed { lamports, from_seed, from_owner }: [from, base, to]
        return Instruction(
            index, program, Kind.SOL_TRANSFER, accounts, disc, _u64(data, 4), accounts[0], accounts[2], accounts[1]
        )
    if tag == 0:  # CreateAccount { lamports, space, owner }: [from, new]
        owner = _pubkey(data, 20)
        return Instruction(
            index, program, Kind.CREATE_ACCOUNT, accounts, disc, _u64(data, 4), accounts[0], accounts[1], owner=owner
        )
    if tag == 3:  # CreateAccountWithSeed { base, seed: u64 length + bytes, lamports, space, owner }: [from, to, base?]
        (length,) = struct.unpack_from("<Q", data, 36)
        at = 44 + length
        owner = _pubkey(data, at + 16)
        return Instruction(
            index, program, Kind.CREATE_ACCOUNT, accounts, disc, _u64(data, at), accounts[0], accounts[1], owner=owner
        )
    return Instruction(index, program, Kind.UNREAD, accounts, disc)


# Transfer, Approve { amount }: [source, destination or delegate, authority]; their Checked forms
# { amount, decimals } name the mint second: [source, mint, destination, authority].
_MOVES = {
    3: (Kind.TOKEN_TRANSFER, False),
    4: (Kind.TOKEN_APPROVE, False),
    12: (Kind.TOKEN_TRANSFER, True),
    13: (Kind.TOKEN_APPROVE, True),
}


def _token_move(index: int, program: str, accounts: tuple[str, ...], data: bytes) -> Instruction:
    kind, checked = _MOVES[data[0]]
    source, to, authority = (accounts[0], accounts[2], accounts[3]) if checked else accounts[:3]
    return Instruction(
        index,
        program,
        kind,
        accounts,
        data[:1].hex(),
        _u64(data, 1),
        source,
        to,
        authority,
        mint=accounts[1] if checked else None,
        decimals=data[9] if checked else None,
        signers=accounts[4:] if checked else accounts[3:],
    )


def _token(index: int, program: str, accounts: tuple[str, ...], data: bytes) -> Instruction:
    tag = data[0]
    disc = data[:1].hex()
    if tag in _MOVES:
        return _token_move(index, program, accounts, data)
    if tag == 5:  # Revoke: [source, owner]
        return Instruction(index, program, Kind.TOKEN_REVOKE, accounts, disc, source=accounts[0], authority=accounts[1])
    if tag == 6:  # SetAuthority { authority_type, new_authority: COption<Pubkey> }: [account, current]
        new = _pubkey(data, 3) if data[2] == 1 else None
        return Instruction(
            index,
            program,
            Kind.TOKEN_SET_AUTHORITY,
            accounts,
            disc,
            source=accounts[0],
            authority=accounts[1],
            new_authority=new,
            authority_type=data[1],
        )
    if tag == 9:  # CloseAccount: [account, destination, owner]
        return Instruction(
            index,
            program,
            Kind.TOKEN_CLOSE_ACCOUNT,
            accounts,
            disc,
            source=accounts[0],
            destination=accounts[1],
            authority=accounts[2],
        )
    if tag in (8, 15):  # Burn { amount }, BurnChecked { amount, decimals }: [account, mint, owner]
        return Instruction(
            index,
            program,
            Kind.TOKEN_BURN,
            accounts,
            disc,
            _u64(data, 1),
            accounts[0],
            authority=accounts[2],
            mint=accounts[1],
            signers=accounts[3:],
        )
    if tag == 1:  # InitializeAccount: [account, mint, owner, rent]
        return Instruction(
            index, program, Kind.TOKEN_INITIALIZE_ACCOUNT, accounts, disc, mint=accounts[1], owner=accounts[2]
        )
    if tag in (16, 18):  # InitializeAccount2/3 { owner }: [account, mint, (rent)]
        return Instruction(
            index,
            program,
            Kind.TOKEN_INITIALIZE_ACCOUNT,
            accounts,
            disc,
            mint=accounts[1],
            owner=_pubkey(data, 1),
        )
    if tag == 17:  # SyncNative: [account]
        return Instruction(index, program, Kind.TOKEN_SYNC_NATIVE, accounts, disc, source=accounts[0])
    return Instruction(index, program, Kind.UNREAD, accounts, disc)


def _associated(index: int, accounts: tuple[str, ...], data: bytes) -> Instruction:
    # Create (no data or 0), CreateIdempotent (1): [payer, account, wallet, mint, system, token program]
    if data in (b"", b"\x00", b"\x01"):
        return Instruction(
            index,
            programs.ASSOCIATED_TOKEN,
            Kind.CREATE_TOKEN_ACCOUNT,
            accounts,
            data[:1].hex(),
            source=accounts[0],
            destination=accounts[1],
            owner=accounts[2],
            mint=accounts[3],
        )
    return Instruction(index, programs.ASSOCIATED_TOKEN, Kind.UNREAD, accounts, data[:1].hex())


def _budget(index: int, accounts: tuple[str, ...], data: bytes) -> Instruction:
    tag = data[0]
    disc = data[:1].hex()
    program = programs.COMPUTE_BUDGET
    if tag == 2:  # SetComputeUnitLimit { units: u32 }
        return Instruction(
            index, program, Kind.COMPUTE_UNIT_LIMIT, accounts, disc, struct.unpack_from("<I", data, 1)[0]
        )
    if tag == 3:  # SetComputeUnitPrice { micro_lamports: u64 }
        return Instruction(index, program, Kind.COMPUTE_UNIT_PRICE, accounts, disc, _u64(data, 1))
    if tag in (1, 4):  # RequestHeapFrame, SetLoadedAccountsDataSizeLimit
        struct.unpack_from("<I", data, 1)
        return Instruction(index, program, Kind.COMPUTE_BUDGET, accounts, disc)
    return Instruction(index, program, Kind.UNREAD, accounts, disc)
