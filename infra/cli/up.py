"""``warden up`` and ``warden demo``: the embedded stack, left running until Ctrl-C or driven
through the scripted demo."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import shutil
import signal
import sys
import time
from typing import Any

from infra.cli.output import add_json_flag, fail, note, print_json
from infra.stack.local import LocalStack, StackError, console_origin, local_nodes
from infra.stack.supervisor import Supervisor
from runtime.config import Settings, load
from runtime.trust import LOCAL_ADMIN_ID

# What `warden up` starts (the stack benchmarks on the durable stack start the same).
UP_PARTS = ("broker", "anvil", "solana", "bitcoin", "streams", "signer", "ledger", "api", "console")


def _settings(**overrides: Any) -> Settings:
    return dataclasses.replace(load(), **overrides)


def cmd_up(args: argparse.Namespace) -> int:
    settings = _settings(
        topology=args.topology, allow_dev_root=True, broker_storage="memory" if args.memory else "durable"
    )
    # Every process is told the console's origin: the worker and the signer believe passkey
    # assertions made for it, and for no other.
    settings = dataclasses.replace(settings, console_origin=console_origin(settings))
    stack = LocalStack(settings, brokers=args.brokers)
    try:
        stack.start(UP_PARTS)
    except StackError as exc:
        stack.stop()
        return fail("warden up", exc)
    except KeyboardInterrupt:  # Ctrl-C while starting: what started stops too
        note("stopping...")
        stack.stop()
        return 130
    rows = stack.describe()
    nodes = local_nodes(stack.settings, stack.processes)
    if args.json:
        print_json({"home": str(settings.home), "processes": rows, "nodes": nodes})
    else:
        print(
            f"Warden is up (WARDEN_HOME={settings.home}, topology={settings.topology}, WARDEN_TEE={settings.tee}, "
            f"broker storage={settings.broker_storage})"
        )
        width = max(len(row["name"]) for row in rows)
        for row in rows:
            print(f"  {row['name']:{width}} pid {row['pid']:<7} {row['address']:45} log {row['log']}")
        for node in nodes:
            # The URL without the user and password it may carry (btcd's): where they are instead.
            kept = f", user and password in {node['credentials']}" if "credentials" in node else ""
            print(
                f"  {node['family']} node: {node['chain']} at {node['rpc_url']}{kept} "
                f"(`warden fund --chain {node['chain']}`)"
            )
        print("A crashed Warden service is restarted; `warden status` shows them. Ctrl-C stops everything.")
    sys.stdout.flush()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s warden up %(levelname)s %(message)s")
    supervisor = Supervisor(stack)
    stopping = {"now": False}

    def _stop(*_: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    code = 0
    try:
        while not stopping["now"]:
            why = supervisor.tick()
            if why is not None:
                note(f"warden up: {why}")
                code = 1
                break
            time.sleep(0.5)
    finally:
        note("stopping...")
        supervisor.stopping()
        stack.stop()
        supervisor.stopped()
    return code


def cmd_demo(args: argparse.Namespace) -> int:
    # The demo's script (an MCP client, HTTP, Solana and x402 clients, the contracts) and the blobs'
    # trusted setup: imported here, not at the top, so `warden up` does not load them (over a second).
    from evm import blobs
    from infra.stack import demo
    from schemas.auth import public_key_hex
    from sdk.admin import load_or_create_admin_key

    # Each demo runs on a fresh embedded stack under $WARDEN_HOME/demo, kept afterwards for
    # `WARDEN_HOME=.warden/demo warden audit verify` and friends.
    home = load().home / "demo"
    shutil.rmtree(home, ignore_errors=True)
    # Two admins, and both needed to approve a parked intent: the demo shows a quorum at work.
    admins = {a: public_key_hex(load_or_create_admin_key(home, a)) for a in (LOCAL_ADMIN_ID, demo.SECOND_ADMIN)}
    settings = _settings(
        home=home,
        topology=args.topology,
        allow_dev_root=True,
        allow_unattested_signer=True,
        admin_id=LOCAL_ADMIN_ID,
        admin_keys=",".join(f"{a}={public}" for a, public in admins.items()),
        admin_quorum="policy=1,approval=2,keys=1,chains=1,admins=2",
    )
    progress = (lambda _m: None) if args.quiet else note
    # Checkpoints every second: the receipt checked at the end needs one over the last outcome.
    stack = LocalStack(settings, extra_env={"WARDEN_LEDGER_CHECKPOINT_SECONDS": "1"})
    try:
        progress(
            f"starting the embedded stack under {settings.home} (Tansu, Anvil, surfpool, btcd, a witness, ledger, streams, signer, API)..."
        )
        # The local Solana node first: it also plays solana-devnet for the x402 SDK (which knows
        # Solana clusters by name only), so the services start knowing it as devnet's RPC too.
        stack.start_solana()
        devnet = {"SOLANA_DEVNET": settings.solana_rpc_url("solana-local")}
        settings = stack.settings = dataclasses.replace(settings, rpc_urls={**settings.rpc_urls, **devnet})
        # The script sends a blob transaction: its trusted setup loads while the services start.
        parts = ("broker", "anvil", "bitcoin", "witness", "streams", "signer", "ledger", "api")
        stack.start(parts, blobs=True, while_services_start=blobs.load_trusted_setup)
        report = asyncio.run(
            demo.run_script(settings, progress, over_http=True, solana=True, x402_solana=True, bitcoin=True)
        )
        report["ledger"] = demo.verify_ledger(settings, progress, witnesses=(stack.witness,))
        report["receipt"] = demo.check_receipt(settings, report, stack.witness, progress)
    except StackError as exc:
        return fail("warden demo", exc)
    finally:
        stack.stop()
    if args.json:
        print_json(report)
    else:
        print(demo.render(report))
        ledger = report["ledger"]
        believed = (
            "every record signed by its writer"
            if not ledger["records_not_believed"]
            else f"{ledger['records_not_believed']} record(s) NOT BELIEVED (see warden audit verify)"
        )
        print(
            f"audit ledger: {ledger['events_in_ledger']} events, chains "
            f"{'verified' if ledger.get('ok') else 'FAILED verification'}, {believed}; "
            f"inspect with WARDEN_HOME={settings.home} warden audit verify"
        )
    ledger_ok = report["ledger"].get("ok") and not report["ledger"]["records_not_believed"]
    return 0 if report["all_as_expected"] and ledger_ok and report["receipt"]["ok"] else 1


def _broker_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 5:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of brokers from 1 to 5")
    return int(text)


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    p.set_defaults(handler=cmd_demo if command == "demo" else cmd_up)
    add_json_flag(p)
    p.add_argument(
        "--topology",
        choices=("fused", "split"),
        default=load().topology,
        help="fused: intake and every guardrail in one hop of the worker; split: the intent handed from stage to "
        "stage over warden.stage.<stage> topics (default: WARDEN_TOPOLOGY, else fused)",
    )
    if command == "up":
        p.add_argument(
            "--memory",
            action="store_true",
            help="the embedded broker (Tansu) with its log, and the chain, in memory (lost on exit), instead of "
            "Apache Kafka with its log under $WARDEN_HOME/kafka and the chain's state under $WARDEN_HOME/anvil",
        )
        p.add_argument(
            "--brokers",
            type=_broker_count,
            default=None,
            help="Apache Kafka nodes (KRaft, each a broker and a controller), 1 to 5: each topic gets min(N, 3) "
            "replicas and needs min(N, 2) of them for every write. Fixed by a home's first start (default: as the "
            "home has it, 1 for a new home)",
        )
    if command == "demo":
        p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
