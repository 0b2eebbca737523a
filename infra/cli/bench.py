"""``warden bench``: run one of the benchmarks (``infra/bench/``), passing it the rest of
the command line."""

from __future__ import annotations

import argparse
import importlib

from infra.cli.output import add_json_flag

BENCHMARKS = {
    "pipeline": "infra.bench.pipeline",
    "soak": "infra.bench.soak",
    "sign": "infra.bench.sign",
    "ledger": "infra.bench.ledger",
    "custody": "infra.bench.custody",
    "broker": "infra.bench.broker",
    "broker-check": "infra.bench.broker_check",
    "tracker": "infra.bench.tracker",
    "evm": "infra.bench.evm",
    "api": "infra.bench.api",
}


def cmd_bench(args: argparse.Namespace) -> int:
    # Only the chosen benchmark is imported: each has dependencies the others do without (bench/sign.py
    # needs eth-account, a test-only dependency; bench/pipeline.py the whole stack).
    benchmark = importlib.import_module(BENCHMARKS[args.what])
    return benchmark.main(args.rest + (["--json"] if args.json else [])) or 0


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    p.set_defaults(handler=cmd_bench)
    add_json_flag(p)
    p.add_argument("what", choices=tuple(BENCHMARKS))
    p.add_argument("rest", nargs=argparse.REMAINDER)
