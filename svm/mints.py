"""A mint read whole from its account data: the base `Mint` layout (82 bytes, the Token program's
and Token-2022's alike) and, for Token-2022, the extensions after it.

Token-2022 lays an extended mint out as the base mint, zeros up to the length of a token account
(165 bytes, so that a mint and an account can never be read as each other), one account-type
byte (1: a mint), then its extensions as TLV entries: type u16, length u16, value, little-endian;
a type 0 entry, or fewer than two bytes left, ends them (interface/src/extension/mod.rs). Warden
reads every entry's type, and the values of those that decide where a holder's tokens go: the
transfer fee, the permanent delegate and the transfer hook.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import base58

from svm import programs
from svm.accounts import MINT_BYTES, MULTISIG_BYTES, TOKEN_ACCOUNT_BYTES, AccountError

ACCOUNT_TYPE_MINT = 1
ONE_IN_BASIS_POINTS = 10_000


class Extension(IntEnum):
    """Token-2022's `ExtensionType`, in its order: an entry's type is its number here."""

    UNINITIALIZED = 0
    TRANSFER_FEE_CONFIG = 1
    TRANSFER_FEE_AMOUNT = 2
    MINT_CLOSE_AUTHORITY = 3
    CONFIDENTIAL_TRANSFER_MINT = 4
    CONFIDENTIAL_TRANSFER_ACCOUNT = 5
    DEFAULT_ACCOUNT_STATE = 6
    IMMUTABLE_OWNER = 7
    MEMO_TRANSFER = 8
    NON_TRANSFERABLE = 9
    INTEREST_BEARING_CONFIG = 10
    CPI_GUARD = 11
    PERMANENT_DELEGATE = 12
    NON_TRANSFERABLE_ACCOUNT = 13
    TRANSFER_HOOK = 14
    TRANSFER_HOOK_ACCOUNT = 15
    CONFIDENTIAL_TRANSFER_FEE_CONFIG = 16
    CONFIDENTIAL_TRANSFER_FEE_AMOUNT = 17
    METADATA_POINTER = 18
    TOKEN_METADATA = 19
    GROUP_POINTER = 20
    TOKEN_GROUP = 21
    GROUP_MEMBER_POINTER = 22
    TOKEN_GROUP_MEMBER = 23
    CONFIDENTIAL_MINT_BURN = 24
    SCALED_UI_AMOUNT = 25
    PAUSABLE = 26
    PAUSABLE_ACCOUNT = 27
    PERMISSIONED_BURN = 28


# Mint extensions that move nothing away from a holder and change no amount in base units: a
# close authority (only for a mint with no supply), the default state of new accounts, tokens
# that cannot move at all, interest or a scale shown beside the amount, metadata and groups, a
# pause, burns that need an authority's approval. A holder's tokens go where its signature sends
# them, and nowhere else.
MOVES_NOTHING = frozenset(
    {
        Extension.MINT_CLOSE_AUTHORITY,
        Extension.DEFAULT_ACCOUNT_STATE,
        Extension.NON_TRANSFERABLE,
        Extension.INTEREST_BEARING_CONFIG,
        Extension.METADATA_POINTER,
        Extension.TOKEN_METADATA,
        Extension.GROUP_POINTER,
        Extension.TOKEN_GROUP,
        Extension.GROUP_MEMBER_POINTER,
        Extension.TOKEN_GROUP_MEMBER,
        Extension.SCALED_UI_AMOUNT,
        Extension.PAUSABLE,
        Extension.PERMISSIONED_BURN,
    }
)
# What Warden reads whole: those, and the transfer fee, which it counts as a movement to the
# fee's withdraw authority. Every other extension needs the policy to accept it by name.
READ_WHOLE = MOVES_NOTHING | {Extension.TRANSFER_FEE_CONFIG}


# The extensions Token-2022 gives every token account of a mint with the extension on the left
# (`required_init_account_extensions`), with their values' sizes in bytes.
_ACCOUNT_EXTENSIONS: dict[int, dict[int, int]] = {
    Extension.TRANSFER_FEE_CONFIG: {Extension.TRANSFER_FEE_AMOUNT: 8},
    Extension.NON_TRANSFERABLE: {Extension.NON_TRANSFERABLE_ACCOUNT: 0, Extension.IMMUTABLE_OWNER: 0},
    Extension.TRANSFER_HOOK: {Extension.TRANSFER_HOOK_ACCOUNT: 1},
    Extension.PAUSABLE: {Extension.PAUSABLE_ACCOUNT: 0},
}


def extension_name(kind: int) -> str:
    """An extension's name as a policy writes it: Token-2022's, in snake case
    (``permanent_delegate``); ``extension_<n>`` for a type this reader does not know."""
    try:
        return Extension(kind).name.lower()
    except ValueError:
        return f"extension_{kind}"


@dataclass(frozen=True)
class TransferFee:
    """One of a mint's two fee settings: from ``epoch`` on, ``basis_points`` of each transfer,
    at most ``maximum_fee`` base units."""

    epoch: int
    maximum_fee: int
    basis_points: int

    def fee(self, amount: int) -> int:
        """What a transfer of ``amount`` withholds (Token-2022's `calculate_fee`: rounded up,
        capped at the maximum), never more than the amount."""
        if self.basis_points == 0 or amount == 0:
            return 0
        raw = -(-amount * self.basis_points // ONE_IN_BASIS_POINTS)
        return min(raw, self.maximum_fee, amount)


@dataclass(frozen=True)
class TransferFeeConfig:
    """The TransferFeeConfig extension: who may set the fee, who may withdraw what transfers
    withhold (None: nobody, ever), and the older and newer fee settings. A new fee takes effect
    two epochs after it is set, so the two settings bound what a transfer pays until then."""

    config_authority: str | None
    withdraw_authority: str | None
    older: TransferFee
    newer: TransferFee

    def worst_fee(self, amount: int) -> int:
        """The larger of what the two settings withhold from ``amount``: whichever epoch the
        transfer lands in, it withholds no more."""
        return max(self.older.fee(amount), self.newer.fee(amount))

    @property
    def charges(self) -> bool:
        """Whether a transfer can ever be charged: a fee is set, or an authority may set one."""
        return self.config_authority is not None or any(
            f.basis_points and f.maximum_fee for f in (self.older, self.newer)
        )


@dataclass(frozen=True)
class TransferHook:
    """The TransferHook extension: the program every transfer calls, and who may change it."""

    authority: str | None
    program: str | None


@dataclass(frozen=True)
class Mint:
    """A mint as the chain holds it: its decimals, the program that owns it, the types of its
    extensions in the order they are laid out, and the values of those that decide where tokens
    go."""

    address: str
    program: str
    decimals: int
    extensions: tuple[int, ...] = ()
    transfer_fee: TransferFeeConfig | None = None
    permanent_delegate: str | None = None
    transfer_hook: TransferHook | None = None


def _optional_key(raw: bytes) -> str | None:
    """An `OptionalNonZeroPubkey`: 32 bytes, all zeros for none."""
    return base58.b58encode(raw).decode() if any(raw) else None


def _fee(value: bytes, at: int) -> TransferFee:
    epoch, maximum, points = struct.unpack_from("<QQH", value, at)
    return TransferFee(epoch, maximum, points)


def _entries(address: str, tlv: bytes) -> dict[int, bytes]:
    """The TLV entries after the account-type byte, by type, as Token-2022 walks them."""
    out: dict[int, bytes] = {}
    at = 0
    while len(tlv) - at >= 2:
        (kind,) = struct.unpack_from("<H", tlv, at)
        if kind == Extension.UNINITIALIZED:
            break
        if len(tlv) - at < 4:
            raise AccountError(f"{address}: extension {kind} has no length")
        (length,) = struct.unpack_from("<H", tlv, at + 2)
        end = at + 4 + length
        if end > len(tlv):
            raise AccountError(f"{address}: extension {kind} runs past the account's data")
        if kind in out:
            raise AccountError(f"{address}: extension {kind} appears twice")
        out[kind] = tlv[at + 4 : end]
        at = end
    return out


_SIZES = {Extension.TRANSFER_FEE_CONFIG: 108, Extension.PERMANENT_DELEGATE: 32, Extension.TRANSFER_HOOK: 64}


def read(address: str, program: str, data: bytes) -> Mint:
    """A mint's account ``data`` owned by ``program`` → `Mint`, or `AccountError` when it is not
    an initialized mint, or its extensions do not read as Token-2022 lays them out."""
    if program not in programs.TOKEN_PROGRAMS or len(data) < MINT_BYTES or data[45] != 1:
        raise AccountError(f"{address} is not an initialized mint")
    if len(data) == MINT_BYTES:
        return Mint(address, program, data[44])
    if program != programs.TOKEN_2022 or len(data) == MULTISIG_BYTES or len(data) <= TOKEN_ACCOUNT_BYTES:
        raise AccountError(f"{address} is not a mint ({len(data)} bytes of {program})")
    if any(data[MINT_BYTES:TOKEN_ACCOUNT_BYTES]) or data[TOKEN_ACCOUNT_BYTES] != ACCOUNT_TYPE_MINT:
        raise AccountError(f"{address} is not a mint: its padding or account type is not a mint's")
    entries = _entries(address, data[TOKEN_ACCOUNT_BYTES + 1 :])
    for kind, size in _SIZES.items():
        if kind in entries and len(entries[kind]) != size:
            raise AccountError(f"{address}: extension {extension_name(kind)} is {len(entries[kind])} bytes, not {size}")
    fee = hook = None
    if (value := entries.get(Extension.TRANSFER_FEE_CONFIG)) is not None:
        fee = TransferFeeConfig(
            _optional_key(value[0:32]), _optional_key(value[32:64]), _fee(value, 72), _fee(value, 90)
        )
    if (value := entries.get(Extension.TRANSFER_HOOK)) is not None:
        hook = TransferHook(_optional_key(value[0:32]), _optional_key(value[32:64]))
    delegate = entries.get(Extension.PERMANENT_DELEGATE)
    return Mint(
        address,
        program,
        data[44],
        tuple(entries),
        fee,
        None if delegate is None else _optional_key(delegate),
        hook,
    )


def associated_account_bytes(mint: Mint) -> int:
    """The size of the associated token account of ``mint``, what its rent is paid for: a Token
    account's 165 bytes; for Token-2022, the account-type byte and the TLV entries of ImmutableOwner
    (which the associated token account program always asks for) and of each account extension
    the mint's extensions require, each type once, two bytes more if that made it a multisig's
    size (Token-2022's `try_calculate_account_len_from_mint_data`)."""
    if mint.program != programs.TOKEN_2022:
        return TOKEN_ACCOUNT_BYTES
    entries: dict[int, int] = {Extension.IMMUTABLE_OWNER: 0}
    for kind in mint.extensions:
        entries |= _ACCOUNT_EXTENSIONS.get(kind, {})
    size = TOKEN_ACCOUNT_BYTES + 1 + sum(4 + length for length in entries.values())
    return size + 2 if size == MULTISIG_BYTES else size
