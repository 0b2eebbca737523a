"""`warden`: the command line for operators, agents' developers and auditors.

Human-readable by default; ``--json`` prints one machine-readable document.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import orjson

from runtime.config import Settings, load


def _print_json(doc) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def _settings(**overrides) -> Settings:
    return dataclasses.replace(load(), **overrides)


# -- stack ----------------------------------------------------------------------------------------

def cmd_up(args) -> int:
    from infra.stack import LocalStack, StackError

    settings = _settings(topology=args.topology, allow_dev_root=True)
    stack = LocalStack(settings)
    try:
        stack.start()
    except StackError as exc:
        stack.stop()
        print(f"warden up: {exc}", file=sys.stderr)
        return 1
    rows = stack.describe()
    if args.json:
        _print_json({"home": str(settings.home), "processes": rows})
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
                    print(f"warden up: {process.name} exited with code {process.proc.returncode}; "
                          f"see {process.log_path}", file=sys.stderr)
                    stopping["now"] = True
            time.sleep(0.5)
    finally:
        print("stopping...", file=sys.stderr)
        stack.stop()
    return 0


def cmd_demo(args) -> int:
    from infra import demo
    from infra.stack import LocalStack, StackError

    # Each demo runs on a fresh embedded stack under $WARDEN_HOME/demo, kept afterwards for
    # `WARDEN_HOME=.warden/demo warden audit verify` and friends.
    home = load().home / "demo"
    shutil.rmtree(home, ignore_errors=True)
    settings = _settings(home=home, topology=args.topology, allow_dev_root=True, allow_unattested_signer=True)
    progress = (lambda m: None) if args.quiet else demo.progress_to_stderr
    stack = LocalStack(settings)
    try:
        progress(f"starting the embedded stack under {settings.home} (Tansu, Anvil, ledger, streams, signer)...")
        stack.start()
        report = asyncio.run(demo.run_script(settings, progress))
        report["ledger"] = demo.verify_ledger(settings, progress)
    except StackError as exc:
        print(f"warden demo: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
    if args.json:
        _print_json(report)
    else:
        print(demo.render(report))
        ledger = report["ledger"]
        print(f"audit ledger: {ledger['events_in_ledger']} events, chains "
              f"{'verified' if ledger.get('ok') else 'FAILED verification'}; "
              f"inspect with WARDEN_HOME={settings.home} warden audit verify")
    return 0 if report["all_as_expected"] and report["ledger"].get("ok") else 1


# -- producers ------------------------------------------------------------------------------------

def cmd_submit(args) -> int:
    from infra.client import Client, load_or_create_agent_key, new_intent, wait_outcomes
    from runtime.kafka import end_offsets
    from schemas import topics

    settings = load()
    fields = {k: v for k, v in dict(tx_type=args.tx_type, data=args.data, gas_limit=args.gas_limit,
                                    simulate_first=args.simulate, broadcast=args.broadcast, nonce=args.nonce,
                                    signing_key_path=args.key_path).items() if v is not None}

    async def run():
        key = load_or_create_agent_key(settings.home, args.agent)
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        async with Client(settings) as client:
            share = None if args.client_share_file is None else await client.client_share(
                _read_client_share(args.client_share_file))
            cmek = None if args.cmek_file is None else await client.cmek(_read_cmek_text(args.cmek_file))
            try:
                intent = new_intent(key, agent_id=args.agent, chain=args.chain, to=args.to, value=args.value,
                                    idempotency_key=args.idempotency_key, client_share=share, cmek=cmek, **fields)
            finally:
                for held in (share, cmek):
                    if held is not None:
                        held.wipe()
            await (await client.submit(intent))
        if not args.wait:
            return intent, None
        outcomes = await wait_outcomes(settings, {intent.intent_id}, args.timeout, start)
        return intent, outcomes.get(intent.intent_id)

    from pydantic import ValidationError

    from schemas.sealing import SealingRefused

    try:
        intent, outcome = asyncio.run(run())
    except ValidationError as exc:
        from schemas.errors import explain

        print("warden submit: the intent is invalid:\n  " + "\n  ".join(explain(exc)), file=sys.stderr)
        return 2
    except (SealingRefused, ValueError, OSError) as exc:
        print(f"warden submit: {exc}", file=sys.stderr)
        return 2
    if args.json:
        _print_json({"intent": intent.model_dump(mode="json"),
                     "outcome": None if outcome is None else outcome.model_dump(mode="json", by_alias=True)})
    else:
        print(f"submitted {intent.intent_id}")
        if outcome is not None:
            print(_describe_outcome(outcome))
        elif args.wait:
            print(f"no outcome within {args.timeout} s: is the stack up (`warden up`)?")
    return 0 if outcome is None or getattr(outcome, "status", "rejected") != "rejected" else 1


def _describe_outcome(outcome) -> str:
    from schemas.models import IntentRejected

    if isinstance(outcome, IntentRejected):
        return f"REJECTED {outcome.intent_id} at {outcome.stage}: {outcome.code}: {outcome.reason}"
    extra = f" block {outcome.block_number}" if outcome.block_number is not None else ""
    error = f" ({outcome.error})" if outcome.error else ""
    return (f"SIGNED {outcome.intent_id} {outcome.status}{extra}{error} tx {outcome.tx_hash} from {outcome.from_} "
            f"nonce {outcome.nonce} chain {outcome.chain}({outcome.chain_id}) tee={outcome.tee}")


def cmd_tail(args) -> int:
    from runtime.kafka import follow
    from schemas import topics
    from schemas.models import IntentRejected, SignedTransaction

    settings = load()
    wanted = (topics.TXS_SIGNED, topics.INTENTS_REJECTED) + ((topics.DLQ,) if args.dlq else ())

    async def run():
        start = None if args.from_beginning else await _ends(settings, wanted)
        async for topic, value in follow(settings, wanted, start):
            if not topic:
                continue
            if args.json:
                sys.stdout.write(orjson.dumps({"topic": topic, "record": orjson.loads(value)}).decode() + "\n")
            elif topic == topics.TXS_SIGNED:
                print(_describe_outcome(SignedTransaction.from_bytes(value)))
            elif topic == topics.INTENTS_REJECTED:
                print(_describe_outcome(IntentRejected.from_bytes(value)))
            else:
                print(f"DLQ {orjson.loads(value)['reason']}")
            sys.stdout.flush()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


async def _ends(settings, wanted):
    from runtime.kafka import end_offsets

    return await end_offsets(settings, wanted)


# -- admin ----------------------------------------------------------------------------------------

def _policy_fields(args) -> dict:
    fields = {}
    if args.chains is not None:
        fields["tx_allowed_chains"] = tuple(c for c in args.chains.split(",") if c)
    if args.allowlist is not None:
        fields["tx_to_allowlist"] = tuple(a for a in args.allowlist.split(",") if a)
    if args.max_value is not None:
        fields["tx_max_value_eth"] = None if args.max_value == "none" else args.max_value
    if args.daily_limit is not None:
        fields["tx_daily_limit_eth"] = None if args.daily_limit == "none" else args.daily_limit
    if args.require_simulation is not None:
        fields["require_simulation"] = args.require_simulation == "on"
    if args.sender is not None:
        fields["sender_address"] = args.sender or None
    if args.intents_api is not None:
        fields["intents_api_enabled"] = args.intents_api == "on"
    return fields


def _current_policy(settings, agent_id):
    from runtime.kafka import follow
    from schemas import topics
    from schemas.models import AgentPolicy

    async def run():
        newest = None
        idle = 0
        async for topic, value in follow(settings, (topics.POLICIES,)):
            if not topic:
                idle += 1
                if idle >= 3:
                    break
                continue
            try:
                policy = AgentPolicy.from_bytes(value)
            except ValueError:
                continue
            if policy.agent_id == agent_id and (newest is None or policy.version > newest.version):
                newest = policy
        return newest

    return asyncio.run(run())


def _agent_address(settings, agent_id: str) -> str | None:
    """The agent's active ethereum address from the key store (public), for simulation."""
    from signer.custody_wiring import keystore_from_settings

    try:
        keys = keystore_from_settings(settings).list_keys("admin:local-admin", agent_id=agent_id, chain="ethereum")
    except Exception:  # no key store configured here: simulation then runs without a sender
        return None
    active = [k.address for k in keys if k.active]
    return active[-1] if active else None


def cmd_agents(args) -> int:
    from infra.client import Client, load_or_create_agent_key, signed_policy
    from schemas.auth import public_key_hex

    settings = load()
    current = _current_policy(settings, args.agent)
    if args.action == "show":
        if current is None:
            print(f"no policy for agent {args.agent!r}", file=sys.stderr)
            return 1
        doc = current.model_dump(mode="json")
        if args.json:
            _print_json(doc)
        else:
            for key, value in doc.items():
                print(f"{key:22} {value}")
        return 0
    if args.action == "create" and current is not None:
        print(f"agent {args.agent!r} exists (policy v{current.version}); use `warden agents update`", file=sys.stderr)
        return 1
    if args.action == "update" and current is None:
        print(f"agent {args.agent!r} has no policy yet; use `warden agents create`", file=sys.stderr)
        return 1
    base = {} if current is None else current.model_dump(exclude={"signature", "issued_at", "admin_key_id",
                                                                  "schema_version"})
    agent_key = load_or_create_agent_key(settings.home, args.agent)
    if args.sender is None and not base.get("sender_address"):
        args.sender = _agent_address(settings, args.agent)
    fields = {**base, "agent_id": args.agent, "agent_public_key": public_key_hex(agent_key),
              "version": (current.version + 1) if current else 1, **_policy_fields(args)}
    policy = signed_policy(settings, **fields)

    async def publish():
        async with Client(settings) as client:
            return await client.publish_policy(policy, wait_s=args.wait)

    verdict = asyncio.run(publish())
    if verdict == "policy.refused":
        print(f"agent {args.agent}: the worker refused policy v{policy.version}; see `warden audit query`",
              file=sys.stderr)
        return 1
    if args.json:
        _print_json(policy.model_dump(mode="json"))
    else:
        print(f"agent {args.agent}: policy v{policy.version} signed by {policy.admin_key_id} and published")
    return 0


def cmd_keys(args) -> int:
    from signer.custody.errors import CustodyError, InvalidKey, PermissionDenied
    from signer.custody.vault import AGENT_KEYS_VAULT, CLIENT_MODES
    from signer.custody_wiring import AuditOutbox, VaultOutbox, keystore_from_settings

    needs = {"list": (), "provision-signer": ("chain",)}.get(args.action, ("agent", "chain"))
    missing = [f"--{name}" for name in needs if not getattr(args, name)]
    if missing:
        print(f"warden keys {args.action}: {' and '.join(missing)} required", file=sys.stderr)
        return 2
    settings = load()
    outbox, vault_events = AuditOutbox(), VaultOutbox()
    actor = args.actor
    try:
        share = None if args.client_share_file is None else _read_client_share(args.client_share_file)
    except (ValueError, OSError) as exc:
        print(f"warden keys {args.action}: {exc}", file=sys.stderr)
        return 2
    try:
        store = keystore_from_settings(settings, audit=outbox, vault_outbox=vault_events)
        if args.cmek_file is not None:
            from infra.vault_cli import UsageError, read_cmek

            try:
                cmek = read_cmek(args.cmek_file, "--cmek-file")
            except UsageError as exc:
                print(f"warden keys {args.action}: {exc}", file=sys.stderr)
                return 2
            try:
                store.vaults.load_cmek("default", AGENT_KEYS_VAULT, cmek)
            finally:
                cmek[:] = bytes(len(cmek))
        if args.action == "provision":
            doc = dataclasses.asdict(store.provision(args.agent, args.chain, actor=actor, client_share=share))
        elif args.action == "provision-signer":
            doc = dataclasses.asdict(store.provision_signer(args.chain, actor=actor, client_share=share))
        elif args.action == "rotate":
            doc = dataclasses.asdict(store.rotate(args.agent, args.chain, actor=actor, client_share=share))
        elif args.action == "deactivate":
            doc = {"agent_id": args.agent, "chain": args.chain,
                   "deactivated_versions": store.deactivate(args.agent, args.chain, actor=actor,
                                                            version=args.version)}
        else:
            doc = [{**dataclasses.asdict(k), "created_at": k.created_at.isoformat()}
                   for k in store.list_keys(actor, agent_id=args.agent, chain=args.chain)]
    except PermissionDenied as exc:
        print(f"warden keys {args.action}: refused: {exc}", file=sys.stderr)
        _publish(settings, outbox.drain())
        return 3
    except InvalidKey:
        mode = store.vaults.mode("default", AGENT_KEYS_VAULT)
        needs = []
        if mode in CLIENT_MODES:
            needs.append(f"the client share shown when it was created (it is in {mode}; --client-share-file)")
        if store.vaults.cmek_fingerprint("default", AGENT_KEYS_VAULT) is not None:
            needs.append("its current customer-managed key (--cmek-file)")
        hint = ("the signing-key vault needs " + " and ".join(needs) if needs
                else "a root of trust refused to unwrap the vault key")
        print(f"warden keys {args.action}: {InvalidKey()}: {hint}", file=sys.stderr)
        return 1
    except CustodyError as exc:
        from infra.vault_cli import cli_hint

        print(f"warden keys {args.action}: {cli_hint(str(exc))}", file=sys.stderr)
        return 1
    _publish(settings, vault_events.drain() + outbox.drain())
    created_share = doc.pop("client_share", None) if isinstance(doc, dict) else None
    if created_share is not None:
        _hand_over_client_share(created_share, args.client_share_out, settings.key_mode, doc)
    if args.json:
        _print_json(doc)
    elif isinstance(doc, list):
        for row in doc:
            print("  ".join(f"{k}={v}" for k, v in row.items() if k != "public_key_hex"))
    else:
        print("  ".join(f"{k}={v}" for k, v in doc.items()))
    return 0


def _read_client_share(path: str) -> str:
    """A client share from a file (``-``: standard input), never from the command line, where
    other users of the machine could read it in the process list."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    from schemas.sealing import decode_client_share

    decode_client_share(text)  # a clear error now rather than an opaque refusal later
    return text.strip()


def _read_cmek_text(path: str) -> str:
    """A customer-managed key file (32 raw bytes or base64 text) as base64 text for the SDK."""
    import base64

    from infra.vault_cli import UsageError, read_cmek

    try:
        key = read_cmek(path, "--cmek-file")
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    try:
        return base64.b64encode(key).decode()
    finally:
        key[:] = bytes(len(key))


def _hand_over_client_share(share: str, out: str | None, mode: str, doc: dict) -> None:
    """The one time the client share exists outside the client: write it to ``out`` (0600) or
    show it on stderr, never in the ``--json`` document on stdout, which tends to be logged."""
    if out is not None:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(share + "\n")
        doc["client_share_written_to"] = out
        where = f"written to {out} (mode 0600)"
    else:
        print(f"CLIENT SHARE ({mode}), shown once: {share}", file=sys.stderr)
        where = "printed above on stderr"
    print(f"The signing-key vault was created in {mode}. Its client share is {where}. Warden keeps no copy, "
          "and cannot sign or add keys without it (--client-share-file): keep it safe.", file=sys.stderr)


def _publish(settings: Settings, emits) -> None:
    """Custody changes belong on their topics and in the ledger; without a reachable broker,
    say so plainly (the vault's file log under WARDEN_HOME still holds the change)."""
    if not emits:
        return
    from infra.client import Client

    async def publish():
        async with Client(settings) as client:
            for emit in emits:
                await client.send(emit.topic, emit.key, emit.value)
            await client.flush()

    try:
        asyncio.run(asyncio.wait_for(publish(), timeout=10))
    except Exception as exc:  # the change is done; its audit record must not vanish silently
        print(f"warning: {len(emits)} custody event(s) not published to warden.vault / warden.audit.events "
              f"({exc.__class__.__name__}: broker {settings.broker} unreachable?)", file=sys.stderr)


def cmd_schemas(args) -> int:
    from schemas.export import export

    written = export(Path(args.dir))
    if args.json:
        _print_json([str(p) for p in written])
    else:
        for path in written:
            print(f"wrote {path}")
    return 0


def cmd_chains(args) -> int:
    from schemas.chains import REGISTRY, Chain

    if args.action == "add":
        try:
            REGISTRY.add(Chain(args.name, args.chain_id, args.currency, args.explorer or "",
                               key_chain=args.key_chain, testnet=args.testnet))
        except ValueError as exc:
            print(f"warden chains add: {exc}", file=sys.stderr)
            return 1
    chains = [dataclasses.asdict(c) for c in REGISTRY.all().values()]
    if args.json:
        _print_json(chains)
    else:
        for c in chains:
            print(f"{c['name']:15} {c['chain_id']:>11}  {c['currency']:7} key:{c['key_chain']:9} "
                  f"{'testnet ' if c['testnet'] else ''}{c['explorer']}")
    return 0


def cmd_bench(args) -> int:
    module = {"pipeline": "infra.bench_pipeline", "sign": "infra.bench_sign", "ledger": "infra.bench_ledger",
              "custody": "infra.bench_custody"}[args.what]
    import importlib

    return importlib.import_module(module).main(args.rest + (["--json"] if args.json else [])) or 0


# -- parser ---------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="warden", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, handler, help_):
        p = sub.add_parser(name, help=help_)
        p.set_defaults(handler=handler)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    p = command("up", cmd_up, "start broker, Anvil, ledger, streams worker and signer; Ctrl-C stops")
    p.add_argument("--topology", choices=("fused", "split"), default=load().topology)
    p = command("demo", cmd_demo, "the main job: run the scripted demo on the embedded stack")
    p.add_argument("--topology", choices=("fused", "split"), default=load().topology)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    p = command("submit", cmd_submit, "sign an intent with the agent's key and publish it")
    p.add_argument("--agent", required=True)
    p.add_argument("--chain", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--value", required=True, help='decimal string in the native unit, e.g. "0.05"')
    p.add_argument("--data")
    p.add_argument("--tx-type", type=int, choices=(0, 1, 2))
    p.add_argument("--gas-limit", type=int)
    p.add_argument("--nonce", type=int)
    p.add_argument("--key-path")
    p.add_argument("--idempotency-key")
    p.add_argument("--simulate", action="store_true", default=None)
    p.add_argument("--broadcast", action="store_true", default=None)
    p.add_argument("--no-wait", dest="wait", action="store_false")
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--client-share-file", help="client-custody vaults: file holding the client share (- for stdin); "
                                               "it is sealed to the signer, never sent in the clear")
    p.add_argument("--cmek-file", help="a signing-key vault with a customer-managed key: file holding it (32 raw "
                                       "bytes or base64); sealed to the signer like the client share")

    p = command("tail", cmd_tail, "follow signed transactions and rejections")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--dlq", action="store_true", help="also show dead letters")

    p = command("agents", cmd_agents, "create, update or show an agent's admin-signed policy")
    p.add_argument("action", choices=("create", "update", "show"))
    p.add_argument("--agent", required=True)
    p.add_argument("--chains", help="comma-separated allowed chains (empty: any)")
    p.add_argument("--allowlist", help="comma-separated recipient addresses (empty: any)")
    p.add_argument("--max-value", help='per-transaction cap in the native unit, or "none"')
    p.add_argument("--daily-limit", help='rolling 24 h limit in the native unit, or "none"')
    p.add_argument("--require-simulation", choices=("on", "off"))
    p.add_argument("--intents-api", choices=("on", "off"))
    p.add_argument("--sender", help="the agent's EVM address for simulation (default: its provisioned key)")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the worker to apply it")

    p = command("keys", cmd_keys, "provision, list, rotate or deactivate signing keys (admins only)")
    p.add_argument("action", choices=("provision", "provision-signer", "list", "rotate", "deactivate"))
    p.add_argument("--agent", help="required except for list and provision-signer (the shared keys/{chain}-signer)")
    p.add_argument("--version", type=int, help="deactivate: one version (default: every active one)")
    p.add_argument("--chain", help="ethereum, bitcoin, solana, xrp, cardano or tron (default for list: all)")
    p.add_argument("--actor", default="admin:local-admin", help='who asks: "admin:<id>" or "agent:<id>"')
    p.add_argument("--client-share-file", help="client-custody vaults: file holding the client share (- for stdin)")
    p.add_argument("--cmek-file", help="the signing-key vault's customer-managed key, if it has one (32 raw bytes or "
                                       "base64), for writes")
    p.add_argument("--client-share-out", help="when this call creates a client-custody vault: write its client "
                                              "share to this new file (0600) instead of showing it on stderr")

    p = command("schemas", cmd_schemas, "export JSON Schemas for producers in other languages")
    p.add_argument("action", choices=("export",))
    p.add_argument("dir")

    p = command("chains", cmd_chains, "list the chain registry, or add a chain (admins)")
    p.add_argument("action", choices=("list", "add"))
    p.add_argument("--name")
    p.add_argument("--chain-id", type=int)
    p.add_argument("--currency", default="ETH")
    p.add_argument("--explorer")
    p.add_argument("--key-chain", default="ethereum")
    p.add_argument("--testnet", action="store_true")

    p = command("bench", cmd_bench, "benchmarks that print figures")
    p.add_argument("what", choices=("pipeline", "sign", "ledger", "custody"))
    p.add_argument("rest", nargs=argparse.REMAINDER)

    try:
        from streams.ledger.cli import add_commands
    except ImportError:
        pass
    else:
        audit = sub.add_parser("audit", help="verify, prove, export and query the audit ledger")
        add_commands(audit.add_subparsers(dest="audit_command", required=True))
    from infra.vault_cli import add_commands as add_vault_commands

    vault = sub.add_parser("vault", help="create vaults, store and read secrets, grant agents access (custody)")
    add_vault_commands(vault.add_subparsers(dest="vault_command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
