"""The chain registry: the built-in mainnets and testnets with unique ids and names, and the admins'
table laid over them (never redefining a built-in network beyond its finality, or reusing an id)."""

from __future__ import annotations

import dataclasses

import pytest

from runtime.registry import REGISTRY, ChainRegistry
from schemas.chains import Chain, Family, UnknownChain


def test_registry_holds_28_mainnets_2_testnets_anvil_and_3_solana_clusters() -> None:
    chains = ChainRegistry().all()
    evm = {name: c for name, c in chains.items() if c.family is Family.EVM}
    mainnets = {name for name, c in evm.items() if not c.testnet}
    testnets = {name for name, c in evm.items() if c.testnet}
    assert len(mainnets) == 28
    assert testnets == {"sepolia", "holesky", "anvil"}
    assert len(evm) == 31
    assert chains["anvil"].chain_id == 31337
    assert chains["sepolia"].chain_id == 11155111 and chains["holesky"].chain_id == 17000
    assert chains["ethereum"].chain_id == 1 and chains["base"].chain_id == 8453
    solana = {name: (c.currency, c.testnet) for name, c in chains.items() if c.family is Family.SOLANA}
    assert solana == {"solana": ("SOL", False), "solana-devnet": ("SOL", True), "solana-local": ("SOL", True)}


def test_every_evm_network_signs_with_the_ethereum_key_chain_and_solana_with_its_own() -> None:
    assert {c.key_chain for c in ChainRegistry().all().values() if c.family is Family.EVM} == {"ethereum"}
    assert {c.key_chain for c in ChainRegistry().all().values() if c.family is Family.SOLANA} == {"solana"}


def test_every_network_is_named_by_its_caip2_id_once() -> None:
    chains = ChainRegistry().all()
    assert chains["base"].caip2 == "eip155:8453" and chains["anvil"].caip2 == "eip155:31337"
    # CAIP-30: a Solana cluster's reference is the first 32 characters of its genesis hash.
    assert chains["solana"].caip2 == "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"
    assert chains["solana-devnet"].caip2 == "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"
    assert chains["solana-local"].caip2 == "solana:solana-local"
    assert len({c.caip2 for c in chains.values()}) == len(chains)


def test_a_network_signs_with_a_key_chain_of_a_family_warden_judges() -> None:
    with pytest.raises(
        ValueError, match="key_chain 'xrp' signs for no family Warden judges; allowed: ethereum, solana, bitcoin"
    ):
        Chain("xrpl", 18444, "XRP", "", key_chain="xrp")


def test_a_solana_clusters_number_is_not_an_evm_chain_id() -> None:
    registry = ChainRegistry()
    assert registry.get("solana").chain_id == 101 and registry.by_chain_id(101) is None
    ethereum = registry.by_chain_id(1)
    assert ethereum is not None and ethereum.name == "ethereum"


def test_chain_ids_and_names_are_unique() -> None:
    chains = list(ChainRegistry().all().values())
    assert len({c.chain_id for c in chains}) == len(chains)
    assert len({c.name for c in chains}) == len(chains)


def test_lookup_by_chain_id_and_unknown_names() -> None:
    registry = ChainRegistry()
    base = registry.by_chain_id(8453)
    assert base is not None and base.name == "base"
    assert registry.by_chain_id(999_999_999) is None
    with pytest.raises(UnknownChain, match="unknown chain 'nochain'; allowed: .*anvil"):
        registry.get("nochain")


def test_the_module_registry_knows_every_built_in_chain() -> None:
    assert set(ChainRegistry().all()) <= set(REGISTRY.all())


def test_a_chain_the_admins_added_is_usable_once_their_table_is_adopted() -> None:
    registry = ChainRegistry()
    mine = Chain("mychain", 424242, "MYC", "https://explorer.mychain.test")
    table = registry.with_chain(mine)
    assert table == (mine,)
    with pytest.raises(UnknownChain):  # proposing it changes nothing: only adopting a signed set does
        registry.get("mychain")
    registry.adopt(table)
    assert registry.get("mychain") == mine and registry.by_chain_id(424242) == mine
    assert "mychain" in str(pytest.raises(UnknownChain, registry.get, "nochain").value)
    second = Chain("otherchain", 424243, "OTH", "")
    registry.adopt(registry.with_chain(second))
    assert registry.get("otherchain") == second and registry.get("mychain") == mine
    # The whole table is replaced: a network the newer table leaves out is gone.
    registry.adopt((second,))
    assert registry.admin_table() == (second,)
    with pytest.raises(UnknownChain):
        registry.get("mychain")


def test_an_admin_cannot_redefine_a_built_in_chain() -> None:
    registry = ChainRegistry()
    with pytest.raises(ValueError, match="chain 'base' is built in and cannot be redefined"):
        registry.with_chain(Chain("base", 999_001, "ETH", ""))
    with pytest.raises(ValueError, match="chain 'base' is built in: only its finality .* not chain_id 999001"):
        registry.adopt((Chain("base", 999_001, "ETH", "https://basescan.org"),))
    assert registry.get("base").chain_id == 8453 and registry.admin_table() == ()


def test_an_admin_cannot_reuse_a_chain_id() -> None:
    registry = ChainRegistry()
    with pytest.raises(ValueError, match="chain id 8453 is already used by 'base'"):
        registry.with_chain(Chain("fakebase", 8453, "ETH", ""))
    registry.adopt(registry.with_chain(Chain("mychain", 424242, "MYC", "")))
    with pytest.raises(ValueError, match="chain id 424242 is already used by 'mychain'"):
        registry.with_chain(Chain("copycat", 424242, "MYC", ""))
    assert set(registry.all()) - set(ChainRegistry().all()) == {"mychain"}


def test_a_chain_is_refused_with_the_field_that_is_wrong() -> None:
    with pytest.raises(ValueError, match="confirmations must be at least 1"):
        Chain("mychain", 424242, "MYC", "", confirmations=0)
    with pytest.raises(ValueError, match="chain_id must be its EIP-155 chain id"):
        Chain("mychain", 0, "MYC", "")
    with pytest.raises(ValueError, match="chain name 'My Chain': 1-32 lowercase letters"):
        Chain("My Chain", 424242, "MYC", "")


def test_an_admin_sets_when_a_built_in_chains_transactions_are_final_and_nothing_else() -> None:
    registry = ChainRegistry()
    assert registry.get("base").finalized_tag and registry.get("base").confirmations == 12
    table = registry.with_finality("base", finalized_tag=False, confirmations=30)
    registry.adopt(table)
    changed = registry.get("base")
    assert (changed.finalized_tag, changed.confirmations, changed.chain_id) == (False, 30, 8453)
    with pytest.raises(ValueError, match="confirmations must be at least 1"):
        registry.with_finality("base", confirmations=0)
    with pytest.raises(ValueError, match="only its finality"):
        registry.adopt((dataclasses.replace(changed, chain_id=1234),))
    registry.adopt(())  # the admins' table emptied: the built-in finality again
    assert registry.get("base").confirmations == 12


def test_a_client_learns_the_chains_in_force_when_it_meets_a_name_it_does_not_know() -> None:
    registry = ChainRegistry()
    asked: list[int] = []
    mine = Chain("mychain", 424242, "MYC", "")

    def learn() -> None:
        asked.append(1)
        registry.adopt((mine,))

    registry.when_unknown(learn, every_s=3600)
    assert registry.get("base").chain_id == 8453 and asked == []  # a known name asks nothing
    assert registry.get("mychain") == mine and asked == [1]
    assert registry.by_chain_id(999) is None and asked == [1]  # at most once per interval
    with pytest.raises(UnknownChain):
        registry.get("nochain")
