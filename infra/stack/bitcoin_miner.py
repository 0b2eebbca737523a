"""The local Bitcoin node's miner: a block every second (`python -m infra.stack.bitcoin_miner`), as
Anvil mines one every second, so that what a quiet regtest chain holds still gets confirmations.

A process of the local stack (`LocalStack.start_bitcoin`), stopped with it. It outlives nothing: it
stops on SIGTERM or SIGINT, and by itself as soon as the process that started it is gone (a stack
killed with SIGKILL stops no child). The node's address and credentials are read from
`Settings.bitcoin_info`, never from argv, which every user of the machine can read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import time

from runtime import bitcoin
from runtime.config import load
from runtime.rpc import JsonRpc, RpcError, RpcUnavailable

log = logging.getLogger("warden.bitcoin_miner")


async def mine_every(url: str, interval_s: float, parent: int, stopping: asyncio.Event) -> None:
    """A block every ``interval_s`` until ``stopping`` is set or process ``parent`` is gone. A
    block the node does not mine (busy, restarting) is logged and tried again at the next tick."""
    node = JsonRpc(url, timeout_s=30)
    failures = 0
    try:
        while not stopping.is_set() and os.getppid() == parent:
            started = time.monotonic()
            try:
                await bitcoin.mine(node, 1)
                failures = 0
            except (RpcError, RpcUnavailable) as exc:
                failures += 1
                if failures in (1, 10) or failures % 60 == 0:
                    log.warning("no block mined (%d tick(s) in a row): %s", failures, exc)
            wait = max(0.0, interval_s - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):  # the tick's wait is over, nobody stopped it
                await asyncio.wait_for(stopping.wait(), wait)
    finally:
        await node.close()


async def main(interval_s: float, parent: int) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    # The stack's own node, as it described it: not a WARDEN_RPC_URL_BITCOIN_REGTEST set for other work.
    url = json.loads(load().bitcoin_info.read_text())["rpc"]
    await mine_every(url, interval_s, parent, stopping)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bitcoin-miner %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two blocks")
    args = parser.parse_args()
    parent = os.getppid()
    log.info("a block every %.1f s, while process %d runs", args.interval, parent)
    asyncio.run(main(args.interval, parent))
