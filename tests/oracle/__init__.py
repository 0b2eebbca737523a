"""Independent implementations the tests check Warden against, built here from Debian's packages."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).parent
GOPATH = Path("/usr/share/gocode")  # golang-golang-x-mod-dev: golang.org/x/mod/sumdb/{note,tlog}


def build_tlogcheck(out: Path) -> Path:
    """`tlogcheck` (tests/oracle/tlogcheck/main.go) built in GOPATH mode against Debian's
    golang.org/x/mod; the Go build cache is kept under .venv so later runs reuse it."""
    go = shutil.which("go")
    if go is None or not (GOPATH / "src/golang.org/x/mod/sumdb/note").is_dir():
        raise RuntimeError(
            "the Go oracle needs Debian's golang-go and golang-golang-x-mod-dev: run ./infra/dev.sh "
            "(as root it installs them), or apt-get install golang-go golang-golang-x-mod-dev"
        )
    cache = HERE.parent.parent / ".venv" / "go-cache"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOCACHE": str(cache), "GOFLAGS": ""}
    binary = out / "tlogcheck"
    subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=HERE / "tlogcheck",
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return binary
