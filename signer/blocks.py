"""One reader of new blocks per chain for every transaction the signer follows there.

A tracker that asked the node for its own receipt and its sender's nonce on a timer would cost
calls per pending transaction, so thousands pending on a 12 s chain would be thousands of calls a
second, past any provider's rate limit (`warden bench tracker` counts the calls). One task per
chain asks for the block number, reads each new block's transaction hashes once, and wakes only the trackers
whose transaction is in it; a sender's nonce is asked once per block however many of its
transactions wait.

It also answers, once per block read for every tracker that asks, what following a decided
transaction to a final block needs (`signer.finality`): the chain's block at a height, the
finalized block, a nonce at a block.

The watch only wakes trackers: what they report still comes from a receipt or the nonce, so a
block it misreads costs time, never a wrong outcome. Whatever it cannot follow (a block number
that goes back, a block whose parent is not the block it read at that height, a head replaced at
the same height, more new blocks than it reads at once) wakes every tracker, and each looks again
on its own every ``RECHECK_S`` anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast

from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas.chains import Chain

T = TypeVar("T")
# What a tracker asks the node, as the key its one answer per reading is kept under.
Question = tuple[object, ...]

log = logging.getLogger("warden.signer")

POLL_S = 0.05  # Anvil mines at once: a new block is seen within 50 ms
POLL_MAX_S = 1.0  # while the node does not answer
MAX_BLOCKS = 64  # read one by one at most; further behind, every tracker looks for itself
RECHECK_S = 30.0  # each tracker's own look, whatever the watch saw
HEAD_CHECK_S = 1.0  # while no block comes, the head's hash is compared this often


class Ticket:
    """A tracker's place in the watch: ``wait`` returns when a block holds one of its hashes (or
    the watch lost the thread), when asked also when the watch reads any new block, or after the
    timeout."""

    def __init__(self, watch: BlockWatch):
        self._watch = watch
        self.hashes: set[str] = set()  # lower-case, as the watch matches them
        self._woken = False
        self._waiter: asyncio.Future[None] | None = None

    def follow(self, hashes: Iterable[str]) -> None:
        """Also wake for these (a fee bump's new hash)."""
        for tx_hash in map(str.lower, hashes):
            if tx_hash not in self.hashes:
                self.hashes.add(tx_hash)
                self._watch._waiting.setdefault(tx_hash, set()).add(self)

    def wake(self) -> None:
        self._woken = True
        self._release()

    def _release(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def take(self) -> bool:
        """Whether a block woke it since the last ``take``."""
        woken, self._woken = self._woken, False
        return woken

    async def wait(self, timeout_s: float, any_block: bool = False) -> None:
        """Until one of its hashes is in a block read (or the watch lost the thread), with
        ``any_block`` until any block is read, or ``timeout_s``. A future and a timer, not
        ``asyncio.wait_for``: that is a task per wait, and thousands of trackers wait."""
        if self._woken:
            return
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        timer = loop.call_later(max(timeout_s, 0.0), self._release)
        if any_block:
            self._watch._any_block.add(self)
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None
            self._watch._any_block.discard(self)

    def close(self) -> None:
        self._watch._drop(self)


class BlockWatch:
    """The new blocks of one chain, read while any tracker waits on it."""

    def __init__(self, node: Node, poll_s: float = POLL_S):
        self.node = node
        self.poll_s = poll_s
        self.height: int | None = None  # the last block read; None while nobody waits
        self._hash_at: dict[int, str] = {}  # the last MAX_BLOCKS blocks read, to see a reorg
        self._waiting: dict[str, set[Ticket]] = {}  # lower-case tx hash → its trackers
        self._tickets: set[Ticket] = set()
        self._any_block: set[Ticket] = set()  # waiting for whatever block is read next
        # What the watch knows changes with each block read, each thread lost and each start: a
        # nonce (a block's hash, the finalized block) is kept for the reading it was asked in. Before the first read too, so trackers
        # that look at once share one answer, not one per wave of receipts coming back.
        self.reading = 0
        self._answers: dict[Question, tuple[int, object]] = {}  # question → (reading, answer)
        self._asking: dict[tuple[Question, int], asyncio.Future[object]] = {}  # the questions under way
        self._head_checked = 0.0  # when the head block's hash was last compared (monotonic s)
        self._task: asyncio.Task[None] | None = None

    def ticket(self, hashes: Iterable[str]) -> Ticket:
        ticket = Ticket(self)
        ticket.follow(hashes)
        self._tickets.add(ticket)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return ticket

    async def nonce(self, address: str, block: int | None = None) -> int:
        """The address's next nonce on chain (at ``latest``, or after block ``block``): asked once
        per block read (and once before the first), and once for all the trackers that ask at the
        same time."""
        tag = "latest" if block is None else hex(block)
        return await self._once(("nonce", address, tag), self._ask_nonce, address, tag)

    async def head(self) -> int:
        """The chain's block number now."""
        return await self._once(("head",), self._ask_head)

    async def _ask_head(self) -> int:
        return int(await self.node.call("eth_blockNumber"), 16)

    async def hash_at(self, number: int) -> str | None:
        """The hash of the chain's block ``number`` now (lower case; None if it has none)."""
        read = self._hash_at.get(number)
        return read if read is not None else await self._once(("hash", number), self._ask_hash, number)

    async def finalized(self, chain: Chain) -> int:
        """The highest block of ``chain`` that is final now: the node's ``finalized`` block where it
        serves that tag (and the chain's registry says to use it), else ``chain.confirmations``
        blocks under the head."""
        return await self._once(("finalized", chain.finalized_tag, chain.confirmations), self._ask_finalized, chain)

    async def _once(self, key: Question, ask: Callable[..., Awaitable[T]], *args: Any) -> T:
        reading = self.reading
        cached = self._answers.get(key)
        if cached is not None and cached[0] == reading:
            return cast(T, cached[1])
        asking = self._asking.get((key, reading))
        if asking is None:
            asking = self._asking[(key, reading)] = asyncio.ensure_future(self._ask(key, reading, ask, *args))
            asking.add_done_callback(lambda done: self._asked((key, reading), done))
        # Shielded: one tracker cancelled (its partition revoked) does not cancel the others' answer.
        return cast(T, await asyncio.shield(asking))

    def _asked(self, key: tuple[Question, int], asking: asyncio.Future[object]) -> None:
        self._asking.pop(key, None)
        if not asking.cancelled():
            asking.exception()  # retrieved: an answer every asker had left is not logged as never read

    async def _ask(self, key: Question, reading: int, ask: Callable[..., Awaitable[object]], *args: Any) -> object:
        answer = await ask(*args)
        if reading == self.reading:  # else a block came (or the thread was lost) while it was asked
            self._answers[key] = (reading, answer)
        return answer

    async def _ask_nonce(self, address: str, tag: str) -> int:
        return int(await self.node.call("eth_getTransactionCount", address, tag), 16)

    async def _ask_hash(self, number: int) -> str | None:
        block = await self.node.call("eth_getBlockByNumber", hex(number), False)
        return None if block is None else block["hash"].lower()

    async def _ask_finalized(self, chain: Chain) -> int:
        return await final_block(self.node, chain, self.head)

    def _read(self, height: int) -> None:
        self.height = height
        self._moved()

    def _moved(self) -> None:
        """What the watch knows changed: nonces are asked again, and the trackers waiting for any
        block look."""
        self.reading += 1
        for ticket in self._any_block:
            ticket._release()
        self._any_block.clear()

    def _drop(self, ticket: Ticket) -> None:
        self._tickets.discard(ticket)
        self._any_block.discard(ticket)
        for tx_hash in ticket.hashes:
            waiting = self._waiting.get(tx_hash)
            if waiting is not None:
                waiting.discard(ticket)
                if not waiting:
                    del self._waiting[tx_hash]
        if not self._tickets and self._task is not None:
            self._task.cancel()
            self._task = None
            self.height = None
            self._forget()

    def _forget(self) -> None:
        """Everything read: a height seen again after a rollback is another block, with other nonces."""
        self._hash_at.clear()
        self._answers.clear()
        self._moved()

    def _wake_all(self) -> None:
        for ticket in self._tickets:
            ticket.wake()

    async def _run(self) -> None:
        pause = self.poll_s
        while self._tickets:
            try:
                await self.read_new_blocks()
                pause = self.poll_s
            except (RpcError, RpcUnavailable) as exc:
                # Nothing is missed: the blocks are read once the node answers again.
                log.warning("reading new blocks: the node did not answer (%s); asking again", exc)
                pause = min(max(pause * 2, self.poll_s), POLL_MAX_S)
            except Exception:  # noqa: BLE001 - a dead watch would leave its trackers to their own looks
                log.exception("reading new blocks failed; every tracker looks for itself")
                self._wake_all()
                self.height = None
                self._forget()
                pause = POLL_MAX_S
            await asyncio.sleep(pause)

    async def read_new_blocks(self) -> None:
        """Read the blocks since the last one read, waking the trackers of the transactions in them."""
        head = int(await self.node.call("eth_blockNumber"), 16)
        if self.height is None:
            # The first read: trackers looked before waiting, but a block could have come
            # between their look and this one. They look once more.
            self._read(head)
            self._wake_all()
            return
        if head == self.height and time.monotonic() - self._head_checked >= HEAD_CHECK_S:
            # A reorg that replaced blocks without adding one (the head's height is the same) shows
            # only in the head's hash: compared once a second while no block comes.
            self._head_checked = time.monotonic()
            block = await self.node.call("eth_getBlockByNumber", hex(head), False)
            if block is not None:
                seen, read = block["hash"].lower(), self._hash_at.get(head)
                if read is not None and seen != read:
                    log.info("block %d was replaced: every tracker looks for itself", head)
                    self._forget()
                    self._read(head)
                    self._wake_all()
                self._hash_at[head] = seen
            return
        if head < self.height or head - self.height > MAX_BLOCKS:
            log.info("block number went from %d to %d: every tracker looks for itself", self.height, head)
            self._forget()
            self._read(head)
            self._wake_all()
            return
        while self.height < head:
            number = self.height + 1
            block = await self.node.call("eth_getBlockByNumber", hex(number), False)
            if block is None:  # not served yet (a node behind a load balancer): next time
                return
            parent = self._hash_at.get(number - 1)
            if parent is not None and block["parentHash"].lower() != parent:
                # The block read at the last height was replaced: whatever it held (or the
                # new one holds) is not known here.
                log.info("reorg below block %d: every tracker looks for itself", number)
                self._forget()
                self._wake_all()
            for tx_hash in block["transactions"]:
                for ticket in self._waiting.get(tx_hash.lower(), ()):
                    ticket.wake()
            self._hash_at[number] = block["hash"].lower()
            self._hash_at.pop(number - MAX_BLOCKS, None)
            self._read(number)


async def final_block(node: Node, chain: Chain, head: Callable[[], Awaitable[int]] | None = None) -> int:
    """The highest block of ``chain`` that is final now, asked of ``node``: its ``finalized``
    block where it serves that tag (and the chain's registry says to use it), else
    ``chain.confirmations`` blocks under the head (``head``: how to ask for it)."""
    if chain.finalized_tag:
        try:
            block = await node.call("eth_getBlockByNumber", "finalized", False)
        except RpcError as exc:  # a node that does not know the tag: the confirmations count
            log.info("%s: the node does not serve the finalized block (%s); counting confirmations", chain.name, exc)
            block = None
        if block is not None:
            return int(block["number"], 16)
    number = await head() if head is not None else int(await node.call("eth_blockNumber"), 16)
    return number - chain.confirmations
