"""`warden bench tracker`: what following broadcast transactions costs the node and the signer.

For each count in ``--pending``: that many transactions of ``--agents`` agents are signed
and sent to a private Anvil that does not mine (automining off), then followed by an
in-process signer's trackers (``Signer.track``, as ``signer.main`` runs them) for
``--seconds``; then blocks mine them all (a block holds ~1,400 of these transfers). It
prints the node calls made while they waited (by method, per transaction, per second), the
signer's CPU while they waited (this process: % of one core; also over the second half alone,
past the trackers' first looks) and Anvil's, and the time from the last block to the last
outcome.

The replacement delay is 600 s, so nothing is bumped: the figure is the cost of waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.bench.figures import cpu_seconds, numbers
from infra.cli.output import print_json
from schemas.emit import Emit

if TYPE_CHECKING:  # the benchmark imports Warden's modules only when it runs
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from runtime.rpc import Node
    from schemas.policy import AgentPolicy
    from signer.custody.keys import KeyStore
    from signer.service import Signer
    from signer.state import SignerState

ADMIN = "admin:bench"
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


class CountingNode:
    """A node that counts the calls made through it, by method."""

    def __init__(self, node: Node):
        self.node = node
        self.calls: collections.Counter[str] = collections.Counter()

    async def call(self, method: str, *params: Any) -> Any:
        self.calls[method] += 1
        return await self.node.call(method, *params)


async def _pending(
    rpc_url: str,
    anvil_pid: int,
    tmp: Path,
    pending: int,
    agents: int,
    seconds: float,
    progress: Callable[[str], object],
) -> dict[str, Any]:
    """One run: ``pending`` broadcast transactions of ``agents`` agents wait ``seconds`` on a node
    that does not mine, followed by the signer's trackers; then blocks mine them all."""
    from runtime.clock import utcnow
    from runtime.rpc import JsonRpc

    node = JsonRpc(rpc_url)
    counting = CountingNode(node)
    signer, state, store, admin_key = _bench_signer(tmp, counting)
    try:
        await node.call("evm_setAutomine", False)
        books = await _agents(node, store, admin_key, agents)
        progress(f"  signing and sending {pending} transactions")
        sent = await _sign_and_send(signer, state, books, pending)
        outcomes: list[Any] = []

        async def emit(emits: list[Emit]) -> None:
            outcomes.extend(emits)

        progress(f"  {pending} pending for {seconds:g} s, then the blocks that hold them")
        counting.calls.clear()
        cpu_before, anvil_before, began = time.process_time(), cpu_seconds(anvil_pid), time.monotonic()
        tasks = [asyncio.create_task(signer.track(record, utcnow, emit)) for record in sent]
        # The first half holds each tracker's first looks; the second is what waiting costs.
        await asyncio.sleep(seconds / 2)
        cpu_half, half_began = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds / 2)
        waited = time.monotonic() - began
        cpu, anvil_cpu = time.process_time() - cpu_before, cpu_seconds(anvil_pid) - anvil_before
        cpu_second_half = (time.process_time() - cpu_half) / (time.monotonic() - half_began)
        calls = dict(counting.calls)
        blocks = 0
        while int((await node.call("txpool_status"))["pending"], 16) > 0:
            await node.call("evm_mine")
            blocks += 1
        mined_at = time.monotonic()
        finals = await asyncio.wait_for(asyncio.gather(*tasks), 60 + pending / 50)
        to_outcomes = time.monotonic() - mined_at
        statuses = collections.Counter(f.status for f in finals)
        if statuses != {"mined": pending}:
            raise RuntimeError(f"expected {pending} mined, got {dict(statuses)}")
        total = sum(calls.values())
        return {
            "pending": pending,
            "agents": agents,
            "waited_s": round(waited, 2),
            "node_calls": total,
            "node_calls_by_method": calls,
            "node_calls_per_transaction": round(total / pending, 2),
            "node_calls_per_second": round(total / waited, 1),
            "signer_cpu_percent_of_one_core": round(100 * cpu / waited, 1),
            "signer_cpu_percent_second_half": round(100 * cpu_second_half, 2),
            "anvil_cpu_percent_of_one_core": round(100 * anvil_cpu / waited, 1),
            "blocks": blocks,
            "block_to_last_outcome_ms": round(1000 * to_outcomes, 1),
        }
    finally:
        await node.call("evm_setAutomine", True)
        await node.close()


def _bench_signer(tmp: Path, counting: CountingNode) -> tuple[Signer, SignerState, KeyStore, Ed25519PrivateKey]:
    """An in-process signer over a key store and state under ``tmp``, whose node calls go through
    ``counting``, one admin in force; its replacement delay (600 s) bumps nothing. Returns the
    signer, its state, its key store and the admin's key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from infra.bench.custody import _quiet_dev_root
    from runtime.admins import Admins
    from runtime.clock import US_PER_SECOND
    from schemas.auth import public_key_hex
    from signer.custody import FileEventLog, Vaults
    from signer.custody.keys import KeyStore
    from signer.service import Signer
    from signer.state import SignerState

    store = KeyStore(Vaults(_quiet_dev_root(tmp / "root.key"), FileEventLog(tmp / "vault.jsonl")))
    admin_key, service_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    state = SignerState(tmp / "signer.db")
    signer = Signer(
        state,
        store,
        Admins.with_threshold({"bench-admin": public_key_hex(admin_key)}, 1),
        node_for=lambda _chain: counting,
        service_key=("signer-bench", service_key),
        replace_after_us=600 * US_PER_SECOND,
    )
    return signer, state, store, admin_key


async def _agents(
    node: Node, store: KeyStore, admin_key: Ed25519PrivateKey, agents: int
) -> list[tuple[str, Ed25519PrivateKey, AgentPolicy]]:
    """Provision ``agents`` agents with an ethereum key, fund their addresses on the node, and
    sign each a policy that lets it pay DEST on anvil: (agent id, intent key, policy) each."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from runtime.clock import utcnow
    from schemas.auth import public_key_hex, sign_policy
    from schemas.policy import AgentPolicy

    books = []
    for a in range(agents):
        agent = f"agent-tracker-{a}-{os.urandom(3).hex()}"
        address = store.provision(agent, "ethereum", ADMIN).address
        await node.call("anvil_setBalance", address, hex(10**22))
        agent_key = Ed25519PrivateKey.generate()
        policy = sign_policy(
            AgentPolicy(
                agent_id=agent,
                version=1,
                agent_public_key=public_key_hex(agent_key),
                issued_at=utcnow(),
                tx_allowed_chains=("anvil",),
                tx_to_allowlist=(DEST,),
            ),
            admin_key,
            "bench-admin",
        )
        books.append((agent, agent_key, policy))
    return books


async def _sign_and_send(
    signer: Signer, state: SignerState, books: list[tuple[str, Ed25519PrivateKey, AgentPolicy]], pending: int
) -> list[Any]:
    """Have the signer sign ``pending`` approved intents, round-robin over the agents, and send
    each transaction to the node: the broadcast records its trackers follow."""
    from runtime.clock import utcnow
    from schemas import topics
    from schemas.emit import Source
    from schemas.outcomes import IntentApproved
    from sdk.client import new_intent

    sent = []
    for i in range(pending):
        agent, agent_key, policy = books[i % len(books)]
        now = datetime.now(timezone.utc)
        intent = new_intent(
            agent_key, agent_id=agent, chain="anvil", to=DEST, broadcast=True, now=now, value="0.000001"
        )
        approved = IntentApproved(intent=intent, policy=policy, approved_at=now)
        _, to_broadcast = await signer.handle(
            approved.to_bytes(), Source(topics.INTENTS_APPROVED, 0, i, agent.encode()), now
        )
        state.commit()
        if to_broadcast is None:
            raise RuntimeError(f"the signer refused intent {i}: see its records")
        _, record = await signer.send(to_broadcast, utcnow())
        sent.append(record)
    return sent


def run(pending: list[int], agents: int, seconds: float, progress: Callable[[str], object]) -> dict[str, Any]:
    from infra.stack.local import LocalStack, local_settings

    results = []
    for count in pending:
        with tempfile.TemporaryDirectory(prefix="warden-bench-tracker-") as home:
            # A fresh Anvil each time: the last run's blocks and accounts weigh on nothing.
            stack = LocalStack(local_settings(Path(home)), block_time_s=None)  # pending: only what it mines
            try:
                stack.start(parts=("anvil",))
                results.append(
                    asyncio.run(
                        _pending(
                            stack.settings.rpc_url,
                            stack.processes["anvil"].pid,
                            Path(home),
                            count,
                            agents,
                            seconds,
                            progress,
                        )
                    )
                )
            finally:
                stack.stop()
    return {"benchmark": "tracker", "cpus": os.cpu_count(), "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warden bench tracker", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pending",
        type=numbers,
        default=[40, 200, 1000],
        help="transactions pending at once, one run each (default: 40,200,1000)",
    )
    parser.add_argument("--agents", type=int, default=1, help="agents (addresses) they are spread over")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long they wait for a block")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.agents < 1 or any(n < 1 for n in args.pending):
        parser.error("--pending counts and --agents must be at least 1")

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    report = run(args.pending, args.agents, args.seconds, progress)
    if args.json:
        print_json(report)
        return 0
    print(f"broadcast transactions pending on Anvil for {args.seconds:g} s, then mined ({args.agents} agent(s)):")
    for r in report["results"]:
        by_method = ", ".join(f"{m} {n}" for m, n in sorted(r["node_calls_by_method"].items()))
        print(
            f"  {r['pending']:>5} pending: {r['node_calls']} node calls ({r['node_calls_per_transaction']} per "
            f"transaction, {r['node_calls_per_second']}/s); signer {r['signer_cpu_percent_of_one_core']} % "
            f"({r['signer_cpu_percent_second_half']} % in the second half), "
            f"Anvil {r['anvil_cpu_percent_of_one_core']} % of one core; {r['blocks']} block(s), the last to "
            f"the last outcome {r['block_to_last_outcome_ms']} ms"
        )
        print(f"         {by_method}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
