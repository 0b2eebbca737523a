"""The schema bounds a transaction's nonce by EIP-2681."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from evm.constants import NONCE_LIMIT
from sdk.client import new_intent
from tests.support import DEST


def test_the_schema_bounds_nonces_by_eip_2681() -> None:
    key = Ed25519PrivateKey.generate()
    fields: dict[str, Any] = dict(agent_id="a", chain="anvil", to=DEST, value="0")
    assert new_intent(key, nonce=NONCE_LIMIT - 1, **fields).nonce == 2**64 - 2
    with pytest.raises(ValidationError, match="nonce"):
        new_intent(key, nonce=2**64 - 1, **fields)
