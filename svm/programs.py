"""The programs whose instructions Warden reads, by id (base58)."""

from __future__ import annotations

SYSTEM = "11111111111111111111111111111111"
TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022 = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
ASSOCIATED_TOKEN = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"
COMPUTE_BUDGET = "ComputeBudget111111111111111111111111111111"
MEMO = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"

TOKEN_PROGRAMS = frozenset({TOKEN, TOKEN_2022})

# What every signature costs, in lamports (the runtime's fixed base fee).
LAMPORTS_PER_SIGNATURE = 5_000
# A compute-unit price is in micro-lamports per compute unit.
MICRO_LAMPORTS_PER_LAMPORT = 1_000_000
# The compute-unit limit a transaction has when it sets none: 200,000 for each instruction that
# is not a compute-budget one, at most 1,400,000 (the runtime's defaults).
DEFAULT_UNITS_PER_INSTRUCTION = 200_000
MAX_COMPUTE_UNITS = 1_400_000
