"""The local Bitcoin node's files (`infra.stack.local.LocalStack.start_bitcoin`): btcd on regtest,
its chain under ``$WARDEN_HOME/bitcoin`` (new at each start: `chain_directory`), its JSON-RPC's
user and password new at each start, and the funder: a key of the home's own that btcd mines to,
whose mature coins `warden fund` pays from.

The funder key is a REGTEST-ONLY key: it is written in the clear (0600) under the home, never in
custody, and nothing but the local regtest node's funding uses it. It holds nothing of value: its
coins exist on this machine's regtest chain alone. It is a BIP-32 seed, as an agent's Bitcoin key
is (`btc.wallet`), so `warden fund` writes and signs its payments as an agent's are written and
signed (`btc.payments`, `btc.signing`).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from btc import wallet

# The version infra/dev.sh builds (`go install github.com/btcsuite/btcd@<version>`).
BTCD_VERSION = "v0.26.2"
# A dev node's UTXO cache, in MiB: btcd's default (250) has it take ~140 MB at start, for a chain of a
# few coins.
UTXO_CACHE_MIB = 16


def directory(home: Path) -> Path:
    return home / "bitcoin"


def funder_key_file(home: Path) -> Path:
    return directory(home) / "funder.key"


def _write_private(path: Path, text: str) -> None:
    """``text`` to ``path``, readable by this user alone from its first byte (0600), replacing it whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    temporary.replace(path)


def load_or_create_funder_key(home: Path) -> bytearray:
    """The home's funder key (REGTEST-ONLY: see the module), made at its first start."""
    key = load_funder_key(home)
    if key is not None:
        return key
    _write_private(funder_key_file(home), secrets.token_bytes(32).hex() + "\n")
    made = load_funder_key(home)
    assert made is not None  # written just above
    return made


def load_funder_key(home: Path) -> bytearray | None:
    """The home's funder key (a 32-byte BIP-32 seed), None when the home has none (its stack never
    ran a Bitcoin node)."""
    try:
        text = funder_key_file(home).read_text().strip()
    except FileNotFoundError:
        return None
    return bytearray(bytes.fromhex(text))


def funder_address(seed: bytearray) -> str:
    """The funder's P2WPKH address on regtest (bcrt1q…): btcd's ``--miningaddr``."""
    return wallet.addresses(wallet.public_key(seed), "regtest")[0]


def chain_directory(home: Path) -> Path:
    """Where btcd keeps its chain. It lives and dies with the process in every mode, like
    surfpool's: btcd deletes a regtest chain's database at each start ("Removing regression test
    database"), so a durable stack cannot keep it as it keeps Anvil's."""
    return directory(home) / "chain"


def btcd_config(home: Path, user: str, password: str) -> Path:
    """btcd's configuration file (0600): the RPC's user and password, kept out of btcd's argv, which
    every user of the machine can read (ps)."""
    path = directory(home) / "btcd.conf"
    _write_private(path, f"[Application Options]\nrpcuser={user}\nrpcpass={password}\n")
    return path


def btcd_argv(binary: str, config: Path, chain: Path, rpc_port: int, p2p_port: int, mining_address: str) -> list[str]:
    return [
        binary,
        "--configfile",
        str(config),
        "--regtest",
        # Plain HTTP, which btcd allows on a loopback address alone.
        "--notls",
        "--rpclisten",
        f"127.0.0.1:{rpc_port}",
        "--listen",
        f"127.0.0.1:{p2p_port}",
        "--datadir",
        str(chain),
        "--logdir",
        str(chain / "logs"),
        "--miningaddr",
        mining_address,
        # getrawtransaction of any transaction; searchrawtransactions (an address's history).
        "--txindex",
        "--addrindex",
        # Nothing Warden reads: compact block filters (BIP-157).
        "--nocfilters",
        "--nodnsseed",
        "--utxocachemaxsize",
        str(UTXO_CACHE_MIB),
    ]


def write_info(path: Path, info: dict[str, Any]) -> None:
    """The node's addresses and credentials for Warden's processes (`Settings.bitcoin_rpc_url`), 0600."""
    _write_private(path, json.dumps(info) + "\n")
