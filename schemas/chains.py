"""The chain registry: every network an intent may name.

A *network* (``base``, ``sepolia``) is what an intent targets; it has an EIP-155
chain id, a native currency and an explorer. A *key chain* (``ethereum``) is the
family of signing keys that network uses: every EVM network signs with the
agent's ethereum key, so ``base`` and ``sepolia`` map to ``ethereum``.

Admins add networks at run time (``warden chains add``); those live in
``$WARDEN_HOME/chains.json`` and are merged over the built-in table.

Each network also says when a transaction in one of its blocks is final (`signer.finality`):
at or below the block its node serves as ``finalized`` (``finalized_tag``), else
``confirmations`` blocks deep. ``warden chains finality`` changes both, for a built-in network
too; the change is kept in the same file.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path


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

    def __post_init__(self):
        if self.confirmations < 1:
            raise ValueError(
                f"chain {self.name!r}: confirmations must be at least 1 (blocks on top of a transaction's "
                f"block before it is final), not {self.confirmations}"
            )


_BUILTIN = (
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
)


class UnknownChain(ValueError):
    pass


class ChainRegistry:
    def __init__(self, chains: tuple[Chain, ...] = _BUILTIN, extra_path: Path | None = None):
        self._builtin = {c.name: c for c in chains}
        self._extra_path = extra_path
        self._extra: dict[str, Chain] = {}
        self._extra_mtime: float | None = None

    def use_extra_file(self, path: Path) -> None:
        """Merge the chains an admin added in ``path`` (``$WARDEN_HOME/chains.json``)."""
        if path != self._extra_path:
            self._extra_path, self._extra, self._extra_mtime = path, {}, None

    def _load_extra(self) -> None:
        # Re-read only when the admin file changed, so lookups on the hot path stay cheap.
        if self._extra_path is None:
            return
        try:
            mtime = self._extra_path.stat().st_mtime
        except FileNotFoundError:
            self._extra, self._extra_mtime = {}, None
            return
        if mtime == self._extra_mtime:
            return
        raw = json.loads(self._extra_path.read_text())
        self._extra = {c["name"]: Chain(**c) for c in raw}
        for name, chain in self._extra.items():
            builtin = self._builtin.get(name)
            if builtin is not None and dataclasses.replace(chain, **_finality(builtin)) != builtin:
                raise ValueError(
                    f"{self._extra_path}: built-in chain {name!r} may only have its finality changed there "
                    "(finalized_tag, confirmations); remove the other changes"
                )
        self._extra_mtime = mtime

    def all(self) -> dict[str, Chain]:
        self._load_extra()
        return {**self._builtin, **self._extra}

    def get(self, name: str) -> Chain:
        chain = self.all().get(name)
        if chain is None:
            raise UnknownChain(
                f"unknown chain {name!r}; allowed: {', '.join(sorted(self.all()))} "
                "(an admin adds one with `warden chains add`)"
            )
        return chain

    def by_chain_id(self, chain_id: int) -> Chain | None:
        return next((c for c in self.all().values() if c.chain_id == chain_id), None)

    def add(self, chain: Chain) -> None:
        if self._extra_path is None:
            raise RuntimeError("this registry has no admin file; load the settings first (runtime.config.load)")
        if chain.name in self._builtin:
            raise ValueError(f"chain {chain.name!r} is built in and cannot be redefined")
        clash = self.by_chain_id(chain.chain_id)
        if clash is not None and clash.name != chain.name:
            raise ValueError(f"chain id {chain.chain_id} is already used by {clash.name!r}")
        self._load_extra()
        extra = {**self._extra, chain.name: chain}
        self._write(extra)

    def set_finality(self, name: str, *, finalized_tag: bool | None = None, confirmations: int | None = None) -> Chain:
        """When a transaction on ``name`` is final (an admin's change, built-in networks too)."""
        if self._extra_path is None:
            raise RuntimeError("this registry has no admin file; load the settings first (runtime.config.load)")
        changes = {
            k: v for k, v in (("finalized_tag", finalized_tag), ("confirmations", confirmations)) if v is not None
        }
        chain = dataclasses.replace(self.get(name), **changes)
        self._load_extra()
        self._write({**self._extra, name: chain})
        return chain

    def _write(self, extra: dict[str, Chain]) -> None:
        self._extra_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._extra_path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(c) for c in extra.values()], indent=2))
        tmp.replace(self._extra_path)
        self._extra_mtime = None
        self._load_extra()


def _finality(chain: Chain) -> dict:
    return {"finalized_tag": chain.finalized_tag, "confirmations": chain.confirmations}


# The process's registry. Its admin file is attached by `runtime.config.load()` (the
# registry itself reads no environment), so every process sees the chains of its home.
REGISTRY = ChainRegistry()
