"""`warden bench custody`: what custody costs on the signing path.

Two figures:

* decrypt-and-sign per second with a warm KEK cache: open an agent's ethereum
  key from the vault (DEK unwrap + secret decrypt, KEK from cache), sign a
  32-byte digest with secp256k1 (RFC 6979), wipe the key;
* the cost of a cold unwrap per root provider available on this machine: the
  KEK cache emptied, then one read (root unwrap + DEK unwrap + decrypt).

Everything runs in a temporary directory with its own development root (never
$WARDEN_HOME). Providers: local-dev always; pkcs11 when SoftHSM2 is installed
(a temp token); aws-kms when moto_server is installed (started on loopback);
gcp-kms and azure-kv only against the local protocol servers of
``infra/stack/kms_servers.py``. Figures against local servers measure the client
libraries and loopback, not a cloud round trip, and the report says so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from infra.bench.figures import percentile
from infra.cli.output import print_json
from infra.stack import kms_servers
from runtime.config import environment

ADMIN = "admin:bench"
SIGNER = "service:signer"
ALL_PROVIDERS = ("local-dev", "pkcs11", "aws-kms", "gcp-kms", "azure-kv")


def _quiet_dev_root(path: Path, name: str = "local-dev") -> Any:
    from signer.custody.roots import LocalDevRoot

    # The warning is for humans starting a service; a benchmark's throwaway root need not shout.
    with open(os.devnull, "w") as devnull:
        return LocalDevRoot(path, True, name=name, stderr=devnull)


def bench_warm(tmp: Path, seconds: float) -> dict[str, Any]:
    import coincurve

    from signer.custody import FileEventLog, Vaults
    from signer.custody.keys import KeyStore

    vaults = Vaults(_quiet_dev_root(tmp / "warm.key"), FileEventLog(tmp / "warm.jsonl"))
    store = KeyStore(vaults)
    key = store.provision("bench-agent", "ethereum", ADMIN)
    digest = os.urandom(32)
    with store.open_private_key(key.path):
        pass  # warm the KEK cache
    results: dict[str, Any] = {}
    for label, sign in (("decrypt_per_s", False), ("decrypt_and_sign_per_s", True)):
        count, start = 0, time.perf_counter()
        deadline = start + seconds / 2
        while True:
            with store.open_private_key(key.path) as private_key:
                if sign:
                    coincurve.PrivateKey(bytes(private_key)).sign_recoverable(digest, hasher=None)
            count += 1
            if count % 50 == 0 and time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - start
        results[label] = round(count / elapsed, 1)
        results[label.replace("_per_s", "_n")] = count
    results["root"] = "local-dev"
    results["note"] = "KEK cached; per operation: one DEK unwrap + one secret decrypt (AES-256-GCM), key wiped after"
    return results


def bench_client_share(tmp: Path, seconds: float) -> dict[str, Any]:
    """The signing path in 2of2_client_custody: every operation opens the intent's sealed client
    share (HPKE), rebuilds the KEK from it and the cached server share, then decrypts and signs."""
    from datetime import datetime, timezone

    import coincurve

    from schemas.intent import TransactionIntent
    from schemas.sealing import decode_client_share, seal_client_share
    from signer.custody import FileEventLog, Vaults
    from signer.custody._crypto import wipe
    from signer.custody.keys import KeyStore
    from signer.sealing import SealingKeyPair

    vaults = Vaults(_quiet_dev_root(tmp / "client.key"), FileEventLog(tmp / "client.jsonl"))
    store = KeyStore(vaults, mode="2of2_client_custody")
    key = store.provision("bench-agent", "ethereum", ADMIN)
    if key.client_share is None:
        raise RuntimeError("a key provisioned in 2of2_client_custody came without its client share")
    signer_key = SealingKeyPair()
    share = decode_client_share(key.client_share)
    sealed = seal_client_share(
        share,
        [signer_key.announcement("bench", "none", datetime.now(timezone.utc))],
        agent_id="bench-agent",
        intent_id="i-bench",
    )
    wipe(share)
    intent = TransactionIntent(
        intent_id="i-bench",
        agent_id="bench-agent",
        chain="anvil",
        to="0x" + "11" * 20,
        value="0",
        sealed_client_share=sealed,
        created_at=datetime.now(timezone.utc),
    )
    digest = os.urandom(32)
    count, start = 0, time.perf_counter()
    deadline = start + seconds / 2
    while True:
        opened = signer_key.open_client_share(intent)
        try:
            with store.open_private_key(key.path, client_share=opened) as private_key:
                coincurve.PrivateKey(bytes(private_key)).sign_recoverable(digest, hasher=None)
        finally:
            wipe(opened)
        count += 1
        if count % 50 == 0 and time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    return {
        "open_share_decrypt_and_sign_per_s": round(count / elapsed, 1),
        "n": count,
        "root": "local-dev",
        "note": "per operation: HPKE open of the sealed share, XOR with the cached server share, KEK "
        "commitment check, DEK unwrap, secret decrypt, sign; share and key wiped after",
    }


@contextlib.contextmanager
def _provider(name: str, tmp: Path) -> Iterator[tuple[Any, str] | None]:
    """Yield (root, where it runs) for a provider, or None when it is not available here."""
    if name == "local-dev":
        yield _quiet_dev_root(tmp / "cold.key"), "file in a temp dir"
        return
    if name == "pkcs11":
        import shutil

        module = "/usr/lib/softhsm/libsofthsm2.so"
        if shutil.which("softhsm2-util") is None or not Path(module).exists():
            yield None
            return
        import subprocess

        from signer.custody.pkcs11_hsm import Pkcs11Root

        (tmp / "tokens").mkdir()
        conf = tmp / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {tmp / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
        with environment(SOFTHSM2_CONF=str(conf)):
            subprocess.run(
                ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", "5678", "--pin", "1234"],
                check=True,
                capture_output=True,
            )
            Pkcs11Root.create_key(module, "bench", "1234")
            yield Pkcs11Root(module, "bench", "1234"), "SoftHSM2 token in a temp dir"
        return
    if name == "aws-kms":
        if not (kms_servers.VENV_BIN / "moto_server").exists():
            yield None
            return
        from signer.custody.aws_kms import AwsKmsRoot

        moto = kms_servers.MotoServer()
        try:
            yield (
                AwsKmsRoot(moto.create_key(), endpoint_url=moto.url, **kms_servers.AWS_TEST_CREDENTIALS),
                "moto_server on loopback (HTTP)",
            )
        finally:
            moto.stop()
        return
    if name == "gcp-kms":
        from signer.custody.gcp_kms import GcpKmsRoot

        key = "projects/bench/locations/global/keyRings/warden/cryptoKeys/root"
        cloud_kms = kms_servers.LocalCloudKms((key,))
        try:
            yield (
                GcpKmsRoot(key, api_endpoint=cloud_kms.endpoint, insecure=True),
                "local Cloud KMS gRPC test server on loopback",
            )
        finally:
            cloud_kms.stop()
        return
    if name == "azure-kv":
        key_vault = kms_servers.LocalKeyVault(tmp)
        try:
            yield key_vault.root(), "local Key Vault HTTPS test server on loopback"
        finally:
            key_vault.stop()
        return
    raise ValueError(f"unknown provider {name!r}; choose from {', '.join(ALL_PROVIDERS)}")


def bench_cold(name: str, tmp: Path, iterations: int) -> dict[str, Any]:
    from signer.custody import Vaults

    with _provider(name, tmp) as found:
        if found is None:
            return {"available": False}
        root, where = found
        vaults = Vaults(root, lambda _event: None)
        vaults.create_vault("bench", "cold", actor=ADMIN)
        vaults.write_secret("bench", "cold", "k", os.urandom(32), "private_key", actor=ADMIN)
        reads, unwraps = [], []
        mode = vaults.book.state("bench", "cold").mode
        if mode is None:
            raise RuntimeError("the vault was created in the standard mode, yet has no mode")
        slot = mode.slots[0]
        import base64

        from signer.custody.keks import slot_aad as _slot_aad

        wrapped = base64.b64decode(slot.wrapped)
        slot_aad = _slot_aad("bench", "cold", mode.kek_id, mode.mode, slot.x, slot.provider)
        for _ in range(iterations):
            vaults.evict(everything=True)
            start = time.perf_counter()
            with vaults.open_secret("bench", "cold", "k", actor=SIGNER):
                pass
            reads.append(time.perf_counter() - start)
            start = time.perf_counter()
            kek = root.unwrap(wrapped, slot_aad)
            unwraps.append(time.perf_counter() - start)
            kek[:] = bytes(len(kek))
        return {
            "available": True,
            "where": where,
            "iterations": iterations,
            "root_unwrap_ms_median": round(statistics.median(unwraps) * 1e3, 3),
            "cold_read_ms_median": round(statistics.median(reads) * 1e3, 3),
            "cold_read_ms_p95": round(percentile(reads, 0.95) * 1e3, 3),
        }


def run(*, seconds: float = 2.0, iterations: int = 50, providers: Sequence[str] = ALL_PROVIDERS) -> dict[str, Any]:
    """Run the benchmark; returns a JSON-ready dict."""
    with tempfile.TemporaryDirectory(prefix="warden-bench-custody-") as tmp_name:
        tmp = Path(tmp_name)
        warm = bench_warm(tmp, seconds)
        client = bench_client_share(tmp, seconds)
        cold = {}
        for name in providers:
            sub = tmp / name
            sub.mkdir()
            cold[name] = bench_cold(name, sub, iterations)
    return {
        "benchmark": "custody",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "warm": warm,
        "client_custody": client,
        "cold_unwrap": cold,
    }


def _render(result: dict[str, Any]) -> str:
    warm = result["warm"]
    lines = [
        f"custody benchmark ({result['machine']['cpus']} cpus, Python {result['machine']['python']})",
        f"  warm KEK cache: {warm['decrypt_and_sign_per_s']:,.0f} decrypt-and-sign/s, "
        f"{warm['decrypt_per_s']:,.0f} decrypt/s ({warm['root']} root)",
        f"  2of2_client_custody: {result['client_custody']['open_share_decrypt_and_sign_per_s']:,.0f} "
        "open-sealed-share-decrypt-and-sign/s (HPKE open + KEK rebuild each time)",
        "  cold unwrap per provider (KEK cache emptied before each read):",
    ]
    for name, figures in result["cold_unwrap"].items():
        if not figures["available"]:
            lines.append(f"    {name:<10} not available here")
            continue
        lines.append(
            f"    {name:<10} root unwrap {figures['root_unwrap_ms_median']:.3f} ms, cold read "
            f"{figures['cold_read_ms_median']:.3f} ms median / {figures['cold_read_ms_p95']:.3f} ms p95  "
            f"[{figures['where']}]"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warden bench custody", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of the warm run (default 2)")
    parser.add_argument("--iterations", type=int, default=50, help="cold reads per provider (default 50)")
    parser.add_argument(
        "--providers", default=",".join(ALL_PROVIDERS), help=f"comma-separated subset of {','.join(ALL_PROVIDERS)}"
    )
    args = parser.parse_args(argv)
    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    unknown = [p for p in providers if p not in ALL_PROVIDERS]
    if unknown:
        parser.error(f"unknown provider(s) {unknown}; choose from {', '.join(ALL_PROVIDERS)}")
    result = run(seconds=args.seconds, iterations=args.iterations, providers=providers)
    if args.json:
        print_json(result)
    else:
        print(_render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
