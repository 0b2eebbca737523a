"""The errors custody raises.

``InvalidKey`` is the one opaque error for every authentication failure: a
wrong root, a ciphertext moved to another slot, a tampered envelope, a wrong or
missing client share, a wrong customer-managed key. It never says which of those
it was and never chains the underlying exception, so a caller probing the vault
learns nothing but "no". Every other error is about a request, not about key
material, and says what to do next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.codes import Code
from schemas.errors import WardenError

if TYPE_CHECKING:
    from schemas.emit import Emit


class CustodyError(WardenError):
    """Base of every custody error."""


class InvalidKey(CustodyError):
    """Authentication failed. Deliberately says nothing more."""

    def __init__(self) -> None:
        super().__init__("custody: authentication failed")


class PermissionDenied(CustodyError):
    """The actor may not do this (the HTTP 403 of custody).

    ``audit`` is the refusal's audit record (an ``Emit`` for ``warden.audit.events``,
    built by ``schemas.emit.audit``) when the refusal is audited, so whoever catches
    it can publish it too.
    """

    status = 403

    def __init__(self, message: str, audit: Emit | None = None) -> None:
        super().__init__(message)
        self.audit = audit


class NotFound(CustodyError):
    """No such vault, secret, version or key."""

    status = 404


class Conflict(CustodyError):
    """The request contradicts the vault's state (a mode set twice, a vault created twice)."""

    status = 409


class ProviderUnavailable(CustodyError):
    """A root-of-trust provider could not be reached or is not configured.

    Distinct from ``InvalidKey``: an outage is not an authentication failure,
    and the 2-of-3 modes carry on with the other providers.
    """

    status = 503


class AttestationRequired(CustodyError):
    """The vault releases its key only to a requester with a verified attestation report, and
    this request had none, or one that does not verify. ``audit`` as for ``PermissionDenied``."""

    status = 403
    code = Code.ATTESTATION_REQUIRED

    def __init__(self, message: str, audit: Emit | None = None) -> None:
        super().__init__(message)
        self.audit = audit


class DevRootRefused(CustodyError):
    """The local development root was asked for without being explicitly allowed."""
