"""An in-process signer driven against a private Anvil, as `signer.main` runs it, for the tracker's
tests (tests/stack/test_tx_lifecycle.py, tests/stack/test_reorgs.py): every record it publishes is
collected and its signature checked."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.local import LocalStack, local_settings
from runtime.admins import Admins
from runtime.clock import US_PER_SECOND, utcnow
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.audit import AuditEvent
from schemas.auth import outcome_forgery, public_key_hex, sign_policy
from schemas.emit import Emit, Source
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentApproved, IntentRejected, SignedBitcoinTransaction, SignedTransaction
from schemas.policy import AgentPolicy
from sdk.client import new_intent
from signer.custody.keys import KeyStore
from signer.service import Followed, Signer
from signer.state import SignerState
from tests.custody_support import ADMIN, make_vaults

S = US_PER_SECOND
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
AGENT = "agent-lifecycle"


T = TypeVar("T")
R = TypeVar("R", SignedTransaction, SignedBitcoinTransaction)


@contextlib.contextmanager
def private_chain(home: Path) -> Iterator[str]:
    """A private Anvil that mines only when a transaction comes (or a test mines): its RPC URL.
    Its `finalized` block is 2 under its head (`LocalStack.start_anvil`)."""
    settings = local_settings(home)
    stack = LocalStack(settings, block_time_s=None)  # these tests stop mining to hold transactions pending
    stack.start(parts=("anvil",))
    try:
        yield settings.rpc_url
    finally:
        stack.stop()


class Published:
    """What an in-process signer published (``published``), as `signer.main` would publish it,
    each record checked against its service key (``service_key``, pinned as ``signer-test``)."""

    published: list[Emit]
    admin_key: Ed25519PrivateKey
    agent_key: Ed25519PrivateKey
    service_key: Ed25519PrivateKey

    def keys_and_policy(self, agent: str, **fields: Any) -> AgentPolicy:
        """The keys of this world made (its admin's, which pins as ``test-admin``, the agent's and
        this signer's), and the agent's first policy with ``fields``, signed by that admin."""
        self.admin_key, self.agent_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        self.service_key = Ed25519PrivateKey.generate()
        policy = AgentPolicy(
            agent_id=agent, version=1, agent_public_key=public_key_hex(self.agent_key), issued_at=utcnow(), **fields
        )
        return sign_policy(policy, self.admin_key, "test-admin")

    def records_on(self, topic: str, model: type[R], intent_id: str) -> list[R]:
        """The records of ``intent_id`` on ``topic``, in order, each signed by this signer."""
        found = [model.from_bytes(e.value) for e in self.published if e.topic == topic]
        found = [r for r in found if r.intent_id == intent_id]
        for record in found:
            assert outcome_forgery(record, self) is None, record
        return found

    def key(self, role: str, key_id: str | None) -> str | None:
        """The pinned keys a client holds: this signer's, for the signer role only."""
        return public_key_hex(self.service_key) if (role, key_id) == ("signer", "signer-test") else None

    def audit_actions(self, intent_id: str) -> list[str]:
        return [e.action for e in self.audit_events(intent_id)]

    def audit_events(self, intent_id: str, action: str | None = None) -> list[AuditEvent]:
        """The audit events published about ``intent_id`` (of one ``action``, when given), in order."""
        events = [AuditEvent.from_bytes(e.value) for e in self.published if e.topic == topics.AUDIT_EVENTS]
        return [e for e in events if e.intent_id == intent_id and action in (None, e.action)]


class Harness(Published):
    """An in-process signer for one agent (a key of its own on the private chain), whose
    published records are collected as `signer.main` would publish them."""

    def __init__(self, tmp: Path, rpc_url: str, replace_after_s: float = 1.0, max_bumps: int = 2, **policy_fields: Any):
        self.node = JsonRpc(rpc_url, timeout_s=120)
        store = KeyStore(make_vaults(tmp), mode="standard")
        self.agent = f"{AGENT}-{os.urandom(3).hex()}"
        self.address = store.provision(self.agent, "ethereum", ADMIN).address
        self.policy = self.keys_and_policy(
            self.agent, tx_allowed_chains=("anvil",), tx_to_allowlist=(DEST,), **policy_fields
        )
        self.state_path = tmp / f"{self.agent}.db"
        self.store = store
        self.signer_args: dict[str, Any] = dict(
            node_for=lambda chain: self.node,
            service_key=("signer-test", self.service_key),
            replace_after_us=int(replace_after_s * S),
            max_bumps=max_bumps,
        )
        self.state = SignerState(self.state_path)
        self.signer = Signer(
            self.state,
            store,
            Admins.with_threshold({"test-admin": public_key_hex(self.admin_key)}, 1),
            **self.signer_args,
        )
        self.published: list[Emit] = []
        self.offset = 0
        self.approved: dict[str, bytes] = {}  # intent id → the approved record, for a redelivery

    def restart(self) -> None:
        """The signer process again, on its file: nothing of it kept in memory."""
        self.state.close()
        self.state = SignerState(self.state_path)
        self.signer = Signer(
            self.state,
            self.store,
            Admins.with_threshold({"test-admin": public_key_hex(self.admin_key)}, 1),
            **self.signer_args,
        )

    async def redeliver(self, intent_id: str) -> SignedTransaction:
        """The approved record handled again (a consumer that restarts before its offset was
        committed): what the signer publishes for it."""
        self.offset += 1
        emits, to_broadcast = await self.signer.handle(
            self.approved[intent_id], Source(topics.INTENTS_APPROVED, 0, self.offset, self.agent.encode()), utcnow()
        )
        assert to_broadcast is None  # decided before: never signed or sent again
        self.published += emits
        (record,) = [SignedTransaction.from_bytes(e.value) for e in emits if e.topic == topics.TXS_SIGNED]
        return record

    async def emit(self, emits: list[Emit]) -> None:
        self.published += emits

    async def _handle(self, intent: TransactionIntent, now: datetime) -> tuple[list[Emit], Followed | None]:
        """``intent`` approved and handled by the signer at ``now``, its state committed (as the
        signer's loop does before sending): what it published, and the record to send if any."""
        approved = IntentApproved(intent=intent, policy=self.policy, verdicts=(), approved_at=now)
        self.approved[intent.intent_id] = approved.to_bytes()
        self.offset += 1
        emits, to_broadcast = await self.signer.handle(
            self.approved[intent.intent_id], Source(topics.INTENTS_APPROVED, 0, self.offset, self.agent.encode()), now
        )
        self.state.commit()
        self.published += emits
        return emits, to_broadcast

    async def approve(self, **fields: Any) -> tuple[TransactionIntent, SignedTransaction]:
        """One broadcast intent approved and handled by the signer, its state committed (as the
        signer's loop does before sending); the intent and the record to send."""
        now = datetime.now(timezone.utc)
        intent = new_intent(
            self.agent_key,
            agent_id=self.agent,
            chain="anvil",
            to=DEST,
            broadcast=True,
            now=now,
            **{"value": "0.001", **fields},
        )
        emits, to_broadcast = await self._handle(intent, now)
        assert to_broadcast is not None, [
            IntentRejected.from_bytes(e.value).reason for e in emits if e.topic == topics.INTENTS_REJECTED
        ]
        assert isinstance(to_broadcast, SignedTransaction), to_broadcast
        return intent, to_broadcast

    async def sign_only(self, now: datetime, **fields: Any) -> SignedTransaction | IntentRejected:
        """One sign-only intent (``broadcast`` false) created, approved and handled at ``now`` (a
        clock moved ahead, for the rolling windows), its state committed: its record, or its refusal."""
        intent = new_intent(
            self.agent_key, agent_id=self.agent, chain="anvil", to=DEST, now=now, **{"value": "0.001", **fields}
        )
        emits, to_broadcast = await self._handle(intent, now)
        assert to_broadcast is None
        (outcome,) = [e for e in emits if e.topic in (topics.TXS_SIGNED, topics.INTENTS_REJECTED)]
        if outcome.topic == topics.INTENTS_REJECTED:
            return IntentRejected.from_bytes(outcome.value)
        return SignedTransaction.from_bytes(outcome.value)

    async def watch_sign_only(self, now: datetime) -> None:
        """One look of the signer's sign-only watch at ``now``, as `signer.main` runs it."""
        self.published += await self.signer.sign_only.look_all(self.state.open_sign_only(), now)
        self.state.commit()

    async def sign(self, **fields: Any) -> SignedTransaction:
        """Sign and send one intent, as the signer's loop does; the record it tracks."""
        _, to_broadcast = await self.approve(**fields)
        emits, sent = await self.signer.send(to_broadcast, utcnow())
        self.published += emits
        assert isinstance(sent, SignedTransaction) and sent.status == "broadcast", sent
        return sent

    async def fund(self, address: str) -> None:
        await self.node.call("anvil_setBalance", address, hex(10**20))

    def records(self, intent_id: str) -> list[SignedTransaction]:
        return self.records_on(topics.TXS_SIGNED, SignedTransaction, intent_id)


async def automine(node: JsonRpc, on: bool) -> None:
    await node.call("evm_setAutomine", on)


async def finish(harness: Harness, signed: SignedTransaction, timeout_s: float = 30) -> SignedTransaction:
    """Followed until the chain decides it, then until that block is final (two blocks on top,
    on this chain), as `signer.main` follows it: the final record."""
    decided = await asyncio.wait_for(harness.signer.track(signed, utcnow, harness.emit), timeout_s)
    return decided if decided.final else await finalize(harness, decided, timeout_s)


async def finalize(harness: Harness, decided: SignedTransaction, timeout_s: float = 30) -> SignedTransaction:
    assert not decided.final, decided
    await harness.node.call("anvil_mine", "0x2")
    return await asyncio.wait_for(harness.signer.tracking.follow(decided, utcnow, harness.emit), timeout_s)


def on_chain(
    tmp: Path, rpc_url: str, scenario: Callable[[Harness], Awaitable[T]], automining: bool = False, **harness_args: Any
) -> tuple[Harness, T]:
    """Run ``scenario(harness)`` with a funded agent, automining as asked; automining is back on
    afterwards, whatever happened."""

    async def run() -> tuple[Harness, T]:
        h = Harness(tmp, rpc_url, **harness_args)
        try:
            await automine(h.node, automining)
            await h.fund(h.address)
            return h, await scenario(h)
        finally:
            await automine(h.node, True)
            await h.node.close()

    return asyncio.run(run())
