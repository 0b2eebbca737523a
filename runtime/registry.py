"""The networks a process knows: the built-in table (`schemas.chains.BUILTIN`) and, over it, the
admins' table in force, which only a chain set their quorum signed changes (`adopt`).

This is the one piece of chain state a process holds, and it lives here, not in `schemas`: the
services keep it to warden.chains (`runtime.chains.follow_chain_sets`), a client process reads
the chains in force when it meets a name it does not know (`ChainRegistry.when_unknown`,
`sdk.records.learn_chains`). Whoever reads a record hands it to the record's validators
(`schemas.chains.chains_context`; the worker's intake, the signer) and to the rules. Light on
purpose: every `warden` command imports it, so it imports nothing but `schemas.chains`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from schemas.chains import BUILTIN, Chain, Family, admin_table, chains_context, unknown_chain


class ChainRegistry:
    """The networks a process knows: the built-in table and, over it, the admins' table in force
    (`adopt`), which only a chain set their quorum signed changes."""

    def __init__(self, chains: tuple[Chain, ...] = BUILTIN):
        self._builtin = {c.name: c for c in chains}
        self._admin: dict[str, Chain] = {}
        self._all = dict(self._builtin)
        self._learn: Callable[[], None] | None = None
        self._learn_every_s = 0.0
        self._learned_at: float | None = None
        # What a reader hands a record's validators so that they check its chain names here.
        self.context: dict[str, Any] = chains_context(self)

    def adopt(self, table: Iterable[Chain]) -> None:
        """Put ``table`` in force as the admins' table (the whole of it: what the table before
        held and this one does not is gone). Only a chain set their quorum signed: the readers of
        warden.chains call it (`runtime.chains.ChainSetBook`)."""
        admin = admin_table(table, self._builtin)
        self._admin, self._all = admin, {**self._builtin, **admin}

    def admin_table(self) -> tuple[Chain, ...]:
        """The admins' table in force: the networks they added, built-in ones whose finality they changed."""
        return tuple(self._admin.values())

    def all(self) -> dict[str, Chain]:
        return dict(self._all)

    def get(self, name: str) -> Chain:
        chain = self._all.get(name)
        if chain is None and self._learned():
            chain = self._all.get(name)
        if chain is None:
            raise unknown_chain(name, self._all)
        return chain

    def by_chain_id(self, chain_id: int) -> Chain | None:
        """The EVM network with EIP-155 id ``chain_id``."""
        chain = self._by_chain_id(chain_id)
        if chain is None and self._learned():
            chain = self._by_chain_id(chain_id)
        return chain

    def by_caip2(self, caip2: str) -> Chain | None:
        """The network whose CAIP-2 id is ``caip2`` (`schemas.chains.Chain.caip2`), of any family."""
        chain = self._by_caip2(caip2)
        if chain is None and self._learned():
            chain = self._by_caip2(caip2)
        return chain

    def _by_caip2(self, caip2: str) -> Chain | None:
        return next((c for c in self._all.values() if c.caip2 == caip2), None)

    def _by_chain_id(self, chain_id: int) -> Chain | None:
        # EIP-155 ids only: another family's number is no EVM chain id (`eip155:101` is not Solana).
        return next((c for c in self._all.values() if c.chain_id == chain_id and c.family is Family.EVM), None)

    def with_chain(self, chain: Chain) -> tuple[Chain, ...]:
        """The admins' table with ``chain`` added (an added network of that name replaced): what
        the chain set that adds it carries. ValueError when it would redefine a built-in network or
        take another's chain id."""
        if chain.name in self._builtin:
            raise ValueError(
                f"chain {chain.name!r} is built in and cannot be redefined; `warden chains finality` changes "
                "when its transactions are final"
            )
        return tuple(admin_table({**self._admin, chain.name: chain}.values(), self._builtin).values())

    def with_finality(
        self, name: str, *, finalized_tag: bool | None = None, confirmations: int | None = None
    ) -> tuple[Chain, ...]:
        """The admins' table with ``name``'s finality changed (a built-in network's too): what the
        chain set that changes it carries."""
        current = self.get(name)
        chain = dataclasses.replace(
            current,
            finalized_tag=current.finalized_tag if finalized_tag is None else finalized_tag,
            confirmations=current.confirmations if confirmations is None else confirmations,
        )
        return tuple(admin_table({**self._admin, name: chain}.values(), self._builtin).values())

    def when_unknown(self, learn: Callable[[], None] | None, every_s: float = 30.0) -> None:
        """For a client process (the command line, the MCP server, `warden pay`): ``learn``, which
        reads the chains in force and `adopt`s them (`sdk.records.learn_chains`), runs before a
        name or chain id is called unknown, at most once every ``every_s`` seconds. The services
        set none: they follow warden.chains themselves and judge nothing before they read it to
        its end (`runtime.chains`)."""
        self._learn, self._learn_every_s, self._learned_at = learn, every_s, None

    def _learned(self) -> bool:
        """Whether ``learn`` ran now, so that a lookup is worth trying again."""
        now = time.monotonic()
        if self._learn is None or (self._learned_at is not None and now - self._learned_at < self._learn_every_s):
            return False
        self._learned_at = now  # first: a lookup while it learns does not learn again
        self._learn()
        return True


# The process's registry: the built-in table until the admins' table in force is adopted (the
# services: `runtime.chains.follow_chain_sets`; a client: `sdk.records.chains_in_force`).
REGISTRY = ChainRegistry()
