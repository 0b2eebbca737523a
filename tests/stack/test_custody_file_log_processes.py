"""Two processes append to one custody file log and each reads the other's events."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.custody_support import ADMIN, SIGNER, T0, make_vaults

ROOT = Path(__file__).resolve().parents[2]


def test_two_processes_share_the_file_log(tmp_path: Path) -> None:
    vaults = make_vaults(tmp_path)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    # Another process (the CLI) writes; this one (the signer) reads it on the next call.
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]);"
        "from tests.custody_support import make_vaults, ADMIN;"
        "v = make_vaults(Path(sys.argv[1]));"
        "v.refresh();"
        "print(v.write_secret('acme', 'ops', 'cli/token', b'from-cli', 'token', actor=ADMIN))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(ROOT)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "1"
    with vaults.open_secret("acme", "ops", "cli/token", actor=SIGNER, now=T0) as value:
        assert value == bytearray(b"from-cli")
    # ...and versions computed by either writer never collide.
    assert vaults.write_secret("acme", "ops", "cli/token", b"from-signer-side", "token", actor=ADMIN, now=T0) == 2
