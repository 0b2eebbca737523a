"""The repository's root, its packages and their Python sources, as the architecture and
vocabulary tests walk them."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("evm", "svm", "schemas", "runtime", "rules", "streams", "signer", "ledger", "sdk", "gateway", "infra")


def sources(packages: tuple[str, ...] = PACKAGES) -> list[Path]:
    """Every .py file of ``packages``, sorted; none under node_modules (sdk/typescript's npm tree)."""
    return sorted(
        path for package in packages for path in (REPO / package).rglob("*.py") if "node_modules" not in path.parts
    )
