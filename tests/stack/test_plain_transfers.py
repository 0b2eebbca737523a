"""The plain paths on a Solana network, used as on an EVM one, on the real stack and a real Solana
node (surfpool): a key from custody (`warden keys provision`), funded (`warden fund`), a policy
from `warden agents create --allowlist --max-value --daily-limit` with Solana addresses and SOL
amounts, and SOL moved with `warden submit --to --value --broadcast` and with `POST
/v1/agents/{id}/transactions` (`chain`, `to`, `value`); refused for a stranger and over the cap,
with nothing moved on the node."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from solders.keypair import Keypair

from infra.stack.local import LocalStack, free_port
from runtime import solana
from runtime.config import Settings
from runtime.rpc import JsonRpc
from schemas.codes import Code
from tests.support import serving, warden

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


@dataclass(frozen=True)
class SolAgent:
    agent_id: str
    address: str
    alice: str
    mallory: str


@pytest.fixture(scope="module")
def sol_agent(stack: LocalStack) -> SolAgent:
    """An agent made with the plain commands alone: its Solana key, 2 SOL from the node, and a
    policy allowing alice, at most 0.5 SOL a transfer and 1 SOL a day."""
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
    return SolAgent(agent, address, alice, mallory)


def test_an_agent_moves_sol_with_the_plain_commands_and_nothing_past_its_policy(
    stack: LocalStack, sol_agent: SolAgent, run: Run
) -> None:
    settings = stack.settings
    agent, address, alice, mallory = sol_agent.agent_id, sol_agent.address, sol_agent.alice, sol_agent.mallory
    policy = _json(warden(settings, "agents", "show", "--agent", agent, "--json"))
    assert policy["solana"]["address"] == address and policy["solana"]["allowlist"] == [alice]
    assert (policy["solana"]["max_lamports_per_tx"], policy["solana"]["daily_limit_lamports"]) == (
        str(SOL // 2),
        str(SOL),
    )
    assert policy["tx_to_allowlist"] == [] and policy.get("tx_max_value_eth") is None

    sent = _submit(settings, agent, alice, "0.25")
    assert sent["status"] in ("confirmed", "finalized") and sent["from"] == address, sent
    assert _balance(settings, run, alice) >= SOL // 4

    stranger = _submit(settings, agent, mallory, "0.1")
    assert stranger["code"] == Code.RECIPIENT_NOT_ALLOWLISTED, stranger
    over = _submit(settings, agent, alice, "0.75")
    assert over["code"] == Code.VALUE_OVER_CAP, over
    time.sleep(2)  # a transfer sent in spite of a refusal would have landed by now
    assert _balance(settings, run, mallory) == 0

    listed = _json(warden(settings, "txs", "list", "--agent", agent, "--json"))
    assert [(t["intent_id"], t["chain"], t["from"]) for t in listed["transactions"]] == [
        (sent["intent_id"], CHAIN, address)
    ]
    assert [r["code"] for r in listed["rejected"]] == [Code.RECIPIENT_NOT_ALLOWLISTED, Code.VALUE_OVER_CAP]
    shown = _json(warden(settings, "txs", "show", sent["tx_signature"], "--agent", agent, "--json"))
    assert (shown["intent_id"], shown["chain"]) == (sent["intent_id"], CHAIN)
    assert shown["status"] in ("confirmed", "finalized"), shown  # it may have been finalized since
    assert "signed_tx" not in shown
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


def test_submit_names_an_amount_past_u64_and_a_network_without_rpc_and_prints_no_traceback(
    stack: LocalStack, sol_agent: SolAgent
) -> None:
    """A transfer of 2**64 lamports has no bytes (a System transfer's amount is a u64), and a
    network with no RPC configured has no node to write a transfer on: `warden submit` printed a
    Python traceback for each. It says what is wrong, by its option or its setting."""
    settings, agent, alice = stack.settings, sol_agent.agent_id, sol_agent.alice
    huge = warden(
        settings, "submit", "--agent", agent, "--chain", CHAIN, "--to", alice, "--value", "18446744073.709551616"
    )
    assert huge.returncode == 2 and "Traceback" not in huge.stderr, huge.stderr
    assert "value: the lamports of the transfer is 18446744073709551616" in huge.stderr, huge.stderr
    assert "outside the u64 the chain holds it in (0 to 18446744073709551615)" in huge.stderr, huge.stderr
    unserved = warden(settings, "submit", "--agent", agent, "--chain", "solana", "--to", alice, "--value", "0.1")
    assert unserved.returncode == 1 and "Traceback" not in unserved.stderr, unserved.stderr
    assert unserved.stderr.startswith("warden submit: ") and "WARDEN_RPC_URL_SOLANA" in unserved.stderr, unserved.stderr


@pytest.fixture(scope="module")
def api(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`warden api` on the stack: its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "api.log"
    with serving(stack.settings, ["api", "--listen", f"127.0.0.1:{port}", "--timeout", "120"], port, log, "warden api"):
        yield f"http://127.0.0.1:{port}"


def test_the_transactions_endpoint_moves_sol_from_chain_to_and_value(
    stack: LocalStack, sol_agent: SolAgent, api: str, run: Run
) -> None:
    settings = stack.settings
    agent, alice, mallory = sol_agent.agent_id, sol_agent.alice, sol_agent.mallory
    key = _json(warden(settings, "agents", "api-key", "--agent", agent, "--json"))["api_key"]
    before = _balance(settings, run, alice)

    async def scenario() -> dict[str, tuple[int, Any]]:
        seen = {}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{api}/v1/auth/agent-token", json={"agent_id": agent, "api_key": key}) as answer:
                auth = {"Authorization": f"Bearer {(await answer.json())['access_token']}"}
            base = f"{api}/v1/agents/{agent}/transactions"
            for what, path, body in (
                ("sent", base, {"chain": CHAIN, "to": alice, "value": "0.1"}),
                ("signed", f"{base}/sign", {"chain": CHAIN, "to": alice, "value": "0.01"}),
                ("stranger", base, {"chain": CHAIN, "to": mallory, "value": "0.1"}),
                ("over the cap", base, {"chain": CHAIN, "to": alice, "value": "0.6"}),
                ("finer than a lamport", base, {"chain": CHAIN, "to": alice, "value": "0.0000000001"}),
                ("base58 of more than 32 bytes", base, {"chain": CHAIN, "to": "z" * 44, "value": "0.1"}),
                (
                    "an EVM address",
                    base,
                    {"chain": CHAIN, "to": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "value": "0.1"},
                ),
            ):
                async with http.post(path, json=body, headers=auth) as answer:
                    seen[what] = (answer.status, await answer.json())
        return seen

    seen: dict[str, tuple[int, Any]] = run(scenario())
    status, sent = seen["sent"]
    assert status == 201 and sent["status"] in ("broadcast", "processed", "confirmed", "finalized"), sent
    assert sent["from"] == sol_agent.address and sent["spend"] == {"SOL": str(SOL // 10 + 5000)}, sent
    status, signed = seen["signed"]
    assert (status, signed["status"]) == (201, "sign_only"), signed
    for case, code in (("stranger", Code.RECIPIENT_NOT_ALLOWLISTED), ("over the cap", Code.VALUE_OVER_CAP)):
        assert (seen[case][0], seen[case][1]["code"]) == (403, code), (case, seen[case])
    for case in ("finer than a lamport", "an EVM address"):
        status, doc = seen[case]
        assert status == 400 and [f["field"] for f in doc["fields"]] == ["value" if "finer" in case else "to"], doc
    status, doc = seen["base58 of more than 32 bytes"]
    assert status == 422 and doc["detail"].startswith("to: ") and "32 bytes" in doc["detail"], doc
    deadline = time.monotonic() + 60
    while _balance(settings, run, alice) < before + SOL // 10:
        assert time.monotonic() < deadline, "the transfer never landed"
        time.sleep(0.5)
    assert _balance(settings, run, mallory) == 0
