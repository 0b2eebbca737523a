"""Dust: an output worth less than spending it would cost, which nodes do not relay.

The rule is Bitcoin Core's relay policy (src/policy/policy.cpp, `GetDustThreshold` and `IsDust`),
which btcd's mempool (mempool/policy.go, `IsDust`) draws at the same line: an output is dust when
it pays less than the dust relay fee (`DUST_RELAY_TX_FEE`, 3,000 satoshis per 1,000 virtual bytes)
on its own serialized size plus that of the smallest input that spends it: 148 bytes for a script
that is not a witness program, 32 + 4 + 1 + 107 / 4 + 4 = 67 for one that is (the 107 bytes of a
P2WPKH witness at a quarter, rounded down). So 546 satoshis to P2PKH, 540 to P2SH, 294 to P2WPKH,
330 to P2WSH and P2TR. An output no script can spend (OP_RETURN, or a script over 10,000 bytes) is
never dust. A transaction with a dust output is not standard: the network does not carry it.
"""

from __future__ import annotations

from embit import compact

__all__ = ["DUST_RELAY_FEE_SAT_VB", "threshold"]

DUST_RELAY_FEE_SAT_VB = 3  # DUST_RELAY_TX_FEE: 3,000 sat/kvB
_INPUT = 32 + 4 + 1 + 107 + 4  # outpoint, script length, P2PKH scriptSig (signature and key), sequence
_WITNESS_INPUT = 32 + 4 + 1 + 107 // 4 + 4  # the same with its 107 bytes as a witness, at a quarter
_OP_RETURN = 0x6A
_MAX_SCRIPT_SIZE = 10_000  # consensus: a longer script fails when it runs
_OP_0, _OP_1, _OP_16 = 0x00, 0x51, 0x60


def threshold(script: bytes) -> int:
    """The least an output to ``script`` may pay, in satoshis, and not be dust."""
    if script[:1] == bytes([_OP_RETURN]) or len(script) > _MAX_SCRIPT_SIZE:
        return 0  # CScript::IsUnspendable
    size = 8 + len(compact.to_bytes(len(script))) + len(script)  # the output: amount, length, script
    size += _WITNESS_INPUT if _witness_program(script) else _INPUT
    return DUST_RELAY_FEE_SAT_VB * size


def _witness_program(script: bytes) -> bool:
    """CScript::IsWitnessProgram (BIP-141): a version opcode (OP_0, OP_1 to OP_16), then one push
    of 2 to 40 bytes and nothing else."""
    return (
        4 <= len(script) <= 42 and (script[0] == _OP_0 or _OP_1 <= script[0] <= _OP_16) and script[1] + 2 == len(script)
    )
