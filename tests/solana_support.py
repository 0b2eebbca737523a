"""Token-2022 mints with extensions and token multisig accounts, built for LiteSVM and a local node
(surfpool): what the tests of `svm.mints` and of `rules.solana` set up on chain. The instruction
layouts are the Token-2022 program's own (interface/src/instruction.rs and each extension's
instruction.rs): a u8 tag, for an extension a u8 sub-tag, then the fields little-endian."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from solders.instruction import Instruction
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account

from sdk import solana as sol
from svm.accounts import MULTISIG_BYTES, TOKEN_ACCOUNT_BYTES

# Each extension's value, in bytes (interface/src/extension/*: TransferFeeConfig, PermanentDelegate, TransferHook).
TRANSFER_FEE_CONFIG_BYTES = 108
PERMANENT_DELEGATE_BYTES = 32
TRANSFER_HOOK_BYTES = 64


def rent(size: int) -> int:
    """The rent-exempt balance of an account of ``size`` bytes: (128 + size) x 3,480 lamports per
    byte-year x 2 years."""
    return (128 + size) * 3_480 * 2


def create_multisig(
    payer: Pubkey, multisig: Pubkey, m: int, members: Sequence[Pubkey], token_program: Pubkey = sol.TOKEN
) -> list[Instruction]:
    """A token multisig account of ``members``, any ``m`` of whom sign for it (InitializeMultisig2,
    tag 19: { m }, [multisig, signers...]; the signers need not sign)."""
    return [
        create_account(
            CreateAccountParams(
                from_pubkey=payer,
                to_pubkey=multisig,
                lamports=rent(MULTISIG_BYTES),
                space=MULTISIG_BYTES,
                owner=token_program,
            )
        ),
        Instruction(token_program, bytes([19, m]), [sol.w(multisig), *(sol.ro(key) for key in members)]),
    ]


def _option(key: Pubkey | None) -> bytes:
    """A `COption<Pubkey>` in instruction data: 0, or 1 and the key."""
    return b"\x00" if key is None else b"\x01" + bytes(key)


def _nullable(key: Pubkey | None) -> bytes:
    """An `OptionalNonZeroPubkey`: the key, or 32 zero bytes."""
    return bytes(32) if key is None else bytes(key)


@dataclass(frozen=True)
class Fee:
    """A TransferFeeConfig to initialize: ``basis_points`` of each transfer, at most ``maximum``,
    withdrawn by ``withdraw_authority``."""

    basis_points: int
    maximum: int
    withdraw_authority: Pubkey | None
    config_authority: Pubkey | None = None


def create_mint_2022(
    payer: Pubkey,
    mint: Pubkey,
    authority: Pubkey,
    decimals: int,
    *,
    fee: Fee | None = None,
    permanent_delegate: Pubkey | None = None,
    transfer_hook: tuple[Pubkey | None, Pubkey | None] | None = None,
) -> list[Instruction]:
    """A Token-2022 mint with the extensions given: the account made at its extended size, each
    extension initialized, then the mint (InitializeMint2, tag 20; extensions come first)."""
    program, target = sol.TOKEN_2022, [sol.w(mint)]
    extensions: list[tuple[int, Instruction]] = []
    if fee is not None:
        data = _option(fee.config_authority) + _option(fee.withdraw_authority)
        data += struct.pack("<HQ", fee.basis_points, fee.maximum)
        extensions.append((TRANSFER_FEE_CONFIG_BYTES, Instruction(program, bytes([26, 0]) + data, target)))
    if permanent_delegate is not None:
        extensions.append(
            (PERMANENT_DELEGATE_BYTES, Instruction(program, bytes([35]) + bytes(permanent_delegate), target))
        )
    if transfer_hook is not None:
        data = bytes([36, 0]) + _nullable(transfer_hook[0]) + _nullable(transfer_hook[1])
        extensions.append((TRANSFER_HOOK_BYTES, Instruction(program, data, target)))
    size = TOKEN_ACCOUNT_BYTES + 1 + sum(4 + length for length, _ in extensions) if extensions else 82
    made = create_account(
        CreateAccountParams(from_pubkey=payer, to_pubkey=mint, lamports=rent(size), space=size, owner=program)
    )
    initialize = Instruction(program, bytes([20, decimals]) + bytes(authority) + b"\x00", target)
    return [made, *(ix for _, ix in extensions), initialize]
