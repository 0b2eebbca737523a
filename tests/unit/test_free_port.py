"""Ports for a stack's components are picked before they are bound; the kernel may hand the
same free port out twice, so a picker skips the ports it was told are taken."""

from __future__ import annotations

from pathlib import Path

from infra.stack.local import LocalStack, free_port, free_ports, local_settings


def _ephemeral_range() -> range:
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


def test_a_port_to_avoid_is_never_handed_out():
    # All but 64 of the kernel's ports are taken: without the rule, nearly every pick is one of them.
    ports = _ephemeral_range()
    left = set(ports[:: len(ports) // 64][:64])
    taken = set(ports) - left
    picks = [free_port(taken) for _ in range(20)]
    assert set(picks) <= left, sorted(set(picks) - left)[:5]


def test_several_ports_are_different_and_not_the_settings_ones(tmp_path):
    stack = LocalStack(local_settings(tmp_path / "home"))
    configured = stack.configured_ports()
    assert len(configured) == 4  # broker, Anvil, the ledger's endpoint, the API: four different ports
    picked = free_ports(8, avoid=configured)
    assert len(set(picked)) == 8 and not set(picked) & configured
