"""``warden``, the command line: ``main()`` and the top-level parser.

One module per command group: ``up`` (up, demo), ``status``, ``txs``, ``pay``, ``mcp``, ``submit`` (submit, sign, tail),
``simulate``, ``agents``, ``policy``,
``approvals``, ``admins``, ``keys``, ``fund``, ``vault``, ``audit``, ``webhooks``, ``witness``, ``attest``, ``schemas`` (schemas, chains) and ``bench``. ``output`` is what
they all print with (the one JSON printer, the stderr helpers); ``custody`` is what keys, vault
and submit share (key material read from files, publishing custody events). ``vault`` declares its
commands and runs them from ``vault_admin`` and ``vault_secrets``, in ``vault_run``'s context.

A group's module is imported only when one of its commands runs: ``COMMANDS`` holds the help
line ``warden --help`` shows for each, so ``warden --help`` loads no group and a command loads
its own group only (together they pull in Kafka, custody, chDB and pyarrow, most of a second).
That is the lazy import here (with `_learn_chains`'s, for a command that meets a chain name it does
not know). Inside a group, imports are at the top, but for a heavy one only some of its commands
use (the ledger's store, proofs and verifier in `audit`, ClickHouse in `status`, Kafka and the
policy's model in `agents` but for `api-key`, custody in `submit`, the demo's script in `up`):
that one is imported in the handler that uses it, with a comment saying why. Every command runs
as a process of its own in the tests and for users, so its start-up is paid each time.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from infra.cli.output import fail
from runtime.registry import REGISTRY
from schemas.errors import WardenError

DESCRIPTION = """`warden`: the command line for operators, agents' developers and auditors.

Human-readable by default; ``--json`` prints one machine-readable document."""

# command: (its group's module in this package, the line `warden --help` shows for it)
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("up", "start broker, Anvil, ledger, streams worker and signer; Ctrl-C stops"),
    "demo": ("up", "the main job: run the scripted demo on the embedded stack"),
    "status": ("status", "what `warden up` runs: pids, restarts, consumer and ledger lag"),
    "submit": ("submit", "sign an intent with the agent's key and publish it"),
    "sign": ("submit", "ask for a signature: `sign message`, `sign typed-data` or `sign tx`"),
    "tail": ("submit", "follow signed transactions and rejections"),
    "simulate": ("simulate", "simulate a transaction or a bundle and judge it against the policy; nothing signed"),
    "txs": ("txs", "what happened to an agent's transactions: list, or show one"),
    "pay": ("pay", "fetch a URL and pay its HTTP 402 (x402) through the agent's policy: `warden pay URL --agent A`"),
    "api": ("api", "the Intents API over HTTP: its REST endpoints and an OpenAPI document (`warden api`)"),
    "console": (
        "console",
        "the web console: admins log in and decide with passkeys (`warden console enrol --admin ID`)",
    ),
    "mcp": ("mcp", "the MCP server acting for one agent, over stdio or HTTP (`warden mcp --agent A [--http]`)"),
    "agents": ("agents", "create, update or show an agent's admin-signed policy"),
    "policy": ("policy", "what a new policy would have decided over the ledger's history: `policy what-if`"),
    "approvals": ("approvals", "what waits for admins: list, approve, deny, or sign a proposal (admins only)"),
    "admins": ("admins", "the admin set and its quorum: show, this admin's key, propose a change"),
    "keys": ("keys", "provision, list, rotate or deactivate signing keys (admins only)"),
    "fund": (
        "fund",
        "add native currency to an agent's address on the local Anvil: `warden fund --agent A --value 10`",
    ),
    "schemas": ("schemas", "export JSON Schemas for producers in other languages"),
    "chains": ("schemas", "list the chain registry; add a chain or change its finality (admins' quorum)"),
    "bench": ("bench", "benchmarks that print figures"),
    "audit": ("audit", "verify, prove, export and query the audit ledger"),
    "webhooks": ("webhooks", "audit webhooks: add an endpoint for chosen ledger events, list, remove (admins only)"),
    "witness": ("witness", "an independent witness of a ledger: cosigns only checkpoints that extend what it saw"),
    "attest": ("attest", "verify an SEV-SNP report against AMD's chain, or measure a guest image"),
    "signer": ("attest", "this signer's attestation evidence: `warden signer attest`"),
    "vault": ("vault", "create vaults, store and read secrets, grant agents access (custody)"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Every command, with the arguments of the one ``argv`` names: the first word that is not
    an option, since no top-level option takes a value."""
    named = next((word for word in argv if not word.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="warden", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_) in COMMANDS.items():
        command = sub.add_parser(name, help=help_)
        if name == named:
            importlib.import_module(f"{__name__}.{module}").add_arguments(name, command)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    # A chain the admins added is not in the built-in table this process starts with: a command
    # that meets a name (or chain id) it does not know reads the chains in force from warden.chains
    # first, once every 30 s at most (`warden mcp` and `warden pay` run long). No file says which.
    REGISTRY.when_unknown(_learn_chains)
    try:
        code: int = args.handler(args)
        return code
    except WardenError as exc:
        # An error Warden raises on purpose says what was wrong and what to do next: a person
        # reads that, not a traceback, and a script sees exit code 1.
        return fail(f"warden {args.command}", exc)


def _learn_chains() -> None:
    from runtime.config import load
    from sdk.records import learn_chains  # Kafka: only once a chain name is unknown

    learn_chains(load())
