"""Settings for every Warden process, read from the environment.

One place names every knob, so `warden up` can hand the same settings to each
process it starts and a reader can see what a deployment can change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path(_env("WARDEN_HOME", ".warden")).resolve())
    broker: str = field(default_factory=lambda: _env("WARDEN_BROKER", "127.0.0.1:19092"))
    rpc_url: str = field(default_factory=lambda: _env("WARDEN_RPC_URL", "http://127.0.0.1:18545"))
    # Per-chain RPC overrides: WARDEN_RPC_URL_<CHAIN> (e.g. WARDEN_RPC_URL_BASE).
    topology: str = field(default_factory=lambda: _env("WARDEN_TOPOLOGY", "fused"))
    clickhouse_url: str | None = field(default_factory=lambda: os.environ.get("WARDEN_CLICKHOUSE_URL"))
    ledger_http: str = field(default_factory=lambda: _env("WARDEN_LEDGER_HTTP", "127.0.0.1:18123"))
    tee: str = field(default_factory=lambda: _env("WARDEN_TEE", "none"))
    root_provider: str = field(default_factory=lambda: _env("WARDEN_ROOT_PROVIDER", "local-dev"))
    allow_dev_root: bool = field(default_factory=lambda: _env("WARDEN_ALLOW_DEV_ROOT", "0") == "1")
    # The signing-key vault's custody mode, fixed when its first key is provisioned: standard,
    # 2of3_multi_hsm (Shamir over three roots), 2of2_client_custody or 2of3_client_custody.
    key_mode: str = field(default_factory=lambda: _env("WARDEN_KEY_MODE", "standard"))
    signer_id: str = field(default_factory=lambda: _env("WARDEN_SIGNER_ID", "signer-0"))
    # Clients seal client shares only to attested signers unless this says a tee=none one will do.
    allow_unattested_signer: bool = field(
        default_factory=lambda: _env("WARDEN_ALLOW_UNATTESTED_SIGNER", "0") == "1")
    # Largest record a worker reads; anything bigger goes to the DLQ unread.
    max_record_bytes: int = field(default_factory=lambda: int(_env("WARDEN_MAX_RECORD_BYTES", "65536")))

    def rpc_url_for(self, chain: str) -> str:
        return os.environ.get(f"WARDEN_RPC_URL_{chain.upper().replace('-', '_')}", self.rpc_url)

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"


def load() -> Settings:
    return Settings()
