"""The TypeScript client (sdk/typescript) as a user's project meets it, no Warden needed: its
documented usage type-checked by `tsc` (strict), and its own tests under Node's runner against
servers of the test's own: an address where nothing listens is an `{error}` answer, and a retry,
the client's or the caller's, sends the same Idempotency-Key. The same client against a live stack
is in test_http_api.py; that the docs show test/usage.ts verbatim is tests/unit/test_typescript_usage.py."""

from __future__ import annotations

import re
import subprocess

from infra.stack.local import REPO

TYPESCRIPT = REPO / "sdk" / "typescript"


def _npm(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npm", "run", "--silent", script], cwd=TYPESCRIPT, capture_output=True, text=True, timeout=300
    )


def test_the_documented_usage_type_checks_under_strict_tsc() -> None:
    done = _npm("typecheck")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_client_answers_an_unreachable_server_and_retries_with_one_idempotency_key() -> None:
    built = TYPESCRIPT / "dist" / "index.js"
    sources = sorted((TYPESCRIPT / "src").glob("*.ts"))
    assert built.exists() and all(s.stat().st_mtime <= built.stat().st_mtime for s in sources), (
        "sdk/typescript/dist is older than src: run `npm run build --prefix sdk/typescript`"
    )
    done = _npm("test")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"# pass 6\b", done.stdout) and re.search(r"# fail 0\b", done.stdout), done.stdout[-3000:]
