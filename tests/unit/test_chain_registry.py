"""The chain registry: the built-in mainnets and testnets with unique ids and names, and the chains
an admin may add (never redefining a built-in one or reusing its id)."""

from __future__ import annotations

import json

import pytest

from schemas.chains import REGISTRY, Chain, ChainRegistry, UnknownChain


def test_registry_holds_28_mainnets_2_testnets_and_anvil():
    chains = ChainRegistry().all()
    mainnets = {name for name, c in chains.items() if not c.testnet}
    testnets = {name for name, c in chains.items() if c.testnet}
    assert len(mainnets) == 28
    assert testnets == {"sepolia", "holesky", "anvil"}
    assert len(chains) == 31
    assert chains["anvil"].chain_id == 31337
    assert chains["sepolia"].chain_id == 11155111 and chains["holesky"].chain_id == 17000
    assert chains["ethereum"].chain_id == 1 and chains["base"].chain_id == 8453


def test_every_evm_network_signs_with_the_ethereum_key_chain():
    assert {c.key_chain for c in ChainRegistry().all().values()} == {"ethereum"}


def test_chain_ids_and_names_are_unique():
    chains = list(ChainRegistry().all().values())
    assert len({c.chain_id for c in chains}) == len(chains)
    assert len({c.name for c in chains}) == len(chains)


def test_lookup_by_chain_id_and_unknown_names():
    registry = ChainRegistry()
    assert registry.by_chain_id(8453).name == "base"
    assert registry.by_chain_id(999_999_999) is None
    with pytest.raises(UnknownChain, match="unknown chain 'nochain'; allowed: .*anvil"):
        registry.get("nochain")


def test_the_module_registry_knows_every_built_in_chain():
    assert set(ChainRegistry().all()) <= set(REGISTRY.all())


def test_an_admin_added_chain_is_usable_and_persisted(tmp_path):
    path = tmp_path / "home" / "chains.json"
    registry = ChainRegistry(extra_path=path)
    mine = Chain("mychain", 424242, "MYC", "https://explorer.mychain.test")
    registry.add(mine)
    assert registry.get("mychain") == mine
    assert registry.by_chain_id(424242) == mine
    assert "mychain" in str(pytest.raises(UnknownChain, registry.get, "nochain").value)
    # Another process reading the same admin file sees it.
    assert ChainRegistry(extra_path=path).get("mychain") == mine
    assert json.loads(path.read_text())[0]["chain_id"] == 424242
    second = Chain("otherchain", 424243, "OTH", "")
    registry.add(second)
    assert registry.get("otherchain") == second and registry.get("mychain") == mine


def test_an_admin_cannot_redefine_a_built_in_chain(tmp_path):
    registry = ChainRegistry(extra_path=tmp_path / "chains.json")
    with pytest.raises(ValueError, match="chain 'base' is built in and cannot be redefined"):
        registry.add(Chain("base", 999_001, "ETH", ""))
    assert registry.get("base").chain_id == 8453
    assert not (tmp_path / "chains.json").exists()


def test_an_admin_cannot_reuse_a_chain_id(tmp_path):
    registry = ChainRegistry(extra_path=tmp_path / "chains.json")
    with pytest.raises(ValueError, match="chain id 8453 is already used by 'base'"):
        registry.add(Chain("fakebase", 8453, "ETH", ""))
    registry.add(Chain("mychain", 424242, "MYC", ""))
    with pytest.raises(ValueError, match="chain id 424242 is already used by 'mychain'"):
        registry.add(Chain("copycat", 424242, "MYC", ""))
    assert set(registry.all()) - set(ChainRegistry().all()) == {"mychain"}


def test_a_registry_without_an_admin_file_refuses_to_add():
    with pytest.raises(RuntimeError, match="no admin file"):
        ChainRegistry().add(Chain("mychain", 424242, "MYC", ""))


def test_an_admin_sets_when_a_built_in_chains_transactions_are_final_and_nothing_else(tmp_path):
    path = tmp_path / "chains.json"
    registry = ChainRegistry(extra_path=path)
    assert registry.get("base").finalized_tag and registry.get("base").confirmations == 12
    changed = registry.set_finality("base", finalized_tag=False, confirmations=30)
    assert (changed.finalized_tag, changed.confirmations) == (False, 30)
    again = ChainRegistry(extra_path=path).get("base")  # persisted, read back by another process
    assert (again.finalized_tag, again.confirmations, again.chain_id) == (False, 30, 8453)
    with pytest.raises(ValueError, match="confirmations must be at least 1"):
        registry.set_finality("base", confirmations=0)
    # The file may change a built-in chain's finality only: another field is refused, by name.
    doc = json.loads(path.read_text())
    doc[0]["chain_id"] = 1234
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="may only have its finality changed"):
        ChainRegistry(extra_path=path).get("base")
