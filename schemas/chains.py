"""The chain registry: every network an intent may name.

A *network* (``base``, ``sepolia``, ``solana-devnet``) is what an intent targets; it has a native
currency and an explorer, and belongs to one chain *family* (`Family`): the networks of a family
share one transaction format, one address form and one kind of key. A network's name across
families is its CAIP-2 id (`Chain.caip2`): ``eip155:8453`` for Base, ``solana:<genesis hash>``
for a Solana cluster. ``chain_id`` is an EVM network's EIP-155 id; a network of another family
has a number of Warden's own there, which keeps the table's numbers apart and means nothing on
its chain. A *key chain* (``ethereum``) is the kind of signing key a family's networks use: every
EVM network signs with the agent's ethereum key, so ``base`` and ``sepolia`` map to ``ethereum``.
What Warden reads of each family is `schemas.families`.

Admins add networks at run time (``warden chains add``): the admins' table (the networks they
added, and built-in ones whose finality they changed) is a `ChainSet` record on warden.chains,
taken only with their quorum for ``chains`` (`runtime.chains.ChainSetBook`), and laid over the
built-in table here. This module holds no state: the built-in table is a constant, and the
networks in force (built in and added) are a process's `runtime.registry.ChainRegistry`, which the
streams worker and the signer keep to the topic themselves (`runtime.chains`) and a client process
reads when it meets a name it does not know (`sdk.records.chains_in_force`).

A record's validators know only the built-in table, unless whoever reads the record hands them
the networks in force (`chains_context`, as pydantic's validation context): without it a chain
name is checked for its form only, and a name that is not built in is left to the reader that
knows the registry (the worker's intake, the signer), which refuses it there when it is unknown.

Each network also says when a transaction in one of its blocks is final (`signer.finality`):
at or below the block its node serves as ``finalized`` (``finalized_tag``), else
``confirmations`` blocks deep. ``warden chains finality`` changes both, for a built-in network
too, through the same record.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from schemas.errors import WardenError

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}\Z")
# What an admin may change of a built-in network: when its transactions are final.
_FINALITY = ("finalized_tag", "confirmations")


class Family(StrEnum):
    """A family of networks: one transaction format, one address form, one kind of key."""

    EVM = "evm"
    SOLANA = "solana"
    BITCOIN = "bitcoin"

    @property
    def a_network(self) -> str:
        """One of its networks, in words: "an EVM network", "a Solana network"."""
        return _A_NETWORK[self]


_A_NETWORK = {Family.EVM: "an EVM network", Family.SOLANA: "a Solana network", Family.BITCOIN: "a Bitcoin network"}

# The key chain each family's networks sign with (`signer.chain_keys`).
KEY_CHAIN: Mapping[Family, str] = MappingProxyType(
    {Family.EVM: "ethereum", Family.SOLANA: "solana", Family.BITCOIN: "bitcoin"}
)
FAMILY_OF_KEY_CHAIN: Mapping[str, Family] = MappingProxyType({key: family for family, key in KEY_CHAIN.items()})
# Each family's CAIP-2 namespace.
NAMESPACE: Mapping[Family, str] = MappingProxyType(
    {Family.EVM: "eip155", Family.SOLANA: "solana", Family.BITCOIN: "bip122"}
)
# A Solana cluster's CAIP-2 reference is the first 32 characters of its genesis hash (CAIP-30). A
# cluster with none published here (the local node, whose genesis is made when it starts) is
# referred to by its name.
SOLANA_GENESIS: Mapping[str, str] = MappingProxyType(
    {"solana": "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", "solana-devnet": "EtWTRABZaYq6iMfeYKouRu166VU2xqa1"}
)

# A Bitcoin network's CAIP-2 reference is the first 32 hex characters of its genesis block's hash
# (CAIP-4, namespace bip122); regtest's genesis block is the same on every regtest node.
BITCOIN_GENESIS: Mapping[str, str] = MappingProxyType(
    {"bitcoin": "000000000019d6689c085ae165831e93", "bitcoin-regtest": "0f9188f13cb7b2c71f2a335e3a4fc328"}
)


@dataclass(frozen=True)
class Chain:
    name: str
    chain_id: int
    currency: str
    explorer: str
    key_chain: str = "ethereum"
    testnet: bool = False
    # Final: at or below the node's `finalized` block when it serves that tag and finalized_tag is
    # set, else `confirmations` blocks built on top of the transaction's block.
    finalized_tag: bool = True
    confirmations: int = 12

    @property
    def family(self) -> Family:
        return FAMILY_OF_KEY_CHAIN[self.key_chain]

    @property
    def caip2(self) -> str:
        """The network's CAIP-2 id: the name every family's networks share one form of."""
        return f"{NAMESPACE[self.family]}:{_REFERENCE[self.family](self)}"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"chain name {str(self.name)[:80]!r}: 1-32 lowercase letters, digits and '-', starting with a "
                "letter or digit"
            )
        if self.key_chain not in FAMILY_OF_KEY_CHAIN:
            raise ValueError(
                f"chain {self.name!r}: key_chain {str(self.key_chain)[:40]!r} signs for no family Warden judges; "
                f"allowed: {', '.join(FAMILY_OF_KEY_CHAIN)}"
            )
        if isinstance(self.chain_id, bool) or not isinstance(self.chain_id, int) or not 1 <= self.chain_id < 2**64:
            raise ValueError(
                f"chain {self.name!r}: chain_id must be its EIP-155 chain id (another family's: a number of its "
                f"own), a whole number from 1 to 2**64-1, "
                f"not {self.chain_id!r}"
            )
        if not isinstance(self.currency, str) or not 1 <= len(self.currency) <= 16:
            raise ValueError(f"chain {self.name!r}: currency must be its native unit's symbol, 1-16 characters")
        if self.confirmations < 1:
            raise ValueError(
                f"chain {self.name!r}: confirmations must be at least 1 (blocks on top of a transaction's "
                f"block before it is final), not {self.confirmations}"
            )


BUILTIN: tuple[Chain, ...] = (
    # 28 mainnets
    Chain("ethereum", 1, "ETH", "https://etherscan.io"),
    Chain("optimism", 10, "ETH", "https://optimistic.etherscan.io"),
    Chain("cronos", 25, "CRO", "https://cronoscan.com"),
    Chain("bsc", 56, "BNB", "https://bscscan.com"),
    Chain("gnosis", 100, "xDAI", "https://gnosisscan.io"),
    Chain("polygon", 137, "POL", "https://polygonscan.com"),
    Chain("opbnb", 204, "BNB", "https://opbnb.bscscan.com"),
    Chain("fantom", 250, "FTM", "https://ftmscan.com"),
    Chain("fraxtal", 252, "frxETH", "https://fraxscan.com"),
    Chain("zksync", 324, "ETH", "https://explorer.zksync.io"),
    Chain("metis", 1088, "METIS", "https://andromeda-explorer.metis.io"),
    Chain("polygon-zkevm", 1101, "ETH", "https://zkevm.polygonscan.com"),
    Chain("moonbeam", 1284, "GLMR", "https://moonscan.io"),
    Chain("moonriver", 1285, "MOVR", "https://moonriver.moonscan.io"),
    Chain("kava", 2222, "KAVA", "https://kavascan.com"),
    Chain("mantle", 5000, "MNT", "https://mantlescan.xyz"),
    Chain("base", 8453, "ETH", "https://basescan.org"),
    Chain("mode", 34443, "ETH", "https://modescan.io"),
    Chain("arbitrum", 42161, "ETH", "https://arbiscan.io"),
    Chain("arbitrum-nova", 42170, "ETH", "https://nova.arbiscan.io"),
    Chain("celo", 42220, "CELO", "https://celoscan.io"),
    Chain("avalanche", 43114, "AVAX", "https://snowtrace.io"),
    Chain("linea", 59144, "ETH", "https://lineascan.build"),
    Chain("blast", 81457, "ETH", "https://blastscan.io"),
    Chain("taiko", 167000, "ETH", "https://taikoscan.io"),
    Chain("scroll", 534352, "ETH", "https://scrollscan.com"),
    Chain("zora", 7777777, "ETH", "https://explorer.zora.energy"),
    Chain("aurora", 1313161554, "ETH", "https://explorer.aurora.dev"),
    # 2 testnets
    Chain("sepolia", 11155111, "ETH", "https://sepolia.etherscan.io", testnet=True),
    Chain("holesky", 17000, "ETH", "https://holesky.etherscan.io", testnet=True),
    # the local development node: `warden up` runs it with 1 s blocks and finalizes 2 blocks back
    Chain("anvil", 31337, "ETH", "", testnet=True, confirmations=2),
    # Solana clusters, named across families by their genesis hash (`caip2`). chain_id is the
    # number Solana's token list gave each (101 mainnet-beta, 103 devnet; 104 for the local node),
    # which no EVM network can then be added under. Final means the `finalized` commitment.
    Chain("solana", 101, "SOL", "https://explorer.solana.com", key_chain="solana"),
    Chain("solana-devnet", 103, "SOL", "https://explorer.solana.com/?cluster=devnet", key_chain="solana", testnet=True),
    # the local node `warden up` runs (surfpool)
    Chain("solana-local", 104, "SOL", "", key_chain="solana", testnet=True),
    # Bitcoin networks, named across families by their genesis block (`caip2`). chain_id is a
    # number of Warden's own (8332 and 18443, their nodes' customary RPC ports). Final means
    # `confirmations` blocks on top of the transaction's block; a Bitcoin node serves no
    # finalized block. The regtest node `warden up` runs mines a block a second.
    Chain("bitcoin", 8332, "BTC", "https://mempool.space", key_chain="bitcoin", finalized_tag=False, confirmations=6),
    Chain("bitcoin-regtest", 18443, "BTC", "", key_chain="bitcoin", testnet=True, finalized_tag=False, confirmations=2),
)


# A network's CAIP-2 reference within its family's namespace.
_REFERENCE: Mapping[Family, Callable[[Chain], str]] = MappingProxyType(
    {
        Family.EVM: lambda chain: str(chain.chain_id),
        Family.SOLANA: lambda chain: SOLANA_GENESIS.get(chain.name, chain.name),
        Family.BITCOIN: lambda chain: BITCOIN_GENESIS.get(chain.name, chain.name),
    }
)


class UnknownChain(WardenError, ValueError):
    pass


def finality(chain: Chain) -> str:
    """When a transaction on ``chain`` is final, in words."""
    deep = f"{chain.confirmations} confirmations"
    return f"finalized tag, else {deep}" if chain.finalized_tag else deep


BUILTIN_BY_NAME: Mapping[str, Chain] = MappingProxyType({c.name: c for c in BUILTIN})


def admin_table(chains: Iterable[Chain], builtin: Mapping[str, Chain] = BUILTIN_BY_NAME) -> dict[str, Chain]:
    """``chains`` checked as the admins' table over the ``builtin`` one, by name: each network
    listed once, a built-in network changed in its finality only (``finalized_tag``,
    ``confirmations``), no chain id under two names. ValueError names the chain, the field and
    what is allowed."""
    table: dict[str, Chain] = {}
    for chain in chains:
        if chain.name in table:
            raise ValueError(f"chain {chain.name!r} is listed twice; list each network once")
        known = builtin.get(chain.name)
        if known is not None:
            changed = [
                f"{f.name} {getattr(chain, f.name)!r} (built in: {getattr(known, f.name)!r})"
                for f in dataclasses.fields(Chain)
                if f.name not in _FINALITY and getattr(chain, f.name) != getattr(known, f.name)
            ]
            if changed:
                raise ValueError(
                    f"chain {chain.name!r} is built in: only its finality ({', '.join(_FINALITY)}) may change, "
                    f"not {'; '.join(changed)}"
                )
        table[chain.name] = chain
    used_by: dict[int, str] = {}
    for chain in {**builtin, **table}.values():
        other = used_by.setdefault(chain.chain_id, chain.name)
        if other != chain.name:
            raise ValueError(
                f"chain id {chain.chain_id} is already used by {other!r}; {chain.name!r} needs a chain id of its own"
            )
    return table


def unknown_chain(name: str, known: Iterable[str]) -> UnknownChain:
    """The error for a network ``name`` that is not among ``known``: which ones are, and how one is added."""
    return UnknownChain(
        f"unknown chain {name!r}; allowed: {', '.join(sorted(known))} "
        "(admins add one with `warden chains add`, signed by their quorum)"
    )


class ChainLookup(Protocol):
    """The networks in force, as a reader of records hands them to the validators
    (`runtime.registry.ChainRegistry`): ``get`` raises `UnknownChain` for a name it does not know."""

    def get(self, name: str) -> Chain: ...


# The key of pydantic's validation context under which a reader hands the networks in force.
_CHAINS = "chains"


def chains_context(chains: ChainLookup) -> dict[str, Any]:
    """The validation context that has a record's chain names checked against ``chains``:
    ``Model.model_validate_json(raw, context=chains_context(registry))``."""
    return {_CHAINS: chains}


def chain_named(name: str, context: object) -> Chain | None:
    """The network ``name`` a record names, for its validators: from the networks in force when the
    validation ``context`` carries them (`chains_context`; unknown: `UnknownChain`), else from the
    built-in table, None when it is not built in (its form checked: ValueError)."""
    chains: ChainLookup | None = context.get(_CHAINS) if isinstance(context, dict) else None
    if chains is not None:
        return chains.get(name)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"chain name {str(name)[:80]!r}: 1-32 lowercase letters, digits and '-', starting with a letter or digit"
        )
    return BUILTIN_BY_NAME.get(name)
