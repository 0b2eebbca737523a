"""``warden witness ...``: an independent witness of a Warden ledger (c2sp.org/tlog-witness).

``warden witness key`` prints the witness's verifier key (its vkey), creating the key on first
use; ``warden witness run`` serves ``POST /add-checkpoint`` until stopped. The witness keeps its
own key and state (the last size and root it cosigned per log) under ``--dir``: run it on a host
the ledger's operator does not control, and give its vkey to the sink (WARDEN_LEDGER_WITNESSES)
and to auditors.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import time
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.cli.output import fail, print_json
from ledger.keys import SigningKeyError, load_or_create_witness_key
from ledger.note import COSIGNATURE_V1, ED25519, NoteError, NoteKey
from ledger.witness import Witness, WitnessRefused, WitnessState
from runtime.config import load
from schemas import topics

log = logging.getLogger("warden.witness")
MAX_BODY = 64 << 10  # an add-checkpoint body: 63 proof lines and a note with its signatures


def _dir(args: argparse.Namespace) -> Path:
    if args.dir:
        return Path(args.dir)
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", args.name)
    return load().home / "witness" / slug


def _key(args: argparse.Namespace) -> Ed25519PrivateKey:
    return load_or_create_witness_key(_dir(args))


def cmd_key(args: argparse.Namespace) -> int:
    try:
        key = NoteKey.of(args.name, COSIGNATURE_V1, _key(args))
    except (SigningKeyError, NoteError) as exc:
        return fail("witness key", exc, 2)
    if args.json:
        print_json({"name": key.name, "vkey": key.vkey, "key_id": key.key_id.hex()})
    else:
        print(key.vkey)
    return 0


def logs_of(vkeys: list[str], chains: int) -> dict[str, list[NoteKey]]:
    """Each ledger's origins (``<log name>/<chain>``, one per chain) and the key it signs with."""
    logs: dict[str, list[NoteKey]] = {}
    for vkey in vkeys:
        key = NoteKey.from_vkey(vkey)
        if key.type != ED25519:
            raise NoteError(f"--log {vkey}: a ledger's key is an Ed25519 note key (type 0x01)")
        for chain in range(chains):
            logs.setdefault(f"{key.name}/{chain}", []).append(key)
    return logs


def app(witness: Witness) -> web.Application:
    async def add_checkpoint(request: web.Request) -> web.Response:
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return web.Response(status=400, text=f"a request is at most {MAX_BODY} bytes\n")
        try:
            # In a thread: the check and the store are one SQLite transaction, synchronous=FULL.
            signature = await asyncio.to_thread(witness.add_checkpoint, body, int(time.time()))
        except WitnessRefused as exc:
            log.warning("refused (%d): %s", exc.status, exc)
            return web.Response(status=exc.status, body=exc.body.encode(), content_type=exc.content_type)
        log.info("cosigned %s", body.split(b"\n\n", 1)[-1].split(b"\n", 2)[:2])
        return web.Response(text=signature.line)

    application = web.Application(client_max_size=MAX_BODY + 1)
    application.router.add_post("/add-checkpoint", add_checkpoint)
    return application


async def _serve(witness: Witness, host: str, port: int) -> None:
    runner = web.AppRunner(app(witness), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"witness {witness.name} on http://{host}:{port}/add-checkpoint (vkey {witness.public.vkey})", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def cmd_run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s witness %(levelname)s %(message)s")
    host, _, port = args.listen.rpartition(":")
    try:
        logs = logs_of(args.log, args.chains)
        key = _key(args)
    except (NoteError, SigningKeyError) as exc:
        return fail("witness run", exc, 2)
    state = WitnessState(_dir(args) / "state.db")
    try:
        asyncio.run(_serve(Witness(args.name, key, logs, state), host or "127.0.0.1", int(port)))
    finally:
        state.close()
    return 0


def add_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="witness_command", required=True)
    for name, handler, help_ in (
        ("key", cmd_key, "print this witness's verifier key (vkey), creating the key on first use"),
        ("run", cmd_run, "serve POST /add-checkpoint: cosign checkpoints that extend what it saw"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--name", required=True, help="the witness's name, a schema-less URL: witness.example/w1")
        p.add_argument("--dir", help="its key and state (default $WARDEN_HOME/witness/<name>)")
        if name == "key":
            p.add_argument("--json", action="store_true")
        else:
            p.add_argument("--listen", default="127.0.0.1:7380", help="host:port (default 127.0.0.1:7380)")
            p.add_argument(
                "--log",
                action="append",
                required=True,
                help="a ledger's key as `warden audit log-key` prints it (repeat for several ledgers)",
            )
            p.add_argument(
                "--chains",
                type=int,
                default=topics.PARTITIONS,
                help="the ledger's chains (its origins are <name>/<chain>)",
            )
        p.set_defaults(handler=handler)
