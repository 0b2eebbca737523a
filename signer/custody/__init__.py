"""Custody: the key hierarchy (root of trust → vault KEK → per-version DEK),
event-sourced vaults and secrets, MPC custody modes, customer-managed keys and
agents' signing keys. See docs/custody.md.

One concept per module: ``vault`` (``Vaults``, the one entry point, wiring the
rest), ``book`` (each vault's state, folded from its events), ``admin`` (an
admin's changes to vaults), ``secret_store`` (sealing and opening secrets),
``cmek_rotation`` (customer-managed keys over time), ``events`` (vault events and
their logs), ``modes`` (one class per custody mode), ``keks`` (wrapping,
rebuilding and caching KEKs), ``cmek`` (the customer-managed layer), ``access``
(who may do what, and the audit record of each decision), ``names``, ``roots``
and the providers, ``keys`` (signing keys).

The signer uses ``Vaults`` + ``KeyStore``; the CLI uses the same objects with an
admin actor. Everything here takes time as an argument and fails closed with
the one opaque ``InvalidKey`` on any authentication failure.
"""

from signer.custody.access import AGENT_KEYS_VAULT, parse_actor
from signer.custody.cmek import fingerprint
from signer.custody.errors import (
    AttestationRequired,
    Conflict,
    CustodyError,
    DevRootRefused,
    InvalidKey,
    NotFound,
    PermissionDenied,
    ProviderUnavailable,
)
from signer.custody.events import SECRET_TYPES, FileEventLog, VaultEvent, parse_event
from signer.custody.hygiene import find_leaks, key_forms
from signer.custody.modes import CLIENT_MODES, MODES
from signer.custody.roots import LocalDevRoot, RootOfTrust, root_from_settings, roots_from_settings
from signer.custody.vault import MAX_SECRET_BYTES, Vaults

__all__ = [
    "AGENT_KEYS_VAULT",
    "AttestationRequired",
    "CLIENT_MODES",
    "Conflict",
    "CustodyError",
    "DevRootRefused",
    "FileEventLog",
    "InvalidKey",
    "LocalDevRoot",
    "MAX_SECRET_BYTES",
    "MODES",
    "NotFound",
    "PermissionDenied",
    "ProviderUnavailable",
    "RootOfTrust",
    "SECRET_TYPES",
    "VaultEvent",
    "Vaults",
    "find_leaks",
    "fingerprint",
    "key_forms",
    "parse_actor",
    "parse_event",
    "root_from_settings",
    "roots_from_settings",
]
