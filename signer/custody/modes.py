"""Custody modes: how a vault's KEK is held. One class per mode; a vault's mode is set once.

A mode says how many distinct root providers it spreads the KEK over, how it
splits a fresh KEK into the pieces those roots wrap (plus the client's share,
where the client holds one), and how it rebuilds the KEK from enough pieces.

* ``standard``: the whole KEK, wrapped by one root.
* ``2of2_client_custody``: KEK = server share XOR client share; one root wraps the
  server share and the client keeps the other, so every use needs both.
* ``2of3_multi_hsm``: Shamir 2-of-3 over GF(256), each share wrapped by a
  different root; any two rebuild the KEK, so one provider may be down.
* ``2of3_client_custody``: Shamir 2-of-3, two shares wrapped by two roots and
  the third held by the client; every use needs the client share plus either root.

Rebuilding does not check its result: a wrong piece rebuilds a wrong KEK, which
the caller refuses against the vault's KEK commitment before using it.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal, get_args

from signer.custody import shamir
from signer.custody.errors import CustodyError

Mode = Literal["standard", "2of2_client_custody", "2of3_multi_hsm", "2of3_client_custody"]

Piece = tuple[int, bytearray]


class CustodyMode(abc.ABC):
    """One custody mode. ``roots``: distinct root providers the server pieces are
    wrapped by, one piece each. ``threshold``: pieces that rebuild the KEK.
    ``client_x``: the x-coordinate of the client's share, None when the server
    alone holds the KEK."""

    name: ClassVar[str]
    roots: ClassVar[int]
    threshold: ClassVar[int]
    client_x: ClassVar[int | None] = None

    @property
    def client_custody(self) -> bool:
        return self.client_x is not None

    @abc.abstractmethod
    def split(self, kek: bytes | bytearray) -> tuple[list[Piece], bytearray | None]:
        """The server pieces (one per root) and the client share (None without one). The caller wipes them all."""

    @abc.abstractmethod
    def rebuild(self, pieces: Sequence[tuple[int, bytes | bytearray]]) -> bytearray:
        """The KEK from ``threshold`` pieces; in client modes one of them is ``(client_x, client share)``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Standard(CustodyMode):
    name = "standard"
    roots = 1
    threshold = 1

    def split(self, kek: bytes | bytearray) -> tuple[list[Piece], bytearray | None]:
        return [(0, bytearray(kek))], None

    def rebuild(self, pieces: Sequence[tuple[int, bytes | bytearray]]) -> bytearray:
        ((_, whole),) = pieces
        return bytearray(whole)


class TwoOfTwoClientCustody(CustodyMode):
    name = "2of2_client_custody"
    roots = 1
    threshold = 2
    client_x = 2

    def split(self, kek: bytes | bytearray) -> tuple[list[Piece], bytearray | None]:
        server, client = shamir.xor_split(kek)
        return [(1, server)], client

    def rebuild(self, pieces: Sequence[tuple[int, bytes | bytearray]]) -> bytearray:
        (_, a), (_, b) = pieces
        return shamir.xor(a, b)


class _TwoOfThree(CustodyMode):
    threshold = 2

    def rebuild(self, pieces: Sequence[tuple[int, bytes | bytearray]]) -> bytearray:
        return shamir.combine(list(pieces))


class TwoOfThreeMultiHsm(_TwoOfThree):
    name = "2of3_multi_hsm"
    roots = 3

    def split(self, kek: bytes | bytearray) -> tuple[list[Piece], bytearray | None]:
        return shamir.split(kek, 2, 3), None


class TwoOfThreeClientCustody(_TwoOfThree):
    name = "2of3_client_custody"
    roots = 2
    client_x = 3

    def split(self, kek: bytes | bytearray) -> tuple[list[Piece], bytearray | None]:
        shares = shamir.split(kek, 2, 3)
        return shares[:2], shares[2][1]


REGISTRY: Mapping[str, CustodyMode] = {
    mode.name: mode for mode in (Standard(), TwoOfTwoClientCustody(), TwoOfThreeMultiHsm(), TwoOfThreeClientCustody())
}
MODES: tuple[Mode, ...] = get_args(Mode)
CLIENT_MODES = frozenset(name for name, mode in REGISTRY.items() if mode.client_custody)


def mode_named(name: str) -> Mode:
    """``name`` as a custody mode (from ``WARDEN_KEY_MODE``, an admin's command), or
    `CustodyError` naming the modes there are."""
    for mode in MODES:
        if mode == name:
            return mode
    raise CustodyError(f"unknown custody mode {name!r}; choose one of {', '.join(MODES)}")


def custody_mode(name: str) -> CustodyMode:
    return REGISTRY[mode_named(name)]
