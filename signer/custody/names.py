"""What an org, a vault and a secret path may be called, and which paths a prefix covers.

Names end up in record keys, associated data and file paths, so they are checked
before anything is written; a bad one is refused with the rule it broke.
"""

from __future__ import annotations

import re

from signer.custody.errors import CustodyError

_ORG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VAULT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,127}$")


def check_path(path: str) -> str:
    if not isinstance(path, str) or len(path) > 512:
        raise CustodyError("a secret path is at most 512 characters")
    segments = path.split("/")
    if not all(_SEGMENT_RE.match(s) for s in segments):
        raise CustodyError(
            f"bad secret path {path!r}: '/'-separated segments of letters, digits and _.:@+- "
            "(not starting with '.' or '-'), no empty segments"
        )
    return path


def check_names(org: str, vault: str) -> None:
    if not isinstance(org, str) or not _ORG_RE.match(org):
        raise CustodyError(f"bad org {org!r}: letters, digits and _.- (at most 64, starting with a letter or digit)")
    if not isinstance(vault, str) or not _VAULT_RE.match(vault):
        raise CustodyError(f"bad vault name {vault!r}: letters, digits and _.- (at most 64)")


def prefix_covers(prefix: str, path: str) -> bool:
    """``prefix`` covers ``path`` on segment boundaries: "keys/" and "keys" cover
    "keys/x"; "keys/eth" covers "keys/eth" and "keys/eth/x" but not "keys/ethereum"."""
    if prefix == "" or prefix == path:
        return True
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path.startswith(prefix + "/")
