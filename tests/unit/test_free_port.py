"""Ports for a stack's components are picked before they are bound: below the kernel's ephemeral
range, where no outbound connection takes one meanwhile, and never one the picker was told is
taken."""

from __future__ import annotations

from pathlib import Path

from infra.stack.local import LocalStack, free_port, free_ports, listen_ports, local_settings


def _ephemeral_range() -> range:
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


def test_a_port_to_avoid_is_never_handed_out():
    # All but 64 of the listen ports are taken: without the rule, nearly every pick is one of them.
    ports = listen_ports()
    left = set(ports[:: len(ports) // 64][:64])
    taken = set(ports) - left
    picks = [free_port(taken) for _ in range(20)]
    assert set(picks) <= left, sorted(set(picks) - left)[:5]


def test_no_port_is_picked_where_outbound_connections_take_theirs():
    ephemeral = _ephemeral_range()
    picks = {free_port() for _ in range(200)}
    assert len(listen_ports()) > 10_000 and not picks & set(ephemeral), sorted(picks & set(ephemeral))[:5]


def test_several_ports_are_different_and_not_the_settings_ones(tmp_path):
    stack = LocalStack(local_settings(tmp_path / "home"))
    configured = stack.configured_ports()
    assert len(configured) == 4  # broker, Anvil, the ledger's endpoint, the API: four different ports
    picked = free_ports(8, avoid=configured)
    assert len(set(picked)) == 8 and not set(picked) & configured
