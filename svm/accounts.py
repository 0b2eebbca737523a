"""SPL token accounts and mints read from their account data (the Token program's `Account`
and `Mint` layouts, which Token-2022 keeps for its first bytes and extends after them)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import base58

from svm import programs

TOKEN_ACCOUNT_BYTES = 165
MINT_BYTES = 82
# A token multisig account (m, n, initialized, 11 signers): never read as an account or a mint.
MULTISIG_BYTES = 355
# Rent exemption: an account holds (128 + its bytes) x 3,480 lamports per byte-year x 2 years.
RENT_LAMPORTS_PER_BYTE = 3_480 * 2
# The rent-exempt balance of a 165-byte token account (what creating one costs its payer).
TOKEN_ACCOUNT_RENT_LAMPORTS = (128 + TOKEN_ACCOUNT_BYTES) * RENT_LAMPORTS_PER_BYTE  # 2,039,280


@dataclass(frozen=True)
class TokenAccount:
    """A token account as the chain holds it: the mint it holds, its owner (the wallet that may
    move it), its balance in base units, and the program that owns it."""

    address: str
    mint: str
    owner: str
    amount: int
    program: str


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class AccountState:
    """One account as a node holds it: lamports, the program that owns it, its data."""

    lamports: int
    program: str
    data: bytes

    def token(self, address: str) -> TokenAccount | None:
        """The token account this is, if it is one."""
        try:
            return token_account(address, self.program, self.data)
        except AccountError:
            return None


def token_account(address: str, program: str, data: bytes) -> TokenAccount:
    """An account's ``data`` owned by ``program`` → `TokenAccount`, or `AccountError` when it is
    not an initialized token account."""
    if program not in programs.TOKEN_PROGRAMS:
        raise AccountError(f"{address} is not a token account: it is owned by {program}")
    extended = len(data) > TOKEN_ACCOUNT_BYTES
    if len(data) < TOKEN_ACCOUNT_BYTES or len(data) == MULTISIG_BYTES or (extended and data[TOKEN_ACCOUNT_BYTES] != 2):
        raise AccountError(f"{address} is not a token account ({len(data)} bytes)")
    if data[108] == 0:  # AccountState::Uninitialized
        raise AccountError(f"{address} is a token account that is not initialized")
    mint = base58.b58encode(data[0:32]).decode()
    owner = base58.b58encode(data[32:64]).decode()
    (amount,) = struct.unpack_from("<Q", data, 64)
    return TokenAccount(address, mint, owner, amount, program)


def mint_decimals(address: str, program: str, data: bytes) -> int:
    """A mint's decimals from its account ``data``, or `AccountError`."""
    if program not in programs.TOKEN_PROGRAMS or len(data) < MINT_BYTES or data[45] != 1:
        raise AccountError(f"{address} is not an initialized mint")
    return data[44]
