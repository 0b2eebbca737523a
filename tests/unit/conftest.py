"""Fixtures the unit tests share. A unit test starts no process: no broker, no node, no subprocess."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.engine_support import World


@pytest.fixture
def world() -> World:
    """A World with its default policy published: the engine tests' starting point."""
    w = World()
    w.publish(w.policy())
    return w


@pytest.fixture
def agent_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()
