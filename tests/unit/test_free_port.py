"""Ports for a stack's components are picked before they are bound: below the kernel's ephemeral
range, where no outbound connection takes one meanwhile, and never one the picker was told is
taken."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.stack.local import LocalStack, StackError, free_port, free_ports, listen_ports, local_settings, ports_between
from tests.support import worker_ports


def _ephemeral_range() -> range:
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


def test_a_port_to_avoid_is_never_handed_out() -> None:
    # All but 64 of the listen ports are taken: without the rule, nearly every pick is one of them.
    ports = listen_ports()
    left = set(ports[:: len(ports) // 64][:64])
    taken = set(ports) - left
    picks = [free_port(taken) for _ in range(20)]
    assert set(picks) <= left, sorted(set(picks) - left)[:5]


def test_no_port_is_picked_where_outbound_connections_take_theirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARDEN_LISTEN_PORTS", raising=False)  # the whole range, not this xdist worker's
    ephemeral = _ephemeral_range()
    picks = {free_port() for _ in range(200)}
    assert len(listen_ports()) > 10_000 and not picks & set(ephemeral), sorted(picks & set(ephemeral))[:5]


def test_several_ports_are_different_and_not_the_settings_ones(tmp_path: Path) -> None:
    stack = LocalStack(local_settings(tmp_path / "home"))
    configured = stack.configured_ports()
    assert len(configured) == 5  # broker, Anvil, the ledger's endpoint, the API, the console: five different ports
    picked = free_ports(8, avoid=configured)
    assert len(set(picked)) == 8 and not set(picked) & configured


def test_each_xdist_worker_picks_in_a_range_no_other_worker_picks_from(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = range(10000, 32768)
    slices = [ports_between(worker_ports(ports, n, 5), ports) for n in range(5)]
    assert all(len(s) == len(ports) // 5 for s in slices)
    assert all(not set(a) & set(b) for i, a in enumerate(slices) for b in slices[i + 1 :])
    monkeypatch.setenv("WARDEN_LISTEN_PORTS", "20000-20099")
    assert {free_port() for _ in range(50)} <= set(range(20000, 20100))


@pytest.mark.parametrize(
    "text, said",
    [
        ("20000", "'20000', not two ports low-high"),
        ("a-b", "'a-b', not two ports low-high"),
        ("20999-20000", "not a range of ports below the ephemeral range"),
        ("100-200", "not a range of ports below the ephemeral range"),
        ("30000-65000", "not a range of ports below the ephemeral range"),
    ],
)
def test_a_listen_range_that_is_not_one_names_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, text: str, said: str
) -> None:
    monkeypatch.setenv("WARDEN_LISTEN_PORTS", text)
    with pytest.raises(StackError, match=said) as raised:
        listen_ports()
    assert "set it to low-high, two ports in 10000-" in str(raised.value)


def test_ports_picked_within_a_slice_stay_in_it() -> None:
    # Two demos running at once each pick in their own slice of the worker's ports: a pick outside
    # its slice could be the one the other demo's stack binds a moment later.
    whole = listen_ports()
    mine = ports_between(worker_ports(whole, 1, 5), whole)
    picks = free_ports(40, within=mine)
    assert len(set(picks)) == 40 and set(picks) <= set(mine), sorted(set(picks) - set(mine))[:5]
