"""``warden up`` and ``warden demo``: the embedded stack, left running until Ctrl-C or driven
through the scripted demo."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import signal
import time

from infra import demo
from infra.cli.output import add_json_flag, fail, note, print_json
from infra.stack import LocalStack, StackError
from runtime.config import Settings, load


def _settings(**overrides) -> Settings:
    return dataclasses.replace(load(), **overrides)


def cmd_up(args) -> int:
    settings = _settings(topology=args.topology, allow_dev_root=True)
    stack = LocalStack(settings)
    try:
        stack.start()
    except StackError as exc:
        stack.stop()
        return fail("warden up", exc)
    rows = stack.describe()
    if args.json:
        print_json({"home": str(settings.home), "processes": rows})
    else:
        print(f"Warden is up (WARDEN_HOME={settings.home}, topology={settings.topology}, tee={settings.tee})")
        for row in rows:
            print(f"  {row['name']:8} pid {row['pid']:<7} {row['address']:45} log {row['log']}")
        print("Ctrl-C stops everything.")
    stopping = {"now": False}

    def _stop(*_):
        stopping["now"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping["now"]:
            for process in stack.processes.values():
                if process.proc.poll() is not None:
                    note(f"warden up: {process.name} exited with code {process.proc.returncode}; "
                         f"see {process.log_path}")
                    stopping["now"] = True
            time.sleep(0.5)
    finally:
        note("stopping...")
        stack.stop()
    return 0


def cmd_demo(args) -> int:
    # Each demo runs on a fresh embedded stack under $WARDEN_HOME/demo, kept afterwards for
    # `WARDEN_HOME=.warden/demo warden audit verify` and friends.
    home = load().home / "demo"
    shutil.rmtree(home, ignore_errors=True)
    settings = _settings(home=home, topology=args.topology, allow_dev_root=True, allow_unattested_signer=True)
    progress = (lambda m: None) if args.quiet else note
    stack = LocalStack(settings)
    try:
        progress(f"starting the embedded stack under {settings.home} (Tansu, Anvil, ledger, streams, signer)...")
        stack.start()
        report = asyncio.run(demo.run_script(settings, progress))
        report["ledger"] = demo.verify_ledger(settings, progress)
    except StackError as exc:
        return fail("warden demo", exc)
    finally:
        stack.stop()
    if args.json:
        print_json(report)
    else:
        print(demo.render(report))
        ledger = report["ledger"]
        print(f"audit ledger: {ledger['events_in_ledger']} events, chains "
              f"{'verified' if ledger.get('ok') else 'FAILED verification'}; "
              f"inspect with WARDEN_HOME={settings.home} warden audit verify")
    return 0 if report["all_as_expected"] and report["ledger"].get("ok") else 1


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    p.set_defaults(handler=cmd_demo if command == "demo" else cmd_up)
    add_json_flag(p)
    p.add_argument("--topology", choices=("fused", "split"), default=load().topology)
    if command == "demo":
        p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
