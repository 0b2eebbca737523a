"""Helpers shared by the custody tests: real roots and logs in temp dirs, a root wrapper
that counts unwraps (it delegates to a real root; nothing is faked) and a SoftHSM2 token.
The local KMS protocol servers are in ``infra/stack/kms_servers.py``, shared with the benchmark."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from signer.custody import FileEventLog, Vaults
from signer.custody.errors import ProviderUnavailable
from signer.custody.roots import LocalDevRoot, RootOfTrust

ADMIN = "admin:ops-key-1"
SIGNER = "service:signer"
T0 = 1_800_000_000.0


class CountingRoot:
    """A real root whose unwraps are counted, and which can be switched off to
    play a provider outage."""

    def __init__(self, inner: RootOfTrust):
        self.inner = inner
        self.name = inner.name
        self.development = getattr(inner, "development", False)
        self.unwraps = 0
        self.down = False

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        return self.inner.wrap(plaintext, aad)

    def unwrap(self, ciphertext: bytes, aad: bytes) -> bytearray:
        if self.down:
            raise ProviderUnavailable(f"{self.name} is down")
        self.unwraps += 1
        return self.inner.unwrap(ciphertext, aad)


def dev_root(tmp: Path, name: str = "local-dev") -> LocalDevRoot:
    return LocalDevRoot(tmp / "keys" / f"{name}.key", True, name=name)


def make_vaults(tmp: Path, roots: Any = None, **kwargs: Any) -> Vaults:
    roots = roots if roots is not None else dev_root(tmp)
    return Vaults(roots, FileEventLog(tmp / "vault" / "events.jsonl"), **kwargs)


SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


class SoftHsmToken:
    """A SoftHSM2 token initialised in a temp dir (SOFTHSM2_CONF points at a temp config)."""

    label = "warden-test"
    pin = "1234"
    so_pin = "5678"

    def __init__(self, base: Path) -> None:
        if shutil.which("softhsm2-util") is None or not Path(SOFTHSM_MODULE).exists():
            raise RuntimeError("SoftHSM2 is not installed: apt-get install -y softhsm2")
        (base / "tokens").mkdir(parents=True)
        self.conf = base / "softhsm2.conf"
        self.conf.write_text(
            f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
        )
        # The module reads SOFTHSM2_CONF when first loaded, once per process.
        os.environ["SOFTHSM2_CONF"] = str(self.conf)
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                self.label,
                "--so-pin",
                self.so_pin,
                "--pin",
                self.pin,
            ],
            check=True,
            capture_output=True,
        )
        self.module = SOFTHSM_MODULE
