"""The admins' chain table as a signed record: what `warden chains add` and `warden chains finality`
change, version after version, on warden.chains.

A `ChainSet` carries the WHOLE admin-managed table (the networks admins added, and built-in ones
whose finality they changed), so each version replaces the one before and a reader needs only
the newest one it can believe. It is taken only when newer than the set in force and signed by
the admins' quorum for ``chains`` (`runtime.chains.ChainSetBook`); the built-in table alone is
version 0.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from pydantic import Field, field_validator

from schemas.admins import ADMIN_SIGNATURE, AdminSignature
from schemas.chains import Chain, admin_table, finality
from schemas.fields import UtcDatetime
from schemas.passkeys import MAX_ASSERTION_CHARS
from schemas.record import Evolving


class ChainSet(Evolving):
    """The admins' chain table, version ``version``: taken only when newer than the one in force
    and signed by the quorum for ``chains`` of the admin set in force."""

    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {"cosignatures": ()}

    version: int = Field(ge=1, description="the built-in table alone is version 0")
    chains: tuple[Chain, ...] = Field(
        max_length=256,
        description="the whole admins' table, by name: networks they added, built-in ones with their finality changed",
    )
    issued_at: UtcDatetime
    admin_key_id: str = ""
    signature: str = Field(
        default="", max_length=MAX_ASSERTION_CHARS, description="the proposing admin's, " + ADMIN_SIGNATURE
    )
    cosignatures: tuple[AdminSignature, ...] = Field(default=(), max_length=64)

    @field_validator("chains")
    @classmethod
    def _table(cls, chains: tuple[Chain, ...]) -> tuple[Chain, ...]:
        # Checked as the registry checks it, and by name: one table, one byte string to sign.
        return tuple(sorted(admin_table(chains).values(), key=lambda c: c.name))

    def signing_bytes(self) -> bytes:
        return b"warden.chains\x00" + orjson.dumps(
            self.model_dump(mode="json", exclude={"signature", "cosignatures"}), option=orjson.OPT_SORT_KEYS
        )

    def summary(self) -> str:
        """Its table in a few words, for people: each network with its chain id and finality."""
        return ", ".join(f"{c.name} ({c.chain_id}, {finality(c)})" for c in self.chains) or "no chain of their own"
