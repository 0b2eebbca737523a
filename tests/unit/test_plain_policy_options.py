"""`--allowlist`, `--max-value` and `--daily-limit` (and the console's same fields) read the same
for every family: each address goes to the family whose form it is written in, each amount to each
family of the networks the policy allows, in its base unit; an address of no allowed family, an
amount finer than the unit and a Solana section without the agent's address are refused by name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.chains import Family
from schemas.policy import AgentPolicy
from sdk.policies import PolicyInvalid, policy_fields, unsigned_policy

KEY = "0x" + "11" * 32
SOL_ADDRESS = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
SOL_AGENT = "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV"
EVM_ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
OWN = {Family.SOLANA: SOL_AGENT}


def _policy(options: dict[str, Any], current: AgentPolicy | None = None, own: Any = OWN) -> AgentPolicy:
    key = None if current is not None else KEY
    return unsigned_policy("agent-a", current, key, policy_fields(options), datetime(2026, 1, 1, tzinfo=UTC), own=own)


def test_a_solana_network_takes_its_addresses_and_sol_amounts_in_its_section() -> None:
    policy = _policy({"chains": "solana-local", "allowlist": SOL_ADDRESS, "max_value": "1", "daily_limit": "2.5"})
    assert policy.solana is not None
    assert (policy.solana.address, policy.solana.allowlist) == (SOL_AGENT, (SOL_ADDRESS,))
    assert (policy.solana.max_lamports_per_tx, policy.solana.daily_limit_lamports) == (10**9, 25 * 10**8)
    assert (policy.tx_to_allowlist, policy.tx_max_value_eth, policy.tx_daily_limit_eth) == ((), None, None)


def test_networks_of_two_families_split_the_allowlist_by_form_and_take_the_amount_each_in_its_unit() -> None:
    options = {"chains": "anvil,solana-local", "allowlist": f"{SOL_ADDRESS},{EVM_ADDRESS}", "max_value": "1.5"}
    policy = _policy({**options, "daily_limit": "none"})
    assert policy.solana is not None
    assert (policy.tx_to_allowlist, policy.solana.allowlist) == ((EVM_ADDRESS,), (SOL_ADDRESS,))
    assert (policy.tx_max_value_eth, policy.solana.max_lamports_per_tx) == ("1.5", 15 * 10**8)
    assert (policy.tx_daily_limit_eth, policy.solana.daily_limit_lamports) == (None, None)


def test_an_update_changes_what_it_names_for_every_family_and_keeps_the_rest() -> None:
    first = _policy({"chains": "anvil,solana-local", "allowlist": f"{SOL_ADDRESS},{EVM_ADDRESS}", "max_value": "1"})
    second = _policy({"max_value": "3"}, current=first, own={})
    assert second.solana is not None and first.solana is not None
    assert (second.tx_max_value_eth, second.solana.max_lamports_per_tx) == ("3", 3 * 10**9)
    assert (second.tx_to_allowlist, second.solana.allowlist) == (first.tx_to_allowlist, first.solana.allowlist)
    assert second.solana.address == SOL_AGENT


def test_an_update_without_the_plain_options_makes_no_section() -> None:
    without = _policy({"chains": "anvil,solana-local"}, own={})
    assert without.solana is None
    later = _policy({"approval_timeout": "120"}, current=without, own=OWN)
    assert later.solana is None and later.approval_timeout_s == 120


def test_an_evm_only_policy_is_written_as_before() -> None:
    policy = _policy({"chains": "anvil", "allowlist": EVM_ADDRESS, "max_value": "0.1", "daily_limit": "1"}, own={})
    assert (policy.tx_to_allowlist, policy.tx_max_value_eth, policy.tx_daily_limit_eth) == ((EVM_ADDRESS,), "0.1", "1")
    assert policy.solana is None


@pytest.mark.parametrize(
    ("options", "own", "words"),
    [
        (
            {"chains": "anvil,solana-local", "allowlist": f"{SOL_ADDRESS},0x1234"},
            OWN,
            "allowlist: '0x1234' is an address of none of the networks the policy allows "
            "(an EVM network takes 0x-prefixed 20-byte hex; a Solana network takes base58 of 32 bytes)",
        ),
        (
            {"chains": "solana-local", "allowlist": EVM_ADDRESS},
            OWN,
            "solana.allowlist.0: ",
        ),
        (
            {"chains": "solana-local", "max_value": "0.0000000001"},
            OWN,
            "solana.max_lamports_per_tx: has 10 decimals; at most 9 are allowed",
        ),
        (
            {"chains": "solana-local", "allowlist": SOL_ADDRESS},
            {},
            "solana.address: the policy allows a Solana network and the agent has no address there yet; "
            "provision its key (`warden keys provision --agent agent-a --chain solana`)",
        ),
    ],
)
def test_what_no_family_of_the_policy_reads_is_refused_by_name(
    options: dict[str, Any], own: dict[Family, str], words: str
) -> None:
    with pytest.raises(PolicyInvalid) as refused:
        _policy(options, own=own)
    assert words in str(refused.value)
