"""Custody: the key hierarchy (root of trust → vault KEK → per-version DEK),
event-sourced vaults and secrets, MPC custody modes, customer-managed keys and
agents' signing keys. See CUSTODY.md.

The signer uses ``Vaults`` + ``KeyStore``; the CLI uses the same objects with an
admin actor. Everything here takes time as an argument and fails closed with
the one opaque ``InvalidKey`` on any authentication failure.
"""

from signer.custody.errors import (
    Conflict,
    CustodyError,
    DevRootRefused,
    InvalidKey,
    NotFound,
    PermissionDenied,
    ProviderUnavailable,
)
from signer.custody.hygiene import find_leaks, key_forms
from signer.custody.roots import LocalDevRoot, RootOfTrust, root_from_settings, roots_from_settings
from signer.custody.vault import (
    AGENT_KEYS_VAULT,
    FileEventLog,
    Vaults,
    VaultEvent,
    parse_event,
)

__all__ = [
    "AGENT_KEYS_VAULT",
    "Conflict",
    "CustodyError",
    "DevRootRefused",
    "FileEventLog",
    "InvalidKey",
    "LocalDevRoot",
    "NotFound",
    "PermissionDenied",
    "ProviderUnavailable",
    "RootOfTrust",
    "VaultEvent",
    "Vaults",
    "find_leaks",
    "key_forms",
    "parse_event",
    "root_from_settings",
    "roots_from_settings",
]
