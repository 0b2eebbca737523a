"""The plain commands on a Solana network, typed as for an EVM one, on the real stack and a real
Solana node (surfpool): a key from custody (`warden keys provision`), funded (`warden fund`), a
policy from `warden agents create --allowlist --max-value --daily-limit` with Solana addresses and
SOL amounts, and SOL moved with `warden submit --to --value --broadcast`; refused for a stranger
and over the cap, with nothing moved on the node."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from solders.keypair import Keypair

from infra.stack.local import LocalStack
from runtime import solana
from runtime.config import Settings
from runtime.rpc import JsonRpc
from schemas.codes import Code
from tests.support import warden

CHAIN = "solana-local"
SOL = 10**9

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def _balance(settings: Settings, run: Run, address: str) -> int:
    async def read() -> int:
        node = JsonRpc(settings.rpc_url_for(CHAIN), timeout_s=30)
        try:
            return await solana.balance(node, address)
        finally:
            await node.close()

    result: int = run(read())
    return result


def _json(done: Any) -> Any:
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def _submit(settings: Settings, agent: str, to: str, value: str) -> Any:
    done = warden(
        settings, "submit", "--agent", agent, "--chain", CHAIN, "--to", to, "--value", value, "--broadcast",
        "--timeout", "120", "--json",
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return orjson.loads(done.stdout)["outcome"]


def test_an_agent_moves_sol_with_the_plain_commands_and_nothing_past_its_policy(stack: LocalStack, run: Run) -> None:
    settings = stack.settings
    agent = f"plain-sol-{os.urandom(3).hex()}"
    alice, mallory = str(Keypair().pubkey()), str(Keypair().pubkey())
    address = _json(warden(settings, "keys", "provision", "--agent", agent, "--chain", "solana", "--json"))["address"]
    funded = _json(warden(settings, "fund", "--agent", agent, "--chain", CHAIN, "--value", "2", "--json"))
    assert (funded["address"], funded["balance"], funded["unit"]) == (address, str(2 * SOL), "lamports")

    created = warden(
        settings, "agents", "create", "--agent", agent, "--chains", CHAIN, "--allowlist", alice,
        "--max-value", "0.5", "--daily-limit", "1",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    policy = _json(warden(settings, "agents", "show", "--agent", agent, "--json"))
    assert policy["solana"]["address"] == address and policy["solana"]["allowlist"] == [alice]
    assert (policy["solana"]["max_lamports_per_tx"], policy["solana"]["daily_limit_lamports"]) == (
        str(SOL // 2),
        str(SOL),
    )
    assert policy["tx_to_allowlist"] == [] and policy.get("tx_max_value_eth") is None

    sent = _submit(settings, agent, alice, "0.25")
    assert sent["status"] in ("confirmed", "finalized") and sent["from"] == address, sent
    assert _balance(settings, run, alice) == SOL // 4

    stranger = _submit(settings, agent, mallory, "0.1")
    assert stranger["code"] == Code.RECIPIENT_NOT_ALLOWLISTED, stranger
    over = _submit(settings, agent, alice, "0.75")
    assert over["code"] == Code.VALUE_OVER_CAP, over
    time.sleep(2)  # a transfer sent in spite of a refusal would have landed by now
    assert (_balance(settings, run, mallory), _balance(settings, run, alice)) == (0, SOL // 4)

    listed = _json(warden(settings, "txs", "list", "--agent", agent, "--json"))
    assert [(t["intent_id"], t["chain"], t["from"]) for t in listed["transactions"]] == [
        (sent["intent_id"], CHAIN, address)
    ]
    assert [r["code"] for r in listed["rejected"]] == [Code.RECIPIENT_NOT_ALLOWLISTED, Code.VALUE_OVER_CAP]
    lines = warden(settings, "txs", "list", "--agent", agent).stdout.splitlines()
    assert lines[0].startswith(sent["intent_id"]) and f"{CHAIN}:{sent['tx_signature']}" in lines[0], lines
    assert lines[-1].startswith(f"1 transaction(s) of {agent}: ") and "2 intent(s) rejected" in lines[-1], lines


def test_a_plain_option_in_another_familys_form_is_refused_by_name(stack: LocalStack) -> None:
    settings = stack.settings
    agent = f"plain-mixed-{os.urandom(3).hex()}"
    evm_address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    stranger = str(Keypair().pubkey())
    refused = warden(settings, "agents", "create", "--agent", agent, "--chains", "anvil", "--allowlist", stranger)
    assert refused.returncode == 2 and "tx_to_allowlist.0: must be a 0x-prefixed 20-byte hex" in refused.stderr
    chains = f"anvil,{CHAIN}"
    mixed = warden(settings, "agents", "create", "--agent", agent, "--chains", chains, "--allowlist", "0x1234")
    assert mixed.returncode == 2 and "'0x1234' is an address of none of the networks" in mixed.stderr
    keyless = warden(
        settings, "agents", "create", "--agent", agent, "--chains", f"anvil,{CHAIN}", "--allowlist", evm_address
    )
    assert keyless.returncode == 2 and f"`warden keys provision --agent {agent} --chain solana`" in keyless.stderr
    done = warden(settings, "submit", "--agent", agent, "--chain", CHAIN, "--to", evm_address, "--value", "0.1")
    assert done.returncode == 2 and "solana.address" in done.stderr, done.stderr
