"""The repository's root and its packages, as the architecture tests name them."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("evm", "schemas", "runtime", "rules", "streams", "signer", "ledger", "sdk", "infra")
