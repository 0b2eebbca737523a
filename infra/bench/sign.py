"""Signing throughput: Warden's signer core against eth-account.

Both sides sign the same EIP-1559 ERC-20 ``transfer`` with the same key, and
the outputs are checked to be byte-identical before anything is timed, so the
comparison is between two implementations of the same work. The project
target is ``ratio >= 8``.

``ours_per_s`` times ``sign_transaction`` on an already-built (and therefore
already-validated) ``FeeMarketTransaction`` with the sender address passed in,
as the signer service calls it (it derives each key version's address once and
caches it); ``ours_deriving_sender_per_s`` derives the address on every call. eth-account's call also turns a
dict into a transaction, so ``ours_with_build_per_s`` additionally builds the
transaction from its fields on every iteration, for the like-for-like figure.

The two sides run in alternating chunks so CPU frequency drift or a noisy
neighbour affects both equally, with the garbage collector paused as timeit
does.

Usage: ``python -m infra.bench.sign [-n N] [--json]``
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from typing import Any

# eth-account is a test/benchmark-only dependency; the signer never imports it.
from eth_account import Account

from evm.transactions import FeeMarketFields, FeeMarketTransaction, checksum, sign_transaction
from infra.cli.output import print_json

TARGET_RATIO = 8
CHUNKS = 10

_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
_USDC = bytes.fromhex("a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
_RECIPIENT = bytes.fromhex("35" * 20)
# transfer(address,uint256) of 25 USDC (6 decimals).
_TRANSFER = bytes.fromhex("a9059cbb") + bytes(12) + _RECIPIENT + (25 * 10**6).to_bytes(32, "big")


_FIELDS = FeeMarketFields(
    chain_id=1,
    nonce=42,
    max_priority_fee_per_gas=2 * 10**9,
    max_fee_per_gas=30 * 10**9,
    gas=65_000,
    to=_USDC,
    value=0,
    data=_TRANSFER,
    access_list=(),
)


def _eth_account_dict() -> dict[str, Any]:
    return {
        "type": 2,
        "chainId": _FIELDS["chain_id"],
        "nonce": _FIELDS["nonce"],
        "maxPriorityFeePerGas": _FIELDS["max_priority_fee_per_gas"],
        "maxFeePerGas": _FIELDS["max_fee_per_gas"],
        "gas": _FIELDS["gas"],
        "to": checksum(_USDC),
        "value": _FIELDS["value"],
        "data": _TRANSFER,
        "accessList": [],
    }


def run(n: int = 2000) -> dict[str, Any]:
    """Sign the benchmark transaction ``n`` times with each implementation."""
    if n < 1:
        raise ValueError("n must be >= 1")
    tx = FeeMarketTransaction(**_FIELDS)
    chain_id = tx.chain_id
    key = bytearray(_KEY)
    eth_dict = _eth_account_dict()
    fields = _FIELDS

    ours = sign_transaction(tx, key, chain_id)
    sender = ours.sender
    theirs = Account.sign_transaction(eth_dict, _KEY)
    if ours.raw != bytes(theirs.raw_transaction) or sign_transaction(tx, key, chain_id, sender).raw != ours.raw:
        raise AssertionError("signer core and eth-account disagree on the benchmark transaction")

    chunk_sizes = [n // CHUNKS + (1 if i < n % CHUNKS else 0) for i in range(CHUNKS)]
    ours_s = derive_s = build_s = theirs_s = 0.0
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for size in chunk_sizes:
            if not size:
                continue
            loop = range(size)

            start = time.perf_counter()
            for _ in loop:
                sign_transaction(tx, key, chain_id, sender)
            ours_s += time.perf_counter() - start

            start = time.perf_counter()
            for _ in loop:
                sign_transaction(tx, key, chain_id)
            derive_s += time.perf_counter() - start

            start = time.perf_counter()
            for _ in loop:
                sign_transaction(FeeMarketTransaction(**fields), key, chain_id, sender)
            build_s += time.perf_counter() - start

            start = time.perf_counter()
            for _ in loop:
                Account.sign_transaction(eth_dict, _KEY)
            theirs_s += time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()
        key[:] = bytes(len(key))

    ours_per_s = n / ours_s
    build_per_s = n / build_s
    theirs_per_s = n / theirs_s
    return {
        "n": n,
        "ours_per_s": ours_per_s,
        "eth_account_per_s": theirs_per_s,
        "ratio": ours_per_s / theirs_per_s,
        "ours_deriving_sender_per_s": n / derive_s,
        "ratio_deriving_sender": (n / derive_s) / theirs_per_s,
        "ours_with_build_per_s": build_per_s,
        "ratio_with_build": build_per_s / theirs_per_s,
        "target_ratio": TARGET_RATIO,
    }


def _format(result: dict[str, Any]) -> str:
    def line(label: str, per_s: float) -> str:
        return f"  {label:<34} {per_s:>10,.0f} tx/s  {1e6 / per_s:>8.1f} us/tx"

    verdict = "meets" if result["ratio"] >= result["target_ratio"] else "BELOW"
    return "\n".join(
        [
            f"sign: EIP-1559 ERC-20 transfer, n={result['n']}",
            line("signer core (sign_transaction)", result["ours_per_s"]),
            line("signer core (deriving the sender)", result["ours_deriving_sender_per_s"]),
            line("signer core (build + sign)", result["ours_with_build_per_s"]),
            line("eth-account Account.sign_transaction", result["eth_account_per_s"]),
            f"  ratio {result['ratio']:.2f}x (deriving the sender {result['ratio_deriving_sender']:.2f}x, "
            f"build + sign {result['ratio_with_build']:.2f}x); "
            f"{verdict} the {result['target_ratio']}x target",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warden bench sign", description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="signatures per implementation")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(args.n)
    if args.json:
        print_json(result, compact=True)
    else:
        print(_format(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
